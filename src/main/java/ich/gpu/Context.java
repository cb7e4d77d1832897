package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A device's primary context, retained on open and released on close, and made current on the opening thread.
 * Other threads call {@link #makeCurrent()} before using it.
 */
public final class Context extends NativeResource {
    /**
     * Per device: how many open Context objects retain its primary context, and which incarnation of it they hold
     * (a new one each time the count leaves zero). Device memory belongs to the primary context, not to the object
     * that allocated it, so {@link #freeLate} may free it after that object closed while another still retains
     * the context; an address of an earlier incarnation went with it and must never be freed again (the driver
     * may have handed the same address out since).
     */
    private static final Map<Integer, long[]> PRIMARY = new HashMap<>(); // device -> {retains, incarnation}

    private final int device;
    private final MemorySegment handle;
    private final long incarnation;

    private Context(Cuda cuda, int device, MemorySegment handle, long incarnation) {
        super(cuda);
        this.device = device;
        this.handle = handle;
        this.incarnation = incarnation;
    }

    /** Retains device {@code ordinal}'s primary context and makes it current. */
    public static Context open(int ordinal) {
        Cuda cuda = Cuda.driver();
        int device = cuda.device(ordinal);
        Context context;
        synchronized (PRIMARY) {
            MemorySegment handle = cuda.handleOut(cuda.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", device);
            long[] primary = PRIMARY.computeIfAbsent(device, d -> new long[2]);
            if (primary[0]++ == 0) primary[1]++;
            context = new Context(cuda, device, handle, primary[1]);
        }
        try {
            context.makeCurrent();
        } catch (RuntimeException e) {
            context.close();
            throw e;
        }
        return context;
    }

    public void makeCurrent() {
        checkOpen();
        cuda.check(cuda.call(cuda.cuCtxSetCurrent, handle), "cuCtxSetCurrent");
    }

    public int device() {
        return device;
    }

    public Stream createStream() {
        checkOpen();
        return Stream.create(cuda);
    }

    public Event createEvent() {
        checkOpen();
        return Event.create(cuda);
    }

    public DeviceBuffer allocate(long bytes) {
        checkOpen();
        return DeviceBuffer.allocate(cuda, bytes);
    }

    public PinnedBuffer allocatePinned(long bytes) {
        checkOpen();
        return PinnedBuffer.allocate(cuda, bytes);
    }

    /** Free and total device memory in bytes ({@code cuMemGetInfo_v2}), as {free, total}. */
    public long[] memoryInfo() {
        checkOpen();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG);
            MemorySegment total = arena.allocate(JAVA_LONG);
            cuda.check(cuda.call(cuda.cuMemGetInfo, free, total), "cuMemGetInfo_v2");
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        }
    }

    /** Device memory as a raw address (cuMemAlloc_v2), for allocators that free it themselves with {@link #freeLate}. */
    public long allocateRaw(long bytes) {
        checkOpen();
        if (bytes <= 0) throw new IllegalArgumentException("size must be positive: " + bytes);
        return cuda.longOut(cuda.cuMemAlloc, "cuMemAlloc_v2", bytes);
    }

    /** How many open Context objects retain device {@code device}'s primary context (for tests). */
    static int retains(int device) {
        synchronized (PRIMARY) {
            long[] primary = PRIMARY.get(device);
            return primary == null ? 0 : (int) primary[0];
        }
    }

    /**
     * Frees an address from {@link #allocateRaw}, making the primary context current on the calling thread first; also
     * after this object closed, for memory whose owner (an arena) may outlive it. While any Context still retains the device's primary context, the memory is still allocated
     * and is freed here; once the last one released it, the driver freed it with the context, and this does
     * nothing. Returns whether it freed.
     */
    public boolean freeLate(long pointer) {
        synchronized (PRIMARY) {
            long[] primary = PRIMARY.get(device);
            if (primary == null || primary[0] == 0 || primary[1] != incarnation) return false;
            cuda.check(cuda.call(cuda.cuCtxSetCurrent, handle), "cuCtxSetCurrent");
            cuda.check(cuda.call(cuda.cuMemFree, pointer), "cuMemFree_v2");
            return true;
        }
    }

    /** The device's name from the driver, e.g. "NVIDIA H100 80GB HBM3". */
    public String deviceName() {
        return cuda.deviceName(device);
    }

    /** JIT-compiles PTX (or loads a cubin/fatbin) into this context. */
    public Module loadModule(byte[] image) {
        checkOpen();
        return Module.load(cuda, image);
    }

    @Override
    void release() {
        synchronized (PRIMARY) {
            PRIMARY.get(device)[0]--;
            cuda.check(cuda.call(cuda.cuDevicePrimaryCtxRelease, device), "cuDevicePrimaryCtxRelease_v2");
        }
    }
}
