package ich.labels;

import ich.io.AtomicFile;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The submission format: the header {@code ID,Label}, then six rows per image such as
 * {@code ID_0fbf6a978_epidural,0.0213}, the label being a probability.
 *
 * <p>Reading accepts Kaggle's sample submission (placeholder probabilities, 0.5) and our own output; a
 * probability is a plain decimal or one with an exponent, within [0, 1]. Every image needs all six rows and
 * an ID may appear only once: a grader would reject the file otherwise.
 *
 * <p>Writing follows the row order of a sample submission when one is given; both sides must then name the
 * same images, or the error lists the images missing from the predictions and those the sample does not
 * know. Without a sample, the default order is the predictions' image order with each image's six rows in
 * {@link Subtype} order (any first). Probabilities are written by {@link ProbabilityFormat}. The file is
 * written to a temporary file in the same folder and renamed over the target, so a reader never sees half a
 * file and a failed write leaves the previous one in place.
 */
public final class SubmissionCsv {
    private static final byte[] HEADER = "ID,Label\n".getBytes(StandardCharsets.US_ASCII);
    private static final byte[][] SUFFIXES = new byte[Subtype.COUNT][];

    static {
        for (Subtype s : Subtype.values()) SUFFIXES[s.ordinal()] = ("_" + s.csvName() + ",").getBytes(StandardCharsets.US_ASCII);
    }

    private SubmissionCsv() {}

