package ich.gpu;

import ich.nn.ConvGeometry;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The training kernels of cuda/nn.cu against the CPU reference ({@link CpuBackend}) on the same random inputs:
 * every output buffer is filled with NaN bytes before the launch, so an element a kernel skips fails the
 * comparison. Tolerances: 1e-5 relative for plain fp32 arithmetic and for reductions, 1e-6 absolute + 1e-5
 * relative where exp is involved (expf is not the CPU's double exp); for the depthwise convolutions 1e-5 of the
 * sum of the terms' magnitudes; none for the conversions and transposes, which must be exact, nor between the
 * multi-tensor and the per-tensor Adam kernels. The bf16 path's ops are checked against the fp32 CPU op (or plain
 * loops for the NHWC ones) on the same bf16-exact inputs, the reference's bf16 outputs rounded to bf16: 1e-2
 * relative plus 1e-5 of the largest value for bf16 outputs, 1e-4 relative plus 1e-6 of the terms' magnitudes for
 * fp32 sums; its conversions bit for bit. Each reduction runs twice and must repeat bit for bit. Skips, saying
 * why, without a GPU or without the kernels built.
 */
class NnKernelsTest {
    private static final double REL = 1e-5, EXP_ABS = 1e-6;

    private static Gpu.Probe probe;
    private static Context context;
    private static NnKernels kernels;
    private static Stream stream;
    private static CpuBackend cpu;
    private static String skip;

    private final List<AutoCloseable> buffers = new ArrayList<>();
    private final Arena arena = Arena.ofConfined();
    private long seed;
    private SplittableRandom random;

    @BeforeAll
    static void open() {
        probe = Gpu.probe();
        if (probe instanceof Gpu.Unavailable u) {
            skip = "no GPU: " + u.reason();
        } else if (Kernels.nnFatbin().isEmpty()) {
            skip = Kernels.NOT_BUILT;
        } else {
            context = Context.open(0);
            kernels = NnKernels.open(context);
            stream = context.createStream();
            cpu = new CpuBackend(2);
        }
        if (skip != null) System.err.println("NnKernelsTest skipped: " + skip);
    }

    @AfterAll
    static void close() {
        if (stream != null) stream.close();
        if (kernels != null) kernels.close();
        if (context != null) context.close();
        if (cpu != null) cpu.close();
    }

    /** Per test, so each one is reported as skipped with the reason. */
    @BeforeEach
    void needsAGpu() {
        assumeTrue(skip == null, () -> "skipped: " + skip);
        seed = System.nanoTime();
        random = new SplittableRandom(seed);
        context.makeCurrent();
    }

    @org.junit.jupiter.api.AfterEach
    void free() throws Exception {
        for (int i = buffers.size() - 1; i >= 0; i--) buffers.get(i).close();
        buffers.clear();
        arena.close();
    }

    // ---------------------------------------------------------------- element-wise

    @Test
    void siluAndSigmoidForwardAndBackwardMatchTheCpu() {
        // More than NnKernels.MAX_BLOCKS * BLOCK elements, so the grid-stride loop takes a second lap.
        int[] shape = {5, 7, 257, 251};
        float[] x = values(shape, 8), dy = values(shape, 1);
        Tensor cx = host(x, shape), cdy = host(dy, shape), expected = Tensor.allocate(arena, shape);
        DeviceBuffer gx = upload(x), gdy = upload(dy), out = poisoned(x.length);

        cpu.silu(cx, expected);
        kernels.silu(stream, gx.pointer(), out.pointer(), x.length);
        assertClose(expected, download(out, x.length), EXP_ABS, "silu");

        cpu.siluBackward(cx, cdy, expected);
        out.fill((byte) 0xFF);
        kernels.siluBackward(stream, gx.pointer(), gdy.pointer(), out.pointer(), x.length);
        assertClose(expected, download(out, x.length), EXP_ABS, "siluBackward");

        cpu.sigmoid(cx, expected);
        DeviceBuffer inPlace = upload(x); // y may alias x
        kernels.sigmoid(stream, inPlace.pointer(), inPlace.pointer(), x.length);
        float[] y = download(inPlace, x.length);
        assertClose(expected, y, EXP_ABS, "sigmoid in place");

        // backward from the forward output; the CPU's own sigmoid output feeds both sides
        float[] cpuY = expected.toArray();
        Tensor cy = host(cpuY, shape), dx = Tensor.allocate(arena, shape);
        cpu.sigmoidBackward(cy, cdy, dx);
        DeviceBuffer gy = upload(cpuY);
        out.fill((byte) 0xFF);
        kernels.sigmoidBackward(stream, gy.pointer(), gdy.pointer(), out.pointer(), x.length);
        assertClose(dx, download(out, x.length), 0, "sigmoidBackward");
    }

    @Test
    void addAccumulateAndScaleMatchTheCpu() {
        int[] shape = {3, 11, 29, 31};
        float[] a = values(shape, 5), b = values(shape, 5);
        Tensor ca = host(a, shape), cb = host(b, shape), expected = Tensor.allocate(arena, shape);
        DeviceBuffer ga = upload(a), gb = upload(b), out = poisoned(a.length);

        cpu.add(ca, cb, expected);
        kernels.add(stream, ga.pointer(), gb.pointer(), out.pointer(), a.length);
        assertClose(expected, download(out, a.length), 0, "add");

        cpu.accumulate(ca, cb); // ca += cb
        kernels.accumulate(stream, ga.pointer(), gb.pointer(), a.length);
        assertClose(ca, download(ga, a.length), 0, "accumulate");
        assertArrayEquals(b, download(gb, b.length), "accumulate must leave its source alone");

        float factor = (float) (0.1 + random.nextDouble() * 3);
        cpu.scale(cb, factor);
        kernels.scale(stream, gb.pointer(), factor, b.length);
        assertClose(cb, download(gb, b.length), 0, "scale by " + factor);
    }

    @Test
    void multiplyByAFullMaskAndByAPerSampleMaskMatchTheCpu() {
        int n = 6;
        int[] shape = {n, 9, 13, 17};
        float[] x = values(shape, 4);
        float keep = 0.8f;
        float[] full = new float[x.length], perSample = new float[n];
        for (int i = 0; i < full.length; i++) full[i] = random.nextDouble() < keep ? 1 / keep : 0;
        for (int i = 0; i < n; i++) perSample[i] = i % 3 == 1 ? 0 : 1 / keep; // both values present whatever the draw
        Tensor cx = host(x, shape), expected = Tensor.allocate(arena, shape);
        DeviceBuffer gx = upload(x), out = poisoned(x.length);

        cpu.multiplyByMask(cx, host(full, shape), expected);
        kernels.multiplyByMask(stream, gx.pointer(), upload(full).pointer(), out.pointer(), x.length, 1);
        assertClose(expected, download(out, x.length), 0, "dropout mask");

        cpu.multiplyByMask(cx, host(perSample, n), expected);
        out.fill((byte) 0xFF);
        kernels.multiplyByMask(stream, gx.pointer(), upload(perSample).pointer(), out.pointer(), x.length, x.length / n);
        assertClose(expected, download(out, x.length), 0, "drop-path mask");

        assertThrows(IllegalArgumentException.class,
                () -> kernels.multiplyByMask(stream, gx.pointer(), gx.pointer(), out.pointer(), x.length, 5));
    }

    // ---------------------------------------------------------------- squeeze-excitation and pooling

    @Test
    void scaleChannelsForwardAndBackwardMatchTheCpuAndRepeat() {
        int[] shape = {4, 24, 15, 15}; // 225 elements a plane: not a multiple of the block
        int planes = shape[0] * shape[1], spatial = shape[2] * shape[3];
        float[] x = values(shape, 3), s = values(new int[]{planes}, 1), dy = values(shape, 2);
        Tensor cx = host(x, shape), cs = host(s, shape[0], shape[1]), cdy = host(dy, shape);
        Tensor y = Tensor.allocate(arena, shape), dx = Tensor.allocate(arena, shape), ds = Tensor.allocate(arena, shape[0], shape[1]);
        DeviceBuffer gx = upload(x), gs = upload(s), gdy = upload(dy), out = poisoned(x.length), gds = poisoned(planes);

        cpu.scaleChannels(cx, cs, y);
        kernels.scaleChannels(stream, gx.pointer(), gs.pointer(), out.pointer(), planes, spatial);
        assertClose(y, download(out, x.length), 0, "scaleChannels");

        cpu.scaleChannelsBackward(cx, cs, cdy, dx, ds);
        out.fill((byte) 0xFF);
        kernels.scaleChannelsBackward(stream, gx.pointer(), gs.pointer(), gdy.pointer(), out.pointer(), gds.pointer(), planes, spatial);
        assertClose(dx, download(out, x.length), 0, "scaleChannelsBackward dx");
        float[] first = download(gds, planes);
        // ds sums 225 products of either sign: a sum that cancels to near 0 keeps the rounding of its large terms,
        // so the tolerance counts the terms' magnitudes (a relative one alone failed at 1.1e-5 on 0.0547)
        double[] dsMagnitude = new double[planes];
        for (int i = 0; i < x.length; i++) dsMagnitude[i / spatial] += Math.abs((double) x[i] * dy[i]);
        assertFloatsClose(ds.toArray(), first, REL, times(dsMagnitude, EXP_ABS), "scaleChannelsBackward ds");

        gds.fill((byte) 0xFF);
        kernels.scaleChannelsBackward(stream, gx.pointer(), gs.pointer(), gdy.pointer(), out.pointer(), gds.pointer(), planes, spatial);
        assertBitIdentical(first, download(gds, planes), "scaleChannelsBackward ds, second run");

        // The SE layer's order: ds alone (no dx pointer), then dx through both paths in one pass.
        gds.fill((byte) 0xFF);
        out.fill((byte) 0xFF);
        kernels.scaleChannelsBackward(stream, gx.pointer(), gs.pointer(), gdy.pointer(), 0, gds.pointer(), planes, spatial);
        assertBitIdentical(first, download(gds, planes), "scaleChannelsBackward ds without dx");
        float[] dPooled = values(new int[]{planes}, 4);
        Tensor expected = Tensor.allocate(arena, shape);
        cpu.scaleChannelsInputGradient(cdy, cs, host(dPooled, shape[0], shape[1]), expected);
        kernels.scaleChannelsInputGradient(stream, gdy.pointer(), gs.pointer(), upload(dPooled).pointer(), out.pointer(), planes, spatial);
        assertClose(expected, download(out, x.length), 0, "scaleChannelsInputGradient");
    }

