package ich.split;

import ich.split.SplitQuality.LabelBalance;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static ich.split.SplitAssertions.assertGroupsOnOneSide;
import static ich.split.SplitAssertions.assertPartition;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The grouped split (the project's default) on ~1,250 synthetic patients, 50,000 slices, whose positive slices
 * come in bands of 3 to 27 (see {@link SyntheticLabels#patients}).
 *
 * <p>Tolerances are looser than for images because a patient moves all its slices at once; they follow from the
 * same argument as in {@link StratifiedSplitTest}, with a unit of c positives instead of one: while a label is
 * dealt the side that takes a patient desires at least half of what is left, so it ends at most c/2 past its
 * share, c the largest count of that label in one patient (up to 27 here, against ~290 held-out subdural slices
 * or ~20 epidural ones). Slices without labels fill up the sides by overall desire, within one patient's size.
 */
class GroupedSplitTest {
    static final int N = 50_000;
    static final SyntheticLabels.Cohort COHORT = SyntheticLabels.patients(N, 20_191_015L);
    static final byte[][] LABELS = COHORT.labels();
    static final String[] GROUPS = COHORT.groups();
    static final int SEEDS = 20;

    @Test
    void noPatientIsOnBothSidesAndEveryImageOnOne() {
        for (double f : new double[]{0.1, 0.2, 0.5}) {
            for (long seed = 0; seed < 5; seed++) {
                Split s = Split.grouped(LABELS, GROUPS, f, seed);
                assertPartition(s, N);
                assertTrue(assertGroupsOnOneSide(s, GROUPS) > 0);
            }
        }
    }

    @Test
    void heldOutSlicesAreWithinOnePatientOfTheRequest() {
        int largest = SplitQuality.largestGroup(GROUPS);
        for (double f : new double[]{0.05, 0.1, 0.2, 1.0 / 3, 0.5, 0.9}) {
            for (long seed = 0; seed < 5; seed++) {
                Split s = Split.grouped(LABELS, GROUPS, f, seed);
                int want = (int) Math.ceil(f * N - 1e-9);
                assertTrue(Math.abs(s.test().length - want) <= largest,
                        "fraction " + f + ": " + s.test().length + " held out, asked " + want + ", largest patient " + largest);
            }
        }
    }

    @Test
    void allLabelsButTheOneSharingItsTurnWithAnyAreWithinHalfTheirLargestPatient() {
        int[] largest = SplitQuality.largestGroupPositives(LABELS, GROUPS);
        for (double f : new double[]{0.1, 0.2, 0.5}) {
            for (long seed = 0; seed < SEEDS; seed++) {
                List<LabelBalance> balance = SplitQuality.balance(LABELS, Split.grouped(LABELS, GROUPS, f, seed));
                int within = 0;
                for (int l = 0; l < balance.size(); l++) {
                    if (Math.abs(balance.get(l).testExcess()) <= largest[l] / 2.0 + 1e-9) within++;
                }
                assertTrue(within >= balance.size() - 1, () -> "largest per patient " + Arrays.toString(largest) + "\n"
                        + SplitQuality.table("fraction " + f, balance));
            }
        }
    }

    @Test
    void stratifiedPatientsAreFarCloserThanRandomPatients() {
        double f = 0.1;
        int labels = SyntheticLabels.LABELS.length;
        double[] stratified = new double[labels], random = new double[labels], stratifiedWorst = new double[labels];
        for (long seed = 0; seed < SEEDS; seed++) {
            List<LabelBalance> s = SplitQuality.balance(LABELS, Split.grouped(LABELS, GROUPS, f, seed));
            List<LabelBalance> r = SplitQuality.balance(LABELS, SplitQuality.randomGrouped(GROUPS, f, seed));
            if (seed == 0) {
                System.out.println(SplitQuality.table("grouped stratified, 50,000 slices of " + countGroups() + " patients, 10 % held out, seed 0", s));
                System.out.println(SplitQuality.table("grouped random (whole patients), same data, seed 0", r));
            }
            for (int l = 0; l < labels; l++) {
                stratified[l] += s.get(l).maxRelativeDeviation() / SEEDS;
                random[l] += r.get(l).maxRelativeDeviation() / SEEDS;
                stratifiedWorst[l] = Math.max(stratifiedWorst[l], s.get(l).maxRelativeDeviation());
            }
        }
        StringBuilder report = new StringBuilder("grouped: mean relative deviation of a side's proportion over " + SEEDS
                + " seeds (stratified / random patients):\n");
        for (int l = 0; l < labels; l++) {
            report.append(String.format("  %-17s %6.2f %% / %6.2f %%  (stratified worst %.2f %%)%n", SyntheticLabels.LABELS[l],
                    100 * stratified[l], 100 * random[l], 100 * stratifiedWorst[l]));
        }
        System.out.println(report);
        // Random whole patients are off by 5-50 % (epidural: one or two of its ~15 patients decide). Stratification
        // must at least halve that for every label but one, and not be worse for that one: the label sharing its
        // turn with any is controlled in about half the runs only, so it lands near half the random error.
        double[] ratio = new double[labels];
        for (int l = 0; l < labels; l++) ratio[l] = stratified[l] / random[l];
        Arrays.sort(ratio);
        assertTrue(ratio[labels - 1] <= 1, report::toString);
        assertTrue(ratio[labels - 2] <= 0.5, report::toString);
    }

    @Test
    void theImageLevelSplitPutsMostPatientsOnBothSides() {
        // Why grouped is the default: with 40 slices per patient and 10 % held out, nearly every patient has
        // slices on both sides, and neighbouring slices are nearly the same image.
        Split s = Split.stratified(LABELS, 0.1, 1);
        boolean[] test = s.testMask();
        Map<String, int[]> sides = new HashMap<>();
        for (int i = 0; i < N; i++) sides.computeIfAbsent(GROUPS[i], g -> new int[2])[test[i] ? 1 : 0]++;
        long leaking = sides.values().stream().filter(c -> c[0] > 0 && c[1] > 0).count();
        System.out.printf("image-level split: %d of %d patients on both sides%n", leaking, sides.size());
        assertTrue(leaking > sides.size() * 0.9, leaking + " of " + sides.size());
    }

    @Test
    void oneImagePerGroupGivesTheImageLevelSplit() {
        String[] own = new String[N];
        for (int i = 0; i < N; i++) own[i] = "image" + i;
        for (long seed = 0; seed < 3; seed++) {
            assertEquals(Split.stratified(LABELS, 0.1, seed), Split.grouped(LABELS, own, 0.1, seed));
        }
    }

    @Test
    void numericGroupIdsGiveTheSameSplitAsTheirNames() {
        int[] numeric = new int[N];
        for (int i = 0; i < N; i++) numeric[i] = Integer.parseInt(GROUPS[i].substring(4)) * 7 - 1000; // any ints
        assertEquals(Split.grouped(LABELS, GROUPS, 0.1, 5), Split.grouped(LABELS, numeric, 0.1, 5));
    }

    @Test
    void sameSeedSameSplitOtherSeedOtherSplit() {
        assertEquals(Split.grouped(LABELS, GROUPS, 0.2, 9), Split.grouped(LABELS, GROUPS, 0.2, 9));
        assertNotEquals(Split.grouped(LABELS, GROUPS, 0.2, 9), Split.grouped(LABELS, GROUPS, 0.2, 10));
    }

    @Test
    void rsnaSizedCohortSplitsWithTheSameGuarantees() {
        // About 17,000 patients. A sanity check; the time is measured in SplitBenchmark.
        SyntheticLabels.Cohort cohort = SyntheticLabels.patients(SyntheticLabels.RSNA_TRAIN_IMAGES, 3);
        Split s = Split.grouped(cohort.labels(), cohort.groups(), 0.1, 1);
        assertPartition(s, cohort.labels().length);
        assertGroupsOnOneSide(s, cohort.groups());
        assertTrue(Math.abs(s.test().length - 67_426) <= SplitQuality.largestGroup(cohort.groups()));
        List<LabelBalance> balance = SplitQuality.balance(cohort.labels(), s);
        System.out.println(SplitQuality.table("grouped stratified, 674,258 slices, 10 % held out", balance));
        int[] largest = SplitQuality.largestGroupPositives(cohort.labels(), cohort.groups());
        int within = 0;
        for (int l = 0; l < balance.size(); l++) if (Math.abs(balance.get(l).testExcess()) <= largest[l] / 2.0 + 1e-9) within++;
        assertTrue(within >= balance.size() - 1);
    }

    private static long countGroups() { return Arrays.stream(GROUPS).distinct().count(); }
}
