package ich.infer;

import ich.labels.Submission;
import ich.labels.SubmissionCsv;
import ich.nn.Tensor;
import ich.synth.SynthConfig;
import ich.synth.SynthDataset;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The scoring pipeline around a model: inputs to reports. The model here is a fixed function of the image
 * (channel means through a sigmoid), so the expected outputs can be recomputed; the real models (ONNX Runtime, our
 * engine) are tested with the same pipeline in the end-to-end tests.
 */
class ScoringRunTest {
    @TempDir
    static Path dir;
    static Path sample;
    static List<Path> inputs;

    /** Probability k of an image is sigmoid(mean of channel k % 3 - 0.5), a deterministic function of the pixels. */
    static final class ChannelMeanScorer implements Scorer {
        int calls;
        int failAfter = Integer.MAX_VALUE;

        @Override public String name() { return "channel means"; }

        @Override
        public float[] probabilities(Tensor images) {
            if (++calls > failAfter) throw new IllegalStateException("simulated crash");
            int n = images.dim(0), c = images.dim(1), hw = images.dim(2) * images.dim(3);
            float[] x = images.toArray(), p = new float[n * 6];
            for (int i = 0; i < n; i++) {
                for (int k = 0; k < 6; k++) {
                    double sum = 0;
                    for (int j = 0; j < hw; j++) sum += x[(i * c + k % 3) * hw + j];
                    p[i * 6 + k] = (float) (1 / (1 + Math.exp(-(sum / hw - 0.5))));
                }
            }
            return p;
        }

        @Override public void close() {}
    }

    @BeforeAll
    static void data() throws IOException {
        Path data = dir.resolve("data");
        SynthDataset.generate(SynthConfig.of(data, 4, 4, 3).withSize(64).withTestFraction(0.5).withThreads(2), false);
        sample = data.resolve(SynthDataset.SAMPLE_SUBMISSION);
        Submission s = SubmissionCsv.read(sample);
        inputs = new ArrayList<>();
        for (String id : s.imageIds()) inputs.add(data.resolve(SynthDataset.IMAGES).resolve(id + ".dcm"));
        assertTrue(inputs.size() >= 4, "test images: " + inputs.size());
        Path junk = dir.resolve("junk");
        Files.createDirectories(junk);
        Files.writeString(junk.resolve("notes.txt"), "not an image");
        Files.write(junk.resolve("ID_truncated.dcm"), java.util.Arrays.copyOf(Files.readAllBytes(inputs.get(0)), 1000));
        inputs.add(junk.resolve("notes.txt"));
        inputs.add(junk.resolve("ID_truncated.dcm"));
    }

    private static ScoringRun.Options options(Path out, boolean resume, Path sampleSubmission) {
        return new ScoringRun.Options(inputs, sampleSubmission, out, 32, 3, 2, false, resume, 1);
    }

    @Test
    void everyInputIsScoredOrReportedAndTheSubmissionFollowsTheSample() throws Exception {
        Path out = dir.resolve("a").resolve("submission.csv");
        ScoringRun.Summary summary = ScoringRun.run(new ChannelMeanScorer(), options(out, false, sample), quiet());
        assertTrue(summary.complete(), summary.problem());
        assertEquals(inputs.size() - 2, summary.scored());
        assertEquals(2, summary.failed());

        List<String> rows = Files.readAllLines(out);
        Submission s = SubmissionCsv.read(sample);
        assertEquals("ID,Label", rows.get(0));
        assertEquals(s.rows() + 1, rows.size());
        for (int r = 0; r < s.rows(); r++) assertEquals(s.rowId(r), rows.get(r + 1).split(",")[0], "row " + r);

        Set<String> perImage = new HashSet<>(), errors = new HashSet<>();
        List<String> imageLines = Files.readAllLines(out.resolveSibling(ScoringRun.PER_IMAGE));
        assertEquals(ScoringRun.IMAGE_HEADER, imageLines.get(0));
        for (String l : imageLines.subList(1, imageLines.size())) perImage.add(l.split(",")[0]);
        List<String> errorLines = Files.readAllLines(out.resolveSibling(ScoringRun.ERRORS));
        for (String l : errorLines.subList(1, errorLines.size())) errors.add(l.split(",")[0]);
        for (Path in : inputs) {
            String id = ich.eda.HeaderScan.imageId(in);
            assertTrue(perImage.contains(id) ^ errors.contains(id), id + " must be in exactly one report");
        }
        assertTrue(errorLines.stream().anyMatch(l -> l.startsWith("ID_truncated,") && l.contains("ID_truncated.dcm")), errorLines.toString());
        List<String> studies = Files.readAllLines(out.resolveSibling(ScoringRun.PER_STUDY));
        assertTrue(studies.get(0).startsWith("study_uid,slices,max_any"), studies.get(0));
        assertEquals(2, studies.size() - 1, "two held-out studies");
        assertFalse(Files.exists(out.resolveSibling(ScoringRun.PARTIAL_IMAGES)));
    }

