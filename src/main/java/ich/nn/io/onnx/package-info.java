/**
 * ONNX model files: {@link ich.nn.io.onnx.OnnxGraphBuilder} writes an inference graph of standard operators
 * (opset 17) with float32 initializers; the message classes ({@code OnnxProto}) are generated at build time
 * from {@code src/main/protobuf/onnx_subset.proto}, the subset of the ONNX specification's {@code onnx.proto}
 * that ich writes and reads, with the specification's field numbers.
 */
package ich.nn.io.onnx;
