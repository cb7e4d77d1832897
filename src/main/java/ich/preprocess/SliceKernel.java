package ich.preprocess;

import ich.hu.HounsfieldTransform;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The CPU reference of the fused preprocessing kernel, for one slice: stored pixels, HU, each window
 * channel, crop + bilinear resize, flip, optional normalisation, fp32 out in NCHW or NHWC.
 *
 * <p>Resampling convention (pixel centres, as OpenCV INTER_LINEAR and PyTorch align_corners=false): output
 * pixel {@code ox} samples source x = {@code box.x + (ox + 0.5) * box.width / outW - 0.5}, clamped to
 * [0, columns - 1] (edge pixels repeat); same for y. Windows are applied to HU at source pixels, then
 * interpolated, as the seed windows at full resolution and resizes afterwards. A linear window's clamp is done
 * at the source pixels and its affine map {@code (v - low) * scale} once after the interpolation: the same
 * function (interpolation commutes with an affine map) with a quarter of the map's arithmetic, one of the cuts
 * that brought the GPU kernel to memory speed. A flipped sample writes output column {@code outW - 1 - ox}.
 * All arithmetic is fp32 in the order written here, each interpolation step one fused multiply-add
 * ({@link Math#fma}), so the GPU kernel can follow it operation for operation.
 *
 * <p>Cost per 224 x 224 output from a 512 x 512 slice: HU for each of the ~450 source rows the box touches
 * (230 k samples, read once: 450 KiB), per channel the window over those rows (230 k clamps, SIMD), a
 * horizontal lerp per touched row and output column (100 k) and a vertical lerp per output pixel (50 k).
 * About 2 MFLOP for BSB; the working set is a few rows, so it runs from L1/L2; writes 600 KiB.
 */
public final class SliceKernel {
    public enum Layout { NCHW, NHWC }

    /** Per-channel (v - mean) / std after windowing; ImageNet's for pretrained backbones. */
    public record Normalization(float[] mean, float[] std) {
        public static final Normalization IMAGENET = new Normalization(new float[]{0.485f, 0.456f, 0.406f}, new float[]{0.229f, 0.224f, 0.225f});
    }

    private SliceKernel() {}

    /** Work buffers of one thread, grown on demand and reused, so a slice allocates nothing. */
    public static final class Scratch {
        float[] huRow = new float[0], rowBuf = new float[0], outRow = new float[0], fx = new float[0], fy = new float[0];
        float[][] slots = new float[0][];
        int[] x0 = new int[0], x1 = new int[0], y0 = new int[0], y1 = new int[0];

        void ensure(int columns, int channels, int outH, int outW) {
            if (huRow.length < columns) { huRow = new float[columns]; rowBuf = new float[columns]; }
            if (outRow.length < outW) outRow = new float[outW];
            if (slots.length < 2 * channels || slots[0].length < outW) {
                slots = new float[2 * channels][outW];
            }
            if (x0.length < outW) { x0 = new int[outW]; x1 = new int[outW]; fx = new float[outW]; }
            if (y0.length < outH) { y0 = new int[outH]; y1 = new int[outH]; fy = new float[outH]; }
        }
    }

    /**
     * Writes {@code windows.length * outH * outW} floats at byte offset {@code outOffset} of {@code out}.
     *
     * @param framePixels one frame's stored pixels, native little-endian layout
     * @param scratch     work buffers, owned by the calling thread
     */
    public static void run(MemorySegment framePixels, int rows, int columns, HounsfieldTransform hu, Window[] windows,
                           CropBox box, boolean flip, int outH, int outW, Normalization norm, Layout layout,
                           MemorySegment out, long outOffset, Scratch scratch) {
        int c = windows.length;
        if (norm != null && (norm.mean().length < c || norm.std().length < c)) {
            throw new IllegalArgumentException("normalisation has " + norm.mean().length + " channels, the windows " + c);
        }
        float scaleX = (float) (box.width() / outW), scaleY = (float) (box.height() / outH);
        float bx = (float) box.x(), by = (float) box.y();

        scratch.ensure(columns, c, outH, outW);
        int[] x0 = scratch.x0, x1 = scratch.x1, y0 = scratch.y0, y1 = scratch.y1;
        float[] fx = scratch.fx, fy = scratch.fy;
        for (int ox = 0; ox < outW; ox++) {
            float sx = Math.min(Math.max(bx + (ox + 0.5f) * scaleX - 0.5f, 0f), columns - 1);
            x0[ox] = (int) sx;
            x1[ox] = Math.min(x0[ox] + 1, columns - 1);
            fx[ox] = sx - x0[ox];
        }
        for (int oy = 0; oy < outH; oy++) {
            float sy = Math.min(Math.max(by + (oy + 0.5f) * scaleY - 0.5f, 0f), rows - 1);
            y0[oy] = (int) sy;
            y1[oy] = Math.min(y0[oy] + 1, rows - 1);
            fy[oy] = sy - y0[oy];
        }
        // Streaming, so everything stays in L1/L2: each output row needs source rows y0 and y1; each source row
        // is converted to HU, windowed per channel and resampled horizontally once, into one of two slots per
        // channel; the output row is the vertical lerp of the two slots. Same arithmetic as the direct
        // 2 x 2 form: v0 + (v1 - v0) * fx along x, then t + (b - t) * fy along y.
        float[] huRow = scratch.huRow, rowBuf = scratch.rowBuf, outRow = scratch.outRow;
        float[][] slots = scratch.slots;
        int[] slotRow = {-1, -1};
        long plane = (long) outH * outW;
        float[] lo = new float[c], hi = new float[c], sc = new float[c], bi = new float[c], mean = new float[c], invStd = new float[c];
        float[] mapLow = new float[c], mapScale = new float[c];
        for (int k = 0; k < c; k++) {
            lo[k] = windows[k].low();
            hi[k] = windows[k].high();
            sc[k] = windows[k].scale();
            bi[k] = windows[k].bias();
            mean[k] = norm == null ? 0f : norm.mean()[k];
            invStd[k] = norm == null ? 1f : 1f / norm.std()[k];
            // A sigmoid window is applied at the source pixels: its map after the interpolation is the identity.
            mapLow[k] = windows[k].sigmoid() ? 0f : lo[k];
            mapScale[k] = windows[k].sigmoid() ? 1f : sc[k];
        }
        for (int oy = 0; oy < outH; oy++) {
            int s0 = slotFor(y0[oy], -1, slotRow);
            if (s0 < 0) s0 = fill(y0[oy], slotRow[1] == y1[oy] ? 0 : (slotRow[0] == y1[oy] ? 1 : 0), slotRow, framePixels, columns, hu, windows,
                    lo, hi, sc, bi, huRow, rowBuf, x0, x1, fx, slots, outW);
            int s1 = slotFor(y1[oy], s0, slotRow);
            if (s1 < 0) s1 = fill(y1[oy], 1 - s0, slotRow, framePixels, columns, hu, windows, lo, hi, sc, bi, huRow, rowBuf, x0, x1, fx, slots, outW);
            for (int k = 0; k < c; k++) {
                verticalLerp(slots[2 * k + s0], slots[2 * k + s1], fy[oy], mapLow[k], mapScale[k], mean[k], invStd[k], outRow, outW);
                if (flip) reverse(outRow, 0, outW);
                if (layout == Layout.NCHW) {
                    MemorySegment.copy(outRow, 0, out, ValueLayout.JAVA_FLOAT_UNALIGNED, outOffset + 4 * (k * plane + (long) oy * outW), outW);
                } else {
                    long base = outOffset + 4L * ((long) oy * outW * c + k);
                    for (int ox = 0; ox < outW; ox++) out.set(ValueLayout.JAVA_FLOAT_UNALIGNED, base + 4L * ox * c, outRow[ox]);
                }
            }
        }
    }

    /** The slot already holding source row {@code r} (other than {@code not}), or -1. */
    private static int slotFor(int r, int not, int[] slotRow) {
        if (slotRow[0] == r && not != 0) return 0;
        if (slotRow[1] == r && not != 1) return 1;
        if (slotRow[0] == r || slotRow[1] == r) return not; // y0 == y1 at the bottom edge: share the slot
        return -1;
    }

    /**
     * Converts, windows (a linear window: only its clamp) and horizontally resamples source row {@code r} into
     * {@code slot} of every channel.
     */
    private static int fill(int r, int slot, int[] slotRow, MemorySegment pixels, int columns, HounsfieldTransform hu, Window[] windows,
                            float[] lo, float[] hi, float[] sc, float[] bi, float[] huRow, float[] rowBuf,
                            int[] x0, int[] x1, float[] fx, float[][] slots, int outW) {
        hu.apply(pixels, (long) r * columns, columns, huRow, 0);
        for (int k = 0; k < windows.length; k++) {
            if (windows[k].sigmoid()) sigmoidRow(huRow, 0, rowBuf, columns, sc[k], bi[k]);
            else clampRow(huRow, 0, rowBuf, columns, lo[k], hi[k]);
            horizontalLerp(rowBuf, x0, x1, fx, slots[2 * k + slot], 0, outW);
        }
        slotRow[slot] = r;
        return slot;
    }

    // Small loops in methods of their own: C2 vectorises them reliably, which it did not inside run().

    private static void clampRow(float[] hu, int from, float[] dst, int n, float l, float h) {
        for (int x = 0; x < n; x++) dst[x] = Math.min(Math.max(hu[from + x], l), h);
    }

    private static void sigmoidRow(float[] hu, int from, float[] dst, int n, float w, float b) {
        for (int x = 0; x < n; x++) dst[x] = sigmoid(hu[from + x], w, b);
    }

    private static void horizontalLerp(float[] row, int[] x0, int[] x1, float[] fx, float[] dst, int at, int n) {
        for (int ox = 0; ox < n; ox++) {
            float v0 = row[x0[ox]];
            dst[at + ox] = Math.fma(row[x1[ox]] - v0, fx[ox], v0);
        }
    }

    /**
     * The vertical lerp, then a linear window's map {@code (v - low) * scale} and the normalisation {@code (v - mean)
     * * invStd}, in one pass. Where there is no map (a sigmoid window: low 0, scale 1) or no normalisation (mean 0,
     * invStd 1) those steps give v back exactly (v - 0 and v * 1 round to v, -0.0 and NaN included), as the GPU
     * kernel's skipped steps do.
     */
    private static void verticalLerp(float[] top, float[] bottom, float wy, float low, float scale, float mean, float invStd,
                                     float[] dst, int n) {
        for (int ox = 0; ox < n; ox++) {
            float t = top[ox];
            dst[ox] = ((Math.fma(bottom[ox] - t, wy, t) - low) * scale - mean) * invStd;
        }
    }

    private static void reverse(float[] a, int from, int n) {
        for (int i = from, j = from + n - 1; i < j; i++, j--) {
            float t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }

    static float sigmoid(float hu, float w, float b) {
        return (float) (1.0 / (1.0 + Math.exp(-(w * hu + b))));
    }
}