    @Test
    void globalAveragePoolForwardAndBackwardMatchTheCpuAndRepeat() {
        // the second shape has more planes than one launch has blocks, so the kernel strides over planes
        for (int[] shape : List.of(new int[]{3, 40, 33, 35}, new int[]{700, 101, 2, 3})) {
            int planes = shape[0] * shape[1], spatial = shape[2] * shape[3];
            float[] x = values(shape, 6), dy = values(new int[]{planes}, 1);
            Tensor cx = host(x, shape), y = Tensor.allocate(arena, shape[0], shape[1]), dx = Tensor.allocate(arena, shape);
            DeviceBuffer gx = upload(x), gy = poisoned(planes), gdx = poisoned(x.length);
            String what = java.util.Arrays.toString(shape);

            cpu.globalAveragePool(cx, y);
            kernels.globalAveragePool(stream, gx.pointer(), gy.pointer(), planes, spatial);
            float[] first = download(gy, planes);
            // A mean's rounding error scales with its inputs, not with itself: a mean near 0 of values near 1 (here
            // 8.0e-4 of 1,155 values) differs by ~1e-9 between summation orders, 2e-5 of the result.
            float largest = 0;
            for (float v : x) largest = Math.max(largest, Math.abs(v));
            assertClose(y, first, REL * largest, "globalAveragePool " + what);
            gy.fill((byte) 0xFF);
            kernels.globalAveragePool(stream, gx.pointer(), gy.pointer(), planes, spatial);
            assertBitIdentical(first, download(gy, planes), "globalAveragePool " + what + ", second run");

            cpu.globalAveragePoolBackward(host(dy, shape[0], shape[1]), dx);
            kernels.globalAveragePoolBackward(stream, upload(dy).pointer(), gdx.pointer(), planes, spatial);
            assertClose(dx, download(gdx, x.length), 0, "globalAveragePoolBackward " + what);
        }
    }

    // ---------------------------------------------------------------- loss

    @Test
    void weightedBceWithLogitsMatchesTheCpuAndRepeats() {
        int n = 37, labels = 6;
        float[] z = values(new int[]{n, labels}, 6), t = new float[n * labels];
        for (int i = 0; i < t.length; i++) t[i] = random.nextBoolean() ? 1 : 0;
        float[] weights = {2, 1, 1, 1, 1, 1};
        Tensor cz = host(z, n, labels), ct = host(t, n, labels), grad = Tensor.allocate(arena, n, labels);
        DeviceBuffer gz = upload(z), gt = upload(t), gw = upload(weights), gdz = poisoned(t.length), loss = context.allocate(8);
        track(loss);

        for (boolean weighted : new boolean[]{true, false}) {
            String what = weighted ? "weights (2,1,1,1,1,1)" : "no weights";
            double expected = cpu.bceWithLogits(cz, ct, weighted ? host(weights, labels) : null, grad);
            double[] lossRuns = new double[2];
            float[][] gradRuns = new float[2][];
            for (int run = 0; run < 2; run++) {
                loss.fill((byte) 0xFF);
                gdz.fill((byte) 0xFF);
                kernels.bceWithLogits(stream, gz.pointer(), gt.pointer(), weighted ? gw.pointer() : 0, gdz.pointer(), loss.pointer(), n, labels);
                lossRuns[run] = downloadDouble(loss);
                gradRuns[run] = download(gdz, t.length);
            }
            double tol = REL * Math.abs(expected);
            if (!(Math.abs(lossRuns[0] - expected) <= tol)) {
                throw new AssertionError("bce loss, " + what + ": GPU " + lossRuns[0] + ", CPU " + expected + " (seed " + seed + ")");
            }
            assertClose(grad, gradRuns[0], 0, "bce gradient, " + what); // double exp on both sides
            assertEquals(Double.doubleToRawLongBits(lossRuns[0]), Double.doubleToRawLongBits(lossRuns[1]), "bce loss repeats, " + what);
            assertBitIdentical(gradRuns[0], gradRuns[1], "bce gradient, second run, " + what);
        }
    }

    // ---------------------------------------------------------------- optimiser

    @Test
    void adamAndAdamWStepsMatchTheCpuOverSeveralSteps() {
        for (boolean decoupled : new boolean[]{false, true}) {
            int[] shape = {3, 5, 7, 11};
            float[] p = values(shape, 1), m = new float[p.length], v = new float[p.length];
            Tensor cp = host(p, shape), cm = host(m, shape), cv = host(v, shape);
            DeviceBuffer gp = upload(p), gm = upload(m), gv = upload(v);
            double lr = 1e-3, wd = decoupled ? 1e-2 : 1e-4;
            for (long step = 1; step <= 5; step++) {
                float[] g = values(shape, 0.5);
                cpu.adamStep(cp, host(g, shape), cm, cv, step, lr, 0.9, 0.999, 1e-8, wd, decoupled);
                kernels.adamStep(stream, gp.pointer(), upload(g).pointer(), gm.pointer(), gv.pointer(), p.length, step, lr,
                        0.9, 0.999, 1e-8, wd, decoupled);
                String what = (decoupled ? "AdamW" : "Adam") + " step " + step;
                assertClose(cm, download(gm, p.length), 0, what + " m");
                assertClose(cv, download(gv, p.length), 0, what + " v");
                assertClose(cp, download(gp, p.length), 0, what + " param");
            }
        }
    }

    /** One tensor's parameter, moments and gradient on the device. */
    private record AdamBuffers(DeviceBuffer param, DeviceBuffer m, DeviceBuffer v, DeviceBuffer grad, int n) {
        NnKernels.AdamPointers pointers() {
            return new NnKernels.AdamPointers(param.pointer(), grad.pointer(), m.pointer(), v.pointer(), n);
        }
    }

    /** Sizes around the chunk (4096) and B0's: single elements, odd sizes, several chunks, 300 001 (74 chunks). */
    private static final int[] ADAM_SIZES = {1, 7, 1000, 300_001, 4096, 4097, 1, 16, 1280, 7, 300_001, 8192, 3, 1000, 5,
            4095, 65_536, 2, 96, 11};

    /**
     * The multi-tensor kernel against the per-tensor one over 20 tensors, Adam with L2 and AdamW, 3 steps: bit for
     * bit, every parameter and moment of every tensor after every step (and within REL of the CPU). Both start
     * from the same random parameters and moments (never zero) and read the same gradients; the updates are in
     * place, so an element the table skipped or updated twice keeps a different value than the per-tensor run.
     */
    @Test
    void multiTensorAdamEqualsThePerTensorKernelBitForBit() {
        for (boolean decoupled : new boolean[]{false, true}) {
            double lr = 2e-3, wd = decoupled ? 5e-2 : 1e-4;
            List<AdamBuffers> multi = new ArrayList<>(), single = new ArrayList<>();
            List<Tensor[]> onCpu = new ArrayList<>();
            for (int n : ADAM_SIZES) {
                int[] shape = {n};
                float[] p = values(shape, 1), m = values(shape, 0.1), v = abs(values(shape, 0.01));
                DeviceBuffer grad = upload(values(shape, 0.5));
                multi.add(new AdamBuffers(upload(p), upload(m), upload(v), grad, n));
                single.add(new AdamBuffers(upload(p), upload(m), upload(v), grad, n));
                onCpu.add(new Tensor[]{host(p, shape), host(m, shape), host(v, shape)});
            }
            NnKernels.AdamTable table = track(kernels.adamTable(context, stream, multi.stream().map(AdamBuffers::pointers).toList()));
            assertEquals(java.util.Arrays.stream(ADAM_SIZES).asLongStream().sum(), table.elements());
            for (long step = 1; step <= 3; step++) {
                for (int t = 0; t < ADAM_SIZES.length; t++) { // fresh gradients, shared by both runs
                    float[] g = values(new int[]{ADAM_SIZES[t]}, 0.5);
                    upload(multi.get(t).grad(), g);
                    Tensor[] c = onCpu.get(t);
                    cpu.adamStep(c[0], host(g, ADAM_SIZES[t]), c[1], c[2], step, lr, 0.9, 0.999, 1e-8, wd, decoupled);
                }
                table.step(stream, step, lr, 0.9, 0.999, 1e-8, wd, decoupled);
                for (AdamBuffers b : single) {
                    kernels.adamStep(stream, b.param().pointer(), b.grad().pointer(), b.m().pointer(), b.v().pointer(), b.n(),
                            step, lr, 0.9, 0.999, 1e-8, wd, decoupled);
                }
                for (int t = 0; t < ADAM_SIZES.length; t++) {
                    String what = (decoupled ? "AdamW" : "Adam") + " step " + step + ", tensor " + t + " of " + ADAM_SIZES[t];
                    AdamBuffers a = multi.get(t), b = single.get(t);
                    float[] param = download(a.param(), a.n());
                    assertBitIdentical(download(b.param(), b.n()), param, what + " param");
                    assertBitIdentical(download(b.m(), b.n()), download(a.m(), a.n()), what + " m");
                    assertBitIdentical(download(b.v(), b.n()), download(a.v(), a.n()), what + " v");
                    assertClose(onCpu.get(t)[0], param, 0, what + " param vs CPU");
                }
            }
        }
    }

    /**
     * The launch alone, captured into a CUDA graph, replayed 6 times (more steps than the table has pinned scalar
     * structs) with a new step count and learning rate each: bit for bit the per-tensor kernel with those values,
     * which shows the captured kernel reads its scalars from device memory at each replay.
     */
    @Test
    void aCapturedMultiTensorAdamLaunchReplaysWithEachStepsScalars() {
        int[] sizes = {1, 1000, 300_001, 7};
        List<AdamBuffers> multi = new ArrayList<>(), single = new ArrayList<>();
        for (int n : sizes) {
            int[] shape = {n};
            float[] p = values(shape, 1), m = values(shape, 0.1), v = abs(values(shape, 0.01));
            DeviceBuffer grad = upload(values(shape, 0.5));
            multi.add(new AdamBuffers(upload(p), upload(m), upload(v), grad, n));
            single.add(new AdamBuffers(upload(p), upload(m), upload(v), grad, n));
        }
        NnKernels.AdamTable table = track(kernels.adamTable(context, stream, multi.stream().map(AdamBuffers::pointers).toList()));
        assertThrows(IllegalStateException.class, () -> table.launch(stream), "no scalars yet");
        table.setScalars(stream, 1, 1e-3, 0.9, 0.999, 1e-7, 0.01, true);
        Graph graph = track(stream.capture(() -> table.launch(stream)));
        for (long step = 1; step <= 6; step++) {
            double lr = 1e-3 * (1 + step);
            table.setScalars(stream, step, lr, 0.9, 0.999, 1e-7, 0.01, true);
            graph.launch(stream);
            for (AdamBuffers b : single) {
                kernels.adamStep(stream, b.param().pointer(), b.grad().pointer(), b.m().pointer(), b.v().pointer(), b.n(),
                        step, lr, 0.9, 0.999, 1e-7, 0.01, true);
            }
            for (int t = 0; t < sizes.length; t++) {
                String what = "replay " + step + ", tensor " + t;
                AdamBuffers a = multi.get(t), b = single.get(t);
                assertBitIdentical(download(b.param(), b.n()), download(a.param(), a.n()), what + " param");
                assertBitIdentical(download(b.v(), b.n()), download(a.v(), a.n()), what + " v");
            }
        }
    }

