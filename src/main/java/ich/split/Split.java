package ich.split;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * A train/validation split of n images: {@code train} and {@code test} are ascending indices into the input,
 * together holding each of 0..n-1 exactly once. ("test" is the held-out side, written as {@code validation} in
 * split.csv; the name follows the shuffle-split convention of the seed notebook.)
 *
 * <p>Two ways to make one, both by {@link IterativeStratification multi-label iterative stratification} and both
 * deterministic for a seed:
 * <ul>
 *   <li>{@link #grouped}, the project's default: all images of a group (a patient, and so all of the patient's
 *       studies) fall on the same side. The seed notebook's image-level split puts neighbouring slices of one
 *       patient on both sides, so validation scores measured on it are optimistic.</li>
 *   <li>{@link #stratified}: image by image, as the seed notebook's {@code MultilabelStratifiedShuffleSplit}
 *       (n_splits=1); kept to reproduce the seed's numbers.</li>
 * </ul>
 *
 * <p>Labels are a matrix with one row per image and one 0/1 column per label (for RSNA: any, epidural,
 * intraparenchymal, intraventricular, subarachnoid, subdural; the order does not matter).
 *
 * <p>The held-out side is asked for {@code ceil(testFraction * images)} images (as scikit-learn sizes a shuffle
 * split); both sides must get at least one image. An image-level split hits that count exactly whenever some
 * images have no positive label; a grouped one is within one group's size of it.
 *
 * <p>Every label but one ends within half an image (image-level) or half its largest group's count (grouped) of
 * its share on each side. The exception is a consequence of {@code any} being the OR of the subtypes; see
 * {@link IterativeStratification}.
 *
 * <p>The arrays are not copied: do not change them after building a split.
 */
public record Split(int[] train, int[] test) {

    public Split {
        Objects.requireNonNull(train, "train");
        Objects.requireNonNull(test, "test");
    }

    /** Image-level multi-label stratified split: the seed notebook's split, images of a patient on both sides. */
    public static Split stratified(byte[][] labels, double testFraction, long seed) {
        return stratified(LabelMatrix.of(labels), testFraction, seed);
    }

    /**
     * {@link #stratified(byte[][], double, long)} with the labels as one row-major array, {@code labelsPerImage}
     * values per image (no per-image arrays: 674k images take 4 MB).
     */
    public static Split stratified(byte[] labelMatrix, int labelsPerImage, double testFraction, long seed) {
        return stratified(LabelMatrix.of(labelMatrix, labelsPerImage), testFraction, seed);
    }

    private static Split stratified(LabelMatrix labels, double testFraction, long seed) {
        checkFraction(testFraction);
        long[] foldSizes = foldSizes(labels.images(), testFraction);
        int[] positives = new int[labels.values().length];
        for (int k = 0; k < positives.length; k++) positives[k] = labels.values()[k];
        int[] fold = IterativeStratification.assign(labels.images(), labels.columns(), positives, null, foldSizes, new SplittableRandom(seed));
        return fromFolds(fold, null);
    }

    /**
     * Grouped multi-label stratified split: no group on both sides. {@code groupIds[i]} names the group (patient)
     * of image i; any non-null strings, compared with equals.
     */
    public static Split grouped(byte[][] labels, String[] groupIds, double testFraction, long seed) {
        return grouped(LabelMatrix.of(labels), GroupIndex.of(groupIds), testFraction, seed);
    }

    /** {@link #grouped(byte[][], String[], double, long)} with numeric group ids (any ints, not necessarily dense). */
    public static Split grouped(byte[][] labels, int[] groupIds, double testFraction, long seed) {
        return grouped(LabelMatrix.of(labels), GroupIndex.of(groupIds), testFraction, seed);
    }

    /** {@link #grouped(byte[][], String[], double, long)} with the labels as one row-major array. */
    public static Split grouped(byte[] labelMatrix, int labelsPerImage, String[] groupIds, double testFraction, long seed) {
        return grouped(LabelMatrix.of(labelMatrix, labelsPerImage), GroupIndex.of(groupIds), testFraction, seed);
    }

    /**
     * Groups are stratified as units: a group's label vector counts its positive images per label and its size is
     * its image count, so the desires of the algorithm are in images and the held-out share of images, overall and
     * per label, stays near the request.
     */
    private static Split grouped(LabelMatrix labels, GroupIndex groups, double testFraction, long seed) {
        checkFraction(testFraction);
        int n = labels.images(), columns = labels.columns();
        if (groups.of().length != n) {
            throw new IllegalArgumentException(groups.of().length + " group ids for " + n + " images: need one per image");
        }
        if (groups.count() < 2) {
            throw new IllegalArgumentException("all " + n + " images are in one group: a grouped split needs at least two groups");
        }
        long[] foldSizes = foldSizes(n, testFraction);
        int[] sizes = new int[groups.count()];
        int[] positives = new int[Math.multiplyExact(groups.count(), columns)];
        byte[] values = labels.values();
        for (int i = 0; i < n; i++) {
            int g = groups.of()[i];
            sizes[g]++;
            for (int l = 0; l < columns; l++) positives[g * columns + l] += values[i * columns + l];
        }
        int[] groupFold = IterativeStratification.assign(groups.count(), columns, positives, sizes, foldSizes, new SplittableRandom(seed));
        return fromFolds(groupFold, groups.of());
    }

    /** A validated images x labels matrix of 0 and 1, row-major. */
    private record LabelMatrix(int images, int columns, byte[] values) {

        /** A non-empty rectangular matrix of 0/1 with at least one column. */
        static LabelMatrix of(byte[][] labels) {
            Objects.requireNonNull(labels, "labels");
            if (labels.length == 0) throw new IllegalArgumentException("no images to split");
            if (labels[0] == null) throw new IllegalArgumentException("label row 0 is null");
            int columns = labels[0].length;
            if (columns == 0) throw new IllegalArgumentException("label rows have no columns");
            byte[] values = new byte[Math.multiplyExact(labels.length, columns)];
            for (int i = 0; i < labels.length; i++) {
                byte[] row = labels[i];
                if (row == null) throw new IllegalArgumentException("label row " + i + " is null");
                if (row.length != columns) {
                    throw new IllegalArgumentException("label matrix is not rectangular: row " + i + " has " + row.length
                            + " columns, row 0 has " + columns);
                }
                System.arraycopy(row, 0, values, i * columns, columns);
            }
            return checked(labels.length, columns, values);
        }

        static LabelMatrix of(byte[] values, int columns) {
            Objects.requireNonNull(values, "labelMatrix");
            if (columns < 1) throw new IllegalArgumentException("labels per image must be at least 1, got " + columns);
            if (values.length == 0) throw new IllegalArgumentException("no images to split");
            if (values.length % columns != 0) {
                throw new IllegalArgumentException("label matrix of " + values.length + " values is not a whole number of rows of " + columns);
            }
            return checked(values.length / columns, columns, values);
        }

        private static LabelMatrix checked(int images, int columns, byte[] values) {
            for (int k = 0; k < values.length; k++) {
                if (values[k] != 0 && values[k] != 1) {
                    throw new IllegalArgumentException("label [" + k / columns + "][" + k % columns + "] is " + values[k]
                            + ": labels must be 0 or 1");
                }
            }
            return new LabelMatrix(images, columns, values);
        }
    }

    /** Group ids mapped to 0..count-1 in order of first appearance, so the mapping (and the split) is reproducible. */
    private record GroupIndex(int[] of, int count) {

        static GroupIndex of(String[] ids) {
            Objects.requireNonNull(ids, "groupIds");
            Map<String, Integer> index = new HashMap<>();
            int[] of = new int[ids.length];
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] == null) throw new IllegalArgumentException("image " + i + " has no group id");
                of[i] = index.computeIfAbsent(ids[i], id -> index.size());
            }
            return new GroupIndex(of, index.size());
        }

        static GroupIndex of(int[] ids) {
            Objects.requireNonNull(ids, "groupIds");
            Map<Integer, Integer> index = new HashMap<>();
            int[] of = new int[ids.length];
            for (int i = 0; i < ids.length; i++) of[i] = index.computeIfAbsent(ids[i], id -> index.size());
            return new GroupIndex(of, index.size());
        }
    }

    /**
     * Image i goes to fold {@code unitFold[unitOf[i]]}, or {@code unitFold[i]} when unitOf is null (one image per
     * unit); fold 0 is train, fold 1 the held-out side.
     */
    private static Split fromFolds(int[] unitFold, int[] unitOf) {
        int n = unitOf == null ? unitFold.length : unitOf.length;
        int testCount = 0;
        for (int i = 0; i < n; i++) testCount += unitFold[unitOf == null ? i : unitOf[i]];
        int[] train = new int[n - testCount], test = new int[testCount];
        int a = 0, b = 0;
        for (int i = 0; i < n; i++) {
            if (unitFold[unitOf == null ? i : unitOf[i]] == 0) train[a++] = i;
            else test[b++] = i;
        }
        return new Split(train, test);
    }

    /** Train and held-out sizes: ceil(f*n) held out, the rest for training; both must be at least 1. */
    static long[] foldSizes(long n, double testFraction) {
        // The 1e-9 keeps a product like 0.07 * 100 = 7.000000000000001 from rounding up to 8.
        long test = (long) Math.ceil(testFraction * n - 1e-9);
        long train = n - test;
        if (test < 1 || train < 1) {
            throw new IllegalArgumentException(n + " images cannot be split with test fraction " + testFraction
                    + ": the " + (test < 1 ? "validation" : "train") + " side would be empty");
        }
        return new long[]{train, test};
    }

    private static void checkFraction(double testFraction) {
        if (!(testFraction > 0 && testFraction < 1)) {
            throw new IllegalArgumentException("test fraction must be in (0, 1), got " + testFraction);
        }
    }

    /** Number of images split. */
    public int size() { return train.length + test.length; }

    /** Held-out share of the images. */
    public double testShare() { return (double) test.length / size(); }

    /** Whether image i is on the held-out side, for every image. */
    public boolean[] testMask() {
        boolean[] mask = new boolean[size()];
        for (int i : test) mask[i] = true;
        return mask;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Split s && Arrays.equals(train, s.train) && Arrays.equals(test, s.test);
    }

    @Override
    public int hashCode() { return 31 * Arrays.hashCode(train) + Arrays.hashCode(test); }

    @Override
    public String toString() { return "Split[train=" + train.length + ", test=" + test.length + "]"; }
}
