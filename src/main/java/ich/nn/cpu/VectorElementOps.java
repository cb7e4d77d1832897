package ich.nn.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** {@link ElementOps} with the Vector API's lane-wise exp; the tail that does not fill a vector goes scalar. */
final class VectorElementOps extends ElementOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    static ElementOps create() {
        return new VectorElementOps();
    }

    @Override
    void silu(float[] a, int len) {
        int i = 0;
        for (int upper = S.loopBound(len); i < upper; i += S.length()) {
            FloatVector x = FloatVector.fromArray(S, a, i);
            // x / (1 + e^-x): e^-x overflows to +inf below x = -88, giving -0 as the limit should.
            x.div(x.neg().lanewise(VectorOperators.EXP).add(1f)).intoArray(a, i);
        }
        for (; i < len; i++) a[i] = a[i] * sigmoid(a[i]);
    }

    @Override
    void siluBackward(float[] x, float[] d, int len) {
        int i = 0;
        for (int upper = S.loopBound(len); i < upper; i += S.length()) {
            FloatVector v = FloatVector.fromArray(S, x, i);
            FloatVector s = FloatVector.broadcast(S, 1f).div(v.neg().lanewise(VectorOperators.EXP).add(1f));
            FloatVector g = FloatVector.fromArray(S, d, i);
            // s (1 + x (1 - s))
            FloatVector local = s.mul(v.mul(s.neg().add(1f)).add(1f));
            g.mul(local).intoArray(d, i);
        }
        for (; i < len; i++) {
            float s = sigmoid(x[i]);
            d[i] = d[i] * s * (1 + x[i] * (1 - s));
        }
    }

    @Override
    void sigmoid(float[] a, int len) {
        int i = 0;
        FloatVector one = FloatVector.broadcast(S, 1f);
        for (int upper = S.loopBound(len); i < upper; i += S.length()) {
            FloatVector x = FloatVector.fromArray(S, a, i);
            one.div(x.neg().lanewise(VectorOperators.EXP).add(1f)).intoArray(a, i);
        }
        for (; i < len; i++) a[i] = sigmoid(a[i]);
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
    void multiplyAdd(float[] a, int aOff, float[] b, int bOff, float[] y, int yOff, int n) {
        int i = 0;
        for (int upper = S.loopBound(n); i < upper; i += S.length()) {
            FloatVector.fromArray(S, a, aOff + i).fma(FloatVector.fromArray(S, b, bOff + i),
                    FloatVector.fromArray(S, y, yOff + i)).intoArray(y, yOff + i);
        }
        for (; i < n; i++) y[yOff + i] += a[aOff + i] * b[bOff + i];
    }
}
