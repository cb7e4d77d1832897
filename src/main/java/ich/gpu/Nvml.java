package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * NVML ({@code libnvidia-ml.so.1}): driver version, device names, utilisation and memory. Open initialises
 * NVML ({@code nvmlInit_v2}), close shuts it down; errors are {@link CudaException}s with NVML's text.
 */
public final class Nvml implements AutoCloseable {
    /** {@code nvmlReturn_t} names; NVML has no function for them, only {@code nvmlErrorString}. */
    private static final Map<Integer, String> NAMES = Map.ofEntries(
            Map.entry(1, "NVML_ERROR_UNINITIALIZED"), Map.entry(2, "NVML_ERROR_INVALID_ARGUMENT"),
            Map.entry(3, "NVML_ERROR_NOT_SUPPORTED"), Map.entry(4, "NVML_ERROR_NO_PERMISSION"),
            Map.entry(5, "NVML_ERROR_ALREADY_INITIALIZED"), Map.entry(6, "NVML_ERROR_NOT_FOUND"),
            Map.entry(7, "NVML_ERROR_INSUFFICIENT_SIZE"), Map.entry(8, "NVML_ERROR_INSUFFICIENT_POWER"),
            Map.entry(9, "NVML_ERROR_DRIVER_NOT_LOADED"), Map.entry(10, "NVML_ERROR_TIMEOUT"),
            Map.entry(11, "NVML_ERROR_IRQ_ISSUE"), Map.entry(12, "NVML_ERROR_LIBRARY_NOT_FOUND"),
            Map.entry(13, "NVML_ERROR_FUNCTION_NOT_FOUND"), Map.entry(14, "NVML_ERROR_CORRUPTED_INFOROM"),
            Map.entry(15, "NVML_ERROR_GPU_IS_LOST"), Map.entry(16, "NVML_ERROR_RESET_REQUIRED"),
            Map.entry(17, "NVML_ERROR_OPERATING_SYSTEM"), Map.entry(18, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"),
            Map.entry(19, "NVML_ERROR_IN_USE"), Map.entry(20, "NVML_ERROR_MEMORY"), Map.entry(21, "NVML_ERROR_NO_DATA"),
            Map.entry(999, "NVML_ERROR_UNKNOWN"));

    /** {@code nvmlUtilization_t}: percent of time the GPU and the memory were busy over the last sample period. */
    public record Utilization(int gpu, int memory) {}

    /** {@code nvmlMemory_t}, bytes. */
    public record Memory(long total, long free, long used) {}

    private final Arena arena = Arena.ofShared();
    private final MethodHandle errorString, shutdown, getCount, getHandle, getName, getUtilization, getMemory, driverVersion,
            getHandleByPciBusId, getIndex;
    private boolean closed;

    private Nvml(NativeLibraries.Found library) {
        SymbolLookup lookup = library.load(arena);
        Linker linker = Linker.nativeLinker();
        errorString = linker.downcallHandle(lookup.findOrThrow("nvmlErrorString"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        MethodHandle init = fn(linker, lookup, "nvmlInit_v2");
        shutdown = fn(linker, lookup, "nvmlShutdown");
        getCount = fn(linker, lookup, "nvmlDeviceGetCount_v2", ADDRESS);
        getHandle = fn(linker, lookup, "nvmlDeviceGetHandleByIndex_v2", JAVA_INT, ADDRESS);
        getName = fn(linker, lookup, "nvmlDeviceGetName", ADDRESS, ADDRESS, JAVA_INT);
        getUtilization = fn(linker, lookup, "nvmlDeviceGetUtilizationRates", ADDRESS, ADDRESS);
        getMemory = fn(linker, lookup, "nvmlDeviceGetMemoryInfo", ADDRESS, ADDRESS);
        driverVersion = fn(linker, lookup, "nvmlSystemGetDriverVersion", ADDRESS, JAVA_INT);
        getHandleByPciBusId = fn(linker, lookup, "nvmlDeviceGetHandleByPciBusId_v2", ADDRESS, ADDRESS);
        getIndex = fn(linker, lookup, "nvmlDeviceGetIndex", ADDRESS, ADDRESS);
        check(call(init), "nvmlInit_v2");
    }

    /**
     * Loads and initialises NVML.
     *
     * @throws GpuUnavailableException when the library is missing
     * @throws CudaException when nvmlInit_v2 fails
     */
    public static Nvml open() {
        NativeLibraries.Result found = NativeLibraries.find(NativeLibraries.NVML);
        if (!(found instanceof NativeLibraries.Found f)) {
            throw new GpuUnavailableException(((NativeLibraries.NotFound) found).message());
        }
        return new Nvml(f);
    }

    private static MethodHandle fn(Linker linker, SymbolLookup lookup, String name, MemoryLayout... args) {
        return Downcalls.statusFunction(linker, lookup, name, args);
    }

    private static int call(MethodHandle handle, Object... args) {
        return Downcalls.callStatus(handle, args);
    }

    /** Throws a {@link CudaException} with NVML's text for a non-zero status. */
    public void check(int status, String function) {
        if (status == 0) return;
        String text;
        try {
            MemorySegment s = (MemorySegment) errorString.invokeExact(status);
            text = s.equals(MemorySegment.NULL) ? "unknown error" : s.reinterpret(4096).getString(0);
        } catch (Throwable t) {
            text = "unknown error";
        }
        throw new CudaException(status, function, NAMES.getOrDefault(status, "NVML_ERROR_" + status), text);
    }

    public synchronized int deviceCount() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(JAVA_INT);
            check(call(getCount, n), "nvmlDeviceGetCount_v2");
            return n.get(JAVA_INT, 0);
        }
    }

    private MemorySegment handle(int index, Arena a) {
        MemorySegment h = a.allocate(ADDRESS);
        check(call(getHandle, index, h), "nvmlDeviceGetHandleByIndex_v2");
        return h.get(ADDRESS, 0);
    }

    public synchronized String deviceName(int index) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(256);
            check(call(getName, handle(index, a), name, 256), "nvmlDeviceGetName");
            return name.getString(0);
        }
    }

    public synchronized Utilization utilization(int index) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment u = a.allocate(JAVA_INT, 2);
            check(call(getUtilization, handle(index, a), u), "nvmlDeviceGetUtilizationRates");
            return new Utilization(u.getAtIndex(JAVA_INT, 0), u.getAtIndex(JAVA_INT, 1));
        }
    }

    public synchronized Memory memory(int index) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment m = a.allocate(JAVA_LONG, 3);
            check(call(getMemory, handle(index, a), m), "nvmlDeviceGetMemoryInfo");
            return new Memory(m.getAtIndex(JAVA_LONG, 0), m.getAtIndex(JAVA_LONG, 1), m.getAtIndex(JAVA_LONG, 2));
        }
    }

    /**
     * NVML's index of the device at a PCI bus id such as "0000:65:00.0" (from {@link Cuda#pciBusId}). CUDA ordinals
     * and NVML indices differ when CUDA_VISIBLE_DEVICES or CUDA_DEVICE_ORDER reorder devices; the bus id does not.
     */
    public synchronized int indexOfPciBusId(String busId) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(ADDRESS);
            check(call(getHandleByPciBusId, a.allocateFrom(busId), h), "nvmlDeviceGetHandleByPciBusId_v2");
            MemorySegment index = a.allocate(JAVA_INT);
            check(call(getIndex, h.get(ADDRESS, 0), index), "nvmlDeviceGetIndex");
            return index.get(JAVA_INT, 0);
        }
    }

    /** The kernel driver's version, e.g. "580.65.06". */
    public synchronized String driverVersion() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(96);
            check(call(driverVersion, v, 96), "nvmlSystemGetDriverVersion");
            return v.getString(0);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            check(call(shutdown), "nvmlShutdown");
        } finally {
            arena.close();
        }
    }
}
