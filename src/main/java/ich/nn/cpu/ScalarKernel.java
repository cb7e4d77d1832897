package ich.nn.cpu;

/**
 * Plain loops for C2's auto-vectoriser: the 16-wide inner loop over a row of the tile becomes vector FMAs
 * on the accumulator array, which stays in L1. Slower than {@link VectorKernel} (loads and stores of the
 * accumulators every step instead of registers), used where the Vector API module is absent.
 */
final class ScalarKernel implements MicroKernel {
    static final int MR = 4;
    static final int NR = 16;

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
