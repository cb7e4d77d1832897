package ich.nn.cuda;

import ich.gpu.Bf16Reference;
import ich.gpu.NnKernels;
import ich.nn.ConvGeometry;
import ich.nn.Parameter;
import ich.nn.Storage;
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
 * The CUDA backend's bf16 mixed precision (activations bf16 channels-last, weights and statistics fp32) against
 * the fp32 CPU reference. The CPU runs on the same inputs rounded to bf16 (and, for convolutions, the same weights
 * rounded to bf16, as the GPU uses them), so what differs is the rounding of the GPU's bf16 outputs (2^-9
 * relative) and fp32 summation order: 1e-2 relative to an output's norm for single ops. Whole EfficientNet-B0
 * passes compound roundings over ~100 ops (see {@link #evalLogitsMatchAndATrainingStepPointsTheCpusWay}), and a
 * graph step must give the eager step's bits. Device outputs are poisoned (NaN) before each
 * op. Skips, saying why, without a GPU, cuDNN, cuBLAS or kernels.
 */
class CudaBackendBf16Test extends CudaBackendFixture {
    private static final double BF16_REL = 1e-2;

    @Override
    CudaBackend.Options options() {
        return CudaBackend.Options.defaults().withBf16(true);
    }

    // ---------------------------------------------------------------- helpers

    /** Gaussian values already rounded to bf16, so both sides start from the same numbers. */
    @Override
    float[] randoms(long n, double scale) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = Bf16Reference.rounded((float) (random.nextGaussian() * scale));
        return v;
    }

    // ---------------------------------------------------------------- conversions

    @Test
    void copiesConvertBetweenFp32NchwAndBf16Nhwc() {
        int[] shape = {2, 5, 3, 7};
        float[] v = new float[2 * 5 * 3 * 7];
        for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextGaussian() * 100); // not bf16-exact: rounding shows
        Tensor onDevice = bf16(v, shape);
        assertEquals(Storage.BF16_NHWC, onDevice.storage());
        assertArrayEquals(roundedToBf16(v), read(onDevice), "host fp32 -> bf16 NHWC -> host: rounded to nearest even, exactly");

        // device fp32 NCHW -> bf16 NHWC -> fp32 NCHW, all on the device
        Tensor f = f32(v, shape), b = poisonedBf16(shape), back = poisonedF32(shape);
        gpu.copy(f, b);
        gpu.copy(b, back);
        assertArrayEquals(roundedToBf16(v), read(back), "device round trip");

        // channels-last order really is NHWC: element (n, c, h, w) sits at ((n*H + h)*W + w)*C + c
        Tensor raw = poisonedF32(v.length / 2); // bf16 pairs seen as floats: reinterpret through a byte copy
        gpu.stream().copyOnDevice(onDevice.data().address(), raw.data().address(), onDevice.bytes());
        float[] words = read(raw);
        int c = 5, h = 3, w = 7;
        for (int trial = 0; trial < 20; trial++) {
            int n = random.nextInt(2), ch = random.nextInt(c), y = random.nextInt(h), x = random.nextInt(w);
            long at = (((long) n * h + y) * w + x) * c + ch;
            int word = Float.floatToRawIntBits(words[(int) (at / 2)]);
            int bits = at % 2 == 0 ? word & 0xFFFF : word >>> 16; // little-endian halves
            float expected = Bf16Reference.rounded(v[((n * c + ch) * h + y) * w + x]);
            assertEquals(expected, Float.intBitsToFloat(bits << 16), "element (" + n + "," + ch + "," + y + "," + x + ")");
        }
    }

    // ---------------------------------------------------------------- convolution

    @Test
    void convolutionsMatchTheCpu() {
        checkConvolutions(gpu, CudaBackendTest.geometries(), BF16_REL);
        assertTrue(gpu.convolutionChoices().stream().anyMatch(line -> line.contains(" bf16 ")), String.valueOf(gpu.convolutionChoices()));
    }

    /**
     * The 3x3 and 5x5 depthwise shapes with our NHWC kernels forced, and with cuDNN forced: both must match the
     * CPU, and the choices must say who ran (the weight gradient of ours is fp32 straight from double sums, cuDNN's
     * is widened from bf16: the same tolerance holds both).
     */
    @Test
    void depthwiseByEitherEngineMatchesTheCpu() {
        List<ConvGeometry> depthwise = CudaBackendTest.geometries().stream().filter(NnKernels::supportsDepthwiseNhwc).toList();
        assertTrue(depthwise.size() >= 4, "3x3 and 5x5, stride 1 and 2: " + depthwise);
        checkEngine(depthwise, CudaBackend.Options.defaults().withBf16(true).withDepthwise(CudaBackend.Depthwise.OWN), "own kernel");
        checkEngine(depthwise, CudaBackend.Options.defaults().withBf16(true).withDepthwise(CudaBackend.Depthwise.CUDNN), "cuDNN");
    }

    /** Every direction of each shape on a fresh backend with these options matches the CPU and ran on the engine named. */
    private void checkEngine(List<ConvGeometry> shapes, CudaBackend.Options options, String engine) {
        try (CudaBackend b = CudaBackend.open(0, options)) {
            checkConvolutions(b, shapes, BF16_REL);
            assertEquals(shapes.size() * 3, b.convolutionChoices().size(), String.valueOf(b.convolutionChoices()));
            for (String line : b.convolutionChoices()) {
                assertTrue(line.contains(" bf16 ") && line.contains(engine), engine + ": " + line);
            }
        }
    }

    /**
     * The GEMM engine ({@link CudaBackend.Gemm}) against cuDNN, both against the CPU: the 1 x 1 shapes (stride 1, no
     * padding) in all three directions with cuBLAS forced and with cuDNN forced, and a dense 3x3/2 convolution (the
     * stem's kind) whose weight gradient cuBLAS does as im2col chunks: a search workspace of 4 KiB cuts its 144
     * positions into two chunks, so the second GEMM adds to the first. The GEMMs write the weight gradient in fp32
     * from fp32 sums; cuDNN's is widened from bf16: the same tolerance holds both.
     */
    @Test
    void gemmByEitherEngineMatchesTheCpu() {
        List<ConvGeometry> pointwise = CudaBackendTest.geometries().stream().filter(CudaBackend::pointwise).toList();
        assertTrue(pointwise.size() >= 2, "1 x 1 expansions and projections: " + pointwise);
        checkEngine(pointwise, CudaBackend.Options.defaults().withBf16(true).withGemm(CudaBackend.Gemm.CUBLAS), "cuBLAS GEMM");
        checkEngine(pointwise, CudaBackend.Options.defaults().withBf16(true).withGemm(CudaBackend.Gemm.CUDNN), "cuDNN");

        ConvGeometry stem = ConvGeometry.square(2, 3, 17, 15, 8, 3, 2, 1);
        var smallWorkspace = new CudaBackend.Options(false, true, 4096, CudaBackend.Depthwise.FASTEST, CudaBackend.Gemm.CUBLAS, true, false);
        try (CudaBackend b = CudaBackend.open(0, smallWorkspace)) {
            checkConvolutions(b, List.of(stem), BF16_REL);
            assertEquals(3, b.convolutionChoices().size(), String.valueOf(b.convolutionChoices()));
            for (String line : b.convolutionChoices()) {
                assertEquals(line.contains("BACKWARD_FILTER"), line.contains("cuBLAS im2col GEMM"), line);
            }
        }
    }

    // ---------------------------------------------------------------- batch norm

    @Test
    void batchNormMatchesTheCpu() {
        int n = 3, c = 37, h = 6, w = 5; // c not a multiple of a warp
        int[] shape = {n, c, h, w};
        float[] xv = randoms((long) n * c * h * w, 1);
        for (int i = 0; i < xv.length; i++) xv[i] = Bf16Reference.rounded(xv[i] + 3 + (i / (h * w)) % 7); // offset means
        float[] dyv = randoms(xv.length, 1);
        float[] gv = randoms(c, 1), bv = randoms(c, 1), rm = randoms(c, 1), rv = new float[c];
        for (int i = 0; i < c; i++) rv[i] = 0.5f + random.nextFloat();
        Tensor x = host(xv, shape), dy = host(dyv, shape), gamma = host(gv, c), beta = host(bv, c);
        Tensor runMean = host(rm, c), runVar = host(rv, c);
        Tensor y = Tensor.allocate(arena, shape), mean = Tensor.allocate(arena, c), inv = Tensor.allocate(arena, c);
        Tensor dx = Tensor.allocate(arena, shape), dg = Tensor.allocate(arena, c), db = Tensor.allocate(arena, c);
        Tensor yInf = Tensor.allocate(arena, shape);
        cpu.batchNormForwardTraining(x, gamma, beta, runMean, runVar, 0.1, 1e-5, y, mean, inv);
        cpu.batchNormBackward(x, dy, gamma, mean, inv, 1e-5, dx, dg, db);
        cpu.batchNormForwardInference(x, gamma, beta, runMean, runVar, 1e-5, yInf);

        Tensor gx = bf16(xv, shape), gdy = bf16(dyv, shape), gGamma = f32(gv, c), gBeta = f32(bv, c);
        Tensor gRunMean = f32(rm, c), gRunVar = f32(rv, c);
        Tensor gy = poisonedBf16(shape), gMean = poisonedF32(c), gInv = poisonedF32(c), gdx = poisonedBf16(shape),
                gdg = poisonedF32(c), gdb = poisonedF32(c), gyInf = poisonedBf16(shape);
        gpu.batchNormForwardTraining(gx, gGamma, gBeta, gRunMean, gRunVar, 0.1, 1e-5, gy, gMean, gInv);
        gpu.batchNormBackward(gx, gdy, gGamma, gMean, gInv, 1e-5, gdx, gdg, gdb);
        gpu.batchNormForwardInference(gx, gGamma, gBeta, gRunMean, gRunVar, 1e-5, gyInf);

        // The statistics are sums of exact bf16 inputs in fp32 or better: as close as fp32 sums get.
        assertNormClose(mean.toArray(), read(gMean), 1e-5, "saved mean");
        assertNormClose(inv.toArray(), read(gInv), 1e-4, "saved 1/std");
        assertNormClose(runMean.toArray(), read(gRunMean), 1e-5, "running mean");
        assertNormClose(runVar.toArray(), read(gRunVar), 1e-4, "running variance (unbiased)");
        assertNormClose(dg.toArray(), read(gdg), 1e-4, "gamma gradient");
        assertNormClose(db.toArray(), read(gdb), 1e-5, "beta gradient");
        assertNormClose(y.toArray(), read(gy), BF16_REL, "training output");
        assertNormClose(dx.toArray(), read(gdx), BF16_REL, "input gradient");
        assertNormClose(yInf.toArray(), read(gyInf), BF16_REL, "inference output");
    }

    /**
     * The fused batch norm + SiLU against the CPU's batch norm then SiLU (and SiLU backward then batch-norm
     * backward); fused only on bf16 tensors, and said so.
     */
    @Test
    void fusedBatchNormSiluMatchesTheCpusTwoOps() {
        assertTrue(gpu.fusesBatchNormSilu(Storage.BF16_NHWC));
        assertFalse(gpu.fusesBatchNormSilu(Storage.FLOAT32));
        int n = 2, c = 40, h = 5, w = 7;
        int[] shape = {n, c, h, w};
        float[] xv = randoms((long) n * c * h * w, 1), dyv = randoms(xv.length, 1);
        float[] gv = randoms(c, 1), bv = randoms(c, 1), rm = randoms(c, 1), rv = new float[c];
        for (int i = 0; i < c; i++) rv[i] = 0.5f + random.nextFloat();
        Tensor x = host(xv, shape), dy = host(dyv, shape), gamma = host(gv, c), beta = host(bv, c);
        Tensor z = Tensor.allocate(arena, shape), y = Tensor.allocate(arena, shape), mean = Tensor.allocate(arena, c),
                inv = Tensor.allocate(arena, c), dz = Tensor.allocate(arena, shape), dx = Tensor.allocate(arena, shape),
                dg = Tensor.allocate(arena, c), db = Tensor.allocate(arena, c), yInf = Tensor.allocate(arena, shape);
        cpu.batchNormForwardTraining(x, gamma, beta, host(rm.clone(), c), host(rv.clone(), c), 0.1, 1e-5, z, mean, inv);
        cpu.silu(z, y);
        cpu.siluBackward(z, dy, dz);
        cpu.batchNormBackward(x, dz, gamma, mean, inv, 1e-5, dx, dg, db);
        cpu.batchNormForwardInference(x, gamma, beta, host(rm, c), host(rv, c), 1e-5, yInf);
        cpu.silu(yInf, yInf);

        Tensor gx = bf16(xv, shape), gdy = bf16(dyv, shape), gGamma = f32(gv, c), gBeta = f32(bv, c);
        Tensor gRunMean = f32(rm, c), gRunVar = f32(rv, c);
        Tensor gy = poisonedBf16(shape), gMean = poisonedF32(c), gInv = poisonedF32(c), gdx = poisonedBf16(shape),
                gdg = poisonedF32(c), gdb = poisonedF32(c), gyInf = poisonedBf16(shape);
        gpu.batchNormSiluForwardInference(gx, gGamma, gBeta, gRunMean, gRunVar, 1e-5, gyInf); // before training moves them
        gpu.batchNormSiluForwardTraining(gx, gGamma, gBeta, gRunMean, gRunVar, 0.1, 1e-5, gy, gMean, gInv);
        gpu.batchNormSiluBackward(gx, gdy, gGamma, gBeta, gMean, gInv, 1e-5, gdx, gdg, gdb);
        assertNormClose(mean.toArray(), read(gMean), 1e-5, "saved mean");
        assertNormClose(inv.toArray(), read(gInv), 1e-4, "saved 1/std");
        assertNormClose(y.toArray(), read(gy), BF16_REL, "training output");
        assertNormClose(dx.toArray(), read(gdx), BF16_REL, "input gradient");
        assertNormClose(dg.toArray(), read(gdg), 1e-4, "gamma gradient");
        assertNormClose(db.toArray(), read(gdb), 1e-4, "beta gradient");
        assertNormClose(yInf.toArray(), read(gyInf), BF16_REL, "inference output");

        Tensor f = f32(xv, shape), fy = poisonedF32(shape);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> gpu.batchNormSiluForwardTraining(f, gGamma, gBeta, gRunMean, gRunVar, 0.1, 1e-5, fy, gMean, gInv));
        assertTrue(e.getMessage().contains("batchNormSiluForwardTraining") && e.getMessage().contains("bf16"), e.getMessage());
    }

    // ---------------------------------------------------------------- element-wise, SE, pooling

    @Test
    void elementwiseOpsMatchTheCpu() {
        int[] shape = {3, 6, 5, 7};
        long size = 3 * 6 * 5 * 7;
        float[] av = randoms(size, 3), bv = randoms(size, 1);
        Tensor a = host(av, shape), b = host(bv, shape);
        Tensor ga = bf16(av, shape), gb = bf16(bv, shape);

        Tensor y = Tensor.allocate(arena, shape), gy = poisonedBf16(shape);
        cpu.silu(a, y);
        gpu.silu(ga, gy);
        assertNormClose(y.toArray(), read(gy), BF16_REL, "silu");

        cpu.siluBackward(a, b, y);
        gy = poisonedBf16(shape);
        gpu.siluBackward(ga, gb, gy);
        assertNormClose(y.toArray(), read(gy), BF16_REL, "siluBackward");

        cpu.add(a, b, y);
        gy = poisonedBf16(shape);
        gpu.add(ga, gb, gy);
        assertNormClose(y.toArray(), read(gy), BF16_REL, "add");

        Tensor into = host(av, shape), gInto = bf16(av, shape);
        cpu.accumulate(into, b);
        gpu.accumulate(gInto, gb);
        assertNormClose(into.toArray(), read(gInto), BF16_REL, "accumulate");

        float[] mask = {0f, 1.25f, 1.25f}; // drop-path: one factor per sample
        cpu.multiplyByMask(a, host(mask, 3), y);
        gy = poisonedBf16(shape);
        gpu.multiplyByMask(ga, f32(mask, 3), gy);
        assertNormClose(y.toArray(), read(gy), BF16_REL, "multiplyByMask per sample");

        Tensor scaled = host(av, shape), gScaled = bf16(av, shape);
        cpu.scale(scaled, 0.37f);
        gpu.scale(gScaled, 0.37f);
        assertNormClose(scaled.toArray(), read(gScaled), BF16_REL, "scale");
    }

    @Test
    void squeezeExcitationAndPoolingMatchTheCpu() {
        int n = 3, c = 37, h = 7, w = 6;
        int[] shape = {n, c, h, w};
        float[] xv = randoms((long) n * c * h * w, 1), dyv = randoms(xv.length, 1), sv = new float[n * c];
        for (int i = 0; i < sv.length; i++) sv[i] = random.nextFloat(); // a sigmoid's output, fp32
        float[] pooledGrad = randoms((long) n * c, 1);
        Tensor x = host(xv, shape), dy = host(dyv, shape), s = host(sv, n, c);
        Tensor gx = bf16(xv, shape), gdy = bf16(dyv, shape), gs = f32(sv, n, c);

        Tensor y = Tensor.allocate(arena, shape), gy = poisonedBf16(shape);
        cpu.scaleChannels(x, s, y);
        gpu.scaleChannels(gx, gs, gy);
        assertNormClose(y.toArray(), read(gy), BF16_REL, "scaleChannels");

        Tensor dx = Tensor.allocate(arena, shape), ds = Tensor.allocate(arena, n, c);
        Tensor gdx = poisonedBf16(shape), gds = poisonedF32(n, c);
        cpu.scaleChannelsBackward(x, s, dy, dx, ds);
        gpu.scaleChannelsBackward(gx, gs, gdy, gdx, gds);
        assertNormClose(dx.toArray(), read(gdx), BF16_REL, "scaleChannelsBackward dx");
        assertNormClose(ds.toArray(), read(gds), 1e-4, "scaleChannelsBackward ds (fp32 sums of exact products)");

        Tensor pooled = Tensor.allocate(arena, n, c), gPooled = poisonedF32(n, c);
        cpu.globalAveragePool(x, pooled);
        gpu.globalAveragePool(gx, gPooled);
        assertNormClose(pooled.toArray(), read(gPooled), 1e-5, "globalAveragePool (fp32 output)");

        Tensor back = Tensor.allocate(arena, shape), gBack = poisonedBf16(shape);
        cpu.globalAveragePoolBackward(host(pooledGrad, n, c), back);
        gpu.globalAveragePoolBackward(f32(pooledGrad, n, c), gBack);
        assertNormClose(back.toArray(), read(gBack), BF16_REL, "globalAveragePoolBackward");

        // What the SE layer runs: ds without dx, then dx = dy * s + dPooled / hw in one pass (one rounding)
        Tensor gdsAlone = poisonedF32(n, c);
        gpu.scaleChannelsBackward(gx, gs, gdy, null, gdsAlone);
        assertArrayEquals(read(gds), read(gdsAlone), "scaleChannelsBackward ds without dx");
        Tensor inputGrad = Tensor.allocate(arena, shape), gInputGrad = poisonedBf16(shape);
        cpu.scaleChannelsInputGradient(dy, s, host(pooledGrad, n, c), inputGrad);
        gpu.scaleChannelsInputGradient(gdy, gs, f32(pooledGrad, n, c), gInputGrad);
        assertNormClose(inputGrad.toArray(), read(gInputGrad), BF16_REL, "scaleChannelsInputGradient");
    }

    @Test
    void mixedOrUnsupportedStoragesAreRefusedWithTheirNames() {
        ConvGeometry g = ConvGeometry.square(1, 4, 5, 5, 4, 3, 1, 1);
        Tensor x32 = gpu.allocate(arena, g.inputShape()), y16 = gpu.allocate(arena, Storage.BF16_NHWC, g.outputShape());
        Tensor w = gpu.allocate(arena, g.weightShape());
        IllegalArgumentException mixed = assertThrows(IllegalArgumentException.class, () -> gpu.conv2dForward(g, x32, w, y16));
        assertTrue(mixed.getMessage().contains("conv2dForward") && mixed.getMessage().contains("bf16"), mixed.getMessage());

        Tensor x16 = gpu.allocate(arena, Storage.BF16_NHWC, g.inputShape()), w16 = gpu.allocate(arena, Storage.BF16_NHWC, g.weightShape());
        IllegalArgumentException weights = assertThrows(IllegalArgumentException.class, () -> gpu.conv2dForward(g, x16, w16, y16));
        assertTrue(weights.getMessage().contains("must be fp32"), weights.getMessage());

        Tensor fullMask = gpu.allocate(arena, g.inputShape());
        IllegalArgumentException mask = assertThrows(IllegalArgumentException.class, () -> gpu.multiplyByMask(x16, fullMask, x16));
        assertTrue(mask.getMessage().contains("channels-last"), mask.getMessage());

        Tensor v16 = gpu.allocate(arena, new Storage(Storage.DType.BFLOAT16, false), 2, 4);
        assertThrows(IllegalArgumentException.class, () -> gpu.sigmoid(v16, v16));
        assertThrows(IllegalArgumentException.class, () -> x16.reshape(4, 25), "channels-last 5x5 planes are not row-major");
        assertEquals(Storage.BF16_NHWC, gpu.activationStorage());
    }

    // ---------------------------------------------------------------- whole steps

    /**
     * EfficientNet-B0 on the GPU in bf16 against the CPU in fp32, from the same weights and images (fp32 NCHW on
     * both; the model converts to the GPU's activation storage).
     *
     * <p>In eval mode the logits agree within bf16's precision (measured on stand-in libraries: 1.0 % of their
     * norm). A training step is another matter: at random initialisation, batch norm on batch statistics makes the
     * network amplify perturbations layer after layer; on the CPU alone, rounding the input by bf16's half-ulp
     * (0.1 %) already moves the deepest activations by 2 % and the gradients by 2.5 to 5 % (median). bf16 rounds
     * at every one of ~100 ops, so its gradients differ from fp32's by 20 to 45 % (median) while pointing the same
     * way (measured cosine 0.98 at batch 8, 96 x 96). So the step is held to what noise cannot break and a wrong
     * op would: the loss within 6 %, every gradient and statistic finite, and the whole gradient's direction
     * (cosine above 0.9). The loss's relative difference over 40 seeds on the stand-in libraries: mean 0.03 %,
     * standard deviation 1.4 %, largest 3.3 %, 5 of 40 beyond the 2 % this test first allowed (an H200 run failed at
     * 2.1 %); 6 % is about four standard deviations. {@code TrainerGpuTest} then checks that bf16 training reaches
     * the CPU's losses.
     */
    @Test
    void evalLogitsMatchAndATrainingStepPointsTheCpusWay() {
        EfficientNetB0.Config config = EfficientNetB0.Config.defaults();
        try (Arena models = Arena.ofShared();
             EfficientNetB0 onCpu = EfficientNetB0.initialized(cpu, config, 11);
             EfficientNetB0 onGpu = EfficientNetB0.initialized(gpu, config, 11)) {
            int n = 4, size = 64;
            float[] images = randoms((long) n * 3 * size * size, 1);
            try (StepContext cc = StepContext.eval(cpu); StepContext gc = StepContext.eval(gpu)) {
                Tensor yc = onCpu.forward(host(images, n, 3, size, size), cc);
                Tensor yg = onGpu.forward(f32(images, n, 3, size, size), gc);
                assertEquals(Storage.FLOAT32, yg.storage(), "logits stay fp32");
                assertNormClose(yc.toArray(), read(yg), 3e-2, "eval-mode logits");
            }

            n = 8;
            size = 96;
            images = randoms((long) n * 3 * size * size, 1);
            float[] t = new float[n * 6];
            for (int i = 0; i < t.length; i++) t[i] = random.nextInt(2);
            float[] labelWeights = {2, 1, 1, 1, 1, 1};
            double cpuLoss, gpuLoss;
            try (StepContext cc = StepContext.training(cpu, 5, 1); StepContext gc = StepContext.training(gpu, 5, 1)) {
                EfficientNetB0.Loss lc = onCpu.loss(onCpu.forward(host(images, n, 3, size, size), cc), host(t, n, 6),
                        host(labelWeights, 6), cc);
                EfficientNetB0.Loss lg = onGpu.loss(onGpu.forward(f32(images, n, 3, size, size), gc), f32(t, n, 6),
                        f32(labelWeights, 6), gc);
                cpuLoss = lc.value();
                gpuLoss = lg.value();
                onCpu.backward(lc.dLogits(), cc, false);
                onGpu.backward(lg.dLogits(), gc, false);
            }
            assertEquals(cpuLoss, gpuLoss, 6e-2 * cpuLoss, "training loss (seed " + seed + ")");
            assertSameDirection(onCpu.namedParameters(), onGpu.namedParameters());

            Map<String, float[]> before = new java.util.HashMap<>();
            onGpu.namedParameters().forEach((name, p) -> before.put(name, read(p.value())));
            new Adam(gpu, models, Adam.Options.adam(4e-4)).step(onGpu.trainableParameters());
            int changed = 0;
            for (Parameter p : onGpu.trainableParameters()) {
                float[] after = read(p.value());
                for (float v : after) assertTrue(Float.isFinite(v), p.name() + " after Adam");
                if (!java.util.Arrays.equals(before.get(p.name()), after)) changed++;
            }
            assertTrue(changed > onGpu.trainableParameters().size() / 2, "Adam moved the fp32 master weights: " + changed);
        }
    }

    /** Every gradient and running statistic finite and fp32; the gradients and the statistics each with cosine > 0.9. */
    private void assertSameDirection(Map<String, Parameter> cpuParams, Map<String, Parameter> gpuParams) {
        double[] grads = new double[3], stats = new double[3]; // dot, |cpu|^2, |gpu|^2
        int compared = 0;
        for (String name : cpuParams.keySet()) {
            Parameter pc = cpuParams.get(name), pg = gpuParams.get(name);
            assertEquals(Storage.FLOAT32, pg.value().storage(), name + " is an fp32 master weight");
            float[] e, g;
            double[] into;
            if (pc.isBuffer()) {
                e = pc.value().toArray();
                g = read(pg.value());
                into = stats;
            } else if (pc.grad() != null) {
                e = pc.grad().toArray();
                g = read(pg.grad());
                into = grads;
                compared++;
            } else {
                continue;
            }
            for (int i = 0; i < e.length; i++) {
                assertTrue(Float.isFinite(g[i]), name + "[" + i + "] is " + g[i] + " (seed " + seed + ")");
                into[0] += (double) e[i] * g[i];
                into[1] += (double) e[i] * e[i];
                into[2] += (double) g[i] * g[i];
            }
        }
        assertTrue(compared > 200, "every trainable tensor compared: " + compared);
        double gradCosine = grads[0] / Math.sqrt(grads[1] * grads[2]), statCosine = stats[0] / Math.sqrt(stats[1] * stats[2]);
        assertTrue(gradCosine > 0.9, "gradient cosine " + gradCosine + " (seed " + seed + ")");
        assertTrue(statCosine > 0.9, "running-statistics cosine " + statCosine + " (seed " + seed + ")");
    }

    /**
     * OverfitTest's check in bf16: B0 memorises one small batch of random images and labels, so every gradient
     * of the bf16 path points where it should (a wrong one anywhere leaves the loss where it was).
     */
    @Test
    void memorisesOneBatch() {
        int n = 8, size = 32;
        float[] images = new float[n * 3 * size * size];
        for (int i = 0; i < images.length; i++) images[i] = (float) random.nextDouble();
        float[] y = new float[n * 6];
        for (int i = 0; i < y.length; i++) y[i] = random.nextInt(3) == 0 ? 1 : 0;
        try (Arena models = Arena.ofShared();
             EfficientNetB0 model = EfficientNetB0.initialized(gpu, EfficientNetB0.Config.defaults(), 3)) {
            Adam adam = new Adam(gpu, models, Adam.Options.adam(1e-3));
            Tensor x = f32(images, n, 3, size, size), targets = f32(y, n, 6);
            double first = Double.NaN, last = Double.NaN;
            for (int step = 0; step < 60; step++) {
                try (StepContext ctx = StepContext.training(gpu, 1, step)) {
                    EfficientNetB0.Loss loss = model.loss(model.forward(x, ctx), targets, null, ctx);
                    model.backward(loss.dLogits(), ctx);
                    adam.step(model.trainableParameters());
                    if (step == 0) first = loss.value();
                    last = loss.value();
                }
            }
            assertTrue(last < 0.1 * first, "bf16 loss " + first + " -> " + last + " (seed " + seed + ")");
        }
    }

    /** As CudaBackendTest's fp32 case: warm-up, capture, two replays, each the eager step's bits, now in bf16. */
    @Test
    void graphStepsEqualEagerSteps() {
        int n = 4, size = 64;
        EfficientNetB0.Config config = EfficientNetB0.Config.defaults();
        try (Arena models = Arena.ofShared();
             EfficientNetB0 eager = EfficientNetB0.initialized(gpu, config, 5);
             EfficientNetB0 graphed = EfficientNetB0.initialized(gpu, config, 5)) {
            Adam eagerAdam = new Adam(gpu, models, Adam.Options.adam(4e-4));
            Adam graphAdam = new Adam(gpu, models, Adam.Options.adam(4e-4));
            List<String> modes = new ArrayList<>();
            for (int step = 1; step <= 4; step++) {
                float[] images = randoms((long) n * 3 * size * size, 1);
                float[] t = new float[n * 6];
                for (int i = 0; i < t.length; i++) t[i] = random.nextInt(2);
                double eagerLoss, graphLoss;
                try (StepContext ctx = StepContext.training(gpu, 9, step)) {
                    Tensor x = ctx.output(n, 3, size, size);
                    gpu.copy(host(images, n, 3, size, size), x);
                    EfficientNetB0.Loss loss = eager.loss(eager.forward(x, ctx), f32(t, n, 6), null, ctx);
                    eager.backward(loss.dLogits(), ctx, false);
                    eagerAdam.step(eager.trainableParameters());
                    eagerLoss = loss.value();
                }
                modes.add(gpu.beginStep("bf16 test"));
                try (StepContext ctx = StepContext.training(gpu, 9, step)) {
                    Tensor x = ctx.output(n, 3, size, size), targets = ctx.output(n, 6);
                    assertEquals(Storage.BF16_NHWC, x.storage(), "the step's input is an activation");
                    gpu.copy(host(images, n, 3, size, size), x); // converted on the side stream before the graph
                    gpu.copy(host(t, n, 6), targets);
                    EfficientNetB0.Loss loss = graphed.loss(graphed.forward(x, ctx), targets, null, ctx);
                    graphed.backward(loss.dLogits(), ctx, false);
                    graphAdam.step(graphed.trainableParameters());
                    gpu.endStep();
                    graphLoss = loss.value();
                } catch (RuntimeException e) {
                    gpu.abandonStep();
                    throw e;
                }
                assertEquals(eagerLoss, graphLoss, 0.0, "loss of step " + step + " (" + modes.getLast() + ")");
            }
            assertEquals(List.of("eager", "capture", "replay", "replay"), modes);
            for (String name : eager.namedParameters().keySet()) {
                assertArrayEquals(read(eager.namedParameters().get(name).value()), read(graphed.namedParameters().get(name).value()),
                        name + " after 4 steps");
            }
        }
    }
}
