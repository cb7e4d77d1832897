package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuDNN 9 through FFM: one handle bound to one stream, the 4-d tensor, filter and convolution descriptors, the
 * three convolution directions with algorithm search ({@code cudnnFind*AlgorithmEx}), and spatial batch norm
 * (training, inference, backward). These are cuDNN's "legacy" functions, deprecated in 9 in favour of the graph
 * API but present and supported through the 9.x series; they map one to one onto {@code ich.nn.Backend}.
 *
 * <p>Every status is checked: a failure is a {@link CudaException} with cuDNN's status name, its text and, where
 * cuDNN has one, its last error message ({@code cudnnGetLastErrorString}), which usually names the bad argument.
 *
 * <p>All data here is fp32 NCHW. Scaling factors (alpha, beta) are host floats: 1 and 0, i.e. outputs are
 * overwritten, as the Backend contract says.
 */
public final class Cudnn implements AutoCloseable {
    /** {@code cudnnDataType_t}, {@code cudnnTensorFormat_t}, {@code cudnnConvolutionMode_t}, ... (cudnn_graph.h, cudnn_ops.h). */
    static final int DATA_FLOAT = 0, DATA_BFLOAT16 = 9, TENSOR_NCHW = 0, TENSOR_NHWC = 1, CROSS_CORRELATION = 1, BATCHNORM_SPATIAL = 1;
    /** {@code cudnnMathType_t}: DEFAULT lets fp32 convolutions use TF32 tensor cores; FMA forbids it. */
    public static final int DEFAULT_MATH = 0, FMA_MATH = 3;
    static final int STATUS_SUBLIBRARY_LOADING_FAILED = 1008;

    /**
     * {@code cudnnConvolution*AlgoPerf_t}: algo int @0, status int @4, time float @8, memory size_t @16,
     * determinism int @24, mathType int @28, reserved int[3] @32; 48 bytes with the struct's 8-byte alignment.
     * The three directions share the layout.
     */
    static final long PERF_BYTES = 48, PERF_ALGO = 0, PERF_STATUS = 4, PERF_TIME = 8, PERF_MEMORY = 16, PERF_DETERMINISM = 24,
            PERF_MATH = 28;

