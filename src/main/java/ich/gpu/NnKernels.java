package ich.gpu;

import ich.nn.ConvGeometry;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The host side of the training kernels in cuda/nn.cu: one method per op of {@link ich.nn.Backend} that cuDNN
 * and cuBLAS do not cover, each queuing one launch on the given stream and returning without waiting. Tensors
 * are fp32 and passed as device pointers (a {@link DeviceBuffer#pointer()} plus an offset, or any other device
 * address) with their element counts; a count of 0 queues nothing. The formulas, argument order and aliasing
 * rules are those of the {@code Backend} method of the same name, and {@code ich.nn.cpu.CpuBackend} is the
 * reference the results are tested against (NnKernelsTest).
 *
 * <p>The reductions ({@link #scaleChannelsBackward}, {@link #globalAveragePool}, {@link #bceWithLogits},
 * {@link #depthwiseBackwardFilter}) use no atomics: the same inputs give the same bits on every run.
 *
 * <p>{@link #adamTable} makes a table of every parameter tensor of a model, whose {@link AdamTable#step} updates
 * them all in one launch with scalars read from device memory, so that the launch can be captured in a CUDA graph.
 *
 * <p>Besides the {@code Backend} ops there are depthwise convolutions ({@link #supportsDepthwise} says which
 * shapes; the CUDA backend races them against cuDNN per shape) and the conversions of the bf16 path.
 *
 * <p>The bf16 mixed-precision path: element-wise ops on bf16 buffers ({@code siluBf16} ...), squeeze-excitation,
 * global average pooling and batch norm on bf16 NHWC activations with fp32 per-channel tensors, and
 * layout-plus-precision conversions. "bf16" buffers hold 16-bit bfloat16 values; the kernels widen them, compute
 * in fp32 (sums in double) and round their bf16 outputs to nearest even. Where every bf16 pointer of a call is
 * 16-byte aligned (and, for NHWC, c % 8 == 0) a thread moves 8 values with one 16-byte access; otherwise one at a
 * time, correct but slower. The reductions use no atomics: the same inputs at the same addresses give the same
 * bits. Batch norm in training and backward needs a device workspace of {@link #batchNormWorkspaceBytes} bytes.
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
            SCALE_CHANNELS_BACKWARD = "ich_nn_scale_channels_backward",
            SCALE_CHANNELS_INPUT_GRADIENT = "ich_nn_scale_channels_input_gradient", GLOBAL_AVERAGE_POOL = "ich_nn_global_average_pool",
            GLOBAL_AVERAGE_POOL_BACKWARD = "ich_nn_global_average_pool_backward", BCE_WITH_LOGITS = "ich_nn_bce_with_logits",
            ADAM_STEP = "ich_nn_adam_step", DEPTHWISE_FORWARD = "ich_nn_depthwise_forward",
            DEPTHWISE_BACKWARD_DATA = "ich_nn_depthwise_backward_data",
            DEPTHWISE_BACKWARD_FILTER = "ich_nn_depthwise_backward_filter", F32_TO_BF16 = "ich_nn_f32_to_bf16",
            BF16_TO_F32 = "ich_nn_bf16_to_f32", NCHW_TO_NHWC = "ich_nn_nchw_to_nhwc_f32",
            NHWC_TO_NCHW = "ich_nn_nhwc_to_nchw_f32", ADAM_MULTI = "ich_nn_adam_multi";
    /** Entry points of the bf16 path: bf16 element-wise ops, NHWC squeeze-excitation, pooling, batch norm and depthwise convolution. */
    public static final String SILU_BF16 = "ich_nn_silu_bf16", SILU_BACKWARD_BF16 = "ich_nn_silu_backward_bf16",
            ADD_BF16 = "ich_nn_add_bf16", MULTIPLY_BY_MASK_BF16 = "ich_nn_multiply_by_mask_bf16", SCALE_BF16 = "ich_nn_scale_bf16",
            SCALE_CHANNELS_NHWC = "ich_nn_scale_channels_nhwc", SCALE_CHANNELS_BACKWARD_NHWC = "ich_nn_scale_channels_backward_nhwc",
            SCALE_CHANNELS_INPUT_GRADIENT_NHWC = "ich_nn_scale_channels_input_gradient_nhwc",
            GLOBAL_AVERAGE_POOL_NHWC = "ich_nn_global_average_pool_nhwc",
            GLOBAL_AVERAGE_POOL_BACKWARD_NHWC = "ich_nn_global_average_pool_backward_nhwc",
            BATCH_NORM_STATS_NHWC = "ich_nn_batch_norm_stats_nhwc",
            BATCH_NORM_FINISH_TRAINING_NHWC = "ich_nn_batch_norm_finish_training_nhwc",
            BATCH_NORM_APPLY_NHWC = "ich_nn_batch_norm_apply_nhwc", BATCH_NORM_INFERENCE_NHWC = "ich_nn_batch_norm_inference_nhwc",
            BATCH_NORM_BACKWARD_SUMS_NHWC = "ich_nn_batch_norm_backward_sums_nhwc",
            BATCH_NORM_BACKWARD_FINISH_NHWC = "ich_nn_batch_norm_backward_finish_nhwc",
            BATCH_NORM_BACKWARD_APPLY_NHWC = "ich_nn_batch_norm_backward_apply_nhwc",
            NCHW_F32_TO_NHWC_BF16 = "ich_nn_nchw_f32_to_nhwc_bf16", NHWC_BF16_TO_NCHW_F32 = "ich_nn_nhwc_bf16_to_nchw_f32",
            DEPTHWISE_FORWARD_NHWC_3X3 = "ich_nn_depthwise_forward_nhwc_3x3",
            DEPTHWISE_FORWARD_NHWC_5X5 = "ich_nn_depthwise_forward_nhwc_5x5",
            DEPTHWISE_BACKWARD_DATA_NHWC_3X3 = "ich_nn_depthwise_backward_data_nhwc_3x3",
            DEPTHWISE_BACKWARD_DATA_NHWC_5X5 = "ich_nn_depthwise_backward_data_nhwc_5x5",
            DEPTHWISE_FILTER_SUMS_NHWC_3X3 = "ich_nn_depthwise_filter_sums_nhwc_3x3",
            DEPTHWISE_FILTER_SUMS_NHWC_5X5 = "ich_nn_depthwise_filter_sums_nhwc_5x5",
            DEPTHWISE_FILTER_FINISH_NHWC = "ich_nn_depthwise_filter_finish_nhwc",
            BATCH_NORM_SILU_APPLY_NHWC = "ich_nn_batch_norm_silu_apply_nhwc",
            BATCH_NORM_SILU_INFERENCE_NHWC = "ich_nn_batch_norm_silu_inference_nhwc",
            BATCH_NORM_SILU_BACKWARD_SUMS_NHWC = "ich_nn_batch_norm_silu_backward_sums_nhwc",
            BATCH_NORM_SILU_BACKWARD_APPLY_NHWC = "ich_nn_batch_norm_silu_backward_apply_nhwc",
            IM2COL_NHWC = "ich_nn_im2col_nhwc";
    /** Every entry point the Java side launches (KernelBuildTest checks each is in the fatbin). */
    public static final List<String> ENTRY_POINTS = List.of(SILU, SILU_BACKWARD, SIGMOID, SIGMOID_BACKWARD, ADD,
            MULTIPLY_BY_MASK, SCALE, SCALE_CHANNELS, SCALE_CHANNELS_BACKWARD, GLOBAL_AVERAGE_POOL,
            GLOBAL_AVERAGE_POOL_BACKWARD, BCE_WITH_LOGITS, ADAM_STEP, DEPTHWISE_FORWARD, DEPTHWISE_BACKWARD_DATA,
            DEPTHWISE_BACKWARD_FILTER, F32_TO_BF16, BF16_TO_F32, NCHW_TO_NHWC, NHWC_TO_NCHW, ADAM_MULTI, SILU_BF16,
            SILU_BACKWARD_BF16, ADD_BF16, MULTIPLY_BY_MASK_BF16, SCALE_BF16, SCALE_CHANNELS_NHWC, SCALE_CHANNELS_BACKWARD_NHWC,
            GLOBAL_AVERAGE_POOL_NHWC, GLOBAL_AVERAGE_POOL_BACKWARD_NHWC, BATCH_NORM_STATS_NHWC, BATCH_NORM_FINISH_TRAINING_NHWC,
            BATCH_NORM_APPLY_NHWC, BATCH_NORM_INFERENCE_NHWC, BATCH_NORM_BACKWARD_SUMS_NHWC, BATCH_NORM_BACKWARD_FINISH_NHWC,
            BATCH_NORM_BACKWARD_APPLY_NHWC, NCHW_F32_TO_NHWC_BF16, NHWC_BF16_TO_NCHW_F32, DEPTHWISE_FORWARD_NHWC_3X3,
            DEPTHWISE_FORWARD_NHWC_5X5, DEPTHWISE_BACKWARD_DATA_NHWC_3X3, DEPTHWISE_BACKWARD_DATA_NHWC_5X5,
            DEPTHWISE_FILTER_SUMS_NHWC_3X3, DEPTHWISE_FILTER_SUMS_NHWC_5X5, DEPTHWISE_FILTER_FINISH_NHWC,
            BATCH_NORM_SILU_APPLY_NHWC, BATCH_NORM_SILU_INFERENCE_NHWC, BATCH_NORM_SILU_BACKWARD_SUMS_NHWC,
            BATCH_NORM_SILU_BACKWARD_APPLY_NHWC, SCALE_CHANNELS_INPUT_GRADIENT, SCALE_CHANNELS_INPUT_GRADIENT_NHWC, IM2COL_NHWC);

    /**
     * Dynamic shared memory a depthwise block may use, in floats: 32 KiB, under the 48 KiB a launch gets without
     * opting in, with room for the backward-filter kernel's 2 KiB static reduction array.
     */
    static final int DEPTHWISE_SHARED_FLOATS = 8192;
    /** Positions a depthwise block aims at: 4 a thread, enough that a 3x3 tile's halo adds little (34^2 / 32^2). */
    static final int DEPTHWISE_TILE_POSITIONS = 1024;
    /** Widest tile: the kernels keep one column per thread and step over rows, so a tile row must fit a block. */
    static final int DEPTHWISE_TILE_COLUMNS = 32;
    /**
     * Most blocks of a tiled launch (the kernels stride over the tiles beyond it): far more than can be resident,
     * and more than the tiles of any B0 depthwise layer at batch 256, 256x256 (131 072 in the first stage).
     */
    static final int MAX_TILE_BLOCKS = 1 << 20;

    private final Module module;
    private final Module.Kernel silu, siluBackward, sigmoid, sigmoidBackward, add, multiplyByMask, scale, scaleChannels,
            scaleChannelsBackward, globalAveragePool, globalAveragePoolBackward, bceWithLogits, adamStep, depthwiseForward,
            depthwiseBackwardData, depthwiseBackwardFilter, f32ToBf16, bf16ToF32, nchwToNhwc, nhwcToNchw, adamMulti;
    private final Module.Kernel siluBf16, siluBackwardBf16, addBf16, multiplyByMaskBf16, scaleBf16, scaleChannelsNhwc,
            scaleChannelsBackwardNhwc, globalAveragePoolNhwc, globalAveragePoolBackwardNhwc, batchNormStatsNhwc,
            batchNormFinishTrainingNhwc, batchNormApplyNhwc, batchNormInferenceNhwc, batchNormBackwardSumsNhwc,
            batchNormBackwardFinishNhwc, batchNormBackwardApplyNhwc, nchwF32ToNhwcBf16, nhwcBf16ToNchwF32,
            depthwiseFilterFinishNhwc, im2colNhwc, batchNormSiluApplyNhwc, batchNormSiluInferenceNhwc, batchNormSiluBackwardSumsNhwc,
            batchNormSiluBackwardApplyNhwc, scaleChannelsInputGradient, scaleChannelsInputGradientNhwc;
    /** The NHWC depthwise passes by filter size: index 0 for 3x3, 1 for 5x5. */
    private final Module.Kernel[] depthwiseForwardNhwc = new Module.Kernel[2], depthwiseBackwardDataNhwc = new Module.Kernel[2],
            depthwiseFilterSumsNhwc = new Module.Kernel[2];

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
            Map<String, Module.Kernel> k = new HashMap<>();
            for (String name : ENTRY_POINTS) k.put(name, module.kernel(name));
            silu = k.get(SILU);
            siluBackward = k.get(SILU_BACKWARD);
            sigmoid = k.get(SIGMOID);
            sigmoidBackward = k.get(SIGMOID_BACKWARD);
            add = k.get(ADD);
            multiplyByMask = k.get(MULTIPLY_BY_MASK);
            scale = k.get(SCALE);
            scaleChannels = k.get(SCALE_CHANNELS);
            scaleChannelsBackward = k.get(SCALE_CHANNELS_BACKWARD);
            globalAveragePool = k.get(GLOBAL_AVERAGE_POOL);
            globalAveragePoolBackward = k.get(GLOBAL_AVERAGE_POOL_BACKWARD);
            bceWithLogits = k.get(BCE_WITH_LOGITS);
            adamStep = k.get(ADAM_STEP);
            depthwiseForward = k.get(DEPTHWISE_FORWARD);
            depthwiseBackwardData = k.get(DEPTHWISE_BACKWARD_DATA);
            depthwiseBackwardFilter = k.get(DEPTHWISE_BACKWARD_FILTER);
            f32ToBf16 = k.get(F32_TO_BF16);
            bf16ToF32 = k.get(BF16_TO_F32);
            nchwToNhwc = k.get(NCHW_TO_NHWC);
            nhwcToNchw = k.get(NHWC_TO_NCHW);
            adamMulti = k.get(ADAM_MULTI);
            siluBf16 = k.get(SILU_BF16);
            siluBackwardBf16 = k.get(SILU_BACKWARD_BF16);
            addBf16 = k.get(ADD_BF16);
            multiplyByMaskBf16 = k.get(MULTIPLY_BY_MASK_BF16);
            scaleBf16 = k.get(SCALE_BF16);
            scaleChannelsNhwc = k.get(SCALE_CHANNELS_NHWC);
            scaleChannelsBackwardNhwc = k.get(SCALE_CHANNELS_BACKWARD_NHWC);
            globalAveragePoolNhwc = k.get(GLOBAL_AVERAGE_POOL_NHWC);
            globalAveragePoolBackwardNhwc = k.get(GLOBAL_AVERAGE_POOL_BACKWARD_NHWC);
            batchNormStatsNhwc = k.get(BATCH_NORM_STATS_NHWC);
            batchNormFinishTrainingNhwc = k.get(BATCH_NORM_FINISH_TRAINING_NHWC);
            batchNormApplyNhwc = k.get(BATCH_NORM_APPLY_NHWC);
            batchNormInferenceNhwc = k.get(BATCH_NORM_INFERENCE_NHWC);
            batchNormBackwardSumsNhwc = k.get(BATCH_NORM_BACKWARD_SUMS_NHWC);
            batchNormBackwardFinishNhwc = k.get(BATCH_NORM_BACKWARD_FINISH_NHWC);
            batchNormBackwardApplyNhwc = k.get(BATCH_NORM_BACKWARD_APPLY_NHWC);
            nchwF32ToNhwcBf16 = k.get(NCHW_F32_TO_NHWC_BF16);
            nhwcBf16ToNchwF32 = k.get(NHWC_BF16_TO_NCHW_F32);
            depthwiseForwardNhwc[0] = k.get(DEPTHWISE_FORWARD_NHWC_3X3);
            depthwiseForwardNhwc[1] = k.get(DEPTHWISE_FORWARD_NHWC_5X5);
            depthwiseBackwardDataNhwc[0] = k.get(DEPTHWISE_BACKWARD_DATA_NHWC_3X3);
            depthwiseBackwardDataNhwc[1] = k.get(DEPTHWISE_BACKWARD_DATA_NHWC_5X5);
            depthwiseFilterSumsNhwc[0] = k.get(DEPTHWISE_FILTER_SUMS_NHWC_3X3);
            depthwiseFilterSumsNhwc[1] = k.get(DEPTHWISE_FILTER_SUMS_NHWC_5X5);
            depthwiseFilterFinishNhwc = k.get(DEPTHWISE_FILTER_FINISH_NHWC);
            im2colNhwc = k.get(IM2COL_NHWC);
            batchNormSiluApplyNhwc = k.get(BATCH_NORM_SILU_APPLY_NHWC);
            batchNormSiluInferenceNhwc = k.get(BATCH_NORM_SILU_INFERENCE_NHWC);
            batchNormSiluBackwardSumsNhwc = k.get(BATCH_NORM_SILU_BACKWARD_SUMS_NHWC);
            batchNormSiluBackwardApplyNhwc = k.get(BATCH_NORM_SILU_BACKWARD_APPLY_NHWC);
            scaleChannelsInputGradient = k.get(SCALE_CHANNELS_INPUT_GRADIENT);
            scaleChannelsInputGradientNhwc = k.get(SCALE_CHANNELS_INPUT_GRADIENT_NHWC);
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

    /** dx = dy * s unless dx is 0 (no pointer: ds alone); ds[p] = sum over j of dy * x (in double). Deterministic. */
    public void scaleChannelsBackward(Stream stream, long x, long s, long dy, long dx, long ds, long planes, long spatial) {
        elements("scaleChannelsBackward", planes, spatial);
        perPlane(stream, scaleChannelsBackward, planes, x, s, dy, dx, ds, planes, spatial);
    }

    /** dx[p, j] = dy[p, j] * s[p] + dPooled[p] / spatial: the SE input's gradient in one pass. dx may be dy. */
    public void scaleChannelsInputGradient(Stream stream, long dy, long s, long dPooled, long dx, long planes, long spatial) {
        long n = elements("scaleChannelsInputGradient", planes, spatial);
        elementwise(stream, scaleChannelsInputGradient, n, dy, s, dPooled, dx, n, spatial);
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
        float[] s = adamScalars("adamStep", step, lr, beta1, beta2, eps, weightDecay, decoupled);
        elementwise(stream, adamStep, n, param, grad, m, v, n, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    }

    /**
     * The float scalars of an Adam step in the kernels' order: beta1, beta2, eps, step size lr / (1 - beta1^step),
     * 1 / sqrt(1 - beta2^step), the L2 coefficient (weight decay for Adam, 0 for AdamW) and the decay factor
     * (1 - lr * weight decay for AdamW, 1 for Adam), computed in double and rounded once, as the CPU backend does.
     */
    static float[] adamScalars(String op, long step, double lr, double beta1, double beta2, double eps, double weightDecay,
                               boolean decoupled) {
        if (step < 1) throw new IllegalArgumentException(op + ": step counts from 1, got " + step);
        float stepSize = (float) (lr / (1 - Math.pow(beta1, step)));
        float invSqrtBias2 = (float) (1 / Math.sqrt(1 - Math.pow(beta2, step)));
        float l2 = decoupled ? 0f : (float) weightDecay;
        float decay = decoupled ? (float) (1 - lr * weightDecay) : 1f;
        return new float[]{(float) beta1, (float) beta2, (float) eps, stepSize, invSqrtBias2, l2, decay};
    }

    /** One tensor of a multi-tensor Adam step: the device addresses of its parameter, gradient and moments, n floats each. */
    public record AdamPointers(long param, long grad, long m, long v, long n) {
    }

    /**
     * Elements of a chunk of the multi-tensor Adam kernel, the unit a block takes: 16 per thread, so that the
     * table lookup per chunk is noise, while B0's 4.0 M trained floats still make 1143 chunks, a wave of blocks.
     */
    public static final int ADAM_CHUNK = 4096;
    /** Bytes of the kernel's scalar struct (7 floats) and of the slot each takes in device and pinned memory. */
    static final int ADAM_SCALARS_BYTES = 28, ADAM_SCALARS_SLOT = 32;
    /** Bytes of one tensor's record in the table: four pointers, n and its first chunk, as struct AdamTensor. */
    static final int ADAM_RECORD_BYTES = 48;
    /** Pinned scalar structs an {@link AdamTable} cycles through: how many steps the host may queue ahead. */
    static final int ADAM_SCALAR_SLOTS = 4;

    /**
     * Where each tensor's chunks start and which tensor each chunk belongs to: tensor t owns chunks
     * firstChunk[t] .. firstChunk[t] + ceil(n / chunk) - 1, and chunkTensor[c] = t for each of them.
     */
    record AdamLayout(long[] firstChunk, int[] chunkTensor) {
        int chunks() {
            return chunkTensor.length;
        }
    }

    static AdamLayout adamLayout(List<AdamPointers> tensors, int chunk) {
        long[] first = new long[tensors.size()];
        long chunks = 0;
        for (int t = 0; t < first.length; t++) {
            first[t] = chunks;
            chunks += ceilDiv(tensors.get(t).n(), chunk);
        }
        if (chunks > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("adamTable: " + chunks + " chunks of " + chunk + " elements are too many");
        }
        int[] chunkTensor = new int[(int) chunks];
        for (int t = 0; t < first.length; t++) {
            long end = t + 1 < first.length ? first[t + 1] : chunks;
            java.util.Arrays.fill(chunkTensor, (int) first[t], (int) end, t);
        }
        return new AdamLayout(first, chunkTensor);
    }

    /**
     * Checks a multi-tensor Adam table: at least one tensor, each of at least one element with no null pointer,
     * and no array that is written (a parameter or a moment) overlapping any other array of the table, since
     * the kernel updates all of them at once in no fixed order. Gradients, only read, may overlap each other.
     */
    static void checkAdamTensors(List<AdamPointers> tensors) {
        String op = "adamTable";
        if (tensors.isEmpty()) throw new IllegalArgumentException(op + ": no tensors");
        record Range(long start, long end, boolean written, int tensor, String what) {
        }
        List<Range> ranges = new ArrayList<>(4 * tensors.size());
        for (int t = 0; t < tensors.size(); t++) {
            AdamPointers a = tensors.get(t);
            if (a == null) throw new IllegalArgumentException(op + ": tensor " + t + " is null");
            if (a.n() < 1) throw new IllegalArgumentException(op + ": tensor " + t + " has " + a.n() + " elements");
            if (a.param() == 0 || a.grad() == 0 || a.m() == 0 || a.v() == 0) {
                throw new IllegalArgumentException(op + ": tensor " + t + " has a null device pointer");
            }
            long bytes = Math.multiplyExact(a.n(), Float.BYTES);
            ranges.add(new Range(a.param(), a.param() + bytes, true, t, "parameter"));
            ranges.add(new Range(a.grad(), a.grad() + bytes, false, t, "gradient"));
            ranges.add(new Range(a.m(), a.m() + bytes, true, t, "first moment"));
            ranges.add(new Range(a.v(), a.v() + bytes, true, t, "second moment"));
        }
        ranges.sort((x, y) -> Long.compareUnsigned(x.start(), y.start()));
        // Sorted by start, a range overlaps an earlier one exactly when it starts before that one's end; it
        // conflicts when either is written. So it is enough to track the furthest-reaching range so far, and the
        // furthest-reaching written one.
        Range furthest = null, furthestWritten = null;
        for (Range r : ranges) {
            Range hit = null;
            if (furthestWritten != null && Long.compareUnsigned(r.start(), furthestWritten.end()) < 0) hit = furthestWritten;
            else if (r.written() && furthest != null && Long.compareUnsigned(r.start(), furthest.end()) < 0) hit = furthest;
            if (hit != null) {
                throw new IllegalArgumentException(op + ": the " + r.what() + " of tensor " + r.tensor() + " overlaps the "
                        + hit.what() + " of tensor " + hit.tensor());
            }
            if (furthest == null || Long.compareUnsigned(r.end(), furthest.end()) > 0) furthest = r;
            if (r.written() && (furthestWritten == null || Long.compareUnsigned(r.end(), furthestWritten.end()) > 0)) {
                furthestWritten = r;
            }
        }
    }

    /**
     * The table's device image: the scalar slot ({@link #ADAM_SCALARS_SLOT} bytes, left for
     * {@link AdamTable#setScalars}), one {@link #ADAM_RECORD_BYTES}-byte record per tensor (param, grad, m, v,
     * n, first chunk), then one int per chunk: its tensor. Little-endian, as the GPU reads it.
     */
    static MemorySegment adamTableImage(Arena arena, List<AdamPointers> tensors, AdamLayout layout) {
        long recordsAt = ADAM_SCALARS_SLOT, chunksAt = recordsAt + (long) ADAM_RECORD_BYTES * tensors.size();
        MemorySegment image = arena.allocate(chunksAt + (long) Integer.BYTES * layout.chunks(), 8);
        for (int t = 0; t < tensors.size(); t++) {
            AdamPointers a = tensors.get(t);
            long at = recordsAt + (long) ADAM_RECORD_BYTES * t;
            long[] fields = {a.param(), a.grad(), a.m(), a.v(), a.n(), layout.firstChunk()[t]};
            for (int f = 0; f < fields.length; f++) image.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 8L * f, fields[f]);
        }
        MemorySegment.copy(layout.chunkTensor(), 0, image, ValueLayout.JAVA_INT_UNALIGNED, chunksAt, layout.chunks());
        return image;
    }

    /**
     * A device table of {@code tensors} for {@link AdamTable#step}, uploaded on {@code stream} (the upload is
     * queued there, so launches on the same stream see it). The tensors must stay allocated while the table is used.
     *
     * @throws IllegalArgumentException as {@link #checkAdamTensors} says
     */
    public AdamTable adamTable(Context context, Stream stream, List<AdamPointers> tensors) {
        List<AdamPointers> copy = List.copyOf(tensors);
        checkAdamTensors(copy);
        return new AdamTable(adamMulti, context, stream, copy);
    }

    /**
     * A fixed list of parameter tensors updated by one launch per Adam step ({@code ich_nn_adam_multi}), with the
     * results of {@link #adamStep} on each, bit for bit.
     *
     * <p>The per-step scalars (learning rate, bias corrections, weight decay) live in device memory: {@link
     * #setScalars} queues an asynchronous copy of them from pinned host memory, and {@link #launch} only names
     * their address. So a launch captured into a CUDA graph ({@link Stream#capture}) runs with whatever
     * {@code setScalars} queued on the stream before each replay: capture {@code launch} alone, and call
     * {@code setScalars} on the same stream, outside the capture, before every {@link Graph#launch}.
     *
     * <p>Pinned memory: the copy reads the host struct when the stream reaches it, so the struct must not be
     * rewritten before then. {@code setScalars} takes {@link #ADAM_SCALAR_SLOTS} structs in turn ({@link
     * PinnedTurns}), each with an event recorded after its copy, and waits for a struct's event before rewriting it:
     * the host may queue that many steps ahead of the GPU and then waits, never corrupting a queued step. That is also why {@code
     * setScalars} must not be captured: an event recorded in a capture cannot be waited on afterwards, and a
     * captured copy would read one struct at every replay while the host rewrites them in turn.
     *
     * <p>Not thread-safe; use it where its context is current. Before {@link #close}, make sure no queued launch
     * still reads the table (synchronize the stream it was launched on).
     */
    public static final class AdamTable implements AutoCloseable {
        /** Bytes of one step's scalars in host memory: what {@link #copyScalars} reads. */
        public static final int SCALARS_BYTES = ADAM_SCALARS_BYTES;

        private final Module.Kernel kernel;
        private final List<AdamPointers> tensors;
        private final int chunks;
        private final long elements;
        private final DeviceBuffer table;
        private final PinnedTurns scalars;
        private boolean scalarsSet;
        private boolean closed;

        private AdamTable(Module.Kernel kernel, Context context, Stream stream, List<AdamPointers> tensors) {
            this.kernel = kernel;
            this.tensors = tensors;
            AdamLayout layout = adamLayout(tensors, ADAM_CHUNK);
            this.chunks = layout.chunks();
            this.elements = tensors.stream().mapToLong(AdamPointers::n).sum();
            DeviceBuffer t = null;
            PinnedTurns s = null;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment image = adamTableImage(arena, tensors, layout);
                t = context.allocate(image.byteSize());
                s = new PinnedTurns(context, ADAM_SCALAR_SLOTS, ADAM_SCALARS_SLOT);
                // From pageable memory the driver stages the bytes before returning, so the arena may close next.
                stream.copyToDevice(image.asSlice(ADAM_SCALARS_SLOT), t.pointer() + ADAM_SCALARS_SLOT,
                        image.byteSize() - ADAM_SCALARS_SLOT);
            } catch (RuntimeException e) {
                if (s != null) s.close();
                if (t != null) t.close();
                throw e;
            }
            this.table = t;
            this.scalars = s;
        }

        /** The tensors, in table order. */
        public List<AdamPointers> tensors() {
            return tensors;
        }

        /** Floats updated per step: the tensors' sizes summed. */
        public long elements() {
            return elements;
        }

        /** Chunks of {@link #ADAM_CHUNK} elements (each tensor's last one shorter): the blocks' work items. */
        public int chunks() {
            return chunks;
        }

        /**
         * Queues the copy of one step's scalars (the arguments of {@link NnKernels#adamStep}) into the table's
         * device struct on {@code stream}; launches queued after it on that stream use them. Waits only when
         * {@link #ADAM_SCALAR_SLOTS} earlier copies are still queued. Not inside a stream capture (see the class
         * comment).
         */
        public void setScalars(Stream stream, long step, double lr, double beta1, double beta2, double eps,
                               double weightDecay, boolean decoupled) {
            checkOpen();
            float[] values = adamScalars("adamTable.setScalars", step, lr, beta1, beta2, eps, weightDecay, decoupled);
            scalars.next(); // waits for the copy that last read this struct, if it has not run
            copy(stream, scalars.take(SCALARS_BYTES), values);
            scalars.copiesQueued(stream);
        }

        /**
         * {@link #setScalars} from pinned memory the caller turns: queues the copy of one step's scalars from
         * {@code pinned} (at least {@link #SCALARS_BYTES} bytes of pinned host memory, left unchanged until the
         * copy has run) and waits for nothing. So it may be called while this thread captures another stream, where
         * the driver refuses the event wait of {@code setScalars} (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED).
         */
        public void copyScalars(Stream stream, MemorySegment pinned, long step, double lr, double beta1, double beta2,
                                double eps, double weightDecay, boolean decoupled) {
            checkOpen();
            if (pinned.byteSize() < SCALARS_BYTES) {
                throw new IllegalArgumentException("adamTable.copyScalars: " + pinned.byteSize() + " bytes, the scalars take " + SCALARS_BYTES);
            }
            copy(stream, pinned, adamScalars("adamTable.copyScalars", step, lr, beta1, beta2, eps, weightDecay, decoupled));
        }

        private void copy(Stream stream, MemorySegment pinned, float[] values) {
            MemorySegment.copy(values, 0, pinned, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, values.length);
            stream.copyToDevice(pinned, table.pointer(), SCALARS_BYTES);
            scalarsSet = true;
        }

        /**
         * Queues the update of every tensor with the scalars the stream last copied in; capturable.
         *
         * @throws IllegalStateException before the first {@link #setScalars}
         */
        public void launch(Stream stream) {
            checkOpen();
            if (!scalarsSet) throw new IllegalStateException("adamTable: launch before any setScalars");
            long base = table.pointer();
            long records = base + ADAM_SCALARS_SLOT, chunkTensor = records + (long) ADAM_RECORD_BYTES * tensors.size();
            stream.launch(kernel, Stream.Dim3.of(Math.min(MAX_BLOCKS, chunks)), Stream.Dim3.of(BLOCK), 0, records,
                    chunkTensor, (long) chunks, (long) ADAM_CHUNK, base);
        }

        /** The device address of the table (scalars, then records): what identifies a captured launch. */
        public long devicePointer() {
            checkOpen();
            return table.pointer();
        }

        /** {@link #setScalars} then {@link #launch}: one Adam step of every tensor. */
        public void step(Stream stream, long step, double lr, double beta1, double beta2, double eps, double weightDecay,
                         boolean decoupled) {
            setScalars(stream, step, lr, beta1, beta2, eps, weightDecay, decoupled);
            launch(stream);
        }

        private void checkOpen() {
            if (closed) throw new IllegalStateException("adamTable: closed");
        }

        /** Waits for the queued scalar copies (they read the pinned structs), then frees everything. */
        @Override
        public void close() {
            if (closed) return;
            closed = true;
            try {
                scalars.close(); // waits for the queued scalar copies first
            } finally {
                table.close();
            }
        }
    }

    // ---- depthwise convolution (groups == c == k): x [n, c, h, w], w [c, 1, r, s], y [n, c, p, q] ----

    /**
     * y = the depthwise convolution of x with w, as {@code Backend.conv2dForward} for a depthwise {@code g}. y must
     * not overlap x or w.
     *
     * @throws IllegalArgumentException when {@link #supportsDepthwise} is false for g, a pointer is 0, or the
     *                                  output overlaps an input
     */
    public void depthwiseForward(Stream stream, ConvGeometry g, long x, long w, long y) {
        checkDepthwise("depthwiseForward", g, x, inputBytes(g), w, weightBytes(g), y, outputBytes(g));
        launchDepthwise(stream, depthwiseForward, DepthwisePass.FORWARD, g, x, w, y, (long) g.n() * g.c());
    }

    /** dx = d loss / d x from dy and w, as {@code Backend.conv2dBackwardData}. dx must not overlap dy or w. */
    public void depthwiseBackwardData(Stream stream, ConvGeometry g, long dy, long w, long dx) {
        checkDepthwise("depthwiseBackwardData", g, dy, outputBytes(g), w, weightBytes(g), dx, inputBytes(g));
        launchDepthwise(stream, depthwiseBackwardData, DepthwisePass.BACKWARD_DATA, g, dy, w, dx, (long) g.n() * g.c());
    }

    /**
     * dw = d loss / d w from the forward input x and dy, as {@code Backend.conv2dBackwardFilter}: summed over the
     * batch and the outputs in double, one block per channel, no atomics, so it repeats bit for bit. dw must not
     * overlap x or dy.
     */
    public void depthwiseBackwardFilter(Stream stream, ConvGeometry g, long x, long dy, long dw) {
        checkDepthwise("depthwiseBackwardFilter", g, x, inputBytes(g), dy, outputBytes(g), dw, weightBytes(g));
        DepthwiseTiling t = depthwiseTiling(g, DepthwisePass.BACKWARD_FILTER);
        stream.launch(depthwiseBackwardFilter, Stream.Dim3.of((int) Math.min(MAX_PLANE_BLOCKS, g.c())), Stream.Dim3.of(BLOCK),
                t.sharedBytes(), depthwiseArgs(g, t, x, dy, dw, g.n()));
    }

    /**
     * Whether the depthwise kernels take {@code g}: groups == c == k, at most {@link #BLOCK} taps (the filter
     * gradient gives each tap its own threads) and a tiling of every pass that fits the shared memory. Any
     * stride and padding do: the tiling shrinks to a single position if it must, whose window of at most 256
     * taps always fits.
     */
    public static boolean supportsDepthwise(ConvGeometry g) {
        if (!g.depthwise() || (long) g.r() * g.s() > BLOCK) return false;
        for (DepthwisePass pass : DepthwisePass.values()) if (depthwiseTiling(g, pass) == null) return false;
        return true;
    }

    /** The depthwise kernels, which tile different planes and lay out their shared memory differently. */
    enum DepthwisePass { FORWARD, BACKWARD_DATA, BACKWARD_FILTER }

    /**
     * How a depthwise launch splits its work. A block takes {@code group} planes (images of one channel for the
     * filter gradient) and of each a tile of {@code rows x cols} positions: of y for the forward pass and the
     * filter gradient, of dx for the data gradient; {@code group} > 1 only when the tile is the whole plane.
     * {@code sharedFloats} is the dynamic shared memory of that tiling, by the layout documented in nn.cu.
     */
    record DepthwiseTiling(int group, int rows, int cols, long sharedFloats) {
        int sharedBytes() {
            return Math.toIntExact(sharedFloats * Float.BYTES);
        }
    }

    /**
     * The tiling of one pass: tiles of up to {@link #DEPTHWISE_TILE_COLUMNS} columns and
     * {@link #DEPTHWISE_TILE_POSITIONS} positions, whole small planes packed to about that many positions a
     * block, then cut (fewer planes, then half the rows, then half the columns) until the shared memory fits
     * {@link #DEPTHWISE_SHARED_FLOATS}; null when not even one position's window fits.
     */
    static DepthwiseTiling depthwiseTiling(ConvGeometry g, DepthwisePass pass) {
        boolean data = pass == DepthwisePass.BACKWARD_DATA;
        int height = data ? g.h() : g.p(), width = data ? g.w() : g.q();
        long planes = pass == DepthwisePass.BACKWARD_FILTER ? g.n() : (long) g.n() * g.c();
        int cols = Math.min(width, DEPTHWISE_TILE_COLUMNS);
        int rows = Math.min(height, Math.max(1, DEPTHWISE_TILE_POSITIONS / cols));
        int group = rows == height && cols == width
                ? (int) Math.min(planes, Math.max(1, DEPTHWISE_TILE_POSITIONS / (rows * cols))) : 1;
        while (true) {
            long one = depthwiseSharedFloats(g, pass, rows, cols);
            if (one <= DEPTHWISE_SHARED_FLOATS) {
                group = (int) Math.min(group, DEPTHWISE_SHARED_FLOATS / one);
                return new DepthwiseTiling(group, rows, cols, group * one);
            }
            group = 1;
            if (rows > 1) rows = (rows + 1) / 2;
            else if (cols > 1) cols = (cols + 1) / 2;
            else return null;
        }
    }

    /** Shared floats of one plane's tile of rows x cols positions, by the kernels' layouts (nn.cu). */
    static long depthwiseSharedFloats(ConvGeometry g, DepthwisePass pass, int rows, int cols) {
        long taps = (long) g.r() * g.s();
        long inputTile = ((long) (rows - 1) * g.strideH() + g.r()) * ((long) (cols - 1) * g.strideW() + g.s());
        return switch (pass) {
            case FORWARD -> taps + inputTile;
            case BACKWARD_DATA -> taps + (((long) rows + g.r() - 2) / g.strideH() + 2) * (((long) cols + g.s() - 2) / g.strideW() + 2);
            case BACKWARD_FILTER -> 2L * rows * cols + inputTile; // dy values and window offsets, then x
        };
    }

    /** Blocks of a tiled depthwise launch over {@code planes} planes: one per tile up to {@link #MAX_TILE_BLOCKS}. */
    static int depthwiseBlocks(ConvGeometry g, DepthwisePass pass, DepthwiseTiling t, long planes) {
        boolean data = pass == DepthwisePass.BACKWARD_DATA;
        long height = data ? g.h() : g.p(), width = data ? g.w() : g.q();
        long tiles = ceilDiv(planes, t.group()) * ceilDiv(height, t.rows()) * ceilDiv(width, t.cols());
        return (int) Math.min(MAX_TILE_BLOCKS, tiles);
    }

    private static void launchDepthwise(Stream stream, Module.Kernel kernel, DepthwisePass pass, ConvGeometry g, long in,
                                        long w, long out, long planes) {
        DepthwiseTiling t = depthwiseTiling(g, pass);
        stream.launch(kernel, Stream.Dim3.of(depthwiseBlocks(g, pass, t, planes)), Stream.Dim3.of(BLOCK), t.sharedBytes(),
                depthwiseArgs(g, t, in, w, out, planes));
    }

    /** The kernels' common arguments: three pointers, then i64 sizes n-or-planes, c, h, w, p, q, then int r, s, strides, pads, tiling. */
    private static Object[] depthwiseArgs(ConvGeometry g, DepthwiseTiling t, long a, long b, long out, long count) {
        return new Object[]{a, b, out, count, (long) g.c(), (long) g.h(), (long) g.w(), (long) g.p(), (long) g.q(),
                g.r(), g.s(), g.strideH(), g.strideW(), g.padH(), g.padW(), t.group(), t.rows(), t.cols()};
    }

    /**
     * The host-side checks of a depthwise launch: a shape the kernels take, no null pointer, and an output that
     * overlaps neither input (blocks read the inputs of their neighbours' tiles while writing their own).
     */
    static void checkDepthwise(String op, ConvGeometry g, long a, long aBytes, long b, long bBytes, long out, long outBytes) {
        if (g == null) throw new IllegalArgumentException(op + ": no geometry");
        if (!g.depthwise()) {
            throw new IllegalArgumentException(op + ": not a depthwise convolution (needs groups == c == k): " + g);
        }
        if (!supportsDepthwise(g)) {
            throw new IllegalArgumentException(op + ": the depthwise kernels do not take " + g + ": r * s = "
                    + (long) g.r() * g.s() + " taps, at most " + BLOCK + " allowed");
        }
        if (a == 0 || b == 0 || out == 0) throw new IllegalArgumentException(op + ": null device pointer");
        if (overlaps(out, outBytes, a, aBytes) || overlaps(out, outBytes, b, bBytes)) {
            throw new IllegalArgumentException(op + ": the output overlaps an input");
        }
    }

    private static long inputBytes(ConvGeometry g) {
        return Math.multiplyExact((long) g.n() * g.c(), (long) g.h() * g.w() * Float.BYTES);
    }

    private static long weightBytes(ConvGeometry g) {
        return (long) g.c() * g.r() * g.s() * Float.BYTES;
    }

    private static long outputBytes(ConvGeometry g) {
        return Math.multiplyExact((long) g.n() * g.c(), (long) g.p() * g.q() * Float.BYTES);
    }

    /** Whether device ranges [a, a + aBytes) and [b, b + bBytes) share a byte (addresses compared unsigned). */
    static boolean overlaps(long a, long aBytes, long b, long bBytes) {
        return aBytes > 0 && bBytes > 0 && Long.compareUnsigned(a, b + bBytes) < 0 && Long.compareUnsigned(b, a + aBytes) < 0;
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    // ---- conversions of the bf16 path ----

    /**
     * y = x rounded to bf16 (to nearest, ties to even; a NaN stays a NaN, quietened) over {@code n} elements;
     * y holds n 16-bit values and must not overlap x.
     */
    public void f32ToBf16(Stream stream, long x, long y, long n) {
        checkConversion("f32ToBf16", x, Float.BYTES, y, 2, n);
        elementwise(stream, f32ToBf16, n, x, y, n);
    }

    /** y = x widened from bf16 (exact) over {@code n} elements; must not overlap. */
    public void bf16ToF32(Stream stream, long x, long y, long n) {
        checkConversion("bf16ToF32", x, 2, y, Float.BYTES, n);
        elementwise(stream, bf16ToF32, n, x, y, n);
    }

    /** y [n, h, w, c] = x [n, c, h, w], fp32; y must not overlap x. */
    public void nchwToNhwc(Stream stream, long x, long y, int n, int c, int h, int w) {
        transpose(stream, nchwToNhwc, "nchwToNhwc", x, y, n, c, h, w);
    }

    /** y [n, c, h, w] = x [n, h, w, c], fp32; y must not overlap x. */
    public void nhwcToNchw(Stream stream, long x, long y, int n, int c, int h, int w) {
        transpose(stream, nhwcToNchw, "nhwcToNchw", x, y, n, c, h, w);
    }

    static void checkConversion(String op, long x, int xElementBytes, long y, int yElementBytes, long n) {
        if (n < 0) throw new IllegalArgumentException(op + ": " + n + " elements");
        if (n > 0 && (x == 0 || y == 0)) throw new IllegalArgumentException(op + ": null device pointer");
        if (overlaps(x, Math.multiplyExact(n, xElementBytes), y, Math.multiplyExact(n, yElementBytes))) {
            throw new IllegalArgumentException(op + ": output overlaps the input (threads would overwrite values not yet read)");
        }
    }

    /** Checks a transpose's arguments and returns its element count. */
    static long checkTranspose(String op, long x, long y, int n, int c, int h, int w) {
        return checkTranspose(op, x, Float.BYTES, y, Float.BYTES, n, c, h, w);
    }

    /** Checks a transpose's arguments, x and y with elements of the given bytes, and returns its element count. */
    static long checkTranspose(String op, long x, int xElementBytes, long y, int yElementBytes, int n, int c, int h, int w) {
        if (n < 1 || c < 1 || h < 1 || w < 1) {
            throw new IllegalArgumentException(op + ": sizes must be positive: n " + n + ", c " + c + ", h " + h + ", w " + w);
        }
        long elements = Math.multiplyExact((long) n * c, (long) h * w);
        if (x == 0 || y == 0) throw new IllegalArgumentException(op + ": null device pointer");
        if (overlaps(x, Math.multiplyExact(elements, xElementBytes), y, Math.multiplyExact(elements, yElementBytes))) {
            throw new IllegalArgumentException(op + ": output overlaps the input (a transpose cannot run in place)");
        }
        return elements;
    }

    /** Blocks of a transpose: one per 32 x 32 tile of each image's c x hw matrix, up to {@link #MAX_TILE_BLOCKS}. */
    static int transposeBlocks(int n, int c, long hw) {
        return (int) Math.min(MAX_TILE_BLOCKS, n * ceilDiv(c, 32) * ceilDiv(hw, 32));
    }

    private static void transpose(Stream stream, Module.Kernel kernel, String op, long x, long y, int n, int c, int h, int w) {
        checkTranspose(op, x, y, n, c, h, w);
        long hw = (long) h * w;
        stream.launch(kernel, Stream.Dim3.of(transposeBlocks(n, c, hw)), Stream.Dim3.of(BLOCK), 0, x, y, (long) n, (long) c, hw);
    }

    // ---- the bf16 path: bf16 activations (NHWC where the layout matters), fp32 arithmetic, fp32 per-channel tensors ----

    /**
     * Most channel groups (8 channels, or 1 when the 16-byte path is off) the threads of one row lane of an NHWC
     * kernel's block cover: with at most 32 a block has at least 8 lanes, and at least 7/8 of its threads work.
     */
    static final int NHWC_MAX_SLICE_GROUPS = 32;
    /** Rows each lane takes per work item of the element-wise NHWC kernels: 8 loads a thread per item's set-up. */
    static final int NHWC_ROWS_PER_LANE = 8;
    /**
     * Fewest rows of a batch-norm chunk, the unit whose partial sums pass 1 writes: 16 bytes of sums per chunk and
     * channel stay under 1/16 of the 2 bytes per element that pass 1 reads.
     */
    static final int BATCH_NORM_MIN_CHUNK_ROWS = 128;
    /** Most batch-norm chunks: what pass 2 adds per channel (32 KB), and about two waves of pass-1 blocks at small c. */
    static final int BATCH_NORM_MAX_CHUNKS = 2048;

    /** y = x * sigmoid(x) over {@code n} bf16 values; y may be x. */
    public void siluBf16(Stream stream, long x, long y, long n) {
        checkElementwiseBf16("siluBf16", n, y, x);
        int vec = bf16Vec(x, y);
        launchBf16(stream, siluBf16, n, vec, x, y, n, vec);
    }

    /** dx = dy * d silu(x) / dx over {@code n} bf16 values; dx may be x or dy. */
    public void siluBackwardBf16(Stream stream, long x, long dy, long dx, long n) {
        checkElementwiseBf16("siluBackwardBf16", n, dx, x, dy);
        int vec = bf16Vec(x, dy, dx);
        launchBf16(stream, siluBackwardBf16, n, vec, x, dy, dx, n, vec);
    }

    /** y = a + b over {@code n} bf16 values; y may be a or b. */
    public void addBf16(Stream stream, long a, long b, long y, long n) {
        addBf16("addBf16", stream, a, b, y, n);
    }

    /** into += from over {@code n} bf16 values. */
    public void accumulateBf16(Stream stream, long into, long from, long n) {
        addBf16("accumulateBf16", stream, into, from, into, n);
    }

    private void addBf16(String op, Stream stream, long a, long b, long y, long n) {
        checkElementwiseBf16(op, n, y, a, b);
        int vec = bf16Vec(a, b, y);
        launchBf16(stream, addBf16, n, vec, a, b, y, n, vec);
    }

    /**
     * y = x * mask over {@code n} bf16 values, the mask fp32 with one value per {@code perSample} elements, as
     * {@link #multiplyByMask}; y may be x.
     */
    public void multiplyByMaskBf16(Stream stream, long x, long mask, long y, long n, long perSample) {
        String op = "multiplyByMaskBf16";
        if (perSample < 1 || n % perSample != 0) {
            throw new IllegalArgumentException(op + ": " + n + " elements are not whole samples of " + perSample);
        }
        checkElementwiseBf16(op, n, y, x);
        if (n == 0) return;
        nonNull(op, mask);
        disjoint(op, "y", y, 2 * n, "the mask", mask, n / perSample * Float.BYTES);
        int vec = bf16Vec(x, y);
        launchBf16(stream, multiplyByMaskBf16, n, vec, x, mask, y, n, perSample, vec);
    }

    /** t *= factor over {@code n} bf16 values, in place. */
    public void scaleBf16(Stream stream, long t, float factor, long n) {
        checkElementwiseBf16("scaleBf16", n, t);
        int vec = bf16Vec(t);
        launchBf16(stream, scaleBf16, n, vec, t, factor, n, vec);
    }

    /**
     * The checks of a bf16 element-wise op over {@code n} values: n >= 0 and, when n > 0, no null pointer and an
     * output that is each input exactly (a thread reads its elements before writing them) or apart from it.
     */
    static void checkElementwiseBf16(String op, long n, long out, long... inputs) {
        if (n < 0) throw new IllegalArgumentException(op + ": " + n + " elements");
        if (n == 0) return;
        nonNull(op, out);
        nonNull(op, inputs);
        long bytes = Math.multiplyExact(n, 2L);
        for (long in : inputs) mayAlias(op, "an input", out, in, bytes);
    }

    /** 8 (16-byte loads and stores) when every pointer is 16-byte aligned, else 1 (any alignment, slower). */
    static int bf16Vec(long... pointers) {
        for (long p : pointers) if ((p & 15) != 0) return 1;
        return 8;
    }

    private static void launchBf16(Stream stream, Module.Kernel kernel, long n, int vec, Object... args) {
        if (n == 0) return;
        stream.launch(kernel, Stream.Dim3.of(elementBlocks(vec == 8 ? ceilDiv(n, 8) : n)), Stream.Dim3.of(BLOCK), 0, args);
    }

    // ---- squeeze-excitation and pooling, NHWC: x [n, hw, c] bf16 (hw = h*w), per-(image, channel) tensors fp32 [n, c] ----

    /** y = x * sc[img, ch]; y may be x. */
    public void scaleChannelsNhwc(Stream stream, long x, long sc, long y, int n, long hw, int c) {
        String op = "scaleChannelsNhwc";
        long bytes = checkNhwc(op, n, hw, c);
        if (n == 0) return;
        nonNull(op, x, sc, y);
        mayAlias(op, "x", y, x, bytes);
        disjoint(op, "y", y, bytes, "the scales", sc, (long) n * c * Float.BYTES);
        launchRowChunks(stream, scaleChannelsNhwc, nhwcTiling(c, bf16Vec(x, y) == 8), n, hw, c, x, sc, y);
    }

    /**
     * dx = dy * sc[img, ch] (bf16) unless dx is 0 (no pointer: ds alone) and ds[img, ch] = sum over hw of dy * x
     * (fp32, summed in double); dx may be dy. One block per image and channel slice: deterministic, no workspace.
     */
    public void scaleChannelsBackwardNhwc(Stream stream, long x, long sc, long dy, long dx, long ds, int n, long hw, int c) {
        String op = "scaleChannelsBackwardNhwc";
        long bytes = checkNhwc(op, n, hw, c);
        if (n == 0) return;
        nonNull(op, x, sc, dy, ds);
        long perImage = (long) n * c * Float.BYTES;
        disjoint(op, "ds", ds, perImage, "x", x, bytes);
        disjoint(op, "ds", ds, perImage, "dy", dy, bytes);
        if (dx != 0) {
            mayAlias(op, "dy", dx, dy, bytes);
            disjoint(op, "dx", dx, bytes, "x", x, bytes);
            disjoint(op, "ds", ds, perImage, "dx", dx, bytes);
        }
        NhwcTiling t = dx != 0 ? nhwcTiling(c, bf16Vec(x, dy, dx) == 8) : nhwcTiling(c, bf16Vec(x, dy) == 8);
        stream.launch(scaleChannelsBackwardNhwc, Stream.Dim3.of(t.blocks(n)), Stream.Dim3.of(BLOCK), 0,
                x, sc, dy, dx, ds, (long) n, hw, (long) c, t.vec(), t.cw());
    }

    /**
     * dx = dy * sc[img, ch] + dPooled[img, ch] / hw (bf16 dy, dx; fp32 [n, c] sc, dPooled; one rounding): the SE
     * input's gradient through the scaling and the pooling in one pass. dx may be dy.
     */
    public void scaleChannelsInputGradientNhwc(Stream stream, long dy, long sc, long dPooled, long dx, int n, long hw, int c) {
        String op = "scaleChannelsInputGradientNhwc";
        long bytes = checkNhwc(op, n, hw, c);
        if (n == 0) return;
        nonNull(op, dy, sc, dPooled, dx);
        mayAlias(op, "dy", dx, dy, bytes);
        long perImage = (long) n * c * Float.BYTES;
        disjoint(op, "dx", dx, bytes, "the scales", sc, perImage);
        disjoint(op, "dx", dx, bytes, "the pooled gradient", dPooled, perImage);
        launchRowChunks(stream, scaleChannelsInputGradientNhwc, nhwcTiling(c, bf16Vec(dy, dx) == 8), n, hw, c, dy, sc, dPooled, dx);
    }

    /** y[img, ch] = mean over hw of x (fp32, summed in double). One block per image and channel slice: deterministic. */
    public void globalAveragePoolNhwc(Stream stream, long x, long y, int n, long hw, int c) {
        String op = "globalAveragePoolNhwc";
        long bytes = checkNhwc(op, n, hw, c);
        if (n == 0) return;
        nonNull(op, x, y);
        disjoint(op, "y", y, (long) n * c * Float.BYTES, "x", x, bytes);
        NhwcTiling t = nhwcTiling(c, bf16Vec(x) == 8);
        stream.launch(globalAveragePoolNhwc, Stream.Dim3.of(t.blocks(n)), Stream.Dim3.of(BLOCK), 0, x, y, (long) n, hw,
                (long) c, t.vec(), t.cw());
    }

    /** dx[img, r, ch] = dy[img, ch] / hw (dy fp32 [n, c], divided in fp32, dx bf16). */
    public void globalAveragePoolBackwardNhwc(Stream stream, long dy, long dx, int n, long hw, int c) {
        String op = "globalAveragePoolBackwardNhwc";
        long bytes = checkNhwc(op, n, hw, c);
        if (n == 0) return;
        nonNull(op, dy, dx);
        disjoint(op, "dx", dx, bytes, "dy", dy, (long) n * c * Float.BYTES);
        launchRowChunks(stream, globalAveragePoolBackwardNhwc, nhwcTiling(c, bf16Vec(dx) == 8), n, hw, c, dy, dx);
    }

    /**
     * Launches an NHWC kernel tiled as the element-wise ones: a work item is {@link NhwcTiling#elementwiseRows} rows
     * of one image and one channel slice. The kernel takes {@code pointers}, then n, hw, c, vec, cw and those rows.
     */
    private static void launchRowChunks(Stream stream, Module.Kernel kernel, NhwcTiling t, int n, long hw, int c, Object... pointers) {
        long rows = t.elementwiseRows();
        Object[] args = java.util.Arrays.copyOf(pointers, pointers.length + 6);
        args[pointers.length] = (long) n;
        args[pointers.length + 1] = hw;
        args[pointers.length + 2] = (long) c;
        args[pointers.length + 3] = t.vec();
        args[pointers.length + 4] = t.cw();
        args[pointers.length + 5] = rows;
        stream.launch(kernel, Stream.Dim3.of(t.blocks((long) n * ceilDiv(hw, rows))), Stream.Dim3.of(BLOCK), 0, args);
    }

    /** Checks the sizes of an NHWC [n, hw, c] bf16 tensor (n may be 0: nothing to do) and returns its bytes. */
    static long checkNhwc(String op, int n, long hw, int c) {
        if (n < 0 || hw < 1 || c < 1) {
            throw new IllegalArgumentException(op + ": sizes must be positive: n " + n + ", hw " + hw + ", c " + c);
        }
        return Math.multiplyExact(Math.multiplyExact((long) n * c, hw), 2L);
    }

    /**
     * How an NHWC kernel spreads c channels over a 256-thread block: each thread owns {@code vec} consecutive
     * channels (a group: 8 with 16-byte loads when c % 8 == 0 and the bf16 pointers are 16-byte aligned, else 1),
     * {@code cw} threads cover a slice of groups, and the block is {@code BLOCK / cw} row lanes of them.
     * {@code slices} slices cover c, the last one possibly narrower.
     */
    record NhwcTiling(int vec, int cw, long slices) {
        int lanes() {
            return BLOCK / cw;
        }

        /** Rows of a work item of the element-wise kernels. */
        long elementwiseRows() {
            return (long) lanes() * NHWC_ROWS_PER_LANE;
        }

        /** Blocks of a launch over {@code units} row ranges (images, or images x chunks) of every slice. */
        int blocks(long units) {
            return (int) Math.max(1, Math.min(MAX_TILE_BLOCKS, units * slices));
        }
    }

    /** The tiling of c channels: cw = ceil(groups / ceil(groups / 32)) threads a slice, so slices come out nearly equal. */
    static NhwcTiling nhwcTiling(int c, boolean aligned16) {
        return nhwcTiling(c, aligned16 && c % 8 == 0 ? 8 : 1);
    }

    /** The tiling with {@code vec} channels a thread (c a multiple of vec). */
    static NhwcTiling nhwcTiling(int c, int vec) {
        long groups = c / vec;
        int cw = (int) ceilDiv(groups, ceilDiv(groups, NHWC_MAX_SLICE_GROUPS));
        return new NhwcTiling(vec, cw, ceilDiv(groups, cw));
    }

    // ---- batch norm, NHWC: x, y, dy, dx bf16 [m = n*h*w rows, c]; gamma, beta, statistics fp32 [c] ----

    /**
     * Bytes of device scratch {@link #batchNormForwardTrainingNhwc} and {@link #batchNormBackwardNhwc} need for m
     * rows of c channels: two double sums per channel for each chunk of rows (pass 1), then three floats per
     * channel (the coefficients of pass 3). The workspace must be 8-byte aligned.
     */
    public static long batchNormWorkspaceBytes(long m, int c) {
        if (m < 0 || c < 1) throw new IllegalArgumentException("batchNormWorkspaceBytes: " + m + " rows of " + c + " channels");
        return Math.addExact(Math.multiplyExact(2L * Double.BYTES * c, batchNormChunks(m)), 3L * Float.BYTES * c);
    }

    /** Rows of a batch-norm chunk: at least {@link #BATCH_NORM_MIN_CHUNK_ROWS}, and no more than {@link #BATCH_NORM_MAX_CHUNKS} chunks. */
    static long batchNormRowsPerChunk(long m) {
        return Math.max(BATCH_NORM_MIN_CHUNK_ROWS, ceilDiv(m, BATCH_NORM_MAX_CHUNKS));
    }

    static long batchNormChunks(long m) {
        return ceilDiv(m, batchNormRowsPerChunk(m));
    }

    /**
     * Training-mode batch norm, as {@code Backend.batchNormForwardTraining}: normalises with the batch mean and
     * biased variance, saves the mean and 1 / sqrt(var + eps), updates the running statistics in place
     * (running = (1 - momentum) running + momentum batch, the unbiased variance for runningVar). Three launches:
     * per-chunk sums into {@code workspace} ({@link #batchNormWorkspaceBytes}), the statistics, y. y may be x.
     * Deterministic.
     */
    public void batchNormForwardTrainingNhwc(Stream stream, long x, long gamma, long beta, long runningMean, long runningVar,
                                             double momentum, double eps, long y, long saveMean, long saveInvStd, long m,
                                             int c, long workspace) {
        batchNormForwardTrainingNhwc("batchNormForwardTrainingNhwc", false, stream, x, gamma, beta, runningMean, runningVar,
                momentum, eps, y, saveMean, saveInvStd, m, c, workspace);
    }

    /**
     * y = silu(batch norm(x)) in training mode, batch norm as {@link #batchNormForwardTrainingNhwc} (the same
     * statistics, running averages and saved values) and SiLU applied in fp32 before the one rounding to bf16: the
     * normalised tensor is never written. y may be x.
     */
    public void batchNormSiluForwardTrainingNhwc(Stream stream, long x, long gamma, long beta, long runningMean, long runningVar,
                                                 double momentum, double eps, long y, long saveMean, long saveInvStd, long m,
                                                 int c, long workspace) {
        batchNormForwardTrainingNhwc("batchNormSiluForwardTrainingNhwc", true, stream, x, gamma, beta, runningMean, runningVar,
                momentum, eps, y, saveMean, saveInvStd, m, c, workspace);
    }

    private void batchNormForwardTrainingNhwc(String op, boolean silu, Stream stream, long x, long gamma, long beta,
                                              long runningMean, long runningVar, double momentum, double eps, long y,
                                              long saveMean, long saveInvStd, long m, int c, long workspace) {
        long bytes = checkBatchNormTraining(op, m, c, momentum, eps);
        nonNull(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        mayAlias(op, "x", y, x, bytes);
        checkWorkspace(op, workspace, m, c, x, y);
        NhwcTiling t = nhwcTiling(c, bf16Vec(x, y) == 8);
        long rows = batchNormRowsPerChunk(m), chunks = ceilDiv(m, rows), coef = workspace + 2L * Double.BYTES * c * chunks;
        Stream.Dim3 grid = Stream.Dim3.of(t.blocks(chunks)), block = Stream.Dim3.of(BLOCK);
        stream.launch(batchNormStatsNhwc, grid, block, 0, x, workspace, m, (long) c, t.vec(), t.cw(), rows);
        stream.launch(batchNormFinishTrainingNhwc, Stream.Dim3.of(Math.min(MAX_PLANE_BLOCKS, c)), block, 0, x, workspace,
                gamma, beta, runningMean, runningVar, momentum, eps, saveMean, saveInvStd, coef, m, (long) c, chunks);
        stream.launch(silu ? batchNormSiluApplyNhwc : batchNormApplyNhwc, grid, block, 0, x, coef, y, m, (long) c, t.vec(), t.cw(), rows);
    }

    /** Inference-mode batch norm with the running statistics, one launch; y may be x. */
    public void batchNormForwardInferenceNhwc(Stream stream, long x, long gamma, long beta, long runningMean, long runningVar,
                                              double eps, long y, long m, int c) {
        batchNormForwardInferenceNhwc("batchNormForwardInferenceNhwc", false, stream, x, gamma, beta, runningMean, runningVar, eps, y, m, c);
    }

    /** y = silu(inference-mode batch norm(x)), one launch; y may be x. */
    public void batchNormSiluForwardInferenceNhwc(Stream stream, long x, long gamma, long beta, long runningMean, long runningVar,
                                                  double eps, long y, long m, int c) {
        batchNormForwardInferenceNhwc("batchNormSiluForwardInferenceNhwc", true, stream, x, gamma, beta, runningMean, runningVar, eps, y, m, c);
    }

    private void batchNormForwardInferenceNhwc(String op, boolean silu, Stream stream, long x, long gamma, long beta,
                                               long runningMean, long runningVar, double eps, long y, long m, int c) {
        long bytes = checkBatchNorm(op, m, c, eps);
        nonNull(op, x, gamma, beta, runningMean, runningVar, y);
        mayAlias(op, "x", y, x, bytes);
        NhwcTiling t = nhwcTiling(c, bf16Vec(x, y) == 8);
        long rows = batchNormRowsPerChunk(m);
        stream.launch(silu ? batchNormSiluInferenceNhwc : batchNormInferenceNhwc, Stream.Dim3.of(t.blocks(ceilDiv(m, rows))), Stream.Dim3.of(BLOCK), 0, x, gamma,
                beta, runningMean, runningVar, eps, y, m, (long) c, t.vec(), t.cw(), rows);
    }

    /**
     * Backward of the training forward, as {@code Backend.batchNormBackward}: overwrites dx (bf16), dgamma and
     * dbeta (fp32) from the saved mean and 1/std. Three launches like the forward, through {@code workspace}; dx
     * may be dy or x. Deterministic.
     */
    public void batchNormBackwardNhwc(Stream stream, long x, long dy, long gamma, long saveMean, long saveInvStd, long dx,
                                      long dgamma, long dbeta, long m, int c, long workspace) {
        batchNormBackwardNhwc("batchNormBackwardNhwc", stream, x, dy, gamma, 0, saveMean, saveInvStd, dx, dgamma, dbeta, m, c, workspace);
    }

    /**
     * Backward of {@link #batchNormSiluForwardTrainingNhwc}: dy is d loss / d silu output; d loss / d (batch norm
     * output) is recomputed from x, gamma, beta and the saved statistics in both passes that read dy (it is never
     * written), then the batch-norm backward proceeds as {@link #batchNormBackwardNhwc}. dx may be dy or x.
     */
    public void batchNormSiluBackwardNhwc(Stream stream, long x, long dy, long gamma, long beta, long saveMean, long saveInvStd,
                                          long dx, long dgamma, long dbeta, long m, int c, long workspace) {
        if (beta == 0) throw new IllegalArgumentException("batchNormSiluBackwardNhwc: null device pointer (beta)");
        batchNormBackwardNhwc("batchNormSiluBackwardNhwc", stream, x, dy, gamma, beta, saveMean, saveInvStd, dx, dgamma, dbeta, m, c, workspace);
    }

    /** beta 0: plain batch norm; else the fused SiLU's backward. */
    private void batchNormBackwardNhwc(String op, Stream stream, long x, long dy, long gamma, long beta, long saveMean,
                                       long saveInvStd, long dx, long dgamma, long dbeta, long m, int c, long workspace) {
        boolean silu = beta != 0;
        long bytes = checkBatchNorm(op, m, c, 0);
        nonNull(op, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        mayAlias(op, "x", dx, x, bytes);
        mayAlias(op, "dy", dx, dy, bytes);
        checkWorkspace(op, workspace, m, c, x, dy, dx);
        NhwcTiling t = nhwcTiling(c, bf16Vec(x, dy, dx) == 8);
        long rows = batchNormRowsPerChunk(m), chunks = ceilDiv(m, rows), coef = workspace + 2L * Double.BYTES * c * chunks;
        Stream.Dim3 grid = Stream.Dim3.of(t.blocks(chunks)), block = Stream.Dim3.of(BLOCK);
        if (silu) {
            stream.launch(batchNormSiluBackwardSumsNhwc, grid, block, 0, x, dy, gamma, beta, saveMean, saveInvStd, workspace, m,
                    (long) c, t.vec(), t.cw(), rows);
        } else {
            stream.launch(batchNormBackwardSumsNhwc, grid, block, 0, x, dy, saveMean, workspace, m, (long) c, t.vec(), t.cw(), rows);
        }
        stream.launch(batchNormBackwardFinishNhwc, Stream.Dim3.of(Math.min(MAX_PLANE_BLOCKS, c)), block, 0, workspace, gamma,
                saveMean, saveInvStd, dgamma, dbeta, coef, m, (long) c, chunks);
        if (silu) {
            stream.launch(batchNormSiluBackwardApplyNhwc, grid, block, 0, x, dy, gamma, beta, saveMean, saveInvStd, coef, dx, m,
                    (long) c, t.vec(), t.cw(), rows);
        } else {
            stream.launch(batchNormBackwardApplyNhwc, grid, block, 0, x, dy, coef, dx, m, (long) c, t.vec(), t.cw(), rows);
        }
    }

    /** Checks m rows (>= 1) of c channels (>= 1) and epsilon (finite, >= 0); returns the bytes of one bf16 tensor. */
    static long checkBatchNorm(String op, long m, int c, double eps) {
        if (m < 1 || c < 1) throw new IllegalArgumentException(op + ": sizes must be positive: m " + m + " rows, c " + c);
        if (!(eps >= 0) || Double.isInfinite(eps)) throw new IllegalArgumentException(op + ": epsilon " + eps + " is not finite and >= 0");
        return Math.multiplyExact(Math.multiplyExact(m, (long) c), 2L);
    }

    /** {@link #checkBatchNorm}, and what training needs besides: two rows or more, momentum in [0, 1]. */
    static long checkBatchNormTraining(String op, long m, int c, double momentum, double eps) {
        long bytes = checkBatchNorm(op, m, c, eps);
        if (m < 2) throw new IllegalArgumentException(op + ": need more than one value per channel in training, m = " + m);
        if (!(momentum >= 0 && momentum <= 1)) throw new IllegalArgumentException(op + ": momentum " + momentum + " is not in [0, 1]");
        return bytes;
    }

    /** The workspace: not null, 8-byte aligned (it holds doubles), apart from the bf16 tensors of the call. */
    static void checkWorkspace(String op, long workspace, long m, int c, long... tensors) {
        if (workspace == 0) throw new IllegalArgumentException(op + ": null workspace");
        if ((workspace & 7) != 0) {
            throw new IllegalArgumentException(op + ": workspace 0x" + Long.toHexString(workspace) + " is not 8-byte aligned");
        }
        long bytes = Math.multiplyExact(m, (long) c) * 2;
        for (long p : tensors) disjoint(op, "the workspace", workspace, batchNormWorkspaceBytes(m, c), "a tensor", p, bytes);
    }

    // ---- depthwise convolution, NHWC bf16: x [n, h, w, c], weights bf16 [c][r][s], y [n, p, q, c] ----

    /**
     * Threads of a lane of the NHWC depthwise kernels: each sums the products of at least this many positions a
     * chunk of the filter gradient in fp32 before the lanes are added in double, so that the lane tree (r trees
     * of r * vec doubles) stays small next to the loads.
     */
    static final int DEPTHWISE_NHWC_MIN_POSITIONS_PER_LANE = 32;
    /**
     * Tiles a lane of the forward pass and the data gradient takes in a work item: 8 (32 outputs a thread at 4 a tile)
     * spreads the block's one load of its slice's taps (shared memory, then r*s*vec registers) over enough work;
     * halved (to 2 at least) while the launch would have fewer than {@link #DEPTHWISE_NHWC_MIN_BLOCKS} blocks.
     */
    static final int DEPTHWISE_NHWC_TILES_PER_LANE = 8;
    /**
     * Blocks a forward or data-gradient launch aims at: ~4 waves of the two 256-thread blocks an SM these kernels
     * fit (128 registers) on a 132-SM H100 or H200, so the last wave's idle SMs cost little. B0's 5x5/2 layer at
     * 16 x 16 -> 8 x 8, 672 channels, batch 256 makes 704 blocks at 8 tiles a lane, 1,408 at 4.
     */
    static final int DEPTHWISE_NHWC_MIN_BLOCKS = 1024;
    /** Most chunks of the filter gradient: what pass 2 adds per weight, as for batch norm. */
    static final int DEPTHWISE_NHWC_MAX_CHUNKS = 2048;
    /** Most bytes of the filter gradient's partial sums (8 per weight and chunk): fewer, larger chunks beyond it. */
    static final long DEPTHWISE_NHWC_MAX_PARTIAL_BYTES = 64L << 20;

    /**
     * Whether the NHWC bf16 depthwise kernels take {@code g}: groups == c == k and a square 3x3 or 5x5 filter (the
     * sizes EfficientNet-B0 uses; the kernels keep the taps in registers, so the size is compiled in). Any stride
     * and padding.
     */
    public static boolean supportsDepthwiseNhwc(ConvGeometry g) {
        // positions are split into (image, row, column) in 32-bit arithmetic (nn.cu, grid_position)
        return g != null && g.depthwise() && g.r() == g.s() && (g.r() == 3 || g.r() == 5)
                && (long) g.n() * g.h() * g.w() < (1L << 31) && (long) g.n() * g.p() * g.q() < (1L << 31);
    }

    /**
     * y = the depthwise convolution of x with the bf16 weights w ([c][r][s], the KRSC copy of the bf16 path), as
     * {@code Backend.conv2dForward} on bf16 channels-last tensors; fp32 sums of exact products, rounded once. y
     * must not overlap x or w.
     */
    public void depthwiseForwardNhwc(Stream stream, ConvGeometry g, long x, long w, long y) {
        String op = "depthwiseForwardNhwc";
        checkDepthwiseNhwc(op, g, x, nhwcBytes(g, false), w, weightCount(g) * 2, y, nhwcBytes(g, true));
        NhwcTiling t = depthwiseNhwcTiling(g.c(), x, w, y);
        int tile = depthwiseNhwcTile(g, DepthwisePass.FORWARD);
        long tiles = (long) g.n() * g.p() * ceilDiv(g.q(), tile), rows = depthwiseNhwcTilesPerChunk(tiles, t);
        stream.launch(depthwiseForwardNhwc[sizeIndex(g)], Stream.Dim3.of(t.blocks(ceilDiv(tiles, rows))), Stream.Dim3.of(BLOCK),
                0, depthwiseNhwcArgs(g, t, x, w, y, tile, rows));
    }

    /** dx = d loss / d x from dy and the bf16 weights w, as {@code Backend.conv2dBackwardData}. dx must not overlap dy or w. */
    public void depthwiseBackwardDataNhwc(Stream stream, ConvGeometry g, long dy, long w, long dx) {
        String op = "depthwiseBackwardDataNhwc";
        checkDepthwiseNhwc(op, g, dy, nhwcBytes(g, true), w, weightCount(g) * 2, dx, nhwcBytes(g, false));
        NhwcTiling t = depthwiseNhwcTiling(g.c(), dy, w, dx);
        int tile = depthwiseNhwcTile(g, DepthwisePass.BACKWARD_DATA);
        long tiles = depthwiseNhwcDataTiles(g), rows = depthwiseNhwcTilesPerChunk(tiles, t);
        stream.launch(depthwiseBackwardDataNhwc[sizeIndex(g)], Stream.Dim3.of(t.blocks(ceilDiv(tiles, rows))),
                Stream.Dim3.of(BLOCK), 0, depthwiseNhwcArgs(g, t, dy, w, dx, tile, rows));
    }

    /**
     * dw (fp32 [c, 1, r, s], overwritten) = d loss / d w from the forward input x and dy, as
     * {@code Backend.conv2dBackwardFilter}: per-chunk partial sums in double into {@code workspace}
     * ({@link #depthwiseNhwcWorkspaceBytes}, 8-byte aligned), then one fixed-order sum per weight. Deterministic.
     */
    public void depthwiseBackwardFilterNhwc(Stream stream, ConvGeometry g, long x, long dy, long dw, long workspace) {
        String op = "depthwiseBackwardFilterNhwc";
        long weights = weightCount(g);
        checkDepthwiseNhwc(op, g, x, nhwcBytes(g, false), dy, nhwcBytes(g, true), dw, weights * Float.BYTES);
        if (workspace == 0) throw new IllegalArgumentException(op + ": null workspace");
        if ((workspace & 7) != 0) {
            throw new IllegalArgumentException(op + ": workspace 0x" + Long.toHexString(workspace) + " is not 8-byte aligned");
        }
        long workBytes = depthwiseNhwcWorkspaceBytes(g);
        disjoint(op, "the workspace", workspace, workBytes, "x", x, nhwcBytes(g, false));
        disjoint(op, "the workspace", workspace, workBytes, "dy", dy, nhwcBytes(g, true));
        disjoint(op, "the workspace", workspace, workBytes, "dw", dw, weights * Float.BYTES);
        NhwcTiling t = depthwiseNhwcTiling(g.c(), x, dy);
        long rows = depthwiseNhwcFilterRowsPerChunk(g, t), chunks = ceilDiv(depthwiseNhwcFilterTiles(g), rows);
        stream.launch(depthwiseFilterSumsNhwc[sizeIndex(g)], Stream.Dim3.of(t.blocks(chunks)), Stream.Dim3.of(BLOCK), 0,
                depthwiseNhwcArgs(g, t, x, dy, workspace, depthwiseNhwcTile(g, DepthwisePass.BACKWARD_FILTER), rows));
        stream.launch(depthwiseFilterFinishNhwc, Stream.Dim3.of(elementBlocks(weights)), Stream.Dim3.of(BLOCK), 0, workspace,
                dw, weights, chunks);
    }

    /**
     * col [rows][r s c] bf16 = the input patches of output positions {@code [m0, m0 + rows)} of the dense
     * convolution g on bf16 channels-last x (zeros outside the image), tap-major then channel: the left factor of
     * the weight gradient as a GEMM, {@code dw [k][r][s][c] = dy [m, k]^T col [m, r s c]}. col must not overlap x.
     */
    public void im2colNhwc(Stream stream, ConvGeometry g, long x, long col, long m0, long rows) {
        String op = "im2colNhwc";
        if (g == null || g.groups() != 1) throw new IllegalArgumentException(op + ": a dense convolution (one group), not " + g);
        long positions = (long) g.n() * g.p() * g.q(), taps = (long) g.r() * g.s();
        if (positions >= (1L << 31)) throw new IllegalArgumentException(op + ": " + positions + " output positions (the kernel splits them in 32 bits)");
        if (m0 < 0 || rows < 0 || m0 + rows > positions) {
            throw new IllegalArgumentException(op + ": rows [" + m0 + ", " + (m0 + rows) + ") outside the " + positions + " output positions of " + g);
        }
        if (rows == 0) return;
        if (x == 0 || col == 0) throw new IllegalArgumentException(op + ": null device pointer");
        if (overlaps(col, Math.multiplyExact(rows * taps * g.c(), 2L), x, nhwcBytes(g, false))) {
            throw new IllegalArgumentException(op + ": col overlaps x");
        }
        stream.launch(im2colNhwc, Stream.Dim3.of(elementBlocks(rows * taps)), Stream.Dim3.of(BLOCK), 0, x, col, m0, rows,
                (long) g.c(), (long) g.h(), (long) g.w(), (long) g.p(), (long) g.q(), g.r(), g.s(), g.strideH(), g.strideW(),
                g.padH(), g.padW());
    }

    /** Bytes of the workspace {@link #depthwiseBackwardFilterNhwc} needs for g: a double per weight and chunk. */
    public static long depthwiseNhwcWorkspaceBytes(ConvGeometry g) {
        if (!supportsDepthwiseNhwc(g)) throw new IllegalArgumentException("depthwiseNhwcWorkspaceBytes: not a 3x3 or 5x5 depthwise convolution: " + g);
        // The chunks depend on the tiling, hence on the pointers' alignment: enough for either.
        long tiles = depthwiseNhwcFilterTiles(g), chunks = 0;
        for (int vec : g.c() % 2 == 0 ? new int[]{1, 2} : new int[]{1}) {
            chunks = Math.max(chunks, ceilDiv(tiles, depthwiseNhwcFilterRowsPerChunk(g, nhwcTiling(g.c(), vec))));
        }
        return Math.multiplyExact(chunks, weightCount(g) * Double.BYTES);
    }

    /**
     * Output tiles of a filter-gradient chunk: at least {@link #DEPTHWISE_NHWC_MIN_POSITIONS_PER_LANE} positions a
     * lane, and no more chunks than {@link #DEPTHWISE_NHWC_MAX_CHUNKS} or than fit
     * {@link #DEPTHWISE_NHWC_MAX_PARTIAL_BYTES}.
     */
    static long depthwiseNhwcFilterRowsPerChunk(ConvGeometry g, NhwcTiling t) {
        long maxChunks = Math.max(1, Math.min(DEPTHWISE_NHWC_MAX_CHUNKS, DEPTHWISE_NHWC_MAX_PARTIAL_BYTES / (weightCount(g) * Double.BYTES)));
        long perLane = ceilDiv(DEPTHWISE_NHWC_MIN_POSITIONS_PER_LANE, depthwiseNhwcTile(g, DepthwisePass.BACKWARD_FILTER));
        return Math.max((long) t.lanes() * perLane, ceilDiv(depthwiseNhwcFilterTiles(g), maxChunks));
    }

    /**
     * Tiles of a forward or data-gradient work item: {@link #DEPTHWISE_NHWC_TILES_PER_LANE} a lane, halved down to 2
     * while the launch would make fewer than {@link #DEPTHWISE_NHWC_MIN_BLOCKS} blocks. Any chunking gives the same
     * bits: each output is one thread's sum.
     */
    static long depthwiseNhwcTilesPerChunk(long tiles, NhwcTiling t) {
        int perLane = DEPTHWISE_NHWC_TILES_PER_LANE;
        while (perLane > 2 && ceilDiv(tiles, (long) t.lanes() * perLane) * t.slices() < DEPTHWISE_NHWC_MIN_BLOCKS) perLane /= 2;
        return (long) t.lanes() * perLane;
    }

    /**
     * The data gradient's tiles: rows of w inputs cut into tiles of {@link #depthwiseNhwcTile} columns; at stride 2
     * the tiles start where the column plus pad_w is even, so with an odd pad_w the first starts at column -1
     * (nn.cu, DataGather::column_offset).
     */
    static long depthwiseNhwcDataTiles(ConvGeometry g) {
        int tile = depthwiseNhwcTile(g, DepthwisePass.BACKWARD_DATA), offset = tile > 1 && g.strideW() == 2 ? g.padW() & 1 : 0;
        return (long) g.n() * g.h() * ceilDiv(g.w() + offset, tile);
    }

    /** The filter gradient's output tiles: rows of q outputs cut into tiles of {@link #depthwiseNhwcTile} columns. */
    static long depthwiseNhwcFilterTiles(ConvGeometry g) {
        return (long) g.n() * g.p() * ceilDiv(g.q(), depthwiseNhwcTile(g, DepthwisePass.BACKWARD_FILTER));
    }

    /**
     * The NHWC tiling of the depthwise kernels: 2 channels a thread (one 4-byte load) when c is even and every
     * bf16 pointer 4-byte aligned, else 1; the taps or sums of a thread's channels live in its registers, so not 8.
     */
    static NhwcTiling depthwiseNhwcTiling(int c, long... pointers) {
        boolean aligned4 = true;
        for (long p : pointers) aligned4 &= (p & 3) == 0;
        return nhwcTiling(c, aligned4 && c % 2 == 0 ? 2 : 1);
    }

    private static int sizeIndex(ConvGeometry g) {
        return g.r() == 3 ? 0 : 1;
    }

    private static long weightCount(ConvGeometry g) {
        return (long) g.c() * g.r() * g.s();
    }

    /** Bytes of the bf16 NHWC input (x, dx) or output (y, dy) of g. */
    private static long nhwcBytes(ConvGeometry g, boolean output) {
        long plane = output ? (long) g.p() * g.q() : (long) g.h() * g.w();
        return Math.multiplyExact(Math.multiplyExact((long) g.n() * g.c(), plane), 2L);
    }

    /**
     * The kernels' arguments: three pointers, i64 n, c, h, w, p, q, int strides and pads, the tiling, the int tile
     * width, and i64 tiles per chunk.
     */
    static Object[] depthwiseNhwcArgs(ConvGeometry g, NhwcTiling t, long a, long b, long out, int tile, long rowsPerChunk) {
        return new Object[]{a, b, out, (long) g.n(), (long) g.c(), (long) g.h(), (long) g.w(), (long) g.p(), (long) g.q(),
                g.strideH(), g.strideW(), g.padH(), g.padW(), t.vec(), t.cw(), tile, rowsPerChunk};
    }

    /**
     * The columns of a row a thread of a pass sums at once (nn.cu: a tile, whose outputs share their loaded input
     * columns), as nn.cu's kForwardTile, kDataTile and kFilterTile: where the kernel has the stride at compile
     * time, 4 (the forward pass at stride_w 1 or 2, the data gradient at stride 1 or 2 both ways, the filter
     * gradient at stride_w 1) or 2 (the filter gradient at stride_w 2: 4 would not fit its registers); else 1.
     * The kernels trap on any other value, so host and kernel cannot count tiles differently.
     */
    static int depthwiseNhwcTile(ConvGeometry g, DepthwisePass pass) {
        return switch (pass) {
            case FORWARD -> g.strideW() == 1 || g.strideW() == 2 ? 4 : 1;
            case BACKWARD_DATA -> g.strideH() == g.strideW() && (g.strideW() == 1 || g.strideW() == 2) ? 4 : 1;
            case BACKWARD_FILTER -> g.strideW() == 1 ? 4 : g.strideW() == 2 ? 2 : 1;
        };
    }

    /** As {@link #checkDepthwise}, for the NHWC kernels' shapes. */
    static void checkDepthwiseNhwc(String op, ConvGeometry g, long a, long aBytes, long b, long bBytes, long out, long outBytes) {
        if (g == null) throw new IllegalArgumentException(op + ": no geometry");
        if (!supportsDepthwiseNhwc(g)) {
            throw new IllegalArgumentException(op + ": the NHWC depthwise kernels take depthwise convolutions (groups == c == k)"
                    + " with a 3x3 or 5x5 filter, not " + g);
        }
        if (a == 0 || b == 0 || out == 0) throw new IllegalArgumentException(op + ": null device pointer");
        if (overlaps(out, outBytes, a, aBytes) || overlaps(out, outBytes, b, bBytes)) {
            throw new IllegalArgumentException(op + ": the output overlaps an input");
        }
    }

    // ---- layout and precision in one pass ----

    /** y bf16 [n, h, w, c] = x fp32 [n, c, h, w] rounded to nearest even; y must not overlap x. */
    public void nchwF32ToNhwcBf16(Stream stream, long x, long y, int n, int c, int h, int w) {
        checkTranspose("nchwF32ToNhwcBf16", x, Float.BYTES, y, 2, n, c, h, w);
        long hw = (long) h * w;
        stream.launch(nchwF32ToNhwcBf16, Stream.Dim3.of(transposeBlocks(n, c, hw)), Stream.Dim3.of(BLOCK), 0, x, y, (long) n,
                (long) c, hw);
    }

    /** y fp32 [n, c, h, w] = x bf16 [n, h, w, c] widened (exact); y must not overlap x. */
    public void nhwcBf16ToNchwF32(Stream stream, long x, long y, int n, int c, int h, int w) {
        checkTranspose("nhwcBf16ToNchwF32", x, 2, y, Float.BYTES, n, c, h, w);
        long hw = (long) h * w;
        stream.launch(nhwcBf16ToNchwF32, Stream.Dim3.of(transposeBlocks(n, c, hw)), Stream.Dim3.of(BLOCK), 0, x, y, (long) n,
                (long) c, hw);
    }

    // ---- pointer checks ----

    static void nonNull(String op, long... pointers) {
        for (long p : pointers) if (p == 0) throw new IllegalArgumentException(op + ": null device pointer");
    }

    /** An output that must be the input {@code what} exactly (an element is read before it is written) or apart from it. */
    static void mayAlias(String op, String what, long out, long in, long bytes) {
        if (out != in && overlaps(out, bytes, in, bytes)) {
            throw new IllegalArgumentException(op + ": the output partly overlaps " + what + " (it may be " + what
                    + " exactly, or apart from it)");
        }
    }

    static void disjoint(String op, String out, long outPointer, long outBytes, String in, long inPointer, long inBytes) {
        if (overlaps(outPointer, outBytes, inPointer, inBytes)) throw new IllegalArgumentException(op + ": " + out + " overlaps " + in);
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
