package ich.dicom.codec;

import java.io.IOException;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Decoder for JPEG-LS codestreams (ITU-T T.87 | ISO/IEC 14495-1, the LOCO-I algorithm), lossless and
 * near-lossless, as carried by the DICOM transfer syntaxes 1.2.840.10008.1.2.4.80 and 1.2.840.10008.1.2.4.81.
 *
 * <p>Scope: one component (grey-scale, which is all that CT writes), precision 2 to 16 bits, any NEAR, preset
 * coding parameters (LSE id 1), the oversize-dimension segment (LSE id 4) and restart intervals (DRI). Colour
 * images, mapping tables (LSE ids 2 and 3, scan table selectors) and a point transform are refused with an
 * {@link IOException} that says which, rather than decoded wrongly.
 *
 * <p>The algorithm is T.87's decoding procedure as written in its Annex A: context modelling from the local
 * gradients (A.3), the median edge detector with bias correction (A.4), limited-length Golomb codes (A.5),
 * context update (A.6) and run mode with its interruption samples (A.7). Names follow the standard: Ra, Rb, Rc
 * and Rd are the reconstructed neighbours left, above, above-left and above-right of the sample; A, B, C and N
 * the context counters; NEAR, RANGE, LIMIT and qbpp the frame's coding parameters.
 *
 * <p>Hostile input: every read is bounds-checked; entropy-coded data that ends before the last sample, a
 * unary code longer than LIMIT allows, a run longer than the line, a wrong restart marker or an invalid
 * parameter throws {@link IOException} with the byte offset (relative to {@code offset}). Nothing is
 * allocated before the frame's dimensions have been checked against {@link #MAX_SAMPLES}.
 *
 * <p>Every call works on a fresh instance, so concurrent calls are safe.
 */
public final class JpegLsDecoder {

    /** Decoded image: samples row-major, unsigned in [0, maxVal], in {@code short}s (read them with & 0xFFFF). */
    public record Image(int width, int height, int precision, int maxVal, int near, short[] samples) {}

    /** Largest accepted width * height, as for the DCT decoder. */
    private static final long MAX_SAMPLES = 1L << 28;

    /** T.87 A.2.1: the run-length order for each RUNindex (Table A.2 writes it as J[0..31]). */
    private static final int[] J = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
            4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    /** 365 regular contexts (A.3.4) and 2 run-interruption contexts (A.7.2, indices 365 and 366). */
    private static final int CONTEXTS = 367;
    private static final int MIN_C = -128, MAX_C = 127;

    public static Image decode(byte[] codestream, int offset, int length) throws IOException {
        Objects.requireNonNull(codestream, "codestream");
        Objects.checkFromIndexSize(offset, length, codestream.length);
        return new JpegLsDecoder(codestream, offset, length).run();
    }

    private final byte[] buf;
    private final int base, end;
    private int pos;

    // Frame (SOF55, C.2.2) and preset parameters (LSE id 1, C.2.4.1.1); 0 means "use the default".
    private int precision, height, width;
    private boolean haveFrame;
    private int presetMaxVal, presetT1, presetT2, presetT3, presetReset;
    private int restartInterval;

    // Coding parameters of the scan being decoded.
    private int maxVal, near, range, qbpp, limit, t1, t2, t3, reset;
    /** A.3.3's Qi for each gradient d, at index d + MAXVAL. */
    private byte[] quantized;
    // A is long: with RESET up to 65535 and 16-bit errors, a legal stream can accumulate more than 2^31 in it.
    private final long[] a = new long[CONTEXTS];
    private final int[] b = new int[CONTEXTS], c = new int[CONTEXTS], n = new int[CONTEXTS];
    private final int[] nn = new int[2];
    private int runIndex;

    // Bit reader (A.1: after a 0xFF byte the next byte carries 7 bits, its top bit being a stuffed 0).
    private long cache; // left-aligned
    private int cacheBits;
    private boolean previousWasFF;

    private JpegLsDecoder(byte[] buf, int offset, int length) {
        this.buf = buf;
        this.base = offset;
        this.end = offset + length;
        this.pos = offset;
    }

