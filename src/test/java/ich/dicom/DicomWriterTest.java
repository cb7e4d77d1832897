package ich.dicom;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The writer against our reader (every header field, the pixels byte for byte, zero copy), against the rules of
 * PS3.5 / PS3.10 at the byte level, and against DCMTK, which must call the files Part 10 and decode the same
 * stored values.
 */
class DicomWriterTest {
    private static final List<TransferSyntax> SYNTAXES =
            List.of(TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN, TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN);
    /** Fresh pixels each run; printed with every failure so that a failing run can be repeated. */
    private static final long SEED = System.nanoTime();

    @TempDir
    Path dir;

    /** Pixel encodings of CT: signed 16-bit, unsigned 12-bit, unsigned 16-bit, signed 12-bit. */
    static Stream<Arguments> encodings() {
        List<Arguments> a = new ArrayList<>();
        for (TransferSyntax ts : SYNTAXES) {
            a.add(Arguments.of(ts, 16, 1));
            a.add(Arguments.of(ts, 12, 0));
            a.add(Arguments.of(ts, 16, 0));
            a.add(Arguments.of(ts, 12, 1));
        }
        return a.stream();
    }

    /** A CT image with random header values (of decimal precision a DS holds exactly) and random stored values. */
    static CtImage randomImage(SplittableRandom r, int rows, int columns, int bitsStored, int pixelRepresentation) {
        byte[] px = new byte[2 * rows * columns];
        ByteBuffer b = ByteBuffer.wrap(px).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * columns; i++) {
            int v = pixelRepresentation == 1 ? r.nextInt(-(1 << (bitsStored - 1)), 1 << (bitsStored - 1)) : r.nextInt(1 << bitsStored);
            b.putShort((short) v);  // a negative 12-bit value is sign-extended into the unused high bits, as scanners do
        }
        double tilt = r.nextInt(0, 30) / 100.0;
        return new CtImage(uid(r), "ID_" + Long.toHexString(r.nextLong(1L << 32)) + (r.nextBoolean() ? "x" : ""), uid(r), uid(r),
                new double[]{round(r, -300, 300, 3), round(r, -300, 300, 4), round(r, -500, 500, 2)},
                new double[]{1, 0, 0, 0, tilt, round(r, 0, 1, 5)},
                new double[]{round(r, 0.2, 1.2, 6), round(r, 0.2, 1.2, 6)}, round(r, 0.5, 10, 2),
                r.nextInt(1, 1000), rows, columns, bitsStored, pixelRepresentation,
                r.nextBoolean() ? new String[]{"00036", "00036"} : new String[]{Integer.toString(r.nextInt(-100, 100))},
                r.nextBoolean() ? new String[]{"00080", "00080"} : new String[]{"80", "2000"},
                r.nextBoolean() ? -1024 : r.nextInt(-2000, 2) + 0.5, r.nextBoolean() ? 1 : round(r, 0.1, 4, 3), px);
    }

    /** A UID of random length (odd and even) under 2.25. */
    private static String uid(SplittableRandom r) {
        StringBuilder sb = new StringBuilder("2.25.");
        int digits = r.nextInt(5, 40);
        sb.append(r.nextInt(1, 10));
        for (int i = 1; i < digits; i++) sb.append(r.nextInt(10));
        return sb.toString();
    }

    private static double round(SplittableRandom r, double from, double to, int decimals) {
        double scale = Math.pow(10, decimals);
        return Math.round(r.nextDouble(from, to) * scale) / scale;
    }

    @ParameterizedTest(name = "{0}, {1} bits, pixel representation {2}")
    @MethodSource("encodings")
    void roundTripsThroughOurReader(TransferSyntax ts, int bitsStored, int pixelRepresentation) throws IOException {
        SplittableRandom r = new SplittableRandom(SEED ^ ts.ordinal() * 31 ^ bitsStored * 7 ^ pixelRepresentation);
        for (int n = 0; n < 5; n++) {
            CtImage image = randomImage(r, r.nextInt(1, 70), r.nextInt(1, 70), bitsStored, pixelRepresentation);
            Path file = dir.resolve("rt" + n + ".dcm");
            DicomWriter.ctImage(image).write(file, ts);
            String context = "seed " + SEED + ", image " + n + ", " + image.rows() + " x " + image.columns();
            try (DicomFile f = DicomFile.open(file)) {
                assertEquals(ts, f.transferSyntax(), context);
                assertEquals(ts.uid(), f.fileMeta().string(Tag.TRANSFER_SYNTAX_UID), context);
                assertEquals(CtImage.CT_IMAGE_STORAGE, f.fileMeta().string(Tag.MEDIA_STORAGE_SOP_CLASS_UID), context);
                assertEquals(image.sopInstanceUid(), f.fileMeta().string(Tag.MEDIA_STORAGE_SOP_INSTANCE_UID), context);
                assertEquals(DicomWriter.IMPLEMENTATION_CLASS_UID, f.fileMeta().string(Tag.IMPLEMENTATION_CLASS_UID), context);
                assertEquals(DicomWriter.IMPLEMENTATION_VERSION_NAME, f.fileMeta().string(Tag.IMPLEMENTATION_VERSION_NAME), context);
                assertHeaderEquals(image, f.header(), context);
                assertEquals(image.instanceNumber(), f.dataSet().number(Tag.INSTANCE_NUMBER, VR.IS, Double.NaN), context);

                PixelData px = f.pixelData();
                assertTrue(px.zeroCopy(), "native little-endian pixels are a view of the file: " + context);
                assertEquals(1, px.frames());
                assertArrayEquals(image.pixels(), px.bytes().toArray(ValueLayout.JAVA_BYTE), context);
            }
        }
    }

    static void assertHeaderEquals(CtImage image, ImageHeader h, String context) {
        assertEquals(CtImage.CT_IMAGE_STORAGE, h.sopClassUid(), context);
        assertEquals(image.sopInstanceUid(), h.sopInstanceUid(), context);
        assertEquals(image.patientId(), h.patientId(), context);
        assertEquals(image.studyInstanceUid(), h.studyInstanceUid(), context);
        assertEquals(image.seriesInstanceUid(), h.seriesInstanceUid(), context);
        assertEquals("CT", h.modality(), context);
        assertArrayEquals(image.imagePositionPatient(), h.imagePositionPatient(), context);
        assertArrayEquals(image.imageOrientationPatient(), h.imageOrientationPatient(), context);
        assertArrayEquals(image.pixelSpacing(), h.pixelSpacing(), context);
        assertEquals(image.sliceThickness(), h.sliceThickness(), context);
        assertEquals(image.rows(), h.rows(), context);
        assertEquals(image.columns(), h.columns(), context);
        assertEquals(1, h.numberOfFrames(), context);
        assertEquals(1, h.samplesPerPixel(), context);
        assertEquals(16, h.bitsAllocated(), context);
        assertEquals(image.bitsStored(), h.bitsStored(), context);
        assertEquals(image.bitsStored() - 1, h.highBit(), context);
        assertEquals(image.pixelRepresentation(), h.pixelRepresentation(), context);
        assertEquals("MONOCHROME2", h.photometricInterpretation(), context);
        assertEquals(0, h.planarConfiguration(), context);
        assertEquals(image.rescaleSlope(), h.rescaleSlope(), context);
        assertEquals(image.rescaleIntercept(), h.rescaleIntercept(), context);
        assertArrayEquals(Arrays.stream(image.windowCenter()).mapToDouble(Double::parseDouble).toArray(), h.windowCenter(), context);
        assertArrayEquals(Arrays.stream(image.windowWidth()).mapToDouble(Double::parseDouble).toArray(), h.windowWidth(), context);
        assertNull(h.pixelPaddingValue(), context);
        assertNull(h.modalityLut(), context);
        assertEquals(1, h.frameTransforms().size(), context);
        assertTrue(h.hasPixelData(), context);
    }

    @ParameterizedTest
    @EnumSource(value = TransferSyntax.class, names = {"IMPLICIT_VR_LITTLE_ENDIAN", "EXPLICIT_VR_LITTLE_ENDIAN"})
    void part10LayoutAscendingTagsAndPadding(TransferSyntax ts) throws IOException {
        CtImage image = randomImage(new SplittableRandom(SEED), 3, 5, 16, 1);
        // Odd lengths on purpose: a UI (padded with NUL) and a LO (padded with a space).
        image = new CtImage("1.2.3", "ABC", image.studyInstanceUid(), image.seriesInstanceUid(), image.imagePositionPatient(),
                image.imageOrientationPatient(), image.pixelSpacing(), image.sliceThickness(), image.instanceNumber(),
                image.rows(), image.columns(), 16, 1, new String[]{"00036", "00036"}, image.windowWidth(), -1024, 1, image.pixels());
        byte[] bytes = DicomWriter.ctImage(image).toBytes(ts);
        for (int i = 0; i < 128; i++) assertEquals(0, bytes[i], "preamble byte " + i);
        assertEquals("DICM", new String(bytes, 128, 4, StandardCharsets.US_ASCII));
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        // (0002,0000) UL, then its value: the bytes of the rest of the group.
        assertEquals(0x0002, b.getShort(132));
        assertEquals(0x0000, b.getShort(134));
        assertEquals("UL", new String(bytes, 136, 2, StandardCharsets.US_ASCII));
        int groupLength = b.getInt(140);
        int dataSetStart = 144 + groupLength;
        assertEquals(0x0002, b.getShort(dataSetStart - 14), "the last File Meta element, (0002,0013) SH of 6 bytes, ends the group");
        assertEquals(0x0013, b.getShort(dataSetStart - 12));
        assertEquals(0x0008, b.getShort(dataSetStart), "the data set starts where the group length says");

        DicomFile f = DicomFile.parse(bytes, "layout");
        DataSet ds = f.dataSet();
        for (int i = 1; i < ds.size(); i++) {
            assertTrue(Integer.compareUnsigned(ds.tagAt(i - 1), ds.tagAt(i)) < 0,
                    Tag.toString(ds.tagAt(i - 1)) + " before " + Tag.toString(ds.tagAt(i)));
        }
        for (int i = 0; i < ds.size(); i++) assertEquals(0, ds.length(ds.tagAt(i)) & 1, "even length of " + Tag.toString(ds.tagAt(i)));
        MemorySegment sop = ds.value(Tag.SOP_INSTANCE_UID), patient = ds.value(Tag.PATIENT_ID);
        assertEquals(6, sop.byteSize());
        assertEquals(0, sop.get(ValueLayout.JAVA_BYTE, 5), "UI is padded with NUL");
        assertEquals(4, patient.byteSize());
        assertEquals(' ', patient.get(ValueLayout.JAVA_BYTE, 3), "LO is padded with a space");
        assertEquals(ts == TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN ? VR.OW : VR.NONE, ds.vr(Tag.PIXEL_DATA));
        assertEquals("00036\\00036", ds.string(Tag.WINDOW_CENTER), "multi-valued DS as given");
        assertEquals(7, f.fileMeta().size(), "File Meta: group length, version, SOP class, instance, syntax, class UID, version name");
        assertEquals("00\\01", hex(f.fileMeta().value(Tag.FILE_META_INFORMATION_VERSION)));
    }

    private static String hex(MemorySegment s) {
        byte[] b = s.toArray(ValueLayout.JAVA_BYTE);
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(sb.isEmpty() ? "" : "\\").append(String.format("%02X", x));
        return sb.toString();
    }

    @Test
    void elementsComeOutInTagOrderWhateverTheCallOrder() throws DicomFormatException {
        DicomWriter w = new DicomWriter()
                .binary(Tag.PIXEL_DATA, VR.OW, new byte[]{1, 2, 3, 4})
                .string(0x00091010, VR.LO, "private")
                .unsignedShorts(Tag.ROWS, 1).unsignedShorts(Tag.COLUMNS, 2)
                .string(Tag.SOP_INSTANCE_UID, VR.UI, "1.2")
                .string(Tag.SOP_CLASS_UID, VR.UI, CtImage.CT_IMAGE_STORAGE)
                .string(Tag.PATIENT_ID, VR.LO, "first")
                .string(Tag.PATIENT_ID, VR.LO, "second");
        for (TransferSyntax ts : SYNTAXES) {
            DataSet ds = DicomFile.parse(w.toBytes(ts), "order").dataSet();
            List<Integer> tags = new ArrayList<>();
            for (int i = 0; i < ds.size(); i++) tags.add(ds.tagAt(i));
            assertEquals(List.of(Tag.SOP_CLASS_UID, Tag.SOP_INSTANCE_UID, 0x00091010, Tag.PATIENT_ID, Tag.ROWS, Tag.COLUMNS, Tag.PIXEL_DATA), tags);
            assertEquals("second", ds.string(Tag.PATIENT_ID), "setting a tag again replaces it");
        }
    }

    @Test
    void multiValuedStringsJoinWithBackslashes() throws DicomFormatException {
        DicomWriter w = new DicomWriter().string(Tag.SOP_CLASS_UID, VR.UI, CtImage.CT_IMAGE_STORAGE).string(Tag.SOP_INSTANCE_UID, VR.UI, "1")
                .string(0x00080008, VR.CS, "ORIGINAL", "PRIMARY", "AXIAL")
                .string(Tag.WINDOW_CENTER, VR.DS, "00036", "00036")
                .decimals(Tag.WINDOW_WIDTH, 80, 2500.5, -0.25)
                .integers(Tag.INSTANCE_NUMBER, 3, -7);
        DataSet ds = DicomFile.parse(w.toBytes(TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN), "mv").dataSet();
        assertArrayEquals(new String[]{"ORIGINAL", "PRIMARY", "AXIAL"}, ds.strings(0x00080008));
        assertArrayEquals(new double[]{36, 36}, ds.numbers(Tag.WINDOW_CENTER, VR.DS));
        assertEquals("80\\2500.5\\-0.25", ds.string(Tag.WINDOW_WIDTH));
        assertArrayEquals(new double[]{3, -7}, ds.numbers(Tag.INSTANCE_NUMBER, VR.IS));
    }

    @Test
    void decimalStringsAreShortestRoundTripWithinSixteenCharacters() {
        assertEquals("0", DicomWriter.decimalString(0));
        assertEquals("0", DicomWriter.decimalString(-0.0));
        assertEquals("-1024", DicomWriter.decimalString(-1024));
        assertEquals("1", DicomWriter.decimalString(1.0));
        assertEquals("1000000", DicomWriter.decimalString(1e6), "plain when no longer");
        assertEquals("0.001", DicomWriter.decimalString(1e-3));
        assertEquals("0.48828125", DicomWriter.decimalString(0.48828125));
        assertEquals("-125.5", DicomWriter.decimalString(-125.5));
        assertEquals("1.5E-7", DicomWriter.decimalString(1.5e-7));
        assertEquals("1E20", DicomWriter.decimalString(1e20));
        assertEquals("-1.23456789E-30", DicomWriter.decimalString(-1.2345678901e-30), "17 characters: one digit less, rounded");
        assertEquals("0.33333333333333", DicomWriter.decimalString(1.0 / 3), "rounded to what fits");
        SplittableRandom r = new SplittableRandom(SEED);
        for (int i = 0; i < 100_000; i++) {
            double v = switch (i % 3) {
                case 0 -> Double.longBitsToDouble(r.nextLong());
                case 1 -> r.nextDouble(-1e6, 1e6);
                default -> Math.round(r.nextDouble(-1e5, 1e5) * 1e4) / 1e4;  // up to 10 significant digits
            };
            if (!Double.isFinite(v)) continue;
            String s = DicomWriter.decimalString(v);
            assertTrue(s.length() <= 16, s);
            assertTrue(s.matches("[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?"), s);
            double back = Double.parseDouble(s);
            if (i % 3 == 2) assertEquals(v, back, "seed " + SEED + ": " + s);
            else assertEquals(v, back, Math.abs(v) * 5e-9, "seed " + SEED + ": " + s);  // 16 characters keep 9 significant digits or more
        }
        assertThrows(IllegalArgumentException.class, () -> DicomWriter.decimalString(Double.NaN));
    }

    @Test
    void rejectsWhatWouldMakeAnInvalidFile() {
        DicomWriter w = new DicomWriter();
        assertThrows(IllegalArgumentException.class, () -> w.string(Tag.TRANSFER_SYNTAX_UID, VR.UI, "1.2"), "File Meta is the writer's");
        assertThrows(IllegalArgumentException.class, () -> w.string(Tag.ITEM, VR.UI, "1.2"));
        assertThrows(IllegalArgumentException.class, () -> w.string(Tag.PATIENT_ID, VR.LO, "a\\b"), "backslash in a value");
        assertThrows(IllegalArgumentException.class, () -> w.string(Tag.PATIENT_ID, VR.LO, "caf\u00e9"), "not ASCII");
        assertThrows(IllegalArgumentException.class, () -> w.string(Tag.MODALITY, VR.CS, "12345678901234567"), "CS longer than 16");
        assertThrows(IllegalArgumentException.class, () -> w.string(Tag.SOP_INSTANCE_UID, VR.UI, "1.".repeat(33)), "UI longer than 64");
        assertThrows(IllegalArgumentException.class, () -> w.binary(Tag.PIXEL_DATA, VR.OW, new byte[3]), "odd OW");
        assertThrows(IllegalArgumentException.class, () -> w.binary(Tag.PIXEL_DATA, VR.DS, new byte[2]));
        assertThrows(IllegalArgumentException.class, () -> w.unsignedShorts(Tag.ROWS, 65536));
        assertThrows(IllegalArgumentException.class, () -> w.integers(Tag.INSTANCE_NUMBER, 1L << 31));
        assertThrows(IllegalStateException.class, () -> w.toBytes(TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN), "no SOP UIDs");
        w.string(Tag.SOP_CLASS_UID, VR.UI, CtImage.CT_IMAGE_STORAGE).string(Tag.SOP_INSTANCE_UID, VR.UI, "1.2");
        assertThrows(IllegalArgumentException.class, () -> w.toBytes(TransferSyntax.EXPLICIT_VR_BIG_ENDIAN));
        assertThrows(IllegalArgumentException.class, () -> w.toBytes(TransferSyntax.RLE_LOSSLESS));
        w.string(0x00081030, VR.UT, "x".repeat(70_000));
        w.toBytes(TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN);  // UT has a 32-bit length
        w.string(0x00081031, VR.UC, "x".repeat(70_000));
        w.toBytes(TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN);
        w.string(0x00081032, VR.LT, "x".repeat(10_000));
        w.binary(0x00091001, VR.OB, new byte[70_000]);
        w.toBytes(TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN);
        w.binary(0x00091002, VR.US, new byte[70_000]);
        assertThrows(IllegalArgumentException.class, () -> w.toBytes(TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN), "US over 64 KB");
        w.toBytes(TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN);  // implicit VR lengths are 32-bit
    }

    @Test
    void writesAtomicallyAndReplaces() throws IOException {
        SplittableRandom r = new SplittableRandom(SEED);
        Path file = dir.resolve("atomic.dcm");
        CtImage first = randomImage(r, 8, 8, 16, 1), second = randomImage(r, 9, 9, 12, 0);
        DicomWriter.ctImage(first).write(file, TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN);
        DicomWriter.ctImage(second).write(file, TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN, true);
        assertArrayEquals(DicomWriter.ctImage(second).toBytes(TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN), Files.readAllBytes(file));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(file), s.toList(), "no temporary file is left behind");
        }
        Path missing = dir.resolve("no-such-folder").resolve("x.dcm");
        assertThrows(IOException.class, () -> DicomWriter.ctImage(first).write(missing, TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN));
    }

    // ---- DCMTK ----

    @ParameterizedTest(name = "{0}, {1} bits, pixel representation {2}")
    @MethodSource("encodings")
    void dcmtkCallsThemPart10AndDecodesTheSameStoredValues(TransferSyntax ts, int bitsStored, int pixelRepresentation) throws IOException {
        Dcmtk.assumeInstalled("dcmftest", "dcm2pnm", "dcmdump");
        SplittableRandom r = new SplittableRandom(SEED + bitsStored + pixelRepresentation);
        CtImage image = randomImage(r, 61, 47, bitsStored, pixelRepresentation);
        Path file = dir.resolve("dcmtk.dcm");
        DicomWriter.ctImage(image).write(file, ts);

        Dcmtk.Result test = Dcmtk.run("dcmftest", file.toString());
        assertEquals(0, test.exit(), test.out() + test.err());
        assertEquals("yes: " + file, test.out().strip(), "dcmftest: a DICOM Part 10 file");

        int[] dcmtk = Dcmtk.storedValues(file, bitsStored, pixelRepresentation == 1);
        ImageHeader header;
        try (DicomFile f = DicomFile.open(file)) {
            header = f.header();
            MemorySegment px = f.pixelData().bytes();
            StoredValues sv = StoredValues.of(header);
            for (int i = 0; i < dcmtk.length; i++) {
                int ours = sv.get(px, i);
                if (ours != dcmtk[i]) fail("seed " + SEED + ": pixel " + i + " is " + ours + " for us, " + dcmtk[i] + " for DCMTK");
            }
        }

        Dcmtk.Result dump = Dcmtk.run("dcmdump", "+L", file.toString());
        assertEquals(0, dump.exit(), dump.err());
        assertEquals("", dump.err().strip(), "dcmdump has no complaints");
        String out = dump.out();
        assertEquals(ts == TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN ? "=LittleEndianImplicit" : "=LittleEndianExplicit", dumped(out, "0002,0010"));
        assertEquals("=CTImageStorage", dumped(out, "0008,0016"));
        assertEquals("[" + image.sopInstanceUid() + "]", dumped(out, "0008,0018"));
        assertEquals("[" + image.patientId() + "]", dumped(out, "0010,0020"));
        assertEquals(Integer.toString(image.rows()), dumped(out, "0028,0010"));
        assertEquals(Integer.toString(image.columns()), dumped(out, "0028,0011"));
        assertEquals(Integer.toString(bitsStored), dumped(out, "0028,0101"));
        assertEquals(Integer.toString(bitsStored - 1), dumped(out, "0028,0102"));
        assertEquals(Integer.toString(pixelRepresentation), dumped(out, "0028,0103"));
        assertEquals("[" + String.join("\\", image.windowCenter()) + "]", dumped(out, "0028,1050"));
        assertEquals("[MONOCHROME2]", dumped(out, "0028,0004"));
        String[] position = dumped(out, "0020,0032").replaceAll("[\\[\\]]", "").split("\\\\");
        for (int k = 0; k < 3; k++) assertEquals(image.imagePositionPatient()[k], Double.parseDouble(position[k]));
        assertEquals(image.rescaleIntercept(), Double.parseDouble(dumped(out, "0028,1052").replaceAll("[\\[\\]]", "")));
    }

    private static final Pattern DUMP_LINE = Pattern.compile("^\\((\\p{XDigit}{4},\\p{XDigit}{4})\\) \\w\\w (.*?)\\s+#", Pattern.MULTILINE);

    /** The value column of dcmdump's line for a tag ("gggg,eeee", lower case as dcmdump prints it). */
    private static String dumped(String dump, String tag) {
        Matcher m = DUMP_LINE.matcher(dump);
        while (m.find()) if (m.group(1).equalsIgnoreCase(tag)) return m.group(2);
        throw new AssertionError("dcmdump shows no (" + tag + "):\n" + dump);
    }
}
