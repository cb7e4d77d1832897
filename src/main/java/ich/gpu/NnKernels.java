package ich.gpu;

import java.util.ArrayList;
import java.util.List;

/**
 * The host side of the training kernels in cuda/nn.cu: one method per op of {@link ich.nn.Backend} that cuDNN
 * and cuBLAS do not cover, each queuing one launch on the given stream and returning without waiting. Tensors
 * are fp32 and passed as device pointers (a {@link DeviceBuffer#pointer()} plus an offset, or any other device
 * address) with their element counts; a count of 0 queues nothing. The formulas, argument order and aliasing
 * rules are those of the {@code Backend} method of the same name, and {@code ich.nn.cpu.CpuBackend} is the
 * reference the results are tested against (NnKernelsTest).
 *
 * <p>The reductions ({@link #scaleChannelsBackward}, {@link #globalAveragePool}, {@link #bceWithLogits}) use no
 * atomics: the same inputs give the same bits on every run.
 *
 * <p>The module is loaded into the context current at {@link #open}; launches must come from a thread where that
 * context is current. {@link #close()} unloads it.
 */
public final class NnKernels implements AutoCloseable {
    /** Threads per block, as ICH_NN_BLOCK in nn.cu (the reductions' shared arrays are sized by it). */
    public static final int BLOCK = 256;
    /**
     * Most blocks of a grid-stride launch: about 60 resident 256-thread blocks per SM on a 132-SM H100, beyond
     * which extra blocks only queue; the kernels stride over whatever remains.
     */
    static final int MAX_BLOCKS = 8192;
    /** Most blocks of a one-block-per-plane launch (the kernels stride over planes beyond it). */
    static final int MAX_PLANE_BLOCKS = 65_535;

    /** Entry points of cuda/nn.cu, all {@code extern "C"}. */
    public static final String SILU = "ich_nn_silu", SILU_BACKWARD = "ich_nn_silu_backward", SIGMOID = "ich_nn_sigmoid",
            SIGMOID_BACKWARD = "ich_nn_sigmoid_backward", ADD = "ich_nn_add", MULTIPLY_BY_MASK = "ich_nn_multiply_by_mask",
            SCALE = "ich_nn_scale", SCALE_CHANNELS = "ich_nn_scale_channels",
            SCALE_CHANNELS_BACKWARD = "ich_nn_scale_channels_backward", GLOBAL_AVERAGE_POOL = "ich_nn_global_average_pool",
            GLOBAL_AVERAGE_POOL_BACKWARD = "ich_nn_global_average_pool_backward", BCE_WITH_LOGITS = "ich_nn_bce_with_logits",
            ADAM_STEP = "ich_nn_adam_step";
    /** Every entry point the Java side launches (KernelBuildTest checks each is in the fatbin). */
    public static final List<String> ENTRY_POINTS = List.of(SILU, SILU_BACKWARD, SIGMOID, SIGMOID_BACKWARD, ADD,
            MULTIPLY_BY_MASK, SCALE, SCALE_CHANNELS, SCALE_CHANNELS_BACKWARD, GLOBAL_AVERAGE_POOL,
            GLOBAL_AVERAGE_POOL_BACKWARD, BCE_WITH_LOGITS, ADAM_STEP);

    private final Module module;
    private final Module.Kernel silu, siluBackward, sigmoid, sigmoidBackward, add, multiplyByMask, scale, scaleChannels,
            scaleChannelsBackward, globalAveragePool, globalAveragePoolBackward, bceWithLogits, adamStep;

    /**
     * Loads nn.fatbin into {@code context} and looks up every entry point.
     *
     * @throws GpuUnavailableException when the jar has no kernels ({@link Kernels#NOT_BUILT})
     * @throws CudaException           when the driver refuses (no kernel image for this GPU, a missing entry point)
     */
    public static NnKernels open(Context context) {
        byte[] fatbin = Kernels.nnFatbin().orElseThrow(() -> new GpuUnavailableException(Kernels.NOT_BUILT));
        context.makeCurrent();
        return new NnKernels(context.loadModule(fatbin));
    }

