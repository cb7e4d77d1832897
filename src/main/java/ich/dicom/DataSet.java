package ich.dicom;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One DICOM data set (the top level or a sequence item). Values are not copied: each element records
 * where its value lies in the backing segment (the mapped file, or the inflated bytes of a deflated file).
 */
public final class DataSet {
    private final MemorySegment data;
    private final ByteOrder order;
    private final String file;

    private int size;
    private int[] tags = new int[32];
    private VR[] vrs = new VR[32];
    private long[] offsets = new long[32];
    private int[] lengths = new int[32];
    /** For SQ: {@code List<DataSet>}; for encapsulated Pixel Data: {@link Fragments}; else null. */
    private Object[] nested = new Object[32];
    /** True while tags arrived in ascending order, as PS3.5 7.1 requires: lookups can then bisect. */
    private boolean ascending = true;

    DataSet(MemorySegment data, ByteOrder order, String file) {
        this.data = data;
        this.order = order;
        this.file = file;
    }

    void add(int tag, VR vr, long valueOffset, int length, Object nestedValue) {
        if (size == tags.length) {
            int n = size * 2;
            tags = Arrays.copyOf(tags, n);
            vrs = Arrays.copyOf(vrs, n);
            offsets = Arrays.copyOf(offsets, n);
            lengths = Arrays.copyOf(lengths, n);
            nested = Arrays.copyOf(nested, n);
        }
        if (size > 0 && Integer.compareUnsigned(tags[size - 1], tag) >= 0) ascending = false;
        tags[size] = tag;
        vrs[size] = vr;
        offsets[size] = valueOffset;
        lengths[size] = length;
        nested[size] = nestedValue;
        size++;
    }

    /** Number of elements in this data set (not counting nested ones). */
    public int size() { return size; }

    public int tagAt(int i) { return tags[i]; }

    public VR vrAt(int i) { return vrs[i]; }

    public ByteOrder order() { return order; }

    String file() { return file; }

