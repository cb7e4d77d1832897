package ich.gpu;

import ich.dicom.SampleCorpus;
import ich.hu.HounsfieldTransform;
import ich.preprocess.Augmentation;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;
import ich.preprocess.Window;
import ich.preprocess.WindowChannels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The fused kernel on a real GPU against the CPU reference ({@link Preprocessor}, i.e. {@link SliceKernel}):
 * fresh random slices covering every encoding parameter, windows of both kinds, crops, flips, normalisation, all
 * three precisions in both layouts, CPU-fallback images inside a batch, and the real CT files of the sample
 * corpus. The device outputs are poisoned (all bytes 0xFF: NaN in every precision) before each batch, so an
 * element the kernel leaves unwritten fails. Skips, printing why, without a GPU or without built kernels.
 */
class GpuPreprocessorTest {
    private static String skip;
    private static Context context;

    @BeforeAll
    static void open() {
        Gpu.Probe probe = Gpu.probe();
        if (probe instanceof Gpu.Unavailable u) skip = "no GPU: " + u.reason();
        else if (Kernels.preprocessFatbin().isEmpty()) skip = Kernels.NOT_BUILT;
        if (skip != null) System.err.println("GpuPreprocessorTest skipped: " + skip);
        else context = Context.open(0);
    }

    @BeforeEach
    void needsAGpu() {
        assumeTrue(skip == null, () -> "skipped: " + skip);
        context.makeCurrent();
    }

    @AfterAll
    static void close() {
        if (context != null) context.close();
    }

    /** Relative and absolute tolerance per precision: fp32 as good as exact, fp16/bf16 one rounding of the output. */
    static float tolerance(GpuPreprocessor.Precision p, float expected) {
        return switch (p) {
            case FP32 -> 1e-5f * Math.abs(expected) + 1e-6f;
            case FP16 -> 1e-3f * Math.abs(expected) + 1e-4f;
            case BF16 -> 1e-2f * Math.abs(expected) + 1e-3f;
        };
    }

    private static final MemorySegment ROUNDING = Arena.global().allocate(4);

    static synchronized float rounded(GpuPreprocessor.Precision p, float v) {
        p.set(ROUNDING, 0, v);
        return p.get(ROUNDING, 0);
    }

    static Stream<Arguments> precisionsAndLayouts() {
        List<Arguments> all = new ArrayList<>();
        for (GpuPreprocessor.Precision p : GpuPreprocessor.Precision.values()) {
            for (SliceKernel.Layout l : SliceKernel.Layout.values()) all.add(Arguments.of(p, l));
        }
        return all.stream();
    }

    /**
     * Output of a batch against the CPU's, element by element; returns how many equal the CPU's value rounded to
     * the output precision, bit for bit.
     */
    static long compare(GpuPreprocessor.Batch b, MemorySegment gpu, MemorySegment cpu, Preprocessor.Config config,
                        GpuPreprocessor.Precision p, String what) {
        long elements = (long) b.size() * config.sampleFloats(), same = 0;
        for (long i = 0; i < elements; i++) {
            float want = cpu.getAtIndex(ValueLayout.JAVA_FLOAT, i), got = p.get(gpu, i);
            if (Float.isNaN(got)) fail(what + ": element " + i + " is NaN (unwritten, or the CPU-only path failed)");
            if (Math.abs(got - want) > tolerance(p, want)) {
                long per = config.sampleFloats();
                fail(what + ": element " + i + " (sample " + i / per + ", offset " + i % per + ") GPU " + got + ", CPU " + want);
            }
            if (Float.floatToRawIntBits(got) == Float.floatToRawIntBits(rounded(p, want))) same++;
        }
        return same;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("precisionsAndLayouts")
    void freshRandomSlicesMatchTheCpu(GpuPreprocessor.Precision precision, SliceKernel.Layout layout) {
        long seed = System.nanoTime();
        SplittableRandom rnd = new SplittableRandom(seed);
        String what = precision + " " + layout + " (seed " + seed + ")";
        // Three channel sets: BSB with ImageNet normalisation, BSB plain, and linear + sigmoid windows.
        Window[] mixed = {Window.linear("wide", 300, 2500), Window.sigmoid("brain", 40, 80), Window.sigmoid("sub", 80, 200),
                Window.linear("narrow", 35, 7)};
        List<Preprocessor.Config> configs = List.of(
                new Preprocessor.Config(WindowChannels.BSB, Augmentation.train(256, 224).withScale(0.2, 1).withRatio(0.7, 1.4),
                        SliceKernel.Normalization.IMAGENET, layout, HounsfieldTransform.Options.DEFAULT),
                new Preprocessor.Config(WindowChannels.BSB, Augmentation.eval(72, 61), null, layout, HounsfieldTransform.Options.DEFAULT),
                new Preprocessor.Config(WindowChannels.of(mixed), Augmentation.train(100, 37).withFlipProbability(0.5), null, layout,
                        HounsfieldTransform.Options.DEFAULT));
        for (Preprocessor.Config config : configs) {
            Window[] windows = config.channels().resolve(null, "random");
            Preprocessor cpu = new Preprocessor(config);
            try (GpuPreprocessor gpu = GpuPreprocessor.open(context, config, precision, 24); Arena arena = Arena.ofConfined()) {
                for (int round = 0; round < 3; round++) {
                    List<GpuPreprocessor.Slice> slices = new ArrayList<>();
                    int n = 1 + rnd.nextInt(24);
                    for (int i = 0; i < n; i++) slices.add(RandomSlices.random(rnd, arena, windows, 600, rnd.nextLong()));
                    if (n > 2) slices.set(n / 2, eightBit(rnd, arena, windows)); // a CPU-only image inside the batch
                    long batchSeed = rnd.nextLong();
                    int epoch = rnd.nextInt(100);
                    MemorySegment want = arena.allocate(4L * n * config.sampleFloats(), 64);
                    for (int i = 0; i < n; i++) {
                        GpuPreprocessor.Slice s = slices.get(i);
                        cpu.process(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), s.sampleKey(), batchSeed, epoch, want,
                                4L * i * config.sampleFloats());
                    }
                    gpu.poisonOutputs();
                    GpuPreprocessor.Batch b = gpu.run(slices, batchSeed, epoch);
                    MemorySegment got = arena.allocate(n * gpu.sampleBytes(), 64);
                    b.copyTo(got, 0);
                    assertEquals(n > 2 ? 1 : 0, b.cpuImages().size(), what);
                    long same = compare(b, got, want, config, precision, what + " " + config.channels() + " round " + round);
                    if (!config.channels().toString().contains("sigmoid")) {
                        assertEquals(n * config.sampleFloats(), same, what + ": linear windows give the CPU's value, rounded once");
                    }
                }
            }
        }
    }

