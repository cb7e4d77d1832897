package ich.nn.cpu;

/**
 * Loops over float[] that C2 does not vectorise by itself: SiLU and sigmoid (Math.exp is scalar) and the
 * multiply-adds between two arrays that C2 cannot prove distinct. Where the Vector API is present they run
 * through {@link VectorElementOps} (explicit vectors, the JDK's vectorised exp); otherwise plain loops. exp is
 * within about 1 ulp either way, so results agree to ~1e-7 relative.
 */
abstract class ElementOps {
    static ElementOps create(CpuBackend.Kernel kernel) {
        return kernel == CpuBackend.Kernel.VECTOR ? VectorElementOps.create() : new Scalar();
    }

    /** Floats per vector: loops over a multiple of this have no scalar tail. */
    abstract int lanes();

    /** a[i] = a[i] * sigmoid(a[i]). */
    abstract void silu(float[] a, int len);

    /** d[i] = d[i] * s (1 + x (1 - s)) with s = sigmoid(x[i]). */
    abstract void siluBackward(float[] x, float[] d, int len);

    /** a[i] = sigmoid(a[i]). */
    abstract void sigmoid(float[] a, int len);

    /** y[yOff + i] += a * x[xOff + i] for i < n. */
    abstract void axpy(float a, float[] x, int xOff, float[] y, int yOff, int n);

    /**
     * out[i] = sum over t < taps of k[t] * in[offsets[t] + i], for i < n: a filter's taps applied at once, each
     * element's sum kept in a register instead of read and written once a tap. The taps are added in order, one
     * rounding each (fused in the vector form), so out equals zeroing it and running {@link #axpy} once a tap
     * bit for bit.
     */
    abstract void taps(float[] k, int[] offsets, int taps, float[] in, float[] out, int n);

    /**
     * For each row i < rowsA of a and j < rowsB of b (rows {@code ld} apart, the first {@code len} elements of each,
     * len a multiple of {@link #lanes()}): the products a[i][p] b[j][p] added into the pair's float partial sums
     * acc[(i rowsB + j) lanes() ..], lane p % lanes() taking element p. The partial sums are reduced by the caller
     * once, after the last call: the dot products of a 1x1 convolution's filter gradient run over n h w elements in
     * chunks.
     */
    abstract void rowDots(float[] a, int rowsA, float[] b, int rowsB, int len, int ld, float[] acc);

    /** Double partial sums per tap that {@link #tapProducts} keeps: the lanes of a double vector, 1 for plain loops. */
    abstract int productLanes();

    /**
     * For each tap t: the exact products a[i] * b[offsets[t] + i], i < n, added in double into the tap's partial
     * sums acc[t * productLanes() ..]. The partial sums are reduced once, by {@link #sumLanes}, after the last call,
     * not once a call: a depthwise filter gradient on a late 3 x 3 plane is 32 products a tap and image, and
     * reducing a vector's lanes cost more than computing them. The order is fixed by n and the calls alone.
     */
    abstract void tapProducts(float[] a, float[] b, int[] offsets, int taps, int n, double[] acc);

    /** Tap t's partial sums of {@link #tapProducts}, added in lane order. */
    final double sumLanes(double[] acc, int t) {
        int lanes = productLanes();
        double total = 0;
        for (int l = 0; l < lanes; l++) total += acc[t * lanes + l];
        return total;
    }

    /** out[0] += sum of (a[i] - shift), out[1] += sum of (a[i] - shift)^2, in a fixed order. */
    abstract void moments(float[] a, int len, float shift, double[] out);

    /** out[0] += sum of d[i], out[1] += sum of d[i] (x[i] - mean), in a fixed order. */
    abstract void gradientMoments(float[] d, float[] x, int len, float mean, double[] out);

    /** The sum of a[off + i], i < len, in double, in an order fixed by len alone. */
    abstract double sum(float[] a, int off, int len);

    /** The sum of a[off + i] * b[off + i], i < len, in double, in an order fixed by len alone. */
    abstract double products(float[] a, float[] b, int off, int len);

    /** a[i] = a[i] * scale + shift. */
    abstract void affine(float[] a, int len, float scale, float shift);

    /** d[i] = p d[i] + q x[i] + r. */
    abstract void combine(float[] d, float[] x, int len, float p, float q, float r);

    static float sigmoid(float v) {
        return (float) (1 / (1 + Math.exp(-v)));
    }

    static final class Scalar extends ElementOps {
        @Override
        int lanes() {
            return 1;
        }

        @Override
        void silu(float[] a, int len) {
            for (int i = 0; i < len; i++) a[i] = a[i] * sigmoid(a[i]);
        }

        @Override
        void siluBackward(float[] x, float[] d, int len) {
            for (int i = 0; i < len; i++) {
                float s = sigmoid(x[i]);
                d[i] = d[i] * s * (1 + x[i] * (1 - s));
            }
        }

        @Override
        void sigmoid(float[] a, int len) {
            for (int i = 0; i < len; i++) a[i] = sigmoid(a[i]);
        }

        @Override
        void moments(float[] a, int len, float shift, double[] out) {
            double s1 = 0, s2 = 0;
            for (int i = 0; i < len; i++) {
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
            for (int i = 0; i < len; i++) {
                s1 += d[i];
                s2 += (double) d[i] * (x[i] - mean);
            }
            out[0] += s1;
            out[1] += s2;
        }

        @Override
        double sum(float[] a, int off, int len) {
            double s = 0;
            for (int i = off; i < off + len; i++) s += a[i];
            return s;
        }

        @Override
        double products(float[] a, float[] b, int off, int len) {
            double s = 0;
            for (int i = off; i < off + len; i++) s += (double) a[i] * b[i];
            return s;
        }

        @Override
        void affine(float[] a, int len, float scale, float shift) {
            for (int i = 0; i < len; i++) a[i] = a[i] * scale + shift;
        }

        @Override
        void combine(float[] d, float[] x, int len, float p, float q, float r) {
            for (int i = 0; i < len; i++) d[i] = p * d[i] + q * x[i] + r;
        }

        @Override
        void axpy(float a, float[] x, int xOff, float[] y, int yOff, int n) {
            for (int i = 0; i < n; i++) y[yOff + i] += a * x[xOff + i];
        }

        @Override
        void taps(float[] k, int[] offsets, int taps, float[] in, float[] out, int n) {
            for (int i = 0; i < n; i++) {
                float sum = 0;
                for (int t = 0; t < taps; t++) sum += k[t] * in[offsets[t] + i];
                out[i] = sum;
            }
        }

        @Override
        int productLanes() {
            return 1;
        }

        @Override
        void rowDots(float[] a, int rowsA, float[] b, int rowsB, int len, int ld, float[] acc) {
            for (int i = 0; i < rowsA; i++) {
                for (int j = 0; j < rowsB; j++) {
                    float sum = acc[i * rowsB + j];
                    for (int p = 0; p < len; p++) sum += a[i * ld + p] * b[j * ld + p];
                    acc[i * rowsB + j] = sum;
                }
            }
        }

        @Override
        void tapProducts(float[] a, float[] b, int[] offsets, int taps, int n, double[] acc) {
            for (int t = 0; t < taps; t++) {
                double sum = acc[t];
                for (int i = 0, o = offsets[t]; i < n; i++) sum += (double) a[i] * b[o + i];
                acc[t] = sum;
            }
        }
    }
}
