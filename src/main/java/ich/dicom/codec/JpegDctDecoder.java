package ich.dicom.codec;

import java.io.IOException;
import java.util.Arrays;
import java.util.Objects;

/**
 * Decoder for sequential DCT-based JPEG codestreams with Huffman coding (ITU-T T.81 processes 1, 2
 * and 4: SOF0 baseline 8-bit and SOF1 extended sequential 8- or 12-bit), as carried by the DICOM
 * transfer syntaxes 1.2.840.10008.1.2.4.50 and 1.2.840.10008.1.2.4.51.
 *
 * <p>The output is meant to be bit-exact with IJG libjpeg 6b (the library inside DCMTK's
 * {@code dcmdjpeg}) using its default integer "slow" IDCT ({@code jidctint.c}, JDCT_ISLOW): the
 * same fixed-point constants and descaling, 64-bit intermediate arithmetic as on LP64 builds
 * ({@code INT32} is {@code long} there), the same column/row short cuts, the same coefficient
 * truncation to 16 bits, and the same wrap-around range-limit table, so that even out-of-range IDCT
 * results map to the same samples.
 *
 * <p>Hostile input: every read is bounds-checked; malformed data yields an {@link IOException}
 * whose message carries the byte offset (relative to {@code offset}). Behaviour on damaged data:
 * <ul>
 *   <li>like libjpeg, garbage bytes before a marker and fill bytes {@code FF} are skipped;</li>
 *   <li>like libjpeg, if a marker interrupts the entropy-coded data inside the last MCU of a scan
 *       or restart interval, the missing bits are taken as zeros;</li>
 *   <li>unlike libjpeg (which would emit flat grey MCUs, resynchronise on wrong restart markers or
 *       fake a zero for an undefined Huffman code, with only a warning), data that runs out earlier,
 *       a wrong restart marker, an undefined Huffman code or the end of the buffer inside a scan
 *       throw {@link IOException}.</li>
 * </ul>
 *
 * <p>Multi-component images are returned with component samples interleaved per pixel, without
 * colour conversion; subsampled components are upsampled by replication (libjpeg would use its
 * "fancy" triangular upsampling for 2:1 ratios, so only 1x1-sampled colour images match it).
 *
 * <p>{@link #decode} keeps all decoding state in a fresh instance per call, so concurrent calls
 * are safe.
 */
public final class JpegDctDecoder {

    /**
     * Decoded image: width, height, components, precision (8 or 12); samples row-major, components
     * interleaved. The samples are unsigned (0..255 or 0..4095) stored in {@code short}s.
     */
    public record Image(int width, int height, int components, int precision, short[] samples) {}

    /** Largest accepted width * height * components. */
    private static final long MAX_SAMPLES = 1L << 28;
    /** libjpeg's JPEG_MAX_DIMENSION. */
    private static final int MAX_DIMENSION = 65500;
    /** libjpeg's D_MAX_BLOCKS_IN_MCU. */
    private static final int MAX_BLOCKS_IN_MCU = 10;
    private static final int MAX_COMPONENTS = 4;

    /** Huffman lookahead width (bits) for the fast decoding path. */
    private static final int LOOKAHEAD = 9;

    // Fixed-point IDCT constants of jidctint.c: FIX(x) = round(x * 2^13).
    private static final int CONST_BITS = 13;
    private static final long FIX_0_298631336 = 2446;
    private static final long FIX_0_390180644 = 3196;
    private static final long FIX_0_541196100 = 4433;
    private static final long FIX_0_765366865 = 6270;
    private static final long FIX_0_899976223 = 7373;
    private static final long FIX_1_175875602 = 9633;
    private static final long FIX_1_501321110 = 12299;
    private static final long FIX_1_847759065 = 15137;
    private static final long FIX_1_961570560 = 16069;
    private static final long FIX_2_053119869 = 16819;
    private static final long FIX_2_562915447 = 20995;
    private static final long FIX_3_072711026 = 25172;

    /**
     * Zig-zag index to natural (row-major) index, T.81 Figure A.6, followed by 16 extra entries of
     * 63 so that a corrupt run length that pushes k past 63 lands on the last coefficient, as in
     * libjpeg's jpeg_natural_order.
     */
    private static final int[] NATURAL_ORDER = new int[64 + 16];

    static {
        int i = 0;
        for (int s = 0; s < 15; s++) { // s = row + column, one anti-diagonal at a time
            int lo = Math.max(0, s - 7);
            int hi = Math.min(s, 7);
            if ((s & 1) == 0) {
                for (int r = hi; r >= lo; r--) {
                    NATURAL_ORDER[i++] = r * 8 + (s - r);
                }
            } else {
                for (int r = lo; r <= hi; r++) {
                    NATURAL_ORDER[i++] = r * 8 + (s - r);
                }
            }
        }
        Arrays.fill(NATURAL_ORDER, 64, NATURAL_ORDER.length, 63);
    }

    /**
     * Decodes one JPEG codestream (SOI ... EOI).
     *
     * @param jpeg   buffer holding the codestream
     * @param offset start of the codestream (its SOI marker)
     * @param length number of bytes available from {@code offset}
     * @return the decoded image
     * @throws IOException if the data is not a supported, well-formed sequential DCT JPEG stream
     * @throws IndexOutOfBoundsException if {@code offset}/{@code length} lie outside {@code jpeg}
     */
    public static Image decode(byte[] jpeg, int offset, int length) throws IOException {
        Objects.requireNonNull(jpeg, "jpeg");
        Objects.checkFromIndexSize(offset, length, jpeg.length);
        return new JpegDctDecoder(jpeg, offset, length).run();
    }

    // ---------------------------------------------------------------------------------------------
    // State

    private final byte[] buf;
    private final int base;
    private final int end;
    private int pos;

