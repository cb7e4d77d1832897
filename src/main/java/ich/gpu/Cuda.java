package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Downcalls into the CUDA driver API ({@code libcuda.so.1}). Each method is the C function of the same name
 * (the {@code _v2} symbol where the API has one) and throws {@link CudaException} on a non-zero status.
 * Handles are {@link MemorySegment}s, device pointers {@code long}s. The resource classes ({@link Context},
 * {@link Stream}, ...) are the intended way in; this class is their plumbing.
 */
public final class Cuda {
    /** {@code CUdevice_attribute} values. */
    public static final int ATTR_MULTIPROCESSOR_COUNT = 16;
    public static final int ATTR_COMPUTE_CAPABILITY_MAJOR = 75;
    public static final int ATTR_COMPUTE_CAPABILITY_MINOR = 76;
    /** Peak memory clock in kHz and the memory bus width in bits: theoretical bandwidth = 2 * clock * width / 8. */
    public static final int ATTR_MEMORY_CLOCK_RATE = 36;
    public static final int ATTR_GLOBAL_MEMORY_BUS_WIDTH = 37;

    /** {@code CUjit_option} values for the JIT logs. */
    static final int JIT_INFO_LOG_BUFFER = 3;
    static final int JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4;
    static final int JIT_ERROR_LOG_BUFFER = 5;
    static final int JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

    private static final Linker LINKER = Linker.nativeLinker();
    private static volatile Cuda driver;

    private final NativeLibraries.Found library;
    private final SymbolLookup lookup;
    final MethodHandle cuGetErrorName, cuGetErrorString, cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet,
            cuDeviceGetName, cuDeviceGetPCIBusId, cuDeviceGetAttribute, cuDeviceTotalMem, cuDevicePrimaryCtxRetain,
            cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize, cuStreamCreate, cuStreamDestroy, cuStreamSynchronize,
            cuStreamWaitEvent, cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy, cuMemAlloc,
            cuMemFree, cuMemHostAlloc, cuMemFreeHost, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD8, cuMemsetD32Async, cuMemGetInfo,
            cuModuleLoadDataEx, cuModuleGetFunction, cuModuleUnload, cuLaunchKernel,
            cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy;

