package ich.dicom;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads data sets from a byte segment (PS3.5 Section 7). Every length is checked against the bytes that
 * remain before it is used, nesting is bounded, and nothing is allocated in proportion to a declared
 * length: values stay where they are in the segment.
 */
final class DicomParser {
    private static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt U32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final int UNDEFINED_LENGTH = 0xFFFFFFFF;
    /** Deeper nesting than any real IOD needs; the bound keeps hostile files from exhausting the stack. */
    static final int MAX_DEPTH = 48;

    /**
     * Sequences whose VR must be known to parse implicit VR data sets with defined-length sequences
     * (PS3.6 VR SQ). Unknown defined-length elements stay raw bytes, which is safe: we never need their content.
     */
    private static final int[] KNOWN_SEQUENCES = sorted(

            Tag.MODALITY_LUT_SEQUENCE, Tag.VOI_LUT_SEQUENCE, Tag.SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            Tag.PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, Tag.PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            Tag.FRAME_VOI_LUT_SEQUENCE, Tag.PLANE_POSITION_SEQUENCE, Tag.PLANE_ORIENTATION_SEQUENCE,
            Tag.PIXEL_MEASURES_SEQUENCE,
            0x00081110, 0x00081111, 0x00081115, 0x00081120, 0x00081140, 0x00082112, 0x00089215, 0x00081032,
            0x00081250, 0x00400275, 0x00400260, 0x00209111, 0x00209071, 0x00189341, 0x00189346, 0x00189321,
            0x00189301, 0x00189326, 0x00189325, 0x00189304, 0x00189308, 0x00189312, 0x00189314);

    private static int[] sorted(int... tags) {
        int[] t = tags.clone();
        java.util.Arrays.sort(t);
        return t;
    }

    private final MemorySegment seg;
    private final String file;
    private long pos;
    /** Header mode: {@code seg} is the start of a file of {@code fileSize} bytes; stop at the top-level Pixel Data. */
    private long fileSize = -1;
    private boolean reachedPixelData;

    DicomParser(MemorySegment seg, String file) {
        this.seg = seg;
        this.file = file;
    }

    long position() { return pos; }

    /** In header mode: whether parsing stopped at the top-level Pixel Data element. */
    boolean reachedPixelData() { return reachedPixelData; }

    private DicomFormatException error(long at, int tag, String problem) {
        return new DicomFormatException(file, at, tag, problem);
    }

    int u16(long at, boolean big) { return Short.toUnsignedInt(seg.get(big ? U16_BE : U16_LE, at)); }

    int u32(long at, boolean big) { return seg.get(big ? U32_BE : U32_LE, at); }

    int tagAt(long at, boolean big) { return (u16(at, big) << 16) | u16(at + 2, big); }

    /**
     * File Meta Information (PS3.10 7.1): always Explicit VR Little Endian, group 0002 only. Stops at the
     * first element of another group, which is where the data set starts.
     */
    DataSet parseFileMeta(long start) throws DicomFormatException {
        DataSet meta = new DataSet(seg, ByteOrder.LITTLE_ENDIAN, file);
        pos = start;
        long end = seg.byteSize();
        while (pos + 8 <= end && u16(pos, false) == 0x0002) {
            readElement(meta, end, true, false, 0, false);
        }
        return meta;
    }

    /** The data set from {@code start} to the end of the segment. */
    DataSet parseDataSet(long start, boolean explicitVr, boolean bigEndian) throws DicomFormatException {
        pos = start;
        return parseItems(seg.byteSize(), explicitVr, bigEndian, 0, false);
    }

    /**
     * The elements before the top-level Pixel Data, from a segment holding only the first bytes of a file
     * of {@code fileSize} bytes. The Pixel Data element is recorded (its length checked against the file
     * size) but not read. A failure may only mean that the header is longer than the segment: callers then
     * parse the whole file, which reports real errors.
     */
    DataSet parseHeader(long start, boolean explicitVr, boolean bigEndian, long fileSize) throws DicomFormatException {
        this.fileSize = fileSize;
        this.reachedPixelData = false;
        pos = start;
        return parseItems(seg.byteSize(), explicitVr, bigEndian, 0, false);
    }

