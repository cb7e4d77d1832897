package ich.bench;

import ich.gpu.Context;
import ich.gpu.Gpu;
import ich.gpu.GpuPreprocessor;
import ich.gpu.Kernels;
import ich.gpu.SyntheticSlices;
import ich.preprocess.Preprocessor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The paths of {@code ich bench preprocess}, in slices/s: synthetic 512 x 512 int16 slices in memory to BSB
 * 3 x 224 x 224 fp32 NCHW (256 resize, random crop, flip). {@code cpu} is one slice per operation (scripts/bench
 * runs it on 1 thread and on all threads); {@code gpu} is one batch of {@value #BATCH} per operation through the
 * double-buffered pipeline (staging, host-to-device copy, kernel), waiting for the previous batch. Without a GPU,
 * or without built kernels, the {@code gpu} benchmark fails its setup with the reason and JMH goes on with the rest.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class PreprocessPathsBenchmark {
    static final int BATCH = 256;

    @State(Scope.Benchmark)
    public static class Slices {
        Arena arena;
        List<GpuPreprocessor.Slice> slices;
        final Preprocessor.Config config = Preprocessor.Config.train(256, 224);

        @Setup(Level.Trial)
        public void setUp() {
            arena = Arena.ofShared();
            slices = SyntheticSlices.heads(16, 512, config.channels().resolve(null, "synthetic"), arena);
        }

        @TearDown(Level.Trial)
        public void tearDown() { arena.close(); }
    }

    @State(Scope.Thread)
    public static class Cpu {
        Preprocessor preprocessor;
        Arena arena;
        MemorySegment out;
        long key;

        @Setup(Level.Trial)
        public void setUp(Slices s) {
            preprocessor = new Preprocessor(s.config);
            arena = Arena.ofConfined();
            out = arena.allocate(4 * s.config.sampleFloats(), 64);
        }

        @TearDown(Level.Trial)
        public void tearDown() { arena.close(); }
    }

    @State(Scope.Thread)
    public static class Gpu {
        Context context;
        GpuPreprocessor gpu;
        List<List<GpuPreprocessor.Slice>> batches = new ArrayList<>();
        GpuPreprocessor.Batch previous;
        int epoch;

        @Setup(Level.Trial)
        public void setUp(Slices s) {
            if (ich.gpu.Gpu.probe() instanceof ich.gpu.Gpu.Unavailable u) throw new IllegalStateException("skipped: no GPU: " + u.reason());
            if (Kernels.preprocessFatbin().isEmpty()) throw new IllegalStateException("skipped: " + Kernels.NOT_BUILT);
            context = Context.open(0);
            gpu = GpuPreprocessor.open(context, s.config, GpuPreprocessor.Precision.FP32, BATCH);
            for (int k = 0; k < 2; k++) {
                List<GpuPreprocessor.Slice> b = new ArrayList<>();
                for (int i = 0; i < BATCH; i++) {
                    GpuPreprocessor.Slice x = s.slices.get(i % s.slices.size());
                    b.add(new GpuPreprocessor.Slice(x.pixels(), x.rows(), x.columns(), x.hu(), x.windows(), (long) k * BATCH + i));
                }
                batches.add(b);
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            if (gpu != null) gpu.close();
            if (context != null) context.close();
        }
    }

    @Benchmark
    public MemorySegment cpu(Slices s, Cpu c) {
        GpuPreprocessor.Slice x = s.slices.get((int) (c.key % s.slices.size()));
        c.preprocessor.process(x.pixels(), x.rows(), x.columns(), x.hu(), x.windows(), c.key++, 1234, 0, c.out, 0);
        return c.out;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public float gpu(Gpu g) {
        g.context.makeCurrent();
        GpuPreprocessor.Batch b = g.gpu.submit(g.batches.get(g.epoch % 2), 1234, g.epoch++);
        float ms = g.previous == null ? 0 : g.previous.kernelMillis(); // waits for the previous batch: the pipeline stays full
        g.previous = b;
        return ms;
    }
}
