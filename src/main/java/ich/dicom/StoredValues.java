package ich.dicom;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Stored pixel values (PS3.5 8.1.1, PS3.3 C.7.6.3.1): the Bits Stored bits ending at High Bit, masked,
 * and sign-extended when Pixel Representation is 1. Bits outside them (overlays, junk) are ignored.
 */
public final class StoredValues {
    private static final ValueLayout.OfShort S16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt S32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final int bitsAllocated;
    private final int shiftLeft;
    private final int shiftRight;
    private final boolean signed;

    public StoredValues(int bitsAllocated, int bitsStored, int highBit, int pixelRepresentation) {
        if (bitsAllocated != 8 && bitsAllocated != 16 && bitsAllocated != 32) {
            throw new IllegalArgumentException("Bits Allocated " + bitsAllocated + " has no stored-value form here");
        }
        this.bitsAllocated = bitsAllocated;
        // Move the high bit to bit 31, then shift back: arithmetic shift sign-extends, logical shift masks.
        this.shiftLeft = 31 - highBit;
        this.shiftRight = 32 - bitsStored;
        this.signed = pixelRepresentation == 1;
    }

    public static StoredValues of(ImageHeader h) {
        return new StoredValues(h.bitsAllocated(), h.bitsStored(), h.highBit(), h.pixelRepresentation());
    }

    /** The stored value of a raw sample word. */
    public int value(int raw) {
        int v = raw << shiftLeft;
        return signed ? v >> shiftRight : v >>> shiftRight;
    }

    /** The stored value of a raw sample word, for callers that keep the parameters themselves. */
    public static int extract(int raw, int bitsStored, int highBit, boolean signed) {
        int v = raw << (31 - highBit);
        return signed ? v >> (32 - bitsStored) : v >>> (32 - bitsStored);
    }

    /** The stored value of sample {@code index} in a little-endian pixel buffer. */
    public int get(MemorySegment pixels, long index) {
        int raw = switch (bitsAllocated) {
            case 8 -> pixels.get(ValueLayout.JAVA_BYTE, index) & 0xFF;
            case 16 -> pixels.get(S16, 2 * index) & 0xFFFF;
            default -> pixels.get(S32, 4 * index);
        };
        return value(raw);
    }

    public int bytesPerSample() { return bitsAllocated / 8; }

    /** {min, max} over every sample of the buffer. */
    public int[] range(MemorySegment pixels) {
        long n = pixels.byteSize() / bytesPerSample();
        int min = Integer.MAX_VALUE, max = Integer.MIN_VALUE;
        for (long i = 0; i < n; i++) {
            int v = get(pixels, i);
            if (v < min) min = v;
            if (v > max) max = v;
        }
        return new int[]{min, max};
    }
}
