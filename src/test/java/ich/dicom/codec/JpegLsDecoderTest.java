package ich.dicom.codec;

import ich.dicom.CtImage;
import ich.dicom.Dcmtk;
import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.DicomWriter;
import ich.dicom.PixelData;
import ich.dicom.SampleCorpus;
import ich.dicom.TransferSyntax;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * JPEG-LS (T.87) against an independent coder: DCMTK's, which derives from CharLS. Files it encoded are
 * committed with the hash of what its decoder makes of them (see {@code resources/ich/dicom/jpeg-ls/README.md});
 * where DCMTK is installed, fresh random images of every precision and NEAR go through its encoder and
 * decoder as well. The sample corpus's three real JPEG-LS files are checked by {@code SampleCorpusTest}.
 */
public class JpegLsDecoderTest {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static Path fixture(String name) {
        try {
            return Path.of(JpegLsDecoderTest.class.getResource("/ich/dicom/jpeg-ls/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    record Fixture(String file, int near, String sha256, String original) {
        @Override public String toString() { return file; }
    }

    static List<Fixture> fixtures() throws IOException {
        List<Fixture> out = new ArrayList<>();
        List<String> lines = Files.readAllLines(fixture("manifest.tsv"));
        for (String line : lines.subList(1, lines.size())) {
            String[] f = line.split("\t");
            out.add(new Fixture(f[0], Integer.parseInt(f[1]), f[2], f[3]));
        }
        return out;
    }

    /** Unsigned samples; DCMTK writes 8 bits allocated for precisions up to 8. */
    static int[] samples(PixelData p) {
        int bytes = p.bitsAllocated() / 8;
        int[] s = new int[(int) (p.bytes().byteSize() / bytes)];
        for (int i = 0; i < s.length; i++) {
            s[i] = bytes == 1 ? p.bytes().get(ValueLayout.JAVA_BYTE, i) & 0xFF : p.bytes().get(U16, 2L * i) & 0xFFFF;
        }
        return s;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void decodesWhatDcmtkDecodes(Fixture fx) throws Exception {
        try (DicomFile f = DicomFile.open(fixture(fx.file()))) {
            assertEquals(fx.near() == 0 ? TransferSyntax.JPEG_LS_LOSSLESS : TransferSyntax.JPEG_LS_NEAR_LOSSLESS, f.transferSyntax());
            PixelData decoded = f.pixelData();
            assertEquals(fx.sha256(), decoded.sha256(), "SHA-256 of the decoded Pixel Data, against DCMTK's dcmdjpls");
            if (fx.original().equals("-")) return;
            Path original;
            if (fx.original().startsWith("corpus:")) {
                if (!SampleCorpus.present()) return; // the hash above still held; the corpus adds the NEAR bound
                original = SampleCorpus.file(fx.original().substring("corpus:".length()));
            } else {
                original = fixture(fx.original());
            }
            try (DicomFile o = DicomFile.open(original)) {
                int[] ours = samples(decoded), source = samples(o.pixelData());
                assertEquals(source.length, ours.length);
                int worst = 0;
                for (int i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - source[i]));
                assertTrue(worst <= fx.near(), "a sample differs from the original by " + worst + ", more than NEAR " + fx.near());
                assertTrue(worst > 0, "near-lossless coding left every sample exact: the test compares the wrong files");
            }
        }
    }

    // ---- restart intervals ----

    /** The codestream of a single-fragment file: from SOI to the end of the file's last EOI. */
    static byte[] codestream(Path file) throws IOException {
        byte[] b = Files.readAllBytes(file);
        for (int i = 0; i + 2 < b.length; i++) {
            if ((b[i] & 0xFF) == 0xFF && (b[i + 1] & 0xFF) == 0xD8 && (b[i + 2] & 0xFF) == 0xFF) {
                for (int j = b.length - 2; j > i; j--) {
                    if ((b[j] & 0xFF) == 0xFF && (b[j + 1] & 0xFF) == 0xD9) return Arrays.copyOfRange(b, i, j + 2);
                }
            }
        }
        throw new AssertionError(file + " holds no JPEG-LS codestream");
    }

    /** Offset of the first byte after the SOS segment. */
    static int scanDataStart(byte[] cs) {
        int p = 2;
        while (true) {
            int marker = cs[p + 1] & 0xFF, length = ((cs[p + 2] & 0xFF) << 8) | (cs[p + 3] & 0xFF);
            p += 2 + length;
            if (marker == 0xDA) return p;
        }
    }

    /** Offset of the marker that ends the entropy-coded data starting at {@code from} (A.1: FF then a byte >= 0x80). */
    static int scanDataEnd(byte[] cs, int from) {
        for (int p = from; p + 1 < cs.length; p++) {
            if ((cs[p] & 0xFF) == 0xFF && (cs[p + 1] & 0xFF) >= 0x80) return p;
        }
        throw new AssertionError("no marker after the scan");
    }

    /**
     * One codestream of 128 lines with a restart interval of 48, made from three strips DCMTK coded on their own:
     * the header of the first with its height set to 128 and a DRI segment, then each strip's entropy-coded data,
     * RST0 and RST1 between them.
     */
    static byte[] spliced(int... restartNumbers) throws IOException {
        byte[][] parts = new byte[3][];
        for (int i = 0; i < 3; i++) parts[i] = codestream(fixture("ct16s_lossless_rows_part" + (i + 1) + ".dcm"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] first = parts[0];
        int sos = scanDataStart(first);
        int sosStart = indexOfMarker(first, 0xDA); // DRI goes before it
        byte[] header = Arrays.copyOfRange(first, 0, sosStart);
        int sof = indexOfMarker(header, 0xF7);
        header[sof + 5] = 0;   // Y, lines: 128
        header[sof + 6] = (byte) 128;
        out.write(header);
        out.write(new byte[]{(byte) 0xFF, (byte) 0xDD, 0, 4, 0, 48});
        out.write(first, sosStart, sos - sosStart);
        for (int i = 0; i < 3; i++) {
            int start = scanDataStart(parts[i]);
            out.write(parts[i], start, scanDataEnd(parts[i], start) - start);
            if (i < 2) out.write(new byte[]{(byte) 0xFF, (byte) (0xD0 + restartNumbers[i])});
        }
        out.write(new byte[]{(byte) 0xFF, (byte) 0xD9});
        return out.toByteArray();
    }

    static int indexOfMarker(byte[] b, int marker) {
        for (int p = 0; p + 1 < b.length; p++) if ((b[p] & 0xFF) == 0xFF && (b[p + 1] & 0xFF) == marker) return p;
        throw new AssertionError("no marker " + Integer.toHexString(marker));
    }

    @Test
    void restartIntervalsReset() throws Exception {
        byte[] cs = spliced(0, 1);
        JpegLsDecoder.Image img = JpegLsDecoder.decode(cs, 0, cs.length);
        assertEquals(128, img.height());
        int[] expected;
        try (DicomFile whole = DicomFile.open(fixture("ct16s_lossless_presets.dcm"))) {
            expected = samples(whole.pixelData()); // lossless: the original slice (its hash is DCMTK's)
        }
        int[] ours = new int[img.samples().length];
        for (int i = 0; i < ours.length; i++) ours[i] = img.samples()[i] & 0xFFFF;
        assertArrayEquals(expected, ours);

        byte[] wrong = spliced(0, 2);
        IOException e = assertThrows(IOException.class, () -> JpegLsDecoder.decode(wrong, 0, wrong.length));
        assertTrue(e.getMessage().contains("expected restart marker RST1 (FFD1), found FFD2"), e.getMessage());
    }

    /**
     * T.87 C.2.4.1.4: a frame header whose dimensions are 0 takes them from an LSE segment with id 4. The committed
     * 128 x 128 file rewritten that way (2-byte Wxy) decodes to the same samples, through the DICOM reader too.
     */
    @Test
    void oversizeDimensionsComeFromLseId4(@TempDir Path dir) throws Exception {
        byte[] cs = codestream(fixture("ct12_near2.dcm"));
        int sof = indexOfMarker(cs, 0xF7), sofEnd = sof + 2 + (((cs[sof + 2] & 0xFF) << 8) | (cs[sof + 3] & 0xFF));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] frame = Arrays.copyOfRange(cs, 0, sofEnd);
        frame[sof + 5] = frame[sof + 6] = frame[sof + 7] = frame[sof + 8] = 0; // Y = X = 0
        out.write(frame);
        out.write(new byte[]{(byte) 0xFF, (byte) 0xF8, 0, 8, 4, 2, 0, (byte) 128, 0, (byte) 128}); // LSE id 4: Wxy 2, Y, X
        out.write(cs, sofEnd, cs.length - sofEnd);
        byte[] oversize = out.toByteArray();
        JpegLsDecoder.Image a = JpegLsDecoder.decode(cs, 0, cs.length), b = JpegLsDecoder.decode(oversize, 0, oversize.length);
        assertEquals(128, b.width());
        assertEquals(128, b.height());
        assertArrayEquals(a.samples(), b.samples());
        assertEquals(128, CodestreamInfo.jpeg(oversize).width());

        // The same in the file: the DICOM reader checks the codestream's size against Rows and Columns first.
        byte[] file = Files.readAllBytes(fixture("ct12_near2.dcm"));
        int soi = indexOfMarker(file, 0xD8);
        assertEquals(oversize.length, cs.length + 10);
        // Fragment length grows by 10 (even): patch the item length in front of the codestream, then the bytes.
        int itemLength = (file[soi - 4] & 0xFF) | (file[soi - 3] & 0xFF) << 8 | (file[soi - 2] & 0xFF) << 16 | (file[soi - 1] & 0xFF) << 24;
        ByteArrayOutputStream patched = new ByteArrayOutputStream();
        patched.write(file, 0, soi - 4);
        int newLength = itemLength + 10;
        patched.write(new byte[]{(byte) newLength, (byte) (newLength >> 8), (byte) (newLength >> 16), (byte) (newLength >> 24)});
        patched.write(oversize);
        patched.write(file, soi + cs.length, file.length - soi - cs.length);
        Path rewritten = Files.write(dir.resolve("oversize.dcm"), patched.toByteArray());
        try (DicomFile f = DicomFile.open(rewritten); DicomFile g = DicomFile.open(fixture("ct12_near2.dcm"))) {
            assertEquals(g.pixelData().sha256(), f.pixelData().sha256());
        }
    }

    // ---- fresh random images through DCMTK ----

    /** Smooth ramps, flat patches (run mode), noise and sharp edges, within [0, 2^bits - 1]. */
    static int[] image(SplittableRandom r, int rows, int columns, int bits, String kind) {
        int max = (1 << bits) - 1;
        int[] v = new int[rows * columns];
        double fx = r.nextDouble(0.01, 0.3), fy = r.nextDouble(0.01, 0.3);
        int noise = Math.max(1, (int) (max * r.nextDouble(0.001, 0.05)));
        for (int y = 0; y < rows; y++) {
            for (int x = 0; x < columns; x++) {
                int value = switch (kind) {
                    case "flat" -> max / 3;
                    case "noise" -> r.nextInt(max + 1);
                    default -> {
                        boolean patch = ((x / 9) + (y / 7)) % 3 == 0;
                        if (patch) yield (x / 9) % 2 == 0 ? 0 : max;
                        double s = 0.5 + 0.45 * Math.sin(fx * x + 3 * Math.sin(fy * y));
                        yield (int) (s * max) + r.nextInt(-noise, noise + 1);
                    }
                };
                v[y * columns + x] = Math.clamp(value, 0, max);
            }
        }
        return v;
    }

    static Path write(Path dir, String name, int rows, int columns, int bits, int[] values) throws IOException {
        byte[] pixels = new byte[2 * values.length];
        for (int i = 0; i < values.length; i++) {
            pixels[2 * i] = (byte) values[i];
            pixels[2 * i + 1] = (byte) (values[i] >> 8);
        }
        CtImage img = new CtImage("2.25.77", "P", "2.25.78", "2.25.79", new double[]{0, 0, 0}, new double[]{1, 0, 0, 0, 1, 0},
                new double[]{1, 1}, 5, 1, rows, columns, bits, 0, new String[]{"40"}, new String[]{"80"}, 0, 1, pixels);
        Path file = dir.resolve(name);
        DicomWriter.ctImage(img).write(file, TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN);
        return file;
    }

    @Test
    void freshRandomImagesDecodeAsDcmtkDecodesThem(@TempDir Path dir) throws Exception {
        Dcmtk.assumeInstalled("dcmcjpls", "dcmdjpls");
        SplittableRandom r = new SplittableRandom(System.nanoTime());
        long seed = r.split().nextLong();
        r = new SplittableRandom(seed);
        int[][] shapes = {{1, 1}, {1, 23}, {19, 1}, {3, 300}, {64, 64}, {57, 41}}; // the first only lossless
        int[] precisions = {2, 5, 6, 8, 10, 12, 16};
        String[] kinds = {"flat", "noise", "mixed"};
        int cases = 0, refusedByDcmtk = 0;
        for (int bits : precisions) {
            for (String kind : kinds) {
                int max = (1 << bits) - 1;
                // Near-lossless from 8 bits: DCMTK refuses it below 6 bits, and at 6 and 7 bits (MAXVAL < 128) its
                // coder, without an LSE segment, uses the MAXVAL >= 128 default thresholds for every MAXVAL, where
                // T.87 C.2.4.1.1.1 (and so this decoder) has a formula of its own (checked: decoded with DCMTK's
                // thresholds, such files match DCMTK). Lossless files carry LSE, so every precision is tested there.
                int near = r.nextInt(3) == 0 || bits < 8 ? 0 : r.nextInt(1, Math.min(8, max / 2) + 1);
                // DCMTK's coder crashes (SIGSEGV) on most near-lossless images of one or two samples.
                int[] shape = shapes[near > 0 ? r.nextInt(1, shapes.length) : r.nextInt(shapes.length)];
                List<String> options = new ArrayList<>(near == 0 ? List.of("+el") : List.of("+en", "+md", String.valueOf(near)));
                if (r.nextBoolean() && max >= 16) {
                    int t1 = r.nextInt(near + 1, near + 4), t2 = t1 + r.nextInt(0, 6), t3 = Math.min(max, t2 + r.nextInt(0, 30));
                    options.addAll(List.of("+t1", String.valueOf(t1), "+t2", String.valueOf(t2), "+t3", String.valueOf(t3),
                            "+rs", String.valueOf(r.nextInt(3, 256))));
                }
                String what = "seed " + seed + ", " + shape[0] + " x " + shape[1] + " at " + bits + " bits, " + kind + ", dcmcjpls " + options;
                int[] values = image(r, shape[0], shape[1], bits, kind);
                Path source = write(dir, "source" + cases + ".dcm", shape[0], shape[1], bits, values);
                Path coded = dir.resolve("coded" + cases + ".dcm"), reference = dir.resolve("reference" + cases + ".dcm");
                List<String> encode = new ArrayList<>(options);
                encode.addAll(List.of(source.toString(), coded.toString()));
                Dcmtk.Result enc = Dcmtk.run("dcmcjpls", encode.toArray(String[]::new));
                cases++;
                if (enc.exit() >= 128 && near > 0) {
                    // DCMTK's near-lossless coder crashes (SIGSEGV) on some small flat images, e.g. 1 x 23 at 8 bits, NEAR 2.
                    refusedByDcmtk++;
                    continue;
                }
                assertEquals(0, enc.exit(), what + ": " + enc.err());
                Dcmtk.Result dec = Dcmtk.run("dcmdjpls", coded.toString(), reference.toString());
                if (dec.exit() != 0) {
                    // DCMTK 3.6.7's near-lossless coder now and then writes, on noise, a stream its own decoder
                    // refuses (a Golomb code longer than LIMIT allows, or data left over after the last sample;
                    // the same pixels coded as a taller image come out different and decode fine). No reference
                    // then: ours may refuse it (with a DicomFormatException) or decode it, but not fail otherwise.
                    assertEquals(near > 0, true, what + ": DCMTK refused its own lossless file: " + dec.err());
                    try (DicomFile ours = DicomFile.open(coded)) {
                        ours.pixelData();
                    } catch (DicomFormatException expected) {
                        assertTrue(expected.getMessage().contains("JPEG-LS: "), expected.getMessage());
                    }
                    refusedByDcmtk++;
                    continue;
                }
                try (DicomFile ours = DicomFile.open(coded); DicomFile theirs = DicomFile.open(reference)) {
                    int[] a = samples(ours.pixelData()), b = samples(theirs.pixelData());
                    assertEquals(values.length, b.length, what);
                    assertEquals(b.length, a.length, what);
                    for (int i = 0; i < b.length; i++) {
                        if (a[i] != b[i]) fail(what + ": sample " + i + " is " + a[i] + ", DCMTK decodes " + b[i]);
                        if (Math.abs(a[i] - values[i]) > near) fail(what + ": sample " + i + " is " + a[i] + ", source " + values[i]);
                    }
                }
            }
        }
        assertEquals(precisions.length * kinds.length, cases);
        assertTrue(refusedByDcmtk <= cases / 4, refusedByDcmtk + " of " + cases + " files DCMTK could not code or decode (seed " + seed + ")");
    }

    // ---- what it refuses ----

    static byte[] lossless() throws IOException {
        return codestream(fixture("ct16s_lossless_presets.dcm"));
    }

    static IOException refused(byte[] cs) {
        return assertThrows(IOException.class, () -> JpegLsDecoder.decode(cs, 0, cs.length));
    }

    @Test
    void truncatedDataIsAnError() throws Exception {
        byte[] cs = lossless();
        int start = scanDataStart(cs);
        byte[] cut = Arrays.copyOf(cs, start + (cs.length - start) / 2);
        assertTrue(refused(cut).getMessage().contains("entropy-coded data ends before the last sample"));
    }

    @Test
    void unsupportedFeaturesAreNamed() throws Exception {
        byte[] cs = lossless();
        int sof = indexOfMarker(cs, 0xF7);
        byte[] colour = cs.clone();
        colour[sof + 9] = 3;
        assertTrue(refused(colour).getMessage().contains("only grey-scale"), refused(colour).getMessage());

        int lse = indexOfMarker(cs, 0xF8);
        byte[] mapping = cs.clone();
        mapping[lse + 4] = 2;
        assertTrue(refused(mapping).getMessage().contains("mapping tables"), refused(mapping).getMessage());

        byte[] thresholds = cs.clone(); // T1 = 0x0F00 > T2
        thresholds[lse + 7] = 0x0F;
        assertTrue(refused(thresholds).getMessage().contains("violate NEAR + 1 <= T1 <= T2 <= T3"), refused(thresholds).getMessage());

        int sos = indexOfMarker(cs, 0xDA);
        byte[] interleaved = cs.clone();
        interleaved[sos + 8] = 1;
        assertTrue(refused(interleaved).getMessage().contains("interleave mode 1"), refused(interleaved).getMessage());

        byte[] dct = cs.clone();
        dct[sof + 1] = (byte) 0xC3;
        assertTrue(refused(dct).getMessage().contains("not JPEG-LS"), refused(dct).getMessage());
    }

    /** Damaged codestreams decode to something or fail with an IOException; nothing else escapes, nothing hangs. */
    @Test
    void damagedCodestreamsFailCleanly() throws Exception {
        byte[] cs = lossless();
        long seed = new SplittableRandom().nextLong();
        SplittableRandom r = new SplittableRandom(seed);
        for (int trial = 0; trial < 3000; trial++) {
            byte[] damaged = cs.clone();
            int flips = 1 + r.nextInt(4);
            for (int i = 0; i < flips; i++) damaged[r.nextInt(damaged.length)] = (byte) r.nextInt(256);
            int length = r.nextInt(8) == 0 ? r.nextInt(damaged.length + 1) : damaged.length;
            try {
                JpegLsDecoder.Image img = JpegLsDecoder.decode(damaged, 0, length);
                for (short s : img.samples()) assertTrue((s & 0xFFFF) <= img.maxVal(), "seed " + seed + ": sample above MAXVAL");
            } catch (IOException expected) {
                assertTrue(expected.getMessage().startsWith("JPEG-LS: "), expected.getMessage());
            } catch (RuntimeException e) {
                throw new AssertionError("seed " + seed + ", trial " + trial + ": " + e, e);
            }
        }
    }

    @Test
    void pixelDataErrorsNameTheFileAndFrame(@TempDir Path dir) throws Exception {
        byte[] file = Files.readAllBytes(fixture("ct12_near2.dcm"));
        int soi = indexOfMarker(file, 0xD8);
        int start = soi + scanDataStart(Arrays.copyOfRange(file, soi, file.length));
        for (int i = start + 10; i < file.length - 40; i++) file[i] = (byte) 0xFF; // FF FF ...: fill bytes where data should be
        Path broken = dir.resolve("broken.dcm");
        Files.write(broken, file);
        try (DicomFile f = DicomFile.open(broken)) {
            DicomFormatException e = assertThrows(DicomFormatException.class, f::pixelData);
            assertTrue(e.getMessage().contains("broken.dcm") && e.getMessage().contains("frame 1 of 1: JPEG-LS: "), e.getMessage());
        }
    }
}
