package ich.hu;

import ich.dicom.FrameTransform;
import ich.dicom.ImageHeader;
import ich.dicom.ModalityLut;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class HounsfieldTransformTest {
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static ImageHeader header(int bitsStored, int highBit, int pixelRepresentation, double slope, double intercept,
                              ModalityLut lut, Integer padding) {
        return new ImageHeader("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "P", "1.2", "1.2.3.4", "CT",
                new double[0], new double[0], new double[0], Double.NaN, 4, 4, 1, 1, 16, bitsStored, highBit,
                pixelRepresentation, "MONOCHROME2", 0, slope, intercept, new double[0], new double[0], padding, null, lut,
                List.of(new FrameTransform(slope, intercept, new double[0], new double[0])), true);
    }

    static MemorySegment words(int... raw) {
        MemorySegment s = Arena.ofAuto().allocate(2L * raw.length);
        for (int i = 0; i < raw.length; i++) s.set(LE16, 2L * i, (short) raw[i]);
        return s;
    }

    @Test
    void signed16BitWithInterceptMinus1024() {
        HounsfieldTransform t = HounsfieldTransform.of(header(16, 15, 1, 1, -1024, null, null), 0);
        assertArrayEquals(new float[]{-2024, -1024, 0, 1024 + 40}, t.apply(words(-1000, 0, 1024, 2088)));
    }

    @Test
    void unsigned12BitWithProperInterceptIsNotFixed() {
        HounsfieldTransform t = HounsfieldTransform.of(header(12, 11, 0, 1, -1024, null, null), 0);
        assertFalse(t.rsna12BitFix());
        assertArrayEquals(new float[]{-1024, -984, 3071}, t.apply(words(0, 40, 4095)));
    }

    @Test
    void rsna12BitFixRestoresAirStoredAs3096() {
        // The broken encoding: stored = HU mod 4096 with intercept 0, so air (-1000 HU) reads as 3096.
        HounsfieldTransform t = HounsfieldTransform.of(header(12, 11, 0, 1, 0, null, null), 0);
        assertTrue(t.rsna12BitFix());
        assertEquals(-1000f, t.intercept());
        int[] hu = {-1000, -5, 0, 40, 80, 1500, 2000};
        int[] stored = new int[hu.length];
        for (int i = 0; i < hu.length; i++) stored[i] = Math.floorMod(hu[i], 4096);
        assertEquals(3096, stored[0]);
        float[] out = t.apply(words(stored));
        for (int i = 0; i < hu.length; i++) assertEquals(hu[i], out[i], "HU " + hu[i]);
    }

    @Test
    void rsna12BitFixAppliesForInterceptOneAndCanBeSwitchedOff() {
        ImageHeader h = header(12, 11, 0, 1, 1, null, null);
        assertTrue(HounsfieldTransform.of(h, 0).rsna12BitFix());
        HounsfieldTransform off = HounsfieldTransform.of(h, 0, HounsfieldTransform.Options.DEFAULT.withRsna12BitFix(false));
        assertFalse(off.rsna12BitFix());
        assertArrayEquals(new float[]{3097}, off.apply(words(3096)));
    }

    @Test
    void rsna12BitFixNeedsAllThreeConditions() {
        assertTrue(HounsfieldTransform.needsRsna12BitFix(12, 0, -99));
        assertFalse(HounsfieldTransform.needsRsna12BitFix(12, 0, -100));
        assertFalse(HounsfieldTransform.needsRsna12BitFix(12, 1, 0));
        assertFalse(HounsfieldTransform.needsRsna12BitFix(16, 0, 0));
        assertFalse(HounsfieldTransform.needsRsna12BitFix(12, 0, Double.NaN), "no intercept, not the broken CT encoding");
        // An unsigned 12-bit image without Rescale Intercept (MR, CR): values stay as stored.
        HounsfieldTransform noRescale = HounsfieldTransform.of(header(12, 11, 0, Double.NaN, Double.NaN, null, null), 0);
        assertFalse(noRescale.rsna12BitFix());
        assertArrayEquals(new float[]{3096}, noRescale.apply(words(3096)));
    }

    @Test
    void junkAboveHighBitIsIgnoredAndSignExtended() {
        // 12-bit signed in 16-bit words with 0xF000 junk (as 12bitSigned_0x0F0F.dcm): 0xF800 | 0x0800 is -2048.
        HounsfieldTransform t = HounsfieldTransform.of(header(12, 11, 1, 1, 0, null, null), 0);
        assertArrayEquals(new float[]{-2048, 2047, -1, 5}, t.apply(words(0xF800, 0x57FF, 0xAFFF, 0xF005)));
        HounsfieldTransform unsigned = HounsfieldTransform.of(header(12, 11, 0, 1, -1024, null, null), 0);
        assertArrayEquals(new float[]{-1024 + 0x800, -1024 + 0x7FF}, unsigned.apply(words(0xF800, 0x57FF)));
    }

    @Test
    void highBitBelowTheTopOfTheWord() {
        // Bits Stored 10 with High Bit 11: the value sits in bits 2..11; bits 0-1 and 12-15 are junk.
        HounsfieldTransform t = HounsfieldTransform.of(header(10, 11, 0, 2, -10, null, null), 0);
        assertArrayEquals(new float[]{2 * 5 - 10, 2 * 1023 - 10}, t.apply(words((5 << 2) | 0b11 | 0xF000, 0xFFFF)));
    }

    @Test
    void modalityLutWhenNoRescale() {
        ModalityLut lut = new ModalityLut(-2, 16, new int[]{100, 200, 300, 400}, "HU");
        HounsfieldTransform t = HounsfieldTransform.of(header(16, 15, 1, Double.NaN, Double.NaN, lut, null), 0);
        assertNotNull(t.lut());
        // Below the first mapped value: first entry; above the last: last entry.
        assertArrayEquals(new float[]{100, 100, 200, 300, 400, 400}, t.apply(words(-5, -2, -1, 0, 1, 7)));
    }

    @Test
    void paddingIsMaskedOnlyWhenAsked() {
        ImageHeader h = header(16, 15, 1, 1, -1024, null, -2000);
        assertArrayEquals(new float[]{-3024, -1024}, HounsfieldTransform.of(h, 0).apply(words(-2000, 0)));
        HounsfieldTransform masked = HounsfieldTransform.of(h, 0, HounsfieldTransform.Options.DEFAULT.withPaddingMasked(-1000));
        assertArrayEquals(new float[]{-1000, -1024}, masked.apply(words(-2000, 0)));
    }

    @Test
    void vectorisedPathEqualsPerSampleReferenceOnRandomWords() {
        SplittableRandom rnd = new SplittableRandom();
        int n = 4099; // not a multiple of any vector width
        int[] raw = new int[n];
        for (int i = 0; i < n; i++) raw[i] = rnd.nextInt(65536);
        MemorySegment px = words(raw);
        for (ImageHeader h : List.of(header(16, 15, 1, 1, -1024, null, null), header(12, 11, 0, 1, 0, null, null),
                header(12, 11, 1, 0.5, 3.25, null, null), header(14, 13, 0, 1.5, -1024, null, null))) {
            HounsfieldTransform t = HounsfieldTransform.of(h, 0);
            float[] out = new float[n + 2];
            out[0] = Float.NaN;
            out[n + 1] = Float.NaN; // poison around the output range
            t.apply(px, 0, n, out, 1);
            for (int i = 0; i < n; i++) {
                assertEquals(t.hu(t.storedValue(raw[i])), out[i + 1], "sample " + i + " raw " + raw[i] + " " + t);
            }
            assertTrue(Float.isNaN(out[0]) && Float.isNaN(out[n + 1]), "wrote outside its range");
        }
    }
}
