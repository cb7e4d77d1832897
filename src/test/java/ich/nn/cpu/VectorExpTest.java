package ich.nn.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class VectorExpTest {
    @Test
    void expIsWithinThreeUlpOfMathExpOverTheRangeSigmoidUses() {
        var s = FloatVector.SPECIES_PREFERRED;
        SplittableRandom r = new SplittableRandom(1);
        float[] x = new float[s.length()], y = new float[s.length()];
        double worst = 0;
        for (int round = 0; round < 20_000; round++) {
            for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextDouble() * 174 - 87);
            if (round == 0) x[0] = 0f;
            VectorElementOps.exp(FloatVector.fromArray(s, x, 0)).intoArray(y, 0);
            for (int i = 0; i < x.length; i++) {
                double exact = Math.exp(x[i]);
                double ulps = Math.abs(y[i] - exact) / Math.ulp((float) exact);
                worst = Math.max(worst, ulps);
                assertTrue(ulps <= 3, "exp(" + x[i] + ") = " + y[i] + ", Math.exp " + exact + ": " + ulps + " ulp");
            }
        }
        assertTrue(worst > 0, "a polynomial approximation that is never off by any ulp would be suspicious");
        float[] big = new float[s.length()];
        java.util.Arrays.fill(big, 1000f);
        VectorElementOps.exp(FloatVector.fromArray(s, big, 0)).intoArray(y, 0);
        assertTrue(Float.isFinite(y[0]) && y[0] > 1e38f, "clamped, not infinite or NaN: " + y[0]);
        java.util.Arrays.fill(big, -1000f);
        VectorElementOps.exp(FloatVector.fromArray(s, big, 0)).intoArray(y, 0);
        assertTrue(y[0] >= 0 && y[0] < 1e-37f, "clamped at the bottom: " + y[0]);
    }
}
