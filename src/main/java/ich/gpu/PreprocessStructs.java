package ich.gpu;

import ich.preprocess.SliceKernel;
import ich.preprocess.Window;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

/**
 * The preprocessing kernel's parameter structs ({@code IchImage}, {@code IchChannel}, {@code IchBatch} in
 * cuda/preprocess.cu), byte for byte. The offsets are the ones the .cu file asserts with
 * {@code static_assert(offsetof(...))}; PreprocessStructsTest parses those asserts, so a change on either side
 * fails the build. x86-64 and the GPU are both little-endian; the writers say so explicitly anyway.
 */
public final class PreprocessStructs {
    private PreprocessStructs() {}

    public static final int IMAGE_BYTES = Kernels.IMAGE_STRUCT_BYTES, CHANNEL_BYTES = Kernels.CHANNEL_STRUCT_BYTES,
            BATCH_BYTES = Kernels.BATCH_STRUCT_BYTES, MAX_CHANNELS = Kernels.MAX_CHANNELS;

    // IchImage
    static final int IMAGE_PIXELS = 0, IMAGE_ROWS = 8, IMAGE_COLUMNS = 12, IMAGE_BITS_ALLOCATED = 16, IMAGE_SHIFT_LEFT = 20,
            IMAGE_SHIFT_RIGHT = 24, IMAGE_IS_SIGNED = 28, IMAGE_RSNA_FIX = 32, IMAGE_FLIP = 36, IMAGE_SLOPE = 40,
            IMAGE_INTERCEPT = 44, IMAGE_BOX_X = 48, IMAGE_BOX_Y = 52, IMAGE_STEP_X = 56, IMAGE_STEP_Y = 60;
    // IchChannel
    static final int CHANNEL_LOW = 0, CHANNEL_HIGH = 4, CHANNEL_SCALE = 8, CHANNEL_BIAS = 12, CHANNEL_SIGMOID = 16;
    // IchBatch
    static final int BATCH_CHANNELS = 0, BATCH_OUT_H = 4, BATCH_OUT_W = 8, BATCH_NORMALIZE = 12, BATCH_CHANNEL = 16,
            BATCH_MEAN = 176, BATCH_INV_STD = 208;

    /** Every mirrored field by its C name, "Struct.field" to offset, and "sizeof(Struct)" to size. */
    static final Map<String, Integer> LAYOUT = Map.ofEntries(
            Map.entry("sizeof(IchImage)", IMAGE_BYTES), Map.entry("sizeof(IchChannel)", CHANNEL_BYTES),
            Map.entry("sizeof(IchBatch)", BATCH_BYTES),
            Map.entry("IchImage.pixels", IMAGE_PIXELS), Map.entry("IchImage.rows", IMAGE_ROWS),
            Map.entry("IchImage.columns", IMAGE_COLUMNS), Map.entry("IchImage.bits_allocated", IMAGE_BITS_ALLOCATED),
            Map.entry("IchImage.shift_left", IMAGE_SHIFT_LEFT), Map.entry("IchImage.shift_right", IMAGE_SHIFT_RIGHT),
            Map.entry("IchImage.is_signed", IMAGE_IS_SIGNED), Map.entry("IchImage.rsna_fix", IMAGE_RSNA_FIX),
            Map.entry("IchImage.flip", IMAGE_FLIP), Map.entry("IchImage.slope", IMAGE_SLOPE),
            Map.entry("IchImage.intercept", IMAGE_INTERCEPT), Map.entry("IchImage.box_x", IMAGE_BOX_X),
            Map.entry("IchImage.box_y", IMAGE_BOX_Y), Map.entry("IchImage.step_x", IMAGE_STEP_X),
            Map.entry("IchImage.step_y", IMAGE_STEP_Y),
            Map.entry("IchChannel.low", CHANNEL_LOW), Map.entry("IchChannel.high", CHANNEL_HIGH),
            Map.entry("IchChannel.scale", CHANNEL_SCALE), Map.entry("IchChannel.bias", CHANNEL_BIAS),
            Map.entry("IchChannel.sigmoid", CHANNEL_SIGMOID),
            Map.entry("IchBatch.channels", BATCH_CHANNELS), Map.entry("IchBatch.out_h", BATCH_OUT_H),
            Map.entry("IchBatch.out_w", BATCH_OUT_W), Map.entry("IchBatch.normalize", BATCH_NORMALIZE),
            Map.entry("IchBatch.channel", BATCH_CHANNEL), Map.entry("IchBatch.mean", BATCH_MEAN),
            Map.entry("IchBatch.inv_std", BATCH_INV_STD));

