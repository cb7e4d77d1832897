package ich.dicom;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes small, structurally rich seed inputs for the fuzzer into the regression folder of
 * {@link DicomReaderFuzzTest}: each exercises paths the sample corpus reaches only with large files
 * (sequences, functional groups, Modality LUT, padding, big endian, deflate, RLE with offset tables, VR UN).
 * Small seeds keep the fuzzer fast. Run once: {@code java -cp <test classpath> ich.dicom.FuzzSeeds}.
 */
public final class FuzzSeeds {
    private FuzzSeeds() {}

    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args.length > 0 ? args[0] : "src/test/resources/ich/dicom/DicomReaderFuzzTestInputs/read");
        Files.createDirectories(dir);
        SplittableRandom rnd = new SplittableRandom(2026);
        Files.write(dir.resolve("seed-explicit-le-lut-padding"), explicitWithLutAndPadding(rnd));
        Files.write(dir.resolve("seed-implicit-functional-groups"), implicitFunctionalGroups(rnd));
        Files.write(dir.resolve("seed-explicit-be"), explicitBigEndian(rnd));
        Files.write(dir.resolve("seed-deflated"), deflated(rnd));
        Files.write(dir.resolve("seed-rle-two-frames-bot"), rleTwoFrames(rnd));
        Files.write(dir.resolve("seed-un-sequence"), unSequence(rnd));
    }

    private static short[] words(SplittableRandom rnd, int n, int lo, int hi) {
        short[] w = new short[n];
        for (int i = 0; i < n; i++) w[i] = (short) rnd.nextInt(lo, hi);
        return w;
    }

    private static DicomBytes image(DicomBytes d, int rows, int cols, int frames, int bitsStored, int pr) {
        d.str(Tag.SOP_INSTANCE_UID, "UI", "1.2.3.4").str(Tag.MODALITY, "CS", "CT").str(Tag.PATIENT_ID, "LO", "P1")
                .us(Tag.SAMPLES_PER_PIXEL, 1).str(Tag.PHOTOMETRIC_INTERPRETATION, "CS", "MONOCHROME2");
        if (frames > 1) d.is(Tag.NUMBER_OF_FRAMES, Integer.toString(frames));
        return d.us(Tag.ROWS, rows).us(Tag.COLUMNS, cols).us(Tag.BITS_ALLOCATED, 16).us(Tag.BITS_STORED, bitsStored)
                .us(Tag.HIGH_BIT, bitsStored - 1).us(Tag.PIXEL_REPRESENTATION, pr);
    }

    static byte[] explicitWithLutAndPadding(SplittableRandom rnd) {
        DicomBytes d = image(DicomBytes.part10(DicomBytes.EXPLICIT_LE), 6, 5, 1, 12, 1);
        d.ss(Tag.PIXEL_PADDING_VALUE, -2000).ds(Tag.WINDOW_CENTER, "00036", "00036").ds(Tag.WINDOW_WIDTH, "00080", "00080");
        d.sequence(Tag.MODALITY_LUT_SEQUENCE, true).item(true).ss(Tag.LUT_DESCRIPTOR, 8, -4, 16)
                .ow(Tag.LUT_DATA, words(rnd, 8, 0, 3000)).str(Tag.MODALITY_LUT_TYPE, "LO", "HU").end().end();
        return d.ow(Tag.PIXEL_DATA, words(rnd, 30, -2048, 2047)).bytes();
    }

    static byte[] implicitFunctionalGroups(SplittableRandom rnd) {
        DicomBytes d = image(DicomBytes.part10(DicomBytes.IMPLICIT_LE), 4, 4, 2, 16, 0);
        d.sequence(Tag.SHARED_FUNCTIONAL_GROUPS_SEQUENCE, false).item(false)
                .sequence(Tag.PIXEL_VALUE_TRANSFORMATION_SEQUENCE, true).item(true)
                .ds(Tag.RESCALE_INTERCEPT, "-1024").ds(Tag.RESCALE_SLOPE, "1").end().end().end().end();
        d.sequence(Tag.PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, true);
        for (int f = 0; f < 2; f++) {
            d.item(f == 0).sequence(Tag.FRAME_VOI_LUT_SEQUENCE, false).item(false)
                    .ds(Tag.WINDOW_CENTER, Integer.toString(40 + f)).ds(Tag.WINDOW_WIDTH, "80").end().end().end();
        }
        d.end();
        return d.ow(Tag.PIXEL_DATA, words(rnd, 32, 0, 3000)).bytes();
    }

    static byte[] explicitBigEndian(SplittableRandom rnd) {
        DicomBytes d = image(DicomBytes.part10(DicomBytes.EXPLICIT_BE), 3, 5, 1, 16, 1);
        d.ds(Tag.RESCALE_INTERCEPT, "-1024").ds(Tag.RESCALE_SLOPE, "1");
        return d.ow(Tag.PIXEL_DATA, words(rnd, 15, -1000, 2000)).bytes();
    }

    static byte[] deflated(SplittableRandom rnd) {
        DicomBytes d = image(DicomBytes.part10(DicomBytes.DEFLATED_LE), 4, 3, 1, 12, 0);
        d.ds(Tag.RESCALE_INTERCEPT, "0").ds(Tag.RESCALE_SLOPE, "1");
        return d.ow(Tag.PIXEL_DATA, words(rnd, 12, 0, 4096)).bytes();
    }

    /** PS3.5 G: 64-byte header, then one PackBits segment per byte plane, high byte first; here literal runs. */
    static byte[] rleFrame(short[] samples) {
        int n = samples.length;
        byte[][] planes = new byte[2][n];
        for (int i = 0; i < n; i++) {
            planes[0][i] = (byte) (samples[i] >> 8);
            planes[1][i] = (byte) samples[i];
        }
        java.io.ByteArrayOutputStream[] segs = {new java.io.ByteArrayOutputStream(), new java.io.ByteArrayOutputStream()};
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < n; i += 128) {
                int len = Math.min(128, n - i);
                segs[s].write(len - 1);
                segs[s].write(planes[s], i, len);
            }
            if (segs[s].size() % 2 == 1) segs[s].write(0x80); // a no-op byte keeps segments even (G.3.1)
        }
        java.nio.ByteBuffer header = java.nio.ByteBuffer.allocate(64).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        header.putInt(2).putInt(64).putInt(64 + segs[0].size());
        byte[] out = new byte[64 + segs[0].size() + segs[1].size()];
        System.arraycopy(header.array(), 0, out, 0, 64);
        System.arraycopy(segs[0].toByteArray(), 0, out, 64, segs[0].size());
        System.arraycopy(segs[1].toByteArray(), 0, out, 64 + segs[0].size(), segs[1].size());
        return out;
    }

    static byte[] rleTwoFrames(SplittableRandom rnd) {
        DicomBytes d = image(DicomBytes.part10(DicomBytes.RLE), 4, 4, 2, 16, 1);
        byte[] f0 = rleFrame(words(rnd, 16, -1000, 1000)), f1 = rleFrame(words(rnd, 16, -1000, 1000));
        long[] offsets = DicomBytes.fragmentOffsets(f0, f1);
        return d.encapsulatedPixelData(new int[]{(int) offsets[0], (int) offsets[1]}, f0, f1).bytes();
    }

    static byte[] unSequence(SplittableRandom rnd) {
        DicomBytes d = DicomBytes.part10(DicomBytes.EXPLICIT_LE);
        d.str(Tag.SOP_INSTANCE_UID, "UI", "1.2.3.5");
        d.unSequence(0x00091010).item(false).str(0x00091011, "LO", "private").end().end();
        image(d, 2, 2, 1, 16, 0);
        return d.ow(Tag.PIXEL_DATA, words(rnd, 4, 0, 4000)).bytes();
    }
}
