package ich.synth;

import ich.labels.Subtype;

import java.util.Arrays;

/**
 * Renders one slice of a study: the tissue of every pixel, the hemorrhages, their masks and labels, and the
 * Hounsfield units with noise. One renderer per thread: it keeps its buffers from slice to slice, and the
 * {@link Slice} it returns is a view of them, valid until the next {@link #render}.
 *
 * <p>Per row of the image (constant height z in the head, also with gantry tilt):
 * <ol>
 *   <li>Scalp and skull as nested layers of an egg-shaped ellipse: skin, fat, galea, outer table, diploe (its
 *       thickness varying over the skull), inner table. Inside: a CSF layer over the brain, then cortex and white
 *       matter. Sulci are CSF clefts running in from the surface, {@code sulci} around the head, their course bent
 *       by a smooth random field, lined with cortex; their depth and the CSF width vary the same way.</li>
 *   <li>{@link HeadModel} structures (cisterns, brain stem, deep grey, ventricles, skull base, sinuses) and the
 *       interhemispheric fissure paint over the brain.</li>
 *   <li>Lesions, each only on tissue it can occupy: epidural and subdural blood from the inner table inwards,
 *       subarachnoid blood in CSF spaces (not the ventricles), intraparenchymal blood in the brain (pushing aside a
 *       ventricle it meets) with an oedema ring, intraventricular blood in the ventricles.</li>
 * </ol>
 * A subtype counts as visible on the slice when its blood covers at least {@link #MIN_VISIBLE_MM2}; a smaller
 * remnant is not drawn at all, so that a slice shows blood of a subtype exactly when its label says so.
 *
 * <p>Hounsfield units: each tissue's density (per patient) with a smooth variation, edges blurred by [1 2 1]/4 in
 * each direction (partial volume), plus noise: white Gaussian noise of the study's sigma (5-10 HU) smoothed by
 * [1 4 1]/6 in each direction (leaving half the sigma, correlated between neighbours, as reconstruction kernels
 * do), three times stronger in bone. Blood is 50-90 HU after all that: clamped there, so the range holds for
 * every blood pixel.
 */
public final class SliceRenderer {
    public static final byte AIR = 0, OUTSIDE = 1, SUPPORT = 2, SOFT = 3, FAT = 4, BONE = 5, DIPLOE = 6, CSF = 7, VENTRICLE = 8,
            GREY = 9, WHITE = 10, DEEP_GREY = 11, EDEMA = 12, BASE_BONE = 13, SINUS = 14;
    public static final int TISSUES = 15;
    private static final String[] TISSUE_NAMES = {"air", "outside the reconstruction circle", "head rest", "soft tissue", "fat",
            "cortical bone", "diploe", "CSF", "ventricle", "grey matter", "white matter", "deep grey matter", "oedema",
            "skull base bone", "sinus air"};

    /** Smallest blood cross-section of a subtype that makes a slice positive for it. */
    public static final double MIN_VISIBLE_MM2 = 8;
    public static final float BLOOD_MIN_HU = 50, BLOOD_MAX_HU = 90;
    /** Intraparenchymal blood keeps this many mm off the inner table. */
    static final double MIN_PARENCHYMAL_DEPTH = 4;

    private static final int C = ValueNoise.CHANNELS;
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    /**
     * A rendered slice; arrays are row-major, {@code size * size}, and belong to the renderer.
     *
     * @param hu          Hounsfield units as stored (rounded, clamped to the study's encoding): what a correct reader gets
     * @param tissue      tissue class per pixel (the constants of this class)
     * @param lesionMask  per pixel, bit {@link Subtype#bit()} for each subtype whose blood is there
     * @param labelBits   the slice's labels: bit per subtype, {@code any} set when any other is
     * @param plannedBits the labels the study's lesion plan gives this slice (before the visibility check)
     */
    public record Slice(int slice, short[] hu, byte[] tissue, byte[] lesionMask, int labelBits, int plannedBits) {}

    public static String tissueName(int tissue) { return TISSUE_NAMES[tissue]; }