    /**
     * Elements until {@code end}, or, for an item of undefined length, until its Item Delimitation Item.
     */
    private DataSet parseItems(long end, boolean explicitVr, boolean big, int depth, boolean undefinedItem)
            throws DicomFormatException {
        DataSet ds = new DataSet(seg, big ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN, file);
        while (pos < end) {
            if (end - pos < 8) throw error(pos, Tag.NONE, "truncated data element header: " + (end - pos) + " bytes left");
            int tag = tagAt(pos, big);
            if (tag == Tag.ITEM_DELIMITATION) {
                if (!undefinedItem) throw error(pos, tag, "Item Delimitation Item outside an item of undefined length");
                pos += 8;
                return ds;
            }
            if (tag == Tag.ITEM || tag == Tag.SEQUENCE_DELIMITATION) {
                throw error(pos, tag, undefinedItem ? "item of undefined length not closed by (FFFE,E00D) Item Delimitation Item"
                        : "sequence item tag where a data element was expected");
            }
            readElement(ds, end, explicitVr, big, depth, true);
        }
        if (undefinedItem) throw error(pos, Tag.NONE, "item of undefined length not closed before the end of its sequence or file");
        return ds;
    }

    private void readElement(DataSet ds, long end, boolean explicitVr, boolean big, int depth, boolean allowNested)
            throws DicomFormatException {
        long start = pos;
        int tag = tagAt(pos, big);
        VR vr;
        long valuePos;
        int length;
        if (explicitVr) {
            int b0 = seg.get(ValueLayout.JAVA_BYTE, pos + 4) & 0xFF, b1 = seg.get(ValueLayout.JAVA_BYTE, pos + 5) & 0xFF;
            vr = VR.of(b0, b1);
            if (vr == null) {
                throw error(start, tag, String.format("invalid VR bytes 0x%02X 0x%02X in an explicit VR data set (PS3.5 7.1.2)", b0, b1));
            }
            if (vr.hasLongLength()) {
                if (end - pos < 12) throw error(start, tag, "truncated data element header: " + (end - pos) + " bytes left");
                length = u32(pos + 8, big);
                valuePos = pos + 12;
            } else {
                length = u16(pos + 6, big);
                valuePos = pos + 8;
            }
        } else {
            length = u32(pos + 4, big);
            valuePos = pos + 8;
            vr = java.util.Arrays.binarySearch(KNOWN_SEQUENCES, tag) >= 0 ? VR.SQ : VR.NONE;
        }

        if (fileSize >= 0 && depth == 0 && tag == Tag.PIXEL_DATA) {
            long remaining = fileSize - valuePos;
            if (length != UNDEFINED_LENGTH && Integer.toUnsignedLong(length) > remaining) {
                throw error(start, tag, "value length " + Integer.toUnsignedLong(length) + " exceeds the " + Math.max(0, remaining) + " bytes that remain");
            }
            ds.add(tag, vr, valuePos, length, null);
            reachedPixelData = true;
            pos = end;
            return;
        }

        if (length == UNDEFINED_LENGTH) {
            if (!allowNested) throw error(start, tag, "undefined length in the File Meta Information");
            if (depth >= MAX_DEPTH) throw error(start, tag, "sequences nested deeper than " + MAX_DEPTH + " levels");
            pos = valuePos;
            if (tag == Tag.PIXEL_DATA && depth == 0) {
                ds.add(tag, vr, valuePos, -1, readFragments(tag, end, big));
            } else if (vr == VR.SQ || vr == VR.NONE) {
                ds.add(tag, VR.SQ, valuePos, -1, readSequence(tag, end, -1, explicitVr, big, depth));
            } else if (vr == VR.UN) {
                // PS3.5 6.2.2: a UN element of undefined length holds a sequence in Implicit VR Little Endian.
                ds.add(tag, VR.SQ, valuePos, -1, readSequence(tag, end, -1, false, false, depth));
            } else {
                throw error(start, tag, "undefined length is not allowed for VR " + vr);
            }
            return;
        }

        long len = Integer.toUnsignedLong(length);
        if (len > end - valuePos) {
            throw error(start, tag, "value length " + len + " exceeds the " + Math.max(0, end - valuePos) + " bytes that remain");
        }
        if (length < 0) throw error(start, tag, "value length " + len + " is 2 GiB or more, which this reader does not support");
        if (allowNested && vr == VR.SQ) {
            if (depth >= MAX_DEPTH) throw error(start, tag, "sequences nested deeper than " + MAX_DEPTH + " levels");
            pos = valuePos;
            ds.add(tag, vr, valuePos, length, readSequence(tag, valuePos + len, valuePos + len, explicitVr, big, depth));
            pos = valuePos + len;
            return;
        }
        ds.add(tag, vr, valuePos, length, null);
        pos = valuePos + len;
    }

