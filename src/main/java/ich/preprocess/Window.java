package ich.preprocess;

/**
 * One intensity window: Hounsfield units to a model input channel in [0, 1].
 *
 * <p>Linear windows follow the seed notebook's {@code window_image} and {@code bsb_window}: clamp HU to
 * [low, high] with {@code low = center - floor(width / 2)} and {@code high = center + floor(width / 2)}
 * (Python's {@code width // 2}), then scale by {@code (x - low) / width}. For the brain window 40/80 that is
 * (x - 0) / 80, subdural 80/200 gives (x + 20) / 200 and soft tissue 40/380 gives (x + 150) / 380, as the
 * seed writes them.
 *
 * <p>Sigmoid windows are the "gradient sigmoid windowing" variant: {@code 1 / (1 + exp(-(W x + b)))} with
 * {@code W = 2 ln(U/eps - 1) / width}, {@code b = -2 center ln(U/eps - 1) / width}, U = 1, eps = 1/255, so
 * the window's edges map to eps and 1 - eps and the gradient never vanishes.
 */
public record Window(String name, double center, double width, boolean sigmoid) {
    public static final Window BRAIN = new Window("brain", 40, 80, false);
    public static final Window SUBDURAL = new Window("subdural", 80, 200, false);
    public static final Window SOFT_TISSUE = new Window("soft", 40, 380, false);

    private static final double SIGMOID_EPS = 1.0 / 255.0;

    public Window {
        if (!(width > 0) || !Double.isFinite(center) || !Double.isFinite(width)) {
            throw new IllegalArgumentException("window " + name + ": width must be positive and finite, got " + center + "/" + width);
        }
    }

    public static Window linear(String name, double center, double width) { return new Window(name, center, width, false); }

    public static Window sigmoid(String name, double center, double width) { return new Window(name, center, width, true); }

    /** Lower clamp bound of a linear window: center - floor(width / 2). */
    public float low() { return (float) (center - Math.floor(width / 2)); }

    /** Upper clamp bound of a linear window: center + floor(width / 2). */
    public float high() { return (float) (center + Math.floor(width / 2)); }

    /** Multiplier of the linear window (1 / width) or the sigmoid slope W. */
    public float scale() {
        return sigmoid ? (float) (2 * Math.log(1 / SIGMOID_EPS - 1) / width) : (float) (1 / width);
    }

    /** Sigmoid bias b (0 for linear windows). */
    public float bias() {
        return sigmoid ? (float) (-2 * center * Math.log(1 / SIGMOID_EPS - 1) / width) : 0f;
    }

    /** The channel value for one HU value: the reference the GPU kernel must match. */
    public float apply(float hu) {
        if (sigmoid) return (float) (1.0 / (1.0 + Math.exp(-(scale() * hu + bias()))));
        float lo = low();
        return (Math.min(Math.max(hu, lo), high()) - lo) * scale();
    }

    /** "brain 40/80" */
    @Override
    public String toString() {
        return name + " " + fmt(center) + "/" + fmt(width) + (sigmoid ? " sigmoid" : "");
    }

    private static String fmt(double v) { return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v); }

    /**
     * Parses "brain", "subdural", "soft", or "NAME:CENTER/WIDTH[:sigmoid]" (e.g. "bone:600/2800").
     */
    public static Window parse(String spec) {
        switch (spec) {
            case "brain": return BRAIN;
            case "subdural": return SUBDURAL;
            case "soft": return SOFT_TISSUE;
            default: break;
        }
        String[] parts = spec.split(":");
        if (parts.length < 2 || parts.length > 3 || !parts[1].contains("/")) {
            throw new IllegalArgumentException("window \"" + spec + "\": expected brain, subdural, soft or NAME:CENTER/WIDTH[:sigmoid]");
        }
        String[] cw = parts[1].split("/");
        try {
            boolean sig = parts.length == 3;
            if (sig && !parts[2].equals("sigmoid")) throw new IllegalArgumentException("window \"" + spec + "\": unknown kind " + parts[2]);
            return new Window(parts[0], Double.parseDouble(cw[0]), Double.parseDouble(cw[1]), sig);
        } catch (NumberFormatException | ArrayIndexOutOfBoundsException e) {
            throw new IllegalArgumentException("window \"" + spec + "\": center and width must be numbers");
        }
    }
}
