package ich.nn.model;

/** One row of the model summary: a top-level module, its output shape, parameter count and forward multiply-adds. */
public record LayerSummary(String name, String type, int[] outputShape, long parameters, long trainable, long macs) {
}
