package ich.nn.cpu;

import ich.nn.ConvGeometry;
import ich.nn.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * Depthwise convolution (groups == c == k), one channel plane at a time. Each plane is copied into a zero-padded
 * buffer split into stride phases: phase f of a padded row holds its columns f, f + stride, f + 2 stride, ...
 * so input column q * stride + s is element q + s / stride of phase s % stride, and every inner loop runs over
 * consecutive q with unit stride (vectorised by C2) whether the convolution has stride 1 or 2.
 *
 * <p>Napkin: 5x5 on a 28x28 plane is 25 multiply-adds per output against one load and one store of the plane,
 * so the plane (3 KiB) lives in L1 and the loops are bound by the FMAs, not memory.
 */
final class Depthwise {
    private final ConvGeometry g;
    private final int p;
    private final int q;
    /** Padded rows, deep enough for the last output row's kernel. */
    private final int rowsPadded;
    /** Elements per row of one phase. */
    private final int phaseWidth;

    Depthwise(ConvGeometry g) {
        this.g = g;
        this.p = g.p();
        this.q = g.q();
        this.rowsPadded = Math.max(g.h() + 2 * g.padH(), (p - 1) * g.strideH() + g.r());
        int colsPadded = Math.max(g.w() + 2 * g.padW(), (q - 1) * g.strideW() + g.s());
        this.phaseWidth = (colsPadded + g.strideW() - 1) / g.strideW();
    }

    private int phasedSize() {
        return g.strideW() * rowsPadded * phaseWidth;
    }

    /** Index in the phased buffer of padded row {@code row}, padded column {@code col}. */
    private int phased(int row, int col) {
        int sw = g.strideW();
        return ((col % sw) * rowsPadded + row) * phaseWidth + col / sw;
    }

    /** Loads plane x[plane] (plane = n * c + c') into the phased buffer. */
    private void load(MemorySegment x, int plane, float[] raw, float[] phasedBuf) {
        int h = g.h(), w = g.w();
        MemorySegment.copy(x, Tensor.FLOAT, (long) plane * h * w * Float.BYTES, raw, 0, h * w);
        java.util.Arrays.fill(phasedBuf, 0, phasedSize(), 0f);
        int sw = g.strideW();
        for (int hh = 0; hh < h; hh++) {
            int row = hh + g.padH();
            if (sw == 1) {
                System.arraycopy(raw, hh * w, phasedBuf, phased(row, g.padW()), w);
            } else {
                for (int ww = 0; ww < w; ww++) phasedBuf[phased(row, ww + g.padW())] = raw[hh * w + ww];
            }
        }
    }

    void forward(MemorySegment x, MemorySegment wt, MemorySegment y, int plane0, int plane1, Scratch scratch) {
        int r = g.r(), s = g.s(), sh = g.strideH(), sw = g.strideW(), c = g.c();
        float[] raw = scratch.get(Scratch.PLANE, g.h() * g.w());
        float[] buf = scratch.get(Scratch.PLANE2, phasedSize());
        float[] out = scratch.get(Scratch.OUT, p * q);
        float[] k = new float[r * s];
        for (int plane = plane0; plane < plane1; plane++) {
            MemorySegment.copy(wt, Tensor.FLOAT, (long) (plane % c) * r * s * Float.BYTES, k, 0, r * s);
            load(x, plane, raw, buf);
            java.util.Arrays.fill(out, 0, p * q, 0f);
            for (int pp = 0; pp < p; pp++) {
                int o = pp * q;
                for (int rr = 0; rr < r; rr++) {
                    int row = pp * sh + rr;
                    for (int ss = 0; ss < s; ss++) {
                        float kv = k[rr * s + ss];
                        int in = ((ss % sw) * rowsPadded + row) * phaseWidth + ss / sw;
                        for (int qq = 0; qq < q; qq++) out[o + qq] += kv * buf[in + qq];
                    }
                }
            }
            MemorySegment.copy(out, 0, y, Tensor.FLOAT, (long) plane * p * q * Float.BYTES, p * q);
        }
    }

