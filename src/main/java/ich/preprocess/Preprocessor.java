package ich.preprocess;

import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.ImageHeader;
import ich.dicom.PixelData;
import ich.hu.HounsfieldTransform;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.IntStream;

/**
 * DICOM file to model input on the CPU: read, HU, windows, crop, resize, flip, normalise. Each sample's
 * crop and flip come from (seed, epoch, sample key), so the same call gives the same tensor on every run
 * and on the GPU path.
 */
public final class Preprocessor {
    /** What to produce. {@code normalization} may be null (channels stay in [0, 1]). */
    public record Config(WindowChannels channels, Augmentation augmentation, SliceKernel.Normalization normalization,
                         SliceKernel.Layout layout, HounsfieldTransform.Options huOptions) {
        public static Config train(int resize, int crop) {
            return new Config(WindowChannels.BSB, Augmentation.train(resize, crop), null, SliceKernel.Layout.NCHW, HounsfieldTransform.Options.DEFAULT);
        }

        public static Config eval(int resize, int crop) {
            return new Config(WindowChannels.BSB, Augmentation.eval(resize, crop), null, SliceKernel.Layout.NCHW, HounsfieldTransform.Options.DEFAULT);
        }

        public int channelCount() { return channels.count(); }

        /** The same preprocessing writing {@code order} (the GPU kernels write NCHW or NHWC). */
        public Config withLayout(SliceKernel.Layout order) {
            return new Config(channels, augmentation, normalization, order, huOptions);
        }

        public int size() { return augmentation.crop(); }

        /** Floats per sample. */
        public long sampleFloats() { return (long) channelCount() * size() * size(); }
    }

    /** One sample: a file, its frame (0 for single-frame files) and the key its random draws derive from. */
    public record Input(Path file, int frame, long sampleKey) {}

    /** A failed sample: its slot in the batch is filled with NaN so that misuse is loud. */
    public record Failure(int index, Path file, String message) {}

    /**
     * A batch in off-heap memory, float32, {@code n x c x h x w} (NCHW) or {@code n x h x w x c} (NHWC).
     * It owns its memory (a shared arena, since worker threads fill it): close it when done.
     */
    public record Batch(MemorySegment data, int n, int c, int h, int w, SliceKernel.Layout layout, List<Failure> failures,
                        Arena arena) implements AutoCloseable {
        @Override
        public void close() { arena.close(); }

        public float get(int sample, int channel, int y, int x) {
            long i = layout == SliceKernel.Layout.NCHW ? (((long) sample * c + channel) * h + y) * w + x
                    : (((long) sample * h + y) * w + x) * c + channel;
            return data.getAtIndex(ValueLayout.JAVA_FLOAT, i);
        }
    }

    private final Config config;
    private final ThreadLocal<SliceKernel.Scratch> scratch = ThreadLocal.withInitial(SliceKernel.Scratch::new);

    public Preprocessor(Config config) { this.config = config; }

    public Config config() { return config; }

    /** A frame's HU transform and window channels, as preprocessing resolves them. */
    public record FrameSetup(HounsfieldTransform hu, Window[] windows) {}

    /**
     * Frame {@code frame} of a file's header, checked to exist, with its HU transform and windows under
     * {@code config}: what the CPU path and the GPU loader both need before the pixels, with the same errors, each
     * naming the file.
     */
    public static FrameSetup frameSetup(Path file, ImageHeader h, int frame, Config config) throws DicomFormatException {
        if (frame < 0 || frame >= h.numberOfFrames()) {
            throw new DicomFormatException(file.toString(), -1, ich.dicom.Tag.NUMBER_OF_FRAMES,
                    "frame " + frame + " asked for, the file has " + h.numberOfFrames());
        }
        try {
            return new FrameSetup(HounsfieldTransform.of(h, frame, config.huOptions()),
                    config.channels().resolve(h.frameTransform(frame), file.toString()));
        } catch (IllegalArgumentException e) {
            throw new DicomFormatException(file.toString(), -1, ich.dicom.Tag.NONE, e.getMessage());
        }
    }

    /** Preprocesses one sample into {@code out} at byte offset {@code offset}. */
    public void process(Input in, long seed, int epoch, MemorySegment out, long offset) throws IOException {
        try (DicomFile f = DicomFile.read(in.file(), DicomFile.ReadBuffer.ofCurrentThread())) {
            ImageHeader h = f.header();
            FrameSetup setup = frameSetup(in.file(), h, in.frame(), config);
            PixelData px = f.pixelData();
            process(px.frame(in.frame()), h.rows(), h.columns(), setup.hu(), setup.windows(), in.sampleKey(), seed, epoch, out, offset);
        }
    }

    /** Preprocesses pixels already in memory (the part shared with tests and the GPU comparison). */
    public void process(MemorySegment framePixels, int rows, int columns, HounsfieldTransform hu, Window[] windows,
                        long sampleKey, long seed, int epoch, MemorySegment out, long offset) {
        Augmentation.Sample s = config.augmentation().sample(columns, rows, seed, epoch, sampleKey);
        SliceKernel.run(framePixels, rows, columns, hu, windows, s.box(), s.flip(), config.size(), config.size(),
                config.normalization(), config.layout(), out, offset, scratch.get());
    }

    /** A batch on all cores. Failed samples are listed and their slots filled with NaN; the others are kept. */
    public Batch batch(List<Input> inputs, long seed, int epoch) {
        int n = inputs.size(), c = config.channelCount(), size = config.size();
        long floats = config.sampleFloats();
        Arena arena = Arena.ofShared();
        MemorySegment data = arena.allocate(Math.max(1, 4L * floats * n), 64);
        List<Failure> failures = Collections.synchronizedList(new ArrayList<>());
        IntStream.range(0, n).parallel().forEach(i -> {
            Input in = inputs.get(i);
            try {
                process(in, seed, epoch, data, 4L * floats * i);
            } catch (IOException | RuntimeException e) {
                failures.add(new Failure(i, in.file(), e instanceof DicomFormatException ? e.getMessage() : in.file() + ": " + e));
                data.asSlice(4L * floats * i, 4L * floats).fill((byte) 0xFF); // NaN
            }
        });
        List<Failure> sorted = new ArrayList<>(failures);
        sorted.sort((a, b) -> Integer.compare(a.index(), b.index()));
        return new Batch(data, n, c, size, size, config.layout(), List.copyOf(sorted), arena);
    }
}
