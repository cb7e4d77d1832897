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
 */
public record LoadedBatch(int index, Tensor images, float[] targets, int[] samples,
                          List<Preprocessor.Failure> failures, Arena arena) implements AutoCloseable {
    public int n() {
        return samples.length;
    }

    @Override
    public void close() {
        arena.close();
    }
}
