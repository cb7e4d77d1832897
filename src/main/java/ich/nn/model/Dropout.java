package ich.nn.model;

import ich.nn.Tensor;

/** Element-wise dropout in training mode (the seed's Dropout(0.125) before the classifier); identity in eval. */
public final class Dropout implements Layer {
    private final String name;
    private final double p;
    private Tensor mask;

    public Dropout(String name, double p) {
        if (!(p >= 0 && p < 1)) throw new IllegalArgumentException(name + ": dropout rate must be in [0, 1): " + p);
        this.name = name;
        this.p = p;
    }

    public double rate() {
        return p;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "Dropout(" + p + ")";
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        if (!ctx.training() || p == 0) {
            mask = null;
            return x;
        }
        mask = Masks.bernoulli(ctx, name, p, x.shape());
        Tensor y = ctx.output(x.shape());
        ctx.backend().multiplyByMask(x, mask, y);
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (!needInputGrad) return null;
        if (mask == null) return dy;
        Tensor dx = ctx.output(dy.shape());
        ctx.backend().multiplyByMask(dy, mask, dx);
        return dx;
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        return inputShape.clone();
    }
}
