package ich.train;

import ich.dicom.DataSet;
import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.ImageHeader;
import ich.dicom.Tag;
import ich.eda.HeaderScan;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The identity of each image (patient, study, series, slice position) from its file's header alone, read in
 * parallel: what grouping the split by patient and the per-study report need. A multi-frame file (an enhanced CT
 * holds a whole series) is one image per frame, {@link #frameId named} after the file and the frame. Every file ends
 * up in {@link Result#images()} (all its frames) or in {@link Result#unreadable()}.
 */
public final class ImageCatalog {
    private ImageCatalog() {}

    /**
     * One readable image: a single-frame file, or one frame of a multi-frame file.
     *
     * @param imageId   the file name without {@code .dcm} (the label file's image id), with {@code _frame<k>} for
     *                  frame k (from 1) of a multi-frame file
     * @param frame     the frame in the file, from 0
     * @param patientId (0010,0020) Patient ID, null when absent or empty
     * @param studyUid  (0020,000D) Study Instance UID, null when absent
     * @param seriesUid (0020,000E) Series Instance UID, null when absent
     * @param z         the third value of the frame's (0020,0032) Image Position (Patient) (from the Plane Position
     *                  Sequence of an enhanced object), NaN when absent
     */
    public record Image(String imageId, Path file, int frame, String patientId, String studyUid, String seriesUid, double z) {
        /**
         * The unit a grouped split keeps together: the patient, else the study (RSNA data always has both; other
         * exports sometimes blank the Patient ID), else the image itself.
         */
        public String group() {
            if (patientId != null) return "patient:" + patientId;
            if (studyUid != null) return "study:" + studyUid;
            return "image:" + imageId;
        }
    }

    /**
     * The image id of frame {@code frame} (from 0) of a file whose id is {@code fileId} and which has {@code frames}
     * frames: the file's id for a single-frame file, else {@code fileId_frame<frame + 1>} (DICOM numbers frames from
     * 1, PS3.3 C.7.6.6). The subtype still follows the last underscore of a submission ID, so
     * {@code ID_x_frame2_subdural} reads back as image {@code ID_x_frame2}.
     */
    public static String frameId(String fileId, int frame, int frames) {
        return frames == 1 ? fileId : fileId + "_frame" + (frame + 1);
    }

    private static final Pattern FRAME_ID = Pattern.compile("(.+)_frame([1-9][0-9]*)");

    /** The file id that {@link #frameId} made {@code imageId} from, when it names a frame; else null. */
    public static String fileIdOfFrame(String imageId) {
        Matcher m = FRAME_ID.matcher(imageId);
        return m.matches() ? m.group(1) : null;
    }

    /**
     * A file that yields no image: its header could not be read (the reader's message names the file and the tag),
     * it has no pixel data, or it is not a CT slice ({@link #notACtSlice}).
     */
    public record Unreadable(Path file, String imageId, String error) {}

    public record Result(List<Image> images, List<Unreadable> unreadable) {}

    /**
     * The candidate image files under {@code folder}, recursively and sorted: every regular file but the
     * {@code .csv} files that RSNA-style folders keep beside the images (labels, sample submissions).
     */
    public static List<Path> files(Path folder) throws java.io.IOException {
        return HeaderScan.list(folder).stream()
                .filter(p -> !p.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".csv"))
                .toList();
    }

    /** Reads the headers of {@code files} on {@code threads} threads; the result keeps the order of the list. */
    public static Result scan(List<Path> files, int threads) throws InterruptedException {
        return scan(files, HeaderScan::imageId, threads);
    }

    /** As {@link #scan(List, int)}, each file's image id given by {@code imageId} rather than its name. */
    public static Result scan(List<Path> files, java.util.function.Function<Path, String> imageId, int threads) throws InterruptedException {
        List<Object> results = ich.io.Parallel.map(files, threads, file -> read(file, imageId.apply(file)));
        List<Image> images = new ArrayList<>();
        List<Unreadable> unreadable = new ArrayList<>();
        for (Object r : results) {
            if (r instanceof Unreadable u) unreadable.add(u);
            else for (Object i : (List<?>) r) images.add((Image) i);
        }
        return new Result(List.copyOf(images), List.copyOf(unreadable));
    }

    /** One file's images (one per frame), or why it could not be read; never throws for a bad file. */
    public static Object read(Path file) {
        return read(file, HeaderScan.imageId(file));
    }

    /** As {@link #read(Path)}, with the file's image id given ({@code id}, or {@code id_frame<k>} per frame). */
    public static Object read(Path file, String id) {
        try (DicomFile f = DicomFile.open(file)) {
            ImageHeader h = f.header();
            if (!h.hasPixelData()) {
                return new Unreadable(file, id, file + ": no (7FE0,0010) Pixel Data: not an image");
            }
            String notCt = notACtSlice(f.dataSet(), h);
            if (notCt != null) return new Unreadable(file, id, file + ": " + notCt);
            String patient = blankToNull(h.patientId()), study = intern(h.studyInstanceUid()), series = intern(h.seriesInstanceUid());
            int frames = h.numberOfFrames();
            List<Image> images = new ArrayList<>(frames);
            for (int k = 0; k < frames; k++) {
                images.add(new Image(frameId(id, k, frames), file, k, patient, study, series, h.frameTransform(k).z()));
            }
            return images;
        } catch (DicomFormatException e) {
            return new Unreadable(file, id, e.getMessage());
        } catch (IOException e) {
            return new Unreadable(file, id, file + ": " + e);
        } catch (RuntimeException e) {
            return new Unreadable(file, id, file + ": internal error: " + e);
        }
    }

    /**
     * Why a data set is not a slice the model can read, or null when it is one. The model reads axial CT: a series
     * exported from a hospital also holds other images, which scored as slices would pass for brain and end up in
     * the study's triage maximum. Left out, with the reason: (0008,0060) Modality other than CT (MR, a secondary
     * capture of the dose report, ...; a file without Modality is kept), a localizer, (0008,0008) Image Type
     * with LOCALIZER (the scout of a CT series, PS3.3 C.8.2.1.1.1), and a slice whose (0020,0037) Image Orientation
     * (Patient) is more than {@link #MAX_DEGREES_FROM_AXIAL} degrees from axial (a sagittal or coronal reformat; a
     * file without the attribute is kept; an enhanced object's frames by their Plane Orientation Sequence).
     */
    static String notACtSlice(DataSet ds, ImageHeader h) {
        String modality = ds.string(Tag.MODALITY);
        if (modality != null && !modality.isBlank() && !modality.strip().equals("CT")) {
            return "(0008,0060) Modality is " + modality.strip() + ": the model reads CT slices; left out";
        }
        for (String value : ds.strings(Tag.IMAGE_TYPE)) {
            if (value.equals("LOCALIZER")) {
                return "(0008,0008) Image Type is " + String.join("\\", ds.strings(Tag.IMAGE_TYPE))
                        + ": a localizer (scout), not an axial slice; left out";
            }
        }
        int frames = h.numberOfFrames();
        for (int k = 0; k < frames; k++) {
            double[] o = h.frameTransform(k).imageOrientationPatient();
            String plane = notAxial(o);
            if (plane == null) continue;
            StringBuilder values = new StringBuilder();
            for (double v : o) values.append(values.isEmpty() ? "" : "\\").append(ich.dicom.DicomWriter.decimalString(v));
            String where = frames == 1 ? "" : "frame " + (k + 1) + " of " + frames + ": ";
            return where + "(0020,0037) Image Orientation (Patient) is " + values + ": " + plane + ", not an axial slice; left out";
        }
        return null;
    }

    /** "a sagittal plane, 90 degrees from axial" and the like, or null for an axial slice or no orientation. */
    static String notAxial(double[] o) {
        if (o == null || o.length != 6) return null;
        // PS3.3 C.7.6.2.1.1: the slice normal is the row direction cosines crossed with the column ones.
        double nx = o[1] * o[5] - o[2] * o[4], ny = o[2] * o[3] - o[0] * o[5], nz = o[0] * o[4] - o[1] * o[3];
        double norm = Math.sqrt(nx * nx + ny * ny + nz * nz);
        if (norm == 0) return null;
        double fromAxial = Math.toDegrees(Math.acos(Math.min(1, Math.abs(nz) / norm)));
        if (fromAxial <= MAX_DEGREES_FROM_AXIAL) return null;
        String plane = Math.abs(nz) >= Math.max(Math.abs(nx), Math.abs(ny)) ? "an oblique"
                : Math.abs(nx) >= Math.abs(ny) ? "a sagittal" : "a coronal";
        return String.format(java.util.Locale.ROOT, "%s plane, %.0f degrees from axial", plane, fromAxial);
    }

    /**
     * Head CT is scanned axially with the gantry tilted by up to about 30 degrees; sagittal and coronal reformats,
     * which hospital exports hold beside the axial series, are 90 degrees away. Half-way between tells them apart.
     */
    static final double MAX_DEGREES_FROM_AXIAL = 45;

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s.strip().intern();
    }

    // UIDs and patient ids repeat once per slice of a study; interning keeps a million-image catalog small.
    private static String intern(String s) {
        return s == null ? null : s.intern();
    }
}
