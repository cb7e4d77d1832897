package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/** A CUDA event, for timing work on a stream. */
public final class Event extends NativeResource {
    private final MemorySegment handle;

    private Event(Cuda cuda, MemorySegment handle) {
        super(cuda);
        this.handle = handle;
    }

    static Event create(Cuda cuda) {
        return new Event(cuda, cuda.handleOut(cuda.cuEventCreate, "cuEventCreate", 0));
    }

    MemorySegment handle() {
        checkOpen();
        return handle;
    }

    void record(MemorySegment stream) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuEventRecord, handle, stream), "cuEventRecord");
    }

    public void synchronize() {
        checkOpen();
        cuda.check(cuda.call(cuda.cuEventSynchronize, handle), "cuEventSynchronize");
    }

    /** Milliseconds from {@code start} to this event; both must have been recorded and completed. */
    public float millisSince(Event start) {
        checkOpen();
        start.checkOpen();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ms = arena.allocate(JAVA_FLOAT);
            cuda.check(cuda.call(cuda.cuEventElapsedTime, ms, start.handle, handle), "cuEventElapsedTime");
            return ms.get(JAVA_FLOAT, 0);
        }
    }

    @Override
    void release() {
        cuda.check(cuda.call(cuda.cuEventDestroy, handle), "cuEventDestroy_v2");
    }
}
