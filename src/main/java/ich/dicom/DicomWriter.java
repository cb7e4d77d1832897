package ich.dicom;

import ich.io.AtomicFile;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * Writes DICOM Part 10 files (PS3.10 7.1): a 128-byte preamble of zeros, {@code DICM}, the File Meta Information
 * in Explicit VR Little Endian with its group length, then the data set in Implicit VR Little Endian or Explicit VR
 * Little Endian.
 *
 * <p>Elements are collected first and written in ascending tag order (PS3.5 7.1) whatever the order of the calls;
 * setting a tag again replaces its value. Values are padded to even length (PS3.5 7.1.1): character strings with a
 * trailing space, UI with a NUL (6.2), binary values with a NUL. Several values of a string element are joined
 * with backslashes (6.4).
 *
 * <p>Checked: the tag is a data set tag (not File Meta, not an item tag), string values are printable ASCII
 * without backslashes and within the VR's maximum length (PS3.5 Table 6.2-1), and a value fits its length
 * field. Not checked: the character repertoire of UI. RSNA's anonymised CT files put {@code ID_...} strings into
 * UI elements and the synthetic data set copies them, so UI values need only fit in 64 characters.
 *
 * <pre>{@code
 * DicomWriter.ctImage(image).write(path, TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN);
 * }</pre>
 */
public final class DicomWriter {
    /** A UID under the UUID-derived root 2.25 (PS3.5 B.2), fixed for this writer. */
    public static final String IMPLEMENTATION_CLASS_UID = "2.25.14224303207536875970222257948330972550";
    public static final String IMPLEMENTATION_VERSION_NAME = "ICH_1";

    private static final int PREAMBLE = 128;
    /** Values at least this long are handed to the channel as they are, not copied into the header buffer. */
    private static final int INLINE_LIMIT = 4096;

    private record Element(int tag, VR vr, byte[] value) {}

    private final TreeMap<Integer, Element> elements = new TreeMap<>(Integer::compareUnsigned);

    public DicomWriter() {}

    // ---- values ----

