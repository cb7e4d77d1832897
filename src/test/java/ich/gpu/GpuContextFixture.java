package ich.gpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInfo;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * What the driver-level GPU tests share: one probe and one context for the class (opened only where {@link
 * Gpu#probe()} finds a device, closed after the class), and {@link #requireGpu()}, which skips a test, saying why,
 * where there is none. The reason is also printed once per class, so CI logs say why its GPU tests did not run.
 */
abstract class GpuContextFixture {
    static Gpu.Probe probe;
    /** The class's context; null without a GPU. A test may close it and open another in its place. */
    static Context context;

    @BeforeAll
    static void openContext(TestInfo info) {
        probe = Gpu.probe();
        String name = info.getTestClass().map(Class::getSimpleName).orElse("a GPU test");
        if (probe instanceof Gpu.Unavailable u) System.err.println(name + ": GPU tests skipped: no GPU: " + u.reason());
        else context = Context.open(0);
    }

    @AfterAll
    static void closeContext() {
        if (context != null) context.close();
        context = null;
    }

    /** Skips the calling test where there is no GPU, with the probe's reason. */
    static void requireGpu() {
        assumeTrue(probe instanceof Gpu.Available, () -> "skipped: no GPU: " + ((Gpu.Unavailable) probe).reason());
    }
}
