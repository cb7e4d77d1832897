package ich.nn.model;

import ich.nn.ConvGeometry;
import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.List;

/** A bias-free 2-D convolution with PyTorch padding (kernel - 1) / 2, weight {@code <name>.weight} [k, c/groups, r, s]. */
public final class Conv2d implements Layer {
    private final String name;
    private final int c;
    private final int k;
    private final int kernel;
    private final int stride;
    private final int groups;
    private final Parameter weight;
    private Tensor x;
    private ConvGeometry geometry;

    public Conv2d(ParameterSet params, String name, int c, int k, int kernel, int stride, int groups) {
        if (c % groups != 0 || k % groups != 0) throw new IllegalArgumentException(name + ": channels " + c + " -> " + k + " not divisible by groups " + groups);
        this.name = name;
        this.c = c;
        this.k = k;
        this.kernel = kernel;
        this.stride = stride;
        this.groups = groups;
        this.weight = params.weight(name + ".weight", k, c / groups, kernel, kernel);
    }

    public Parameter weight() {
        return weight;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return (groups == 1 ? "Conv2d " : groups == c ? "DwConv2d " : "GConv2d ") + kernel + "x" + kernel + "/" + stride;
    }

    ConvGeometry geometry(int[] in) {
        if (in.length != 4 || in[1] != c) {
            throw new IllegalArgumentException(name + ": expected input [n, " + c + ", h, w], got " + java.util.Arrays.toString(in));
        }
        return ConvGeometry.square(in[0], c, in[2], in[3], k, kernel, stride, groups);
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        geometry = geometry(x.shape());
        this.x = x;
        Tensor y = ctx.output(geometry.outputShape());
        ctx.backend().conv2dForward(geometry, x, weight.value(), y);
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (x == null) throw new IllegalStateException(name + ": backward before forward");
        if (weight.trainable()) ctx.backend().conv2dBackwardFilter(geometry, x, dy, weight.grad());
        if (!needInputGrad) return null;
        Tensor dx = ctx.output(geometry.inputShape());
        ctx.backend().conv2dBackwardData(geometry, dy, weight.value(), dx);
        return dx;
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(weight);
    }

    @Override
    public void initialize(Initializer init) {
        // timm's fix_group_fanout: a depthwise filter fans out to r * s outputs, not r * s * k.
        init.convWeight(weight.name(), weight.value(), kernel * kernel * k / groups);
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        return geometry(inputShape).outputShape();
    }

    @Override
    public long macs(int[] inputShape) {
        return geometry(inputShape).macs();
    }
}