    /** A character string element, one value per argument (none: an empty value). */
    public DicomWriter string(int tag, VR vr, String... values) {
        if (!vr.isString()) throw new IllegalArgumentException(vr + " is not a character string VR");
        int max = maxLength(vr);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < values.length; i++) {
            String v = values[i];
            if (values.length > 1 && !multiValued(vr)) {
                throw new IllegalArgumentException(Tag.toString(tag) + " " + vr + " takes one value, given " + values.length);
            }
            for (int k = 0; k < v.length(); k++) {
                char c = v.charAt(k);
                boolean text = vr == VR.LT || vr == VR.ST || vr == VR.UT;
                boolean ok = c >= 0x20 && c < 0x7F && c != '\\' || text && (c == '\r' || c == '\n' || c == '\t' || c == '\f' || c == '\\');
                if (!ok) throw new IllegalArgumentException(Tag.toString(tag) + " " + vr + " value " + quoted(v)
                        + " has character " + (int) c + ": printable ASCII without backslashes expected");
            }
            if (v.length() > max) {
                throw new IllegalArgumentException(Tag.toString(tag) + " " + vr + " value " + quoted(v) + " is longer than " + max);
            }
            if (i > 0) sb.append('\\');
            sb.append(v);
        }
        byte[] b = sb.toString().getBytes(StandardCharsets.US_ASCII);
        return put(tag, vr, pad(b, vr == VR.UI ? (byte) 0 : (byte) ' '));
    }

    /** DS: decimal strings, formatted by {@link #decimalString(double)}. */
    public DicomWriter decimals(int tag, double... values) {
        String[] s = new String[values.length];
        for (int i = 0; i < values.length; i++) s[i] = decimalString(values[i]);
        return string(tag, VR.DS, s);
    }

    /** IS: integer strings. */
    public DicomWriter integers(int tag, long... values) {
        String[] s = new String[values.length];
        for (int i = 0; i < values.length; i++) {
            if (values[i] < Integer.MIN_VALUE || values[i] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(Tag.toString(tag) + " IS value " + values[i] + " outside the signed 32-bit range");
            }
            s[i] = Long.toString(values[i]);
        }
        return string(tag, VR.IS, s);
    }

    /** US: unsigned 16-bit values. */
    public DicomWriter unsignedShorts(int tag, int... values) {
        ByteBuffer b = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            if (v < 0 || v > 0xFFFF) throw new IllegalArgumentException(Tag.toString(tag) + " US value " + v + " outside 0..65535");
            b.putShort((short) v);
        }
        return put(tag, VR.US, b.array());
    }

    /** UL: unsigned 32-bit values. */
    public DicomWriter unsignedLongs(int tag, long... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : values) {
            if (v < 0 || v > 0xFFFFFFFFL) throw new IllegalArgumentException(Tag.toString(tag) + " UL value " + v + " outside 0..2^32-1");
            b.putInt((int) v);
        }
        return put(tag, VR.UL, b.array());
    }

    /**
     * A binary element (OB, OW, UN...) whose bytes are given in little-endian order. Not copied when of even
     * length: the caller must not change the array until it is written.
     */
    public DicomWriter binary(int tag, VR vr, byte[] value) {
        if (vr.isString() || vr == VR.SQ || vr == VR.NONE) throw new IllegalArgumentException(vr + " is not a binary VR");
        if (vr == VR.OW && (value.length & 1) == 1) throw new IllegalArgumentException("OW value of odd length " + value.length);
        return put(tag, vr, pad(value, (byte) 0));
    }

    private DicomWriter put(int tag, VR vr, byte[] value) {
        int group = Tag.group(tag);
        if (group == 0x0002) throw new IllegalArgumentException(Tag.toString(tag) + " is File Meta Information: the writer makes it");
        if (group < 0x0008 || group == 0xFFFE) throw new IllegalArgumentException(Tag.toString(tag) + " is not a data set element tag");
        elements.put(tag, new Element(tag, vr, value));
        return this;
    }

    // ---- the CT image ----

    /** A data set with the CT Image attributes of {@code image}. */
    public static DicomWriter ctImage(CtImage image) {
        DicomWriter w = new DicomWriter()
                .string(Tag.SOP_CLASS_UID, VR.UI, CtImage.CT_IMAGE_STORAGE)
                .string(Tag.SOP_INSTANCE_UID, VR.UI, image.sopInstanceUid())
                .string(Tag.MODALITY, VR.CS, "CT")
                .decimals(Tag.IMAGE_POSITION_PATIENT, image.imagePositionPatient())
                .decimals(Tag.IMAGE_ORIENTATION_PATIENT, image.imageOrientationPatient())
                .integers(Tag.INSTANCE_NUMBER, image.instanceNumber())
                .unsignedShorts(Tag.SAMPLES_PER_PIXEL, 1)
                .string(Tag.PHOTOMETRIC_INTERPRETATION, VR.CS, "MONOCHROME2")
                .unsignedShorts(Tag.ROWS, image.rows())
                .unsignedShorts(Tag.COLUMNS, image.columns())
                .decimals(Tag.PIXEL_SPACING, image.pixelSpacing())
                .unsignedShorts(Tag.BITS_ALLOCATED, image.bitsAllocated())
                .unsignedShorts(Tag.BITS_STORED, image.bitsStored())
                .unsignedShorts(Tag.HIGH_BIT, image.highBit())
                .unsignedShorts(Tag.PIXEL_REPRESENTATION, image.pixelRepresentation())
                .string(Tag.WINDOW_CENTER, VR.DS, checkedDs(image.windowCenter()))
                .string(Tag.WINDOW_WIDTH, VR.DS, checkedDs(image.windowWidth()))
                .decimals(Tag.RESCALE_INTERCEPT, image.rescaleIntercept())
                .decimals(Tag.RESCALE_SLOPE, image.rescaleSlope())
                .binary(Tag.PIXEL_DATA, VR.OW, image.pixels());
        if (image.patientId() != null) w.string(Tag.PATIENT_ID, VR.LO, image.patientId());
        if (image.studyInstanceUid() != null) w.string(Tag.STUDY_INSTANCE_UID, VR.UI, image.studyInstanceUid());
        if (image.seriesInstanceUid() != null) w.string(Tag.SERIES_INSTANCE_UID, VR.UI, image.seriesInstanceUid());
        if (!Double.isNaN(image.sliceThickness())) w.decimals(Tag.SLICE_THICKNESS, image.sliceThickness());
        return w;
    }

    private static String[] checkedDs(String[] values) {
        for (String v : values) {
            if (!v.strip().matches("[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?")) {
                throw new IllegalArgumentException("not a decimal string: " + quoted(v));
            }
        }
        return values;
    }

    // ---- output ----

    /** The whole Part 10 file. */
    public byte[] toBytes(TransferSyntax syntax) {
        List<ByteBuffer> parts = encode(syntax);
        int n = 0;
        for (ByteBuffer b : parts) n = Math.addExact(n, b.remaining());
        byte[] out = new byte[n];
        int pos = 0;
        for (ByteBuffer b : parts) {
            int len = b.remaining();
            b.get(out, pos, len);
            pos += len;
        }
        return out;
    }

    /**
     * Writes the file atomically: to a temporary file in the same folder, then renamed over {@code file}, so a
     * reader sees the previous file or the complete new one, never part of one. Not forced to the disk: see
     * {@link #write(Path, TransferSyntax, boolean)}.
     */
    public void write(Path file, TransferSyntax syntax) throws IOException { write(file, syntax, false); }

    /** As {@link #write(Path, TransferSyntax)}; {@code force} flushes the data to the device before the rename. */
    public void write(Path file, TransferSyntax syntax, boolean force) throws IOException {
        ByteBuffer[] parts = encode(syntax).toArray(ByteBuffer[]::new);
        AtomicFile.write(file, force, ch -> {
            long left = 0;
            for (ByteBuffer b : parts) left += b.remaining();
            while (left > 0) left -= ch.write(parts);
        });
    }

    private List<ByteBuffer> encode(TransferSyntax syntax) {
        boolean explicit = switch (syntax) {
            case IMPLICIT_VR_LITTLE_ENDIAN -> false;
            case EXPLICIT_VR_LITTLE_ENDIAN -> true;
            default -> throw new IllegalArgumentException("the writer writes Implicit and Explicit VR Little Endian, not " + syntax.displayName());
        };
        Element sopClass = elements.get(Tag.SOP_CLASS_UID), sopInstance = elements.get(Tag.SOP_INSTANCE_UID);
        if (sopClass == null || sopInstance == null) {
            throw new IllegalStateException("a Part 10 file needs (0008,0016) SOP Class UID and (0008,0018) SOP Instance UID");
        }
        // PS3.10 7.1: the File Meta Information, always Explicit VR Little Endian, led by its group length.
        List<Element> meta = List.of(
                new Element(Tag.FILE_META_INFORMATION_VERSION, VR.OB, new byte[]{0, 1}),
                new Element(Tag.MEDIA_STORAGE_SOP_CLASS_UID, VR.UI, sopClass.value()),
                new Element(Tag.MEDIA_STORAGE_SOP_INSTANCE_UID, VR.UI, sopInstance.value()),
                new Element(Tag.TRANSFER_SYNTAX_UID, VR.UI, pad(syntax.uid().getBytes(StandardCharsets.US_ASCII), (byte) 0)),
                new Element(Tag.IMPLEMENTATION_CLASS_UID, VR.UI, pad(IMPLEMENTATION_CLASS_UID.getBytes(StandardCharsets.US_ASCII), (byte) 0)),
                new Element(Tag.IMPLEMENTATION_VERSION_NAME, VR.SH, pad(IMPLEMENTATION_VERSION_NAME.getBytes(StandardCharsets.US_ASCII), (byte) ' ')));
        long metaLength = 0;
        for (Element e : meta) metaLength += headerLength(e.vr(), true) + e.value().length;

        long inline = PREAMBLE + 4 + 12 + metaLength;
        for (Element e : elements.values()) {
            inline += headerLength(e.vr(), explicit);
            if (e.value().length < INLINE_LIMIT) inline += e.value().length;
        }
        ByteBuffer head = ByteBuffer.allocate(Math.toIntExact(inline)).order(ByteOrder.LITTLE_ENDIAN);
        head.position(PREAMBLE);
        head.put("DICM".getBytes(StandardCharsets.US_ASCII));
        header(head, Tag.FILE_META_GROUP_LENGTH, VR.UL, 4, true);
        head.putInt((int) metaLength);
        for (Element e : meta) {
            header(head, e.tag(), e.vr(), e.value().length, true);
            head.put(e.value());
        }
        List<ByteBuffer> parts = new ArrayList<>();
        int from = 0;
        for (Element e : elements.values()) {
            header(head, e.tag(), e.vr(), e.value().length, explicit);
            if (e.value().length < INLINE_LIMIT) {
                head.put(e.value());
            } else {
                parts.add(head.slice(from, head.position() - from));
                from = head.position();
                parts.add(ByteBuffer.wrap(e.value()));
            }
        }
        parts.add(head.slice(from, head.position() - from));
        return parts;
    }

    private static int headerLength(VR vr, boolean explicit) {
        return !explicit ? 8 : vr.hasLongLength() ? 12 : 8;
    }

    /** PS3.5 7.1.1-7.1.3: tag, then (explicit) the VR and a 16-bit length or 2 reserved bytes and a 32-bit length. */
    private static void header(ByteBuffer b, int tag, VR vr, int length, boolean explicit) {
        b.putShort((short) (tag >>> 16)).putShort((short) tag);
        if (!explicit) {
            b.putInt(length);
        } else if (vr.hasLongLength()) {
            b.put((byte) vr.name().charAt(0)).put((byte) vr.name().charAt(1)).putShort((short) 0).putInt(length);
        } else {
            if (length > 0xFFFF) {
                throw new IllegalArgumentException(Tag.toString(tag) + " " + vr + " value of " + length
                        + " bytes does not fit the 16-bit length of Explicit VR");
            }
            b.put((byte) vr.name().charAt(0)).put((byte) vr.name().charAt(1)).putShort((short) length);
        }
    }

    private static byte[] pad(byte[] b, byte with) {
        if ((b.length & 1) == 0) return b;
        byte[] p = java.util.Arrays.copyOf(b, b.length + 1);
        p[b.length] = with;
        return p;
    }

    /** PS3.5 Table 6.2-1: the maximum length of one value, in characters. */
    private static int maxLength(VR vr) {
        return switch (vr) {
            case AE, CS, DS, SH -> 16;
            case AS -> 4;
            case DA -> 8;
            case DT -> 26;
            case IS -> 12;
            case LO, UI -> 64;
            case PN -> 64 * 3 + 2;
            case TM -> 14;
            case ST -> 1024;
            case LT -> 10240;
            default -> Integer.MAX_VALUE - 8;  // UC, UR, UT: limited only by the length field
        };
    }

    private static boolean multiValued(VR vr) {
        return switch (vr) {
            case LT, ST, UT, UR -> false;
            default -> true;
        };
    }

    private static String quoted(String s) { return "\"" + s + "\""; }

    /**
     * A decimal string (DS, PS3.5 6.2) of at most 16 characters for {@code v}: the shortest decimal that reads
     * back as the same double when one fits (integers without a fraction, e.g. {@code -1024}; others in plain
     * notation unless that is too long or the value is below 1E-5, then with an exponent, e.g. {@code 1.5E-7}), else {@code v} rounded to as many
     * significant digits as fit.
     */
    public static String decimalString(double v) {
        if (!Double.isFinite(v)) throw new IllegalArgumentException("DS cannot hold " + v);
        if (v == 0) return "0";
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);  // at most 16 characters
        BigDecimal shortest = new BigDecimal(Double.toString(v));  // Double.toString: the shortest round-trip digits
        String s = fit(shortest);
        for (int digits = shortest.precision() - 1; s == null && digits >= 1; digits--) {
            s = fit(shortest.round(new MathContext(digits)));
        }
        if (s == null) throw new IllegalArgumentException("DS cannot hold " + v + " in 16 characters");
        return s;
    }

    private static final BigDecimal TINY = new BigDecimal("1E-5");

    private static String fit(BigDecimal d) {
        d = d.stripTrailingZeros();
        String plain = d.toPlainString();
        // d.ddddEx: the unscaled digits with the point after the first
        String digits = d.unscaledValue().abs().toString();
        int exponent = digits.length() - 1 - d.scale();
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        String sci = (d.signum() < 0 ? "-" : "") + mantissa + "E" + exponent;
        // Plain notation where it fits, except for tiny values, which read better as 1.5E-7 than 0.00000015.
        if (plain.length() <= 16 && (d.abs().compareTo(TINY) >= 0 || plain.length() <= sci.length())) return plain;
        return sci.length() <= 16 ? sci : null;
    }
}
