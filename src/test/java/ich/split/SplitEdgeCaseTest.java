package ich.split;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static ich.split.SplitAssertions.assertGroupsOnOneSide;
import static ich.split.SplitAssertions.assertPartition;
import static org.junit.jupiter.api.Assertions.*;

class SplitEdgeCaseTest {

    static byte[][] zeros(int n, int labels) { return new byte[n][labels]; }

    @Test
    void aLabelWithASinglePositiveGoesToTheSideThatWantsMoreOfIt() {
        byte[][] labels = SyntheticLabels.images(1_000, 4);
        for (byte[] row : labels) row[1] = 0;
        labels[500][1] = 1; // the only epidural
        labels[500][0] = 1;
        for (long seed = 0; seed < 10; seed++) {
            // Train desires 0.9 of it, the held-out side 0.1: the paper's rule sends it to train.
            Split s = Split.stratified(labels, 0.1, seed);
            assertPartition(s, 1_000);
            assertEquals(100, s.test().length);
            assertTrue(Arrays.binarySearch(s.train(), 500) >= 0);
        }
        // At 0.5 both sides desire it equally (and images equally): a tie, settled at random, so both sides occur.
        boolean[] seen = new boolean[2];
        for (long seed = 0; seed < 20; seed++) {
            Split s = Split.stratified(labels, 0.5, seed);
            assertEquals(500, s.test().length);
            seen[Arrays.binarySearch(s.test(), 500) >= 0 ? 1 : 0] = true;
        }
        assertTrue(seen[0] && seen[1], "the single positive went to one side only over 20 seeds");
    }

    @Test
    void aGroupHoldingAllPositivesOfALabelGoesToTrain() {
        byte[][] labels = zeros(100, 2);
        String[] groups = new String[100];
        for (int i = 0; i < 100; i++) groups[i] = "p" + i / 10;
        for (int i = 30; i < 34; i++) labels[i][1] = 1; // four slices of patient p3
        Split s = Split.grouped(labels, groups, 0.2, 1);
        assertPartition(s, 100);
        assertGroupsOnOneSide(s, groups);
        assertEquals(20, s.test().length);
        for (int i = 30; i < 40; i++) assertTrue(Arrays.binarySearch(s.train(), i) >= 0);
    }

    @Test
    void allNegativeDataSplitsByCountAlone() {
        for (double f : new double[]{0.1, 0.5, 0.75}) {
            Split s = Split.stratified(zeros(1_001, 6), f, 3);
            assertPartition(s, 1_001);
            assertEquals((int) Math.ceil(f * 1_001), s.test().length);
        }
        String[] groups = new String[1_000];
        for (int i = 0; i < groups.length; i++) groups[i] = "p" + i / 4;
        Split g = Split.grouped(zeros(1_000, 6), groups, 0.1, 3);
        assertEquals(100, g.test().length); // 25 patients of 4: the request is met exactly
        assertGroupsOnOneSide(g, groups);
    }

