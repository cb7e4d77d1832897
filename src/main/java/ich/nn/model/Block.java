package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.List;

/**
 * An EfficientNet block: a body of layers and, when the stride is 1 and the channels match, timm's skip
 * connection y = drop_path(body(x)) + x. Drop-path (stochastic depth) zeroes a whole sample's residual branch
 * with probability p and scales the survivors by 1 / (1 - p), in training mode only.
 */
public abstract sealed class Block implements Layer permits DepthwiseSeparable, InvertedResidual {
    private final String name;
    private final Sequential body;
    private final boolean skip;
    private final double dropPathRate;
    private Tensor mask;

    Block(String name, List<Layer> body, boolean skip, double dropPathRate) {
        if (!(dropPathRate >= 0 && dropPathRate < 1)) throw new IllegalArgumentException(name + ": drop-path rate must be in [0, 1): " + dropPathRate);
        this.name = name;
        this.body = new Sequential(name, body);
        this.skip = skip;
        this.dropPathRate = dropPathRate;
    }

    @Override
    public String name() {
        return name;
    }

    public boolean hasSkip() {
        return skip;
    }

    public double dropPathRate() {
        return dropPathRate;
    }

    public List<Layer> layers() {
        return body.layers();
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        Tensor y = body.forward(x, ctx);
        mask = null;
        if (!skip) return y;
        if (ctx.training() && dropPathRate > 0) {
            mask = Masks.bernoulli(ctx, name + ".drop_path", dropPathRate, x.dim(0));
            ctx.backend().multiplyByMask(y, mask, y);
        }
        Tensor out = ctx.output(x.shape());
        ctx.backend().add(y, x, out);
        return out;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        Tensor dBody = dy;
        if (mask != null) {
            dBody = ctx.output(dy.shape());
            ctx.backend().multiplyByMask(dy, mask, dBody);
        }
        Tensor dx = body.backward(dBody, ctx, needInputGrad);
        if (!needInputGrad) return null;
        if (skip) ctx.backend().accumulate(dx, dy);
        return dx;
    }

    @Override
    public List<Parameter> parameters() {
        return body.parameters();
    }

    @Override
    public void initialize(Initializer init) {
        body.initialize(init);
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        return body.outputShape(inputShape);
    }

    @Override
    public long macs(int[] inputShape) {
        return body.macs(inputShape);
    }

    /** timm's make_divisible: the nearest multiple of 8, never more than 10 % below v. */
    static int makeDivisible(double v, int divisor) {
        int rounded = Math.max(divisor, (int) (v + divisor / 2.0) / divisor * divisor);
        if (rounded < 0.9 * v) rounded += divisor;
        return rounded;
    }

    /** SE channels: round(0.25 * block input channels), Python's round half to even. */
    static int seChannels(int blockInChannels, double seRatio) {
        return (int) Math.rint(blockInChannels * seRatio);
    }
}
