package ich.synth;

/**
 * Smooth random fields in head coordinates: value noise on a lattice of {@code cell} mm, four channels per node,
 * interpolated with a smoothstep in each axis. Values lie in [-1, 1]. The anatomy uses them for what varies
 * smoothly in space: the course of the gyri, sulcal depth and CSF width, skull texture, and the slight density
 * differences within the parenchyma.
 */
final class ValueNoise {
    static final int CHANNELS = 4;
    private static final double U0 = -130, V0 = -140, Z0 = -40;
    private final double inv;
    private final int nu, nv, nz;
    private final float[] nodes;

    ValueNoise(long seed, double cell) {
        this.inv = 1 / cell;
        this.nu = (int) Math.ceil(260 / cell) + 2;
        this.nv = (int) Math.ceil(280 / cell) + 2;
        this.nz = (int) Math.ceil(300 / cell) + 2;
        this.nodes = new float[nu * nv * nz * CHANNELS];
        Rng r = new Rng(seed);
        for (int i = 0; i < nodes.length; i++) nodes[i] = (float) (2 * r.nextDouble() - 1);
    }

    /** The four channels at (u, v, z) into {@code out[offset..offset+3]}. */
    void sample(double u, double v, double z, float[] out, int offset) {
        double fu = clamp((u - U0) * inv, nu - 1.001), fv = clamp((v - V0) * inv, nv - 1.001), fz = clamp((z - Z0) * inv, nz - 1.001);
        int iu = (int) fu, iv = (int) fv, iz = (int) fz;
        float wu = smooth(fu - iu), wv = smooth(fv - iv), wz = smooth(fz - iz);
        int base = ((iz * nv + iv) * nu + iu) * CHANNELS;
        int du = CHANNELS, dv = nu * CHANNELS, dz = nv * nu * CHANNELS;
        for (int c = 0; c < CHANNELS; c++) {
            int b = base + c;
            float x00 = lerp(nodes[b], nodes[b + du], wu), x10 = lerp(nodes[b + dv], nodes[b + dv + du], wu);
            float x01 = lerp(nodes[b + dz], nodes[b + dz + du], wu), x11 = lerp(nodes[b + dz + dv], nodes[b + dz + dv + du], wu);
            out[offset + c] = lerp(lerp(x00, x10, wv), lerp(x01, x11, wv), wz);
        }
    }

    private static double clamp(double x, double max) { return x < 0 ? 0 : Math.min(x, max); }

    private static float smooth(double t) { return (float) (t * t * (3 - 2 * t)); }

    private static float lerp(float a, float b, float w) { return a + (b - a) * w; }
}
