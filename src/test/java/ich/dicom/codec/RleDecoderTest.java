package ich.dicom.codec;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * RLE Lossless (PS3.5 Annex G) against an independent encoder written here from the standard, plus the
 * PackBits example of Apple TN1023 and every failure the decoder must report as an IOException.
 */
public class RleDecoderTest {

    // ---- a small encoder, PS3.5 G.3 and G.5 ----

    /**
     * Encodes one frame given in the native layout (little endian, samples of a pixel interleaved): a 64-byte
     * header (segment count, then 15 segment offsets), then one PackBits segment per byte plane, for each sample
     * the most significant byte first (G.2), each segment padded to even length (G.3.1).
     */
    public static byte[] encodeFrame(byte[] nativeLe, int pixels, int samplesPerPixel, int bytesPerSample) {
        int segments = samplesPerPixel * bytesPerSample;
        if (segments > 15) throw new IllegalArgumentException("G.5: at most 15 segments");
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        ByteBuffer header = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN).putInt(segments);
        int stride = segments;
        for (int s = 0; s < samplesPerPixel; s++) {
            for (int j = 0; j < bytesPerSample; j++) {
                header.putInt(64 + body.size());
                byte[] plane = new byte[pixels];
                int byteInLe = s * bytesPerSample + (bytesPerSample - 1 - j); // MSB first
                for (int p = 0; p < pixels; p++) plane[p] = nativeLe[p * stride + byteInLe];
                byte[] seg = packBits(plane);
                body.write(seg, 0, seg.length);
                if ((seg.length & 1) == 1) body.write(0);
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header.array(), 0, 64);
        out.write(body.toByteArray(), 0, body.size());
        return out.toByteArray();
    }

