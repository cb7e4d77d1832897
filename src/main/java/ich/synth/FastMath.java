package ich.synth;

/**
 * Polynomial approximations of atan2 and cos for the per-pixel loops: a few multiplies instead of a library call,
 * and, being plain arithmetic, the same result on every JVM and CPU (which keeps the output byte-identical for a
 * seed). Errors: atan2 within 1e-5 rad, cos within 3e-5: far below anything a pixel shows.
 */
final class FastMath {
    private FastMath() {}

    static final double TWO_PI = 2 * Math.PI;

    /** atan2(y, x) in (-pi, pi]. */
    static double atan2(double y, double x) {
        double ax = Math.abs(x), ay = Math.abs(y);
        double hi = Math.max(ax, ay);
        if (hi == 0) return 0;
        double a = Math.min(ax, ay) / hi;
        double s = a * a;
        double r = ((((0.0208351 * s - 0.0851330) * s + 0.1801410) * s - 0.3302995) * s + 0.9998660) * a;
        if (ay > ax) r = Math.PI / 2 - r;
        if (x < 0) r = Math.PI - r;
        return y < 0 ? -r : r;
    }

    /** cos(x) for any finite x. */
    static double cos(double x) {
        x = Math.abs(x - TWO_PI * Math.floor(x / TWO_PI + 0.5));  // [0, pi]
        boolean flip = x > Math.PI / 2;
        if (flip) x = Math.PI - x;  // [0, pi/2]
        double s = x * x;
        double c = 1 + s * (-0.5 + s * (1.0 / 24 + s * (-1.0 / 720 + s * (1.0 / 40320 - s / 3628800))));
        return flip ? -c : c;
    }

    /** The angle x - y wrapped into (-pi, pi]. */
    static double angleBetween(double x, double y) {
        double d = x - y;
        return d - TWO_PI * Math.floor(d / TWO_PI + 0.5);
    }
}