    private final int size;
    private final short[] hu;
    private final byte[] tissue, mask;
    private final float[] variation, base, white, noise;
    private final float[] rowFields, samples;
    private final double[] depth;
    private final int[] counts = new int[Subtype.COUNT];
    private final float[] baseHu = new float[TISSUES], noiseScale = new float[TISSUES];
    /** Per tissue, the lowest HU kept: the encoding's, or -2000 outside the reconstruction circle. */
    private final int[] floorHu = new int[TISSUES];
    /** Head u and v of the first pixel of each row, and their change along a row. */
    private double[] rowU = new double[0], rowV = new double[0];
    private double du, dv;
    private final float[] bloodHu = new float[Subtype.COUNT];

    private SynthStudy study;
    private HeadModel head;
    private Anatomy anatomy;
    private Acquisition acq;
    private int slice, stride;
    /** The lesions on this slice and their profile there. */
    private Lesion[] lesions = new Lesion[0];
    private double[] profiles = new double[0];

    // span(): the pixel range of the last ellipse and its local coordinates along the row
    private int spanLo, spanHi;
    private double x0, x1, y0, y1;

    public SliceRenderer(int size) {
        this.size = size;
        int n = size * size;
        hu = new short[n];
        tissue = new byte[n];
        mask = new byte[n];
        variation = new float[n];
        base = new float[n];
        white = new float[n];
        noise = new float[n];
        rowFields = new float[C * size];
        samples = new float[C * (size + 2)];
        depth = new double[size];
    }

    /** Renders slice {@code k} of {@code s}. */
    public Slice render(SynthStudy s, int k) {
        if (s.acquisition().size() != size) throw new IllegalArgumentException("study of " + s.acquisition().size() + " px, renderer of " + size);
        if (s != study) start(s);
        slice = k;
        int n = 0;
        for (Lesion l : s.lesions()) if (l.spans(k)) n++;
        lesions = new Lesion[n];
        profiles = new double[n];
        n = 0;
        for (Lesion l : s.lesions()) {
            if (!l.spans(k)) continue;
            lesions[n] = l;
            profiles[n++] = l.profile(k);
        }
        Arrays.fill(counts, 0);
        noise(Rng.hash(s.seed(), 0x6E6F697365L, k));
        for (int j = 0; j < size; j++) row(j);
        double pixelArea = acq.pixelSpacing() * acq.pixelSpacing();
        int keep = 0;
        for (int t = 1; t < Subtype.COUNT; t++) if (counts[t] > 0 && counts[t] * pixelArea >= MIN_VISIBLE_MM2) keep |= 1 << t;
        compose((byte) keep);
        int labels = keep == 0 ? 0 : keep | Subtype.ANY.bit();
        return new Slice(k, hu, tissue, mask, labels, s.plannedLabels(k));
    }

    private void start(SynthStudy s) {
        if (study == null || s.anatomy() != study.anatomy()) head = new HeadModel(s.anatomy());
        study = s;
        anatomy = s.anatomy();
        acq = s.acquisition();
        stride = Math.max(2, (int) Math.round(6 / acq.pixelSpacing()));
        rowU = new double[size];
        rowV = new double[size];
        for (int j = 0; j < size; j++) {
            rowU[j] = acq.rowU(j);
            rowV[j] = acq.rowV(j);
        }
        du = acq.du();
        dv = acq.dv();
        Rng r = Rng.derive(s.seed(), 0x6875L);
        Anatomy a = anatomy;
        float[] b = baseHu;
        b[AIR] = (float) r.uniform(-1006, -994);
        b[OUTSIDE] = PixelEncoding.OUTSIDE_HU;
        b[SUPPORT] = (float) r.uniform(80, 250);
        b[SOFT] = a.skinHu();
        b[FAT] = a.fatHu();
        b[BONE] = a.boneHu();
        b[DIPLOE] = a.diploeHu();
        b[CSF] = b[VENTRICLE] = a.csfHu();
        b[GREY] = a.greyHu();
        b[WHITE] = a.whiteHu();
        b[DEEP_GREY] = a.deepGreyHu();
        b[EDEMA] = a.whiteHu() - (float) r.uniform(8, 13);
        b[BASE_BONE] = a.boneHu() * 0.92f;
        b[SINUS] = (float) r.uniform(-980, -930);
        Arrays.fill(noiseScale, 1);
        noiseScale[OUTSIDE] = 0;
        Arrays.fill(floorHu, acq.encoding().minHu);
        floorHu[OUTSIDE] = acq.encoding().holdsOutside() ? PixelEncoding.OUTSIDE_HU : acq.encoding().minHu;
        noiseScale[BONE] = noiseScale[DIPLOE] = noiseScale[BASE_BONE] = 3;
        Arrays.fill(bloodHu, 0);
        for (Lesion l : s.lesions()) bloodHu[l.type().ordinal()] = l.bloodHu();
    }

