package ich.gpu;

import java.util.concurrent.atomic.AtomicBoolean;

/** A native object freed exactly once: closing again does nothing; using it after close is an error. */
abstract sealed class NativeResource implements AutoCloseable
        permits Context, Stream, Event, DeviceBuffer, PinnedBuffer, Module, Graph {
    final Cuda cuda;
    private final AtomicBoolean closed = new AtomicBoolean();

    NativeResource(Cuda cuda) {
        this.cuda = cuda;
    }

    final void checkOpen() {
        if (closed.get()) throw new IllegalStateException(getClass().getSimpleName() + " is closed");
    }

    public final boolean isClosed() {
        return closed.get();
    }

    @Override
    public final void close() {
        if (closed.compareAndSet(false, true)) release();
    }

    abstract void release();
}
