package ich.dicom;

import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.zip.Deflater;

/**
 * Test-only writer of DICOM byte streams, following PS3.5 and PS3.10 closely enough that each rule can be
 * broken on purpose. Elements are written in the order they are called (callers keep tags ascending,
 * PS3.5 7.1); nothing is validated.
 *
 * <pre>{@code
 * byte[] file = DicomBytes.part10(DicomBytes.EXPLICIT_LE)
 *         .us(Tag.ROWS, 2).us(Tag.COLUMNS, 2)
 *         .sequence(0x00081115, true).item(false).str(0x00081150, "UI", "1.2.3").end().end()
 *         .bytes();
 * }</pre>
 */
final class DicomBytes {
    static final String IMPLICIT_LE = "1.2.840.10008.1.2";
    static final String EXPLICIT_LE = "1.2.840.10008.1.2.1";
    static final String DEFLATED_LE = "1.2.840.10008.1.2.1.99";
    static final String EXPLICIT_BE = "1.2.840.10008.1.2.2";
    static final String RLE = "1.2.840.10008.1.2.5";
    static final String JPEG_LS = "1.2.840.10008.1.2.4.80";

    /** The data set encodings of PS3.5 7.1 (explicit VR) and 7.1.3 (implicit VR), with their byte order (7.3). */
    enum Encoding {
        EXPLICIT_LE(true, false), EXPLICIT_BE(true, true), IMPLICIT_LE(false, false);

        final boolean explicit, big;

        Encoding(boolean explicit, boolean big) {
            this.explicit = explicit;
            this.big = big;
        }
    }

    static final int UNDEFINED_LENGTH = 0xFFFFFFFF;

    /** An open sequence or item: where to patch its length (-1 for undefined length) and how to close it. */
    private record Open(int lengthAt, int delimiter, Encoding restore) {}

    private byte[] buf = new byte[1024];
    private int size;
    private Encoding enc;
    /** Where the data set starts (after the File Meta Information); the part that is deflated for A.5. */
    private int dataSetStart;
    private boolean deflate;
    private final Deque<Open> open = new ArrayDeque<>();

    private DicomBytes(Encoding enc) { this.enc = enc; }

    /** A bare data set: no preamble, no File Meta Information. */
    static DicomBytes dataSet(Encoding enc) { return new DicomBytes(enc); }

    /** PS3.10 7.1: 128-byte preamble, "DICM", File Meta Information; the data set follows in {@code tsUid}. */
    static DicomBytes part10(String tsUid) { return withFileMeta(tsUid, true); }

    /** File Meta Information without the preamble and "DICM" (not conformant, but seen in the wild). */
    static DicomBytes fileMetaWithoutPreamble(String tsUid) { return withFileMeta(tsUid, false); }

    private static DicomBytes withFileMeta(String tsUid, boolean preamble) {
        DicomBytes meta = new DicomBytes(Encoding.EXPLICIT_LE); // PS3.10 7.1: always Explicit VR Little Endian
        meta.ob(0x00020001, new byte[]{0, 1})
                .str(Tag.MEDIA_STORAGE_SOP_CLASS_UID, "UI", "1.2.840.10008.5.1.4.1.1.2")
                .str(0x00020003, "UI", "1.2.3.4.5.6.7.8.9")
                .str(Tag.TRANSFER_SYNTAX_UID, "UI", tsUid);
        DicomBytes d = new DicomBytes(Encoding.EXPLICIT_LE);
        if (preamble) d.raw(new byte[128]).raw("DICM".getBytes(StandardCharsets.US_ASCII));
        d.ul(Tag.FILE_META_GROUP_LENGTH, meta.size).raw(meta.bytes());
        d.enc = switch (tsUid) {
            case IMPLICIT_LE -> Encoding.IMPLICIT_LE;
            case EXPLICIT_BE -> Encoding.EXPLICIT_BE;
            default -> Encoding.EXPLICIT_LE; // PS3.5 A.4/A.5: every other syntax encodes the data set as explicit LE
        };
        d.deflate = tsUid.equals(DEFLATED_LE);
        d.dataSetStart = d.size;
        return d;
    }

    /** Bytes written before the data set (preamble and File Meta), i.e. where deflated data starts. */
    int dataSetStart() { return dataSetStart; }

    /** Bytes written so far: the offset of whatever is written next (before any deflation). */
    int position() { return size; }

    // ---- primitives ----

