package ich.nn.cpu;

import ich.nn.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Random;

import static ich.nn.cpu.Checks.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vectorised batch-norm kernels against the plain-loop ones and against statistics in double: channels far
 * from zero (mean 1000, std 0.5) keep an accurate variance, and planes long enough for several summation
 * blocks with a tail that does not fill a vector.
 */
class BatchNormKernelsTest {
    @Test
    void vectorAndScalarKernelsAgreeAndStayAccurateOffZero() {
        int n = 3, c = 4, h = 37, w = 29, spatial = h * w;
        try (CpuBackend vector = new CpuBackend(2, CpuBackend.Kernel.VECTOR);
             CpuBackend scalar = new CpuBackend(1, CpuBackend.Kernel.SCALAR);
             Arena arena = Arena.ofShared()) {
            Random r = new Random(3);
            Tensor x = random(arena, r, n, c, h, w);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < spatial; j++) {
                    long at = ((long) i * c + 1) * spatial + j;
                    x.set(at, 1000f + 0.5f * x.get(at));
                }
            }
            Tensor gamma = random(arena, r, c), beta = random(arena, r, c), dy = random(arena, r, n, c, h, w);
            float[][] out = new float[2][];
            float[][] grads = new float[2][];
            float[][] invStds = new float[2][];
            CpuBackend[] backends = {vector, scalar};
            for (int b = 0; b < 2; b++) {
                Tensor rm = Tensor.allocate(arena, c), rv = Tensor.allocate(arena, c);
                Tensor y = Tensor.allocate(arena, x.shape()), mean = Tensor.allocate(arena, c), invStd = Tensor.allocate(arena, c);
                backends[b].batchNormForwardTraining(x, gamma, beta, rm, rv, 0.1, 1e-5, y, mean, invStd);
                Tensor dx = Tensor.allocate(arena, x.shape()), dg = Tensor.allocate(arena, c), db = Tensor.allocate(arena, c);
                backends[b].batchNormBackward(x, dy, gamma, mean, invStd, 1e-5, dx, dg, db);
                out[b] = y.toArray();
                grads[b] = dx.toArray();
                invStds[b] = invStd.toArray();
                for (int ch = 0; ch < c; ch++) {
                    double s = 0, ss = 0;
                    for (int i = 0; i < n; i++) {
                        for (int j = 0; j < spatial; j++) s += x.get(((long) i * c + ch) * spatial + j);
                    }
                    double m = s / (n * spatial);
                    for (int i = 0; i < n; i++) {
                        for (int j = 0; j < spatial; j++) {
                            double d = x.get(((long) i * c + ch) * spatial + j) - m;
                            ss += d * d;
                        }
                    }
                    double expected = 1 / Math.sqrt(ss / (n * spatial) + 1e-5);
                    assertEquals(m, mean.get(ch), Math.abs(m) * 1e-6 + 1e-6, "mean of channel " + ch);
                    assertEquals(expected, invStd.get(ch), expected * 1e-4, "1/std of channel " + ch);
                }
            }
            for (int i = 0; i < out[0].length; i++) {
                assertEquals(out[1][i], out[0][i], 1e-3 + 1e-3 * Math.abs(out[1][i]), "y[" + i + "]");
                assertEquals(grads[1][i], grads[0][i], 1e-3 + 1e-3 * Math.abs(grads[1][i]), "dx[" + i + "]");
            }
        }
    }

    /**
     * The fused batch norm + SiLU against the separate ops (batch norm, SiLU; SiLU backward, batch-norm backward),
     * on both kernels, with dx in dy's place: the same statistics and outputs bit for bit, the gradients to within
     * float rounding (the backward recomputes the normalised value from the saved statistics). dx on x is refused.
     */
    @Test
    void fusedBatchNormSiluEqualsItsTwoOps() {
        int n = 3, c = 5, h = 13, w = 11;
        for (CpuBackend.Kernel kernel : CpuBackend.Kernel.values()) {
            try (CpuBackend cpu = new CpuBackend(2, kernel); Arena arena = Arena.ofShared()) {
                Random r = new Random(5);
                Tensor x = random(arena, r, n, c, h, w), dy = random(arena, r, n, c, h, w);
                Tensor gamma = random(arena, r, c), beta = random(arena, r, c);
                Tensor rm = Tensor.allocate(arena, c), rv = Tensor.allocate(arena, c), mean = Tensor.allocate(arena, c),
                        invStd = Tensor.allocate(arena, c), z = Tensor.allocate(arena, x.shape()), y = Tensor.allocate(arena, x.shape()),
                        dz = Tensor.allocate(arena, x.shape()), dx = Tensor.allocate(arena, x.shape()), dg = Tensor.allocate(arena, c),
                        db = Tensor.allocate(arena, c);
                cpu.batchNormForwardTraining(x, gamma, beta, rm, rv, 0.1, 1e-5, z, mean, invStd);
                cpu.silu(z, y);
                cpu.siluBackward(z, dy, dz);
                cpu.batchNormBackward(x, dz, gamma, mean, invStd, 1e-5, dx, dg, db);
                Tensor yInf = Tensor.allocate(arena, x.shape());
                cpu.batchNormForwardInference(x, gamma, beta, rm, rv, 1e-5, yInf);
                cpu.silu(yInf, yInf);

                Tensor frm = Tensor.allocate(arena, c), frv = Tensor.allocate(arena, c), fmean = Tensor.allocate(arena, c),
                        finv = Tensor.allocate(arena, c), fy = Tensor.allocate(arena, x.shape()), fdg = Tensor.allocate(arena, c),
                        fdb = Tensor.allocate(arena, c), fyInf = Tensor.allocate(arena, x.shape());
                Tensor fdx = Tensor.allocate(arena, x.shape());
                fdx.copyFrom(dy); // dx may be dy: the fused backward parks dz there between its passes
                assertTrue(cpu.fusesBatchNormSilu(ich.nn.Storage.FLOAT32));
                cpu.batchNormSiluForwardTraining(x, gamma, beta, frm, frv, 0.1, 1e-5, fy, fmean, finv);
                cpu.batchNormSiluBackward(x, fdx, gamma, beta, fmean, finv, 1e-5, fdx, fdg, fdb);
                cpu.batchNormSiluForwardInference(x, gamma, beta, frm, frv, 1e-5, fyInf);
                String k = kernel + " ";
                assertArrayEquals(mean.toArray(), fmean.toArray(), k + "saved mean");
                assertArrayEquals(invStd.toArray(), finv.toArray(), k + "saved 1/std");
                assertArrayEquals(rm.toArray(), frm.toArray(), k + "running mean");
                assertArrayEquals(rv.toArray(), frv.toArray(), k + "running variance");
                assertArrayEquals(y.toArray(), fy.toArray(), k + "y: the same affine, then SiLU with the same bits per element");
                assertClose(dx.toArray(), fdx.toArray(), k + "dx");
                assertClose(dg.toArray(), fdg.toArray(), k + "dgamma");
                assertClose(db.toArray(), fdb.toArray(), k + "dbeta");
                assertArrayEquals(yInf.toArray(), fyInf.toArray(), k + "inference y");
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cpu.batchNormSiluBackward(x, dy, gamma, beta, fmean, finv, 1e-5, x, fdg, fdb));
                assertTrue(e.getMessage().contains("must not be x"), e.getMessage());
            }
        }
    }

    /**
     * The statistics and passes gather a channel's planes into runs of up to 16 K floats. Three layouts, each against
     * batch norm + SiLU computed in double, forward and backward (dx in dy's place, where the fused backward parks
     * dz when the channel needs several runs): tiny planes whose whole channel is one run (3 x 3, the late stages),
     * several runs of many planes with a short last one (37 planes of 23 x 23: runs of 30 and 7), and planes larger
     * than a run (one plane a run). Outputs are poisoned first, so a plane a run skipped shows up.
     */
    @Test
    void everyRunLayoutMatchesDoublePrecision() {
        int[][] shapes = {{5, 3, 3, 3}, {37, 2, 23, 23}, {2, 2, 131, 127}};
        assertEquals(5, CpuBackend.planesPerRun(5, 9));
        assertEquals(30, CpuBackend.planesPerRun(37, 23 * 23));
        assertEquals(1, CpuBackend.planesPerRun(2, 131 * 127));
        for (int[] shape : shapes) {
            for (CpuBackend.Kernel kernel : CpuBackend.Kernel.values()) {
                try (CpuBackend cpu = new CpuBackend(2, kernel); Arena arena = Arena.ofShared()) {
                    String what = kernel + " " + java.util.Arrays.toString(shape) + " ";
                    int n = shape[0], c = shape[1], spatial = shape[2] * shape[3];
                    Random r = new Random(11);
                    Tensor x = random(arena, r, shape), dy = random(arena, r, shape);
                    for (long i = 0; i < x.size(); i++) x.set(i, 3 + 2 * x.get(i));
                    Tensor gamma = random(arena, r, c), beta = random(arena, r, c);
                    Tensor rm = Tensor.allocate(arena, c), rv = Tensor.allocate(arena, c), mean = Checks.poisoned(arena, c),
                            invStd = Checks.poisoned(arena, c), y = Checks.poisoned(arena, shape), dg = Checks.poisoned(arena, c),
                            db = Checks.poisoned(arena, c), dx = Tensor.allocate(arena, shape);
                    dx.copyFrom(dy);
                    cpu.batchNormSiluForwardTraining(x, gamma, beta, rm, rv, 0.1, 1e-5, y, mean, invStd);
                    cpu.batchNormSiluBackward(x, dx, gamma, beta, mean, invStd, 1e-5, dx, dg, db);
                    double[] yRef = new double[(int) x.size()], dxRef = new double[(int) x.size()];
                    for (int ch = 0; ch < c; ch++) {
                        double s = 0, ss = 0, count = (double) n * spatial;
                        for (int i = 0; i < n; i++) for (int j = 0; j < spatial; j++) s += x.get(((long) i * c + ch) * spatial + j);
                        double m = s / count;
                        for (int i = 0; i < n; i++) {
                            for (int j = 0; j < spatial; j++) ss += Math.pow(x.get(((long) i * c + ch) * spatial + j) - m, 2);
                        }
                        double inv = 1 / Math.sqrt(ss / count + 1e-5), g = gamma.get(ch), b = beta.get(ch);
                        assertEquals(m, mean.get(ch), 1e-5 * Math.abs(m), what + "mean of channel " + ch);
                        assertEquals(inv, invStd.get(ch), 1e-5 * inv, what + "1/std of channel " + ch);
                        double sumDz = 0, sumDzXhat = 0;
                        double[] dz = new double[n * spatial];
                        for (int i = 0; i < n; i++) {
                            for (int j = 0; j < spatial; j++) {
                                int at = (i * c + ch) * spatial + j;
                                double xhat = (x.get(at) - m) * inv, z = g * xhat + b, sig = 1 / (1 + Math.exp(-z));
                                yRef[at] = z * sig;
                                dz[i * spatial + j] = dy.get(at) * sig * (1 + z * (1 - sig));
                                sumDz += dz[i * spatial + j];
                                sumDzXhat += dz[i * spatial + j] * xhat;
                            }
                        }
                        assertEquals(sumDz, db.get(ch), 1e-5 * Math.abs(sumDz) + 1e-4, what + "dbeta of channel " + ch);
                        assertEquals(sumDzXhat, dg.get(ch), 1e-5 * Math.abs(sumDzXhat) + 1e-4, what + "dgamma of channel " + ch);
                        for (int i = 0; i < n; i++) {
                            for (int j = 0; j < spatial; j++) {
                                int at = (i * c + ch) * spatial + j;
                                double xhat = (x.get(at) - m) * inv;
                                dxRef[at] = g * inv * (dz[i * spatial + j] - sumDz / count - xhat * sumDzXhat / count);
                            }
                        }
                    }
                    Checks.close(what + "y", yRef, y, 1e-5);
                    Checks.close(what + "dx", dxRef, dx, 1e-4);
                }
            }
        }
    }

    /**
     * Within 1e-5 of the value plus 1e-6 of the array's largest magnitude: float rounding, where a gradient that is
     * a difference of larger terms (dx = p dz + q x + r) can lose its relative precision.
     */
    private static void assertClose(float[] expected, float[] actual, String what) {
        double max = 0;
        for (float v : expected) max = Math.max(max, Math.abs(v));
        for (int i = 0; i < expected.length; i++) {
            double tol = 1e-5 * Math.abs(expected[i]) + 1e-6 * max;
            assertEquals(expected[i], actual[i], tol, what + " element " + i);
        }
    }
}
