package ich.gpu;

import ich.hu.HounsfieldTransform;
import ich.preprocess.Window;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

/** Fresh random slices for the GPU-versus-CPU comparisons: every encoding parameter the kernel takes varies. */
final class RandomSlices {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** With a negative slope, for HU values of -0.0 (a stored 0 times -1, plus an intercept of -0.0). */
    private static final float[] SLOPES = {1f, 0.5f, 2.5f, 1.2f, -1f};

    private RandomSlices() {}

    /**
     * A slice of random size up to {@code maxSize} on each side: 12 or 16 bits stored (High Bit at the top of
     * the stored bits, or at 15), signed or not, junk in the unused high bits, a slope and intercept, the RSNA
     * fix on some unsigned 12-bit slices, CT-like values with noise so every window sees both clamps and ramp, and
     * some stored zeros (HU -0.0 with a negative slope and an intercept of -0.0).
     */
    static GpuPreprocessor.Slice random(SplittableRandom rnd, Arena arena, Window[] windows, int maxSize, long key) {
        int rows = 8 + rnd.nextInt(maxSize - 7), columns = 8 + rnd.nextInt(maxSize - 7);
        int bitsStored = rnd.nextBoolean() ? 12 : 16;
        int highBit = bitsStored == 12 && rnd.nextInt(4) == 0 ? 15 : bitsStored - 1;
        boolean signed = rnd.nextBoolean();
        boolean fix = !signed && bitsStored == 12 && rnd.nextBoolean();
        float slope = fix ? 1f : SLOPES[rnd.nextInt(SLOPES.length)];
        float intercept = fix ? -1000f : switch (rnd.nextInt(4)) {
            case 0 -> -1024f;
            case 1 -> 0f;
            case 2 -> -0f;
            default -> (float) (rnd.nextDouble(-2000, 500));
        };
        var hu = new HounsfieldTransform(16, bitsStored, highBit, signed, fix, slope, intercept, null, false, 0, -1, -1024f, false);
        MemorySegment px = arena.allocate(2L * rows * columns, 64);
        int lowBit = highBit - bitsStored + 1;
        long mask = (1L << bitsStored) - 1;
        for (int i = 0; i < rows * columns; i++) {
            // HU from air to bone, mostly brain-range, turned back into a stored value (wrapping as the bits do)
            double h = switch (rnd.nextInt(6)) {
                case 0 -> rnd.nextDouble(-1100, -500);
                case 1 -> rnd.nextDouble(300, 2500);
                default -> rnd.nextDouble(-200, 200);
            };
            // some stored zeros: with slope -1 and intercept -0.0 their HU value is -0.0, at the brain window's low bound
            long stored = rnd.nextInt(16) == 0 ? 0 : Math.round((h - intercept) / slope) & mask;
            int word = (int) (stored << lowBit);
            int junk = rnd.nextInt(1 << 16) & ~(int) (mask << lowBit);
            px.setAtIndex(I16, i, (short) (word | junk));
        }
        return new GpuPreprocessor.Slice(px, rows, columns, hu, windows, key);
    }
}
