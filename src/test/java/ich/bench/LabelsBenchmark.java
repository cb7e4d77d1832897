package ich.bench;

import ich.labels.LabelCsv;
import ich.labels.LabelTable;
import ich.labels.SyntheticLabels;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Reading and pivoting a training label file the size of stage_1_train.csv: 674,262 images x 6 lines
 * (4,045,572) plus a few dozen identical duplicate rows, 14.4 % of the images positive, generated once into a
 * temporary file. Run with scripts/bench LabelsBenchmark.
 *
 * <ul>
 *   <li>{@code parseFile}: from the file (page cache warm), as {@code ich labels summary} does.</li>
 *   <li>{@code parseMemory}: from bytes in memory, to separate parsing from reading the file.</li>
 * </ul>
 * The {@code lines} counter reports lines per second; ops/s is whole files per second.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
@State(Scope.Benchmark)
public class LabelsBenchmark {
    static final int IMAGES = 674_262;
    static final double POSITIVE_FRACTION = 0.144;
    /** About 27 duplicate rows; stage_1_train.csv has 24. */
    static final double DUPLICATE_RATE = 4e-5;

    private Path file;
    private byte[] bytes;
    private long expectedLines;

    /** Lines parsed, reported by JMH as a rate next to ops/s. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Lines {
        public long lines;

        @Setup(Level.Iteration)
        public void reset() { lines = 0; }
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        file = Files.createTempFile("labels-benchmark", ".csv");
        SyntheticLabels.Expected expected = SyntheticLabels.write(file, IMAGES, POSITIVE_FRACTION, DUPLICATE_RATE, false, 2019);
        expectedLines = expected.lines();
        bytes = Files.readAllBytes(file);
        LabelTable t = LabelCsv.read(file);
        if (t.images() != IMAGES || t.lines() != expectedLines || t.duplicatesMerged() != expected.duplicates()) {
            throw new IllegalStateException("benchmark file misread: " + t);
        }
        System.out.printf("%n%s: %d lines, %d bytes, %d images, %d positive, %d duplicate rows%n",
                file, t.lines(), bytes.length, t.images(), t.positiveImages(), t.duplicatesMerged());
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException { Files.deleteIfExists(file); }

    @Benchmark
    public LabelTable parseFile(Lines counter) throws IOException {
        LabelTable t = LabelCsv.read(file);
        counter.lines += t.lines();
        return t;
    }

    @Benchmark
    public LabelTable parseMemory(Lines counter) throws IOException {
        LabelTable t = LabelCsv.read(new ByteArrayInputStream(bytes), "memory");
        counter.lines += t.lines();
        return t;
    }
}
