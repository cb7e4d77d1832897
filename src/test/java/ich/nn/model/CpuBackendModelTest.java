package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;

import static org.junit.jupiter.api.Assertions.*;

/** The layers and B0 on the real CPU backend: the whole-network gradient check, and agreement with the naive reference. */
class CpuBackendModelTest {

    @Test
    void wholeNetworkGradientCheck() {
        try (Backend cpu = new CpuBackend(2)) {
            SmallNetworkGradientTest.gradientCheck(cpu, 0, 0);
            SmallNetworkGradientTest.gradientCheck(cpu, 0.5, 0.3);
        }
    }

    @Test
    void fullB0ForwardAndBackwardAgreeWithTheNaiveReference() {
        Backend naive = new NaiveBackend();
        try (Backend cpu = new CpuBackend(2);
             Arena arena = Arena.ofShared();
             EfficientNetB0 a = EfficientNetB0.initialized(naive, EfficientNetB0.Config.defaults(), 3);
             EfficientNetB0 b = EfficientNetB0.initialized(cpu, EfficientNetB0.Config.defaults(), 3)) {
            Tensor x = EfficientNetB0Test.images(arena, 2, 2, 64, 64);
            Tensor targets = Tensor.of(arena, new float[] {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 2, 6);
            float[] la, lb, dxa, dxb;
            try (StepContext ca = StepContext.training(naive, 5, 1); StepContext cb = StepContext.training(cpu, 5, 1)) {
                Tensor ya = a.forward(x, ca), yb = b.forward(x, cb);
                la = ya.toArray();
                lb = yb.toArray();
                dxa = a.backward(a.loss(ya, targets, null, ca).dLogits(), ca, true).toArray();
                dxb = b.backward(b.loss(yb, targets, null, cb).dLogits(), cb, true).toArray();
            }
            assertClose(la, lb, 1e-3, "logits");
            assertClose(dxa, dxb, 1e-3, "input gradient");
            for (String name : a.namedParameters().keySet()) {
                Parameter pa = a.namedParameters().get(name), pb = b.namedParameters().get(name);
                assertClose((pa.isBuffer() ? pa.value() : pa.grad()).toArray(), (pb.isBuffer() ? pb.value() : pb.grad()).toArray(), 2e-3, name);
            }
        }
    }

    /**
     * Agreement relative to the vector's norm, with an absolute floor of 1e-5 per element: float sums in another
     * order differ in the last bits, and some gradients are zero in exact arithmetic (the bias of a batch norm
     * whose output feeds a 1x1 convolution and another batch norm, which subtracts any shift again) and are
     * rounding noise on both sides.
     */
    static void assertClose(float[] expected, float[] actual, double tolerance, String what) {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            diff += (expected[i] - actual[i]) * (double) (expected[i] - actual[i]);
            norm += (double) expected[i] * expected[i];
        }
        assertTrue(Math.sqrt(diff) <= tolerance * Math.sqrt(norm) + 1e-5 * Math.sqrt(expected.length),
                what + ": difference " + Math.sqrt(diff) + ", norm " + Math.sqrt(norm));
    }
}
