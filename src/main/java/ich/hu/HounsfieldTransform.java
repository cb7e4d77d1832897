package ich.hu;

import ich.dicom.FrameTransform;
import ich.dicom.ImageHeader;
import ich.dicom.ModalityLut;
import ich.dicom.StoredValues;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Stored pixel value to Hounsfield units for one frame: the CPU reference that the GPU preprocessing kernel
 * must reproduce, and the parameters that kernel takes per image.
 *
 * <ol>
 *   <li>Stored value: the Bits Stored bits ending at High Bit, sign-extended when Pixel Representation is 1
 *       (PS3.5 8.1.1). Junk in the unused high bits is ignored.</li>
 *   <li>RSNA 12-bit fix (on by default): some scanners in the RSNA ICH data store HU + 1024 modulo 4096 in
 *       unsigned 12-bit words while claiming Rescale Intercept 0 or 1, so air (-1000 HU) reads as 3096. When
 *       Bits Stored is 12, Pixel Representation is 0 and the intercept is above -100, the value is
 *       {@code (stored + 1000) mod 4096} with intercept -1000.</li>
 *   <li>Modality transform: (0028,3000) Modality LUT when present, else Rescale Slope (0028,1053) and
 *       Intercept (0028,1052), defaulting to 1 and 0 (PS3.3 C.11.1).</li>
 *   <li>Pixel padding (optional): stored values equal to (0028,0120) Pixel Padding Value, or within the range
 *       it forms with (0028,0121) Pixel Padding Range Limit, become {@code paddingHu}.</li>
 * </ol>
 *
 * MONOCHROME1 needs nothing here: the modality transform gives physical values whatever the display
 * polarity (PS3.3 C.7.6.3.1.2), so HU are the same for MONOCHROME1 and MONOCHROME2. Only a display
 * rendering inverts MONOCHROME1, and {@link #monochrome1()} tells the windowing stage to.
 */
public record HounsfieldTransform(int bitsAllocated, int bitsStored, int highBit, boolean signed,
                                  boolean rsna12BitFix, float slope, float intercept, ModalityLut lut,
                                  boolean maskPadding, int paddingLow, int paddingHigh, float paddingHu,
                                  boolean monochrome1) {

    private static final ValueLayout.OfShort S16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt S32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** What the caller wants beyond the header: the fix and padding masking. */
    public record Options(boolean rsna12BitFix, boolean maskPadding, float paddingHu) {
        public static final Options DEFAULT = new Options(true, false, -1024f);

        public Options withRsna12BitFix(boolean on) { return new Options(on, maskPadding, paddingHu); }

        public Options withPaddingMasked(float hu) { return new Options(rsna12BitFix, true, hu); }
    }

    public static HounsfieldTransform of(ImageHeader h, int frame) { return of(h, frame, Options.DEFAULT); }

    public static HounsfieldTransform of(ImageHeader h, int frame, Options options) {
        if (h.samplesPerPixel() != 1) {
            throw new IllegalArgumentException("Hounsfield units need one sample per pixel, the image has " + h.samplesPerPixel());
        }
        if (h.bitsAllocated() != 8 && h.bitsAllocated() != 16 && h.bitsAllocated() != 32) {
            throw new IllegalArgumentException("Bits Allocated " + h.bitsAllocated() + " is not supported for Hounsfield units");
        }
        FrameTransform t = h.frameTransform(frame);
        double slope = Double.isNaN(t.rescaleSlope()) ? 1 : t.rescaleSlope();
        double intercept = Double.isNaN(t.rescaleIntercept()) ? 0 : t.rescaleIntercept();
        boolean signed = h.pixelRepresentation() == 1;
        ModalityLut lut = t.hasRescale() ? null : h.modalityLut();
        // The raw intercept: a file without (0028,1052) (MR, CR, ...) is not the broken CT encoding, even though
        // its modality transform defaults the intercept to 0.
        boolean fix = options.rsna12BitFix() && lut == null
                && needsRsna12BitFix(h.bitsStored(), h.pixelRepresentation(), t.rescaleIntercept());
        if (fix) intercept = -1000;
        boolean mask = options.maskPadding() && h.pixelPaddingValue() != null;
        int low = 0, high = -1;
        if (mask) {
            int pv = h.pixelPaddingValue();
            int limit = h.pixelPaddingRangeLimit() == null ? pv : h.pixelPaddingRangeLimit();
            low = Math.min(pv, limit);
            high = Math.max(pv, limit);
        }
        return new HounsfieldTransform(h.bitsAllocated(), h.bitsStored(), h.highBit(), signed, fix, (float) slope,
                (float) intercept, lut, mask, low, high, options.paddingHu(), "MONOCHROME1".equals(h.photometricInterpretation()));
    }

    /**
     * The RSNA 12-bit fix applies to unsigned 12-bit data whose Rescale Intercept is present (NaN when absent)
     * and not a plausible CT intercept.
     */
    public static boolean needsRsna12BitFix(int bitsStored, int pixelRepresentation, double intercept) {
        return bitsStored == 12 && pixelRepresentation == 0 && intercept > -100; // NaN > -100 is false
    }

    /** The stored value of a raw sample word: mask to Bits Stored below High Bit, sign-extend if signed. */
    public int storedValue(int raw) {
        return StoredValues.extract(raw, bitsStored, highBit, signed);
    }

    /** Hounsfield units of one stored value. */
    public float hu(int stored) {
        if (maskPadding && stored >= paddingLow && stored <= paddingHigh) return paddingHu;
        if (lut != null) return (float) lut.apply(stored);
        int v = rsna12BitFix ? (stored + 1000) & 0xFFF : stored;
        return v * slope + intercept;
    }

    /**
     * Converts {@code count} samples of little-endian pixel words starting at sample {@code first} into
     * {@code out[outOffset..]}.
     */
    public void apply(MemorySegment pixels, long first, int count, float[] out, int outOffset) {
        if (lut != null || maskPadding || bitsAllocated != 16) {
            for (int i = 0; i < count; i++) out[outOffset + i] = hu(storedValue(raw(pixels, first + i)));
            return;
        }
        // The hot path (16-bit CT): straight-line integer ops and one multiply-add per sample, which C2
        // compiles to SIMD. 2 bytes in, 4 bytes out per sample.
        final int shl = 31 - highBit, shr = 32 - bitsStored;
        final float m = slope, b = intercept;
        final long base = first * 2;
        if (rsna12BitFix) {
            for (int i = 0; i < count; i++) {
                int v = ((pixels.get(S16, base + 2L * i) << shl) >>> shr) + 1000 & 0xFFF;
                out[outOffset + i] = v * m + b;
            }
        } else if (signed) {
            for (int i = 0; i < count; i++) out[outOffset + i] = ((pixels.get(S16, base + 2L * i) << shl) >> shr) * m + b;
        } else {
            for (int i = 0; i < count; i++) out[outOffset + i] = ((pixels.get(S16, base + 2L * i) << shl) >>> shr) * m + b;
        }
    }

    /** A whole frame into a new array. */
    public float[] apply(MemorySegment framePixels) {
        long n = framePixels.byteSize() / (bitsAllocated / 8);
        if (n > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("frame too large: " + n + " samples");
        float[] out = new float[(int) n];
        apply(framePixels, 0, (int) n, out, 0);
        return out;
    }

    private int raw(MemorySegment pixels, long index) {
        return switch (bitsAllocated) {
            case 8 -> pixels.get(ValueLayout.JAVA_BYTE, index) & 0xFF;
            case 16 -> pixels.get(S16, 2 * index) & 0xFFFF;
            default -> pixels.get(S32, 4 * index);
        };
    }
}
