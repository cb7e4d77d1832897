package ich.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import ich.dicom.SampleCorpus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The commands as a user runs them: arguments in, text and exit code out. */
class CliTest {
    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        CommandLine cmd = Main.commandLine();
        StringWriter out = new StringWriter(), err = new StringWriter();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        int exit = cmd.execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    void versionAndHelp() {
        Run v = run("--version");
        assertEquals(0, v.exit());
        assertTrue(v.out().startsWith("ich "), v.out());
        assertFalse(v.out().contains("${"), "version resource is filtered: " + v.out());
        Run h = run("--help");
        assertEquals(0, h.exit());
        for (String sub : List.of("info", "dicom")) assertTrue(h.out().contains(sub), h.out());
    }

    @Test
    void infoReportsTheRuntime() {
        Run r = run("info");
        assertEquals(0, r.exit());
        assertTrue(r.out().contains("jdk") && r.out().contains(String.valueOf(Runtime.version().feature())), r.out());
        assertTrue(r.out().contains("cores     " + Runtime.getRuntime().availableProcessors()), r.out());
        // Either the devices or the reason there are none, never the old placeholder; never an exception.
        assertTrue(r.out().contains("gpu       none: ") || r.out().contains(" (driver API), driver "), r.out());
        assertTrue(r.out().contains("cudnn"), r.out());
    }

