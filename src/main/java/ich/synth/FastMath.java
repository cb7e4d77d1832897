package ich.synth;

/**
 * A polynomial atan2 for the per-pixel loops: a few multiplies instead of a library call and, being plain
 * arithmetic, the same result on every JVM and CPU (which keeps the output byte-identical for a seed). Error
 * within 2e-5 rad, far below anything a pixel shows.
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

    /** The angle x - y wrapped into (-pi, pi]. */
    static double angleBetween(double x, double y) {
        double d = x - y;
        return d - TWO_PI * Math.floor(d / TWO_PI + 0.5);
    }
}
