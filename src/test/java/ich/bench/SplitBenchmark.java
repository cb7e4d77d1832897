package ich.bench;

import ich.split.Split;
import ich.split.SyntheticLabels;
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
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * Train/validation split of an RSNA-sized training set (674,258 images, 6 labels, RSNA prevalences; ~17,000
 * synthetic patients of 20-60 slices for the grouped split), 10 % held out. Run with scripts/bench SplitBenchmark.
 *
 * <ul>
 *   <li>{@code stratified}: image-level iterative stratification, the seed notebook's split.</li>
 *   <li>{@code grouped}: the project's default, patients as units; includes mapping the patient ids.</li>
 * </ul>
 * Each op is one whole split, input checks included; time per op in milliseconds.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
@State(Scope.Benchmark)
public class SplitBenchmark {
    @Param({"674258"})
    public int images;

    private byte[][] labels;
    private SyntheticLabels.Cohort cohort;
    private long seed;

    @Setup(Level.Trial)
    public void setUp() {
        labels = SyntheticLabels.images(images, 1);
        cohort = SyntheticLabels.patients(images, 2);
    }

    @Benchmark
    public Split stratified() {
        return Split.stratified(labels, 0.1, seed++);
    }

    @Benchmark
    public Split grouped() {
        return Split.grouped(cohort.labels(), cohort.groups(), 0.1, seed++);
    }
}
