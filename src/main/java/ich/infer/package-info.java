/**
 * Inference: a {@link ich.infer.Scorer} turns preprocessed batches into probabilities, and scoring runs write
 * submissions and reports. {@link ich.infer.OnnxRuntimeModel} runs an exported ONNX model with ONNX Runtime on
 * the CPU: a scorer, the yardstick for our CPU forward pass, and the check that an export is right.
 */
package ich.infer;
