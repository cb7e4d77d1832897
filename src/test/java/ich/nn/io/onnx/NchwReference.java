package ich.nn.io.onnx;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The ops of an exported graph written out loop by loop from their definitions, accumulating in double: the
 * independent reference that ONNX Runtime's results are held against. Images are NCHW float arrays with their
 * dimensions passed alongside.
 */
final class NchwReference {
    private NchwReference() {}

    /** An NCHW activation. */
    record Act(float[] v, int n, int c, int h, int w) {
        Act {
            assertEquals((long) n * c * h * w, v.length, "activation size");
        }
    }

    /** Conv with weights [k, c/groups, r, s], optional bias [k], symmetric padding. */
    static Act conv(Act x, float[] wt, float[] bias, int k, int r, int s, int stride, int pad, int groups) {
        int cg = x.c() / groups, kg = k / groups;
        int p = (x.h() + 2 * pad - r) / stride + 1, q = (x.w() + 2 * pad - s) / stride + 1;
        float[] y = new float[x.n() * k * p * q];
        for (int ni = 0; ni < x.n(); ni++) {
            for (int ki = 0; ki < k; ki++) {
                int g = ki / kg;
                for (int pi = 0; pi < p; pi++) {
                    for (int qi = 0; qi < q; qi++) {
                        double acc = bias == null ? 0 : bias[ki];
                        for (int ci = 0; ci < cg; ci++) {
                            int cin = g * cg + ci;
                            for (int ri = 0; ri < r; ri++) {
                                int hi = pi * stride + ri - pad;
                                if (hi < 0 || hi >= x.h()) continue;
                                for (int si = 0; si < s; si++) {
                                    int wi = qi * stride + si - pad;
                                    if (wi < 0 || wi >= x.w()) continue;
                                    acc += (double) wt[((ki * cg + ci) * r + ri) * s + si]
                                            * x.v()[((ni * x.c() + cin) * x.h() + hi) * x.w() + wi];
                                }
                            }
                        }
                        y[((ni * k + ki) * p + pi) * q + qi] = (float) acc;
                    }
                }
            }
        }
        return new Act(y, x.n(), k, p, q);
    }

    static Act batchNorm(Act x, float[] gamma, float[] beta, float[] mean, float[] var, double eps) {
        float[] y = new float[x.v().length];
        int hw = x.h() * x.w();
        for (int i = 0; i < y.length; i++) {
            int ci = (i / hw) % x.c();
            y[i] = (float) ((x.v()[i] - (double) mean[ci]) / Math.sqrt(var[ci] + eps) * gamma[ci] + beta[ci]);
        }
        return new Act(y, x.n(), x.c(), x.h(), x.w());
    }

    static double sigmoid(double z) {
        return 1 / (1 + Math.exp(-z));
    }

    static Act sigmoid(Act x) {
        float[] y = new float[x.v().length];
        for (int i = 0; i < y.length; i++) y[i] = (float) sigmoid(x.v()[i]);
        return new Act(y, x.n(), x.c(), x.h(), x.w());
    }

    static Act silu(Act x) {
        float[] y = new float[x.v().length];
        for (int i = 0; i < y.length; i++) y[i] = (float) (x.v()[i] * sigmoid(x.v()[i]));
        return new Act(y, x.n(), x.c(), x.h(), x.w());
    }

    static Act add(Act a, Act b) {
        float[] y = new float[a.v().length];
        for (int i = 0; i < y.length; i++) y[i] = a.v()[i] + b.v()[i];
        return new Act(y, a.n(), a.c(), a.h(), a.w());
    }

    /** [n, c, h, w] to [n, c, 1, 1]. */
    static Act globalAveragePool(Act x) {
        int hw = x.h() * x.w();
        float[] y = new float[x.n() * x.c()];
        for (int i = 0; i < y.length; i++) {
            double sum = 0;
            for (int j = 0; j < hw; j++) sum += x.v()[i * hw + j];
            y[i] = (float) (sum / hw);
        }
        return new Act(y, x.n(), x.c(), 1, 1);
    }

    /** x * s with s [n, c, 1, 1] broadcast over h and w. */
    static Act scaleChannels(Act x, Act s) {
        int hw = x.h() * x.w();
        float[] y = new float[x.v().length];
        for (int i = 0; i < y.length; i++) y[i] = x.v()[i] * s.v()[i / hw];
        return new Act(y, x.n(), x.c(), x.h(), x.w());
    }

    /** y[n, o] = sum_i x[n, i] w[o, i] + b[o], x given as [n, in] row-major. */
    static float[] linear(float[] x, int n, float[] w, float[] b, int out) {
        int in = x.length / n;
        float[] y = new float[n * out];
        for (int ni = 0; ni < n; ni++) {
            for (int o = 0; o < out; o++) {
                double acc = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) acc += (double) x[ni * in + i] * w[o * in + i];
                y[ni * out + o] = (float) acc;
            }
        }
        return y;
    }

    static float[] gaussian(Random random, int count, double std) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float) (random.nextGaussian() * std);
        return v;
    }

    static float[] uniform(Random random, int count, double lo, double hi) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float) (lo + (hi - lo) * random.nextDouble());
        return v;
    }

    /**
     * Element-wise |actual - expected| <= rtol * max(|expected|, mean |expected|): relative where values are
     * of the tensor's typical size, and not tripped by an element that happens to sit near zero.
     */
    static void assertClose(float[] expected, float[] actual, double rtol, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        double meanAbs = 0;
        for (float e : expected) meanAbs += Math.abs(e);
        meanAbs /= expected.length;
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs((double) actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), meanAbs);
            if (Double.isNaN(err)) fail(what + ": NaN at " + i + " (expected " + expected[i] + ", got " + actual[i] + ")");
            if (err > worst) {
                worst = err;
                at = i;
            }
        }
        if (worst > rtol) {
            fail(what + ": relative error " + worst + " > " + rtol + " at " + at + " (expected " + expected[at]
                    + ", got " + actual[at] + ", mean |expected| " + meanAbs + ")");
        }
    }
}
