package ich.gpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The stream's idle time between steps: a step queued after the device ran dry counts the time it sat idle, a step
 * queued while the device is still busy counts (next to) nothing. The GPU tests skip, saying why, where {@link
 * Gpu#probe()} finds no device.
 */
class StepGapsTest extends GpuContextFixture {
    /** The host's lateness in the late gap; the early gaps are microseconds. */
    static final long LATE_MILLIS = 60;

    @Test
    void onlyTheTimeTheDeviceWaitedForALateStepCounts() throws InterruptedException {
        requireGpu();
        long busyBytes = 256L << 20;
        try (StepGaps gaps = new StepGaps(context);
             Stream stream = context.createStream();
             DeviceBuffer busy = context.allocate(2 * busyBytes)) {
            gaps.stepBegins(stream); // before any step: no gap to measure
            // Step 1, then the host is late: the device finishes and waits.
            stream.copyOnDevice(busy.pointer(), busy.pointer() + busyBytes, busyBytes);
            gaps.stepQueued(stream);
            stream.synchronize();
            Thread.sleep(LATE_MILLIS);
            // Steps 2 to 11 queued while the device is busy with the step before (ten laps of more pairs than
            // StepGaps keeps, so pairs are read back and reused on the way).
            gaps.stepBegins(stream);
            for (int step = 2; step <= 11; step++) {
                for (int i = 0; i < 8; i++) stream.copyOnDevice(busy.pointer(), busy.pointer() + busyBytes, busyBytes);
                gaps.stepQueued(stream);
                if (step < 11) gaps.stepBegins(stream);
            }
            double idle = gaps.drainSeconds();
            assertEquals(10, gaps.gapsCounted(), "one gap between each two steps");
            assertTrue(idle >= (LATE_MILLIS - 1) / 1e3, "the late step's gap is at least the host's lateness: " + idle + " s");
            assertTrue(idle < (LATE_MILLIS + 40) / 1e3, "the early steps' gaps add next to nothing: " + idle + " s");

            // A new run of steps: the time between runs does not count, and the drain emptied the sum.
            Thread.sleep(LATE_MILLIS);
            gaps.stepBegins(stream);
            stream.copyOnDevice(busy.pointer(), busy.pointer() + busyBytes, busyBytes);
            gaps.stepQueued(stream);
            gaps.stepBegins(stream);
            stream.copyOnDevice(busy.pointer(), busy.pointer() + busyBytes, busyBytes);
            gaps.stepQueued(stream);
            double second = gaps.drainSeconds();
            assertEquals(11, gaps.gapsCounted());
            assertTrue(second < 20 / 1e3, "only the one early gap of the new run: " + second + " s");
        }
    }
}