    /** Quantisation tables in natural order (B.2.4.1), index Tq. */
    private final int[][] quant = new int[4][];
    /** Raw Huffman table definitions (B.2.4.2): [class 0=DC 1=AC][Th] -> BITS[1..16] / HUFFVAL. */
    private final int[][][] huffBits = new int[2][4][];
    private final int[][][] huffVals = new int[2][4][];
    private int restartInterval;

    // Frame (B.2.2)
    private boolean frameSeen;
    private int precision;
    private int width;
    private int height;
    private int ncomp;
    private int[] compId;
    private int[] compH;
    private int[] compV;
    private int[] compTq;
    private int[] blocksWide;
    private int[] blocksHigh;
    private int hMax;
    private int vMax;

    // Output
    private short[] out;
    private short[][] planes; // null entry = component written straight into out
    private int[][] latchedQuant; // quant table latched at the component's first scan (as libjpeg)
    private boolean[] compDone;
    private boolean allocated;
    private boolean anyEarlierScan;

    // IDCT parameters by precision
    private int pass1Bits;
    private short[] rangeLimit;
    private int rangeMask;

    // Entropy decoder state (F.2.2)
    private long bitBuf;
    private int bitsLeft;
    private boolean hitMarker;
    private boolean hitEnd;
    private boolean insufficientData;
    private final int[] dcPred = new int[MAX_COMPONENTS];

    private final int[] block = new int[64];
    private final int[] workspace = new int[64];
    private final short[] edgeBlock = new short[64];

    private JpegDctDecoder(byte[] buf, int offset, int length) {
        this.buf = buf;
        this.base = offset;
        this.end = offset + length;
        this.pos = offset;
    }

    private IOException error(String message, int at) {
        return new IOException("JPEG: " + message + " (at byte offset " + (at - base) + ")");
    }

    // ---------------------------------------------------------------------------------------------
    // Marker level (Annex B)

    private Image run() throws IOException {
        // B.2.1: the codestream starts with SOI (libjpeg's first_marker insists on FF D8 here).
        if (end - pos < 2 || (buf[pos] & 0xFF) != 0xFF || (buf[pos + 1] & 0xFF) != 0xD8) {
            throw error("not a JPEG codestream, SOI marker (FFD8) missing", pos);
        }
        pos += 2;
        boolean singleScanImage = false;
        for (;;) {
            int m = nextMarker();
            if (m < 0) {
                if (allDone()) {
                    break; // missing EOI: libjpeg only warns
                }
                throw error(frameSeen ? "data ends before all image components were decoded"
                        : "data ends before a frame header (SOF) was found", end);
            }
            int markerAt = pos - 2;
            if (allDone() && !isTableOrScanMarker(m)) {
                break; // EOI (or anything unexpected) after a complete image
            }
            switch (m) {
                case 0xC0, 0xC1 -> readFrameHeader(m, markerAt);
                case 0xC2 -> throw unsupported("SOF2 (progressive DCT, Huffman)", markerAt);
                case 0xC3 -> throw unsupported("SOF3 (lossless, Huffman); lossless JPEG is handled by a different decoder", markerAt);
                case 0xC5 -> throw unsupported("SOF5 (differential sequential DCT, Huffman)", markerAt);
                case 0xC6 -> throw unsupported("SOF6 (differential progressive DCT, Huffman)", markerAt);
                case 0xC7 -> throw unsupported("SOF7 (differential lossless, Huffman)", markerAt);
                case 0xC8 -> throw unsupported("JPG marker FFC8 (reserved JPEG extension)", markerAt);
                case 0xC9 -> throw unsupported("SOF9 (extended sequential DCT, arithmetic coding)", markerAt);
                case 0xCA -> throw unsupported("SOF10 (progressive DCT, arithmetic coding)", markerAt);
                case 0xCB -> throw unsupported("SOF11 (lossless, arithmetic coding)", markerAt);
                case 0xCD -> throw unsupported("SOF13 (differential sequential DCT, arithmetic coding)", markerAt);
                case 0xCE -> throw unsupported("SOF14 (differential progressive DCT, arithmetic coding)", markerAt);
                case 0xCF -> throw unsupported("SOF15 (differential lossless, arithmetic coding)", markerAt);
                case 0xC4 -> readHuffmanTables(markerAt);
                case 0xDB -> readQuantTables(markerAt);
                case 0xDD -> readRestartInterval(markerAt);
                case 0xDA -> {
                    boolean coversAll = readScanAndDecode(markerAt);
                    if (coversAll) {
                        // One scan held every component: like libjpeg's single-scan mode the
                        // output is final now; whatever follows (normally EOI) is not needed.
                        singleScanImage = true;
                    }
                }
                case 0xD9 -> throw error(frameSeen ? "EOI before all image components were decoded"
                        : "EOI before any frame header (SOF)", markerAt); // (EOI after them ends the loop above)
                case 0xD8 -> throw error("duplicate SOI marker", markerAt);
                case 0xCC, 0xDC, 0xFE -> skipSegment(markerAt); // DAC, DNL, COM
                case 0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7 -> {
                    // TEM and stray RSTn: parameterless markers, ignored as by libjpeg
                }
                default -> {
                    if (m >= 0xE0 && m <= 0xEF) {
                        skipSegment(markerAt); // APPn
                    } else {
                        throw error(String.format("unknown or unsupported marker FF%02X", m), markerAt);
                    }
                }
            }
            if (singleScanImage) {
                break;
            }
        }
        return finishImage();
    }

    private static boolean isTableOrScanMarker(int m) {
        return m == 0xC4 || m == 0xDB || m == 0xDD || m == 0xDA || m == 0xCC || m == 0xDC || m == 0xFE
                || m == 0x01 || (m >= 0xD0 && m <= 0xD7) || (m >= 0xE0 && m <= 0xEF);
    }

    private IOException unsupported(String what, int at) {
        return error("unsupported JPEG coding process " + what
                + "; only SOF0/SOF1 sequential DCT with Huffman coding is supported", at);
    }