    /**
     * Sequence items (PS3.5 7.5). {@code sequenceEnd} is -1 for undefined length (closed by a Sequence
     * Delimitation Item), else the end of the value.
     */
    private List<DataSet> readSequence(int sqTag, long end, long sequenceEnd, boolean explicitVr, boolean big, int depth)
            throws DicomFormatException {
        List<DataSet> items = new ArrayList<>();
        long limit = sequenceEnd >= 0 ? sequenceEnd : end;
        while (true) {
            if (sequenceEnd >= 0 && pos == sequenceEnd) return items;
            if (limit - pos < 8) {
                throw error(pos, sqTag, "sequence not closed: " + (limit - pos) + " bytes left where an item or (FFFE,E0DD) was expected");
            }
            int tag = tagAt(pos, big);
            int length = u32(pos + 4, big);
            if (tag == Tag.SEQUENCE_DELIMITATION && sequenceEnd < 0) {
                pos += 8;
                return items;
            }
            if (tag != Tag.ITEM) {
                throw error(pos, sqTag, "expected an item (FFFE,E000) in the sequence, found " + Tag.toString(tag));
            }
            pos += 8;
            if (length == UNDEFINED_LENGTH) {
                items.add(parseItems(limit, explicitVr, big, depth + 1, true));
            } else {
                long len = Integer.toUnsignedLong(length);
                if (len > limit - pos) {
                    throw error(pos - 8, sqTag, "item length " + len + " exceeds the " + (limit - pos) + " bytes that remain");
                }
                long itemEnd = pos + len;
                items.add(parseItems(itemEnd, explicitVr, big, depth + 1, false));
                pos = itemEnd;
            }
        }
    }

    /** Encapsulated Pixel Data (PS3.5 A.4): Basic Offset Table item, fragment items, Sequence Delimitation Item. */
    private Fragments readFragments(int pixelTag, long end, boolean big) throws DicomFormatException {
        if (big) throw error(pos, pixelTag, "encapsulated Pixel Data in a big endian data set (PS3.5 A.4 requires little endian)");
        long botOffset = -1;
        int botLength = 0;
        int n = 0;
        long[] items = new long[8], values = new long[8];
        int[] lengths = new int[8];
        while (true) {
            if (end - pos < 8) throw error(pos, pixelTag, "encapsulated Pixel Data not closed by (FFFE,E0DD): " + (end - pos) + " bytes left");
            int tag = tagAt(pos, false);
            int length = u32(pos + 4, false);
            if (tag == Tag.SEQUENCE_DELIMITATION) {
                pos += 8;
                break;
            }
            if (tag != Tag.ITEM) throw error(pos, pixelTag, "expected a fragment item (FFFE,E000), found " + Tag.toString(tag));
            if (length == UNDEFINED_LENGTH) throw error(pos, pixelTag, "fragment item of undefined length");
            long len = Integer.toUnsignedLong(length);
            if (len > end - pos - 8) {
                throw error(pos, pixelTag, "fragment length " + len + " exceeds the " + (end - pos - 8) + " bytes that remain");
            }
            if (botOffset < 0) {
                botOffset = pos + 8;
                botLength = length;
            } else {
                if (n == items.length) {
                    items = java.util.Arrays.copyOf(items, n * 2);
                    values = java.util.Arrays.copyOf(values, n * 2);
                    lengths = java.util.Arrays.copyOf(lengths, n * 2);
                }
                items[n] = pos;
                values[n] = pos + 8;
                lengths[n] = length;
                n++;
            }
            pos += 8 + len;
        }
        if (botOffset < 0) throw error(pos, pixelTag, "encapsulated Pixel Data without a Basic Offset Table item");
        return new Fragments(botOffset, botLength, java.util.Arrays.copyOf(items, n), java.util.Arrays.copyOf(values, n),
                java.util.Arrays.copyOf(lengths, n));
    }
}
