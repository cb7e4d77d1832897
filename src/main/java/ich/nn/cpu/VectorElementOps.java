package ich.nn.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link ElementOps} with a lane-wise exp of our own; the tail that does not fill a vector goes scalar.
 *
 * <p>Why not {@code VectorOperators.EXP}: compiled by C2 it is an SVML routine, interpreted or in C1 it is
 * {@code Math.exp} lane by lane, and the two differ in the last bit. A run's first steps execute cold code, so the
 * same training step gave other bits in a fresh JVM than in a warm one, and a resumed run could not end where an
 * uninterrupted one did. {@link #exp} uses only IEEE add, multiply, fused multiply-add and exact conversions, which
 * give the same bits however the code is executed.
 */
final class VectorElementOps extends ElementOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Doubles of a full vector, and the floats that widen into them (half a vector's width). */
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Float> HALF = VectorSpecies.of(float.class, VectorShape.forBitSize(D.vectorBitSize() / 2));
    // Cody-Waite split of ln 2 and the minimax polynomial of e^r on |r| <= ln2 / 2 (Cephes' expf), ~2 ulp.
    private static final float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    private static final float ROUNDER = 12582912f; // 1.5 * 2^23: x + ROUNDER - ROUNDER rounds x to an integer
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f,
            P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /**
     * e^x per lane. Inputs are clamped to [-87, 88], where 2^n stays a normal float: e^88 = 1.65e38 instead of
     * overflowing to infinity and e^-87 = 1.6e-38 instead of 0, both harmless in 1 / (1 + e^-x).
     */
    static FloatVector exp(FloatVector x) {
        x = x.max(-87f).min(88f);
        FloatVector n = x.mul(LOG2E).add(ROUNDER).sub(ROUNDER);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(S, -LN2_LO), r);
        FloatVector p = r.fma(P0, P1).fma(r, FloatVector.broadcast(S, P2)).fma(r, FloatVector.broadcast(S, P3))
                .fma(r, FloatVector.broadcast(S, P4)).fma(r, FloatVector.broadcast(S, P5));
        FloatVector e = p.mul(r).fma(r, r).add(1f);
        IntVector bits = ((IntVector) n.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
        return e.mul(bits.reinterpretAsFloats());
    }

    static ElementOps create() {
        return new VectorElementOps();
    }

    @Override
    int lanes() {
        return S.length();
    }

    // The exp-based ops run their tail as one masked vector, not scalar code: an element then gets the same bits
    // wherever the array it sits in starts and ends, so SiLU applied per batch-norm plane (the fused op) equals SiLU
    // over the tensor in chunks bit for bit, and the chunking of a parallel op never shows in its result.

    @Override
    void silu(float[] a, int len) {
        for (int i = 0; i < len; i += S.length()) {
            VectorMask<Float> m = S.indexInRange(i, len);
            FloatVector x = FloatVector.fromArray(S, a, i, m);
            x.div(exp(x.neg()).add(1f)).intoArray(a, i, m);
        }
    }

    @Override
    void siluBackward(float[] x, float[] d, int len) {
        for (int i = 0; i < len; i += S.length()) {
            VectorMask<Float> m = S.indexInRange(i, len);
            FloatVector v = FloatVector.fromArray(S, x, i, m);
            FloatVector s = FloatVector.broadcast(S, 1f).div(exp(v.neg()).add(1f));
            FloatVector g = FloatVector.fromArray(S, d, i, m);
            // s (1 + x (1 - s))
            FloatVector local = s.mul(v.mul(s.neg().add(1f)).add(1f));
            g.mul(local).intoArray(d, i, m);
        }
    }

    @Override
    void sigmoid(float[] a, int len) {
        FloatVector one = FloatVector.broadcast(S, 1f);
        for (int i = 0; i < len; i += S.length()) {
            VectorMask<Float> m = S.indexInRange(i, len);
            FloatVector x = FloatVector.fromArray(S, a, i, m);
            one.div(exp(x.neg()).add(1f)).intoArray(a, i, m);
        }
    }

    /**
     * Elements per float partial sum in {@link #moments}, {@link #sum} and {@link #products}: each lane adds up at most 1024 / lanes values in float
     * (64 for AVX-512) before the block's lanes go, in lane order, into a double. Vector adds, not a double
     * dependency chain: the statistics loops of batch norm ran at one element per add latency.
     */
    private static final int BLOCK = 1024;

    @Override
    void moments(float[] a, int len, float shift, double[] out) {
        double s1 = 0, s2 = 0;
        int i = 0, upper = S.loopBound(len);
        FloatVector sh = FloatVector.broadcast(S, shift);
        while (i < upper) {
            int end = Math.min(upper, i + BLOCK);
            FloatVector v1 = FloatVector.zero(S), v2 = v1;
            for (; i < end; i += S.length()) {
                FloatVector v = FloatVector.fromArray(S, a, i).sub(sh);
                v1 = v1.add(v);
                v2 = v.fma(v, v2);
            }
            for (int l = 0; l < S.length(); l++) {
                s1 += v1.lane(l);
                s2 += v2.lane(l);
            }
        }
        for (; i < len; i++) {
            double v = a[i] - shift;
            s1 += v;
            s2 += v * v;
        }
        out[0] += s1;
        out[1] += s2;
    }

    @Override
    void gradientMoments(float[] d, float[] x, int len, float mean, double[] out) {
        double s1 = 0, s2 = 0;
        int i = 0, upper = S.loopBound(len);
        FloatVector m = FloatVector.broadcast(S, mean);
        while (i < upper) {
            int end = Math.min(upper, i + BLOCK);
            FloatVector v1 = FloatVector.zero(S), v2 = v1;
            for (; i < end; i += S.length()) {
                FloatVector g = FloatVector.fromArray(S, d, i);
                v1 = v1.add(g);
                v2 = g.fma(FloatVector.fromArray(S, x, i).sub(m), v2);
            }
            for (int l = 0; l < S.length(); l++) {
                s1 += v1.lane(l);
                s2 += v2.lane(l);
            }
        }
        for (; i < len; i++) {
            s1 += d[i];
            s2 += (double) d[i] * (x[i] - mean);
        }
        out[0] += s1;
        out[1] += s2;
    }

    @Override
    double sum(float[] a, int off, int len) {
        double total = 0;
        int i = 0, upper = S.loopBound(len);
        while (i < upper) {
            int end = Math.min(upper, i + BLOCK);
            FloatVector v = FloatVector.zero(S);
            for (; i < end; i += S.length()) v = v.add(FloatVector.fromArray(S, a, off + i));
            for (int l = 0; l < S.length(); l++) total += v.lane(l);
        }
        for (; i < len; i++) total += a[off + i];
        return total;
    }

    @Override
    double products(float[] a, float[] b, int off, int len) {
        double total = 0;
        int i = 0, upper = S.loopBound(len);
        while (i < upper) {
            int end = Math.min(upper, i + BLOCK);
            FloatVector v = FloatVector.zero(S);
            for (; i < end; i += S.length()) v = FloatVector.fromArray(S, a, off + i).fma(FloatVector.fromArray(S, b, off + i), v);
            for (int l = 0; l < S.length(); l++) total += v.lane(l);
        }
        for (; i < len; i++) total += (double) a[off + i] * b[off + i];
        return total;
    }

    @Override
    void affine(float[] a, int len, float scale, float shift) {
        int i = 0;
        FloatVector sc = FloatVector.broadcast(S, scale), sh = FloatVector.broadcast(S, shift);
        for (int upper = S.loopBound(len); i < upper; i += S.length()) {
            FloatVector.fromArray(S, a, i).fma(sc, sh).intoArray(a, i);
        }
        for (; i < len; i++) a[i] = Math.fma(a[i], scale, shift);
    }

    @Override
    void combine(float[] d, float[] x, int len, float p, float q, float r) {
        int i = 0;
        FloatVector pv = FloatVector.broadcast(S, p), qv = FloatVector.broadcast(S, q), rv = FloatVector.broadcast(S, r);
        for (int upper = S.loopBound(len); i < upper; i += S.length()) {
            FloatVector.fromArray(S, d, i).fma(pv, FloatVector.fromArray(S, x, i).fma(qv, rv)).intoArray(d, i);
        }
        for (; i < len; i++) d[i] = Math.fma(d[i], p, Math.fma(x[i], q, r));
    }

    @Override
    void axpy(float a, float[] x, int xOff, float[] y, int yOff, int n) {
        FloatVector av = FloatVector.broadcast(S, a);
        int i = 0;
        for (int upper = S.loopBound(n); i < upper; i += S.length()) {
            FloatVector.fromArray(S, x, xOff + i).fma(av, FloatVector.fromArray(S, y, yOff + i)).intoArray(y, yOff + i);
        }
        for (; i < n; i++) y[yOff + i] += a * x[xOff + i];
    }

    @Override
    void taps(float[] k, int[] offsets, int taps, float[] in, float[] out, int n) {
        int i = 0;
        for (int upper = S.loopBound(n); i < upper; i += S.length()) {
            FloatVector sum = FloatVector.zero(S);
            for (int t = 0; t < taps; t++) sum = FloatVector.fromArray(S, in, offsets[t] + i).fma(FloatVector.broadcast(S, k[t]), sum);
            sum.intoArray(out, i);
        }
        for (; i < n; i++) {
            float sum = 0;
            for (int t = 0; t < taps; t++) sum += k[t] * in[offsets[t] + i]; // as axpy's scalar tail rounds
            out[i] = sum;
        }
    }

    @Override
    int productLanes() {
        return D.length();
    }

    /**
     * 4 x 4 row pairs at a time: 16 accumulators, and 8 loads for 16 FMAs a step, so the FMA units set the pace,
     * not the load ports (AVX-512 has 32 vector registers: the tile and its 8 operands fit); the rows left over
     * go a pair at a time. One method with the tile loop inside: with the tile in a method of its own, whether C2
     * inlined it varied from one JVM to the next, and so did the speed, by 2.5 x.
     */
    @Override
    void rowDots(float[] a, int rowsA, float[] b, int rowsB, int len, int ld, float[] acc) {
        int l = S.length();
        int tilesA = rowsA / 4 * 4, tilesB = rowsB / 4 * 4;
        for (int i = 0; i < tilesA; i += 4) {
            int a0 = i * ld, a1 = a0 + ld, a2 = a1 + ld, a3 = a2 + ld;
            for (int j = 0; j < tilesB; j += 4) {
                int r0 = (i * rowsB + j) * l, r1 = r0 + rowsB * l, r2 = r1 + rowsB * l, r3 = r2 + rowsB * l;
                FloatVector c00 = FloatVector.fromArray(S, acc, r0), c01 = FloatVector.fromArray(S, acc, r0 + l),
                        c02 = FloatVector.fromArray(S, acc, r0 + 2 * l), c03 = FloatVector.fromArray(S, acc, r0 + 3 * l);
                FloatVector c10 = FloatVector.fromArray(S, acc, r1), c11 = FloatVector.fromArray(S, acc, r1 + l),
                        c12 = FloatVector.fromArray(S, acc, r1 + 2 * l), c13 = FloatVector.fromArray(S, acc, r1 + 3 * l);
                FloatVector c20 = FloatVector.fromArray(S, acc, r2), c21 = FloatVector.fromArray(S, acc, r2 + l),
                        c22 = FloatVector.fromArray(S, acc, r2 + 2 * l), c23 = FloatVector.fromArray(S, acc, r2 + 3 * l);
                FloatVector c30 = FloatVector.fromArray(S, acc, r3), c31 = FloatVector.fromArray(S, acc, r3 + l),
                        c32 = FloatVector.fromArray(S, acc, r3 + 2 * l), c33 = FloatVector.fromArray(S, acc, r3 + 3 * l);
                int b0 = j * ld, b1 = b0 + ld, b2 = b1 + ld, b3 = b2 + ld;
                for (int p = 0; p < len; p += l) {
                    FloatVector x0 = FloatVector.fromArray(S, a, a0 + p), x1 = FloatVector.fromArray(S, a, a1 + p),
                            x2 = FloatVector.fromArray(S, a, a2 + p), x3 = FloatVector.fromArray(S, a, a3 + p);
                    FloatVector y = FloatVector.fromArray(S, b, b0 + p);
                    c00 = x0.fma(y, c00); c10 = x1.fma(y, c10); c20 = x2.fma(y, c20); c30 = x3.fma(y, c30);
                    y = FloatVector.fromArray(S, b, b1 + p);
                    c01 = x0.fma(y, c01); c11 = x1.fma(y, c11); c21 = x2.fma(y, c21); c31 = x3.fma(y, c31);
                    y = FloatVector.fromArray(S, b, b2 + p);
                    c02 = x0.fma(y, c02); c12 = x1.fma(y, c12); c22 = x2.fma(y, c22); c32 = x3.fma(y, c32);
                    y = FloatVector.fromArray(S, b, b3 + p);
                    c03 = x0.fma(y, c03); c13 = x1.fma(y, c13); c23 = x2.fma(y, c23); c33 = x3.fma(y, c33);
                }
                c00.intoArray(acc, r0); c01.intoArray(acc, r0 + l); c02.intoArray(acc, r0 + 2 * l); c03.intoArray(acc, r0 + 3 * l);
                c10.intoArray(acc, r1); c11.intoArray(acc, r1 + l); c12.intoArray(acc, r1 + 2 * l); c13.intoArray(acc, r1 + 3 * l);
                c20.intoArray(acc, r2); c21.intoArray(acc, r2 + l); c22.intoArray(acc, r2 + 2 * l); c23.intoArray(acc, r2 + 3 * l);
                c30.intoArray(acc, r3); c31.intoArray(acc, r3 + l); c32.intoArray(acc, r3 + 2 * l); c33.intoArray(acc, r3 + 3 * l);
            }
        }
        // the rows outside whole tiles, a pair at a time
        for (int i = 0; i < rowsA; i++) {
            for (int j = i < tilesA ? tilesB : 0; j < rowsB; j++) {
                int at = (i * rowsB + j) * l;
                FloatVector sum = FloatVector.fromArray(S, acc, at);
                for (int p = 0; p < len; p += l) sum = FloatVector.fromArray(S, a, i * ld + p).fma(FloatVector.fromArray(S, b, j * ld + p), sum);
                sum.intoArray(acc, at);
            }
        }
    }

    /**
     * Widened to double before multiplying, so every product is exact and only the double sums round. A depthwise
     * filter gradient is a long sum of products that mostly cancel; summed in fp32 its error is ~1e-7 of the
     * products' magnitude, not of the result, which was enough to keep OverfitTest's B0 from memorising its batch
     * (loss 0.25 after 60 steps, against 1e-4 in double). The tail that does not fill a vector goes to lane 0.
     */
    @Override
    void tapProducts(float[] a, float[] b, int[] offsets, int taps, int n, double[] acc) {
        int lanes = D.length(), upper = HALF.loopBound(n);
        for (int t = 0; t < taps; t++) {
            int o = offsets[t];
            DoubleVector sum = DoubleVector.fromArray(D, acc, t * lanes);
            for (int i = 0; i < upper; i += HALF.length()) {
                DoubleVector x = (DoubleVector) FloatVector.fromArray(HALF, a, i).convertShape(VectorOperators.F2D, D, 0);
                DoubleVector y = (DoubleVector) FloatVector.fromArray(HALF, b, o + i).convertShape(VectorOperators.F2D, D, 0);
                sum = x.fma(y, sum);
            }
            sum.intoArray(acc, t * lanes);
            for (int i = upper; i < n; i++) acc[t * lanes] += (double) a[i] * b[o + i];
        }
    }

}
