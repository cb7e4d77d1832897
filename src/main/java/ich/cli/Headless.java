package ich.cli;

/** Charts and PNGs are drawn off screen: AWT must not look for a display. */
final class Headless {
    private Headless() {}

    /** Sets {@code java.awt.headless} unless the JVM was started with a choice; must run before AWT loads. */
    static void ensure() {
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }
}
