package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.List;

/**
 * One module of a network: a forward pass that remembers what its backward pass needs, and that backward pass.
 *
 * <p>A layer keeps references to the activations of its last forward call (they live in the step's arena, see
 * {@link StepContext}), so one layer serves one step at a time and {@link #backward} must follow the
 * {@link #forward} of the same step. The backward pass <em>overwrites</em> the gradients of the layer's trainable
 * weights (every weight is used once per forward, so there is nothing to accumulate); frozen weights'
 * gradients are neither computed nor touched.
 */
public interface Layer {

    /** The module path in timm's state dict ("conv_stem", "blocks.1.0"), or a short label for parameterless ops. */
    String name();

    /** A short type name for the summary table ("Conv2d 3x3/2", "InvertedResidual"). */
    String type();

    /** y for input x; the result is allocated in the step's arena (or is x itself for an identity in eval mode). */
    Tensor forward(Tensor x, StepContext ctx);

    /**
     * Given dL/dy of the last forward, writes the trainable weights' gradients and returns dL/dx, or null when
     * {@code needInputGrad} is false (then the layer may skip that work entirely).
     */
    Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad);

    /** The parameters (weights and buffers) in state-dict order. */
    default List<Parameter> parameters() {
        return List.of();
    }

    /** Fills the weights and buffers as timm initialises a fresh model. */
    default void initialize(Initializer init) {
    }

    /** The output shape for an input shape (NCHW or [n, features]). */
    int[] outputShape(int[] inputShape);

    /** Multiply-adds of the forward pass for an input shape (convolutions and fully connected layers only). */
    default long macs(int[] inputShape) {
        return 0;
    }

    /** Whether any weight of this layer (or its children) is trained now. */
    default boolean hasTrainable() {
        for (Parameter p : parameters()) if (p.trainable()) return true;
        return false;
    }
}