    // ---- noise ----

    /**
     * White noise, smoothed with [1 4 1]/6 along rows into {@code noise}; {@link #compose} smooths it along columns
     * as it adds it. Each white value is the sum of two uniform 16-bit numbers (a triangular distribution: one
     * random word gives two pixels); the nine-pixel smoothing sums make the result Gaussian for all practical
     * purposes.
     */
    private void noise(long seed) {
        int n = size * size;
        float k = (float) (acq.noiseSigma() / 26754.9);  // the sd of a sum of two uniform 16-bit values
        long state = seed;
        int p = 0;
        for (; p + 1 < n; p += 2) {
            long z = Rng.mix(state += GOLDEN);
            white[p] = ((z & 0xFFFF) + ((z >>> 16) & 0xFFFF) - 65535) * k;
            white[p + 1] = (((z >>> 32) & 0xFFFF) + (z >>> 48) - 65535) * k;
        }
        if (p < n) white[p] = ((Rng.mix(state + GOLDEN) & 0xFFFF) * 2 - 65535) * k;
        final float a = 1 / 6f, b = 4 / 6f;
        for (int j = 0; j < size; j++) {
            int o = j * size;
            noise[o] = (b + a) * white[o] + a * white[o + 1];
            for (int i = 1; i < size - 1; i++) noise[o + i] = a * white[o + i - 1] + b * white[o + i] + a * white[o + i + 1];
            noise[o + size - 1] = a * white[o + size - 2] + (b + a) * white[o + size - 1];
        }
    }

    // ---- one row ----

    private void row(int j) {
        int off = j * size;
        Arrays.fill(tissue, off, off + size, AIR);
        Arrays.fill(mask, off, off + size, (byte) 0);
        Arrays.fill(variation, off, off + size, 0f);
        double z = acq.rowZ(slice, j);
        double u0 = rowU[j], v0 = rowV[j];
        if (acq.support()) support(off, u0, v0, du, dv);
        double hs = anatomy.scaleAt(z);
        int lo = 0, hi = -1;
        if (hs > 0) {
            double reach = Math.max(anatomy.halfWidth(), anatomy.halfLength()) * hs * 1.05;
            if (span(u0, v0, du, dv, 0, 0, reach, reach, 1, 0)) {
                lo = spanLo;
                hi = spanHi;
                fields(lo, hi, u0, v0, du, dv, z);
                layers(off, lo, hi, z, hs, u0, v0, du, dv);
                structures(off, z, hs, u0, v0, du, dv);
            }
        }
        if (acq.outsideCircle()) outside(j, off);
        if (hi >= lo && lesions.length > 0) lesions(off, lo, hi, z, u0, v0, du, dv);
    }

