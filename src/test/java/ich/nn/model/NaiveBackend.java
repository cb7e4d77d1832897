package ich.nn.model;

import ich.nn.Backend;
import ich.nn.ConvGeometry;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * The Backend contract written as directly as the formulas read: one thread, plain loops, double accumulators.
 * A test reference for the layers while (and besides) the real CPU backend exists; far too slow for training.
 */
final class NaiveBackend implements Backend {
    private final boolean fusing;
    private int fusedCalls;

    NaiveBackend() {
        this(false);
    }

    /** {@code fusing}: runs batch norm + SiLU as the fused ops of the Backend contract, written as plainly. */
    NaiveBackend(boolean fusing) {
        this.fusing = fusing;
    }

    /** How many fused batch norm + SiLU ops (forward or backward) ran. */
    int fusedCalls() {
        return fusedCalls;
    }

    @Override
    public String name() {
        return fusing ? "naive, fused batch norm + SiLU" : "naive";
    }

    @Override
    public Tensor allocate(Arena arena, int... shape) {
        return Tensor.allocate(arena, shape);
    }

    @Override
    public void copy(Tensor source, Tensor destination) {
        destination.copyFrom(source);
    }

    private static void same(String op, Tensor a, Tensor b) {
        if (a.size() != b.size()) throw new IllegalArgumentException(op + ": " + a + " vs " + b);
    }

    private static void shape(String op, Tensor t, int... expected) {
        if (!Arrays.equals(t.shape(), expected)) throw new IllegalArgumentException(op + ": " + t + " expected " + Arrays.toString(expected));
    }

