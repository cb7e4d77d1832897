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
 * interpolated, as the seed windows at full resolution and resizes afterwards. A flipped sample writes output
 * column {@code outW - 1 - ox}. All arithmetic is fp32 in the order written here, so the GPU kernel can
 * follow it operation for operation.
 *
 * <p>Cost per 224 x 224 output from a 512 x 512 slice: HU for the rows the box covers (<= 512 KiB read),
 * then per output pixel and channel 4 window evaluations and 3 lerps: about 50 k x 3 x 20 = 3 MFLOP.
 */
public final class SliceKernel {
    public enum Layout { NCHW, NHWC }

    /** Per-channel (v - mean) / std after windowing; ImageNet's for pretrained backbones. */
    public record Normalization(float[] mean, float[] std) {
        public static final Normalization IMAGENET = new Normalization(new float[]{0.485f, 0.456f, 0.406f}, new float[]{0.229f, 0.224f, 0.225f});
    }

    private SliceKernel() {}

    /**
     * Writes {@code windows.length * outH * outW} floats at byte offset {@code outOffset} of {@code out}.
     *
     * @param framePixels one frame's stored pixels, native little-endian layout
     * @param scratch     at least rows * columns floats, reused between calls by one thread
     */
    public static void run(MemorySegment framePixels, int rows, int columns, HounsfieldTransform hu, Window[] windows,
                           CropBox box, boolean flip, int outH, int outW, Normalization norm, Layout layout,
                           MemorySegment out, long outOffset, float[] scratch) {
        int c = windows.length;
        if (norm != null && (norm.mean().length < c || norm.std().length < c)) {
            throw new IllegalArgumentException("normalisation has " + norm.mean().length + " channels, the windows " + c);
        }
        float scaleX = (float) (box.width() / outW), scaleY = (float) (box.height() / outH);
        float bx = (float) box.x(), by = (float) box.y();

        int[] x0 = new int[outW], x1 = new int[outW];
        float[] fx = new float[outW];
        for (int ox = 0; ox < outW; ox++) {
            float sx = Math.min(Math.max(bx + (ox + 0.5f) * scaleX - 0.5f, 0f), columns - 1);
            x0[ox] = (int) sx;
            x1[ox] = Math.min(x0[ox] + 1, columns - 1);
            fx[ox] = sx - x0[ox];
        }
        int[] y0 = new int[outH], y1 = new int[outH];
        float[] fy = new float[outH];
        int rowLo = rows, rowHi = -1;
        for (int oy = 0; oy < outH; oy++) {
            float sy = Math.min(Math.max(by + (oy + 0.5f) * scaleY - 0.5f, 0f), rows - 1);
            y0[oy] = (int) sy;
            y1[oy] = Math.min(y0[oy] + 1, rows - 1);
            fy[oy] = sy - y0[oy];
            rowLo = Math.min(rowLo, y0[oy]);
            rowHi = Math.max(rowHi, y1[oy]);
        }
        // HU only for the rows the box touches.
        hu.apply(framePixels, (long) rowLo * columns, (rowHi - rowLo + 1) * columns, scratch, rowLo * columns);

        float[] lo = new float[c], hi = new float[c], scale = new float[c], bias = new float[c], mean = new float[c], invStd = new float[c];
        boolean[] sigmoid = new boolean[c];
        for (int k = 0; k < c; k++) {
            lo[k] = windows[k].low();
            hi[k] = windows[k].high();
            scale[k] = windows[k].scale();
            bias[k] = windows[k].bias();
            sigmoid[k] = windows[k].sigmoid();
            mean[k] = norm == null ? 0f : norm.mean()[k];
            invStd[k] = norm == null ? 1f : 1f / norm.std()[k];
        }
        // One channel plane at a time into a heap tile, then one bulk copy (NCHW) or an interleaving copy (NHWC):
        // straight-line inner loops that the JIT vectorises, instead of a layout branch per element.
        int plane = outH * outW;
        float[] tile = new float[plane];
        for (int k = 0; k < c; k++) {
            float l = lo[k], h = hi[k], s = scale[k], b = bias[k], m = mean[k], is = invStd[k];
            boolean sig = sigmoid[k];
            for (int oy = 0; oy < outH; oy++) {
                int r0 = y0[oy] * columns, r1 = y1[oy] * columns, row = oy * outW;
                float wy = fy[oy];
                for (int ox = 0; ox < outW; ox++) {
                    float h00 = scratch[r0 + x0[ox]], h01 = scratch[r0 + x1[ox]];
                    float h10 = scratch[r1 + x0[ox]], h11 = scratch[r1 + x1[ox]];
                    float v00, v01, v10, v11;
                    if (sig) {
                        v00 = sigmoid(h00, s, b);
                        v01 = sigmoid(h01, s, b);
                        v10 = sigmoid(h10, s, b);
                        v11 = sigmoid(h11, s, b);
                    } else {
                        v00 = (Math.min(Math.max(h00, l), h) - l) * s;
                        v01 = (Math.min(Math.max(h01, l), h) - l) * s;
                        v10 = (Math.min(Math.max(h10, l), h) - l) * s;
                        v11 = (Math.min(Math.max(h11, l), h) - l) * s;
                    }
                    float wx = fx[ox];
                    float top = v00 + (v01 - v00) * wx;
                    float bottom = v10 + (v11 - v10) * wx;
                    tile[row + ox] = (top + (bottom - top) * wy - m) * is;
                }
                if (flip) reverse(tile, row, outW);
            }
            if (layout == Layout.NCHW) {
                MemorySegment.copy(tile, 0, out, ValueLayout.JAVA_FLOAT_UNALIGNED, outOffset + 4L * k * plane, plane);
            } else {
                for (int p = 0; p < plane; p++) out.set(ValueLayout.JAVA_FLOAT_UNALIGNED, outOffset + 4L * ((long) p * c + k), tile[p]);
            }
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
