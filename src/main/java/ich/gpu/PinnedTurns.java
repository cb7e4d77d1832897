package ich.gpu;

import java.lang.foreign.MemorySegment;

/**
 * Pinned host memory for asynchronous host-to-device copies that the host queues ahead of the device: {@code parts}
 * equal parts used in turn, each with an event recorded after the copies that read it. The host writes into the
 * current part ({@link #take}), queues copies from it, and marks them queued ({@link #copiesQueued}); moving on to
 * the next part ({@link #next}) first waits for that part's last copies, which returns at once unless the host runs
 * {@code parts} turns ahead of the device.
 *
 * <p>Why pinned: from pageable memory the driver may wait for the stream to drain before it stages a copy (CUDA's
 * "API synchronization behavior"), which would stall a host that queues one step ahead of the device. Why turns: a
 * pinned buffer is read when the copy runs, not when it is queued, so the host must not rewrite it before then.
 *
 * <p>Not thread-safe: one host thread queues the copies.
 */
public final class PinnedTurns implements AutoCloseable {
    /**
     * Each take starts on this boundary (what the buffers this class replaced used), so a copy's source is aligned
     * whatever the sizes of the takes before it.
     */
    static final long ALIGNMENT = 256;

    private final PinnedBuffer memory;
    private final Event[] copied;
    private final long partBytes;
    private int part;
    private long offset;
    private boolean closed;

    /** One pinned allocation of {@code parts × partBytes} and an event a part. */
    public PinnedTurns(Context context, int parts, long partBytes) {
        if (parts < 2) throw new IllegalArgumentException("turns need at least 2 parts: " + parts);
        if (partBytes <= 0) throw new IllegalArgumentException("part size must be positive: " + partBytes);
        this.partBytes = partBytes;
        this.copied = new Event[parts];
        PinnedBuffer m = null;
        try {
            m = context.allocatePinned(Math.multiplyExact(parts, partBytes));
            for (int i = 0; i < parts; i++) copied[i] = context.createEvent();
        } catch (RuntimeException e) {
            for (Event ev : copied) if (ev != null) ev.close();
            if (m != null) m.close();
            throw e;
        }
        this.memory = m;
    }

    /**
     * {@code bytes} of the current part after what was taken from it this turn, or null when they do not fit (the
     * caller then ends the turn, or gives up).
     */
    public MemorySegment take(long bytes) {
        checkOpen();
        if (bytes < 0) throw new IllegalArgumentException("negative size: " + bytes);
        if (bytes > partBytes - offset) return null;
        MemorySegment slice = memory.segment().asSlice(part * partBytes + offset, bytes);
        offset = Math.min(partBytes, (offset + bytes + ALIGNMENT - 1) & -ALIGNMENT);
        return slice;
    }

    /** Records, on {@code stream}, the current part's event behind the copies from it queued so far. */
    public void copiesQueued(Stream stream) {
        checkOpen();
        stream.record(copied[part]);
    }

    /** Makes {@code stream} wait for the copies from the current part marked by {@link #copiesQueued}. */
    public void awaitCopies(Stream stream) {
        checkOpen();
        stream.waitFor(copied[part]);
    }

    /**
     * Moves to the next part and empties it, once the copies last marked as reading it have run (an event never
     * recorded is complete).
     */
    public void next() {
        checkOpen();
        part = (part + 1) % copied.length;
        copied[part].synchronize();
        offset = 0;
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("pinned turns: closed");
    }

    /** Waits for every part's marked copies (they read the memory), then frees the memory and the events. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        RuntimeException failure = null;
        for (Event e : copied) {
            try {
                e.synchronize();
            } catch (RuntimeException ex) {
                if (failure == null) failure = ex;
            }
        }
        for (Event e : copied) {
            try {
                e.close();
            } catch (RuntimeException ex) {
                if (failure == null) failure = ex;
            }
        }
        try {
            memory.close();
        } catch (RuntimeException ex) {
            if (failure == null) failure = ex;
        }
        if (failure != null) throw failure;
    }
}
