package ich.nn;

/**
 * One parameter's tensors for {@link Backend#adamStepAll}: the parameter and its first and second moments, all
 * updated in place, and the gradient, read. All four have the same size.
 */
public record AdamTensors(Tensor param, Tensor grad, Tensor m, Tensor v) {
}
