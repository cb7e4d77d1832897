package ich.labels;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * The six RSNA labels, in the order of the label matrix and of the network's outputs: {@code any} first, then
 * the five hemorrhage subtypes alphabetically (the order a pandas pivot of the label file gives).
 */
public enum Subtype {
    ANY("any"),
    EPIDURAL("epidural"),
    INTRAPARENCHYMAL("intraparenchymal"),
    INTRAVENTRICULAR("intraventricular"),
    SUBARACHNOID("subarachnoid"),
    SUBDURAL("subdural");

    /** How many subtypes there are: the columns of the label matrix. */
    public static final int COUNT = 6;
    /** The bits of a label byte when all six subtypes are set. */
    static final int ALL_BITS = (1 << COUNT) - 1;

    private static final Subtype[] VALUES = values();

    private final String csvName;
    private final byte[] csvBytes;

    Subtype(String csvName) {
        this.csvName = csvName;
        this.csvBytes = csvName.getBytes(StandardCharsets.US_ASCII);
    }

    /** The name as it ends the CSV IDs, e.g. {@code intraventricular} in {@code ID_63eb1e259_intraventricular}. */
    public String csvName() { return csvName; }

    /** The bit of this subtype in a per-image label byte. */
    public int bit() { return 1 << ordinal(); }

    public static Subtype of(int ordinal) { return VALUES[ordinal]; }

    /** The subtype with this CSV name, or null. */
    public static Subtype fromCsvName(String name) {
        for (Subtype s : VALUES) if (s.csvName.equals(name)) return s;
        return null;
    }

    /** The CSV names in matrix order, for messages and headers. */
    public static List<String> csvNames() {
        return Arrays.stream(VALUES).map(Subtype::csvName).toList();
    }

    /**
     * The ordinal of the subtype spelled by {@code bytes[from, to)}, or -1. Runs once per CSV line, so it
     * dispatches on the length (and one distinguishing letter) before comparing the bytes.
     */
    static int match(byte[] bytes, int from, int to) {
        Subtype candidate = switch (to - from) {
            case 3 -> ANY;
            case 8 -> bytes[from] == 'e' ? EPIDURAL : SUBDURAL;
            case 12 -> SUBARACHNOID;
            case 16 -> bytes[from + 5] == 'p' ? INTRAPARENCHYMAL : INTRAVENTRICULAR;
            default -> null;
        };
        if (candidate == null) return -1;
        byte[] name = candidate.csvBytes;
        return Arrays.equals(bytes, from, to, name, 0, name.length) ? candidate.ordinal() : -1;
    }
}