    /** Status names of cudnnStatus_t (cudnn_graph.h); cuDNN's own text comes from cudnnGetErrorString. */
    private static final Map<Integer, String> NAMES = Map.ofEntries(
            Map.entry(1001, "CUDNN_STATUS_NOT_INITIALIZED"), Map.entry(1002, "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH"),
            Map.entry(1004, "CUDNN_STATUS_DEPRECATED"), Map.entry(1005, "CUDNN_STATUS_LICENSE_ERROR"),
            Map.entry(1007, "CUDNN_STATUS_RUNTIME_FP_OVERFLOW"), Map.entry(1008, "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED"),
            Map.entry(2000, "CUDNN_STATUS_BAD_PARAM"), Map.entry(2002, "CUDNN_STATUS_BAD_PARAM_NULL_POINTER"),
            Map.entry(2003, "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER"), Map.entry(2005, "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND"),
            Map.entry(2006, "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT"), Map.entry(2007, "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH"),
            Map.entry(2008, "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH"), Map.entry(3000, "CUDNN_STATUS_NOT_SUPPORTED"),
            Map.entry(3002, "CUDNN_STATUS_NOT_SUPPORTED_SHAPE"), Map.entry(3003, "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE"),
            Map.entry(3004, "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT"),
            Map.entry(3005, "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER"),
            Map.entry(3007, "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH"),
            Map.entry(3010, "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT"),
            Map.entry(4000, "CUDNN_STATUS_INTERNAL_ERROR"), Map.entry(4004, "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
            Map.entry(5000, "CUDNN_STATUS_EXECUTION_FAILED"), Map.entry(5001, "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER"),
            Map.entry(5002, "CUDNN_STATUS_EXECUTION_FAILED_CUBLAS"));

    /**
     * The sub-libraries libcudnn.so.9 dispatches to, in dependency order. The dispatcher opens them by soname; when
     * cuDNN was found by path (a Python wheel's folder, not on the loader path) that fails, unless a library of
     * that soname is already loaded, which glibc then reuses. So they are loaded here first, from the same folder.
     * Later 9.x releases add the tensor-IR engines (opened by the graph library) and an ext library (opened by the
     * dispatcher); a release without them simply has no such file.
     */
    static final List<String> SUBLIBRARIES = List.of("libcudnn_graph.so.9", "libcudnn_engines_runtime_compiled.so.9",
            "libcudnn_engines_precompiled.so.9", "libcudnn_engines_tensor_ir.so.9", "libcudnn_heuristic.so.9",
            "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9", "libcudnn_ext.so.9");

    private static final Linker LINKER = Linker.nativeLinker();
    private static volatile Library library;

    private final Library lib;
    private final MemorySegment handle;
    private boolean closed;

    /** The loaded library's function handles, shared by every Cudnn handle of the process. */
    static final class Library {
        final NativeLibraries.Found found;
        final long version;
        final MethodHandle getErrorString, getLastErrorString, create, destroy, setStream,
                createTensor, setTensor4d, destroyTensor, createFilter, setFilter4d, destroyFilter,
                createConv, setConv2d, setConvGroups, setConvMath, destroyConv,
                findForward, findBackwardData, findBackwardFilter, rankForward, rankBackwardData, rankBackwardFilter, forward, backwardData, backwardFilter,
                deriveBn, bnTraining, bnInference, bnBackward;
        final MemorySegment one, zero;

        private Library(NativeLibraries.Found found) {
            this.found = found;
            Arena global = Arena.global();
            if (found.file() != null) preloadSublibraries(found.file().getParent(), global);
            SymbolLookup lookup = found.load(global);
            MethodHandle getVersion = LINKER.downcallHandle(lookup.findOrThrow("cudnnGetVersion"), FunctionDescriptor.of(JAVA_LONG));
            try {
                version = (long) getVersion.invokeExact();
            } catch (Throwable t) {
                throw new IllegalStateException("cudnnGetVersion: " + t, t);
            }
            getErrorString = LINKER.downcallHandle(lookup.findOrThrow("cudnnGetErrorString"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
            // Added during 9.x: without it, errors carry only the status text.
            getLastErrorString = lookup.find("cudnnGetLastErrorString")
                    .map(f -> LINKER.downcallHandle(f, FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG))).orElse(null);
            create = fn(lookup, "cudnnCreate", ADDRESS);
            destroy = fn(lookup, "cudnnDestroy", ADDRESS);
            setStream = fn(lookup, "cudnnSetStream", ADDRESS, ADDRESS);
            createTensor = fn(lookup, "cudnnCreateTensorDescriptor", ADDRESS);
            setTensor4d = fn(lookup, "cudnnSetTensor4dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
            destroyTensor = fn(lookup, "cudnnDestroyTensorDescriptor", ADDRESS);
            createFilter = fn(lookup, "cudnnCreateFilterDescriptor", ADDRESS);
            setFilter4d = fn(lookup, "cudnnSetFilter4dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
            destroyFilter = fn(lookup, "cudnnDestroyFilterDescriptor", ADDRESS);
            createConv = fn(lookup, "cudnnCreateConvolutionDescriptor", ADDRESS);
            setConv2d = fn(lookup, "cudnnSetConvolution2dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                    JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
            setConvGroups = fn(lookup, "cudnnSetConvolutionGroupCount", ADDRESS, JAVA_INT);
            setConvMath = fn(lookup, "cudnnSetConvolutionMathType", ADDRESS, JAVA_INT);
            destroyConv = fn(lookup, "cudnnDestroyConvolutionDescriptor", ADDRESS);
            // (handle, xDesc, x, wDesc, w, convDesc, yDesc, y, requested, *returned, *perf, workspace, bytes)
            findForward = fn(lookup, "cudnnFindConvolutionForwardAlgorithmEx", ADDRESS, ADDRESS, JAVA_LONG, ADDRESS,
                    JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG);
            // (handle, wDesc, w, dyDesc, dy, convDesc, dxDesc, dx, requested, *returned, *perf, workspace, bytes)
            findBackwardData = fn(lookup, "cudnnFindConvolutionBackwardDataAlgorithmEx", ADDRESS, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG);
            // (handle, xDesc, x, dyDesc, dy, convDesc, dwDesc, dw, requested, *returned, *perf, workspace, bytes)
            findBackwardFilter = fn(lookup, "cudnnFindConvolutionBackwardFilterAlgorithmEx", ADDRESS, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG);
            // cudnnGetConvolution*Algorithm_v7: (handle, the same three descriptors in each direction's order, convDesc
            // third, requested, *returned, *perf): cuDNN's heuristic ranking, nothing run. Optional: deprecated in cuDNN 9, only --reproducible needs them.
            rankForward = optional(lookup, "cudnnGetConvolutionForwardAlgorithm_v7");
            rankBackwardData = optional(lookup, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
            rankBackwardFilter = optional(lookup, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
            // (handle, *alpha, xDesc, x, wDesc, w, convDesc, algo, workspace, bytes, *beta, yDesc, y)
            forward = fn(lookup, "cudnnConvolutionForward", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
            // (handle, *alpha, wDesc, w, dyDesc, dy, convDesc, algo, workspace, bytes, *beta, dxDesc, dx)
            backwardData = fn(lookup, "cudnnConvolutionBackwardData", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS,
                    JAVA_LONG, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
            // (handle, *alpha, xDesc, x, dyDesc, dy, convDesc, algo, workspace, bytes, *beta, dwDesc, dw)
            backwardFilter = fn(lookup, "cudnnConvolutionBackwardFilter", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS,
                    JAVA_LONG, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
            deriveBn = fn(lookup, "cudnnDeriveBNTensorDescriptor", ADDRESS, ADDRESS, JAVA_INT);
            // (handle, mode, *alpha, *beta, xDesc, x, yDesc, y, bnDesc, scale, bias, factor, runMean, runVar, eps,
            //  saveMean, saveInvVar)
            bnTraining = fn(lookup, "cudnnBatchNormalizationForwardTraining", ADDRESS, JAVA_INT, ADDRESS, ADDRESS,
                    ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_DOUBLE, JAVA_LONG,
                    JAVA_LONG, JAVA_DOUBLE, JAVA_LONG, JAVA_LONG);
            // (handle, mode, *alpha, *beta, xDesc, x, yDesc, y, bnDesc, scale, bias, mean, var, eps)
            bnInference = fn(lookup, "cudnnBatchNormalizationForwardInference", ADDRESS, JAVA_INT, ADDRESS, ADDRESS,
                    ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_DOUBLE);
            // (handle, mode, *alphaData, *betaData, *alphaParam, *betaParam, xDesc, x, dyDesc, dy, dxDesc, dx,
            //  bnDesc, scale, dScale, dBias, eps, saveMean, saveInvVar)
            bnBackward = fn(lookup, "cudnnBatchNormalizationBackward", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_DOUBLE, JAVA_LONG, JAVA_LONG);
            one = global.allocateFrom(JAVA_FLOAT, 1f);
            zero = global.allocateFrom(JAVA_FLOAT, 0f);
        }

        private static MethodHandle fn(SymbolLookup lookup, String name, MemoryLayout... args) {
            return Downcalls.statusFunction(LINKER, lookup, name, args);
        }

        /** A cudnnGetConvolution*Algorithm_v7 function, or null where this cuDNN has none. */
        private static MethodHandle optional(SymbolLookup lookup, String name) {
            return lookup.find(name).isEmpty() ? null
                    : fn(lookup, name, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        }

        /** Best effort: a sub-library that fails here is reported by cuDNN itself when it is needed. */
        private static void preloadSublibraries(Path dir, Arena arena) {
            for (String name : SUBLIBRARIES) {
                Path file = dir.resolve(name);
                if (!Files.isRegularFile(file)) continue;
                try {
                    SymbolLookup.libraryLookup(file, arena);
                } catch (IllegalArgumentException | IllegalCallerException e) {
                    // its own dependencies are missing: cudnnCreate or the first op will say which status
                }
            }
        }
    }

    private Cudnn(Library lib, MemorySegment handle) {
        this.lib = lib;
        this.handle = handle;
    }

    /** libcudnn.so.9, loaded once per process. */
    static Library library() {
        Library l = library;
        if (l != null) return l;
        synchronized (Cudnn.class) {
            if (library != null) return library;
            NativeLibraries.Result found = NativeLibraries.find(NativeLibraries.CUDNN);
            if (!(found instanceof NativeLibraries.Found f)) {
                throw new GpuUnavailableException(((NativeLibraries.NotFound) found).message());
            }
            Library loaded;
            try {
                loaded = new Library(f);
            } catch (IllegalArgumentException | IllegalCallerException | java.util.NoSuchElementException | IllegalStateException e) {
                throw new GpuUnavailableException(f.where() + " cannot be used: " + e.getMessage());
            }
            if (loaded.version / 10000 != 9) {
                throw new GpuUnavailableException(f.where() + " is cuDNN " + versionString(loaded.version) + "; cuDNN 9 is needed");
            }
            library = loaded;
            return loaded;
        }
    }

    /** E.g. "9.6.0" for 90600. */
    public static String versionString(long version) {
        return version / 10000 + "." + version % 10000 / 100 + "." + version % 100;
    }

    /**
     * A cuDNN handle whose work is queued on {@code stream}; the stream's context must be current.
     *
     * @throws GpuUnavailableException when libcudnn.so.9 is missing or not version 9
     */
    public static Cudnn create(Stream stream) {
        Library lib = library();
        MemorySegment handle;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int status = Downcalls.callStatus(lib.create, out);
            if (status == STATUS_SUBLIBRARY_LOADING_FAILED) {
                throw new GpuUnavailableException("cudnnCreate: a cuDNN sub-library (libcudnn_*.so.9) or one of its "
                        + "dependencies (cuBLAS, NVRTC) could not be loaded: " + error(lib, status, "cudnnCreate").getMessage()
                        + "; put the folders of cuDNN, cuBLAS and NVRTC on LD_LIBRARY_PATH (see docs/gpu-hosts.md)");
            }
            check(lib, status, "cudnnCreate");
            handle = out.get(ADDRESS, 0);
        }
        Cudnn cudnn = new Cudnn(lib, handle);
        try {
            cudnn.check(Downcalls.callStatus(lib.setStream, handle, stream.handle), "cudnnSetStream");
        } catch (RuntimeException e) {
            cudnn.close();
            throw e;
        }
        return cudnn;
    }

    /** cudnnGetVersion(), e.g. 90600. */
    public long version() {
        return lib.version;
    }

    public NativeLibraries.Found libraryFound() {
        return lib.found;
    }

    void check(int status, String function) {
        check(lib, status, function);
    }

    private static void check(Library lib, int status, String function) {
        if (status != 0) throw error(lib, status, function);
    }

    private static CudaException error(Library lib, int status, String function) {
        String text;
        String last = "";
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = (MemorySegment) lib.getErrorString.invokeExact(status);
            text = s.equals(MemorySegment.NULL) ? "unknown error" : s.reinterpret(4096).getString(0);
            if (lib.getLastErrorString != null) {
                MemorySegment buffer = arena.allocate(1024);
                lib.getLastErrorString.invokeExact(buffer, 1024L);
                last = buffer.getString(0);
            }
        } catch (Throwable t) {
            text = "unknown error";
        }
        return new CudaException(status, function, NAMES.getOrDefault(status, "CUDNN_STATUS_" + status), text,
                last.isBlank() ? null : last);
    }

    private void requireOpen() {
        if (closed) throw new IllegalStateException("Cudnn handle is closed");
    }

    // ---- descriptors ----

    /** A cuDNN descriptor, destroyed on close. */
    public final class Descriptor implements AutoCloseable {
        final MemorySegment handle;
        private final MethodHandle destroy;
        private final String destroyName;
        private boolean closed;

        private Descriptor(MemorySegment handle, MethodHandle destroy, String destroyName) {
            this.handle = handle;
            this.destroy = destroy;
            this.destroyName = destroyName;
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            check(Downcalls.callStatus(destroy, handle), destroyName);
        }
    }

    /** A tensor, filter or convolution descriptor: created, then set up by {@code setUp}, destroyed if that fails. */
    private Descriptor descriptor(MethodHandle create, String createName, MethodHandle destroy, String destroyName,
                                  java.util.function.Consumer<MemorySegment> setUp) {
        requireOpen();
        Descriptor d;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(Downcalls.callStatus(create, out), createName);
            d = new Descriptor(out.get(ADDRESS, 0), destroy, destroyName);
        }
        try {
            setUp.accept(d.handle);
            return d;
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
    }

    private Descriptor tensorDescriptor(java.util.function.Consumer<MemorySegment> setUp) {
        return descriptor(lib.createTensor, "cudnnCreateTensorDescriptor", lib.destroyTensor, "cudnnDestroyTensorDescriptor", setUp);
    }

    /** An fp32 NCHW tensor descriptor [n, c, h, w]. */
    public Descriptor tensor(int n, int c, int h, int w) {
        return tensor(false, n, c, h, w);
    }

    /**
     * A tensor descriptor [n, c, h, w]: fp32 NCHW, or with {@code bf16Nhwc} bfloat16 channels-last, the layout
     * in which cuDNN runs bf16 convolutions on tensor cores.
     */
    public Descriptor tensor(boolean bf16Nhwc, int n, int c, int h, int w) {
        return tensorDescriptor(d -> check(Downcalls.callStatus(lib.setTensor4d, d, bf16Nhwc ? TENSOR_NHWC : TENSOR_NCHW,
                bf16Nhwc ? DATA_BFLOAT16 : DATA_FLOAT, n, c, h, w), "cudnnSetTensor4dDescriptor"));
    }

    /** An fp32 NCHW filter descriptor [k, c / groups, r, s]. */
    public Descriptor filter(int k, int cPerGroup, int r, int s) {
        return filter(false, k, cPerGroup, r, s);
    }

    /** A filter descriptor [k, c / groups, r, s]: fp32 KCRS, or with {@code bf16Nhwc} bfloat16 KRSC. */
    public Descriptor filter(boolean bf16Nhwc, int k, int cPerGroup, int r, int s) {
        return descriptor(lib.createFilter, "cudnnCreateFilterDescriptor", lib.destroyFilter, "cudnnDestroyFilterDescriptor",
                d -> check(Downcalls.callStatus(lib.setFilter4d, d, bf16Nhwc ? DATA_BFLOAT16 : DATA_FLOAT,
                        bf16Nhwc ? TENSOR_NHWC : TENSOR_NCHW, k, cPerGroup, r, s), "cudnnSetFilter4dDescriptor"));
    }

    /**
     * A 2-d cross-correlation (what deep learning calls convolution) with fp32 compute, no dilation. fp32 compute
     * over bf16 tensors and filters is cuDNN's "pseudo bf16" configuration: bf16 in and out, fp32 accumulation.
     *
     * @param mathType {@link #FMA_MATH} for strict fp32, {@link #DEFAULT_MATH} to allow TF32 tensor cores (and the
     *                 tensor cores of bf16 data)
     */
    public Descriptor convolution(int padH, int padW, int strideH, int strideW, int groups, int mathType) {
        return descriptor(lib.createConv, "cudnnCreateConvolutionDescriptor", lib.destroyConv, "cudnnDestroyConvolutionDescriptor", d -> {
            check(Downcalls.callStatus(lib.setConv2d, d, padH, padW, strideH, strideW, 1, 1, CROSS_CORRELATION, DATA_FLOAT),
                    "cudnnSetConvolution2dDescriptor");
            check(Downcalls.callStatus(lib.setConvGroups, d, groups), "cudnnSetConvolutionGroupCount");
            check(Downcalls.callStatus(lib.setConvMath, d, mathType), "cudnnSetConvolutionMathType");
        });
    }

    /**
     * Sets the math type a convolution runs with. cudnnFind* and the heuristics report (algorithm, math type) pairs,
     * and an algorithm runs the kernel of the descriptor's math type, not of the pair's: so the caller sets the
     * chosen pair's type before running it, or a TENSOR_OP choice may run another kernel than the one timed.
     */
    public void setConvolutionMath(Descriptor conv, int mathType) {
        check(Downcalls.callStatus(lib.setConvMath, conv.handle, mathType), "cudnnSetConvolutionMathType");
    }

    /** The [1, c, 1, 1] descriptor of spatial batch norm's per-channel tensors for an input descriptor. */
    public Descriptor batchNormParameters(Descriptor x) {
        return tensorDescriptor(d -> check(Downcalls.callStatus(lib.deriveBn, d, x.handle, BATCHNORM_SPATIAL),
                "cudnnDeriveBNTensorDescriptor"));
    }

    // ---- convolution ----

    /** One algorithm as cudnnFind* measured it. */
    public record AlgoPerf(int algo, float millis, long workspaceBytes, boolean deterministic, int mathType) {}

    /** The three directions, for the algorithm search. */
    public enum Direction { FORWARD, BACKWARD_DATA, BACKWARD_FILTER }

    /**
     * Runs every algorithm of one direction on the given buffers and returns those that succeeded, fastest first
     * ({@code cudnnFind*AlgorithmEx}). The output buffer is overwritten with garbage. Synchronous: cuDNN times
     * each algorithm with events.
     *
     * <p>Buffers by direction: FORWARD (x, w, y), BACKWARD_DATA (w, dy, dx), BACKWARD_FILTER (x, dy, dw), each
     * with its descriptor in the same order; {@code filter} is the filter descriptor.
     */
    public List<AlgoPerf> find(Direction direction, Descriptor xDesc, Descriptor filter, Descriptor conv, Descriptor yDesc,
                               long a, long b, long out, long workspace, long workspaceBytes) {
        requireOpen();
        final int requested = 16; // more than any direction has algorithms (8 / 6 / 7 in cuDNN 9)
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment returned = arena.allocate(JAVA_INT);
            MemorySegment perf = arena.allocate(PERF_BYTES * requested, 8);
            int status;
            String name;
            switch (direction) {
                case FORWARD -> {
                    name = "cudnnFindConvolutionForwardAlgorithmEx";
                    status = Downcalls.callStatus(lib.findForward, handle, xDesc.handle, a, filter.handle, b, conv.handle,
                            yDesc.handle, out, requested, returned, perf, workspace, workspaceBytes);
                }
                case BACKWARD_DATA -> {
                    name = "cudnnFindConvolutionBackwardDataAlgorithmEx";
                    status = Downcalls.callStatus(lib.findBackwardData, handle, filter.handle, a, yDesc.handle, b,
                            conv.handle, xDesc.handle, out, requested, returned, perf, workspace, workspaceBytes);
                }
                case BACKWARD_FILTER -> {
                    name = "cudnnFindConvolutionBackwardFilterAlgorithmEx";
                    status = Downcalls.callStatus(lib.findBackwardFilter, handle, xDesc.handle, a, yDesc.handle, b,
                            conv.handle, filter.handle, out, requested, returned, perf, workspace, workspaceBytes);
                }
                default -> throw new AssertionError(direction);
            }
            check(status, name);
            return parsePerf(perf, returned.get(JAVA_INT, 0));
        }
    }

    /**
     * cuDNN's heuristic ranking of one direction's algorithms ({@code cudnnGetConvolution*Algorithm_v7}), best
     * first, without running anything: the same answer on every call for the same GPU, descriptors and library.
     * The entries cuDNN marks as supported, with the workspace each needs; {@link AlgoPerf#millis()} is NaN.
     * Descriptors as for {@link #find}.
     */
    public List<AlgoPerf> heuristics(Direction direction, Descriptor xDesc, Descriptor filter, Descriptor conv, Descriptor yDesc) {
        requireOpen();
        if (lib.rankForward == null || lib.rankBackwardData == null || lib.rankBackwardFilter == null) {
            throw new GpuUnavailableException(lib.found.where() + " has no cudnnGetConvolution*Algorithm_v7 (its heuristic "
                    + "ranking, which reproducible runs choose algorithms by): use the timed search");
        }
        final int requested = 16;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment returned = arena.allocate(JAVA_INT);
            MemorySegment perf = arena.allocate(PERF_BYTES * requested, 8);
            String name;
            int status = switch (direction) {
                case FORWARD -> {
                    name = "cudnnGetConvolutionForwardAlgorithm_v7";
                    yield Downcalls.callStatus(lib.rankForward, handle, xDesc.handle, filter.handle, conv.handle, yDesc.handle,
                            requested, returned, perf);
                }
                case BACKWARD_DATA -> {
                    name = "cudnnGetConvolutionBackwardDataAlgorithm_v7";
                    yield Downcalls.callStatus(lib.rankBackwardData, handle, filter.handle, yDesc.handle, conv.handle, xDesc.handle,
                            requested, returned, perf);
                }
                case BACKWARD_FILTER -> {
                    name = "cudnnGetConvolutionBackwardFilterAlgorithm_v7";
                    yield Downcalls.callStatus(lib.rankBackwardFilter, handle, xDesc.handle, yDesc.handle, conv.handle, filter.handle,
                            requested, returned, perf);
                }
            };
            check(status, name);
            return parseRanking(perf, returned.get(JAVA_INT, 0));
        }
    }

    /** The supported entries of a heuristic ranking, in cuDNN's order (its times are not measurements). */
    static List<AlgoPerf> parseRanking(MemorySegment perf, int count) {
        List<AlgoPerf> ok = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            long at = i * PERF_BYTES;
            if (perf.get(JAVA_INT, at + PERF_STATUS) != 0) continue;
            ok.add(new AlgoPerf(perf.get(JAVA_INT, at + PERF_ALGO), Float.NaN, perf.get(JAVA_LONG, at + PERF_MEMORY),
                    perf.get(JAVA_INT, at + PERF_DETERMINISM) == 1, perf.get(JAVA_INT, at + PERF_MATH)));
        }
        return ok;
    }

    /** The successful entries of a cudnnConvolution*AlgoPerf_t array, fastest first. */
    static List<AlgoPerf> parsePerf(MemorySegment perf, int count) {
        List<AlgoPerf> ok = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            long at = i * PERF_BYTES;
            if (perf.get(JAVA_INT, at + PERF_STATUS) != 0) continue;
            float ms = perf.get(JAVA_FLOAT, at + PERF_TIME);
            if (!(ms >= 0)) continue; // cuDNN reports -1 for algorithms it did not run
            ok.add(new AlgoPerf(perf.get(JAVA_INT, at + PERF_ALGO), ms, perf.get(JAVA_LONG, at + PERF_MEMORY),
                    perf.get(JAVA_INT, at + PERF_DETERMINISM) == 1, perf.get(JAVA_INT, at + PERF_MATH)));
        }
        ok.sort(Comparator.comparingDouble(AlgoPerf::millis));
        return ok;
    }

    /** y = conv(x, w), overwritten. */
    public void convolutionForward(Descriptor xDesc, long x, Descriptor wDesc, long w, Descriptor conv, int algo,
                                   long workspace, long workspaceBytes, Descriptor yDesc, long y) {
        requireOpen();
        check(Downcalls.callStatus(lib.forward, handle, lib.one, xDesc.handle, x, wDesc.handle, w, conv.handle, algo,
                workspace, workspaceBytes, lib.zero, yDesc.handle, y), "cudnnConvolutionForward");
    }

    /** dx from dy and w, overwritten. */
    public void convolutionBackwardData(Descriptor wDesc, long w, Descriptor dyDesc, long dy, Descriptor conv, int algo,
                                        long workspace, long workspaceBytes, Descriptor dxDesc, long dx) {
        requireOpen();
        check(Downcalls.callStatus(lib.backwardData, handle, lib.one, wDesc.handle, w, dyDesc.handle, dy, conv.handle,
                algo, workspace, workspaceBytes, lib.zero, dxDesc.handle, dx), "cudnnConvolutionBackwardData");
    }

    /** dw from x and dy, overwritten. */
    public void convolutionBackwardFilter(Descriptor xDesc, long x, Descriptor dyDesc, long dy, Descriptor conv, int algo,
                                          long workspace, long workspaceBytes, Descriptor dwDesc, long dw) {
        requireOpen();
        check(Downcalls.callStatus(lib.backwardFilter, handle, lib.one, xDesc.handle, x, dyDesc.handle, dy, conv.handle,
                algo, workspace, workspaceBytes, lib.zero, dwDesc.handle, dw), "cudnnConvolutionBackwardFilter");
    }

    // ---- batch norm (spatial: per channel over n, h, w) ----

    /**
     * Training batch norm: y, the running statistics updated with factor {@code momentum} (cuDNN uses the
     * unbiased batch variance for the running variance, as PyTorch does), and the saved mean and 1/sqrt(var+eps).
     */
    public void batchNormForwardTraining(Descriptor xDesc, long x, long y, Descriptor bnDesc, long gamma, long beta,
                                         double momentum, long runningMean, long runningVar, double eps, long saveMean,
                                         long saveInvStd) {
        requireOpen();
        check(Downcalls.callStatus(lib.bnTraining, handle, BATCHNORM_SPATIAL, lib.one, lib.zero, xDesc.handle, x,
                xDesc.handle, y, bnDesc.handle, gamma, beta, momentum, runningMean, runningVar, eps, saveMean, saveInvStd),
                "cudnnBatchNormalizationForwardTraining");
    }

    public void batchNormForwardInference(Descriptor xDesc, long x, long y, Descriptor bnDesc, long gamma, long beta,
                                          long runningMean, long runningVar, double eps) {
        requireOpen();
        check(Downcalls.callStatus(lib.bnInference, handle, BATCHNORM_SPATIAL, lib.one, lib.zero, xDesc.handle, x,
                xDesc.handle, y, bnDesc.handle, gamma, beta, runningMean, runningVar, eps),
                "cudnnBatchNormalizationForwardInference");
    }

    /** dx, dgamma, dbeta (all overwritten) from the saved statistics of the training forward. */
    public void batchNormBackward(Descriptor xDesc, long x, long dy, long dx, Descriptor bnDesc, long gamma, long dgamma,
                                  long dbeta, double eps, long saveMean, long saveInvStd) {
        requireOpen();
        check(Downcalls.callStatus(lib.bnBackward, handle, BATCHNORM_SPATIAL, lib.one, lib.zero, lib.one, lib.zero,
                xDesc.handle, x, xDesc.handle, dy, xDesc.handle, dx, bnDesc.handle, gamma, dgamma, dbeta, eps,
                saveMean, saveInvStd), "cudnnBatchNormalizationBackward");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        check(Downcalls.callStatus(lib.destroy, handle), "cudnnDestroy");
    }
}
