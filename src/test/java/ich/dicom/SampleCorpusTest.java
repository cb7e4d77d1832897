package ich.dicom;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every file of the real sample corpus against the DCMTK/GDCM ground truth: header fields, every occurrence
 * of rescale and window attributes (nested functional groups included), the SHA-256 of the decoded pixels
 * and the range of stored values. Broken files must fail with a clear DicomFormatException.
 */
class SampleCorpusTest {
    static List<String> names() { return SampleCorpus.names(); }

    @ParameterizedTest(name = "{0}")
    @MethodSource("names")
    void matchesGroundTruth(String name) throws Exception {
        SampleCorpus.assumePresent();
        JsonNode entry = SampleCorpus.entry(name);
        JsonNode truth = entry.get("ground_truth");
        Path path = SampleCorpus.file(name);
        String tsUid = text(truth.get("transfer_syntax_uid"));

        switch (name) {
            case "no_meta.dcm" -> {
                // A stray leading byte: DCMTK misreads (0820,0500), GDCM gives up. We must refuse, clearly.
                DicomFormatException e = assertThrows(DicomFormatException.class, () -> DicomFile.open(path).close());
                assertMessageNamesFile(e, name);
                return;
            }
            case "MR_truncated.dcm" -> {
                DicomFormatException e = assertThrows(DicomFormatException.class, () -> DicomFile.open(path).close());
                assertMessageNamesFile(e, name);
                assertEquals(Tag.PIXEL_DATA, e.tag(), e.getMessage());
                assertTrue(e.getMessage().contains("8192") && e.getMessage().contains("8130"), e.getMessage());
                return;
            }
            default -> { }
        }

        try (DicomFile f = DicomFile.open(path)) {
            if (tsUid != null) {
                assertEquals(tsUid, f.transferSyntaxUid(), "(0002,0010) Transfer Syntax UID");
            } else {
                String detected = truth.get("transfer_syntax_as_detected_by_tools").get("dcmdump_data_set").asText();
                TransferSyntax expected = switch (detected) {
                    case "Little Endian Implicit" -> TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN;
                    case "Little Endian Explicit" -> TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN;
                    case "Big Endian Explicit" -> TransferSyntax.EXPLICIT_VR_BIG_ENDIAN;
                    default -> throw new AssertionError("unexpected detected syntax " + detected);
                };
                assertEquals(expected, f.transferSyntax(), "syntax detected without File Meta");
            }
            ImageHeader h = f.header();
            if (!truth.get("rows").isNull()) {
                assertEquals(truth.get("rows").asInt(), h.rows(), "Rows");
                assertEquals(truth.get("columns").asInt(), h.columns(), "Columns");
                assertEquals(truth.get("number_of_frames").isNull() ? 1 : truth.get("number_of_frames").asInt(), h.numberOfFrames(), "Number of Frames");
                assertEquals(truth.get("samples_per_pixel").asInt(), h.samplesPerPixel(), "Samples per Pixel");
                assertEquals(truth.get("bits_allocated").asInt(), h.bitsAllocated(), "Bits Allocated");
                assertEquals(truth.get("bits_stored").asInt(), h.bitsStored(), "Bits Stored");
                assertEquals(truth.get("high_bit").asInt(), h.highBit(), "High Bit");
                assertEquals(truth.get("pixel_representation").asInt(), h.pixelRepresentation(), "Pixel Representation");
                assertEquals(truth.get("photometric_interpretation").asText(), h.photometricInterpretation(), "Photometric Interpretation");
            }
            if (truth.has("modality") && !truth.get("modality").isNull()) assertEquals(truth.get("modality").asText(), h.modality());
            for (String attr : List.of("rescale_slope", "rescale_intercept", "window_center", "window_width")) {
                checkOccurrences(f.dataSet(), truth.get(attr), attr);
            }
            checkEffectiveFrameValues(h, truth);

            if (!truth.get("has_pixel_data").asBoolean()) {
                assertFalse(h.hasPixelData());
                return;
            }
            JsonNode reference = reference(truth);
            TransferSyntax ts = f.transferSyntax();
            if (reference == null) {
                // Neither tool decoded it (a corrupt codestream): we must fail clearly too.
                DicomFormatException e = assertThrows(DicomFormatException.class, f::pixelData);
                assertMessageNamesFile(e, name);
                assertEquals(Tag.PIXEL_DATA, e.tag());
                return;
            }
            PixelData px = f.pixelData();
            assertEquals(reference.get("n_bytes").asLong(), px.bytes().byteSize(), "decoded bytes");
            boolean nativeLittleEndian = ts == TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN || ts == TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN;
            assertEquals(nativeLittleEndian, px.zeroCopy(), "zero-copy exactly for native little-endian data");
            MemorySegment decoded = px.bytes();
            if (name.equals("RG3_J2KI.dcm")) decoded = applyOpenJpegRounding(decoded);
            assertEquals(reference.get("sha256").asText(), PixelData.sha256(decoded), "SHA-256 of the decoded Pixel Data");

            JsonNode range = reference.get("stored_value_range");
            if (range != null && range.path("min").isNumber()) {
                int[] ours = StoredValues.of(h).range(px.bytes());
                assertArrayEquals(new int[]{range.get("min").asInt(), range.get("max").asInt()}, ours, "stored value range");
            }
        }
    }

