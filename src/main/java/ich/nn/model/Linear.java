package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.Arrays;
import java.util.List;

/** PyTorch's Linear: y = x w^T + b, {@code <name>.weight} [out, in] and {@code <name>.bias} [out]; the classifier. */
public final class Linear implements Layer {
    private final String name;
    private final int in;
    private final int out;
    private final Parameter weight;
    private final Parameter bias;
    private Tensor x;

    public Linear(ParameterSet params, String name, int in, int out) {
        this.name = name;
        this.in = in;
        this.out = out;
        this.weight = params.weight(name + ".weight", out, in);
        this.bias = params.weight(name + ".bias", out);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "Linear";
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        check(x.shape());
        this.x = x;
        Tensor y = ctx.output(x.dim(0), out);
        ctx.backend().linearForward(x, weight.value(), bias.value(), y);
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (x == null) throw new IllegalStateException(name + ": backward before forward");
        return linearBackward(ctx, x, weight, bias, dy, needInputGrad);
    }

    /** Shared with squeeze-and-excitation, whose 1x1 convolutions are Linear layers on [n, c]. */
    static Tensor linearBackward(StepContext ctx, Tensor x, Parameter weight, Parameter bias, Tensor dy, boolean needInputGrad) {
        boolean train = weight.trainable() || bias.trainable();
        if (!train && !needInputGrad) return null;
        Tensor w = weight.value().reshape(weight.value().dim(0), (int) (weight.size() / weight.value().dim(0)));
        Tensor dx = needInputGrad ? ctx.output(x.shape()) : null;
        Tensor dw = weight.trainable() ? weight.grad().reshape(w.shape()) : ctx.output(w.shape());
        Tensor db = bias.trainable() ? bias.grad() : ctx.output(bias.value().shape());
        ctx.backend().linearBackward(x, w, dy, dx, dw, db);
        return dx;
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(weight, bias);
    }

    @Override
    public void initialize(Initializer init) {
        init.linearWeight(weight.name(), weight.value(), out);
        init.constant(bias.value(), 0f);
    }

    private void check(int[] shape) {
        if (shape.length != 2 || shape[1] != in) {
            throw new IllegalArgumentException(name + ": expected input [n, " + in + "], got " + Arrays.toString(shape));
        }
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        check(inputShape);
        return new int[] {inputShape[0], out};
    }

    @Override
    public long macs(int[] inputShape) {
        return (long) inputShape[0] * in * out;
    }
}
