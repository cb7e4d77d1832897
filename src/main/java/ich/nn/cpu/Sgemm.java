package ich.nn.cpu;

/**
 * Single-precision C = A * B (+ C), blocked as in BLIS: a kc x nc block of B is packed into nr-wide column
 * panels, an mc x kc block of A into mr-high row panels, and the micro-kernel runs over the mr x nr tiles.
 * Single-threaded; callers split the work (images, groups, column ranges) across threads.
 *
 * <p>Sizes: a B micro-panel (kc x nr = 128 x 32 floats = 16 KiB) stays in L1 while the micro-kernel walks the
 * packed A block (mc x kc = 120 x 128 floats = 60 KiB) from L2; the packed B block (128 x 2048 floats = 1 MiB)
 * is read once per A block. Packing costs O(mk + kn) against O(mnk) multiply-adds.
 */
final class Sgemm {
    static final int KC = 128;
    static final int NC = 2048;

    private final MicroKernel kernel;
    private final int mr;
    private final int nr;
    private final int mc;

    Sgemm(MicroKernel kernel) {
        this.kernel = kernel;
        this.mr = kernel.mr();
        this.nr = kernel.nr();
        this.mc = mr * Math.max(1, 120 / mr);
    }

    MicroKernel kernel() {
        return kernel;
    }

    /**
     * C[m x n] (row stride ldc, from cOffset) = A[m x k] * B[k x n], added to C when {@code accumulate}.
     * With k == 0 C is zeroed (or left as is when accumulating).
     */
    void multiply(int m, int n, int k, Mat a, Mat b, float[] c, int cOffset, int ldc, boolean accumulate,
                  Scratch scratch) {
        if (k == 0) {
            if (!accumulate) {
                for (int i = 0; i < m; i++) java.util.Arrays.fill(c, cOffset + i * ldc, cOffset + i * ldc + n, 0f);
            }
            return;
        }
        int ncMax = Math.min(NC, roundUp(n, nr));
        float[] bp = scratch.get(Scratch.PACK_B, KC * ncMax);
        float[] ap = scratch.get(Scratch.PACK_A, mc * KC);
        float[] tile = scratch.get(Scratch.TILE, mr * nr);
        float[] rowBuffer = scratch.get(Scratch.ROW, KC);
        for (int jc = 0; jc < n; jc += NC) {
            int nc = Math.min(NC, n - jc);
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                boolean acc = accumulate || pc > 0;
                packB(b, pc, kc, jc, nc, bp, rowBuffer);
                for (int ic = 0; ic < m; ic += mc) {
                    int mcc = Math.min(mc, m - ic);
                    packA(a, ic, mcc, pc, kc, ap, rowBuffer);
                    for (int jr = 0; jr < nc; jr += nr) {
                        int nrr = Math.min(nr, nc - jr);
                        for (int ir = 0; ir < mcc; ir += mr) {
                            int mrr = Math.min(mr, mcc - ir);
                            int cAt = cOffset + (ic + ir) * ldc + jc + jr;
                            if (mrr == mr && nrr == nr) {
                                kernel.full(kc, ap, ir * kc, bp, jr * kc, c, cAt, ldc, acc);
                            } else {
                                kernel.full(kc, ap, ir * kc, bp, jr * kc, tile, 0, nr, false);
                                for (int i = 0; i < mrr; i++) {
                                    int ci = cAt + i * ldc;
                                    int ti = i * nr;
                                    if (acc) {
                                        for (int j = 0; j < nrr; j++) c[ci + j] += tile[ti + j];
                                    } else {
                                        System.arraycopy(tile, ti, c, ci, nrr);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /** Rows i0..i0+rows of A, columns p0..p0+kc, as mr-high panels: panel-major, then k, then row. */
    private void packA(Mat a, int i0, int rows, int p0, int kc, float[] dst, float[] rowBuffer) {
        for (int ir = 0; ir < rows; ir += mr) {
            int base = ir * kc;
            int mrr = Math.min(mr, rows - ir);
            if (a.colStride() == 1) {
                float[] row = rowBuffer;
                for (int i = 0; i < mr; i++) {
                    if (i >= mrr) {
                        for (int p = 0; p < kc; p++) dst[base + p * mr + i] = 0f;
                        continue;
                    }
                    a.copyRow(i0 + ir + i, p0, row, 0, kc);
                    for (int p = 0; p < kc; p++) dst[base + p * mr + i] = row[p];
                }
            } else if (a.array() != null && a.rowStride() == 1) {
                float[] src = a.array();
                for (int p = 0; p < kc; p++) {
                    int at = (int) (a.offset() + (long) (p0 + p) * a.colStride() + i0 + ir);
                    int d = base + p * mr;
                    for (int i = 0; i < mrr; i++) dst[d + i] = src[at + i];
                    for (int i = mrr; i < mr; i++) dst[d + i] = 0f;
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    int d = base + p * mr;
                    for (int i = 0; i < mrr; i++) dst[d + i] = a.get(i0 + ir + i, p0 + p);
                    for (int i = mrr; i < mr; i++) dst[d + i] = 0f;
                }
            }
        }
    }

    /** Rows p0..p0+kc of B, columns j0..j0+cols, as nr-wide panels: panel-major, then k, then column. */
    private void packB(Mat b, int p0, int kc, int j0, int cols, float[] dst, float[] rowBuffer) {
        for (int jr = 0; jr < cols; jr += nr) {
            int base = jr * kc;
            int nrr = Math.min(nr, cols - jr);
            if (b.colStride() == 1) {
                for (int p = 0; p < kc; p++) {
                    int d = base + p * nr;
                    b.copyRow(p0 + p, j0 + jr, dst, d, nrr);
                    for (int j = nrr; j < nr; j++) dst[d + j] = 0f;
                }
            } else if (b.segment() != null && b.rowStride() == 1) {
                // A transposed operand in native memory: read each column as one run, then interleave.
                for (int j = 0; j < nr; j++) {
                    if (j >= nrr) {
                        for (int p = 0; p < kc; p++) dst[base + p * nr + j] = 0f;
                        continue;
                    }
                    b.copyColumn(p0, j0 + jr + j, rowBuffer, 0, kc);
                    for (int p = 0; p < kc; p++) dst[base + p * nr + j] = rowBuffer[p];
                }
            } else if (b.array() != null) {
                float[] src = b.array();
                int cs = b.colStride();
                for (int p = 0; p < kc; p++) {
                    int d = base + p * nr;
                    int at = (int) (b.offset() + (long) (p0 + p) * b.rowStride() + (long) (j0 + jr) * cs);
                    for (int j = 0; j < nrr; j++) dst[d + j] = src[at + j * cs];
                    for (int j = nrr; j < nr; j++) dst[d + j] = 0f;
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    int d = base + p * nr;
                    for (int j = 0; j < nrr; j++) dst[d + j] = b.get(p0 + p, j0 + jr + j);
                    for (int j = nrr; j < nr; j++) dst[d + j] = 0f;
                }
            }
        }
    }

    private static int roundUp(int x, int to) {
        return (x + to - 1) / to * to;
    }
}
