package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class EfficientNetB0Test {
    private final Backend backend = new NaiveBackend();

    private static int[] shape(EfficientNetB0 model, String name) {
        Parameter p = model.namedParameters().get(name);
        assertNotNull(p, name);
        return p.value().shape();
    }

    @Test
    void parameterCountsNamesAndShapesAreTimms() {
        try (EfficientNetB0 model = new EfficientNetB0(backend, EfficientNetB0.Config.defaults())) {
            assertEquals(4_015_234, model.weightCount());
            assertEquals(4_007_548, model.backboneWeightCount());
            assertEquals(7_686, model.weightCount() - model.backboneWeightCount());
            assertEquals(4_015_234, model.trainableCount(), "everything trains by default");

            Map<String, Parameter> named = model.namedParameters();
            // 49 convolutions, 49 batch norms x 4, 16 SE x 4, classifier x 2 (timm's 360 keys less 49 num_batches_tracked).
            assertEquals(311, named.size());
            List<String> names = new ArrayList<>(named.keySet());
            assertEquals(List.of("conv_stem.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                    "blocks.0.0.conv_dw.weight", "blocks.0.0.bn1.weight"), names.subList(0, 7));
            assertEquals(List.of("blocks.0.0.se.conv_reduce.weight", "blocks.0.0.se.conv_reduce.bias",
                    "blocks.0.0.se.conv_expand.weight", "blocks.0.0.se.conv_expand.bias", "blocks.0.0.conv_pw.weight"), names.subList(10, 15));
            assertEquals(List.of("conv_head.weight", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
                    "classifier.weight", "classifier.bias"), names.subList(names.size() - 7, names.size()));

            assertArrayEquals(new int[] {32, 3, 3, 3}, shape(model, "conv_stem.weight"));
            assertArrayEquals(new int[] {32, 1, 3, 3}, shape(model, "blocks.0.0.conv_dw.weight"));
            assertArrayEquals(new int[] {8, 32, 1, 1}, shape(model, "blocks.0.0.se.conv_reduce.weight"));
            assertArrayEquals(new int[] {16, 32, 1, 1}, shape(model, "blocks.0.0.conv_pw.weight"));
            assertArrayEquals(new int[] {96, 16, 1, 1}, shape(model, "blocks.1.0.conv_pw.weight"));
            assertArrayEquals(new int[] {4, 96, 1, 1}, shape(model, "blocks.1.0.se.conv_reduce.weight"));
            assertArrayEquals(new int[] {96, 4, 1, 1}, shape(model, "blocks.1.0.se.conv_expand.weight"));
            assertArrayEquals(new int[] {24, 96, 1, 1}, shape(model, "blocks.1.0.conv_pwl.weight"));
            assertArrayEquals(new int[] {144}, shape(model, "blocks.1.1.bn2.running_var"));
            assertArrayEquals(new int[] {240, 1, 5, 5}, shape(model, "blocks.2.1.conv_dw.weight"));
            assertArrayEquals(new int[] {28, 672, 1, 1}, shape(model, "blocks.5.0.se.conv_reduce.weight"));
            assertArrayEquals(new int[] {1152, 1, 5, 5}, shape(model, "blocks.5.3.conv_dw.weight"));
            assertArrayEquals(new int[] {48}, shape(model, "blocks.5.3.se.conv_reduce.bias"));
            assertArrayEquals(new int[] {320, 1152, 1, 1}, shape(model, "blocks.6.0.conv_pwl.weight"));
            assertArrayEquals(new int[] {1280, 320, 1, 1}, shape(model, "conv_head.weight"));
            assertArrayEquals(new int[] {6, 1280}, shape(model, "classifier.weight"));
            assertArrayEquals(new int[] {6}, shape(model, "classifier.bias"));
            assertFalse(named.containsKey("blocks.7.0.conv_pw.weight"));
            assertFalse(named.containsKey("blocks.0.0.conv_pwl.weight"), "the first stage is depthwise-separable");

            List<String> buffers = named.values().stream().filter(Parameter::isBuffer).map(Parameter::name).toList();
            assertEquals(98, buffers.size());
            assertTrue(buffers.stream().allMatch(n -> n.endsWith(".running_mean") || n.endsWith(".running_var")), buffers.toString());
        }
    }

    @Test
    void blocksHaveTimmsSkipsAndDropPathRates() {
        try (EfficientNetB0 model = new EfficientNetB0(backend, EfficientNetB0.Config.defaults())) {
            List<Block> blocks = model.network().layers().stream().filter(l -> l instanceof Block).map(l -> (Block) l).toList();
            assertEquals(16, blocks.size());
            List<String> skipping = blocks.stream().filter(Block::hasSkip).map(Block::name).toList();
            assertEquals(List.of("blocks.1.1", "blocks.2.1", "blocks.3.1", "blocks.3.2", "blocks.4.1", "blocks.4.2",
                    "blocks.5.1", "blocks.5.2", "blocks.5.3"), skipping);
            for (int i = 0; i < 16; i++) assertEquals(0.2 * i / 16, blocks.get(i).dropPathRate(), 1e-12, blocks.get(i).name());
            assertInstanceOf(DepthwiseSeparable.class, blocks.get(0));
            assertInstanceOf(InvertedResidual.class, blocks.get(15));
        }
    }

    @Test
    void summaryShapesAndMacsAt224() {
        try (EfficientNetB0 model = new EfficientNetB0(backend, EfficientNetB0.Config.defaults())) {
            List<LayerSummary> rows = model.summary(1, 224, 224);
            Map<String, LayerSummary> byName = new HashMap<>();
            for (LayerSummary r : rows) byName.put(r.name(), r);
            assertArrayEquals(new int[] {1, 32, 112, 112}, byName.get("conv_stem").outputShape());
            assertEquals(112L * 112 * 32 * 3 * 3 * 3, byName.get("conv_stem").macs());
            assertArrayEquals(new int[] {1, 16, 112, 112}, byName.get("blocks.0.0").outputShape());
            assertArrayEquals(new int[] {1, 24, 56, 56}, byName.get("blocks.1.1").outputShape());
            assertArrayEquals(new int[] {1, 40, 28, 28}, byName.get("blocks.2.0").outputShape());
            assertArrayEquals(new int[] {1, 112, 14, 14}, byName.get("blocks.4.2").outputShape());
            assertArrayEquals(new int[] {1, 320, 7, 7}, byName.get("blocks.6.0").outputShape());
            assertArrayEquals(new int[] {1, 1280, 7, 7}, byName.get("conv_head").outputShape());
            assertArrayEquals(new int[] {1, 6}, rows.getLast().outputShape());
            assertEquals(model.weightCount(), rows.stream().mapToLong(LayerSummary::parameters).sum());
            long macs = model.macs(1, 224, 224);
            assertEquals(macs, rows.stream().mapToLong(LayerSummary::macs).sum());
            // Published: about 0.39 GMACs (timm lists 0.4) for B0 at 224.
            assertTrue(macs > 380_000_000L && macs < 410_000_000L, "MACs " + macs);
            // Any input size: 64x64 ends in 2x2, an odd 97x61 rounds up at each stride-2 convolution.
            assertArrayEquals(new int[] {2, 1280, 2, 2}, model.summary(2, 64, 64).stream()
                    .filter(r -> r.name().equals("conv_head")).findFirst().orElseThrow().outputShape());
            assertArrayEquals(new int[] {1, 1280, 4, 2}, model.summary(1, 97, 61).stream()
                    .filter(r -> r.name().equals("conv_head")).findFirst().orElseThrow().outputShape());
            assertEquals(2 * model.macs(1, 97, 61), model.macs(2, 97, 61));
        }
    }

    @Test
    void initialisationFollowsTimmAndIsSeeded() {
        try (EfficientNetB0 a = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 42);
             EfficientNetB0 b = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 42);
             EfficientNetB0 c = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 43)) {
            for (String name : a.namedParameters().keySet()) {
                assertArrayEquals(a.namedParameters().get(name).value().toArray(), b.namedParameters().get(name).value().toArray(), name);
            }
            assertFalse(Arrays.equals(a.namedParameters().get("conv_head.weight").value().toArray(),
                    c.namedParameters().get("conv_head.weight").value().toArray()));

            assertStd(a, "conv_stem.weight", Math.sqrt(2.0 / (3 * 3 * 32)));
            assertStd(a, "conv_head.weight", Math.sqrt(2.0 / 1280));
            assertStd(a, "blocks.5.3.conv_dw.weight", Math.sqrt(2.0 / 25)); // fan_out / groups
            assertStd(a, "blocks.5.3.conv_pw.weight", Math.sqrt(2.0 / 1152));
            assertStd(a, "blocks.5.3.se.conv_expand.weight", Math.sqrt(2.0 / 1152)); // a 1x1 conv to 1152 channels
            float[] fc = a.namedParameters().get("classifier.weight").value().toArray();
            double range = 1 / Math.sqrt(6);
            double max = 0;
            for (float v : fc) max = Math.max(max, Math.abs(v));
            assertTrue(max <= range && max > 0.9 * range, "uniform(-1/sqrt(6), 1/sqrt(6)): max |w| " + max);
            for (String zero : List.of("classifier.bias", "bn2.bias", "bn2.running_mean", "blocks.3.1.se.conv_reduce.bias")) {
                for (float v : a.namedParameters().get(zero).value().toArray()) assertEquals(0f, v, zero);
            }
            for (String one : List.of("bn1.weight", "bn2.running_var", "blocks.2.0.bn3.weight")) {
                for (float v : a.namedParameters().get(one).value().toArray()) assertEquals(1f, v, one);
            }
        }
    }

    private static void assertStd(EfficientNetB0 model, String name, double expected) {
        float[] v = model.namedParameters().get(name).value().toArray();
        double sum = 0, ss = 0;
        for (float f : v) {
            sum += f;
            ss += (double) f * f;
        }
        double mean = sum / v.length, std = Math.sqrt(ss / v.length - mean * mean);
        // The standard error of a sample std is std / sqrt(2 n); 5 of them is a generous bound for n >= 864.
        double tolerance = 5 * expected / Math.sqrt(2.0 * v.length);
        assertEquals(expected, std, tolerance, name + " std");
        assertEquals(0, mean, 5 * expected / Math.sqrt(v.length), name + " mean");
    }

    static Tensor images(Arena arena, long seed, int n, int h, int w) {
        SplittableRandom rng = new SplittableRandom(seed);
        Tensor x = Tensor.allocate(arena, n, 3, h, w);
        for (long i = 0; i < x.size(); i++) x.set(i, (float) rng.nextGaussian());
        return x;
    }

    static boolean allFinite(float[] v) {
        for (float f : v) if (!Float.isFinite(f)) return false;
        return true;
    }

    @Test
    void fullForwardAndBackwardOnASmallInput() {
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 1)) {
            Tensor x = images(arena, 5, 2, 64, 64);
            Tensor targets = Tensor.of(arena, new float[] {1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 2, 6);
            for (Parameter p : model.trainableParameters()) p.grad().fill(Float.NaN);
            try (StepContext ctx = StepContext.training(backend, 3, 0)) {
                Tensor logits = model.forward(x, ctx);
                assertArrayEquals(new int[] {2, 6}, logits.shape());
                assertTrue(allFinite(logits.toArray()));
                EfficientNetB0.Loss loss = model.loss(logits, targets, null, ctx);
                assertTrue(loss.value() > 0 && Double.isFinite(loss.value()), "loss " + loss.value());
                Tensor dx = model.backward(loss.dLogits(), ctx, true);
                assertArrayEquals(x.shape(), dx.shape());
                assertTrue(allFinite(dx.toArray()));
                assertTrue(backend.sumOfSquares(dx) > 0);
            }
            for (Parameter p : model.trainableParameters()) {
                assertTrue(allFinite(p.grad().toArray()), p.name() + " gradient written and finite");
            }
            assertTrue(backend.sumOfSquares(model.namedParameters().get("conv_stem.weight").grad()) > 0);
            assertTrue(backend.sumOfSquares(model.namedParameters().get("blocks.3.2.se.conv_expand.weight").grad()) > 0);
        }
    }

    @Test
    void batchNormStatisticsMoveOnlyInTraining() {
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 1)) {
            Tensor x = images(arena, 6, 2, 32, 32);
            // With timm's zero BN bias, a BN behind [BN -> 1x1 conv] sees a batch mean of exactly W * 0: shift the
            // biases so that every running mean has something to follow.
            SplittableRandom rng = new SplittableRandom(4);
            for (Parameter p : model.namedParameters().values()) {
                if (p.name().endsWith(".bias") && !p.name().startsWith("classifier") && !p.name().contains(".se.")) {
                    for (long i = 0; i < p.size(); i++) p.value().set(i, (float) (0.5 * rng.nextGaussian()));
                }
            }
            Map<String, float[]> before = buffers(model);
            try (StepContext ctx = StepContext.eval(backend)) {
                model.forward(x, ctx);
            }
            Map<String, float[]> afterEval = buffers(model);
            for (String k : before.keySet()) assertArrayEquals(before.get(k), afterEval.get(k), k);
            try (StepContext ctx = StepContext.training(backend, 1, 0)) {
                model.forward(x, ctx);
            }
            Map<String, float[]> afterTrain = buffers(model);
            for (String k : before.keySet()) {
                assertFalse(Arrays.equals(before.get(k), afterTrain.get(k)), k + " moved");
            }
            // The stem's statistics follow PyTorch's momentum 0.1 update from (0, 1).
            float mean0 = afterTrain.get("bn1.running_mean")[0];
            assertTrue(Math.abs(mean0) < 1 && mean0 != 0, "running mean " + mean0);
        }
    }

    private static Map<String, float[]> buffers(EfficientNetB0 model) {
        Map<String, float[]> m = new LinkedHashMap<>();
        for (Parameter p : model.namedParameters().values()) if (p.isBuffer()) m.put(p.name(), p.value().toArray());
        return m;
    }

    @Test
    void dropoutAndDropPathAreDeterministicPerSeedAndStep() {
        // High rates so that a 2-sample batch certainly sees masks differ between steps.
        EfficientNetB0.Config config = EfficientNetB0.Config.defaults().withDropRates(0.5, 0.5);
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 model = EfficientNetB0.initialized(backend, config, 1)) {
            Tensor x = images(arena, 8, 2, 32, 32);
            float[] a = trainLogits(model, x, 9, 4);
            float[] b = trainLogits(model, x, 9, 4);
            float[] c = trainLogits(model, x, 9, 5);
            float[] d = trainLogits(model, x, 10, 4);
            assertArrayEquals(a, b, "same seed and step, same masks");
            assertFalse(Arrays.equals(a, c), "another step draws other masks");
            assertFalse(Arrays.equals(a, d), "another seed draws other masks");
            float[] e1, e2;
            try (StepContext ctx = StepContext.eval(backend)) {
                e1 = model.forward(x, ctx).toArray();
            }
            try (StepContext ctx = StepContext.eval(backend)) {
                e2 = model.forward(x, ctx).toArray();
            }
            assertArrayEquals(e1, e2, "eval has no randomness");
        }
    }

    private float[] trainLogits(EfficientNetB0 model, Tensor x, long seed, long step) {
        try (StepContext ctx = StepContext.training(backend, seed, step)) {
            return model.forward(x, ctx).toArray();
        }
    }

    @Test
    void frozenBackboneTrainsOnlyTheSeedsLastLayers() {
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 1)) {
            model.freezeBackbone();
            assertEquals(2 * 1280 + 7_686, model.trainableCount());
            assertEquals(List.of("bn2.weight", "bn2.bias", "classifier.weight", "classifier.bias"),
                    model.trainableParameters().stream().map(Parameter::name).toList());
            for (Parameter p : model.namedParameters().values()) if (!p.isBuffer()) p.grad().fill(Float.NaN);
            Tensor x = images(arena, 9, 2, 32, 32);
            Tensor targets = Tensor.of(arena, new float[] {0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1}, 2, 6);
            try (StepContext ctx = StepContext.training(backend, 1, 0)) {
                EfficientNetB0.Loss loss = model.loss(model.forward(x, ctx), targets, null, ctx);
                assertNull(model.backward(loss.dLogits(), ctx, false));
            }
            for (Parameter p : model.namedParameters().values()) {
                if (p.isBuffer()) continue;
                float[] g = p.grad().toArray();
                if (p.trainable()) {
                    assertTrue(allFinite(g) && backend.sumOfSquares(p.grad()) > 0, p.name() + " trained");
                } else {
                    for (float v : g) assertTrue(Float.isNaN(v), p.name() + " frozen gradient untouched");
                }
            }
            model.unfreezeAll();
            assertEquals(4_015_234, model.trainableCount());
        }
    }

    @Test
    void loadCopiesMatchingTensorsAndReportsTheRest() {
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 source = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 1);
             EfficientNetB0 target = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 2)) {
            // A timm ImageNet file: 1000 classes, num_batches_tracked counters, and one key that is not B0's.
            Map<String, Tensor> file = new LinkedHashMap<>();
            for (Parameter p : source.namedParameters().values()) {
                Tensor copy = Tensor.allocate(arena, p.value().shape());
                copy.copyFrom(p.value());
                file.put(p.name(), copy);
                if (p.name().endsWith(".running_var")) {
                    file.put(p.name().replace("running_var", "num_batches_tracked"), Tensor.allocate(arena, 1));
                }
            }
            file.put("classifier.weight", Tensor.allocate(arena, 1000, 1280));
            file.put("classifier.bias", Tensor.allocate(arena, 1000));
            file.remove("blocks.2.1.bn3.running_mean");
            file.put("head.fc.weight", Tensor.allocate(arena, 3));

            LoadReport report = target.load(file);
            assertFalse(report.exact());
            assertEquals(311 - 3, report.loaded().size());
            assertEquals(List.of("blocks.2.1.bn3.running_mean"), report.missing());
            assertEquals(List.of("head.fc.weight"), report.unexpected());
            assertEquals(List.of("classifier.weight: file [1000, 1280], model [6, 1280]", "classifier.bias: file [1000], model [6]"),
                    report.misShaped());
            assertEquals(49, report.ignored().size());
            assertTrue(report.describe().contains("mis-shaped: classifier.weight"), report.describe());
            assertArrayEquals(source.namedParameters().get("conv_head.weight").value().toArray(),
                    target.namedParameters().get("conv_head.weight").value().toArray());
            assertFalse(Arrays.equals(source.namedParameters().get("classifier.weight").value().toArray(),
                    target.namedParameters().get("classifier.weight").value().toArray()), "mis-shaped keys are not loaded");

            Map<String, Tensor> exact = source.stateDict();
            assertEquals(List.copyOf(source.namedParameters().keySet()), List.copyOf(exact.keySet()));
            assertTrue(target.load(exact).exact());
            Tensor x = images(arena, 3, 1, 32, 32);
            try (StepContext c1 = StepContext.eval(backend); StepContext c2 = StepContext.eval(backend)) {
                assertArrayEquals(source.forward(x, c1).toArray(), target.forward(x, c2).toArray());
            }
        }
    }

    @Test
    void aHostModelInitialisesLikeABackendModelAndRunsOnAHostBackend() {
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 host = EfficientNetB0.onHost(EfficientNetB0.Config.defaults());
             EfficientNetB0 onBackend = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 5)) {
            assertNull(host.backend());
            host.initialize(5);
            for (String name : host.namedParameters().keySet()) {
                assertArrayEquals(onBackend.namedParameters().get(name).value().toArray(), host.namedParameters().get(name).value().toArray(), name);
            }
            Tensor x = images(arena, 1, 1, 32, 32);
            try (StepContext c1 = StepContext.eval(backend); StepContext c2 = StepContext.eval(backend)) {
                assertArrayEquals(onBackend.forward(x, c1).toArray(), host.forward(x, c2).toArray());
            }
            try (StepContext other = StepContext.eval(new NaiveBackend())) {
                assertThrows(IllegalArgumentException.class, () -> onBackend.forward(x, other), "a model runs on its own backend");
            }
        }
    }
}
