package ich.nn.cpu;

import ich.nn.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Random;

import static ich.nn.cpu.Checks.random;
import static org.junit.jupiter.api.Assertions.assertEquals;

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
}
