package ich.split;

import ich.split.SplitQuality.LabelBalance;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static ich.split.SplitAssertions.assertPartition;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The image-level split (the seed notebook's) on 50,000 images with RSNA prevalences.
 *
 * <p>Tolerances come from how the algorithm places examples, not from tuning:
 * <ul>
 *   <li>While a label is dealt (its own turn, as the label with the fewest remaining positives), the two sides'
 *       desires for it add up to its positives not yet placed, at least 1. The next image goes to the side
 *       desiring more, which therefore desires at least 1/2, and after taking it at least -1/2. So each side ends
 *       within half an image of its share: with 5,000 held out, 0.5 / 5,000 = 0.01 percentage points.</li>
 *   <li>{@code any} is the OR of the subtypes, so once all other subtypes are placed, the images left for {@code any}
 *       are exactly those left for the last subtype: the two labels tie and share one turn, and the label not
 *       drawn (paper: ties at random) is placed by the other's desire. It is only as good as a random split of the
 *       part left to chance, so it is held to four standard deviations of a random split, and all other labels
 *       to half an image.</li>
 * </ul>
 */
class StratifiedSplitTest {
    static final int N = 50_000;
    static final byte[][] LABELS = SyntheticLabels.images(N, 20_191_015L);
    static final int SEEDS = 20;
    static final double HALF_AN_IMAGE = 0.5 + 1e-9;

    @Test
    void everyImageIsOnExactlyOneSide() {
        for (double f : new double[]{0.05, 0.1, 0.2, 0.5, 0.9}) assertPartition(Split.stratified(LABELS, f, 7), N);
    }

    @Test
    void heldOutSizeIsExactlyTheRequest() {
        // 85 % of the images have no label; they are dealt last, by overall desire, which tops each side up exactly.
        for (double f : new double[]{0.05, 0.1, 0.15, 0.2, 1.0 / 3, 0.5, 0.9}) {
            Split s = Split.stratified(LABELS, f, 11);
            assertEquals((int) Math.ceil(f * N - 1e-9), s.test().length, "held out for fraction " + f);
        }
    }

    @Test
    void allLabelsButTheOneSharingItsTurnWithAnyAreWithinHalfAnImage() {
        for (double f : new double[]{0.1, 0.2, 0.5}) {
            for (long seed = 0; seed < SEEDS; seed++) {
                List<LabelBalance> balance = SplitQuality.balance(LABELS, Split.stratified(LABELS, f, seed));
                long exact = balance.stream().filter(b -> Math.abs(b.testExcess()) <= HALF_AN_IMAGE).count();
                assertTrue(exact >= balance.size() - 1, () -> SplitQuality.table("fraction " + f, balance));
                for (LabelBalance b : balance) {
                    assertTrue(Math.abs(b.testExcess()) <= 4 * b.randomSplitSd(),
                            () -> b.label() + " is further off than chance: " + SplitQuality.table("", balance));
                }
                // The rarest label is dealt first and never shares its turn.
                assertTrue(Math.abs(balance.get(1).testExcess()) <= HALF_AN_IMAGE, "epidural");
            }
        }
    }

    @Test
    void stratificationIsFarCloserThanARandomSplit() {
        double f = 0.1;
        int labels = SyntheticLabels.LABELS.length;
        double[] stratified = new double[labels], random = new double[labels], stratifiedWorst = new double[labels];
        for (long seed = 0; seed < SEEDS; seed++) {
            List<LabelBalance> s = SplitQuality.balance(LABELS, Split.stratified(LABELS, f, seed));
            List<LabelBalance> r = SplitQuality.balance(LABELS, SplitQuality.random(N, f, seed));
            if (seed == 0) {
                System.out.println(SplitQuality.table("image-level stratified, 50,000 images, 10 % held out, seed 0", s));
                System.out.println(SplitQuality.table("image-level random, same data, seed 0", r));
            }
            for (int l = 0; l < labels; l++) {
                stratified[l] += Math.abs(s.get(l).testExcess()) / SEEDS;
                random[l] += Math.abs(r.get(l).testExcess()) / SEEDS;
                stratifiedWorst[l] = Math.max(stratifiedWorst[l], Math.abs(s.get(l).testExcess()));
            }
        }
        StringBuilder report = new StringBuilder("mean |excess| of held-out positives over " + SEEDS + " seeds (stratified / random):\n");
        for (int l = 0; l < labels; l++) {
            report.append(String.format("  %-17s %6.2f / %6.2f  (stratified worst %.2f)%n", SyntheticLabels.LABELS[l], stratified[l], random[l], stratifiedWorst[l]));
        }
        System.out.println(report);
        // Epidural, ~200 positives and ~20 held out: a random split misses by ~4 images (sd 4.3, mean |dev| ~3.4);
        // stratification puts it within half an image every time.
        assertTrue(stratifiedWorst[1] <= HALF_AN_IMAGE, report::toString);
        assertTrue(random[1] >= 2, report::toString);
        // Every label dealt in its own turn is within half an image every time. The one sharing its turn with any
        // (here subdural, or any itself) is controlled in about half the runs and left to chance in the others, so
        // on average it must at least beat the expected error of a random split, sd * sqrt(2 / pi).
        List<LabelBalance> shape = SplitQuality.balance(LABELS, Split.stratified(LABELS, f, 0));
        int leftToChance = 0;
        for (int l = 0; l < labels; l++) {
            assertTrue(stratified[l] <= shape.get(l).randomSplitSd() * Math.sqrt(2 / Math.PI), report::toString);
            if (stratifiedWorst[l] > HALF_AN_IMAGE) leftToChance++;
        }
        assertTrue(leftToChance <= 2, "only any and the last subtype share a turn: " + report);
    }

    @Test
    void sameSeedSameSplitOtherSeedOtherSplit() {
        Split a = Split.stratified(LABELS, 0.1, 42), b = Split.stratified(LABELS, 0.1, 42), c = Split.stratified(LABELS, 0.1, 43);
        assertEquals(a, b);
        assertNotEquals(a, c);
        assertEquals(a.test().length, c.test().length);
        // Different seeds choose different images, not a few swaps: the overlap is about what chance gives (10 %).
        long common = Arrays.stream(a.test()).filter(i -> Arrays.binarySearch(c.test(), i) >= 0).count();
        assertTrue(common < a.test().length / 5, "held-out images in common: " + common);
    }

    /**
     * A saved split must be reproducible from its seed in later versions: this pins the split of a fixed input.
     * If it fails after a deliberate change to the algorithm, update the value and say so in the change log,
     * because splits made before cannot be regenerated any more.
     */
    @Test
    void splitOfAFixedInputIsPinned() {
        SplittableRandom random = new SplittableRandom(1);
        byte[][] labels = new byte[2_000][3];
        for (byte[] row : labels) {
            row[1] = (byte) (random.nextDouble() < 0.01 ? 1 : 0);
            row[2] = (byte) (random.nextDouble() < 0.1 ? 1 : 0);
            row[0] = (byte) (row[1] | row[2]);
        }
        Split s = Split.stratified(labels, 0.1, 2019);
        assertEquals(200, s.test().length);
        assertEquals(PINNED_HASH, Arrays.hashCode(s.test()), "held-out indices starting " + Arrays.toString(Arrays.copyOf(s.test(), 8)));
    }

    static final int PINNED_HASH = -437_004_958;

    @Test
    void rsnaSizedInputSplitsWithTheSameGuarantees() {
        // A sanity check that the whole RSNA training set splits in one pass; the time is measured in SplitBenchmark.
        byte[][] labels = SyntheticLabels.images(SyntheticLabels.RSNA_TRAIN_IMAGES, 3);
        Split s = Split.stratified(labels, 0.1, 1);
        assertPartition(s, labels.length);
        assertEquals(67_426, s.test().length);
        List<LabelBalance> balance = SplitQuality.balance(labels, s);
        System.out.println(SplitQuality.table("image-level stratified, 674,258 images, 10 % held out", balance));
        assertTrue(balance.stream().filter(b -> Math.abs(b.testExcess()) <= HALF_AN_IMAGE).count() >= balance.size() - 1);
    }
}