    private static final ValueLayout.OfInt I32 = JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static void put(MemorySegment s, long at, int v) { s.set(I32, at, v); }

    private static void put(MemorySegment s, long at, float v) { s.set(F32, at, v); }

    private static void put(MemorySegment s, long at, long v) { s.set(I64, at, v); }

    /**
     * One IchImage at byte {@code at} of {@code dst}: the values SliceKernel.run derives, computed the same way
     * (the steps divided in double and rounded to float once).
     */
    static void writeImage(MemorySegment dst, long at, ImageParams p) {
        MemorySegment s = dst.asSlice(at, IMAGE_BYTES);
        s.fill((byte) 0);
        put(s, IMAGE_PIXELS, p.pixels());
        put(s, IMAGE_ROWS, p.rows());
        put(s, IMAGE_COLUMNS, p.columns());
        put(s, IMAGE_BITS_ALLOCATED, p.bitsAllocated());
        put(s, IMAGE_SHIFT_LEFT, p.shiftLeft());
        put(s, IMAGE_SHIFT_RIGHT, p.shiftRight());
        put(s, IMAGE_IS_SIGNED, p.signed() ? 1 : 0);
        put(s, IMAGE_RSNA_FIX, p.rsnaFix() ? 1 : 0);
        put(s, IMAGE_FLIP, p.flip() ? 1 : 0);
        put(s, IMAGE_SLOPE, p.slope());
        put(s, IMAGE_INTERCEPT, p.intercept());
        put(s, IMAGE_BOX_X, p.boxX());
        put(s, IMAGE_BOX_Y, p.boxY());
        put(s, IMAGE_STEP_X, p.stepX());
        put(s, IMAGE_STEP_Y, p.stepY());
    }

    /**
     * The IchBatch passed by value: channel windows as {@link Window}'s accessors give them, normalisation as
     * SliceKernel does it ({@code 1f / std} divided in float).
     */
    static void writeBatch(MemorySegment dst, Window[] windows, int outH, int outW, SliceKernel.Normalization norm) {
        int c = windows.length;
        if (c < 1 || c > MAX_CHANNELS) throw new IllegalArgumentException("the kernel takes 1 to " + MAX_CHANNELS + " channels, got " + c);
        if (norm != null && (norm.mean().length < c || norm.std().length < c)) {
            throw new IllegalArgumentException("normalisation has " + norm.mean().length + " channels, the windows " + c);
        }
        MemorySegment s = dst.asSlice(0, BATCH_BYTES);
        s.fill((byte) 0);
        put(s, BATCH_CHANNELS, c);
        put(s, BATCH_OUT_H, outH);
        put(s, BATCH_OUT_W, outW);
        put(s, BATCH_NORMALIZE, norm == null ? 0 : 1);
        for (int k = 0; k < c; k++) {
            long ch = BATCH_CHANNEL + (long) k * CHANNEL_BYTES;
            Window w = windows[k];
            put(s, ch + CHANNEL_LOW, w.sigmoid() ? 0f : w.low());
            put(s, ch + CHANNEL_HIGH, w.sigmoid() ? 0f : w.high());
            put(s, ch + CHANNEL_SCALE, w.scale());
            put(s, ch + CHANNEL_BIAS, w.bias());
            put(s, ch + CHANNEL_SIGMOID, w.sigmoid() ? 1 : 0);
            put(s, BATCH_MEAN + 4L * k, norm == null ? 0f : norm.mean()[k]);
            put(s, BATCH_INV_STD + 4L * k, norm == null ? 1f : 1f / norm.std()[k]);
        }
    }

    /**
     * The fields of one IchImage.
     *
     * @param pixels        device address of the frame's stored pixel words (0 for a CPU-fallback image)
     * @param bitsAllocated 16 for the kernel; 0 marks an image the host does on the CPU (the kernel writes NaN)
     */
    record ImageParams(long pixels, int rows, int columns, int bitsAllocated, int shiftLeft, int shiftRight,
                       boolean signed, boolean rsnaFix, boolean flip, float slope, float intercept,
                       float boxX, float boxY, float stepX, float stepY) {}
}
