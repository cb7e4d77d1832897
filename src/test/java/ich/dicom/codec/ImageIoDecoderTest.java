package ich.dicom.codec;

import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.Tag;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class ImageIoDecoderTest {
    /**
     * A fuzzer finding: a mutation of the sample corpus's 693_J2KI.dcm (neurolabusc/dcm_qa_ct, BSD-2-Clause)
     * on which JJ2000 loops forever reading a packet header. The watchdog must turn it into a clear error.
     */
    @Test
    void endlessJpeg2000DecodeBecomesAClearError() throws Exception {
        byte[] data = Files.readAllBytes(Path.of("src/test/resources/ich/dicom/DicomReaderFuzzTestInputs/read/finding-jpeg2000-endless-packet-header"));
        DicomFile f = DicomFile.parse(data, "endless.dcm");
        long t0 = System.nanoTime();
        DicomFormatException e = assertThrows(DicomFormatException.class, f::pixelData);
        assertEquals(Tag.PIXEL_DATA, e.tag());
        assertTrue(e.getMessage().contains("endless.dcm") && e.getMessage().contains("did not finish"), e.getMessage());
        assertTrue(System.nanoTime() - t0 < 60_000_000_000L, "returned within a minute");
    }

    @Test
    void garbageCodestreamsAreIOExceptions() {
        byte[] notJ2k = new byte[64];
        for (int i = 0; i < notJ2k.length; i++) notJ2k[i] = (byte) (i * 37);
        assertThrows(java.io.IOException.class, () -> ImageIoDecoder.decodeJpeg2000(notJ2k, 64));
        assertThrows(java.io.IOException.class, () -> ImageIoDecoder.decodeJpeg(notJ2k));
    }
}