    /** The field channels at every pixel of [lo, hi]: sampled every {@code stride} pixels, linear in between. */
    private void fields(int lo, int hi, double u0, double v0, double du, double dv, double z) {
        int n = (hi - lo) / stride + 2;
        for (int s = 0; s < n; s++) {
            int i = lo + s * stride;
            head.fields.sample(u0 + i * du, v0 + i * dv, z, samples, s * C);
        }
        float inv = 1f / stride;
        for (int s = 0, i = lo; i <= hi; s++) {
            int a = s * C, end = Math.min(hi, i + stride - 1);
            float d0 = (samples[a + C] - samples[a]) * inv, d1 = (samples[a + C + 1] - samples[a + 1]) * inv;
            float d2 = (samples[a + C + 2] - samples[a + 2]) * inv, d3 = (samples[a + C + 3] - samples[a + 3]) * inv;
            for (int w = 0; i <= end; i++, w++) {
                int o = i * C;
                rowFields[o] = samples[a] + d0 * w;
                rowFields[o + 1] = samples[a + 1] + d1 * w;
                rowFields[o + 2] = samples[a + 2] + d2 * w;
                rowFields[o + 3] = samples[a + 3] + d3 * w;
            }
        }
    }

    /** Scalp, skull, CSF layer, cortex, sulci and white matter; records each pixel's depth below the inner table. */
    private void layers(int off, int lo, int hi, double z, double hs, double u0, double v0, double du, double dv) {
        Anatomy a = anatomy;
        double iA = 1 / (a.halfWidth() * hs), iB = 1 / (a.halfLength() * hs), egg2 = 2 * a.egg();
        double m = Anatomy.thicknessFactor(hs);
        double skin = a.skin() * m, fat = skin + a.fat() * m, galea = fat + a.galea() * m, outer = galea + a.outerTable() * m;
        double diploe = a.diploe() * m, inner = a.innerTable() * m, csfLayer = a.csfLayer() * m;
        boolean skullBase = z < 0.05 * a.height();
        double sulcusDepth = a.sulcusDepth(), cortex = a.cortex(), sulcusWidth = a.sulcusWidth();
        int sulci = a.sulci();
        for (int i = lo; i <= hi; i++) {
            depth[i] = -1;
            double u = u0 + i * du, v = v0 + i * dv;
            double qu = u * iA, qv = v * iB;
            double q = qu * qu * (1 + egg2 * Math.max(0, -qv)) + qv * qv;
            if (q >= 1) continue;
            int p = off + i, f = i * C;
            double r = Math.sqrt(u * u + v * v);
            double rb = q > 1e-12 ? r / Math.sqrt(q) : 1 / iA;  // the skin's radius along this pixel's ray
            double d = rb - r;                                  // depth below the skin
            byte t;
            if (d < skin) t = SOFT;
            else if (d < fat) t = FAT;
            else if (d < galea) t = SOFT;
            else if (d < outer) t = BONE;
            else {
                double dip = outer + diploe * (1 + 0.35 * rowFields[f + 2]);
                if (d < dip) {
                    t = DIPLOE;
                    variation[p] = 60 * rowFields[f + 2];
                } else if (d < dip + inner) {
                    t = BONE;
                } else if (skullBase) {
                    t = SOFT;  // below the brain: soft tissue, with the skull base's bone and air painted in
                    depth[i] = 0;
                } else {
                    d -= dip + inner;
                    depth[i] = d;
                    double csf = csfLayer * (1 + 0.6 * rowFields[f + 1]);
                    if (d < csf) {
                        t = CSF;
                    } else {
                        double dd = d - csf, limit = sulcusDepth * (1 + 0.35 * rowFields[f + 1]);
                        if (dd < limit + cortex) {
                            double phase = sulci * FastMath.atan2(v, u) + 2.6 * rowFields[f] + 1.3 * rowFields[f + 3];
                            double psi = Math.abs(phase - FastMath.TWO_PI * Math.floor(phase / FastMath.TWO_PI + 0.5));
                            double period = FastMath.TWO_PI * Math.max(r, 10) / sulci;  // mm between sulci at this radius
                            double k = Math.PI / period;
                            if (dd < limit && psi < k * sulcusWidth) t = CSF;
                            else if (dd < cortex || psi < k * (sulcusWidth + 2 * cortex)) t = GREY;
                            else t = WHITE;
                        } else {
                            t = WHITE;
                        }
                    }
                    variation[p] = 1.8f * rowFields[f + 3];
                }
            }
            tissue[p] = t;
        }
    }

