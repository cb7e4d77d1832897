package ich.nn.cpu;

import ich.nn.ConvGeometry;
import ich.nn.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.util.Random;
import java.util.function.DoubleSupplier;

import static ich.nn.cpu.Checks.close;
import static ich.nn.cpu.Checks.dot;
import static ich.nn.cpu.Checks.poison;
import static ich.nn.cpu.Checks.poisoned;
import static ich.nn.cpu.Checks.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every non-convolution op of the CPU backend against hand formulas and finite differences. */
class CpuOpsTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final double EPS = 1e-5;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    // ---- batch norm ----

    @Test
    void batchNormTrainingNormalisesWithBatchStatisticsAndUpdatesRunningOnes() {
        Random random = new Random(1);
        try (Arena arena = Arena.ofShared()) {
            int n = 3, c = 5, h = 4, w = 7, m = n * h * w;
            Tensor x = random(arena, random, n, c, h, w);
            for (long i = 0; i < x.size(); i++) x.set(i, x.get(i) * 3 + 2);  // mean far from 0
            Tensor gamma = random(arena, random, c), beta = random(arena, random, c);
            Tensor runMean = random(arena, random, c), runVar = Tensor.allocate(arena, c);
            for (int ch = 0; ch < c; ch++) runVar.set(ch, 0.5f + ch);
            double[] rm0 = Checks.toDouble(runMean), rv0 = Checks.toDouble(runVar);
            Tensor y = poisoned(arena, n, c, h, w), mean = poisoned(arena, c), invStd = poisoned(arena, c);
            CPU.batchNormForwardTraining(x, gamma, beta, runMean, runVar, 0.1, EPS, y, mean, invStd);

            double[] expectY = new double[(int) x.size()];
            double[] expectMean = new double[c], expectInv = new double[c], expectRm = new double[c], expectRv = new double[c];
            for (int ch = 0; ch < c; ch++) {
                double sum = 0;
                for (int i = 0; i < n; i++) for (int j = 0; j < h * w; j++) sum += x.get((i * c + ch) * h * w + j);
                double mu = sum / m, sq = 0;
                for (int i = 0; i < n; i++) for (int j = 0; j < h * w; j++) sq += Math.pow(x.get((i * c + ch) * h * w + j) - mu, 2);
                double var = sq / m;
                expectMean[ch] = mu;
                expectInv[ch] = 1 / Math.sqrt(var + EPS);
                expectRm[ch] = 0.9 * rm0[ch] + 0.1 * mu;
                expectRv[ch] = 0.9 * rv0[ch] + 0.1 * sq / (m - 1);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < h * w; j++) {
                        int at = (i * c + ch) * h * w + j;
                        expectY[at] = (x.get(at) - mu) * expectInv[ch] * gamma.get(ch) + beta.get(ch);
                    }
            }
            close("y", expectY, y, 1e-5);
            close("saved mean", expectMean, mean, 1e-6);
            close("saved inverse std", expectInv, invStd, 1e-5);
            close("running mean", expectRm, runMean, 1e-6);
            close("running var (unbiased)", expectRv, runVar, 1e-6);
        }
    }

    @Test
    void batchNormInferenceUsesRunningStatistics() {
        Random random = new Random(2);
        try (Arena arena = Arena.ofShared()) {
            int n = 2, c = 4, hw = 9;
            Tensor x = random(arena, random, n, c, 3, 3);
            Tensor gamma = random(arena, random, c), beta = random(arena, random, c), rm = random(arena, random, c);
            Tensor rv = Tensor.allocate(arena, c);
            for (int ch = 0; ch < c; ch++) rv.set(ch, 0.2f + ch);
            Tensor y = poisoned(arena, n, c, 3, 3);
            CPU.batchNormForwardInference(x, gamma, beta, rm, rv, 1e-3, y);
            double[] expect = new double[(int) x.size()];
            for (int i = 0; i < expect.length; i++) {
                int ch = i / hw % c;
                expect[i] = (x.get(i) - rm.get(ch)) / Math.sqrt(rv.get(ch) + 1e-3) * gamma.get(ch) + beta.get(ch);
            }
            close("inference", expect, y, 1e-5);
            // y may not alias x per the contract, but in place on a separate copy must give the same
        }
    }

    @Test
    void batchNormBackwardMatchesFiniteDifferences() {
        Random random = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            int n = 2, c = 3, h = 3, w = 5;
            Tensor x = random(arena, random, n, c, h, w);
            Tensor gamma = random(arena, random, c), beta = random(arena, random, c);
            Tensor r = random(arena, random, n, c, h, w);
            Tensor rm = Tensor.allocate(arena, c), rv = Tensor.allocate(arena, c);
            Tensor y = Tensor.allocate(arena, n, c, h, w), mean = Tensor.allocate(arena, c), inv = Tensor.allocate(arena, c);
            CPU.batchNormForwardTraining(x, gamma, beta, rm, rv, 0.1, EPS, y, mean, inv);
            Tensor dx = poisoned(arena, n, c, h, w), dgamma = poisoned(arena, c), dbeta = poisoned(arena, c);
            CPU.batchNormBackward(x, r, gamma, mean, inv, EPS, dx, dgamma, dbeta);
            DoubleSupplier loss = () -> {
                CPU.batchNormForwardTraining(x, gamma, beta, rm, rv, 0.1, EPS, y, mean, inv);
                return dot(y, r);
            };
            Checks.gradient("bn d/dx", x, dx, loss, random, 1e-2f, 2e-2, 2e-3, 90);
            Checks.gradient("bn d/dgamma", gamma, dgamma, loss, random, 1e-2f, 1e-2, 1e-3, 3);
            Checks.gradient("bn d/dbeta", beta, dbeta, loss, random, 1e-2f, 1e-2, 1e-3, 3);
            // and the textbook formula, tightly
            CPU.batchNormForwardTraining(x, gamma, beta, rm, rv, 0.1, EPS, y, mean, inv);
            double[] expect = new double[(int) x.size()];
            int m = n * h * w;
            for (int ch = 0; ch < c; ch++) {
                double sdy = 0, sdyx = 0;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < h * w; j++) {
                        int at = (i * c + ch) * h * w + j;
                        sdy += r.get(at);
                        sdyx += r.get(at) * (x.get(at) - mean.get(ch)) * inv.get(ch);
                    }
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < h * w; j++) {
                        int at = (i * c + ch) * h * w + j;
                        double xhat = (x.get(at) - mean.get(ch)) * inv.get(ch);
                        expect[at] = gamma.get(ch) * inv.get(ch) / m * (m * r.get(at) - sdy - xhat * sdyx);
                    }
            }
            close("bn dx formula", expect, dx, 1e-5);
        }
    }

    @Test
    void batchNormRefusesOneValuePerChannel() {
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.allocate(arena, 1, 2, 1, 1), s = Tensor.allocate(arena, 2);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> CPU.batchNormForwardTraining(x, s, s, s, s, 0.1, EPS, Tensor.allocate(arena, 1, 2, 1, 1), s, s));
            assertTrue(e.getMessage().contains("batchNormForwardTraining"), e.getMessage());
        }
    }

    // ---- element-wise ----

    @Test
    void siluAndSigmoidForwardBackward() {
        Random random = new Random(4);
        try (Arena arena = Arena.ofShared()) {
            int size = 40_000;  // several chunks
            Tensor x = random(arena, random, size);
            for (long i = 0; i < size; i++) x.set(i, x.get(i) * 12);
            x.set(0, 100f);
            x.set(1, -100f);
            Tensor y = poisoned(arena, size), s = poisoned(arena, size);
            CPU.silu(x, y);
            CPU.sigmoid(x, s);
            double[] ey = new double[size], es = new double[size];
            for (int i = 0; i < size; i++) {
                double v = x.get(i), sg = 1 / (1 + Math.exp(-v));
                ey[i] = v * sg;
                es[i] = sg;
            }
            close("silu", ey, y, 1e-6);
            close("sigmoid", es, s, 1e-6);
            try (CpuBackend scalar = new CpuBackend(2, CpuBackend.Kernel.SCALAR)) {
                poison(y);
                poison(s);
                scalar.silu(x, y);
                scalar.sigmoid(x, s);
                close("silu, scalar", ey, y, 1e-6);
                close("sigmoid, scalar", es, s, 1e-6);
                Tensor r0 = random(arena, random, size), d0 = poisoned(arena, size), d1 = poisoned(arena, size);
                scalar.siluBackward(x, r0, d0);
                CPU.siluBackward(x, r0, d1);
                close("silu backward, vector vs scalar", Checks.toDouble(d0), d1, 1e-6);
            }
            // aliasing: in place
            Tensor copy = Tensor.allocate(arena, size);
            copy.copyFrom(x);
            CPU.silu(copy, copy);
            close("silu in place", ey, copy, 1e-6);
            copy.copyFrom(x);
            CPU.sigmoid(copy, copy);
            close("sigmoid in place", es, copy, 1e-6);

            Tensor small = random(arena, random, 2, 3, 4, 5);
            for (long i = 0; i < small.size(); i++) small.set(i, small.get(i) * 5);
            Tensor r = random(arena, random, 2, 3, 4, 5), out = Tensor.allocate(arena, 2, 3, 4, 5);
            Tensor dx = poisoned(arena, 2, 3, 4, 5);
            CPU.siluBackward(small, r, dx);
            Checks.gradient("silu", small, dx, () -> { CPU.silu(small, out); return dot(out, r); }, random, 1e-2f, 1e-2, 1e-4, 200);
            Tensor sy = Tensor.allocate(arena, 2, 3, 4, 5);
            CPU.sigmoid(small, sy);
            poison(dx);
            CPU.sigmoidBackward(sy, r, dx);
            Checks.gradient("sigmoid", small, dx, () -> { CPU.sigmoid(small, out); return dot(out, r); }, random, 1e-2f, 1e-2, 1e-4, 200);
        }
    }

    @Test
    void addAccumulateScaleAndSumOfSquares() {
        Random random = new Random(5);
        try (Arena arena = Arena.ofShared()) {
            int size = 33_333;
            Tensor a = random(arena, random, size), b = random(arena, random, size), y = poisoned(arena, size);
            CPU.add(a, b, y);
            double[] sum = new double[size];
            for (int i = 0; i < size; i++) sum[i] = (double) a.get(i) + b.get(i);
            close("add", sum, y, 1e-7);
            CPU.accumulate(a, b);
            close("accumulate", sum, a, 1e-7);
            CPU.scale(a, -0.5f);
            for (int i = 0; i < size; i++) sum[i] *= -0.5;
            close("scale", sum, a, 1e-7);
            double ss = 0;
            for (int i = 0; i < size; i++) ss += (double) a.get(i) * a.get(i);
            assertEquals(ss, CPU.sumOfSquares(a), 1e-9 * ss);
            assertThrows(IllegalArgumentException.class, () -> CPU.add(a, Tensor.allocate(arena, size + 1), y));
        }
    }

    @Test
    void maskIsElementWiseOrPerSample() {
        Random random = new Random(6);
        try (Arena arena = Arena.ofShared()) {
            int n = 3, rest = 7 * 5 * 700;  // per sample larger than a chunk, so chunks straddle samples
            Tensor x = random(arena, random, n, 7, 5, 700);
            Tensor full = Tensor.allocate(arena, n, 7, 5, 700);
            for (long i = 0; i < full.size(); i++) full.set(i, random.nextBoolean() ? 0f : 1.25f);
            Tensor y = poisoned(arena, n, 7, 5, 700);
            CPU.multiplyByMask(x, full, y);
            double[] e = new double[(int) x.size()];
            for (int i = 0; i < e.length; i++) e[i] = x.get(i) * full.get(i);
            close("dropout mask", e, y, 0);
            Tensor perSample = Tensor.of(arena, new float[] {1.25f, 0f, 1.25f}, n);
            poison(y);
            CPU.multiplyByMask(x, perSample, y);
            for (int i = 0; i < e.length; i++) e[i] = x.get(i) * perSample.get(i / rest);
            close("drop-path mask", e, y, 0);
            assertThrows(IllegalArgumentException.class, () -> CPU.multiplyByMask(x, Tensor.allocate(arena, 4), y));
        }
    }

    // ---- squeeze-excitation, pooling ----

    /**
     * Two shapes: small planes that fit one block, and 144 planes of 37 x 41 (1,517 floats), which the ops read in
     * blocks of 10 planes, so each of the 3-thread backend's 12 ranges of 12 planes is a full block and a partial one.
     */
    @ParameterizedTest
    @CsvSource({"2, 5, 3, 4", "4, 36, 37, 41"})
    void scaleChannelsAndPooling(int n, int c, int h, int w) {
        Random random = new Random(7);
        try (Arena arena = Arena.ofShared()) {
            Tensor x = random(arena, random, n, c, h, w), s = random(arena, random, n, c, 1, 1);
            Tensor y = poisoned(arena, n, c, h, w);
            CPU.scaleChannels(x, s, y);
            double[] e = new double[(int) x.size()];
            for (int i = 0; i < e.length; i++) e[i] = x.get(i) * s.get(i / (h * w));
            close("scaleChannels", e, y, 1e-7);
            Tensor r = random(arena, random, n, c, h, w);
            Tensor dx = poisoned(arena, n, c, h, w), ds = poisoned(arena, n, c, 1, 1);
            CPU.scaleChannelsBackward(x, s, r, dx, ds);
            DoubleSupplier loss = () -> { CPU.scaleChannels(x, s, y); return dot(y, r); };
            Checks.gradient("scaleChannels d/dx", x, dx, loss, random, 1e-2f, 1e-2, 1e-4, 200);
            Checks.gradient("scaleChannels d/ds", s, ds, loss, random, 1e-2f, 1e-2, 1e-4, 200);

            Tensor pooled = poisoned(arena, n, c);
            CPU.globalAveragePool(x, pooled);
            double[] ep = new double[n * c];
            for (int i = 0; i < x.size(); i++) ep[i / (h * w)] += x.get(i) / (h * w);
            close("pool", ep, pooled, 1e-6);
            Tensor rp = random(arena, random, n, c);
            poison(dx);
            CPU.globalAveragePoolBackward(rp, dx);
            Checks.gradient("pool", x, dx, () -> { CPU.globalAveragePool(x, pooled); return dot(pooled, rp); }, random,
                    1e-2f, 1e-2, 1e-5, 200);
        }
    }

    /**
     * What the SE layer runs: the scales' gradient without dx, then dx through both paths in one op. The parts must
     * be the separate ops' bit for bit (same products, same quotient, one sum), at a plane size that is no vector
     * multiple.
     */
    @Test
    void seInputGradientIsTheSeparateOpsBitForBit() {
        Random random = new Random(17);
        try (Arena arena = Arena.ofShared()) {
            int n = 3, c = 7, h = 5, w = 9;
            Tensor x = random(arena, random, n, c, h, w), s = random(arena, random, n, c, 1, 1);
            Tensor dy = random(arena, random, n, c, h, w), dPooled = random(arena, random, n, c);
            Tensor dxScale = poisoned(arena, n, c, h, w), ds = poisoned(arena, n, c, 1, 1);
            CPU.scaleChannelsBackward(x, s, dy, dxScale, ds);
            Tensor dxPool = poisoned(arena, n, c, h, w);
            CPU.globalAveragePoolBackward(dPooled, dxPool);
            CPU.accumulate(dxScale, dxPool);

            Tensor dsAlone = poisoned(arena, n, c, 1, 1);
            CPU.scaleChannelsBackward(x, s, dy, null, dsAlone);
            assertArrayEquals(ds.toArray(), dsAlone.toArray(), "ds without dx");
            Tensor dx = poisoned(arena, n, c, h, w);
            CPU.scaleChannelsInputGradient(dy, s, dPooled, dx);
            assertArrayEquals(dxScale.toArray(), dx.toArray(), "dx = dy * s + dPooled / hw");
            // in place, as the contract allows
            Tensor dyCopy = Tensor.of(arena, dy.toArray(), dy.shape());
            CPU.scaleChannelsInputGradient(dyCopy, s, dPooled, dyCopy);
            assertArrayEquals(dxScale.toArray(), dyCopy.toArray(), "dx written over dy");
            assertThrows(IllegalArgumentException.class, () -> CPU.scaleChannelsInputGradient(dy, s, Tensor.allocate(arena, n, c + 1), dx));
        }
    }

    // ---- linear ----

    @Test
    void linearForwardBackward() {
        Random random = new Random(8);
        try (Arena arena = Arena.ofShared()) {
            int n = 3, in = 37, out = 6;
            Tensor x = random(arena, random, n, in), w = random(arena, random, out, in), b = random(arena, random, out);
            Tensor y = poisoned(arena, n, out);
            CPU.linearForward(x, w, b, y);
            double[] e = new double[n * out];
            for (int i = 0; i < n; i++)
                for (int o = 0; o < out; o++) {
                    double sum = b.get(o);
                    for (int j = 0; j < in; j++) sum += x.get(i * in + j) * w.get(o * in + j);
                    e[i * out + o] = sum;
                }
            close("linear", e, y, 1e-5);
            poison(y);
            CPU.linearForward(x, w, null, y);
            for (int i = 0; i < n * out; i++) e[i] -= b.get(i % out);
            close("linear without bias", e, y, 1e-5);

            Tensor r = random(arena, random, n, out);
            Tensor dx = poisoned(arena, n, in), dw = poisoned(arena, out, in), db = poisoned(arena, out);
            CPU.linearBackward(x, w, r, dx, dw, db);
            DoubleSupplier loss = () -> { CPU.linearForward(x, w, b, y); return dot(y, r); };
            Checks.gradient("linear d/dx", x, dx, loss, random, 1e-2f, 1e-2, 1e-4, 200);
            Checks.gradient("linear d/dw", w, dw, loss, random, 1e-2f, 1e-2, 1e-4, 300);
            Checks.gradient("linear d/db", b, db, loss, random, 1e-2f, 1e-2, 1e-4, 10);
            poison(dw);
            CPU.linearBackward(x, w, r, null, dw, null);
            assertTrue(Float.isFinite(dw.get(0)));
            // [n, c, 1, 1] input as the pooled features come
            Tensor x4 = x.reshape(n, in, 1, 1);
            poison(y);
            CPU.linearForward(x4, w, null, y);
            close("linear on [n, c, 1, 1]", e, y, 1e-5);
            assertThrows(IllegalArgumentException.class, () -> CPU.linearForward(x, Tensor.allocate(arena, out, in + 1), b, y));
        }
    }

    // ---- loss ----

    @Test
    void bceWithLogitsIsTheWeightedMean() {
        Random random = new Random(9);
        try (Arena arena = Arena.ofShared()) {
            int n = 4, labels = 6;
            Tensor z = random(arena, random, n, labels);
            for (long i = 0; i < z.size(); i++) z.set(i, z.get(i) * 6);
            z.set(0, 80f);
            z.set(1, -80f);
            Tensor t = Tensor.allocate(arena, n, labels);
            for (long i = 0; i < t.size(); i++) t.set(i, random.nextBoolean() ? 1f : 0f);
            t.set(0, 0f);
            t.set(1, 1f);
            Tensor wts = Tensor.of(arena, new float[] {2, 1, 1, 1, 1, 1}, labels);
            Tensor grad = poisoned(arena, n, labels);
            double loss = CPU.bceWithLogits(z, t, wts, grad);
            double sum = 0;
            double[] eg = new double[n * labels];
            for (int i = 0; i < n * labels; i++) {
                double zi = z.get(i), ti = t.get(i), p = 1 / (1 + Math.exp(-zi));
                double wl = i % labels == 0 ? 2 : 1;
                // the unstable textbook form, in double with clamping of log(0) for the extreme logits
                double term = -(ti * Math.log(Math.max(p, 1e-300)) + (1 - ti) * Math.log(Math.max(1 - p, 1e-300)));
                if (i == 0) term = 80;  // log(1 + e^80) - 0 = 80 to double precision
                if (i == 1) term = 80;
                sum += wl * term;
                eg[i] = wl * (p - ti) / (n * 7.0);
            }
            assertEquals(sum / (n * 7.0), loss, 1e-6 * Math.abs(loss));
            close("bce gradient", eg, grad, 1e-6);
            Checks.gradient("bce", z, grad, () -> CPU.bceWithLogits(z, t, wts, null), random, 1e-2f, 1e-2, 1e-6, 24);

            double unweighted = CPU.bceWithLogits(z, t, null, null);
            double plain = 0;
            for (int i = 0; i < n * labels; i++) {
                double zi = z.get(i), ti = t.get(i);
                plain += Math.max(zi, 0) - zi * ti + Math.log1p(Math.exp(-Math.abs(zi)));
            }
            assertEquals(plain / (n * labels), unweighted, 1e-9);
        }
    }

    // ---- optimiser step (the Adam class is tested in ich.nn.optim) ----

    @Test
    void adamStepMatchesTorchFormulas() {
        Random random = new Random(10);
        try (Arena arena = Arena.ofShared()) {
            int size = 20_000;
            for (boolean decoupled : new boolean[] {false, true}) {
                Tensor p = random(arena, random, size), g = random(arena, random, size);
                Tensor m = Tensor.allocate(arena, size), v = Tensor.allocate(arena, size);
                double[] ep = Checks.toDouble(p), em = new double[size], ev = new double[size];
                double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-7, wd = 0.05;
                for (int step = 1; step <= 3; step++) {
                    CPU.adamStep(p, g, m, v, step, lr, b1, b2, eps, wd, decoupled);
                    for (int i = 0; i < size; i++) {
                        double gi = g.get(i);
                        if (decoupled) ep[i] *= 1 - lr * wd; else gi += wd * ep[i];
                        em[i] = b1 * em[i] + (1 - b1) * gi;
                        ev[i] = b2 * ev[i] + (1 - b2) * gi * gi;
                        double denom = Math.sqrt(ev[i]) / Math.sqrt(1 - Math.pow(b2, step)) + eps;
                        ep[i] -= lr / (1 - Math.pow(b1, step)) * em[i] / denom;
                    }
                }
                close("adam param, decoupled=" + decoupled, ep, p, 1e-5);
                close("adam m", em, m, 1e-5);
                close("adam v", ev, v, 1e-5);
            }
        }
    }

    // ---- threading and contracts ----

    @Test
    void tensorsOfAConfinedArenaRunOnTheCallingThread() {
        ConvGeometry g = ConvGeometry.square(2, 8, 10, 10, 8, 3, 2, 8);
        Random random = new Random(11);
        try (Arena confined = Arena.ofConfined(); Arena shared = Arena.ofShared()) {
            Tensor x = random(confined, random, g.inputShape()), w = random(confined, random, g.weightShape());
            Tensor y = poisoned(confined, g.outputShape());
            CPU.conv2dForward(g, x, w, y);
            Tensor xs = Tensor.allocate(shared, g.inputShape()), ws = Tensor.allocate(shared, g.weightShape());
            xs.copyFrom(x);
            ws.copyFrom(w);
            Tensor ys = poisoned(shared, g.outputShape());
            CPU.conv2dForward(g, xs, ws, ys);
            close("confined vs shared", Checks.toDouble(ys), y, 0);
            Tensor big = random(confined, random, 100_000);
            CPU.silu(big, big);
        }
    }

    @Test
    void nameSaysThreadsAndKernel() {
        try (CpuBackend one = new CpuBackend(1, CpuBackend.Kernel.SCALAR)) {
            assertEquals("cpu (1 thread, scalar gemm)", one.name());
        }
        assertTrue(CPU.name().startsWith("cpu (3 threads, vector"), CPU.name());
        assertThrows(IllegalArgumentException.class, () -> new CpuBackend(0));
    }
}
