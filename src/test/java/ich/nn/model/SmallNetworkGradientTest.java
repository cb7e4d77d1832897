package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The whole chain of layers against central finite differences: a miniature EfficientNet (stem, an inverted
 * residual with SE and skip, a depthwise-separable block with skip, head, pooling, classifier) at 8x8, batch 2,
 * training-mode batch norm, weighted BCE. Every layer's backward and the way blocks route gradients (skip
 * connections, SE's two paths into x) must be right for the input and parameter gradients to agree.
 */
class SmallNetworkGradientTest {

    static Sequential miniature(ParameterSet p, double dropPath, double dropRate) {
        double m = 0.1, eps = 1e-5;
        return new Sequential("", List.of(
                new Conv2d(p, "conv_stem", 3, 8, 3, 2, 1),
                new BatchNorm2d(p, "bn1", 8, m, eps),
                new SiLU("bn1.act"),
                new InvertedResidual(p, "blocks.0.0", 8, 8, 3, 1, 3, 0.25, dropPath, m, eps),
                new DepthwiseSeparable(p, "blocks.1.0", 8, 8, 3, 1, 0.25, 0, m, eps),
                new Conv2d(p, "conv_head", 8, 16, 1, 1, 1),
                new BatchNorm2d(p, "bn2", 16, m, eps),
                new SiLU("bn2.act"),
                new GlobalAveragePool(),
                new Dropout("dropout", dropRate),
                new Linear(p, "classifier", 16, 6)));
    }

    static Tensor random(Arena arena, SplittableRandom rng, double scale, int... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        for (long i = 0; i < t.size(); i++) t.set(i, (float) (rng.nextGaussian() * scale));
        return t;
    }

    @Test
    void lossGradientsMatchCentralDifferences() {
        gradientCheck(new NaiveBackend(), 0, 0);
    }

    /** With (seed, step) fixed the masks are too, so the loss is a smooth function to differentiate. */
    @Test
    void gradientsThroughDropPathAndDropoutMatchToo() {
        gradientCheck(new NaiveBackend(), 0.5, 0.3);
    }

    /**
     * Every BatchNorm2d + SiLU pair (stem, both blocks, head) runs as one fused op of the backend, whose backward
     * takes the SiLU's gradient: the chain rule through the fusion must hold too.
     */
    @Test
    void gradientsThroughFusedBatchNormSiluMatchToo() {
        NaiveBackend fusing = new NaiveBackend(true);
        gradientCheck(fusing, 0.5, 0.3);
        assertTrue(fusing.fusedCalls() > 0, "the fused ops ran");
    }

    /** The real CPU backend, float throughout and batch norm + SiLU fused, against the same differences. */
    @Test
    void gradientsOfTheCpuBackendMatchToo() {
        try (ich.nn.cpu.CpuBackend cpu = new ich.nn.cpu.CpuBackend(2)) {
            assertTrue(cpu.fusesBatchNormSilu(ich.nn.Storage.FLOAT32), "the check goes through the fused ops");
            gradientCheck(cpu, 0, 0);
        }
    }

    /** Fusion changes where SiLU runs, not what the network computes: outputs and gradients agree to rounding. */
    @Test
    void fusedAndUnfusedStepsAgree() {
        NaiveBackend plain = new NaiveBackend(), fusing = new NaiveBackend(true);
        try (Arena arena = Arena.ofShared()) {
            float[][] a = step(plain, arena), b = step(fusing, arena);
            // 5 pairs (stem, blocks.0.0 bn1 and bn2, blocks.1.0 bn1, head), one forward and one backward each
            assertEquals(10, fusing.fusedCalls());
            assertEquals(0, plain.fusedCalls());
            for (int i = 0; i < a.length; i++) {
                for (int j = 0; j < a[i].length; j++) {
                    assertEquals(a[i][j], b[i][j], 1e-5 * (1 + Math.abs(a[i][j])), "array " + i + " element " + j);
                }
            }
        }
    }

    /** Logits, the input gradient and every parameter gradient of one training step of the miniature. */
    private static float[][] step(Backend backend, Arena arena) {
        ParameterSet params = new ParameterSet(backend, arena);
        Sequential net = miniature(params, 0, 0);
        net.initialize(new Initializer(backend, 7));
        SplittableRandom rng = new SplittableRandom(11);
        Tensor x = random(arena, rng, 1, 2, 3, 8, 8);
        Tensor targets = Tensor.allocate(arena, 2, 6);
        for (long i = 0; i < targets.size(); i++) targets.set(i, rng.nextBoolean() ? 1 : 0);
        List<float[]> out = new ArrayList<>();
        try (StepContext ctx = StepContext.training(backend, 1, 0)) {
            Tensor logits = net.forward(x, ctx);
            out.add(logits.toArray());
            Tensor dLogits = ctx.allocate(logits.shape());
            backend.bceWithLogits(logits, targets, null, dLogits);
            out.add(net.backward(dLogits, ctx, true).toArray());
        }
        for (Parameter p : params.asMap().values()) if (!p.isBuffer()) out.add(p.grad().toArray());
        return out.toArray(float[][]::new);
    }

