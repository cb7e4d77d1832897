package ich.nn;

/**
 * A named tensor of a model: a trainable weight with its gradient, or a buffer (batch-norm running statistics)
 * that is saved and loaded but never optimised. Names are timm's state-dict names ({@code conv_stem.weight},
 * {@code blocks.1.0.bn1.running_mean}, {@code classifier.bias}) so checkpoints map one to one.
 */
public final class Parameter {
    private final String name;
    private final Tensor value;
    private final Tensor grad;
    private boolean trainable;

    private Parameter(String name, Tensor value, Tensor grad, boolean trainable) {
        this.name = name;
        this.value = value;
        this.grad = grad;
        this.trainable = trainable;
    }

    /** A trainable weight; {@code grad} has its shape and receives the backward pass. */
    public static Parameter weight(String name, Tensor value, Tensor grad) {
        if (!value.sameShape(grad)) throw new IllegalArgumentException(name + ": gradient shape differs from value");
        return new Parameter(name, value, grad, true);
    }

    /** A buffer: state that is not trained (no gradient), e.g. running mean and variance. */
    public static Parameter buffer(String name, Tensor value) {
        return new Parameter(name, value, null, false);
    }

    public String name() {
        return name;
    }

    public Tensor value() {
        return value;
    }

    /** The gradient, or null for a buffer. */
    public Tensor grad() {
        return grad;
    }

    public boolean isBuffer() {
        return grad == null;
    }

    /** Whether the optimiser updates it now (false for buffers and for frozen weights). */
    public boolean trainable() {
        return trainable;
    }

    /** Freezes or unfreezes a weight (the seed's first epoch trains only the head). */
    public void setTrainable(boolean trainable) {
        if (isBuffer() && trainable) throw new IllegalStateException(name + " is a buffer and cannot be trained");
        this.trainable = trainable;
    }

    public long size() {
        return value.size();
    }

    @Override
    public String toString() {
        return name + value;
    }
}
