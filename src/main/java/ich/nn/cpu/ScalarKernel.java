package ich.nn.cpu;

/**
 * Plain loops meant for C2's auto-vectoriser, for JVMs without the Vector API module. Measured, it runs at
 * scalar speed (10-25x below {@link VectorKernel} in ConvBenchmark): C2 does not vectorise the multiply-add
 * of one float[] into another, most likely because it cannot rule out that the two arrays alias. It is the
 * correctness fallback, not a fast path.
 */
final class ScalarKernel implements MicroKernel {
    static final int MR = 4;
    static final int NR = 64;

    @Override
    public int mr() {
        return MR;
    }

    @Override
    public int nr() {
        return NR;
    }

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void full(int kc, float[] a, int aOffset, float[] b, int bOffset, float[] c, int cOffset, int ldc,
                     boolean accumulate) {
        // 1 KiB per tile of 128 x 256 multiply-adds: the allocation is noise, and it keeps the kernel thread-safe.
        float[] acc = new float[MR * NR];
        for (int p = 0; p < kc; p++) {
            int bp = bOffset + p * NR;
            int ap = aOffset + p * MR;
            for (int i = 0; i < MR; i++) {
                float ai = a[ap + i];
                int row = i * NR;
                for (int j = 0; j < NR; j++) acc[row + j] += ai * b[bp + j];
            }
        }
        for (int i = 0; i < MR; i++) {
            int ci = cOffset + i * ldc;
            if (accumulate) {
                for (int j = 0; j < NR; j++) c[ci + j] += acc[i * NR + j];
            } else {
                System.arraycopy(acc, i * NR, c, ci, NR);
            }
        }
    }
}
