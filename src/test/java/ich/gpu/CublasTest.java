package ich.gpu;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * cuBLAS on a real GPU, where the engine's tests do not already hold it: a handle's very first GEMM captured into
 * a CUDA graph, as a training step's capture may be, replays with new inputs. Skips, saying why, where {@link
 * Gpu#probe()} finds no device.
 */
class CublasTest extends GpuContextFixture {
    /**
     * C [m, n] = A [m, k] B [k, n] (column-major), the handle's first call inside a capture: with its own workspace
     * ({@link Cublas#WORKSPACE_BYTES}) it allocates nothing there, and each launch computes from the inputs of the
     * moment. Strict fp32 against a double-precision sum, 1e-5 of the row's magnitude.
     */
    @Test
    void aHandlesFirstGemmCapturedInAGraphReplaysWithNewInputs() {
        requireGpu();
        int m = 96, n = 80, k = 144;
        long aBytes = (long) m * k * Float.BYTES, bBytes = (long) k * n * Float.BYTES, cBytes = (long) m * n * Float.BYTES;
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        try (Stream stream = context.createStream();
             Cublas cublas = Cublas.create(context, stream, Cublas.PEDANTIC_MATH);
             DeviceBuffer a = context.allocate(aBytes);
             DeviceBuffer b = context.allocate(bBytes);
             DeviceBuffer c = context.allocate(cBytes);
             PinnedBuffer hostA = context.allocatePinned(aBytes);
             PinnedBuffer hostB = context.allocatePinned(bBytes);
             PinnedBuffer hostC = context.allocatePinned(cBytes);
             Graph graph = stream.capture(() -> cublas.sgemm(Cublas.OP_N, Cublas.OP_N, m, n, k, 1f, a.pointer(), m,
                     b.pointer(), k, 0f, c.pointer(), m))) {
            for (int launch = 0; launch < 3; launch++) {
                float[] av = randoms(random, m * k), bv = randoms(random, k * n);
                MemorySegment.copy(av, 0, hostA.segment(), JAVA_FLOAT, 0, av.length);
                MemorySegment.copy(bv, 0, hostB.segment(), JAVA_FLOAT, 0, bv.length);
                stream.copyToDevice(hostA, 0, a, 0, aBytes);
                stream.copyToDevice(hostB, 0, b, 0, bBytes);
                stream.fill32(c.pointer(), Float.floatToRawIntBits(Float.NaN), (long) m * n); // poison
                graph.launch(stream);
                stream.copyToHost(c, 0, hostC, 0, cBytes);
                stream.synchronize();
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double sum = 0, magnitude = 0;
                        for (int l = 0; l < k; l++) {
                            double p = (double) av[l * m + i] * bv[j * k + l];
                            sum += p;
                            magnitude += Math.abs(p);
                        }
                        float got = hostC.segment().getAtIndex(JAVA_FLOAT, (long) j * m + i);
                        assertTrue(Float.isFinite(got), "launch " + launch + ": C[" + i + ", " + j + "] unwritten (" + got + ")");
                        assertEquals(sum, got, 1e-5 * magnitude + 1e-30, "launch " + launch + ": C[" + i + ", " + j + "]");
                    }
                }
            }
        }
    }

    private static float[] randoms(SplittableRandom random, int count) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float) random.nextDouble(-1, 1);
        return v;
    }
}
