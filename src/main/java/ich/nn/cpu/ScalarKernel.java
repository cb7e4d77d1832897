package ich.nn.cpu;

/**
 * Plain loops for C2's auto-vectoriser: the 64-wide inner loop over a row of the tile becomes vector FMAs on
 * the accumulator array, which stays in L1 (64 wide because C2 unrolls short constant loops completely, and
 * then does not vectorise them). Slower than {@link VectorKernel} (a load and a store of the accumulators per
 * FMA instead of registers); used where the Vector API module is absent.
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