    @Test
    void aResumedRunGivesTheSameFilesAsAnUninterruptedOne() throws Exception {
        Path whole = dir.resolve("whole").resolve("submission.csv");
        ScoringRun.run(new ChannelMeanScorer(), options(whole, false, null), quiet());

        Path crashed = dir.resolve("crashed").resolve("submission.csv");
        ChannelMeanScorer failing = new ChannelMeanScorer();
        failing.failAfter = 1;
        assertThrows(IllegalStateException.class, () -> ScoringRun.run(failing, options(crashed, false, null), quiet()));
        assertFalse(Files.exists(crashed));
        assertTrue(Files.exists(crashed.resolveSibling(ScoringRun.PARTIAL_IMAGES)));

        ChannelMeanScorer again = new ChannelMeanScorer();
        ScoringRun.Summary summary = ScoringRun.run(again, options(crashed, true, null), quiet());
        assertTrue(summary.resumed() >= 3, "the first batch and the header errors were kept: " + summary);
        for (String name : List.of("submission.csv", ScoringRun.PER_IMAGE, ScoringRun.PER_STUDY, ScoringRun.ERRORS)) {
            assertEquals(Files.readString(whole.resolveSibling(name)), Files.readString(crashed.resolveSibling(name)), name);
        }
    }

    /**
     * A real Enhanced CT file of 2 frames (eCT_Supplemental.dcm of the sample corpus: rescale, window and plane
     * position in the functional groups) is two images, eCT_Supplemental_frame1 and _frame2, each scored from its own
     * frame (the probabilities equal the scorer's on that frame preprocessed alone) at its own z (-159 and -149 mm, as
     * dcmdump shows them); a run interrupted between the two frames resumes to the same files.
     */
    @Test
    void aMultiFrameFileIsOneImagePerFrame() throws Exception {
        ich.dicom.SampleCorpus.assumePresent();
        Path file = ich.dicom.SampleCorpus.file("eCT_Supplemental.dcm");
        List<Path> in = List.of(file, inputs.get(0));
        Path out = dir.resolve("frames").resolve("submission.csv");
        ScoringRun.Options o = new ScoringRun.Options(in, null, out, 32, 1, 2, false, false, 1);
        ScoringRun.Summary summary = ScoringRun.run(new ChannelMeanScorer(), o, quiet());
        assertEquals(3, summary.scored(), summary.toString());
        assertEquals(0, summary.failed());
        List<String> lines = Files.readAllLines(out.resolveSibling(ScoringRun.PER_IMAGE));
        ich.preprocess.Preprocessor pre = new ich.preprocess.Preprocessor(ich.preprocess.Preprocessor.Config.eval(32, 32));
        for (int frame = 0; frame < 2; frame++) {
            String id = "eCT_Supplemental_frame" + (frame + 1);
            String line = lines.stream().filter(l -> l.startsWith(id + ",")).findFirst().orElseThrow(() -> new AssertionError(id + " missing: " + lines));
            String[] cells = line.split(",");
            assertEquals(frame == 0 ? -159.0 : -149.0, Double.parseDouble(cells[4]), 1e-9, "z of " + id);
            float[] expected;
            try (ich.preprocess.Preprocessor.Batch b = pre.batch(List.of(new ich.preprocess.Preprocessor.Input(file, frame, 0)), 1, 0);
                 java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                assertTrue(b.failures().isEmpty(), b.failures().toString());
                Tensor t = Tensor.wrap(b.data(), true, 1, b.c(), b.h(), b.w());
                expected = new ChannelMeanScorer().probabilities(Tensor.of(arena, t.toArray(), t.shape()));
            }
            for (int k = 0; k < 6; k++) assertEquals(expected[k], Float.parseFloat(cells[5 + k]), 1e-6, id + " probability " + k);
        }
        List<String> submission = Files.readAllLines(out);
        assertEquals(1 + 3 * 6, submission.size(), "header and 6 rows for each of 3 images: " + submission);
        assertTrue(submission.stream().anyMatch(l -> l.startsWith("eCT_Supplemental_frame2_subdural,")), submission.toString());

        Path crashed = dir.resolve("frames-crashed").resolve("submission.csv");
        ChannelMeanScorer failing = new ChannelMeanScorer();
        failing.failAfter = 1; // batches of 1: the first frame is scored, the second is not
        ScoringRun.Options c = new ScoringRun.Options(in, null, crashed, 32, 1, 2, false, false, 1);
        assertThrows(IllegalStateException.class, () -> ScoringRun.run(failing, c, quiet()));
        ScoringRun.Summary resumed = ScoringRun.run(new ChannelMeanScorer(), new ScoringRun.Options(in, null, crashed, 32, 1, 2, false, true, 1), quiet());
        assertEquals(1, resumed.resumed(), resumed.toString());
        for (String name : List.of("submission.csv", ScoringRun.PER_IMAGE, ScoringRun.PER_STUDY, ScoringRun.ERRORS)) {
            assertEquals(Files.readString(out.resolveSibling(name)), Files.readString(crashed.resolveSibling(name)), name);
        }
    }

