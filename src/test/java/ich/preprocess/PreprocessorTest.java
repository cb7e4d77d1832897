package ich.preprocess;

import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.dicom.SampleCorpus;
import ich.hu.HounsfieldTransform;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class PreprocessorTest {
    private static final Path RSNA = SampleCorpus.file("ID_000a2d7b0.dcm");

    @Test
    void bsbOfTheRealRsnaSliceAtNativeSizeIsTheSeedsFormulaPerPixel() throws Exception {
        SampleCorpus.assumePresent();
        // resize 512, crop 512: the identity geometry, so each output pixel is one source pixel.
        Preprocessor p = new Preprocessor(Preprocessor.Config.eval(512, 512));
        try (DicomFile f = DicomFile.open(RSNA); Preprocessor.Batch b = p.batch(List.of(new Preprocessor.Input(RSNA, 0, 0)), 1, 0)) {
            assertEquals(List.of(), b.failures());
            ImageHeader h = f.header();
            HounsfieldTransform hu = HounsfieldTransform.of(h, 0);
            MemorySegment px = f.pixelData().frame(0);
            Window[] bsb = {Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE};
            int inside = 0;
            for (int y = 0; y < 512; y++) {
                for (int x = 0; x < 512; x++) {
                    float v = hu.hu(hu.storedValue(Short.toUnsignedInt(px.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 2L * (y * 512 + x)))));
                    for (int k = 0; k < 3; k++) assertEquals(bsb[k].apply(v), b.get(0, k, y, x));
                    if (b.get(0, 0, y, x) > 0 && b.get(0, 0, y, x) < 1) inside++;
                }
            }
            assertTrue(inside > 10_000, "a head slice has plenty of brain-window pixels: " + inside);
        }
    }

    @Test
    void batchRecordsBadFilesAndKeepsTheRest(@TempDir Path tmp) throws Exception {
        SampleCorpus.assumePresent();
        Path bad = Files.writeString(tmp.resolve("bad.dcm"), "not dicom at all, but long enough");
        Path missing = tmp.resolve("missing.dcm");
        Preprocessor p = new Preprocessor(Preprocessor.Config.train(256, 224));
        List<Preprocessor.Input> inputs = new ArrayList<>();
        for (int i = 0; i < 6; i++) inputs.add(new Preprocessor.Input(RSNA, 0, i));
        inputs.add(2, new Preprocessor.Input(bad, 0, 99));
        inputs.add(new Preprocessor.Input(missing, 0, 100));
        try (Preprocessor.Batch b = p.batch(inputs, 7, 1); Preprocessor.Batch again = p.batch(inputs, 7, 1)) {
            assertEquals(8, b.n());
            assertEquals(List.of(2, 7), b.failures().stream().map(Preprocessor.Failure::index).toList());
            assertTrue(b.failures().get(0).message().contains("bad.dcm"), b.failures().get(0).message());
            assertTrue(b.failures().get(1).message().contains("missing.dcm"), b.failures().get(1).message());
            assertTrue(Float.isNaN(b.get(2, 0, 0, 0)), "a failed slot is poisoned");
            // The same file with different keys gets different crops; the same key the same tensor.
            boolean differs = false;
            for (int y = 0; y < 224; y += 7) {
                for (int x = 0; x < 224; x += 7) {
                    assertEquals(b.get(0, 1, y, x), again.get(0, 1, y, x));
                    if (b.get(0, 1, y, x) != b.get(1, 1, y, x)) differs = true;
                }
            }
            assertTrue(differs, "different sample keys give different crops");
        }
    }

    @Test
    void headerWindowChannelUsesTheFilesFirstWindow() throws Exception {
        SampleCorpus.assumePresent();
        // The RSNA slice has Window Center 00036\00036 and Width 00080\00080: the header window is 36/80.
        WindowChannels channels = WindowChannels.parse("header");
        Preprocessor p = new Preprocessor(new Preprocessor.Config(channels, Augmentation.eval(512, 512), null,
                SliceKernel.Layout.NCHW, HounsfieldTransform.Options.DEFAULT));
        try (Preprocessor.Batch b = p.batch(List.of(new Preprocessor.Input(RSNA, 0, 0)), 1, 0);
             Preprocessor.Batch brain = new Preprocessor(Preprocessor.Config.eval(512, 512)).batch(List.of(new Preprocessor.Input(RSNA, 0, 0)), 1, 0)) {
            Window header = Window.linear("header", 36, 80);
            int checked = 0;
            for (int y = 0; y < 512; y += 3) {
                for (int x = 0; x < 512; x += 3) {
                    float brainValue = brain.get(0, 0, y, x); // (hu - 0) / 80 within [0, 80]
                    if (brainValue > 0.1f && brainValue < 0.9f) {
                        float hu = brainValue * 80;
                        assertEquals(header.apply(hu), b.get(0, 0, y, x), 1e-5f);
                        checked++;
                    }
                }
            }
            assertTrue(checked > 1000, "checked " + checked);
        }
    }
}
