package ich.nn.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** {@link Activations} with the Vector API's lane-wise exp; the tail that does not fill a vector goes scalar. */
final class VectorActivations extends Activations {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    static Activations create() {
        return new VectorActivations();
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
}
