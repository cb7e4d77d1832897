package ich.synth;

import ich.dicom.CtImage;
import ich.dicom.DicomFile;
import ich.dicom.DicomWriter;
import ich.dicom.TransferSyntax;
import ich.hu.HounsfieldTransform;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.*;

/** Every HU value through each encoding, a DICOM file and our reader with the RSNA fix on: back unchanged where representable. */
class PixelEncodingTest {
    @ParameterizedTest
    @EnumSource(PixelEncoding.class)
    void everyHounsfieldValueComesBack(PixelEncoding encoding) throws Exception {
        int from = -2100, to = 3200, n = to - from + 1;
        short[] hu = new short[n];
        for (int i = 0; i < n; i++) hu[i] = (short) (from + i);
        byte[] words = new byte[2 * n];
        SliceRenderer.encode(hu, encoding, words);
        for (int i = 0; i < n; i++) {
            int word = (words[2 * i] & 0xFF) | (words[2 * i + 1] & 0xFF) << 8;
            assertEquals(encoding.stored(hu[i]), word, "HU " + hu[i]);
            if (encoding.bitsStored == 12) assertEquals(0, word >>> 12, "12-bit words leave the high bits 0");
        }
        double intercept = encoding == PixelEncoding.UNSIGNED_12_MODULO ? 1 : -1024;
        CtImage image = new CtImage("1.2.3", "P", "1.2", "1.2.4", new double[3], new double[]{1, 0, 0, 0, 1, 0}, new double[]{1, 1},
                5, 1, 1, n, encoding.bitsStored, encoding.pixelRepresentation, new String[]{"40"}, new String[]{"80"}, intercept, 1, words);
        float[] back;
        try (DicomFile f = DicomFile.parse(DicomWriter.ctImage(image).toBytes(TransferSyntax.IMPLICIT_VR_LITTLE_ENDIAN), "encoding")) {
            back = HounsfieldTransform.of(f.header(), 0).apply(f.pixelData().frame(0));
        }
        for (int i = 0; i < n; i++) {
            int expected = hu[i] == PixelEncoding.OUTSIDE_HU && encoding.holdsOutside() ? hu[i] : encoding.representable(hu[i]);
            assertEquals(expected, back[i], "HU " + hu[i] + " through " + encoding);
        }
        assertEquals(-1000, back[-1000 - from], "air");
        if (encoding == PixelEncoding.UNSIGNED_12_MODULO) assertEquals(3096, encoding.stored(-1000), "air is stored as 3096");
    }
}