    private NnKernels(Module module) {
        this.module = module;
        try {
            List<Module.Kernel> k = new ArrayList<>();
            for (String name : ENTRY_POINTS) k.add(module.kernel(name));
            silu = k.get(0);
            siluBackward = k.get(1);
            sigmoid = k.get(2);
            sigmoidBackward = k.get(3);
            add = k.get(4);
            multiplyByMask = k.get(5);
            scale = k.get(6);
            scaleChannels = k.get(7);
            scaleChannelsBackward = k.get(8);
            globalAveragePool = k.get(9);
            globalAveragePoolBackward = k.get(10);
            bceWithLogits = k.get(11);
            adamStep = k.get(12);
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    // ---- element-wise ----

    /** y = x * sigmoid(x) over {@code n} elements; y may be x. */
    public void silu(Stream stream, long x, long y, long n) {
        elementwise(stream, silu, n, x, y, n);
    }

    /** dx = dy * d silu(x) / dx. */
    public void siluBackward(Stream stream, long x, long dy, long dx, long n) {
        elementwise(stream, siluBackward, n, x, dy, dx, n);
    }

    /** y = 1 / (1 + exp(-x)); y may be x. */
    public void sigmoid(Stream stream, long x, long y, long n) {
        elementwise(stream, sigmoid, n, x, y, n);
    }

    /** dx = dy * y * (1 - y), from the forward output y. */
    public void sigmoidBackward(Stream stream, long y, long dy, long dx, long n) {
        elementwise(stream, sigmoidBackward, n, y, dy, dx, n);
    }

    /** y = a + b; y may be a or b. */
    public void add(Stream stream, long a, long b, long y, long n) {
        elementwise(stream, add, n, a, b, y, n);
    }

    /** into += from. */
    public void accumulate(Stream stream, long into, long from, long n) {
        add(stream, into, from, into, n);
    }

    /**
     * y = x * mask over {@code n} elements, where {@code mask} holds one value per {@code perSample} elements:
     * {@code perSample} 1 for a mask of x's shape (dropout), c*h*w for one value per sample (drop-path). y may be x.
     */
    public void multiplyByMask(Stream stream, long x, long mask, long y, long n, long perSample) {
        if (perSample < 1 || n % perSample != 0) {
            throw new IllegalArgumentException("multiplyByMask: " + n + " elements are not whole samples of " + perSample);
        }
        elementwise(stream, multiplyByMask, n, x, mask, y, n, perSample);
    }

    /** t *= factor, in place. */
    public void scale(Stream stream, long t, float factor, long n) {
        elementwise(stream, scale, n, t, factor, n);
    }

    // ---- squeeze-excitation and pooling: x is [planes = n*c, spatial = h*w] ----

    /** y[p, j] = x[p, j] * s[p]. */
    public void scaleChannels(Stream stream, long x, long s, long y, long planes, long spatial) {
        long n = elements("scaleChannels", planes, spatial);
        elementwise(stream, scaleChannels, n, x, s, y, n, spatial);
    }

    /** dx = dy * s; ds[p] = sum over j of dy * x (in double). Deterministic. */
    public void scaleChannelsBackward(Stream stream, long x, long s, long dy, long dx, long ds, long planes, long spatial) {
        elements("scaleChannelsBackward", planes, spatial);
        perPlane(stream, scaleChannelsBackward, planes, x, s, dy, dx, ds, planes, spatial);
    }

    /** y[p] = mean over j of x[p, j] (summed in double). Deterministic. */
    public void globalAveragePool(Stream stream, long x, long y, long planes, long spatial) {
        elements("globalAveragePool", planes, spatial);
        perPlane(stream, globalAveragePool, planes, x, y, planes, spatial);
    }

    /** dx[p, j] = dy[p] / spatial. */
    public void globalAveragePoolBackward(Stream stream, long dy, long dx, long planes, long spatial) {
        long n = elements("globalAveragePoolBackward", planes, spatial);
        elementwise(stream, globalAveragePoolBackward, n, dy, dx, n, spatial);
    }

    private static long elements(String op, long planes, long spatial) {
        if (planes < 0 || spatial < 1) throw new IllegalArgumentException(op + ": " + planes + " planes of " + spatial + " elements");
        return Math.multiplyExact(planes, spatial);
    }

    // ---- loss ----

    /**
     * Weighted BCE on logits {@code z} and targets {@code t}, both [n, labels]: writes the loss (a double) to
     * device address {@code loss} and d loss / d z to {@code dz} unless it is 0. {@code weights} holds
     * {@code labels} floats, or is 0 for all 1; they must not sum to 0 (the CPU checks that on the host, where
     * the weights are; here they are on the device, and a zero sum gives a NaN loss). One block: the loss of a
     * batch is a few thousand elements. Deterministic.
     */
    public void bceWithLogits(Stream stream, long z, long t, long weights, long dz, long loss, int n, int labels) {
        if (n < 1 || labels < 1) throw new IllegalArgumentException("bceWithLogits: logits [" + n + ", " + labels + "]");
        stream.launch(bceWithLogits, Stream.Dim3.of(1), Stream.Dim3.of(BLOCK), 0, z, t, weights, dz, loss, (long) n, (long) labels);
    }

    // ---- optimiser ----

    /**
     * One Adam step (AdamW when {@code decoupled}) on a parameter tensor of {@code n} elements, in place on
     * {@code param}, {@code m} and {@code v}, with the formulas of {@code Backend.adamStep}: the bias corrections
     * are computed here in double, as the CPU backend does, and handed to the kernel rounded to float.
     */
    public void adamStep(Stream stream, long param, long grad, long m, long v, long n, long step, double lr, double beta1,
                         double beta2, double eps, double weightDecay, boolean decoupled) {
        if (step < 1) throw new IllegalArgumentException("adamStep: step counts from 1, got " + step);
        float stepSize = (float) (lr / (1 - Math.pow(beta1, step)));
        float invSqrtBias2 = (float) (1 / Math.sqrt(1 - Math.pow(beta2, step)));
        float l2 = decoupled ? 0f : (float) weightDecay;
        float decay = decoupled ? (float) (1 - lr * weightDecay) : 1f;
        elementwise(stream, adamStep, n, param, grad, m, v, n, (float) beta1, (float) beta2, (float) eps, stepSize,
                invSqrtBias2, l2, decay);
    }

    // ---- launches ----

    /** Blocks of a grid-stride launch over n elements: one thread per element up to {@link #MAX_BLOCKS}. */
    static int elementBlocks(long n) {
        return (int) Math.min(MAX_BLOCKS, (n + BLOCK - 1) / BLOCK);
    }

    private static void elementwise(Stream stream, Module.Kernel kernel, long n, Object... args) {
        if (n < 0) throw new IllegalArgumentException(kernel.name() + ": " + n + " elements");
        if (n == 0) return;
        stream.launch(kernel, Stream.Dim3.of(elementBlocks(n)), Stream.Dim3.of(BLOCK), 0, args);
    }

    private static void perPlane(Stream stream, Module.Kernel kernel, long planes, Object... args) {
        if (planes == 0) return;
        stream.launch(kernel, Stream.Dim3.of((int) Math.min(MAX_PLANE_BLOCKS, planes)), Stream.Dim3.of(BLOCK), 0, args);
    }

    @Override
    public void close() {
        module.close();
    }
}