    /** The {@link HeadModel} ellipsoids and the interhemispheric fissure, painted inside the skull. */
    private void structures(int off, double z, double hs, double u0, double v0, double du, double dv) {
        double t = z / anatomy.height();
        // The fissure between the hemispheres: full length above the corpus callosum, front and back below it.
        double halfWidth = 0.5 + anatomy.atrophy();
        int from = (int) Math.ceil((-halfWidth - u0) / du), to = (int) Math.floor((halfWidth - u0) / du);
        double front = -0.28 * anatomy.halfLength() * hs, back = 0.3 * anatomy.halfLength() * hs;
        for (int i = Math.max(from, 0); i <= Math.min(to, size - 1); i++) {
            byte old = tissue[off + i];
            if (old != GREY && old != WHITE) continue;
            double v = v0 + i * dv;
            if (t > 0.62 || v < front || v > back) tissue[off + i] = CSF;
        }
        var list = head.structures;
        for (int e = 0; e < list.size(); e++) {
            HeadModel.Ellipsoid s = list.get(e);
            double sc = s.scaleAt(z);
            if (sc <= 0 || !span(u0, v0, du, dv, s.u(), s.v(), s.a() * sc, s.b() * sc, head.cos[e], head.sin[e])) continue;
            for (int i = spanLo; i <= spanHi; i++) {
                double x = x0 + i * x1, y = y0 + i * y1;
                if (x * x + y * y >= 1 || tissue[off + i] < CSF && (depth[i] < 0 || tissue[off + i] != SOFT)) continue;
                tissue[off + i] = s.tissue();
                if (s.tissue() == BASE_BONE || s.tissue() == SINUS) variation[off + i] = 0;
            }
        }
    }

    /** The head rest: a shell around the back of the head, from 6 to 10 mm below the scalp's widest outline. */
    private void support(int off, double u0, double v0, double du, double dv) {
        double a = anatomy.halfWidth() * 0.92 + 6, b = anatomy.halfLength() + 6;
        if (!span(u0, v0, du, dv, 0, 0, a, b, 1, 0)) {
            spanLo = Integer.MAX_VALUE;
            spanHi = Integer.MIN_VALUE;
        }
        int innerLo = spanLo, innerHi = spanHi;
        if (!span(u0, v0, du, dv, 0, 0, a + 4, b + 4, 1, 0)) return;
        for (int i = spanLo; i <= spanHi; i++) {
            if (i >= innerLo && i <= innerHi) {
                i = innerHi;
                continue;
            }
            double x = x0 + i * x1, y = y0 + i * y1, v = v0 + i * dv;
            if (x * x + y * y < 1 && v >= 0.45 * b) tissue[off + i] = SUPPORT;
        }
    }

    /** Pixels outside the reconstruction circle. */
    private void outside(int j, int off) {
        double c = size / 2.0, dy = j + 0.5 - c, r2 = c * c - dy * dy;
        if (r2 <= 0) {
            Arrays.fill(tissue, off, off + size, OUTSIDE);
            return;
        }
        double half = Math.sqrt(r2);
        // pixel i is inside when |i + 0.5 - c| <= half
        int from = (int) Math.max(0, Math.ceil(c - half - 0.5)), to = (int) Math.min(size - 1, Math.floor(c + half - 0.5));
        Arrays.fill(tissue, off, off + from, OUTSIDE);
        if (to + 1 < size) Arrays.fill(tissue, off + to + 1, off + size, OUTSIDE);
    }

    // ---- lesions ----