    private boolean allDone() {
        if (!allocated) {
            return false;
        }
        for (int c = 0; c < ncomp; c++) {
            if (!compDone[c]) {
                return false;
            }
        }
        return true;
    }

    /**
     * Finds the next marker the way libjpeg's next_marker does (B.1.1.2: any number of fill bytes
     * FF may precede a marker; stray non-FF bytes and FF00 pairs are skipped). Leaves {@code pos}
     * after the marker code. Returns the marker code, or -1 at the end of the data.
     */
    private int nextMarker() {
        for (;;) {
            while (pos < end && buf[pos] != (byte) 0xFF) {
                pos++;
            }
            int p = pos + 1;
            while (p < end && buf[p] == (byte) 0xFF) {
                p++;
            }
            if (p >= end) {
                pos = end;
                return -1;
            }
            int code = buf[p] & 0xFF;
            pos = p + 1;
            if (code != 0) {
                return code;
            }
        }
    }

    /** Reads a marker segment's 16-bit length (B.1.1.4) and checks the segment fits the buffer. */
    private int segmentLength(int markerAt, int minLength) throws IOException {
        if (end - pos < 2) {
            throw error(String.format("truncated marker segment FF%02X", buf[markerAt + 1] & 0xFF), markerAt);
        }
        int len = ((buf[pos] & 0xFF) << 8) | (buf[pos + 1] & 0xFF);
        if (len < minLength) {
            throw error(String.format("marker segment FF%02X has invalid length %d",
                    buf[markerAt + 1] & 0xFF, len), pos);
        }
        if (len > end - pos) {
            throw error(String.format("marker segment FF%02X of length %d runs past the end of the data",
                    buf[markerAt + 1] & 0xFF, len), pos);
        }
        return len;
    }

    private int u8() {
        return buf[pos++] & 0xFF;
    }

    private int u16() {
        int v = ((buf[pos] & 0xFF) << 8) | (buf[pos + 1] & 0xFF);
        pos += 2;
        return v;
    }

    private void skipSegment(int markerAt) throws IOException {
        int len = segmentLength(markerAt, 2);
        pos += len;
    }

    /** B.2.4.1 quantization table-specification syntax. */
    private void readQuantTables(int markerAt) throws IOException {
        int len = segmentLength(markerAt, 2);
        int segEnd = pos + len;
        pos += 2;
        while (pos < segEnd) {
            int pqTq = u8();
            int pq = pqTq >> 4;
            int tq = pqTq & 15;
            if (tq > 3) {
                throw error("DQT table index " + tq + " out of range 0..3", pos - 1);
            }
            // libjpeg treats any non-zero Pq as 16-bit precision
            int bytes = pq != 0 ? 128 : 64;
            if (segEnd - pos < bytes) {
                throw error("DQT segment too short for its table", pos);
            }
            int[] q = new int[64];
            for (int k = 0; k < 64; k++) {
                q[NATURAL_ORDER[k]] = pq != 0 ? u16() : u8(); // values arrive in zig-zag order
            }
            quant[tq] = q;
        }
    }

    /** B.2.4.2 Huffman table-specification syntax (tables are checked when a scan uses them). */
    private void readHuffmanTables(int markerAt) throws IOException {
        int len = segmentLength(markerAt, 2);
        int segEnd = pos + len;
        pos += 2;
        while (segEnd - pos > 16) {
            int at = pos;
            int tcTh = u8();
            int[] bits = new int[17];
            int count = 0;
            for (int l = 1; l <= 16; l++) {
                bits[l] = u8();
                count += bits[l];
            }
            if (count > 256 || count > segEnd - pos) {
                throw error("bad Huffman table definition (" + count + " symbols)", at);
            }
            int[] vals = new int[count];
            for (int i = 0; i < count; i++) {
                vals[i] = u8();
            }
            int tc = (tcTh & 0x10) != 0 ? 1 : 0;
            int th = tcTh - (tc << 4);
            if (th < 0 || th > 3) {
                throw error(String.format("DHT table class/index byte 0x%02X invalid", tcTh), at);
            }
            huffBits[tc][th] = bits;
            huffVals[tc][th] = vals;
        }
        if (pos != segEnd) {
            throw error("DHT segment length does not match its tables", pos);
        }
    }

    /** B.2.4.4 restart interval definition syntax. */
    private void readRestartInterval(int markerAt) throws IOException {
        int len = segmentLength(markerAt, 2);
        if (len != 4) {
            throw error("DRI segment length " + len + " (must be 4)", pos);
        }
        pos += 2;
        restartInterval = u16();
    }

