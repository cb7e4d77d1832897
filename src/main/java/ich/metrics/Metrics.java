package ich.metrics;

import ich.labels.Subtype;

import java.util.Arrays;

/**
 * The competition's metrics over images x 6 probability and label matrices (columns in {@link Subtype} order,
 * labels 0 or 1), in double precision.
 *
 * <ul>
 *   <li><b>Weighted log loss</b>: per image, the sum over the six labels of {@code w * logloss}, divided by the
 *       sum of the weights (2 for {@code any}, 1 for each subtype: 7), averaged over images. The competition
 *       page called the metric a weighted multi-label log loss without giving the weights; participants
 *       established any = 2 and the rest 1 (the seed notebook says the same). Since every image has all six
 *       labels this equals the weighted mean of the per-label mean log losses.</li>
 *   <li>Probabilities are clipped to [1e-15, 1 - 1e-15] before the logarithm: the clip Kaggle's log-loss
 *       metrics describe ({@code max(min(p, 1 - 1e-15), 1e-15)}) and scikit-learn's {@code log_loss} default
 *       {@code eps} in 2019, when the competition ran (later scikit-learn clips at the dtype's epsilon). A
 *       confident wrong answer so costs about 34.5, not infinity.</li>
 *   <li><b>ROC AUC</b> per label: the Mann-Whitney statistic, the probability that a random positive scores
 *       above a random negative, ties counting one half; exact, as scikit-learn's {@code roc_auc_score}. NaN
 *       when a label has only one class among the images (AUC is undefined then).</li>
 *   <li><b>Accuracy</b> at 0.5: predicted positive when {@code p > 0.5}, as Keras' {@code binary_accuracy}
 *       (the seed's {@code acc}) decides.</li>
 *   <li><b>Prior baseline</b>: every image predicted with the label's prevalence (in training data, ideally);
 *       the weighted log loss a model must beat to have learned anything.</li>
 * </ul>
 */
public final class Metrics {
    public static final double EPSILON = 1e-15;
    /** Weight per label in {@link Subtype} order. */
    private static final double[] WEIGHTS = {2, 1, 1, 1, 1, 1};
    private static final double WEIGHT_SUM = 7;
    static final int L = Subtype.COUNT;

    private Metrics() {}

    /** The weight of a label in the weighted log loss: 2 for any, 1 for the subtypes. */
    public static double weight(Subtype subtype) {
        return WEIGHTS[subtype.ordinal()];
    }

    /** Rows are images; each row has 6 columns in {@link Subtype} order. */
    public static Evaluation evaluate(float[][] probabilities, float[][] labels) {
        return evaluate(flatten(probabilities, "probabilities"), flatten(labels, "labels"), probabilities.length);
    }

    /** Row-major images x 6 matrices. */
    public static Evaluation evaluate(float[] probabilities, float[] labels, int images) {
        double[] p = new double[probabilities.length];
        for (int i = 0; i < p.length; i++) p[i] = probabilities[i];
        return evaluate(p, labels, images);
    }

    /**
     * The constant predictor: every image gets {@code prevalence[l]} for label l. Its AUC is 0.5 (all scores
     * tie) wherever both classes occur.
     */
    public static Evaluation prior(double[] prevalence, float[][] labels) {
        return prior(prevalence, flatten(labels, "labels"), labels.length);
    }

    public static Evaluation prior(double[] prevalence, float[] labels, int images) {
        if (prevalence.length != L) throw new IllegalArgumentException(prevalence.length + " prevalences, expected " + L);
        double[] p = new double[images * L];
        for (int i = 0; i < images; i++) System.arraycopy(prevalence, 0, p, i * L, L);
        return evaluate(p, labels, images);
    }

    /** The fraction of images labelled 1, per label. */
    public static double[] prevalence(float[][] labels) {
        return prevalence(flatten(labels, "labels"), labels.length);
    }

    public static double[] prevalence(float[] labels, int images) {
        checkShape(labels.length, images, "labels");
        double[] out = new double[L];
        if (images == 0) throw new IllegalArgumentException("no images to take a prevalence from");
        long[] positives = new long[L];
        for (int i = 0; i < labels.length; i++) positives[i % L] += label(labels, i);
        for (int l = 0; l < L; l++) out[l] = (double) positives[l] / images;
        return out;
    }

