package ich.split;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/** How well a split keeps the label proportions, and the unstratified baselines to compare with. */
final class SplitQuality {
    private SplitQuality() {}

    /**
     * One label's positives: overall and on the held-out side, for n images of which testSize are held out.
     * {@code testExcess} is how many positives the held-out side has beyond its share of the label
     * ({@code total * testSize / n}); the train side's excess is the negative of it.
     */
    record LabelBalance(String label, int total, int test, int n, int testSize) {
        int train() { return total - test; }
        double overall() { return (double) total / n; }
        double testProportion() { return (double) test / testSize; }
        double trainProportion() { return (double) train() / (n - testSize); }
        double testExcess() { return test - (double) total * testSize / n; }
        /** The larger of the two sides' distance from the overall proportion, in proportion units. */
        double maxDeviation() {
            return Math.max(Math.abs(testProportion() - overall()), Math.abs(trainProportion() - overall()));
        }
        /** That distance relative to the overall proportion. */
        double maxRelativeDeviation() { return total == 0 ? 0 : maxDeviation() / overall(); }
        /** The standard deviation of {@code test} under a random split of images (hypergeometric). */
        double randomSplitSd() {
            double f = (double) testSize / n;
            return Math.sqrt(total * f * (1 - f) * (n - total) / Math.max(1, n - 1));
        }
    }

    static List<LabelBalance> balance(byte[][] labels, Split split) {
        List<LabelBalance> out = new ArrayList<>();
        boolean[] inTest = split.testMask();
        int columns = labels[0].length;
        for (int l = 0; l < columns; l++) {
            int total = 0, test = 0;
            for (int i = 0; i < labels.length; i++) {
                total += labels[i][l];
                if (inTest[i]) test += labels[i][l];
            }
            String name = columns == SyntheticLabels.LABELS.length ? SyntheticLabels.LABELS[l] : "label" + l;
            out.add(new LabelBalance(name, total, test, labels.length, split.test().length));
        }
        return out;
    }

    static String table(String title, List<LabelBalance> rows) {
        StringBuilder s = new StringBuilder(title).append('\n');
        s.append(String.format("  %-17s %7s %7s %9s %9s %9s %9s %8s%n", "label", "pos", "test", "overall%", "valid%", "train%", "excess", "maxdev%"));
        for (LabelBalance b : rows) {
            s.append(String.format("  %-17s %7d %7d %9.4f %9.4f %9.4f %+9.2f %8.2f%n", b.label(), b.total(), b.test(),
                    100 * b.overall(), 100 * b.testProportion(), 100 * b.trainProportion(), b.testExcess(), 100 * b.maxRelativeDeviation()));
        }
        return s.toString();
    }

    /** Per label, the largest number of positives in one group (1 for image-level data with a positive). */
    static int[] largestGroupPositives(byte[][] labels, String[] groups) {
        Map<String, int[]> counts = new HashMap<>();
        int columns = labels[0].length;
        for (int i = 0; i < labels.length; i++) {
            int[] c = counts.computeIfAbsent(groups == null ? String.valueOf(i) : groups[i], g -> new int[columns]);
            for (int l = 0; l < columns; l++) c[l] += labels[i][l];
        }
        int[] max = new int[columns];
        for (int[] c : counts.values()) for (int l = 0; l < columns; l++) max[l] = Math.max(max[l], c[l]);
        return max;
    }

    static int largestGroup(String[] groups) {
        Map<String, Integer> sizes = new HashMap<>();
        for (String g : groups) sizes.merge(g, 1, Integer::sum);
        return sizes.values().stream().mapToInt(Integer::intValue).max().orElse(0);
    }

    /** Plain shuffle split: ceil(f*n) random images held out, as scikit-learn's ShuffleSplit. */
    static Split random(int n, double testFraction, long seed) {
        int[] order = shuffled(n, new SplittableRandom(seed));
        int testSize = (int) Math.ceil(testFraction * n - 1e-9);
        int[] test = Arrays.copyOf(order, testSize), train = Arrays.copyOfRange(order, testSize, n);
        Arrays.sort(test);
        Arrays.sort(train);
        return new Split(train, test);
    }

    /** Unstratified grouped split: whole groups in random order are held out until they reach ceil(f*n) images. */
    static Split randomGrouped(String[] groups, double testFraction, long seed) {
        Map<String, List<Integer>> members = new HashMap<>();
        List<String> names = new ArrayList<>();
        for (int i = 0; i < groups.length; i++) {
            members.computeIfAbsent(groups[i], g -> {
                names.add(g);
                return new ArrayList<>();
            }).add(i);
        }
        int[] order = shuffled(names.size(), new SplittableRandom(seed));
        int want = (int) Math.ceil(testFraction * groups.length - 1e-9);
        boolean[] test = new boolean[groups.length];
        int taken = 0;
        for (int k = 0; k < order.length && taken < want; k++) {
            for (int i : members.get(names.get(order[k]))) {
                test[i] = true;
                taken++;
            }
        }
        return fromMask(test);
    }

    static Split fromMask(boolean[] test) {
        int t = 0;
        for (boolean b : test) if (b) t++;
        int[] testIdx = new int[t], trainIdx = new int[test.length - t];
        int a = 0, b = 0;
        for (int i = 0; i < test.length; i++) {
            if (test[i]) testIdx[a++] = i;
            else trainIdx[b++] = i;
        }
        return new Split(trainIdx, testIdx);
    }

    private static int[] shuffled(int n, SplittableRandom random) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }
}