    /**
     * What a hospital series holds besides axial CT slices is reported, not scored as brain: an MR image (the
     * corpus's emri_small.dcm), a CT localizer ((0008,0008) Image Type with LOCALIZER), and sagittal and coronal
     * reformats ((0020,0037) Image Orientation (Patient)) go to errors.csv with the attribute that excludes them; a
     * CT slice, a slice tilted by 25 degrees (gantry tilt) and a file without (0008,0060) Modality are scored.
     */
    @Test
    void nonCtImagesAndLocalizersAreReportedNotScored() throws Exception {
        ich.dicom.SampleCorpus.assumePresent();
        Path folder = dir.resolve("series");
        ich.eda.TinyDicom scout = new ich.eda.TinyDicom();
        scout.rows = scout.columns = 8;
        scout.imageType = "ORIGINAL\\PRIMARY\\LOCALIZER";
        Path localizer = scout.write(folder.resolve("scout.dcm"));
        ich.eda.TinyDicom anonymous = new ich.eda.TinyDicom();
        anonymous.rows = anonymous.columns = 8;
        anonymous.modality = null;
        Path noModality = anonymous.write(folder.resolve("no_modality.dcm"));
        ich.eda.TinyDicom sagittal = new ich.eda.TinyDicom(), coronal = new ich.eda.TinyDicom(), tilted = new ich.eda.TinyDicom();
        sagittal.rows = sagittal.columns = coronal.rows = coronal.columns = tilted.rows = tilted.columns = 8;
        sagittal.imageOrientation = "0\\1\\0\\0\\0\\-1";
        coronal.imageOrientation = "1\\0\\0\\0\\0\\-1";
        tilted.imageOrientation = "1\\0\\0\\0\\0.906308\\-0.422618"; // 25 degrees about the x axis
        List<Path> in = List.of(ich.dicom.SampleCorpus.file("emri_small.dcm"), localizer, noModality, inputs.get(0),
                sagittal.write(folder.resolve("sagittal.dcm")), coronal.write(folder.resolve("coronal.dcm")), tilted.write(folder.resolve("tilted.dcm")));
        Path out = folder.resolve("out").resolve("submission.csv");
        ScoringRun.Summary summary = ScoringRun.run(new ChannelMeanScorer(), new ScoringRun.Options(in, null, out, 32, 4, 2, false, false, 1), quiet());
        assertEquals(3, summary.scored(), summary.toString());
        assertEquals(4, summary.failed(), summary.toString());
        List<String> errors = Files.readAllLines(out.resolveSibling(ScoringRun.ERRORS));
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("emri_small,") && l.contains("(0008,0060) Modality is MR")), errors.toString());
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("scout,") && l.contains("(0008,0008) Image Type is ORIGINAL\\PRIMARY\\LOCALIZER")
                && l.contains("localizer")), errors.toString());
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("sagittal,") && l.contains("(0020,0037) Image Orientation (Patient) is 0\\1\\0\\0\\0\\-1: "
                + "a sagittal plane, 90 degrees from axial")), errors.toString());
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("coronal,") && l.contains("a coronal plane, 90 degrees from axial")), errors.toString());
        List<String> scored = Files.readAllLines(out.resolveSibling(ScoringRun.PER_IMAGE));
        assertTrue(scored.stream().anyMatch(l -> l.startsWith("no_modality,")), scored.toString());
        assertTrue(scored.stream().anyMatch(l -> l.startsWith("tilted,")), scored.toString());
    }

    /**
     * An enhanced object's frames are judged by their own orientation, the Plane Orientation Sequence (0020,9116) of
     * its functional groups (it has no top-level (0020,0037)): the corpus's Enhanced CT, axial, is scored; a copy
     * whose shared Plane Orientation is made sagittal is reported.
     */
    @Test
    void enhancedFramesAreJudgedByTheirPlaneOrientation() throws Exception {
        ich.dicom.SampleCorpus.assumePresent();
        Path original = ich.dicom.SampleCorpus.file("eCT_Supplemental.dcm");
        try (ich.dicom.DicomFile f = ich.dicom.DicomFile.open(original)) {
            assertArrayEquals(new double[]{-1, 0, 0, 0, 1, 0}, f.header().frameTransform(1).imageOrientationPatient());
        }
        byte[] b = Files.readAllBytes(original);
        String axial = "-1.00000\\0.00000\\0.00000\\0.00000\\1.00000\\0.00000", sagittal = "0.000000\\1.00000\\0.00000\\0.00000\\0.00000\\-1.0000";
        String text = new String(b, java.nio.charset.StandardCharsets.ISO_8859_1);
        int inSequence = text.indexOf(axial);
        assertTrue(inSequence > 0 && text.indexOf(axial, inSequence + 1) < 0, "one occurrence, in the shared functional groups");
        System.arraycopy(sagittal.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), 0, b, inSequence, sagittal.length());
        Path folder = dir.resolve("enhanced");
        Files.createDirectories(folder);
        Path reformat = Files.write(folder.resolve("reformat.dcm"), b);
        Path out = folder.resolve("out").resolve("submission.csv");
        ScoringRun.Summary summary = ScoringRun.run(new ChannelMeanScorer(),
                new ScoringRun.Options(List.of(original, reformat), null, out, 32, 4, 2, false, false, 1), quiet());
        assertEquals(2, summary.scored(), summary.toString());
        List<String> errors = Files.readAllLines(out.resolveSibling(ScoringRun.ERRORS));
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("reformat,") && l.contains("frame 1 of 2: (0020,0037) Image Orientation (Patient) "
                + "is 0\\1\\0\\0\\0\\-1: a sagittal plane, 90 degrees from axial")), errors.toString());
    }

    /**
     * An export that reuses file names in each series folder (SE1/IM0, SE2/IM0): named after their files, the second
     * IM0 is an error row that says how to keep them apart; named by their paths (--image-id path), both are scored,
     * as SE1/IM0 and SE2/IM0, each with the probabilities of its own pixels.
     */
    @Test
    void filesWithTheSameNameInSeveralFoldersAreNamedByTheirPaths() throws Exception {
        Path export = dir.resolve("export");
        Path a = export.resolve("SE1").resolve("IM0"), b = export.resolve("SE2").resolve("IM0");
        Files.createDirectories(a.getParent());
        Files.createDirectories(b.getParent());
        Files.copy(inputs.get(0), a);
        Files.copy(inputs.get(1), b);

        Path byName = export.resolve("by-name").resolve("submission.csv");
        ScoringRun.Summary s1 = ScoringRun.run(new ChannelMeanScorer(), new ScoringRun.Options(List.of(a, b), null, byName, 32, 4, 2, false, false, 1), quiet());
        assertEquals(1, s1.scored(), s1.toString());
        List<String> errors = Files.readAllLines(byName.resolveSibling(ScoringRun.ERRORS));
        assertTrue(errors.stream().anyMatch(l -> l.contains("a second file for image IM0") && l.contains("--image-id path")), errors.toString());

        Path byPath = export.resolve("by-path").resolve("submission.csv");
        ScoringRun.Summary s2 = ScoringRun.run(new ChannelMeanScorer(),
                new ScoringRun.Options(List.of(a, b), null, byPath, 32, 4, 2, false, false, 1, export), quiet());
        assertEquals(2, s2.scored(), s2.toString());
        assertEquals(0, s2.failed(), s2.toString());
        List<String> rows = Files.readAllLines(byPath.resolveSibling(ScoringRun.PER_IMAGE));
        String first = rows.stream().filter(l -> l.startsWith("SE1/IM0,")).findFirst().orElseThrow(() -> new AssertionError(rows.toString()));
        String second = rows.stream().filter(l -> l.startsWith("SE2/IM0,")).findFirst().orElseThrow(() -> new AssertionError(rows.toString()));
        String probabilitiesOf0 = Files.readAllLines(byName.resolveSibling(ScoringRun.PER_IMAGE)).stream()
                .filter(l -> l.startsWith("IM0,")).findFirst().orElseThrow();
        assertEquals(tail(probabilitiesOf0, 6), tail(first, 6), "SE1/IM0 is the file scored as IM0 before");
        assertNotEquals(tail(first, 6), tail(second, 6), "two different slices");
        assertTrue(Files.readAllLines(byPath).stream().anyMatch(l -> l.startsWith("SE2/IM0_subdural,")));
        assertThrows(IllegalArgumentException.class,
                () -> new ScoringRun.Options(List.of(a), null, byPath, 32, 4, 2, false, false, 1, export.resolve("SE2")).imageId(a));
    }

    private static List<String> tail(String csvLine, int n) {
        List<String> cells = ich.io.Csv.split(csvLine);
        return cells.subList(cells.size() - n, cells.size());
    }

    @Test
    void aSampleListingUnscoredImagesLeavesNoSubmissionButSaysWhy() throws Exception {
        Path out = dir.resolve("partial-inputs").resolve("submission.csv");
        var o = new ScoringRun.Options(inputs.subList(1, inputs.size()), sample, out, 32, 4, 1, true, false, 1);
        ScoringRun.Summary summary = ScoringRun.run(new ChannelMeanScorer(), o, quiet());
        assertFalse(summary.complete());
        assertTrue(summary.problem().contains("had no input file") && summary.problem().contains(ich.eda.HeaderScan.imageId(inputs.get(0))), summary.problem());
        assertFalse(Files.exists(out));
        assertTrue(Files.exists(out.resolveSibling(ScoringRun.PER_IMAGE)));
    }

    @Test
    void flipTtaAveragesTheMirroredImage() throws Exception {
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            float[] v = new float[2 * 3 * 2 * 3];
            for (int i = 0; i < v.length; i++) v[i] = (i * 37 % 11) / 10f;
            Tensor t = Tensor.of(arena, v, 2, 3, 2, 3);
            Scorer leftColumn = new Scorer() {
                @Override public String name() { return "left column"; }
                @Override public float[] probabilities(Tensor images) {
                    float[] p = new float[12];
                    for (int i = 0; i < 2; i++) for (int k = 0; k < 6; k++) p[i * 6 + k] = images.get(((i * 3L + k % 3) * 2) * 3);
                    return p;
                }
                @Override public void close() {}
            };
            float[] p = ScoringRun.predict(leftColumn, t, true);
            for (int i = 0; i < 2; i++) for (int k = 0; k < 6; k++) {
                long row = (i * 3L + k % 3) * 2 * 3;
                assertEquals((t.get(row) + t.get(row + 2)) / 2, p[i * 6 + k], 1e-7);
            }
        }
    }

    private static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream());
    }
}
