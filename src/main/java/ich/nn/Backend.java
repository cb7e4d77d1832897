package ich.nn;

import java.lang.foreign.Arena;
import java.util.List;

/**
 * The operations a network is made of, each with its backward pass, on one device.
 *
 * <p>The CPU backend is the reference that defines every op; a CUDA backend (cuDNN convolutions and batch norm,
 * cuBLAS for Linear, kernels of our own for the rest) implements the same contract, and tests hold the two
 * together. The shape of this interface follows cuDNN so that mapping is direct: explicit geometry, saved
 * batch statistics handed from forward to backward, and outputs that the caller allocates.
 *
 * <p>Contract for all methods: tensors are float32, images NCHW, except where a backend keeps activations in
 * another {@link Storage} ({@link #activationStorage()}: the CUDA backend's bf16 channels-last mixed precision);
 * then an op takes and gives image tensors (and their gradients) in that storage, while parameters, their
 * gradients, per-channel statistics, [n, c] vectors and the loss stay fp32. Outputs are allocated by the caller with the
 * documented shape and are <em>overwritten</em> (never accumulated) unless the method says otherwise; inputs
 * are not modified; an output may not alias an input unless the method says so. Shapes are checked and a
 * mismatch is an {@link IllegalArgumentException} naming the op and the shapes.
 */
public interface Backend extends AutoCloseable {

    /** A short name for logs and benchmark tables, e.g. "cpu (2 threads)". */
    String name();

    /** A zero-filled fp32 tensor on this backend's device, owned by {@code arena}. */
    Tensor allocate(Arena arena, int... shape);

    /**
     * How this backend keeps activations, the [n, c, h, w] tensors layers hand each other: fp32 NCHW (the default
     * and the CPU's), or bf16 channels-last for the CUDA backend's mixed precision.
     */
    default Storage activationStorage() {
        return Storage.FLOAT32;
    }

    /** A zero-filled tensor in {@code storage}; by default only fp32 is kept. */
    default Tensor allocate(Arena arena, Storage storage, int... shape) {
        requireFloat32(storage);
        return allocate(arena, shape);
    }

    /** An uninitialised tensor in {@code storage} (see {@link #allocateUninitialized(Arena, int...)}). */
    default Tensor allocateUninitialized(Arena arena, Storage storage, int... shape) {
        requireFloat32(storage);
        return allocateUninitialized(arena, shape);
    }

    private void requireFloat32(Storage storage) {
        if (!storage.equals(Storage.FLOAT32)) {
            throw new IllegalArgumentException(name() + " keeps tensors in fp32 only, not " + storage);
        }
    }

    /**
     * A tensor like {@link #allocate} whose contents are unspecified: for the output of an op, which overwrites
     * all of it, so that zeroing it first would be wasted work. By default it is {@link #allocate}.
     */
    default Tensor allocateUninitialized(Arena arena, int... shape) {
        return allocate(arena, shape);
    }

    /**
     * A fresh arena for the tensors of one step (forward, backward, update), closed when the step ends. A backend
     * may hand out arenas that recycle the memory of earlier steps; by default it is a new shared arena (shared,
     * because a backend's worker threads touch the tensors).
     */
    default Arena stepArena() {
        return Arena.ofShared();
    }

    /**
     * Copies between any two tensors of the same size (host or device, either way). Between storages (fp32 and bf16,
     * NCHW and channels-last) the tensors must have the same shape, and the copy converts: to bf16 rounding to
     * nearest even, from bf16 exactly.
     */
    void copy(Tensor source, Tensor destination);

    // ---- convolution (no bias: every convolution of EfficientNet is followed by batch norm) ----

    /** y[n,k,p,q] = sum over c/groups, r, s of x[n, g*c/groups + c', p*stride + r - pad, ...] * w[k, c', r, s]. */
    void conv2dForward(ConvGeometry g, Tensor x, Tensor w, Tensor y);

    /** dx = gradient of the loss with respect to x, given dy (shape of y) and the weights. */
    void conv2dBackwardData(ConvGeometry g, Tensor dy, Tensor w, Tensor dx);

