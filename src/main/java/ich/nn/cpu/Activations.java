package ich.nn.cpu;

/**
 * SiLU and sigmoid over float[] chunks. exp is the cost: C2 does not vectorise Math.exp, so where the Vector
 * API is present these run through {@link VectorActivations} (the JDK's vectorised exp); otherwise scalar
 * loops. Both compute exp in float within about 1 ulp, so results agree to ~1e-7 relative.
 */
abstract class Activations {
    static Activations create(CpuBackend.Kernel kernel) {
        return kernel == CpuBackend.Kernel.VECTOR ? VectorActivations.create() : new Scalar();
    }

    /** a[i] = a[i] * sigmoid(a[i]). */
    abstract void silu(float[] a, int len);

    /** d[i] = d[i] * s (1 + x (1 - s)) with s = sigmoid(x[i]). */
    abstract void siluBackward(float[] x, float[] d, int len);

    /** a[i] = sigmoid(a[i]). */
    abstract void sigmoid(float[] a, int len);

    static float sigmoid(float v) {
        return (float) (1 / (1 + Math.exp(-v)));
    }

    static final class Scalar extends Activations {
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
    }
}
