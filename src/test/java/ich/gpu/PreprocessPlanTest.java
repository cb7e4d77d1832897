package ich.gpu;

import ich.dicom.ModalityLut;
import ich.hu.HounsfieldTransform;
import ich.preprocess.Augmentation;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;
import ich.preprocess.Window;
import ich.preprocess.WindowChannels;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Everything GpuPreprocessor decides before touching the device: parameters, staging layout, launches, fallbacks. */
class PreprocessPlanTest {
    private static final Window[] BSB = {Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE};

    private static Preprocessor.Config config(Augmentation a) {
        return new Preprocessor.Config(WindowChannels.BSB, a, null, SliceKernel.Layout.NCHW, HounsfieldTransform.Options.DEFAULT);
    }

    private static HounsfieldTransform hu16() {
        return new HounsfieldTransform(16, 12, 11, false, false, 1f, -1024f, null, false, 0, -1, -1024f, false);
    }

    @Test
    void kernelParametersAreWhatSliceKernelDerives() {
        long seed = System.nanoTime();
        SplittableRandom rnd = new SplittableRandom(seed);
        Augmentation aug = Augmentation.train(256, 224).withScale(0.3, 1).withRatio(0.75, 1.33);
        Preprocessor.Config config = config(aug);
        try (Arena arena = Arena.ofConfined()) {
            List<GpuPreprocessor.Slice> slices = new ArrayList<>();
            for (int i = 0; i < 40; i++) slices.add(RandomSlices.random(rnd, arena, BSB, 300, rnd.nextLong()));
            PreprocessPlan plan = PreprocessPlan.of(slices, config, 99, 3);
            assertEquals(40, plan.images.size());
            int flips = 0;
            long end = 40L * PreprocessStructs.IMAGE_BYTES;
            for (PreprocessPlan.Image im : plan.images) {
                GpuPreprocessor.Slice s = slices.get(im.index());
                Augmentation.Sample expected = aug.sample(s.columns(), s.rows(), 99, 3, s.sampleKey());
                assertEquals(expected, im.sample(), "seed " + seed);
                var p = im.params();
                assertEquals(s.rows(), p.rows());
                assertEquals(s.columns(), p.columns());
                assertEquals(16, p.bitsAllocated());
                assertEquals(31 - s.hu().highBit(), p.shiftLeft());
                assertEquals(32 - s.hu().bitsStored(), p.shiftRight());
                assertEquals(s.hu().signed(), p.signed());
                assertEquals(s.hu().rsna12BitFix(), p.rsnaFix());
                assertEquals(s.hu().slope(), p.slope());
                assertEquals(s.hu().intercept() + 0.0f, p.intercept(), "the intercept, a -0.0 passed as +0.0");
                assertEquals(expected.flip(), p.flip());
                assertEquals((float) expected.box().x(), p.boxX());
                assertEquals((float) expected.box().y(), p.boxY());
                // divided in double, rounded once: as SliceKernel.run
                assertEquals((float) (expected.box().width() / 224), p.stepX());
                assertEquals((float) (expected.box().height() / 224), p.stepY());
                if (p.flip()) flips++;
                // pixel blocks: aligned, after the structs, in order, not overlapping, inside the staging size
                assertEquals(0, im.pixelOffset() % PreprocessPlan.PIXEL_ALIGN);
                assertTrue(im.pixelOffset() >= end, "block " + im.index() + " overlaps the previous one");
                assertEquals(2L * s.rows() * s.columns(), im.pixelBytes());
                end = im.pixelOffset() + im.pixelBytes();
            }
            assertTrue(end <= plan.stagingBytes);
            assertTrue(flips > 5 && flips < 35, "about half flipped: " + flips);
            assertEquals(List.of(0, 40), List.of(plan.launches.getFirst().start(), plan.launches.getFirst().count()));
            assertEquals(1, plan.launches.size(), "equal windows: one launch");
            assertTrue(plan.launches.getFirst().linear(), "BSB and finite rescales: the linear kernel");
        }
    }

