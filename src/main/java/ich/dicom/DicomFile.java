package ich.dicom;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A DICOM file: a Part 10 file (128-byte preamble, "DICM", File Meta Information; PS3.10 7.1) or a bare
 * data set without them.
 *
 * <p>{@link #open(Path)} reads only the first bytes of the file, enough for the header of a typical image,
 * so that scanning headers costs one small read per file. The file is memory-mapped when the pixels are
 * asked for; native pixel data is then a view of the mapping, valid until {@link #close()}.
 *
 * <p>One thread at a time: a file loads its pixels lazily. Opened with the default confined arena, its pixel
 * views may only be read by the opening thread; pass a shared arena to hand them to others.
 */
public final class DicomFile implements AutoCloseable {
    private static final long PREAMBLE = 128;
    /** Enough for the header of a CT slice (the RSNA files need 1.3 KB); longer headers fall back to mapping. */
    private static final int HEADER_PROBE_BYTES = 16 * 1024;
    /** Deflate cannot expand more than 1032:1; a larger claimed size is a decompression bomb. */
    private static final long MAX_INFLATE_RATIO = 1032;
    private static final long MAX_INFLATED_BYTES = 1L << 30;

    private final String name;
    private final Arena arena;
    private final boolean ownsArena;
    private final Path path;
    private final DataSet fileMeta;
    private final String transferSyntaxUid;
    private final TransferSyntax transferSyntax;
    /** All of the file, once read or mapped; null while only the header has been read. */
    private MemorySegment bytes;
    private DataSet dataSet;
    private ImageHeader header;

    private DicomFile(String name, Arena arena, boolean ownsArena, Path path, MemorySegment bytes, DataSet fileMeta,
                      DataSet dataSet, String transferSyntaxUid, TransferSyntax transferSyntax) {
        this.name = name;
        this.arena = arena;
        this.ownsArena = ownsArena;
        this.path = path;
        this.bytes = bytes;
        this.fileMeta = fileMeta;
        this.dataSet = dataSet;
        this.transferSyntaxUid = transferSyntaxUid;
        this.transferSyntax = transferSyntax;
    }

    /** Reads the header of a file; the pixels are mapped on demand and live until {@link #close()}. */
    public static DicomFile open(Path path) throws IOException {
        return open(path, Arena.ofConfined(), true);
    }

    /** As {@link #open(Path)}, mapping into a caller-owned arena (e.g. a shared one, to hand pixels to other threads). */
    public static DicomFile open(Path path, Arena arena) throws IOException {
        return open(path, arena, false);
    }

    private static DicomFile open(Path path, Arena arena, boolean ownsArena) throws IOException {
        String name = path.toString();
        try {
            byte[] head;
            long size;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                size = ch.size();
                head = new byte[(int) Math.min(size, HEADER_PROBE_BYTES)];
                ByteBuffer buf = ByteBuffer.wrap(head);
                while (buf.hasRemaining() && ch.read(buf, buf.position()) > 0) {
                    // read until the probe is full
                }
                if (buf.hasRemaining()) throw new DicomFormatException(name, buf.position(), Tag.NONE, "file shrank while being read");
            }
            if (head.length == size) return parse(MemorySegment.ofArray(head), name, arena, ownsArena, path, -1);
            DicomFile probed;
            try {
                probed = parse(MemorySegment.ofArray(head), name, arena, ownsArena, path, size);
            } catch (DicomFormatException e) {
                probed = null; // perhaps only the probe was too short: parsing the whole file tells
            }
            return probed != null ? probed : parse(map(path, arena), name, arena, ownsArena, path, -1);
        } catch (IOException | RuntimeException | Error e) {
            if (ownsArena) arena.close();
            throw e;
        }
    }

    /**
     * A reusable off-heap buffer that {@link #read(Path, ReadBuffer)} reads whole files into: one per thread.
     * Page faults make mapping a file and touching all of it ten times dearer than reading it into memory that
     * is already mapped, so bulk readers (preprocessing, training) use this instead of {@link #open(Path)}.
     */
    public static final class ReadBuffer {
        /**
         * One buffer per thread for every bulk reader (preprocessing, the GPU loader, {@code dicom check}). A fresh
         * buffer per file is 1 MiB of native memory that only the garbage collector frees; at thousands of files a
         * second the JDK's accounting of that memory kept calling System.gc() and waiting for it, and a GPU loader
         * thread read 229 files/s instead of thousands.
         */
        private static final ThreadLocal<ReadBuffer> PER_THREAD = ThreadLocal.withInitial(ReadBuffer::new);

        private MemorySegment memory = MemorySegment.NULL;

        /**
         * This thread's buffer. What a read through it returns is valid until the thread's next read through it, so a
         * caller finishes with (or copies out of) one file before it reads the next.
         */
        public static ReadBuffer ofCurrentThread() {
            return PER_THREAD.get();
        }

        MemorySegment fill(Path path) throws IOException {
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size > Integer.MAX_VALUE - 8) throw new DicomFormatException(path.toString(), -1, Tag.NONE, "file of " + size + " bytes is too large");
                if (memory.byteSize() < size) memory = Arena.ofAuto().allocate(Math.max(size, 1 << 20), 64);
                ByteBuffer buf = memory.asSlice(0, size).asByteBuffer();
                while (buf.hasRemaining() && ch.read(buf, buf.position()) > 0) {
                    // until full
                }
                if (buf.hasRemaining()) throw new DicomFormatException(path.toString(), buf.position(), Tag.NONE, "file shrank while being read");
                return memory.asSlice(0, size);
            }
        }
    }

    /**
     * Reads a whole file into {@code buffer} and parses it. Native pixel data is then a view of the buffer, so
     * the result is valid only until the buffer's next use; decoded pixels live until {@link #close()}.
     */
    public static DicomFile read(Path path, ReadBuffer buffer) throws IOException {
        MemorySegment bytes = buffer.fill(path);
        Arena arena = Arena.ofConfined();
        try {
            return parse(bytes, path.toString(), arena, true, path, -1);
        } catch (IOException | RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static MemorySegment map(Path path, Arena arena) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        }
    }

    /** Parses bytes already in memory (tests, fuzzing, network input). */
    public static DicomFile parse(byte[] data, String name) throws DicomFormatException {
        return parse(MemorySegment.ofArray(data), name, Arena.ofAuto(), false, null, -1);
    }

    /**
     * @param headerOfFileSize -1 to parse all of {@code seg}; else {@code seg} holds the first bytes of a file of
     *                         this size, and the result is null when they do not reach the top-level Pixel Data
     */
    private static DicomFile parse(MemorySegment seg, String name, Arena arena, boolean ownsArena, Path path,
                                   long headerOfFileSize) throws DicomFormatException {
        boolean probe = headerOfFileSize >= 0;
        long size = seg.byteSize();
        DicomParser parser = new DicomParser(seg, name);
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
            if (probe) return null; // the whole stream must be inflated
            MemorySegment inflated = MemorySegment.ofArray(inflate(seg, dataStart, name));
            ds = new DicomParser(inflated, name + " (inflated data set)").parseDataSet(0, true, false);
        } else if (probe) {
            ds = parser.parseHeader(dataStart, enc.explicitVr, enc.bigEndian, headerOfFileSize);
            if (!parser.reachedPixelData()) return null;
        } else {
            ds = parser.parseDataSet(dataStart, enc.explicitVr, enc.bigEndian);
        }
        if (ds.size() == 0) throw new DicomFormatException(name, dataStart, Tag.NONE, "no data set after the File Meta Information");
        return new DicomFile(name, arena, ownsArena, path, probe ? null : seg, meta, ds, tsUid, ts);
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

    /**
     * The data set. After {@link #open(Path)} it ends at the Pixel Data element, whose value is read by
     * {@link #pixelData()}; after {@link #pixelData()} or {@link #parse(byte[], String)} it is complete.
     */
    public DataSet dataSet() { return dataSet; }

    public String transferSyntaxUid() { return transferSyntaxUid; }

    /** The transfer syntax, or null when the UID is not one this reader knows. */
    public TransferSyntax transferSyntax() { return transferSyntax; }

    Arena arena() { return arena; }

    public ImageHeader header() throws DicomFormatException {
        if (header == null) header = ImageHeader.read(dataSet, name);
        return header;
    }

    /** Maps the whole file and parses all of it, once: what pixel decoding needs. */
    void loadAll() throws IOException {
        if (bytes != null) return;
        MemorySegment all = map(path, arena);
        DicomFile full = parse(all, name, arena, false, path, -1);
        bytes = all;
        dataSet = full.dataSet;
    }

    /**
     * The Pixel Data in native little-endian layout: a view of the mapped file for Implicit/Explicit VR Little
     * Endian, else a decoded buffer allocated in this file's arena.
     */
    public PixelData pixelData() throws DicomFormatException {
        try {
            loadAll();
        } catch (DicomFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new DicomFormatException(name, -1, Tag.PIXEL_DATA, "cannot map the file: " + e, e);
        }
        return PixelDecoder.decode(this);
    }

    @Override
    public void close() {
        if (ownsArena) arena.close();
    }
}
