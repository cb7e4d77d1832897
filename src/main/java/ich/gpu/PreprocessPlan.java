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
 * <p>Launches: one per run of consecutive kernel images whose windows are equal. The kernel takes its windows
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

    /** Images {@code [start, start + count)}, all with these windows. */
    record Launch(int start, int count, Window[] windows) {}

    final List<Image> images;
    final List<Launch> launches;
    final long stagingBytes;

    private PreprocessPlan(List<Image> images, List<Launch> launches, long stagingBytes) {
        this.images = List.copyOf(images);
        this.launches = List.copyOf(launches);
        this.stagingBytes = stagingBytes;
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

    static PreprocessPlan of(List<GpuPreprocessor.Slice> slices, Preprocessor.Config config, long seed, int epoch) {
        int outH = config.size(), outW = config.size(), c = config.channelCount();
        if (c > PreprocessStructs.MAX_CHANNELS) {
            throw new IllegalArgumentException("the kernel takes at most " + PreprocessStructs.MAX_CHANNELS + " channels, the config has " + c);
        }
        List<Image> images = new ArrayList<>(slices.size());
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
            var params = new PreprocessStructs.ImageParams(0, s.rows(), s.columns(), 16, 31 - hu.highBit(), 32 - hu.bitsStored(),
                    hu.signed(), hu.rsna12BitFix(), sample.flip(), hu.slope(), hu.intercept(), (float) box.x(), (float) box.y(),
                    (float) (box.width() / outW), (float) (box.height() / outH));
            images.add(new Image(i, params, offset, bytes, null, sample));
            offset = align(offset + bytes);
        }
        List<Launch> launches = new ArrayList<>();
        int start = -1;
        for (int i = 0; i <= images.size(); i++) {
            boolean gpu = i < images.size() && images.get(i).onGpu();
            boolean sameRun = gpu && start >= 0 && Arrays.equals(slices.get(start).windows(), slices.get(i).windows());
            if (start >= 0 && !sameRun) {
                launches.add(new Launch(start, i - start, slices.get(start).windows().clone()));
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
