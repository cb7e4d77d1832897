package ich.train;

import ich.gpu.Context;
import ich.gpu.Gpu;
import ich.gpu.GpuPreprocessor;
import ich.gpu.Kernels;
import ich.labels.LabelCsv;
import ich.preprocess.Preprocessor;
import ich.synth.SynthConfig;
import ich.synth.SynthDataset;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The GPU loader on a real GPU against the CPU loader: the same plan gives the same samples, targets, failures and
 * image bytes (the BSB windows are linear, where the kernel is exact), for random training crops and flips and for
 * validation crops, with unreadable files and a batch that is all failures; and the double-buffer rule holds. The
 * preprocessor's outputs are poisoned (NaN) first, so an element left unwritten fails. Skips, printing why,
 * without a GPU or without built kernels.
 */
class GpuBatchLoaderTest {
    @TempDir
    static Path dir;
    private static String skip;
    private static Context context;
    private static TrainingData data;

    @BeforeAll
    static void open() throws Exception {
        if (Gpu.probe() instanceof Gpu.Unavailable u) skip = "no GPU: " + u.reason();
        else if (Kernels.preprocessFatbin().isEmpty()) skip = Kernels.NOT_BUILT;
        if (skip != null) {
            System.err.println("GpuBatchLoaderTest skipped: " + skip);
            return;
        }
        context = Context.open(0);
        Path root = dir.resolve("data");
        SynthDataset.generate(SynthConfig.of(root, 4, 5, 7).withSize(96).withTestFraction(0).withThreads(2), false);
        data = TrainingData.of(LabelCsv.read(root.resolve(SynthDataset.TRAIN_LABELS)), root.resolve(SynthDataset.IMAGES), 2);
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

    /** What a loader handed out for one batch, with the images on the host. */
    record Seen(int index, int[] samples, float[] targets, List<String> failures, float[] images) {}

    /** Rows in reverse, batches of 3; samples 1, 3, 4 and 5 unreadable, so batch 1 is empty and batch 0 short. */
    private static BatchLoader.Plan plan(int epoch) throws Exception {
        int[] rows = new int[data.size()];
        for (int i = 0; i < rows.length; i++) rows[i] = rows.length - 1 - i;
        BatchLoader.Plan good = data.plan(rows, 3, 11, epoch);
        Path junk = dir.resolve("junk.dcm");
        if (!Files.exists(junk)) Files.write(junk, new byte[300]);
        List<Preprocessor.Input> inputs = new ArrayList<>(good.inputs());
        for (int i : new int[] {1, 3, 4, 5}) inputs.set(i, new Preprocessor.Input(junk, 0, inputs.get(i).sampleKey()));
        return new BatchLoader.Plan(inputs, good.samples(), good.targets(), good.labelsPerSample(), 3, 11, epoch);
    }

    private static List<String> failures(LoadedBatch b) {
        return b.failures().stream().map(f -> f.index() + " " + f.file() + " " + f.message()).toList();
    }

    private static List<Seen> onCpu(Preprocessor.Config config, BatchLoader.Plan plan) throws Exception {
        List<Seen> out = new ArrayList<>();
        try (BatchLoader loader = new BatchLoader(new Preprocessor(config), plan, 2, 2)) {
            while (loader.hasNext()) {
                try (LoadedBatch b = loader.next()) {
                    out.add(new Seen(b.index(), b.samples(), b.targets(), failures(b), b.images() == null ? null : b.images().toArray()));
                }
            }
        }
        return out;
    }

    private static float[] download(GpuPreprocessor.Batch batch, long sampleBytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(batch.size() * sampleBytes, 64);
            batch.copyTo(host, 0);
            return host.toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    private static List<Seen> onGpu(GpuPreprocessor kernel, BatchLoader.Plan plan) throws Exception {
        List<Seen> out = new ArrayList<>();
        kernel.poisonOutputs();
        try (GpuBatchLoader loader = new GpuBatchLoader(kernel, plan, 2, 2, () -> {})) {
            while (loader.hasNext()) {
                try (LoadedBatch b = loader.next()) {
                    float[] images = null;
                    if (b.images() != null) {
                        assertFalse(b.images().isHost());
                        var c = kernel.config();
                        assertArrayEquals(new int[] {b.n(), c.channelCount(), c.size(), c.size()}, b.images().shape());
                        images = download(loader.lastDeviceBatch(), kernel.sampleBytes());
                        assertEquals(loader.lastDeviceBatch().output().pointer(), b.images().data().address());
                    }
                    out.add(new Seen(b.index(), b.samples(), b.targets(), failures(b), images));
                }
            }
            assertTrue(loader.waitNanos() > 0);
        }
        return out;
    }

    private static void assertSame(List<Seen> expected, List<Seen> actual, String what) {
        assertEquals(expected.size(), actual.size(), what);
        for (int i = 0; i < expected.size(); i++) {
            Seen e = expected.get(i), a = actual.get(i);
            String where = what + ", batch " + i;
            assertEquals(e.index(), a.index(), where);
            assertArrayEquals(e.samples(), a.samples(), where);
            assertArrayEquals(e.targets(), a.targets(), where);
            assertEquals(e.failures(), a.failures(), where);
            if (e.images() == null) {
                assertNull(a.images(), where);
                continue;
            }
            assertEquals(e.images().length, a.images().length, where);
            for (int k = 0; k < e.images().length; k++) {
                if (Float.floatToRawIntBits(e.images()[k]) != Float.floatToRawIntBits(a.images()[k])) {
                    fail(where + ", float " + k + ": CPU " + e.images()[k] + ", GPU " + a.images()[k]);
                }
            }
        }
    }

    @Test
    void theKernelsBatchesAreTheCpuLoadersBitForBit() throws Exception {
        Preprocessor.Config train = Preprocessor.Config.train(80, 64), eval = Preprocessor.Config.eval(80, 64);
        try (GpuPreprocessor kernel = GpuPreprocessor.open(context, train, GpuPreprocessor.Precision.FP32, 3)) {
            for (int epoch : new int[] {2, 3}) { // one preprocessor, loader after loader, as the epochs use it
                List<Seen> cpu = onCpu(train, plan(epoch));
                assertEquals(0, cpu.get(1).samples().length, "batch 1 is all failures");
                assertEquals(2, cpu.get(0).samples().length, "batch 0 lost one sample");
                assertSame(cpu, onGpu(kernel, plan(epoch)), "training crops, epoch " + epoch);
            }
        }
        try (GpuPreprocessor kernel = GpuPreprocessor.open(context, eval, GpuPreprocessor.Precision.FP32, 3)) {
            assertSame(onCpu(eval, plan(0)), onGpu(kernel, plan(0)), "validation crops");
        }
    }

    @Test
    void aBatchStaysValidUntilReleasedAndAThirdHeldBatchIsRefused() throws Exception {
        Preprocessor.Config eval = Preprocessor.Config.eval(80, 64);
        BatchLoader.Plan plan = data.plan(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8}, 3, 1, 0);
        List<Seen> cpu = onCpu(eval, plan);
        try (GpuPreprocessor kernel = GpuPreprocessor.open(context, eval, GpuPreprocessor.Precision.FP32, 3);
             GpuBatchLoader loader = new GpuBatchLoader(kernel, plan, 2, 2, () -> {})) {
            LoadedBatch b0 = loader.next();
            GpuPreprocessor.Batch d0 = loader.lastDeviceBatch();
            LoadedBatch b1 = loader.next();
            GpuPreprocessor.Batch d1 = loader.lastDeviceBatch();
            Thread.sleep(200); // time for the stager to overwrite batch 0, were it allowed to
            assertArrayEquals(cpu.get(0).images(), download(d0, kernel.sampleBytes()), "batch 0 intact while held");
            var refused = assertThrows(IllegalStateException.class, loader::next);
            assertTrue(refused.getMessage().contains("release one"), refused.getMessage());
            b0.close();
            b0.close(); // releasing twice is harmless
            try (LoadedBatch b2 = loader.next()) {
                assertArrayEquals(cpu.get(2).images(), download(loader.lastDeviceBatch(), kernel.sampleBytes()));
                assertArrayEquals(cpu.get(1).images(), download(d1, kernel.sampleBytes()), "batch 1 intact while held");
                var stale = assertThrows(IllegalStateException.class, () -> download(d0, kernel.sampleBytes()));
                assertTrue(stale.getMessage().contains("overwritten"), stale.getMessage());
                assertEquals(2, b2.index());
            }
            b1.close();
            assertFalse(loader.hasNext());
        }
    }
}
