package ich.nn.cuda;

import ich.gpu.Bf16Reference;
import ich.gpu.GpuUnavailableException;
import ich.nn.ConvGeometry;
import ich.nn.Storage;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInstance;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * What the CUDA backend's op tests share: one backend per class, opened with the class's {@link #options()}, and
 * the CPU reference; a skip that says why where there is no GPU, cuDNN, cuBLAS or kernels; a fresh arena and a
 * freshly seeded random source per test (failures name the seed); and the helpers that put values on the device,
 * poison outputs and read them back. Each helper has a form that takes the backend, for tests that open backends
 * of their own; every one waits for its backend's stream before it returns, so any stream may use the result.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class CudaBackendFixture {
    protected CudaBackend gpu;
    protected CpuBackend cpu;
    private String skip;

    protected Arena arena;
    protected long seed;
    protected SplittableRandom random;

    /** The options of the class's backend. */
    abstract CudaBackend.Options options();

    @BeforeAll
    final void openBackends() {
        try {
            gpu = CudaBackend.open(0, options());
            cpu = new CpuBackend(2);
        } catch (GpuUnavailableException e) {
            skip = "no GPU: " + e.getMessage();
            System.err.println(getClass().getSimpleName() + " skipped: " + skip);
        }
    }

    @AfterAll
    final void closeBackends() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    @BeforeEach
    final void needsAGpu() {
        assumeTrue(skip == null, () -> "skipped: " + skip);
        arena = Arena.ofShared();
        seed = System.nanoTime();
        random = new SplittableRandom(seed);
    }

    @AfterEach
    final void freeArena() {
        if (arena != null) arena.close();
        arena = null;
    }

    final Tensor host(float[] values, int... shape) {
        return Tensor.of(arena, values, shape);
    }

    /** An fp32 NCHW tensor on the device (parameters, statistics, vectors, fp32 activations). */
    final Tensor f32(float[] values, int... shape) {
        return f32(gpu, values, shape);
    }

    final Tensor f32(Tensor hostTensor) {
        return f32(hostTensor.toArray(), hostTensor.shape());
    }

    final Tensor f32(CudaBackend b, float[] values, int... shape) {
        return onDevice(b, Storage.FLOAT32, values, shape);
    }

    /** An activation in bf16 channels-last, converted from the host's fp32 NCHW by the copy. */
    final Tensor bf16(float[] values, int... shape) {
        return bf16(gpu, values, shape);
    }

    final Tensor bf16(CudaBackend b, float[] values, int... shape) {
        return onDevice(b, Storage.BF16_NHWC, values, shape);
    }

    private Tensor onDevice(CudaBackend b, Storage storage, float[] values, int... shape) {
        Tensor t = b.allocateUninitialized(arena, storage, shape);
        b.copy(host(values, shape), t);
        b.synchronize();
        return t;
    }

    /** An fp32 output filled with NaN, so that an element an op fails to write fails the comparison. */
    final Tensor poisonedF32(int... shape) {
        return poisonedF32(gpu, shape);
    }

    final Tensor poisonedF32(CudaBackend b, int... shape) {
        Tensor t = b.allocateUninitialized(arena, shape);
        b.stream().fill32(t.data().address(), Float.floatToRawIntBits(Float.NaN), t.size());
        b.synchronize();
        return t;
    }

    /** A bf16 output filled with bf16 NaNs (0x7FC0 in both halves of each word). */
    final Tensor poisonedBf16(int... shape) {
        return poisonedBf16(gpu, shape);
    }

    final Tensor poisonedBf16(CudaBackend b, int... shape) {
        Tensor t = b.allocateUninitialized(arena, Storage.BF16_NHWC, shape);
        b.stream().fill32(t.data().address(), 0x7FC07FC0, Math.ceilDiv(t.bytes(), Float.BYTES));
        b.synchronize();
        return t;
    }

    /** Back on the host in fp32 NCHW (a bf16 tensor is widened and transposed by the copy). */
    final float[] read(Tensor deviceTensor) {
        return read(gpu, deviceTensor);
    }

    /** Through the stream of the backend that wrote it, so its work is done first. */
    final float[] read(CudaBackend b, Tensor deviceTensor) {
        Tensor h = Tensor.allocate(arena, deviceTensor.shape());
        b.copy(deviceTensor, h);
        return h.toArray();
    }

    /** Fresh values for activations and their gradients (the bf16 tests round them, so both sides start equal). */
    abstract float[] randoms(long n, double scale);

    static float[] roundedToBf16(float[] v) {
        float[] r = v.clone();
        for (int i = 0; i < r.length; i++) r[i] = Bf16Reference.rounded(r[i]);
        return r;
    }

    /**
     * Forward, data and filter gradients of each geometry on {@code b} against the CPU, twice (the second call
     * reuses the chosen algorithms), within {@code tolerance} of each output's norm. Activations are in b's
     * activation storage; the weights are fp32 master weights, which the CPU uses as b does: rounded to bf16 where
     * b's activations are bf16.
     */
    final void checkConvolutions(CudaBackend b, List<ConvGeometry> geometries, double tolerance) {
        boolean bf16 = b.activationStorage().equals(Storage.BF16_NHWC);
        for (ConvGeometry g : geometries) {
            float[] xv = randoms(g.n() * (long) g.c() * g.h() * g.w(), 1);
            float[] wv = new float[Math.toIntExact((long) g.k() * (g.c() / g.groups()) * g.r() * g.s())];
            for (int i = 0; i < wv.length; i++) wv[i] = (float) (random.nextGaussian() * 0.5);
            float[] dyv = randoms((long) g.n() * g.k() * g.p() * g.q(), 1);
            Tensor x = host(xv, g.inputShape()), w = host(bf16 ? roundedToBf16(wv) : wv, g.weightShape()),
                    dy = host(dyv, g.outputShape());
            Tensor y = Tensor.allocate(arena, g.outputShape()), dx = Tensor.allocate(arena, g.inputShape()),
                    dw = Tensor.allocate(arena, g.weightShape());
            cpu.conv2dForward(g, x, w, y);
            cpu.conv2dBackwardData(g, dy, w, dx);
            cpu.conv2dBackwardFilter(g, x, dy, dw);

            Storage activations = b.activationStorage();
            Tensor gx = onDevice(b, activations, xv, g.inputShape()), gw = f32(b, wv, g.weightShape()),
                    gdy = onDevice(b, activations, dyv, g.outputShape());
            Tensor gy = bf16 ? poisonedBf16(b, g.outputShape()) : poisonedF32(b, g.outputShape()),
                    gdx = bf16 ? poisonedBf16(b, g.inputShape()) : poisonedF32(b, g.inputShape()),
                    gdw = poisonedF32(b, g.weightShape());
            for (int repeat = 0; repeat < 2; repeat++) {
                b.conv2dForward(g, gx, gw, gy);
                b.conv2dBackwardData(g, gdy, gw, gdx);
                b.conv2dBackwardFilter(g, gx, gdy, gdw);
                assertNormClose(y.toArray(), read(b, gy), tolerance, "forward " + g);
                assertNormClose(dx.toArray(), read(b, gdx), tolerance, "backward data " + g);
                assertNormClose(dw.toArray(), read(b, gdw), tolerance, "backward filter " + g);
            }
        }
    }

    final void assertNormClose(float[] expected, float[] actual, double tolerance, String what) {
        assertNormClose(expected, actual, tolerance, what, seed);
    }

    /**
     * Every element finite, and |expected - actual| within {@code tolerance} of |expected| (plus 1e-6 per element's
     * worth of slack for outputs near 0); failures name the seed of the random inputs.
     */
    static void assertNormClose(float[] expected, float[] actual, double tolerance, String what, long seed) {
        assertEquals(expected.length, actual.length, what + ": length");
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Float.isFinite(actual[i]), what + ": element " + i + " is " + actual[i] + " (seed " + seed + ")");
            diff += (expected[i] - actual[i]) * (double) (expected[i] - actual[i]);
            norm += (double) expected[i] * expected[i];
        }
        assertTrue(Math.sqrt(diff) <= tolerance * Math.sqrt(norm) + 1e-6 * Math.sqrt(expected.length),
                what + ": difference " + Math.sqrt(diff) + ", norm " + Math.sqrt(norm) + " (seed " + seed + ")");
    }
}