    /** B.2.2 frame header syntax (SOF0 / SOF1). */
    private void readFrameHeader(int marker, int markerAt) throws IOException {
        if (frameSeen) {
            throw error("more than one frame header (SOF) in the codestream", markerAt);
        }
        int len = segmentLength(markerAt, 8);
        int segStart = pos;
        pos += 2;
        int p = u8();
        int y = u16();
        int x = u16();
        int nf = u8();
        String sof = marker == 0xC0 ? "SOF0" : "SOF1";
        if (p != 8 && p != 12) {
            throw error(sof + " sample precision " + p + " not supported (8 or 12 only)", segStart + 2);
        }
        if (y == 0) {
            throw error("image height 0 (DNL-defined height) is not supported", segStart + 3);
        }
        if (x == 0) {
            throw error("image width is 0", segStart + 5);
        }
        if (x > MAX_DIMENSION || y > MAX_DIMENSION) {
            throw error("image dimensions " + x + "x" + y + " exceed " + MAX_DIMENSION, segStart + 3);
        }
        if (nf < 1 || nf > MAX_COMPONENTS) {
            throw error("unsupported number of image components " + nf + " (1.." + MAX_COMPONENTS + ")",
                    segStart + 7);
        }
        if (len != 8 + 3 * nf) {
            throw error(sof + " segment length " + len + " does not match " + nf + " components", segStart);
        }
        if ((long) x * y * nf > MAX_SAMPLES) {
            throw error("image too large: " + x + "x" + y + "x" + nf + " samples exceed 2^28", segStart + 3);
        }
        compId = new int[nf];
        compH = new int[nf];
        compV = new int[nf];
        compTq = new int[nf];
        hMax = 1;
        vMax = 1;
        for (int c = 0; c < nf; c++) {
            int at = pos;
            compId[c] = u8();
            int hv = u8();
            compH[c] = hv >> 4;
            compV[c] = hv & 15;
            compTq[c] = u8();
            if (compH[c] < 1 || compH[c] > 4 || compV[c] < 1 || compV[c] > 4) {
                throw error("invalid sampling factors " + compH[c] + "x" + compV[c] + " for component "
                        + compId[c], at + 1);
            }
            if (compTq[c] > 3) {
                throw error("quantization table index " + compTq[c] + " out of range", at + 2);
            }
            hMax = Math.max(hMax, compH[c]);
            vMax = Math.max(vMax, compV[c]);
        }
        blocksWide = new int[nf];
        blocksHigh = new int[nf];
        for (int c = 0; c < nf; c++) {
            if (hMax % compH[c] != 0 || vMax % compV[c] != 0) {
                throw error("fractional sampling ratio for component " + compId[c] + " not supported",
                        segStart + 8 + 3 * c);
            }
            // A.1.1: component dimensions; blocks = ceil(ceil(X * H / Hmax) / 8)
            blocksWide[c] = ceilDiv(ceilDiv(x * compH[c], hMax), 8);
            blocksHigh[c] = ceilDiv(ceilDiv(y * compV[c], vMax), 8);
        }
        frameSeen = true;
        precision = p;
        width = x;
        height = y;
        ncomp = nf;
        setUpRangeLimit(p);
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /**
     * Post-IDCT range-limit tables, built as libjpeg's prepare_range_limit_table + IDCT_range_limit
     * behave: the IDCT output x is looked up at (x &amp; RANGE_MASK); indices in [0, 2N) stand for
     * x &gt;= 0 and give min(x + CENTER, MAXJSAMPLE), indices in [2N, 4N) stand for the negative
     * values x - 4N and give max(x + CENTER, 0). (N = MAXJSAMPLE + 1, RANGE_MASK = 4N - 1.)
     * Shared and never modified.
     */
    private static final short[] RANGE_LIMIT_8 = buildRangeLimit(8);
    private static final short[] RANGE_LIMIT_12 = buildRangeLimit(12);

    private static short[] buildRangeLimit(int p) {
        int n = 1 << p;
        int center = n >> 1;
        int maxSample = n - 1;
        short[] t = new short[4 * n];
        for (int i = 0; i < 4 * n; i++) {
            int x = i < 2 * n ? i : i - 4 * n;
            int v = x + center;
            t[i] = (short) (v < 0 ? 0 : Math.min(v, maxSample));
        }
        return t;
    }

    private void setUpRangeLimit(int p) {
        rangeLimit = p == 8 ? RANGE_LIMIT_8 : RANGE_LIMIT_12;
        rangeMask = rangeLimit.length - 1;
        pass1Bits = p == 8 ? 2 : 1; // jidctint.c: PASS1_BITS 2 for 8-bit, 1 for 12-bit samples
    }

    private void allocate(int markerAt) throws IOException {
        long blocks = 0;
        for (int c = 0; c < ncomp; c++) {
            blocks += (long) blocksWide[c] * blocksHigh[c];
        }
        // Every block costs at least 2 bits of entropy-coded data (a DC code and an AC code of at
        // least 1 bit each), so a short codestream cannot describe a huge image; refuse before
        // allocating rather than fail after.
        long plausible = 16L * (end - base) + 1024;
        if (blocks > plausible) {
            throw error("frame declares " + width + "x" + height + "x" + ncomp + " samples (" + blocks
                    + " blocks), impossible in a codestream of " + (end - base) + " bytes", markerAt);
        }
        out = new short[width * height * ncomp];
        planes = new short[ncomp][];
        latchedQuant = new int[ncomp][];
        compDone = new boolean[ncomp];
        for (int c = 0; c < ncomp; c++) {
            if (compH[c] != hMax || compV[c] != vMax) {
                planes[c] = new short[blocksWide[c] * 8 * blocksHigh[c] * 8];
            }
        }
        allocated = true;
    }

    // ---------------------------------------------------------------------------------------------
    // Scan level (B.2.3, F.2)

    /** Reads a scan header and decodes the scan; returns true if the scan held all components. */
    private boolean readScanAndDecode(int markerAt) throws IOException {
        if (!frameSeen) {
            throw error("SOS before the frame header (SOF)", markerAt);
        }
        int len = segmentLength(markerAt, 3);
        int segStart = pos;
        pos += 2;
        int ns = u8();
        if (ns < 1 || ns > MAX_COMPONENTS || len != 6 + 2 * ns) {
            throw error("bad SOS header (" + ns + " components, length " + len + ")", segStart);
        }
        int[] sc = new int[ns];
        int[] td = new int[ns];
        int[] ta = new int[ns];
        for (int i = 0; i < ns; i++) {
            int at = pos;
            int cs = u8();
            int tdta = u8();
            int ci = -1;
            for (int c = 0; c < ncomp; c++) {
                if (compId[c] == cs) {
                    ci = c;
                    break;
                }
            }
            if (ci < 0) {
                throw error("SOS refers to unknown component id " + cs, at);
            }
            for (int j = 0; j < i; j++) {
                if (sc[j] == ci) {
                    throw error("SOS lists component id " + cs + " twice", at);
                }
            }
            sc[i] = ci;
            td[i] = tdta >> 4;
            ta[i] = tdta & 15;
            if (td[i] > 3 || ta[i] > 3) {
                throw error("Huffman table index out of range in SOS", at + 1);
            }
        }
        pos += 3; // Ss, Se, Ah/Al: fixed for sequential DCT (libjpeg only warns if they differ)

        if (!allocated) {
            allocate(markerAt);
        }
        int blocksPerMcu = 0;
        for (int i = 0; i < ns; i++) {
            blocksPerMcu += ns == 1 ? 1 : compH[sc[i]] * compV[sc[i]];
        }
        if (blocksPerMcu > MAX_BLOCKS_IN_MCU) {
            throw error("scan MCU has " + blocksPerMcu + " blocks (at most " + MAX_BLOCKS_IN_MCU + ")", segStart);
        }
        Huff[] dcTab = new Huff[ns];
        Huff[] acTab = new Huff[ns];
        int[][] q = new int[ns][];
        for (int i = 0; i < ns; i++) {
            int ci = sc[i];
            dcTab[i] = buildTable(0, td[i], markerAt);
            acTab[i] = buildTable(1, ta[i], markerAt);
            if (latchedQuant[ci] == null) {
                // libjpeg latches a component's quantization table when its first scan starts
                if (quant[compTq[ci]] == null) {
                    throw error("quantization table " + compTq[ci] + " used by component " + compId[ci]
                            + " is not defined", markerAt);
                }
                latchedQuant[ci] = quant[compTq[ci]].clone();
            }
            q[i] = latchedQuant[ci];
        }

        boolean firstScan = !anyEarlierScan;
        decodeScan(ns, sc, dcTab, acTab, q);
        anyEarlierScan = true;
        for (int i = 0; i < ns; i++) {
            compDone[sc[i]] = true;
        }
        return firstScan && ns == ncomp;
    }

    private void decodeScan(int ns, int[] sc, Huff[] dcTab, Huff[] acTab, int[][] q) throws IOException {
        bitBuf = 0;
        bitsLeft = 0;
        hitMarker = false;
        hitEnd = false;
        insufficientData = false;
        Arrays.fill(dcPred, 0);
        int restartsToGo = restartInterval;
        int nextRestart = 0;

        int mcusX;
        int mcusY;
        if (ns == 1) {
            // A.2.2 non-interleaved: one block per MCU over the component's own block grid
            mcusX = blocksWide[sc[0]];
            mcusY = blocksHigh[sc[0]];
        } else {
            // A.2.3 interleaved: MCUs cover the image in units of Hmax*8 x Vmax*8 samples
            mcusX = ceilDiv(width, hMax * 8);
            mcusY = ceilDiv(height, vMax * 8);
        }
        final int[] blk = block;
        for (int my = 0; my < mcusY; my++) {
            for (int mx = 0; mx < mcusX; mx++) {
                if (restartInterval != 0) {
                    if (restartsToGo == 0) {
                        processRestart(nextRestart);
                        nextRestart = (nextRestart + 1) & 7;
                        restartsToGo = restartInterval;
                    }
                    restartsToGo--;
                }
                if (insufficientData) {
                    // libjpeg would output flat grey MCUs from here to the next restart marker
                    throw error("entropy-coded data ends prematurely (marker inside scan data, "
                            + "MCU " + (my * mcusX + mx) + " of " + ((long) mcusX * mcusY) + ")", pos);
                }
                for (int i = 0; i < ns; i++) {
                    int ci = sc[i];
                    int bh = ns == 1 ? 1 : compH[ci];
                    int bv = ns == 1 ? 1 : compV[ci];
                    for (int v = 0; v < bv; v++) {
                        for (int h = 0; h < bh; h++) {
                            boolean ac = decodeBlock(blk, dcTab[i], acTab[i], i);
                            int bx = mx * bh + h;
                            int by = my * bv + v;
                            if (bx < blocksWide[ci] && by < blocksHigh[ci]) {
                                storeBlock(ci, bx, by, blk, q[i], ac);
                            }
                            if (ac) {
                                Arrays.fill(blk, 0);
                            } else {
                                blk[0] = 0;
                            }
                        }
                    }
                }
            }
        }
        // End of scan: discard the bits left in the buffer (the encoder pads with 1-bits, F.1.2.3).
        bitBuf = 0;
        bitsLeft = 0;
    }

    /** Expects RSTn (B.2.1, F.1.2.3): realign to a byte boundary, reset DC predictions. */
    private void processRestart(int expected) throws IOException {
        bitBuf = 0;
        bitsLeft = 0;
        int m = nextMarker();
        if (m < 0) {
            throw error("data ends where restart marker RST" + expected + " was expected", end);
        }
        if (m != 0xD0 + expected) {
            throw error(String.format("expected restart marker RST%d but found FF%02X", expected, m), pos - 2);
        }
        hitMarker = false;
        hitEnd = false;
        insufficientData = false;
        Arrays.fill(dcPred, 0);
    }

    // ---------------------------------------------------------------------------------------------
    // Entropy decoding (F.2.2)

    /** Derived Huffman decoding tables (C.2, F.2.2.3 Figure F.15) plus a lookahead table. */
    private static final class Huff {
        /** Index: next LOOKAHEAD bits; value: (code length << 8) | symbol, or 0 if longer/undefined. */
        final int[] look = new int[1 << LOOKAHEAD];
        /** Largest code of each length, -1 if none (Figure F.16 MAXCODE). */
        final int[] maxcode = new int[18];
        /** Symbol index minus first code of each length. */
        final int[] valoffset = new int[17];
        int[] vals;
    }

    private final Huff[][] tableCache = new Huff[2][4];
    private final int[][][] tableCacheSource = new int[2][4][];

    private Huff buildTable(int tc, int th, int markerAt) throws IOException {
        int[] bits = huffBits[tc][th];
        int[] vals = huffVals[tc][th];
        if (bits == null) {
            throw error((tc == 0 ? "DC" : "AC") + " Huffman table " + th + " used by scan is not defined",
                    markerAt);
        }
        if (tableCacheSource[tc][th] == bits && tableCache[tc][th] != null) {
            return tableCache[tc][th];
        }
        Huff t = new Huff();
        int n = vals.length;
        int[] codes = new int[n];
        int[] sizes = new int[n];
        // C.2 Figure C.1/C.2: canonical code assignment. As in libjpeg, a code of all 1-bits is not
        // allowed (T.81 C.2 reserves it), which also rejects over-subscribed tables.
        int code = 0;
        int p = 0;
        for (int l = 1; l <= 16; l++) {
            for (int i = 0; i < bits[l]; i++) {
                codes[p] = code++;
                sizes[p++] = l;
            }
            if (bits[l] != 0 && code >= (1 << l)) {
                throw error((tc == 0 ? "DC" : "AC") + " Huffman table " + th
                        + " is not a valid prefix code", markerAt);
            }
            code <<= 1;
        }
        // F.15: MAXCODE / VALPTR-MINCODE
        p = 0;
        for (int l = 1; l <= 16; l++) {
            if (bits[l] != 0) {
                t.valoffset[l] = p - codes[p];
                p += bits[l];
                t.maxcode[l] = codes[p - 1];
            } else {
                t.maxcode[l] = -1;
            }
        }
        t.maxcode[17] = Integer.MAX_VALUE;
        int[] symbols = vals.clone();
        if (tc == 0) {
            // DC categories above 16 cannot be decoded; DCMTK's libjpeg maps them to 17 instead of
            // rejecting the table, so a table merely listing them still works.
            for (int i = 0; i < n; i++) {
                if (symbols[i] > 16) {
                    symbols[i] = 17;
                }
            }
        }
        t.vals = symbols;
        for (int i = 0; i < n; i++) {
            int l = sizes[i];
            if (l <= LOOKAHEAD) {
                int shift = LOOKAHEAD - l;
                int first = codes[i] << shift;
                int entry = (l << 8) | symbols[i];
                for (int j = 0; j < (1 << shift); j++) {
                    t.look[first + j] = entry;
                }
            }
        }
        tableCache[tc][th] = t;
        tableCacheSource[tc][th] = bits;
        return t;
    }

    /**
     * Refills the bit buffer (F.2.2.5) up to at least 57 bits unless a marker or the end of the data
     * is reached. FF00 is a stuffed FF data byte; FF followed by further FFs then 00 is accepted as one
     * FF data byte as libjpeg does; FF followed by anything else is a marker, where reading stops with
     * {@code pos} left on the marker's first FF.
     */
    private void fill() {
        final byte[] b = buf;
        int p = pos;
        long bb = bitBuf;
        int bl = bitsLeft;
        while (bl <= 56) {
            if (p >= end) {
                hitEnd = true;
                break;
            }
            int c = b[p] & 0xFF;
            if (c == 0xFF) {
                int q = p + 1;
                while (q < end && b[q] == (byte) 0xFF) {
                    q++;
                }
                if (q >= end) {
                    hitEnd = true;
                    break;
                }
                if (b[q] != 0) {
                    hitMarker = true;
                    break;
                }
                p = q + 1;
            } else {
                p++;
            }
            bb = (bb << 8) | c;
            bl += 8;
        }
        pos = p;
        bitBuf = bb;
        bitsLeft = bl;
    }

    /** Called when fewer than n bits remain after a refill. */
    private void padWithZeros(int n) throws IOException {
        if (!hitMarker) {
            throw error("JPEG data truncated inside the entropy-coded segment", end);
        }
        // libjpeg (jpeg_fill_bit_buffer): a marker ended the data early; supply zero bits and
        // remember it, so that a following MCU of the same interval is refused (see decodeScan).
        insufficientData = true;
        bitBuf <<= 32 - bitsLeft;
        bitsLeft = 32;
    }

    private int getBits(int n) throws IOException {
        if (bitsLeft < n) {
            if (!hitMarker && !hitEnd) {
                fill();
            }
            if (bitsLeft < n) {
                padWithZeros(n);
            }
        }
        bitsLeft -= n;
        return (int) (bitBuf >>> bitsLeft) & ((1 << n) - 1);
    }

    /** F.2.2.3 DECODE, with a LOOKAHEAD-bit table for the common short codes. */
    private int decodeSymbol(Huff t) throws IOException {
        if (bitsLeft < LOOKAHEAD && !hitMarker && !hitEnd) {
            fill();
        }
        int code;
        int l;
        if (bitsLeft >= LOOKAHEAD) {
            int look = (int) (bitBuf >>> (bitsLeft - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1);
            int e = t.look[look];
            if (e != 0) {
                bitsLeft -= e >>> 8;
                return e & 0xFF;
            }
            bitsLeft -= LOOKAHEAD;
            code = look;
            l = LOOKAHEAD;
        } else {
            code = 0;
            l = 0;
        }
        // Figure F.16: extend the code one bit at a time
        final int[] maxcode = t.maxcode;
        while (l < 16) {
            code = (code << 1) | getBits(1);
            l++;
            if (code <= maxcode[l]) {
                return t.vals[code + t.valoffset[l]];
            }
        }
        throw error("undefined Huffman code in entropy-coded data", pos);
    }

    /** F.2.2.1 EXTEND: map the additional bits of a category-s value to a signed value. */
    private static int extend(int v, int s) {
        return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
    }

    /**
     * Decodes one 8x8 block into {@code blk} (natural order; must be all zero on entry): F.2.2.1 DC
     * difference plus prediction, F.2.2.2 AC coefficients. Returns true if any AC value was stored.
     */
    private boolean decodeBlock(int[] blk, Huff dc, Huff ac, int predIndex) throws IOException {
        int s = decodeSymbol(dc);
        int diff = 0;
        if (s != 0) {
            diff = extend(getBits(s), s);
        }
        int dcv = dcPred[predIndex] + diff;
        dcPred[predIndex] = dcv;
        blk[0] = (short) dcv; // libjpeg stores coefficients as 16-bit JCOEF
        boolean any = false;
        final int[] look = ac.look;
        for (int k = 1; k < 64; k++) {
            int rs;
            int r;
            if (bitsLeft < 25 && !hitMarker && !hitEnd) {
                fill();
            }
            if (bitsLeft >= 25) {
                // Fast path: a code of at most LOOKAHEAD bits and its <= 15 extra bits are buffered.
                int e = look[(int) (bitBuf >>> (bitsLeft - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1)];
                if (e != 0) {
                    int bl = bitsLeft - (e >>> 8);
                    r = (e >> 4) & 15;
                    s = e & 15;
                    if (s != 0) {
                        k += r;
                        bl -= s;
                        int v = (int) (bitBuf >>> bl) & ((1 << s) - 1);
                        bitsLeft = bl;
                        blk[NATURAL_ORDER[k]] = v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
                        any = true;
                        continue;
                    }
                    bitsLeft = bl;
                    if (r != 15) {
                        break; // EOB
                    }
                    k += 15; // ZRL
                    continue;
                }
            }
            // General path (long codes, end of segment)
            rs = decodeSymbol(ac);
            r = rs >> 4;
            s = rs & 15;
            if (s != 0) {
                k += r;
                blk[NATURAL_ORDER[k]] = extend(getBits(s), s);
                any = true;
            } else {
                if (r != 15) {
                    break; // EOB
                }
                k += 15; // ZRL
            }
        }
        return any;
    }

    // ---------------------------------------------------------------------------------------------
    // Sample reconstruction (A.3.3 IDCT, libjpeg jidctint.c algorithm)

    private void storeBlock(int ci, int bx, int by, int[] blk, int[] q, boolean hasAc) {
        short[] plane = planes[ci];
        int x0 = bx * 8;
        int y0 = by * 8;
        if (plane != null) {
            int stride = blocksWide[ci] * 8;
            reconstruct(blk, q, hasAc, plane, y0 * stride + x0, stride, 1);
            return;
        }
        int nc = ncomp;
        if (x0 + 8 <= width && y0 + 8 <= height) {
            reconstruct(blk, q, hasAc, out, (y0 * width + x0) * nc + ci, width * nc, nc);
            return;
        }
        // Edge block: reconstruct into scratch space, keep the part inside the image.
        short[] tmp = edgeBlock;
        reconstruct(blk, q, hasAc, tmp, 0, 8, 1);
        int w = Math.min(8, width - x0);
        int h = Math.min(8, height - y0);
        for (int r = 0; r < h; r++) {
            int o = ((y0 + r) * width + x0) * nc + ci;
            for (int c = 0; c < w; c++) {
                out[o + c * nc] = tmp[r * 8 + c];
            }
        }
    }

    private void reconstruct(int[] blk, int[] q, boolean hasAc, short[] dst, int off, int rowStride,
            int colStride) {
        if (!hasAc) {
            // Only the DC coefficient is non-zero: libjpeg's column and row short cuts give
            // range_limit[DESCALE(dc * q0 << PASS1_BITS, PASS1_BITS + 3)] for all 64 samples.
            int dcval = (blk[0] * q[0]) << pass1Bits;
            short v = rangeLimit[(int) ((dcval + (1L << (pass1Bits + 2))) >> (pass1Bits + 3)) & rangeMask];
            for (int r = 0; r < 8; r++) {
                int o = off + r * rowStride;
                for (int c = 0; c < 8; c++) {
                    dst[o + c * colStride] = v;
                }
            }
            return;
        }
        idctIslow(blk, q, workspace, pass1Bits, rangeLimit, rangeMask, dst, off, rowStride, colStride);
    }

    /**
     * Dequantisation plus inverse DCT (A.3.3) with the arithmetic of libjpeg's jpeg_idct_islow (the
     * Loeffler-Ligtenberg-Moschytz algorithm, CONST_BITS = 13): columns into an int workspace, then
     * rows into range-limited samples. Intermediate values are 64-bit, results of each pass are
     * truncated to 32 bits, as with libjpeg on LP64 platforms.
     */
    private static void idctIslow(int[] in, int[] q, int[] ws, int pass1, short[] range, int mask,
            short[] dst, int off, int rowStride, int colStride) {
        final int shift1 = CONST_BITS - pass1;
        final long round1 = 1L << (shift1 - 1);
        // Pass 1: columns.
        for (int c = 0; c < 8; c++) {
            if (in[8 + c] == 0 && in[16 + c] == 0 && in[24 + c] == 0 && in[32 + c] == 0
                    && in[40 + c] == 0 && in[48 + c] == 0 && in[56 + c] == 0) {
                int dcval = (in[c] * q[c]) << pass1;
                ws[c] = dcval;
                ws[8 + c] = dcval;
                ws[16 + c] = dcval;
                ws[24 + c] = dcval;
                ws[32 + c] = dcval;
                ws[40 + c] = dcval;
                ws[48 + c] = dcval;
                ws[56 + c] = dcval;
                continue;
            }
            // Even part
            long z2 = in[16 + c] * q[16 + c];
            long z3 = in[48 + c] * q[48 + c];
            long z1 = (z2 + z3) * FIX_0_541196100;
            long tmp2 = z1 + z3 * -FIX_1_847759065;
            long tmp3 = z1 + z2 * FIX_0_765366865;
            z2 = in[c] * q[c];
            z3 = in[32 + c] * q[32 + c];
            long tmp0 = (z2 + z3) << CONST_BITS;
            long tmp1 = (z2 - z3) << CONST_BITS;
            long tmp10 = tmp0 + tmp3;
            long tmp13 = tmp0 - tmp3;
            long tmp11 = tmp1 + tmp2;
            long tmp12 = tmp1 - tmp2;
            // Odd part
            tmp0 = in[56 + c] * q[56 + c];
            tmp1 = in[40 + c] * q[40 + c];
            tmp2 = in[24 + c] * q[24 + c];
            tmp3 = in[8 + c] * q[8 + c];
            z1 = tmp0 + tmp3;
            z2 = tmp1 + tmp2;
            z3 = tmp0 + tmp2;
            long z4 = tmp1 + tmp3;
            long z5 = (z3 + z4) * FIX_1_175875602;
            tmp0 *= FIX_0_298631336;
            tmp1 *= FIX_2_053119869;
            tmp2 *= FIX_3_072711026;
            tmp3 *= FIX_1_501321110;
            z1 *= -FIX_0_899976223;
            z2 *= -FIX_2_562915447;
            z3 *= -FIX_1_961570560;
            z4 *= -FIX_0_390180644;
            z3 += z5;
            z4 += z5;
            tmp0 += z1 + z3;
            tmp1 += z2 + z4;
            tmp2 += z2 + z3;
            tmp3 += z1 + z4;
            ws[c] = (int) ((tmp10 + tmp3 + round1) >> shift1);
            ws[56 + c] = (int) ((tmp10 - tmp3 + round1) >> shift1);
            ws[8 + c] = (int) ((tmp11 + tmp2 + round1) >> shift1);
            ws[48 + c] = (int) ((tmp11 - tmp2 + round1) >> shift1);
            ws[16 + c] = (int) ((tmp12 + tmp1 + round1) >> shift1);
            ws[40 + c] = (int) ((tmp12 - tmp1 + round1) >> shift1);
            ws[24 + c] = (int) ((tmp13 + tmp0 + round1) >> shift1);
            ws[32 + c] = (int) ((tmp13 - tmp0 + round1) >> shift1);
        }
        // Pass 2: rows; descale by 8 (2^3) and undo PASS1_BITS.
        final int shift2 = CONST_BITS + pass1 + 3;
        final long round2 = 1L << (shift2 - 1);
        final int shiftDc = pass1 + 3;
        final long roundDc = 1L << (shiftDc - 1);
        for (int r = 0; r < 8; r++) {
            final int w = r * 8;
            int o = off + r * rowStride;
            if (ws[w + 1] == 0 && ws[w + 2] == 0 && ws[w + 3] == 0 && ws[w + 4] == 0
                    && ws[w + 5] == 0 && ws[w + 6] == 0 && ws[w + 7] == 0) {
                short v = range[(int) ((ws[w] + roundDc) >> shiftDc) & mask];
                for (int c = 0; c < 8; c++) {
                    dst[o + c * colStride] = v;
                }
                continue;
            }
            // Even part
            long z2 = ws[w + 2];
            long z3 = ws[w + 6];
            long z1 = (z2 + z3) * FIX_0_541196100;
            long tmp2 = z1 + z3 * -FIX_1_847759065;
            long tmp3 = z1 + z2 * FIX_0_765366865;
            long tmp0 = ((long) ws[w] + ws[w + 4]) << CONST_BITS;
            long tmp1 = ((long) ws[w] - ws[w + 4]) << CONST_BITS;
            long tmp10 = tmp0 + tmp3;
            long tmp13 = tmp0 - tmp3;
            long tmp11 = tmp1 + tmp2;
            long tmp12 = tmp1 - tmp2;
            // Odd part
            tmp0 = ws[w + 7];
            tmp1 = ws[w + 5];
            tmp2 = ws[w + 3];
            tmp3 = ws[w + 1];
            z1 = tmp0 + tmp3;
            z2 = tmp1 + tmp2;
            z3 = tmp0 + tmp2;
            long z4 = tmp1 + tmp3;
            long z5 = (z3 + z4) * FIX_1_175875602;
            tmp0 *= FIX_0_298631336;
            tmp1 *= FIX_2_053119869;
            tmp2 *= FIX_3_072711026;
            tmp3 *= FIX_1_501321110;
            z1 *= -FIX_0_899976223;
            z2 *= -FIX_2_562915447;
            z3 *= -FIX_1_961570560;
            z4 *= -FIX_0_390180644;
            z3 += z5;
            z4 += z5;
            tmp0 += z1 + z3;
            tmp1 += z2 + z4;
            tmp2 += z2 + z3;
            tmp3 += z1 + z4;
            dst[o] = range[(int) ((tmp10 + tmp3 + round2) >> shift2) & mask];
            dst[o + 7 * colStride] = range[(int) ((tmp10 - tmp3 + round2) >> shift2) & mask];
            dst[o + colStride] = range[(int) ((tmp11 + tmp2 + round2) >> shift2) & mask];
            dst[o + 6 * colStride] = range[(int) ((tmp11 - tmp2 + round2) >> shift2) & mask];
            dst[o + 2 * colStride] = range[(int) ((tmp12 + tmp1 + round2) >> shift2) & mask];
            dst[o + 5 * colStride] = range[(int) ((tmp12 - tmp1 + round2) >> shift2) & mask];
            dst[o + 3 * colStride] = range[(int) ((tmp13 + tmp0 + round2) >> shift2) & mask];
            dst[o + 4 * colStride] = range[(int) ((tmp13 - tmp0 + round2) >> shift2) & mask];
        }
    }

    /** Upsamples (by replication) the components kept in their own planes into the output. */
    private Image finishImage() {
        int nc = ncomp;
        for (int c = 0; c < nc; c++) {
            short[] plane = planes[c];
            if (plane == null) {
                continue;
            }
            int hr = hMax / compH[c];
            int vr = vMax / compV[c];
            int stride = blocksWide[c] * 8;
            for (int y = 0; y < height; y++) {
                int src = (y / vr) * stride;
                int o = y * width * nc + c;
                for (int x = 0; x < width; x++) {
                    out[o + x * nc] = plane[src + x / hr];
                }
            }
        }
        return new Image(width, height, nc, precision, out);
    }
}
