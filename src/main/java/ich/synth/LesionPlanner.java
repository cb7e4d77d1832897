package ich.synth;

import ich.labels.Subtype;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Decides, per study, which hemorrhages it has, on which slices, and what they look like; aims the label rates
 * per image at a {@link Prevalence}.
 *
 * <p>The model: a study is positive with probability {@code positive}. A positive study has one dominant
 * subtype (drawn by weight) spanning a window of slices, a fraction of the study drawn around {@code window};
 * each other subtype joins with its own probability, spanning 30-100 % of the window, inside it. So positive
 * slices come in runs, as in real scans, subtypes co-occur, and {@code any}, their union, is the window.
 *
 * <p>Each subtype may only lie where its anatomy is: epidural and subdural blood at 16-88 % of the head's
 * height (at the centre of the slice), subarachnoid 14-90 %, intraparenchymal 18-84 %, intraventricular
 * 45-63 % (the lateral and third ventricles). Windows are cut to these ranges, so the naive rates come out low,
 * and by how much depends on the slices per study. Hence {@link #calibrate}: it simulates the plans of 20,000
 * studies, four times each (no pixels, only which slices each subtype spans), and rescales the knobs until the
 * simulated rates match the targets, a few rounds. The rates of a data set then differ from the targets by sampling error:
 * positives come clustered in studies, so this is large for few studies (see the tests).
 */
public final class LesionPlanner {
    private LesionPlanner() {}

    /** Lowest and highest allowed height (fraction of the head's) per subtype ordinal; [0] unused. */
    private static final double[][] HEIGHTS = {null, {0.16, 0.88}, {0.18, 0.84}, {0.45, 0.63}, {0.14, 0.90}, {0.16, 0.88}};
    private static final int CALIBRATION_STUDIES = 20_000;
    private static final int CALIBRATION_ROUNDS = 8;
    private static final int CALIBRATION_REPEATS = 4;
    private static final long CALIBRATION_SEED = 0x63616C6962726174L;
    private static final double MEAN_WINDOW = 0.36;
    private static final Map<String, Knobs> CALIBRATED = new ConcurrentHashMap<>();

    /**
     * @param positive  probability that a study has a hemorrhage
     * @param window    mean fraction of the study's slices that its dominant lesion spans
     * @param dominant  weight of each subtype (by ordinal; [0] unused) as the dominant one
     * @param secondary probability of each subtype joining a dominant one of another subtype
     */
    public record Knobs(double positive, double window, double[] dominant, double[] secondary) {
        double spread() { return Math.min(0.65, (1 - window) / window); }
    }

    /** Slices [lo, hi] of a study where subtype {@code s} may lie, or null. */
    static int[] allowed(int s, Anatomy a, Acquisition acq) {
        int lo = -1, hi = -1;
        for (int k = 0; k < acq.slices(); k++) {
            double t = acq.centreZ(k) / a.height();
            if (t >= HEIGHTS[s][0] && t <= HEIGHTS[s][1]) {
                if (lo < 0) lo = k;
                hi = k;
            }
        }
        return lo < 0 ? null : new int[]{lo, hi};
    }

    /** A lesion's type and slices, before its shape is drawn. */
    record Span(int type, int first, int last) {}

    /** The spans of one study's lesions: the random draws of the model above. */
    static List<Span> spans(Rng r, int slices, int[][] allowed, Knobs k) {
        return r.chance(k.positive()) ? positiveSpans(r, slices, allowed, k) : List.of();
    }

    /** The spans of a study known to be positive. */
    static List<Span> positiveSpans(Rng r, int slices, int[][] allowed, Knobs k) {
        double[] w = k.dominant().clone();
        for (int s = 1; s < Subtype.COUNT; s++) if (allowed[s] == null) w[s] = 0;
        w[0] = 0;
        double total = 0;
        for (double x : w) total += x;
        if (total == 0) return List.of();
        int d = r.pick(w);
        int[] range = allowed[d];
        int rangeLength = range[1] - range[0] + 1;
        double f = k.window() * r.uniform(1 - k.spread(), 1 + k.spread());
        int length = Math.max(1, Math.min(rangeLength, r.stochasticRound(f * slices)));
        int first = range[0] + r.nextInt(rangeLength - length + 1), last = first + length - 1;
        List<Span> spans = new ArrayList<>();
        spans.add(new Span(d, first, last));
        for (int s = 1; s < Subtype.COUNT; s++) {
            if (s == d || !r.chance(k.secondary()[s]) || allowed[s] == null) continue;
            int lo = Math.max(first, allowed[s][0]), hi = Math.min(last, allowed[s][1]);
            if (lo > hi) continue;
            int n = Math.max(1, Math.min(hi - lo + 1, r.stochasticRound(r.uniform(0.3, 1.0) * length)));
            int from = lo + r.nextInt(hi - lo + 1 - n + 1);
            spans.add(new Span(s, from, from + n - 1));
        }
        return spans;
    }

    /** The lesions of a study: spans from {@code r}, shapes from {@code shapes}. */
    public static List<Lesion> plan(Rng r, Rng shapes, Anatomy a, Acquisition acq, Knobs k) {
        int[][] allowed = new int[Subtype.COUNT][];
        for (int s = 1; s < Subtype.COUNT; s++) allowed[s] = allowed(s, a, acq);
        List<Lesion> lesions = new ArrayList<>();
        for (Span span : spans(r, acq.slices(), allowed, k)) lesions.add(shape(Subtype.of(span.type()), span.first(), span.last(), shapes, a, acq));
        return List.copyOf(lesions);
    }

    /** Where and how big: drawn for the middle slice of the span. */
    static Lesion shape(Subtype type, int first, int last, Rng r, Anatomy a, Acquisition acq) {
        int mid = (first + last) / 2;
        double z = acq.centreZ(mid), t = z / a.height();
        double spanMm = (last - first + 1) * acq.sliceSpacing();
        double side = r.chance(0.5) ? 0 : Math.PI;  // head angle 0: the patient's left; pi: right
        double su = (a.halfWidth() - 8) / 66, sv = (a.halfLength() - 8) / 84;
        return switch (type) {
            case EPIDURAL -> new Lesion.Convexity(type, first, last, (float) r.uniform(60, 85), side + r.uniform(-0.9, 0.9),
                    Math.min(0.55, Math.max(0.2, spanMm / 150 + r.uniform(0.12, 0.3))), r.uniform(8, 20));
            case SUBDURAL -> new Lesion.Convexity(type, first, last, (float) r.uniform(55, 80), side + r.uniform(-1.0, 1.0),
                    r.uniform(0.6, 1.3), r.uniform(4, 13));
            case SUBARACHNOID -> {
                double tFirst = acq.centreZ(first) / a.height(), tLast = acq.centreZ(last) / a.height();
                if (tFirst >= 0.2 && tLast <= 0.45 && r.chance(0.5)) {  // basal cisterns and Sylvian fissures
                    double radius = r.uniform(28, 40);
                    yield new Lesion.Subarachnoid(first, last, (float) r.uniform(55, 80), 0, 4 * sv, radius * su, radius * sv);
                }
                double theta = r.uniform(-Math.PI, Math.PI), rr = 0.85 * a.brainRadius(theta, z);
                yield new Lesion.Subarachnoid(first, last, (float) r.uniform(55, 80), rr * StrictMath.cos(theta),
                        rr * StrictMath.sin(theta), r.uniform(18, 38), r.uniform(18, 38));
            }
            case INTRAPARENCHYMAL -> {
                double radius = Math.max(6, Math.min(24, spanMm / 2 * r.uniform(0.4, 0.9)));
                double u, v;
                if (t >= 0.38 && t <= 0.56 && r.chance(0.5)) {  // basal ganglia, thalamus
                    radius = Math.min(radius, 18);
                    u = (r.chance(0.5) ? -1 : 1) * r.uniform(18, 28) * su;
                    v = r.uniform(-10, 12) * sv;
                } else {                                         // lobar
                    double theta = r.uniform(-Math.PI, Math.PI), rr = a.brainRadius(theta, z);
                    double dist = r.uniform(0.3, 0.75) * rr;
                    if (dist + radius > rr - 6) radius = Math.max(6, rr - 6 - dist);
                    if (dist + radius > rr - 6) dist = Math.max(0, rr - 6 - radius);
                    u = dist * StrictMath.cos(theta);
                    v = dist * StrictMath.sin(theta);
                }
                yield new Lesion.Parenchymal(first, last, (float) r.uniform(60, 88), u, v, radius, r.uniform(0.05, 0.25), r.uniform(1.5, 5));
            }
            case INTRAVENTRICULAR -> new Lesion.Ventricular(first, last, (float) r.uniform(55, 80), r.chance(0.3) ? -1 : r.uniform(-0.3, 0.5));
            case ANY -> throw new IllegalArgumentException("any is not a lesion");
        };
    }

    // ---- calibration ----

    /** Knobs whose simulated rates match {@code target} for studies of {@code slices} slices; cached. */
    public static Knobs calibrate(int slices, Prevalence target) {
        return CALIBRATED.computeIfAbsent(slices + ":" + java.util.Arrays.toString(target.rates()), key -> doCalibrate(slices, target));
    }

    private static Knobs doCalibrate(int slices, Prevalence target) {
        double any = target.rate(Subtype.ANY);
        if (any == 0) return new Knobs(0, MEAN_WINDOW, new double[Subtype.COUNT], new double[Subtype.COUNT]);
        int[][][] allowed = new int[CALIBRATION_STUDIES][][];
        for (int i = 0; i < CALIBRATION_STUDIES; i++) {
            Rng r = Rng.derive(CALIBRATION_SEED, i);
            Anatomy a = Anatomy.sample(r);
            Acquisition acq = Acquisition.sample(r, a, 512, slices);
            allowed[i] = new int[Subtype.COUNT][];
            for (int s = 1; s < Subtype.COUNT; s++) allowed[i][s] = allowed(s, a, acq);
        }
        double positive = Math.min(1, any / MEAN_WINDOW), window = any / positive;
        double[] ratio = new double[Subtype.COUNT];
        for (int s = 1; s < Subtype.COUNT; s++) ratio[s] = target.rates()[s] / any;
        Knobs k = knobs(positive, window, ratio);
        for (int round = 0; round < CALIBRATION_ROUNDS; round++) {
            double[] rates = simulate(k, slices, allowed);
            if (rates[0] > 0) window *= any / rates[0];
            if (window > 0.95) {
                positive = Math.min(1, positive * window / 0.95);
                window = 0.95;
            }
            for (int s = 1; s < Subtype.COUNT; s++) if (rates[s] > 0) ratio[s] *= target.rates()[s] / rates[s];
            k = knobs(positive, window, ratio);
        }
        return k;
    }

    /**
     * Per-image rates of the plans of the calibration studies under {@code k}: each study planned as positive,
     * {@link #CALIBRATION_REPEATS} times, and the counts weighted by the probability of being positive. (Drawing
     * whether a study is positive would add most of the sampling error and nothing else.)
     */
    static double[] simulate(Knobs k, int slices, int[][][] allowed) {
        long[] positives = new long[Subtype.COUNT];
        int[] bits = new int[slices];
        for (int i = 0; i < allowed.length; i++) {
            Rng r = Rng.derive(CALIBRATION_SEED + 1, i);
            for (int repeat = 0; repeat < CALIBRATION_REPEATS; repeat++) {
                java.util.Arrays.fill(bits, 0);
                for (Span s : positiveSpans(r, slices, allowed[i], k)) {
                    for (int j = s.first(); j <= s.last(); j++) bits[j] |= 1 << s.type() | 1;
                }
                for (int b : bits) for (int s = 0; s < Subtype.COUNT; s++) positives[s] += (b >>> s) & 1;
            }
        }
        double[] rates = new double[Subtype.COUNT];
        for (int s = 0; s < Subtype.COUNT; s++) rates[s] = k.positive() * positives[s] / ((double) allowed.length * CALIBRATION_REPEATS * slices);
        return rates;
    }

    /**
     * Dominant weights and joining probabilities that give subtype s a share ratio[s] of the positive slices,
     * were windows never cut: share = dominant + (1 - dominant) * joining * 0.65 (a joining subtype spans 65 % of
     * the window on average). With joining = lambda * ratio, lambda is found so that the dominant weights sum to 1.
     */
    static Knobs knobs(double positive, double window, double[] ratio) {
        double[] dominant = new double[Subtype.COUNT], joining = new double[Subtype.COUNT];
        double sum = 0;
        for (int s = 1; s < Subtype.COUNT; s++) sum += ratio[s];
        double lambda = 0;
        if (sum > 1) {
            double lo = 0, hi = 1;
            for (int s = 1; s < Subtype.COUNT; s++) if (ratio[s] > 0) hi = Math.min(hi, 1 / ratio[s]);
            for (int it = 0; it < 60; it++) {
                double mid = (lo + hi) / 2;
                if (dominantSum(ratio, mid) > 1) lo = mid;
                else hi = mid;
            }
            lambda = lo;
        }
        double total = 0;
        for (int s = 1; s < Subtype.COUNT; s++) {
            dominant[s] = Math.max(0, ratio[s] * (1 - lambda) / (1 - lambda * Math.min(ratio[s], 0.999999)));
            joining[s] = Math.min(1, lambda * ratio[s] / 0.65);
            total += dominant[s];
        }
        if (total > 0) for (int s = 1; s < Subtype.COUNT; s++) dominant[s] /= total;
        return new Knobs(positive, window, dominant, joining);
    }

    private static double dominantSum(double[] ratio, double lambda) {
        double sum = 0;
        for (int s = 1; s < Subtype.COUNT; s++) sum += ratio[s] * (1 - lambda) / (1 - lambda * Math.min(ratio[s], 0.999999));
        return sum;
    }
}
