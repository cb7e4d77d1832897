package ich.nn.model;

import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.optim.Adam;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The end-to-end check of forward, backward and optimiser together: B0 must memorise one small batch of random
 * images with random labels. A wrong gradient anywhere, a mis-wired skip or an optimiser that does not apply its
 * update shows up here as a loss that does not fall.
 */
class OverfitTest {
    @Test
    void efficientNetMemorisesOneBatch() {
        int n = 8;
        try (CpuBackend backend = new CpuBackend(2);
             EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 3);
             Arena arena = Arena.ofConfined()) {
            SplittableRandom r = new SplittableRandom(8);
            Tensor x = Tensor.allocate(arena, n, 3, 32, 32);
            for (long i = 0; i < x.size(); i++) x.set(i, (float) r.nextDouble());
            float[] y = new float[n * 6];
            for (int i = 0; i < y.length; i++) y[i] = r.nextInt(3) == 0 ? 1 : 0;
            Adam adam = new Adam(backend, arena, Adam.Options.adam(1e-3));
            double first = Double.NaN, last = Double.NaN;
            for (int step = 0; step < 60; step++) {
                try (StepContext ctx = StepContext.training(backend, 1, step)) {
                    Tensor logits = model.forward(x, ctx);
                    var loss = model.loss(logits, ctx.upload(y, n, 6), null, ctx);
                    model.backward(loss.dLogits(), ctx);
                    adam.step(model.trainableParameters());
                    if (step == 0) first = loss.value();
                    last = loss.value();
                }
            }
            System.out.printf("overfit: loss %.4f -> %.4f%n", first, last);
            assertTrue(last < 0.1 * first, "loss " + first + " -> " + last);
        }
    }
}
