package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.Arrays;
import java.util.List;

/**
 * PyTorch's BatchNorm2d: {@code <name>.weight}, {@code .bias}, {@code .running_mean}, {@code .running_var}
 * (timm's B0 uses PyTorch's defaults, momentum 0.1 and eps 1e-5). In training mode it normalises with the
 * batch statistics and updates the running ones, whether or not its weights are frozen, as PyTorch does with
 * {@code requires_grad = False}; in eval mode it uses the running statistics.
 *
 * <p>timm's state dict also holds {@code num_batches_tracked}; it only matters for momentum = None
 * (cumulative averaging), which B0 does not use, so it is not a parameter here.
 */
public final class BatchNorm2d implements Layer {
    private final String name;
    private final int c;
    private final double momentum;
    private final double eps;
    private final Parameter gamma;
    private final Parameter beta;
    private final Parameter runningMean;
    private final Parameter runningVar;
    private Tensor x;
    private Tensor saveMean;
    private Tensor saveInvStd;
    private boolean trainedForward;
    /** Whether the last forward also applied the SiLU after this layer ({@link #forwardWithSilu}). */
    private boolean siluFused;

    public BatchNorm2d(ParameterSet params, String name, int c, double momentum, double eps) {
        this.name = name;
        this.c = c;
        this.momentum = momentum;
        this.eps = eps;
        this.gamma = params.weight(name + ".weight", c);
        this.beta = params.weight(name + ".bias", c);
        this.runningMean = params.buffer(name + ".running_mean", 0f, c);
        this.runningVar = params.buffer(name + ".running_var", 1f, c);
    }

    public Parameter runningMean() {
        return runningMean;
    }

    public Parameter runningVar() {
        return runningVar;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "BatchNorm2d";
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        return forward(x, ctx, false);
    }

    /** Whether {@link #forwardWithSilu} can run on x: the backend fuses batch norm and SiLU for x's storage. */
    public boolean fusesSilu(Tensor x, StepContext ctx) {
        return ctx.backend().fusesBatchNormSilu(x.storage());
    }

    /**
     * silu(this layer(x)) in one op, for a SiLU layer that follows this one (see {@link Sequential}); the next
     * {@link #backward} then takes the gradient of the SiLU's output. Only where {@link #fusesSilu} says so.
     */
    public Tensor forwardWithSilu(Tensor x, StepContext ctx) {
        return forward(x, ctx, true);
    }

    private Tensor forward(Tensor x, StepContext ctx, boolean silu) {
        check(x.shape());
        this.x = x;
        Tensor y = ctx.output(x.shape());
        trainedForward = ctx.training();
        siluFused = silu;
        var b = ctx.backend();
        if (trainedForward) {
            saveMean = ctx.output(c);
            saveInvStd = ctx.output(c);
            if (silu) {
                b.batchNormSiluForwardTraining(x, gamma.value(), beta.value(), runningMean.value(), runningVar.value(),
                        momentum, eps, y, saveMean, saveInvStd);
            } else {
                b.batchNormForwardTraining(x, gamma.value(), beta.value(), runningMean.value(), runningVar.value(),
                        momentum, eps, y, saveMean, saveInvStd);
            }
        } else if (silu) {
            b.batchNormSiluForwardInference(x, gamma.value(), beta.value(), runningMean.value(), runningVar.value(), eps, y);
        } else {
            b.batchNormForwardInference(x, gamma.value(), beta.value(), runningMean.value(), runningVar.value(), eps, y);
        }
        return y;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        if (x == null) throw new IllegalStateException(name + ": backward before forward");
        if (!trainedForward) {
            throw new IllegalStateException(name + ": backward after an eval-mode forward (the backend has only the training-mode batch-norm backward)");
        }
        boolean train = gamma.trainable() || beta.trainable();
        if (!train && !needInputGrad) return null;
        // The backend writes dx, dgamma and dbeta together; frozen weights get scratch space so their gradients stay untouched.
        Tensor dx = ctx.output(x.shape());
        Tensor dgamma = gamma.trainable() ? gamma.grad() : ctx.output(c);
        Tensor dbeta = beta.trainable() ? beta.grad() : ctx.output(c);
        if (siluFused) {
            ctx.backend().batchNormSiluBackward(x, dy, gamma.value(), beta.value(), saveMean, saveInvStd, eps, dx, dgamma, dbeta);
        } else {
            ctx.backend().batchNormBackward(x, dy, gamma.value(), saveMean, saveInvStd, eps, dx, dgamma, dbeta);
        }
        return needInputGrad ? dx : null;
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(gamma, beta, runningMean, runningVar);
    }

    @Override
    public void initialize(Initializer init) {
        init.constant(gamma.value(), 1f);
        init.constant(beta.value(), 0f);
        init.constant(runningMean.value(), 0f);
        init.constant(runningVar.value(), 1f);
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
}
