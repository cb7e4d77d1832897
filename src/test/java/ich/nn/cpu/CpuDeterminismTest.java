package ich.nn.cpu;

import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Training must repeat exactly for a seed, and a resumed run must end where an uninterrupted one does: so the CPU
 * backend's results may not depend on which thread ran which part, nor on what a thread's scratch memory held
 * before. Two identical training steps, with unrelated work on the same threads in between, must give the same
 * bits.
 */
class CpuDeterminismTest {
    @Test
    void aTrainingStepGivesTheSameBitsEveryTime() {
        Map<String, float[]> first = step(3);
        try (CpuBackend other = new CpuBackend(3); var model = EfficientNetB0.initialized(other, EfficientNetB0.Config.defaults(), 4);
             Arena arena = Arena.ofConfined()) {
            // Different shapes through the same pool, so scratch buffers hold other data afterwards.
            Tensor x = Tensor.allocate(arena, 3, 3, 48, 40);
            fill(x, new SplittableRandom(5));
            try (StepContext ctx = StepContext.training(other, 1, 1)) {
                Tensor xd = ctx.allocate(x.shape());
                other.copy(x, xd);
                Tensor logits = model.forward(xd, ctx);
                model.backward(model.loss(logits, ctx.allocate(logits.shape()), null, ctx).dLogits(), ctx);
            }
        }
        Map<String, float[]> second = step(3);
        assertEquals(first.keySet(), second.keySet());
        for (var e : first.entrySet()) assertArrayEquals(e.getValue(), second.get(e.getKey()), e.getKey());
    }

    private static Map<String, float[]> step(int threads) {
        try (CpuBackend backend = new CpuBackend(threads);
             EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 7);
             Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.allocate(arena, 4, 3, 40, 36);
            fill(x, new SplittableRandom(11));
            float[] t = new float[4 * 6];
            for (int i = 0; i < t.length; i++) t[i] = i % 5 == 0 ? 1 : 0;
            Map<String, float[]> out = new LinkedHashMap<>();
            try (StepContext ctx = StepContext.training(backend, 3, 2)) {
                Tensor xd = ctx.allocate(x.shape());
                backend.copy(x, xd);
                Tensor logits = model.forward(xd, ctx);
                var loss = model.loss(logits, ctx.upload(t, 4, 6), null, ctx);
                model.backward(loss.dLogits(), ctx);
                out.put("logits", logits.toArray());
            }
            for (Parameter p : model.namedParameters().values()) {
                out.put(p.name(), p.value().toArray());
                if (!p.isBuffer()) out.put(p.name() + ".grad", p.grad().toArray());
            }
            return out;
        }
    }

    private static void fill(Tensor t, SplittableRandom r) {
        for (long i = 0; i < t.size(); i++) t.set(i, (float) r.nextGaussian());
    }
}