    @Test
    void unknownOptionIsAUsageError() {
        Run r = run("dicom", "dump", "--no-such-option", "x.dcm");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("--no-such-option"), r.err());
    }

    @Test
    void dumpJsonMatchesTheGroundTruthAndReportsBadFiles() throws Exception {
        SampleCorpus.assumePresent();
        List<String> names = List.of("ID_000a2d7b0.dcm", "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
                "eCT_Supplemental.dcm", "no_meta.dcm", "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm");
        List<String> args = new ArrayList<>(List.of("dicom", "dump", "--json"));
        for (String n : names) args.add(SampleCorpus.file(n).toString());
        Run r = run(args.toArray(String[]::new));
        assertEquals(1, r.exit(), "bad files make the exit code 1, after all files");
        String[] lines = r.out().strip().split("\n");
        assertEquals(names.size(), lines.length, "one line per file: " + r.out());
        ObjectMapper json = new ObjectMapper();
        Map<String, JsonNode> byName = new HashMap<>();
        for (String line : lines) {
            JsonNode o = json.readTree(line);
            byName.put(Path.of(o.get("file").asText()).getFileName().toString(), o);
        }
        JsonNode rsna = byName.get("ID_000a2d7b0.dcm");
        JsonNode truth = SampleCorpus.entry("ID_000a2d7b0.dcm").get("ground_truth");
        assertEquals(truth.get("transfer_syntax_uid").asText(), rsna.get("transferSyntaxUid").asText());
        assertEquals(512, rsna.get("rows").asInt());
        assertEquals(512, rsna.get("columns").asInt());
        assertEquals(1, rsna.get("numberOfFrames").asInt());
        assertEquals(12, rsna.get("bitsStored").asInt());
        assertEquals(11, rsna.get("highBit").asInt());
        assertEquals(0, rsna.get("pixelRepresentation").asInt());
        assertEquals("MONOCHROME2", rsna.get("photometricInterpretation").asText());
        assertEquals(-1024, rsna.get("rescaleIntercept").asDouble());
        assertEquals(1, rsna.get("rescaleSlope").asDouble());
        assertEquals("[36,36]", rsna.get("windowCenter").toString(), "multi-valued DS 00036\\00036");
        assertEquals("[80,80]", rsna.get("windowWidth").toString());
        JsonNode dcmtk = truth.get("decoded_pixel_data").get("dcmtk");
        assertEquals(dcmtk.get("sha256").asText(), rsna.get("pixelDataSha256").asText());
        assertEquals(dcmtk.get("stored_value_range").get("min").asInt(), rsna.get("storedMin").asInt());
        assertEquals(dcmtk.get("stored_value_range").get("max").asInt(), rsna.get("storedMax").asInt());

        JsonNode rle = byName.get("CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm");
        assertEquals("1bee432808f49770bbc30d904e3e744082b0ba41704d4943e7de5bcb3e3d72f9", rle.get("pixelDataSha256").asText());

        JsonNode enhanced = byName.get("eCT_Supplemental.dcm");
        assertEquals(2, enhanced.get("numberOfFrames").asInt());
        assertEquals(-1024, enhanced.get("rescaleIntercept").asDouble(), "from the shared functional groups");

        JsonNode broken = byName.get("no_meta.dcm");
        assertTrue(broken.get("error").asText().contains("no_meta.dcm"), broken.toString());
        assertFalse(broken.has("rows"));

        JsonNode jpegLs = byName.get("CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm");
        assertEquals(512, jpegLs.get("rows").asInt());
        assertEquals(SampleCorpus.entry("CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm")
                .at("/ground_truth/decoded_pixel_data/dcmtk/sha256").asText("?"), jpegLs.get("pixelDataSha256").asText(), jpegLs.toString());
    }

    @Test
    void dumpTextNamesTagsAndValues() {
        SampleCorpus.assumePresent();
        Run r = run("dicom", "dump", SampleCorpus.file("ID_000a2d7b0.dcm").toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("(0028,1052) Rescale Slope/Intercept") || r.out().contains("(0028,1053/1052)"), r.out());
        assertTrue(r.out().contains("[36.0, 36.0]"), r.out());
        assertTrue(r.out().contains("2e0c0fcf"), "pixel hash shown: " + r.out());
    }

    @Test
    void checkDecodesEverythingAndReportsEachFailure(@TempDir Path tmp) throws Exception {
        SampleCorpus.assumePresent();
        // A copy of the corpus plus a non-DICOM file and an empty file, in a nested folder.
        Path data = tmp.resolve("data");
        Files.createDirectories(data.resolve("nested"));
        try (var files = Files.list(SampleCorpus.root().resolve("files"))) {
            for (Path f : files.toList()) Files.copy(f, data.resolve("nested").resolve(f.getFileName()));
        }
        Files.writeString(data.resolve("notes.txt"), "not a DICOM file, but long enough to be parsed as one\n");
        Files.write(data.resolve("empty.dcm"), new byte[0]);
        Path report = tmp.resolve("failures.csv");

        Run r = run("dicom", "check", "--report", report.toString(), data.toString());
        assertEquals(1, r.exit(), r.out() + r.err());
        int corpus = SampleCorpus.names().size();
        assertTrue(r.out().contains("files    " + (corpus + 2)), r.out());
        // Expected failures: no_meta, MR_truncated, the corrupt JPEG 2000 codestream, the text file and the empty file.
        assertTrue(r.out().contains("failed   5"), r.out());
        // Per transfer syntax, of the files whose header was read: the three JPEG-LS files decode; the corrupt
        // JPEG 2000 codestream fails in its codec.
        assertTrue(r.out().contains("       3      0  JPEG-LS Lossless (1.2.840.10008.1.2.4.80)"), r.out());
        assertTrue(r.out().matches("(?s).*\\s+\\d+\\s+1  JPEG 2000 Image Compression \\(1\\.2\\.840\\.10008\\.1\\.2\\.4\\.91\\).*"), r.out());
        List<String> rows = Files.readAllLines(report);
        assertEquals("file,reason,message", rows.getFirst());
        assertEquals(6, rows.size(), String.join("\n", rows));
        for (String name : List.of("no_meta.dcm", "MR_truncated.dcm", "JPEG2000-embedded-sequence-delimiter.dcm", "notes.txt", "empty.dcm")) {
            assertTrue(rows.stream().anyMatch(row -> row.contains(name)), name + " in the report");
        }
    }

    @Test
    void checkRejectsAMissingPath(@TempDir Path tmp) {
        Run r = run("dicom", "check", tmp.resolve("nope").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("does not exist"), r.err());
    }
}
