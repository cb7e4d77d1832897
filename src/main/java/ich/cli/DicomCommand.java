package ich.cli;

import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.ImageHeader;
import ich.dicom.PixelData;
import ich.dicom.StoredValues;
import ich.io.AtomicFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

@Command(name = "dicom", mixinStandardHelpOptions = true, description = "Read and check DICOM files.",
        subcommands = {DicomCommand.Dump.class, DicomCommand.Check.class})
final class DicomCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() { spec.commandLine().usage(System.out); }

    /** Header fields and decoded-pixel facts of one file; a failure to decode the pixels is kept, not thrown. */
    record Summary(DicomFile file, ImageHeader header, String pixelSha256, int[] storedRange, Exception pixelError) {}

    static Summary summarize(DicomFile f) throws DicomFormatException {
        ImageHeader h = f.header();
        if (!h.hasPixelData()) return new Summary(f, h, null, null, null);
        try {
            PixelData px = f.pixelData();
            int[] range = h.bitsAllocated() == 1 ? null : StoredValues.of(h).range(px.bytes());
            return new Summary(f, h, px.sha256(), range, null);
        } catch (DicomFormatException e) {
            return new Summary(f, h, null, null, e);
        }
    }

    @Command(name = "dump", mixinStandardHelpOptions = true,
            description = "Print the header fields the pipeline uses, and a hash and range of the decoded pixels.")
    static final class Dump implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--json", description = "One JSON object per line and file.")
        boolean json;

        @Parameters(arity = "1..*", paramLabel = "FILE")
        List<Path> files;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            int failures = 0;
            for (Path p : files) {
                try (DicomFile f = DicomFile.open(p)) {
                    Summary s = summarize(f);
                    out.println(json ? toJson(p, s) : toText(p, s));
                    if (s.pixelError() != null) failures++;
                } catch (IOException | RuntimeException e) {
                    failures++;
                    String message = e instanceof DicomFormatException ? e.getMessage() : p + ": " + e;
                    out.println(json ? new Json().put("file", p.toString()).put("error", message).toString()
                            : p + "\n  error: " + message);
                }
            }
            out.flush();
            return failures == 0 ? 0 : 1;
        }

        static String toJson(Path p, Summary s) {
            ImageHeader h = s.header();
            Json j = new Json().put("file", p.toString())
                    .put("transferSyntaxUid", s.file().transferSyntaxUid())
                    .put("sopClassUid", h.sopClassUid())
                    .put("sopInstanceUid", h.sopInstanceUid())
                    .put("patientId", h.patientId())
                    .put("studyInstanceUid", h.studyInstanceUid())
                    .put("seriesInstanceUid", h.seriesInstanceUid())
                    .put("modality", h.modality())
                    .put("imagePositionPatient", h.imagePositionPatient())
                    .put("imageOrientationPatient", h.imageOrientationPatient())
                    .put("pixelSpacing", h.pixelSpacing())
                    .put("sliceThickness", h.sliceThickness())
                    .put("rows", h.rows())
                    .put("columns", h.columns())
                    .put("numberOfFrames", h.numberOfFrames())
                    .put("samplesPerPixel", h.samplesPerPixel())
                    .put("bitsAllocated", h.bitsAllocated())
                    .put("bitsStored", h.bitsStored())
                    .put("highBit", h.highBit())
                    .put("pixelRepresentation", h.pixelRepresentation())
                    .put("photometricInterpretation", h.photometricInterpretation())
                    .put("rescaleSlope", h.rescaleSlope())
                    .put("rescaleIntercept", h.rescaleIntercept())
                    .put("windowCenter", h.windowCenter())
                    .put("windowWidth", h.windowWidth())
                    .put("pixelPaddingValue", h.pixelPaddingValue())
                    .put("hasModalityLut", h.modalityLut() != null)
                    .put("pixelDataSha256", s.pixelSha256())
                    .put("storedMin", s.storedRange() == null ? null : s.storedRange()[0])
                    .put("storedMax", s.storedRange() == null ? null : s.storedRange()[1]);
            if (s.pixelError() != null) j.put("error", s.pixelError().getMessage());
            return j.toString();
        }

        static String toText(Path p, Summary s) {
            ImageHeader h = s.header();
            StringBuilder sb = new StringBuilder(p.toString()).append('\n');
            var ts = s.file().transferSyntax();
            line(sb, "(0002,0010) Transfer Syntax UID", s.file().transferSyntaxUid() + (ts == null ? "" : " [" + ts.displayName() + "]"));
            line(sb, "(0008,0016) SOP Class UID", h.sopClassUid());
            line(sb, "(0008,0018) SOP Instance UID", h.sopInstanceUid());
            line(sb, "(0008,0060) Modality", h.modality());
            line(sb, "(0010,0020) Patient ID", h.patientId());
            line(sb, "(0020,000D) Study Instance UID", h.studyInstanceUid());
            line(sb, "(0020,000E) Series Instance UID", h.seriesInstanceUid());
            line(sb, "(0020,0032) Image Position (Patient)", Arrays.toString(h.imagePositionPatient()));
            line(sb, "(0020,0037) Image Orientation (Patient)", Arrays.toString(h.imageOrientationPatient()));
            line(sb, "(0028,0030) Pixel Spacing", Arrays.toString(h.pixelSpacing()));
            line(sb, "(0018,0050) Slice Thickness", String.valueOf(h.sliceThickness()));
            line(sb, "(0028,0010/0011) Rows x Columns", h.rows() + " x " + h.columns());
            line(sb, "(0028,0008) Number of Frames", String.valueOf(h.numberOfFrames()));
            line(sb, "(0028,0002) Samples per Pixel", String.valueOf(h.samplesPerPixel()));
            line(sb, "(0028,0100/0101/0102) Bits Allocated/Stored/High", h.bitsAllocated() + " / " + h.bitsStored() + " / " + h.highBit());
            line(sb, "(0028,0103) Pixel Representation", String.valueOf(h.pixelRepresentation()));
            line(sb, "(0028,0004) Photometric Interpretation", h.photometricInterpretation());
            line(sb, "(0028,1053/1052) Rescale Slope/Intercept", h.rescaleSlope() + " / " + h.rescaleIntercept());
            line(sb, "(0028,1050) Window Center", Arrays.toString(h.windowCenter()));
            line(sb, "(0028,1051) Window Width", Arrays.toString(h.windowWidth()));
            line(sb, "(0028,0120) Pixel Padding Value", String.valueOf(h.pixelPaddingValue()));
            line(sb, "(0028,3000) Modality LUT", h.modalityLut() == null ? "none"
                    : h.modalityLut().entries().length + " entries from " + h.modalityLut().firstMapped());
            if (h.frameTransforms().size() > 1) line(sb, "per-frame rescale/window", h.frameTransforms().size() + " frames");
            if (s.pixelError() != null) line(sb, "error", s.pixelError().getMessage());
            else if (s.pixelSha256() != null) {
                line(sb, "pixel data SHA-256", s.pixelSha256());
                if (s.storedRange() != null) line(sb, "stored values", s.storedRange()[0] + " .. " + s.storedRange()[1]);
            }
            return sb.toString().stripTrailing();
        }

        private static void line(StringBuilder sb, String key, String value) {
            sb.append(String.format("  %-48s %s%n", key, value));
        }
    }

    @Command(name = "check", mixinStandardHelpOptions = true,
            description = "Decode every file under the paths on all cores; print a summary. Never stops at a bad file.")
    static final class Check implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--report", paramLabel = "FILE.csv", description = "Write each failure (file, reason, message) to this CSV.")
        Path report;

        @Option(names = "--threads", description = "Worker threads (default: all cores).")
        int threads = Runtime.getRuntime().availableProcessors();

        @Parameters(arity = "1..*", paramLabel = "PATH")
        List<Path> paths;

        record Failure(Path file, String reason, String message) {}

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            List<Path> files = new ArrayList<>();
            for (Path root : paths) {
                if (!Files.exists(root)) {
                    err.println("ich dicom check: " + root + " does not exist");
                    err.flush();
                    return 2;
                }
                try (Stream<Path> walk = Files.walk(root)) {
                    walk.filter(Files::isRegularFile).sorted().forEach(files::add);
                } catch (UncheckedIOException e) {
                    err.println("ich dicom check: cannot list " + root + ": " + e.getCause().getMessage());
                    err.flush();
                    return 2;
                }
            }
            ConcurrentLinkedQueue<Failure> failures = new ConcurrentLinkedQueue<>();
            AtomicLong bytes = new AtomicLong();
            Map<String, int[]> bySyntax = new java.util.concurrent.ConcurrentHashMap<>();
            long t0 = System.nanoTime();
            try (ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, threads))) {
                List<Future<?>> jobs = new ArrayList<>();
                for (Path p : files) jobs.add(pool.submit(() -> checkOne(p, failures, bytes, bySyntax)));
                for (Future<?> j : jobs) j.get();
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            Map<String, Integer> byReason = new TreeMap<>();
            for (Failure f : failures) byReason.merge(f.reason(), 1, Integer::sum);
            int failed = failures.size();
            out.printf("files    %d%nok       %d%nfailed   %d%n", files.size(), files.size() - failed, failed);
            byReason.forEach((reason, n) -> out.printf("  %6d  %s%n", n, reason));
            if (!bySyntax.isEmpty()) {
                out.printf("transfer syntaxes of the files whose header was read (ok, failed):%n");
                new TreeMap<>(bySyntax).forEach((syntax, n) -> out.printf("  %6d %6d  %s%n", n[0], n[1], syntax));
            }
            out.printf("speed    %.1f files/s, %.1f MB/s of decoded pixels (%d threads, %.2f s)%n",
                    files.size() / Math.max(seconds, 1e-9), bytes.get() / 1e6 / Math.max(seconds, 1e-9), threads, seconds);
            if (report != null) {
                writeReport(failures);
                out.printf("report   %s%n", report);
            }
            out.flush();
            return failed == 0 ? 0 : 1;
        }

        private static void checkOne(Path p, ConcurrentLinkedQueue<Failure> failures, AtomicLong bytes, Map<String, int[]> bySyntax) {
            String syntax = null; // known once the header is read: which codec a failure after that comes from
            boolean decoded = false;
            // a whole-file read into the thread's buffer: much cheaper than mapping when every page is touched
            try (DicomFile f = DicomFile.read(p, DicomFile.ReadBuffer.ofCurrentThread())) {
                ImageHeader h = f.header();
                syntax = f.transferSyntax() != null ? f.transferSyntax().displayName() + " (" + f.transferSyntax().uid() + ")"
                        : "unknown (" + f.transferSyntaxUid() + ")";
                if (h.hasPixelData()) {
                    PixelData px = f.pixelData();
                    // Touch every sample, as the pipeline will: a mapping past a truncated file fails here, not later.
                    if (h.bitsAllocated() != 1) StoredValues.of(h).range(px.bytes());
                    bytes.addAndGet(px.bytes().byteSize());
                }
                decoded = true;
            } catch (DicomFormatException e) {
                failures.add(new Failure(p, e.reason(), e.getMessage()));
            } catch (IOException e) {
                failures.add(new Failure(p, "I/O error", p + ": " + e));
            } catch (RuntimeException e) {
                // A bug of ours, not of the file: still reported, never fatal for the batch.
                failures.add(new Failure(p, "internal error", p + ": " + e));
            } finally {
                if (syntax != null) count(bySyntax, syntax, decoded ? 0 : 1);
            }
        }

        private static void count(Map<String, int[]> bySyntax, String syntax, int column) {
            int[] n = bySyntax.computeIfAbsent(syntax, k -> new int[2]);
            synchronized (n) {
                n[column]++;
            }
        }

        private void writeReport(ConcurrentLinkedQueue<Failure> failures) throws IOException {
            List<Failure> sorted = new ArrayList<>(failures);
            sorted.sort((a, b) -> a.file().compareTo(b.file()));
            StringBuilder sb = new StringBuilder("file,reason,message\n");
            for (Failure f : sorted) sb.append(csv(f.file().toString())).append(',').append(csv(f.reason())).append(',').append(csv(f.message())).append('\n');
            byte[] bytes = sb.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
            AtomicFile.write(report, false, channel -> {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(bytes);
                while (b.hasRemaining()) channel.write(b);
            });
        }

        private static String csv(String s) {
            return s.contains(",") || s.contains("\"") || s.contains("\n") ? '"' + s.replace("\"", "\"\"") + '"' : s;
        }
    }
}
