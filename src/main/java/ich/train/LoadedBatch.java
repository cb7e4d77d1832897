package ich.train;

import ich.nn.Tensor;
import ich.preprocess.Preprocessor;

import java.lang.foreign.Arena;
import java.util.List;

/**
 * One preprocessed batch, ready for the model: {@code images} [n, c, h, w] float32 and {@code targets} [n, 6]
 * (0/1, the order of {@link ich.labels.Subtype}), with the dataset index of each row. Samples that failed to
 * load are not in the batch (n can be smaller than the batch size) but listed in {@code failures}, so the caller
 * records them. Owns its memory: close it after the step.
 *
 * <p>{@code images} is a host tensor from {@link BatchLoader}, or a device tensor from {@link GpuBatchLoader} that
 * lies in memory the loader reuses: it stays valid until {@link #releaseImages()} (which {@link #close()} calls),
 * and a step should copy it out and release it as early as it can, so the loader can fill that memory again.
 */
public record LoadedBatch(int index, Tensor images, float[] targets, int[] samples,
                          List<Preprocessor.Failure> failures, Arena arena, Release release) implements AutoCloseable {
    /**
     * How a loader takes its images back (once; later calls do nothing). {@code fenced}: run the loader's fence
     * first, which waits for the device work that may still read the images; false when the caller has waited for
     * that work already.
     */
    @FunctionalInterface
    public interface Release {
        void run(boolean fenced);
    }

    /** A host batch; nothing to release but its arena. */
    public LoadedBatch(int index, Tensor images, float[] targets, int[] samples, List<Preprocessor.Failure> failures, Arena arena) {
        this(index, images, targets, samples, failures, arena, fenced -> {});
    }

    public int n() {
        return samples.length;
    }

    /**
     * Hands device images back to their loader (once; later calls do nothing), after the loader's fence has waited
     * for the device work that may read them. The images must not be read after.
     */
    public void releaseImages() {
        release.run(true);
    }

    /**
     * {@link #releaseImages()} without the loader's fence, for a caller that has already waited for something the
     * device did after its last read of the images: the loss of the step that copied them (the copy comes first on
     * the step's stream, or before the step's graph). The fence would wait for all queued work, the next step's too.
     */
    public void releaseImagesReadByFinishedWork() {
        release.run(false);
    }

    /** Releases the images and frees the batch's memory; a second call does nothing. */
    @Override
    public void close() {
        try {
            releaseImages();
        } finally {
            if (arena.scope().isAlive()) arena.close(); // Arena.close throws when called twice
        }
    }
}