    /** dw = gradient of the loss with respect to w, given the forward input x and dy. */
    void conv2dBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw);

    // ---- batch normalisation over (n, h, w) per channel; gamma, beta, statistics have shape [c] ----

    /**
     * Training-mode batch norm: normalises with the batch mean and biased variance, writes them to
     * {@code saveMean} and {@code saveInvStd} (1 / sqrt(var + eps)) for the backward pass, and updates the
     * running statistics in place as PyTorch does: running = (1 - momentum) * running + momentum * batch, with
     * the <em>unbiased</em> batch variance for {@code runningVar}.
     */
    void batchNormForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                  double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd);

    /** Inference-mode batch norm with the running statistics. */
    void batchNormForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                   double eps, Tensor y);

    /**
     * Backward of the training-mode forward: dx, dgamma and dbeta (all overwritten), from the statistics it saved
     * and the epsilon it used (cuDNN asks for it again; a backend that works from the saved 1/std may ignore it).
     */
    void batchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, double eps,
                           Tensor dx, Tensor dgamma, Tensor dbeta);

    // ---- batch norm followed by SiLU, fused (timm's BatchNormAct2d), where a backend has it ----

    /**
     * Whether this backend runs the {@code batchNormSilu*} ops on activations of {@code storage}: y = silu(batch
     * norm(x)) without writing the normalised tensor, and a backward that recomputes it from x. Where it does not,
     * layers run batch norm and SiLU one after the other, as they would without fusion; results agree within the
     * precision of the storage (the fused forward rounds once, after SiLU).
     */
    default boolean fusesBatchNormSilu(Storage storage) {
        return false;
    }

    /** silu(training-mode batch norm(x)) into y, with the statistics and running averages of {@link #batchNormForwardTraining}. */
    default void batchNormSiluForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                              double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        throw new UnsupportedOperationException(name() + ": no fused batch norm + SiLU for " + x.storage() + " (see fusesBatchNormSilu)");
    }

    /** silu(inference-mode batch norm(x)) into y. */
    default void batchNormSiluForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                               double eps, Tensor y) {
        throw new UnsupportedOperationException(name() + ": no fused batch norm + SiLU for " + x.storage() + " (see fusesBatchNormSilu)");
    }

    /**
     * Backward of {@link #batchNormSiluForwardTraining}: dy is the gradient of its output; dx, dgamma and dbeta as
     * {@link #batchNormBackward} gives them for the batch norm alone, given the SiLU's backward of dy.
     */
    default void batchNormSiluBackward(Tensor x, Tensor dy, Tensor gamma, Tensor beta, Tensor saveMean, Tensor saveInvStd,
                                       double eps, Tensor dx, Tensor dgamma, Tensor dbeta) {
        throw new UnsupportedOperationException(name() + ": no fused batch norm + SiLU for " + x.storage() + " (see fusesBatchNormSilu)");
    }

    // ---- element-wise ----

    /** y = x * sigmoid(x); y may alias x. */
    void silu(Tensor x, Tensor y);

    /** dx = dy * d silu(x) / dx. */
    void siluBackward(Tensor x, Tensor dy, Tensor dx);

    /** y = 1 / (1 + exp(-x)); y may alias x. */
    void sigmoid(Tensor x, Tensor y);

    /** dx = dy * y * (1 - y), from the forward output y. */
    void sigmoidBackward(Tensor y, Tensor dy, Tensor dx);

    /** y = a + b (same shapes); y may alias a or b. */
    void add(Tensor a, Tensor b, Tensor y);

    /** into += from (same sizes): gradient accumulation where a tensor feeds two consumers. */
    void accumulate(Tensor into, Tensor from);

    /**
     * y = x * mask, where mask has the shape of x (dropout) or shape [n] and is broadcast over each sample
     * (drop-path). The caller builds the mask (0 or 1/keep) from its seeded random stream, so the backward
     * pass is this same call on dy. y may alias x.
     */
    void multiplyByMask(Tensor x, Tensor mask, Tensor y);

    /** Multiplies every element by {@code factor} in place (gradient clipping, loss scaling). */
    void scale(Tensor t, float factor);

    /** The sum of squares of all elements, in double (for gradient-norm clipping). */
    double sumOfSquares(Tensor t);

    // ---- squeeze-and-excitation and pooling ----

    /** SE scaling: y[n,c,h,w] = x[n,c,h,w] * s[n,c]. */
    void scaleChannels(Tensor x, Tensor s, Tensor y);

    /** dx = dy * s unless dx is null (then ds alone); ds[n,c] = sum over h,w of dy * x. */
    void scaleChannelsBackward(Tensor x, Tensor s, Tensor dy, Tensor dx, Tensor ds);

    /**
     * The gradient of an SE layer's input, through both of its paths, in one pass: dx[n,c,h,w] = dy * s[n,c]
     * + dPooled[n,c] / (h * w), where dPooled is the gradient of the mean over h, w that the scales came from. In
     * fp32 it equals {@code scaleChannelsBackward}'s dx plus {@code globalAveragePoolBackward(dPooled)} bit for bit
     * (product, quotient, then their sum); in bf16 it rounds once instead of three times. dx may be dy.
     */
    void scaleChannelsInputGradient(Tensor dy, Tensor s, Tensor dPooled, Tensor dx);

    /** y[n,c] = mean over h,w of x[n,c,h,w]. */
    void globalAveragePool(Tensor x, Tensor y);

    /** dx[n,c,h,w] = dy[n,c] / (h * w). */
    void globalAveragePoolBackward(Tensor dy, Tensor dx);

    // ---- fully connected ----

    /** y[n,o] = sum_i x[n,i] * w[o,i] + b[o] (PyTorch's Linear layout); b may be null. */
    void linearForward(Tensor x, Tensor w, Tensor b, Tensor y);

    /** dx (may be null when not needed), dw and db (db may be null when b is). */
    void linearBackward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, Tensor db);

    // ---- loss ----

    /**
     * Binary cross-entropy on logits, numerically stable (max(z,0) - z*t + log(1 + exp(-|z|))), weighted per
     * label: loss = sum over i,l of w[l] * bce(z[i,l], t[i,l]) / (n * sum_l w[l]). With all weights 1 that is
     * Keras' mean binary cross-entropy; with weights (2,1,1,1,1,1) it is the competition's weighted log loss
     * (on unclipped probabilities). {@code labelWeights} null means all 1. Writes d loss / d logits to
     * {@code dLogits} unless it is null, and returns the loss.
     */
    double bceWithLogits(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits);

    /**
     * {@link #bceWithLogits} without waiting for the loss: the gradient is queued as usual, and the returned
     * supplier gives the loss (waiting for it the first time). A GPU backend thus queues the whole backward pass
     * and the optimizer step before the host waits once, instead of idling the GPU mid-step; and since that wait
     * is for the loss alone, not for work queued after it, a training loop queues the next step before it reads
     * this one's loss, so the GPU does not idle between steps either. By default the loss is computed at once.
     */
    default java.util.function.DoubleSupplier bceWithLogitsLater(Tensor logits, Tensor targets, Tensor labelWeights,
                                                                 Tensor dLogits) {
        double loss = bceWithLogits(logits, targets, labelWeights, dLogits);
        return () -> loss;
    }

    // ---- optimiser ----

    /**
     * One Adam step on one parameter, in place on {@code param}, {@code m} and {@code v}. {@code step} counts
     * from 1 (bias correction 1 - beta^step). {@code weightDecay} is L2 added to the gradient (Adam) unless
     * {@code decoupled}, in which case the parameter decays by lr * weightDecay before the update (AdamW).
     * Follows PyTorch's torch.optim.Adam/AdamW formulas (eps added to sqrt(v_hat)).
     */
    void adamStep(Tensor param, Tensor grad, Tensor m, Tensor v, long step, double lr, double beta1, double beta2,
                  double eps, double weightDecay, boolean decoupled);

    /**
     * {@link #adamStep} on each of {@code tensors}, with the same step count and hyper-parameters, with the
     * results of calling it on each in list order. A backend may update them all at once (the CUDA backend does,
     * in one launch), so no array written by the step (a parameter or a moment) may overlap any other array of
     * the list. By default it loops over {@code adamStep}. An empty list does nothing.
     */
    default void adamStepAll(List<AdamTensors> tensors, long step, double lr, double beta1, double beta2, double eps,
                             double weightDecay, boolean decoupled) {
        for (AdamTensors t : tensors) {
            adamStep(t.param(), t.grad(), t.m(), t.v(), step, lr, beta1, beta2, eps, weightDecay, decoupled);
        }
    }

    @Override
    void close();
}
