package ich.nn;

/**
 * The shape of a 2-D convolution, named as cuDNN names it: input [n, c, h, w], weights [k, c / groups, r, s],
 * output [n, k, p, q]. Padding is symmetric, as PyTorch's {@code Conv2d(padding=...)}; timm's B0 uses
 * {@code padding = (r - 1) / 2}, so no "same" asymmetry arises.
 */
public record ConvGeometry(int n, int c, int h, int w, int k, int r, int s,
                           int strideH, int strideW, int padH, int padW, int groups) {
    public ConvGeometry {
        if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || k <= 0 || r <= 0 || s <= 0) {
            throw new IllegalArgumentException("sizes must be positive: " + this);
        }
        if (strideH <= 0 || strideW <= 0 || padH < 0 || padW < 0 || groups <= 0) {
            throw new IllegalArgumentException("bad stride, padding or groups: " + this);
        }
        if (c % groups != 0 || k % groups != 0) {
            throw new IllegalArgumentException("channels " + c + " -> " + k + " not divisible by groups " + groups);
        }
        if (h + 2 * padH < r || w + 2 * padW < s) {
            throw new IllegalArgumentException("kernel larger than the padded input: " + this);
        }
    }

    /** A square kernel with stride and PyTorch-style padding {@code (kernel - 1) / 2}. */
    public static ConvGeometry square(int n, int c, int h, int w, int k, int kernel, int stride, int groups) {
        int pad = (kernel - 1) / 2;
        return new ConvGeometry(n, c, h, w, k, kernel, kernel, stride, stride, pad, pad, groups);
    }

    /** Output height. */
    public int p() {
        return (h + 2 * padH - r) / strideH + 1;
    }

    /** Output width. */
    public int q() {
        return (w + 2 * padW - s) / strideW + 1;
    }

    public boolean depthwise() {
        return groups == c && groups == k;
    }

    public int[] inputShape() {
        return new int[] {n, c, h, w};
    }

    public int[] weightShape() {
        return new int[] {k, c / groups, r, s};
    }

    public int[] outputShape() {
        return new int[] {n, k, p(), q()};
    }

    /** Multiply-adds of the forward pass (the backward passes cost about twice this). */
    public long macs() {
        return (long) n * k * p() * q() * (c / groups) * r * s;
    }
}
