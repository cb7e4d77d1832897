package ich.metrics;

import ich.labels.Subtype;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class MetricsTest {
    private static final double TOL = 1e-12;

    @Test
    void weightedLogLossMatchesTheHandComputedValue() {
        float[][] p = {{0.8f, 0.1f, 0.2f, 0.1f, 0.1f, 0.6f}, {0.3f, 0.1f, 0.1f, 0.1f, 0.1f, 0.2f}};
        float[][] y = {{1, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, 0}};
        Evaluation e = Metrics.evaluate(p, y);
        // Per image, sum of w * logloss over 7; then the mean. Computed outside Java, in double.
        assertEquals(0.20387666617893418, e.weightedLogLoss(), 1e-7, "float32 inputs shift the 8th digit");
        // The same, written out per image from the float32 inputs as Java holds them.
        double a = (2 * -Math.log(0.8f) - Math.log(1.0 - 0.1f) - Math.log(1.0 - 0.2f) - 2 * Math.log(1.0 - 0.1f) - Math.log(0.6f)) / 7;
        double b = (2 * -Math.log(1.0 - 0.3f) - 4 * Math.log(1.0 - 0.1f) - Math.log(1.0 - 0.2f)) / 7;
        assertEquals((a + b) / 2, e.weightedLogLoss(), TOL);
        assertEquals((-Math.log(0.8f) - Math.log(1.0 - 0.3f)) / 2, e.logLoss(Subtype.ANY), TOL);
        assertEquals((-Math.log(0.6f) - Math.log(1.0 - 0.2f)) / 2, e.logLoss(Subtype.SUBDURAL), TOL);
        assertEquals(1.0, e.auc(Subtype.ANY));
        assertTrue(Double.isNaN(e.auc(Subtype.EPIDURAL)), "only negatives: undefined");
        assertEquals(1.0, e.accuracy(Subtype.ANY));
        assertEquals(1.0, e.accuracy(Subtype.SUBDURAL), "0.6 with label 1 and 0.2 with label 0 are both right");
        assertEquals(0.5, Metrics.evaluate(new float[][]{{0.6f, 0, 0, 0, 0, 0}, {0.6f, 0, 0, 0, 0, 0}}, y).accuracy(Subtype.ANY), "one of two right");
        assertEquals(0.5, e.prevalence(Subtype.ANY));
        assertEquals(2, e.images());
    }

    @Test
    void probabilitiesAreClippedAt1e15() {
        assertEquals(34.538776394910684, Metrics.logLoss(0, 1), TOL);
        assertEquals(34.53957599234088, Metrics.logLoss(1, 0), TOL, "1 - 1e-15 rounds in double; the same as numpy's clip");
        assertEquals(Metrics.logLoss(0, 1), Metrics.logLoss(1e-20, 1));
        assertEquals(-Math.log(0.25), Metrics.logLoss(0.25, 1), 0);
        assertEquals(-Math.log(0.75), Metrics.logLoss(0.25, 0), TOL);
        // A perfect prediction costs the clip, not zero, nor NaN.
        Evaluation e = Metrics.evaluate(new float[][]{{1, 0, 0, 0, 0, 1}}, new float[][]{{1, 0, 0, 0, 0, 1}});
        // -log(1 - 1e-15) for the ones, -log1p(-1e-15) for the zeros: both about 1e-15.
        assertEquals((3 * -Math.log(1 - 1e-15) + 4 * -Math.log1p(-1e-15)) / 7, e.weightedLogLoss(), 1e-28);
        assertTrue(e.weightedLogLoss() > 0);
    }

    @Test
    void aucKnownCases() {
        assertEquals(0.75, Metrics.auc(new double[]{0.1, 0.4, 0.35, 0.8}, new int[]{0, 0, 1, 1}), 0);
        assertEquals(1.0, Metrics.auc(new double[]{0.1, 0.2, 0.3, 0.9}, new int[]{0, 0, 1, 1}), 0, "perfect");
        assertEquals(0.0, Metrics.auc(new double[]{0.9, 0.8, 0.3, 0.1}, new int[]{0, 0, 1, 1}), 0, "inverted");
        assertEquals(0.5, Metrics.auc(new double[]{0.5, 0.5, 0.5, 0.5, 0.5}, new int[]{0, 1, 0, 1, 1}), 0, "all tied");
        // Pairs (pos, neg): (0.5, 0.5) ties, (0.5, 0.2), (0.9, 0.5), (0.9, 0.2) win: 3.5 / 4
        assertEquals(0.875, Metrics.auc(new double[]{0.5, 0.5, 0.2, 0.9}, new int[]{0, 1, 0, 1}), 0, "a tie across classes");
        assertTrue(Double.isNaN(Metrics.auc(new double[]{0.1, 0.2}, new int[]{1, 1})));
        assertTrue(Double.isNaN(Metrics.auc(new double[]{0.1, 0.2}, new int[]{0, 0})));
        assertThrows(IllegalArgumentException.class, () -> Metrics.auc(new double[]{0.1}, new int[]{2}));
    }

    @Test
    void aucEqualsThePairCountOnRandomTiedScores() {
        Random r = new Random(3);
        for (int trial = 0; trial < 20; trial++) {
            int n = 2 + r.nextInt(300);
            double[] s = new double[n];
            int[] y = new int[n];
            for (int i = 0; i < n; i++) {
                s[i] = r.nextInt(10) / 10.0;  // few distinct values: many ties
                y[i] = r.nextDouble() < 0.3 ? 1 : 0;
            }
            double wins = 0;
            long pairs = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    if (y[i] == 1 && y[j] == 0) {
                        pairs++;
                        wins += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
                    }
                }
            }
            double expected = pairs == 0 ? Double.NaN : wins / pairs;
            assertEquals(expected, Metrics.auc(s.clone(), y.clone()), 1e-12, "trial " + trial);
        }
    }

    @Test
    void accuracyCountsHalfAsNegative() {
        float[][] p = {{0.5f, 0.51f, 0.49f, 0.5f, 0, 1}};
        float[][] y = {{0, 1, 0, 1, 0, 1}};
        Evaluation e = Metrics.evaluate(p, y);
        assertArrayEquals(new double[]{1, 1, 1, 0, 1, 1}, e.accuracy());
    }

    @Test
    void priorBaselineIsTheEntropyOfThePrevalence() {
        float[][] y = new float[10][6];
        for (int i = 0; i < 3; i++) y[i][0] = 1;   // any: 3 of 10
        y[0][5] = 1;                              // subdural: 1 of 10
        double[] prevalence = Metrics.prevalence(y);
        assertArrayEquals(new double[]{0.3, 0, 0, 0, 0, 0.1}, prevalence, 1e-15);
        Evaluation prior = Metrics.prior(prevalence, y);
        double hAny = -(0.3 * Math.log(0.3) + 0.7 * Math.log(0.7)), hSub = -(0.1 * Math.log(0.1) + 0.9 * Math.log(0.9));
        assertEquals(hAny, prior.logLoss(Subtype.ANY), TOL);
        assertEquals(hSub, prior.logLoss(Subtype.SUBDURAL), TOL);
        assertEquals(-Math.log1p(-1e-15), prior.logLoss(Subtype.EPIDURAL), 1e-28, "prevalence 0 is clipped");
        assertEquals((2 * hAny + hSub + 4 * -Math.log1p(-1e-15)) / 7, prior.weightedLogLoss(), TOL);
        assertEquals(0.5, prior.auc(Subtype.ANY), "constant scores all tie");
        // A training prevalence that differs costs more than the evaluated labels' own.
        assertTrue(Metrics.prior(new double[]{0.14, 0.005, 0.05, 0.035, 0.05, 0.06}, y).weightedLogLoss() > prior.weightedLogLoss());
    }

    @Test
    void flatAndNestedInputsAgree() {
        Random r = new Random(5);
        int n = 50;
        float[][] p = new float[n][6], y = new float[n][6];
        float[] pf = new float[n * 6], yf = new float[n * 6];
        for (int i = 0; i < n; i++) {
            for (int l = 0; l < 6; l++) {
                p[i][l] = pf[i * 6 + l] = r.nextFloat();
                y[i][l] = yf[i * 6 + l] = r.nextInt(2);
            }
        }
        assertEquals(Metrics.evaluate(p, y).weightedLogLoss(), Metrics.evaluate(pf, yf, n).weightedLogLoss(), 0);
        assertArrayEquals(Metrics.evaluate(p, y).auc(), Metrics.evaluate(pf, yf, n).auc(), 0);
    }

    @Test
    void badInputIsRejectedClearly() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Metrics.evaluate(new float[][]{{0.5f, 0, 0, 0, 0, 0}}, new float[][]{{0.5f, 0, 0, 0, 0, 0}}));
        assertTrue(e.getMessage().contains("label 0.5 of image 0, any is not 0 or 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Metrics.evaluate(new float[][]{{0, Float.NaN, 0, 0, 0, 0}}, new float[][]{{0, 0, 0, 0, 0, 0}}));
        assertTrue(e.getMessage().contains("NaN of image 0, epidural is not within [0, 1]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Metrics.evaluate(new float[][]{{0, 0, 0, 0, 0}}, new float[][]{{0, 0, 0, 0, 0}}));
        assertTrue(e.getMessage().contains("5 columns, expected 6"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Metrics.evaluate(new float[12], new float[6], 2));
        assertThrows(IllegalArgumentException.class, () -> Metrics.evaluate(new float[0][], new float[0][]));
    }

    @Test
    void jsonHasEverySubtypeAndNullForAnUndefinedAuc() {
        Evaluation e = Metrics.evaluate(new float[][]{{0.9f, 0, 0, 0, 0, 0}, {0.1f, 0, 0, 0, 0, 0}},
                new float[][]{{1, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}});
        String json = e.toJson();
        assertTrue(json.startsWith("{\"images\": 2, \"weightedLogLoss\": "), json);
        for (Subtype s : Subtype.values()) assertTrue(json.contains("\"" + s.csvName() + "\": {\"logLoss\": "), json);
        assertTrue(json.contains("\"any\": {\"logLoss\": " + e.logLoss(Subtype.ANY) + ", \"auc\": 1.0, \"accuracy\": 1.0, \"prevalence\": 0.5}"), json);
        assertTrue(json.contains("\"epidural\": {\"logLoss\": " + e.logLoss(Subtype.EPIDURAL) + ", \"auc\": null"), json);
    }
}