    private int indexOf(int tag) {
        if (!ascending) { // out-of-order files exist; they are read, only more slowly
            for (int i = 0; i < size; i++) if (tags[i] == tag) return i;
            return -1;
        }
        int lo = 0, hi = size - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            int c = Integer.compareUnsigned(tags[mid], tag);
            if (c < 0) lo = mid + 1;
            else if (c > 0) hi = mid - 1;
            else return mid;
        }
        return -1;
    }

    public boolean contains(int tag) { return indexOf(tag) >= 0; }

    /** VR as encoded (explicit VR) or as known to the reader (implicit VR), or null when absent. */
    public VR vr(int tag) {
        int i = indexOf(tag);
        return i < 0 ? null : vrs[i];
    }

    /** Value length in bytes, -1 for undefined length, or -2 when absent. */
    public int length(int tag) {
        int i = indexOf(tag);
        return i < 0 ? -2 : lengths[i];
    }

    /** Byte offset of the value within the backing data (the file, for non-deflated syntaxes). */
    public long valueOffset(int tag) {
        int i = indexOf(tag);
        return i < 0 ? -1 : offsets[i];
    }

    /**
     * The raw value bytes (a view, not a copy), or null when absent, of undefined length, or not loaded
     * (the Pixel Data of a data set read by {@link DicomFile#open}: use {@link DicomFile#pixelData()}).
     */
    public MemorySegment value(int tag) {
        int i = indexOf(tag);
        if (i < 0 || lengths[i] < 0 || offsets[i] + lengths[i] > data.byteSize()) return null;
        return data.asSlice(offsets[i], lengths[i]);
    }

    /** Sequence items, or an empty list when absent. */
    @SuppressWarnings("unchecked")
    public List<DataSet> sequence(int tag) {
        int i = indexOf(tag);
        if (i < 0 || !(nested[i] instanceof List<?> items)) return List.of();
        return (List<DataSet>) items;
    }

    /** The fragments of encapsulated Pixel Data (PS3.5 A.4), or null for native pixel data. */
    public Fragments fragments(int tag) {
        int i = indexOf(tag);
        return i < 0 || !(nested[i] instanceof Fragments f) ? null : f;
    }

    MemorySegment data() { return data; }

    // ---- strings ----

    /** The whole string value with trailing spaces/NULs removed (PS3.5 6.2 padding), or null when absent. */
    public String string(int tag) {
        int i = indexOf(tag);
        if (i < 0 || lengths[i] < 0) return null;
        int n = lengths[i];
        long off = offsets[i];
        while (n > 0) {
            byte b = data.get(ValueLayout.JAVA_BYTE, off + n - 1);
            if (b != ' ' && b != 0) break;
            n--;
        }
        byte[] bytes = new byte[n];
        MemorySegment.copy(data, ValueLayout.JAVA_BYTE, off, bytes, 0, n);
        return new String(bytes, charset()).strip();
    }

    private Charset charset() {
        // (0008,0005) Specific Character Set: only UTF-8 matters for the identifiers we read; default repertoire otherwise.
        return StandardCharsets.ISO_8859_1;
    }

    /** Backslash-separated values of a string element (PS3.5 6.4), each trimmed; empty when absent. */
    public String[] strings(int tag) {
        String s = string(tag);
        if (s == null || s.isEmpty()) return new String[0];
        String[] parts = s.split("\\\\", -1);
        for (int k = 0; k < parts.length; k++) parts[k] = parts[k].strip();
        return parts;
    }

    // ---- numbers ----

    /**
     * All values of a numeric element as doubles: DS/IS (decimal strings, "00036\00036" gives [36, 36]),
     * US/SS/UL/SL/FL/FD (binary). For implicit VR, {@code implicitVr} says how to read it.
     * Empty when absent or zero length.
     */
    public double[] numbers(int tag, VR implicitVr) throws DicomFormatException {
        int i = indexOf(tag);
        if (i < 0 || lengths[i] <= 0) return new double[0];
        VR vr = vrs[i] == VR.NONE || vrs[i] == VR.UN ? implicitVr : vrs[i];
        long off = offsets[i];
        int n = lengths[i];
        switch (vr) {
            case DS, IS -> {
                String[] parts = strings(tag);
                List<Double> values = new ArrayList<>(parts.length);
                for (String p : parts) {
                    if (p.isEmpty()) continue;
                    try {
                        values.add(Double.parseDouble(p));
                    } catch (NumberFormatException e) {
                        throw new DicomFormatException(file, off, tag, "invalid " + vr + " value \"" + p + "\"");
                    }
                }
                return values.stream().mapToDouble(Double::doubleValue).toArray();
            }
            case US, SS, OW -> {
                double[] out = new double[n / 2];
                for (int k = 0; k < out.length; k++) {
                    short v = data.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(order), off + 2L * k);
                    out[k] = vr == VR.SS ? v : Short.toUnsignedInt(v);
                }
                return out;
            }
            case UL, SL, OL -> {
                double[] out = new double[n / 4];
                for (int k = 0; k < out.length; k++) {
                    int v = data.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(order), off + 4L * k);
                    out[k] = vr == VR.SL ? v : Integer.toUnsignedLong(v);
                }
                return out;
            }
            case FL, OF -> {
                double[] out = new double[n / 4];
                for (int k = 0; k < out.length; k++)
                    out[k] = data.get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(order), off + 4L * k);
                return out;
            }
            case FD, OD -> {
                double[] out = new double[n / 8];
                for (int k = 0; k < out.length; k++)
                    out[k] = data.get(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(order), off + 8L * k);
                return out;
            }
            default -> throw new DicomFormatException(file, off, tag, "expected a numeric value, found VR " + vr);
        }
    }

    /** First value of a numeric element, or {@code fallback} when absent or empty. */
    public double number(int tag, VR implicitVr, double fallback) throws DicomFormatException {
        double[] v = numbers(tag, implicitVr);
        return v.length == 0 ? fallback : v[0];
    }

    /** First value of a US element, or {@code fallback} when absent. */
    public int us(int tag, int fallback) throws DicomFormatException {
        double[] v = numbers(tag, VR.US);
        return v.length == 0 ? fallback : (int) v[0];
    }

    /**
     * A 16-bit value whose VR depends on Pixel Representation (US when 0, SS when 1; PS3.3 C.7.5.1.1.2),
     * e.g. (0028,0120) Pixel Padding Value. Pixel Representation decides even when the file encodes the other
     * VR: the value is compared with stored pixel values, which Pixel Representation defines.
     */
    public Integer usOrSs(int tag, int pixelRepresentation) throws DicomFormatException {
        int i = indexOf(tag);
        if (i < 0 || lengths[i] < 2) return null;
        int raw = (int) numbers(tag, VR.US)[0];
        return pixelRepresentation == 1 ? (int) (short) raw : raw;
    }
}
