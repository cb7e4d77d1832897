package ich.dicom;

import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** Transfer syntaxes (PS3.5 Section 10 and Annex A), with what this reader can decode. */
public enum TransferSyntax {
    IMPLICIT_VR_LITTLE_ENDIAN("1.2.840.10008.1.2", "Implicit VR Little Endian", Encoding.IMPLICIT_LE, Pixels.NATIVE),
    EXPLICIT_VR_LITTLE_ENDIAN("1.2.840.10008.1.2.1", "Explicit VR Little Endian", Encoding.EXPLICIT_LE, Pixels.NATIVE),
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian",
            Encoding.DEFLATED_EXPLICIT_LE, Pixels.NATIVE),
    EXPLICIT_VR_BIG_ENDIAN("1.2.840.10008.1.2.2", "Explicit VR Big Endian (retired)", Encoding.EXPLICIT_BE, Pixels.NATIVE),
    /** Not a standard syntax, but DCMTK detects it in bare data sets; kept so such files are read, not misread. */
    IMPLICIT_VR_BIG_ENDIAN("implicit-big-endian", "Implicit VR Big Endian (non-standard)", Encoding.IMPLICIT_BE, Pixels.NATIVE),
    ENCAPSULATED_UNCOMPRESSED("1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian",
            Encoding.EXPLICIT_LE, Pixels.ENCAPSULATED_NATIVE),
    JPEG_BASELINE("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", Encoding.EXPLICIT_LE, Pixels.JPEG),
    JPEG_EXTENDED("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", Encoding.EXPLICIT_LE, Pixels.JPEG),
    JPEG_LOSSLESS("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", Encoding.EXPLICIT_LE, Pixels.JPEG),
    JPEG_LOSSLESS_SV1("1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
            Encoding.EXPLICIT_LE, Pixels.JPEG),
    JPEG_LS_LOSSLESS("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", Encoding.EXPLICIT_LE, Pixels.JPEG_LS),
    JPEG_LS_NEAR_LOSSLESS("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)", Encoding.EXPLICIT_LE, Pixels.JPEG_LS),
    JPEG_2000_LOSSLESS("1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)", Encoding.EXPLICIT_LE, Pixels.JPEG_2000),
    JPEG_2000("1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression", Encoding.EXPLICIT_LE, Pixels.JPEG_2000),
    JPEG_2000_MC_LOSSLESS("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
            Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    JPEG_2000_MC("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component Image Compression", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    JPIP_REFERENCED("1.2.840.10008.1.2.4.94", "JPIP Referenced", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    JPIP_REFERENCED_DEFLATE("1.2.840.10008.1.2.4.95", "JPIP Referenced Deflate", Encoding.DEFLATED_EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG2_MPML("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG2_MPML_F("1.2.840.10008.1.2.4.100.1", "Fragmentable MPEG2 Main Profile / Main Level", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG2_MPHL("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG2_MPHL_F("1.2.840.10008.1.2.4.101.1", "Fragmentable MPEG2 Main Profile / High Level", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP41("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP41_F("1.2.840.10008.1.2.4.102.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP41_BD("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP41_BD_F("1.2.840.10008.1.2.4.103.1", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
            Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP42_2D("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP42_3D("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    MPEG4_HP42_ST("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    HEVC_MP51("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    HEVC_M10P51("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    HTJ2K_LOSSLESS("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
            Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    HTJ2K_LOSSLESS_RPCL("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
            Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    HTJ2K("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000 Image Compression", Encoding.EXPLICIT_LE, Pixels.UNSUPPORTED),
    RLE_LOSSLESS("1.2.840.10008.1.2.5", "RLE Lossless", Encoding.EXPLICIT_LE, Pixels.RLE);

    /** How the data set itself is encoded. */
    public enum Encoding {
        IMPLICIT_LE(false, false), EXPLICIT_LE(true, false), EXPLICIT_BE(true, true), IMPLICIT_BE(false, true),
        DEFLATED_EXPLICIT_LE(true, false);

        public final boolean explicitVr;
        public final boolean bigEndian;

        Encoding(boolean explicitVr, boolean bigEndian) {
            this.explicitVr = explicitVr;
            this.bigEndian = bigEndian;
        }
    }

    /** How the Pixel Data is stored, and so which decoder applies. */
    /**
     * How Pixel Data is stored: native, encapsulated native frames (PS3.5 A.4.11: one uncompressed frame per
     * fragment), or a codec.
     */
    public enum Pixels { NATIVE, ENCAPSULATED_NATIVE, RLE, JPEG, JPEG_LS, JPEG_2000, UNSUPPORTED }

    private static final Map<String, TransferSyntax> BY_UID =
            Stream.of(values()).collect(Collectors.toUnmodifiableMap(TransferSyntax::uid, Function.identity()));

    private final String uid;
    private final String displayName;
    private final Encoding encoding;
    private final Pixels pixels;

    TransferSyntax(String uid, String displayName, Encoding encoding, Pixels pixels) {
        this.uid = uid;
        this.displayName = displayName;
        this.encoding = encoding;
        this.pixels = pixels;
    }

    public String uid() { return uid; }

    public String displayName() { return displayName; }

    public Encoding encoding() { return encoding; }

    public Pixels pixels() { return pixels; }

    public boolean isEncapsulated() { return pixels != Pixels.NATIVE; }

    /** The syntax for a UID, or null when the UID is not a transfer syntax this reader knows. */
    public static TransferSyntax forUid(String uid) { return BY_UID.get(uid); }
}
