package ich.bench;

import ich.preprocess.Preprocessor;
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
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * CPU preprocessing from DICOM file to model input, per slice: open, read the header, map the pixels, HU,
 * the BSB windows, 256 resize + random 224 crop (one fused bilinear resampling), random flip, fp32 NCHW.
 * Slices/s on one thread; run with -t N for N threads (scripts/bench does both).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
@State(Scope.Thread)
public class PreprocessBenchmark {
    @Param({"../shared/dicom-samples/files/ID_000a2d7b0.dcm"})
    public String file;

    private Preprocessor preprocessor;
    private Preprocessor.Input input;
    private Arena arena;
    private MemorySegment out;
    private long key;

    @Setup(Level.Trial)
    public void setUp() {
        preprocessor = new Preprocessor(Preprocessor.Config.train(256, 224));
        input = new Preprocessor.Input(Path.of(file), 0, 0);
        arena = Arena.ofConfined();
        out = arena.allocate(4 * preprocessor.config().sampleFloats(), 64);
    }

    @TearDown(Level.Trial)
    public void tearDown() { arena.close(); }

    @Benchmark
    public MemorySegment fileToModelInput() throws IOException {
        // A new sample key each time: a new crop and flip, as in training.
        preprocessor.process(new Preprocessor.Input(input.file(), 0, key++), 1234, 0, out, 0);
        return out;
    }
}
