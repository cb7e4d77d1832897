package ich.train;

import java.util.function.DoubleSupplier;

/**
 * A training step queued on the device whose loss has not been read: the batch it trains on and its loss, to be
 * read later. A training loop holds one while it queues the next step, so on a GPU the host walks step i + 1 (or
 * checks it against its CUDA graph) while the device still runs step i, instead of leaving the device idle
 * between steps; on the CPU a step is done when it returns, and the lag costs nothing.
 */
public record QueuedStep(LoadedBatch batch, DoubleSupplier loss) implements AutoCloseable {
    /**
     * Waits for the loss, then hands the batch's images back to the loader without the loader's fence (the loss
     * is computed after the step's copy of the images, so that copy is done) and frees the batch.
     */
    public double finish() {
        double value;
        try {
            value = loss.getAsDouble();
        } catch (RuntimeException e) {
            batch.close();
            throw e;
        }
        batch.releaseImagesReadByFinishedWork();
        batch.close();
        return value;
    }

    /** Frees the batch without reading the loss (after a failure); the loader's fence waits for the device. */
    @Override
    public void close() {
        batch.close();
    }
}