    /** The log loss of one prediction, the probability clipped to [{@value #EPSILON}, 1 - {@value #EPSILON}]. */
    public static double logLoss(double p, int label) {
        double q = Math.min(Math.max(p, EPSILON), 1 - EPSILON);
        return label == 1 ? -Math.log(q) : -Math.log1p(-q);
    }

    /**
     * ROC AUC of {@code scores} against 0/1 {@code labels} (same length), ties counting one half; NaN when all
     * labels are equal.
     */
    public static double auc(double[] scores, int[] labels) {
        if (scores.length != labels.length) throw new IllegalArgumentException(scores.length + " scores for " + labels.length + " labels");
        int positives = 0;
        for (int y : labels) {
            if (y != 0 && y != 1) throw new IllegalArgumentException("label " + y + " is not 0 or 1");
            positives += y;
        }
        double[] pos = new double[positives], neg = new double[labels.length - positives];
        for (int i = 0, a = 0, b = 0; i < labels.length; i++) {
            if (Double.isNaN(scores[i])) throw new IllegalArgumentException("score " + i + " is NaN");
            if (labels[i] == 1) pos[a++] = scores[i];
            else neg[b++] = scores[i];
        }
        return auc(pos, neg);
    }

    /**
     * Mann-Whitney U over sorted scores: one pass of two pointers counts, for each positive, the negatives below
     * it and those tied with it. Twice U is an exact integer, so the only rounding is the final division.
     * O(n log n) for the sorts.
     */
    private static double auc(double[] pos, double[] neg) {
        if (pos.length == 0 || neg.length == 0) return Double.NaN;
        Arrays.sort(pos);
        Arrays.sort(neg);
        long twiceU = 0;
        int below = 0, upTo = 0;  // neg[0, below) < s, neg[below, upTo) == s
        for (double s : pos) {
            while (below < neg.length && neg[below] < s) below++;
            if (upTo < below) upTo = below;
            while (upTo < neg.length && neg[upTo] == s) upTo++;
            twiceU += 2L * below + (upTo - below);
        }
        return twiceU / (2.0 * pos.length * neg.length);
    }

    private static Evaluation evaluate(double[] p, float[] labels, int images) {
        checkShape(p.length, images, "probabilities");
        checkShape(labels.length, images, "labels");
        if (images == 0) throw new IllegalArgumentException("no images to evaluate");
        double[] logLoss = new double[L], accuracy = new double[L], auc = new double[L], prevalence = new double[L];
        for (int l = 0; l < L; l++) {
            double lossSum = 0;
            int correct = 0, positives = 0;
            double[] scores = new double[images];
            int[] y = new int[images];
            for (int i = 0; i < images; i++) {
                int cell = i * L + l;
                double q = p[cell];
                if (!(q >= 0 && q <= 1)) {
                    throw new IllegalArgumentException("probability " + q + " of image " + i + ", " + Subtype.of(l).csvName() + " is not within [0, 1]");
                }
                y[i] = label(labels, cell);
                scores[i] = q;
                positives += y[i];
                lossSum += logLoss(q, y[i]);
                if ((q > 0.5 ? 1 : 0) == y[i]) correct++;
            }
            logLoss[l] = lossSum / images;
            accuracy[l] = (double) correct / images;
            prevalence[l] = (double) positives / images;
            auc[l] = auc(scores, y);
        }
        double weighted = 0;
        for (int l = 0; l < L; l++) weighted += WEIGHTS[l] * logLoss[l];
        return new Evaluation(images, weighted / WEIGHT_SUM, logLoss, auc, accuracy, prevalence);
    }

    private static int label(float[] labels, int cell) {
        float y = labels[cell];
        if (y == 0f) return 0;
        if (y == 1f) return 1;
        throw new IllegalArgumentException("label " + y + " of image " + cell / L + ", " + Subtype.of(cell % L).csvName() + " is not 0 or 1");
    }

    private static void checkShape(int length, int images, String what) {
        if (images < 0 || length != (long) images * L) {
            throw new IllegalArgumentException(length + " " + what + " for " + images + " images: expected " + L + " per image");
        }
    }

    private static float[] flatten(float[][] rows, String what) {
        float[] out = new float[rows.length * L];
        for (int i = 0; i < rows.length; i++) {
            if (rows[i].length != L) throw new IllegalArgumentException(what + " row " + i + " has " + rows[i].length + " columns, expected " + L);
            System.arraycopy(rows[i], 0, out, i * L, L);
        }
        return out;
    }
}
