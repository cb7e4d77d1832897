package ich.labels;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The training labels pivoted to one row per image: image ids in first-seen order and, per image, one byte
 * whose bit {@link Subtype#ordinal()} is that subtype's label. Bit-packed because the matrix is read far
 * more often than written and 674k images then take 674 KB. Immutable.
 *
 * <p>Also the counts of the file it came from: data lines, identical duplicate rows that were merged, and
 * positives per subtype (images whose label is 1).
 */
public final class LabelTable {
    private final String source;
    private final ImageIdIndex ids;
    private final byte[] labelBits;
    private final long lines;
    private final long duplicatesMerged;
    private final int[] positives = new int[Subtype.COUNT];

    LabelTable(String source, ImageIdIndex ids, byte[] labelBits, long lines, long duplicatesMerged) {
        if (labelBits.length != ids.size()) throw new IllegalArgumentException(labelBits.length + " label bytes for " + ids.size() + " images");
        this.source = source;
        this.ids = ids;
        this.labelBits = labelBits;
        this.lines = lines;
        this.duplicatesMerged = duplicatesMerged;
        for (byte bits : labelBits) {
            if ((bits & ~Subtype.ALL_BITS) != 0) throw new IllegalArgumentException("label byte " + bits + " has bits beyond the six subtypes");
            for (int s = 0; s < Subtype.COUNT; s++) positives[s] += (bits >>> s) & 1;
        }
    }

    /**
     * A table made in memory, e.g. for synthetic data: {@code labelBits[i]} holds image i's labels, bit
     * {@link Subtype#ordinal()} per subtype. Counts it as if read from a file of 6 lines per image.
     */
    public static LabelTable of(List<String> imageIds, byte[] labelBits) {
        return new LabelTable("<memory>", ImageIdIndex.of(imageIds), labelBits.clone(), 6L * imageIds.size(), 0);
    }

    /** Where the table was read from (a file name), for messages. */
    public String source() { return source; }

    public int images() { return ids.size(); }

    public String imageId(int image) { return ids.id(image); }

    /** The image ids in first-seen order. */
    public List<String> imageIds() { return ids.ids(); }

    /** The number of this image, or -1. */
    public int indexOf(String imageId) { return ids.indexOf(imageId); }

    /** The label, 0 or 1. */
    public int label(int image, Subtype subtype) {
        return (labelBits[image] >>> subtype.ordinal()) & 1;
    }

    /** All six labels of an image as bits: bit {@link Subtype#ordinal()} per subtype. */
    public int labelBits(int image) { return labelBits[image]; }

    /** The labels as a row-major images x 6 matrix of 0 and 1, in {@link Subtype} order: what a trainer feeds on. */
    public byte[] labelMatrix() {
        byte[] m = new byte[labelBits.length * Subtype.COUNT];
        for (int i = 0; i < labelBits.length; i++) {
            for (int s = 0; s < Subtype.COUNT; s++) m[i * Subtype.COUNT + s] = (byte) ((labelBits[i] >>> s) & 1);
        }
        return m;
    }

    /** Images labelled 1 for this subtype. */
    public int positives(Subtype subtype) { return positives[subtype.ordinal()]; }

    /** Images labelled 0 for this subtype. */
    public int negatives(Subtype subtype) { return images() - positives[subtype.ordinal()]; }

    /** Images with any hemorrhage ({@code any} = 1). */
    public int positiveImages() { return positives(Subtype.ANY); }

    /** Data lines of the file (the header not counted), duplicates included. */
    public long lines() { return lines; }

    /** Rows that repeated an earlier row exactly (same ID, same label) and were merged into it. */
    public long duplicatesMerged() { return duplicatesMerged; }

    /** Same images in the same order with the same labels; where they came from and the counts do not matter. */
    @Override
    public boolean equals(Object o) {
        return o instanceof LabelTable t && imageIds().equals(t.imageIds()) && Arrays.equals(labelBits, t.labelBits);
    }

    @Override
    public int hashCode() { return Objects.hash(imageIds(), Arrays.hashCode(labelBits)); }

    @Override
    public String toString() {
        return "LabelTable[" + source + ": " + images() + " images, " + positiveImages() + " positive, "
                + lines + " lines, " + duplicatesMerged + " duplicates merged]";
    }
}
