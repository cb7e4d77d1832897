package ich.synth;

import java.util.ArrayList;
import java.util.List;

/**
 * The inner anatomy of one patient's head as ellipsoids in head coordinates (see {@link Anatomy}), scaled to the
 * head: CSF cisterns and fissures, brain stem, deep grey nuclei, the ventricles, and at the skull base the
 * clivus, petrous ridges, mastoids, the floor of the anterior fossa and the air sinuses. Each ellipsoid's axes
 * lie in the axial plane (turned by {@code angle}) and along z; later ones paint over earlier ones, and only
 * inside the skull.
 */
final class HeadModel {
    /** An ellipsoid: centre, semi-axes a (along the turned u axis), b, c (along z), in-plane turn, tissue. */
    record Ellipsoid(byte tissue, double u, double v, double z, double a, double b, double c, double angle, boolean ventricle) {
        /** Cross-section scale at height z: 0 outside, 1 through the centre. */
        double scaleAt(double zz) {
            double t = (zz - z) / c;
            return t * t >= 1 ? 0 : Math.sqrt(1 - t * t);
        }
    }

    final Anatomy anatomy;
    final List<Ellipsoid> structures;
    /** Per structure, the cosine and sine of its turn. */
    final double[] cos, sin;
    final ValueNoise fields;

    HeadModel(Anatomy a) {
        this.anatomy = a;
        this.fields = new ValueNoise(a.fieldSeed(), 11);
        double su = (a.halfWidth() - 8) / 66, sv = (a.halfLength() - 8) / 84, h = a.height();
        double vs = a.ventricleScale(), at = a.atrophy();
        List<Ellipsoid> s = new ArrayList<>();
        // Basal cisterns around the midbrain and in front of the pons; the brain stem paints over their middle.
        s.add(e(SliceRenderer.CSF, 0, 7 * sv, 0.355 * h, (14 + 3 * at) * su, (13 + 3 * at) * sv, 0.055 * h, 0));
        s.add(e(SliceRenderer.CSF, 0, -10 * sv, 0.33 * h, 8 * su, 6 * sv, 0.03 * h, 0.5));
        s.add(e(SliceRenderer.CSF, 0, -10 * sv, 0.33 * h, 8 * su, 6 * sv, 0.03 * h, -0.5));
        s.add(e(SliceRenderer.CSF, 0, 9 * sv, 0.24 * h, (15 + 2 * at) * su, (15 + 2 * at) * sv, 0.055 * h, 0));
        s.add(e(SliceRenderer.WHITE, 0, 8 * sv, 0.355 * h, 12 * su, 11 * sv, 0.06 * h, 0));
        s.add(e(SliceRenderer.WHITE, 0, 11 * sv, 0.24 * h, 13 * su, 12 * sv, 0.065 * h, 0));
        for (int side = -1; side <= 1; side += 2) {
            // Sylvian fissure: a thin cleft from the lateral surface inwards and forwards.
            s.add(e(SliceRenderer.CSF, side * 48 * su, -6 * sv, 0.40 * h, 20 * su, 0.9 + 1.4 * at, 0.08 * h, side * 0.35));
            // Deep grey: thalamus, lentiform nucleus, head of the caudate.
            s.add(e(SliceRenderer.DEEP_GREY, side * 10 * su, 8 * sv, 0.47 * h, 8 * su, 12 * sv, 0.06 * h, 0));
            s.add(e(SliceRenderer.DEEP_GREY, side * 22 * su, -4 * sv, 0.47 * h, 5 * su, 13 * sv, 0.06 * h, -side * 0.3));
            s.add(e(SliceRenderer.DEEP_GREY, side * (10 + 2 * vs) * su, -18 * sv, 0.53 * h, 5 * su, 7 * sv, 0.05 * h, 0));
        }
        for (int side = -1; side <= 1; side += 2) {
            // Lateral ventricles: frontal horn and body, then trigone and occipital horn, wider with atrophy.
            s.add(v(side * (4 + 2.5 * vs) * su, -8 * sv, 0.57 * h, (2.5 + 3 * vs) * su, 24 * sv, 0.09 * h, -side * 0.12));
            s.add(v(side * (13 + 3 * vs) * su, 21 * sv, 0.52 * h, (3 + 2.5 * vs) * su, 14 * sv, 0.08 * h, side * 0.5));
        }
        s.add(v(0, 2 * sv, 0.45 * h, (1.2 + 1.3 * vs) * su, 11 * sv, 0.055 * h, 0));   // third ventricle
        s.add(v(0, 30 * sv, 0.22 * h, (5 + 2 * vs) * su, (4 + vs) * sv, 0.045 * h, 0));  // fourth ventricle
        // Skull base.
        s.add(e(SliceRenderer.BASE_BONE, 0, -14 * sv, 0.09 * h, 14 * su, 20 * sv, 0.075 * h, 0));                 // clivus, sphenoid
        s.add(e(SliceRenderer.BASE_BONE, 0, -70 * sv, 0.08 * h, 40 * su, 16 * sv, 0.06 * h, 0));                  // anterior fossa floor
        for (int side = -1; side <= 1; side += 2) {
            s.add(e(SliceRenderer.BASE_BONE, side * 27 * su, 8 * sv, 0.13 * h, 22 * su, 5 * sv, 0.07 * h, side * 0.73));  // petrous ridge
            s.add(e(SliceRenderer.BASE_BONE, side * 44 * su, 26 * sv, 0.12 * h, 10 * su, 12 * sv, 0.06 * h, 0));         // mastoid
            s.add(e(SliceRenderer.SINUS, side * 44 * su, 27 * sv, 0.12 * h, 6 * su, 8 * sv, 0.045 * h, 0));              // mastoid air cells
        }
        s.add(e(SliceRenderer.SINUS, 0, -20 * sv, 0.09 * h, 10 * su, 9 * sv, 0.05 * h, 0));    // sphenoid sinus
        s.add(e(SliceRenderer.SINUS, 0, -76 * sv, 0.20 * h, 14 * su, 5 * sv, 0.045 * h, 0));   // frontal sinus
        this.structures = List.copyOf(s);
        this.cos = new double[s.size()];
        this.sin = new double[s.size()];
        for (int i = 0; i < s.size(); i++) {
            cos[i] = StrictMath.cos(s.get(i).angle());
            sin[i] = StrictMath.sin(s.get(i).angle());
        }
    }

    private static Ellipsoid e(byte tissue, double u, double v, double z, double a, double b, double c, double angle) {
        return new Ellipsoid(tissue, u, v, z, a, b, c, angle, false);
    }

    private static Ellipsoid v(double u, double v, double z, double a, double b, double c, double angle) {
        return new Ellipsoid(SliceRenderer.VENTRICLE, u, v, z, a, b, c, angle, true);
    }

}
