package ich.nn.cpu;

import ich.nn.ConvGeometry;
import ich.nn.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Depthwise convolution (groups == c == k), one channel plane at a time, each kernel tap as one long unit-stride
 * loop over the whole plane.
 *
 * <p>The plane is copied into a zero-padded buffer split into stride phases: phase (a, b) holds the padded rows
 * a, a + stride, ... and in them the columns b, b + stride, ..., each phase row {@code wq} wide. Input pixel
 * (p stride + r, q stride + s) is then element (p + r / stride) wq + q + s / stride of phase (r % stride,
 * s % stride), so for a fixed tap the output, kept {@code wq} wide, is out[i] += k * in[offset + i] over all
 * i = p wq + q at once. Columns q >= Q of that output are junk and dropped; for the backward passes the
 * gradient's columns q >= Q are zero, so the junk adds nothing.
 *
 * <p>All taps of an output vector are summed in a register ({@link ElementOps#taps}): the forward reads the
 * buffer once a tap and writes the output once, where a loop a tap would read and write the output 25 times for
 * a 5x5 filter. The data gradient at stride 1 is the same gather with the taps' offsets mirrored, over the
 * gradient placed in a zero-padded buffer; at stride 2 it scatters a tap at a time into the phases. The filter
 * gradient sums a tap's exact products in double across the whole batch before reducing its lanes (fp32 sums of these mostly
 * cancelling products lost enough bits to stall OverfitTest).
 *
 * <p>Napkin: a 5x5 tap loop over a 14 x 15 output plane is 210 multiply-adds, 14 AVX-512 FMAs; the plane
 * (3 KiB) stays in L1, so the cost is the FMAs and their loads, not memory.
 */
final class Depthwise {
    private final ConvGeometry g;
    private final int p;
    private final int q;
    /** Rows of one phase. */
    private final int hq;
    /** Columns of one phase, and the row stride of the wide output. */
    private final int wq;
    private final ElementOps ops;
    /** Buffer index of each input pixel, for strided widths (a scatter without per-element arithmetic). */
    private final int[] map;
    /**
     * The wide output rounded up to whole vectors: the tap loops run over this many elements, so they have no
     * scalar tail. On the late planes the tail was most of the work: 3 x 3 outputs with a 5x5 kernel are 21 wide
     * elements, one 16-lane vector and 5 scalar steps per tap; now two vectors. The extra elements are junk
     * like the columns q >= Q (and zero in the gradients, so the backward passes add nothing from them).
     */
    private final int span;
    /** Each tap's offset in the phase buffer, r-major: the input of wide-output element i is buffer[offset + i]. */
    private final int[] tapOffsets;
    /**
     * Stride 1 only (else null): where each tap's term of the data gradient's padded element j0 + i sits in the
     * gradient buffer, G[gatherOffsets[t] + i]; G holds the wide gradient from {@link #gradientStart}, zeros around.
     */
    private final int[] gatherOffsets;
    /** Where the wide gradient starts in G: the largest tap offset, so that no gather index is negative. */
    private final int gradientStart;
    /** Padded elements the stride-1 data gradient computes: the h rows of the unpadded input, rounded to vectors. */
    private final int interior;

    Depthwise(ConvGeometry g, ElementOps ops) {
        this.g = g;
        this.ops = ops;
        this.p = g.p();
        this.q = g.q();
        int rowsPadded = Math.max(g.h() + 2 * g.padH(), (p - 1) * g.strideH() + g.r());
        int colsPadded = Math.max(g.w() + 2 * g.padW(), (q - 1) * g.strideW() + g.s());
        this.hq = (rowsPadded + g.strideH() - 1) / g.strideH();
        this.wq = (colsPadded + g.strideW() - 1) / g.strideW();
        this.span = (p * wq + ops.lanes() - 1) / ops.lanes() * ops.lanes();
        this.tapOffsets = new int[g.r() * g.s()];
        for (int rr = 0; rr < g.r(); rr++) for (int ss = 0; ss < g.s(); ss++) tapOffsets[rr * g.s() + ss] = index(rr, ss);
        boolean unitStride = g.strideH() == 1 && g.strideW() == 1;
        this.gradientStart = tapOffsets[tapOffsets.length - 1];
        this.interior = (g.h() * wq + ops.lanes() - 1) / ops.lanes() * ops.lanes();
        this.gatherOffsets = unitStride ? new int[tapOffsets.length] : null;
        if (unitStride) {
            for (int t = 0; t < tapOffsets.length; t++) gatherOffsets[t] = gradientStart - tapOffsets[t] + g.padH() * wq;
        }
        this.map = g.strideW() == 1 ? null : new int[g.h() * g.w()];
        if (map != null) {
            for (int hh = 0; hh < g.h(); hh++) {
                for (int ww = 0; ww < g.w(); ww++) map[hh * g.w() + ww] = index(hh + g.padH(), ww + g.padW());
            }
        }
    }

    /** The phases and one row of slack that the junk columns of the last row run into. */
    private int bufferSize() {
        return g.strideH() * g.strideW() * hq * wq + wq + span - wide();
    }

    private int wide() {
        return p * wq;
    }

    /** Index in the phase buffer of padded (row, col). */
    private int index(int row, int col) {
        int sh = g.strideH(), sw = g.strideW();
        return (((row % sh) * sw + col % sw) * hq + row / sh) * wq + col / sw;
    }

    private void load(MemorySegment x, int plane, float[] raw, float[] buf) {
        int h = g.h(), w = g.w();
        MemorySegment.copy(x, Tensor.FLOAT, (long) plane * h * w * Float.BYTES, raw, 0, h * w);
        Arrays.fill(buf, 0, bufferSize(), 0f);
        if (map != null) {
            for (int i = 0, n = h * w; i < n; i++) buf[map[i]] = raw[i];
            return;
        }
        for (int hh = 0; hh < h; hh++) System.arraycopy(raw, hh * w, buf, index(hh + g.padH(), g.padW()), w);
    }

    /** dy of one plane, widened to wq columns with zeros beyond q. */
    private void loadWide(MemorySegment dy, int plane, float[] wideBuf) {
        Arrays.fill(wideBuf, 0, span, 0f);
        long base = (long) plane * p * q;
        for (int pp = 0; pp < p; pp++) {
            MemorySegment.copy(dy, Tensor.FLOAT, (base + (long) pp * q) * Float.BYTES, wideBuf, pp * wq, q);
        }
    }

    private float[] kernel(MemorySegment wt, int channel, float[] k) {
        int rs = g.r() * g.s();
        MemorySegment.copy(wt, Tensor.FLOAT, (long) channel * rs * Float.BYTES, k, 0, rs);
        return k;
    }

    void forward(MemorySegment x, MemorySegment wt, MemorySegment y, int plane0, int plane1, Scratch scratch) {
        int r = g.r(), s = g.s(), c = g.c(), n = span;
        float[] raw = scratch.get(Scratch.PLANE, g.h() * g.w());
        float[] buf = scratch.get(Scratch.PLANE2, bufferSize());
        float[] out = scratch.get(Scratch.OUT, n);
        float[] k = new float[r * s];
        for (int plane = plane0; plane < plane1; plane++) {
            kernel(wt, plane % c, k);
            load(x, plane, raw, buf);
            ops.taps(k, tapOffsets, r * s, buf, out, n);
            for (int pp = 1; pp < p; pp++) System.arraycopy(out, pp * wq, out, pp * q, q);
            MemorySegment.copy(out, 0, y, Tensor.FLOAT, (long) plane * p * q * Float.BYTES, p * q);
        }
    }

    void backwardData(MemorySegment dy, MemorySegment wt, MemorySegment dx, int plane0, int plane1, Scratch scratch) {
        if (gatherOffsets != null) {
            backwardDataGathered(dy, wt, dx, plane0, plane1, scratch);
            return;
        }
        int r = g.r(), s = g.s(), c = g.c(), h = g.h(), w = g.w(), n = span;
        float[] grad = scratch.get(Scratch.OUT, n);
        float[] buf = scratch.get(Scratch.PLANE2, bufferSize());
        float[] raw = scratch.get(Scratch.PLANE, h * w);
        float[] k = new float[r * s];
        for (int plane = plane0; plane < plane1; plane++) {
            kernel(wt, plane % c, k);
            loadWide(dy, plane, grad);
            Arrays.fill(buf, 0, bufferSize(), 0f);
            for (int t = 0; t < r * s; t++) ops.axpy(k[t], grad, 0, buf, tapOffsets[t], n);
            if (map != null) {
                for (int i = 0, m = h * w; i < m; i++) raw[i] = buf[map[i]];
            } else {
                for (int hh = 0; hh < h; hh++) System.arraycopy(buf, index(hh + g.padH(), g.padW()), raw, hh * w, w);
            }
            MemorySegment.copy(raw, 0, dx, Tensor.FLOAT, (long) plane * h * w * Float.BYTES, h * w);
        }
    }

    /**
     * Stride 1: dx's padded element j = j0 + i is the sum over taps of k[t] * wideGradient[j - offset[t]], the
     * forward's gather with mirrored offsets, over the gradient at {@link #gradientStart} in a zeroed buffer. The
     * taps are added in the scatter's order, so the bits are the scatter's (but for the sign of a zero sum).
     */
    private void backwardDataGathered(MemorySegment dy, MemorySegment wt, MemorySegment dx, int plane0, int plane1, Scratch scratch) {
        int r = g.r(), s = g.s(), c = g.c(), h = g.h(), w = g.w(), padW = g.padW();
        // what the gather reads, and room for every gradient row (more than it reads when padding exceeds the filter)
        int gradientLength = gradientStart + Math.max(g.padH() * wq + interior, p * wq);
        float[] grad = scratch.get(Scratch.PLANE2, gradientLength);
        float[] inner = scratch.get(Scratch.OUT, interior);
        float[] raw = scratch.get(Scratch.PLANE, h * w);
        float[] k = new float[r * s];
        for (int plane = plane0; plane < plane1; plane++) {
            kernel(wt, plane % c, k);
            Arrays.fill(grad, 0, gradientLength, 0f);
            long base = (long) plane * p * q;
            for (int pp = 0; pp < p; pp++) {
                MemorySegment.copy(dy, Tensor.FLOAT, (base + (long) pp * q) * Float.BYTES, grad, gradientStart + pp * wq, q);
            }
            ops.taps(k, gatherOffsets, r * s, grad, inner, interior);
            for (int hh = 0; hh < h; hh++) System.arraycopy(inner, hh * wq + padW, raw, hh * w, w);
            MemorySegment.copy(raw, 0, dx, Tensor.FLOAT, (long) plane * h * w * Float.BYTES, h * w);
        }
    }

    /** dw for channels c0..c1, summed over the batch; each channel is owned by one caller, so no reduction. */
    void backwardFilter(MemorySegment x, MemorySegment dy, MemorySegment dw, int c0, int c1, Scratch scratch) {
        int r = g.r(), s = g.s(), c = g.c(), n = span;
        float[] raw = scratch.get(Scratch.PLANE, g.h() * g.w());
        float[] buf = scratch.get(Scratch.PLANE2, bufferSize());
        float[] grad = scratch.get(Scratch.OUT, n);
        double[] sums = new double[r * s * ops.productLanes()];
        for (int ch = c0; ch < c1; ch++) {
            Arrays.fill(sums, 0);
            for (int img = 0; img < g.n(); img++) {
                int plane = img * c + ch;
                load(x, plane, raw, buf);
                loadWide(dy, plane, grad);
                // the gradient is 0 past the valid columns and rows, so the junk elements add nothing
                ops.tapProducts(grad, buf, tapOffsets, r * s, n, sums);
            }
            for (int t = 0; t < r * s; t++) dw.setAtIndex(Tensor.FLOAT, (long) ch * r * s + t, (float) ops.sumLanes(sums, t));
        }
    }
}
