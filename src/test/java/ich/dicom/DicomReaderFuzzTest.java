package ich.dicom;

import com.code_intelligence.jazzer.junit.FuzzTest;
import ich.hu.HounsfieldTransform;

/**
 * Coverage-guided fuzzing of the whole read path: parse, typed header, pixel decoding (every codec) and
 * HU conversion. The only acceptable failure is a {@link DicomFormatException}; any other exception, a hang
 * or running out of memory is a bug.
 *
 * <p>In the normal test run (CI) this replays the regression inputs in
 * {@code src/test/resources/ich/dicom/DicomReaderFuzzTestInputs/read/}: seeds and every finding so far.
 * {@code scripts/fuzz} runs the fuzzer itself for a given time.
 */
class DicomReaderFuzzTest {
    @FuzzTest(maxDuration = "30s")
    void read(byte[] data) {
        fuzzerTestOneInput(data);
    }

    /** Entry point for the standalone Jazzer driver used by scripts/fuzz. */
    public static void fuzzerTestOneInput(byte[] data) {
        try {
            DicomFile f = DicomFile.parse(data, "fuzz-input");
            ImageHeader h = f.header();
            if (!h.hasPixelData()) return;
            PixelData px = f.pixelData();
            if (h.bitsAllocated() == 1) return;
            StoredValues.of(h).range(px.bytes());
            if (h.samplesPerPixel() == 1) {
                for (int i = 0; i < px.frames(); i++) HounsfieldTransform.of(h, i).apply(px.frame(i));
            }
        } catch (DicomFormatException expected) {
            // A clear error for a bad file is the contract.
        }
    }
}
