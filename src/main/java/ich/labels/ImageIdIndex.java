package ich.labels;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Image ids interned by their bytes, numbered 0, 1, 2... in first-seen order.
 *
 * <p>Open addressing (linear probing) over a power-of-two table of entry numbers, with the ids' bytes packed
 * into one array: no String or boxed key per id, so interning the 674k ids of the RSNA label file costs a few
 * arrays rather than millions of objects. Ids are opaque bytes (RSNA's are {@code ID_} and 9 hex digits, other
 * data sets differ); they are decoded as UTF-8 only when asked for as Strings.
 */
public final class ImageIdIndex {
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private byte[] bytes = new byte[1 << 12];
    /** Entry i's bytes are bytes[starts[i], starts[i + 1]). */
    private int[] starts = new int[1 << 8];
    private int[] hashes = new int[1 << 8];
    /** Entry number + 1 per slot; 0 is an empty slot. Kept at most half full. */
    private int[] slots = new int[1 << 9];
    private int size;
    private volatile List<String> strings;

    public ImageIdIndex() {}

    /** An index of these ids, in this order. */
    public static ImageIdIndex of(List<String> ids) {
        ImageIdIndex index = new ImageIdIndex();
        for (String id : ids) {
            byte[] b = id.getBytes(StandardCharsets.UTF_8);
            int before = index.size;
            index.intern(b, 0, b.length);
            if (index.size == before) throw new IllegalArgumentException("image id " + id + " appears twice");
        }
        return index;
    }

    public int size() { return size; }

    /** The number of the id {@code b[off, off + len)}, adding it when new. */
    public int intern(byte[] b, int off, int len) {
        int h = hash(b, off, len);
        int mask = slots.length - 1;
        for (int slot = h & mask; ; slot = (slot + 1) & mask) {
            int entry = slots[slot] - 1;
            if (entry < 0) {
                slots[slot] = add(b, off, len, h) + 1;
                if (size * 2 > slots.length) rehash();
                return size - 1;
            }
            if (hashes[entry] == h && equalsAt(entry, b, off, len)) return entry;
        }
    }

    /** The number of the id {@code b[off, off + len)}, or -1. */
    public int indexOf(byte[] b, int off, int len) {
        int h = hash(b, off, len);
        int mask = slots.length - 1;
        for (int slot = h & mask; ; slot = (slot + 1) & mask) {
            int entry = slots[slot] - 1;
            if (entry < 0) return -1;
            if (hashes[entry] == h && equalsAt(entry, b, off, len)) return entry;
        }
    }

    /** The number of this id, or -1. */
    public int indexOf(String id) {
        byte[] b = id.getBytes(StandardCharsets.UTF_8);
        return indexOf(b, 0, b.length);
    }

    /** The number in {@code other} of this index's id {@code entry}, or -1: a lookup without a String. */
    public int indexIn(ImageIdIndex other, int entry) {
        return other.indexOf(bytes, starts[entry], starts[entry + 1] - starts[entry]);
    }

    /** Whether id {@code entry} is {@code b[off, off + len)}. */
    boolean equalsAt(int entry, byte[] b, int off, int len) {
        int start = starts[entry];
        return starts[entry + 1] - start == len && Arrays.equals(bytes, start, start + len, b, off, off + len);
    }

    public String id(int entry) {
        List<String> cached = strings;
        if (cached != null) return cached.get(entry);
        Objects.checkIndex(entry, size);
        return new String(bytes, starts[entry], starts[entry + 1] - starts[entry], StandardCharsets.UTF_8);
    }

    /** The UTF-8 bytes of id {@code entry}, appended to {@code out} at {@code pos}; returns the new position. */
    int copyTo(int entry, byte[] out, int pos) {
        int start = starts[entry], len = starts[entry + 1] - start;
        System.arraycopy(bytes, start, out, pos, len);
        return pos + len;
    }

    int byteLength(int entry) { return starts[entry + 1] - starts[entry]; }

    /** All ids as Strings in entry order; decoded once, on first use. */
    public List<String> ids() {
        List<String> cached = strings;
        if (cached == null) {
            String[] decoded = new String[size];
            for (int i = 0; i < size; i++) decoded[i] = new String(bytes, starts[i], starts[i + 1] - starts[i], StandardCharsets.UTF_8);
            cached = List.of(decoded);
            strings = cached;
        }
        return cached;
    }

    private int add(byte[] b, int off, int len, int h) {
        if (size + 2 > starts.length) {
            starts = Arrays.copyOf(starts, starts.length * 2);
            hashes = Arrays.copyOf(hashes, hashes.length * 2);
        }
        int start = starts[size];
        if (start + len > bytes.length) bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, start + len));
        System.arraycopy(b, off, bytes, start, len);
        hashes[size] = h;
        starts[size + 1] = start + len;
        strings = null;
        return size++;
    }

    private void rehash() {
        int[] bigger = new int[slots.length * 2];
        int mask = bigger.length - 1;
        for (int entry = 0; entry < size; entry++) {
            int slot = hashes[entry] & mask;
            while (bigger[slot] != 0) slot = (slot + 1) & mask;
            bigger[slot] = entry + 1;
        }
        slots = bigger;
    }

    /** A multiply-xorshift hash over 8 bytes at a time: ids are short, so this is a handful of multiplies. */
    static int hash(byte[] b, int off, int len) {
        long h = len * GOLDEN;
        int i = 0;
        for (; i + 8 <= len; i += 8) {
            h = (h ^ (long) LONGS.get(b, off + i)) * GOLDEN;
            h ^= h >>> 32;
        }
        long tail = 0;
        for (int shift = 0; i < len; i++, shift += 8) tail |= (b[off + i] & 0xFFL) << shift;
        h = (h ^ tail) * 0xBF58476D1CE4E5B9L;
        h ^= h >>> 31;
        h *= GOLDEN;
        return (int) (h >>> 32);
    }
}
