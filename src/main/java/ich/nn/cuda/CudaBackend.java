package ich.nn.cuda;

import ich.gpu.Context;
import ich.gpu.Cublas;
import ich.gpu.CudaException;
import ich.gpu.Cudnn;
import ich.gpu.GpuUnavailableException;
import ich.gpu.NnKernels;
import ich.gpu.Stream;
import ich.nn.AdamTensors;
import ich.nn.Backend;
import ich.nn.ConvGeometry;
import ich.nn.OpShapes;
import ich.nn.Storage;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import static ich.nn.OpShapes.channels;
import static ich.nn.OpShapes.linearDims;
import static ich.nn.OpShapes.perChannel;
import static ich.nn.OpShapes.planes;
import static ich.nn.OpShapes.shape;

/**
 * The engine on one NVIDIA GPU: convolutions and batch norm through cuDNN, Linear through cuBLAS, everything
 * else through the kernels of cuda/nn.cu ({@link NnKernels}). fp32 NCHW, the same contract as the CPU reference
 * ({@link Backend}); CudaBackendTest holds the two together op by op and for a whole training step. With
 * {@link Options#bf16()} activations are bf16 channels-last instead ({@link Storage#BF16_NHWC}): convolutions on
 * bf16 tensor cores, batch norm and the element-wise ops on bf16 kernels of ours, everything else fp32
 * (CudaBackendBf16Test). Each op takes what its tensors' storages say, so both kinds of tensor work on any
 * backend; the option decides what {@link #activationStorage()} gives layers.
 *
 * <p><b>Ordering.</b> Every op is queued on one stream, in call order, and returns without waiting, except those
 * whose result the host reads: {@link #copy} to a host tensor, {@link #bceWithLogits} (the loss) and
 * {@link #sumOfSquares}. So a training step runs ahead of Java until it asks for its loss.
 *
 * <p><b>Memory.</b> Tensors of a {@link #stepArena()} come from chunks recycled across steps
 * ({@link DeviceStepArena}); tensors of any other arena are cuMemAlloc'd and freed when that arena closes.
 * A device tensor's segment is bound to its arena's scope, and every op checks it is still alive.
 *
 * <p><b>Convolution algorithms.</b> For each geometry and direction, the first call runs cuDNN's algorithm
 * search ({@code cudnnFind*AlgorithmEx}) on the real buffers, keeps the fastest algorithm (the fastest
 * deterministic one unless {@link Options#deterministic()} is off), and reuses it. For depthwise convolutions,
 * where cuDNN is weak, our kernels (cuda/nn.cu: fp32 NCHW, and bf16 NHWC for 3x3 and 5x5 filters) are timed on
 * the same buffers too and run instead when faster ({@link Options#depthwise()}); {@link #convolutionChoices()}
 * says what won. One workspace, sized for the search, is shared by all. A timed choice can differ from run to
 * run when two algorithms are close, and different algorithms round differently, so two training runs drift
 * apart; {@link Options#reproducible()} chooses without timing instead.
 *
 * <p>Not thread-safe: one thread drives a backend at a time (the context is made current on whichever does).
 */
public final class CudaBackend implements Backend {

    /**
     * @param allowTf32         let cuDNN and cuBLAS round fp32 inputs to TF32 on tensor cores (faster, ~1e-3
     *                          relative instead of fp32's ~1e-6); off by default so results match the CPU
     * @param deterministic     choose only convolution algorithms that give the same bits on every run
     * @param searchWorkspace   the most workspace the algorithm search may try, in bytes
     * @param bf16              mixed precision: activations (image tensors and their gradients) in bf16 channels-last,
     *                          convolutions on bf16 tensor cores with fp32 accumulation (weights rounded to bf16 as
     *                          they are used, weight gradients widened to fp32), batch norm with fp32 statistics;
     *                          parameters, their gradients, the optimizer state, [n, c] vectors and the loss stay
     *                          fp32. Results then agree with the CPU within bf16's precision (~1e-2), not fp32's.
     * @param reproducible      choose convolution algorithms without timing: cuDNN's heuristic ranking
     *                          ({@code cudnnGetConvolution*Algorithm_v7}, its first deterministic algorithm that fits
     *                          the workspace) and our depthwise kernels wherever they take the shape (unless
     *                          {@code depthwise} says CUDNN). Two runs on the same GPU, driver and libraries then
     *                          compute the same bits (every kernel of ours is deterministic, and so are cuBLAS's GEMMs
     *                          and cuDNN's batch norm); the timed search may be faster.
     */
    public record Options(boolean allowTf32, boolean deterministic, long searchWorkspace, Depthwise depthwise,
                          Gemm gemm, boolean bf16, boolean reproducible) {
        public Options {
            if (searchWorkspace < 0) throw new IllegalArgumentException("searchWorkspace must be >= 0: " + searchWorkspace);
            java.util.Objects.requireNonNull(depthwise);
            java.util.Objects.requireNonNull(gemm);
            if (reproducible && !deterministic) throw new IllegalArgumentException("reproducible needs deterministic algorithms");
        }

        public static Options defaults() {
            return new Options(false, true, 512L << 20, Depthwise.FASTEST, Gemm.FASTEST, false, false);
        }

        public Options withTf32(boolean allow) {
            return new Options(allow, deterministic, searchWorkspace, depthwise, gemm, bf16, reproducible);
        }

        public Options withDepthwise(Depthwise choice) {
            return new Options(allowTf32, deterministic, searchWorkspace, choice, gemm, bf16, reproducible);
        }

        public Options withGemm(Gemm choice) {
            return new Options(allowTf32, deterministic, searchWorkspace, depthwise, choice, bf16, reproducible);
        }

        public Options withBf16(boolean mixed) {
            return new Options(allowTf32, deterministic, searchWorkspace, depthwise, gemm, mixed, reproducible);
        }

        public Options withReproducible(boolean on) {
            return new Options(allowTf32, deterministic, searchWorkspace, depthwise, gemm, bf16, on);
        }
    }

    /**
     * Who runs depthwise convolutions, where cuDNN is known to be weak: whichever measured faster on the first
     * call for that shape and direction (the default), always cuDNN, or always our kernels (cuda/nn.cu) where
     * they take the shape.
     */
    public enum Depthwise { FASTEST, CUDNN, OWN }

    /**
     * Who runs the convolutions a GEMM can do: 1 x 1 ones (stride 1, no padding, one group) in all three
     * directions, which on bf16 channels-last tensors are plain GEMMs, [n h w, c] x [k, c]^T, and on fp32 NCHW ones
     * a GEMM per sample; and in bf16 the weight gradient of other dense ones (the stem) as im2col chunks times dy.
     * On an H200 cuDNN's legacy bf16 algorithms took 78 % of a B0 training step in the 1 x 1 convolutions (their
     * data gradients alone 64.6 %, 10 ms a call at batch 256) and 5.8 ms for the stem's weight gradient; in fp32
     * its 1 x 1 weight gradients ran at a sixth of its forward passes' rate. So cuBLAS (cublasGemmEx on bf16 tensor
     * cores with fp32 accumulation; strided-batched SGEMMs in fp32) is timed against cuDNN's best on the first call
     * (FASTEST, the default), or always used (CUBLAS), or never (CUDNN). The GEMMs write weight gradients in fp32.
     */
    public enum Gemm { FASTEST, CUDNN, CUBLAS }

    private final int ordinal;
    private final Options options;
    private final Context context;
    private final Stream stream;
    private final Cudnn cudnn;
    private final Cublas cublas;
    /** DEFAULT math (tensor cores for bf16 inputs), for the bf16 1 x 1 convolutions' GEMMs; null in fp32. */
    private final Cublas cublasBf16;
    private final NnKernels kernels;
    private final String deviceName;
    private final AtomicLong allocated = new AtomicLong(), peak = new AtomicLong();
    private final DeviceStepArena.Pool pool;
    /** Backend-lifetime device memory: workspace, ones vector, loss cell. */
    private final Arena own = Arena.ofShared();
    private final ThreadLocal<Boolean> bound = ThreadLocal.withInitial(() -> false);
    private final Map<ConvKey, ConvPlan> convPlans = new HashMap<>();
    private final Map<List<Integer>, BnPlan> bnPlans = new HashMap<>();
    /** Multi-tensor Adam tables by their tensors, least recently used first. */
    private final LinkedHashMap<AdamKey, NnKernels.AdamTable> adamTables = new LinkedHashMap<>(8, 0.75f, true);
    /** Backend-lifetime scratch buffers by purpose, grown on demand (see {@link #scratch}). */
    private final Tensor[] scratch = new Tensor[Scratch.values().length];
    private Tensor ones;
    private Tensor lossCell;
    private boolean closed;

    private CudaBackend(int ordinal, Options options, Context context, Stream stream, Cudnn cudnn, Cublas cublas,
                        Cublas cublasBf16, NnKernels kernels) {
        this.ordinal = ordinal;
        this.options = options;
        this.context = context;
        this.stream = stream;
        this.cudnn = cudnn;
        this.cublas = cublas;
        this.cublasBf16 = cublasBf16;
        this.kernels = kernels;
        this.deviceName = context.deviceName();
        this.pool = new DeviceStepArena.Pool(context, this::allocated, this::freed);
        bound.set(true);
    }

    /** @throws GpuUnavailableException when there is no usable GPU, cuDNN, cuBLAS or kernels, saying which */
    public static CudaBackend open(int ordinal) {
        return open(ordinal, Options.defaults());
    }

