package ich.gpu;

import java.lang.foreign.MemorySegment;

/** Page-locked host memory from {@code cuMemHostAlloc}, for asynchronous copies; freed on close. */
public final class PinnedBuffer extends NativeResource {
    private final MemorySegment segment;

    private PinnedBuffer(Cuda cuda, MemorySegment segment) {
        super(cuda);
        this.segment = segment;
    }

    static PinnedBuffer allocate(Cuda cuda, long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("size must be positive: " + bytes);
        MemorySegment p = cuda.handleOut(cuda.cuMemHostAlloc, "cuMemHostAlloc", bytes, 0);
        return new PinnedBuffer(cuda, p.reinterpret(bytes));
    }

    /** The memory; not to be used after close. */
    public MemorySegment segment() {
        checkOpen();
        return segment;
    }

    public long size() {
        return segment.byteSize();
    }

    @Override
    void release() {
        cuda.check(cuda.call(cuda.cuMemFreeHost, segment), "cuMemFreeHost");
    }
}
