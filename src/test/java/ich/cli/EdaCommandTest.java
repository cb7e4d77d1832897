package ich.cli;

import ich.dicom.DicomFile;
import ich.dicom.SampleCorpus;
import ich.eda.DicomCensus;
import ich.eda.EdaReport;
import ich.eda.HeaderScan;
import ich.labels.LabelCsv;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** {@code ich eda} as a user runs it: exact counts in report.md, charts that are real PNGs. */
class EdaCommandTest {
    private static CliTest.Run run(String... args) { return CliTest.run(args); }

    /**
     * Five images: ID_000a2d7b0 intraparenchymal + subdural; ID_b none; ID_c subarachnoid; ID_d none; ID_e
     * epidural + intraventricular + subarachnoid. One duplicate row.
     */
    static final String LABELS = """
            ID,Label
            ID_000a2d7b0_epidural,0
            ID_000a2d7b0_intraparenchymal,1
            ID_000a2d7b0_intraventricular,0
            ID_000a2d7b0_subarachnoid,0
            ID_000a2d7b0_subdural,1
            ID_000a2d7b0_any,1
            ID_b_epidural,0
            ID_b_intraparenchymal,0
            ID_b_intraventricular,0
            ID_b_subarachnoid,0
            ID_b_subdural,0
            ID_b_any,0
            ID_c_epidural,0
            ID_c_intraparenchymal,0
            ID_c_intraventricular,0
            ID_c_subarachnoid,1
            ID_c_subdural,0
            ID_c_any,1
            ID_c_subarachnoid,1
            ID_d_epidural,0
            ID_d_intraparenchymal,0
            ID_d_intraventricular,0
            ID_d_subarachnoid,0
            ID_d_subdural,0
            ID_d_any,0
            ID_e_epidural,1
            ID_e_intraparenchymal,0
            ID_e_intraventricular,1
            ID_e_subarachnoid,1
            ID_e_subdural,0
            ID_e_any,1
            """;

    static Path labels(Path dir) throws IOException {
        return Files.writeString(dir.resolve("train.csv"), LABELS);
    }