    void backwardData(MemorySegment dy, MemorySegment wt, MemorySegment dx, int plane0, int plane1, Scratch scratch) {
        int r = g.r(), s = g.s(), sh = g.strideH(), sw = g.strideW(), c = g.c(), h = g.h(), w = g.w();
        float[] grad = scratch.get(Scratch.OUT, p * q);
        float[] buf = scratch.get(Scratch.PLANE2, phasedSize());
        float[] raw = scratch.get(Scratch.PLANE, h * w);
        float[] k = new float[r * s];
        for (int plane = plane0; plane < plane1; plane++) {
            MemorySegment.copy(wt, Tensor.FLOAT, (long) (plane % c) * r * s * Float.BYTES, k, 0, r * s);
            MemorySegment.copy(dy, Tensor.FLOAT, (long) plane * p * q * Float.BYTES, grad, 0, p * q);
            java.util.Arrays.fill(buf, 0, phasedSize(), 0f);
            for (int pp = 0; pp < p; pp++) {
                int o = pp * q;
                for (int rr = 0; rr < r; rr++) {
                    int row = pp * sh + rr;
                    for (int ss = 0; ss < s; ss++) {
                        float kv = k[rr * s + ss];
                        int in = ((ss % sw) * rowsPadded + row) * phaseWidth + ss / sw;
                        for (int qq = 0; qq < q; qq++) buf[in + qq] += kv * grad[o + qq];
                    }
                }
            }
            for (int hh = 0; hh < h; hh++) {
                int row = hh + g.padH();
                if (sw == 1) {
                    System.arraycopy(buf, phased(row, g.padW()), raw, hh * w, w);
                } else {
                    for (int ww = 0; ww < w; ww++) raw[hh * w + ww] = buf[phased(row, ww + g.padW())];
                }
            }
            MemorySegment.copy(raw, 0, dx, Tensor.FLOAT, (long) plane * h * w * Float.BYTES, h * w);
        }
    }

    /** dw for channels c0..c1, summed over the batch; each channel is owned by one caller, so no reduction. */
    void backwardFilter(MemorySegment x, MemorySegment dy, MemorySegment dw, int c0, int c1, Scratch scratch) {
        int r = g.r(), s = g.s(), sh = g.strideH(), sw = g.strideW(), c = g.c();
        float[] raw = scratch.get(Scratch.PLANE, g.h() * g.w());
        float[] buf = scratch.get(Scratch.PLANE2, phasedSize());
        float[] grad = scratch.get(Scratch.OUT, p * q);
        // One q-long accumulator row per kernel tap: element-wise FMAs vectorise, a scalar reduction would not.
        float[] acc = scratch.get(Scratch.ROW, r * s * q);
        double[] sums = new double[r * s];
        for (int ch = c0; ch < c1; ch++) {
            java.util.Arrays.fill(sums, 0);
            for (int n = 0; n < g.n(); n++) {
                int plane = n * c + ch;
                load(x, plane, raw, buf);
                MemorySegment.copy(dy, Tensor.FLOAT, (long) plane * p * q * Float.BYTES, grad, 0, p * q);
                java.util.Arrays.fill(acc, 0, r * s * q, 0f);
                for (int pp = 0; pp < p; pp++) {
                    int o = pp * q;
                    for (int rr = 0; rr < r; rr++) {
                        int row = pp * sh + rr;
                        for (int ss = 0; ss < s; ss++) {
                            int in = ((ss % sw) * rowsPadded + row) * phaseWidth + ss / sw;
                            int a = (rr * s + ss) * q;
                            for (int qq = 0; qq < q; qq++) acc[a + qq] += grad[o + qq] * buf[in + qq];
                        }
                    }
                }
                for (int t = 0; t < r * s; t++) {
                    double sum = 0;
                    for (int qq = 0; qq < q; qq++) sum += acc[t * q + qq];
                    sums[t] += sum;
                }
            }
            for (int t = 0; t < r * s; t++) {
                dw.setAtIndex(Tensor.FLOAT, (long) ch * r * s + t, (float) sums[t]);
            }
        }
    }
}
