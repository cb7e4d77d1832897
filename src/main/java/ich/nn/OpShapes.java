package ich.nn;

import java.util.Arrays;

/**
 * The shape rules of the {@link Backend} ops, shared by every backend so that a wrong shape fails the same way,
 * with the same message, on the CPU and on a GPU. Each check throws an {@link IllegalArgumentException} naming
 * the op and the shapes.
 */
public final class OpShapes {
    private OpShapes() {}

    /** The channel count of an [n, c, ...] input. */
    public static int channels(String op, Tensor x) {
        if (x.rank() < 2) throw new IllegalArgumentException(op + ": input " + x + " needs at least [n, c]");
        return x.dim(1);
    }

    /** Every tensor has {@code c} elements (batch norm's gamma, beta and statistics). */
    public static void perChannel(String op, int c, Tensor... ts) {
        for (Tensor t : ts) {
            if (t.size() != c) {
                throw new IllegalArgumentException(op + ": per-channel tensor " + t + " should have " + c + " elements");
            }
        }
    }

    /** n * c of an image tensor x whose per-channel companion (scale, pooled value) has n * c elements. */
    public static int planes(String op, Tensor x, Tensor perPlane) {
        if (x.rank() < 2) throw new IllegalArgumentException(op + ": input " + x + " needs at least [n, c]");
        long planes = (long) x.dim(0) * x.dim(1);
        if (perPlane.size() != planes) {
            throw new IllegalArgumentException(op + ": " + perPlane + " should have n * c = " + planes
                    + " elements for input " + x);
        }
        return (int) planes;
    }

    /** {n, in, out} of a Linear with input x [n, in] (or any [n, ...] of that size) and weights [out, in]. */
    public static int[] linearDims(String op, Tensor x, Tensor w, Tensor b) {
        if (w.rank() != 2) throw new IllegalArgumentException(op + ": weights " + w + " should be [out, in]");
        int out = w.dim(0), in = w.dim(1), n = x.dim(0);
        if (x.size() != (long) n * in) throw new IllegalArgumentException(op + ": input " + x + " does not have " + in + " features per sample for weights " + w);
        if (b != null && b.size() != out) throw new IllegalArgumentException(op + ": bias " + b + " should have " + out + " elements");
        return new int[] {n, in, out};
    }

    /** The tensors are all non-null and have the same number of elements. */
    public static void sameSize(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t == null) throw new IllegalArgumentException(op + ": a required tensor is null");
            if (t.size() != ts[0].size()) {
                throw new IllegalArgumentException(op + ": sizes differ: " + Arrays.toString(ts));
            }
        }
    }

    /** Input, weights and output match the geometry. */
    public static void conv(String op, ConvGeometry g, Tensor x, Tensor w, Tensor y) {
        shape(op, "input", x, g.inputShape());
        shape(op, "weights", w, g.weightShape());
        shape(op, "output", y, g.outputShape());
    }

    public static void shape(String op, String what, Tensor t, int... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(op + ": " + what + " is " + t + ", expected " + Arrays.toString(expected));
        }
    }

    /** BCE on logits [n, labels]: targets of the same shape, one weight per label, a gradient like the logits. */
    public static void bceWithLogits(String op, Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits) {
        if (logits.rank() != 2) throw new IllegalArgumentException(op + ": logits " + logits + " should be [n, labels]");
        shape(op, "targets", targets, logits.shape());
        int labels = logits.dim(1);
        if (labelWeights != null && labelWeights.size() != labels) {
            throw new IllegalArgumentException(op + ": label weights " + labelWeights + " should have " + labels + " elements");
        }
        if (dLogits != null) shape(op, "logit gradient", dLogits, logits.shape());
    }

    /** Training batch norm's shapes; returns the channel count. */
    public static int batchNormTraining(String op, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                        Tensor y, Tensor saveMean, Tensor saveInvStd) {
        int c = channels(op, x);
        perChannel(op, c, gamma, beta, runningMean, runningVar, saveMean, saveInvStd);
        shape(op, "output", y, x.shape());
        if (x.size() / c < 2) {
            throw new IllegalArgumentException(op + ": need more than one value per channel in training, input " + x);
        }
        return c;
    }

    /** Inference batch norm's shapes; returns the channel count. */
    public static int batchNormInference(String op, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                         Tensor y) {
        int c = channels(op, x);
        perChannel(op, c, gamma, beta, runningMean, runningVar);
        shape(op, "output", y, x.shape());
        return c;
    }

    /** Batch norm backward's shapes; returns the channel count. */
    public static int batchNormBackward(String op, Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
                                        Tensor dx, Tensor dgamma, Tensor dbeta) {
        int c = channels(op, x);
        perChannel(op, c, gamma, saveMean, saveInvStd, dgamma, dbeta);
        shape(op, "output gradient", dy, x.shape());
        shape(op, "input gradient", dx, x.shape());
        return c;
    }
}
