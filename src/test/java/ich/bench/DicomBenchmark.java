package ich.bench;

import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.dicom.PixelData;
import ich.gpu.GpuPreprocessor;
import ich.hu.HounsfieldTransform;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Reader throughput on a real RSNA head-CT slice (512 x 512, 16-bit, Implicit VR Little Endian).
 * Run with scripts/bench, which runs it on one thread and on all threads.
 *
 * <ul>
 *   <li>{@code headerFromFile}: open (mmap), parse the whole data set, typed header, close: files/s.</li>
 *   <li>{@code headerFromMemory}: the same without the file system, to separate parsing from syscalls.</li>
 *   <li>{@code hounsfield}: stored values to HU (fp32) for the whole slice: 512 KiB of pixel data per op.</li>
 *   <li>{@code pixelsFromFile}: open and decode the pixels: for a compressed syntax, its codec; compare syntaxes
 *       with {@code -p file=...} on the corpus's {@code CTImage.dcm_*} files, one CT slice in ten syntaxes.</li>
 * </ul>
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
@State(Scope.Thread)
public class DicomBenchmark {
    /** The file to read; by default the RSNA slice of the sample corpus. */
    @Param({"../shared/dicom-samples/files/ID_000a2d7b0.dcm"})
    public String file;

    private Path path;
    private byte[] bytes;
    private Arena arena;
    private MemorySegment pixels;
    private HounsfieldTransform transform;
    private float[] hu;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        path = Path.of(file);
        if (!Files.isRegularFile(path)) throw new IllegalStateException("benchmark input " + path.toAbsolutePath() + " not found");
        bytes = Files.readAllBytes(path);
        arena = Arena.ofConfined();
        DicomFile f = DicomFile.open(path, arena);
        ImageHeader h = f.header();
        PixelData px = f.pixelData();
        pixels = px.frame(0);
        transform = HounsfieldTransform.of(h, 0);
        hu = new float[h.rows() * h.columns()];
    }

    @TearDown(Level.Trial)
    public void tearDown() { arena.close(); }

    @Benchmark
    public ImageHeader headerFromFile() throws IOException {
        try (DicomFile f = DicomFile.open(path)) {
            return f.header();
        }
    }

    @Benchmark
    public ImageHeader headerFromMemory() throws IOException {
        return DicomFile.parse(bytes, "memory").header();
    }

    /**
     * What each loader thread of GPU training does per file ({@code GpuBatchLoader}): read the whole file, parse
     * it, resolve its HU transform and windows, and copy the stored pixels out for the staging buffer. With a fresh
     * read buffer per file this ran at 150-700 files/s a thread (the JDK throttling native allocations that only
     * the garbage collector frees); with the thread's reused buffer, thousands.
     */
    @Benchmark
    public GpuPreprocessor.Slice gpuLoaderRead() throws IOException {
        try (Arena perFile = Arena.ofConfined()) {
            return GpuPreprocessor.Slice.read(path, 0, 0, LOADER_CONFIG, perFile);
        }
    }

    private static final Preprocessor.Config LOADER_CONFIG = Preprocessor.Config.train(256, 224);

    @Benchmark
    public long pixelsFromFile() throws IOException {
        try (DicomFile f = DicomFile.open(path)) {
            return f.pixelData().bytes().byteSize();
        }
    }

    @Benchmark
    public float[] hounsfield() {
        transform.apply(pixels, 0, hu.length, hu, 0);
        return hu;
    }
}
