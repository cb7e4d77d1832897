package ich.bench;

import ich.dicom.DicomWriter;
import ich.synth.SliceRenderer;
import ich.synth.SynthConfig;
import ich.synth.SynthDataset;
import ich.synth.SynthStudy;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * {@code ich synth} per slice, at 512 x 512: render (anatomy, lesions, noise, HU), encode, and write the DICOM file
 * atomically, as the command does; ops/s are slices/s. Each thread renders its own studies, slice after slice
 * (a new study every 30 slices, as in a run), and writes new files into a temporary folder, as a run does
 * (replacing existing files costs more: the file system frees the old ones' blocks), deleted after each
 * iteration, outside the measurement. {@code render} leaves out the file: the difference is the I/O.
 * Run with scripts/bench SynthBenchmark (1 thread, then all cores).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 5)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class SynthBenchmark {
    @State(Scope.Benchmark)
    public static class Plan {
        @Param({"512"})
        public int size;

        List<SynthStudy> studies;
        Path dir;
        final AtomicInteger threads = new AtomicInteger();

        @Setup(Level.Trial)
        public void setUp() throws IOException {
            dir = Files.createTempDirectory("synth-bench");
            studies = SynthDataset.plan(SynthConfig.of(dir, 64, 30, 42).withSize(size));
        }

        @TearDown(Level.Iteration)
        public void clear() throws IOException {
            try (Stream<Path> files = Files.list(dir)) {
                for (Path p : files.toList()) Files.delete(p);
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() throws IOException {
            clear();
            Files.delete(dir);
        }
    }

    @State(Scope.Thread)
    public static class Worker {
        SliceRenderer renderer;
        byte[] pixels;
        int thread, study, slice;
        long file;

        @Setup(Level.Trial)
        public void setUp(Plan plan) {
            renderer = new SliceRenderer(plan.size);
            pixels = new byte[2 * plan.size * plan.size];
            thread = plan.threads.getAndIncrement();
            study = thread;
        }

        SynthStudy next(Plan plan) {
            SynthStudy s = plan.studies.get(study % plan.studies.size());
            if (++slice == s.slices()) {
                slice = 0;
                study += 7;  // another study than the other threads' next ones
            }
            return s;
        }
    }

    @Benchmark
    public int renderAndWrite(Plan plan, Worker w) throws IOException {
        int k = w.slice;
        SynthStudy s = w.next(plan);
        SliceRenderer.Slice slice = w.renderer.render(s, k);
        SliceRenderer.encode(slice.hu(), s.acquisition().encoding(), w.pixels);
        Path file = plan.dir.resolve("t" + w.thread + "_" + w.file++ + ".dcm");
        DicomWriter.ctImage(s.image(k, w.pixels)).write(file, s.acquisition().syntax());
        return slice.labelBits();
    }

    @Benchmark
    public int render(Plan plan, Worker w) {
        int k = w.slice;
        SynthStudy s = w.next(plan);
        SliceRenderer.Slice slice = w.renderer.render(s, k);
        SliceRenderer.encode(slice.hu(), s.acquisition().encoding(), w.pixels);
        return slice.labelBits();
    }
}
