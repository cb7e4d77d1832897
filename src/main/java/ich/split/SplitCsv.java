package ich.split;

import ich.io.AtomicFile;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;

import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * The saved split, {@code split.csv}: UTF-8, a header {@code image,group,fold}, then one row per image in input
 * order, e.g. {@code ID_000a2d7b0,ID_bd4bfa4b,train}. The fold is {@code train} or {@code validation}; the group
 * is empty for a split made without groups. Fields holding a comma or a double quote are quoted as in RFC 4180;
 * line breaks inside fields are refused, so one line is one row.
 *
 * <p>Writing is atomic: the rows go to a temporary file next to the target, which is flushed to disk and then
 * renamed over the target, so a reader (or a training run started meanwhile) sees the old file or the new one,
 * never half of one.
 */
public final class SplitCsv {
    public static final String HEADER = "image,group,fold";

    private SplitCsv() {}

    /** The side of an image, as written in the fold column. */
    public enum Fold {
        TRAIN("train"), VALIDATION("validation");

        private final String text;

        Fold(String text) { this.text = text; }

        /** The word in the file. */
        public String text() { return text; }

        static Fold parse(String text) {
            for (Fold f : values()) if (f.text.equals(text)) return f;
            return null;
        }
    }

    /** One line of the file. {@code group} is empty when the split had no groups. */
    public record Row(String image, String group, Fold fold) {
        public Row {
            Objects.requireNonNull(image, "image");
            Objects.requireNonNull(group, "group");
            Objects.requireNonNull(fold, "fold");
        }
    }

    /**
     * Writes the split of {@code images} (names, one per index of the split) atomically to {@code file}.
     *
     * @param groups the group of each image, or null for none
     * @throws IllegalArgumentException when the split is not a partition of the images' indices, the arrays differ in
     *                                  length, or a name is null or holds a line break, or an image name is
     *                                  empty or repeated
     */
    public static void write(Path file, String[] images, String[] groups, Split split) throws IOException {
        List<Row> rows = rows(images, groups, split);
        Files.createDirectories(file.toAbsolutePath().getParent());
        AtomicFile.write(file, true, channel -> {
            Writer out = new BufferedWriter(new OutputStreamWriter(Channels.newOutputStream(channel), StandardCharsets.UTF_8), 1 << 16);
            out.write(HEADER);
            out.write('\n');
            for (Row r : rows) {
                out.write(field(r.image()));
                out.write(',');
                out.write(field(r.group()));
                out.write(',');
                out.write(r.fold().text());
                out.write('\n');
            }
            out.flush();
        });
    }

    /** The rows that {@link #write} writes, in image order; validates the inputs. */
    public static List<Row> rows(String[] images, String[] groups, Split split) {
        Objects.requireNonNull(images, "images");
        Objects.requireNonNull(split, "split");
        int n = images.length;
        if (groups != null && groups.length != n) {
            throw new IllegalArgumentException(groups.length + " groups for " + n + " images");
        }
        if (split.size() != n) {
            throw new IllegalArgumentException("the split covers " + split.size() + " images, " + n + " names given");
        }
        // n indices, none twice and all in 0..n-1: every image gets exactly one fold.
        Fold[] fold = new Fold[n];
        mark(fold, split.train(), Fold.TRAIN);
        mark(fold, split.test(), Fold.VALIDATION);
        Set<String> seen = new HashSet<>();
        List<Row> rows = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            String image = checkName(images[i], "image", i);
            if (image.isEmpty()) throw new IllegalArgumentException("image " + i + " has an empty name");
            if (!seen.add(image)) throw new IllegalArgumentException("image name " + image + " appears twice");
            rows.add(new Row(image, groups == null ? "" : checkName(groups[i], "group", i), fold[i]));
        }
        return rows;
    }

    /**
     * Reads a split file.
     *
     * @throws IOException when it cannot be read or is not a split file (wrong header, wrong number of fields,
     *                     unknown fold, empty or repeated image name); the message gives the line
     */
    public static List<Row> read(Path file) throws IOException {
        List<Row> rows = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String header = in.readLine();
            if (header != null && header.startsWith("\uFEFF")) header = header.substring(1); // saved by a spreadsheet
            if (header == null || !header.strip().equals(HEADER)) {
                throw new IOException(file + ":1: expected the header " + HEADER + ", got " + (header == null ? "an empty file" : "'" + header + "'"));
            }
            int lineNo = 1;
            for (String line; (line = in.readLine()) != null; ) {
                lineNo++;
                if (line.isEmpty()) continue;
                List<String> fields = parseLine(line);
                if (fields == null) throw new IOException(file + ":" + lineNo + ": unbalanced quotes");
                if (fields.size() != 3) {
                    throw new IOException(file + ":" + lineNo + ": expected 3 fields (" + HEADER + "), got " + fields.size());
                }
                String image = fields.get(0);
                if (image.isEmpty()) throw new IOException(file + ":" + lineNo + ": empty image name");
                Fold fold = Fold.parse(fields.get(2));
                if (fold == null) {
                    throw new IOException(file + ":" + lineNo + ": fold must be train or validation, got '" + fields.get(2) + "'");
                }
                if (!seen.add(image)) throw new IOException(file + ":" + lineNo + ": image " + image + " appears twice");
                rows.add(new Row(image, fields.get(1), fold));
            }
        }
        return rows;
    }

    /** The split of rows read back, as indices into the rows (that is, into the images in file order). */
    public static Split toSplit(List<Row> rows) {
        int test = 0;
        for (Row r : rows) if (r.fold() == Fold.VALIDATION) test++;
        int[] trainIdx = new int[rows.size() - test], testIdx = new int[test];
        int a = 0, b = 0;
        for (int i = 0; i < rows.size(); i++) {
            if (rows.get(i).fold() == Fold.VALIDATION) testIdx[b++] = i;
            else trainIdx[a++] = i;
        }
        return new Split(trainIdx, testIdx);
    }

    private static void mark(Fold[] fold, int[] side, Fold f) {
        for (int i : side) {
            if (i < 0 || i >= fold.length) throw new IllegalArgumentException("split index " + i + " is outside 0.." + (fold.length - 1));
            if (fold[i] != null) throw new IllegalArgumentException("split index " + i + " appears twice");
            fold[i] = f;
        }
    }

    private static String checkName(String name, String what, int index) {
        if (name == null) throw new IllegalArgumentException(what + " " + index + " is null");
        if (name.indexOf('\n') >= 0 || name.indexOf('\r') >= 0) {
            throw new IllegalArgumentException(what + " " + index + " holds a line break");
        }
        return name;
    }

    private static String field(String s) {
        if (s.indexOf(',') < 0 && s.indexOf('"') < 0) return s;
        return '"' + s.replace("\"", "\"\"") + '"';
    }

    /** Splits one CSV line into fields (RFC 4180 quoting); null when a quote is left open. */
    private static List<String> parseLine(String line) {
        List<String> fields = new ArrayList<>(3);
        StringBuilder field = new StringBuilder();
        boolean quoted = false;
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            if (quoted) {
                if (c != '"') field.append(c);
                else if (i + 1 < line.length() && line.charAt(i + 1) == '"') {
                    field.append('"');
                    i++;
                } else quoted = false;
            } else if (c == '"') {
                quoted = true;
            } else if (c == ',') {
                fields.add(field.toString());
                field.setLength(0);
            } else {
                field.append(c);
            }
        }
        if (quoted) return null;
        fields.add(field.toString());
        return fields;
    }
}
