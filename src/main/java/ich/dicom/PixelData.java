package ich.dicom;

import java.lang.foreign.MemorySegment;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Pixel Data in the native little-endian layout (PS3.5 8.1.1 / 8.2): frames one after another, samples of
 * a pixel interleaved unless {@code planarConfiguration} is 1, each sample {@code bitsAllocated / 8} bytes,
 * unused high bits as stored.
 *
 * @param bytes    exactly {@code frames * frameBytes()} bytes
 * @param zeroCopy true when {@code bytes} is a view of the file's own bytes (the mapping; for files under 16 KB
 *                 the bytes read) rather than a decoded copy
 */
public record PixelData(int frames, int rows, int columns, int samplesPerPixel, int bitsAllocated,
                        int planarConfiguration, MemorySegment bytes, boolean zeroCopy) {

    public long frameBytes() {
        long samples = (long) rows * columns * samplesPerPixel;
        return bitsAllocated == 1 ? (samples + 7) / 8 : samples * (bitsAllocated / 8);
    }

    /**
     * SHA-256 of the Pixel Data value as decoded: all frames, little endian, unused high bits as stored,
     * padded to even length (PS3.5 7.1.1). The definition of the sample corpus ground truth.
     */
    public String sha256() { return sha256(bytes); }

    public static String sha256(MemorySegment bytes) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(bytes.asByteBuffer());
            if ((bytes.byteSize() & 1) == 1) md.update((byte) 0);
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK lacks SHA-256", e);
        }
    }

    public MemorySegment frame(int index) {
        if (index < 0 || index >= frames) throw new IndexOutOfBoundsException("frame " + index + " of " + frames);
        return bytes.asSlice(index * frameBytes(), frameBytes());
    }
}