    /** @throws GpuUnavailableException when there is no usable GPU, cuDNN, cuBLAS or kernels, saying which */
    public static CudaBackend open(int ordinal, Options options) {
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            Context context = track(opened, Context.open(ordinal));
            Stream stream = track(opened, context.createStream());
            Cudnn cudnn = track(opened, Cudnn.create(stream));
            Cublas cublas = track(opened, Cublas.create(context, stream, options.allowTf32()));
            Cublas cublasBf16 = options.bf16() ? track(opened, Cublas.create(context, stream, Cublas.BF16_MATH)) : null;
            NnKernels kernels = track(opened, NnKernels.open(context));
            return new CudaBackend(ordinal, options, context, stream, cudnn, cublas, cublasBf16, kernels);
        } catch (RuntimeException e) {
            for (int i = opened.size() - 1; i >= 0; i--) {
                try {
                    opened.get(i).close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    private static <T extends AutoCloseable> T track(List<AutoCloseable> opened, T resource) {
        opened.add(resource);
        return resource;
    }

    /** The context every op runs in; other threads make it current before using the backend's tensors. */
    public Context context() {
        return context;
    }

    /** The stream every op is queued on, in call order. */
    public Stream stream() {
        return stream;
    }

    /** The CUDA ordinal of the GPU. */
    public int ordinal() {
        return ordinal;
    }

    /** The GPU's name, e.g. "NVIDIA H100 80GB HBM3". */
    public String deviceName() {
        return deviceName;
    }

    public Options options() {
        return options;
    }

    /** Waits until every queued op has finished. */
    public void synchronize() {
        bind();
        stream.synchronize();
    }

    /** The most device memory this backend held at once (tensors, pools and workspaces), in bytes. */
    public long peakAllocatedBytes() {
        return peak.get();
    }

    /** The device memory this backend holds now, in bytes. */
    public long allocatedBytes() {
        return allocated.get();
    }

    private void allocated(long bytes) {
        long now = allocated.addAndGet(bytes);
        peak.accumulateAndGet(now, Math::max);
    }

    private void freed(long bytes) {
        allocated.addAndGet(-bytes);
    }

    @Override
    public String name() {
        return String.format(Locale.ROOT, "gpu:%d %s (cuDNN %s, %s%s)", ordinal, deviceName,
                Cudnn.versionString(cudnn.version()), options.bf16() ? "bf16 mixed precision, NHWC" : "fp32",
                options.allowTf32() ? " with TF32" : "");
    }

    /** bf16 channels-last with {@link Options#bf16()}, else fp32 NCHW. */
    @Override
    public Storage activationStorage() {
        return options.bf16() ? Storage.BF16_NHWC : Storage.FLOAT32;
    }

    // ---------------------------------------------------------------- memory

    @Override
    public Tensor allocate(Arena arena, int... shape) {
        return allocate(arena, Storage.FLOAT32, shape);
    }

    @Override
    public Tensor allocateUninitialized(Arena arena, int... shape) {
        return allocateUninitialized(arena, Storage.FLOAT32, shape);
    }

    /** Any storage: fp32 or bf16, NCHW or (for [n, c, h, w]) channels-last. */
    @Override
    public Tensor allocate(Arena arena, Storage storage, int... shape) {
        Tensor t = allocateUninitialized(arena, storage, shape);
        long at = t.data().address(), words = Math.ceilDiv(t.bytes(), Float.BYTES);
        queue("fill", () -> stream.fill32(at, 0, words), at, words); // zero bits are 0.0 in fp32 and bf16 alike
        return t;
    }

    @Override
    public Tensor allocateUninitialized(Arena arena, Storage storage, int... shape) {
        bind();
        // Whole 4-byte words, so that zero-filling and fp32 kernels never run past the end of a bf16 tensor.
        long bytes = Math.ceilDiv(Tensor.elementCount(shape) * storage.dtype().bytes(), Float.BYTES) * Float.BYTES;
        MemorySegment data;
        if (arena instanceof DeviceStepArena step) {
            data = step.allocateDevice(bytes);
        } else {
            long pointer = context.allocateRaw(bytes);
            allocated(bytes);
            data = MemorySegment.ofAddress(pointer).reinterpret(arena, s -> {
                // the arena may close after the backend: freeLate knows whether the memory is still there
                context.freeLate(pointer);
                freed(bytes);
            });
        }
        return Tensor.wrap(data, false, storage, shape);
    }

    /** During a graph step ({@link #beginStep}), from the step's own pool, so its tensors have the same addresses every time. */
    @Override
    public Arena stepArena() {
        return new DeviceStepArena(active != null ? active.pool : pool);
    }

    @Override
    public void copy(Tensor source, Tensor destination) {
        String op = "copy";
        if (source.size() != destination.size()) {
            throw new IllegalArgumentException(op + ": sizes differ: " + source + " -> " + destination);
        }
        bind();
        if (!source.storage().equals(destination.storage())) {
            convert(source, destination);
            return;
        }
        long bytes = source.bytes();
        if (mode != Mode.EAGER && !destination.isHost()) {
            hoistedCopy(op, source, destination, bytes);
            return;
        }
        if (mode != Mode.EAGER && !source.isHost()) {
            throw notCapturable("copy from the device to the host (" + source + ") waits for the device mid-step");
        }
        if (source.isHost() && destination.isHost()) {
            MemorySegment.copy(source.data(), 0, destination.data(), 0, bytes);
        } else if (source.isHost()) {
            live(op, destination);
            copyToDeviceEagerly(source.data(), destination.data().address(), bytes);
        } else if (destination.isHost()) {
            live(op, source);
            stream.copyToHostAndWait(source.data().address(), destination.data(), bytes);
        } else {
            live(op, source, destination);
            stream.copyOnDevice(source.data().address(), destination.data().address(), bytes);
        }
    }

    /**
     * Pinned staging for eager host-to-device copies (labels, dropout and drop-path masks), so they never wait for
     * the device (see {@link ich.gpu.PinnedTurns}): two halves used in turn, the turn ending when a half is full
     * (with a few MiB a step, some steps back). Made at the first such copy.
     */
    private ich.gpu.PinnedTurns uploadHalves;
    /** Each half's size; a larger copy (a CPU loader's images, the weights at start) goes from pageable memory. */
    static final long UPLOAD_HALF_BYTES = 8L << 20;

    /** An eager, stream-ordered copy from host memory that never waits for the device (see {@link #uploadHalves}). */
    private void copyToDeviceEagerly(MemorySegment source, long destination, long bytes) {
        if (bytes > UPLOAD_HALF_BYTES) {
            stream.copyToDevice(source, destination, bytes);
            return;
        }
        if (uploadHalves == null) uploadHalves = new ich.gpu.PinnedTurns(context, 2, UPLOAD_HALF_BYTES);
        MemorySegment staged = uploadHalves.take(bytes);
        if (staged == null) {
            uploadHalves.copiesQueued(stream);
            uploadHalves.next();
            staged = uploadHalves.take(bytes);
        }
        MemorySegment.copy(source, 0, staged, 0, bytes);
        stream.copyToDevice(staged, destination, bytes);
    }

    /**
     * A copy between storages. On the device one kernel converts (and transposes); a host tensor (always fp32
     * NCHW) goes through an fp32 device buffer on the way. In a graph step a conversion into the device runs on the
     * side stream, before the graph, as the plain copies do.
     */
    private void convert(Tensor source, Tensor destination) {
        String op = "copy";
        if (!source.sameShape(destination)) {
            throw new IllegalArgumentException(op + ": converting " + source + " to " + destination + " needs equal shapes");
        }
        int[] shape = source.shape();
        Conversion conversion = conversion(op, source.storage(), destination.storage(), shape);
        if (destination.isHost()) {
            if (mode != Mode.EAGER) {
                throw notCapturable("copy from the device to the host (" + source + ") waits for the device mid-step");
            }
            live(op, source);
            Tensor widened = scratch(Scratch.CONVERSION, destination.bytes());
            convertOnDevice(stream, conversion, ptr(source), ptr(widened), shape);
            stream.copyToHostAndWait(ptr(widened), destination.data(), destination.bytes());
            return;
        }
        live(op, destination);
        boolean hoisted = mode != Mode.EAGER;
        if (hoisted) requireUntouchedThisStep(destination);
        long from;
        if (source.isHost()) {
            // The eager warm-up sizes the side stream's buffer too: a graph step cannot grow it.
            Tensor sideStaged = scratch(Scratch.SIDE_CONVERSION, source.bytes());
            Tensor staged = hoisted ? sideStaged : scratch(Scratch.CONVERSION, source.bytes());
            if (hoisted) {
                hoistedCopy(op, source, staged, source.bytes());
            } else {
                copyToDeviceEagerly(source.data(), ptr(staged), source.bytes());
            }
            from = ptr(staged);
        } else {
            live(op, source);
            from = ptr(source);
        }
        convertOnDevice(hoisted ? copyStream : stream, conversion, from, ptr(destination), shape);
    }

    /** The conversions a copy can make; refuses the others, naming them. */
    private enum Conversion { TO_BF16, FROM_BF16, NCHW_F32_TO_NHWC_BF16, NHWC_BF16_TO_NCHW_F32 }

    private static Conversion conversion(String op, Storage from, Storage to, int[] shape) {
        boolean sameOrder = from.channelsLast() == to.channelsLast() || (from.rowMajorFor(shape) && to.rowMajorFor(shape));
        Storage.DType f = from.dtype(), t = to.dtype();
        if (sameOrder && f == Storage.DType.FLOAT32 && t == Storage.DType.BFLOAT16) return Conversion.TO_BF16;
        if (sameOrder && f == Storage.DType.BFLOAT16 && t == Storage.DType.FLOAT32) return Conversion.FROM_BF16;
        if (from.equals(Storage.FLOAT32) && to.equals(Storage.BF16_NHWC)) return Conversion.NCHW_F32_TO_NHWC_BF16;
        if (from.equals(Storage.BF16_NHWC) && to.equals(Storage.FLOAT32)) return Conversion.NHWC_BF16_TO_NCHW_F32;
        throw new IllegalArgumentException(op + ": no conversion from " + from + " to " + to + " for " + Arrays.toString(shape));
    }

    private void convertOnDevice(Stream on, Conversion conversion, long from, long to, int[] shape) {
        switch (conversion) {
            case TO_BF16 -> kernels.f32ToBf16(on, from, to, Tensor.elementCount(shape));
            case FROM_BF16 -> kernels.bf16ToF32(on, from, to, Tensor.elementCount(shape));
            case NCHW_F32_TO_NHWC_BF16 -> kernels.nchwF32ToNhwcBf16(on, from, to, shape[0], shape[1], shape[2], shape[3]);
            case NHWC_BF16_TO_NCHW_F32 -> kernels.nhwcBf16ToNchwF32(on, from, to, shape[0], shape[1], shape[2], shape[3]);
        }
    }

    // ---------------------------------------------------------------- scratch

    /**
     * Backend-lifetime device buffers, one per purpose, used by one op at a time in stream order. Each grows on
     * demand (which waits for the device, so the eager first step of a graph key sizes them before its capture).
     */
    private enum Scratch {
        /** cuDNN's convolution workspace, shared by every algorithm and its search. */
        CONV_WORKSPACE,
        /** A convolution's weights rounded to bf16 and laid out KRSC, for the bf16 path. */
        WEIGHT_BF16,
        /** A bf16 convolution's weight gradient before it is widened into the fp32 gradient. */
        WEIGHT_GRAD_BF16,
        /** Per-chunk partial sums of the bf16 batch-norm kernels. */
        BATCH_NORM_PARTIALS,
        /** Per-chunk partial sums of our bf16 depthwise weight gradient. */
        DEPTHWISE_PARTIALS,
        /** fp32 staging of conversions on the compute stream. */
        CONVERSION,
        /** fp32 staging of conversions on the side stream of a graph step. */
        SIDE_CONVERSION,
        /** A chunk of bf16 input patches for a weight gradient as GEMMs ({@link #runIm2colGemm}). */
        IM2COL,
        /** That weight gradient in fp32 [k][r][s][c], before it is reordered into KCRS. */
        GEMM_WEIGHT_GRADIENT,
        /** Per-sample weight gradients of an fp32 1 x 1 convolution's GEMMs, before they are summed. */
        GEMM_PARTIALS
    }

    /** The scratch buffer of {@code purpose}, grown to at least {@code bytes}; null for 0 bytes never grown. */
    private Tensor scratch(Scratch purpose, long bytes) {
        Tensor current = scratch[purpose.ordinal()];
        if (bytes == 0) return current;
        if (current == null || current.bytes() < bytes) {
            if (mode == Mode.CAPTURE || mode == Mode.REPLAY) {
                throw notCapturable("the step needs more " + purpose + " scratch (" + bytes + " bytes) than its eager warm-up did");
            }
            stream.synchronize(); // the old buffer may still be in use by queued work
            if (copyStream != null) copyStream.synchronize();
            // The old buffer is freed with the backend (own arena): growth happens a few times per shape, early.
            current = allocateUninitialized(own, (int) Math.ceilDiv(bytes, Float.BYTES));
            scratch[purpose.ordinal()] = current;
        }
        return current;
    }

    // ---------------------------------------------------------------- convolution

    /** The algorithm number that stands for our depthwise kernels instead of one of cuDNN's. */
    private static final int OWN_DEPTHWISE = -2, UNSEARCHED = -1;
    /** The algorithm number that stands for cuBLAS GEMMs instead of cuDNN ({@link Gemm}). */
    private static final int GEMM = -3;
    /** The most scratch a GEMM path's chunk takes (im2col patches, per-sample weight gradients). */
    private static final long GEMM_CHUNK_BYTES = 64L << 20;

    /** A convolution that is a GEMM on channels-last tensors: 1 x 1, stride 1, no padding, one group. */
    static boolean pointwise(ConvGeometry g) {
        return g.r() == 1 && g.s() == 1 && g.strideH() == 1 && g.strideW() == 1 && g.padH() == 0 && g.padW() == 0 && g.groups() == 1;
    }

    /** A convolution's geometry and whether it runs on bf16 NHWC tensors (else fp32 NCHW). */
    private record ConvKey(ConvGeometry g, boolean bf16) {}

    /** Descriptors and chosen algorithms of one geometry and precision, per direction; UNSEARCHED until its first call. */
    private final class ConvPlan implements AutoCloseable {
        final ConvGeometry g;
        final boolean bf16;
        final Cudnn.Descriptor x, w, y, conv;
        final int[] algo = {UNSEARCHED, UNSEARCHED, UNSEARCHED};
        final long[] workspaceBytes = new long[3];
        /** The math type each direction's cuDNN algorithm was chosen with, set on {@link #conv} before it runs. */
        final int[] math = new int[3];
        final String[] choice = new String[3];

        ConvPlan(ConvKey key) {
            this.g = key.g();
            this.bf16 = key.bf16();
            List<Cudnn.Descriptor> made = new ArrayList<>();
            try {
                x = add(made, cudnn.tensor(bf16, g.n(), g.c(), g.h(), g.w()));
                w = add(made, cudnn.filter(bf16, g.k(), g.c() / g.groups(), g.r(), g.s()));
                y = add(made, cudnn.tensor(bf16, g.n(), g.k(), g.p(), g.q()));
                // bf16 data is already rounded: tensor cores add nothing lossy, so bf16 always allows them.
                conv = add(made, cudnn.convolution(g.padH(), g.padW(), g.strideH(), g.strideW(), g.groups(), planMath()));
            } catch (RuntimeException e) {
                for (Cudnn.Descriptor d : made) d.close();
                throw e;
            }
        }

        private static Cudnn.Descriptor add(List<Cudnn.Descriptor> made, Cudnn.Descriptor d) {
            made.add(d);
            return d;
        }

        /**
         * The algorithm of a direction, searched on these buffers the first time: cuDNN's fastest (deterministic
         * unless allowed otherwise), or {@link #OWN_DEPTHWISE} when our kernel is faster or chosen by the options.
         * {@code ownOut} is where our kernel writes: {@code out}, except for a bf16 weight gradient, which our
         * kernel writes in fp32 straight into the gradient, and cuDNN in bf16 into {@code out}.
         */
        int algorithm(Cudnn.Direction direction, long a, long b, long out, long ownOut) {
            int i = direction.ordinal();
            if (algo[i] != UNSEARCHED) return algo[i];
            boolean ownFits = bf16 ? NnKernels.supportsDepthwiseNhwc(g) : NnKernels.supportsDepthwise(g);
            if (ownFits && (options.depthwise() == Depthwise.OWN || options.reproducible() && options.depthwise() == Depthwise.FASTEST)) {
                algo[i] = OWN_DEPTHWISE;
                choice[i] = options.depthwise() == Depthwise.OWN ? "own kernel (chosen)" : "own kernel (reproducible: not timed)";
                return algo[i];
            }
            boolean gemmFits = bf16 ? cublasBf16 != null && (pointwise(g) || direction == Cudnn.Direction.BACKWARD_FILTER && g.groups() == 1)
                    : pointwise(g);
            String gemmName = pointwise(g) ? "cuBLAS GEMM" : "cuBLAS im2col GEMM";
            if (gemmFits && (options.gemm() == Gemm.CUBLAS || options.reproducible() && options.gemm() == Gemm.FASTEST)) {
                algo[i] = GEMM;
                choice[i] = gemmName + (options.gemm() == Gemm.CUBLAS ? " (chosen)" : " (reproducible: not timed)");
                return algo[i];
            }
            cudnn.setConvolutionMath(conv, planMath());  // another direction's run may have set its choice's type
            if (options.reproducible()) return heuristicChoice(direction, i);
            Tensor ws = workspace(options.searchWorkspace());
            List<Cudnn.AlgoPerf> found;
            try {
                found = cudnn.find(direction, x, w, conv, y, a, b, out, ptrOrNull(ws),
                        ws == null ? 0 : options.searchWorkspace());
            } catch (CudaException e) {
                if (gemmFits && options.gemm() == Gemm.FASTEST && notSupported(e)) {
                    algo[i] = GEMM;
                    choice[i] = gemmName + " (cuDNN search: " + e.name() + ")";
                    return algo[i];
                }
                if (!ownFits || options.depthwise() != Depthwise.FASTEST || !notSupported(e)) throw e;
                // cuDNN refuses the whole geometry (a grouped bf16 NHWC one, say) where our kernel does it
                algo[i] = OWN_DEPTHWISE;
                choice[i] = "own kernel (cuDNN search: " + e.name() + ")";
                return algo[i];
            }
            Cudnn.AlgoPerf best = found.stream().filter(p -> p.deterministic() || !options.deterministic())
                    .filter(this::runsUnderPlanMath).findFirst().orElse(null);
            if (ownFits && options.depthwise() == Depthwise.FASTEST) {
                float ownMillis = timeOwnDepthwise(direction, g, bf16, a, b, ownOut);
                if (best == null || ownMillis < best.millis()) {
                    algo[i] = OWN_DEPTHWISE;
                    choice[i] = String.format(Locale.ROOT, "own kernel %.3f ms vs cuDNN %s", ownMillis,
                            best == null ? "none" : String.format(Locale.ROOT, "%.3f ms", best.millis()));
                    return algo[i];
                }
            }
            if (gemmFits && options.gemm() == Gemm.FASTEST) {
                float gemmMillis = timed(() -> runGemm(direction, g, bf16, a, b, ownOut));
                if (best == null || gemmMillis < best.millis()) {
                    algo[i] = GEMM;
                    choice[i] = String.format(Locale.ROOT, "%s %.3f ms vs cuDNN %s", gemmName, gemmMillis,
                            best == null ? "none" : String.format(Locale.ROOT, "%.3f ms", best.millis()));
                    return algo[i];
                }
            }
            if (best == null) {
                throw new IllegalStateException("cuDNN has no " + (options.deterministic() ? "deterministic " : "")
                        + "algorithm for " + direction + " of " + g + " within " + options.searchWorkspace()
                        + " bytes of workspace (found: " + found + ")");
            }
            algo[i] = best.algo();
            workspaceBytes[i] = best.workspaceBytes();
            math[i] = mathOf(best);
            choice[i] = String.format(Locale.ROOT, "cuDNN algo %d %.3f ms%s", best.algo(), best.millis(),
                    best.workspaceBytes() > 0 ? ", " + best.workspaceBytes() + " B workspace" : "");
            return algo[i];
        }

        /**
         * cuDNN's heuristic ranking, nothing timed: its first deterministic algorithm whose workspace fits and that
         * {@link #runsUnderPlanMath runs under the plan's math}.
         */
        private int heuristicChoice(Cudnn.Direction direction, int i) {
            List<Cudnn.AlgoPerf> ranked = cudnn.heuristics(direction, x, w, conv, y);
            Cudnn.AlgoPerf best = ranked.stream()
                    .filter(p -> p.deterministic() && p.workspaceBytes() <= options.searchWorkspace())
                    .filter(this::runsUnderPlanMath).findFirst().orElse(null);
            if (best == null) {
                throw new IllegalStateException("cuDNN's heuristics have no deterministic algorithm for " + direction + " of " + g
                        + " within " + options.searchWorkspace() + " bytes of workspace (ranked: " + ranked + ")");
            }
            algo[i] = best.algo();
            workspaceBytes[i] = best.workspaceBytes();
            math[i] = mathOf(best);
            choice[i] = String.format(Locale.ROOT, "cuDNN algo %d (heuristic, reproducible)%s", best.algo(),
                    best.workspaceBytes() > 0 ? ", " + best.workspaceBytes() + " B workspace" : "");
            return algo[i];
        }

        /** The descriptor's own math type: DEFAULT where TF32 is allowed or the data is bf16, else FMA (strict fp32). */
        private int planMath() {
            return options.allowTf32() || bf16 ? Cudnn.DEFAULT_MATH : Cudnn.FMA_MATH;
        }

        /**
         * Whether a found or ranked algorithm may be chosen under the plan's math: any where tensor cores are allowed;
         * in strict fp32 none that reports a tensor-op math type (it may refuse to run under FMA math, which is what
         * decides how a convolution computes, so nothing rounds to TF32 either way).
         */
        private boolean runsUnderPlanMath(Cudnn.AlgoPerf p) {
            return planMath() == Cudnn.DEFAULT_MATH || p.mathType() == Cudnn.FMA_MATH || p.mathType() == Cudnn.DEFAULT_MATH;
        }

        /** The math type to run a choice with: the pair's where tensor cores are allowed, FMA in strict fp32. */
        private int mathOf(Cudnn.AlgoPerf p) {
            return planMath() == Cudnn.FMA_MATH ? Cudnn.FMA_MATH : p.mathType();
        }

        @Override
        public void close() {
            for (Cudnn.Descriptor d : new Cudnn.Descriptor[] {x, w, y, conv}) d.close();
        }
    }

    /**
     * cuDNN 9's statuses that say a configuration is not supported (the CUDNN_STATUS_NOT_SUPPORTED family, 3000-3999,
     * named or not), not that something failed.
     */
    static boolean notSupported(CudaException e) {
        return e.function().startsWith("cudnn") && e.status() >= 3000 && e.status() < 4000;
    }

    private ConvPlan plan(ConvGeometry g, boolean bf16) {
        return convPlans.computeIfAbsent(new ConvKey(g, bf16), ConvPlan::new);
    }

    /** Mean milliseconds of our depthwise kernel for one direction over 3 runs after a warm-up, timed with events. */
    private float timeOwnDepthwise(Cudnn.Direction direction, ConvGeometry g, boolean bf16, long a, long b, long out) {
        long partials = ownDepthwisePartials(direction, g, bf16);
        return timed(() -> runOwnDepthwise(direction, g, bf16, a, b, out, partials));
    }

    /** Mean milliseconds of {@code run} over 3 runs after a warm-up, timed with events on the stream. */
    private float timed(Runnable run) {
        run.run();
        try (ich.gpu.Event start = context.createEvent(); ich.gpu.Event end = context.createEvent()) {
            stream.record(start);
            for (int k = 0; k < 3; k++) run.run();
            stream.record(end);
            end.synchronize();
            return end.millisSince(start) / 3;
        }
    }

    /**
     * How many of {@code items} (output positions, samples) of {@code bytesEach} scratch a GEMM path's chunk takes: at
     * least one, and no more scratch than the search workspace (the search may use that much anyway) or
     * {@link #GEMM_CHUNK_BYTES}.
     */
    private long gemmChunk(long items, long bytesEach) {
        return Math.max(1, Math.min(items, Math.min(GEMM_CHUNK_BYTES, options.searchWorkspace()) / bytesEach));
    }

    /** A convolution direction as cuBLAS GEMMs ({@link Gemm}): buffers as for {@link #convolve}'s cuDNN calls. */
    private void runGemm(Cudnn.Direction direction, ConvGeometry g, boolean bf16, long a, long b, long out) {
        if (!bf16 && pointwise(g)) runGemm1x1Nchw(direction, g, a, b, out);
        else if (bf16 && pointwise(g)) runGemm1x1(direction, g, a, b, out);
        else if (bf16 && direction == Cudnn.Direction.BACKWARD_FILTER) runIm2colGemm(g, a, b, out);
        else throw new IllegalStateException("no GEMM for " + direction + " of " + g);
    }

    /**
     * An fp32 NCHW 1 x 1 convolution ({@link #pointwise}) as cuBLAS GEMMs on the backend's handle (strict fp32, or
     * TF32 where allowed). Per sample, row-major: x_n is [c, hw], w [k, c], y_n [k, hw]; cuBLAS sees each as its
     * transpose.
     * <ul>
     * <li>FORWARD: y_n^T [hw, k] = x_n^T [hw, c] w^T [c, k]: gemm(N, N, hw, k, c) on (x_n, ld hw), (w, ld c) into
     * (y_n, ld hw), one strided-batched call over the samples (w shared: stride 0);
     * <li>BACKWARD_DATA: dx_n^T [hw, c] = dy_n^T [hw, k] w [k, c]: gemm(N, T, hw, c, k) on (dy_n, ld hw), (w, ld c)
     * into (dx_n, ld hw), likewise;
     * <li>BACKWARD_FILTER: dw^T [c, k] = sum over n of x_n [c, hw] dy_n^T [hw, k]: gemm(T, N, c, k, hw) per sample
     * into a chunk of per-sample partial products (strided batched), which one more GEMM with a vector of ones sums
     * into dw in a fixed order, chunk after chunk (beta 1 after the first).
     * </ul>
     * On the H200 cuDNN's fp32 1 x 1 weight gradients ran at 1.4-1.8 TFLOP/s and its data gradients at 4-5, against
     * 10 for its forward passes (batch 32).
     */
    private void runGemm1x1Nchw(Cudnn.Direction direction, ConvGeometry g, long a, long b, long out) {
        long plane = (long) g.h() * g.w();
        if (plane > Integer.MAX_VALUE) throw new IllegalArgumentException("a 1 x 1 convolution's planes are too large for a GEMM: " + g);
        int hw = (int) plane, c = g.c(), k = g.k(), n = g.n();
        switch (direction) {
            case FORWARD -> cublas.sgemmStridedBatched(Cublas.OP_N, Cublas.OP_N, hw, k, c, 1f, a, hw, (long) c * hw, b, c, 0,
                    0f, out, hw, (long) k * hw, n);
            case BACKWARD_DATA -> cublas.sgemmStridedBatched(Cublas.OP_N, Cublas.OP_T, hw, c, k, 1f, b, hw, (long) k * hw, a, c, 0,
                    0f, out, hw, (long) c * hw, n);
            case BACKWARD_FILTER -> {
                long weights = (long) k * c;
                int chunk = (int) gemmChunk(n, weights * Float.BYTES);
                long partials = ptr(scratch(Scratch.GEMM_PARTIALS, chunk * weights * Float.BYTES));
                long ones = ones(chunk);
                for (int n0 = 0; n0 < n; n0 += chunk) {
                    int samples = Math.min(chunk, n - n0);
                    cublas.sgemmStridedBatched(Cublas.OP_T, Cublas.OP_N, c, k, hw, 1f, a + (long) n0 * c * hw * Float.BYTES, hw,
                            (long) c * hw, b + (long) n0 * k * hw * Float.BYTES, hw, (long) k * hw, 0f, partials, c, weights, samples);
                    // dw [weights] (+)= partials^T [weights, samples] ones [samples]
                    cublas.sgemm(Cublas.OP_N, Cublas.OP_N, (int) weights, 1, samples, 1f, partials, (int) weights, ones, samples,
                            n0 == 0 ? 0f : 1f, out, (int) weights);
                }
            }
        }
    }

    /**
     * The weight gradient of a dense bf16 convolution (the stem) as GEMMs: for each chunk of output positions, the
     * input patches (im2col, [rows][r s c] bf16) times that chunk of dy ([rows][k] bf16), summed in fp32 into
     * [k][r s c] (beta 1 after the first chunk: a fixed order), then reordered into the fp32 KCRS gradient.
     * Column-major: [r s c, k] = col^T [r s c, rows] dy [rows, k]: gemm(N, T, r s c, k, rows) on (col, ld r s c),
     * (dy, ld k) into (scratch, ld r s c).
     */
    private void runIm2colGemm(ConvGeometry g, long x, long dy, long dw) {
        long rsc = (long) g.r() * g.s() * g.c(), positions = (long) g.n() * g.p() * g.q();
        long chunk = gemmChunk(positions, rsc * 2);
        if (rsc > Integer.MAX_VALUE || chunk > Integer.MAX_VALUE) throw new IllegalArgumentException("im2col: " + g + " is too large");
        long col = ptr(scratch(Scratch.IM2COL, chunk * rsc * 2));
        long krsc = ptr(scratch(Scratch.GEMM_WEIGHT_GRADIENT, (long) g.k() * rsc * Float.BYTES));
        for (long m0 = 0; m0 < positions; m0 += chunk) {
            long rows = Math.min(chunk, positions - m0);
            kernels.im2colNhwc(stream, g, x, col, m0, rows);
            cublasBf16.gemmEx(Cublas.OP_N, Cublas.OP_T, (int) rsc, g.k(), (int) rows, 1f, col, (int) rsc, dy + m0 * g.k() * 2, g.k(),
                    Cublas.R_16BF, m0 == 0 ? 0f : 1f, krsc, (int) rsc, Cublas.R_32F);
        }
        kernels.nhwcToNchw(stream, krsc, dw, g.k(), g.c(), g.r(), g.s());
    }

    /**
     * A bf16 1 x 1 convolution ({@link #pointwise}) as one cuBLAS GEMM on channels-last tensors, fp32 accumulation.
     * Row-major, with m = n h w: x is [m, c], the bf16 weights [k, c], y [m, k]. cuBLAS is column-major, so each
     * row-major matrix is its transpose there:
     * <ul>
     * <li>FORWARD (a = x, b = w, out = y): y^T [k, m] = w [k, c] x^T [c, m]: gemm(T, N, k, m, c) on (w, ld c), (x, ld c) into (y, ld k);
     * <li>BACKWARD_DATA (a = w, b = dy, out = dx): dx^T [c, m] = w^T [c, k] dy^T [k, m]: gemm(N, N, c, m, k) on (w, ld c),
     * (dy, ld k) into (dx, ld c);
     * <li>BACKWARD_FILTER (a = x, b = dy, out = the fp32 gradient dw [k, c]): dw^T [c, k] = x^T [c, m] dy [m, k]:
     * gemm(N, T, c, k, m) on (x, ld c), (dy, ld k) into (dw, ld c), in fp32.
     * </ul>
     * Napkin math, the 1 x 1 expansion at batch 256, 56 x 56, 24 -> 144: m = 802,816; 2 m c k = 5.5 GFLOP, 270 MB of
     * bf16 traffic: memory bound on an H200 at ~0.1 ms. The backward filter pass reduces over all m rows.
     */
    private void runGemm1x1(Cudnn.Direction direction, ConvGeometry g, long a, long b, long out) {
        long rows = (long) g.n() * g.h() * g.w();
        if (rows > Integer.MAX_VALUE) throw new IllegalArgumentException("a 1 x 1 convolution over " + rows + " positions is too large for one GEMM: " + g);
        int m = (int) rows, c = g.c(), k = g.k();
        switch (direction) {
            case FORWARD -> cublasBf16.gemmEx(Cublas.OP_T, Cublas.OP_N, k, m, c, 1f, b, c, a, c, Cublas.R_16BF, 0f, out, k, Cublas.R_16BF);
            case BACKWARD_DATA -> cublasBf16.gemmEx(Cublas.OP_N, Cublas.OP_N, c, m, k, 1f, a, c, b, k, Cublas.R_16BF, 0f, out, c, Cublas.R_16BF);
            case BACKWARD_FILTER -> cublasBf16.gemmEx(Cublas.OP_N, Cublas.OP_T, c, k, m, 1f, a, c, b, k, Cublas.R_16BF, 0f, out, c, Cublas.R_32F);
        }
    }

    /**
     * Buffers as for cuDNN's search: FORWARD (x, w, y), BACKWARD_DATA (w, dy, dx), BACKWARD_FILTER (x, dy, dw). In
     * bf16 the activations are bf16 NHWC, the weights the bf16 [c][r][s] copy and dw the fp32 gradient itself,
     * summed through {@code partials} ({@link #ownDepthwisePartials}).
     */
    private void runOwnDepthwise(Cudnn.Direction direction, ConvGeometry g, boolean bf16, long a, long b, long out, long partials) {
        if (bf16) {
            switch (direction) {
                case FORWARD -> kernels.depthwiseForwardNhwc(stream, g, a, b, out);
                case BACKWARD_DATA -> kernels.depthwiseBackwardDataNhwc(stream, g, b, a, out);
                case BACKWARD_FILTER -> kernels.depthwiseBackwardFilterNhwc(stream, g, a, b, out, partials);
            }
            return;
        }
        switch (direction) {
            case FORWARD -> kernels.depthwiseForward(stream, g, a, b, out);
            case BACKWARD_DATA -> kernels.depthwiseBackwardData(stream, g, b, a, out);
            case BACKWARD_FILTER -> kernels.depthwiseBackwardFilter(stream, g, a, b, out);
        }
    }

    /** The scratch our bf16 depthwise weight gradient sums through; 0 where the direction needs none. */
    private long ownDepthwisePartials(Cudnn.Direction direction, ConvGeometry g, boolean bf16) {
        if (!bf16 || direction != Cudnn.Direction.BACKWARD_FILTER) return 0;
        return ptr(scratch(Scratch.DEPTHWISE_PARTIALS, NnKernels.depthwiseNhwcWorkspaceBytes(g)));
    }

    /** GPU time of one kind of op over a profile: how many times it ran and its total milliseconds. */
    public record OpTime(String op, long calls, double millis) {}

    private OpProfiler profiler;

    /**
     * Starts timing every op queued from now on with CUDA events, by op name (convolutions by engine, filter size,
     * stride and direction). For eager steps only: {@link #beginStep} is refused while a profile runs.
     */
    public void startProfile() {
        if (profiler != null) throw new IllegalStateException("startProfile: a profile is already running");
        if (active != null) throw new IllegalStateException("startProfile: a graph step is running");
        bind();
        profiler = new OpProfiler(context, stream);
    }

    /** Ends the profile: waits for the device and returns each op's calls and GPU milliseconds, the longest first. */
    public List<OpTime> stopProfile() {
        if (profiler == null) throw new IllegalStateException("stopProfile: no profile is running");
        bind();
        try (OpProfiler p = profiler) {
            profiler = null;
            return p.totals();
        }
    }

    /**
     * Which algorithm runs each convolution searched so far, one line per geometry and direction, e.g.
     * "depthwise 3x3/2 [256,96,128,128] FORWARD: own kernel 0.412 ms vs cuDNN 1.380 ms": for benchmarks and logs.
     */
    public List<String> convolutionChoices() {
        List<String> lines = new ArrayList<>();
        for (ConvPlan p : convPlans.values()) {
            for (Cudnn.Direction d : Cudnn.Direction.values()) {
                if (p.choice[d.ordinal()] == null) continue;
                ConvGeometry g = p.g;
                lines.add(String.format(Locale.ROOT, "%s %dx%d/%d [%d,%d,%d,%d]->%d%s %s: %s", g.depthwise() ? "depthwise"
                        : "conv", g.r(), g.s(), g.strideH(), g.n(), g.c(), g.h(), g.w(), g.k(), p.bf16 ? " bf16" : "", d,
                        p.choice[d.ordinal()]));
            }
        }
        lines.sort(null);
        return lines;
    }

    /** The shared convolution workspace, grown to at least {@code bytes}; null for 0. */
    private Tensor workspace(long bytes) {
        return scratch(Scratch.CONV_WORKSPACE, bytes);
    }

    private long workspacePointer(long bytes) {
        Tensor ws = workspace(bytes);
        return ptrOrNull(ws);
    }

    @Override
    public void conv2dForward(ConvGeometry g, Tensor x, Tensor w, Tensor y) {
        String op = "conv2dForward";
        live(op, x, w, y);
        OpShapes.conv(op, g, x, w, y);
        boolean bf16 = activations(op, x, y);
        float32(op, w);
        convolve(Cudnn.Direction.FORWARD, g, bf16, ptr(x), ptr(w), ptr(y));
    }

    @Override
    public void conv2dBackwardData(ConvGeometry g, Tensor dy, Tensor w, Tensor dx) {
        String op = "conv2dBackwardData";
        live(op, dy, w, dx);
        OpShapes.conv(op, g, dx, w, dy);
        boolean bf16 = activations(op, dy, dx);
        float32(op, w);
        convolve(Cudnn.Direction.BACKWARD_DATA, g, bf16, ptr(w), ptr(dy), ptr(dx));
    }

    @Override
    public void conv2dBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) {
        String op = "conv2dBackwardFilter";
        live(op, x, dy, dw);
        OpShapes.conv(op, g, x, dw, dy);
        boolean bf16 = activations(op, x, dy);
        float32(op, dw);
        convolve(Cudnn.Direction.BACKWARD_FILTER, g, bf16, ptr(x), ptr(dy), ptr(dw));
    }

    /**
     * One direction of a convolution with the algorithm chosen for it (searched on the first call). Buffers as for
     * cuDNN's search: FORWARD (x, w, y), BACKWARD_DATA (w, dy, dx), BACKWARD_FILTER (x, dy, dw), the weights and
     * their gradient always fp32 KCRS. On bf16 activations the weights are rounded into a bf16 KRSC copy first
     * (every use: 2 bytes written per weight, noise next to the activations), and the weight gradient comes out in
     * bf16 and is widened into the fp32 gradient, as autocast does (our depthwise kernel writes it in fp32
     * directly: summed in double, rounding it to bf16 first would only lose bits).
     */
    private void convolve(Cudnn.Direction d, ConvGeometry g, boolean bf16, long a, long b, long out) {
        ConvPlan p = plan(g, bf16);
        boolean gradient = d == Cudnn.Direction.BACKWARD_FILTER;
        long weights = (long) g.k() * (g.c() / g.groups()) * g.r() * g.s();
        long wBf16 = bf16 ? ptr(scratch(gradient ? Scratch.WEIGHT_GRAD_BF16 : Scratch.WEIGHT_BF16, weights * 2)) : 0;
        if (bf16 && !gradient) {
            long w = d == Cudnn.Direction.FORWARD ? b : a;
            queue("weights to bf16", () -> kernels.nchwF32ToNhwcBf16(stream, w, wBf16, g.k(), g.c() / g.groups(), g.r(), g.s()), w, wBf16);
        }
        // In bf16 the bf16 copy stands in for the fp32 weights (or, written by cuDNN, for their gradient).
        long x0 = bf16 && d == Cudnn.Direction.BACKWARD_DATA ? wBf16 : a;
        long x1 = bf16 && d == Cudnn.Direction.FORWARD ? wBf16 : b;
        long x2 = bf16 && gradient ? wBf16 : out;
        int algo = p.algorithm(d, x0, x1, x2, out);
        // e.g. "own depthwise 3x3/2 BACKWARD_FILTER", "cuDNN conv 1x1 FORWARD": the op's name in profiles
        String kind = String.format(Locale.ROOT, "%s %dx%d%s %s", g.depthwise() ? "depthwise" : "conv", g.r(), g.s(),
                g.strideH() == 1 && g.strideW() == 1 ? "" : "/" + g.strideH(), d);
        if (algo == OWN_DEPTHWISE) {
            long partials = ownDepthwisePartials(d, g, bf16);
            queue("own " + kind, () -> runOwnDepthwise(d, g, bf16, x0, x1, out, partials), x0, x1, out, partials, bf16 ? 1 : 0);
            return;
        }
        if (algo == GEMM) {
            // the weight gradient straight into the fp32 gradient, as our depthwise kernels write it
            queue("cuBLAS " + kind, () -> runGemm(d, g, bf16, x0, x1, out), x0, x1, out, bf16 ? 1 : 0);
            return;
        }
        long wsBytes = p.workspaceBytes[d.ordinal()], ws = workspacePointer(wsBytes);
        int math = p.math[d.ordinal()];
        queue("cuDNN " + kind, () -> {
            // the three directions share the descriptor, each with its own algorithm's math type
            cudnn.setConvolutionMath(p.conv, math);
            switch (d) {
                case FORWARD -> cudnn.convolutionForward(p.x, x0, p.w, x1, p.conv, algo, ws, wsBytes, p.y, x2);
                case BACKWARD_DATA -> cudnn.convolutionBackwardData(p.w, x0, p.y, x1, p.conv, algo, ws, wsBytes, p.x, x2);
                case BACKWARD_FILTER -> cudnn.convolutionBackwardFilter(p.x, x0, p.y, x1, p.conv, algo, ws, wsBytes, p.w, x2);
            }
        }, x0, x1, x2, algo, bf16 ? 1 : 0);
        if (bf16 && gradient) {
            queue("weight gradient to fp32", () -> kernels.nhwcBf16ToNchwF32(stream, wBf16, out, g.k(), g.c() / g.groups(), g.r(), g.s()), wBf16, out);
        }
    }

    // ---------------------------------------------------------------- batch norm

    /** cuDNN's descriptors for an input shape [n, c, h, w] and its per-channel [1, c, 1, 1]. */
    private record BnPlan(Cudnn.Descriptor x, Cudnn.Descriptor perChannel) implements AutoCloseable {
        @Override
        public void close() {
            perChannel.close();
            x.close();
        }
    }

    private BnPlan bnPlan(String op, Tensor x) {
        int c = channels(op, x);
        int n = x.dim(0);
        long spatial = x.size() / ((long) n * c);
        if (spatial > Integer.MAX_VALUE) throw new IllegalArgumentException(op + ": planes of " + x + " too large");
        List<Integer> key = List.of(n, c, (int) spatial);
        BnPlan plan = bnPlans.get(key);
        if (plan == null) {
            Cudnn.Descriptor xd = cudnn.tensor(n, c, (int) spatial, 1);
            try {
                plan = new BnPlan(xd, cudnn.batchNormParameters(xd));
            } catch (RuntimeException e) {
                xd.close();
                throw e;
            }
            bnPlans.put(key, plan);
        }
        return plan;
    }

    /** The bf16 batch-norm kernels' scratch for m rows of c channels (always a real buffer: the kernels need one). */
    private Tensor batchNormPartials(long m, int c) {
        return scratch(Scratch.BATCH_NORM_PARTIALS, Math.max(Float.BYTES, NnKernels.batchNormWorkspaceBytes(m, c)));
    }

    private static void epsilon(String op, double eps) {
        // cuDNN 9's CUDNN_BN_MIN_EPSILON is 0 (it was 1e-5 before); 1 / sqrt(var + eps) needs eps > 0 for a constant channel.
        if (!(eps > 0)) throw new IllegalArgumentException(op + ": eps must be positive, got " + eps);
    }

    @Override
    public void batchNormForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                         double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        String op = "batchNormForwardTraining";
        live(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        OpShapes.batchNormTraining(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        epsilon(op, eps);
        float32(op, gamma, beta, runningMean, runningVar, saveMean, saveInvStd);
        if (activations(op, x, y)) {
            long m = x.size() / x.dim(1), work = ptr(batchNormPartials(m, x.dim(1)));
            int c = x.dim(1);
            queue("batchNormForwardTraining bf16", () -> kernels.batchNormForwardTrainingNhwc(stream, ptr(x), ptr(gamma), ptr(beta),
                    ptr(runningMean), ptr(runningVar), momentum, eps, ptr(y), ptr(saveMean), ptr(saveInvStd), m, c, work),
                    ptr(x), ptr(y), ptr(gamma), ptr(beta), ptr(runningMean), ptr(runningVar), ptr(saveMean), ptr(saveInvStd), m, c, work);
            return;
        }
        BnPlan p = bnPlan(op, x);
        queue("batchNormForwardTraining", () -> cudnn.batchNormForwardTraining(p.x(), ptr(x), ptr(y), p.perChannel(), ptr(gamma),
                ptr(beta), momentum, ptr(runningMean), ptr(runningVar), eps, ptr(saveMean), ptr(saveInvStd)),
                ptr(x), ptr(y), ptr(gamma), ptr(beta), ptr(runningMean), ptr(runningVar), ptr(saveMean), ptr(saveInvStd));
    }

    @Override
    public void batchNormForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                          double eps, Tensor y) {
        String op = "batchNormForwardInference";
        live(op, x, gamma, beta, runningMean, runningVar, y);
        OpShapes.batchNormInference(op, x, gamma, beta, runningMean, runningVar, y);
        epsilon(op, eps);
        float32(op, gamma, beta, runningMean, runningVar);
        if (activations(op, x, y)) {
            long m = x.size() / x.dim(1);
            int c = x.dim(1);
            queue("batchNormForwardInference bf16", () -> kernels.batchNormForwardInferenceNhwc(stream, ptr(x), ptr(gamma), ptr(beta),
                    ptr(runningMean), ptr(runningVar), eps, ptr(y), m, c),
                    ptr(x), ptr(y), ptr(gamma), ptr(beta), ptr(runningMean), ptr(runningVar), m, c);
            return;
        }
        BnPlan p = bnPlan(op, x);
        queue("batchNormForwardInference", () -> cudnn.batchNormForwardInference(p.x(), ptr(x), ptr(y), p.perChannel(), ptr(gamma),
                ptr(beta), ptr(runningMean), ptr(runningVar), eps), ptr(x), ptr(y), ptr(gamma), ptr(beta), ptr(runningMean), ptr(runningVar));
    }

    @Override
    public void batchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, double eps,
                                  Tensor dx, Tensor dgamma, Tensor dbeta) {
        String op = "batchNormBackward";
        live(op, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        OpShapes.batchNormBackward(op, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        epsilon(op, eps);
        float32(op, gamma, saveMean, saveInvStd, dgamma, dbeta);
        if (activations(op, x, dy, dx)) {
            long m = x.size() / x.dim(1), work = ptr(batchNormPartials(m, x.dim(1)));
            int c = x.dim(1);
            queue("batchNormBackward bf16", () -> kernels.batchNormBackwardNhwc(stream, ptr(x), ptr(dy), ptr(gamma), ptr(saveMean),
                    ptr(saveInvStd), ptr(dx), ptr(dgamma), ptr(dbeta), m, c, work),
                    ptr(x), ptr(dy), ptr(dx), ptr(gamma), ptr(dgamma), ptr(dbeta), ptr(saveMean), ptr(saveInvStd), m, c, work);
            return;
        }
        BnPlan p = bnPlan(op, x);
        queue("batchNormBackward", () -> cudnn.batchNormBackward(p.x(), ptr(x), ptr(dy), ptr(dx), p.perChannel(), ptr(gamma),
                ptr(dgamma), ptr(dbeta), eps, ptr(saveMean), ptr(saveInvStd)),
                ptr(x), ptr(dy), ptr(dx), ptr(gamma), ptr(dgamma), ptr(dbeta), ptr(saveMean), ptr(saveInvStd));
    }

    // ---------------------------------------------------------------- batch norm + SiLU, fused

    /** bf16 channels-last only: there batch norm runs on our kernels, which apply SiLU in the same pass. */
    @Override
    public boolean fusesBatchNormSilu(Storage storage) {
        return Storage.BF16_NHWC.equals(storage);
    }

    @Override
    public void batchNormSiluForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                             double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        String op = "batchNormSiluForwardTraining";
        live(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        OpShapes.batchNormTraining(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        epsilon(op, eps);
        float32(op, gamma, beta, runningMean, runningVar, saveMean, saveInvStd);
        fusedBf16(op, x, y);
        long m = x.size() / x.dim(1), work = ptr(batchNormPartials(m, x.dim(1)));
        int c = x.dim(1);
        queue(op + " bf16", () -> kernels.batchNormSiluForwardTrainingNhwc(stream, ptr(x), ptr(gamma), ptr(beta), ptr(runningMean),
                ptr(runningVar), momentum, eps, ptr(y), ptr(saveMean), ptr(saveInvStd), m, c, work),
                ptr(x), ptr(y), ptr(gamma), ptr(beta), ptr(runningMean), ptr(runningVar), ptr(saveMean), ptr(saveInvStd), m, c, work);
    }

    @Override
    public void batchNormSiluForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                              double eps, Tensor y) {
        String op = "batchNormSiluForwardInference";
        live(op, x, gamma, beta, runningMean, runningVar, y);
        OpShapes.batchNormInference(op, x, gamma, beta, runningMean, runningVar, y);
        epsilon(op, eps);
        float32(op, gamma, beta, runningMean, runningVar);
        fusedBf16(op, x, y);
        long m = x.size() / x.dim(1);
        int c = x.dim(1);
        queue(op + " bf16", () -> kernels.batchNormSiluForwardInferenceNhwc(stream, ptr(x), ptr(gamma), ptr(beta), ptr(runningMean),
                ptr(runningVar), eps, ptr(y), m, c), ptr(x), ptr(y), ptr(gamma), ptr(beta), ptr(runningMean), ptr(runningVar), m, c);
    }

    @Override
    public void batchNormSiluBackward(Tensor x, Tensor dy, Tensor gamma, Tensor beta, Tensor saveMean, Tensor saveInvStd,
                                      double eps, Tensor dx, Tensor dgamma, Tensor dbeta) {
        String op = "batchNormSiluBackward";
        live(op, x, dy, gamma, beta, saveMean, saveInvStd, dx, dgamma, dbeta);
        OpShapes.batchNormBackward(op, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        OpShapes.perChannel(op, x.dim(1), beta);
        epsilon(op, eps);
        float32(op, gamma, beta, saveMean, saveInvStd, dgamma, dbeta);
        fusedBf16(op, x, dy, dx);
        long m = x.size() / x.dim(1), work = ptr(batchNormPartials(m, x.dim(1)));
        int c = x.dim(1);
        queue(op + " bf16", () -> kernels.batchNormSiluBackwardNhwc(stream, ptr(x), ptr(dy), ptr(gamma), ptr(beta), ptr(saveMean),
                ptr(saveInvStd), ptr(dx), ptr(dgamma), ptr(dbeta), m, c, work),
                ptr(x), ptr(dy), ptr(dx), ptr(gamma), ptr(beta), ptr(dgamma), ptr(dbeta), ptr(saveMean), ptr(saveInvStd), m, c, work);
    }

    /** The fused ops take bf16 channels-last image tensors only ({@link #fusesBatchNormSilu}). */
    private void fusedBf16(String op, Tensor... images) {
        if (!activations(op, images)) {
            throw new IllegalArgumentException(op + ": fused batch norm + SiLU runs on bf16 channels-last tensors, got "
                    + images[0].storage() + " (fusesBatchNormSilu says which)");
        }
    }

    // ---------------------------------------------------------------- element-wise

    @Override
    public void silu(Tensor x, Tensor y) {
        if (elementwise("silu", x, y)) {
            queue("silu bf16", () -> kernels.siluBf16(stream, ptr(x), ptr(y), x.size()), ptr(x), ptr(y), x.size());
            return;
        }
        queue("silu", () -> kernels.silu(stream, ptr(x), ptr(y), x.size()), ptr(x), ptr(y), x.size());
    }

    @Override
    public void siluBackward(Tensor x, Tensor dy, Tensor dx) {
        if (elementwise("siluBackward", x, dy, dx)) {
            queue("siluBackward bf16", () -> kernels.siluBackwardBf16(stream, ptr(x), ptr(dy), ptr(dx), x.size()), ptr(x), ptr(dy), ptr(dx), x.size());
            return;
        }
        queue("siluBackward", () -> kernels.siluBackward(stream, ptr(x), ptr(dy), ptr(dx), x.size()), ptr(x), ptr(dy), ptr(dx), x.size());
    }

    /** fp32 only: in EfficientNet the sigmoid gates squeeze-excitation's [n, c] vectors, which stay fp32. */
    @Override
    public void sigmoid(Tensor x, Tensor y) {
        elementwise("sigmoid", x, y);
        float32("sigmoid", x, y);
        queue("sigmoid", () -> kernels.sigmoid(stream, ptr(x), ptr(y), x.size()), ptr(x), ptr(y), x.size());
    }

    @Override
    public void sigmoidBackward(Tensor y, Tensor dy, Tensor dx) {
        elementwise("sigmoidBackward", y, dy, dx);
        float32("sigmoidBackward", y, dy, dx);
        queue("sigmoidBackward", () -> kernels.sigmoidBackward(stream, ptr(y), ptr(dy), ptr(dx), y.size()), ptr(y), ptr(dy), ptr(dx), y.size());
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor y) {
        if (elementwise("add", a, b, y)) {
            queue("add bf16", () -> kernels.addBf16(stream, ptr(a), ptr(b), ptr(y), a.size()), ptr(a), ptr(b), ptr(y), a.size());
            return;
        }
        queue("add", () -> kernels.add(stream, ptr(a), ptr(b), ptr(y), a.size()), ptr(a), ptr(b), ptr(y), a.size());
    }

    @Override
    public void accumulate(Tensor into, Tensor from) {
        if (elementwise("accumulate", into, from)) {
            queue("accumulate bf16", () -> kernels.accumulateBf16(stream, ptr(into), ptr(from), into.size()), ptr(into), ptr(from), into.size());
            return;
        }
        queue("accumulate", () -> kernels.accumulate(stream, ptr(into), ptr(from), into.size()), ptr(into), ptr(from), into.size());
    }

    @Override
    public void multiplyByMask(Tensor x, Tensor mask, Tensor y) {
        String op = "multiplyByMask";
        boolean bf16 = elementwise(op, x, y);
        live(op, mask);
        float32(op, mask);
        long perSample;
        if (mask.size() == x.size()) perSample = 1;
        else if (mask.size() == x.dim(0)) perSample = x.size() / x.dim(0);
        else throw new IllegalArgumentException(op + ": mask " + mask + " should have the shape of " + x + " or [n]");
        if (perSample == 1 && !x.storage().rowMajorFor(x.shape())) {
            throw new IllegalArgumentException(op + ": an element-wise mask is in NCHW order and " + x
                    + " is channels-last; masks of whole samples ([n]) work in any order");
        }
        if (bf16) {
            queue("multiplyByMask bf16", () -> kernels.multiplyByMaskBf16(stream, ptr(x), ptr(mask), ptr(y), x.size(), perSample),
                    ptr(x), ptr(mask), ptr(y), x.size(), perSample);
            return;
        }
        queue("multiplyByMask", () -> kernels.multiplyByMask(stream, ptr(x), ptr(mask), ptr(y), x.size(), perSample), ptr(x), ptr(mask), ptr(y), x.size(), perSample);
    }

    @Override
    public void scale(Tensor t, float factor) {
        if (elementwise("scale", t)) {
            queue("scale bf16", () -> kernels.scaleBf16(stream, ptr(t), factor, t.size()), ptr(t), t.size(), Float.floatToRawIntBits(factor));
            return;
        }
        queue("scale", () -> kernels.scale(stream, ptr(t), factor, t.size()), ptr(t), t.size(), Float.floatToRawIntBits(factor));
    }

    /** Through cuBLAS's dot product (float accumulation in a fixed tree), so within ~1e-6 of the CPU's double sum. */
    @Override
    public double sumOfSquares(Tensor t) {
        elementwise("sumOfSquares", t);
        float32("sumOfSquares", t);
        if (mode != Mode.EAGER) throw notCapturable("sumOfSquares (gradient clipping) waits for the device mid-step");
        double sum = 0;
        long base = ptr(t);
        for (long done = 0; done < t.size(); ) {
            int n = (int) Math.min(Integer.MAX_VALUE / 2, t.size() - done);
            long at = base + done * Float.BYTES;
            sum += cublas.sdot(n, at, at);
            done += n;
        }
        return sum;
    }

    // ---------------------------------------------------------------- squeeze-and-excitation and pooling

    @Override
    public void scaleChannels(Tensor x, Tensor s, Tensor y) {
        String op = "scaleChannels";
        boolean bf16 = elementwise(op, x, y);
        live(op, s);
        float32(op, s);
        long planes = planes(op, x, s);
        if (bf16) {
            int n = x.dim(0), c = x.dim(1);
            long hw = x.size() / planes;
            queue("scaleChannels bf16", () -> kernels.scaleChannelsNhwc(stream, ptr(x), ptr(s), ptr(y), n, hw, c), ptr(x), ptr(s), ptr(y), planes, x.size());
            return;
        }
        queue("scaleChannels", () -> kernels.scaleChannels(stream, ptr(x), ptr(s), ptr(y), planes, x.size() / planes), ptr(x), ptr(s), ptr(y), planes, x.size());
    }

    @Override
    public void scaleChannelsBackward(Tensor x, Tensor s, Tensor dy, Tensor dx, Tensor ds) {
        String op = "scaleChannelsBackward";
        boolean bf16 = dx == null ? elementwise(op, x, dy) : elementwise(op, x, dy, dx);
        live(op, s, ds);
        float32(op, s, ds);
        long planes = planes(op, x, s);
        planes(op, x, ds);
        if (bf16) {
            int n = x.dim(0), c = x.dim(1);
            long hw = x.size() / planes;
            queue("scaleChannelsBackward bf16", () -> kernels.scaleChannelsBackwardNhwc(stream, ptr(x), ptr(s), ptr(dy), ptrOrNull(dx), ptr(ds), n, hw, c),
                    ptr(x), ptr(s), ptr(dy), ptrOrNull(dx), ptr(ds), planes, x.size());
            return;
        }
        queue("scaleChannelsBackward", () -> kernels.scaleChannelsBackward(stream, ptr(x), ptr(s), ptr(dy), ptrOrNull(dx), ptr(ds), planes, x.size() / planes),
                ptr(x), ptr(s), ptr(dy), ptrOrNull(dx), ptr(ds), planes, x.size());
    }

    @Override
    public void scaleChannelsInputGradient(Tensor dy, Tensor s, Tensor dPooled, Tensor dx) {
        String op = "scaleChannelsInputGradient";
        boolean bf16 = elementwise(op, dy, dx);
        live(op, s, dPooled);
        float32(op, s, dPooled);
        long planes = planes(op, dy, s);
        planes(op, dy, dPooled);
        long hw = dy.size() / planes;
        if (bf16) {
            int n = dy.dim(0), c = dy.dim(1);
            queue("scaleChannelsInputGradient bf16", () -> kernels.scaleChannelsInputGradientNhwc(stream, ptr(dy), ptr(s), ptr(dPooled), ptr(dx), n, hw, c),
                    ptr(dy), ptr(s), ptr(dPooled), ptr(dx), planes, dy.size());
            return;
        }
        queue("scaleChannelsInputGradient", () -> kernels.scaleChannelsInputGradient(stream, ptr(dy), ptr(s), ptr(dPooled), ptr(dx), planes, hw),
                ptr(dy), ptr(s), ptr(dPooled), ptr(dx), planes, dy.size());
    }

    @Override
    public void globalAveragePool(Tensor x, Tensor y) {
        String op = "globalAveragePool";
        live(op, x, y);
        float32(op, y);
        long planes = planes(op, x, y);
        if (activations(op, x)) {
            int n = x.dim(0), c = x.dim(1);
            long hw = x.size() / planes;
            queue("globalAveragePool bf16", () -> kernels.globalAveragePoolNhwc(stream, ptr(x), ptr(y), n, hw, c), ptr(x), ptr(y), planes, x.size());
            return;
        }
        queue("globalAveragePool", () -> kernels.globalAveragePool(stream, ptr(x), ptr(y), planes, x.size() / planes), ptr(x), ptr(y), planes, x.size());
    }

    @Override
    public void globalAveragePoolBackward(Tensor dy, Tensor dx) {
        String op = "globalAveragePoolBackward";
        live(op, dy, dx);
        float32(op, dy);
        long planes = planes(op, dx, dy);
        if (activations(op, dx)) {
            int n = dx.dim(0), c = dx.dim(1);
            long hw = dx.size() / planes;
            queue("globalAveragePoolBackward bf16", () -> kernels.globalAveragePoolBackwardNhwc(stream, ptr(dy), ptr(dx), n, hw, c), ptr(dy), ptr(dx), planes, dx.size());
            return;
        }
        queue("globalAveragePoolBackward", () -> kernels.globalAveragePoolBackward(stream, ptr(dy), ptr(dx), planes, dx.size() / planes), ptr(dy), ptr(dx), planes, dx.size());
    }

    // ---------------------------------------------------------------- fully connected

    /*
     * cuBLAS is column-major; a row-major [r, c] matrix is the column-major [c, r] matrix, i.e. its transpose.
     * With x [n, in], w [out, in], y [n, out] row-major:
     *   y^T (out x n)  = w (out x in, = op T of the stored in x out) * x^T (in x n, as stored)   -> sgemm(T, N)
     *   dx^T (in x n)  = w^T (in x out, as stored) * dy^T (out x n, as stored)                   -> sgemm(N, N)
     *   dw^T (in x out) = x^T (in x n, as stored) * dy (n x out, = op T of the stored out x n)   -> sgemm(N, T)
     *   db (out x 1)   = dy^T (out x n, as stored) * ones (n x 1)                                -> sgemm(N, N)
     *   bias: y^T += b (out x 1) * ones^T (1 x n)                                                -> sgemm(N, N), beta 1
     */

    @Override
    public void linearForward(Tensor x, Tensor w, Tensor b, Tensor y) {
        String op = "linearForward";
        live(op, x, w, y);
        if (b != null) live(op, b);
        float32(op, x, w, b, y);
        int[] d = linearDims(op, x, w, b);
        int n = d[0], in = d[1], out = d[2];
        shape(op, "output", y, n, out);
        long onesPointer = b == null ? 0 : ones(n);
        queue("linearForward", () -> {
            cublas.sgemm(Cublas.OP_T, Cublas.OP_N, out, n, in, 1f, ptr(w), in, ptr(x), in, 0f, ptr(y), out);
            if (b != null) cublas.sgemm(Cublas.OP_N, Cublas.OP_N, out, n, 1, 1f, ptr(b), out, onesPointer, 1, 1f, ptr(y), out);
        }, ptr(x), ptr(w), ptrOrNull(b), ptr(y), n, in, out);
    }

    @Override
    public void linearBackward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, Tensor db) {
        String op = "linearBackward";
        live(op, x, w, dy, dw);
        int[] d = linearDims(op, x, w, db);
        int n = d[0], in = d[1], out = d[2];
        shape(op, "output gradient", dy, n, out);
        shape(op, "weight gradient", dw, w.shape());
        if (dx != null) {
            live(op, dx);
            if (dx.size() != x.size()) throw new IllegalArgumentException(op + ": input gradient " + dx + " should match " + x);
        }
        if (db != null) live(op, db);
        float32(op, x, w, dy, dx, dw, db);
        long onesPointer = db == null ? 0 : ones(n);
        queue(op, () -> {
            if (dx != null) cublas.sgemm(Cublas.OP_N, Cublas.OP_N, in, n, out, 1f, ptr(w), in, ptr(dy), out, 0f, ptr(dx), in);
            cublas.sgemm(Cublas.OP_N, Cublas.OP_T, in, out, n, 1f, ptr(x), in, ptr(dy), out, 0f, ptr(dw), in);
            if (db != null) cublas.sgemm(Cublas.OP_N, Cublas.OP_N, out, 1, n, 1f, ptr(dy), out, onesPointer, n, 0f, ptr(db), out);
        }, ptr(x), ptr(w), ptr(dy), ptrOrNull(dx), ptr(dw), ptrOrNull(db), n, in, out);
    }

    /** A device vector of at least n ones (for bias GEMMs). */
    private long ones(int n) {
        if (ones == null || ones.size() < n) {
            int length = Math.max(n, 256);
            ones = allocateUninitialized(own, length);
            stream.fill32(ptr(ones), Float.floatToRawIntBits(1f), length);
        }
        return ptr(ones);
    }

    // ---------------------------------------------------------------- loss

    @Override
    public double bceWithLogits(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits) {
        if (mode != Mode.EAGER) throw notCapturable("bceWithLogits waits for the loss mid-step: use bceWithLogitsLater");
        return bceWithLogitsLater(logits, targets, labelWeights, dLogits).getAsDouble();
    }

    /**
     * Queues the loss kernel; the loss lands in the next cell of a ring of {@link #LOSS_CELLS} device doubles (in a
     * replay, the cell it was captured with) and is copied from there into the next slot of a ring of as many
     * pinned host doubles, with an event after the copy: in an eager step
     * right after the kernel, in a graph step after the graph's launch ({@link #endStep}). Reading the loss waits
     * for that event only, not for the work queued after it, so a caller may queue the next step before it reads
     * this one's loss and the device never idles between steps. A supplier stays readable until {@link #LOSS_CELLS}
     * later losses have been queued; read later, it throws rather than give another step's loss.
     */
    @Override
    public java.util.function.DoubleSupplier bceWithLogitsLater(Tensor logits, Tensor targets, Tensor labelWeights,
                                                                Tensor dLogits) {
        String op = "bceWithLogits";
        live(op, logits, targets);
        OpShapes.bceWithLogits(op, logits, targets, labelWeights, dLogits);
        if (labelWeights != null) live(op, labelWeights);
        if (dLogits != null) live(op, dLogits);
        float32(op, logits, targets, labelWeights, dLogits);
        return queueLoss(logits, targets, labelWeights, dLogits, logits.dim(0), logits.dim(1));
    }

    static final int LOSS_CELLS = 64;
    private int nextLossCell, nextLossSlot;
    /** The host side of the loss ring: each loss is copied into the next slot, whichever device cell holds it. */
    private ich.gpu.PinnedBuffer lossSlots;
    /** Recorded after each slot's copy; reading a slot waits for its event. */
    private final ich.gpu.Event[] lossCopied = new ich.gpu.Event[LOSS_CELLS];
    /** How many losses each slot has been given, so a supplier can tell that its slot was reused. */
    private final long[] lossSlotUses = new long[LOSS_CELLS];
    /** The losses of the graph step in progress: copied out after its launch, by {@link #endStep}. */
    private final List<LossReadOut> pendingReadOuts = new ArrayList<>();

    /** A loss on its way to the host: device cell, host slot, and whether its copy is queued yet. */
    private static final class LossReadOut {
        final long cell;
        final int slot;
        final long use;
        boolean queued;

        LossReadOut(long cell, int slot, long use) {
            this.cell = cell;
            this.slot = slot;
            this.use = use;
        }
    }

    private java.util.function.DoubleSupplier queueLoss(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits,
                                                        int n, int labels) {
        if (lossCell == null) {
            lossCell = allocateUninitialized(own, 2 * LOSS_CELLS); // doubles
            lossSlots = context.allocatePinned((long) Double.BYTES * LOSS_CELLS);
        }
        long cell;
        if (mode == Mode.REPLAY) {
            // the captured kernel writes the cell it was captured with
            if (replayLoss >= active.lossCells.size()) throw diverged("a loss the captured step did not compute");
            cell = active.lossCells.get(replayLoss++);
        } else {
            cell = ptr(lossCell) + (long) Double.BYTES * nextLossCell;
            nextLossCell = (nextLossCell + 1) % LOSS_CELLS;
            if (mode == Mode.CAPTURE) active.lossCells.add(cell);
        }
        long z = ptr(logits), t = ptr(targets), w = ptrOrNull(labelWeights), dz = ptrOrNull(dLogits);
        queue("bceWithLogits", () -> kernels.bceWithLogits(stream, z, t, w, dz, cell, n, labels), z, t, w, dz, cell, n, labels);
        // Host slots take turns on their own: a replay writes its captured cell every time, and its loss must
        // stay readable after the next replay has been queued.
        int slot = nextLossSlot;
        nextLossSlot = (nextLossSlot + 1) % LOSS_CELLS;
        LossReadOut readOut = new LossReadOut(cell, slot, ++lossSlotUses[slot]);
        if (mode == Mode.EAGER) queueReadOut(readOut);
        else pendingReadOuts.add(readOut);
        return () -> {
            if (mode != Mode.EAGER) throw notCapturable("reading a loss while a graph step is being queued (call endStep first)");
            if (!readOut.queued) throw new IllegalStateException("the loss of an abandoned graph step was never computed");
            if (lossSlotUses[readOut.slot] != readOut.use) {
                throw new IllegalStateException("loss read after " + LOSS_CELLS + " later losses were queued: its slot holds another one now");
            }
            bind();
            lossCopied[readOut.slot].synchronize();
            return lossSlots.segment().get(ValueLayout.JAVA_DOUBLE, (long) Double.BYTES * readOut.slot);
        };
    }

    /** Copies a loss into its pinned slot behind the work queued so far, and records the slot's event. */
    private void queueReadOut(LossReadOut r) {
        if (lossCopied[r.slot] == null) lossCopied[r.slot] = context.createEvent();
        stream.copyToHost(r.cell, lossSlots.segment().asSlice((long) Double.BYTES * r.slot, Double.BYTES), Double.BYTES);
        stream.record(lossCopied[r.slot]);
        r.queued = true;
    }

    // ---------------------------------------------------------------- optimiser

    @Override
    public void adamStep(Tensor param, Tensor grad, Tensor m, Tensor v, long step, double lr, double beta1, double beta2,
                         double eps, double weightDecay, boolean decoupled) {
        elementwise("adamStep", param, grad, m, v);
        float32("adamStep", param, grad, m, v);
        if (mode != Mode.EAGER) {
            throw notCapturable("adamStep takes the learning rate and bias corrections by value, which a graph would freeze");
        }
        kernels.adamStep(stream, ptr(param), ptr(grad), ptr(m), ptr(v), param.size(), step, lr, beta1, beta2, eps,
                weightDecay, decoupled);
    }

    // ---------------------------------------------------------------- CUDA graphs of whole steps

    /**
     * How ops are queued. EAGER: each op runs as it is called. CAPTURE: ops are recorded into a CUDA graph on the
     * stream and their fingerprints (op, device addresses, sizes) kept. REPLAY: ops queue nothing; each must match
     * the captured fingerprint at its position, and {@link #endStep} launches the graph. In CAPTURE and REPLAY,
     * copies into the device run at once on a side stream ("hoisted"): they bring the step's new inputs (images,
     * labels, dropout masks) into the same buffers every time, and the graph waits for them.
     */
    private enum Mode { EAGER, CAPTURE, REPLAY }

    /** One key's captured step: its memory pool (stable addresses), fingerprints, loss cells and the graph. */
    private final class StepGraph implements AutoCloseable {
        final DeviceStepArena.Pool pool = new DeviceStepArena.Pool(context, CudaBackend.this::allocated, CudaBackend.this::freed);
        final List<String> ops = new ArrayList<>();
        final List<Long> lossCells = new ArrayList<>();
        int runs;
        ich.gpu.Graph graph;

        @Override
        public void close() {
            if (graph != null) graph.close();
            pool.close();
        }
    }

    /** Thrown when an op cannot be part of a CUDA graph; the step should run without one. */
    public static final class NotCapturableException extends IllegalStateException {
        NotCapturableException(String message) {
            super(message);
        }
    }

    private Mode mode = Mode.EAGER;
    private final Map<Object, StepGraph> graphs = new HashMap<>();
    private StepGraph active;
    private int replayOp, replayLoss;
    private final java.util.Set<Long> usedThisStep = new java.util.HashSet<>();
    private Stream copyStream;
    /**
     * Recorded on the compute stream as a graph step begins; the side stream waits for it, because the step's
     * hoisted copies overwrite the inputs of the step before, which may still be running (the caller need not have
     * read that step's loss yet).
     */
    private ich.gpu.Event stepStart;
    /**
     * Pinned staging for hoisted host-to-device copies (images of a CPU loader, labels, masks): two buffers that
     * graph steps use in turn, a turn a step (see {@link ich.gpu.PinnedTurns}), each marked after the step's copies:
     * the host rewrites a buffer only once the copies of the step before last are done, while the previous step's
     * copies may still wait for the step before them. Made with the side stream.
     */
    private ich.gpu.PinnedTurns staging;
    /** Each staging buffer's size: one step's hoisted host-to-device copies must fit. */
    private static final long STAGING_BYTES = 256L << 20;

    /**
     * Starts a training step that runs as a CUDA graph. Steps with the same {@code key} must make the same calls
     * with the same shapes (the key should hold the batch size and whatever changes the op sequence, such as the
     * set of trainable parameters). The first step of a key runs eagerly (cuDNN's algorithm searches, the key's
     * memory pool fills), the second is captured and then launched, later ones replay the graph. Call
     * {@link #endStep} after the step's last op and before reading its loss; {@link #abandonStep} on failure.
     *
     * @return the mode this step runs in: "eager", "capture" or "replay", for logs
     */
    public String beginStep(Object key) {
        if (active != null) throw new IllegalStateException("beginStep: the previous step did not end");
        if (profiler != null) {
            throw new IllegalStateException("beginStep: the op profile times eager ops one by one; a graph replays them as one (stop the profile first)");
        }
        bind();
        StepGraph g = graphs.computeIfAbsent(key, k -> new StepGraph());
        active = g;
        usedThisStep.clear();
        if (g.runs == 0) {
            mode = Mode.EAGER;
        } else if (g.graph == null) {
            beginSideStreamStep();
            mode = Mode.CAPTURE;
            stream.beginCapture();
        } else {
            beginSideStreamStep();
            mode = Mode.REPLAY;
            replayOp = 0;
            replayLoss = 0;
        }
        return mode.name().toLowerCase(Locale.ROOT);
    }

    /** Orders this graph step's hoisted copies after all work queued so far, and takes the next staging buffer. */
    private void beginSideStreamStep() {
        ensureSideStream();
        stream.record(stepStart);
        copyStream.waitFor(stepStart);
        staging.next(); // at once unless the host runs two steps ahead of the device
    }

    /** Ends the step begun by {@link #beginStep}: captures and launches, or launches the graph; returns at once. */
    public void endStep() {
        if (active == null) throw new IllegalStateException("endStep without beginStep");
        StepGraph g = active;
        try {
            // All the step's hoisted copies are queued: its staging buffer may be rewritten once they have run.
            if (mode != Mode.EAGER) staging.copiesQueued(copyStream);
            switch (mode) {
                case EAGER -> { }
                case CAPTURE -> {
                    g.graph = stream.endCapture();
                    launchAfterCopies(g);
                }
                case REPLAY -> {
                    if (replayOp != g.ops.size()) throw diverged("the step ended after " + replayOp + " of " + g.ops.size() + " ops");
                    launchAfterCopies(g);
                }
            }
            g.runs++;
            for (LossReadOut r : pendingReadOuts) queueReadOut(r);
        } finally {
            pendingReadOuts.clear();
            mode = Mode.EAGER;
            active = null;
        }
    }

    /**
     * Ends a step that failed: a capture in progress is ended and dropped, and the key starts over (eager, then a
     * new capture). What the failed step queued eagerly has run; what it captured has not.
     */
    public void abandonStep() {
        if (active == null) return;
        StepGraph g = active;
        try {
            if (mode == Mode.CAPTURE) {
                try {
                    stream.endCapture().close();
                } catch (RuntimeException ignored) {
                    // an invalidated capture cannot instantiate; ending it is what matters
                }
            }
        } finally {
            // the copies this step queued still read its staging buffer
            if (mode != Mode.EAGER) staging.copiesQueued(copyStream);
            pendingReadOuts.clear();
            mode = Mode.EAGER;
            active = null;
            g.ops.clear();
            g.lossCells.clear();
            if (g.graph != null) g.graph.close();
            g.graph = null;
            g.runs = 0;
        }
    }

    /** The compute stream's idle time between training steps (see {@link ich.gpu.StepGaps}); made on first use. */
    private ich.gpu.StepGaps stepGaps;

    /**
     * Marks the end of a training step's queued work: call after its last op (after {@link #endStep} in a graph
     * step). With {@link #markStepBegins} it measures how long the device sat idle between steps.
     */
    public void markStepQueued() {
        if (active != null) throw new IllegalStateException("markStepQueued inside a step (call it after endStep)");
        bind();
        if (stepGaps == null) stepGaps = new ich.gpu.StepGaps(context);
        stepGaps.stepQueued(stream);
    }

    /** Marks the start of the next step, before its first op (and before {@link #beginStep}). */
    public void markStepBegins() {
        if (active != null) throw new IllegalStateException("markStepBegins inside a step (call it before beginStep)");
        bind();
        if (stepGaps != null) stepGaps.stepBegins(stream);
    }

    /**
     * Seconds the compute stream sat idle between the steps marked since the last call (waiting for the recorded
     * marks to complete), 0 when none were marked; the next {@link #markStepBegins} starts a new run of steps.
     */
    public double idleBetweenStepsSeconds() {
        if (stepGaps == null) return 0;
        bind();
        return stepGaps.drainSeconds();
    }

    /**
     * Frees every key's captured graph and memory pool, once the work queued on both streams has run. A key's pool
     * otherwise lives as long as the backend, though some keys never come again: the frozen-backbone phase's, once the
     * whole network trains. A key that does come again starts over: an eager step, then a new capture.
     */
    public void releaseStepGraphs() {
        if (active != null) throw new IllegalStateException("releaseStepGraphs inside a step (call it between steps)");
        bind();
        stream.synchronize(); // the graphs' kernels and the loss read-outs
        if (copyStream != null) copyStream.synchronize(); // the hoisted copies into the pools
        try {
            ich.gpu.Closing.closeAll(graphs.values());
        } finally {
            graphs.clear();
        }
    }

    /** Whether steps of this key replay a captured graph now. */
    public boolean hasGraph(Object key) {
        StepGraph g = graphs.get(key);
        return g != null && g.graph != null;
    }

    /** Launches the step's graph behind its hoisted copies (the event {@link #endStep} recorded after them). */
    private void launchAfterCopies(StepGraph g) {
        staging.awaitCopies(stream);
        g.graph.launch(stream);
    }

    private void ensureSideStream() {
        if (copyStream == null) {
            copyStream = context.createStream();
            stepStart = context.createEvent();
            staging = new ich.gpu.PinnedTurns(context, 2, STAGING_BYTES);
        }
    }

    /**
     * Every queuing op goes through here: EAGER runs {@code work}; CAPTURE records its fingerprint and runs it
     * (into the graph); REPLAY checks the fingerprint and runs nothing.
     */
    private void queue(String op, Runnable work, long... fingerprint) {
        switch (mode) {
            case EAGER -> {
                if (profiler != null) profiler.time(op, work);
                else work.run();
            }
            case CAPTURE -> {
                active.ops.add(fingerprint(op, fingerprint));
                for (long f : fingerprint) usedThisStep.add(f);
                work.run();
            }
            case REPLAY -> {
                String expected = replayOp < active.ops.size() ? active.ops.get(replayOp) : "(end of the captured step)";
                String actual = fingerprint(op, fingerprint);
                if (!expected.equals(actual)) throw diverged("op " + replayOp + " is " + actual + ", captured " + expected);
                for (long f : fingerprint) usedThisStep.add(f);
                replayOp++;
            }
        }
    }

    private static String fingerprint(String op, long[] values) {
        StringBuilder b = new StringBuilder(op);
        for (long v : values) b.append(' ').append(Long.toHexString(v));
        return b.toString();
    }

    /**
     * A copy into the device during a graph step: runs now on the side stream, before the graph that reads it. Its
     * destination must not have been touched by an earlier op of the step: that op runs later, in the graph.
     */
    private void hoistedCopy(String op, Tensor source, Tensor destination, long bytes) {
        live(op, destination);
        requireUntouchedThisStep(destination);
        long to = destination.data().address();
        if (source.isHost()) {
            MemorySegment staged = stage(bytes);
            MemorySegment.copy(source.data(), 0, staged, 0, bytes);
            copyStream.copyToDevice(staged, to, bytes);
        } else {
            live(op, source);
            copyStream.copyOnDevice(source.data().address(), to, bytes);
        }
    }

    /** {@code bytes} of the graph step's pinned staging, for a copy queued on the side stream before its graph. */
    private MemorySegment stage(long bytes) {
        MemorySegment staged = staging.take(bytes);
        if (staged == null) throw notCapturable("the step copies more than " + STAGING_BYTES + " bytes from the host");
        return staged;
    }

    /** What a hoisted copy writes runs before the graph, so no earlier op of the step may have used it. */
    private void requireUntouchedThisStep(Tensor destination) {
        if (usedThisStep.contains(destination.data().address())) {
            throw notCapturable("a copy into " + destination + " after an op of the same step used it");
        }
    }

    private NotCapturableException notCapturable(String why) {
        return new NotCapturableException("not capturable in a CUDA graph: " + why);
    }

    private IllegalStateException diverged(String what) {
        return new IllegalStateException("the step diverged from its captured CUDA graph: " + what
                + " (steps of one key must make the same calls with the same shapes)");
    }

    /**
     * One launch for all the tensors ({@link NnKernels.AdamTable}), bit for bit {@link #adamStep} on each. The
     * table is built on the first call with a given list (the same addresses and sizes, in order) and reused
     * while the list recurs: an optimiser passes the same tensors every step, and freezing or unfreezing changes
     * the list, so the last {@link #ADAM_TABLES} lists are kept. In a graph step ({@link #beginStep}) the kernel is
     * captured and the scalars are copied in beside the graph; the list must then be one the warm-up step used.
     */
    @Override
    public void adamStepAll(List<AdamTensors> tensors, long step, double lr, double beta1, double beta2, double eps,
                            double weightDecay, boolean decoupled) {
        String op = "adamStepAll";
        if (tensors.isEmpty()) return;
        long[] key = new long[5 * tensors.size()];
        for (int i = 0; i < tensors.size(); i++) {
            AdamTensors t = tensors.get(i);
            if (t == null) throw new IllegalArgumentException(op + ": entry " + i + " is null");
            elementwise(op, t.param(), t.grad(), t.m(), t.v());
            float32(op, t.param(), t.grad(), t.m(), t.v());
            key[5 * i] = ptr(t.param());
            key[5 * i + 1] = ptr(t.grad());
            key[5 * i + 2] = ptr(t.m());
            key[5 * i + 3] = ptr(t.v());
            key[5 * i + 4] = t.param().size();
        }
        NnKernels.AdamTable table = adamTable(new AdamKey(key));
        if (mode == Mode.EAGER) {
            table.step(stream, step, lr, beta1, beta2, eps, weightDecay, decoupled);
        } else {
            // In a graph step the scalars (learning rate, bias corrections) are a new input: copied in on the side
            // stream before the graph, whose captured kernel reads them from device memory. They come from the
            // step's staging buffer, whose turn began before the capture: waiting on an event (the table's own
            // turns) is refused while this thread captures.
            table.copyScalars(copyStream, stage(NnKernels.AdamTable.SCALARS_BYTES), step, lr, beta1, beta2, eps, weightDecay, decoupled);
            queue(op, () -> table.launch(stream), table.devicePointer(), tensors.size());
        }
    }

    /** Multi-tensor Adam tables kept at once: the lists of a training run (head only, then all) and some spare. */
    static final int ADAM_TABLES = 4;

    /** The addresses and size of each tensor of an {@link #adamStepAll} list: param, grad, m, v, n, then the next. */
    private record AdamKey(long[] words) {
        @Override
        public boolean equals(Object o) {
            return o instanceof AdamKey k && Arrays.equals(words, k.words);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(words);
        }
    }

    private NnKernels.AdamTable adamTable(AdamKey key) {
        NnKernels.AdamTable table = adamTables.get(key);
        if (table != null) return table;
        if (mode != Mode.EAGER) throw notCapturable("adamStepAll with tensors the warm-up step did not update");
        long[] w = key.words();
        List<NnKernels.AdamPointers> pointers = new ArrayList<>(w.length / 5);
        for (int i = 0; i < w.length; i += 5) pointers.add(new NnKernels.AdamPointers(w[i], w[i + 1], w[i + 2], w[i + 3], w[i + 4]));
        if (adamTables.size() >= ADAM_TABLES) {
            AdamKey eldest = adamTables.keySet().iterator().next();
            stream.synchronize(); // a queued launch may still read the table
            adamTables.remove(eldest).close();
        }
        table = kernels.adamTable(context, stream, pointers);
        adamTables.put(key, table);
        return table;
    }

    // ---------------------------------------------------------------- checks

    private static long ptr(Tensor t) {
        return t.data().address();
    }

    /** An optional tensor's address: 0 (the kernels' "none") for null. */
    private static long ptrOrNull(Tensor t) {
        return t == null ? 0 : ptr(t);
    }

    /**
     * Same sizes and storage, on this device, alive; binds the context to the calling thread. Returns whether they
     * are bf16 (element-wise kernels do not care about the order, only that all share it).
     */
    private boolean elementwise(String op, Tensor... ts) {
        OpShapes.sameSize(op, ts);
        live(op, ts);
        Storage first = ts[0].storage();
        for (Tensor t : ts) {
            if (!t.storage().equals(first)) {
                throw new IllegalArgumentException(op + ": tensors in different storages: " + Arrays.toString(ts));
            }
        }
        return first.dtype() == Storage.DType.BFLOAT16;
    }

    /**
     * Whether an op's image tensors are bf16 channels-last (true) or fp32 NCHW (false), the two storages of this
     * backend's activations; a mix, or another storage, is refused.
     */
    private static boolean activations(String op, Tensor... ts) {
        Storage first = ts[0].storage();
        for (Tensor t : ts) {
            if (!t.storage().equals(first) || !(first.equals(Storage.FLOAT32) || first.equals(Storage.BF16_NHWC))) {
                throw new IllegalArgumentException(op + ": image tensors must be all fp32 NCHW or all bf16 NHWC, got "
                        + Arrays.toString(ts));
            }
        }
        return first.equals(Storage.BF16_NHWC);
    }

    /** Parameters, their gradients, statistics, [n, c] vectors, masks and the loss are fp32 in every precision. */
    private static void float32(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null && !t.storage().equals(Storage.FLOAT32)) {
                throw new IllegalArgumentException(op + ": " + t + " must be fp32 (parameters, gradients, statistics, "
                        + "vectors, masks and the loss always are)");
            }
        }
    }

    /** Each tensor is a device tensor whose arena is still open; binds the context to the calling thread. */
    private void live(String op, Tensor... ts) {
        if (closed) throw new IllegalStateException(op + ": the CUDA backend is closed");
        bind();
        for (Tensor t : ts) {
            if (t == null) throw new IllegalArgumentException(op + ": a required tensor is null");
            if (t.isHost()) throw new IllegalArgumentException(op + ": " + t + " is on the host, not on gpu:" + ordinal);
            if (!t.data().scope().isAlive()) {
                throw new IllegalStateException(op + ": " + t + " belongs to an arena that was closed (a step's tensor used after the step?)");
            }
        }
    }

    private void bind() {
        if (!bound.get()) {
            context.makeCurrent();
            bound.set(true);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        bind();
        List<Throwable> errors = new ArrayList<>();
        Runnable[] steps = {
                stream::synchronize,
                () -> {
                    if (profiler != null) profiler.close();
                    profiler = null;
                },
                () -> graphs.values().forEach(StepGraph::close),
                () -> convPlans.values().forEach(ConvPlan::close),
                () -> bnPlans.values().forEach(BnPlan::close),
                () -> adamTables.values().forEach(NnKernels.AdamTable::close),
                own::close, pool::close, () -> {
                    if (staging != null) staging.close(); // waits for the copies that read it, queued on copyStream
                    if (copyStream != null) copyStream.close();
                    if (stepStart != null) stepStart.close();
                    if (stepGaps != null) stepGaps.close();
                }, () -> {
                    for (ich.gpu.Event e : lossCopied) if (e != null) e.close();
                    if (lossSlots != null) lossSlots.close();
                    if (uploadHalves != null) uploadHalves.close();
                }, kernels::close, () -> {
                    if (cublasBf16 != null) cublasBf16.close();
                }, cublas::close, cudnn::close, stream::close, context::close};
        for (Runnable r : steps) {
            try {
                r.run();
            } catch (RuntimeException e) {
                errors.add(e);
            }
        }
        closed = true;
        if (!errors.isEmpty()) {
            IllegalStateException e = new IllegalStateException("closing the CUDA backend: " + errors.getFirst().getMessage(), errors.getFirst());
            errors.stream().skip(1).forEach(e::addSuppressed);
            throw e;
        }
    }
}