    public static Submission read(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return read(in, file.toString());
        }
    }

    /** Reads from a stream; {@code source} names it in messages. */
    public static Submission read(InputStream in, String source) throws IOException {
        Rows rows = new Rows(source);
        rows.scan(in, IdLabelCsvScanner.DEFAULT_BUFFER_BYTES);
        return rows.submission();
    }

    /** Writes in the default order: the predictions' images, six rows each in {@link Subtype} order. */
    public static void write(Path file, Predictions predictions) throws IOException {
        int[] cells = new int[predictions.images() * Subtype.COUNT];
        for (int i = 0; i < cells.length; i++) cells[i] = i;
        writeCells(file, predictions, cells);
    }

    /**
     * Writes in the row order of {@code sample}.
     *
     * @throws IllegalArgumentException when the sample has images without predictions or the predictions have
     *                                  images the sample lacks; nothing is written then
     */
    public static void write(Path file, Predictions predictions, Submission sample) throws IOException {
        ImageIdIndex wanted = sample.predictions().index(), given = predictions.index();
        int[] predictionOf = new int[wanted.size()];
        IdLabelCsvScanner.Examples missing = new IdLabelCsvScanner.Examples(), unknown = new IdLabelCsvScanner.Examples();
        for (int i = 0; i < wanted.size(); i++) {
            predictionOf[i] = wanted.indexIn(given, i);
            if (predictionOf[i] < 0) missing.add(wanted.id(i));
        }
        for (int i = 0; i < given.size(); i++) {
            if (given.indexIn(wanted, i) < 0) unknown.add(given.id(i));
        }
        if (missing.count() > 0 || unknown.count() > 0) {
            StringBuilder sb = new StringBuilder("predictions do not match the sample submission " + sample.source() + ":");
            if (missing.count() > 0) sb.append(' ').append(missing.count()).append(" image(s) have no predictions: ").append(missing).append(';');
            if (unknown.count() > 0) sb.append(' ').append(unknown.count()).append(" predicted image(s) are not in it: ").append(unknown).append(';');
            sb.setLength(sb.length() - 1);
            throw new IllegalArgumentException(sb.toString());
        }
        int[] cells = new int[sample.rows()];
        for (int row = 0; row < cells.length; row++) {
            int cell = sample.rowCell(row);
            cells[row] = predictionOf[cell / Subtype.COUNT] * Subtype.COUNT + cell % Subtype.COUNT;
        }
        writeCells(file, predictions, cells);
    }

    /** Writes one row per cell (image * 6 + subtype) in the given order, atomically. */
    private static void writeCells(Path file, Predictions predictions, int[] cells) throws IOException {
        ImageIdIndex ids = predictions.index();
        AtomicFile.write(file, true, channel -> {
            OutputStream out = Channels.newOutputStream(channel);
            byte[] buf = new byte[1 << 16];
            System.arraycopy(HEADER, 0, buf, 0, HEADER.length);
            int pos = HEADER.length;
            for (int cell : cells) {
                int image = cell / Subtype.COUNT;
                byte[] suffix = SUFFIXES[cell % Subtype.COUNT];
                // id, suffix (at most 18 bytes), probability (at most 64 with its scratch room), newline
                int need = ids.byteLength(image) + suffix.length + 64 + 1;
                if (pos + need > buf.length) {
                    out.write(buf, 0, pos);
                    pos = 0;
                    if (need > buf.length) buf = new byte[need];
                }
                pos = ids.copyTo(image, buf, pos);
                System.arraycopy(suffix, 0, buf, pos, suffix.length);
                pos = ProbabilityFormat.write(predictions.probabilityAt(cell), buf, pos + suffix.length);
                buf[pos++] = '\n';
            }
            out.write(buf, 0, pos);
            out.flush();
        });
    }

    /** Collects probabilities per image and the rows' order; rejects repeated IDs and incomplete images. */
    private static final class Rows extends IdLabelCsvScanner {
        private float[] probabilities = new float[Subtype.COUNT << 12];
        private byte[] seen = new byte[1 << 12];
        private int[] cells = new int[Subtype.COUNT << 12];
        private int rows;

        Rows(String source) { super(source); }

        @Override
        void row(int image, int subtype, byte[] buf, int from, int to) throws LabelFormatException {
            float p = probability(buf, from, to);
            if (image >= seen.length) {
                seen = Arrays.copyOf(seen, seen.length * 2);
                probabilities = Arrays.copyOf(probabilities, seen.length * Subtype.COUNT);
            }
            if ((seen[image] & (1 << subtype)) != 0) throw error(line, "ID " + csvId(image, subtype) + " appears a second time");
            seen[image] |= (byte) (1 << subtype);
            int cell = image * Subtype.COUNT + subtype;
            probabilities[cell] = p;
            if (rows == cells.length) cells = Arrays.copyOf(cells, rows * 2);
            cells[rows++] = cell;
        }

        /**
         * A probability: digits with an optional fraction and exponent ({@code 0.5}, {@code .25}, {@code 1e-05}),
         * within [0, 1]. Checked here first because Float.parseFloat also takes blanks, NaN, hex and a trailing f.
         */
        private float probability(byte[] buf, int from, int to) throws LabelFormatException {
            int p = from, digits = 0;
            while (p < to && isDigit(buf[p])) { p++; digits++; }
            if (p < to && buf[p] == '.') {
                p++;
                while (p < to && isDigit(buf[p])) { p++; digits++; }
            }
            if (digits > 0 && p < to && (buf[p] == 'e' || buf[p] == 'E')) {
                p++;
                if (p < to && (buf[p] == '+' || buf[p] == '-')) p++;
                int exponentDigits = 0;
                while (p < to && isDigit(buf[p])) { p++; exponentDigits++; }
                if (exponentDigits == 0) digits = 0;
            }
            if (digits == 0 || p != to) throw error(line, "label " + shown(buf, from, to) + " is not a decimal number");
            float value = Float.parseFloat(new String(buf, from, to - from, StandardCharsets.US_ASCII));
            if (value > 1) throw error(line, "label " + shown(buf, from, to) + " is not a probability within [0, 1]");
            return value;
        }

        private static boolean isDigit(byte b) { return b >= '0' && b <= '9'; }

        Submission submission() throws LabelFormatException {
            int images = ids.size();
            requireAllSubtypes(seen, images);
            return new Submission(source, new Predictions(ids, Arrays.copyOf(probabilities, images * Subtype.COUNT)),
                    Arrays.copyOf(cells, rows));
        }
    }
}