    /** G.3.1: replicate runs of 3..128 as (1 - n, byte), everything else as literal runs of 1..128 as (n - 1, bytes). */
    static byte[] packBits(byte[] in) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int i = 0;
        while (i < in.length) {
            int run = runAt(in, i);
            if (run >= 3) {
                out.write(1 - run);
                out.write(in[i]);
                i += run;
                continue;
            }
            int start = i;
            while (i < in.length && i - start < 128 && runAt(in, i) < 3) i++;
            out.write(i - start - 1);
            out.write(in, start, i - start);
        }
        return out.toByteArray();
    }

    private static int runAt(byte[] in, int i) {
        int n = 1;
        while (i + n < in.length && n < 128 && in[i + n] == in[i]) n++;
        return n;
    }

    // ---- helpers ----

    private static byte[] decode(byte[] frame, int rows, int columns, int spp, int bitsAllocated) throws IOException {
        MemorySegment out = MemorySegment.ofArray(new byte[rows * columns * spp * (bitsAllocated / 8)]);
        RleDecoder.decodeFrame(MemorySegment.ofArray(frame), rows, columns, spp, bitsAllocated, out, 0);
        return out.toArray(ValueLayout.JAVA_BYTE);
    }

    private static void assertRoundTrip(byte[] nativeLe, int rows, int columns, int spp, int bitsAllocated) throws IOException {
        byte[] frame = encodeFrame(nativeLe, rows * columns, spp, bitsAllocated / 8);
        assertArrayEquals(nativeLe, decode(frame, rows, columns, spp, bitsAllocated));
    }

    /** Random bytes made of runs (some longer than 128) and literal stretches, so both PackBits forms occur. */
    private static byte[] runsAndNoise(SplittableRandom rnd, int n) {
        byte[] b = new byte[n];
        int i = 0;
        while (i < n) {
            int len = Math.min(n - i, 1 + rnd.nextInt(rnd.nextBoolean() ? 300 : 12));
            if (rnd.nextBoolean()) {
                byte v = (byte) rnd.nextInt(256);
                for (int k = 0; k < len; k++) b[i + k] = v;
            } else {
                for (int k = 0; k < len; k++) b[i + k] = (byte) rnd.nextInt(256);
            }
            i += len;
        }
        return b;
    }

    private static byte[] withSegmentOffset(byte[] frame, int segment, int offset) {
        byte[] f = frame.clone();
        ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN).putInt(4 + 4 * segment, offset);
        return f;
    }

    // ---- decoding ----

    @Test
    void decodesThePackBitsExampleOfAppleTn1023() throws IOException {
        // Apple Technical Note TN1023: the classic PackBits example, here as the single segment of a 4 x 6 frame.
        byte[] packed = HexFormat.of().parseHex("FEAA0280002AFDAA0380002A22F7AA");
        byte[] expected = HexFormat.of().parseHex("AAAAAA80002AAAAAAAAA80002A22AAAAAAAAAAAAAAAAAAAA");
        assertEquals(24, expected.length);
        byte[] frame = new byte[64 + packed.length + 1];
        ByteBuffer.wrap(frame).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 1).putInt(4, 64);
        System.arraycopy(packed, 0, frame, 64, packed.length);
        assertArrayEquals(expected, decode(frame, 4, 6, 1, 8));
    }

    @Test
    void headerByteMinus128IsANoOp() throws IOException {
        // G.3.1: a header byte of -128 outputs nothing; the next byte is a header again.
        byte[] frame = new byte[64 + 6];
        ByteBuffer.wrap(frame).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 1).putInt(4, 64);
        byte[] seg = {(byte) 0x80, (byte) 0x80, (byte) 0xFD, 0x37, 0x00, 0x11}; // no-op, no-op, 4 x 0x37, literal 0x11
        System.arraycopy(seg, 0, frame, 64, seg.length);
        assertArrayEquals(new byte[]{0x37, 0x37, 0x37, 0x37, 0x11}, decode(frame, 1, 5, 1, 8));
    }

    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"1, 1", "1, 2", "7, 13", "13, 7", "3, 301", "64, 64"})
    void roundTrips8Bit(int rows, int columns) throws IOException {
        SplittableRandom rnd = new SplittableRandom(rows * 1000L + columns);
        assertRoundTrip(runsAndNoise(rnd, rows * columns), rows, columns, 1, 8);
    }

    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"1, 1", "5, 9", "33, 17", "64, 64"})
    void roundTrips16BitSigned(int rows, int columns) throws IOException {
        SplittableRandom rnd = new SplittableRandom(rows * 7919L + columns);
        int n = rows * columns;
        ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        int i = 0;
        while (i < n) { // CT-like: runs of air (-1024) and of signed noise around 0
            int len = Math.min(n - i, 1 + rnd.nextInt(200));
            boolean air = rnd.nextInt(3) == 0;
            for (int k = 0; k < len; k++, i++) b.putShort((short) (air ? -1024 : rnd.nextInt(-2000, 3000)));
        }
        byte[] nativeLe = b.array();
        assertRoundTrip(nativeLe, rows, columns, 1, 16);
        // The high byte plane comes first (G.2): the first segment starts with the high byte of pixel 0
        // (the byte after the first PackBits header, whether a literal or a replicate run).
        byte[] frame = encodeFrame(nativeLe, n, 1, 2);
        assertEquals(2, frame[0]);
        short first = ByteBuffer.wrap(nativeLe).order(ByteOrder.LITTLE_ENDIAN).getShort(0);
        int seg0 = ByteBuffer.wrap(frame).order(ByteOrder.LITTLE_ENDIAN).getInt(4);
        assertEquals((byte) (first >> 8), frame[seg0 + 1]);
    }

    @Test
    void roundTrips32Bit() throws IOException {
        SplittableRandom rnd = new SplittableRandom(32);
        int rows = 9, columns = 11;
        byte[] nativeLe = new byte[rows * columns * 4];
        rnd.nextBytes(nativeLe);
        assertRoundTrip(nativeLe, rows, columns, 1, 32);
    }

    @Test
    void threeSamplesDecodeInterleaved() throws IOException {
        // G.2: one segment per sample (R, G, B planes); the output is Planar Configuration 0 (R G B R G B ...).
        SplittableRandom rnd = new SplittableRandom(3);
        int rows = 11, columns = 7, n = rows * columns;
        byte[] r = runsAndNoise(rnd, n), g = runsAndNoise(rnd, n), bl = runsAndNoise(rnd, n);
        byte[] interleaved = new byte[3 * n];
        for (int p = 0; p < n; p++) {
            interleaved[3 * p] = r[p];
            interleaved[3 * p + 1] = g[p];
            interleaved[3 * p + 2] = bl[p];
        }
        byte[] frame = encodeFrame(interleaved, n, 3, 1);
        // Independent check of the layout: segment 0 alone is the red plane.
        ByteBuffer h = ByteBuffer.wrap(frame).order(ByteOrder.LITTLE_ENDIAN);
        byte[] redSegment = Arrays.copyOfRange(frame, h.getInt(4), h.getInt(8));
        assertArrayEquals(packBits(r), Arrays.copyOf(redSegment, packBits(r).length));
        assertArrayEquals(interleaved, decode(frame, rows, columns, 3, 8));
    }

    @Test
    void runsLongerThan128AndLongLiteralRuns() throws IOException {
        SplittableRandom rnd = new SplittableRandom(128);
        byte[] plane = new byte[300 + 300 + 129];
        Arrays.fill(plane, 0, 300, (byte) 0x5A);
        for (int i = 300; i < 600; i++) {
            byte v;
            do v = (byte) rnd.nextInt(256); while (v == plane[i - 1]); // no two equal neighbours: literal only
            plane[i] = v;
        }
        Arrays.fill(plane, 600, 729, (byte) 0xA5);
        byte[] packed = packBits(plane);
        // The encoder really split the runs: 128 + 128 + 44 replicate, then literal runs of 128.
        assertEquals((byte) -127, packed[0]);
        assertEquals((byte) -127, packed[2]);
        assertEquals((byte) -43, packed[4]);
        assertEquals(127, packed[6]);
        assertRoundTrip(plane, 1, plane.length, 1, 8);
        assertRoundTrip(plane, 3, 243, 1, 8);
    }

    @Test
    void decodesAtTheGivenOutputOffset() throws IOException {
        SplittableRandom rnd = new SplittableRandom(99);
        byte[] pixels = new byte[2 * 5 * 6];
        rnd.nextBytes(pixels);
        byte[] frame = encodeFrame(pixels, 30, 1, 2);
        byte[] out = new byte[3 * 60];
        Arrays.fill(out, (byte) 0x77);
        RleDecoder.decodeFrame(MemorySegment.ofArray(frame), 5, 6, 1, 16, MemorySegment.ofArray(out), 60);
        assertArrayEquals(pixels, Arrays.copyOfRange(out, 60, 120));
        for (int i = 0; i < 60; i++) assertEquals(0x77, out[i]);
        for (int i = 120; i < 180; i++) assertEquals(0x77, out[i]);
    }

    // ---- failures: always an IOException that says what is wrong ----

    private static IOException fails(byte[] frame, int rows, int columns, int spp, int bitsAllocated) {
        MemorySegment out = MemorySegment.ofArray(new byte[Math.max(1, rows * columns * spp * Math.max(1, bitsAllocated / 8))]);
        return assertThrows(IOException.class,
                () -> RleDecoder.decodeFrame(MemorySegment.ofArray(frame), rows, columns, spp, bitsAllocated, out, 0));
    }

    @Test
    void wrongSegmentCount() {
        byte[] pixels = new byte[2 * 16];
        new SplittableRandom(1).nextBytes(pixels);
        byte[] frame = encodeFrame(pixels, 16, 1, 2);
        // Decoding a 2-segment frame as 8-bit: 1 segment expected.
        IOException e = fails(frame, 4, 4, 1, 8);
        assertTrue(e.getMessage().contains("2 segments") && e.getMessage().contains("expected 1"), e.getMessage());
        // A negative count read as unsigned.
        byte[] bad = frame.clone();
        ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN).putInt(0, -1);
        e = fails(bad, 4, 4, 1, 16);
        assertTrue(e.getMessage().contains("4294967295 segments"), e.getMessage());
    }

    @Test
    void segmentOffsetBeyondTheFrame() {
        byte[] pixels = new byte[2 * 16];
        new SplittableRandom(2).nextBytes(pixels);
        byte[] frame = encodeFrame(pixels, 16, 1, 2);
        int n = frame.length;
        // Segment 1 starting past the end also ends segment 0 there.
        IOException e = fails(withSegmentOffset(frame, 1, n + 2), 4, 4, 1, 16);
        assertTrue(e.getMessage().contains(".." + (n + 2) + " of a " + n + "-byte frame"), e.getMessage());
        e = fails(withSegmentOffset(frame, 0, Integer.MIN_VALUE), 4, 4, 1, 16); // 2 GiB, read unsigned
        assertTrue(e.getMessage().contains("segment 0 spans bytes 2147483648.."), e.getMessage());
        e = fails(withSegmentOffset(frame, 0, 12), 4, 4, 1, 16); // inside the 64-byte header
        assertTrue(e.getMessage().contains("segment 0 spans bytes 12.."), e.getMessage());
    }

    @Test
    void segmentsOutOfOrder() {
        byte[] pixels = new byte[2 * 16];
        new SplittableRandom(5).nextBytes(pixels);
        byte[] frame = encodeFrame(pixels, 16, 1, 2);
        int second = ByteBuffer.wrap(frame).order(ByteOrder.LITTLE_ENDIAN).getInt(8);
        IOException e = fails(withSegmentOffset(frame, 0, second + 2), 4, 4, 1, 16);
        assertTrue(e.getMessage().contains("segment 0"), e.getMessage());
    }

    @Test
    void segmentThatDecodesShort() {
        byte[] pixels = new byte[64];
        new SplittableRandom(3).nextBytes(pixels);
        byte[] frame = encodeFrame(pixels, 64, 1, 1);
        // The same frame declared one row taller: the segment runs out 8 bytes early.
        IOException e = fails(frame, 9, 8, 1, 8);
        assertTrue(e.getMessage().contains("decodes to 64 bytes, expected 72"), e.getMessage());
        // A replicate run header as the segment's last byte, without its value byte.
        byte[] cut = Arrays.copyOf(new byte[64], 65);
        ByteBuffer.wrap(cut).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 1).putInt(4, 64);
        cut[64] = (byte) 0xFD;
        e = fails(cut, 1, 4, 1, 8);
        assertTrue(e.getMessage().contains("decodes to 0 bytes"), e.getMessage());
    }

    @Test
    void frameShorterThanTheHeader() {
        IOException e = fails(new byte[63], 1, 1, 1, 8);
        assertTrue(e.getMessage().contains("63 bytes"), e.getMessage());
    }

    @Test
    void moreSegmentsThanTheHeaderCanHold() {
        // G.5: the header holds 15 segment offsets, so 4 samples of 32 bits (16 segments) cannot be RLE
        // encoded. A frame that claims 16 segments must be refused, not decoded with a 16th "offset" taken
        // from the bytes after the header. Here those bytes point at a plausible 16th segment.
        int n = 64 + 4 + 2 * 16;
        ByteBuffer b = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 16);
        for (int s = 0; s < 15; s++) b.putInt(4 + 4 * s, 68 + 2 * s);
        b.putInt(64, 68 + 2 * 15);
        for (int s = 0; s < 16; s++) b.put(68 + 2 * s, (byte) 0).put(69 + 2 * s, (byte) (s + 1)); // literal of 1 byte
        IOException e = fails(b.array(), 1, 1, 4, 32);
        assertTrue(e.getMessage().contains("15"), e.getMessage());
        // With no pixels at all the same header made the decoder read past a 64-byte frame.
        e = fails(Arrays.copyOf(b.array(), 64), 0, 1, 4, 32);
        assertTrue(e.getMessage().contains("15"), e.getMessage());
    }

    @Test
    void bitsAllocatedNotAMultipleOf8() {
        IOException e = fails(new byte[64], 1, 8, 1, 1);
        assertTrue(e.getMessage().contains("Bits Allocated 1"), e.getMessage());
    }
}
