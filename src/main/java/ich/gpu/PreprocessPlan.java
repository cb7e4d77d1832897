package ich.gpu;

import ich.hu.HounsfieldTransform;
import ich.preprocess.Augmentation;
import ich.preprocess.Preprocessor;
import ich.preprocess.Window;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What one batch becomes on the GPU, decided on the host without touching the device: per image its kernel
 * parameters (or the reason it goes to the CPU instead), where its pixels sit in the staging buffer, and the
 * kernel launches. Kept apart from {@link GpuPreprocessor} so all of it is tested on machines without a GPU.
 *
 * <p>Staging layout (pinned host memory, copied to the device in one piece): the batch's IchImage array at
 * byte 0, then each kernel image's stored pixel words, each block starting on a {@value #PIXEL_ALIGN}-byte
 * boundary (coalesced loads start on a cache-line boundary).
 *
 * <p>Launches: one per run of consecutive kernel images whose windows are equal and that the same kernel does
 * (the linear one or the general one, {@link #linearKernel}). The kernel takes its windows
 * per batch; they differ between images only with the per-image header window, and a batch ordered by series
 * (as RSNA's windows are per series) keeps the runs long. CPU images end a run.
 */
final class PreprocessPlan {
    static final int PIXEL_ALIGN = 256;

    /** One image of the batch: its kernel parameters (device pointer left 0) or why the CPU does it. */
    record Image(int index, PreprocessStructs.ImageParams params, long pixelOffset, long pixelBytes, String cpuReason,
                 Augmentation.Sample sample) {
        boolean onGpu() { return cpuReason == null; }
    }

    /**
     * Images {@code [start, start + count)}, all with these windows; {@code linear}: by the linear kernel
     * ({@link #linearKernel}), else by the general one.
     */
    record Launch(int start, int count, Window[] windows, boolean linear) {}

    final List<Image> images;
    final List<Launch> launches;
    final long stagingBytes;

    private PreprocessPlan(List<Image> images, List<Launch> launches, long stagingBytes) {
        this.images = List.copyOf(images);
        this.launches = List.copyOf(launches);
        this.stagingBytes = stagingBytes;
    }

    /**
     * Whether the faster linear kernel ({@code ich_preprocess_*_linear} in preprocess.cu) gives the general kernel's
     * results for an image: every window linear with finite bounds that are not -0.0, and a finite slope and
     * intercept (the intercept's -0.0 is made +0.0 for every image, see {@link #of}). Then no HU value is NaN or
     * -0.0, and the hardware's min/max agree with Java's.
     */
    static boolean linearKernel(Window[] windows, float slope, float intercept) {
        if (!Float.isFinite(slope) || !Float.isFinite(intercept) || isNegativeZero(intercept)) return false;
        for (Window w : windows) {
            if (w.sigmoid()) return false;
            for (float bound : new float[] {w.low(), w.high()}) {
                if (!Float.isFinite(bound) || isNegativeZero(bound)) return false;
            }
        }
        return true;
    }

    private static boolean isNegativeZero(float v) {
        return Float.floatToRawIntBits(v) == 0x8000_0000;
    }

    /**
     * Why the kernel cannot do an image, or null when it can. The kernel implements the 16-bit rescale path of
     * {@link HounsfieldTransform#apply} only: other word sizes, Modality LUTs and padding masks stay on the CPU.
     */
    static String cpuReason(HounsfieldTransform hu) {
        if (hu.bitsAllocated() != 16) return "Bits Allocated " + hu.bitsAllocated() + " (the kernel reads 16-bit words)";
        if (hu.lut() != null) return "Modality LUT (the kernel does Rescale Slope/Intercept only)";
        if (hu.maskPadding()) return "pixel padding mask (the kernel does not mask)";
        return null;
    }

    /** The staging bytes of a batch of {@code n} slices of {@code rows x columns} 16-bit pixels, as {@link #of} lays them out. */
    static long stagingBytes(int n, int rows, int columns) {
        return align((long) n * PreprocessStructs.IMAGE_BYTES) + n * align(2L * rows * columns);
    }

    static PreprocessPlan of(List<GpuPreprocessor.Slice> slices, Preprocessor.Config config, long seed, int epoch) {
        int outH = config.size(), outW = config.size(), c = config.channelCount();
        if (c > PreprocessStructs.MAX_CHANNELS) {
            throw new IllegalArgumentException("the kernel takes at most " + PreprocessStructs.MAX_CHANNELS + " channels, the config has " + c);
        }
        List<Image> images = new ArrayList<>(slices.size());
        boolean[] linear = new boolean[slices.size()]; // kernel images the linear kernel does (linearKernel)
        long offset = align((long) slices.size() * PreprocessStructs.IMAGE_BYTES);
        for (int i = 0; i < slices.size(); i++) {
            GpuPreprocessor.Slice s = slices.get(i);
            if (s.windows().length != c) {
                throw new IllegalArgumentException("slice " + i + " has " + s.windows().length + " windows, the config " + c);
            }
            Augmentation.Sample sample = config.augmentation().sample(s.columns(), s.rows(), seed, epoch, s.sampleKey());
            HounsfieldTransform hu = s.hu();
            String reason = cpuReason(hu);
            if (reason != null) {
                images.add(new Image(i, null, -1, 0, reason, sample));
                continue;
            }
            long bytes = 2L * s.rows() * s.columns();
            var box = sample.box();
            // An intercept of -0.0 becomes +0.0 (x + 0.0f): the HU value then differs only where it would be -0.0, now
            // +0.0, and no window tells those apart (Java's max and min order -0.0 below +0.0, but the clamped value
            // minus a non-zero low bound is the same, and a +0.0 low bound wins the max either way; a sigmoid of
            // either zero is 0.5). It spares the linear kernel a -0.0 HU value.
            float intercept = hu.intercept() + 0.0f;
            var params = new PreprocessStructs.ImageParams(0, s.rows(), s.columns(), 16, 31 - hu.highBit(), 32 - hu.bitsStored(),
                    hu.signed(), hu.rsna12BitFix(), sample.flip(), hu.slope(), intercept, (float) box.x(), (float) box.y(),
                    (float) (box.width() / outW), (float) (box.height() / outH));
            images.add(new Image(i, params, offset, bytes, null, sample));
            linear[i] = linearKernel(s.windows(), params.slope(), params.intercept());
            offset = align(offset + bytes);
        }
        List<Launch> launches = new ArrayList<>();
        int start = -1;
        for (int i = 0; i <= images.size(); i++) {
            boolean gpu = i < images.size() && images.get(i).onGpu();
            boolean sameRun = gpu && start >= 0 && Arrays.equals(slices.get(start).windows(), slices.get(i).windows())
                    && linear[start] == linear[i];
            if (start >= 0 && !sameRun) {
                launches.add(new Launch(start, i - start, slices.get(start).windows().clone(), linear[start]));
                start = -1;
            }
            if (gpu && start < 0) start = i;
        }
        return new PreprocessPlan(images, launches, offset);
    }

    static long align(long bytes) {
        return (bytes + PIXEL_ALIGN - 1) / PIXEL_ALIGN * PIXEL_ALIGN;
    }

    int cpuCount() {
        return (int) images.stream().filter(im -> !im.onGpu()).count();
    }
}