    @Test
    void oneImageCannotBeSplit() {
        for (double f : new double[]{0.01, 0.5, 0.99}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Split.stratified(zeros(1, 6), f, 1));
            assertTrue(e.getMessage().contains("side would be empty"), e.getMessage());
        }
    }

    @Test
    void twoAndThreeImagesGetOneSideEachAtLeast() {
        byte[][] two = {{1, 0}, {0, 0}};
        for (double f : new double[]{0.1, 0.5}) {
            for (long seed = 0; seed < 10; seed++) {
                Split s = Split.stratified(two, f, seed);
                assertPartition(s, 2);
                assertEquals(1, s.test().length);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Split.stratified(two, 0.9, 1)); // ceil(1.8) = 2 held out

        byte[][] three = {{1, 1}, {1, 0}, {0, 0}};
        for (long seed = 0; seed < 10; seed++) {
            assertEquals(1, Split.stratified(three, 0.1, seed).test().length); // ceil(0.3): as scikit-learn
            assertEquals(2, Split.stratified(three, 0.5, seed).test().length); // ceil(1.5)
        }
        assertThrows(IllegalArgumentException.class, () -> Split.stratified(three, 0.9, 1));
    }

    @Test
    void floatingPointNoiseDoesNotAddAnImage() {
        // 0.07 * 100 is 7.000000000000001 in binary floating point; the request is 7 images, not 8.
        assertEquals(7, Split.stratified(zeros(100, 1), 0.07, 1).test().length);
        assertEquals(29, Split.stratified(zeros(100, 1), 0.29, 1).test().length); // 28.999999999999996
    }

    @Test
    void threeImagesWithThreeLabelsStillHoldOneOut() {
        // Each image is the first of its label and train desires each label more, so the paper's rule alone sends
        // all three to train; the empty held-out side then takes one image back.
        byte[][] labels = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
        for (long seed = 0; seed < 10; seed++) {
            Split s = Split.stratified(labels, 1.0 / 3, seed);
            assertPartition(s, 3);
            assertEquals(1, s.test().length);
        }
    }

    @Test
    void tinyGroupedInputsKeepBothSides() {
        byte[][] labels = zeros(3, 1);
        String[] groups = {"a", "a", "b"};
        for (long seed = 0; seed < 10; seed++) {
            Split s = Split.grouped(labels, groups, 0.1, seed);
            assertPartition(s, 3);
            assertGroupsOnOneSide(s, groups);
            assertTrue(s.train().length > 0 && s.test().length > 0, s.toString());
        }
        Split two = Split.grouped(zeros(2, 1), new String[]{"a", "b"}, 0.5, 1);
        assertEquals(1, two.test().length);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Split.grouped(zeros(5, 1), new String[]{"a", "a", "a", "a", "a"}, 0.5, 1));
        assertTrue(e.getMessage().contains("one group"), e.getMessage());
    }

    @Test
    void halfAndHalf() {
        byte[][] labels = SyntheticLabels.images(10_000, 8);
        for (long seed = 0; seed < 5; seed++) {
            Split s = Split.stratified(labels, 0.5, seed);
            assertEquals(5_000, s.test().length);
            List<SplitQuality.LabelBalance> balance = SplitQuality.balance(labels, s);
            // An even count of positives splits exactly; an odd one leaves one over on one side.
            long exact = balance.stream().filter(b -> Math.abs(b.test() - b.train()) <= 1).count();
            assertTrue(exact >= balance.size() - 1, SplitQuality.table("0.5", balance));
        }
    }

    @Test
    void badFractionsAreRefused() {
        byte[][] labels = zeros(10, 2);
        for (double f : new double[]{0, 1, -0.1, 1.5, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Split.stratified(labels, f, 1));
            assertTrue(e.getMessage().contains("test fraction must be in (0, 1)"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Split.grouped(labels, new int[10], f, 1));
        }
    }

    @Test
    void badLabelMatricesAreRefused() {
        assertThrows(NullPointerException.class, () -> Split.stratified(null, 0.5, 1));
        assertMessage("no images", () -> Split.stratified(new byte[0][], 0.5, 1));
        assertMessage("no columns", () -> Split.stratified(new byte[3][0], 0.5, 1));
        assertMessage("row 1 has 1 columns, row 0 has 2", () -> Split.stratified(new byte[][]{{0, 1}, {1}, {0, 0}}, 0.5, 1));
        assertMessage("label row 2 is null", () -> Split.stratified(new byte[][]{{0, 1}, {1, 1}, null}, 0.5, 1));
        assertMessage("label [1][0] is 2", () -> Split.stratified(new byte[][]{{0, 1}, {2, 1}}, 0.5, 1));
        assertMessage("label [0][1] is -1", () -> Split.stratified(new byte[][]{{0, -1}, {0, 1}}, 0.5, 1));
    }

    @Test
    void aRowMajorMatrixGivesTheSameSplitAsRows() {
        SyntheticLabels.Cohort cohort = SyntheticLabels.patients(5_000, 6);
        byte[][] rows = cohort.labels();
        byte[] flat = new byte[rows.length * 6];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * 6, 6);
        assertEquals(Split.stratified(rows, 0.2, 4), Split.stratified(flat, 6, 0.2, 4));
        assertEquals(Split.grouped(rows, cohort.groups(), 0.2, 4), Split.grouped(flat, 6, cohort.groups(), 0.2, 4));
    }

    @Test
    void badRowMajorMatricesAreRefused() {
        assertMessage("not a whole number of rows of 6", () -> Split.stratified(new byte[13], 6, 0.5, 1));
        assertMessage("labels per image must be at least 1", () -> Split.stratified(new byte[12], 0, 0.5, 1));
        assertMessage("no images", () -> Split.stratified(new byte[0], 6, 0.5, 1));
        assertMessage("label [1][2] is 5", () -> Split.stratified(new byte[]{0, 0, 0, 0, 0, 5}, 3, 0.5, 1));
        assertMessage("3 group ids for 2 images", () -> Split.grouped(new byte[4], 2, new String[]{"a", "b", "c"}, 0.5, 1));
    }

    @Test
    void badGroupsAreRefused() {
        byte[][] labels = zeros(4, 2);
        assertMessage("3 group ids for 4 images", () -> Split.grouped(labels, new String[]{"a", "b", "c"}, 0.5, 1));
        assertMessage("5 group ids for 4 images", () -> Split.grouped(labels, new int[5], 0.5, 1));
        assertMessage("image 2 has no group id", () -> Split.grouped(labels, new String[]{"a", "b", null, "c"}, 0.5, 1));
        assertThrows(NullPointerException.class, () -> Split.grouped(labels, (String[]) null, 0.5, 1));
    }

    @Test
    void splitValueSemantics() {
        Split a = new Split(new int[]{0, 2}, new int[]{1}), b = new Split(new int[]{0, 2}, new int[]{1});
        assertEquals(a, b);
        assertEquals(a.hashCode(), b.hashCode());
        assertNotEquals(a, new Split(new int[]{0, 1}, new int[]{2}));
        assertEquals("Split[train=2, test=1]", a.toString());
        assertEquals(3, a.size());
        assertEquals(1.0 / 3, a.testShare());
        assertArrayEquals(new boolean[]{false, true, false}, a.testMask());
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), "message '" + e.getMessage() + "' lacks '" + part + "'");
    }
}
