package ich.bench;

import ich.infer.OnnxRuntimeModel;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.io.onnx.EfficientNetOnnx;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import ich.nn.optim.Adam;
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

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The whole EfficientNet-B0 on the CPU backend, in images/s (the "images" counter; the primary score is
 * calls/s): {@code forward} is an eval-mode forward pass, {@code trainStep} a full training step as the trainer
 * runs it (training forward with dropout and drop-path, weighted BCE, backward, Adam), and {@code onnxRuntimeForward}
 * is ONNX Runtime's forward pass on the same model exported to ONNX (batch norm folded), with as many intra-op
 * threads, on the same images: the goal is {@code forward} at >= 50 % of it. {@code batch} 0 means 32
 * images at 64 x 64 and 8 at 224 x 224. {@code threads} is the backend's pool; run with one JMH thread
 * ({@code scripts/bench EfficientNetBenchmark -t 1}): the backend parallelises internally.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 8)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@State(Scope.Thread)
public class EfficientNetBenchmark {
    @Param({"64", "224"})
    public int size;

    @Param({"0"})
    public int batch;

    @Param({"2", "1"})
    public int threads;

    private CpuBackend cpu;
    private EfficientNetB0 model;
    private Arena arena;
    private Adam adam;
    private Tensor images;
    private float[] targets;
    private int n;
    private long step;
    private Path onnx;
    private OnnxRuntimeModel ort;

    /** Images per call; JMH reports the counter per second. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Images {
        public long images;
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        n = batch > 0 ? batch : size <= 64 ? 32 : 8;
        cpu = new CpuBackend(threads);
        model = EfficientNetB0.initialized(cpu, EfficientNetB0.Config.defaults(), 1);
        arena = Arena.ofShared();
        adam = new Adam(cpu, arena, Adam.Options.adam(1e-4));
        images = Tensor.allocate(arena, n, 3, size, size);
        SplittableRandom random = new SplittableRandom(2);
        for (long i = 0; i < images.size(); i++) images.set(i, (float) random.nextGaussian());
        targets = new float[n * 6];
        for (int i = 0; i < targets.length; i++) targets[i] = random.nextInt(5) == 0 ? 1 : 0;
        onnx = Files.createTempFile("b0-bench-", ".onnx");
        EfficientNetOnnx.write(model, true, "bench", onnx);
        ort = OnnxRuntimeModel.open(onnx, threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        ort.close();
        Files.deleteIfExists(onnx);
        model.close();
        arena.close();
        cpu.close();
    }

    @Benchmark
    public float forward(Images counter) {
        try (StepContext ctx = StepContext.eval(cpu)) {
            Tensor logits = model.forward(images, ctx);
            counter.images += n;
            return logits.get(0);
        }
    }

    @Benchmark
    public float onnxRuntimeForward(Images counter) throws IOException {
        OnnxRuntimeModel.Prediction p = ort.predict(images);
        counter.images += n;
        return p.logit(0, 0);
    }

    @Benchmark
    public double trainStep(Images counter) {
        try (StepContext ctx = StepContext.training(cpu, 1, ++step)) {
            Tensor logits = model.forward(images, ctx);
            EfficientNetB0.Loss loss = model.loss(logits, ctx.upload(targets, n, 6), null, ctx);
            model.backward(loss.dLogits(), ctx);
            adam.step(model.trainableParameters());
            counter.images += n;
            return loss.value();
        }
    }
}
