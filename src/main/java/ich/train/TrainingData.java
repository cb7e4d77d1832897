package ich.train;

import ich.eda.HeaderScan;
import ich.labels.LabelTable;
import ich.labels.Subtype;
import ich.preprocess.Preprocessor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

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

    /**
     * Joins {@code table} with the files found under {@code folder}, reading headers on {@code threads} threads. A
     * multi-frame file is one image per frame ({@link ImageCatalog#frameId}), labelled as {@code <id>_frame<k>}; a
     * frame without labels, a multi-frame file labelled as a whole and a label for a frame the file lacks are
     * problems, not silently dropped.
     */
    public static TrainingData of(LabelTable table, Path folder, int threads) throws java.io.IOException, InterruptedException {
        List<Path> files = ImageCatalog.files(folder);
        Set<String> framedFiles = new HashSet<>(); // file ids that some label names a frame of
        for (int row = 0; row < table.images(); row++) {
            String file = ImageCatalog.fileIdOfFrame(table.imageId(row));
            if (file != null) framedFiles.add(file);
        }
        Map<String, Path> byId = new HashMap<>();
        List<Problem> problems = new ArrayList<>();
        List<Path> labelled = new ArrayList<>();
        for (Path f : files) {
            String id = HeaderScan.imageId(f);
            Path earlier = byId.putIfAbsent(id, f);
            if (earlier != null) {
                problems.add(new Problem(id, f, "a second file for image " + id + " (first: " + earlier + "); only the first is used"));
            } else if (table.indexOf(id) < 0 && !framedFiles.contains(id)) {
                problems.add(new Problem(id, f, "file has no labels in " + table.source()));
            } else {
                labelled.add(f);
            }
        }
        ImageCatalog.Result scan = ImageCatalog.scan(labelled, threads);
        for (ImageCatalog.Unreadable u : scan.unreadable()) problems.add(new Problem(u.imageId(), u.file(), u.error()));
        Map<String, ImageCatalog.Image> readable = new HashMap<>();
        Map<String, Integer> framesOf = new HashMap<>(); // file id -> frames, for every readable file
        for (ImageCatalog.Image i : scan.images()) {
            readable.put(i.imageId(), i);
            String file = HeaderScan.imageId(i.file());
            framesOf.merge(file, 1, Integer::sum);
            if (table.indexOf(i.imageId()) < 0 && !i.imageId().equals(file)) {
                problems.add(new Problem(i.imageId(), i.file(), "frame " + (i.frame() + 1) + " of the file has no labels in "
                        + table.source() + " (as " + i.imageId() + ")"));
            }
        }

        List<ImageCatalog.Image> images = new ArrayList<>();
        byte[] labels = new byte[table.images() * LABELS];
        for (int row = 0; row < table.images(); row++) {
            String id = table.imageId(row);
            ImageCatalog.Image image = readable.get(id);
            if (image == null) {
                String framed = ImageCatalog.fileIdOfFrame(id);
                String file = framed != null && byId.containsKey(framed) && !byId.containsKey(id) ? framed : id;
                Integer frames = framesOf.get(file);
                if (frames != null && file.equals(id)) {
                    problems.add(new Problem(id, byId.get(id), id + " has " + frames + " frames: label each one, as " + id
                            + "_frame1 .. " + id + "_frame" + frames + ", in " + table.source()));
                } else if (frames != null) {
                    problems.add(new Problem(id, byId.get(file), "labelled in " + table.source() + " but " + byId.get(file)
                            + " has " + frames + " frame(s)"));
                } else if (!byId.containsKey(file)) {
                    problems.add(new Problem(id, null, "labelled in " + table.source() + " but no file " + id + ".dcm under " + folder));
                } // else the file is unreadable: its problem is recorded above
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
            inputs.add(new Preprocessor.Input(images.get(rows[i]).file(), images.get(rows[i]).frame(), rows[i]));
            for (int s = 0; s < LABELS; s++) targets[i * LABELS + s] = labels[rows[i] * LABELS + s];
        }
        return new BatchLoader.Plan(inputs, rows.clone(), targets, LABELS, batchSize, seed, epoch);
    }
}
