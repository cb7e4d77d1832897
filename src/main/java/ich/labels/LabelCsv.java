package ich.labels;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Reads the RSNA training labels ({@code stage_1_train.csv}, {@code stage_2_train.csv}): the header
 * {@code ID,Label}, then rows like {@code ID_63eb1e259_epidural,0}. The subtype is the last {@code _} token of
 * the ID and the image id everything before it. Pivots to a {@link LabelTable}, one row per image.
 *
 * <ul>
 *   <li>Labels are {@code 0} or {@code 1}; {@code 0.0} and {@code 1.0} are accepted too, because that is how
 *       pandas writes an integer column once it has passed through floats, and a re-exported file should
 *       still read. Anything else (2, 0.5, true, blanks) is an error naming the line.</li>
 *   <li>The real files repeat some rows. A row identical to an earlier one (same ID, same label) is merged
 *       and counted; the same ID with a different label is an error listing every such ID, after the whole
 *       file has been read, so one run shows them all.</li>
 *   <li>Every image must have all six subtypes; otherwise an error names the images and what they lack.</li>
 *   <li>A malformed line is an error with its line number (the header is line 1) and the file name.</li>
 * </ul>
 */
public final class LabelCsv {
    private LabelCsv() {}

    public static LabelTable read(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return read(in, file.toString());
        }
    }

    /** Reads from a stream; {@code source} names it in messages. */
    public static LabelTable read(InputStream in, String source) throws IOException {
        return read(in, source, IdLabelCsvScanner.DEFAULT_BUFFER_BYTES);
    }

    static LabelTable read(InputStream in, String source, int bufferBytes) throws IOException {
        Pivot pivot = new Pivot(source);
        pivot.scan(in, bufferBytes);
        return pivot.table();
    }

    /** Collects the labels as bits per image, with a second bit set marking which subtypes were seen. */
    private static final class Pivot extends IdLabelCsvScanner {
        private byte[] labels = new byte[1 << 16];
        private byte[] seen = new byte[1 << 16];
        private long duplicates;
        private final Examples conflicts = new Examples();

        Pivot(String source) { super(source); }

        @Override
        void row(int image, int subtype, byte[] buf, int from, int to) throws LabelFormatException {
            int value = label(buf, from, to);
            if (image >= labels.length) {
                labels = Arrays.copyOf(labels, labels.length * 2);
                seen = Arrays.copyOf(seen, seen.length * 2);
            }
            int bit = 1 << subtype;
            if ((seen[image] & bit) == 0) {
                seen[image] |= (byte) bit;
                labels[image] |= (byte) (value << subtype);
            } else if (((labels[image] >>> subtype) & 1) == value) {
                duplicates++;
            } else {
                conflicts.add(csvId(image, subtype) + " (line " + line + " says " + value + ", an earlier line " + (1 - value) + ")");
            }
        }

        /** 0 or 1 from "0", "1", "0.0" or "1.0". */
        private int label(byte[] buf, int from, int to) throws LabelFormatException {
            int length = to - from;
            if (length == 1 || (length == 3 && buf[from + 1] == '.' && buf[from + 2] == '0')) {
                byte digit = buf[from];
                if (digit == '0' || digit == '1') return digit - '0';
            }
            throw error(line, "label " + shown(buf, from, to) + " is not 0 or 1");
        }

        LabelTable table() throws LabelFormatException {
            if (conflicts.count() > 0) {
                throw error(0, conflicts.count() + " ID(s) have conflicting labels: " + conflicts);
            }
            int images = ids.size();
            requireAllSubtypes(seen, images);
            return new LabelTable(source, ids, Arrays.copyOf(labels, images), line - 1, duplicates);
        }
    }
}