    private Image run() throws IOException {
        if (end - pos < 2 || u8(pos) != 0xFF || u8(pos + 1) != 0xD8) throw error(pos, "codestream does not start with SOI (FFD8)");
        pos += 2;
        short[] samples = null;
        while (true) {
            int marker = nextMarker();
            switch (marker) {
                case 0xF7 -> readFrame();
                case 0xF8 -> readPresets();
                case 0xDD -> readRestartInterval();
                case 0xDA -> {
                    if (!haveFrame) throw error(pos - 2, "SOS (FFDA) before the frame header SOF55 (FFF7)");
                    if (samples != null) throw error(pos - 2, "a second scan, but the image has one component");
                    if (width == 0 || height == 0) throw error(pos - 2, "image size " + width + " x " + height + " (no LSE id 4 gave it)");
                    samples = new short[width * height];
                    readScanHeaderAndDecode(samples);
                }
                case 0xD9 -> {
                    if (samples == null) throw error(pos - 2, "EOI (FFD9) before any scan");
                    return new Image(width, height, precision, maxVal, near, samples);
                }
                case 0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF ->
                        throw error(pos - 2, String.format("frame header SOF%d (FF%02X) is a T.81 JPEG process, not JPEG-LS (SOF55, FFF7)",
                                marker - 0xC0, marker));
                default -> {
                    if ((marker >= 0xE0 && marker <= 0xEF) || marker == 0xFE || marker == 0xDC) skipSegment(); // APPn, COM, DNL
                    else throw error(pos - 2, String.format("unexpected marker FF%02X", marker));
                }
            }
        }
    }

    /** Skips fill bytes (FF) and returns the code of the marker at pos, advancing past it. */
    private int nextMarker() throws IOException {
        if (pos >= end) throw error(pos, "codestream ends without EOI (FFD9)");
        if (u8(pos) != 0xFF) throw error(pos, String.format("expected a marker, found byte %02X", u8(pos)));
        while (pos < end && u8(pos) == 0xFF) pos++;
        if (pos >= end) throw error(pos, "codestream ends inside a marker");
        return u8(pos++);
    }

    private int segmentLength(int minimum) throws IOException {
        if (pos + 2 > end) throw error(pos, "truncated marker segment");
        int length = u16(pos);
        if (length < minimum || pos + length > end) throw error(pos, "marker segment length " + length + " (the codestream has " + (end - pos) + " bytes left)");
        return length;
    }

    private void skipSegment() throws IOException {
        pos += segmentLength(2);
    }

    /** C.2.2: SOF55, Lf P Y X Nf, then Ci Hi/Vi Tqi per component. */
    private void readFrame() throws IOException {
        int at = pos;
        if (haveFrame) throw error(at - 2, "a second frame header SOF55");
        int length = segmentLength(11);
        precision = u8(pos + 2);
        height = u16(pos + 3);
        width = u16(pos + 5);
        int components = u8(pos + 7);
        if (components != 1) throw error(at, components + " components: only grey-scale (1 component) JPEG-LS is decoded");
        if (length != 8 + 3 * components) throw error(at, "SOF55 length " + length + " for " + components + " component(s)");
        if (precision < 2 || precision > 16) throw error(at, "sample precision " + precision + " bits (T.87 allows 2 to 16)");
        pos += length;
        haveFrame = true;
        checkSize(at);
    }

    private void checkSize(int at) throws IOException {
        if ((long) width * height > MAX_SAMPLES) throw error(at, "image of " + width + " x " + height + " samples is larger than this decoder accepts");
    }

    /** C.2.4.1: LSE. Id 1 (preset coding parameters) and id 4 (oversize dimensions) are read; mapping tables are refused. */
    private void readPresets() throws IOException {
        int at = pos;
        int length = segmentLength(3);
        int id = u8(pos + 2);
        switch (id) {
            case 1 -> {
                if (length != 13) throw error(at, "LSE id 1 (preset coding parameters) has length " + length + ", not 13");
                presetMaxVal = u16(pos + 3);
                presetT1 = u16(pos + 5);
                presetT2 = u16(pos + 7);
                presetT3 = u16(pos + 9);
                presetReset = u16(pos + 11);
            }
            case 4 -> {
                int wxy = length >= 4 ? u8(pos + 3) : 0;
                if (wxy < 2 || wxy > 4 || length != 4 + 2 * wxy) throw error(at, "LSE id 4 (oversize dimensions) with length " + length);
                long y = 0, x = 0;
                for (int i = 0; i < wxy; i++) {
                    y = (y << 8) | u8(pos + 4 + i);
                    x = (x << 8) | u8(pos + 4 + wxy + i);
                }
                if (!haveFrame) throw error(at, "LSE id 4 (oversize dimensions) before the frame header");
                if (x > Integer.MAX_VALUE || y > Integer.MAX_VALUE || (long) x * y > MAX_SAMPLES) {
                    throw error(at, "image of " + x + " x " + y + " samples is larger than this decoder accepts");
                }
                width = (int) x;
                height = (int) y;
            }
            case 2, 3 -> throw error(at, "LSE id " + id + ": mapping tables (palettised JPEG-LS) are not supported");
            default -> throw error(at, "LSE with unknown id " + id);
        }
        pos += length;
    }

