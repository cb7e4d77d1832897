package ich.labels;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * RSNA-like training label files for tests and the benchmark: ids {@code ID_} + 9 distinct hex digits, each
 * image's six rows in the real file's order (epidural ... subdural, any), about {@code positiveFraction} of
 * the images with a hemorrhage, and some identical duplicate rows sprinkled in.
 */
public final class SyntheticLabels {
    /** The order of an image's rows in stage_1_train.csv and stage_2_train.csv. */
    public static final Subtype[] RSNA_ROW_ORDER = {Subtype.EPIDURAL, Subtype.INTRAPARENCHYMAL, Subtype.INTRAVENTRICULAR,
            Subtype.SUBARACHNOID, Subtype.SUBDURAL, Subtype.ANY};

    /** What a correct reader must find in the file. */
    public record Expected(List<String> imageIds, byte[] labelBits, long lines, long duplicates) {
        public int positives(Subtype s) {
            int n = 0;
            for (byte b : labelBits) n += (b >>> s.ordinal()) & 1;
            return n;
        }
    }

    private SyntheticLabels() {}

    /**
     * Writes {@code images} images; after each, with probability {@code duplicateRate}, a copy of a random row
     * of a random earlier image. {@code crlf} ends lines with CR LF.
     */
    public static Expected write(Path file, int images, double positiveFraction, double duplicateRate, boolean crlf, long seed)
            throws IOException {
        SplittableRandom random = new SplittableRandom(seed);
        List<String> ids = new ArrayList<>(images);
        byte[] bits = new byte[images];
        long lines = 0, duplicates = 0;
        byte[] eol = crlf ? new byte[]{'\r', '\n'} : new byte[]{'\n'};
        // An odd multiplier is a bijection modulo 2^36: distinct ids that look random.
        long offset = random.nextLong(1L << 36);
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16)) {
            out.write("ID,Label".getBytes(StandardCharsets.US_ASCII));
            out.write(eol);
            for (int i = 0; i < images; i++) {
                String id = "ID_" + String.format("%09x", (i * 0x9E3779B97L + offset) & ((1L << 36) - 1));
                ids.add(id);
                bits[i] = randomLabels(random, positiveFraction);
                for (Subtype s : RSNA_ROW_ORDER) {
                    row(out, id, s, (bits[i] >>> s.ordinal()) & 1, eol);
                    lines++;
                }
                if (random.nextDouble() < duplicateRate) {
                    int j = random.nextInt(i + 1);
                    Subtype s = Subtype.of(random.nextInt(Subtype.COUNT));
                    row(out, ids.get(j), s, (bits[j] >>> s.ordinal()) & 1, eol);
                    lines++;
                    duplicates++;
                }
            }
        }
        return new Expected(List.copyOf(ids), bits, lines, duplicates);
    }

    /** Negative, or {@code any} and one to five subtypes, each likely about as in RSNA (subdural most, epidural least). */
    public static byte randomLabels(SplittableRandom random, double positiveFraction) {
        if (random.nextDouble() >= positiveFraction) return 0;
        double[] likelihood = {0, 0.03, 0.34, 0.24, 0.33, 0.44};
        int bits = 0;
        while (bits == 0) {
            for (int s = 1; s < Subtype.COUNT; s++) if (random.nextDouble() < likelihood[s]) bits |= 1 << s;
        }
        return (byte) (bits | Subtype.ANY.bit());
    }

    private static void row(OutputStream out, String id, Subtype s, int label, byte[] eol) throws IOException {
        out.write((id + "_" + s.csvName() + "," + label).getBytes(StandardCharsets.US_ASCII));
        out.write(eol);
    }
}
