package ich.dicom;

import ich.dicom.DicomBytes.Encoding;
import ich.dicom.codec.RleDecoderTest;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

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
import java.util.stream.Stream;

import static ich.dicom.Tag.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The reader against crafted byte streams, one rule of PS3.5 (or PS3.10, PS3.3) per test, and every way a
 * hostile or truncated file must fail: with a {@link DicomFormatException} naming the file, never another
 * exception.
 */
class DicomParserTest {
    private static final String NAME = "crafted.dcm";

    // Tags used only here (PS3.6).
    private static final int IMAGE_TYPE = 0x00080008;
    private static final int REFERENCED_STUDY_SEQUENCE = 0x00081110;
    private static final int REFERENCED_PPS_SEQUENCE = 0x00081111;
    private static final int REFERENCED_SERIES_SEQUENCE = 0x00081115;
    private static final int REFERENCED_IMAGE_SEQUENCE = 0x00081140;
    private static final int REFERENCED_SOP_INSTANCE_UID = 0x00081155;
    private static final int PRIVATE_CREATOR = 0x00090010;
    private static final int PRIVATE_SQ = 0x00091010, PRIVATE_LO = 0x00091011, PRIVATE_SQ2 = 0x00091012, PRIVATE_US = 0x00091013;
    private static final int PRIVATE_OB = 0x00091001;

    // ---- helpers ----

    private static DicomFile parse(byte[] b) throws DicomFormatException { return DicomFile.parse(b, NAME); }

    /** Reads as a caller would (data set, typed header, pixels) and expects a DicomFormatException naming the file. */
    private static DicomFormatException fails(byte[] b) {
        DicomFormatException e = assertThrows(DicomFormatException.class, () -> {
            DicomFile f = DicomFile.parse(b, NAME);
            if (f.header().hasPixelData()) f.pixelData();
        });
        assertTrue(e.file().startsWith(NAME), e.file()); // "crafted.dcm (inflated data set)" for deflated data sets
        assertTrue(e.getMessage().startsWith(NAME), e.getMessage());
        return e;
    }