    /** B.2.4.4 of T.81 as T.87 uses it: DRI, the number of lines between restart markers. */
    private void readRestartInterval() throws IOException {
        int length = segmentLength(4);
        if (length != 4) throw error(pos, "DRI length " + length + ", not 4");
        restartInterval = u16(pos + 2);
        pos += length;
    }

    /** C.2.3: SOS, Ls Ns (Cs Tm)* NEAR ILV Ah/Al; then the entropy-coded data of the scan. */
    private void readScanHeaderAndDecode(short[] samples) throws IOException {
        int at = pos;
        int length = segmentLength(6);
        int ns = u8(pos + 2);
        if (ns != 1 || length != 6 + 2 * ns) throw error(at, "SOS with " + ns + " component(s) and length " + length + " for a 1-component image");
        int mappingTable = u8(pos + 4);
        if (mappingTable != 0) throw error(at, "SOS selects mapping table " + mappingTable + ": mapping tables are not supported");
        near = u8(pos + 5);
        int interleave = u8(pos + 6);
        int pointTransform = u8(pos + 7) & 0x0F;
        if (interleave != 0) throw error(at, "interleave mode " + interleave + " for a single component (T.87 C.2.3 requires 0)");
        if (pointTransform != 0) throw error(at, "point transform " + pointTransform + " is not supported");
        pos += length;
        setCodingParameters(at);
        decodeScan(samples);
    }

    /** C.2.4.1.1 and its defaults; A.2.1 for RANGE, qbpp, LIMIT and the initial context counters. */
    private void setCodingParameters(int at) throws IOException {
        int largest = (1 << precision) - 1;
        maxVal = presetMaxVal != 0 ? presetMaxVal : largest;
        if (maxVal > largest) throw error(at, "MAXVAL " + maxVal + " does not fit the " + precision + "-bit sample precision");
        if (near > Math.min(255, maxVal / 2)) throw error(at, "NEAR " + near + " exceeds min(255, MAXVAL / 2) for MAXVAL " + maxVal);
        range = (maxVal + 2 * near) / (2 * near + 1) + 1;
        qbpp = ceilLog2(range);
        int bpp = Math.max(2, ceilLog2(maxVal + 1));
        limit = 2 * (bpp + Math.max(8, bpp));

        int d1, d2, d3;
        if (maxVal >= 128) {
            int factor = (Math.min(maxVal, 4095) + 128) / 256;
            d1 = clamp(factor * (3 - 2) + 2 + 3 * near, near + 1);
            d2 = clamp(factor * (7 - 3) + 3 + 5 * near, d1);
            d3 = clamp(factor * (21 - 4) + 4 + 7 * near, d2);
        } else {
            int factor = 256 / (maxVal + 1);
            d1 = clamp(Math.max(2, 3 / factor + 3 * near), near + 1);
            d2 = clamp(Math.max(3, 7 / factor + 5 * near), d1);
            d3 = clamp(Math.max(4, 21 / factor + 7 * near), d2);
        }
        t1 = presetT1 != 0 ? presetT1 : d1;
        t2 = presetT2 != 0 ? presetT2 : d2;
        t3 = presetT3 != 0 ? presetT3 : d3;
        reset = presetReset != 0 ? presetReset : 64;
        if (t1 < near + 1 || t1 > t2 || t2 > t3 || t3 > maxVal) {
            throw error(at, "thresholds T1 " + t1 + ", T2 " + t2 + ", T3 " + t3 + " violate NEAR + 1 <= T1 <= T2 <= T3 <= MAXVAL (" + maxVal + ")");
        }
        if (reset < 3 || reset > Math.max(255, maxVal)) throw error(at, "RESET " + reset + " outside [3, max(255, MAXVAL)]");
        quantized = quantisationTable(maxVal, t1, t2, t3, near);
    }

