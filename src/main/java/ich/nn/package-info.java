/**
 * The neural-network engine: float32 {@link ich.nn.Tensor}s off the heap, the {@link ich.nn.Backend} of ops
 * (each with its backward pass; the CPU backend in {@code ich.nn.cpu} is the reference, a CUDA backend
 * implements the same interface), named {@link ich.nn.Parameter}s, layers and EfficientNet-B0 in
 * {@code ich.nn.model}, optimisers in {@code ich.nn.optim}, checkpoint and model formats (safetensors, ONNX) in
 * {@code ich.nn.io}.
 */
package ich.nn;
