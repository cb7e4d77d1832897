package ich.bench;

import ich.nn.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * A training step's batch norm + SiLU on the CPU backend, forward and backward, fused ({@code batchNormSilu*}) and
 * as the four separate ops (batch norm, SiLU, SiLU backward, batch-norm backward) that run without fusion, on B0
 * activations of a 96 x 96 step at batch 32 (the CPU's bench train default): the stem's 32 channels at 48 x 48 and
 * an expansion's 144 at 24 x 24. Calls/s; run with one JMH thread ({@code -t 1}): the backend parallelises.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@State(Scope.Thread)
public class BatchNormSiluBenchmark extends CpuFusionBenchmark {
    @Param({"stem", "expand"})
    public String shape;

    private Tensor x, dy, z, y, dz, dx, gamma, beta, runningMean, runningVar, mean, invStd, dgamma, dbeta;

    @Override
    protected void makeTensors() {
        int[] s = shape.equals("stem") ? FIRST_BLOCK : EXPANSION;
        int c = s[1];
        x = gaussian(s);
        dy = gaussian(s);
        gamma = gaussian(c);
        beta = gaussian(c);
        runningMean = gaussian(c);
        runningVar = Tensor.allocate(arena, c);
        for (int i = 0; i < c; i++) runningVar.set(i, 1f);
        z = Tensor.allocate(arena, s);
        y = Tensor.allocate(arena, s);
        dz = Tensor.allocate(arena, s);
        dx = Tensor.allocate(arena, s);
        mean = Tensor.allocate(arena, c);
        invStd = Tensor.allocate(arena, c);
        dgamma = Tensor.allocate(arena, c);
        dbeta = Tensor.allocate(arena, c);
    }

    @Benchmark
    public float forwardAndBackward() {
        if (fused) {
            cpu.batchNormSiluForwardTraining(x, gamma, beta, runningMean, runningVar, 0.1, 1e-5, y, mean, invStd);
            cpu.batchNormSiluBackward(x, dy, gamma, beta, mean, invStd, 1e-5, dx, dgamma, dbeta);
        } else {
            cpu.batchNormForwardTraining(x, gamma, beta, runningMean, runningVar, 0.1, 1e-5, z, mean, invStd);
            cpu.silu(z, y);
            cpu.siluBackward(z, dy, dz);
            cpu.batchNormBackward(x, dz, gamma, mean, invStd, 1e-5, dx, dgamma, dbeta);
        }
        return dx.get(0) + y.get(0);
    }
}