    private int clamp(int value, int low) {
        return value > maxVal || value < low ? low : value;
    }

    private static int ceilLog2(int value) {
        return 32 - Integer.numberOfLeadingZeros(value - 1);
    }

    private void resetContexts() {
        int initialA = Math.max(2, (range + 32) / 64);
        for (int q = 0; q < CONTEXTS; q++) {
            a[q] = initialA;
            b[q] = 0;
            c[q] = 0;
            n[q] = 1;
        }
        nn[0] = nn[1] = 0;
        runIndex = 0;
    }

    /**
     * Lines are decoded into two buffers of width + 2: index x + 1 holds column x, index 0 column -1 and index
     * width + 1 column width, which give the edge neighbours of A.2.1: Ra at column 0 is Rb, Rc at column 0 is
     * the first sample two lines up, Rd at the last column is Rb, and the line above the first is all zeros
     * (as it is again after each restart marker).
     */
    private void decodeScan(short[] samples) throws IOException {
        resetContexts();
        cache = 0;
        cacheBits = 0;
        previousWasFF = false;
        int[] previous = new int[width + 2], current = new int[width + 2];
        int expectedRestart = 0;
        for (int y = 0; y < height; y++) {
            if (restartInterval > 0 && y > 0 && y % restartInterval == 0) {
                readRestartMarker(expectedRestart);
                expectedRestart = (expectedRestart + 1) & 7;
                resetContexts();
                Arrays.fill(previous, 0);
            }
            previous[width + 1] = previous[width];
            current[0] = previous[1];
            decodeLine(previous, current);
            int row = y * width;
            for (int x = 0; x < width; x++) samples[row + x] = (short) current[x + 1];
            int[] swap = previous;
            previous = current;
            current = swap;
        }
        skipToMarker();
    }

    private void decodeLine(int[] previous, int[] current) throws IOException {
        int x = 0;
        while (x < width) {
            int ra = current[x], rb = previous[x + 1], rc = previous[x], rd = previous[x + 2];
            int qs = 81 * quantized[rd - rb + maxVal] + 9 * quantized[rb - rc + maxVal] + quantized[rc - ra + maxVal];
            if (qs == 0) {
                x += decodeRun(x, previous, current);
                continue;
            }
            // A.3.4: a context and its mirror image (all gradients negated) share counters; SIGN records which. As
            // |9 Q2 + Q3| < 81 and |Q3| < 9, qs is negative exactly when the first non-zero Qi is, and |qs| is the
            // index of the sign-normalised triple, one-to-one into 1..364.
            int sign = qs < 0 ? -1 : 1;
            int q = Math.abs(qs);
            // A.4: median edge detector, then the context's bias correction, clamped to [0, MAXVAL].
            int px;
            if (rc >= Math.max(ra, rb)) px = Math.min(ra, rb);
            else if (rc <= Math.min(ra, rb)) px = Math.max(ra, rb);
            else px = ra + rb - rc;
            px += sign * c[q];
            if (px > maxVal) px = maxVal;
            else if (px < 0) px = 0;
            int k = golombParameter(n[q], a[q]);
            int mapped = readGolomb(k, limit);
            // A.5.2 inverted: even -> non-negative, odd -> negative; mirrored when k = 0 and the context leans negative.
            int errval = (mapped >>> 1) ^ -(mapped & 1);
            if (near == 0 && k == 0 && 2 * b[q] <= -n[q]) errval = ~errval;
            updateRegular(q, errval);
            current[x + 1] = reconstruct(px + sign * errval * (2 * near + 1));
            x++;
        }
    }

    /** A.5.1 (and A.7.2 for run interruptions): the least k with N 2^k >= A. */
    private int golombParameter(int count, long accumulated) throws IOException {
        int k = 0;
        for (long nk = count; nk < accumulated; nk <<= 1) {
            if (++k > 30) throw error(pos, "Golomb parameter k above 30: the context counters are corrupt");
        }
        return k;
    }

    /** A.3.3: gradient quantisation into -4..4 with the thresholds T1, T2, T3 and NEAR. */
    private static int quantize(int d, int t1, int t2, int t3, int near) {
        if (d <= -t3) return -4;
        if (d <= -t2) return -3;
        if (d <= -t1) return -2;
        if (d < -near) return -1;
        if (d <= near) return 0;
        if (d < t1) return 1;
        if (d < t2) return 2;
        if (d < t3) return 3;
        return 4;
    }

