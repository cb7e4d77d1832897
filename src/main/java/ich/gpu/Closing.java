package ich.gpu;

/**
 * Closing several resources where one failing must not leave the others open (device memory, events and graphs
 * outlive a Java exception): every one is closed, and what failed is reported once, the rest suppressed in it.
 */
public final class Closing {
    private Closing() {}

    /**
     * Closes each non-null resource, in order, whatever the others do. Returns {@code failure} with every failure of
     * these closes suppressed in it; when {@code failure} is null, the first of them (a checked one wrapped in an
     * {@link IllegalStateException}) with the later ones suppressed; null when nothing failed.
     */
    public static RuntimeException closeEach(RuntimeException failure, Iterable<? extends AutoCloseable> resources) {
        for (AutoCloseable r : resources) {
            if (r == null) continue;
            try {
                r.close();
            } catch (Exception e) {
                if (failure == null) failure = e instanceof RuntimeException re ? re : new IllegalStateException(e);
                else failure.addSuppressed(e);
            }
        }
        return failure;
    }

    /** {@link #closeEach} with no earlier failure, throwing what failed. */
    public static void closeAll(Iterable<? extends AutoCloseable> resources) {
        RuntimeException failure = closeEach(null, resources);
        if (failure != null) throw failure;
    }
}
