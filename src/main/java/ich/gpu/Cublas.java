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
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLAS through FFM: one handle bound to one stream, fp32 GEMM and dot product. cuBLAS is column-major;
 * {@code ich.nn.cuda.CudaBackend} maps its row-major Linear onto it (the comments there give the algebra).
 * Every status is checked and becomes a {@link CudaException} with cuBLAS's status name and text.
 */
public final class Cublas implements AutoCloseable {
    /** {@code cublasOperation_t}. */
    public static final int OP_N = 0, OP_T = 1;
    /**
     * {@code cublasMath_t}: PEDANTIC is strict fp32; TF32 lets fp32 GEMMs use TF32 tensor cores; DEFAULT runs bf16
     * inputs on tensor cores (no rounding beyond the inputs' own) and fp32 GEMMs in fp32.
     */
    public static final int DEFAULT_MATH = 0, PEDANTIC_MATH = 2, TF32_TENSOR_OP_MATH = 3;
    /**
     * The bf16 GEMMs' mode: DEFAULT plus CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION (16). Without it cuBLAS
     * may add split-K partial sums in the output type, bf16 for the forward pass and the data gradient, where the
     * CPU reference and our kernels sum in fp32 and round once.
     */
    public static final int BF16_MATH = DEFAULT_MATH | 16;
    /** {@code cudaDataType_t} of {@link #gemmEx}'s matrices: fp32 or bf16. */
    public static final int R_32F = 0, R_16BF = 14;
    /** {@code cublasComputeType_t} CUBLAS_COMPUTE_32F and {@code cublasGemmAlgo_t} CUBLAS_GEMM_DEFAULT. */
    static final int COMPUTE_32F = 68, GEMM_DEFAULT = -1;
    /**
     * Each handle's own device workspace ({@code cublasSetWorkspace}): the size cuBLAS's documentation recommends
     * for Hopper (4 MiB before it; more does no harm). Owned by us, it is there before the first GEMM, so no GEMM
     * allocates one inside a CUDA graph capture (cuBLAS's default pool may allocate on a handle's first use, and a
     * graph holding that allocation cannot simply be relaunched).
     */
    public static final long WORKSPACE_BYTES = 32L << 20;

    private static final Map<Integer, String> NAMES = Map.of(1, "CUBLAS_STATUS_NOT_INITIALIZED", 3,
            "CUBLAS_STATUS_ALLOC_FAILED", 7, "CUBLAS_STATUS_INVALID_VALUE", 8, "CUBLAS_STATUS_ARCH_MISMATCH", 11,
            "CUBLAS_STATUS_MAPPING_ERROR", 13, "CUBLAS_STATUS_EXECUTION_FAILED", 14, "CUBLAS_STATUS_INTERNAL_ERROR", 15,
            "CUBLAS_STATUS_NOT_SUPPORTED", 16, "CUBLAS_STATUS_LICENSE_ERROR");

    private static final Linker LINKER = Linker.nativeLinker();
    private static volatile Library library;

    private final Library lib;
    private final MemorySegment handle;
    private DeviceBuffer workspace;
    private final Arena scratch = Arena.ofShared();
    private final MemorySegment alpha, beta, dotResult;
    private boolean closed;

    static final class Library {
        final NativeLibraries.Found found;
        final MethodHandle create, destroy, setStream, setWorkspace, setMathMode, sgemm, sgemmStridedBatched, gemmEx, sdot, statusName, statusString;