    private record Quantisation(int maxVal, int t1, int t2, int t3, int near) {}

    /** Tables of {@link #quantize} for d in [-MAXVAL, MAXVAL], shared between calls: one per set of parameters. */
    private static final ConcurrentHashMap<Quantisation, byte[]> QUANTISATION_TABLES = new ConcurrentHashMap<>();

    private static byte[] quantisationTable(int maxVal, int t1, int t2, int t3, int near) {
        if (QUANTISATION_TABLES.size() > 32) QUANTISATION_TABLES.clear(); // only odd streams vary their thresholds
        return QUANTISATION_TABLES.computeIfAbsent(new Quantisation(maxVal, t1, t2, t3, near), k -> {
            byte[] table = new byte[2 * maxVal + 1];
            for (int d = -maxVal; d <= maxVal; d++) table[d + maxVal] = (byte) quantize(d, t1, t2, t3, near);
            return table;
        });
    }

    /** A.6.1 and A.6.2: counters, halving at RESET, and the bias correction C. */
    private void updateRegular(int q, int errval) {
        b[q] += errval * (2 * near + 1);
        a[q] += Math.abs(errval);
        if (n[q] == reset) {
            a[q] >>= 1;
            b[q] >>= 1; // floor division, as T.87's -((1 - B) >> 1) for negative B
            n[q] >>= 1;
        }
        n[q]++;
        if (b[q] <= -n[q]) {
            b[q] += n[q];
            if (c[q] > MIN_C) c[q]--;
            if (b[q] <= -n[q]) b[q] = -n[q] + 1;
        } else if (b[q] > 0) {
            b[q] -= n[q];
            if (c[q] < MAX_C) c[q]++;
            if (b[q] > 0) b[q] = 0;
        }
    }

    /** A.4.2 / A.7.2: modulo reduction by RANGE * (2 NEAR + 1), then clamping to [0, MAXVAL]. */
    private int reconstruct(int value) {
        int span = range * (2 * near + 1);
        if (value < -near) value += span;
        else if (value > maxVal + near) value -= span;
        if (value < 0) return 0;
        return Math.min(value, maxVal);
    }

    /**
     * A.7.1: run mode at column x. Each 1 bit is a run of 2^J[RUNindex] samples equal to Ra (or the rest of the
     * line); a 0 bit is followed by J[RUNindex] bits of remaining run length and the interruption sample.
     * Returns the number of columns decoded.
     */
    private int decodeRun(int x, int[] previous, int[] current) throws IOException {
        int ra = current[x];
        int left = width - x;
        int count = 0;
        boolean ended = false;
        while (readBit() == 1) {
            int run = Math.min(1 << J[runIndex], left - count);
            count += run;
            if (run == 1 << J[runIndex] && runIndex < 31) runIndex++;
            if (count == left) {
                ended = true;
                break;
            }
        }
        if (!ended) {
            count += readBits(J[runIndex]);
            if (count > left) throw error(pos, "run of " + count + " samples from column " + x + " reaches past the line of " + width);
            // T.87 ends a run at the line's end with a 1 bit; a 0 bit whose remainder reaches it is read as
            // the same run without an interruption sample, as CharLS reads it, rather than refused.
            ended = count == left;
        }
        for (int i = 1; i <= count; i++) current[x + i] = ra;
        if (ended) return count;
        int at = x + count; // column of the interruption sample
        int rb = previous[at + 1];
        current[at + 1] = decodeInterruption(ra, rb);
        if (runIndex > 0) runIndex--;
        return count + 1;
    }

    /** A.7.2: the run interruption sample, coded against Ra (RItype 1, when |Ra - Rb| <= NEAR) or Rb (RItype 0). */
    private int decodeInterruption(int ra, int rb) throws IOException {
        int riType = Math.abs(ra - rb) <= near ? 1 : 0;
        int q = 365 + riType;
        int k = golombParameter(n[q], a[q] + (riType == 1 ? n[q] >> 1 : 0));
        int emErrval = readGolomb(k, limit - J[runIndex] - 1);
        // A.7.2.2 inverted: EMErrval = 2 |Errval| - RItype - map, where map says which sign an odd value carries.
        int total = emErrval + riType;
        int map = total & 1;
        int magnitude = (total + map) >> 1;
        boolean negativeWhenMapped = k != 0 || 2 * nn[riType] >= n[q];
        int errval = (negativeWhenMapped == (map == 1)) ? -magnitude : magnitude;
        if (errval < 0) nn[riType]++;
        a[q] += (emErrval + 1 - riType) >> 1;
        if (n[q] == reset) {
            a[q] >>= 1;
            n[q] >>= 1;
            nn[riType] >>= 1;
        }
        n[q]++;
        int dequantised = errval * (2 * near + 1);
        if (riType == 1) return reconstruct(ra + dequantised);
        return reconstruct(rb + (rb < ra ? -dequantised : dequantised));
    }

