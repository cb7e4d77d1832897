package ich.split;

import java.util.SplittableRandom;

/**
 * Random multi-label data shaped like the RSNA training labels, for the split tests and the benchmark.
 *
 * <p>Per image prevalences as in the RSNA stage 1 training set: any 14.4 %, epidural 0.41 %, intraparenchymal
 * 4.83 %, intraventricular 3.52 %, subarachnoid 4.76 %, subdural 6.30 %, with {@code any} the OR of the subtypes.
 * Subtypes co-occur (their prevalences add up to 19.8 %, more than {@code any}), so they are drawn given
 * {@code any}: each subtype with probability {@code q_l}, redrawn until at least one is present. The {@code q_l}
 * solve {@code q_l / (1 - prod(1 - q)) = p_l / p_any}, which makes every marginal come out at its prevalence.
 */
public final class SyntheticLabels {
    public static final String[] LABELS = {"any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"};
    public static final double[] PREVALENCE = {0.144, 0.0041, 0.0483, 0.0352, 0.0476, 0.0630};
    /** The size of the RSNA stage 1 training set. */
    public static final int RSNA_TRAIN_IMAGES = 674_258;

    private static final double[] SUBTYPE_GIVEN_ANY = subtypeProbabilities();

    private SyntheticLabels() {}

    /** Images drawn independently. */
    public static byte[][] images(int n, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        byte[][] labels = new byte[n][];
        for (int i = 0; i < n; i++) {
            labels[i] = random.nextDouble() < PREVALENCE[0] ? bleed(random) : new byte[LABELS.length];
        }
        return labels;
    }

    /** Images with their patient: the labels and, per image, the patient's id. */
    public record Cohort(byte[][] labels, String[] groups) {}

    /** The mean share of a patient's slices that show one subtype, when the patient has it. */
    private static final double MEAN_SUBTYPE_BAND = 0.3;

    /**
     * Patients of 20 to 60 slices (40 on average, about what RSNA has per patient). A patient bleeds with
     * probability {@code p_any / 0.3} and then has subtypes as an image does above. Each subtype shows on its own
     * contiguous band of 15 % to 45 % of the slices (30 % on average) around a common centre, so bands overlap but
     * differ, and {@code any} is the OR of the subtypes slice by slice. Subtype prevalences match RSNA in
     * expectation; {@code any} comes out somewhat higher (its band is the union). Positives come in clumps of
     * 3 to 27 slices, as in real scans: the hard case for a grouped split.
     */
    public static Cohort patients(int n, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        byte[][] labels = new byte[n][];
        String[] groups = new String[n];
        int patient = 0;
        for (int start = 0; start < n; patient++) {
            int size = Math.min(random.nextInt(20, 61), n - start);
            String id = "ID_p%07d".formatted(patient);
            for (int k = 0; k < size; k++) {
                labels[start + k] = new byte[LABELS.length];
                groups[start + k] = id;
            }
            if (random.nextDouble() < PREVALENCE[0] / MEAN_SUBTYPE_BAND) {
                byte[] subtypes = bleed(random);
                double centre = random.nextDouble(0.2, 0.8) * size;
                for (int l = 1; l < LABELS.length; l++) {
                    if (subtypes[l] == 0) continue;
                    int band = Math.max(1, (int) Math.round(size * random.nextDouble(0.15, 0.45)));
                    int from = (int) Math.round(centre + random.nextDouble(-0.1, 0.1) * size - band / 2.0);
                    from = Math.clamp(from, 0, size - band);
                    for (int k = from; k < from + band; k++) {
                        labels[start + k][l] = 1;
                        labels[start + k][0] = 1;
                    }
                }
            }
            start += size;
        }
        return new Cohort(labels, groups);
    }

    /** A positive label row: any = 1 and at least one subtype. */
    private static byte[] bleed(SplittableRandom random) {
        byte[] row = new byte[LABELS.length];
        row[0] = 1;
        boolean some = false;
        while (!some) {
            for (int l = 1; l < LABELS.length; l++) {
                row[l] = (byte) (random.nextDouble() < SUBTYPE_GIVEN_ANY[l] ? 1 : 0);
                some |= row[l] == 1;
            }
        }
        return row;
    }

    /** The fixed point of q = t * (1 - prod(1 - q)) with t_l = p_l / p_any; it converges in a few dozen steps. */
    private static double[] subtypeProbabilities() {
        double[] q = new double[LABELS.length];
        for (int l = 1; l < LABELS.length; l++) q[l] = PREVALENCE[l] / PREVALENCE[0];
        for (int iteration = 0; iteration < 200; iteration++) {
            double none = 1;
            for (int l = 1; l < LABELS.length; l++) none *= 1 - q[l];
            for (int l = 1; l < LABELS.length; l++) q[l] = PREVALENCE[l] / PREVALENCE[0] * (1 - none);
        }
        return q;
    }
}