    DicomBytes raw(byte... b) {
        ensure(b.length);
        System.arraycopy(b, 0, buf, size, b.length);
        size += b.length;
        return this;
    }

    DicomBytes u16(int v) {
        return enc.big ? raw((byte) (v >> 8), (byte) v) : raw((byte) v, (byte) (v >> 8));
    }

    DicomBytes u32(int v) {
        return enc.big ? raw((byte) (v >>> 24), (byte) (v >> 16), (byte) (v >> 8), (byte) v)
                : raw((byte) v, (byte) (v >> 8), (byte) (v >> 16), (byte) (v >>> 24));
    }

    /** PS3.5 7.1: group number then element number, each in the data set's byte order. */
    DicomBytes tag(int tag) { return u16(tag >>> 16).u16(tag & 0xFFFF); }

    /**
     * The header of a data element (PS3.5 7.1.1-7.1.3) with any length, e.g. an odd, undefined or hostile one.
     * Explicit VR: tag, VR, then a 16-bit length, or 2 reserved bytes and a 32-bit length for the VRs of
     * Table 7.1-1. Implicit VR: tag and a 32-bit length; {@code vr} is not written.
     */
    DicomBytes header(int tag, String vr, int length) {
        tag(tag);
        if (!enc.explicit) return u32(length);
        raw(vr.getBytes(StandardCharsets.US_ASCII));
        VR v = VR.valueOf(vr);
        return v.hasLongLength() ? u16(0).u32(length) : u16(length);
    }

    /** An element whose value is written as given; an odd length stays odd (PS3.5 7.1.1 requires even). */
    DicomBytes rawElement(int tag, String vr, byte[] value) { return header(tag, vr, value.length).raw(value); }

    /** An element padded to even length with {@code pad} (PS3.5 7.1.1, 6.2). */
    DicomBytes element(int tag, String vr, byte[] value, byte pad) {
        if ((value.length & 1) == 1) {
            value = Arrays.copyOf(value, value.length + 1);
            value[value.length - 1] = pad;
        }
        return rawElement(tag, vr, value);
    }

    // ---- typed values ----

    /** A character string, padded with a trailing space, or a NUL for UI (PS3.5 6.2). */
    DicomBytes str(int tag, String vr, String value) {
        return element(tag, vr, value.getBytes(StandardCharsets.ISO_8859_1), (byte) (vr.equals("UI") ? 0 : ' '));
    }

    /** A character string of deliberately odd length: no padding. */
    DicomBytes oddStr(int tag, String vr, String value) {
        return rawElement(tag, vr, value.getBytes(StandardCharsets.ISO_8859_1));
    }

    /** DS (PS3.5 6.2): decimal strings, multiple values separated by backslashes (6.4). */
    DicomBytes ds(int tag, String... values) { return str(tag, "DS", String.join("\\", values)); }

    DicomBytes is(int tag, String... values) { return str(tag, "IS", String.join("\\", values)); }

    DicomBytes us(int tag, int... values) { return words(tag, "US", values); }

    DicomBytes ss(int tag, int... values) { return words(tag, "SS", values); }

    DicomBytes ul(int tag, int... values) {
        header(tag, "UL", 4 * values.length);
        for (int v : values) u32(v);
        return this;
    }

    /** OW (PS3.5 7.3): 16-bit words in the data set's byte order. */
    DicomBytes ow(int tag, short[] words) {
        int[] v = new int[words.length];
        for (int i = 0; i < v.length; i++) v[i] = words[i];
        return words(tag, "OW", v);
    }

    DicomBytes ob(int tag, byte[] value) { return element(tag, "OB", value, (byte) 0); }

    /** OV (PS3.5 6.2): 64-bit unsigned values, e.g. the Extended Offset Table (7FE0,0001). Little endian only. */
    DicomBytes ov(int tag, long... values) {
        header(tag, "OV", 8 * values.length);
        for (long v : values) u32((int) v).u32((int) (v >>> 32));
        return this;
    }

    private DicomBytes words(int tag, String vr, int[] values) {
        header(tag, vr, 2 * values.length);
        for (int v : values) u16(v);
        return this;
    }

    // ---- sequences (PS3.5 7.5) ----

    /**
     * Starts a sequence: explicit VR "SQ" or an implicit VR element. Of defined length (patched by
     * {@link #end()}) or undefined length, closed by a Sequence Delimitation Item (FFFE,E0DD) (7.5.1).
     */
    DicomBytes sequence(int tag, boolean definedLength) {
        header(tag, "SQ", definedLength ? 0 : UNDEFINED_LENGTH);
        return push(definedLength, Tag.SEQUENCE_DELIMITATION, enc);
    }

