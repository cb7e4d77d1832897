package ich.dicom;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A DICOM file: a Part 10 file (128-byte preamble, "DICM", File Meta Information; PS3.10 7.1) or a bare
 * data set without them. The file is memory-mapped; header values and native pixel data are views into
 * the mapping, valid until {@link #close()}.
 */
public final class DicomFile implements AutoCloseable {
    private static final long PREAMBLE = 128;
    /** Deflate cannot expand more than 1032:1; a larger claimed size is a decompression bomb. */
    private static final long MAX_INFLATE_RATIO = 1032;
    private static final long MAX_INFLATED_BYTES = 1L << 30;

    private final String name;
    private final Arena arena;
    private final boolean ownsArena;
    private final MemorySegment bytes;
    private final DataSet fileMeta;
    private final DataSet dataSet;
    private final String transferSyntaxUid;
    private final TransferSyntax transferSyntax;
    private ImageHeader header;

    private DicomFile(String name, Arena arena, boolean ownsArena, MemorySegment bytes, DataSet fileMeta, DataSet dataSet,
                      String transferSyntaxUid, TransferSyntax transferSyntax) {
        this.name = name;
        this.arena = arena;
        this.ownsArena = ownsArena;
        this.bytes = bytes;
        this.fileMeta = fileMeta;
        this.dataSet = dataSet;
        this.transferSyntaxUid = transferSyntaxUid;
        this.transferSyntax = transferSyntax;
    }

    /** Maps and parses a file; the mapping lives until {@link #close()}. */
    public static DicomFile open(Path path) throws IOException {
        Arena arena = Arena.ofConfined();
        try {
            return open(path, arena, true);
        } catch (IOException | RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Maps and parses a file into a caller-owned arena (e.g. a shared one, to hand pixels to other threads). */
    public static DicomFile open(Path path, Arena arena) throws IOException {
        return open(path, arena, false);
    }

    private static DicomFile open(Path path, Arena arena, boolean ownsArena) throws IOException {
        MemorySegment seg;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            seg = size == 0 ? MemorySegment.ofArray(new byte[0]) : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
        }
        return parse(seg, path.toString(), arena, ownsArena);
    }

    /** Parses bytes already in memory (tests, fuzzing, network input). */
    public static DicomFile parse(byte[] data, String name) throws DicomFormatException {
        return parse(MemorySegment.ofArray(data), name, Arena.ofAuto(), false);
    }

    static DicomFile parse(MemorySegment seg, String name, Arena arena, boolean ownsArena) throws DicomFormatException {
        long size = seg.byteSize();
        DicomParser parser = new DicomParser(seg, name, 0);
        DataSet meta = null;
        long dataStart;
        if (size >= PREAMBLE + 4 && seg.get(ValueLayout.JAVA_INT_UNALIGNED, PREAMBLE) == 0x4D434944 /* "DICM" */) {
            meta = parser.parseFileMeta(PREAMBLE + 4);
            dataStart = parser.position();
        } else if (size >= 8 && parser.u16(0, false) == 0x0002 && VR.of(seg.get(ValueLayout.JAVA_BYTE, 4), seg.get(ValueLayout.JAVA_BYTE, 5)) != null) {
            // File Meta Information without the preamble: not conformant, but DCMTK reads it.
            meta = parser.parseFileMeta(0);
            dataStart = parser.position();
        } else {
            dataStart = 0;
        }
        if (size - dataStart < 8 && (meta == null || size > dataStart)) {
            throw new DicomFormatException(name, dataStart, Tag.NONE,
                    size == 0 ? "empty file" : "too short for a DICOM data set (" + size + " bytes)");
        }

        String tsUid = meta == null ? null : meta.string(Tag.TRANSFER_SYNTAX_UID);
        TransferSyntax ts;
        if (tsUid == null || tsUid.isEmpty()) {
            ts = size - dataStart >= 8 ? detect(parser, seg, dataStart) : TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN;
            tsUid = ts.uid();
        } else {
            ts = TransferSyntax.forUid(tsUid);
        }
        // PS3.5 A.4: every transfer syntax other than the ones this reader names is Explicit VR Little Endian.
        TransferSyntax.Encoding enc = ts == null ? TransferSyntax.Encoding.EXPLICIT_LE : ts.encoding();

        DataSet ds;
        if (enc == TransferSyntax.Encoding.DEFLATED_EXPLICIT_LE) {
            MemorySegment inflated = MemorySegment.ofArray(inflate(seg, dataStart, name));
            ds = new DicomParser(inflated, name + " (inflated data set)", 0).parseDataSet(0, true, false);
        } else {
            ds = parser.parseDataSet(dataStart, enc.explicitVr, enc.bigEndian);
        }
        return new DicomFile(name, arena, ownsArena, seg, meta, ds, tsUid, ts);
    }

    /**
     * The encoding of a data set without File Meta Information, guessed the way DCMTK does: explicit VR
     * when bytes 4-5 are a VR code; big endian when the first group number read little endian is the larger
     * of the two readings (real data sets start with low group numbers).
     */
    private static TransferSyntax detect(DicomParser parser, MemorySegment seg, long start) {
        int groupLe = parser.u16(start, false), groupBe = parser.u16(start, true);
        boolean big = groupLe > groupBe;
        boolean explicit = VR.of(seg.get(ValueLayout.JAVA_BYTE, start + 4), seg.get(ValueLayout.JAVA_BYTE, start + 5)) != null;
        if (explicit) return big ? TransferSyntax.EXPLICIT_VR_BIG_ENDIAN : TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN;
        return big ? TransferSyntax.IMPLICIT_VR_BIG_ENDIAN : TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN;
    }

    /** PS3.5 A.5: the data set after the File Meta Information is a raw deflate stream (RFC 1951, no zlib header). */
    private static byte[] inflate(MemorySegment seg, long start, String name) throws DicomFormatException {
        long compressedLength = seg.byteSize() - start;
        long limit = Math.min(MAX_INFLATED_BYTES, Math.max(1024, compressedLength * MAX_INFLATE_RATIO));
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(seg.asSlice(start).asByteBuffer());
            byte[] out = new byte[(int) Math.min(limit, Math.max(4096, compressedLength * 4))];
            int n = 0;
            while (!inflater.finished()) {
                if (n == out.length) {
                    if (out.length >= limit) {
                        throw new DicomFormatException(name, start, Tag.NONE, "deflated data set inflates beyond " + limit + " bytes");
                    }
                    out = java.util.Arrays.copyOf(out, (int) Math.min(limit, (long) out.length * 2));
                }
                int got = inflater.inflate(out, n, out.length - n);
                if (got == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
                    // PS3.5 A.5 streams end at the end of the file; a stream cut short is a truncated file.
                    if (inflater.needsDictionary()) throw new DicomFormatException(name, start, Tag.NONE, "deflate stream needs a preset dictionary");
                    throw new DicomFormatException(name, seg.byteSize(), Tag.NONE, "deflated data set is truncated (" + n + " bytes inflated)");
                }
                n += got;
            }
            return java.util.Arrays.copyOf(out, n);
        } catch (DataFormatException e) {
            throw new DicomFormatException(name, start, Tag.NONE, "deflated data set is corrupt: " + e.getMessage(), e);
        } finally {
            inflater.end();
        }
    }

    public String name() { return name; }

    /** File Meta Information, or null for a bare data set. */
    public DataSet fileMeta() { return fileMeta; }

    public DataSet dataSet() { return dataSet; }

    public String transferSyntaxUid() { return transferSyntaxUid; }

    /** The transfer syntax, or null when the UID is not one this reader knows. */
    public TransferSyntax transferSyntax() { return transferSyntax; }

    /** The whole file as mapped. */
    public MemorySegment bytes() { return bytes; }

    Arena arena() { return arena; }

    public ImageHeader header() throws DicomFormatException {
        if (header == null) header = ImageHeader.read(dataSet, name);
        return header;
    }

    /**
     * The Pixel Data in native little-endian layout: a view of the mapped file for Implicit/Explicit VR Little
     * Endian, else a decoded buffer allocated in this file's arena.
     */
    public PixelData pixelData() throws DicomFormatException {
        return PixelDecoder.decode(this);
    }

    @Override
    public void close() {
        if (ownsArena) arena.close();
    }
}
