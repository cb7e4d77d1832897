package ich.labels;

import java.util.List;

/**
 * A file in the submission format, read back: a sample submission (placeholder probabilities, its row order
 * being the order Kaggle wants) or a submission we wrote. Keeps the rows' order and, per image, the six
 * probabilities. Immutable.
 */
public final class Submission {
    private final String source;
    private final Predictions predictions;
    /** Per row in file order, image * 6 + subtype ordinal. */
    private final int[] rowCells;

    Submission(String source, Predictions predictions, int[] rowCells) {
        this.source = source;
        this.predictions = predictions;
        this.rowCells = rowCells;
    }

    public String source() { return source; }

    public int images() { return predictions.images(); }

    /** The image ids in first-seen order. */
    public List<String> imageIds() { return predictions.imageIds(); }

    /** Data rows: 6 per image. */
    public int rows() { return rowCells.length; }

    /** The image of row {@code row} (0-based, header not counted). */
    public int rowImage(int row) { return rowCells[row] / Subtype.COUNT; }

    public Subtype rowSubtype(int row) { return Subtype.of(rowCells[row] % Subtype.COUNT); }

    /** The CSV ID of a row, e.g. {@code ID_0fbf6a978_epidural}. */
    public String rowId(int row) { return predictions.imageId(rowImage(row)) + "_" + rowSubtype(row).csvName(); }

    /** The probabilities, images in first-seen order. */
    public Predictions predictions() { return predictions; }

    int rowCell(int row) { return rowCells[row]; }
}
