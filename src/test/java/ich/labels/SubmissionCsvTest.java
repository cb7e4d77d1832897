package ich.labels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class SubmissionCsvTest {
    /** A sample submission as Kaggle ships it: each image's rows in the label file's order (any last), 0.5 each. */
    static String sample(String... imageIds) {
        StringBuilder sb = new StringBuilder("ID,Label\n");
        for (String id : imageIds) {
            for (Subtype s : SyntheticLabels.RSNA_ROW_ORDER) sb.append(id).append('_').append(s.csvName()).append(",0.5\n");
        }
        return sb.toString();
    }

    static Submission read(String csv) throws IOException {
        return SubmissionCsv.read(new ByteArrayInputStream(csv.getBytes(StandardCharsets.UTF_8)), "sample.csv");
    }

    static Predictions randomPredictions(List<String> ids, SplittableRandom random) {
        float[] p = new float[ids.size() * Subtype.COUNT];
        for (int i = 0; i < p.length; i++) p[i] = representable(random);
        return new Predictions(ids, p);
    }

    /**
     * A probability that survives the 6-significant-digit text exactly: a decimal of at most 6 significant
     * digits (a float keeps those), or a float within 0.003 of 1, where six digits of 1 - p are more than the
     * float holds.
     */
    static float representable(SplittableRandom random) {
        return switch (random.nextInt(4)) {
            case 0 -> random.nextInt(1_000_001) / 1e6f;
            case 1 -> Float.parseFloat(random.nextInt(100_000, 1_000_000) + "e-" + random.nextInt(7, 30));
            case 2 -> 1 - random.nextInt(1, 50_000) * 0x1p-24f;
            default -> random.nextInt(2);
        };
    }

    @Test
    void readsTheSampleSubmissionKeepingItsRowOrder() throws IOException {
        Submission s = read(sample("ID_0fbf6a978", "ID_d62ec3412", "ID_cb544194b"));
        assertEquals(List.of("ID_0fbf6a978", "ID_d62ec3412", "ID_cb544194b"), s.imageIds());
        assertEquals(18, s.rows());
        assertEquals("ID_0fbf6a978_epidural", s.rowId(0));
        assertEquals("ID_0fbf6a978_any", s.rowId(5));
        assertEquals(Subtype.INTRAPARENCHYMAL, s.rowSubtype(7));
        assertEquals(1, s.rowImage(7));
        assertEquals("ID_cb544194b_any", s.rowId(17));
        assertEquals(0.5f, s.predictions().probability(2, Subtype.SUBDURAL));
        assertEquals("sample.csv", s.source());
    }

    @Test
    void writesInTheSampleOrder(@TempDir Path dir) throws IOException {
        SplittableRandom random = new SplittableRandom(7);
        Path samplePath = dir.resolve("stage_2_sample_submission.csv");
        Files.writeString(samplePath, sample("ID_c", "ID_a", "ID_b").replace("\n", "\r\n"));
        Submission sampleSubmission = SubmissionCsv.read(samplePath);
        // predictions in another image order, and with subtypes in matrix order
        Predictions predictions = randomPredictions(List.of("ID_a", "ID_b", "ID_c"), random);
        Path out = dir.resolve("submission.csv");
        SubmissionCsv.write(out, predictions, sampleSubmission);

        List<String> lines = Files.readAllLines(out);
        assertEquals("ID,Label", lines.getFirst());
        assertEquals(19, lines.size());
        assertEquals("ID_c_epidural," + ProbabilityFormat.format(predictions.probability(2, Subtype.EPIDURAL)), lines.get(1));
        assertEquals("ID_b_any," + ProbabilityFormat.format(predictions.probability(1, Subtype.ANY)), lines.get(18));
        Submission back = SubmissionCsv.read(out);
        for (int row = 0; row < sampleSubmission.rows(); row++) assertEquals(sampleSubmission.rowId(row), back.rowId(row));
        for (String id : predictions.imageIds()) {
            for (Subtype s : Subtype.values()) {
                assertEquals(predictions.probability(predictions.indexOf(id), s), back.predictions().probability(back.predictions().indexOf(id), s));
            }
        }
    }

    @Test
    void roundTripInTheDefaultOrder(@TempDir Path dir) throws IOException {
        SplittableRandom random = new SplittableRandom(2019);
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 5000; i++) ids.add(String.format("ID_%09x", random.nextLong(1L << 36)));
        ids = ids.stream().distinct().toList();
        Predictions predictions = randomPredictions(ids, random);
        Path out = dir.resolve("submission.csv");
        SubmissionCsv.write(out, predictions);
        Submission back = SubmissionCsv.read(out);
        assertEquals(predictions, back.predictions());
        assertEquals(ids.get(0) + "_any", back.rowId(0));
        assertEquals(ids.get(0) + "_epidural", back.rowId(1));
        assertEquals(ids.get(1) + "_any", back.rowId(6));
        String text = Files.readString(out);
        assertFalse(text.contains("E") || text.contains("e-"), "no exponents");
    }

    @Test
    void writesAtomicallyLeavingNoTemporaryFile(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("submission.csv");
        Files.writeString(out, "previous\n");
        Predictions predictions = new Predictions(List.of("ID_a"), new float[]{0.5f, 0, 1, 0.25f, 0.125f, 1e-7f});
        SubmissionCsv.write(out, predictions);
        assertEquals(List.of(out), listing(dir));
        assertEquals("ID,Label\nID_a_any,0.5\nID_a_epidural,0\nID_a_intraparenchymal,1\nID_a_intraventricular,0.25\n"
                + "ID_a_subarachnoid,0.125\nID_a_subdural,0.0000001\n", Files.readString(out));

        // A failed write changes nothing: the old file stays, and no temporary file is left behind.
        Files.writeString(out, "previous\n");
        Submission otherImages = read(sample("ID_b"));
        assertThrows(IllegalArgumentException.class, () -> SubmissionCsv.write(out, predictions, otherImages));
        assertEquals("previous\n", Files.readString(out));
        assertThrows(IOException.class, () -> SubmissionCsv.write(dir.resolve("no-such-folder/submission.csv"), predictions));
        assertEquals(List.of(out), listing(dir));
    }

    private static List<Path> listing(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.toList();
        }
    }

    @Test
    void imagesMissingFromEitherSideAreListed(@TempDir Path dir) throws IOException {
        Submission sampleSubmission = read(sample("ID_a", "ID_b", "ID_c", "ID_d"));
        Predictions predictions = randomPredictions(List.of("ID_c", "ID_x", "ID_a"), new SplittableRandom(1));
        Path out = dir.resolve("submission.csv");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SubmissionCsv.write(out, predictions, sampleSubmission));
        assertEquals("predictions do not match the sample submission sample.csv: 2 image(s) have no predictions: ID_b, ID_d;"
                + " 1 predicted image(s) are not in it: ID_x", e.getMessage());
        assertFalse(Files.exists(out));
        Predictions onlyMissing = randomPredictions(List.of("ID_a", "ID_b", "ID_c"), new SplittableRandom(2));
        e = assertThrows(IllegalArgumentException.class, () -> SubmissionCsv.write(out, onlyMissing, sampleSubmission));
        assertEquals("predictions do not match the sample submission sample.csv: 1 image(s) have no predictions: ID_d", e.getMessage());
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
            "ID_a_any,abc      | label 'abc' is not a decimal number",
            "ID_a_any,NaN      | label 'NaN' is not a decimal number",
            "ID_a_any,0.5f     | label '0.5f' is not a decimal number",
            "ID_a_any,-0.1     | label '-0.1' is not a decimal number",
            "\"ID_a_any, 0.5\"   | label ' 0.5' is not a decimal number",
            "ID_a_any,1e       | label '1e' is not a decimal number",
            "ID_a_any,.        | label '.' is not a decimal number",
            "ID_a_any,         | label '' is not a decimal number",
            "ID_a_any,1.5      | label '1.5' is not a probability within [0, 1]",
            "ID_a_any,2e0      | label '2e0' is not a probability within [0, 1]",
            "ID_a_any,0.5      | ID ID_a_any appears a second time",
            "ID_a_nope,0.5     | unknown subtype 'nope'",
    })
    void badRowsNameFileAndLine(String badLine, String problem) {
        LabelFormatException e = assertThrows(LabelFormatException.class, () -> read(sample("ID_a") + badLine + "\n"));
        assertEquals("sample.csv: line 8: " + problem, e.getMessage().substring(0, Math.min(e.getMessage().length(), 20 + problem.length())));
    }

    @Test
    void acceptsExponentsAndShortDecimalsWhenReading() throws IOException {
        String csv = sample("ID_a").replace("epidural,0.5", "epidural,1e-05").replace("subdural,0.5", "subdural,.25")
                .replace("any,0.5", "any,1").replace("subarachnoid,0.5", "subarachnoid,0.");
        Predictions p = read(csv).predictions();
        assertEquals(1e-5f, p.probability(0, Subtype.EPIDURAL));
        assertEquals(0.25f, p.probability(0, Subtype.SUBDURAL));
        assertEquals(1f, p.probability(0, Subtype.ANY));
        assertEquals(0f, p.probability(0, Subtype.SUBARACHNOID));
    }

    @Test
    void incompleteImagesAreAnError() {
        LabelFormatException e = assertThrows(LabelFormatException.class, () -> read("ID,Label\nID_a_any,0.5\n" + sample("ID_b").substring(9)));
        assertEquals("sample.csv: 1 image(s) lack subtype rows: ID_a lacks epidural+intraparenchymal+intraventricular+subarachnoid+subdural",
                e.getMessage());
    }

    @Test
    void predictionsAreValidated() {
        assertThrows(IllegalArgumentException.class, () -> new Predictions(List.of("a"), new float[5]));
        assertThrows(IllegalArgumentException.class, () -> new Predictions(List.of("a", "a"), new float[12]));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Predictions(List.of("ID_a"), new float[]{0, 0, Float.NaN, 0, 0, 0}));
        assertEquals("probability NaN for ID_a_intraparenchymal is not within [0, 1]", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Predictions(List.of("ID_a"), new float[]{0, 0, 0, 0, 0, 1.0001f}));
        assertThrows(IllegalArgumentException.class, () -> new Predictions(List.of("ID_a"), new float[]{-0.01f, 0, 0, 0, 0, 0}));
    }

    @Test
    void probabilitiesAreWrittenPlainWithSixSignificantDigitsOfTheSmallerSide() {
        assertEquals("0", ProbabilityFormat.format(0f));
        assertEquals("0", ProbabilityFormat.format(-0f));
        assertEquals("1", ProbabilityFormat.format(1f));
        assertEquals("0.5", ProbabilityFormat.format(0.5f));
        assertEquals("0.123457", ProbabilityFormat.format(0.123456789f));
        assertEquals("0.00001", ProbabilityFormat.format(1e-5f));
        assertEquals("0.0000001", ProbabilityFormat.format(1e-7f));
        assertEquals("0.000000000001", ProbabilityFormat.format(1e-12f));
        assertEquals("0.00000000000000000000000000000123457", ProbabilityFormat.format(1.234567e-30f));
        assertEquals("0.876543", ProbabilityFormat.format(0.87654321f));
        // near 1 the digits of 1 - p count: 0.9999999f is 1 - 1.19209e-7
        assertEquals("0.999999880791", ProbabilityFormat.format(0.9999999f));
        assertEquals("0.99000001", ProbabilityFormat.format(0.99f));  // 1 - p = 0.00999999
        String smallest = ProbabilityFormat.format(Float.MIN_VALUE);
        assertEquals("0." + "0".repeat(44) + "14013", smallest);  // 1.40130e-45: the slow path, still plain
        assertEquals(Float.MIN_VALUE, Float.parseFloat(smallest));
    }

    /** Any float: plain notation, and within half a unit of the 6th significant digit of min(p, 1 - p). */
    @Test
    void randomProbabilitiesAreWrittenCloseEnough() {
        SplittableRandom random = new SplittableRandom(99);
        for (int i = 0; i < 200_000; i++) {
            float p = switch (i % 3) {
                case 0 -> random.nextFloat();
                case 1 -> Float.intBitsToFloat(random.nextInt(Float.floatToIntBits(1f)));  // every exponent
                default -> 1 - random.nextFloat() * 1e-3f;
            };
            String s = ProbabilityFormat.format(p);
            assertTrue(s.matches("0|1|0\\.[0-9]*[1-9]"), s);
            double smaller = Math.min(p, 1.0 - p);
            if (smaller == 0) continue;
            double error = Math.abs(new BigDecimal(s).doubleValue() - p);
            double unit = Math.pow(10, Math.floor(Math.log10(smaller)) - 5);
            assertTrue(error <= unit * 0.5000001, p + " written " + s + ", off by " + error);
        }
    }
}
