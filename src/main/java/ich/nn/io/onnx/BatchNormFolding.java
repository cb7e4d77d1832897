package ich.nn.io.onnx;

/**
 * Folds inference-mode batch norm into the convolution before it. Per output channel k, with
 * scale[k] = gamma[k] / sqrt(var[k] + eps):
 * <pre>
 *   bn(conv(x))[k] = (sum w[k]·x + b[k] - mean[k]) · scale[k] + beta[k]
 *                  = sum (w[k]·scale[k])·x + (b[k] - mean[k]) · scale[k] + beta[k]
 * </pre>
 * so the folded conv has weights w[k]·scale[k] and bias (b[k] - mean[k])·scale[k] + beta[k]. The arithmetic is
 * in double and rounded once, so the folded model differs from conv-then-BN only by float32 accumulation order.
 */
public final class BatchNormFolding {
    private BatchNormFolding() {}

    /** Folded conv weights (layout of the input weights, [k, c/groups, r, s]) and bias [k]. */
    public record Folded(float[] weight, float[] bias) {}

    /**
     * @param weight conv weights, output channel slowest ([k, ...])
     * @param bias   conv bias [k], or null for none
     */
    public static Folded fold(float[] weight, float[] bias, float[] gamma, float[] beta, float[] mean, float[] var, double eps) {
        int k = gamma.length;
        if (beta.length != k || mean.length != k || var.length != k || (bias != null && bias.length != k)) {
            throw new IllegalArgumentException("batch norm parameters of " + k + " channels differ in length");
        }
        if (k == 0 || weight.length % k != 0) {
            throw new IllegalArgumentException(weight.length + " conv weights for " + k + " output channels");
        }
        int perChannel = weight.length / k;
        float[] w = new float[weight.length];
        float[] b = new float[k];
        for (int o = 0; o < k; o++) {
            if (!(var[o] + eps > 0)) throw new IllegalArgumentException("running variance " + var[o] + " of channel " + o + " + eps is not positive");
            double scale = gamma[o] / Math.sqrt(var[o] + eps);
            for (int i = o * perChannel; i < (o + 1) * perChannel; i++) w[i] = (float) (weight[i] * scale);
            b[o] = (float) (((bias == null ? 0.0 : bias[o]) - mean[o]) * scale + beta[o]);
        }
        return new Folded(w, b);
    }
}