    /**
     * A batch of more than 16 MiB of pixels in shared memory (as the GPU loader's decoder threads hand over) is
     * staged by several threads: the output still equals the CPU's, bit for bit.
     */
    @Test
    void aLargeBatchStagedByManyThreadsMatchesTheCpu() {
        long seed = System.nanoTime();
        SplittableRandom rnd = new SplittableRandom(seed);
        var config = new Preprocessor.Config(WindowChannels.BSB, Augmentation.eval(64, 56), null, SliceKernel.Layout.NCHW,
                HounsfieldTransform.Options.DEFAULT);
        Window[] windows = config.channels().resolve(null, "random");
        int n = 64;
        try (GpuPreprocessor gpu = GpuPreprocessor.open(context, config, GpuPreprocessor.Precision.FP32, n); Arena arena = Arena.ofShared()) {
            List<GpuPreprocessor.Slice> slices = new ArrayList<>();
            for (int i = 0; i < n; i++) slices.add(RandomSlices.random(rnd, arena, windows, 1000, rnd.nextLong()));
            MemorySegment want = arena.allocate(4L * n * config.sampleFloats(), 64);
            Preprocessor cpu = new Preprocessor(config);
            for (int i = 0; i < n; i++) {
                GpuPreprocessor.Slice s = slices.get(i);
                cpu.process(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), s.sampleKey(), 5, 0, want, 4L * i * config.sampleFloats());
            }
            gpu.poisonOutputs();
            GpuPreprocessor.Batch b = gpu.run(slices, 5, 0);
            assertTrue(b.stagedBytes() > 16L << 20, "the batch must be large enough to be staged in parallel: " + b.stagedBytes() + " bytes (seed " + seed + ")");
            MemorySegment got = arena.allocate(n * gpu.sampleBytes(), 64);
            b.copyTo(got, 0);
            assertEquals(n * config.sampleFloats(), compare(b, got, want, config, GpuPreprocessor.Precision.FP32, "seed " + seed),
                    "every element the CPU's (seed " + seed + ")");
        }
    }

    /** An 8-bit slice: the kernel reads 16-bit words only, so the host does it on the CPU. */
    private static GpuPreprocessor.Slice eightBit(SplittableRandom rnd, Arena arena, Window[] windows) {
        int rows = 20 + rnd.nextInt(100), columns = 20 + rnd.nextInt(100);
        MemorySegment px = arena.allocate((long) rows * columns);
        for (long i = 0; i < px.byteSize(); i++) px.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(256));
        var hu = new HounsfieldTransform(8, 8, 7, false, false, 4f, -200f, null, false, 0, -1, -1024f, false);
        return new GpuPreprocessor.Slice(px, rows, columns, hu, windows, rnd.nextLong());
    }

    @Test
    void sampleCorpusFilesMatchTheCpu() {
        SampleCorpus.assumePresent();
        for (GpuPreprocessor.Precision precision : List.of(GpuPreprocessor.Precision.FP32, GpuPreprocessor.Precision.BF16)) {
            SliceKernel.Layout layout = precision == GpuPreprocessor.Precision.FP32 ? SliceKernel.Layout.NCHW : SliceKernel.Layout.NHWC;
            Preprocessor.Config config = new Preprocessor.Config(WindowChannels.BSB, Augmentation.train(256, 224), null, layout,
                    HounsfieldTransform.Options.DEFAULT);
            Preprocessor cpu = new Preprocessor(config);
            List<Preprocessor.Input> inputs = new ArrayList<>();
            List<GpuPreprocessor.Slice> slices = new ArrayList<>();
            try (Arena arena = Arena.ofConfined()) {
                for (String name : SampleCorpus.names()) {
                    Path file = SampleCorpus.file(name);
                    try {
                        slices.add(GpuPreprocessor.Slice.read(file, 0, inputs.size(), config, arena));
                        inputs.add(new Preprocessor.Input(file, 0, inputs.size()));
                    } catch (IOException | RuntimeException e) {
                        // not a CT image the preprocessor takes (broken, unsupported syntax, colour, ...): the CPU fails it too
                        System.out.println("GpuPreprocessorTest: corpus file not used: " + e.getMessage());
                    }
                }
                assertTrue(slices.size() >= 10, "only " + slices.size() + " corpus files could be read");
                try (Preprocessor.Batch want = cpu.batch(inputs, 2024, 5);
                     GpuPreprocessor gpu = GpuPreprocessor.open(context, config, precision, slices.size())) {
                    assertEquals(List.of(), want.failures());
                    gpu.poisonOutputs();
                    GpuPreprocessor.Batch b = gpu.run(slices, 2024, 5);
                    MemorySegment got = arena.allocate(slices.size() * gpu.sampleBytes(), 64);
                    b.copyTo(got, 0);
                    long same = compare(b, got, want.data(), config, precision, precision + " corpus");
                    System.out.printf("GpuPreprocessorTest: %d corpus slices, %s %s, %d on the CPU %s, %.4f %% equal to the CPU value rounded to %s%n",
                            slices.size(), precision, layout, b.cpuImages().size(), b.cpuImages(),
                            100.0 * same / ((double) slices.size() * config.sampleFloats()), precision);
                }
            }
        }
    }

    @Test
    void doubleBufferedBatchesStayIntactUntilTheirSlotIsReused() {
        Preprocessor.Config config = Preprocessor.Config.train(96, 80);
        Window[] bsb = config.channels().resolve(null, "random");
        SplittableRandom rnd = new SplittableRandom();
        Preprocessor cpu = new Preprocessor(config);
        try (GpuPreprocessor gpu = GpuPreprocessor.open(context, config, GpuPreprocessor.Precision.FP32, 8); Arena arena = Arena.ofConfined()) {
            gpu.poisonOutputs();
            List<MemorySegment> wants = new ArrayList<>();
            List<GpuPreprocessor.Batch> submitted = new ArrayList<>();
            for (int k = 0; k < 3; k++) {
                List<GpuPreprocessor.Slice> slices = new ArrayList<>();
                for (int i = 0; i < 8; i++) slices.add(RandomSlices.random(rnd, arena, bsb, 300, rnd.nextLong()));
                MemorySegment want = arena.allocate(4L * 8 * config.sampleFloats());
                for (int i = 0; i < 8; i++) {
                    GpuPreprocessor.Slice s = slices.get(i);
                    cpu.process(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), s.sampleKey(), 11, k, want, 4L * i * config.sampleFloats());
                }
                wants.add(want);
                submitted.add(gpu.submit(slices, 11, k));
                // the caller may reuse its pixel memory as soon as submit returns
                for (GpuPreprocessor.Slice s : slices) s.pixels().fill((byte) 0);
            }
            var stale = assertThrows(IllegalStateException.class, () -> submitted.getFirst().copyTo(arena.allocate(8 * gpu.sampleBytes()), 0));
            assertTrue(stale.getMessage().contains("overwritten by batch 2"), stale.getMessage());
            for (int k = 1; k < 3; k++) {
                MemorySegment got = arena.allocate(8 * gpu.sampleBytes());
                GpuPreprocessor.Batch b = submitted.get(k);
                b.copyTo(got, 0);
                compare(b, got, wants.get(k), config, GpuPreprocessor.Precision.FP32, "batch " + k);
                assertTrue(b.kernelMillis() >= 0 && b.copyMillis() >= 0);
            }
        }
        var closed = assertThrows(IllegalStateException.class, () -> {
            GpuPreprocessor g = GpuPreprocessor.open(context, config, GpuPreprocessor.Precision.FP32, 1);
            g.close();
            g.poisonOutputs();
        });
        assertTrue(closed.getMessage().contains("closed"));
    }
}
