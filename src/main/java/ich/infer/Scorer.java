package ich.infer;

import ich.nn.Tensor;

/**
 * A trained model that turns a preprocessed batch [n, 3, h, w] into six probabilities per image (in
 * {@link ich.labels.Subtype} order). Implemented by ONNX Runtime and by our own engine; scoring does not care
 * which.
 */
public interface Scorer extends AutoCloseable {
    /** For reports, e.g. "onnxruntime (cpu)" or "java (cpu, 2 threads)". */
    String name();

    /** Probabilities, row-major [n, 6]. */
    float[] probabilities(Tensor images);

    @Override
    void close();
}
