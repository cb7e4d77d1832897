package ich.bench;

import ich.nn.ConvGeometry;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.openjdk.jmh.annotations.AuxCounters;
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
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The CPU backend's convolutions on EfficientNet-B0 shapes at 224 x 224, batch 8: forward, backward data and
 * backward filter, each op reported in calls/s and, as the secondary "gflop" metric, GFLOP/s (2 flops per
 * multiply-add; the backward passes have as many multiply-adds as the forward one). {@code kernel} compares
 * the Vector API micro-kernel with plain loops; {@code threads} is the backend's pool (0 = all cores). Run it
 * with one JMH thread ({@code -t 1}): the backend parallelises internally.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@State(Scope.Thread)
public class ConvBenchmark {
    @Param({"stem3x3s2", "expand1x1", "dw3x3s1", "dw5x5s1", "dw5x5s2", "project1x1"})
    public String shape;

    @Param({"VECTOR", "SCALAR"})
    public String kernel;

    @Param({"0"})
    public int threads;

    private CpuBackend cpu;
    private Arena arena;
    private ConvGeometry g;
    private Tensor x, w, y, dy, dx, dw;

    /** Counts GFLOP per call; JMH reports it per second. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Flops {
        public double gflop;
    }

    static ConvGeometry geometry(String shape) {
        return switch (shape) {
            case "stem3x3s2" -> ConvGeometry.square(8, 3, 224, 224, 32, 3, 2, 1);
            case "expand1x1" -> ConvGeometry.square(8, 24, 56, 56, 144, 1, 1, 1);
            case "dw3x3s1" -> ConvGeometry.square(8, 144, 56, 56, 144, 3, 1, 144);
            case "dw5x5s1" -> ConvGeometry.square(8, 480, 14, 14, 480, 5, 1, 480);
            case "dw5x5s2" -> ConvGeometry.square(8, 240, 28, 28, 240, 5, 2, 240);
            case "project1x1" -> ConvGeometry.square(8, 1152, 7, 7, 192, 1, 1, 1);
            default -> throw new IllegalArgumentException("unknown shape " + shape);
        };
    }

    @Setup(Level.Trial)
    public void setUp() {
        g = geometry(shape);
        cpu = new CpuBackend(threads == 0 ? Runtime.getRuntime().availableProcessors() : threads,
                CpuBackend.Kernel.valueOf(kernel));
        arena = Arena.ofShared();
        Random random = new Random(1);
        x = fill(Tensor.allocate(arena, g.inputShape()), random);
        w = fill(Tensor.allocate(arena, g.weightShape()), random);
        dy = fill(Tensor.allocate(arena, g.outputShape()), random);
        y = Tensor.allocate(arena, g.outputShape());
        dx = Tensor.allocate(arena, g.inputShape());
        dw = Tensor.allocate(arena, g.weightShape());
    }

    private static Tensor fill(Tensor t, Random random) {
        for (long i = 0; i < t.size(); i++) t.set(i, random.nextFloat() - 0.5f);
        return t;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cpu.close();
        arena.close();
    }

    private double gflop() {
        return 2.0 * g.macs() / 1e9;
    }

    @Benchmark
    public Tensor forward(Flops flops) {
        cpu.conv2dForward(g, x, w, y);
        flops.gflop += gflop();
        return y;
    }

    @Benchmark
    public Tensor backwardData(Flops flops) {
        cpu.conv2dBackwardData(g, dy, w, dx);
        flops.gflop += gflop();
        return dx;
    }

    @Benchmark
    public Tensor backwardFilter(Flops flops) {
        cpu.conv2dBackwardFilter(g, x, dy, dw);
        flops.gflop += gflop();
        return dw;
    }
}