    @Override
    public void conv2dForward(ConvGeometry g, Tensor x, Tensor w, Tensor y) {
        shape("conv2dForward x", x, g.inputShape());
        shape("conv2dForward w", w, g.weightShape());
        shape("conv2dForward y", y, g.outputShape());
        int cg = g.c() / g.groups(), kg = g.k() / g.groups();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++) {
                int group = k / kg;
                for (int p = 0; p < g.p(); p++)
                    for (int q = 0; q < g.q(); q++) {
                        double acc = 0;
                        for (int ci = 0; ci < cg; ci++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int ih = p * g.strideH() + r - g.padH(), iw = q * g.strideW() + s - g.padW();
                                    if (ih < 0 || iw < 0 || ih >= g.h() || iw >= g.w()) continue;
                                    acc += x.get(idx(g, n, group * cg + ci, ih, iw)) * w.get(((long) (k * cg + ci) * g.r() + r) * g.s() + s);
                                }
                        y.set(((long) (n * g.k() + k) * g.p() + p) * g.q() + q, (float) acc);
                    }
            }
    }

    private static long idx(ConvGeometry g, int n, int c, int h, int w) {
        return (((long) n * g.c() + c) * g.h() + h) * g.w() + w;
    }

    @Override
    public void conv2dBackwardData(ConvGeometry g, Tensor dy, Tensor w, Tensor dx) {
        shape("conv2dBackwardData dx", dx, g.inputShape());
        double[] acc = new double[(int) dx.size()];
        int cg = g.c() / g.groups(), kg = g.k() / g.groups();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++) {
                int group = k / kg;
                for (int p = 0; p < g.p(); p++)
                    for (int q = 0; q < g.q(); q++) {
                        double d = dy.get(((long) (n * g.k() + k) * g.p() + p) * g.q() + q);
                        for (int ci = 0; ci < cg; ci++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int ih = p * g.strideH() + r - g.padH(), iw = q * g.strideW() + s - g.padW();
                                    if (ih < 0 || iw < 0 || ih >= g.h() || iw >= g.w()) continue;
                                    acc[(int) idx(g, n, group * cg + ci, ih, iw)] += d * w.get(((long) (k * cg + ci) * g.r() + r) * g.s() + s);
                                }
                    }
            }
        for (int i = 0; i < acc.length; i++) dx.set(i, (float) acc[i]);
    }

    @Override
    public void conv2dBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) {
        shape("conv2dBackwardFilter dw", dw, g.weightShape());
        double[] acc = new double[(int) dw.size()];
        int cg = g.c() / g.groups(), kg = g.k() / g.groups();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++) {
                int group = k / kg;
                for (int p = 0; p < g.p(); p++)
                    for (int q = 0; q < g.q(); q++) {
                        double d = dy.get(((long) (n * g.k() + k) * g.p() + p) * g.q() + q);
                        for (int ci = 0; ci < cg; ci++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int ih = p * g.strideH() + r - g.padH(), iw = q * g.strideW() + s - g.padW();
                                    if (ih < 0 || iw < 0 || ih >= g.h() || iw >= g.w()) continue;
                                    acc[((k * cg + ci) * g.r() + r) * g.s() + s] += d * x.get(idx(g, n, group * cg + ci, ih, iw));
                                }
                    }
            }
        for (int i = 0; i < acc.length; i++) dw.set(i, (float) acc[i]);
    }

    @Override
    public void batchNormForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                         double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        int n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        long m = (long) n * hw;
        for (int ch = 0; ch < c; ch++) {
            double sum = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) sum += x.get(((long) i * c + ch) * hw + j);
            double mean = sum / m, ss = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) {
                double d = x.get(((long) i * c + ch) * hw + j) - mean;
                ss += d * d;
            }
            double var = ss / m, inv = 1 / Math.sqrt(var + eps);
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) {
                long k = ((long) i * c + ch) * hw + j;
                y.set(k, (float) ((x.get(k) - mean) * inv * gamma.get(ch) + beta.get(ch)));
            }
            saveMean.set(ch, (float) mean);
            saveInvStd.set(ch, (float) inv);
            double unbiased = m > 1 ? ss / (m - 1) : var;
            runningMean.set(ch, (float) ((1 - momentum) * runningMean.get(ch) + momentum * mean));
            runningVar.set(ch, (float) ((1 - momentum) * runningVar.get(ch) + momentum * unbiased));
        }
    }

    @Override
    public void batchNormForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                          double eps, Tensor y) {
        int n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        for (int i = 0; i < n; i++) for (int ch = 0; ch < c; ch++) {
            double inv = 1 / Math.sqrt(runningVar.get(ch) + eps);
            for (int j = 0; j < hw; j++) {
                long k = ((long) i * c + ch) * hw + j;
                y.set(k, (float) ((x.get(k) - runningMean.get(ch)) * inv * gamma.get(ch) + beta.get(ch)));
            }
        }
    }

    @Override
    public void batchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, double eps,
                                  Tensor dx, Tensor dgamma, Tensor dbeta) {
        int n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        long m = (long) n * hw;
        for (int ch = 0; ch < c; ch++) {
            double mean = saveMean.get(ch), inv = saveInvStd.get(ch), sdy = 0, sdyx = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) {
                long k = ((long) i * c + ch) * hw + j;
                sdy += dy.get(k);
                sdyx += dy.get(k) * (x.get(k) - mean) * inv;
            }
            dgamma.set(ch, (float) sdyx);
            dbeta.set(ch, (float) sdy);
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) {
                long k = ((long) i * c + ch) * hw + j;
                double xhat = (x.get(k) - mean) * inv;
                dx.set(k, (float) (gamma.get(ch) * inv * (dy.get(k) - sdy / m - xhat * sdyx / m)));
            }
        }
    }

    private static double sig(double v) {
        return 1 / (1 + Math.exp(-v));
    }

    @Override
    public boolean fusesBatchNormSilu(ich.nn.Storage storage) {
        return fusing;
    }

    /** Batch norm into a double buffer first, then SiLU: one rounding, at the end. */
    @Override
    public void batchNormSiluForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                             double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        fusedCalls++;
        batchNormForwardTraining(x, gamma, beta, runningMean, runningVar, momentum, eps, y, saveMean, saveInvStd);
        int c = x.dim(1), hw = x.dim(2) * x.dim(3);
        for (long k = 0; k < x.size(); k++) {
            int ch = (int) (k / hw % c);
            double z = (x.get(k) - (double) saveMean.get(ch)) * saveInvStd.get(ch) * gamma.get(ch) + beta.get(ch);
            y.set(k, (float) (z * sig(z)));
        }
    }

    @Override
    public void batchNormSiluForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                              double eps, Tensor y) {
        fusedCalls++;
        int c = x.dim(1), hw = x.dim(2) * x.dim(3);
        for (long k = 0; k < x.size(); k++) {
            int ch = (int) (k / hw % c);
            double z = (x.get(k) - (double) runningMean.get(ch)) / Math.sqrt(runningVar.get(ch) + eps) * gamma.get(ch) + beta.get(ch);
            y.set(k, (float) (z * sig(z)));
        }
    }

    /** dz = dy * silu'(z) with z recomputed from x, then the batch norm's backward of dz. */
    @Override
    public void batchNormSiluBackward(Tensor x, Tensor dy, Tensor gamma, Tensor beta, Tensor saveMean, Tensor saveInvStd,
                                      double eps, Tensor dx, Tensor dgamma, Tensor dbeta) {
        fusedCalls++;
        int c = x.dim(1), hw = x.dim(2) * x.dim(3);
        try (Arena arena = Arena.ofConfined()) {
            Tensor dz = Tensor.allocate(arena, x.shape());
            for (long k = 0; k < x.size(); k++) {
                int ch = (int) (k / hw % c);
                double z = (x.get(k) - (double) saveMean.get(ch)) * saveInvStd.get(ch) * gamma.get(ch) + beta.get(ch), s = sig(z);
                dz.set(k, (float) (dy.get(k) * s * (1 + z * (1 - s))));
            }
            batchNormBackward(x, dz, gamma, saveMean, saveInvStd, eps, dx, dgamma, dbeta);
        }
    }

    @Override
    public void silu(Tensor x, Tensor y) {
        same("silu", x, y);
        for (long i = 0; i < x.size(); i++) y.set(i, (float) (x.get(i) * sig(x.get(i))));
    }

    @Override
    public void siluBackward(Tensor x, Tensor dy, Tensor dx) {
        for (long i = 0; i < x.size(); i++) {
            double v = x.get(i), s = sig(v);
            dx.set(i, (float) (dy.get(i) * s * (1 + v * (1 - s))));
        }
    }

    @Override
    public void sigmoid(Tensor x, Tensor y) {
        for (long i = 0; i < x.size(); i++) y.set(i, (float) sig(x.get(i)));
    }

    @Override
    public void sigmoidBackward(Tensor y, Tensor dy, Tensor dx) {
        for (long i = 0; i < y.size(); i++) dx.set(i, dy.get(i) * y.get(i) * (1 - y.get(i)));
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor y) {
        same("add", a, b);
        for (long i = 0; i < a.size(); i++) y.set(i, a.get(i) + b.get(i));
    }

    @Override
    public void accumulate(Tensor into, Tensor from) {
        same("accumulate", into, from);
        for (long i = 0; i < into.size(); i++) into.set(i, into.get(i) + from.get(i));
    }

    @Override
    public void multiplyByMask(Tensor x, Tensor mask, Tensor y) {
        long per = mask.size() == x.size() ? 1 : x.size() / x.dim(0);
        if (mask.size() != x.size() && mask.size() != x.dim(0)) throw new IllegalArgumentException("multiplyByMask: " + x + " " + mask);
        for (long i = 0; i < x.size(); i++) y.set(i, x.get(i) * mask.get(i / per));
    }

    @Override
    public void scale(Tensor t, float factor) {
        for (long i = 0; i < t.size(); i++) t.set(i, t.get(i) * factor);
    }

    @Override
    public double sumOfSquares(Tensor t) {
        double s = 0;
        for (long i = 0; i < t.size(); i++) s += (double) t.get(i) * t.get(i);
        return s;
    }

    @Override
    public void scaleChannels(Tensor x, Tensor s, Tensor y) {
        int hw = x.dim(2) * x.dim(3);
        for (long i = 0; i < x.size(); i++) y.set(i, x.get(i) * s.get(i / hw));
    }

    @Override
    public void scaleChannelsBackward(Tensor x, Tensor s, Tensor dy, Tensor dx, Tensor ds) {
        int hw = x.dim(2) * x.dim(3);
        for (long nc = 0; nc < s.size(); nc++) {
            double acc = 0;
            for (int j = 0; j < hw; j++) {
                long i = nc * hw + j;
                acc += dy.get(i) * x.get(i);
                if (dx != null) dx.set(i, dy.get(i) * s.get(nc));
            }
            ds.set(nc, (float) acc);
        }
    }

    @Override
    public void scaleChannelsInputGradient(Tensor dy, Tensor s, Tensor dPooled, Tensor dx) {
        int hw = dy.dim(2) * dy.dim(3);
        for (long i = 0; i < dy.size(); i++) dx.set(i, dy.get(i) * s.get(i / hw) + dPooled.get(i / hw) / hw);
    }

    @Override
    public void globalAveragePool(Tensor x, Tensor y) {
        int hw = x.dim(2) * x.dim(3);
        for (long nc = 0; nc < y.size(); nc++) {
            double acc = 0;
            for (int j = 0; j < hw; j++) acc += x.get(nc * hw + j);
            y.set(nc, (float) (acc / hw));
        }
    }

    @Override
    public void globalAveragePoolBackward(Tensor dy, Tensor dx) {
        int hw = dx.dim(2) * dx.dim(3);
        for (long i = 0; i < dx.size(); i++) dx.set(i, dy.get(i / hw) / hw);
    }

    @Override
    public void linearForward(Tensor x, Tensor w, Tensor b, Tensor y) {
        int n = x.dim(0), in = x.dim(1), out = w.dim(0);
        shape("linearForward w", w, out, in);
        shape("linearForward y", y, n, out);
        for (int i = 0; i < n; i++) for (int o = 0; o < out; o++) {
            double acc = b == null ? 0 : b.get(o);
            for (int j = 0; j < in; j++) acc += x.get((long) i * in + j) * w.get((long) o * in + j);
            y.set((long) i * out + o, (float) acc);
        }
    }

    @Override
    public void linearBackward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, Tensor db) {
        int n = x.dim(0), in = x.dim(1), out = w.dim(0);
        shape("linearBackward dw", dw, out, in);
        for (int o = 0; o < out; o++) {
            double accB = 0;
            for (int i = 0; i < n; i++) accB += dy.get((long) i * out + o);
            if (db != null) db.set(o, (float) accB);
            for (int j = 0; j < in; j++) {
                double acc = 0;
                for (int i = 0; i < n; i++) acc += dy.get((long) i * out + o) * x.get((long) i * in + j);
                dw.set((long) o * in + j, (float) acc);
            }
        }
        if (dx != null) {
            for (int i = 0; i < n; i++) for (int j = 0; j < in; j++) {
                double acc = 0;
                for (int o = 0; o < out; o++) acc += dy.get((long) i * out + o) * w.get((long) o * in + j);
                dx.set((long) i * in + j, (float) acc);
            }
        }
    }

    @Override
    public double bceWithLogits(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits) {
        int n = logits.dim(0), l = logits.dim(1);
        double wsum = 0;
        for (int j = 0; j < l; j++) wsum += labelWeights == null ? 1 : labelWeights.get(j);
        double loss = 0;
        for (int i = 0; i < n; i++) for (int j = 0; j < l; j++) {
            long k = (long) i * l + j;
            double z = logits.get(k), t = targets.get(k), w = labelWeights == null ? 1 : labelWeights.get(j);
            loss += w * (Math.max(z, 0) - z * t + Math.log1p(Math.exp(-Math.abs(z))));
            if (dLogits != null) dLogits.set(k, (float) (w * (sig(z) - t) / (n * wsum)));
        }
        return loss / (n * wsum);
    }

    @Override
    public void adamStep(Tensor param, Tensor grad, Tensor m, Tensor v, long step, double lr, double beta1, double beta2,
                         double eps, double weightDecay, boolean decoupled) {
        double c1 = 1 - Math.pow(beta1, step), c2 = 1 - Math.pow(beta2, step);
        for (long i = 0; i < param.size(); i++) {
            double p = param.get(i), g = grad.get(i);
            if (decoupled) p *= 1 - lr * weightDecay;
            else g += weightDecay * p;
            double mi = beta1 * m.get(i) + (1 - beta1) * g, vi = beta2 * v.get(i) + (1 - beta2) * g * g;
            m.set(i, (float) mi);
            v.set(i, (float) vi);
            param.set(i, (float) (p - lr * (mi / c1) / (Math.sqrt(vi / c2) + eps)));
        }
    }

    @Override
    public void close() {
    }
}
