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
 * The full-size part of a squeeze-excitation layer's backward on the CPU backend: the scales' gradient and the
 * input's gradient through both paths. {@code fused}: the scales' gradient alone, then
 * {@code scaleChannelsInputGradient} (dy * s + dPooled / hw in one pass), as SqueezeExcite runs it; else the
 * three ops it ran before (scale-channels backward with dx, pooling backward into a second full tensor, then their
 * sum). B0 activations of a 96 x 96 step at batch 32 (the CPU's bench train default): the first block's 32
 * channels at 48 x 48 and an expansion's 144 at 24 x 24. Calls/s; run with one JMH thread ({@code -t 1}): the
 * backend parallelises.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@State(Scope.Thread)
public class SqueezeExciteBackwardBenchmark extends CpuFusionBenchmark {
    @Param({"first", "expand"})
    public String shape;

    private Tensor x, s, dy, dPooled, ds, dx, dxPooled;

    @Override
    protected void makeTensors() {
        int[] shape4 = shape.equals("first") ? FIRST_BLOCK : EXPANSION;
        int n = shape4[0], c = shape4[1];
        x = gaussian(shape4);
        dy = gaussian(shape4);
        s = gaussian(n, c);
        dPooled = gaussian(n, c);
        ds = Tensor.allocate(arena, n, c);
        dx = Tensor.allocate(arena, shape4);
        dxPooled = Tensor.allocate(arena, shape4);
    }

    @Benchmark
    public float backward() {
        if (fused) {
            cpu.scaleChannelsBackward(x, s, dy, null, ds);
            cpu.scaleChannelsInputGradient(dy, s, dPooled, dx);
        } else {
            cpu.scaleChannelsBackward(x, s, dy, dx, ds);
            cpu.globalAveragePoolBackward(dPooled, dxPooled);
            cpu.accumulate(dx, dxPooled);
        }
        return dx.get(0) + ds.get(0);
    }
}
