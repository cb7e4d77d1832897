package ich.synth;

import ich.labels.Subtype;

/**
 * One hemorrhage of a study: its subtype, the slices it spans (first..last, 0-based), its blood density and its
 * shape in head coordinates (see {@link Anatomy}). Its size follows a round profile along the slices, largest in
 * the middle, never below a visible minimum at the ends.
 */
public sealed interface Lesion {
    Subtype type();

    int first();

    int last();

    /** Acute blood, 50-90 HU before noise (and never outside that range after it). */
    float bloodHu();

    default boolean spans(int slice) { return slice >= first() && slice <= last(); }

    /** 1 at the middle slice, falling off like a sphere's cross-section towards the ends (above 0 at both). */
    default double profile(int slice) {
        double mid = (first() + last()) / 2.0, half = (last() - first()) / 2.0 + 0.75;
        double zeta = (slice - mid) / half;
        return Math.sqrt(Math.max(0, 1 - zeta * zeta));
    }

    /**
     * Epidural (lens) or subdural (crescent) blood between the inner table and the brain, centred on head angle
     * {@code angle} (atan2(v, u)), {@code halfAngle} either side of it, at most {@code thickness} mm deep. A lens
     * thins as sqrt(1 - x^2) along the skull and bulges into the brain; a crescent thins as (1 - x^2)^0.625 over a
     * long arc, following the brain's surface.
     */
    record Convexity(Subtype type, int first, int last, float bloodHu, double angle, double halfAngle, double thickness)
            implements Lesion {
        public Convexity {
            if (type != Subtype.EPIDURAL && type != Subtype.SUBDURAL) throw new IllegalArgumentException(type.csvName());
        }

        /** Depth of blood below the inner table at angular offset {@code x} (in units of the half-angle, |x| < 1). */
        double depth(double x, double sliceProfile) {
            double along = 1 - x * x;
            if (along <= 0) return 0;
            double root = Math.sqrt(along);  // along^0.625 for the crescent, from square roots: exact, so reproducible
            double shape = type == Subtype.EPIDURAL ? root : root * Math.sqrt(Math.sqrt(root));
            return thickness * Math.max(0.35, sliceProfile) * shape;
        }
    }

    /**
     * Subarachnoid blood: the CSF spaces (sulci, fissures, cisterns, the CSF over the brain) inside an ellipse
     * centred at (u, v) with semi-axes {@code a} (along u) and {@code b}.
     */
    record Subarachnoid(int first, int last, float bloodHu, double u, double v, double a, double b) implements Lesion {
        public Subtype type() { return Subtype.SUBARACHNOID; }
    }

    /**
     * Intraparenchymal blood: an irregular blob of radius {@code radius} mm (its edge wobbles by {@code irregularity}
     * of it), centred at (u, v) in the brain, ringed by {@code edema} mm of oedema.
     */
    record Parenchymal(int first, int last, float bloodHu, double u, double v, double radius, double irregularity, double edema)
            implements Lesion {
        public Subtype type() { return Subtype.INTRAPARENCHYMAL; }
    }

    /**
     * Intraventricular blood: in each ventricle, the part behind {@code level} (-1: the whole ventricle, a cast;
     * above: a fluid level in the dependent, posterior part, the patient lying on the back).
     */
    record Ventricular(int first, int last, float bloodHu, double level) implements Lesion {
        public Subtype type() { return Subtype.INTRAVENTRICULAR; }
    }
}
