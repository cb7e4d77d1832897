package ich.hu;

import com.fasterxml.jackson.databind.JsonNode;
import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.dicom.PixelData;
import ich.dicom.SampleCorpus;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Modality values of the real corpus against DCMTK ({@code dcm2pnm}, rescale or Modality LUT applied):
 * with the RSNA fix off our HU range must equal DCMTK's exactly.
 */
class HounsfieldCorpusTest {
    static List<String> names() { return SampleCorpus.names(); }

    @ParameterizedTest(name = "{0}")
    @MethodSource("names")
    void modalityRangeMatchesDcmtk(String name) throws Exception {
        SampleCorpus.assumePresent();
        JsonNode truth = SampleCorpus.entry(name).get("ground_truth");
        JsonNode decoded = truth.get("decoded_pixel_data");
        JsonNode dcmtk = decoded == null || decoded.isNull() ? null : decoded.get("dcmtk");
        assumeTrue(dcmtk != null && "ok".equals(dcmtk.path("status").asText())
                && dcmtk.path("modality_value_range").path("min").isNumber(), "skipped: no DCMTK modality range for " + name);
        try (DicomFile f = DicomFile.open(SampleCorpus.file(name))) {
            ImageHeader h = f.header();
            assumeTrue(h.samplesPerPixel() == 1 && !"PALETTE COLOR".equals(h.photometricInterpretation()), "skipped: not grey");
            PixelData px = f.pixelData();
            double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < px.frames(); i++) {
                HounsfieldTransform t = HounsfieldTransform.of(h, i, HounsfieldTransform.Options.DEFAULT.withRsna12BitFix(false));
                for (float v : t.apply(px.frame(i))) {
                    min = Math.min(min, v);
                    max = Math.max(max, v);
                }
            }
            // dcm2pnm reports the extremes as integers, truncated toward zero (a C cast).
            JsonNode range = dcmtk.get("modality_value_range");
            assertEquals(range.get("min").asLong(), (long) min, "minimum modality value (ours " + min + ")");
            assertEquals(range.get("max").asLong(), (long) max, "maximum modality value (ours " + max + ")");
        }
    }

    @org.junit.jupiter.api.Test
    void rsnaSliceIsAlreadyInHounsfieldUnits() throws Exception {
        SampleCorpus.assumePresent();
        // The real RSNA slice: unsigned 12-bit with intercept -1024, so the fix must leave it alone.
        try (DicomFile f = DicomFile.open(SampleCorpus.file("ID_000a2d7b0.dcm"))) {
            HounsfieldTransform t = HounsfieldTransform.of(f.header(), 0);
            assertFalse(t.rsna12BitFix());
            float[] hu = t.apply(f.pixelData().frame(0));
            float min = Float.MAX_VALUE;
            for (float v : hu) min = Math.min(min, v);
            assertEquals(6 - 1024, min, "air and the field of view edge: stored minimum 6");
        }
    }
}