    /** Reading whole files into one reused buffer gives what mapping gives, file after file. */
    @org.junit.jupiter.api.Test
    void readIntoAReusedBufferEqualsOpen() throws Exception {
        SampleCorpus.assumePresent();
        DicomFile.ReadBuffer buffer = new DicomFile.ReadBuffer();
        int compared = 0;
        for (String name : SampleCorpus.names()) {
            String viaOpen, viaRead;
            try (DicomFile f = DicomFile.open(SampleCorpus.file(name))) {
                viaOpen = f.header().hasPixelData() ? f.pixelData().sha256() : "no pixels";
            } catch (DicomFormatException e) {
                viaOpen = "error: " + e.getMessage();
            }
            try (DicomFile f = DicomFile.read(SampleCorpus.file(name), buffer)) {
                viaRead = f.header().hasPixelData() ? f.pixelData().sha256() : "no pixels";
            } catch (DicomFormatException e) {
                viaRead = "error: " + e.getMessage();
            }
            assertEquals(viaOpen, viaRead, name);
            compared++;
        }
        assertEquals(SampleCorpus.names().size(), compared);
    }

    /**
     * RG3_J2KI.dcm is lossy JPEG 2000 (irreversible 9/7 wavelet), where decoders may round differently.
     * jai-imageio differs from OpenJPEG (whose output is the GDCM ground truth) by exactly 1 in the samples
     * listed in the resource; each must differ by no more than 1, and with them set to OpenJPEG's value the
     * whole image must hash to the ground truth.
     */
    private static MemorySegment applyOpenJpegRounding(MemorySegment decoded) throws IOException {
        MemorySegment copy = Arena.ofAuto().allocate(decoded.byteSize());
        copy.copyFrom(decoded);
        var le = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        List<String> lines = Files.readAllLines(Path.of("src/test/resources/ich/dicom/RG3_J2KI.openjpeg-differences.csv"));
        int patched = 0;
        for (String line : lines) {
            if (line.startsWith("#")) continue;
            String[] parts = line.split(",");
            long index = Long.parseLong(parts[0]);
            int theirs = Integer.parseInt(parts[1]);
            int ours = copy.get(le, 2 * index) & 0xFFFF;
            assertTrue(Math.abs(ours - theirs) <= 1, "sample " + index + ": ours " + ours + ", OpenJPEG " + theirs);
            copy.set(le, 2 * index, (short) theirs);
            patched++;
        }
        // Less than 0.05 % of the 3,097,600 samples may differ at all.
        assertTrue(patched < 1550, patched + " samples differ");
        return copy;
    }

    private static JsonNode reference(JsonNode truth) {
        JsonNode d = truth.get("decoded_pixel_data");
        if (d == null || d.isNull()) return null;
        for (String tool : List.of("dcmtk", "gdcm")) {
            JsonNode r = d.get(tool);
            if (r != null && "ok".equals(text(r.get("status")))) return r;
        }
        return null;
    }

    /** Each occurrence "(gggg,eeee).(gggg,eeee)..." must resolve to the same values, in the same order. */
    private static void checkOccurrences(DataSet root, JsonNode occurrences, String attr) throws DicomFormatException {
        List<double[]> expected = new ArrayList<>();
        List<String> paths = new ArrayList<>();
        if (occurrences != null) {
            for (JsonNode o : occurrences) {
                if (!paths.contains(o.get("path").asText())) paths.add(o.get("path").asText());
                double[] v = new double[o.get("values").size()];
                for (int i = 0; i < v.length; i++) v[i] = o.get("values").get(i).asDouble();
                expected.add(v);
            }
        }
        List<double[]> actual = new ArrayList<>();
        for (String p : paths) collect(root, parsePath(p), 0, actual);
        assertEquals(expected.size(), actual.size(), attr + " occurrences");
        for (int i = 0; i < expected.size(); i++) assertArrayEquals(expected.get(i), actual.get(i), 1e-9, attr + " occurrence " + i);
    }

    private static int[] parsePath(String path) {
        String[] parts = path.split("\\.");
        int[] tags = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].replaceAll("[()]", "");
            String[] ge = p.split(",");
            tags[i] = (Integer.parseInt(ge[0], 16) << 16) | Integer.parseInt(ge[1], 16);
        }
        return tags;
    }

    private static void collect(DataSet ds, int[] path, int depth, List<double[]> out) throws DicomFormatException {
        if (depth == path.length - 1) {
            if (ds.contains(path[depth])) out.add(ds.numbers(path[depth], VR.DS));
            return;
        }
        for (DataSet item : ds.sequence(path[depth])) collect(item, path, depth + 1, out);
    }

    /** The values that apply to frame 1: per-frame group, else shared group, else top level. */
    private static void checkEffectiveFrameValues(ImageHeader h, JsonNode truth) {
        FrameTransform t = h.frameTransform(0);
        assertEffective(truth.get("rescale_slope"), t.rescaleSlope(), "Rescale Slope");
        assertEffective(truth.get("rescale_intercept"), t.rescaleIntercept(), "Rescale Intercept");
        JsonNode wc = preferred(truth.get("window_center"));
        if (wc != null) assertEquals(wc.get("values").get(0).asDouble(), t.windowCenter()[0], "Window Center for frame 1");
    }

    private static void assertEffective(JsonNode occurrences, double actual, String what) {
        JsonNode o = preferred(occurrences);
        if (o == null) assertTrue(Double.isNaN(actual), what + " should be absent");
        else assertEquals(o.get("values").get(0).asDouble(), actual, 1e-9, what + " for frame 1");
    }

    private static JsonNode preferred(JsonNode occurrences) {
        if (occurrences == null || occurrences.isEmpty()) return null;
        for (String prefix : List.of("(5200,9230)", "(5200,9229)", "(0028,")) {
            for (JsonNode o : occurrences) if (o.get("path").asText().startsWith(prefix)) return o;
        }
        return null;
    }

    private static void assertMessageNamesFile(Exception e, String name) {
        assertTrue(Objects.requireNonNull(e.getMessage()).contains(name), "message names the file: " + e.getMessage());
    }

    private static String text(JsonNode n) { return n == null || n.isNull() ? null : n.asText(); }
}