    private Cuda(NativeLibraries.Found library) {
        this.library = library;
        this.lookup = library.load(Arena.global());
        cuGetErrorName = fn("cuGetErrorName", JAVA_INT, ADDRESS);
        cuGetErrorString = fn("cuGetErrorString", JAVA_INT, ADDRESS);
        cuInit = fn("cuInit", JAVA_INT);
        cuDriverGetVersion = fn("cuDriverGetVersion", ADDRESS);
        cuDeviceGetCount = fn("cuDeviceGetCount", ADDRESS);
        cuDeviceGet = fn("cuDeviceGet", ADDRESS, JAVA_INT);
        cuDeviceGetName = fn("cuDeviceGetName", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceGetPCIBusId = fn("cuDeviceGetPCIBusId", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceGetAttribute = fn("cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceTotalMem = fn("cuDeviceTotalMem_v2", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRetain = fn("cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRelease = fn("cuDevicePrimaryCtxRelease_v2", JAVA_INT);
        cuCtxSetCurrent = fn("cuCtxSetCurrent", ADDRESS);
        cuStreamCreate = fn("cuStreamCreate", ADDRESS, JAVA_INT);
        cuStreamDestroy = fn("cuStreamDestroy_v2", ADDRESS);
        cuStreamSynchronize = fn("cuStreamSynchronize", ADDRESS);
        cuCtxSynchronize = fn("cuCtxSynchronize");
        cuStreamWaitEvent = fn("cuStreamWaitEvent", ADDRESS, ADDRESS, JAVA_INT);
        cuEventCreate = fn("cuEventCreate", ADDRESS, JAVA_INT);
        cuEventRecord = fn("cuEventRecord", ADDRESS, ADDRESS);
        cuEventSynchronize = fn("cuEventSynchronize", ADDRESS);
        // CUDA 12.8 added the _v2 (same signature); older drivers have only the original.
        cuEventElapsedTime = lookup.find("cuEventElapsedTime_v2").isPresent()
                ? fn("cuEventElapsedTime_v2", ADDRESS, ADDRESS, ADDRESS)
                : fn("cuEventElapsedTime", ADDRESS, ADDRESS, ADDRESS);
        cuEventDestroy = fn("cuEventDestroy_v2", ADDRESS);
        cuMemAlloc = fn("cuMemAlloc_v2", ADDRESS, JAVA_LONG);
        cuMemFree = fn("cuMemFree_v2", JAVA_LONG);
        cuMemHostAlloc = fn("cuMemHostAlloc", ADDRESS, JAVA_LONG, JAVA_INT);
        cuMemFreeHost = fn("cuMemFreeHost", ADDRESS);
        cuMemcpyHtoDAsync = fn("cuMemcpyHtoDAsync_v2", JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS);
        cuMemcpyDtoHAsync = fn("cuMemcpyDtoHAsync_v2", ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemcpyDtoDAsync = fn("cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemsetD8 = fn("cuMemsetD8_v2", JAVA_LONG, JAVA_BYTE, JAVA_LONG);
        cuMemsetD32Async = fn("cuMemsetD32Async", JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS);
        cuMemGetInfo = fn("cuMemGetInfo_v2", ADDRESS, ADDRESS);
        cuModuleLoadDataEx = fn("cuModuleLoadDataEx", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        cuModuleGetFunction = fn("cuModuleGetFunction", ADDRESS, ADDRESS, ADDRESS);
        cuModuleUnload = fn("cuModuleUnload", ADDRESS);
        cuStreamBeginCapture = fn("cuStreamBeginCapture_v2", ADDRESS, JAVA_INT);
        cuStreamEndCapture = fn("cuStreamEndCapture", ADDRESS, ADDRESS);
        cuGraphInstantiate = fn("cuGraphInstantiateWithFlags", ADDRESS, ADDRESS, JAVA_LONG);
        cuGraphLaunch = fn("cuGraphLaunch", ADDRESS, ADDRESS);
        cuGraphExecDestroy = fn("cuGraphExecDestroy", ADDRESS);
        cuGraphDestroy = fn("cuGraphDestroy", ADDRESS);
        cuLaunchKernel = fn("cuLaunchKernel", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
    }

    /**
     * The driver, loaded and initialised ({@code cuInit(0)}) once per process.
     *
     * @throws GpuUnavailableException when the library is missing or cuInit fails
     */
    public static Cuda driver() {
        Cuda d = driver;
        if (d != null) return d;
        synchronized (Cuda.class) {
            if (driver != null) return driver;
            NativeLibraries.Result found = NativeLibraries.find(NativeLibraries.CUDA);
            if (!(found instanceof NativeLibraries.Found f)) {
                throw new GpuUnavailableException(((NativeLibraries.NotFound) found).message());
            }
            Cuda c;
            try {
                c = new Cuda(f);
            } catch (IllegalArgumentException | IllegalCallerException | java.util.NoSuchElementException e) {
                throw new GpuUnavailableException(f.where() + " cannot be used: " + e.getMessage());
            }
            c.check(c.call(c.cuInit, 0), "cuInit");
            driver = c;
            return c;
        }
    }

    public NativeLibraries.Found library() {
        return library;
    }

    private MethodHandle fn(String name, MemoryLayout... args) {
        return Downcalls.statusFunction(LINKER, lookup, name, args);
    }

    /** Invokes a handle that returns a CUresult. */
    int call(MethodHandle handle, Object... args) {
        return Downcalls.callStatus(handle, args);
    }

    /** Throws a {@link CudaException} with the driver's name and text for a non-zero status. */
    public void check(int status, String function) {
        if (status != 0) throw error(status, function, null);
    }

    CudaException error(int status, String function, String log) {
        return new CudaException(status, function, errorText(cuGetErrorName, status, "CUDA_ERROR_" + status),
                errorText(cuGetErrorString, status, "unknown error"), log);
    }

    private String errorText(MethodHandle handle, int status, String fallback) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ADDRESS);
            if (call(handle, status, p) != 0) return fallback;
            MemorySegment s = p.get(ADDRESS, 0);
            return s.equals(MemorySegment.NULL) ? fallback : s.reinterpret(4096).getString(0);
        }
    }

    /** Calls a function whose only output is one int, e.g. {@code cuDriverGetVersion(int*)}. */
    int intOut(MethodHandle handle, String function, Object... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(call(handle, prepend(out, args)), function);
            return out.get(JAVA_INT, 0);
        }
    }

    /** Calls a function whose first argument receives a handle, e.g. {@code cuStreamCreate(CUstream*, ...)}. */
    MemorySegment handleOut(MethodHandle handle, String function, Object... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check(call(handle, prepend(out, args)), function);
            return out.get(ADDRESS, 0);
        }
    }

    long longOut(MethodHandle handle, String function, Object... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check(call(handle, prepend(out, args)), function);
            return out.get(JAVA_LONG, 0);
        }
    }

    private static Object[] prepend(Object first, Object[] rest) {
        Object[] all = new Object[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    /** E.g. 13000 for CUDA 13.0. */
    public int driverVersion() {
        return intOut(cuDriverGetVersion, "cuDriverGetVersion");
    }

    public int deviceCount() {
        return intOut(cuDeviceGetCount, "cuDeviceGetCount");
    }

    /** The CUdevice of an ordinal. */
    public int device(int ordinal) {
        return intOut(cuDeviceGet, "cuDeviceGet", ordinal);
    }

    public String deviceName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocate(256);
            check(call(cuDeviceGetName, name, 256, device), "cuDeviceGetName");
            return name.getString(0);
        }
    }

    /** The device's PCI bus id, "domain:bus:device.function" (e.g. "0000:65:00.0"), as NVML names devices. */
    public String pciBusId(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = arena.allocate(64);
            check(call(cuDeviceGetPCIBusId, id, 64, device), "cuDeviceGetPCIBusId");
            return id.getString(0);
        }
    }

    public int attribute(int device, int attribute) {
        return intOut(cuDeviceGetAttribute, "cuDeviceGetAttribute", attribute, device);
    }

    public long totalMemory(int device) {
        return longOut(cuDeviceTotalMem, "cuDeviceTotalMem_v2", device);
    }

    /** "13.0" for 13000. */
    public static String versionString(int version) {
        return version / 1000 + "." + version % 1000 / 10;
    }
}
