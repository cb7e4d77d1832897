package ich.split;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** The algorithm's steps on inputs small enough to follow by hand. */
class IterativeStratificationTest {

    /** Per fold, how many units have label l (or, with l = -1, how many units in all). */
    static int[] perFold(int[] fold, int[] positives, int labels, int l, int folds) {
        int[] c = new int[folds];
        for (int u = 0; u < fold.length; u++) c[fold[u]] += l < 0 ? 1 : positives[u * labels + l];
        return c;
    }

    @Test
    void workedExample() {
        // Ten images, two labels, 7 to train and 3 held out (r = 0.7 / 0.3). A on images 0-3, B on 4-5.
        // Desires: A 2.8 / 1.2, B 1.4 / 0.6. B is rarer, so it goes first: its first image to train (1.4 > 0.6),
        // the second to the held-out side (0.6 > 0.4). Then A: train (2.8 > 1.2), train (1.8 > 1.2), held out
        // (1.2 > 0.8), train (0.8 > 0.2). Images left: 3 / 1 wanted, four negatives: train, train, then a tie
        // (1 / 1) at random, and the last to the other side. Whatever the shuffle, the counts are these:
        int[] positives = new int[20];
        for (int u = 0; u < 4; u++) positives[u * 2] = 1;
        positives[4 * 2 + 1] = positives[5 * 2 + 1] = 1;
        for (long seed = 0; seed < 20; seed++) {
            int[] fold = IterativeStratification.assign(10, 2, positives, null, new long[]{7, 3}, new SplittableRandom(seed));
            assertArrayEquals(new int[]{3, 1}, perFold(fold, positives, 2, 0, 2), "A");
            assertArrayEquals(new int[]{1, 1}, perFold(fold, positives, 2, 1, 2), "B");
            assertArrayEquals(new int[]{7, 3}, perFold(fold, positives, 2, -1, 2), "images");
        }
    }

    @Test
    void moreThanTwoFolds() {
        // Five folds of 200 from 1,000 images: the labels dealt in their own turn differ by at most one between folds.
        byte[][] labels = SyntheticLabels.images(1_000, 12);
        int[] positives = new int[1_000 * 6];
        for (int i = 0; i < 1_000; i++) for (int l = 0; l < 6; l++) positives[i * 6 + l] = labels[i][l];
        int[] fold = IterativeStratification.assign(1_000, 6, positives, null, new long[]{200, 200, 200, 200, 200}, new SplittableRandom(1));
        assertArrayEquals(new int[]{200, 200, 200, 200, 200}, perFold(fold, positives, 6, -1, 5));
        int even = 0;
        for (int l = 0; l < 6; l++) {
            int[] c = perFold(fold, positives, 6, l, 5);
            if (Arrays.stream(c).max().getAsInt() - Arrays.stream(c).min().getAsInt() <= 1) even++;
        }
        assertTrue(even >= 5, "all labels but the one sharing its turn with any"); // see StratifiedSplitTest
    }

    @Test
    void weightedUnitsCountImagesNotUnits() {
        // Ten groups of 1..10 images, no labels: 55 images, 11 held out. The held-out side must get ~11 images,
        // whatever number of groups that takes.
        int[] sizes = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        for (long seed = 0; seed < 20; seed++) {
            int[] fold = IterativeStratification.assign(10, 1, new int[10], sizes, new long[]{44, 11}, new SplittableRandom(seed));
            int held = 0;
            for (int u = 0; u < 10; u++) if (fold[u] == 1) held += sizes[u];
            assertTrue(Math.abs(held - 11) <= 10, "held out " + held);
        }
    }

    @Test
    void foldSizesMustAddUpToTheImages() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> IterativeStratification.assign(10, 1, new int[10], null, new long[]{7, 2}, new SplittableRandom(1)));
        assertTrue(e.getMessage().contains("do not add up to 10"), e.getMessage());
    }
}
