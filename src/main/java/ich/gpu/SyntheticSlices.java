package ich.gpu;

import ich.hu.HounsfieldTransform;
import ich.preprocess.Window;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** In-memory slices for throughput measurements ({@code ich bench preprocess}, the JMH benchmarks). */
public final class SyntheticSlices {
    private SyntheticSlices() {}

    /**
     * {@code n} head-like {@code size x size} slices stored as the commonest RSNA encoding (signed 16-bit, intercept
     * -1024): air, a skull ring, brain with noise, ventricles. The content matters little (neither path branches
     * on it) but keeps every window's clamps and ramp in use. Deterministic; sample keys 0..n-1.
     */
    public static List<GpuPreprocessor.Slice> heads(int n, int size, Window[] windows, Arena arena) {
        ValueLayout.OfShort s16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        HounsfieldTransform hu = new HounsfieldTransform(16, 16, 15, true, false, 1f, -1024f, null, false, 0, -1, -1024f, false);
        List<GpuPreprocessor.Slice> out = new ArrayList<>(n);
        SplittableRandom rnd = new SplittableRandom(42);
        double c = size / 2.0;
        for (int k = 0; k < n; k++) {
            MemorySegment px = arena.allocate(2L * size * size, 64);
            double a = size * (0.39 + 0.02 * rnd.nextDouble()), b = size * (0.45 + 0.02 * rnd.nextDouble());
            for (int y = 0; y < size; y++) {
                for (int x = 0; x < size; x++) {
                    double dx = (x - c) / a, dy = (y - c) / b, r = Math.sqrt(dx * dx + dy * dy);
                    double value = r > 1 ? -1000 : r > 0.93 ? 1200 : Math.abs(dx) < 0.08 && Math.abs(dy) < 0.25 ? 8 : 35;
                    value += rnd.nextGaussian() * 6;
                    px.setAtIndex(s16, (long) y * size + x, (short) Math.round(value + 1024));
                }
            }
            out.add(new GpuPreprocessor.Slice(px, size, size, hu, windows, k));
        }
        return out;
    }
}