    @Test
    void imagesTheKernelCannotDoGoToTheCpuAndSplitTheLaunches() {
        var lut = new ModalityLut(0, 16, new int[]{1, 2, 3}, "HU");
        var eight = new HounsfieldTransform(8, 8, 7, false, false, 1f, 0f, null, false, 0, -1, -1024f, false);
        var withLut = new HounsfieldTransform(16, 12, 11, false, false, 1f, 0f, lut, false, 0, -1, -1024f, false);
        var padded = new HounsfieldTransform(16, 16, 15, true, false, 1f, -1024f, null, true, -2000, -2000, -1024f, false);
        assertNull(PreprocessPlan.cpuReason(hu16()));
        assertTrue(PreprocessPlan.cpuReason(eight).contains("Bits Allocated 8"));
        assertTrue(PreprocessPlan.cpuReason(withLut).contains("Modality LUT"));
        assertTrue(PreprocessPlan.cpuReason(padded).contains("padding"));

        Window header1 = new Window("header", 36, 80, false), header2 = new Window("header", 40, 150, false);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment px = arena.allocate(2 * 32 * 32);
            List<GpuPreprocessor.Slice> slices = List.of(
                    new GpuPreprocessor.Slice(px, 32, 32, hu16(), new Window[]{header1}, 0),
                    new GpuPreprocessor.Slice(px, 32, 32, hu16(), new Window[]{new Window("header", 36, 80, false)}, 1),
                    new GpuPreprocessor.Slice(px, 32, 32, eight, new Window[]{header1}, 2),
                    new GpuPreprocessor.Slice(px, 32, 32, hu16(), new Window[]{header1}, 3),
                    new GpuPreprocessor.Slice(px, 32, 32, hu16(), new Window[]{header2}, 4),
                    new GpuPreprocessor.Slice(px, 32, 32, withLut, new Window[]{header2}, 5),
                    new GpuPreprocessor.Slice(px, 32, 32, padded, new Window[]{header2}, 6));
            Preprocessor.Config config = new Preprocessor.Config(WindowChannels.parse("header"), Augmentation.eval(32, 16), null,
                    SliceKernel.Layout.NHWC, HounsfieldTransform.Options.DEFAULT);
            PreprocessPlan plan = PreprocessPlan.of(slices, config, 1, 0);
            assertEquals(3, plan.cpuCount());
            assertEquals(List.of(true, true, false, true, true, false, false), plan.images.stream().map(PreprocessPlan.Image::onGpu).toList());
            assertEquals(List.of("0+2", "3+1", "4+1"), plan.launches.stream().map(l -> l.start() + "+" + l.count()).toList());
            assertArrayEquals(new Window[]{header2}, plan.launches.get(2).windows());
            assertEquals(-1, plan.images.get(2).pixelOffset(), "nothing staged for a CPU image");
        }
    }

    /**
     * The linear kernel uses the hardware's min and max, which agree with Java's only without NaN and -0.0: a
     * sigmoid window, a bound that is not finite or is -0.0, or a slope or intercept that is not finite sends an
     * image to the general kernel, and a change of kernel splits the launches.
     */
    @Test
    void theLinearKernelTakesLinearFiniteWindowsAndFiniteRescalesOnly() {
        assertTrue(PreprocessPlan.linearKernel(BSB, 1f, -1024f));
        assertTrue(PreprocessPlan.linearKernel(BSB, -1f, 0f));
        assertFalse(PreprocessPlan.linearKernel(BSB, 1f, -0f), "an intercept of -0.0 (the plan passes +0.0 instead)");
        assertFalse(PreprocessPlan.linearKernel(new Window[]{Window.BRAIN, Window.sigmoid("s", 40, 80)}, 1f, 0f));
        Window negativeZero = Window.linear("zero", -0.0, 1); // low = high = -0.0 - floor(0.5)
        assertEquals(0x8000_0000, Float.floatToRawIntBits(negativeZero.low()));
        assertFalse(PreprocessPlan.linearKernel(new Window[]{negativeZero}, 1f, 0f));
        assertFalse(PreprocessPlan.linearKernel(new Window[]{Window.linear("huge", 0, 1e300)}, 1f, 0f), "bounds beyond float");
        assertFalse(PreprocessPlan.linearKernel(BSB, Float.POSITIVE_INFINITY, 0f));
        assertFalse(PreprocessPlan.linearKernel(BSB, 1f, Float.NaN));

        var infiniteSlope = new HounsfieldTransform(16, 12, 11, false, false, Float.POSITIVE_INFINITY, 0f, null, false, 0, -1, -1024f, false);
        var negativeZeroIntercept = new HounsfieldTransform(16, 12, 11, false, false, -1f, -0f, null, false, 0, -1, -1024f, false);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment px = arena.allocate(2 * 32 * 32);
            List<GpuPreprocessor.Slice> slices = List.of(
                    new GpuPreprocessor.Slice(px, 32, 32, hu16(), BSB, 0),
                    new GpuPreprocessor.Slice(px, 32, 32, negativeZeroIntercept, BSB, 1),
                    new GpuPreprocessor.Slice(px, 32, 32, infiniteSlope, BSB, 2),
                    new GpuPreprocessor.Slice(px, 32, 32, hu16(), BSB, 3));
            PreprocessPlan plan = PreprocessPlan.of(slices, config(Augmentation.eval(32, 16)), 1, 0);
            assertEquals(List.of("0+2 linear", "2+1 general", "3+1 linear"),
                    plan.launches.stream().map(l -> l.start() + "+" + l.count() + (l.linear() ? " linear" : " general")).toList());
            assertEquals(0, Float.floatToRawIntBits(plan.images.get(1).params().intercept()), "-0.0 passed as +0.0");
        }
    }

    @Test
    void configAndSlicesAreChecked() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment px = arena.allocate(2 * 16 * 16);
            var e = assertThrows(IllegalArgumentException.class, () -> new GpuPreprocessor.Slice(px, 17, 16, hu16(), BSB, 0));
            assertTrue(e.getMessage().contains("needs 544 bytes"), e.getMessage());
            var s = new GpuPreprocessor.Slice(px, 16, 16, hu16(), new Window[]{Window.BRAIN}, 0);
            var wrong = assertThrows(IllegalArgumentException.class, () -> PreprocessPlan.of(List.of(s), config(Augmentation.eval(16, 16)), 1, 0));
            assertTrue(wrong.getMessage().contains("1 windows, the config 3"), wrong.getMessage());
            Window[] nine = new Window[9];
            java.util.Arrays.fill(nine, Window.BRAIN);
            var many = new Preprocessor.Config(WindowChannels.of(nine), Augmentation.eval(16, 16), null, SliceKernel.Layout.NCHW,
                    HounsfieldTransform.Options.DEFAULT);
            assertThrows(IllegalArgumentException.class, () -> PreprocessPlan.of(List.of(new GpuPreprocessor.Slice(px, 16, 16, hu16(), nine, 0)), many, 1, 0));
        }
    }

    @Test
    void precisionsRoundToNearestEvenAndNameTheEntryPoints() {
        assertEquals(Kernels.PREPROCESS_F32_NCHW, GpuPreprocessor.Precision.FP32.entryPoint(SliceKernel.Layout.NCHW));
        assertEquals(Kernels.PREPROCESS_F32_NHWC, GpuPreprocessor.Precision.FP32.entryPoint(SliceKernel.Layout.NHWC));
        assertEquals(Kernels.PREPROCESS_F16_NCHW, GpuPreprocessor.Precision.FP16.entryPoint(SliceKernel.Layout.NCHW));
        assertEquals(Kernels.PREPROCESS_F16_NHWC, GpuPreprocessor.Precision.FP16.entryPoint(SliceKernel.Layout.NHWC));
        assertEquals(Kernels.PREPROCESS_BF16_NCHW, GpuPreprocessor.Precision.BF16.entryPoint(SliceKernel.Layout.NCHW));
        assertEquals(Kernels.PREPROCESS_BF16_NHWC, GpuPreprocessor.Precision.BF16.entryPoint(SliceKernel.Layout.NHWC));
        assertEquals(Kernels.PREPROCESS_BF16_NHWC + "_linear", GpuPreprocessor.Precision.BF16.linearEntryPoint(SliceKernel.Layout.NHWC));

        var bf = GpuPreprocessor.Precision.BF16;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(16);
            float halfway = 1f + 0x1p-8f;          // between 1 and 1 + 2^-7: to even, 1
            float halfwayUp = 1f + 3 * 0x1p-8f;    // between 1 + 2^-7 and 1 + 2^-6: to even, 1 + 2^-6
            float above = 1f + 0x1p-8f + 0x1p-20f; // just above halfway: up
            float[] in = {halfway, halfwayUp, above, -2.5f, Float.POSITIVE_INFINITY, 0.1f};
            float[] want = {1f, 1f + 0x1p-6f, 1f + 0x1p-7f, -2.5f, Float.POSITIVE_INFINITY, 0.10009765625f};
            for (int i = 0; i < in.length; i++) {
                bf.set(m, 0, in[i]);
                assertEquals(want[i], bf.get(m, 0), "bf16 of " + in[i]);
            }
            bf.set(m, 0, Float.NaN);
            assertTrue(Float.isNaN(bf.get(m, 0)));
            var h = GpuPreprocessor.Precision.FP16;
            SplittableRandom rnd = new SplittableRandom();
            for (int i = 0; i < 10_000; i++) {
                float v = (float) rnd.nextDouble(-4, 4);
                h.set(m, 1, v);
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(v)), h.get(m, 1));
                assertTrue(Math.abs(h.get(m, 1) - v) <= Math.abs(v) * 0x1p-11f + 0x1p-25f, "fp16 of " + v);
                bf.set(m, 0, v);
                assertTrue(Math.abs(bf.get(m, 0) - v) <= Math.abs(v) * 0x1p-8f, "bf16 of " + v);
            }
        }
    }
}
