package ich.eda;

import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.ImageHeader;
import ich.hu.HounsfieldTransform;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * The headers of every file under a folder, read in parallel. Only headers: {@link DicomFile#open(Path)}
 * reads a 16 KB probe and nothing decodes pixels. A file the reader refuses is kept with the reader's
 * message, never dropped.
 */
public final class HeaderScan {
    private HeaderScan() {}

    /** One file's header facts, or why it could not be read. */
    public sealed interface Outcome permits FileFacts, Unreadable {
        Path file();

        String imageId();
    }

    /**
     * What the EDA needs from one readable file (header fields of frame 1 where they vary per frame).
     *
     * @param imageId            the file name without {@code .dcm}: the label file's image id
     * @param studyInstanceUid   (0020,000D), null when absent
     * @param hasPixelData       whether the data set has (7FE0,0010) Pixel Data; the encoding fields mean
     *                           something only then
     * @param frames             (0028,0008) Number of Frames, 1 when absent: the images the file holds
     * @param rescaleIntercept   (0028,1052), NaN when absent
     * @param rsna12BitFix       whether the Hounsfield conversion applies the RSNA 12-bit fix to this file
     * @param windowCenter       first value of (0028,1050), NaN when absent
     * @param windowWidth        first value of (0028,1051), NaN when absent
     */
    public record FileFacts(Path file, String imageId, String studyInstanceUid, boolean hasPixelData, int frames, int bitsStored,
                            int pixelRepresentation, double rescaleIntercept, boolean rsna12BitFix,
                            double windowCenter, double windowWidth) implements Outcome {
        public boolean hasWindow() { return !Double.isNaN(windowCenter) && !Double.isNaN(windowWidth); }
    }

    /** A file the reader could not read, with its message (which names the file, the byte offset and the tag). */
    public record Unreadable(Path file, String imageId, String error) implements Outcome {}

    /** All files found under the root, sorted by path: each is in exactly one of the two lists. */
    public record Result(Path root, List<Path> files, List<FileFacts> read, List<Unreadable> unreadable) {}

    /** The image id of a file: its name without a trailing {@code .dcm} (any case). */
    public static String imageId(Path file) {
        String name = file.getFileName().toString();
        return name.toLowerCase(Locale.ROOT).endsWith(".dcm") ? name.substring(0, name.length() - 4) : name;
    }

    /** Every regular file under {@code root}, recursively, sorted. */
    public static List<Path> list(Path root) throws IOException {
        try (Stream<Path> walk = Files.walk(root)) {
            return walk.filter(Files::isRegularFile).sorted().toList();
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    /** Lists and reads the headers under {@code root} on {@code threads} threads. */
    public static Result scan(Path root, int threads) throws IOException, InterruptedException {
        List<Path> files = list(root);
        List<Outcome> results = ich.io.Parallel.map(files, threads, HeaderScan::read);
        List<FileFacts> read = new ArrayList<>();
        List<Unreadable> unreadable = new ArrayList<>();
        for (Outcome r : results) {
            switch (Objects.requireNonNull(r)) {
                case FileFacts f -> read.add(f);
                case Unreadable u -> unreadable.add(u);
            }
        }
        return new Result(root, files, List.copyOf(read), List.copyOf(unreadable));
    }

    /** The facts of one file, or why it could not be read. Never throws for a bad file. */
    public static Outcome read(Path file) {
        String id = imageId(file);
        try (DicomFile f = DicomFile.open(file)) {
            ImageHeader h = f.header();
            // Interned: a study UID repeats for each of its slices, and a scan may hold a million of them.
            String study = h.studyInstanceUid() == null ? null : h.studyInstanceUid().intern();
            return new FileFacts(file, id, study, h.hasPixelData(), h.numberOfFrames(), h.bitsStored(), h.pixelRepresentation(),
                    h.rescaleIntercept(), h.hasPixelData() && rsna12BitFix(h), first(h.windowCenter()), first(h.windowWidth()));
        } catch (DicomFormatException e) {
            return new Unreadable(file, id, e.getMessage());
        } catch (IOException e) {
            return new Unreadable(file, id, file + ": " + e);
        } catch (RuntimeException e) {
            // A bug of ours rather than of the file: still listed, never fatal for the scan.
            return new Unreadable(file, id, file + ": internal error: " + e);
        }
    }

    /**
     * Whether the Hounsfield conversion of frame 1 applies the RSNA 12-bit fix: the rule of
     * {@link HounsfieldTransform#needsRsna12BitFix}, as {@link HounsfieldTransform#of} applies it (the
     * intercept must be present, and not when a Modality LUT replaces the rescale). Images that have no Hounsfield
     * units (colour, 1-bit) never need it.
     */
    static boolean rsna12BitFix(ImageHeader h) {
        try {
            return HounsfieldTransform.of(h, 0).rsna12BitFix();
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static double first(double[] values) { return values.length == 0 ? Double.NaN : values[0]; }
}
