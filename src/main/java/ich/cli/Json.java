package ich.cli;

/** A minimal JSON object writer for one-line-per-record output. */
final class Json {
    private final StringBuilder sb = new StringBuilder("{");
    private boolean first = true;

    private Json key(String k) {
        if (!first) sb.append(", ");
        first = false;
        string(k);
        sb.append(": ");
        return this;
    }

    private void string(String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    private void number(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) sb.append("null");
        else if (v == Math.rint(v) && Math.abs(v) < 1e15) sb.append((long) v);
        else sb.append(v);
    }

    Json put(String k, String v) {
        key(k);
        if (v == null) sb.append("null");
        else string(v);
        return this;
    }

    Json put(String k, long v) {
        key(k);
        sb.append(v);
        return this;
    }

    Json put(String k, Integer v) {
        key(k);
        sb.append(v == null ? "null" : v.toString());
        return this;
    }

    Json put(String k, boolean v) {
        key(k);
        sb.append(v);
        return this;
    }

    /** A number; NaN (absent) is written as null. */
    Json put(String k, double v) {
        key(k);
        number(v);
        return this;
    }

    Json put(String k, double[] values) {
        key(k);
        sb.append('[');
        for (int i = 0; i < values.length; i++) {
            if (i > 0) sb.append(", ");
            number(values[i]);
        }
        sb.append(']');
        return this;
    }

    @Override
    public String toString() { return sb + "}"; }
}
