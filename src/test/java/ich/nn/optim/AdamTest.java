package ich.nn.optim;

import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Adam/AdamW against PyTorch's update written out in double; freezing, learning-rate changes, state, clipping; the
 * grouped update against the per-parameter loop, bit for bit.
 */
class AdamTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Parameter weight(Arena arena, Random random, String name, int... shape) {
        Tensor v = Tensor.allocate(arena, shape), g = Tensor.allocate(arena, shape);
        for (long i = 0; i < v.size(); i++) v.set(i, random.nextFloat() * 2 - 1);
        return Parameter.weight(name, v, g);
    }

    private static void randomGrad(Parameter p, Random random) {
        for (long i = 0; i < p.grad().size(); i++) p.grad().set(i, (float) random.nextGaussian());
    }

    /** torch.optim.Adam / AdamW, one element, in double. */
    private static final class Reference {
        double p, m, v;
        long t;

        Reference(double p) {
            this.p = p;
        }

        void step(double g, double lr, double b1, double b2, double eps, double wd, boolean decoupled) {
            t++;
            if (decoupled) p *= 1 - lr * wd; else g += wd * p;
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            double mHat = m / (1 - Math.pow(b1, t)), vHat = v / (1 - Math.pow(b2, t));
            p -= lr * mHat / (Math.sqrt(vHat) + eps);
        }
    }

    @Test
    void followsTorchAdamAndAdamWOverSeveralSteps() {
        for (Adam.Options options : List.of(Adam.Options.adam(3e-3), Adam.Options.adam(1e-2).withWeightDecay(0.1, false),
                Adam.Options.adamW(1e-2, 0.05), Adam.Options.adam(5e-3).withEps(1e-8).withBetas(0.8, 0.99))) {
            Random random = new Random(options.hashCode());
            try (Arena arena = Arena.ofShared()) {
                Parameter a = weight(arena, random, "a.weight", 3, 4, 5), b = weight(arena, random, "b.bias", 7);
                List<Parameter> params = List.of(a, b);
                Reference[] ra = refs(a), rb = refs(b);
                Adam adam = new Adam(CPU, arena, options);
                for (int step = 0; step < 5; step++) {
                    if (step == 3) adam.setLearningRate(options.learningRate() / 2);
                    randomGrad(a, random);
                    randomGrad(b, random);
                    adam.step(params);
                    advance(ra, a, adam.learningRate(), options);
                    advance(rb, b, adam.learningRate(), options);
                }
                check(ra, a, options.toString());
                check(rb, b, options.toString());
                assertEquals(5, adam.steps());
                assertEquals(5L, adam.stepCounts().get("a.weight"));
                assertEquals(ra[7].m, adam.moments().get("a.weight.exp_avg").get(7), 1e-6);
                assertEquals(ra[7].v, adam.moments().get("a.weight.exp_avg_sq").get(7), 1e-6);
            }
        }
    }

    private static Reference[] refs(Parameter p) {
        Reference[] r = new Reference[(int) p.size()];
        for (int i = 0; i < r.length; i++) r[i] = new Reference(p.value().get(i));
        return r;
    }

    private static void advance(Reference[] r, Parameter p, double lr, Adam.Options o) {
        for (int i = 0; i < r.length; i++) {
            r[i].step(p.grad().get(i), lr, o.beta1(), o.beta2(), o.eps(), o.weightDecay(), o.decoupled());
        }
    }

    private static void check(Reference[] r, Parameter p, String what) {
        for (int i = 0; i < r.length; i++) {
            assertEquals(r[i].p, p.value().get(i), 1e-5 * Math.max(1, Math.abs(r[i].p)), what + " element " + i);
        }
    }

    @Test
    void frozenParametersAndTheirStateStayPut() {
        Random random = new Random(2);
        try (Arena arena = Arena.ofShared()) {
            Parameter head = weight(arena, random, "classifier.weight", 6, 8);
            Parameter body = weight(arena, random, "conv_stem.weight", 4, 3, 3, 3);
            Tensor running = Tensor.allocate(arena, 4);
            running.fill(0.5f);
            Parameter buffer = Parameter.buffer("bn1.running_var", running);
            List<Parameter> params = List.of(head, body, buffer);
            Adam adam = new Adam(CPU, arena, Adam.Options.adam(1e-2));

            randomGrad(head, random);
            randomGrad(body, random);
            adam.step(params);
            float[] bodyAfterOne = body.value().toArray();
            float[] bodyM = adam.moments().get("conv_stem.weight.exp_avg").toArray();

            body.setTrainable(false);
            float[] headBefore = head.value().toArray();
            for (int i = 0; i < 3; i++) {
                randomGrad(head, random);
                randomGrad(body, random);
                adam.step(params);
            }
            assertArrayEquals(bodyAfterOne, body.value().toArray(), "a frozen weight does not move");
            assertArrayEquals(bodyM, adam.moments().get("conv_stem.weight.exp_avg").toArray(), "nor does its state");
            assertEquals(1L, adam.stepCounts().get("conv_stem.weight"));
            assertEquals(4L, adam.stepCounts().get("classifier.weight"));
            assertFalse(java.util.Arrays.equals(headBefore, head.value().toArray()));
            assertEquals(0.5f, running.get(3));
            assertFalse(adam.stepCounts().containsKey("bn1.running_var"));
        }
    }

    @Test
    void restoredStateContinuesIdentically() {
        Random random = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            Parameter a = weight(arena, random, "w", 50);
            Parameter copy = Parameter.weight("w", Tensor.allocate(arena, 50), Tensor.allocate(arena, 50));
            Adam first = new Adam(CPU, arena, Adam.Options.adamW(1e-2, 0.01));
            for (int i = 0; i < 3; i++) {
                randomGrad(a, random);
                first.step(List.of(a));
            }
            copy.value().copyFrom(a.value());
            Adam second = new Adam(CPU, arena, Adam.Options.adamW(1e-2, 0.01));
            second.restore("w", first.moments().get("w.exp_avg"), first.moments().get("w.exp_avg_sq"),
                    first.stepCounts().get("w"));
            second.restoreSteps(first.steps());
            randomGrad(a, random);
            copy.grad().copyFrom(a.grad());
            first.step(List.of(a));
            second.step(List.of(copy));
            assertArrayEquals(a.value().toArray(), copy.value().toArray());
            assertEquals(4, second.steps());
        }
    }

    /**
     * The backend, recording the calls of {@link Backend#adamStepAll} (step count and number of tensors) and
     * running them through the interface's default, which loops over the CPU's adamStep.
     */
    private static Backend recording(List<long[]> calls) {
        InvocationHandler handler = (proxy, method, args) -> {
            if (method.getName().equals("adamStepAll")) {
                calls.add(new long[] {(Long) args[1], ((List<?>) args[0]).size()});
                return InvocationHandler.invokeDefault(proxy, method, args);
            }
            try {
                return method.invoke(CPU, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        };
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, handler);
    }

    /**
     * Adam's grouped update (one adamStepAll per step count) against the per-parameter loop it replaced, run by
     * hand with adamStep on copies: bit for bit, for Adam with L2 decay and AdamW, through freezing, a learning
     * rate change and unfreezing, after which the parameters' step counts differ and two groups are sent.
     */
    @Test
    void groupedStepsAreBitIdenticalToThePerParameterLoop() {
        for (Adam.Options options : List.of(Adam.Options.adam(3e-3).withWeightDecay(1e-4, false), Adam.Options.adamW(1e-2, 0.05))) {
            Random random = new Random(options.hashCode());
            try (Arena arena = Arena.ofShared()) {
                List<Parameter> params = List.of(weight(arena, random, "a", 1), weight(arena, random, "b", 7),
                        weight(arena, random, "c", 3, 4, 5), weight(arena, random, "d", 1000),
                        weight(arena, random, "e", 8, 3, 3, 3));
                Tensor running = Tensor.allocate(arena, 4);
                running.fill(0.5f);
                List<Parameter> all = new ArrayList<>(params);
                all.add(2, Parameter.buffer("bn.running_var", running));
                // the old loop's own copies of values and state
                Map<String, Tensor[]> old = new HashMap<>();
                Map<String, Long> oldSteps = new HashMap<>();
                for (Parameter p : params) {
                    Tensor v = Tensor.allocate(arena, p.value().shape());
                    v.copyFrom(p.value());
                    old.put(p.name(), new Tensor[] {v, Tensor.allocate(arena, v.shape()), Tensor.allocate(arena, v.shape())});
                    oldSteps.put(p.name(), 0L);
                }
                List<long[]> calls = new ArrayList<>();
                Adam adam = new Adam(recording(calls), arena, options);
                for (int step = 1; step <= 6; step++) {
                    if (step == 3) {
                        params.get(1).setTrainable(false);
                        params.get(3).setTrainable(false);
                    }
                    if (step == 4) adam.setLearningRate(options.learningRate() / 3);
                    if (step == 5) params.forEach(p -> p.setTrainable(true));
                    for (Parameter p : params) randomGrad(p, random);
                    calls.clear();
                    adam.step(all);
                    for (Parameter p : params) {
                        if (!p.trainable()) continue;
                        Tensor[] t = old.get(p.name());
                        long s = oldSteps.merge(p.name(), 1L, Long::sum);
                        CPU.adamStep(t[0], p.grad(), t[1], t[2], s, adam.learningRate(), options.beta1(), options.beta2(),
                                options.eps(), options.weightDecay(), options.decoupled());
                    }
                    String what = options + ", step " + step;
                    for (Parameter p : params) {
                        Tensor[] t = old.get(p.name());
                        assertArrayEquals(t[0].toArray(), p.value().toArray(), what + ": " + p.name());
                        Map<String, Tensor> moments = adam.moments();
                        assertArrayEquals(t[1].toArray(), moments.get(p.name() + ".exp_avg").toArray(), what + ": m of " + p.name());
                        assertArrayEquals(t[2].toArray(), moments.get(p.name() + ".exp_avg_sq").toArray(), what + ": v of " + p.name());
                        assertEquals(oldSteps.get(p.name()), adam.stepCounts().get(p.name()), what + ": step count of " + p.name());
                    }
                    // one call while all parameters share a step count; after unfreezing, b and d lag two steps
                    String sent = calls.stream().map(java.util.Arrays::toString).toList().toString();
                    if (step <= 2) assertEquals("[[" + step + ", 5]]", sent, what);
                    else if (step <= 4) assertEquals("[[" + step + ", 3]]", sent, what);
                    else assertEquals("[[" + step + ", 3], [" + (step - 2) + ", 2]]", sent, what);
                }
                assertEquals(0.5f, running.get(3), "a buffer is never updated");
            }
        }
    }

    @Test
    void aParameterListedTwiceIsRefusedBeforeAnyUpdate() {
        Random random = new Random(5);
        try (Arena arena = Arena.ofShared()) {
            Parameter a = weight(arena, random, "a", 10), b = weight(arena, random, "b", 3);
            randomGrad(a, random);
            randomGrad(b, random);
            float[] before = b.value().toArray();
            Adam adam = new Adam(CPU, arena, Adam.Options.adam(1e-2));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> adam.step(List.of(b, a, a)));
            assertTrue(e.getMessage().contains("a is listed twice"), e.getMessage());
            assertArrayEquals(before, b.value().toArray());
            assertEquals(0, adam.steps());
            assertFalse(adam.stepCounts().values().stream().anyMatch(s -> s != 0), "no step counted: " + adam.stepCounts());
        }
    }

    @Test
    void clipGradNormScalesLikeTorch() {
        try (Arena arena = Arena.ofShared()) {
            Parameter a = Parameter.weight("a", Tensor.of(arena, new float[] {3, 0}, 2), Tensor.of(arena, new float[] {3, 0}, 2));
            Parameter b = Parameter.weight("b", Tensor.of(arena, new float[] {4}, 1), Tensor.of(arena, new float[] {4}, 1));
            Parameter frozen = Parameter.weight("c", Tensor.of(arena, new float[] {100}, 1), Tensor.of(arena, new float[] {100}, 1));
            frozen.setTrainable(false);
            List<Parameter> params = List.of(a, b, frozen);
            assertEquals(5.0, Adam.clipGradNorm(CPU, params, 10.0), 1e-9);
            assertEquals(3f, a.grad().get(0), "below the limit nothing changes");
            assertEquals(5.0, Adam.clipGradNorm(CPU, params, 1.0), 1e-9);
            double k = 1.0 / (5.0 + 1e-6);
            assertEquals(3 * k, a.grad().get(0), 1e-6);
            assertEquals(4 * k, b.grad().get(0), 1e-6);
            assertEquals(100f, frozen.grad().get(0), "frozen gradients are neither counted nor scaled");
            assertThrows(IllegalArgumentException.class, () -> Adam.clipGradNorm(CPU, params, 0));
        }
    }

    @Test
    void defaultsAreKerasEpsilonAndTorchBetas() {
        Adam.Options o = Adam.Options.adam(1e-3);
        assertEquals(1e-7, o.eps());
        assertEquals(0.9, o.beta1());
        assertEquals(0.999, o.beta2());
        assertFalse(o.decoupled());
        assertTrue(Adam.Options.adamW(1e-3, 0.01).decoupled());
        assertThrows(IllegalArgumentException.class, () -> Adam.Options.adam(-1));
        assertThrows(IllegalArgumentException.class, () -> Adam.Options.adam(1e-3).withBetas(1.0, 0.9));
    }
}
