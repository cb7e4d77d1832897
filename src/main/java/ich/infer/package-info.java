/**
 * Inference outside our own engine: {@link ich.infer.OnnxRuntimeModel} runs an exported ONNX model with
 * ONNX Runtime on the CPU, the yardstick for our CPU forward pass and the check that an export is right.
 */
package ich.infer;
