package ich.synth;

import ich.dicom.TransferSyntax;

/**
 * How one study was scanned and stored: the slice stack in patient coordinates (DICOM's LPS: x to the patient's
 * left, y to the back, z up), the head's place and turn in it, noise, and the encoding of the files.
 *
 * <p>Slices are {@code size} x {@code size}; slice k lies at table position z = origin z + k * sliceSpacing. With
 * gantry tilt the image plane turns about the x axis (Image Orientation (Patient) {@code 1\0\0\0\cos\-sin}) while
 * the table still moves along z, as on a real scanner, so the stack is sheared rather than stacked along the
 * plane normal. Head coordinates (see {@link Anatomy}) are the patient coordinates shifted to the head's centre
 * and skull base and turned by {@code yaw} about z.
 *
 * @param tiltCos        cosine of the gantry tilt, rounded to 6 decimals (as written to the header)
 * @param origin         patient coordinates of the first pixel of slice 0
 * @param noiseSigma     standard deviation in HU of the white noise before smoothing
 * @param outsideCircle  pixels outside the reconstruction circle are stored as -2000 HU
 * @param support        a head rest lies under the back of the head
 */
public record Acquisition(int size, int slices, double pixelSpacing, double sliceSpacing, double yaw, double tiltCos,
                          double tiltSin, double headX, double headY, double skullBaseZ, double[] origin, double noiseSigma,
                          PixelEncoding encoding, double rescaleIntercept, TransferSyntax syntax, String[] windowCenter,
                          String[] windowWidth, boolean outsideCircle, boolean support, boolean instancesDescending) {

    /** Window presets as RSNA's scanners wrote them: single values, GE's zero-padded pairs, brain and bone pairs. */
    private static final String[][][] WINDOWS = {
            {{"40"}, {"80"}},
            {{"00040", "00040"}, {"00080", "00080"}},
            {{"00036", "00036"}, {"00080", "00080"}},
            {{"30"}, {"80"}},
            {{"35"}, {"100"}},
            {{"40", "700"}, {"80", "3200"}},
            {{"00047", "00047"}, {"00100", "00100"}},
    };
    private static final double[] WINDOW_WEIGHTS = {3, 3, 2, 1, 1, 1, 1};

    public static Acquisition sample(Rng r, Anatomy a, int size, int slices) {
        double spacing = r.chance(0.75) ? 5.0 : new double[]{4.0, 4.5, 4.8, 5.5, 6.0}[r.nextInt(5)];
        double fov = r.uniform(Math.max(215, 2 * a.halfLength() + 25), 260);
        double pixelSpacing = Math.round(fov / size * 1e6) / 1e6;
        double yaw = Math.toRadians(Math.max(-15, Math.min(15, 5 * r.gaussian())));
        double tilt = r.chance(0.3) ? Math.toRadians(r.uniform(8, 25)) : 0;
        double tiltCos = Math.round(StrictMath.cos(tilt) * 1e6) / 1e6, tiltSin = Math.round(StrictMath.sin(tilt) * 1e6) / 1e6;
        double headX = round3(r.uniform(-8, 8)), headY = round3(r.uniform(-25, 10));
        double skullBaseZ = round3(r.uniform(-60, 140));
        // Slice 0's centre row: near the skull base when the stack spans the head, else centred on the brain.
        double span = (slices - 1) * spacing;
        double start = span >= 0.9 * a.height() ? r.uniform(0, 0.06) * a.height()
                : Math.max(0.03 * a.height(), 0.54 * a.height() - span / 2 + r.uniform(-1, 1) * Math.min(2 * spacing, 0.45 * a.height() - span / 2));
        double half = size / 2.0 * pixelSpacing;
        double[] origin = {
                round3(headX - half + r.uniform(-10, 10)),
                round3(headY - half * tiltCos + r.uniform(-12, 12)),
                round3(skullBaseZ + start + half * tiltSin)};
        PixelEncoding encoding = PixelEncoding.values()[r.pick(0.5, 0.3, 0.2)];
        double intercept = encoding == PixelEncoding.UNSIGNED_12_MODULO ? r.nextInt(2) : -1024;
        TransferSyntax syntax = r.chance(0.7) ? TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN : TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN;
        String[][] window = WINDOWS[r.pick(WINDOW_WEIGHTS)];
        boolean outside = encoding.holdsOutside() && r.chance(0.6);
        return new Acquisition(size, slices, pixelSpacing, spacing, yaw, tiltCos, tiltSin, headX, headY, skullBaseZ, origin,
                r.uniform(5, 10), encoding, intercept, syntax, window[0], window[1], outside, r.chance(0.8), r.chance(0.5));
    }

    private static double round3(double x) { return Math.round(x * 1000) / 1000.0; }

    /** Head z of row {@code j} of slice {@code k}. */
    public double rowZ(int k, int j) {
        return origin[2] - skullBaseZ + k * sliceSpacing - j * pixelSpacing * tiltSin;
    }

    /** Head z of the centre row of slice {@code k}. */
    public double centreZ(int k) { return rowZ(k, size / 2); }

    /** Patient y of row {@code j} (the same in every slice: the table moves along z). */
    private double rowY(int j) { return origin[1] + j * pixelSpacing * tiltCos; }

    /** Head u of pixel (0, j); along the row it changes by {@link #du()} per pixel. */
    public double rowU(int j) {
        return StrictMath.cos(yaw) * (origin[0] - headX) + StrictMath.sin(yaw) * (rowY(j) - headY);
    }

    public double rowV(int j) {
        return -StrictMath.sin(yaw) * (origin[0] - headX) + StrictMath.cos(yaw) * (rowY(j) - headY);
    }

    public double du() { return StrictMath.cos(yaw) * pixelSpacing; }

    public double dv() { return -StrictMath.sin(yaw) * pixelSpacing; }

    /** Image Position (Patient) of slice {@code k}, to the micrometre (so that a DS holds it exactly). */
    public double[] position(int k) {
        return new double[]{origin[0], origin[1], Math.round((origin[2] + k * sliceSpacing) * 1e6) / 1e6};
    }

    /** Image Orientation (Patient): rows along x, columns along y tilted towards -z. */
    public double[] orientation() {
        return new double[]{1, 0, 0, 0, tiltCos, tiltSin == 0 ? 0 : -tiltSin};
    }

    /** Instance Number of slice {@code k}: 1-based, counting down from the top in some studies. */
    public int instanceNumber(int k) { return instancesDescending ? slices - k : k + 1; }
}
