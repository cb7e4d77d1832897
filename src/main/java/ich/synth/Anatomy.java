package ich.synth;

/**
 * One patient's head: sizes in mm, tissue densities in HU, and the seed of its smooth random fields (gyri, skull
 * texture, parenchyma). Drawn once per patient, so that a patient's two studies show the same head.
 *
 * <p>Head coordinates: u from the patient's right to left, v from front to back, z up from the skull base
 * (z = 0) to the vertex (z = {@link #height}). Atrophy (0 young .. 1 old) widens the sulci, the CSF over the
 * brain and the ventricles together, as it does with age.
 *
 * @param halfWidth   head half-width (u) at its widest, scalp included
 * @param halfLength  head half-length (v)
 * @param egg         how much narrower the forehead is than the back of the head
 */
public record Anatomy(double halfWidth, double halfLength, double height, double egg,
                      double skin, double fat, double galea, double outerTable, double diploe, double innerTable,
                      double csfLayer, double atrophy, double ventricleScale, double sulcusWidth, int sulci,
                      double sulcusDepth, double cortex,
                      float skinHu, float fatHu, float boneHu, float diploeHu, float csfHu, float greyHu, float whiteHu,
                      float deepGreyHu, long fieldSeed) {

    public static Anatomy sample(Rng r) {
        double atrophy = StrictMath.pow(r.nextDouble(), 1.6);
        return new Anatomy(
                r.uniform(68, 80), r.uniform(86, 100), r.uniform(172, 192), r.uniform(0, 0.12),
                r.uniform(1.2, 2.0), r.uniform(0.8, 2.5), r.uniform(0.8, 1.6), r.uniform(1.3, 2.0), r.uniform(2.0, 4.5), r.uniform(1.1, 1.7),
                0.8 + 2.4 * atrophy + r.uniform(0, 0.4), atrophy, 0.8 + 0.7 * atrophy + r.uniform(-0.05, 0.15),
                1.3 + 1.8 * atrophy + r.uniform(0, 0.3), r.between(32, 40), r.uniform(9, 15), r.uniform(2.5, 3.4),
                (float) r.uniform(35, 55), (float) r.uniform(-110, -70), (float) r.uniform(1550, 1850), (float) r.uniform(820, 1000),
                (float) r.uniform(3, 10), (float) r.uniform(35, 40), (float) r.uniform(25, 30), (float) r.uniform(33, 38),
                r.nextLong());
    }

    /** Skull and scalp from the outer skin to the inner table. */
    public double shell() { return skin + fat + galea + outerTable + diploe + innerTable; }

    /**
     * Cross-section scale of the head at height z: widest at mid-height, an ellipsoid cap above, slowly narrowing
     * towards the skull base; 0 above the vertex.
     */
    public double scaleAt(double z) {
        double t = z / height;
        if (t >= 1) return 0;
        if (t >= 0.5) return Math.sqrt(1 - square((t - 0.5) / 0.5));
        double b = Math.max(0, t) / 0.5;
        return 0.86 + 0.14 * b * (2 - b);
    }

    /** Radius of the inner table along head angle theta (atan2(v, u)) at height z, the egg shape ignored: where the brain ends. */
    public double brainRadius(double theta, double z) {
        double hs = scaleAt(z);
        if (hs <= 0) return 0;
        double c = StrictMath.cos(theta) / (halfWidth * hs), s = StrictMath.sin(theta) / (halfLength * hs);
        return Math.max(0, 1 / Math.sqrt(c * c + s * s) - shell() * thicknessFactor(hs));
    }

    /** The skull and scalp look thicker towards the vertex, where the slice cuts them obliquely. */
    static double thicknessFactor(double headScale) {
        return Math.min(3, 1 / Math.sqrt(Math.max(headScale, 0.01)));
    }

    static double square(double x) { return x * x; }
}
