package ich.train;

import ich.labels.LabelCsv;
import ich.labels.LabelTable;
import ich.preprocess.Preprocessor;
import ich.synth.SynthConfig;
import ich.synth.SynthDataset;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class TrainingDataTest {
    @TempDir
    static Path dir;
    static LabelTable table;
    static Path images;

    @BeforeAll
    static void makeData() throws IOException {
        SynthDataset.generate(SynthConfig.of(dir.resolve("data"), 4, 5, 7).withSize(96).withTestFraction(0).withThreads(2), false);
        images = dir.resolve("data").resolve(SynthDataset.IMAGES);
        table = LabelCsv.read(dir.resolve("data").resolve(SynthDataset.TRAIN_LABELS));
    }

    @Test
    void everyLabelledImageIsFoundWithItsPatientAndLabels() throws Exception {
        TrainingData data = TrainingData.of(table, images, 2);
        assertEquals(table.images(), data.size());
        assertEquals(List.of(), data.problems());
        Set<String> patients = new HashSet<>();
        for (int i = 0; i < data.size(); i++) {
            ImageCatalog.Image image = data.images().get(i);
            int row = table.indexOf(image.imageId());
            assertTrue(row >= 0);
            for (int s = 0; s < TrainingData.LABELS; s++) {
                assertEquals((table.labelBits(row) >>> s) & 1, data.labels()[i * 6 + s], image.imageId() + " subtype " + s);
            }
            assertNotNull(image.studyUid());
            assertFalse(Double.isNaN(image.z()));
            patients.add(image.group());
        }
        assertTrue(patients.size() >= 2 && patients.size() <= 4, "groups: " + patients);
    }

    @Test
    void missingUnreadableAndUnlabelledFilesAreReportedNotDropped() throws Exception {
        Path copy = dir.resolve("partial");
        Files.createDirectories(copy);
        List<Path> files;
        try (var s = Files.list(images)) {
            files = s.sorted().toList();
        }
        for (Path f : files) Files.copy(f, copy.resolve(f.getFileName()));
        Path missing = copy.resolve(files.get(0).getFileName());
        Files.delete(missing);
        Path broken = copy.resolve(files.get(1).getFileName());
        Files.write(broken, "not a DICOM file".getBytes());
        Files.write(copy.resolve("ID_stray.dcm"), Files.readAllBytes(files.get(2)));

        TrainingData data = TrainingData.of(table, copy, 2);
        assertEquals(table.images() - 2, data.size());
        assertEquals(3, data.problems().size(), data.problems().toString());
        String report = data.problems().toString();
        assertTrue(report.contains("no file " + ich.eda.HeaderScan.imageId(missing)), report);
        assertTrue(report.contains(broken.toString()), report);
        assertTrue(report.contains("ID_stray") && report.contains("no labels"), report);
    }

    /** Label rows in the RSNA format for these image ids, each with the label bits of one subtype. */
    private static LabelTable labels(String... ids) throws IOException {
        StringBuilder csv = new StringBuilder("ID,Label\n");
        String[] subtypes = {"epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"};
        for (int i = 0; i < ids.length; i++) {
            for (int k = 0; k < 6; k++) csv.append(ids[i]).append('_').append(subtypes[k]).append(',').append(k == i % 5 || k == 5 ? 1 : 0).append('\n');
        }
        return LabelCsv.read(new java.io.ByteArrayInputStream(csv.toString().getBytes()), "labels.csv");
    }

    /**
     * A real 2-frame Enhanced CT file (eCT_Supplemental.dcm of the sample corpus) is two images, labelled per frame as
     * eCT_Supplemental_frame1 and _frame2: each trains from its own frame at its own z. Labelling the file as a whole,
     * a frame it lacks, or only one of its frames is reported, never dropped in silence.
     */
    @Test
    void aMultiFrameFileIsOneImagePerFrame() throws Exception {
        ich.dicom.SampleCorpus.assumePresent();
        Path folder = dir.resolve("frames");
        Files.createDirectories(folder);
        Files.copy(ich.dicom.SampleCorpus.file("eCT_Supplemental.dcm"), folder.resolve("eCT_Supplemental.dcm"));

        TrainingData both = TrainingData.of(labels("eCT_Supplemental_frame2", "eCT_Supplemental_frame1"), folder, 2);
        assertEquals(List.of(), both.problems());
        assertEquals(2, both.size());
        assertEquals("eCT_Supplemental_frame2", both.images().get(0).imageId());
        assertEquals(1, both.images().get(0).frame());
        assertEquals(-149.0, both.images().get(0).z());
        assertEquals(0, both.images().get(1).frame());
        assertEquals(-159.0, both.images().get(1).z());
        BatchLoader.Plan plan = both.plan(new int[] {0, 1}, 2, 1, 0);
        assertEquals(List.of(1, 0), plan.inputs().stream().map(Preprocessor.Input::frame).toList());

        String whole = TrainingData.of(labels("eCT_Supplemental"), folder, 2).problems().toString();
        assertTrue(whole.contains("eCT_Supplemental has 2 frames: label each one, as eCT_Supplemental_frame1 .. eCT_Supplemental_frame2"), whole);
        TrainingData partly = TrainingData.of(labels("eCT_Supplemental_frame1", "eCT_Supplemental_frame3"), folder, 2);
        assertEquals(1, partly.size());
        String report = partly.problems().toString();
        assertEquals(2, partly.problems().size(), report);
        assertTrue(report.contains("frame 2 of the file has no labels in labels.csv (as eCT_Supplemental_frame2)"), report);
        assertTrue(report.contains("eCT_Supplemental_frame3") && report.contains("has 2 frame(s)"), report);
    }

    @Test
    void batchesAreTheSameBytesWhateverTheWorkersAndEqualThePreprocessor() throws Exception {
        TrainingData data = TrainingData.of(table, images, 2);
        Preprocessor pre = new Preprocessor(Preprocessor.Config.train(80, 64));
        int[] rows = new int[data.size()];
        for (int i = 0; i < rows.length; i++) rows[i] = rows.length - 1 - i;
        List<float[]> one = load(pre, data.plan(rows, 3, 11, 2), 1, 1);
        List<float[]> three = load(pre, data.plan(rows, 3, 11, 2), 3, 2);
        assertEquals((rows.length + 2) / 3, one.size());
        for (int b = 0; b < one.size(); b++) assertArrayEquals(one.get(b), three.get(b), "batch " + b);

        long floats = pre.config().sampleFloats();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment expected = arena.allocate(floats * 4);
            pre.process(new Preprocessor.Input(data.images().get(rows[4]).file(), 0, rows[4]), 11, 2, expected, 0);
            float[] batch1 = one.get(1);
            for (int i = 0; i < floats; i++) {
                assertEquals(expected.getAtIndex(ValueLayout.JAVA_FLOAT, i), batch1[(int) (floats + i)], "sample 4, float " + i);
            }
        }
        List<float[]> otherEpoch = load(pre, data.plan(rows, 3, 11, 3), 2, 2);
        assertFalse(java.util.Arrays.equals(one.get(0), otherEpoch.get(0)), "a new epoch draws new crops");
    }

    @Test
    void aSampleThatFailsIsLeftOutOfItsBatchAndReported() throws Exception {
        TrainingData data = TrainingData.of(table, images, 2);
        BatchLoader.Plan good = data.plan(new int[] {0, 1, 2}, 3, 1, 0);
        List<Preprocessor.Input> inputs = new ArrayList<>(good.inputs());
        Path junk = dir.resolve("junk.dcm");
        Files.write(junk, new byte[300]);
        inputs.set(1, new Preprocessor.Input(junk, 0, 1));
        BatchLoader.Plan plan = new BatchLoader.Plan(inputs, good.samples(), good.targets(), 6, 3, 1, 0);
        try (BatchLoader loader = new BatchLoader(new Preprocessor(Preprocessor.Config.eval(64, 64)), plan, 2, 2);
             LoadedBatch batch = loader.next()) {
            assertEquals(2, batch.n());
            assertArrayEquals(new int[] {0, 2}, batch.samples());
            assertEquals(1, batch.failures().size());
            assertTrue(batch.failures().get(0).message().contains("junk.dcm"), batch.failures().get(0).message());
            assertEquals(2, batch.images().dim(0));
            float[] expectedTargets = new float[12];
            System.arraycopy(good.targets(), 0, expectedTargets, 0, 6);
            System.arraycopy(good.targets(), 12, expectedTargets, 6, 6);
            assertArrayEquals(expectedTargets, batch.targets());
            for (float v : batch.images().toArray()) assertTrue(Float.isFinite(v));
            assertFalse(loader.hasNext());
        }
    }

    private static List<float[]> load(Preprocessor pre, BatchLoader.Plan plan, int workers, int prefetch) throws InterruptedException {
        List<float[]> out = new ArrayList<>();
        try (BatchLoader loader = new BatchLoader(pre, plan, workers, prefetch)) {
            while (loader.hasNext()) {
                try (LoadedBatch b = loader.next()) {
                    assertEquals(List.of(), b.failures());
                    out.add(b.images().toArray());
                }
            }
        }
        return out;
    }
}