    private static void assertMessage(DicomFormatException e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), () -> "\"" + p + "\" not in: " + e.getMessage());
    }

    /** The Image Pixel Module (PS3.3 C.7.6.3) of a monochrome image, in tag order. */
    private static DicomBytes image(DicomBytes d, int rows, int columns, int frames, int bitsAllocated, int pixelRepresentation) {
        d.us(SAMPLES_PER_PIXEL, 1).str(PHOTOMETRIC_INTERPRETATION, "CS", "MONOCHROME2");
        if (frames != 1) d.is(NUMBER_OF_FRAMES, Integer.toString(frames));
        return d.us(ROWS, rows).us(COLUMNS, columns).us(BITS_ALLOCATED, bitsAllocated).us(BITS_STORED, bitsAllocated)
                .us(HIGH_BIT, bitsAllocated - 1).us(PIXEL_REPRESENTATION, pixelRepresentation);
    }

    private static byte[] randomBytes(long seed, int n) {
        byte[] b = new byte[n];
        new SplittableRandom(seed).nextBytes(b);
        return b;
    }

    private static byte[] bytes(MemorySegment s) { return s.toArray(ValueLayout.JAVA_BYTE); }

    private static TransferSyntax syntax(Encoding enc) {
        return switch (enc) {
            case EXPLICIT_LE -> TransferSyntax.EXPLICIT_VR_LITTLE_ENDIAN;
            case EXPLICIT_BE -> TransferSyntax.EXPLICIT_VR_BIG_ENDIAN;
            case IMPLICIT_LE -> TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN;
        };
    }

    // ================================================================================================
    @Nested
    class Part10AndBareDataSets {
        /** Rows 512 (0x0200) and Columns 258 (0x0102): a wrong byte order reads 2 and 513. */
        private DicomBytes content(DicomBytes d) {
            return d.str(MODALITY, "CS", "CT").str(PATIENT_ID, "LO", "PAT-1").us(ROWS, 512).us(COLUMNS, 258);
        }

        private void assertContent(DicomFile f) throws DicomFormatException {
            ImageHeader h = f.header();
            assertEquals("CT", h.modality());
            assertEquals("PAT-1", h.patientId());
            assertEquals(512, h.rows());
            assertEquals(258, h.columns());
        }

        @ParameterizedTest
        @EnumSource(Encoding.class)
        void bareDataSetEncodingIsDetectedAsDcmtkDoes(Encoding enc) throws Exception {
            // Explicit VR when bytes 4-5 are a VR code; big endian when the first group number read little
            // endian (0x0800) is larger than read big endian (0x0008).
            DicomFile f = parse(content(DicomBytes.dataSet(enc)).bytes());
            assertNull(f.fileMeta());
            assertEquals(syntax(enc), f.transferSyntax());
            assertEquals(syntax(enc).uid(), f.transferSyntaxUid());
            assertContent(f);
        }

        @ParameterizedTest
        @ValueSource(strings = {DicomBytes.IMPLICIT_LE, DicomBytes.EXPLICIT_LE, DicomBytes.EXPLICIT_BE})
        void part10FileUsesTheTransferSyntaxOfItsFileMeta(String tsUid) throws Exception {
            byte[] b = content(DicomBytes.part10(tsUid)).bytes();
            assertEquals("DICM", new String(b, 128, 4, StandardCharsets.US_ASCII));
            DicomFile f = parse(b);
            assertNotNull(f.fileMeta());
            assertEquals(tsUid, f.fileMeta().string(TRANSFER_SYNTAX_UID));
            assertEquals("1.2.840.10008.5.1.4.1.1.2", f.fileMeta().string(MEDIA_STORAGE_SOP_CLASS_UID));
            assertEquals(tsUid, f.transferSyntaxUid());
            assertEquals(TransferSyntax.forUid(tsUid), f.transferSyntax());
            // The File Meta is not part of the data set.
            assertFalse(f.dataSet().contains(TRANSFER_SYNTAX_UID));
            assertEquals(MODALITY, f.dataSet().tagAt(0));
            assertContent(f);
        }

        @ParameterizedTest
        @ValueSource(strings = {DicomBytes.IMPLICIT_LE, DicomBytes.EXPLICIT_LE, DicomBytes.EXPLICIT_BE})
        void fileMetaWithoutPreamble(String tsUid) throws Exception {
            byte[] b = content(DicomBytes.fileMetaWithoutPreamble(tsUid)).bytes();
            assertEquals(0x02, b[0]); // (0002,0000) at byte 0
            DicomFile f = parse(b);
            assertNotNull(f.fileMeta());
            assertEquals(tsUid, f.transferSyntaxUid());
            assertContent(f);
        }

        @Test
        void part10FileWithOnlyFileMetaIsRejected() {
            // A Part 10 file must carry a data set (PS3.10 7.1); an empty one is not an image we could use.
            DicomFormatException e = assertThrows(DicomFormatException.class,
                    () -> parse(DicomBytes.part10(DicomBytes.EXPLICIT_LE).bytes()));
            assertTrue(e.getMessage().contains("no data set"), e.getMessage());
        }
    }

    // ================================================================================================
    @Nested
    class TypedValues {
        @ParameterizedTest
        @EnumSource(Encoding.class)
        void headerValues(Encoding enc) throws Exception {
            DicomBytes d = DicomBytes.dataSet(enc)
                    .str(IMAGE_TYPE, "CS", "ORIGINAL\\PRIMARY\\AXIAL")
                    .str(SOP_CLASS_UID, "UI", "1.2.840.10008.5.1.4.1.1.2")       // 25 characters: NUL padded
                    .str(SOP_INSTANCE_UID, "UI", "1.2.3.4.5.6")
                    .str(MODALITY, "CS", "CT")
                    .rawElement(PATIENT_ID, "LO", "PAT \0 \0".getBytes(StandardCharsets.US_ASCII)) // spaces and NULs
                    .ds(SLICE_THICKNESS, "2.50000 ")
                    .str(STUDY_INSTANCE_UID, "UI", "1.2.3")
                    .ds(IMAGE_POSITION_PATIENT, "-125.5", "+0003.0", "1E2")
                    .ds(IMAGE_ORIENTATION_PATIENT, "1", "0", "0", "0", "1", "0")
                    .us(SAMPLES_PER_PIXEL, 1)
                    .is(NUMBER_OF_FRAMES, "0003")
                    .us(ROWS, 0x0200).us(COLUMNS, 0x0102)
                    .ds(PIXEL_SPACING, "00036", "00036")
                    .us(BITS_ALLOCATED, 16).us(BITS_STORED, 12).us(HIGH_BIT, 11).us(PIXEL_REPRESENTATION, 1)
                    .ss(PIXEL_PADDING_VALUE, -2000)
                    .ds(WINDOW_CENTER, "40", "400").ds(WINDOW_WIDTH, " 80 \\2000").ds(RESCALE_INTERCEPT, "-1024.0").ds(RESCALE_SLOPE, "1");
            DataSet ds = parse(d.bytes()).dataSet();
            ImageHeader h = ImageHeader.read(ds, NAME);

            assertArrayEquals(new String[]{"ORIGINAL", "PRIMARY", "AXIAL"}, ds.strings(IMAGE_TYPE));
            assertEquals("1.2.840.10008.5.1.4.1.1.2", h.sopClassUid());
            assertEquals(26, ds.length(SOP_CLASS_UID));
            assertEquals("1.2.3.4.5.6", h.sopInstanceUid());
            assertEquals("PAT", h.patientId());
            assertEquals("1.2.3", h.studyInstanceUid());
            assertEquals(2.5, h.sliceThickness());
            assertArrayEquals(new double[]{-125.5, 3, 100}, h.imagePositionPatient());
            assertArrayEquals(new double[]{1, 0, 0, 0, 1, 0}, h.imageOrientationPatient());
            assertEquals(3, h.numberOfFrames());
            assertEquals(512, h.rows());
            assertEquals(258, h.columns());
            assertArrayEquals(new double[]{36, 36}, h.pixelSpacing());
            assertEquals(16, h.bitsAllocated());
            assertEquals(12, h.bitsStored());
            assertEquals(11, h.highBit());
            assertEquals(1, h.pixelRepresentation());
            assertEquals(-2000, h.pixelPaddingValue());
            assertNull(h.pixelPaddingRangeLimit());
            assertArrayEquals(new double[]{40, 400}, h.windowCenter());
            assertArrayEquals(new double[]{80, 2000}, h.windowWidth());
            assertEquals(-1024, h.rescaleIntercept());
            assertEquals(1, h.rescaleSlope());
            assertNull(h.seriesInstanceUid());
            assertTrue(Double.isNaN(ImageHeader.read(DicomFile.parse(DicomBytes.dataSet(enc).str(MODALITY, "CS", "CT").bytes(), NAME)
                    .dataSet(), NAME).rescaleSlope()), "absent Rescale Slope is NaN");
        }

        @ParameterizedTest
        @ValueSource(ints = {0, 1})
        void implicitVrPixelPaddingValueIsSsWhenPixelRepresentationIs1(int pixelRepresentation) throws Exception {
            // PS3.3 C.7.5.1.1.2: (0028,0120) is US or SS as Pixel Representation says; implicit VR cannot say.
            byte[] b = DicomBytes.dataSet(Encoding.IMPLICIT_LE)
                    .us(PIXEL_REPRESENTATION, pixelRepresentation)
                    .us(PIXEL_PADDING_VALUE, 0xFC18) // -1000 as SS, 64536 as US
                    .us(PIXEL_PADDING_RANGE_LIMIT, 0xFC00)
                    .bytes();
            ImageHeader h = parse(b).header();
            assertEquals(pixelRepresentation == 1 ? -1000 : 64536, h.pixelPaddingValue());
            assertEquals(pixelRepresentation == 1 ? -1024 : 64512, h.pixelPaddingRangeLimit());
        }

        @ParameterizedTest
        @EnumSource(Encoding.class)
        void oddValueLengthsAreReadAsWritten(Encoding enc) throws Exception {
            // PS3.5 7.1.1 requires even lengths; files with odd ones exist and the next element must still be found.
            byte[] b = DicomBytes.dataSet(enc)
                    .oddStr(MODALITY, "CS", "MR ")
                    .rawElement(PRIVATE_CREATOR, "LO", "ICH".getBytes(StandardCharsets.US_ASCII))
                    .rawElement(PRIVATE_OB, "OB", new byte[]{1, 2, 3, 4, 5})
                    .oddStr(PATIENT_ID, "LO", "ABCDE")
                    .us(ROWS, 7)
                    .bytes();
            DataSet ds = parse(b).dataSet();
            assertEquals("MR", ds.string(MODALITY));
            assertEquals(3, ds.length(MODALITY));
            assertEquals("ICH", ds.string(PRIVATE_CREATOR));
            assertArrayEquals(new byte[]{1, 2, 3, 4, 5}, bytes(ds.value(PRIVATE_OB)));
            assertEquals("ABCDE", ds.string(PATIENT_ID));
            assertEquals(7, ds.us(ROWS, -1));
        }

        @Test
        void invalidDecimalStringIsAFormatError() throws Exception {
            DataSet ds = parse(DicomBytes.dataSet(Encoding.EXPLICIT_LE).ds(RESCALE_SLOPE, "1.0", "abc").bytes()).dataSet();
            DicomFormatException e = assertThrows(DicomFormatException.class, () -> ds.numbers(RESCALE_SLOPE, VR.DS));
            assertEquals(RESCALE_SLOPE, e.tag());
            assertMessage(e, NAME, "\"abc\"");
        }
    }

    // ================================================================================================
    @Nested
    class Sequences {
        static Stream<Arguments> lengthMixes() {
            List<Arguments> out = new ArrayList<>();
            boolean[][] mixes = {
                    {true, true, true, true, true, true}, {false, false, false, false, false, false},
                    {true, false, true, false, true, false}, {false, true, false, true, false, true},
                    {true, true, false, false, true, false}};
            for (Encoding enc : Encoding.values()) {
                for (boolean[] m : mixes) out.add(Arguments.of(enc, m));
            }
            return out.stream();
        }

        /**
         * PS3.5 7.5: sequences of defined length or closed by (FFFE,E0DD), items of defined length or closed by
         * (FFFE,E00D), nested three deep. In implicit VR these sequences are known to the reader (PS3.6).
         */
        @ParameterizedTest(name = "{0} defined={1}")
        @MethodSource("lengthMixes")
        void nestedThreeDeep(Encoding enc, boolean[] defined) throws Exception {
            byte[] b = DicomBytes.dataSet(enc)
                    .str(MODALITY, "CS", "CT")
                    .sequence(REFERENCED_STUDY_SEQUENCE, defined[0])
                        .item(defined[1])
                            .str(REFERENCED_SOP_INSTANCE_UID, "UI", "1.1")
                            .sequence(REFERENCED_SERIES_SEQUENCE, defined[2])
                                .item(defined[3])
                                    .str(SERIES_INSTANCE_UID, "UI", "1.2")
                                    .sequence(REFERENCED_IMAGE_SEQUENCE, defined[4])
                                        .item(defined[5]).str(REFERENCED_SOP_INSTANCE_UID, "UI", "1.2.3").end()
                                        .item(!defined[5]).str(REFERENCED_SOP_INSTANCE_UID, "UI", "1.2.4").us(ROWS, 0x0102).end()
                                        .item(defined[5]).end()
                                    .end()
                                .end()
                            .end()
                        .end()
                        .item(!defined[1]).str(REFERENCED_SOP_INSTANCE_UID, "UI", "2.1").end()
                    .end()
                    .sequence(REFERENCED_PPS_SEQUENCE, defined[0]).end()
                    .str(PATIENT_ID, "LO", "AFTER")
                    .bytes();
            DataSet ds = parse(b).dataSet();
            assertEquals(4, ds.size());
            assertEquals("AFTER", ds.string(PATIENT_ID));
            assertEquals(VR.SQ, ds.vr(REFERENCED_STUDY_SEQUENCE));
            if (defined[0]) assertTrue(ds.length(REFERENCED_STUDY_SEQUENCE) > 0);
            else assertEquals(-1, ds.length(REFERENCED_STUDY_SEQUENCE), "undefined length");
            assertTrue(ds.contains(REFERENCED_PPS_SEQUENCE));
            assertEquals(List.of(), ds.sequence(REFERENCED_PPS_SEQUENCE));

            List<DataSet> level1 = ds.sequence(REFERENCED_STUDY_SEQUENCE);
            assertEquals(2, level1.size());
            assertEquals("1.1", level1.get(0).string(REFERENCED_SOP_INSTANCE_UID));
            assertEquals("2.1", level1.get(1).string(REFERENCED_SOP_INSTANCE_UID));
            List<DataSet> level2 = level1.get(0).sequence(REFERENCED_SERIES_SEQUENCE);
            assertEquals(1, level2.size());
            assertEquals("1.2", level2.get(0).string(SERIES_INSTANCE_UID));
            List<DataSet> level3 = level2.get(0).sequence(REFERENCED_IMAGE_SEQUENCE);
            assertEquals(3, level3.size());
            assertEquals("1.2.3", level3.get(0).string(REFERENCED_SOP_INSTANCE_UID));
            assertEquals("1.2.4", level3.get(1).string(REFERENCED_SOP_INSTANCE_UID));
            assertEquals(258, level3.get(1).us(ROWS, -1), "byte order inside items");
            assertEquals(0, level3.get(2).size());
            assertFalse(ds.contains(SERIES_INSTANCE_UID), "nested elements stay in their items");
        }

        @ParameterizedTest
        @EnumSource(Encoding.class)
        void privateTagsAndPrivateSequences(Encoding enc) throws Exception {
            // Odd groups are private (PS3.5 7.8). An implicit VR reader cannot know that a private element is a
            // sequence unless it has undefined length, so this uses undefined length where the VR is implicit.
            boolean explicit = enc != Encoding.IMPLICIT_LE;
            byte[] b = DicomBytes.dataSet(enc)
                    .str(MODALITY, "CS", "CT")
                    .str(PRIVATE_CREATOR, "LO", "ICH TEST")
                    .sequence(PRIVATE_SQ, explicit)
                        .item(true)
                            .str(PRIVATE_LO, "LO", "inner")
                            .sequence(PRIVATE_SQ2, false)
                                .item(explicit).us(PRIVATE_US, 0x0102).end()
                            .end()
                        .end()
                    .end()
                    .str(PATIENT_ID, "LO", "P")
                    .bytes();
            DataSet ds = parse(b).dataSet();
            assertEquals("ICH TEST", ds.string(PRIVATE_CREATOR));
            assertEquals(VR.SQ, ds.vr(PRIVATE_SQ));
            DataSet item = ds.sequence(PRIVATE_SQ).getFirst();
            assertEquals("inner", item.string(PRIVATE_LO));
            assertEquals(258, item.sequence(PRIVATE_SQ2).getFirst().us(PRIVATE_US, -1));
            assertEquals("P", ds.string(PATIENT_ID));
        }

        @Test
        void implicitVrPrivateSequenceOfDefinedLengthStaysRawBytes() throws Exception {
            byte[] b = DicomBytes.dataSet(Encoding.IMPLICIT_LE)
                    .str(PRIVATE_CREATOR, "LO", "ICH TEST")
                    .sequence(PRIVATE_SQ, true).item(true).str(PRIVATE_LO, "LO", "inner").end().end()
                    .str(PATIENT_ID, "LO", "P")
                    .bytes();
            DataSet ds = parse(b).dataSet();
            assertEquals(VR.NONE, ds.vr(PRIVATE_SQ));
            assertEquals(8 + 8 + 6, ds.length(PRIVATE_SQ));
            assertEquals(List.of(), ds.sequence(PRIVATE_SQ));
            assertEquals("P", ds.string(PATIENT_ID));
        }

        /** PS3.5 6.2.2: VR UN of undefined length holds a sequence in Implicit VR Little Endian, in any syntax. */
        @ParameterizedTest
        @EnumSource(value = Encoding.class, names = {"EXPLICIT_LE", "EXPLICIT_BE"})
        void unOfUndefinedLengthIsAnImplicitLittleEndianSequence(Encoding enc) throws Exception {
            byte[] b = DicomBytes.dataSet(enc)
                    .str(MODALITY, "CS", "CT")
                    .str(PRIVATE_CREATOR, "LO", "ICH TEST")
                    .unSequence(PRIVATE_SQ)
                        .item(false)
                            .str(PRIVATE_LO, "LO", "in UN")
                            .sequence(PRIVATE_SQ2, false).item(true).us(PRIVATE_US, 0x0102).end().end()
                        .end()
                        .item(true).str(PRIVATE_LO, "LO", "second").end()
                    .end()
                    .us(ROWS, 0x0102)
                    .bytes();
            DataSet ds = parse(b).dataSet();
            assertEquals(VR.SQ, ds.vr(PRIVATE_SQ));
            List<DataSet> items = ds.sequence(PRIVATE_SQ);
            assertEquals(2, items.size());
            assertEquals(ByteOrder.LITTLE_ENDIAN, items.getFirst().order());
            assertEquals("in UN", items.get(0).string(PRIVATE_LO));
            assertEquals(VR.NONE, items.get(0).vr(PRIVATE_LO), "implicit VR inside UN");
            assertEquals(258, items.get(0).sequence(PRIVATE_SQ2).getFirst().us(PRIVATE_US, -1));
            assertEquals("second", items.get(1).string(PRIVATE_LO));
            assertEquals(258, ds.us(ROWS, -1), "the data set goes on in its own encoding after the UN element");
        }

        @Test
        void unOfDefinedLengthStaysRawBytes() throws Exception {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .rawElement(PRIVATE_OB, "UN", new byte[]{9, 8, 7, 6})
                    .us(ROWS, 3).bytes();
            DataSet ds = parse(b).dataSet();
            assertEquals(VR.UN, ds.vr(PRIVATE_OB));
            assertArrayEquals(new byte[]{9, 8, 7, 6}, bytes(ds.value(PRIVATE_OB)));
            assertEquals(3, ds.us(ROWS, -1));
        }

        @ParameterizedTest
        @EnumSource(Encoding.class)
        void nestingUpToMaxDepthIsRead(Encoding enc) throws Exception {
            DicomBytes d = DicomBytes.dataSet(enc).str(MODALITY, "CS", "CT");
            for (int i = 0; i < DicomParser.MAX_DEPTH; i++) d.sequence(REFERENCED_SERIES_SEQUENCE, i % 2 == 0).item(i % 3 == 0);
            d.str(PATIENT_ID, "LO", "deep");
            for (int i = 0; i < DicomParser.MAX_DEPTH; i++) d.end().end();
            DataSet ds = parse(d.bytes()).dataSet();
            for (int i = 0; i < DicomParser.MAX_DEPTH; i++) ds = ds.sequence(REFERENCED_SERIES_SEQUENCE).getFirst();
            assertEquals("deep", ds.string(PATIENT_ID));
        }
    }

    // ================================================================================================
    @Nested
    class FunctionalGroups {
        static Stream<Arguments> encodings() {
            List<Arguments> out = new ArrayList<>();
            for (Encoding enc : Encoding.values()) {
                out.add(Arguments.of(enc, true));
                out.add(Arguments.of(enc, false));
            }
            return out.stream();
        }

        /** PS3.3 C.7.6.16: per-frame values win over shared ones, which win over top-level attributes. */
        @ParameterizedTest(name = "{0} defined lengths: {1}")
        @MethodSource("encodings")
        void frameTransformFallsBackPerFrameThenSharedThenTopLevel(Encoding enc, boolean defined) throws Exception {
            byte[] b = DicomBytes.dataSet(enc)
                    .is(NUMBER_OF_FRAMES, "3")
                    .ds(WINDOW_CENTER, "35").ds(WINDOW_WIDTH, "90").ds(RESCALE_INTERCEPT, "-7").ds(RESCALE_SLOPE, "3")
                    .sequence(SHARED_FUNCTIONAL_GROUPS_SEQUENCE, defined).item(defined)
                        .sequence(PIXEL_VALUE_TRANSFORMATION_SEQUENCE, !defined).item(defined)
                            .ds(RESCALE_INTERCEPT, "-1000").ds(RESCALE_SLOPE, "1").end().end()
                    .end().end()
                    .sequence(PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, defined)
                        .item(!defined) // frame 1: its own window and rescale
                            .sequence(FRAME_VOI_LUT_SEQUENCE, defined).item(!defined).ds(WINDOW_CENTER, "40").ds(WINDOW_WIDTH, "80").end().end()
                            .sequence(PIXEL_VALUE_TRANSFORMATION_SEQUENCE, defined).item(defined)
                                .ds(RESCALE_INTERCEPT, "-1024").ds(RESCALE_SLOPE, "2").end().end()
                        .end()
                        .item(defined) // frame 2: its own windows (two), shared rescale
                            .sequence(FRAME_VOI_LUT_SEQUENCE, !defined).item(defined)
                                .ds(WINDOW_CENTER, "50", "60").ds(WINDOW_WIDTH, "100", "200").end().end()
                        .end()
                        .item(defined).end() // frame 3: shared rescale, top-level window
                    .end()
                    .bytes();
            ImageHeader h = parse(b).header();
            assertEquals(3, h.frameTransforms().size());
            assertTransform(h.frameTransform(0), 2, -1024, new double[]{40}, new double[]{80});
            assertTransform(h.frameTransform(1), 1, -1000, new double[]{50, 60}, new double[]{100, 200});
            assertTransform(h.frameTransform(2), 1, -1000, new double[]{35}, new double[]{90});
            assertEquals(2, h.rescaleSlope(), "the header's own values are frame 1's");
            assertEquals(-1024, h.rescaleIntercept());
            assertArrayEquals(new double[]{40}, h.windowCenter());
        }

        @Test
        void sharedOnlyAppliesToEveryFrame() throws Exception {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .ds(RESCALE_INTERCEPT, "-7").ds(RESCALE_SLOPE, "3")
                    .sequence(SHARED_FUNCTIONAL_GROUPS_SEQUENCE, false).item(false)
                        .sequence(FRAME_VOI_LUT_SEQUENCE, false).item(false).ds(WINDOW_CENTER, "45").ds(WINDOW_WIDTH, "95").end().end()
                    .end().end()
                    .bytes();
            ImageHeader h = parse(b).header();
            for (int i = 0; i < 4; i++) assertTransform(h.frameTransform(i), 3, -7, new double[]{45}, new double[]{95});
        }

        @Test
        void topLevelOnly() throws Exception {
            ImageHeader h = parse(DicomBytes.dataSet(Encoding.IMPLICIT_LE).ds(RESCALE_INTERCEPT, "-1024").ds(RESCALE_SLOPE, "1")
                    .bytes()).header();
            assertTransform(h.frameTransform(5), 1, -1024, new double[0], new double[0]);
            assertTrue(h.frameTransform(0).hasRescale());
        }

        private static void assertTransform(FrameTransform t, double slope, double intercept, double[] center, double[] width) {
            assertEquals(slope, t.rescaleSlope(), "Rescale Slope");
            assertEquals(intercept, t.rescaleIntercept(), "Rescale Intercept");
            assertArrayEquals(center, t.windowCenter(), "Window Center");
            assertArrayEquals(width, t.windowWidth(), "Window Width");
        }
    }

    // ================================================================================================
    @Nested
    class ModalityLuts {
        private short[] randomLut(long seed, int n, int bits) {
            SplittableRandom rnd = new SplittableRandom(seed);
            short[] s = new short[n];
            for (int i = 0; i < n; i++) s[i] = (short) rnd.nextInt(1 << bits);
            return s;
        }

        /** PS3.3 C.11.1.1.1: 0 entries means 65536; the first mapped value is SS when Pixel Representation is 1. */
        @ParameterizedTest
        @EnumSource(Encoding.class)
        void descriptorWithZeroEntriesAndSignedFirstValue(Encoding enc) throws Exception {
            short[] lut = randomLut(7, 65536, 16);
            byte[] b = DicomBytes.dataSet(enc)
                    .us(PIXEL_REPRESENTATION, 1)
                    .sequence(MODALITY_LUT_SEQUENCE, enc != Encoding.EXPLICIT_BE).item(true)
                        .us(LUT_DESCRIPTOR, 0, 0xF830, 16) // 65536 entries, first mapped -2000
                        .str(MODALITY_LUT_TYPE, "LO", "HU")
                        .ow(LUT_DATA, lut)
                    .end().end()
                    .bytes();
            ModalityLut m = parse(b).header().modalityLut();
            assertNotNull(m);
            assertEquals(65536, m.entries().length);
            assertEquals(-2000, m.firstMapped());
            assertEquals(16, m.bitsPerEntry());
            assertEquals("HU", m.lutType());
            for (int i = 0; i < lut.length; i++) assertEquals(Short.toUnsignedInt(lut[i]), m.entries()[i], "entry " + i);
            assertEquals(Short.toUnsignedInt(lut[0]), m.apply(-2000));
            assertEquals(Short.toUnsignedInt(lut[1]), m.apply(-1999));
            assertEquals(Short.toUnsignedInt(lut[0]), m.apply(-30000), "below the first mapped value");
            assertEquals(Short.toUnsignedInt(lut[65535]), m.apply(70000), "above the last mapped value");
        }

        @ParameterizedTest
        @EnumSource(Encoding.class)
        void unsignedFirstValueWhenPixelRepresentationIs0(Encoding enc) throws Exception {
            short[] lut = randomLut(8, 4096, 12);
            byte[] b = DicomBytes.dataSet(enc)
                    .us(PIXEL_REPRESENTATION, 0)
                    .sequence(MODALITY_LUT_SEQUENCE, false).item(false)
                        .us(LUT_DESCRIPTOR, 4096, 0xF830, 12) // first mapped 63536
                        .ow(LUT_DATA, lut)
                    .end().end()
                    .bytes();
            ModalityLut m = parse(b).header().modalityLut();
            assertEquals(4096, m.entries().length);
            assertEquals(63536, m.firstMapped());
            assertEquals(12, m.bitsPerEntry());
            assertEquals(lut[100], m.apply(63636));
        }

        /**
         * The LUT Descriptor's VR is "US or SS" (PS3.6); encoded as SS, its first and third values are still
         * unsigned (PS3.3 C.11.1.1.1): 40000 entries must not become -25536.
         */
        @Test
        void descriptorEncodedAsSsKeepsItsCountUnsigned() throws Exception {
            short[] lut = randomLut(9, 40000, 16);
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .us(PIXEL_REPRESENTATION, 1)
                    .sequence(MODALITY_LUT_SEQUENCE, false).item(false)
                        .ss(LUT_DESCRIPTOR, 40000, -32768, 16)
                        .ow(LUT_DATA, lut)
                    .end().end()
                    .bytes();
            ModalityLut m = parse(b).header().modalityLut();
            assertEquals(40000, m.entries().length);
            assertEquals(-32768, m.firstMapped());
            assertEquals(16, m.bitsPerEntry());
            assertEquals(Short.toUnsignedInt(lut[39999]), m.entries()[39999]);
        }

        @Test
        void lutDataShorterThanTheDescriptorSays() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .sequence(MODALITY_LUT_SEQUENCE, false).item(false)
                        .us(LUT_DESCRIPTOR, 256, 0, 16).ow(LUT_DATA, randomLut(1, 255, 16))
                    .end().end().bytes();
            DicomFormatException e = fails(b);
            assertEquals(LUT_DATA, e.tag());
            assertMessage(e, "255 entries", "256");
        }

        @Test
        void descriptorWithTwoValues() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .sequence(MODALITY_LUT_SEQUENCE, false).item(false).us(LUT_DESCRIPTOR, 256, 0).end().end().bytes();
            DicomFormatException e = fails(b);
            assertEquals(LUT_DESCRIPTOR, e.tag());
            assertMessage(e, "2 values");
        }
    }

    // ================================================================================================
    @Nested
    class HostileInput {
        @Test
        void valueLengthBeyondTheEndOfTheFile() {
            DicomBytes d = DicomBytes.part10(DicomBytes.EXPLICIT_LE).str(MODALITY, "CS", "CT");
            int at = d.position();
            DicomFormatException e = fails(d.header(PATIENT_ID, "LO", 40).raw("ABCD".getBytes(StandardCharsets.US_ASCII)).bytes());
            assertEquals(at, e.offset(), "offset of the element in the file");
            assertEquals(PATIENT_ID, e.tag());
            assertMessage(e, "at byte " + at, "(0010,0020)", "value length 40 exceeds the 4 bytes");
        }

        @Test
        void truncatedElementHeader() {
            DicomBytes d = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT");
            int at = d.position();
            DicomFormatException e = fails(d.raw(new byte[]{0x10, 0, 0x20, 0, 'L'}).bytes());
            assertEquals(at, e.offset());
            assertMessage(e, "truncated data element header", "5 bytes");
            // A long-VR header (PS3.5 7.1.2) cut inside its 32-bit length.
            e = fails(DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT").tag(PRIVATE_OB)
                    .raw((byte) 'O', (byte) 'B', (byte) 0, (byte) 0, (byte) 1, (byte) 0).bytes());
            assertEquals(at, e.offset());
            assertEquals(PRIVATE_OB, e.tag());
            assertMessage(e, "truncated data element header");
        }

        @Test
        void undefinedLengthItemNeverClosed() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                    .header(REFERENCED_SERIES_SEQUENCE, "SQ", DicomBytes.UNDEFINED_LENGTH)
                    .tag(ITEM).u32(DicomBytes.UNDEFINED_LENGTH)
                    .str(SERIES_INSTANCE_UID, "UI", "1.2").bytes();
            DicomFormatException e = fails(b);
            assertEquals(b.length, e.offset());
            assertMessage(e, "item of undefined length not closed");
        }

        @Test
        void undefinedLengthItemRunningPastTheEndOfItsDefinedLengthSequence() {
            // The sequence is 20 bytes: the item header and one 12-byte element; the item's delimiter is missing.
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                    .header(REFERENCED_SERIES_SEQUENCE, "SQ", 20)
                    .tag(ITEM).u32(DicomBytes.UNDEFINED_LENGTH)
                    .str(SERIES_INSTANCE_UID, "UI", "1.2")
                    .str(PATIENT_ID, "LO", "P").bytes();
            assertMessage(fails(b), "item of undefined length not closed before the end of its sequence");
        }

        @Test
        void missingSequenceDelimiter() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                    .header(REFERENCED_SERIES_SEQUENCE, "SQ", DicomBytes.UNDEFINED_LENGTH)
                    .tag(ITEM).u32(12).str(SERIES_INSTANCE_UID, "UI", "1.2").bytes();
            DicomFormatException e = fails(b);
            assertEquals(b.length, e.offset());
            assertEquals(REFERENCED_SERIES_SEQUENCE, e.tag());
            assertMessage(e, "sequence not closed");
        }

        @Test
        void itemTagWhereAnElementIsExpected() {
            DicomBytes d = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT");
            int at = d.position();
            DicomFormatException e = fails(d.tag(ITEM).u32(0).str(PATIENT_ID, "LO", "P").bytes());
            assertEquals(at, e.offset());
            assertEquals(ITEM, e.tag());
            assertMessage(e, "(FFFE,E000)", "item tag where a data element was expected");

            e = fails(DicomBytes.dataSet(Encoding.IMPLICIT_LE).str(MODALITY, "CS", "CT").tag(SEQUENCE_DELIMITATION).u32(0).bytes());
            assertEquals(SEQUENCE_DELIMITATION, e.tag());

            e = fails(DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT").tag(ITEM_DELIMITATION).u32(0).bytes());
            assertEquals(ITEM_DELIMITATION, e.tag());
            assertMessage(e, "outside an item of undefined length");
        }

        @Test
        void elementWhereAnItemIsExpected() {
            DicomBytes d = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                    .header(REFERENCED_SERIES_SEQUENCE, "SQ", DicomBytes.UNDEFINED_LENGTH);
            int at = d.position();
            DicomFormatException e = fails(d.str(PATIENT_ID, "LO", "P").tag(SEQUENCE_DELIMITATION).u32(0).bytes());
            assertEquals(at, e.offset());
            assertEquals(REFERENCED_SERIES_SEQUENCE, e.tag());
            assertMessage(e, "expected an item (FFFE,E000)", "found (0010,0020)");
        }

        @ParameterizedTest
        @ValueSource(strings = {"xy", "ZZ", "\0\0", "S"})
        void invalidVrBytesInExplicitVr(String vr) {
            DicomBytes d = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT");
            int at = d.position();
            byte[] code = Arrays.copyOf(vr.getBytes(StandardCharsets.ISO_8859_1), 2);
            DicomFormatException e = fails(d.tag(PATIENT_ID).raw(code).raw((byte) 2, (byte) 0, (byte) 'A', (byte) 'B').bytes());
            assertEquals(at, e.offset());
            assertEquals(PATIENT_ID, e.tag());
            assertMessage(e, "invalid VR bytes", String.format("0x%02X 0x%02X", code[0] & 0xFF, code[1] & 0xFF));
        }

        static Stream<Arguments> deepNesting() {
            List<Arguments> out = new ArrayList<>();
            for (Encoding enc : Encoding.values()) {
                out.add(Arguments.of(enc, true));
                out.add(Arguments.of(enc, false));
            }
            return out.stream();
        }

        /** 10,000 nested sequences: a DicomFormatException at MAX_DEPTH, not a StackOverflowError. */
        @ParameterizedTest(name = "{0} defined lengths: {1}")
        @MethodSource("deepNesting")
        void sequencesNestedDeeperThanMaxDepth(Encoding enc, boolean defined) {
            DicomBytes d = DicomBytes.dataSet(enc).str(MODALITY, "CS", "CT");
            int first = d.position();
            for (int i = 0; i < 10_000; i++) d.sequence(REFERENCED_SERIES_SEQUENCE, defined).item(defined);
            for (int i = 0; i < 10_000; i++) d.end().end();
            int level = (enc.explicit ? 12 : 8) + 8; // sequence header + item header
            DicomFormatException e = fails(d.bytes());
            assertEquals(REFERENCED_SERIES_SEQUENCE, e.tag());
            assertEquals(first + (long) level * DicomParser.MAX_DEPTH, e.offset(), "at the first sequence too deep");
            assertMessage(e, "nested deeper than " + DicomParser.MAX_DEPTH);
        }

        @Test
        void unSequencesNestedDeeperThanMaxDepth() {
            DicomBytes d = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT").unSequence(PRIVATE_SQ);
            for (int i = 0; i < 10_000; i++) d.item(false).sequence(PRIVATE_SQ, false);
            for (int i = 0; i < 10_000; i++) d.end().end();
            assertMessage(fails(d.end().bytes()), "nested deeper than");
        }

        static Stream<Arguments> hugeLengths() {
            int huge = 0xFFFFFFF0;
            return Stream.of(
                    Arguments.of("explicit OB", DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                            .header(PRIVATE_OB, "OB", huge).raw(new byte[16]).bytes(), "value length 4294967280 exceeds"),
                    Arguments.of("implicit", DicomBytes.dataSet(Encoding.IMPLICIT_LE).str(MODALITY, "CS", "CT")
                            .header(PATIENT_ID, "LO", huge).raw(new byte[16]).bytes(), "value length 4294967280 exceeds"),
                    Arguments.of("explicit SQ", DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                            .header(REFERENCED_SERIES_SEQUENCE, "SQ", huge).raw(new byte[16]).bytes(), "value length 4294967280 exceeds"),
                    Arguments.of("item", DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                            .header(REFERENCED_SERIES_SEQUENCE, "SQ", DicomBytes.UNDEFINED_LENGTH).tag(ITEM).u32(huge)
                            .raw(new byte[16]).bytes(), "item length 4294967280 exceeds"),
                    Arguments.of("fragment", image(DicomBytes.part10(DicomBytes.RLE), 2, 2, 1, 8, 0)
                            .header(PIXEL_DATA, "OB", DicomBytes.UNDEFINED_LENGTH).tag(ITEM).u32(0).tag(ITEM).u32(huge)
                            .raw(new byte[16]).bytes(), "fragment length 4294967280 exceeds"));
        }

        @ParameterizedTest(name = "{0}")
        @MethodSource("hugeLengths")
        void lengthOf0xFFFFFFF0(String where, byte[] b, String message) {
            assertMessage(fails(b), message);
        }

        @Test
        void emptyFile() {
            DicomFormatException e = fails(new byte[0]);
            assertEquals(0, e.offset());
            assertMessage(e, "empty file");
        }

        @Test
        void threeByteFile() {
            DicomFormatException e = fails(new byte[]{8, 0, 0x60});
            assertMessage(e, "too short", "3 bytes");
        }

        @Test
        void partOfAnElementAfterTheFileMeta() {
            byte[] b = DicomBytes.part10(DicomBytes.EXPLICIT_LE).raw((byte) 8, (byte) 0, (byte) 0x60).bytes();
            assertMessage(fails(b), "too short");
        }

        @Test
        void undefinedLengthInTheFileMeta() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE).header(0x00020001, "OB", DicomBytes.UNDEFINED_LENGTH)
                    .str(MODALITY, "CS", "CT").bytes();
            DicomFormatException e = fails(b);
            assertEquals(0x00020001, e.tag());
            assertMessage(e, "undefined length in the File Meta Information");
        }

        @Test
        void undefinedLengthOnAnElementThatCannotHaveIt() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                    .header(PRIVATE_OB, "OB", DicomBytes.UNDEFINED_LENGTH).bytes();
            DicomFormatException e = fails(b);
            assertEquals(PRIVATE_OB, e.tag());
            assertMessage(e, "undefined length is not allowed for VR OB");
        }

        private byte[] deflatedFile() {
            return image(DicomBytes.part10(DicomBytes.DEFLATED_LE).str(MODALITY, "CS", "CT"), 32, 32, 1, 16, 0)
                    .rawElement(PIXEL_DATA, "OW", randomBytes(11, 2048)).bytes();
        }

        @Test
        void deflatedDataSetTruncated() throws Exception {
            byte[] full = deflatedFile();
            assertEquals(32, parse(full).header().rows(), "the untruncated file reads");
            int start = DicomBytes.part10(DicomBytes.DEFLATED_LE).dataSetStart();
            DicomFormatException e = fails(Arrays.copyOf(full, start + (full.length - start) / 2));
            assertMessage(e, "deflated data set is truncated");
        }

        @Test
        void deflatedDataSetCorrupt() {
            byte[] b = deflatedFile();
            int start = DicomBytes.part10(DicomBytes.DEFLATED_LE).dataSetStart();
            b[start] = 0x07; // BFINAL 1, BTYPE 11: a reserved block type (RFC 1951 3.2.3)
            DicomFormatException e = fails(b);
            assertEquals(start, e.offset());
            assertMessage(e, "deflated data set is corrupt");
        }

        @Test
        void deflatedDataSetThatIsNotADataSet() {
            DicomBytes meta = DicomBytes.part10(DicomBytes.DEFLATED_LE);
            byte[] head = Arrays.copyOf(meta.bytes(), meta.dataSetStart()); // without the (empty) deflated data set
            byte[] junk = DicomBytes.deflate(new byte[]{(byte) 0xFE, (byte) 0xFF, 0x00, (byte) 0xE0, 1, 2, 3});
            byte[] b = Arrays.copyOf(head, head.length + junk.length);
            System.arraycopy(junk, 0, b, head.length, junk.length);
            assertMessage(fails(b), "(inflated data set)");
        }

        @Test
        void pixelDataShorterThanTheImage() {
            DicomBytes d = image(DicomBytes.dataSet(Encoding.EXPLICIT_LE), 4, 4, 2, 16, 0);
            int at = d.position() + 12;
            DicomFormatException e = fails(d.rawElement(PIXEL_DATA, "OW", randomBytes(1, 62)).bytes());
            assertEquals(PIXEL_DATA, e.tag());
            assertEquals(at, e.offset());
            assertMessage(e, "62 bytes", "need 64");
        }

        @ParameterizedTest
        @ValueSource(strings = {"0,4", "4,0", "0,0"})
        void rowsOrColumnsZeroWithPixelData(String size) {
            String[] rc = size.split(",");
            byte[] b = image(DicomBytes.dataSet(Encoding.EXPLICIT_LE), Integer.parseInt(rc[0]), Integer.parseInt(rc[1]), 1, 8, 0)
                    .rawElement(PIXEL_DATA, "OB", randomBytes(2, 16)).bytes();
            DicomFormatException e = fails(b);
            assertEquals(ROWS, e.tag());
            assertMessage(e, "Rows", "Columns", rc[0] + " x " + rc[1]);
        }

        @Test
        void bitsStoredGreaterThanBitsAllocated() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .us(SAMPLES_PER_PIXEL, 1).us(ROWS, 2).us(COLUMNS, 2)
                    .us(BITS_ALLOCATED, 16).us(BITS_STORED, 17).us(HIGH_BIT, 16).us(PIXEL_REPRESENTATION, 0)
                    .rawElement(PIXEL_DATA, "OW", randomBytes(3, 8)).bytes();
            DicomFormatException e = fails(b);
            assertEquals(BITS_STORED, e.tag());
            assertMessage(e, "Bits Stored 17 outside 1..16");
        }

        @Test
        void highBitOutsideBitsAllocated() {
            byte[] b = DicomBytes.dataSet(Encoding.EXPLICIT_LE)
                    .us(SAMPLES_PER_PIXEL, 1).us(ROWS, 2).us(COLUMNS, 2)
                    .us(BITS_ALLOCATED, 16).us(BITS_STORED, 12).us(HIGH_BIT, 16).us(PIXEL_REPRESENTATION, 0)
                    .rawElement(PIXEL_DATA, "OW", randomBytes(3, 8)).bytes();
            assertEquals(HIGH_BIT, fails(b).tag());
        }
    }

    // ================================================================================================
    @Nested
    class PixelDataTests {
        @Test
        void nativeLittleEndianIsZeroCopy() throws Exception {
            int rows = 5, columns = 7, frames = 2;
            byte[] pixels = randomBytes(21, rows * columns * frames * 2);
            byte[] b = image(DicomBytes.part10(DicomBytes.EXPLICIT_LE), rows, columns, frames, 16, 1)
                    .rawElement(PIXEL_DATA, "OW", pixels).bytes();
            PixelData px = DicomFile.parse(b, NAME).pixelData();
            assertTrue(px.zeroCopy());
            assertSame(b, px.bytes().heapBase().orElseThrow(), "a view of the caller's bytes");
            assertArrayEquals(pixels, bytes(px.bytes()));
            assertEquals(frames, px.frames());
            assertArrayEquals(Arrays.copyOfRange(pixels, 70, 140), bytes(px.frame(1)));
        }

        @ParameterizedTest
        @EnumSource(Encoding.class)
        void nativePixelsInEveryByteOrder(Encoding enc) throws Exception {
            // PS3.5 7.3: OW values are 16-bit words in the data set's byte order; the decoded layout is little endian.
            int rows = 9, columns = 11;
            SplittableRandom rnd = new SplittableRandom(22);
            short[] words = new short[rows * columns];
            for (int i = 0; i < words.length; i++) words[i] = (short) rnd.nextInt(-32768, 32768);
            byte[] b = image(DicomBytes.dataSet(enc), rows, columns, 1, 16, 1).ow(PIXEL_DATA, words).bytes();
            PixelData px = parse(b).pixelData();
            ByteBuffer expected = ByteBuffer.allocate(2 * words.length).order(ByteOrder.LITTLE_ENDIAN);
            for (short w : words) expected.putShort(w);
            assertArrayEquals(expected.array(), bytes(px.bytes()));
            assertEquals(enc != Encoding.EXPLICIT_BE, px.zeroCopy());
        }

        @Test
        void bigEndian8BitIsNotSwapped() throws Exception {
            byte[] pixels = randomBytes(23, 3 * 5);
            byte[] b = image(DicomBytes.part10(DicomBytes.EXPLICIT_BE), 3, 5, 1, 8, 0).ob(PIXEL_DATA, pixels).bytes();
            assertArrayEquals(pixels, Arrays.copyOf(bytes(parse(b).pixelData().bytes()), 15));
        }

        @Test
        void deflatedRoundTrip() throws Exception {
            // PS3.5 A.5: everything after the File Meta is a raw deflate stream (no zlib header).
            int rows = 16, columns = 12;
            SplittableRandom rnd = new SplittableRandom(24);
            ByteBuffer px16 = ByteBuffer.allocate(rows * columns * 2).order(ByteOrder.LITTLE_ENDIAN);
            while (px16.hasRemaining()) px16.putShort((short) rnd.nextInt(-64, 64)); // compressible, never all zeros
            byte[] pixels = px16.array();
            DicomBytes d = image(DicomBytes.part10(DicomBytes.DEFLATED_LE).str(MODALITY, "CS", "CT")
                    .sequence(REFERENCED_SERIES_SEQUENCE, false).item(true).str(SERIES_INSTANCE_UID, "UI", "1.2").end().end(),
                    rows, columns, 1, 16, 1).ds(RESCALE_INTERCEPT, "-1024").ds(RESCALE_SLOPE, "1");
            byte[] b = d.rawElement(PIXEL_DATA, "OW", pixels).bytes();
            assertTrue(b.length < d.position(), "the data set was compressed");
            DicomFile f = parse(b);
            assertEquals(TransferSyntax.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, f.transferSyntax());
            assertEquals("1.2", f.dataSet().sequence(REFERENCED_SERIES_SEQUENCE).getFirst().string(SERIES_INSTANCE_UID));
            ImageHeader h = f.header();
            assertEquals(rows, h.rows());
            assertEquals(-1024, h.rescaleIntercept());
            PixelData px = f.pixelData();
            assertFalse(px.zeroCopy());
            assertArrayEquals(pixels, bytes(px.bytes()));
        }

        // ---- encapsulated (PS3.5 A.4), with RLE frames (Annex G) ----

        private static final int ROWS_N = 7, COLUMNS_N = 9, FRAMES = 3;

        /** Native 16-bit signed frames, and their RLE codestreams each split into two fragments at an even byte. */
        private record Frames(byte[] nativeLe, byte[][] fragments) {}

        private static Frames rleFrames(long seed) {
            SplittableRandom rnd = new SplittableRandom(seed);
            int n = ROWS_N * COLUMNS_N;
            ByteBuffer nat = ByteBuffer.allocate(FRAMES * n * 2).order(ByteOrder.LITTLE_ENDIAN);
            byte[][] fragments = new byte[2 * FRAMES][];
            for (int f = 0; f < FRAMES; f++) {
                int start = nat.position();
                for (int i = 0; i < n; i++) nat.putShort((short) (rnd.nextInt(4) == 0 ? -1024 : rnd.nextInt(-1000, 2000)));
                byte[] frame = RleDecoderTest.encodeFrame(Arrays.copyOfRange(nat.array(), start, start + 2 * n), n, 1, 2);
                int cut = (frame.length / 2) & ~1;
                fragments[2 * f] = Arrays.copyOf(frame, cut);
                fragments[2 * f + 1] = Arrays.copyOfRange(frame, cut, frame.length);
            }
            return new Frames(nat.array(), fragments);
        }

        private static DicomBytes rleImage(int frames) {
            return image(DicomBytes.part10(DicomBytes.RLE), ROWS_N, COLUMNS_N, frames, 16, 1);
        }

        private static byte[][] joinPairs(byte[][] fragments) {
            byte[][] out = new byte[fragments.length / 2][];
            for (int i = 0; i < out.length; i++) {
                byte[] a = fragments[2 * i], b = fragments[2 * i + 1];
                out[i] = Arrays.copyOf(a, a.length + b.length);
                System.arraycopy(b, 0, out[i], a.length, b.length);
            }
            return out;
        }

        @Test
        void multiFrameWithBasicOffsetTable() throws Exception {
            Frames fr = rleFrames(31);
            long[] offsets = DicomBytes.fragmentOffsets(fr.fragments);
            int[] bot = {(int) offsets[0], (int) offsets[2], (int) offsets[4]};
            byte[] b = rleImage(FRAMES).encapsulatedPixelData(bot, fr.fragments).bytes();
            DicomFile f = parse(b);
            assertEquals(6, f.dataSet().fragments(PIXEL_DATA).count());
            PixelData px = f.pixelData();
            assertFalse(px.zeroCopy());
            assertArrayEquals(fr.nativeLe, bytes(px.bytes()));
        }

        @Test
        void multiFrameWithoutOffsetTableOneFragmentPerFrame() throws Exception {
            Frames fr = rleFrames(32);
            byte[] b = rleImage(FRAMES).encapsulatedPixelData(new int[0], joinPairs(fr.fragments)).bytes();
            assertArrayEquals(fr.nativeLe, bytes(parse(b).pixelData().bytes()));
        }

        @Test
        void multiFrameWithExtendedOffsetTable() throws Exception {
            // PS3.5 A.4: (7FE0,0001) Extended Offset Table and (7FE0,0002) its lengths, with an empty Basic Offset Table.
            Frames fr = rleFrames(33);
            long[] offsets = DicomBytes.fragmentOffsets(fr.fragments);
            long[] lengths = new long[FRAMES];
            for (int i = 0; i < FRAMES; i++) lengths[i] = fr.fragments[2 * i].length + fr.fragments[2 * i + 1].length;
            byte[] b = rleImage(FRAMES).ov(EXTENDED_OFFSET_TABLE, offsets[0], offsets[2], offsets[4])
                    .ov(EXTENDED_OFFSET_TABLE_LENGTHS, lengths)
                    .encapsulatedPixelData(new int[0], fr.fragments).bytes();
            assertArrayEquals(fr.nativeLe, bytes(parse(b).pixelData().bytes()));

            // Without the table the six fragments cannot be assigned to the three frames.
            byte[] none = rleImage(FRAMES).encapsulatedPixelData(new int[0], fr.fragments).bytes();
            DicomFormatException e = fails(none);
            assertEquals(PIXEL_DATA, e.tag());
            assertMessage(e, "cannot tell which of 6 fragments belong to which of 3 frames");
        }

        @Test
        void singleFrameInSeveralFragments() throws Exception {
            Frames fr = rleFrames(34);
            byte[] b = rleImage(1).encapsulatedPixelData(new int[]{0}, fr.fragments[0], fr.fragments[1]).bytes();
            assertArrayEquals(Arrays.copyOf(fr.nativeLe, 2 * ROWS_N * COLUMNS_N), bytes(parse(b).pixelData().bytes()));
        }

        @Test
        void wrongBasicOffsetTableEntry() {
            Frames fr = rleFrames(35);
            long[] offsets = DicomBytes.fragmentOffsets(fr.fragments);
            DicomBytes d = rleImage(FRAMES);
            long botValue = d.position() + 12 + 8;
            byte[] b = d.encapsulatedPixelData(new int[]{0, (int) offsets[2] + 2, (int) offsets[4]}, fr.fragments).bytes();
            DicomFormatException e = fails(b);
            assertEquals(PIXEL_DATA, e.tag());
            assertEquals(botValue, e.offset(), "points at the Basic Offset Table");
            assertMessage(e, "offset table entry 1 (" + (offsets[2] + 2) + ") does not point at a fragment");
        }

        @Test
        void basicOffsetTableOutOfOrder() {
            Frames fr = rleFrames(36);
            long[] offsets = DicomBytes.fragmentOffsets(fr.fragments);
            byte[] b = rleImage(FRAMES).encapsulatedPixelData(new int[]{0, (int) offsets[4], (int) offsets[2]}, fr.fragments).bytes();
            assertMessage(fails(b), "offset table entry 2");
        }

        @Test
        void basicOffsetTableWithTooFewEntries() {
            Frames fr = rleFrames(37);
            long[] offsets = DicomBytes.fragmentOffsets(fr.fragments);
            byte[] b = rleImage(FRAMES).encapsulatedPixelData(new int[]{0, (int) offsets[2]}, fr.fragments).bytes();
            assertMessage(fails(b), "Basic Offset Table has 2 entries for 3 frames");
        }

        @Test
        void moreFramesThanFragments() {
            Frames fr = rleFrames(38);
            byte[] b = rleImage(FRAMES).encapsulatedPixelData(new int[0], joinPairs(fr.fragments)[0], joinPairs(fr.fragments)[1]).bytes();
            DicomFormatException e = fails(b);
            assertEquals(PIXEL_DATA, e.tag());
            assertMessage(e, "Number of Frames is 3 but there are only 2 fragments");
        }

        @Test
        void corruptRleFrameNamesTheFrame() {
            Frames fr = rleFrames(39);
            byte[][] frames = joinPairs(fr.fragments);
            frames[1] = Arrays.copyOf(frames[1], 64 + 4); // the segments of frame 2 cut off
            byte[] b = rleImage(FRAMES).encapsulatedPixelData(new int[0], frames).bytes();
            DicomFormatException e = fails(b);
            assertEquals(PIXEL_DATA, e.tag());
            assertMessage(e, "frame 2 of 3", "RLE");
        }

        @Test
        void encapsulatedPixelDataWithoutSequenceDelimiter() {
            byte[] b = rleImage(1).header(PIXEL_DATA, "OB", DicomBytes.UNDEFINED_LENGTH).tag(ITEM).u32(0)
                    .tag(ITEM).u32(4).raw(new byte[4]).bytes();
            DicomFormatException e = fails(b);
            assertEquals(PIXEL_DATA, e.tag());
            assertMessage(e, "not closed by (FFFE,E0DD)");
        }

        @Test
        void unknownTransferSyntaxReadsTheHeaderButNotThePixels() throws Exception {
            // PS3.5 A.4: a syntax this reader does not know still encodes the data set as Explicit VR Little Endian.
            String uid = "1.2.826.0.1.3680043.9999.1";
            byte[] b = image(DicomBytes.part10(uid).str(MODALITY, "CS", "CT"), 4, 0x0102, 1, 8, 0)
                    .rawElement(PIXEL_DATA, "OB", randomBytes(41, 4 * 258)).bytes();
            DicomFile f = parse(b);
            assertNull(f.transferSyntax());
            assertEquals(uid, f.transferSyntaxUid());
            assertEquals(258, f.header().columns());
            assertEquals("CT", f.header().modality());
            UnsupportedTransferSyntaxException e = assertThrows(UnsupportedTransferSyntaxException.class, f::pixelData);
            assertEquals(uid, e.uid());
            assertMessage(e, NAME, uid);

            // Encapsulated pixel data of an unknown syntax: the same.
            byte[] enc = image(DicomBytes.part10(uid), 2, 2, 1, 8, 0).encapsulatedPixelData(new int[0], randomBytes(42, 10)).bytes();
            e = assertThrows(UnsupportedTransferSyntaxException.class, () -> parse(enc).pixelData());
            assertMessage(e, uid);
        }

        @Test
        void jpegLsCodestreamErrorsNameTheFileAndFrame() throws Exception {
            // SOI, SOF55 (2 x 2, 8 bits, 1 component), then EOI without a scan.
            byte[] codestream = {(byte) 0xFF, (byte) 0xD8, (byte) 0xFF, (byte) 0xF7, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0, (byte) 0xFF, (byte) 0xD9};
            byte[] b = image(DicomBytes.part10(DicomBytes.JPEG_LS), 2, 2, 1, 8, 0).encapsulatedPixelData(new int[]{0}, codestream).bytes();
            DicomFile f = parse(b);
            assertEquals(TransferSyntax.JPEG_LS_LOSSLESS, f.transferSyntax());
            assertEquals(2, f.header().rows());
            DicomFormatException e = assertThrows(DicomFormatException.class, f::pixelData);
            assertEquals(PIXEL_DATA, e.tag());
            assertMessage(e, NAME, "frame 1 of 1", "JPEG-LS: EOI (FFD9) before any scan");
        }

        @Test
        void encapsulatedUncompressedFramesAreTheirFragments() throws Exception {
            // PS3.5 A.4.11: one native frame per fragment, with a Basic Offset Table here (offsets 0 and 12 + 8).
            String uid = "1.2.840.10008.1.2.1.98";
            byte[] frame1 = randomBytes(44, 12), frame2 = randomBytes(45, 12);
            byte[] b = image(DicomBytes.part10(uid), 2, 3, 2, 16, 1).encapsulatedPixelData(new int[]{0, 20}, frame1, frame2).bytes();
            DicomFile f = parse(b);
            assertEquals(TransferSyntax.ENCAPSULATED_UNCOMPRESSED, f.transferSyntax());
            PixelData px = f.pixelData();
            assertArrayEquals(frame1, bytes(px.frame(0)));
            assertArrayEquals(frame2, bytes(px.frame(1)));

            byte[] shortFrame = image(DicomBytes.part10(uid), 2, 3, 2, 16, 1).encapsulatedPixelData(new int[]{0, 20}, frame1, new byte[4]).bytes();
            DicomFormatException e = assertThrows(DicomFormatException.class, () -> parse(shortFrame).pixelData());
            assertMessage(e, NAME, "frame 2 of 2", "the fragment holds 4 bytes, a frame needs 12");
        }

        @Test
        void htj2kIsUnsupported() throws Exception {
            String htj2k = "1.2.840.10008.1.2.4.201";
            byte[] b = image(DicomBytes.part10(htj2k), 2, 2, 1, 8, 0).encapsulatedPixelData(new int[]{0}, randomBytes(43, 16)).bytes();
            DicomFile f = parse(b);
            assertEquals(TransferSyntax.HTJ2K_LOSSLESS, f.transferSyntax());
            assertEquals(2, f.header().rows());
            UnsupportedTransferSyntaxException e = assertThrows(UnsupportedTransferSyntaxException.class, f::pixelData);
            assertEquals(htj2k, e.uid());
            assertMessage(e, NAME, htj2k, "High-Throughput JPEG 2000");
        }

        @Test
        void encapsulatedPixelDataInANativeSyntax() {
            byte[] b = image(DicomBytes.part10(DicomBytes.EXPLICIT_LE), 2, 2, 1, 8, 0)
                    .encapsulatedPixelData(new int[0], randomBytes(43, 4)).bytes();
            assertMessage(fails(b), "encapsulated Pixel Data in Explicit VR Little Endian");
        }

        @Test
        void nativePixelDataInAnEncapsulatedSyntax() {
            byte[] b = image(DicomBytes.part10(DicomBytes.RLE), 2, 2, 1, 8, 0).rawElement(PIXEL_DATA, "OB", randomBytes(44, 4)).bytes();
            assertMessage(fails(b), "requires encapsulated (undefined length) Pixel Data");
        }
    }

    // ================================================================================================
    @Nested
    class OpenFromDisk {
        @TempDir
        Path dir;

        private Path write(String name, byte[] b) throws IOException {
            Path p = dir.resolve(name);
            Files.write(p, b);
            return p;
        }

        @Test
        void headerLargerThanTheProbe() throws Exception {
            // A 40 KB private element before Pixel Data: the 16 KB header probe cannot hold the header.
            int rows = 64, columns = 48;
            byte[] blob = randomBytes(51, 40 * 1024);
            byte[] pixels = randomBytes(52, rows * columns * 2);
            byte[] b = image(DicomBytes.part10(DicomBytes.EXPLICIT_LE).str(MODALITY, "CS", "CT")
                            .str(PRIVATE_CREATOR, "LO", "ICH TEST").ob(PRIVATE_OB, blob).str(PATIENT_ID, "LO", "BIG"),
                    rows, columns, 1, 16, 1).ds(RESCALE_INTERCEPT, "-1024").ds(RESCALE_SLOPE, "1")
                    .rawElement(PIXEL_DATA, "OW", pixels).bytes();
            Path p = write("big-header.dcm", b);
            try (DicomFile f = DicomFile.open(p)) {
                ImageHeader h = f.header();
                assertEquals("BIG", h.patientId());
                assertEquals(rows, h.rows());
                assertEquals(columns, h.columns());
                assertEquals(-1024, h.rescaleIntercept());
                assertEquals(blob.length, f.dataSet().length(PRIVATE_OB));
                PixelData px = f.pixelData();
                assertArrayEquals(pixels, bytes(px.bytes()));
                assertTrue(px.zeroCopy());
                assertTrue(px.bytes().isMapped(), "a view of the mapped file");
                assertArrayEquals(blob, bytes(f.dataSet().value(PRIVATE_OB)));
            }
        }

        @Test
        void headerReadFromTheProbeThenPixelsMapped() throws Exception {
            int rows = 128, columns = 128;
            byte[] pixels = randomBytes(53, rows * columns * 2);
            byte[] b = image(DicomBytes.part10(DicomBytes.EXPLICIT_LE).str(MODALITY, "CS", "CT"),
                    rows, columns, 1, 16, 0).rawElement(PIXEL_DATA, "OW", pixels).bytes();
            Path p = write("probe.dcm", b);
            try (DicomFile f = DicomFile.open(p)) {
                assertEquals(rows, f.header().rows());
                assertNull(f.dataSet().value(PIXEL_DATA), "only the header was read");
                assertEquals(pixels.length, f.dataSet().length(PIXEL_DATA));
                PixelData px = f.pixelData();
                assertTrue(px.bytes().isMapped());
                assertArrayEquals(pixels, bytes(px.bytes()));
                assertArrayEquals(pixels, bytes(f.dataSet().value(PIXEL_DATA)));
            }
        }

        @Test
        void deflatedFile() throws Exception {
            byte[] pixels = randomBytes(54, 200 * 200); // incompressible: the file is larger than the header probe
            byte[] b = image(DicomBytes.part10(DicomBytes.DEFLATED_LE), 200, 200, 1, 8, 0).ob(PIXEL_DATA, pixels).bytes();
            assertTrue(b.length > 16 * 1024);
            try (DicomFile f = DicomFile.open(write("deflated.dcm", b))) {
                assertEquals(200, f.header().rows());
                assertArrayEquals(pixels, bytes(f.pixelData().bytes()));
            }
        }

        /** Cut inside the Pixel Data value: small files are read whole, larger ones first through the 16 KB probe. */
        @ParameterizedTest
        @ValueSource(ints = {32, 128, 256})
        void truncatedInsidePixelData(int size) throws Exception {
            DicomBytes d = image(DicomBytes.part10(DicomBytes.EXPLICIT_LE).str(MODALITY, "CS", "CT"), size, size, 1, 16, 0);
            int at = d.position();
            byte[] full = d.rawElement(PIXEL_DATA, "OW", randomBytes(55, size * size * 2)).bytes();
            byte[] cut = Arrays.copyOf(full, at + 12 + size * size);
            Path p = write("truncated-" + size + ".dcm", cut);

            DicomFormatException e = assertThrows(DicomFormatException.class, () -> DicomFile.open(p).close());
            assertEquals(PIXEL_DATA, e.tag());
            assertEquals(at, e.offset());
            assertMessage(e, p.toString(), "(7FE0,0010)", "value length " + size * size * 2);

            e = assertThrows(DicomFormatException.class, () -> DicomFile.parse(cut, NAME));
            assertEquals(PIXEL_DATA, e.tag());
            assertEquals(at, e.offset());
            assertMessage(e, NAME, "(7FE0,0010)", "value length " + size * size * 2);
        }

        @Test
        void emptyAndTinyFiles() throws Exception {
            Path empty = write("empty.dcm", new byte[0]);
            DicomFormatException e = assertThrows(DicomFormatException.class, () -> DicomFile.open(empty).close());
            assertMessage(e, empty.toString(), "empty file");
            Path tiny = write("tiny.dcm", new byte[]{8, 0, 0x60});
            e = assertThrows(DicomFormatException.class, () -> DicomFile.open(tiny).close());
            assertMessage(e, tiny.toString(), "3 bytes");
        }
    }
}
