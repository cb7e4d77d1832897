package ich.gpu;

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
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The training kernels of cuda/nn.cu against the CPU reference ({@link CpuBackend}) on the same random inputs:
 * every output buffer is filled with NaN bytes before the launch, so an element a kernel skips fails the
 * comparison. Tolerances: 1e-5 relative for plain fp32 arithmetic and for reductions, 1e-6 absolute + 1e-5
 * relative where exp is involved (expf is not the CPU's double exp). Each reduction runs twice and must repeat
 * bit for bit. Skips, saying why, without a GPU or without the kernels built.
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
        long bytes = (long) values.length * Float.BYTES;
        DeviceBuffer d = track(context.allocate(bytes));
        try (PinnedBuffer staging = context.allocatePinned(bytes)) {
            MemorySegment.copy(values, 0, staging.segment(), JAVA_FLOAT, 0, values.length);
            stream.copyToDevice(staging, 0, d, 0, bytes);
            stream.synchronize();
        }
        return d;
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
