package ich.nn.model;

import ich.nn.Tensor;

/** Mean over h and w: [n, c, h, w] -> [n, c] (timm's global_pool with flatten). */
public final class GlobalAveragePool implements Layer {
    private int[] inputShape;

    @Override
    public String name() {
        return "global_pool";
    }

    @Override
    public String type() {
        return "GlobalAvgPool";
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        if (x.rank() != 4) throw new IllegalArgumentException("global_pool: expected [n, c, h, w], got " + x);
        inputShape = x.shape();
        Tensor y = ctx.output(x.dim(0), x.dim(1));
        ctx.backend().globalAveragePool(x, y);
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (!needInputGrad) return null;
        if (inputShape == null) throw new IllegalStateException("global_pool: backward before forward");
        Tensor dx = ctx.output(inputShape);
        ctx.backend().globalAveragePoolBackward(dy, dx);
        return dx;
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        return new int[] {inputShape[0], inputShape[1]};
    }
}