    /**
     * PS3.5 6.2.2: a VR UN element of undefined length holds a sequence encoded in Implicit VR Little
     * Endian, whatever the transfer syntax; its items are written so until {@link #end()}.
     */
    DicomBytes unSequence(int tag) {
        header(tag, "UN", UNDEFINED_LENGTH);
        Encoding outer = enc;
        enc = Encoding.IMPLICIT_LE;
        return push(false, Tag.SEQUENCE_DELIMITATION, outer);
    }

    /** Starts an item (FFFE,E000): defined length, or undefined length closed by (FFFE,E00D) (7.5.2). */
    DicomBytes item(boolean definedLength) {
        tag(Tag.ITEM).u32(definedLength ? 0 : UNDEFINED_LENGTH);
        return push(definedLength, Tag.ITEM_DELIMITATION, enc);
    }

    private DicomBytes push(boolean definedLength, int delimiter, Encoding restore) {
        open.push(new Open(definedLength ? size - 4 : -1, delimiter, restore));
        return this;
    }

    /** Closes the innermost sequence or item: patches its length, or writes its delimitation item. */
    DicomBytes end() {
        Open o = open.pop();
        if (o.lengthAt < 0) {
            tag(o.delimiter).u32(0);
        } else {
            int length = size - o.lengthAt - 4, keep = size;
            size = o.lengthAt;
            u32(length);
            size = keep;
        }
        enc = o.restore;
        return this;
    }

    // ---- encapsulated Pixel Data (PS3.5 A.4) ----

    /**
     * (7FE0,0010) OB of undefined length: a Basic Offset Table item holding {@code offsets} (empty when
     * there are none), one item per fragment (padded to even length), a Sequence Delimitation Item.
     */
    DicomBytes encapsulatedPixelData(int[] offsets, byte[]... fragments) {
        header(Tag.PIXEL_DATA, "OB", UNDEFINED_LENGTH);
        tag(Tag.ITEM).u32(4 * offsets.length);
        for (int o : offsets) u32(o);
        for (byte[] f : fragments) {
            byte[] even = Arrays.copyOf(f, (f.length + 1) & ~1);
            tag(Tag.ITEM).u32(even.length).raw(even);
        }
        return tag(Tag.SEQUENCE_DELIMITATION).u32(0);
    }

    /**
     * The offset of each fragment's item tag from the first fragment's item tag, as the Basic and Extended
     * Offset Tables count them (PS3.5 A.4): pick the entries of the fragments that start frames.
     */
    static long[] fragmentOffsets(byte[]... fragments) {
        long[] out = new long[fragments.length];
        long p = 0;
        for (int i = 0; i < fragments.length; i++) {
            out[i] = p;
            p += 8 + ((fragments[i].length + 1) & ~1);
        }
        return out;
    }

    // ---- result ----

    /** The stream; for Deflated Explicit VR Little Endian (PS3.5 A.5) the data set raw-deflated (RFC 1951). */
    byte[] bytes() {
        if (!open.isEmpty()) throw new IllegalStateException(open.size() + " sequences or items not closed");
        byte[] all = Arrays.copyOf(buf, size);
        if (!deflate) return all;
        byte[] head = Arrays.copyOf(all, dataSetStart);
        byte[] deflated = deflate(Arrays.copyOfRange(all, dataSetStart, size));
        byte[] out = Arrays.copyOf(head, head.length + deflated.length);
        System.arraycopy(deflated, 0, out, head.length, deflated.length);
        return out;
    }

    /** Raw deflate, no zlib header or checksum (PS3.5 A.5: "nowrap"). */
    static byte[] deflate(byte[] data) {
        Deflater d = new Deflater(Deflater.BEST_COMPRESSION, true);
        try {
            d.setInput(data);
            d.finish();
            byte[] out = new byte[data.length + 64];
            int n = 0;
            while (!d.finished()) {
                if (n == out.length) out = Arrays.copyOf(out, out.length * 2);
                n += d.deflate(out, n, out.length - n);
            }
            return Arrays.copyOf(out, n);
        } finally {
            d.end();
        }
    }

    private void ensure(int more) {
        if (size + more > buf.length) buf = Arrays.copyOf(buf, Math.max(buf.length * 2, size + more));
    }
}