    // ---------------------------------------------------------------- depthwise convolution

    /**
     * Every depthwise shape class of EfficientNet-B0 (3x3 and 5x5, stride 1 and 2, padding (r - 1) / 2) on odd,
     * multi-tile and tiny planes, batch 1 and 3, up to 1152 channels; then kernels, strides and paddings B0 does
     * not use but the kernels take: asymmetric ones, padding past the kernel (outputs wholly in the padding),
     * stride 3 and 4, a 16x16 kernel that forces small tiles, a 1x1 kernel.
     */
    static List<ConvGeometry> depthwiseShapes() {
        List<ConvGeometry> shapes = new ArrayList<>();
        int[][] square = { // n, c, h, w, kernel, stride
                {3, 32, 40, 37, 3, 1}, {1, 96, 65, 64, 3, 2}, {3, 144, 17, 16, 5, 2}, {1, 672, 14, 14, 5, 1},
                {3, 144, 7, 9, 5, 1}, {3, 672, 7, 9, 5, 2}, {1, 96, 1, 1, 3, 1}, {3, 144, 2, 2, 5, 2},
                {3, 1152, 8, 8, 3, 1}, {1, 1152, 8, 8, 5, 1}, {2, 240, 1, 1, 5, 1}, {1, 8, 130, 129, 3, 1},
                {2, 4, 131, 67, 5, 2}, {1, 2, 100, 3, 5, 1}, {1, 2, 3, 100, 5, 2}, {5, 3, 4, 4, 3, 2}};
        for (int[] s : square) shapes.add(ConvGeometry.square(s[0], s[1], s[2], s[3], s[1], s[4], s[5], s[1]));
        shapes.add(new ConvGeometry(2, 5, 11, 13, 5, 3, 5, 1, 2, 0, 2, 5));
        shapes.add(new ConvGeometry(2, 3, 70, 9, 3, 7, 1, 3, 1, 4, 0, 3));
        shapes.add(new ConvGeometry(1, 2, 9, 40, 2, 2, 4, 2, 3, 1, 3, 2));
        shapes.add(new ConvGeometry(2, 2, 5, 5, 2, 3, 3, 1, 1, 3, 3, 2));
        shapes.add(new ConvGeometry(1, 2, 300, 2, 2, 16, 16, 5, 1, 7, 7, 2));
        shapes.add(new ConvGeometry(1, 1, 20, 20, 1, 1, 1, 1, 1, 0, 0, 1));
        shapes.add(new ConvGeometry(2, 3, 40, 41, 3, 15, 15, 4, 3, 6, 7, 3));
        // square filters with strides other than 1 x 1 and 2 x 2: the NHWC data gradient's run-time stride path
        shapes.add(new ConvGeometry(2, 6, 19, 17, 6, 3, 3, 3, 3, 1, 1, 6));
        shapes.add(new ConvGeometry(1, 4, 12, 15, 4, 5, 5, 1, 2, 2, 2, 4));
        return shapes;
    }

    /**
     * The three depthwise kernels against the CPU backend. A sum of 9 or 25 products (or, for the filter
     * gradient, n p q of them) is compared within 1e-5 of the sum of the products' magnitudes, which the CPU
     * computes too, from |x|, |w| and |dy|: both sides round each term and partial sum, in different orders, so
     * the difference scales with that sum, not with the (possibly cancelling) result. The filter gradient, a
     * reduction, must repeat bit for bit.
     */
    @Test
    void depthwiseForwardAndBackwardMatchTheCpuOnEveryB0ShapeClass() {
        for (ConvGeometry g : depthwiseShapes()) {
            String what = g.toString();
            int[] xs = g.inputShape(), ws = g.weightShape(), ys = g.outputShape();
            float[] x = values(xs, 2), w = values(ws, 1), dy = values(ys, 1);
            DepthwiseReference ref = depthwiseReference(g, x, w, dy);
            Tensor y = ref.y(), ya = ref.yMagnitude(), dx = ref.dx(), dxa = ref.dxMagnitude(), dw = ref.dw(), dwa = ref.dwMagnitude();

            DeviceBuffer gx = upload(x), gw = upload(w), gdy = upload(dy);
            DeviceBuffer gy = poisoned(y.size()), gdx = poisoned(dx.size()), gdw = poisoned(dw.size());
            kernels.depthwiseForward(stream, g, gx.pointer(), gw.pointer(), gy.pointer());
            assertWithinMagnitude(y, ya, download(gy, (int) y.size()), "depthwiseForward " + what);
            kernels.depthwiseBackwardData(stream, g, gdy.pointer(), gw.pointer(), gdx.pointer());
            assertWithinMagnitude(dx, dxa, download(gdx, (int) dx.size()), "depthwiseBackwardData " + what);
            kernels.depthwiseBackwardFilter(stream, g, gx.pointer(), gdy.pointer(), gdw.pointer());
            float[] first = download(gdw, (int) dw.size());
            assertWithinMagnitude(dw, dwa, first, "depthwiseBackwardFilter " + what);
            gdw.fill((byte) 0xFF);
            kernels.depthwiseBackwardFilter(stream, g, gx.pointer(), gdy.pointer(), gdw.pointer());
            assertBitIdentical(first, download(gdw, (int) dw.size()), "depthwiseBackwardFilter " + what + ", second run");
        }
    }

    /** The CPU's three depthwise passes on x, w, dy (NCHW), and on their absolute values: the terms' magnitudes. */
    private record DepthwiseReference(Tensor y, Tensor yMagnitude, Tensor dx, Tensor dxMagnitude, Tensor dw, Tensor dwMagnitude) {}

    private DepthwiseReference depthwiseReference(ConvGeometry g, float[] x, float[] w, float[] dy) {
        int[] xs = g.inputShape(), ws = g.weightShape(), ys = g.outputShape();
        Tensor cx = host(x, xs), cw = host(w, ws), cdy = host(dy, ys);
        Tensor ax = host(abs(x), xs), aw = host(abs(w), ws), ady = host(abs(dy), ys);
        DepthwiseReference r = new DepthwiseReference(Tensor.allocate(arena, ys), Tensor.allocate(arena, ys), Tensor.allocate(arena, xs),
                Tensor.allocate(arena, xs), Tensor.allocate(arena, ws), Tensor.allocate(arena, ws));
        cpu.conv2dForward(g, cx, cw, r.y());
        cpu.conv2dForward(g, ax, aw, r.yMagnitude());
        cpu.conv2dBackwardData(g, cdy, cw, r.dx());
        cpu.conv2dBackwardData(g, ady, aw, r.dxMagnitude());
        cpu.conv2dBackwardFilter(g, cx, cdy, r.dw());
        cpu.conv2dBackwardFilter(g, ax, ady, r.dwMagnitude());
        return r;
    }

