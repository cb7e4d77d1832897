package ich.nn.cuda;

import ich.nn.AdamTensors;
import ich.nn.ConvGeometry;
import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import ich.nn.optim.Adam;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CUDA backend against the CPU reference, op by op and for whole EfficientNet-B0 training steps, on fresh
 * random inputs (the seed is in every failure message). Device outputs are filled with NaN before each op, so
 * an element an op fails to write fails the comparison. TF32 is off: fp32 results differ from the CPU only by
 * summation order, hence a tolerance of 1e-4 relative to the output's norm for convolutions, batch norm and
 * GEMMs, 1e-5 per element for element-wise ops. Skips, saying why, without a GPU, cuDNN, cuBLAS or kernels.
 */
class CudaBackendTest extends CudaBackendFixture {
    private static final double SUM_REL = 1e-4, ELEMENT_REL = 1e-5;

    @Override
    CudaBackend.Options options() {
        return CudaBackend.Options.defaults();
    }

    // ---------------------------------------------------------------- helpers

    @Override
    float[] randoms(long n, double scale) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextGaussian() * scale);
        return v;
    }

    private void assertElementsClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double tol = ELEMENT_REL * Math.abs(expected[i]) + 1e-6;
            assertTrue(Math.abs(expected[i] - actual[i]) <= tol, what + ": element " + i + " expected " + expected[i]
                    + " got " + actual[i] + " (seed " + seed + ")");
        }
    }

    // ---------------------------------------------------------------- convolution

    /** EfficientNet-B0's kinds: the stem, pointwise, SE's 1x1 on 1x1 planes, depthwise 3x3/5x5 at stride 1/2. */
    static List<ConvGeometry> geometries() {
        return List.of(
                ConvGeometry.square(2, 3, 17, 15, 8, 3, 2, 1),
                ConvGeometry.square(3, 16, 9, 7, 24, 1, 1, 1),
                ConvGeometry.square(3, 16, 1, 1, 4, 1, 1, 1),
                ConvGeometry.square(2, 12, 11, 10, 12, 3, 1, 12),
                ConvGeometry.square(2, 12, 11, 10, 12, 3, 2, 12),
                ConvGeometry.square(1, 20, 13, 9, 20, 5, 1, 20),
                ConvGeometry.square(3, 20, 13, 9, 20, 5, 2, 20),
                ConvGeometry.square(2, 8, 2, 2, 8, 3, 1, 8));
    }

    @Test
    void convolutionsMatchTheCpu() {
        // a backend of its own: the shared one also holds the choices of every test that ran before this one
        try (CudaBackend b = CudaBackend.open(0)) {
            checkConvolutions(b, geometries(), SUM_REL);
            List<String> choices = b.convolutionChoices();
            assertEquals(geometries().size() * 3, choices.size(), "one choice per geometry and direction: " + choices);
        }
    }

    /** The depthwise shapes with our kernels forced, and with cuDNN forced: both must match the CPU. */
    @Test
    void depthwiseByEitherEngineMatchesTheCpu() {
        List<ConvGeometry> depthwise = geometries().stream().filter(ConvGeometry::depthwise).toList();
        for (CudaBackend.Depthwise engine : new CudaBackend.Depthwise[] {CudaBackend.Depthwise.OWN, CudaBackend.Depthwise.CUDNN}) {
            try (CudaBackend b = CudaBackend.open(0, CudaBackend.Options.defaults().withDepthwise(engine))) {
                checkConvolutions(b, depthwise, SUM_REL);
                String expected = engine == CudaBackend.Depthwise.OWN ? "own kernel" : "cuDNN";
                for (String line : b.convolutionChoices()) assertTrue(line.contains(expected), engine + ": " + line);
            }
        }
    }

    /**
     * Reproducible choices are made without timing: every convolution says so (cuDNN's heuristic ranking, our
     * depthwise kernels, the GEMMs), matches the CPU, and a second backend chooses the same.
     */
    @Test
    void reproducibleChoicesAreNotTimedAndRepeat() {
        List<String> first;
        try (CudaBackend b = CudaBackend.open(0, CudaBackend.Options.defaults().withReproducible(true))) {
            checkConvolutions(b, geometries(), SUM_REL);
            first = b.convolutionChoices();
        }
        assertEquals(geometries().size() * 3, first.size(), String.valueOf(first));
        for (String line : first) assertTrue(line.contains("reproducible"), line);
        assertTrue(first.stream().anyMatch(line -> line.contains("heuristic")), "the stem's kind goes to cuDNN's ranking: " + first);
        try (CudaBackend b = CudaBackend.open(0, CudaBackend.Options.defaults().withReproducible(true))) {
            checkConvolutions(b, geometries(), SUM_REL);
            assertEquals(first, b.convolutionChoices());
        }
    }

    /**
     * The 1 x 1 shapes as cuBLAS GEMMs (strided batched over the samples; the weight gradient summed from per-sample
     * products, here in chunks of two samples: a 4 KiB search workspace holds two [24, 16] products) and with cuDNN
     * forced: both must match the CPU in all three directions, and the choices must say who ran.
     */
    @Test
    void pointwiseByEitherEngineMatchesTheCpu() {
        List<ConvGeometry> pointwise = geometries().stream().filter(CudaBackend::pointwise).toList();
        assertTrue(pointwise.size() >= 2, String.valueOf(pointwise));
        var gemm = new CudaBackend.Options(false, true, 4096, CudaBackend.Depthwise.FASTEST, CudaBackend.Gemm.CUBLAS, false, false);
        for (CudaBackend.Options options : new CudaBackend.Options[] {gemm, CudaBackend.Options.defaults().withGemm(CudaBackend.Gemm.CUDNN)}) {
            try (CudaBackend b = CudaBackend.open(0, options)) {
                checkConvolutions(b, pointwise, SUM_REL);
                String expected = options.gemm() == CudaBackend.Gemm.CUBLAS ? "cuBLAS GEMM" : "cuDNN";
                assertEquals(pointwise.size() * 3, b.convolutionChoices().size(), String.valueOf(b.convolutionChoices()));
                for (String line : b.convolutionChoices()) assertTrue(line.contains(expected), options.gemm() + ": " + line);
            }
        }
    }

    /**
     * The op profile counts each queued op under its name (convolutions by engine, filter, stride and direction),
     * with non-negative times, refuses graph steps while it runs, and ends once.
     */
    @Test
    void theOpProfileCountsOpsByName() {
        try (CudaBackend b = CudaBackend.open(0, CudaBackend.Options.defaults().withDepthwise(CudaBackend.Depthwise.OWN)
                .withGemm(CudaBackend.Gemm.CUDNN))) {
            ConvGeometry pointwise = ConvGeometry.square(2, 8, 6, 6, 4, 1, 1, 1), depthwise = ConvGeometry.square(2, 8, 6, 6, 8, 3, 2, 8);
            Tensor x = f32(randoms(2 * 8 * 36, 1), 2, 8, 6, 6), w1 = f32(randoms(4 * 8, 1), 4, 8, 1, 1);
            Tensor w3 = f32(randoms(8 * 9, 1), 8, 1, 3, 3);
            Tensor y1 = poisonedF32(pointwise.outputShape()), y3 = poisonedF32(depthwise.outputShape()), s = poisonedF32(2, 8, 6, 6);
            b.conv2dForward(depthwise, x, w3, y3); // the algorithm searches run before the profile
            b.conv2dForward(pointwise, x, w1, y1);
            b.startProfile();
            assertThrows(IllegalStateException.class, b::startProfile);
            assertThrows(IllegalStateException.class, () -> b.beginStep("key"));
            b.silu(x, s);
            b.silu(s, s);
            b.conv2dForward(pointwise, x, w1, y1);
            b.conv2dForward(depthwise, x, w3, y3);
            List<CudaBackend.OpTime> ops = b.stopProfile();
            assertThrows(IllegalStateException.class, b::stopProfile);
            java.util.Map<String, Long> calls = new java.util.TreeMap<>();
            for (CudaBackend.OpTime o : ops) {
                calls.put(o.op(), o.calls());
                assertTrue(o.millis() >= 0, o.toString());
            }
            assertEquals(java.util.Map.of("silu", 2L, "cuDNN conv 1x1 FORWARD", 1L, "own depthwise 3x3/2 FORWARD", 1L), calls);
            for (int i = 1; i < ops.size(); i++) assertTrue(ops.get(i - 1).millis() >= ops.get(i).millis(), "longest first: " + ops);
            b.beginStep("key"); // allowed again once the profile has ended
            b.abandonStep();
        }
    }

    // ---------------------------------------------------------------- batch norm

    @Test
    void batchNormMatchesTheCpu() {
        int n = 3, c = 5, h = 6, w = 7;
        int[] shape = {n, c, h, w};
        // A mean far from 0 relative to the spread, as after a ReLU-free convolution: catches naive variance.
        float[] xv = randoms((long) n * c * h * w, 1);
        for (int i = 0; i < xv.length; i++) xv[i] += 3 + (i / (h * w)) % c;
        Tensor x = host(xv, shape), dy = host(randoms(xv.length, 1), shape);
        Tensor gamma = host(randoms(c, 1), c), beta = host(randoms(c, 1), c);
        float[] rm = randoms(c, 1), rv = new float[c];
        for (int i = 0; i < c; i++) rv[i] = 0.5f + random.nextFloat();
        Tensor runMean = host(rm, c), runVar = host(rv, c);
        Tensor y = Tensor.allocate(arena, shape), mean = Tensor.allocate(arena, c), inv = Tensor.allocate(arena, c);
        Tensor dx = Tensor.allocate(arena, shape), dg = Tensor.allocate(arena, c), db = Tensor.allocate(arena, c);
        Tensor yInf = Tensor.allocate(arena, shape);

        Tensor gx = f32(x), gdy = f32(dy), gGamma = f32(gamma), gBeta = f32(beta);
        Tensor gRunMean = f32(rm, c), gRunVar = f32(rv, c);
        Tensor gy = poisonedF32(shape), gMean = poisonedF32(c), gInv = poisonedF32(c), gdx = poisonedF32(shape), gdg = poisonedF32(c),
                gdb = poisonedF32(c), gyInf = poisonedF32(shape);

        cpu.batchNormForwardTraining(x, gamma, beta, runMean, runVar, 0.1, 1e-5, y, mean, inv);
        cpu.batchNormBackward(x, dy, gamma, mean, inv, 1e-5, dx, dg, db);
        cpu.batchNormForwardInference(x, gamma, beta, runMean, runVar, 1e-5, yInf);
        gpu.batchNormForwardTraining(gx, gGamma, gBeta, gRunMean, gRunVar, 0.1, 1e-5, gy, gMean, gInv);
        gpu.batchNormBackward(gx, gdy, gGamma, gMean, gInv, 1e-5, gdx, gdg, gdb);
        gpu.batchNormForwardInference(gx, gGamma, gBeta, gRunMean, gRunVar, 1e-5, gyInf);

        assertNormClose(y.toArray(), read(gy), SUM_REL, "training output");
        assertElementsCloseLoose(mean.toArray(), read(gMean), "saved mean");
        assertElementsCloseLoose(inv.toArray(), read(gInv), "saved 1/std");
        assertElementsCloseLoose(runMean.toArray(), read(gRunMean), "running mean");
        assertElementsCloseLoose(runVar.toArray(), read(gRunVar), "running variance (unbiased)");
        assertNormClose(dx.toArray(), read(gdx), SUM_REL, "input gradient");
        assertNormClose(dg.toArray(), read(gdg), SUM_REL, "gamma gradient");
        assertNormClose(db.toArray(), read(gdb), SUM_REL, "beta gradient");
        assertNormClose(yInf.toArray(), read(gyInf), SUM_REL, "inference output");
    }

    /** Per element at the 1e-4 of a sum over a few hundred values. */
    private void assertElementsCloseLoose(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], SUM_REL * Math.abs(expected[i]) + 1e-6, what + "[" + i + "] (seed " + seed + ")");
        }
    }

    // ---------------------------------------------------------------- element-wise, SE, pooling

    @Test
    void elementwiseOpsMatchTheCpu() {
        int[] shape = {3, 4, 5, 6};
        long size = 3 * 4 * 5 * 6;
        Tensor a = host(randoms(size, 3), shape), b = host(randoms(size, 1), shape);
        float[] sig = new float[(int) size];
        for (int i = 0; i < sig.length; i++) sig[i] = random.nextFloat();
        Tensor s = host(sig, shape);
        Tensor ga = f32(a), gb = f32(b), gs = f32(s);

        Tensor c1 = Tensor.allocate(arena, shape), g1 = poisonedF32(shape);
        cpu.silu(a, c1);
        gpu.silu(ga, g1);
        assertElementsClose(c1.toArray(), read(g1), "silu");
        cpu.siluBackward(a, b, c1);
        gpu.siluBackward(ga, gb, g1);
        assertElementsClose(c1.toArray(), read(g1), "siluBackward");
        cpu.sigmoid(a, c1);
        gpu.sigmoid(ga, g1);
        assertElementsClose(c1.toArray(), read(g1), "sigmoid");
        cpu.sigmoidBackward(s, b, c1);
        gpu.sigmoidBackward(gs, gb, g1);
        assertElementsClose(c1.toArray(), read(g1), "sigmoidBackward");
        cpu.add(a, b, c1);
        gpu.add(ga, gb, g1);
        assertElementsClose(c1.toArray(), read(g1), "add");
        cpu.accumulate(c1, b);
        gpu.accumulate(g1, gb);
        assertElementsClose(c1.toArray(), read(g1), "accumulate");
        cpu.scale(c1, 0.37f);
        gpu.scale(g1, 0.37f);
        assertElementsClose(c1.toArray(), read(g1), "scale");
        assertEquals(cpu.sumOfSquares(a), gpu.sumOfSquares(ga), 1e-5 * cpu.sumOfSquares(a), "sumOfSquares (seed " + seed + ")");

        float[] dropout = new float[(int) size];
        for (int i = 0; i < dropout.length; i++) dropout[i] = random.nextInt(4) == 0 ? 0 : 1 / 0.75f;
        Tensor mask = host(dropout, shape);
        cpu.multiplyByMask(a, mask, c1);
        gpu.multiplyByMask(ga, f32(mask), g1);
        assertElementsClose(c1.toArray(), read(g1), "dropout mask");
        Tensor perSample = host(new float[] {0, 1.25f, 1.25f}, 3);
        cpu.multiplyByMask(a, perSample, c1);
        gpu.multiplyByMask(ga, f32(perSample), g1);
        assertElementsClose(c1.toArray(), read(g1), "drop-path mask");
    }

    @Test
    void squeezeExcitationAndPoolingMatchTheCpu() {
        int n = 3, c = 7;
        for (int[] hw : new int[][] {{1, 1}, {5, 6}, {33, 31}}) {
            int[] shape = {n, c, hw[0], hw[1]};
            long size = (long) n * c * hw[0] * hw[1];
            Tensor x = host(randoms(size, 2), shape), dy = host(randoms(size, 1), shape);
            Tensor s = host(randoms(n * c, 1), n, c), dPooled = host(randoms(n * c, 1), n, c);
            Tensor y = Tensor.allocate(arena, shape), dx = Tensor.allocate(arena, shape), ds = Tensor.allocate(arena, n, c),
                    pooled = Tensor.allocate(arena, n, c), dxPool = Tensor.allocate(arena, shape);
            cpu.scaleChannels(x, s, y);
            cpu.scaleChannelsBackward(x, s, dy, dx, ds);
            cpu.globalAveragePool(x, pooled);
            cpu.globalAveragePoolBackward(dPooled, dxPool);
            Tensor gx = f32(x), gdy = f32(dy), gs = f32(s);
            Tensor gy = poisonedF32(shape), gdx = poisonedF32(shape), gds = poisonedF32(n, c), gPooled = poisonedF32(n, c),
                    gdxPool = poisonedF32(shape);
            gpu.scaleChannels(gx, gs, gy);
            gpu.scaleChannelsBackward(gx, gs, gdy, gdx, gds);
            gpu.globalAveragePool(gx, gPooled);
            gpu.globalAveragePoolBackward(f32(dPooled), gdxPool);
            String at = " at " + hw[0] + "x" + hw[1];
            assertElementsClose(y.toArray(), read(gy), "scaleChannels" + at);
            assertElementsClose(dx.toArray(), read(gdx), "scaleChannelsBackward dx" + at);
            assertElementsCloseLoose(ds.toArray(), read(gds), "scaleChannelsBackward ds" + at);
            assertElementsCloseLoose(pooled.toArray(), read(gPooled), "globalAveragePool" + at);
            assertElementsClose(dxPool.toArray(), read(gdxPool), "globalAveragePoolBackward" + at);

            // the SE layer's order: ds without dx, then dx through both paths in one op
            Tensor gdsAlone = poisonedF32(n, c), gInputGrad = poisonedF32(shape), inputGrad = Tensor.allocate(arena, shape);
            gpu.scaleChannelsBackward(gx, gs, gdy, null, gdsAlone);
            assertArrayEquals(read(gds), read(gdsAlone), "scaleChannelsBackward ds without dx" + at);
            cpu.scaleChannelsInputGradient(dy, s, dPooled, inputGrad);
            gpu.scaleChannelsInputGradient(gdy, gs, f32(dPooled), gInputGrad);
            assertElementsClose(inputGrad.toArray(), read(gInputGrad), "scaleChannelsInputGradient" + at);
        }
    }

    // ---------------------------------------------------------------- linear, loss, optimiser

    @Test
    void linearMatchesTheCpu() {
        int n = 5, in = 37, out = 6;
        Tensor x = host(randoms((long) n * in, 1), n, in), w = host(randoms((long) out * in, 0.3), out, in),
                b = host(randoms(out, 1), out), dy = host(randoms((long) n * out, 1), n, out);
        Tensor gx = f32(x), gw = f32(w), gb = f32(b), gdy = f32(dy);
        for (boolean withBias : new boolean[] {true, false}) {
            Tensor y = Tensor.allocate(arena, n, out), gy = poisonedF32(n, out);
            cpu.linearForward(x, w, withBias ? b : null, y);
            gpu.linearForward(gx, gw, withBias ? gb : null, gy);
            assertNormClose(y.toArray(), read(gy), SUM_REL, "linear forward, bias " + withBias);

            Tensor dx = Tensor.allocate(arena, n, in), dw = Tensor.allocate(arena, out, in), db = Tensor.allocate(arena, out);
            Tensor gdx = poisonedF32(n, in), gdw = poisonedF32(out, in), gdb = poisonedF32(out);
            cpu.linearBackward(x, w, dy, dx, dw, withBias ? db : null);
            gpu.linearBackward(gx, gw, gdy, gdx, gdw, withBias ? gdb : null);
            assertNormClose(dx.toArray(), read(gdx), SUM_REL, "linear dx");
            assertNormClose(dw.toArray(), read(gdw), SUM_REL, "linear dw");
            if (withBias) assertNormClose(db.toArray(), read(gdb), SUM_REL, "linear db");
        }
        // the GAP output [n, c, 1, 1] feeds the classifier as [n, c]
        Tensor y4 = poisonedF32(n, out);
        gpu.linearForward(f32(x.toArray(), n, in, 1, 1), gw, gb, y4);
        Tensor y = Tensor.allocate(arena, n, out);
        cpu.linearForward(x, w, b, y);
        assertNormClose(y.toArray(), read(y4), SUM_REL, "linear on [n, c, 1, 1]");
    }

    @Test
    void bceWithLogitsMatchesTheCpu() {
        int n = 9, labels = 6;
        Tensor z = host(randoms((long) n * labels, 4), n, labels);
        float[] t = new float[n * labels];
        for (int i = 0; i < t.length; i++) t[i] = random.nextInt(3) == 0 ? 1 : 0;
        Tensor targets = host(t, n, labels), weights = host(new float[] {2, 1, 1, 1, 1, 1}, labels);
        for (boolean weighted : new boolean[] {false, true}) {
            Tensor dz = Tensor.allocate(arena, n, labels), gdz = poisonedF32(n, labels);
            double loss = cpu.bceWithLogits(z, targets, weighted ? weights : null, dz);
            double gLoss = gpu.bceWithLogits(f32(z), f32(targets), weighted ? f32(weights) : null, gdz);
            assertEquals(loss, gLoss, 1e-6 * loss, "loss, weighted " + weighted + " (seed " + seed + ")");
            assertElementsClose(dz.toArray(), read(gdz), "d loss / d logits, weighted " + weighted);
        }
        assertEquals(cpu.bceWithLogits(z, targets, null, null), gpu.bceWithLogits(f32(z), f32(targets), null, null),
                1e-6, "loss without gradient");
    }

    @Test
    void adamStepsMatchTheCpu() {
        int size = 1000;
        for (boolean decoupled : new boolean[] {false, true}) {
            float[] p = randoms(size, 1), g = randoms(size, 0.1);
            Tensor param = host(p, size), grad = host(g, size), m = Tensor.allocate(arena, size), v = Tensor.allocate(arena, size);
            Tensor gp = f32(p, size), gg = f32(g, size), gm = gpu.allocate(arena, size), gv = gpu.allocate(arena, size);
            for (long step = 1; step <= 3; step++) {
                cpu.adamStep(param, grad, m, v, step, 4e-4, 0.9, 0.999, 1e-7, 0.01, decoupled);
                gpu.adamStep(gp, gg, gm, gv, step, 4e-4, 0.9, 0.999, 1e-7, 0.01, decoupled);
            }
            assertElementsClose(param.toArray(), read(gp), "parameters, decoupled " + decoupled);
            assertElementsClose(m.toArray(), read(gm), "first moment");
            assertElementsClose(v.toArray(), read(gv), "second moment");
        }
    }

    /**
     * adamStepAll on the GPU (one launch per call) against the CPU's loop, per element within 1e-5: a different
     * list each step for 6 steps (more lists than the backend keeps tables for), then the first two lists again,
     * the last step over all tensors. Adam with L2 decay and AdamW.
     */
    @Test
    void adamStepAllMatchesTheCpu() {
        int[] sizes = {1, 7, 1000, 300_001, 4097, 16};
        for (boolean decoupled : new boolean[] {false, true}) {
            List<AdamTensors> onCpu = new ArrayList<>(), onGpu = new ArrayList<>();
            for (int n : sizes) {
                float[] p = randoms(n, 1), m = randoms(n, 0.1), v = randoms(n, 0.01);
                for (int i = 0; i < n; i++) v[i] = Math.abs(v[i]) + 1e-6f;
                onCpu.add(new AdamTensors(host(p, n), Tensor.allocate(arena, n), host(m, n), host(v, n)));
                onGpu.add(new AdamTensors(f32(p, n), gpu.allocate(arena, n), f32(m, n), f32(v, n)));
            }
            for (long step = 1; step <= 9; step++) {
                int skipped = (int) ((step - 1) % 6); // steps 1-6: six lists, each without one tensor; 7, 8: lists 1, 2
                List<AdamTensors> cpuList = new ArrayList<>(), gpuList = new ArrayList<>();
                for (int t = 0; t < sizes.length; t++) {
                    float[] g = randoms(sizes[t], 0.5);
                    onCpu.get(t).grad().copyFrom(g);
                    gpu.copy(onCpu.get(t).grad(), onGpu.get(t).grad());
                    if (t == skipped && step < 9) continue;
                    cpuList.add(onCpu.get(t));
                    gpuList.add(onGpu.get(t));
                }
                double lr = 1e-3 * step;
                cpu.adamStepAll(cpuList, step, lr, 0.9, 0.999, 1e-7, 0.01, decoupled);
                gpu.adamStepAll(gpuList, step, lr, 0.9, 0.999, 1e-7, 0.01, decoupled);
                for (int t = 0; t < sizes.length; t++) {
                    String what = (decoupled ? "AdamW" : "Adam") + " step " + step + ", tensor " + t;
                    AdamTensors c = onCpu.get(t), d = onGpu.get(t);
                    assertElementsClose(c.param().toArray(), read(d.param()), what + " parameters");
                    assertElementsClose(c.m().toArray(), read(d.m()), what + " first moment");
                    assertElementsClose(c.v().toArray(), read(d.v()), what + " second moment");
                }
            }
        }
    }

    /** The optimiser on both backends through freezing and unfreezing, when its parameters split into two groups. */
    @Test
    void adamOptimiserWithFrozenParametersMatchesTheCpu() {
        int[][] shapes = {{8, 3, 3, 3}, {8}, {8}, {6, 1280}, {6}};
        List<Parameter> cpuParams = new ArrayList<>(), gpuParams = new ArrayList<>();
        for (int i = 0; i < shapes.length; i++) {
            long n = 1;
            for (int d : shapes[i]) n *= d;
            float[] values = randoms(n, 1);
            cpuParams.add(Parameter.weight("p" + i, host(values, shapes[i]), Tensor.allocate(arena, shapes[i])));
            gpuParams.add(Parameter.weight("p" + i, f32(values, shapes[i]), gpu.allocate(arena, shapes[i])));
        }
        Adam cpuAdam = new Adam(cpu, arena, Adam.Options.adamW(1e-2, 0.05));
        Adam gpuAdam = new Adam(gpu, arena, Adam.Options.adamW(1e-2, 0.05));
        for (int step = 1; step <= 5; step++) {
            for (int i = 0; i < shapes.length; i++) {
                boolean head = i >= 3, trainable = head || step <= 1 || step >= 4; // the body frozen for steps 2 and 3
                cpuParams.get(i).setTrainable(trainable);
                gpuParams.get(i).setTrainable(trainable);
                cpuParams.get(i).grad().copyFrom(randoms(cpuParams.get(i).size(), 0.5));
                gpu.copy(cpuParams.get(i).grad(), gpuParams.get(i).grad());
            }
            cpuAdam.step(cpuParams);
            gpuAdam.step(gpuParams);
            for (int i = 0; i < shapes.length; i++) {
                assertElementsClose(cpuParams.get(i).value().toArray(), read(gpuParams.get(i).value()), "step " + step + ", p" + i);
            }
        }
        assertEquals(5L, gpuAdam.stepCounts().get("p3"));
        assertEquals(3L, gpuAdam.stepCounts().get("p0"));
    }

    // ---------------------------------------------------------------- the whole network

    /**
     * Two training steps of EfficientNet-B0 (forward, weighted BCE, backward, Adam) from the same initial weights
     * on both backends: the losses, every gradient and BN statistic of the first step, and every updated weight.
     *
     * <p>Adam's epsilon is 1e-3 here, not 1e-7: some gradients are zero in exact arithmetic (the bias of a batch
     * norm followed by a 1x1 convolution and another training-mode batch norm, which subtracts any shift again),
     * and both backends hold rounding noise there (~1e-7), which Adam with a tiny epsilon turns into steps of the
     * full learning rate in random directions; two correct implementations would then differ by percents after a
     * step. With 1e-3 such noise moves nothing, and every weight must agree to 1e-4 of its norm.
     */
    @Test
    void wholeTrainingStepsMatchTheCpu() {
        int n = 4, size = 64, steps = 2;
        double lr = 4e-4;
        EfficientNetB0.Config config = EfficientNetB0.Config.defaults();
        try (Arena models = Arena.ofShared();
             EfficientNetB0 onCpu = EfficientNetB0.initialized(cpu, config, 11);
             EfficientNetB0 onGpu = EfficientNetB0.initialized(gpu, config, 11)) {
            Adam cpuAdam = new Adam(cpu, models, Adam.Options.adam(lr).withEps(1e-3));
            Adam gpuAdam = new Adam(gpu, models, Adam.Options.adam(lr).withEps(1e-3));
            for (int step = 1; step <= steps; step++) {
                Tensor x = host(randoms((long) n * 3 * size * size, 1), n, 3, size, size);
                float[] t = new float[n * 6];
                for (int i = 0; i < t.length; i++) t[i] = random.nextInt(2);
                Tensor targets = host(t, n, 6), weights = host(new float[] {2, 1, 1, 1, 1, 1}, 6);
                double cpuLoss, gpuLoss;
                try (StepContext cc = StepContext.training(cpu, 5, step); StepContext gc = StepContext.training(gpu, 5, step)) {
                    Tensor yc = onCpu.forward(x, cc), yg = onGpu.forward(f32(x), gc);
                    assertNormClose(yc.toArray(), read(yg), 1e-3, "logits, step " + step);
                    EfficientNetB0.Loss lc = onCpu.loss(yc, targets, weights, cc);
                    EfficientNetB0.Loss lg = onGpu.loss(yg, f32(targets), f32(weights), gc);
                    cpuLoss = lc.value();
                    gpuLoss = lg.value();
                    onCpu.backward(lc.dLogits(), cc, false);
                    onGpu.backward(lg.dLogits(), gc, false);
                }
                assertEquals(cpuLoss, gpuLoss, 1e-4 * cpuLoss, "loss, step " + step + " (seed " + seed + ")");
                if (step == 1) compareGradients(onCpu.namedParameters(), onGpu.namedParameters(), 2e-3);
                cpuAdam.step(onCpu.namedParameters().values());
                gpuAdam.step(onGpu.namedParameters().values());
            }
            for (String name : onCpu.namedParameters().keySet()) {
                assertNormClose(onCpu.namedParameters().get(name).value().toArray(),
                        read(onGpu.namedParameters().get(name).value()), 1e-4, "weights of " + name);
            }
        }
    }

    private void compareGradients(Map<String, Parameter> cpuParams, Map<String, Parameter> gpuParams, double tolerance) {
        assertEquals(cpuParams.keySet(), gpuParams.keySet());
        for (String name : cpuParams.keySet()) {
            Parameter pc = cpuParams.get(name), pg = gpuParams.get(name);
            if (pc.isBuffer()) {
                assertNormClose(pc.value().toArray(), read(pg.value()), tolerance, "buffer " + name);
            } else if (pc.grad() != null) { // null: frozen
                assertNormClose(pc.grad().toArray(), read(pg.grad()), tolerance, "gradient of " + name);
            }
        }
    }

    @Test
    void aTrainingStepRepeatsBitForBit() {
        int n = 2, size = 64;
        float[] images = randoms((long) n * 3 * size * size, 1);
        float[] first = null;
        for (int run = 0; run < 2; run++) {
            try (EfficientNetB0 model = EfficientNetB0.initialized(gpu, EfficientNetB0.Config.defaults(), 3);
                 StepContext ctx = StepContext.training(gpu, 1, 1)) {
                Tensor y = model.forward(f32(images, n, 3, size, size), ctx);
                EfficientNetB0.Loss loss = model.loss(y, f32(new float[] {1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1}, n, 6), null, ctx);
                model.backward(loss.dLogits(), ctx, false);
                float[] grad = read(model.namedParameters().get("conv_stem.weight").grad());
                if (first == null) first = grad;
                else assertArrayEquals(first, grad, "deterministic algorithms and kernels give the same bits");
            }
        }
    }

    /**
     * The same four training steps (new images, labels and dropout masks each time) run eagerly on one model and as
     * a CUDA graph on another from the same weights: warm-up, capture, two replays. Same bits.
     */
    @Test
    void graphStepsEqualEagerSteps() {
        int n = 4, size = 64;
        try (Twins twins = new Twins()) {
            List<String> modes = new java.util.ArrayList<>();
            for (int step = 1; step <= 4; step++) {
                float[] images = randoms((long) n * 3 * size * size, 1), labels = randomLabels(n);
                double eagerLoss = eagerStep(twins.eager, twins.eagerAdam, images, labels, step);
                GraphStep queued = graphStep(twins.graphed, twins.graphAdam, "test", images, labels, step);
                modes.add(queued.mode());
                assertEquals(eagerLoss, queued.loss().getAsDouble(), 0.0, "loss of step " + step + " (" + modes.getLast() + ")");
            }
            assertEquals(List.of("eager", "capture", "replay", "replay"), modes);
            assertSameParameters(twins.eager, twins.graphed, "after 4 steps");
        }
    }

    /**
     * Released graphs give their pools back, and their key starts over (eager, capture, replay) with the same
     * results as eager steps.
     */
    @Test
    void releasedStepGraphsFreeTheirMemoryAndTheirKeyStartsOver() {
        int n = 4, size = 64;
        try (Twins twins = new Twins()) {
            List<String> modes = new java.util.ArrayList<>();
            long held = 0;
            for (int step = 1; step <= 6; step++) {
                if (step == 4) {
                    held = gpu.allocatedBytes();
                    gpu.releaseStepGraphs();
                    assertFalse(gpu.hasGraph("release"), "no graph after the release");
                    assertTrue(gpu.allocatedBytes() < held, "the key's pool is freed: " + gpu.allocatedBytes() + " of " + held + " bytes held");
                }
                float[] images = randoms((long) n * 3 * size * size, 1), labels = randomLabels(n);
                double eagerLoss = eagerStep(twins.eager, twins.eagerAdam, images, labels, step);
                GraphStep queued = graphStep(twins.graphed, twins.graphAdam, "release", images, labels, step);
                modes.add(queued.mode());
                assertEquals(eagerLoss, queued.loss().getAsDouble(), 0.0, "loss of step " + step + " (" + modes.getLast() + ")");
            }
            assertEquals(List.of("eager", "capture", "replay", "eager", "capture", "replay"), modes);
            assertSameParameters(twins.eager, twins.graphed, "after 6 steps");
        }
    }

    /**
     * As a training loop queues them: each graph step is queued before the loss of the step before it is read, so
     * its hoisted copies (new images, labels, masks, Adam's scalars) are queued while that step may still run, and
     * its host staging is written while that step's copies may still wait. Five steps (warm-up, capture, three
     * replays) against eager steps read at once, run first on another model from the same weights (run between the
     * graph steps, they would wait for them on the stream): the same losses and weights, bit for bit.
     */
    @Test
    void graphStepsQueuedAheadOfTheirLossReadsEqualEagerSteps() {
        int n = 4, size = 64, steps = 5;
        try (Twins twins = new Twins()) {
            float[][] images = new float[steps + 1][], labels = new float[steps + 1][];
            double[] eagerLosses = new double[steps + 1], graphLosses = new double[steps + 1];
            for (int step = 1; step <= steps; step++) {
                images[step] = randoms((long) n * 3 * size * size, 1);
                labels[step] = randomLabels(n);
                eagerLosses[step] = eagerStep(twins.eager, twins.eagerAdam, images[step], labels[step], step);
            }
            GraphStep queued = null;
            for (int step = 1; step <= steps; step++) {
                GraphStep next = graphStep(twins.graphed, twins.graphAdam, "ahead", images[step], labels[step], step);
                if (queued != null) graphLosses[step - 1] = queued.loss().getAsDouble();
                queued = next;
            }
            graphLosses[steps] = queued.loss().getAsDouble();
            assertArrayEquals(eagerLosses, graphLosses, "losses of steps 1-" + steps + " (eager, capture, replays)");
            assertSameParameters(twins.eager, twins.graphed, "after " + steps + " steps");
        }
    }

    /** Two B0 models from the same weights with an Adam each: one trained eagerly, the other through CUDA graphs. */
    private final class Twins implements AutoCloseable {
        final Arena arena = Arena.ofShared();
        final EfficientNetB0 eager = EfficientNetB0.initialized(gpu, EfficientNetB0.Config.defaults(), 5);
        final EfficientNetB0 graphed = EfficientNetB0.initialized(gpu, EfficientNetB0.Config.defaults(), 5);
        final Adam eagerAdam = new Adam(gpu, arena, Adam.Options.adam(4e-4));
        final Adam graphAdam = new Adam(gpu, arena, Adam.Options.adam(4e-4));

        @Override
        public void close() {
            try (arena; eager; graphed) {
                // closes the models, then the optimizers' arena
            }
        }
    }

    /** A training step on images [n, 3, s, s] and labels [n, 6] from the host, its loss read at once. */
    private double eagerStep(EfficientNetB0 model, Adam adam, float[] images, float[] labels, int step) {
        int n = labels.length / 6, size = (int) Math.sqrt(images.length / (3.0 * n));
        try (StepContext ctx = StepContext.training(gpu, 9, step)) {
            EfficientNetB0.Loss loss = model.loss(model.forward(f32(images, n, 3, size, size), ctx), f32(labels, n, 6), null, ctx);
            model.backward(loss.dLogits(), ctx, false);
            adam.setLearningRate(4e-4 * step); // a new learning rate each step: a graph must not freeze it
            adam.step(model.trainableParameters());
            return loss.value();
        }
    }

    /** The mode a graph step ran in ("eager", "capture", "replay") and its loss, to be read later. */
    private record GraphStep(String mode, java.util.function.DoubleSupplier loss) {}

    /** {@link #eagerStep} as a step of the CUDA graph {@code key}, queued without reading its loss. */
    private GraphStep graphStep(EfficientNetB0 model, Adam adam, String key, float[] images, float[] labels, int step) {
        int n = labels.length / 6, size = (int) Math.sqrt(images.length / (3.0 * n));
        String mode = gpu.beginStep(key);
        try (StepContext ctx = StepContext.training(gpu, 9, step)) {
            Tensor x = ctx.output(n, 3, size, size), targets = ctx.output(n, 6);
            gpu.copy(host(images, n, 3, size, size), x);
            gpu.copy(host(labels, n, 6), targets);
            EfficientNetB0.Loss loss = model.loss(model.forward(x, ctx), targets, null, ctx);
            model.backward(loss.dLogits(), ctx, false);
            adam.setLearningRate(4e-4 * step);
            adam.step(model.trainableParameters());
            gpu.endStep();
            return new GraphStep(mode, loss::value);
        } catch (RuntimeException e) {
            gpu.abandonStep();
            throw e;
        }
    }

    private float[] randomLabels(int n) {
        float[] t = new float[n * 6];
        for (int i = 0; i < t.length; i++) t[i] = random.nextInt(2);
        return t;
    }

    private void assertSameParameters(EfficientNetB0 expected, EfficientNetB0 actual, String when) {
        for (String name : expected.namedParameters().keySet()) {
            assertArrayEquals(read(expected.namedParameters().get(name).value()), read(actual.namedParameters().get(name).value()),
                    name + " " + when);
        }
    }

    /**
     * Eager copies from the host go through two pinned halves used in turn: more than two laps of them, queued
     * without a wait in between, each from an array the host reuses at once, all arrive intact.
     */
    @Test
    void eagerCopiesThroughThePinnedHalvesArriveIntact() {
        int elements = (int) (CudaBackend.UPLOAD_HALF_BYTES / Float.BYTES / 3) + 7; // three copies do not fit a half
        int copies = 8;
        float[][] sent = new float[copies][];
        Tensor[] onDevice = new Tensor[copies];
        float[] reused = new float[elements];
        Tensor source = Tensor.allocate(arena, elements);
        Tensor busy = f32(randoms(1 << 22, 1), 1 << 22);
        gpu.silu(busy, gpu.allocate(arena, 1 << 22)); // keeps the stream busy while the host queues the copies behind it
        for (int i = 0; i < copies; i++) {
            sent[i] = randoms(elements, 1 + i);
            System.arraycopy(sent[i], 0, reused, 0, elements);
            source.copyFrom(reused); // the same host memory every time, rewritten as soon as the copy is queued
            onDevice[i] = gpu.allocate(arena, elements);
            gpu.copy(source, onDevice[i]);
        }
        for (int i = 0; i < copies; i++) assertArrayEquals(sent[i], read(onDevice[i]), "copy " + i);
    }

    /** A loss read after {@link CudaBackend#LOSS_CELLS} later losses were queued fails instead of giving another one. */
    @Test
    void aLossReadTooLateFails() {
        Tensor logits = f32(randoms(2 * 6, 2), 2, 6), targets = f32(new float[] {1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0}, 2, 6);
        java.util.function.DoubleSupplier first = gpu.bceWithLogitsLater(logits, targets, null, null);
        double firstValue = first.getAsDouble();
        assertEquals(firstValue, first.getAsDouble(), 0.0, "read again while its slot holds it");
        for (int i = 0; i < CudaBackend.LOSS_CELLS; i++) gpu.bceWithLogitsLater(logits, targets, null, null);
        IllegalStateException e = assertThrows(IllegalStateException.class, first::getAsDouble);
        assertTrue(e.getMessage().contains("later losses"), e.getMessage());
    }

    @Test
    void whatAGraphCannotHoldIsRefusedAndTheKeyStartsOver() {
        Tensor a = gpu.allocate(arena, 64);
        gpu.beginStep("refused");
        gpu.endStep(); // the eager warm-up
        gpu.beginStep("refused");
        assertThrows(CudaBackend.NotCapturableException.class, () -> gpu.sumOfSquares(a));
        gpu.abandonStep();
        assertEquals("eager", gpu.beginStep("refused"), "after a failed capture the key warms up again");
        gpu.endStep();
        assertTrue(!gpu.hasGraph("refused"));
    }

    // ---------------------------------------------------------------- misuse

    @Test
    void misuseFailsWithAClearMessage() {
        Tensor onHost = Tensor.allocate(arena, 2, 3);
        Tensor onDevice = gpu.allocate(arena, 2, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gpu.silu(onHost, onDevice));
        assertTrue(e.getMessage().contains("on the host"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> gpu.add(onDevice, gpu.allocate(arena, 3, 3), onDevice));
        Tensor stale;
        try (Arena step = gpu.stepArena()) {
            stale = gpu.allocate(step, 2, 3);
        }
        IllegalStateException s = assertThrows(IllegalStateException.class, () -> gpu.silu(stale, onDevice));
        assertTrue(s.getMessage().contains("closed"), s.getMessage());
        assertThrows(IllegalArgumentException.class, () -> gpu.batchNormForwardInference(gpu.allocate(arena, 2, 3, 4, 4),
                gpu.allocate(arena, 3), gpu.allocate(arena, 3), gpu.allocate(arena, 3), gpu.allocate(arena, 3), 0,
                gpu.allocate(arena, 2, 3, 4, 4)), "eps must be positive");
    }

    @Test
    void stepArenasRecycleDeviceMemory() {
        long before;
        try (Arena step = gpu.stepArena()) {
            gpu.allocate(step, 1000, 1000);
        }
        before = gpu.allocatedBytes();
        for (int i = 0; i < 3; i++) {
            try (Arena step = gpu.stepArena()) {
                Tensor t = gpu.allocate(step, 1000, 1000);
                assertArrayEquals(new float[] {0, 0, 0}, java.util.Arrays.copyOf(read(t), 3), "allocate zero-fills");
            }
        }
        assertEquals(before, gpu.allocatedBytes(), "later steps reuse the first step's chunks");
    }
}