    private void lesions(int off, int lo, int hi, double z, double u0, double v0, double du, double dv) {
        for (int n = 0; n < lesions.length; n++) {
            Lesion l = lesions[n];
            double profile = profiles[n];
            int bit = l.type().bit(), ord = l.type().ordinal();
            switch (l) {
                case Lesion.Convexity c -> {
                    double maxDepth = c.depth(0, profile);
                    for (int i = lo; i <= hi; i++) {
                        double d = depth[i];
                        int p = off + i;
                        if (d < 0 || d >= maxDepth) continue;
                        byte t = tissue[p];
                        if (t != CSF && t != GREY && t != WHITE) continue;
                        double theta = FastMath.atan2(v0 + i * dv, u0 + i * du);
                        double x = FastMath.angleBetween(theta, c.angle()) / c.halfAngle();
                        if (Math.abs(x) < 1 && d < c.depth(x, profile)) set(p, bit, ord);
                    }
                }
                case Lesion.Subarachnoid s -> {
                    double sc = Math.max(0.5, profile);
                    if (!span(u0, v0, du, dv, s.u(), s.v(), s.a() * sc, s.b() * sc, 1, 0)) break;
                    for (int i = Math.max(spanLo, lo); i <= Math.min(spanHi, hi); i++) {
                        double x = x0 + i * x1, y = y0 + i * y1;
                        if (x * x + y * y < 1 && tissue[off + i] == CSF) set(off + i, bit, ord);
                    }
                }
                case Lesion.Parenchymal h -> {
                    double radius = Math.max(3.5, h.radius() * profile), edema = h.edema() * Math.max(0.5, profile);
                    double reach = radius * (1 + h.irregularity()) + edema;
                    if (!span(u0, v0, du, dv, h.u(), h.v(), reach, reach, 1, 0)) break;
                    for (int i = Math.max(spanLo, lo); i <= Math.min(spanHi, hi); i++) {
                        int p = off + i;
                        byte t = tissue[p];
                        // in the brain, and off the inner table: blood against the skull would look extra-axial
                        if (t != GREY && t != WHITE && t != DEEP_GREY && t != CSF && t != EDEMA && t != VENTRICLE
                                || depth[i] < MIN_PARENCHYMAL_DEPTH) continue;
                        double u = u0 + i * du - h.u(), v = v0 + i * dv - h.v();
                        double r = Math.sqrt(u * u + v * v), edge = radius * (1 + h.irregularity() * rowFields[i * C]);
                        if (r < edge) {
                            if (t == VENTRICLE && mask[p] != 0) continue;  // ventricular blood there already
                            if (t == VENTRICLE) tissue[p] = WHITE;  // the haematoma pushes the ventricle aside
                            set(p, bit, ord);
                        } else if (r < edge + edema && t != CSF && t != VENTRICLE && (mask[p] & bit) == 0) {
                            tissue[p] = EDEMA;
                        }
                    }
                }
                case Lesion.Ventricular w -> {
                    var list = head.structures;
                    for (int e = 0; e < list.size(); e++) {
                        HeadModel.Ellipsoid s = list.get(e);
                        if (!s.ventricle()) continue;
                        double sc = s.scaleAt(z);
                        if (sc <= 0 || !span(u0, v0, du, dv, s.u(), s.v(), s.a() * sc, s.b() * sc, head.cos[e], head.sin[e])) continue;
                        for (int i = spanLo; i <= spanHi; i++) {
                            double x = x0 + i * x1, y = y0 + i * y1;
                            if (x * x + y * y < 1 && y > w.level() && tissue[off + i] == VENTRICLE) set(off + i, bit, ord);
                        }
                    }
                }
            }
        }
    }

    private void set(int p, int bit, int ordinal) {
        if ((mask[p] & bit) != 0) return;
        mask[p] |= (byte) bit;
        counts[ordinal]++;
    }

    // ---- output ----

