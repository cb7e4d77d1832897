package ich.nn.model;

import ich.nn.Tensor;

/** x * sigmoid(x) (timm's "swish"), after every batch norm of B0 but the projections'. */
public final class SiLU implements Layer {
    private final String name;
    private Tensor x;

    public SiLU(String name) {
        this.name = name;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "SiLU";
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        this.x = x;
        Tensor y = ctx.output(x.shape());
        ctx.backend().silu(x, y);
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (!needInputGrad) return null;
        if (x == null) throw new IllegalStateException(name + ": backward before forward");
        Tensor dx = ctx.output(x.shape());
        ctx.backend().siluBackward(x, dy, dx);
        return dx;
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        return inputShape.clone();
    }
}