        private Library(NativeLibraries.Found found) {
            this.found = found;
            Arena global = Arena.global();
            // cuBLAS needs cuBLASLt (a DT_NEEDED entry); from a wheel folder off the loader path, load it by path first.
            if (found.file() != null) {
                String lt = found.soname().replace("libcublas.", "libcublasLt.");
                Path file = found.file().getParent().resolve(lt);
                if (Files.isRegularFile(file)) {
                    try {
                        SymbolLookup.libraryLookup(file, global);
                    } catch (IllegalArgumentException | IllegalCallerException e) {
                        // loading cuBLAS itself reports what is missing
                    }
                }
            }
            SymbolLookup lookup = found.load(global);
            create = fn(lookup, "cublasCreate_v2", ADDRESS);
            destroy = fn(lookup, "cublasDestroy_v2", ADDRESS);
            setStream = fn(lookup, "cublasSetStream_v2", ADDRESS, ADDRESS);
            setWorkspace = fn(lookup, "cublasSetWorkspace_v2", ADDRESS, JAVA_LONG, JAVA_LONG);
            setMathMode = fn(lookup, "cublasSetMathMode", ADDRESS, JAVA_INT);
            // (handle, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc)
            sgemm = fn(lookup, "cublasSgemm_v2", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS,
                    JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT);
            // (handle, transa, transb, m, n, k, *alpha, A, lda, strideA, B, ldb, strideB, *beta, C, ldc, strideC, batchCount)
            sgemmStridedBatched = fn(lookup, "cublasSgemmStridedBatched", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                    JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG,
                    JAVA_INT, JAVA_LONG, JAVA_INT);
            // (handle, transa, transb, m, n, k, *alpha, A, Atype, lda, B, Btype, ldb, *beta, C, Ctype, ldc, computeType, algo)
            gemmEx = fn(lookup, "cublasGemmEx", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS,
                    JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT,
                    JAVA_INT, JAVA_INT);
            // (handle, n, x, incx, y, incy, *result) with the result on the host (the default pointer mode)
            sdot = fn(lookup, "cublasSdot_v2", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS);
            statusName = LINKER.downcallHandle(lookup.findOrThrow("cublasGetStatusName"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
            statusString = LINKER.downcallHandle(lookup.findOrThrow("cublasGetStatusString"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        }

        private static MethodHandle fn(SymbolLookup lookup, String name, MemoryLayout... args) {
            return Downcalls.statusFunction(LINKER, lookup, name, args);
        }
    }

    static Library library() {
        Library l = library;
        if (l != null) return l;
        synchronized (Cublas.class) {
            if (library != null) return library;
            NativeLibraries.Result found = NativeLibraries.find(NativeLibraries.CUBLAS);
            if (!(found instanceof NativeLibraries.Found f)) {
                throw new GpuUnavailableException(((NativeLibraries.NotFound) found).message());
            }
            try {
                library = new Library(f);
            } catch (IllegalArgumentException | IllegalCallerException | java.util.NoSuchElementException e) {
                throw new GpuUnavailableException(f.where() + " cannot be used: " + e.getMessage());
            }
            return library;
        }
    }

    private Cublas(Library lib, MemorySegment handle) {
        this.lib = lib;
        this.handle = handle;
        this.alpha = scratch.allocate(JAVA_FLOAT);
        this.beta = scratch.allocate(JAVA_FLOAT);
        this.dotResult = scratch.allocate(JAVA_FLOAT);
    }

    /**
     * A cuBLAS handle on {@code stream} of {@code context} (which must be current), with a workspace of its own.
     *
     * @param allowTf32 let fp32 GEMMs round their inputs to TF32 on tensor cores; off, results match the CPU to fp32
     * @throws GpuUnavailableException when libcublas is missing
     */
    public static Cublas create(Context context, Stream stream, boolean allowTf32) {
        return create(context, stream, allowTf32 ? TF32_TENSOR_OP_MATH : PEDANTIC_MATH);
    }

    /**
     * A cuBLAS handle on {@code stream} of {@code context} with a math mode ({@link #DEFAULT_MATH}, {@link
     * #PEDANTIC_MATH}, {@link #TF32_TENSOR_OP_MATH} or {@link #BF16_MATH}; a bf16 {@link #gemmEx} wants BF16_MATH,
     * which lets it use tensor cores and keeps every sum in fp32) and a workspace of its own ({@link
     * #WORKSPACE_BYTES}), freed with the handle.
     */
    public static Cublas create(Context context, Stream stream, int mathMode) {
        Library lib = library();
        MemorySegment handle;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(lib, Downcalls.callStatus(lib.create, out), "cublasCreate_v2");
            handle = out.get(ADDRESS, 0);
        }
        Cublas cublas = new Cublas(lib, handle);
        try {
            cublas.check(Downcalls.callStatus(lib.setStream, handle, stream.handle), "cublasSetStream_v2");
            // after the stream: cublasSetStream puts the handle back on cuBLAS's default workspace pool
            cublas.workspace = context.allocate(WORKSPACE_BYTES);
            cublas.check(Downcalls.callStatus(lib.setWorkspace, handle, cublas.workspace.pointer(), WORKSPACE_BYTES),
                    "cublasSetWorkspace_v2");
            cublas.check(Downcalls.callStatus(lib.setMathMode, handle, mathMode), "cublasSetMathMode");
        } catch (RuntimeException e) {
            cublas.close();
            throw e;
        }
        return cublas;
    }

    public NativeLibraries.Found libraryFound() {
        return lib.found;
    }

    void check(int status, String function) {
        check(lib, status, function);
    }

    private static void check(Library lib, int status, String function) {
        if (status == 0) return;
        String name = NAMES.getOrDefault(status, "CUBLAS_STATUS_" + status), text = "unknown error";
        try {
            MemorySegment n = (MemorySegment) lib.statusName.invokeExact(status);
            if (!n.equals(MemorySegment.NULL)) name = n.reinterpret(256).getString(0);
            MemorySegment s = (MemorySegment) lib.statusString.invokeExact(status);
            if (!s.equals(MemorySegment.NULL)) text = s.reinterpret(4096).getString(0);
        } catch (Throwable ignored) {
            // the table's name and "unknown error" still say which call failed
        }
        throw new CudaException(status, function, name, text);
    }

    /**
     * C = alpha * op(A) op(B) + beta * C in cuBLAS's column-major terms: op(A) is m x k, op(B) k x n, C m x n.
     * Not thread-safe (the scaling factors live in this handle's host memory until the call returns).
     */
    public synchronized void sgemm(int transA, int transB, int m, int n, int k, float alphaValue, long a, int lda, long b,
                                   int ldb, float betaValue, long c, int ldc) {
        scalars(alphaValue, betaValue);
        check(Downcalls.callStatus(lib.sgemm, handle, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc),
                "cublasSgemm_v2");
    }

    /**
     * {@code batch} fp32 GEMMs as {@link #sgemm}: matrix i of each operand starts {@code i * stride} floats after
     * the first (a stride of 0 shares one matrix among all).
     */
    public synchronized void sgemmStridedBatched(int transA, int transB, int m, int n, int k, float alphaValue, long a, int lda,
                                                 long strideA, long b, int ldb, long strideB, float betaValue, long c, int ldc,
                                                 long strideC, int batch) {
        scalars(alphaValue, betaValue);
        check(Downcalls.callStatus(lib.sgemmStridedBatched, handle, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb,
                strideB, beta, c, ldc, strideC, batch), "cublasSgemmStridedBatched");
    }

    /**
     * C = alpha * op(A) op(B) + beta * C, column-major as {@link #sgemm}, with A and B of type {@code abType} and C
     * of {@code cType} ({@link #R_32F} or {@link #R_16BF}), accumulated in fp32 (CUBLAS_COMPUTE_32F, the default
     * algorithm). bf16 inputs run on tensor cores under {@link #BF16_MATH}.
     */
    public synchronized void gemmEx(int transA, int transB, int m, int n, int k, float alphaValue, long a, int lda, long b,
                                    int ldb, int abType, float betaValue, long c, int ldc, int cType) {
        scalars(alphaValue, betaValue);
        check(Downcalls.callStatus(lib.gemmEx, handle, transA, transB, m, n, k, alpha, a, abType, lda, b, abType, ldb, beta,
                c, cType, ldc, COMPUTE_32F, GEMM_DEFAULT), "cublasGemmEx");
    }

    /** The GEMMs' alpha and beta, read from this handle's host memory during the call (the default pointer mode). */
    private void scalars(float alphaValue, float betaValue) {
        if (closed) throw new IllegalStateException("Cublas handle is closed");
        alpha.set(JAVA_FLOAT, 0, alphaValue);
        beta.set(JAVA_FLOAT, 0, betaValue);
    }

    /** x . y over n floats; waits for the stream (the result comes back to the host). */
    public synchronized float sdot(int n, long x, long y) {
        if (closed) throw new IllegalStateException("Cublas handle is closed");
        check(Downcalls.callStatus(lib.sdot, handle, n, x, 1, y, 1, dotResult), "cublasSdot_v2");
        return dotResult.get(JAVA_FLOAT, 0);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            check(Downcalls.callStatus(lib.destroy, handle), "cublasDestroy_v2");
        } finally {
            scratch.close();
            // after the handle: its GEMMs were queued on the stream, which the owner synchronizes before closing
            if (workspace != null) workspace.close();
        }
    }
}