    static void gradientCheck(Backend backend, double dropPath, double dropRate) {
        if (dropPath > 0) {
            // The check only exercises the masks if step (1, 0) keeps one sample's branch and drops the other's.
            try (StepContext ctx = StepContext.training(backend, 1, 0)) {
                float[] mask = Masks.bernoulli(ctx, "blocks.0.0.drop_path", dropPath, 2).toArray();
                assertEquals(0f, Math.min(mask[0], mask[1]), "one dropped: " + Arrays.toString(mask));
                assertEquals((float) (1 / (1 - dropPath)), Math.max(mask[0], mask[1]), 1e-6, "one kept and scaled");
            }
        }
        try (Arena arena = Arena.ofShared()) {
            ParameterSet params = new ParameterSet(backend, arena);
            Sequential net = miniature(params, dropPath, dropRate);
            net.initialize(new Initializer(backend, 7));
            SplittableRandom rng = new SplittableRandom(11);
            // Non-trivial BN affine parameters and SE biases, so their gradients are not at a symmetric point.
            for (Parameter p : params.asMap().values()) {
                if (p.isBuffer()) continue;
                if (p.name().contains("bn") || p.name().endsWith(".bias")) {
                    for (long i = 0; i < p.size(); i++) p.value().set(i, p.value().get(i) + (float) (0.3 * rng.nextGaussian()));
                }
            }
            Tensor x = random(arena, rng, 1, 2, 3, 8, 8);
            Tensor targets = Tensor.allocate(arena, 2, 6);
            for (long i = 0; i < targets.size(); i++) targets.set(i, rng.nextBoolean() ? 1 : 0);
            Tensor weights = Tensor.of(arena, new float[] {2, 1, 1, 1, 1, 1}, 6);

            Tensor dx;
            try (StepContext ctx = StepContext.training(backend, 1, 0)) {
                Tensor logits = net.forward(x, ctx);
                Tensor dLogits = ctx.allocate(logits.shape());
                backend.bceWithLogits(logits, targets, weights, dLogits);
                Tensor d = net.backward(dLogits, ctx, true);
                dx = Tensor.allocate(arena, x.shape());
                dx.copyFrom(d);
            }

            List<double[]> pairs = new ArrayList<>(); // {analytic, numeric}
            for (int i = 0; i < x.size(); i += 7) pairs.add(new double[] {dx.get(i), numeric(backend, net, x, targets, weights, x, i)});
            int checkedParams = 0;
            for (Parameter p : params.asMap().values()) {
                if (p.isBuffer()) continue;
                checkedParams++;
                long stride = Math.max(1, p.size() / 4);
                for (long i = 0; i < p.size(); i += stride) {
                    pairs.add(new double[] {p.grad().get(i), numeric(backend, net, x, targets, weights, p.value(), i)});
                }
            }
            assertEquals(31, checkedParams, "every weight tensor of the miniature is sampled");

            double diff = 0, norm = 0, worst = 0;
            for (double[] ab : pairs) {
                diff += (ab[0] - ab[1]) * (ab[0] - ab[1]);
                norm += ab[1] * ab[1];
                worst = Math.max(worst, Math.abs(ab[0] - ab[1]) / (1e-3 + Math.abs(ab[1])));
            }
            double relative = Math.sqrt(diff / norm);
            System.out.printf("gradient check on %s: %d gradients, relative error %.2e, worst %.2e%n", backend.name(), pairs.size(), relative, worst);
            assertTrue(norm > 1e-4, "gradients are not all vanishing: " + norm);
            assertTrue(relative < 5e-3, "relative error of " + pairs.size() + " gradients " + relative);
            assertTrue(worst < 0.05, "worst element-wise error " + worst);
        }
    }

    /** d loss / d t[i] by central differences with step h, then t[i] restored. */
    static double numeric(Backend backend, Sequential net, Tensor x, Tensor targets, Tensor weights, Tensor t, long i) {
        float original = t.get(i);
        double h = 1e-2;
        t.set(i, (float) (original + h));
        double plus = loss(backend, net, x, targets, weights);
        t.set(i, (float) (original - h));
        double minus = loss(backend, net, x, targets, weights);
        t.set(i, original);
        return (plus - minus) / (2 * h);
    }

    static double loss(Backend backend, Sequential net, Tensor x, Tensor targets, Tensor weights) {
        try (StepContext ctx = StepContext.training(backend, 1, 0)) {
            return backend.bceWithLogits(net.forward(x, ctx), targets, weights, null);
        }
    }
}