    /**
     * Hounsfield units: tissue density and its variation, blood where a kept subtype lies, blurred by [1 2 1]/4 in
     * each direction (the partial volume of edges), then noise. Blood pixels end within 50-90 HU. Both separable
     * filters take their column pass in the last loop, which also rounds and clamps.
     */
    private void compose(byte keep) {
        int max = acq.encoding().maxHu, n = size * size;
        boolean oedemaAlone = (keep & Subtype.INTRAPARENCHYMAL.bit()) == 0;
        for (int p = 0; p < n; p++) {
            int t = tissue[p];
            int m = mask[p];
            if (m != 0) {
                m &= keep;
                mask[p] = (byte) m;  // a remnant too small to count is not drawn
            }
            if (m != 0) {
                base[p] = bloodHu[Integer.numberOfTrailingZeros(m)];
            } else {
                if (t == EDEMA && oedemaAlone) tissue[p] = (byte) (t = WHITE);  // oedema without its blood: white matter
                base[p] = t == OUTSIDE ? baseHu[AIR] : baseHu[t] + variation[p];
            }
        }
        // The blur along rows into white; along columns, with the noise's smoothing along columns, in the last pass.
        for (int j = 0; j < size; j++) {
            int o = j * size;
            white[o] = 0.75f * base[o] + 0.25f * base[o + 1];
            for (int i = 1; i < size - 1; i++) white[o + i] = 0.25f * base[o + i - 1] + 0.5f * base[o + i] + 0.25f * base[o + i + 1];
            white[o + size - 1] = 0.25f * base[o + size - 2] + 0.75f * base[o + size - 1];
        }
        final float na = 1 / 6f, nb = 4 / 6f;
        for (int j = 0; j < size; j++) {
            int up = Math.max(j - 1, 0) * size, at = j * size, down = Math.min(j + 1, size - 1) * size;
            for (int i = 0; i < size; i++) {
                int p = at + i, t = tissue[p];
                float smooth = 0.25f * white[up + i] + 0.5f * white[p] + 0.25f * white[down + i];
                float noisy = na * noise[up + i] + nb * noise[p] + na * noise[down + i];
                float v = smooth + noisy * noiseScale[t];
                if (mask[p] != 0) v = Math.max(BLOOD_MIN_HU, Math.min(BLOOD_MAX_HU, v));
                else if (t == OUTSIDE) v = PixelEncoding.OUTSIDE_HU;
                hu[p] = (short) Math.max(floorHu[t], Math.min(max, (int) Math.floor(v + 0.5f)));
            }
        }
    }

    /** The stored pixel words of a slice, little endian, into {@code out} (2 bytes per pixel). */
    public static void encode(short[] hu, PixelEncoding encoding, byte[] out) {
        int n = hu.length;
        switch (encoding) {
            case SIGNED_16, UNSIGNED_12 -> {
                // As PixelEncoding.stored, unrolled: the renderer's HU are in range already, the clamp keeps callers honest.
                int lo = encoding.minHu, hi = encoding.maxHu;
                boolean outside = encoding.holdsOutside();
                for (int p = 0; p < n; p++) {
                    int h = hu[p];
                    int s = (outside && h == PixelEncoding.OUTSIDE_HU ? h : Math.max(lo, Math.min(hi, h))) + 1024;
                    out[2 * p] = (byte) s;
                    out[2 * p + 1] = (byte) (s >> 8);
                }
            }
            case UNSIGNED_12_MODULO -> {
                for (int p = 0; p < n; p++) {
                    int s = Math.max(encoding.minHu, Math.min(encoding.maxHu, hu[p])) & 0xFFF;
                    out[2 * p] = (byte) s;
                    out[2 * p + 1] = (byte) (s >> 8);
                }
            }
        }
    }

    // ---- geometry ----

    /**
     * The pixels of the row whose points u0 + i du, v0 + i dv lie inside the ellipse centred at (cu, cv) with
     * semi-axis a along the direction (cos, sin) and b across it: [spanLo, spanHi], with the ellipse's normalised
     * coordinates x0 + i x1, y0 + i y1. False when the row misses it.
     */
    private boolean span(double u0, double v0, double du, double dv, double cu, double cv, double a, double b, double cos, double sin) {
        double pu = u0 - cu, pv = v0 - cv;
        x0 = (pu * cos + pv * sin) / a;
        x1 = (du * cos + dv * sin) / a;
        y0 = (-pu * sin + pv * cos) / b;
        y1 = (-du * sin + dv * cos) / b;
        double qa = x1 * x1 + y1 * y1, qb = x0 * x1 + y0 * y1, qc = x0 * x0 + y0 * y0 - 1;
        double disc = qb * qb - qa * qc;
        if (disc <= 0) return false;
        double root = Math.sqrt(disc);
        spanLo = (int) Math.max(0, Math.ceil((-qb - root) / qa));
        spanHi = (int) Math.min(size - 1, Math.floor((-qb + root) / qa));
        return spanLo <= spanHi;
    }
}