    /** A.5.3: limited-length Golomb code LG(k, LIMIT); an escape after LIMIT - qbpp - 1 zeros carries value - 1 in qbpp bits. */
    private int readGolomb(int k, int codeLimit) throws IOException {
        int escape = codeLimit - qbpp - 1;
        int zeros = countZeros(escape);
        if (zeros == escape) return readBits(qbpp) + 1;
        return k == 0 ? zeros : (zeros << k) | readBits(k);
    }

    // ---------------------------------------------------------------------------------------------
    // Bits

    private void fill() {
        while (cacheBits <= 56 && pos < end) {
            int v = u8(pos);
            if (v == 0xFF && (pos + 1 >= end || u8(pos + 1) >= 0x80)) return; // a marker ends the entropy-coded data
            if (previousWasFF) {
                cache |= (long) v << (57 - cacheBits);
                cacheBits += 7;
            } else {
                cache |= (long) v << (56 - cacheBits);
                cacheBits += 8;
            }
            previousWasFF = v == 0xFF;
            pos++;
        }
    }

    private int readBit() throws IOException {
        if (cacheBits == 0) {
            fill();
            if (cacheBits == 0) throw endOfData();
        }
        int bit = (int) (cache >>> 63);
        cache <<= 1;
        cacheBits--;
        return bit;
    }

    /** Up to 32 bits, most significant first. */
    private int readBits(int count) throws IOException {
        if (count == 0) return 0;
        if (cacheBits < count) {
            fill();
            if (cacheBits < count) throw endOfData();
        }
        int value = (int) (cache >>> (64 - count));
        cache = count == 64 ? 0 : cache << count;
        cacheBits -= count;
        return value;
    }

    /** Counts 0 bits up to and including the terminating 1; more than {@code most} zeros is corrupt data. */
    private int countZeros(int most) throws IOException {
        int zeros = 0;
        while (true) {
            if (cacheBits == 0) {
                fill();
                if (cacheBits == 0) throw endOfData();
            }
            int lz = Long.numberOfLeadingZeros(cache);
            if (lz < cacheBits) {
                zeros += lz;
                if (zeros > most) break;
                cache = lz == 63 ? 0 : cache << (lz + 1);
                cacheBits -= lz + 1;
                return zeros;
            }
            zeros += cacheBits;
            cache = 0;
            cacheBits = 0;
            if (zeros > most) break;
        }
        throw error(pos, "Golomb code with more than " + most + " leading zeros (limit " + limit + ")");
    }

    private IOException endOfData() {
        return error(pos, "entropy-coded data ends before the last sample of the scan");
    }

    /** After a scan or restart interval: the rest of the last byte is padding; the next marker follows. */
    private void skipToMarker() {
        cache = 0;
        cacheBits = 0;
        previousWasFF = false;
        while (pos < end && !(u8(pos) == 0xFF && pos + 1 < end && u8(pos + 1) >= 0x80)) pos++;
    }

    private void readRestartMarker(int m) throws IOException {
        skipToMarker();
        int at = pos;
        if (pos + 2 > end || u8(pos) != 0xFF) throw error(at, "expected restart marker RST" + m);
        while (pos + 1 < end && u8(pos + 1) == 0xFF) pos++;
        int marker = pos + 1 < end ? u8(pos + 1) : -1;
        if (marker != 0xD0 + m) throw error(at, String.format("expected restart marker RST%d (FFD%d), found FF%02X", m, m, marker));
        pos += 2;
    }

    // ---------------------------------------------------------------------------------------------

    private int u8(int p) {
        return buf[p] & 0xFF;
    }

    private int u16(int p) {
        return (u8(p) << 8) | u8(p + 1);
    }

    private IOException error(int at, String message) {
        return new IOException("JPEG-LS: " + message + " (byte " + (at - base) + ")");
    }
}
