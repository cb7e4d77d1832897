package ich.bench;

import ich.infer.OnnxRuntimeModel;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.io.onnx.EfficientNetOnnx;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
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

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * EfficientNet-B0's eval-mode forward pass on the CPU: ONNX Runtime on our exported model (batch norm folded),
 * and our own CPU backend on the same weights and input, in one run so the two compare. Batches/s: multiply
 * by {@code batch} for images/s. Both run their ops on {@code threads} threads (0: every core) whatever JMH's
 * -t is, so run it with -t 1.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 5)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@State(Scope.Benchmark)
public class OnnxRuntimeBenchmark {
    @Param({"64", "224"})
    public int size;

    @Param({"8"})
    public int batch;

    @Param({"0"})
    public int threads;

    private Path file;
    private OnnxRuntimeModel model;
    private CpuBackend backend;
    private EfficientNetB0 ours;
    private Arena arena;
    private Tensor input;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        backend = new CpuBackend(n);
        ours = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), 1);
        file = Files.createTempFile("b0-", ".onnx");
        EfficientNetOnnx.write(ours, true, "bench", file);
        model = OnnxRuntimeModel.open(file, n);
        arena = Arena.ofShared();
        input = Tensor.allocate(arena, batch, 3, size, size);
        SplittableRandom random = new SplittableRandom(7);
        for (long i = 0; i < input.size(); i++) input.set(i, (float) (random.nextDouble() * 2 - 1));
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        model.close();
        ours.close();
        backend.close();
        arena.close();
        Files.deleteIfExists(file);
    }

    @Benchmark
    public OnnxRuntimeModel.Prediction onnxRuntimeForward() throws IOException {
        return model.predict(input);
    }

    @Benchmark
    public float cpuBackendForward() {
        try (StepContext ctx = StepContext.eval(backend)) {
            return ours.forward(input, ctx).get(0);
        }
    }
}
