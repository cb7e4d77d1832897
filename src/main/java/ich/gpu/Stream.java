package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.ADDRESS;

/** A CUDA stream: asynchronous copies and kernel launches run on it in order. */
public final class Stream extends NativeResource {
    final MemorySegment handle;

    private Stream(Cuda cuda, MemorySegment handle) {
        super(cuda);
        this.handle = handle;
    }

    /**
     * A non-blocking stream ({@code CU_STREAM_NON_BLOCKING}): it does not wait for the legacy default stream, nor
     * does the legacy stream wait for it. That matters for CUDA graphs: while a blocking stream is captured, CUDA
     * treats the legacy stream (which encompasses every blocking stream) as part of the capture, and a GPU run saw
     * a loader thread's wait on its own blocking stream fail with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED while the
     * training thread captured. Nothing of ours queues work on the legacy stream except {@link DeviceBuffer#fill},
     * which waits for its memset.
     */
    static Stream create(Cuda cuda) {
        final int nonBlocking = 0x1; // CU_STREAM_NON_BLOCKING
        return new Stream(cuda, cuda.handleOut(cuda.cuStreamCreate, "cuStreamCreate", nonBlocking));
    }

    /** Copies {@code bytes} from pinned host memory to the device buffer, asynchronously. */
    public void copyToDevice(PinnedBuffer src, long srcOffset, DeviceBuffer dst, long dstOffset, long bytes) {
        checkOpen();
        MemorySegment from = src.segment().asSlice(srcOffset, bytes);
        long to = dst.address(dstOffset, bytes);
        cuda.check(cuda.call(cuda.cuMemcpyHtoDAsync, to, from, bytes, handle), "cuMemcpyHtoDAsync_v2");
    }

    /** Copies {@code bytes} from the device buffer to pinned host memory, asynchronously. */
    public void copyToHost(DeviceBuffer src, long srcOffset, PinnedBuffer dst, long dstOffset, long bytes) {
        checkOpen();
        long from = src.address(srcOffset, bytes);
        MemorySegment to = dst.segment().asSlice(dstOffset, bytes);
        cuda.check(cuda.call(cuda.cuMemcpyDtoHAsync, to, from, bytes, handle), "cuMemcpyDtoHAsync_v2");
    }

    /** Copies {@code bytes} between device buffers (or within one), asynchronously. */
    public void copyOnDevice(DeviceBuffer src, long srcOffset, DeviceBuffer dst, long dstOffset, long bytes) {
        checkOpen();
        long from = src.address(srcOffset, bytes);
        long to = dst.address(dstOffset, bytes);
        cuda.check(cuda.call(cuda.cuMemcpyDtoDAsync, to, from, bytes, handle), "cuMemcpyDtoDAsync_v2");
    }

    // ---- raw device addresses, for tensors that are not DeviceBuffers (the engine's CUDA backend) ----

    /**
     * Copies {@code bytes} from host memory (pinned or not) to device address {@code dst}. From ordinary (pageable)
     * memory the driver stages the data and returns once it may be reused, so the source can be freed right after.
     */
    public void copyToDevice(MemorySegment src, long dst, long bytes) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuMemcpyHtoDAsync, dst, src.asSlice(0, bytes), bytes, handle), "cuMemcpyHtoDAsync_v2");
    }

    /**
     * Copies {@code bytes} from device address {@code src} to host memory and waits for the copy: the host reads
     * it next, and with pageable memory the driver returns only when it is done anyway.
     */
    public void copyToHostAndWait(long src, MemorySegment dst, long bytes) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuMemcpyDtoHAsync, dst.asSlice(0, bytes), src, bytes, handle), "cuMemcpyDtoHAsync_v2");
        synchronize();
    }

    /**
     * Copies {@code bytes} from device address {@code src} to pinned host memory, asynchronously: record an event
     * after it and wait for that before reading {@code dst}. (Into pageable memory the driver would wait anyway.)
     */
    public void copyToHost(long src, MemorySegment dst, long bytes) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuMemcpyDtoHAsync, dst.asSlice(0, bytes), src, bytes, handle), "cuMemcpyDtoHAsync_v2");
    }

    /** Copies {@code bytes} between device addresses, asynchronously. */
    public void copyOnDevice(long src, long dst, long bytes) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuMemcpyDtoDAsync, dst, src, bytes, handle), "cuMemcpyDtoDAsync_v2");
    }

    /** Sets {@code count} 32-bit words at device address {@code dst} to {@code bits}, asynchronously. */
    public void fill32(long dst, int bits, long count) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuMemsetD32Async, dst, bits, count, handle), "cuMemsetD32Async");
    }

    /** Work queued on this stream after this call waits until {@code event} (recorded on any stream) completes. */
    public void waitFor(Event event) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuStreamWaitEvent, handle, event.handle(), 0), "cuStreamWaitEvent");
    }

    public void record(Event event) {
        checkOpen();
        event.record(handle);
    }

    /** Launches a kernel on this stream; see {@link Module.Kernel#launch}. */
    public void launch(Module.Kernel kernel, Dim3 grid, Dim3 block, int sharedBytes, Object... args) {
        checkOpen();
        kernel.launch(handle, grid, block, sharedBytes, args);
    }

    /**
     * Records what {@code body} queues on this stream into a CUDA graph instead of running it, and returns the
     * graph ready to {@link Graph#launch} any number of times. See {@link #beginCapture}. The capture is ended even
     * when {@code body} throws.
     */
    public Graph capture(Runnable body) {
        beginCapture();
        try {
            body.run();
        } catch (RuntimeException e) {
            try {
                endCapture().close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return endCapture();
    }

    /**
     * From now on, work queued on this stream is recorded, not run, until {@link #endCapture}. Capture mode is
     * thread-local: other threads may use CUDA meanwhile, and this thread may queue work on other streams, but it
     * must not synchronize or allocate device memory (the driver refuses, and the capture fails).
     */
    public void beginCapture() {
        checkOpen();
        final int threadLocalMode = 1; // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        cuda.check(cuda.call(cuda.cuStreamBeginCapture, handle, threadLocalMode), "cuStreamBeginCapture_v2");
    }

    /** Ends the capture begun by {@link #beginCapture} and instantiates what was recorded. */
    public Graph endCapture() {
        checkOpen();
        MemorySegment graph;
        // cuStreamEndCapture(CUstream, CUgraph*): the out-parameter comes second, so handleOut (out first) cannot be used
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            cuda.check(cuda.call(cuda.cuStreamEndCapture, handle, out), "cuStreamEndCapture");
            graph = out.get(ADDRESS, 0);
        }
        return Graph.instantiate(cuda, graph);
    }

    /** Waits until everything queued on the stream has finished. */
    public void synchronize() {
        checkOpen();
        cuda.check(cuda.call(cuda.cuStreamSynchronize, handle), "cuStreamSynchronize");
    }

    @Override
    void release() {
        cuda.check(cuda.call(cuda.cuStreamDestroy, handle), "cuStreamDestroy_v2");
    }

    /** Grid or block dimensions. */
    public record Dim3(int x, int y, int z) {
        public Dim3 {
            if (x < 1 || y < 1 || z < 1) throw new IllegalArgumentException("dimensions must be positive: " + x + "," + y + "," + z);
        }

        public static Dim3 of(int x) {
            return new Dim3(x, 1, 1);
        }
    }
}
