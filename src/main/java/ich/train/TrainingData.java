package ich.train;

import ich.eda.HeaderScan;
import ich.labels.LabelTable;
import ich.labels.Subtype;
import ich.preprocess.Preprocessor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The labelled images that can be trained on: the label table joined with the files of a folder and their
 * headers. Nothing is dropped silently: a labelled image without a file, a file that cannot be read and a
 * file without labels each end up in {@link #problems()}, which the training run writes to its error report.
 *
 * @param images   readable files that have labels, in label-file order
 * @param labels   6 labels per image, row-major, in {@link Subtype} order
 * @param problems what was left out and why
 */
public record TrainingData(List<ImageCatalog.Image> images, byte[] labels, List<Problem> problems) {
    public static final int LABELS = Subtype.COUNT;

    /** An input left out of training: the image id, the file (null when none was found) and the reason. */
    public record Problem(String imageId, Path file, String reason) {}

    /** Joins {@code table} with the files found under {@code folder}, reading headers on {@code threads} threads. */
    public static TrainingData of(LabelTable table, Path folder, int threads) throws java.io.IOException, InterruptedException {
        List<Path> files = ImageCatalog.files(folder);
        Map<String, Path> byId = new HashMap<>();
        List<Problem> problems = new ArrayList<>();
        List<Path> labelled = new ArrayList<>();
        for (Path f : files) {
            String id = HeaderScan.imageId(f);
            Path earlier = byId.putIfAbsent(id, f);
            if (earlier != null) {
                problems.add(new Problem(id, f, "a second file for image " + id + " (first: " + earlier + "); only the first is used"));
            } else if (table.indexOf(id) < 0) {
                problems.add(new Problem(id, f, "file has no labels in " + table.source()));
            } else {
                labelled.add(f);
            }
        }
        ImageCatalog.Result scan = ImageCatalog.scan(labelled, threads);
        for (ImageCatalog.Unreadable u : scan.unreadable()) problems.add(new Problem(u.imageId(), u.file(), u.error()));
        Map<String, ImageCatalog.Image> readable = new HashMap<>();
        for (ImageCatalog.Image i : scan.images()) readable.put(i.imageId(), i);

        List<ImageCatalog.Image> images = new ArrayList<>();
        byte[] labels = new byte[table.images() * LABELS];
        for (int row = 0; row < table.images(); row++) {
            String id = table.imageId(row);
            ImageCatalog.Image image = readable.get(id);
            if (image == null) {
                if (!byId.containsKey(id)) problems.add(new Problem(id, null, "labelled in " + table.source() + " but no file " + id + ".dcm under " + folder));
                continue;
            }
            int bits = table.labelBits(row);
            for (int s = 0; s < LABELS; s++) labels[images.size() * LABELS + s] = (byte) ((bits >>> s) & 1);
            images.add(image);
        }
        return new TrainingData(List.copyOf(images), java.util.Arrays.copyOf(labels, images.size() * LABELS), List.copyOf(problems));
    }

    public int size() {
        return images.size();
    }

    /** The labels as rows of 6 bytes (what {@link ich.split.Split} takes). */
    public byte[][] labelRows() {
        byte[][] rows = new byte[size()][];
        for (int i = 0; i < rows.length; i++) rows[i] = java.util.Arrays.copyOfRange(labels, i * LABELS, (i + 1) * LABELS);
        return rows;
    }

    public String[] groups() {
        return images.stream().map(ImageCatalog.Image::group).toArray(String[]::new);
    }

    /**
     * A loader plan over {@code rows} (dataset indices, in the order to train on). The sample key of each image is
     * its dataset index, so its augmentation depends on (seed, epoch, image) only.
     */
    public BatchLoader.Plan plan(int[] rows, int batchSize, long seed, int epoch) {
        List<Preprocessor.Input> inputs = new ArrayList<>(rows.length);
        float[] targets = new float[rows.length * LABELS];
        for (int i = 0; i < rows.length; i++) {
            inputs.add(new Preprocessor.Input(images.get(rows[i]).file(), 0, rows[i]));
            for (int s = 0; s < LABELS; s++) targets[i * LABELS + s] = labels[rows[i] * LABELS + s];
        }
        return new BatchLoader.Plan(inputs, rows.clone(), targets, LABELS, batchSize, seed, epoch);
    }
}
