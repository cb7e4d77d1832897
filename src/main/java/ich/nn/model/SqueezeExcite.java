package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.Arrays;
import java.util.List;

/**
 * timm's SqueezeExcite: mean over h, w -> conv_reduce (1x1, bias) -> SiLU -> conv_expand (1x1, bias) -> sigmoid
 * -> scale the channels. On a [n, c, 1, 1] tensor a 1x1 convolution with bias is exactly a Linear layer on
 * [n, c], so that is how it runs; the weights keep the state-dict shape [out, in, 1, 1] and are viewed as
 * [out, in]. timm initialises them as convolutions (normal, fan_out = out channels).
 */
public final class SqueezeExcite implements Layer {
    private final String name;
    private final int c;
    private final int rd;
    private final Parameter reduceWeight;
    private final Parameter reduceBias;
    private final Parameter expandWeight;
    private final Parameter expandBias;
    private Tensor x;
    private Tensor pooled;
    private Tensor z1;
    private Tensor a1;
    private Tensor s;

    /** {@code rd}: timm's reduced channels, round(0.25 * the block's input channels). */
    public SqueezeExcite(ParameterSet params, String name, int c, int rd) {
        this.name = name;
        this.c = c;
        this.rd = rd;
        this.reduceWeight = params.weight(name + ".conv_reduce.weight", rd, c, 1, 1);
        this.reduceBias = params.weight(name + ".conv_reduce.bias", rd);
        this.expandWeight = params.weight(name + ".conv_expand.weight", c, rd, 1, 1);
        this.expandBias = params.weight(name + ".conv_expand.bias", c);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "SqueezeExcite " + c + "->" + rd;
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        check(x.shape());
        int n = x.dim(0);
        var b = ctx.backend();
        this.x = x;
        pooled = ctx.output(n, c);
        b.globalAveragePool(x, pooled);
        z1 = ctx.output(n, rd);
        b.linearForward(pooled, reduceWeight.value().reshape(rd, c), reduceBias.value(), z1);
        a1 = ctx.output(n, rd);
        b.silu(z1, a1);
        Tensor z2 = ctx.output(n, c);
        b.linearForward(a1, expandWeight.value().reshape(c, rd), expandBias.value(), z2);
        s = ctx.output(n, c);
        b.sigmoid(z2, s);
        Tensor y = ctx.output(x.shape());
        b.scaleChannels(x, s, y);
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (x == null) throw new IllegalStateException(name + ": backward before forward");
        int n = x.dim(0);
        var b = ctx.backend();
        // x feeds two paths (the scaling and the squeeze), so both needs are checked before skipping work.
        boolean trainSe = reduceWeight.trainable() || reduceBias.trainable() || expandWeight.trainable() || expandBias.trainable();
        if (!trainSe && !needInputGrad) return null;
        // The scales' gradient first; x's gradient (dy * s plus the squeeze's share) waits for the squeeze's
        // backward, so that it is written once, in one pass, instead of as two full tensors then summed.
        Tensor ds = ctx.output(n, c);
        b.scaleChannelsBackward(x, s, dy, null, ds);
        Tensor dz2 = ctx.output(n, c);
        b.sigmoidBackward(s, ds, dz2);
        Tensor da1 = Linear.linearBackward(ctx, a1, expandWeight, expandBias, dz2, true);
        Tensor dz1 = ctx.output(n, rd);
        b.siluBackward(z1, da1, dz1);
        Tensor dPooled = Linear.linearBackward(ctx, pooled, reduceWeight, reduceBias, dz1, needInputGrad);
        if (!needInputGrad) return null;
        Tensor dx = ctx.output(x.shape());
        b.scaleChannelsInputGradient(dy, s, dPooled, dx);
        return dx;
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(reduceWeight, reduceBias, expandWeight, expandBias);
    }

    @Override
    public void initialize(Initializer init) {
        init.convWeight(reduceWeight.name(), reduceWeight.value(), rd);
        init.constant(reduceBias.value(), 0f);
        init.convWeight(expandWeight.name(), expandWeight.value(), c);
        init.constant(expandBias.value(), 0f);
    }

    private void check(int[] in) {
        if (in.length != 4 || in[1] != c) {
            throw new IllegalArgumentException(name + ": expected input [n, " + c + ", h, w], got " + Arrays.toString(in));
        }
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        check(inputShape);
        return inputShape.clone();
    }

    @Override
    public long macs(int[] inputShape) {
        return 2L * inputShape[0] * c * rd;
    }
}
