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
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The training kernels of cuda/nn.cu against the CPU reference ({@link CpuBackend}) on the same random inputs:
 * every output buffer is filled with NaN bytes before the launch, so an element a kernel skips fails the
 * comparison. Tolerances: 1e-5 relative for plain fp32 arithmetic and for reductions, 1e-6 absolute + 1e-5
 * relative where exp is involved (expf is not the CPU's double exp); for the depthwise convolutions 1e-5 of the
 * sum of the terms' magnitudes; none for the conversions and transposes, which must be exact, nor between the
 * multi-tensor and the per-tensor Adam kernels. Each reduction runs twice and must repeat bit for bit. Skips,
 * saying why, without a GPU or without the kernels built.
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
        assertClose(ds, first, 0, "scaleChannelsBackward ds");

        gds.fill((byte) 0xFF);
        kernels.scaleChannelsBackward(stream, gx.pointer(), gs.pointer(), gdy.pointer(), out.pointer(), gds.pointer(), planes, spatial);
        assertBitIdentical(first, download(gds, planes), "scaleChannelsBackward ds, second run");
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
            assertClose(y, first, 0, "globalAveragePool " + what);
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
            Tensor cx = host(x, xs), cw = host(w, ws), cdy = host(dy, ys);
            Tensor ax = host(abs(x), xs), aw = host(abs(w), ws), ady = host(abs(dy), ys);
            Tensor y = Tensor.allocate(arena, ys), ya = Tensor.allocate(arena, ys), dx = Tensor.allocate(arena, xs),
                    dxa = Tensor.allocate(arena, xs), dw = Tensor.allocate(arena, ws), dwa = Tensor.allocate(arena, ws);
            cpu.conv2dForward(g, cx, cw, y);
            cpu.conv2dForward(g, ax, aw, ya);
            cpu.conv2dBackwardData(g, cdy, cw, dx);
            cpu.conv2dBackwardData(g, ady, aw, dxa);
            cpu.conv2dBackwardFilter(g, cx, cdy, dw);
            cpu.conv2dBackwardFilter(g, ax, ady, dwa);

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
