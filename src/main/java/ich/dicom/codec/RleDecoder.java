package ich.dicom.codec;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * RLE Lossless (PS3.5 Annex G). A frame is a 64-byte header (segment count, then 15 segment offsets) and
 * one PackBits segment per byte plane: for each sample, most significant byte first (G.2).
 */
public final class RleDecoder {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private RleDecoder() {}

    /**
     * Decodes one frame into {@code out} at {@code outOffset}, little endian, samples interleaved
     * (Planar Configuration 0).
     */
    public static void decodeFrame(MemorySegment in, int rows, int columns, int samplesPerPixel, int bitsAllocated,
                                   MemorySegment out, long outOffset) throws IOException {
        if (bitsAllocated % 8 != 0) throw new IOException("RLE: Bits Allocated " + bitsAllocated + " is not a multiple of 8");
        int bytesPerSample = bitsAllocated / 8;
        int expectedSegments = samplesPerPixel * bytesPerSample;
        if (expectedSegments > 15) {
            throw new IOException("RLE: " + samplesPerPixel + " samples x " + bytesPerSample + " bytes need " + expectedSegments
                    + " segments, but the RLE header holds at most 15 (G.5)");
        }
        long n = in.byteSize();
        if (n < 64) throw new IOException("RLE: frame of " + n + " bytes is shorter than the 64-byte RLE header (G.5)");
        int segments = in.get(U32, 0);
        if (segments != expectedSegments) {
            throw new IOException("RLE: header declares " + Integer.toUnsignedString(segments) + " segments, expected "
                    + expectedSegments + " (" + samplesPerPixel + " samples x " + bytesPerSample + " bytes)");
        }
        long pixels = (long) rows * columns;
        int stride = samplesPerPixel * bytesPerSample;
        for (int s = 0; s < segments; s++) {
            long start = Integer.toUnsignedLong(in.get(U32, 4 + 4L * s));
            long end = s + 1 < segments ? Integer.toUnsignedLong(in.get(U32, 4 + 4L * (s + 1))) : n;
            if (start < 64 || start > end || end > n) {
                throw new IOException("RLE: segment " + s + " spans bytes " + start + ".." + end + " of a " + n + "-byte frame");
            }
            int sample = s / bytesPerSample, byteInSample = s % bytesPerSample;
            // Segment order is most significant byte first; the output is little endian.
            long dst = outOffset + (long) sample * bytesPerSample + (bytesPerSample - 1 - byteInSample);
            long produced = unpackBits(in, start, end, out, dst, stride, pixels);
            if (produced != pixels) {
                throw new IOException("RLE: segment " + s + " decodes to " + produced + " bytes, expected " + pixels);
            }
        }
    }

    /** PackBits (G.3.1): writes up to {@code count} bytes at {@code dst}, {@code stride} apart; returns how many. */
    private static long unpackBits(MemorySegment in, long p, long end, MemorySegment out, long dst, int stride, long count) {
        long written = 0;
        while (p < end && written < count) {
            int header = in.get(ValueLayout.JAVA_BYTE, p++);
            if (header >= 0) {
                long literal = Math.min(header + 1, Math.min(end - p, count - written));
                for (long k = 0; k < literal; k++) {
                    out.set(ValueLayout.JAVA_BYTE, dst + (written++) * stride, in.get(ValueLayout.JAVA_BYTE, p++));
                }
            } else if (header != -128) {
                if (p >= end) break;
                byte value = in.get(ValueLayout.JAVA_BYTE, p++);
                long run = Math.min(1 - header, count - written);
                for (long k = 0; k < run; k++) out.set(ValueLayout.JAVA_BYTE, dst + (written++) * stride, value);
            }
        }
        return written;
    }
}
