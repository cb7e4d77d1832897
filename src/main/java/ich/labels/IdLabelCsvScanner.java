package ich.labels;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The byte-level reader shared by the label and submission files: the header {@code ID,Label}, then one
 * {@code IMAGE_SUBTYPE,LABEL} row per line. It splits each row, interns the image id and resolves the
 * subtype, and hands the label's bytes to {@link #row}; what a label may be is the subclass's business.
 *
 * <p>Why bytes: the training file has 4 million lines, and String.split or a regex per line allocates
 * several objects per line and runs at a fraction of the speed. Here the input is read in large chunks into
 * one byte array, each chunk is cut at its last newline (the partial line moves to the front for the next
 * read), and every line is found by scanning for the comma and the newline. The image id is hashed only
 * when it differs from the previous line's: the RSNA files list an image's six rows together.
 *
 * <p>Accepted: an optional UTF-8 byte order mark, LF or CRLF line ends, a last line with or without its
 * newline. Not accepted: anything else before the comma, empty lines, quoting (ids never need it).
 */
abstract class IdLabelCsvScanner {
    static final int DEFAULT_BUFFER_BYTES = 1 << 20;
    private static final byte[] HEADER = "ID,Label".getBytes(StandardCharsets.US_ASCII);
    private static final int SHOWN_CHARS = 80;

    final String source;
    final ImageIdIndex ids = new ImageIdIndex();
    /** The 1-based number of the line being read; after reading, the number of lines (header included). */
    long line;
    private int lastImage = -1;
    private int lastImageLength = -1;

    IdLabelCsvScanner(String source) {
        this.source = source;
    }

    /** One data row: image number (first-seen order), subtype ordinal, and the label as {@code buf[from, to)}. */
    abstract void row(int image, int subtype, byte[] buf, int from, int to) throws LabelFormatException;

    final void scan(InputStream in, int bufferBytes) throws IOException {
        byte[] buf = new byte[bufferBytes];
        int filled = 0;
        boolean firstChunk = true;
        boolean eof = false;
        while (!eof) {
            int n = in.readNBytes(buf, filled, buf.length - filled);
            eof = n < buf.length - filled;
            filled += n;
            int from = 0;
            if (firstChunk) {
                firstChunk = false;
                if (filled >= 3 && buf[0] == (byte) 0xEF && buf[1] == (byte) 0xBB && buf[2] == (byte) 0xBF) from = 3;
            }
            int end;  // one past the last newline: the chunk's complete lines are buf[from, end)
            if (eof) {
                if (filled > from && buf[filled - 1] != '\n') {
                    if (filled == buf.length) buf = Arrays.copyOf(buf, filled + 1);
                    buf[filled++] = '\n';
                }
                end = filled;
            } else {
                end = filled;
                while (end > from && buf[end - 1] != '\n') end--;
                if (end == from) throw error(line + 1, "line longer than " + buf.length + " bytes: not an ID,Label CSV");
            }
            if (line == 0 && end > from) from = header(buf, from);
            lines(buf, from, end);
            System.arraycopy(buf, end, buf, 0, filled - end);
            filled -= end;
        }
        if (line == 0) throw error(0, "empty file: expected the header ID,Label");
    }

    /** Checks the header line at {@code from}; returns where the data starts. */
    private int header(byte[] buf, int from) throws LabelFormatException {
        line = 1;
        int nl = from;
        while (buf[nl] != '\n') nl++;
        int to = nl > from && buf[nl - 1] == '\r' ? nl - 1 : nl;
        if (!Arrays.equals(buf, from, to, HEADER, 0, HEADER.length)) {
            throw error(1, "expected the header ID,Label, found " + shown(buf, from, to));
        }
        return nl + 1;
    }

    /** The hot loop: every line of {@code buf[from, end)} ends with a newline, so the scans need no other bound. */
    private void lines(byte[] buf, int from, int end) throws LabelFormatException {
        int p = from;
        while (p < end) {
            line++;
            int start = p;
            byte b;
            while ((b = buf[p]) != ',' && b != '\n') p++;
            if (b == '\n') {
                boolean empty = p == start || (p == start + 1 && buf[start] == '\r');
                throw error(line, empty ? "empty line" : "no comma in " + shown(buf, start, p) + ": expected ID,Label");
            }
            int comma = p++;
            while (buf[p] != '\n') p++;
            int labelEnd = buf[p - 1] == '\r' ? p - 1 : p;  // buf[comma] is ',' so p - 1 never leaves the line
            p++;
            if (comma == start) throw error(line, "empty ID before the comma");
            int underscore = comma - 1;
            while (underscore >= start && buf[underscore] != '_') underscore--;
            if (underscore < start) {
                throw error(line, "ID " + shown(buf, start, comma) + " has no _subtype suffix: expected IMAGE_SUBTYPE");
            }
            if (underscore == start) throw error(line, "ID " + shown(buf, start, comma) + " has an empty image id");
            int subtype = Subtype.match(buf, underscore + 1, comma);
            if (subtype < 0) {
                throw error(line, "unknown subtype " + shown(buf, underscore + 1, comma) + " in ID " + shown(buf, start, comma)
                        + ": expected one of " + String.join(", ", Subtype.csvNames()));
            }
            int length = underscore - start;
            int image;
            if (length == lastImageLength && ids.equalsAt(lastImage, buf, start, length)) {
                image = lastImage;
            } else {
                image = ids.intern(buf, start, length);
                lastImage = image;
                lastImageLength = length;
            }
            row(image, subtype, buf, comma + 1, labelEnd);
        }
    }

    /** Throws, naming the images and what they lack, unless each of the first {@code images} saw all six subtypes. */
    final void requireAllSubtypes(byte[] seen, int images) throws LabelFormatException {
        Examples incomplete = new Examples();
        for (int i = 0; i < images; i++) {
            if (seen[i] == Subtype.ALL_BITS) continue;
            StringBuilder lacks = new StringBuilder();
            for (Subtype s : Subtype.values()) {
                if ((seen[i] & s.bit()) == 0) lacks.append(lacks.isEmpty() ? "" : "+").append(s.csvName());
            }
            incomplete.add(ids.id(i) + " lacks " + lacks);
        }
        if (incomplete.count() > 0) throw error(0, incomplete.count() + " image(s) lack subtype rows: " + incomplete);
    }

    /** The ID of a cell, as the CSV spells it, for messages. */
    final String csvId(int image, int subtype) {
        return ids.id(image) + "_" + Subtype.of(subtype).csvName();
    }

    final LabelFormatException error(long atLine, String problem) {
        return new LabelFormatException(source, atLine, problem);
    }

    /** Some bytes of the input, quoted and shortened, for a message. */
    static String shown(byte[] buf, int from, int to) {
        String s = new String(buf, from, to - from, StandardCharsets.UTF_8);
        if (s.length() > SHOWN_CHARS) s = s.substring(0, SHOWN_CHARS) + "...";
        return "'" + s + "'";
    }

    /** A bounded list for error messages: the first few items in full, then how many more. */
    static final class Examples {
        private static final int SHOWN = 20;
        private final StringBuilder text = new StringBuilder();
        private long count;

        void add(String item) {
            if (count++ < SHOWN) text.append(count == 1 ? "" : ", ").append(item);
        }

        long count() { return count; }

        @Override
        public String toString() {
            return count > SHOWN ? text + " and " + (count - SHOWN) + " more" : text.toString();
        }
    }
}
