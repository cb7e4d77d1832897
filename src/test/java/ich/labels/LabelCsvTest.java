package ich.labels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class LabelCsvTest {
    /** Rows of one image in the RSNA file's order, labels given in {@link Subtype} order (any first). */
    static String image(String id, int... labels) {
        StringBuilder sb = new StringBuilder();
        for (Subtype s : SyntheticLabels.RSNA_ROW_ORDER) sb.append(id).append('_').append(s.csvName()).append(',').append(labels[s.ordinal()]).append('\n');
        return sb.toString();
    }

    static LabelTable read(String csv) throws IOException {
        return read(csv.getBytes(StandardCharsets.UTF_8));
    }

    static LabelTable read(byte[] csv) throws IOException {
        return LabelCsv.read(new ByteArrayInputStream(csv), "train.csv");
    }

    static LabelFormatException failure(String csv) {
        return assertThrows(LabelFormatException.class, () -> read(csv));
    }

    @Test
    void pivotsToOneRowPerImageInFirstSeenOrder() throws IOException {
        String csv = "ID,Label\n"
                + image("ID_63eb1e259", 1, 0, 1, 0, 0, 1)
                // rows of one image in any order; an image id may itself contain underscores
                + "scan_7_b_subdural,0\nscan_7_b_any,0\nscan_7_b_epidural,0\nscan_7_b_subarachnoid,0\n"
                + "scan_7_b_intraventricular,0\nscan_7_b_intraparenchymal,0\n"
                + image("ID_2669954a7", 1, 1, 0, 0, 1, 0);
        LabelTable t = read(csv);
        assertEquals(List.of("ID_63eb1e259", "scan_7_b", "ID_2669954a7"), t.imageIds());
        assertEquals(3, t.images());
        assertEquals(18, t.lines());
        assertEquals(0, t.duplicatesMerged());
        assertArrayEquals(new byte[]{1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0}, t.labelMatrix());
        assertEquals(1, t.label(0, Subtype.INTRAPARENCHYMAL));
        assertEquals(0, t.label(0, Subtype.EPIDURAL));
        assertEquals(0b100101, t.labelBits(0));
        assertEquals(2, t.positiveImages());
        assertEquals(List.of(2, 1, 1, 0, 1, 1), List.of(Subtype.values()).stream().map(t::positives).toList());
        assertEquals(1, t.negatives(Subtype.ANY));
        assertEquals(1, t.indexOf("scan_7_b"));
        assertEquals(-1, t.indexOf("ID_nope"));
        assertEquals("train.csv", t.source());
    }

    @Test
    void subtypesAreInTheRsnaOrderWithTheirCsvNames() {
        assertEquals(List.of("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"), Subtype.csvNames());
        for (Subtype s : Subtype.values()) {
            byte[] b = ("x" + s.csvName() + "y").getBytes(StandardCharsets.US_ASCII);
            assertEquals(s.ordinal(), Subtype.match(b, 1, b.length - 1));
            assertEquals(s, Subtype.fromCsvName(s.csvName()));
        }
    }

    @Test
    void identicalDuplicatesAreMergedAndCounted() throws IOException {
        String csv = "ID,Label\n" + image("ID_a", 1, 0, 0, 0, 1, 0) + "ID_a_any,1\n" + image("ID_b", 0, 0, 0, 0, 0, 0)
                + "ID_a_epidural,0\n" + image("ID_a", 1, 0, 0, 0, 1, 0);
        LabelTable t = read(csv);
        assertEquals(List.of("ID_a", "ID_b"), t.imageIds());
        assertEquals(8, t.duplicatesMerged());
        assertEquals(20, t.lines());
        assertEquals(0b010001, t.labelBits(0));
        assertEquals(0, t.labelBits(1));
    }

    @Test
    void conflictingDuplicatesAreAnErrorListingEveryId() {
        String csv = "ID,Label\n" + image("ID_a", 1, 0, 0, 0, 1, 0) + image("ID_b", 0, 0, 0, 0, 0, 0)
                + "ID_a_subarachnoid,1\n"  // line 14: agrees
                + "ID_a_any,0\n"           // line 15: conflicts
                + "ID_b_subdural,1\n";     // line 16: conflicts
        LabelFormatException e = failure(csv);
        assertEquals(0, e.line());
        assertEquals("train.csv", e.file());
        assertTrue(e.getMessage().startsWith("train.csv: 2 ID(s) have conflicting labels: "), e.getMessage());
        assertTrue(e.getMessage().contains("ID_a_any (line 15 says 0, an earlier line 1)"), e.getMessage());
        assertTrue(e.getMessage().contains("ID_b_subdural (line 16 says 1, an earlier line 0)"), e.getMessage());
        assertFalse(e.getMessage().contains("subarachnoid"), e.getMessage());
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
            "ID_a_any0                 | no comma in 'ID_a_any0': expected ID,Label",
            "ID_a_any;0                | no comma",
            "ID_a_any,2                | label '2' is not 0 or 1",
            "ID_a_any,0.5              | label '0.5' is not 0 or 1",
            "ID_a_any,                 | label '' is not 0 or 1",
            "ID_a_any,1,1              | label '1,1' is not 0 or 1",
            "ID_a_any,true             | label 'true' is not 0 or 1",
            "ID_a_any,01               | label '01' is not 0 or 1",
            "ID_a_any,1.5              | label '1.5' is not 0 or 1",
            ",1                        | empty ID before the comma",
            "IDaany,1                  | ID 'IDaany' has no _subtype suffix",
            "_any,1                    | ID '_any' has an empty image id",
            "ID_a_anything,1           | unknown subtype 'anything' in ID 'ID_a_anything': expected one of any, epidural, intraparenchymal, intraventricular, subarachnoid, subdural",
            "ID_a_Any,1                | unknown subtype 'Any'",
            "ID_a_,1                   | unknown subtype ''",
            "ID_a_intraparenchymaL,1   | unknown subtype 'intraparenchymaL'",
            "ID_a_epidurax,1           | unknown subtype 'epidurax'",
            "\"\"                        | empty line",
    })
    void malformedLinesNameFileAndLine(String badLine, String problem) {
        String csv = "ID,Label\n" + image("ID_z", 0, 0, 0, 0, 0, 0) + badLine + "\n" + image("ID_y", 0, 0, 0, 0, 0, 0);
        LabelFormatException e = failure(csv);
        assertEquals(8, e.line(), e.getMessage());
        assertTrue(e.getMessage().startsWith("train.csv: line 8: " + problem), e.getMessage());
    }

    @Test
    void badHeaderAndEmptyFile() {
        LabelFormatException e = failure("Id,Label\n" + image("ID_a", 0, 0, 0, 0, 0, 0));
        assertEquals("train.csv: line 1: expected the header ID,Label, found 'Id,Label'", e.getMessage());
        assertEquals("train.csv: empty file: expected the header ID,Label", failure("").getMessage());
        assertEquals("train.csv: line 1: expected the header ID,Label, found ''", failure("\n").getMessage());
    }

    @Test
    void headerOnlyIsAnEmptyTable() throws IOException {
        LabelTable t = read("ID,Label");
        assertEquals(0, t.images());
        assertEquals(0, t.lines());
    }

    @Test
    void imagesMissingASubtypeAreNamedWithWhatTheyLack() {
        String csv = "ID,Label\n" + image("ID_a", 0, 0, 0, 0, 0, 0) + "ID_b_any,1\nID_b_subdural,1\nID_b_epidural,0\n"
                + image("ID_c", 0, 0, 0, 0, 0, 0) + "ID_d_intraventricular,0\n";
        LabelFormatException e = failure(csv);
        assertEquals("train.csv: 2 image(s) lack subtype rows: ID_b lacks intraparenchymal+intraventricular+subarachnoid, "
                + "ID_d lacks any+epidural+intraparenchymal+subarachnoid+subdural", e.getMessage());
    }

    @Test
    void crlfBomAndAMissingLastNewlineReadTheSame() throws IOException {
        String lf = "ID,Label\n" + image("ID_a", 1, 0, 1, 0, 0, 0) + image("ID_b", 0, 0, 0, 0, 0, 0) + image("ID_c", 1, 1, 1, 1, 1, 1);
        LabelTable expected = read(lf);
        String crlf = lf.replace("\n", "\r\n");
        byte[] bom = {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF};
        for (String text : List.of(crlf, lf.stripTrailing(), crlf.stripTrailing())) {
            assertEquals(expected, read(text), text);
            byte[] body = text.getBytes(StandardCharsets.UTF_8), withBom = new byte[body.length + 3];
            System.arraycopy(bom, 0, withBom, 0, 3);
            System.arraycopy(body, 0, withBom, 3, body.length);
            LabelTable t = read(withBom);
            assertEquals(expected, t);
            assertEquals(18, t.lines());
        }
        // A BOM only at the very start: elsewhere it is part of an id.
        assertEquals(List.of("\uFEFFID_b", "ID_a"), read("ID,Label\n" + image("\uFEFFID_b", 0, 0, 0, 0, 0, 0) + image("ID_a", 0, 0, 0, 0, 0, 0)).imageIds());
        // A bare CR is not a line end.
        assertTrue(failure("ID,Label\rID_a_any,0\n").getMessage().startsWith("train.csv: line 1: expected the header"));
        // CR LF then an empty CR LF line
        assertEquals("train.csv: line 20: empty line", failure(crlf + "\r\n" + image("ID_d", 0, 0, 0, 0, 0, 0)).getMessage());
    }

    @Test
    void floatSpellingsOfZeroAndOneAreAccepted() throws IOException {
        String csv = "ID,Label\n" + image("ID_a", 1, 0, 1, 0, 0, 0).replace(",1\n", ",1.0\n").replace(",0\n", ",0.0\n")
                + image("ID_b", 1, 0, 1, 0, 0, 0);
        LabelTable t = read(csv);
        assertEquals(t.labelBits(0), t.labelBits(1));
        assertEquals(0b101, t.labelBits(0));
        assertTrue(failure("ID,Label\nID_a_any,1.00\n").getMessage().contains("label '1.00' is not 0 or 1"));
        assertTrue(failure("ID,Label\nID_a_any,2.0\n").getMessage().contains("label '2.0' is not 0 or 1"));
    }

    @Test
    void readsFromAFileNamingItInErrors(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("stage_2_train.csv");
        Files.writeString(file, "ID,Label\n" + image("ID_a", 1, 0, 1, 0, 0, 0) + "ID_b_any,x\n");
        LabelFormatException e = assertThrows(LabelFormatException.class, () -> LabelCsv.read(file));
        assertEquals(file.toString(), e.file());
        assertEquals(8, e.line());
        assertEquals(file + ": line 8: label 'x' is not 0 or 1", e.getMessage());
    }

    /** Lines cut across reads at every possible place: a tiny buffer must read exactly what a large one does. */
    @Test
    void smallBuffersReadTheSameAsLargeOnes(@TempDir Path dir) throws IOException {
        SplittableRandom random = new SplittableRandom(20191);
        for (int round = 0; round < 6; round++) {
            Path file = dir.resolve("r" + round + ".csv");
            SyntheticLabels.Expected expected = SyntheticLabels.write(file, 300 + random.nextInt(300), 0.3, 0.2, round % 2 == 1, random.nextLong());
            byte[] bytes = Files.readAllBytes(file);
            LabelTable large = read(bytes);
            assertExpected(expected, large);
            for (int buffer : new int[]{48, 49, 50, 64, 97, 256, 1000 + random.nextInt(1000)}) {
                LabelTable small = LabelCsv.read(new ByteArrayInputStream(bytes), "r.csv", buffer);
                assertEquals(large, small, "buffer " + buffer);
                assertEquals(large.lines(), small.lines());
                assertEquals(large.duplicatesMerged(), small.duplicatesMerged());
            }
        }
        // A line that cannot fit a buffer is an error, not an endless loop.
        byte[] longLine = ("ID,Label\n" + "x".repeat(100) + "_any,0\n").getBytes(StandardCharsets.US_ASCII);
        LabelFormatException e = assertThrows(LabelFormatException.class, () -> LabelCsv.read(new ByteArrayInputStream(longLine), "long.csv", 64));
        assertEquals("long.csv: line 2: line longer than 64 bytes: not an ID,Label CSV", e.getMessage());
    }

    @Test
    void largeGeneratedFileHasTheRightCounts(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("train.csv");
        SyntheticLabels.Expected expected = SyntheticLabels.write(file, 100_000, 0.144, 0.001, false, 42);
        long t0 = System.nanoTime();
        LabelTable t = LabelCsv.read(file);
        double seconds = (System.nanoTime() - t0) / 1e9;
        System.out.printf("LabelCsvTest: %d lines in %.3f s (%.1f M lines/s, cold JIT)%n", t.lines(), seconds, t.lines() / seconds / 1e6);
        assertTrue(expected.lines() > 600_000, "at least 600k lines");
        assertExpected(expected, t);
        assertTrue(t.positiveImages() > 13_000 && t.positiveImages() < 15_800, "about 14.4 % positive: " + t.positiveImages());
        assertTrue(t.duplicatesMerged() > 50, "some duplicates: " + t.duplicatesMerged());
        for (Subtype s : Subtype.values()) assertTrue(t.positives(s) > 0, s + " has positives");
    }

    @Test
    void tablesMadeInMemory() {
        LabelTable t = LabelTable.of(List.of("a", "b"), new byte[]{0b11, 0});
        assertEquals(1, t.label(0, Subtype.EPIDURAL));
        assertEquals(12, t.lines());
        assertThrows(IllegalArgumentException.class, () -> LabelTable.of(List.of("a", "a"), new byte[2]));
        assertThrows(IllegalArgumentException.class, () -> LabelTable.of(List.of("a"), new byte[]{(byte) 0x40}));
        assertThrows(IllegalArgumentException.class, () -> LabelTable.of(List.of("a"), new byte[2]));
    }

    static void assertExpected(SyntheticLabels.Expected expected, LabelTable t) {
        assertEquals(expected.imageIds(), t.imageIds());
        List<Integer> want = new ArrayList<>(), got = new ArrayList<>();
        for (int i = 0; i < t.images(); i++) {
            want.add((int) expected.labelBits()[i]);
            got.add(t.labelBits(i));
        }
        assertEquals(want, got);
        assertEquals(expected.lines(), t.lines());
        assertEquals(expected.duplicates(), t.duplicatesMerged());
        for (Subtype s : Subtype.values()) assertEquals(expected.positives(s), t.positives(s), s.csvName());
    }
}
