package ich.split;

import ich.split.SplitCsv.Fold;
import ich.split.SplitCsv.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class SplitCsvTest {
    @TempDir
    Path dir;

    @Test
    void groupedSplitRoundTrips() throws IOException {
        SyntheticLabels.Cohort cohort = SyntheticLabels.patients(5_000, 1);
        String[] images = new String[5_000];
        for (int i = 0; i < images.length; i++) images[i] = "ID_%09x".formatted(i * 2654435761L & 0xfffffffffL);
        Split split = Split.grouped(cohort.labels(), cohort.groups(), 0.1, 1);
        Path file = dir.resolve("split.csv");
        SplitCsv.write(file, images, cohort.groups(), split);

        List<String> lines = Files.readAllLines(file);
        assertEquals(SplitCsv.HEADER, lines.getFirst());
        assertEquals(5_001, lines.size());
        assertEquals(images[0] + "," + cohort.groups()[0] + "," + (split.testMask()[0] ? "validation" : "train"), lines.get(1));

        List<Row> rows = SplitCsv.read(file);
        assertEquals(split, SplitCsv.toSplit(rows));
        for (int i = 0; i < images.length; i++) {
            assertEquals(images[i], rows.get(i).image());
            assertEquals(cohort.groups()[i], rows.get(i).group());
        }
    }

    @Test
    void splitWithoutGroupsLeavesTheGroupEmpty() throws IOException {
        Path file = dir.resolve("split.csv");
        SplitCsv.write(file, new String[]{"a", "b", "c"}, null, new Split(new int[]{0, 2}, new int[]{1}));
        assertEquals("image,group,fold\na,,train\nb,,validation\nc,,train\n", Files.readString(file));
        assertEquals(List.of(new Row("a", "", Fold.TRAIN), new Row("b", "", Fold.VALIDATION), new Row("c", "", Fold.TRAIN)),
                SplitCsv.read(file));
    }

    @Test
    void commasAndQuotesAreQuoted() throws IOException {
        Path file = dir.resolve("split.csv");
        String[] images = {"a,1", "say \"x\"", "plain"};
        String[] groups = {"g\"", "", "h,i"};
        SplitCsv.write(file, images, groups, new Split(new int[]{0}, new int[]{1, 2}));
        assertEquals("image,group,fold\n\"a,1\",\"g\"\"\",train\n\"say \"\"x\"\"\",,validation\nplain,\"h,i\",validation\n",
                Files.readString(file));
        List<Row> rows = SplitCsv.read(file);
        for (int i = 0; i < 3; i++) {
            assertEquals(images[i], rows.get(i).image());
            assertEquals(groups[i], rows.get(i).group());
        }
    }

    @Test
    void readsAByteOrderMarkWindowsLineEndingsAndATrailingBlankLine() throws IOException {
        Path file = dir.resolve("split.csv");
        Files.writeString(file, "\uFEFFimage,group,fold\r\nx,p,train\r\ny,p,validation\r\n\r\n");
        assertEquals(List.of(new Row("x", "p", Fold.TRAIN), new Row("y", "p", Fold.VALIDATION)), SplitCsv.read(file));
    }

    @Test
    void writeReplacesAnOldFileAndLeavesNoTemporaryFile() throws IOException {
        Path file = dir.resolve("out").resolve("split.csv"); // the folder is made
        SplitCsv.write(file, new String[]{"a", "b"}, null, new Split(new int[]{0}, new int[]{1}));
        SplitCsv.write(file, new String[]{"a", "b"}, null, new Split(new int[]{1}, new int[]{0}));
        assertEquals("image,group,fold\na,,validation\nb,,train\n", Files.readString(file));
        try (Stream<Path> files = Files.list(file.getParent())) {
            assertEquals(List.of(file), files.toList());
        }
        // Same permissions as any new file in the folder, not owner-only as a temporary file would have.
        Path plain = Files.createFile(dir.resolve("plain"));
        if (Files.getFileStore(dir).supportsFileAttributeView("posix")) {
            assertEquals(Files.getPosixFilePermissions(plain), Files.getPosixFilePermissions(file));
        }
    }

    @Test
    void aRefusedWriteLeavesTheOldFileAlone() throws IOException {
        Path file = dir.resolve("split.csv");
        Files.writeString(file, "old");
        String[] images = {"a", "b"};
        assertThrows(IllegalArgumentException.class, () -> SplitCsv.write(file, images, null, new Split(new int[]{0}, new int[]{0})));
        assertEquals("old", Files.readString(file));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(1, files.count());
        }
    }

    @Test
    void writeRefusesSplitsThatAreNotAPartitionAndBadNames() {
        Path file = dir.resolve("split.csv");
        String[] images = {"a", "b", "c"};
        assertMessage("appears twice", () -> SplitCsv.write(file, images, null, new Split(new int[]{0, 1}, new int[]{1})));
        assertMessage("outside 0..2", () -> SplitCsv.write(file, images, null, new Split(new int[]{0, 3}, new int[]{1})));
        assertMessage("covers 2 images, 3 names", () -> SplitCsv.write(file, images, null, new Split(new int[]{0}, new int[]{1})));
        assertMessage("2 groups for 3 images", () -> SplitCsv.write(file, images, new String[]{"g", "g"}, new Split(new int[]{0, 2}, new int[]{1})));
        Split ok = new Split(new int[]{0, 2}, new int[]{1});
        assertMessage("image name a appears twice", () -> SplitCsv.write(file, new String[]{"a", "b", "a"}, null, ok));
        assertMessage("image 1 holds a line break", () -> SplitCsv.write(file, new String[]{"a", "b\nc", "d"}, null, ok));
        assertMessage("image 0 has an empty name", () -> SplitCsv.write(file, new String[]{"", "b", "c"}, null, ok));
        assertMessage("group 2 is null", () -> SplitCsv.write(file, images, new String[]{"g", "g", null}, ok));
        assertFalse(Files.exists(file));
    }

    @Test
    void readRefusesFilesThatAreNotSplits() throws IOException {
        assertReadError("", ":1: expected the header image,group,fold, got an empty file");
        assertReadError("image,fold\na,train\n", ":1: expected the header");
        assertReadError("image,group,fold\na,p,train\nb,p,test\n", ":3: fold must be train or validation, got 'test'");
        assertReadError("image,group,fold\na,p\n", ":2: expected 3 fields");
        assertReadError("image,group,fold\na,p,train,x\n", ":2: expected 3 fields");
        assertReadError("image,group,fold\na,p,train\na,q,validation\n", ":3: image a appears twice");
        assertReadError("image,group,fold\n,p,train\n", ":2: empty image name");
        assertReadError("image,group,fold\n\"a,p,train\n", ":2: unbalanced quotes");
    }

    private void assertReadError(String content, String part) throws IOException {
        Path file = dir.resolve("bad.csv");
        Files.writeString(file, content, StandardCharsets.UTF_8);
        IOException e = assertThrows(IOException.class, () -> SplitCsv.read(file));
        assertTrue(e.getMessage().contains(part), "message '" + e.getMessage() + "' lacks '" + part + "'");
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), "message '" + e.getMessage() + "' lacks '" + part + "'");
    }
}
