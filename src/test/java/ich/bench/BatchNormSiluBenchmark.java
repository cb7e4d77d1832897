package ich.bench;

import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;
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
public class BatchNormSiluBenchmark {
    @Param({"stem", "expand"})
    public String shape;

    @Param({"true", "false"})
    public boolean fused;

    @Param({"0"})
    public int threads;

    private CpuBackend cpu;
    private Arena arena;
    private Tensor x, dy, z, y, dz, dx, gamma, beta, runningMean, runningVar, mean, invStd, dgamma, dbeta;

    @Setup(Level.Trial)
    public void setUp() {
        cpu = new CpuBackend(threads == 0 ? Runtime.getRuntime().availableProcessors() : threads);
        arena = Arena.ofShared();
        int[] s = shape.equals("stem") ? new int[] {32, 32, 48, 48} : new int[] {32, 144, 24, 24};
        int c = s[1];
        SplittableRandom random = new SplittableRandom(1);
        x = random(random, s);
        dy = random(random, s);
        gamma = random(random, c);
        beta = random(random, c);
        runningMean = random(random, c);
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

    private Tensor random(SplittableRandom random, int... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        for (long i = 0; i < t.size(); i++) t.set(i, (float) random.nextGaussian());
        return t;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cpu.close();
        arena.close();
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
