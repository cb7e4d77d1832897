package ich.nn.cpu;

/**
 * The innermost block of {@link Sgemm}: an mr x nr tile of C from a packed mr-row panel of A and a packed
 * nr-column panel of B, both kc deep. Two implementations: the Vector API one (register-tiled, explicit FMAs)
 * and a plain-loop one that C2 auto-vectorises, for JVMs started without {@code jdk.incubator.vector}.
 */
interface MicroKernel {
    int mr();

    int nr();

    /**
     * C[0..mr, 0..nr] (row stride ldc, from cOffset) = (accumulate ? C : 0) + Ap * Bp, where Ap holds kc
     * columns of mr() values and Bp kc rows of nr() values.
     */
    void full(int kc, float[] a, int aOffset, float[] b, int bOffset, float[] c, int cOffset, int ldc,
              boolean accumulate);

    String name();
}