    @Test
    void depthwiseLaunchesCheckTheirArguments() {
        ConvGeometry g = ConvGeometry.square(2, 8, 9, 9, 8, 3, 1, 8);
        DeviceBuffer x = poisoned(2 * 8 * 9 * 9), w = poisoned(8 * 9);
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseForward(stream, g, x.pointer(), w.pointer(), x.pointer()));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseBackwardData(stream, g, x.pointer(), w.pointer(), 0));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseBackwardFilter(stream,
                ConvGeometry.square(2, 8, 9, 9, 8, 3, 1, 1), x.pointer(), x.pointer(), w.pointer()));
    }

    // ---------------------------------------------------------------- bf16 and layout conversions

    /**
     * fp32 -> bf16 on random bit patterns of every exponent (a third of them exact ties) and the edge cases
     * (NaNs with payloads only in the dropped bits, infinities, the largest floats, signed zeros, subnormals),
     * bit for bit against {@link Bf16Reference}; more elements than one grid-stride lap. bf16 -> fp32 on all
     * 65536 patterns, bit for bit.
     */
    @Test
    void bf16ConversionsMatchTheReferenceBitForBit() {
        int[] special = {0x7F800001, 0xFF80FFFF, 0x7FC00000, 0x7FFFFFFF, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0x7F7F8000,
                0x7F7F7FFF, 0x00000000, 0x80000000, 0x00008000, 0x00018000, 0x00000001, 0x3F808000, 0x3F818000, 0xBF818000};
        int count = NnKernels.MAX_BLOCKS * NnKernels.BLOCK + 4099;
        int[] bits = new int[count];
        for (int i = 0; i < count; i++) {
            bits[i] = i < special.length ? special[i] : random.nextInt();
            if (i >= special.length && i % 3 == 0) bits[i] = (bits[i] & 0xFFFF0000) | 0x8000;
        }
        DeviceBuffer gx = uploadInts(bits), gy = poisoned((count + 1) / 2);
        kernels.f32ToBf16(stream, gx.pointer(), gy.pointer(), count);
        short[] got = downloadShorts(gy, count);
        for (int i = 0; i < count; i++) {
            int expected = Bf16Reference.round(bits[i]);
            if ((got[i] & 0xFFFF) != expected) {
                throw new AssertionError(String.format("f32ToBf16: element %d, 0x%08X: GPU 0x%04X, reference 0x%04X (seed %d)",
                        i, bits[i], got[i] & 0xFFFF, expected, seed));
            }
        }

        short[] all = new short[1 << 16];
        for (int i = 0; i < all.length; i++) all[i] = (short) i;
        DeviceBuffer gb = uploadShorts(all), gf = poisoned(all.length);
        kernels.bf16ToF32(stream, gb.pointer(), gf.pointer(), all.length);
        int[] widened = downloadInts(gf, all.length);
        for (int i = 0; i < all.length; i++) {
            if (widened[i] != Bf16Reference.widen(i)) {
                throw new AssertionError(String.format("bf16ToF32: 0x%04X gave 0x%08X", i, widened[i]));
            }
        }
    }

    /**
     * NCHW -> NHWC and back, exactly, on channel and pixel counts that are not multiples of the 32 x 32 tile,
     * a one-pixel image, one channel, and a B0 late-stage shape.
     */
    @Test
    void layoutTransposesMatchAJavaTransposeExactly() {
        for (int[] s : List.of(new int[]{3, 37, 9, 7}, new int[]{2, 1152, 8, 8}, new int[]{1, 3, 67, 65},
                new int[]{4, 5, 1, 1}, new int[]{2, 1, 33, 31})) {
            int n = s[0], c = s[1], h = s[2], w = s[3], hw = h * w;
            float[] x = values(s, 10), expected = new float[x.length];
            for (int img = 0; img < n; img++) {
                for (int ch = 0; ch < c; ch++) {
                    for (int j = 0; j < hw; j++) expected[(img * hw + j) * c + ch] = x[(img * c + ch) * hw + j];
                }
            }
            String what = java.util.Arrays.toString(s);
            DeviceBuffer gx = upload(x), nhwc = poisoned(x.length), back = poisoned(x.length);
            kernels.nchwToNhwc(stream, gx.pointer(), nhwc.pointer(), n, c, h, w);
            assertBitIdentical(expected, download(nhwc, x.length), "nchwToNhwc " + what);
            kernels.nhwcToNchw(stream, nhwc.pointer(), back.pointer(), n, c, h, w);
            assertBitIdentical(x, download(back, x.length), "nhwcToNchw " + what);
        }
    }

    // ---------------------------------------------------------------- the bf16 path

    /** bf16 outputs: 1e-2 relative (a bf16 has 8 significant bits) plus this much of the largest expected value. */
    private static final double BF16_REL = 1e-2, BF16_ABS = 1e-5;
    /** fp32 sums of bf16-exact inputs: 1e-4 relative plus this much of the sum of the terms' magnitudes. */
    private static final double SUM_REL = 1e-4, SUM_ABS = 1e-6;

    /**
     * A bf16 tensor on the device, {@code offset} elements into its buffer: offset 0 is 256-byte aligned (the
     * kernels' 16-byte path), offset 1 is not (their one-value path), offset 8 is 16-byte aligned again.
     */
    private record Bf16Tensor(DeviceBuffer buffer, int offset, int count) {
        long pointer() {
            return buffer.pointer() + 2L * offset;
        }
    }

    /** The float nearest to v in bf16 (ties to even), as Bf16Reference rounds. */
    static float bf16(float v) {
        return Float.intBitsToFloat(Bf16Reference.widen(Bf16Reference.round(Float.floatToRawIntBits(v))));
    }

    private static float[] bf16(float[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < out.length; i++) out[i] = bf16(values[i]);
        return out;
    }

    /** Random bf16-exact values center +- range, none near zero when center is 0. */
    private float[] bf16Values(int count, double range, double center) {
        float[] v = values(new int[]{count}, range);
        for (int i = 0; i < count; i++) v[i] = bf16((float) (center + v[i]));
        return v;
    }

    private Bf16Tensor uploadBf16(float[] values, int offset) {
        Bf16Tensor t = poisonedBf16(values.length, offset);
        long bytes = 2L * values.length;
        try (PinnedBuffer staging = context.allocatePinned(Math.max(2, bytes))) {
            for (int i = 0; i < values.length; i++) {
                staging.segment().setAtIndex(JAVA_SHORT, i, (short) (Float.floatToRawIntBits(values[i]) >>> 16));
            }
            stream.copyToDevice(staging, 0, t.buffer(), 2L * offset, bytes);
            stream.synchronize();
        }
        return t;
    }

    /** count bf16 values, every one 0xFFFF (a NaN), offset elements into a fresh buffer. */
    private Bf16Tensor poisonedBf16(int count, int offset) {
        DeviceBuffer d = track(context.allocate(2L * (count + offset) + 16));
        d.fill((byte) 0xFF);
        return new Bf16Tensor(d, offset, count);
    }

    private float[] downloadBf16(Bf16Tensor t) {
        long bytes = 2L * t.count();
        try (PinnedBuffer staging = context.allocatePinned(Math.max(2, bytes))) {
            stream.copyToHost(t.buffer(), 2L * t.offset(), staging, 0, bytes);
            stream.synchronize();
            float[] out = new float[t.count()];
            for (int i = 0; i < out.length; i++) {
                out[i] = Float.intBitsToFloat(Bf16Reference.widen(staging.segment().getAtIndex(JAVA_SHORT, i)));
            }
            return out;
        }
    }

    /** |got - expected| <= 1e-2 |expected| + 1e-5 max |expected|; a NaN (an element never written) fails. */
    private void assertBf16Close(float[] expected, float[] got, String what) {
        assertEquals(expected.length, got.length, what + ": sizes");
        double max = 0;
        for (float e : expected) max = Math.max(max, Math.abs(e));
        for (int i = 0; i < expected.length; i++) {
            double tol = BF16_REL * Math.abs(expected[i]) + BF16_ABS * max;
            if (!(Math.abs((double) got[i] - expected[i]) <= tol)) {
                throw new AssertionError(what + ": element " + i + ": GPU " + got[i] + ", reference " + expected[i] + " (seed " + seed + ")");
            }
        }
    }

    /** |got - expected| <= rel |expected| + abs[i]; a NaN fails. */
    private void assertFloatsClose(float[] expected, float[] got, double rel, double[] abs, String what) {
        assertEquals(expected.length, got.length, what + ": sizes");
        for (int i = 0; i < expected.length; i++) {
            double tol = rel * Math.abs(expected[i]) + abs[i];
            if (!(Math.abs((double) got[i] - expected[i]) <= tol)) {
                throw new AssertionError(what + ": element " + i + ": GPU " + got[i] + ", reference " + expected[i] + ", tolerance "
                        + tol + " (seed " + seed + ")");
            }
        }
    }

    private static double[] times(double[] v, double factor) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) out[i] = v[i] * factor;
        return out;
    }

    /**
     * silu, its gradient, add, accumulate and scale on bf16 against the fp32 CPU ops on the same bf16-exact
     * inputs, their outputs rounded to bf16: sizes around the 8-value packs (1, 7, 8, 9, odd), on 16-byte aligned
     * pointers and on pointers 2 bytes off (the one-value path), in place where the op allows it.
     */
    @Test
    void bf16ElementwiseOpsMatchTheCpu() {
        for (int offset : new int[]{0, 1, 8}) {
            for (int count : new int[]{1, 7, 8, 9, 4099, 3 * 8 * 11 * 13 + 5}) {
                String what = count + " values at offset " + offset;
                float[] x = bf16Values(count, 8, 0), dy = bf16Values(count, 1, 0), b = bf16Values(count, 5, 0);
                Tensor cx = host(x, count), cdy = host(dy, count), cb = host(b, count), expected = Tensor.allocate(arena, count);
                Bf16Tensor gx = uploadBf16(x, offset), gdy = uploadBf16(dy, offset), gb = uploadBf16(b, offset);

                cpu.silu(cx, expected);
                Bf16Tensor y = poisonedBf16(count, offset);
                kernels.siluBf16(stream, gx.pointer(), y.pointer(), count);
                assertBf16Close(bf16(expected.toArray()), downloadBf16(y), "siluBf16, " + what);
                Bf16Tensor inPlace = uploadBf16(x, offset);
                kernels.siluBf16(stream, inPlace.pointer(), inPlace.pointer(), count);
                assertBf16Close(bf16(expected.toArray()), downloadBf16(inPlace), "siluBf16 in place, " + what);

                cpu.siluBackward(cx, cdy, expected);
                Bf16Tensor dx = poisonedBf16(count, offset);
                kernels.siluBackwardBf16(stream, gx.pointer(), gdy.pointer(), dx.pointer(), count);
                assertBf16Close(bf16(expected.toArray()), downloadBf16(dx), "siluBackwardBf16, " + what);

                cpu.add(cx, cb, expected);
                float[] sum = bf16(expected.toArray());
                y = poisonedBf16(count, offset);
                kernels.addBf16(stream, gx.pointer(), gb.pointer(), y.pointer(), count);
                assertBf16Close(sum, downloadBf16(y), "addBf16, " + what);
                kernels.accumulateBf16(stream, gx.pointer(), gb.pointer(), count);
                assertBf16Close(sum, downloadBf16(gx), "accumulateBf16, " + what);
                assertArrayEquals(b, downloadBf16(gb), "accumulateBf16 must leave its source alone");

                float factor = (float) (0.1 + random.nextDouble() * 3);
                cpu.scale(cb, factor);
                kernels.scaleBf16(stream, gb.pointer(), factor, count);
                assertBf16Close(bf16(cb.toArray()), downloadBf16(gb), "scaleBf16 by " + factor + ", " + what);
            }
        }
    }

    /** add over more than one grid-stride lap of 8-value packs (MAX_BLOCKS * BLOCK packs), plus a tail of 5. */
    @Test
    void bf16AddTakesASecondLapAndTheTail() {
        int count = NnKernels.MAX_BLOCKS * NnKernels.BLOCK * 8 + 13;
        float[] a = bf16Values(count, 4, 0), b = bf16Values(count, 4, 0);
        float[] expected = new float[count];
        for (int i = 0; i < count; i++) expected[i] = bf16(a[i] + b[i]);
        Bf16Tensor y = poisonedBf16(count, 0);
        kernels.addBf16(stream, uploadBf16(a, 0).pointer(), uploadBf16(b, 0).pointer(), y.pointer(), count);
        assertBf16Close(expected, downloadBf16(y), "addBf16 over " + count + " values");
    }

    /**
     * The fp32 mask on bf16 values against the CPU: a full mask, and per-sample masks whose samples (1989 and 5
     * values) are not whole packs of 8, so packs straddle one or more sample boundaries; aligned and not.
     */
    @Test
    void bf16MultiplyByMaskMatchesTheCpu() {
        for (int offset : new int[]{0, 1}) {
            for (int[] shape : List.of(new int[]{6, 9, 13, 17}, new int[]{7, 5})) {
                int n = shape[0], count = (int) Tensor.elementCount(shape);
                String what = java.util.Arrays.toString(shape) + " at offset " + offset;
                float[] x = bf16Values(count, 4, 0), full = new float[count], perSample = new float[n];
                for (int i = 0; i < count; i++) full[i] = random.nextDouble() < 0.8 ? 1.25f : 0;
                for (int i = 0; i < n; i++) perSample[i] = i % 3 == 1 ? 0 : 1.25f + i;
                Tensor cx = host(x, shape), expected = Tensor.allocate(arena, shape);
                Bf16Tensor gx = uploadBf16(x, offset);

                cpu.multiplyByMask(cx, host(full, shape), expected);
                Bf16Tensor y = poisonedBf16(count, offset);
                kernels.multiplyByMaskBf16(stream, gx.pointer(), upload(full).pointer(), y.pointer(), count, 1);
                assertBf16Close(bf16(expected.toArray()), downloadBf16(y), "dropout mask, " + what);

                cpu.multiplyByMask(cx, host(perSample, n), expected);
                kernels.multiplyByMaskBf16(stream, gx.pointer(), upload(perSample).pointer(), gx.pointer(), count, count / n);
                assertBf16Close(bf16(expected.toArray()), downloadBf16(gx), "drop-path mask in place, " + what);
            }
        }
    }

    /**
     * NHWC shapes [n, hw, c] for the squeeze-excitation, pooling and batch-norm tests: c not a multiple of 8 or of
     * 32, one pixel, 7x7, B0's widest layers (several channel slices), a tall thin one, and the channel counts the
     * kernels' 8-channel groups divide.
     */
    private static final int[][] NHWC_SHAPES = {{3, 49, 37}, {3, 49, 40}, {2, 1, 1280}, {1, 300, 16}, {2, 64, 1152},
            {4, 7, 8}, {3, 33, 24}, {2, 5, 1}, {1, 2, 300}};

    /**
     * scaleChannelsNhwc, scaleChannelsBackwardNhwc, globalAveragePoolNhwc and its backward against plain loops on
     * the same bf16-exact inputs, on every NHWC test shape, aligned (8-channel groups where c allows) and 2 bytes
     * off; the sums in double, the reductions twice and bit for bit the same.
     */
    @Test
    void nhwcSqueezeExcitationAndPoolingMatchPlainLoops() {
        for (int offset : new int[]{0, 1}) {
            for (int[] s : NHWC_SHAPES) {
                int n = s[0], hw = s[1], c = s[2], count = n * hw * c;
                String what = "[n " + n + ", hw " + hw + ", c " + c + "] at offset " + offset;
                float[] x = bf16Values(count, 3, 0), dy = bf16Values(count, 2, 0);
                float[] sc = values(new int[]{n * c}, 1), pooledGrad = values(new int[]{n * c}, 1);
                float[] y = new float[count], dx = new float[count], ds = new float[n * c], pooled = new float[n * c];
                float[] poolDx = new float[count], inputGrad = new float[count];
                double[] dsMagnitude = new double[n * c], pooledMagnitude = new double[n * c];
                for (int img = 0; img < n; img++) {
                    for (int ch = 0; ch < c; ch++) {
                        int p = img * c + ch;
                        double sum = 0, sumX = 0;
                        for (int r = 0; r < hw; r++) {
                            int i = (img * hw + r) * c + ch;
                            y[i] = bf16(x[i] * sc[p]);
                            dx[i] = bf16(dy[i] * sc[p]);
                            poolDx[i] = bf16(pooledGrad[p] / hw);
                            inputGrad[i] = bf16(dy[i] * sc[p] + pooledGrad[p] / hw);
                            sum += (double) dy[i] * x[i];
                            dsMagnitude[p] += Math.abs((double) dy[i] * x[i]);
                            sumX += x[i];
                            pooledMagnitude[p] += Math.abs(x[i]) / hw;
                        }
                        ds[p] = (float) sum;
                        pooled[p] = (float) (sumX / hw);
                    }
                }
                Bf16Tensor gx = uploadBf16(x, offset), gdy = uploadBf16(dy, offset);
                DeviceBuffer gsc = upload(sc), gds = poisoned(n * c), gpooled = poisoned(n * c);

                Bf16Tensor gy = poisonedBf16(count, offset);
                kernels.scaleChannelsNhwc(stream, gx.pointer(), gsc.pointer(), gy.pointer(), n, hw, c);
                assertBf16Close(y, downloadBf16(gy), "scaleChannelsNhwc " + what);

                Bf16Tensor gdx = poisonedBf16(count, offset);
                kernels.scaleChannelsBackwardNhwc(stream, gx.pointer(), gsc.pointer(), gdy.pointer(), gdx.pointer(), gds.pointer(), n, hw, c);
                assertBf16Close(dx, downloadBf16(gdx), "scaleChannelsBackwardNhwc dx " + what);
                float[] first = download(gds, n * c);
                assertFloatsClose(ds, first, SUM_REL, times(dsMagnitude, SUM_ABS), "scaleChannelsBackwardNhwc ds " + what);
                gds.fill((byte) 0xFF);
                kernels.scaleChannelsBackwardNhwc(stream, gx.pointer(), gsc.pointer(), gdy.pointer(), gdx.pointer(), gds.pointer(), n, hw, c);
                assertBitIdentical(first, download(gds, n * c), "scaleChannelsBackwardNhwc ds, second run, " + what);
                gds.fill((byte) 0xFF);
                kernels.scaleChannelsBackwardNhwc(stream, gx.pointer(), gsc.pointer(), gdy.pointer(), 0, gds.pointer(), n, hw, c);
                assertBitIdentical(first, download(gds, n * c), "scaleChannelsBackwardNhwc ds without dx, " + what);

                Bf16Tensor gig = poisonedBf16(count, offset);
                kernels.scaleChannelsInputGradientNhwc(stream, gdy.pointer(), gsc.pointer(), upload(pooledGrad).pointer(), gig.pointer(), n, hw, c);
                assertBf16Close(inputGrad, downloadBf16(gig), "scaleChannelsInputGradientNhwc " + what);

                kernels.globalAveragePoolNhwc(stream, gx.pointer(), gpooled.pointer(), n, hw, c);
                first = download(gpooled, n * c);
                assertFloatsClose(pooled, first, SUM_REL, times(pooledMagnitude, SUM_ABS), "globalAveragePoolNhwc " + what);
                gpooled.fill((byte) 0xFF);
                kernels.globalAveragePoolNhwc(stream, gx.pointer(), gpooled.pointer(), n, hw, c);
                assertBitIdentical(first, download(gpooled, n * c), "globalAveragePoolNhwc, second run, " + what);

                Bf16Tensor gpdx = poisonedBf16(count, offset);
                kernels.globalAveragePoolBackwardNhwc(stream, upload(pooledGrad).pointer(), gpdx.pointer(), n, hw, c);
                assertBf16Close(poolDx, downloadBf16(gpdx), "globalAveragePoolBackwardNhwc " + what);

                kernels.scaleChannelsNhwc(stream, gx.pointer(), gsc.pointer(), gx.pointer(), n, hw, c);
                assertBf16Close(y, downloadBf16(gx), "scaleChannelsNhwc in place " + what);
            }
        }
    }

    /** NHWC [n, h*w, c] to the CPU backend's NCHW [n, c, h, w] and back. */
    private static float[] nhwcToNchw(float[] a, int n, int hw, int c) {
        float[] out = new float[a.length];
        for (int img = 0; img < n; img++) {
            for (int r = 0; r < hw; r++) {
                for (int ch = 0; ch < c; ch++) out[(img * c + ch) * hw + r] = a[(img * hw + r) * c + ch];
            }
        }
        return out;
    }

    private static float[] nchwToNhwc(float[] a, int n, int hw, int c) {
        float[] out = new float[a.length];
        for (int img = 0; img < n; img++) {
            for (int ch = 0; ch < c; ch++) {
                for (int r = 0; r < hw; r++) out[(img * hw + r) * c + ch] = a[(img * c + ch) * hw + r];
            }
        }
        return out;
    }

    /**
     * Batch norm training forward (statistics, running statistics, y), backward (dx, dgamma, dbeta) and inference
     * on bf16 NHWC against CpuBackend's fp32 NCHW ops on the same bf16-exact values. Shapes: c = 37 and 1 (one
     * value per thread), m = 2 (the least training takes), several chunks (m = 969), 1280 channels (five slices),
     * m = 300 000 (more chunk rows than the minimum), a mean far from 0 (the shifted sums), and pointers 2 bytes
     * off. Workspace and outputs start as NaN; each pass runs twice and must repeat bit for bit. The backward
     * gets the CPU's saved statistics on both sides.
     */
    @Test
    void batchNormNhwcMatchesTheCpu() {
        int[][] shapes = { // n, h, w, c, offset, center of x
                {3, 7, 7, 37, 0, 0}, {2, 1, 1, 40, 0, 0}, {3, 17, 19, 24, 0, 0}, {2, 8, 8, 1280, 0, 0}, {1, 600, 500, 8, 0, 0},
                {3, 17, 19, 24, 1, 0}, {2, 9, 11, 48, 0, 3}, {4, 5, 3, 1, 0, 0}};
        double momentum = 0.1, eps = 1e-5;
        for (int[] s : shapes) {
            int n = s[0], h = s[1], w = s[2], c = s[3], offset = s[4], hw = h * w, m = n * hw, count = m * c;
            String what = "[n " + n + ", h " + h + ", w " + w + ", c " + c + "] at offset " + offset + ", mean " + s[5];
            float[] x = bf16Values(count, 1, s[5]), dy = bf16Values(count, 1, 0);
            float[] gamma = values(new int[]{c}, 2), beta = values(new int[]{c}, 1), runningMean = values(new int[]{c}, 1);
            float[] runningVar = new float[c];
            for (int i = 0; i < c; i++) runningVar[i] = (float) (0.5 + random.nextDouble());
            int[] nchw = {n, c, h, w};
            Tensor cx = host(nhwcToNchw(x, n, hw, c), nchw), cdy = host(nhwcToNchw(dy, n, hw, c), nchw);
            Tensor cgamma = host(gamma, c), cbeta = host(beta, c), crm = host(runningMean.clone(), c), crv = host(runningVar.clone(), c);
            Tensor cy = Tensor.allocate(arena, nchw), mean = Tensor.allocate(arena, c), invStd = Tensor.allocate(arena, c);
            cpu.batchNormForwardTraining(cx, cgamma, cbeta, crm, crv, momentum, eps, cy, mean, invStd);

            // tolerances of the per-channel values: relative, plus 1e-6 of the terms' magnitudes for the sums
            double[] meanAbs = new double[c], dbetaAbs = new double[c], dgammaAbs = new double[c], tiny = new double[c];
            float[] saved = mean.toArray(), savedInv = invStd.toArray();
            for (int i = 0; i < count; i++) {
                int ch = i % c;
                meanAbs[ch] += Math.abs(x[i]) / m * SUM_ABS;
                dbetaAbs[ch] += Math.abs(dy[i]) * SUM_ABS;
                dgammaAbs[ch] += Math.abs(dy[i] * (x[i] - saved[ch]) * savedInv[ch]) * SUM_ABS;
            }
            double[] runningMeanAbs = new double[c];
            for (int ch = 0; ch < c; ch++) runningMeanAbs[ch] = momentum * meanAbs[ch];

            DeviceBuffer ggamma = upload(gamma), gbeta = upload(beta), grm = upload(runningMean), grv = upload(runningVar);
            DeviceBuffer gmean = poisoned(c), ginv = poisoned(c);
            DeviceBuffer workspace = track(context.allocate(NnKernels.batchNormWorkspaceBytes(m, c)));
            Bf16Tensor gx = uploadBf16(x, offset), gy = poisonedBf16(count, offset);
            float[][] firstForward = null;
            for (int run = 0; run < 2; run++) {
                workspace.fill((byte) 0xFF);
                gmean.fill((byte) 0xFF);
                ginv.fill((byte) 0xFF);
                gy = poisonedBf16(count, offset);
                upload(grm, runningMean);
                upload(grv, runningVar);
                kernels.batchNormForwardTrainingNhwc(stream, gx.pointer(), ggamma.pointer(), gbeta.pointer(), grm.pointer(),
                        grv.pointer(), momentum, eps, gy.pointer(), gmean.pointer(), ginv.pointer(), m, c, workspace.pointer());
                float[][] got = {downloadBf16(gy), download(gmean, c), download(ginv, c), download(grm, c), download(grv, c)};
                if (run == 0) {
                    assertBf16Close(nchwToNhwc(bf16(cy.toArray()), n, hw, c), got[0], "batchNormForwardTrainingNhwc y " + what);
                    assertFloatsClose(saved, got[1], SUM_REL, meanAbs, "saved mean " + what);
                    assertFloatsClose(savedInv, got[2], SUM_REL, new double[c], "saved 1/std " + what);
                    assertFloatsClose(crm.toArray(), got[3], SUM_REL, runningMeanAbs, "running mean " + what);
                    assertFloatsClose(crv.toArray(), got[4], SUM_REL, new double[c], "running variance " + what);
                    firstForward = got;
                } else {
                    for (int k = 0; k < got.length; k++) assertBitIdentical(firstForward[k], got[k], "forward output " + k + ", second run, " + what);
                }
            }

            Tensor cdx = Tensor.allocate(arena, nchw), dgamma = Tensor.allocate(arena, c), dbeta = Tensor.allocate(arena, c);
            cpu.batchNormBackward(cx, cdy, cgamma, mean, invStd, eps, cdx, dgamma, dbeta);
            DeviceBuffer gsaved = upload(saved), gsavedInv = upload(savedInv), gdgamma = poisoned(c), gdbeta = poisoned(c);
            Bf16Tensor gdy = uploadBf16(dy, offset);
            checkBackwardTwice("batchNormBackwardNhwc " + what, dx -> kernels.batchNormBackwardNhwc(stream, gx.pointer(), gdy.pointer(),
                    ggamma.pointer(), gsaved.pointer(), gsavedInv.pointer(), dx, gdgamma.pointer(), gdbeta.pointer(), m, c,
                    workspace.pointer()), workspace, gdgamma, gdbeta, count, offset, nchwToNhwc(bf16(cdx.toArray()), n, hw, c),
                    dgamma.toArray(), dgammaAbs, dbeta.toArray(), dbetaAbs);

            Tensor ci = Tensor.allocate(arena, nchw);
            cpu.batchNormForwardInference(cx, cgamma, cbeta, host(runningMean, c), host(runningVar, c), eps, ci);
            upload(grm, runningMean);
            upload(grv, runningVar);
            float[] inference = nchwToNhwc(bf16(ci.toArray()), n, hw, c);
            gy = poisonedBf16(count, offset);
            kernels.batchNormForwardInferenceNhwc(stream, gx.pointer(), ggamma.pointer(), gbeta.pointer(), grm.pointer(), grv.pointer(),
                    eps, gy.pointer(), m, c);
            assertBf16Close(inference, downloadBf16(gy), "batchNormForwardInferenceNhwc " + what);
            kernels.batchNormForwardInferenceNhwc(stream, gx.pointer(), ggamma.pointer(), gbeta.pointer(), grm.pointer(), grv.pointer(),
                    eps, gx.pointer(), m, c);
            assertBf16Close(inference, downloadBf16(gx), "batchNormForwardInferenceNhwc in place " + what);
        }
    }

    /**
     * Batch norm + SiLU fused against the CPU's batch norm followed by its SiLU (forward) and the CPU's SiLU backward
     * followed by its batch-norm backward (backward, on the CPU's saved statistics): y and dx within bf16's
     * precision, dgamma and dbeta within 1e-4 relative plus 1e-5 of the sum of the terms' magnitudes (the
     * SiLU gradient goes through expf on the GPU, the double exp on the CPU); the saved statistics as the plain
     * kernel's; inference too. 16-byte and 2-byte-off pointers, 1280 channels, several chunks; NaN-poisoned
     * outputs; the backward repeats bit for bit.
     */
    @Test
    void batchNormSiluNhwcMatchesTheCpu() {
        int[][] shapes = {{3, 7, 7, 37, 0}, {3, 17, 19, 24, 1}, {2, 8, 8, 1280, 0}, {2, 9, 11, 48, 0}, {1, 40, 30, 8, 0}};
        double momentum = 0.1, eps = 1e-5;
        for (int[] sh : shapes) {
            int n = sh[0], h = sh[1], w = sh[2], c = sh[3], offset = sh[4], hw = h * w, m = n * hw, count = m * c;
            String what = "[n " + n + ", h " + h + ", w " + w + ", c " + c + "] at offset " + offset;
            float[] x = bf16Values(count, 1, 0), dy = bf16Values(count, 1, 0);
            float[] gamma = values(new int[]{c}, 2), beta = values(new int[]{c}, 1), runningMean = values(new int[]{c}, 1);
            float[] runningVar = new float[c];
            for (int i = 0; i < c; i++) runningVar[i] = (float) (0.5 + random.nextDouble());
            int[] nchw = {n, c, h, w};
            Tensor cx = host(nhwcToNchw(x, n, hw, c), nchw), cdy = host(nhwcToNchw(dy, n, hw, c), nchw);
            Tensor cgamma = host(gamma, c), cbeta = host(beta, c);
            Tensor cz = Tensor.allocate(arena, nchw), cy = Tensor.allocate(arena, nchw), mean = Tensor.allocate(arena, c),
                    invStd = Tensor.allocate(arena, c);
            cpu.batchNormForwardTraining(cx, cgamma, cbeta, host(runningMean.clone(), c), host(runningVar.clone(), c), momentum, eps,
                    cz, mean, invStd);
            cpu.silu(cz, cy);

            DeviceBuffer ggamma = upload(gamma), gbeta = upload(beta), grm = upload(runningMean), grv = upload(runningVar);
            DeviceBuffer gmean = poisoned(c), ginv = poisoned(c);
            DeviceBuffer workspace = track(context.allocate(NnKernels.batchNormWorkspaceBytes(m, c)));
            workspace.fill((byte) 0xFF);
            Bf16Tensor gx = uploadBf16(x, offset), gy = poisonedBf16(count, offset);
            kernels.batchNormSiluForwardTrainingNhwc(stream, gx.pointer(), ggamma.pointer(), gbeta.pointer(), grm.pointer(),
                    grv.pointer(), momentum, eps, gy.pointer(), gmean.pointer(), ginv.pointer(), m, c, workspace.pointer());
            assertBf16Close(nchwToNhwc(bf16(cy.toArray()), n, hw, c), downloadBf16(gy), "batchNormSiluForwardTrainingNhwc y " + what);
            double[] meanAbs = new double[c];
            for (int i = 0; i < count; i++) meanAbs[i % c] += Math.abs(x[i]) / m * SUM_ABS;
            assertFloatsClose(mean.toArray(), download(gmean, c), SUM_REL, meanAbs, "saved mean " + what);
            assertFloatsClose(invStd.toArray(), download(ginv, c), SUM_REL, new double[c], "saved 1/std " + what);

            Tensor cdz = Tensor.allocate(arena, nchw), cdx = Tensor.allocate(arena, nchw), dgamma = Tensor.allocate(arena, c),
                    dbeta = Tensor.allocate(arena, c);
            cpu.siluBackward(cz, cdy, cdz);
            cpu.batchNormBackward(cx, cdz, cgamma, mean, invStd, eps, cdx, dgamma, dbeta);
            float[] dz = nchwToNhwc(cdz.toArray(), n, hw, c), saved = mean.toArray(), savedInv = invStd.toArray();
            double[] dbetaAbs = new double[c], dgammaAbs = new double[c];
            for (int i = 0; i < count; i++) {
                int ch = i % c;
                dbetaAbs[ch] += Math.abs(dz[i]) * 1e-5;
                dgammaAbs[ch] += Math.abs(dz[i] * (x[i] - saved[ch]) * savedInv[ch]) * 1e-5;
            }
            DeviceBuffer gsaved = upload(saved), gsavedInv = upload(savedInv), gdgamma = poisoned(c), gdbeta = poisoned(c);
            Bf16Tensor gdy = uploadBf16(dy, offset);
            checkBackwardTwice("batchNormSiluBackwardNhwc " + what, dx -> kernels.batchNormSiluBackwardNhwc(stream, gx.pointer(),
                    gdy.pointer(), ggamma.pointer(), gbeta.pointer(), gsaved.pointer(), gsavedInv.pointer(), dx, gdgamma.pointer(),
                    gdbeta.pointer(), m, c, workspace.pointer()), workspace, gdgamma, gdbeta, count, offset,
                    nchwToNhwc(bf16(cdx.toArray()), n, hw, c), dgamma.toArray(), dgammaAbs, dbeta.toArray(), dbetaAbs);

            Tensor ci = Tensor.allocate(arena, nchw);
            cpu.batchNormForwardInference(cx, cgamma, cbeta, host(runningMean, c), host(runningVar, c), eps, ci);
            cpu.silu(ci, ci);
            upload(grm, runningMean);
            upload(grv, runningVar);
            gy = poisonedBf16(count, offset);
            kernels.batchNormSiluForwardInferenceNhwc(stream, gx.pointer(), ggamma.pointer(), gbeta.pointer(), grm.pointer(),
                    grv.pointer(), eps, gy.pointer(), m, c);
            assertBf16Close(nchwToNhwc(bf16(ci.toArray()), n, hw, c), downloadBf16(gy), "batchNormSiluForwardInferenceNhwc " + what);
        }
    }

    /**
     * Runs a batch-norm backward ({@code launch}, given the dx pointer) twice, the workspace, dgamma, dbeta and dx
     * poisoned before each run: the first run's outputs against the reference (dx bf16 NHWC; dgamma and dbeta
     * within SUM_REL plus the given absolute tolerances), the second's against the first, bit for bit.
     */
    private void checkBackwardTwice(String what, java.util.function.LongConsumer launch, DeviceBuffer workspace, DeviceBuffer gdgamma,
                                    DeviceBuffer gdbeta, int count, int offset, float[] dx, float[] dgamma, double[] dgammaAbs,
                                    float[] dbeta, double[] dbetaAbs) {
        int c = dgamma.length;
        float[][] first = null;
        for (int run = 0; run < 2; run++) {
            workspace.fill((byte) 0xFF);
            gdgamma.fill((byte) 0xFF);
            gdbeta.fill((byte) 0xFF);
            Bf16Tensor gdx = poisonedBf16(count, offset);
            launch.accept(gdx.pointer());
            float[][] got = {downloadBf16(gdx), download(gdgamma, c), download(gdbeta, c)};
            if (run == 0) {
                assertBf16Close(dx, got[0], what + ": dx");
                assertFloatsClose(dgamma, got[1], SUM_REL, dgammaAbs, what + ": dgamma");
                assertFloatsClose(dbeta, got[2], SUM_REL, dbetaAbs, what + ": dbeta");
                first = got;
            } else {
                for (int k = 0; k < got.length; k++) assertBitIdentical(first[k], got[k], what + ": output " + k + ", second run");
            }
        }
    }

    /**
     * fp32 NCHW -> bf16 NHWC on random bit patterns (a third of them exact ties) and the edge cases of
     * bf16ConversionsMatchTheReferenceBitForBit, and bf16 NHWC -> fp32 NCHW on random 16-bit patterns, both bit for
     * bit against a Java transpose and Bf16Reference, on shapes that are not whole 32 x 32 tiles.
     */
    @Test
    void layoutAndPrecisionConversionsMatchTheReferenceBitForBit() {
        int[] special = {0x7F800001, 0xFF80FFFF, 0x7FC00000, 0x7FFFFFFF, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0x7F7F8000,
                0x7F7F7FFF, 0x00000000, 0x80000000, 0x00008000, 0x00018000, 0x00000001, 0x3F808000, 0x3F818000, 0xBF818000};
        for (int[] s : List.of(new int[]{3, 37, 9, 7}, new int[]{2, 1152, 8, 8}, new int[]{1, 3, 67, 65},
                new int[]{4, 5, 1, 1}, new int[]{2, 1, 33, 31})) {
            int n = s[0], c = s[1], h = s[2], w = s[3], hw = h * w, count = n * c * hw;
            String what = java.util.Arrays.toString(s);
            int[] bits = new int[count];
            for (int i = 0; i < count; i++) {
                bits[i] = i < special.length ? special[i] : random.nextInt();
                if (i >= special.length && i % 3 == 0) bits[i] = (bits[i] & 0xFFFF0000) | 0x8000;
            }
            DeviceBuffer gx = uploadInts(bits), gy = poisoned((count + 1) / 2);
            kernels.nchwF32ToNhwcBf16(stream, gx.pointer(), gy.pointer(), n, c, h, w);
            short[] got = downloadShorts(gy, count);
            for (int img = 0; img < n; img++) {
                for (int ch = 0; ch < c; ch++) {
                    for (int j = 0; j < hw; j++) {
                        int from = (img * c + ch) * hw + j, to = (img * hw + j) * c + ch;
                        if ((got[to] & 0xFFFF) != Bf16Reference.round(bits[from])) {
                            throw new AssertionError(String.format("nchwF32ToNhwcBf16 %s: 0x%08X at %d gave 0x%04X, reference 0x%04X (seed %d)",
                                    what, bits[from], from, got[to] & 0xFFFF, Bf16Reference.round(bits[from]), seed));
                        }
                    }
                }
            }

            short[] halves = new short[count];
            for (int i = 0; i < count; i++) halves[i] = (short) random.nextInt();
            DeviceBuffer gb = uploadShorts(halves), gf = poisoned(count);
            kernels.nhwcBf16ToNchwF32(stream, gb.pointer(), gf.pointer(), n, c, h, w);
            int[] widened = downloadInts(gf, count);
            for (int img = 0; img < n; img++) {
                for (int ch = 0; ch < c; ch++) {
                    for (int j = 0; j < hw; j++) {
                        int from = (img * hw + j) * c + ch, to = (img * c + ch) * hw + j;
                        if (widened[to] != Bf16Reference.widen(halves[from])) {
                            throw new AssertionError(String.format("nhwcBf16ToNchwF32 %s: 0x%04X gave 0x%08X (seed %d)", what,
                                    halves[from] & 0xFFFF, widened[to], seed));
                        }
                    }
                }
            }
        }
    }

    /**
     * The NHWC bf16 depthwise kernels against the CPU's fp32 depthwise convolution on the same bf16-exact x, w and
     * dy: every square 3x3 and 5x5 shape of {@link #depthwiseShapes} (B0's shape classes, odd and tiny planes,
     * padding past the filter), on 4-byte aligned pointers (2 channels a thread when c is even) and 2 bytes off
     * (one). y and dx are bf16: within 1e-2 of the CPU's value rounded to bf16, plus 1e-5 of the sum of the terms'
     * magnitudes (both sides sum exact products in fp32 in different orders before rounding). dw is fp32 summed in
     * double: within 1e-5 of that magnitude, and a second run repeats it bit for bit. Outputs and workspace start
     * as NaN.
     */
    @Test
    void nhwcDepthwiseForwardAndBackwardMatchTheCpu() {
        List<ConvGeometry> shapes = new ArrayList<>();
        for (ConvGeometry g : depthwiseShapes()) if (NnKernels.supportsDepthwiseNhwc(g)) shapes.add(g);
        assertTrue(shapes.size() >= 15, "the B0 shape classes are all square 3x3 or 5x5: " + shapes.size());
        for (ConvGeometry g : shapes) {
            for (int offset : new int[]{0, 1}) {
                String what = g + " at offset " + offset;
                int n = g.n(), c = g.c(), hw = g.h() * g.w(), pq = g.p() * g.q();
                float[] x = bf16Values(n * hw * c, 2, 0), w = bf16Values(c * g.r() * g.s(), 1, 0), dy = bf16Values(n * pq * c, 1, 0);
                DepthwiseReference ref = depthwiseReference(g, nhwcToNchw(x, n, hw, c), w, nhwcToNchw(dy, n, pq, c));
                Tensor y = ref.y(), ya = ref.yMagnitude(), dx = ref.dx(), dxa = ref.dxMagnitude(), dw = ref.dw(), dwa = ref.dwMagnitude();

                Bf16Tensor gx = uploadBf16(x, offset), gw = uploadBf16(w, offset), gdy = uploadBf16(dy, offset);
                Bf16Tensor gy = poisonedBf16(n * pq * c, offset), gdx = poisonedBf16(n * hw * c, offset);
                kernels.depthwiseForwardNhwc(stream, g, gx.pointer(), gw.pointer(), gy.pointer());
                assertBf16WithinMagnitude(nchwToNhwc(y.toArray(), n, pq, c), nchwToNhwc(ya.toArray(), n, pq, c), downloadBf16(gy),
                        "depthwiseForwardNhwc " + what);
                kernels.depthwiseBackwardDataNhwc(stream, g, gdy.pointer(), gw.pointer(), gdx.pointer());
                assertBf16WithinMagnitude(nchwToNhwc(dx.toArray(), n, hw, c), nchwToNhwc(dxa.toArray(), n, hw, c), downloadBf16(gdx),
                        "depthwiseBackwardDataNhwc " + what);

                DeviceBuffer gdw = poisoned(dw.size()), workspace = track(context.allocate(NnKernels.depthwiseNhwcWorkspaceBytes(g)));
                workspace.fill((byte) 0xFF);
                kernels.depthwiseBackwardFilterNhwc(stream, g, gx.pointer(), gdy.pointer(), gdw.pointer(), workspace.pointer());
                float[] first = download(gdw, (int) dw.size());
                assertWithinMagnitude(dw, dwa, first, "depthwiseBackwardFilterNhwc " + what);
                gdw.fill((byte) 0xFF);
                workspace.fill((byte) 0xFF);
                kernels.depthwiseBackwardFilterNhwc(stream, g, gx.pointer(), gdy.pointer(), gdw.pointer(), workspace.pointer());
                assertBitIdentical(first, download(gdw, (int) dw.size()), "depthwiseBackwardFilterNhwc " + what + ", second run");
            }
        }
    }

    /**
     * im2col of bf16 NHWC patches against a plain loop, bit for bit (it copies, and writes +0.0 outside the image):
     * a stem-like 3x3/2 with padding, a 5x5/1 with more padding than half the filter, and a 1x2 stride; a chunk of
     * rows from the middle and all of them, into poisoned memory.
     */
    @Test
    void im2colCopiesThePatchesOfEachOutputPosition() {
        List<ConvGeometry> shapes = List.of(ConvGeometry.square(2, 3, 17, 15, 8, 3, 2, 1),
                new ConvGeometry(1, 5, 9, 7, 4, 5, 5, 1, 1, 3, 3, 1), new ConvGeometry(3, 2, 6, 11, 3, 3, 3, 1, 2, 1, 1, 1));
        for (ConvGeometry g : shapes) {
            int n = g.n(), c = g.c(), r = g.r(), s = g.s(), positions = n * g.p() * g.q(), rsc = r * s * c;
            float[] x = bf16Values(n * g.h() * g.w() * c, 2, 0);
            Bf16Tensor gx = uploadBf16(x, 0);
            for (int[] range : new int[][]{{positions / 3, positions / 2 - positions / 3 + 1}, {0, positions}}) {
                int m0 = range[0], rows = range[1];
                Bf16Tensor col = poisonedBf16(rows * rsc, 0);
                kernels.im2colNhwc(stream, g, gx.pointer(), col.pointer(), m0, rows);
                float[] got = downloadBf16(col);
                for (int row = 0; row < rows; row++) {
                    int m = m0 + row, img = m / (g.p() * g.q()), pp = m / g.q() % g.p(), qq = m % g.q();
                    for (int rr = 0; rr < r; rr++) {
                        for (int ss = 0; ss < s; ss++) {
                            int hh = pp * g.strideH() + rr - g.padH(), ww = qq * g.strideW() + ss - g.padW();
                            boolean inside = hh >= 0 && hh < g.h() && ww >= 0 && ww < g.w();
                            for (int ch = 0; ch < c; ch++) {
                                float want = inside ? x[((img * g.h() + hh) * g.w() + ww) * c + ch] : 0f;
                                int at = row * rsc + (rr * s + ss) * c + ch;
                                if (Float.floatToRawIntBits(got[at]) != Float.floatToRawIntBits(want)) {
                                    throw new AssertionError("im2colNhwc " + g + " rows [" + m0 + ", " + (m0 + rows) + "): row " + row
                                            + " tap (" + rr + ", " + ss + ") channel " + ch + ": " + got[at] + ", want " + want + " (seed " + seed + ")");
                                }
                            }
                        }
                    }
                }
            }
            assertThrows(IllegalArgumentException.class, () -> kernels.im2colNhwc(stream, g, gx.pointer(), gx.pointer(), 0, 1));
            assertThrows(IllegalArgumentException.class, () -> kernels.im2colNhwc(stream, g, gx.pointer(), 1 << 20, positions, 1));
        }
    }

    /** |got - bf16(expected)| <= 1e-2 |expected| + 1e-5 magnitude everywhere; a NaN (an element never written) fails. */
    private void assertBf16WithinMagnitude(float[] expected, float[] magnitude, float[] got, String what) {
        assertEquals(expected.length, got.length, what + ": sizes");
        for (int i = 0; i < expected.length; i++) {
            float e = bf16(expected[i]);
            double tol = BF16_REL * Math.abs(e) + REL * magnitude[i];
            if (!(Math.abs((double) got[i] - e) <= tol)) {
                throw new AssertionError(what + ": element " + i + ": GPU " + got[i] + ", CPU " + expected[i] + " (bf16 " + e
                        + "), tolerance " + tol + " (seed " + seed + ")");
            }
        }
    }

    @Test
    void nhwcDepthwiseLaunchesCheckTheirArguments() {
        ConvGeometry g = ConvGeometry.square(2, 8, 9, 9, 8, 3, 1, 8);
        Bf16Tensor x = poisonedBf16(2 * 8 * 9 * 9, 0), w = poisonedBf16(8 * 9, 0);
        DeviceBuffer dw = poisoned(8 * 9), workspace = track(context.allocate(NnKernels.depthwiseNhwcWorkspaceBytes(g) + 8));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseForwardNhwc(stream, g, x.pointer(), w.pointer(), x.pointer()));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseBackwardDataNhwc(stream, g, x.pointer(), w.pointer(), 0));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseForwardNhwc(stream,
                ConvGeometry.square(2, 8, 9, 9, 8, 7, 1, 8), x.pointer(), w.pointer(), dw.pointer()));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseBackwardFilterNhwc(stream, g, x.pointer(), x.pointer(),
                dw.pointer(), workspace.pointer() + 4));
        assertThrows(IllegalArgumentException.class, () -> kernels.depthwiseBackwardFilterNhwc(stream, g, x.pointer(), x.pointer(),
                dw.pointer(), dw.pointer()));
    }

    @Test
    void bf16LaunchesCheckTheirArguments() {
        Bf16Tensor x = poisonedBf16(64, 0);
        DeviceBuffer f = poisoned(64);
        assertThrows(IllegalArgumentException.class, () -> kernels.siluBf16(stream, x.pointer(), x.pointer() + 2, 64));
        assertThrows(IllegalArgumentException.class, () -> kernels.multiplyByMaskBf16(stream, x.pointer(), f.pointer(), x.pointer(), 64, 5));
        assertThrows(IllegalArgumentException.class, () -> kernels.scaleChannelsNhwc(stream, x.pointer(), f.pointer(), x.pointer(), 2, 0, 4));
        assertThrows(IllegalArgumentException.class, () -> kernels.batchNormForwardTrainingNhwc(stream, x.pointer(), f.pointer(),
                f.pointer(), f.pointer(), f.pointer(), 0.1, 1e-5, x.pointer(), f.pointer(), f.pointer(), 1, 8, f.pointer()));
        assertThrows(IllegalArgumentException.class, () -> kernels.batchNormBackwardNhwc(stream, x.pointer(), x.pointer(), f.pointer(),
                f.pointer(), f.pointer(), x.pointer(), f.pointer(), f.pointer(), 8, 8, f.pointer() + 4));
        assertThrows(IllegalArgumentException.class, () -> kernels.nchwF32ToNhwcBf16(stream, f.pointer(), f.pointer() + 4, 1, 4, 4, 4));
    }

    // ---------------------------------------------------------------- helpers

    /** Random values in +-range, none zero or tiny (a skipped multiply by a zero input would go unseen). */
    private float[] values(int[] shape, double range) {
        long size = 1;
        for (int d : shape) size *= d;
        float[] out = new float[Math.toIntExact(size)];
        for (int i = 0; i < out.length; i++) {
            double u;
            do u = (random.nextDouble() * 2 - 1) * range; while (Math.abs(u) < 1e-3 * range);
            out[i] = (float) u;
        }
        return out;
    }

    private Tensor host(float[] values, int... shape) {
        return Tensor.of(arena, values, shape);
    }

    private <T extends AutoCloseable> T track(T resource) {
        buffers.add(resource);
        return resource;
    }

    private DeviceBuffer upload(float[] values) {
        DeviceBuffer d = track(context.allocate((long) values.length * Float.BYTES));
        upload(d, values);
        return d;
    }

    /** Overwrites the start of {@code d} with {@code values}, after the work queued before. */
    private void upload(DeviceBuffer d, float[] values) {
        long bytes = (long) values.length * Float.BYTES;
        try (PinnedBuffer staging = context.allocatePinned(bytes)) {
            MemorySegment.copy(values, 0, staging.segment(), JAVA_FLOAT, 0, values.length);
            stream.copyToDevice(staging, 0, d, 0, bytes);
            stream.synchronize();
        }
    }

    /** A device buffer of {@code floats} floats, every byte 0xFF: a NaN in each element. */
    private DeviceBuffer poisoned(long floats) {
        DeviceBuffer d = track(context.allocate(floats * Float.BYTES));
        d.fill((byte) 0xFF);
        return d;
    }

    /** Waits for the stream, then copies {@code floats} floats back. */
    private float[] download(DeviceBuffer d, int floats) {
        long bytes = (long) floats * Float.BYTES;
        try (PinnedBuffer staging = context.allocatePinned(bytes)) {
            stream.copyToHost(d, 0, staging, 0, bytes);
            stream.synchronize();
            return staging.segment().toArray(JAVA_FLOAT);
        }
    }

    private double downloadDouble(DeviceBuffer d) {
        try (PinnedBuffer staging = context.allocatePinned(8)) {
            stream.copyToHost(d, 0, staging, 0, 8);
            stream.synchronize();
            return staging.segment().get(JAVA_DOUBLE, 0);
        }
    }

    private float[] abs(float[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) out[i] = Math.abs(values[i]);
        return out;
    }

    private DeviceBuffer uploadInts(int[] values) {
        return uploadBytes(MemorySegment.ofArray(values));
    }

    private DeviceBuffer uploadShorts(short[] values) {
        return uploadBytes(MemorySegment.ofArray(values));
    }

    /** Raw bits, so NaN payloads arrive as written. */
    private DeviceBuffer uploadBytes(MemorySegment values) {
        long bytes = values.byteSize();
        DeviceBuffer d = track(context.allocate(bytes));
        try (PinnedBuffer staging = context.allocatePinned(bytes)) {
            staging.segment().copyFrom(values);
            stream.copyToDevice(staging, 0, d, 0, bytes);
            stream.synchronize();
        }
        return d;
    }

    private int[] downloadInts(DeviceBuffer d, int count) {
        try (PinnedBuffer staging = context.allocatePinned((long) count * Integer.BYTES)) {
            stream.copyToHost(d, 0, staging, 0, (long) count * Integer.BYTES);
            stream.synchronize();
            return staging.segment().asSlice(0, (long) count * Integer.BYTES).toArray(JAVA_INT);
        }
    }

    private short[] downloadShorts(DeviceBuffer d, int count) {
        try (PinnedBuffer staging = context.allocatePinned((long) count * Short.BYTES)) {
            stream.copyToHost(d, 0, staging, 0, (long) count * Short.BYTES);
            stream.synchronize();
            return staging.segment().asSlice(0, (long) count * Short.BYTES).toArray(JAVA_SHORT);
        }
    }

    /**
     * |got - expected| <= REL * magnitude everywhere, magnitude being the sum of the absolute values of the
     * terms; a NaN (an element never written) fails.
     */
    private void assertWithinMagnitude(Tensor expected, Tensor magnitude, float[] got, String what) {
        float[] e = expected.toArray(), m = magnitude.toArray();
        assertEquals(e.length, got.length, what + ": sizes");
        for (int i = 0; i < e.length; i++) {
            double tol = REL * m[i];
            if (!(Math.abs((double) got[i] - e[i]) <= tol)) {
                throw new AssertionError(what + ": element " + i + ": GPU " + got[i] + ", CPU " + e[i] + ", tolerance " + tol
                        + " (seed " + seed + ")");
            }
        }
    }

    /** |got - expected| <= abs + REL |expected| everywhere; a NaN (an element never written) fails. */
    private void assertClose(Tensor expected, float[] got, double abs, String what) {
        float[] e = expected.toArray();
        assertEquals(e.length, got.length, what + ": sizes");
        for (int i = 0; i < e.length; i++) {
            double tol = abs + REL * Math.abs(e[i]);
            if (!(Math.abs((double) got[i] - e[i]) <= tol)) {
                throw new AssertionError(what + ": element " + i + ": GPU " + got[i] + ", CPU " + e[i] + " (seed " + seed + ")");
            }
        }
    }

    private void assertBitIdentical(float[] first, float[] second, String what) {
        for (int i = 0; i < first.length; i++) {
            if (Float.floatToRawIntBits(first[i]) != Float.floatToRawIntBits(second[i])) {
                throw new AssertionError(what + ": element " + i + " was " + first[i] + ", now " + second[i] + " (seed " + seed + ")");
            }
        }
    }
}
