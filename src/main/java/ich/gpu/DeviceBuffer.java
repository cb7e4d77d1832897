package ich.gpu;

import java.util.Objects;

/** Device memory from {@code cuMemAlloc_v2}, freed on close. */
public final class DeviceBuffer extends NativeResource {
    private final long pointer;
    private final long size;

    private DeviceBuffer(Cuda cuda, long pointer, long size) {
        super(cuda);
        this.pointer = pointer;
        this.size = size;
    }

    static DeviceBuffer allocate(Cuda cuda, long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("size must be positive: " + bytes);
        return new DeviceBuffer(cuda, cuda.longOut(cuda.cuMemAlloc, "cuMemAlloc_v2", bytes), bytes);
    }

    public long size() {
        return size;
    }

    /** The device pointer ({@code CUdeviceptr}), e.g. as a kernel argument. */
    public long pointer() {
        checkOpen();
        return pointer;
    }

    long address(long offset, long bytes) {
        checkOpen();
        Objects.checkFromIndexSize(offset, bytes, size);
        return pointer + offset;
    }

    /**
     * Sets every byte to {@code value} ({@code cuMemsetD8_v2}) and waits until it is done. The memset goes to the
     * legacy default stream, where it may still be running when cuMemsetD8 returns (CUDA's "API synchronization
     * behavior": memsets to device memory are asynchronous with respect to the host), and our streams are
     * non-blocking ({@link Stream}): they would not wait for it. Nor would it wait for them, so a kernel still
     * writing this buffer on one of them could overwrite the fill. So this waits for the whole context first, and
     * for the legacy stream after. For poisoning outputs before a test or a batch, not for a hot path.
     */
    public void fill(byte value) {
        cuda.check(cuda.call(cuda.cuCtxSynchronize), "cuCtxSynchronize");
        cuda.check(cuda.call(cuda.cuMemsetD8, pointer(), value, size), "cuMemsetD8_v2");
        cuda.check(cuda.call(cuda.cuStreamSynchronize, java.lang.foreign.MemorySegment.NULL), "cuStreamSynchronize");
    }

    @Override
    void release() {
        cuda.check(cuda.call(cuda.cuMemFree, pointer), "cuMemFree_v2");
    }
}
