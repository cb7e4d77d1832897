package ich.train;

/**
 * Batches in order, loaded ahead of the model: {@link BatchLoader} (host tensors) or {@link GpuBatchLoader} (device
 * tensors written by the preprocessing kernel). Both give the same samples, targets and failures for a plan.
 */
public interface BatchSource extends AutoCloseable {
    int batches();

    boolean hasNext();

    /** The next batch in order, waiting for it if needed. A worker's unexpected exception is rethrown here. */
    LoadedBatch next() throws InterruptedException;

    /** Total time {@link #next()} spent waiting: the time the model waited for data. */
    long waitNanos();

    /** Stops the workers and frees every batch not handed out. */
    @Override
    void close();
}