    @Test
    void labelReportHasExactCountsAndRealCharts(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("eda");
        CliTest.Run r = run("eda", "--labels", labels(dir).toString(), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals("", r.err());
        assertTrue(r.out().contains("images     5 (3 positive)"), r.out());
        String md = Files.readString(out.resolve("report.md"));

        assertContainsAll(md,
                "Labels from `train.csv`: 5 images (31 data lines; 1 identical duplicate row merged, so every count below is of images, not of rows). "
                        + "Positive (any = 1): 3 images, 60.00%; negative: 2.",
                """
                        | subtype | label 0 | label 1 | positive rate |
                        |---|---:|---:|---:|
                        | any | 2 | 3 | 60.00% |
                        | epidural | 4 | 1 | 20.00% |
                        | intraparenchymal | 4 | 1 | 20.00% |
                        | intraventricular | 4 | 1 | 20.00% |
                        | subarachnoid | 3 | 2 | 40.00% |
                        | subdural | 4 | 1 | 20.00% |
                        """,
                "Rates: any 60.00%, epidural 20.00%, intraparenchymal 20.00%, intraventricular 20.00%, subarachnoid 40.00%, subdural 20.00%. "
                        + "Of the five subtypes the most frequent is subarachnoid (2 images) and the rarest epidural, intraparenchymal, "
                        + "intraventricular and subdural (1 image each).",
                """
                        | | epidural | intraparenchymal | intraventricular | subarachnoid | subdural |
                        |---|---:|---:|---:|---:|---:|
                        | epidural | 1 | 0 | 1 | 1 | 0 |
                        | intraparenchymal | 0 | 1 | 0 | 0 | 1 |
                        | intraventricular | 1 | 0 | 1 | 1 | 0 |
                        | subarachnoid | 1 | 0 | 1 | 2 | 0 |
                        | subdural | 0 | 1 | 0 | 0 | 1 |
                        """,
                "The most frequent pair is epidural with intraventricular: 1 image. 2 positive images (66.67% of the positives) have two or more subtypes.",
                """
                        | subtypes | positive images | share of positives |
                        |---:|---:|---:|
                        | 1 | 1 | 33.33% |
                        | 2 | 1 | 33.33% |
                        | 3 | 1 | 33.33% |
                        | 4 | 0 | 0.00% |
                        | 5 | 0 | 0.00% |
                        """,
                "Of 3 positive images, 1 (33.33%) have one subtype and 2 (66.67%) more than one. The labels are consistent");
        assertFalse(md.contains("## DICOM headers"), "no --dicom, no DICOM section");

        Set<String> charts = chartsOf(md);
        assertEquals(Set.of(EdaReport.LABEL_COUNTS, EdaReport.POSITIVE_RATES, EdaReport.COOCCURRENCE, EdaReport.SUBTYPES_PER_POSITIVE), charts);
        assertChartsAreRealPngs(out, charts);
        assertEquals(charts, pngsIn(out), "every PNG in the folder is in the report");
    }

    @Test
    void withDicomCensusesTheCorpusAndListsWhatDoesNotMatch(@TempDir Path dir) throws Exception {
        SampleCorpus.assumePresent();
        Path root = SampleCorpus.root().resolve("files");
        Path out = dir.resolve("eda");
        CliTest.Run r = run("eda", "--labels", labels(dir).toString(), "--dicom", root.toString(), "--out", out.toString(), "--threads", "3");
        assertEquals(0, r.exit(), r.err());
        String md = Files.readString(out.resolve("report.md"));

        // What the reader says, file by file.
        List<Path> files;
        try (Stream<Path> walk = Files.walk(root)) {
            files = walk.filter(Files::isRegularFile).sorted().toList();
        }
        List<String> unreadable = new ArrayList<>();
        for (Path p : files) {
            try (DicomFile f = DicomFile.open(p)) {
                f.header();
            } catch (IOException e) {
                unreadable.add("| `" + p.getFileName() + "` | " + e.getMessage().replace("|", "\\|") + " |");
            }
        }
        assertFalse(unreadable.isEmpty());
        assertContainsAll(md,
                "Files under `" + root + "`: " + files.size() + ". Headers read: " + (files.size() - unreadable.size())
                        + "; unreadable: " + unreadable.size() + ";",
                "files with a label row 1, without " + (files.size() - 1) + "; labelled images with a file 1 of 5, without 4. "
                        + "Positive (any = 1) among the matched images: 1, 100.00%.",
                "4 entries:\n\n- `ID_b`\n- `ID_c`\n- `ID_d`\n- `ID_e`\n");
        for (String row : unreadable) assertTrue(md.contains(row), "unreadable file listed with the reader's error: " + row);
        assertEquals(List.of("ID_b", "ID_c", "ID_d", "ID_e"), Files.readAllLines(out.resolve(EdaReport.LABELS_WITHOUT_FILES)));
        assertEquals(files.size() - 1, Files.readAllLines(out.resolve(EdaReport.FILES_WITHOUT_LABELS)).size());
        assertEquals(unreadable.size() + 1, Files.readAllLines(out.resolve(EdaReport.UNREADABLE)).size(), "header line + one per file");

        // The census tables as the (separately tested) census computes them.
        DicomCensus c = DicomCensus.of(HeaderScan.scan(root, 1), LabelCsv.read(out.getParent().resolve("train.csv")));
        for (Map.Entry<DicomCensus.Encoding, DicomCensus.EncodingCount> e : c.encodings().entrySet()) {
            double intercept = e.getKey().rescaleIntercept();
            String row = "| " + e.getKey().bitsStored() + " | " + e.getKey().pixelRepresentation() + " | "
                    + (Double.isNaN(intercept) ? "absent" : intercept == Math.rint(intercept) ? Long.toString((long) intercept) : Double.toString(intercept))
                    + " | " + e.getValue().images() + " | " + e.getValue().rsna12BitFix() + " |\n";
            assertTrue(md.contains(row), "encoding row " + row + " in\n" + md);
        }
        assertTrue(md.contains(c.rsna12BitFix() + " of " + c.images() + " images ("), md);
        assertTrue(md.contains(c.slicesPerStudy().size() + " studies (Study Instance UID)"), md);

        Set<String> charts = chartsOf(md);
        assertEquals(Set.of(EdaReport.LABEL_COUNTS, EdaReport.POSITIVE_RATES, EdaReport.COOCCURRENCE, EdaReport.SUBTYPES_PER_POSITIVE,
                EdaReport.SLICES_PER_STUDY, EdaReport.WINDOWS), charts);
        assertChartsAreRealPngs(out, charts);
    }

    @Test
    void errors(@TempDir Path dir) throws Exception {
        CliTest.Run missing = run("eda", "--labels", dir.resolve("nope.csv").toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("nope.csv is not a file"), missing.err());

        Path bad = Files.writeString(dir.resolve("bad.csv"), "ID,Label\nID_a_epidural,2\n");
        CliTest.Run malformed = run("eda", "--labels", bad.toString(), "--out", dir.resolve("o").toString());
        assertEquals(1, malformed.exit());
        assertTrue(malformed.err().contains("bad.csv") && malformed.err().contains("line 2"), malformed.err());

        CliTest.Run noDir = run("eda", "--labels", labels(dir).toString(), "--dicom", dir.resolve("none").toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, noDir.exit());
        assertTrue(noDir.err().contains("is not a folder"), noDir.err());

        CliTest.Run usage = run("eda", "--labels", labels(dir).toString());
        assertEquals(2, usage.exit());
        assertTrue(usage.err().contains("--out"), usage.err());
        assertFalse(Files.exists(dir.resolve("o")), "nothing written after an error");
    }

    @Test
    void listedInTheHelp() {
        String help = run("--help").out();
        assertTrue(help.contains("eda") && help.contains("preview"), help);
    }

    static void assertContainsAll(String text, String... parts) {
        for (String p : parts) assertTrue(text.contains(p), () -> "report lacks:\n" + p + "\n---- report:\n" + text);
    }

    /** The PNGs the markdown shows: ![alt](file.png). */
    static Set<String> chartsOf(String md) {
        Set<String> names = new HashSet<>();
        Matcher m = Pattern.compile("!\\[[^]]*]\\(([^)]+\\.png)\\)").matcher(md);
        while (m.find()) names.add(m.group(1));
        return names;
    }

    static Set<String> pngsIn(Path dir) throws IOException {
        try (Stream<Path> list = Files.list(dir)) {
            Set<String> names = new HashSet<>();
            list.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".png")).forEach(names::add);
            return names;
        }
    }

    /** Each chart is a PNG (signature), decodes, is of a chart's size and is not blank. */
    static void assertChartsAreRealPngs(Path dir, Set<String> charts) throws IOException {
        for (String name : charts) {
            Path p = dir.resolve(name);
            byte[] head = new byte[8];
            try (var in = Files.newInputStream(p)) {
                assertEquals(8, in.readNBytes(head, 0, 8), name);
            }
            assertArrayEquals(new byte[]{(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}, head, name + " is a PNG");
            BufferedImage img = ImageIO.read(p.toFile());
            assertNotNull(img, name + " decodes");
            assertTrue(img.getWidth() >= 600 && img.getWidth() <= 1200 && img.getHeight() >= 400 && img.getHeight() <= 800,
                    name + " is " + img.getWidth() + "x" + img.getHeight());
            Set<Integer> colours = new HashSet<>();
            for (int y = 0; y < img.getHeight(); y += 3) for (int x = 0; x < img.getWidth(); x += 3) colours.add(img.getRGB(x, y));
            assertTrue(colours.size() > 5, name + " has " + colours.size() + " colours: blank?");
        }
    }
}
