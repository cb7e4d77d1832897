package ich.dicom.codec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import ich.dicom.SampleCorpus;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JpegDctDecoderTest {

    /** A file of the real sample corpus; the test skips, with the reason, where the corpus is absent. */
    private static byte[] corpusFile(String name) throws IOException {
        SampleCorpus.assumePresent();
        return Files.readAllBytes(SampleCorpus.file(name));
    }

    private static final String CT_12BIT = "CTImage.dcm_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm";

    /**
     * Expected hashes are {@code ground_truth.decoded_pixel_data.dcmtk.sha256} from
     * ../shared/dicom-samples/manifest.json: SHA-256 of the Pixel Data decoded by DCMTK 3.6.7
     * {@code dcmdjpeg} (IJG libjpeg 6b, integer slow IDCT), written as 16-bit little-endian values
     * for Bits Allocated 16 or as bytes for Bits Allocated 8, all frames concatenated.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "CTImage.dcm_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm, 512, 512, 1, 12, "
                + "85e3b617e00dc755e55971bfe8770210f17d4909b17db5d71d2617e22254b3b9",
        "JPGExtended.dcm, 256, 1024, 1, 12, "
                + "d30242775a414c01d616447854ebe3f2b20259822894bcd6891f879bcdcbf313",
        "CT0012.fragmented_no_bot_jpeg_baseline.51.dcm, 512, 512, 2, 12, "
                + "a62ceec7a17af3ceae9deb9f93b71437e52a6ab04897266acaade66ea8cd6987",
        "CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm, 512, 512, 1, 8, "
                + "61a9117dd2cb9f8a5b3c5f2add07fe3ccb8fb4dda4228db9c2a1c1e6b23e1641",
    })
    void decodesBitExactWithDcmtk(String file, int width, int height, int frameCount, int precision,
            String expectedSha256) throws Exception {
        List<byte[]> frames = jpegFrames(corpusFile(file));
        assertEquals(frameCount, frames.size(), "frame count");
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (byte[] frame : frames) {
            JpegDctDecoder.Image image = JpegDctDecoder.decode(frame, 0, frame.length);
            assertEquals(width, image.width());
            assertEquals(height, image.height());
            assertEquals(1, image.components());
            assertEquals(precision, image.precision());
            assertEquals(width * height, image.samples().length);
            sha.update(pixelBytes(image));
        }
        assertEquals(expectedSha256, HexFormat.of().formatHex(sha.digest()));
    }

    @Test
    void decodesCodestreamAtNonZeroOffset() throws Exception {
        byte[] frame = jpegFrames(corpusFile(CT_12BIT)).get(0);
        byte[] padded = new byte[frame.length + 37];
        System.arraycopy(frame, 0, padded, 17, frame.length);
        JpegDctDecoder.Image a = JpegDctDecoder.decode(frame, 0, frame.length);
        JpegDctDecoder.Image b = JpegDctDecoder.decode(padded, 17, frame.length);
        assertTrue(Arrays.equals(a.samples(), b.samples()));
    }

    @Test
    void truncatedInputThrowsIOException() throws Exception {
        byte[] frame = jpegFrames(corpusFile(CT_12BIT)).get(0);
        for (int cut : new int[] {0, 1, 2, 3, 10, 100, 300, 600, frame.length / 3, frame.length / 2,
                frame.length - 100}) {
            IOException e = assertThrows(IOException.class, () -> JpegDctDecoder.decode(frame, 0, cut),
                    "truncated to " + cut + " bytes");
            assertMessage(e);
        }
    }

    @Test
    void garbageInputThrowsIOException() {
        Random random = new Random(42);
        for (int i = 0; i < 50; i++) {
            byte[] junk = new byte[1 + random.nextInt(4000)];
            random.nextBytes(junk);
            if (i % 2 == 0 && junk.length >= 2) { // looks like a JPEG for the first two bytes only
                junk[0] = (byte) 0xFF;
                junk[1] = (byte) 0xD8;
            }
            IOException e = assertThrows(IOException.class, () -> JpegDctDecoder.decode(junk, 0, junk.length));
            assertMessage(e);
        }
        assertMessage(assertThrows(IOException.class, () -> JpegDctDecoder.decode(new byte[0], 0, 0)));
    }

    @Test
    void corruptedCodestreamsFailCleanly() throws Exception {
        byte[] frame = jpegFrames(corpusFile(CT_12BIT)).get(0);
        Random random = new Random(7);
        for (int i = 0; i < 300; i++) {
            byte[] damaged = frame.clone();
            for (int k = 0; k < 4; k++) {
                int at = random.nextInt(i % 2 == 0 ? Math.min(700, damaged.length) : damaged.length);
                damaged[at] = (byte) random.nextInt(256);
            }
            try {
                JpegDctDecoder.Image image = JpegDctDecoder.decode(damaged, 0, damaged.length);
                assertNotNull(image.samples());
            } catch (IOException e) {
                assertMessage(e);
            }
        }
    }

    @Test
    void rejectsOtherProcessesNamingTheSofMarker() {
        for (int[] sof : new int[][] {{0xC2, 2}, {0xC3, 3}, {0xC9, 9}}) {
            byte[] stream = {
                (byte) 0xFF, (byte) 0xD8, (byte) 0xFF, (byte) sof[0], 0, 11, 12, 0, 8, 0, 8, 1, 1, 0x11, 0,
                (byte) 0xFF, (byte) 0xD9,
            };
            IOException e = assertThrows(IOException.class, () -> JpegDctDecoder.decode(stream, 0, stream.length));
            assertTrue(e.getMessage().contains("SOF" + sof[1]), e.getMessage());
        }
    }

    @Test
    void rejectsHugeDimensionsBeforeAllocating() {
        // SOF1 declaring 65500 x 65500 x 3 samples
        byte[] stream = {
            (byte) 0xFF, (byte) 0xD8, (byte) 0xFF, (byte) 0xC1, 0, 17, 12, (byte) 0xFF, (byte) 0xDC,
            (byte) 0xFF, (byte) 0xDC, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, (byte) 0xFF, (byte) 0xD9,
        };
        IOException e = assertThrows(IOException.class, () -> JpegDctDecoder.decode(stream, 0, stream.length));
        assertTrue(e.getMessage().contains("too large"), e.getMessage());
    }

    private static void assertMessage(IOException e) {
        assertNotNull(e.getMessage());
        assertFalse(e.getMessage().isBlank());
        assertTrue(e.getMessage().contains("offset"), e.getMessage());
    }

    /** Pixel values as hashed in the manifest: bytes for 8-bit data, 16-bit little-endian otherwise. */
    private static byte[] pixelBytes(JpegDctDecoder.Image image) {
        short[] s = image.samples();
        if (image.precision() == 8) {
            byte[] b = new byte[s.length];
            for (int i = 0; i < s.length; i++) {
                b[i] = (byte) s[i];
            }
            return b;
        }
        byte[] b = new byte[s.length * 2];
        for (int i = 0; i < s.length; i++) {
            b[2 * i] = (byte) s[i];
            b[2 * i + 1] = (byte) (s[i] >> 8);
        }
        return b;
    }

    /**
     * Minimal extraction of encapsulated Pixel Data: finds the last (7FE0,0010) element with
     * undefined length (explicit or implicit VR little endian), skips the Basic Offset Table item,
     * and joins fragments into frames; a fragment starting with SOI (FFD8) starts a new frame.
     */
    private static List<byte[]> jpegFrames(byte[] file) {
        int p = -1;
        for (int i = file.length - 12; i >= 0 && p < 0; i--) {
            if (file[i] == (byte) 0xE0 && file[i + 1] == 0x7F && file[i + 2] == 0x10 && file[i + 3] == 0) {
                if (file[i + 4] == 'O' && (file[i + 5] == 'B' || file[i + 5] == 'W') && u32(file, i + 8) == 0xFFFFFFFFL) {
                    p = i + 12;
                } else if (u32(file, i + 4) == 0xFFFFFFFFL) {
                    p = i + 8;
                }
            }
        }
        if (p < 0) {
            throw new IllegalStateException("no encapsulated Pixel Data found");
        }
        List<byte[]> frames = new ArrayList<>();
        ByteArrayOutputStream current = null;
        boolean offsetTable = true;
        for (;;) {
            int group = u16(file, p);
            int element = u16(file, p + 2);
            int length = (int) u32(file, p + 4);
            p += 8;
            if (group == 0xFFFE && element == 0xE0DD) {
                break; // sequence delimiter
            }
            if (group != 0xFFFE || element != 0xE000) {
                throw new IllegalStateException("unexpected element in encapsulated Pixel Data");
            }
            if (offsetTable) {
                offsetTable = false;
            } else {
                if (length >= 2 && file[p] == (byte) 0xFF && file[p + 1] == (byte) 0xD8) {
                    if (current != null) {
                        frames.add(current.toByteArray());
                    }
                    current = new ByteArrayOutputStream();
                }
                if (current == null) {
                    throw new IllegalStateException("first fragment does not start with SOI");
                }
                current.write(file, p, length);
            }
            p += length;
        }
        if (current != null) {
            frames.add(current.toByteArray());
        }
        return frames;
    }

    private static int u16(byte[] b, int p) {
        return (b[p] & 0xFF) | (b[p + 1] & 0xFF) << 8;
    }

    private static long u32(byte[] b, int p) {
        return (b[p] & 0xFFL) | (b[p + 1] & 0xFFL) << 8 | (b[p + 2] & 0xFFL) << 16 | (b[p + 3] & 0xFFL) << 24;
    }
}
