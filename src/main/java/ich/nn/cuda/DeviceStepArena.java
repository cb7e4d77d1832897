package ich.nn.cuda;

import ich.gpu.Context;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * The arena of one training step on the GPU: device tensors carved out of large chunks that outlive the step,
 * as {@code ich.nn.cpu.StepArena} does on the CPU, plus ordinary host memory for what the step stages there
 * (masks and labels on their way to the device).
 *
 * <p>Why: cuMemAlloc and cuMemFree are slow and cuMemFree waits for the whole device, so allocating a step's
 * activations fresh would serialise every step with the host. Recycled chunks cost nothing after the first
 * step. Reuse is safe without events because every op of the backend runs on its one stream, in call order: a
 * later step's kernel that overwrites a chunk is queued after the earlier step's last reader.
 *
 * <p>Device slices are zero-length segments bound to the step's scope, so a tensor used after its step fails
 * the backend's liveness check instead of reading the next step's data.
 */
final class DeviceStepArena implements Arena {
    /** Device allocations are aligned for cuDNN's vectorised loads (it wants 16 bytes; 256 costs nothing). */
    static final long ALIGNMENT = 256;

    private final Pool pool;
    private final Arena host = Arena.ofShared();
    private final List<Chunk> taken = new ArrayList<>();
    private Chunk current;
    private long offset;

    DeviceStepArena(Pool pool) {
        this.pool = pool;
    }

    /** Host memory, for staging: device tensors come from {@link #allocateDevice}. */
    @Override
    public MemorySegment allocate(long byteSize, long byteAlignment) {
        return host.allocate(byteSize, byteAlignment);
    }

    /** A device address of {@code bytes} valid until the step closes, as a segment bound to the step's scope. */
    synchronized MemorySegment allocateDevice(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("device step arena: bad size " + bytes);
        long at = current == null ? 0 : align(offset);
        if (current == null || at + bytes > current.bytes) {
            current = pool.take(bytes);
            taken.add(current);
            at = 0;
        }
        offset = at + bytes;
        return MemorySegment.ofAddress(current.pointer + at).reinterpret(host, null);
    }

    private static long align(long offset) {
        return (offset + ALIGNMENT - 1) & -ALIGNMENT;
    }

    @Override
    public MemorySegment.Scope scope() {
        return host.scope();
    }

    @Override
    public synchronized void close() {
        host.close();
        pool.giveBack(taken);
        taken.clear();
        current = null;
    }

    /** One cuMemAlloc'd chunk (cuMemAlloc aligns to at least 256 bytes). */
    record Chunk(long pointer, long bytes) {}

    /**
     * The free chunks of one backend, handed out in the order a step returned them, so steps of one shape find the
     * same chunks in the same places. Chunks in use when the pool closes are freed when their step ends.
     */
    static final class Pool implements AutoCloseable {
        /** 64 MiB: a few per small step; a larger tensor gets a chunk of its own size. */
        static final long CHUNK = 64L << 20;

        private final Context context;
        private final LongConsumer onAllocate, onFree;
        private final ArrayDeque<Chunk> free = new ArrayDeque<>();
        private boolean closed;

        /** @param onAllocate / onFree are told the bytes of each chunk (the backend's memory accounting) */
        Pool(Context context, LongConsumer onAllocate, LongConsumer onFree) {
            this.context = context;
            this.onAllocate = onAllocate;
            this.onFree = onFree;
        }

        synchronized Chunk take(long atLeast) {
            Chunk head = free.peekFirst();
            if (head != null && head.bytes >= atLeast) return free.pollFirst();
            long bytes = Math.max(CHUNK, atLeast);
            Chunk c = new Chunk(context.allocateRaw(bytes), bytes);
            onAllocate.accept(bytes);
            return c;
        }

        synchronized void giveBack(List<Chunk> chunks) {
            for (int i = chunks.size() - 1; i >= 0; i--) {
                if (closed) release(chunks.get(i));
                else free.addFirst(chunks.get(i));
            }
        }

        private void release(Chunk c) {
            // a step that outlived its backend: freeLate frees only what the context's release did not take
            context.freeLate(c.pointer);
            onFree.accept(c.bytes);
        }

        @Override
        public synchronized void close() {
            closed = true;
            for (Chunk c : free) release(c);
            free.clear();
        }
    }
}
