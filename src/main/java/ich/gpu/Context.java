package ich.gpu;

import java.lang.foreign.MemorySegment;

/**
 * A device's primary context, retained on open and released on close, and made current on the opening thread.
 * Other threads call {@link #makeCurrent()} before using it.
 */
public final class Context extends NativeResource {
    private final int device;
    private final MemorySegment handle;

    private Context(Cuda cuda, int device, MemorySegment handle) {
        super(cuda);
        this.device = device;
        this.handle = handle;
    }

    /** Retains device {@code ordinal}'s primary context and makes it current. */
    public static Context open(int ordinal) {
        Cuda cuda = Cuda.driver();
        int device = cuda.device(ordinal);
        MemorySegment handle = cuda.handleOut(cuda.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", device);
        Context context = new Context(cuda, device, handle);
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

    /** JIT-compiles PTX (or loads a cubin/fatbin) into this context. */
    public Module loadModule(byte[] image) {
        checkOpen();
        return Module.load(cuda, image);
    }

    @Override
    void release() {
        cuda.check(cuda.call(cuda.cuDevicePrimaryCtxRelease, device), "cuDevicePrimaryCtxRelease_v2");
    }
}
