package ich.synth;

import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.dicom.TransferSyntax;
import ich.hu.HounsfieldTransform;
import ich.labels.LabelCsv;
import ich.labels.LabelTable;
import ich.labels.Submission;
import ich.labels.SubmissionCsv;
import ich.labels.Subtype;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A small data set written once (16 studies of 20 slices, 320 images, 192 x 192 to keep the tests quick) and
 * checked file by file against the generator's own plan and rendering: headers, Hounsfield units through our
 * reader in all three encodings, lesion masks against labels, the label files, the split. The seed is fixed and
 * chosen so that the set holds every encoding, both transfer syntaxes, a patient with two studies and held-out
 * studies; the test says so if a change to the generator loses one of them.
 */
class SynthDatasetTest {
    static final int STUDIES = 16, SLICES = 20, SIZE = 192;
    static final long SEED = 20240611;

    @TempDir
    static Path root;
    static Path out;
    static SynthConfig config;
    static List<SynthStudy> plan;
    static SynthDataset.Summary summary;

    @BeforeAll
    static void generate() throws IOException {
        out = root.resolve("a");
        config = SynthConfig.of(out, STUDIES, SLICES, SEED).withSize(SIZE).withTestFraction(0.25).withThreads(2);
        plan = SynthDataset.plan(config);
        summary = SynthDataset.generate(config, false);
    }

    @Test
    void theSeedCoversEveryVariant() {
        Set<PixelEncoding> encodings = EnumSet.noneOf(PixelEncoding.class);
        Set<TransferSyntax> syntaxes = new HashSet<>();
        Set<Double> intercepts = new HashSet<>();
        Map<Integer, Integer> studiesPerPatient = new HashMap<>();
        for (SynthStudy s : plan) {
            encodings.add(s.acquisition().encoding());
            syntaxes.add(s.acquisition().syntax());
            if (s.acquisition().encoding() == PixelEncoding.UNSIGNED_12_MODULO) intercepts.add(s.acquisition().rescaleIntercept());
            studiesPerPatient.merge(s.patient(), 1, Integer::sum);
        }
        assertEquals(EnumSet.allOf(PixelEncoding.class), encodings);
        assertEquals(2, syntaxes.size());
        assertTrue(studiesPerPatient.containsValue(2), "a patient with two studies");
        assertTrue(plan.stream().anyMatch(SynthStudy::test) && plan.stream().anyMatch(s -> !s.test()));
        assertTrue(plan.stream().anyMatch(s -> s.acquisition().tiltSin() != 0), "a tilted study");
        assertTrue(plan.stream().anyMatch(s -> s.acquisition().outsideCircle()), "padding outside the circle");
        assertTrue(plan.stream().anyMatch(s -> s.acquisition().windowCenter().length == 2), "multi-valued windows");
        for (SynthStudy s : plan) {
            assertEquals(SLICES, s.imageIds().size());
            assertEquals(1, plan.stream().filter(o -> o.patient() == s.patient()).map(SynthStudy::patientId).distinct().count());
        }
        assertFalse(intercepts.isEmpty());
    }

    @Test
    void sameSeedSameBytesWhateverTheThreads() throws IOException {
        Path again = root.resolve("b");
        SynthDataset.generate(config.withOut(again).withThreads(3), false);
        assertEquals(listing(out), listing(again));
        for (String name : listing(out)) {
            assertArrayEquals(Files.readAllBytes(out.resolve(name)), Files.readAllBytes(again.resolve(name)), name);
        }
        // Another seed: other files.
        Path other = root.resolve("c");
        SynthDataset.generate(config.withOut(other).withSeed(SEED + 1), false);
        assertNotEquals(listing(out), listing(other));
    }

    private static List<String> listing(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).map(p -> dir.relativize(p).toString()).sorted().toList();
        }
    }

    @Test
    void refusesToMixWithAnEarlierRunUnlessAskedToOverwrite() throws IOException {
        Path d = root.resolve("d");
        SynthConfig small = config.withOut(d).withStudies(2).withSlices(2);
        SynthDataset.generate(small, false);
        assertThrows(IllegalStateException.class, () -> SynthDataset.generate(small.withSeed(5), false));
        SynthDataset.generate(small.withSeed(5), true);
        try (Stream<Path> s = Files.list(d.resolve(SynthDataset.IMAGES))) {
            assertEquals(4, s.count(), "the earlier run's images are gone");
        }
    }

    /** Every file read back with our reader: header fields as planned, HU through the RSNA-fixing transform exactly as rendered. */
    @Test
    void everyFileReadsBackWithTheRenderedHounsfieldUnits() throws IOException {
        SliceRenderer renderer = new SliceRenderer(SIZE);
        Map<PixelEncoding, TissueStats> stats = new EnumMap<>(PixelEncoding.class);
        int files = 0;
        for (SynthStudy s : plan) {
            Acquisition a = s.acquisition();
            for (int k = 0; k < s.slices(); k++) {
                Path file = out.resolve(SynthDataset.IMAGES).resolve(s.imageIds().get(k) + ".dcm");
                SliceRenderer.Slice slice = renderer.render(s, k);
                String at = file.getFileName() + " (study " + s.index() + ", slice " + k + ", " + a.encoding() + ")";
                try (DicomFile f = DicomFile.open(file)) {
                    files++;
                    ImageHeader h = f.header();
                    assertEquals(a.syntax(), f.transferSyntax(), at);
                    assertEquals(s.imageIds().get(k), h.sopInstanceUid(), at);
                    assertEquals(s.patientId(), h.patientId(), at);
                    assertEquals(s.studyInstanceUid(), h.studyInstanceUid(), at);
                    assertEquals(s.seriesInstanceUid(), h.seriesInstanceUid(), at);
                    assertEquals("CT", h.modality(), at);
                    assertEquals(SIZE, h.rows(), at);
                    assertEquals(SIZE, h.columns(), at);
                    assertArrayEquals(a.position(k), h.imagePositionPatient(), at);
                    assertArrayEquals(a.orientation(), h.imageOrientationPatient(), at);
                    assertArrayEquals(new double[]{a.pixelSpacing(), a.pixelSpacing()}, h.pixelSpacing(), at);
                    assertEquals(a.encoding().bitsStored, h.bitsStored(), at);
                    assertEquals(a.encoding().bitsStored - 1, h.highBit(), at);
                    assertEquals(a.encoding().pixelRepresentation, h.pixelRepresentation(), at);
                    assertEquals(a.rescaleIntercept(), h.rescaleIntercept(), at);
                    assertEquals(1, h.rescaleSlope(), at);
                    assertEquals(a.windowCenter().length, h.windowCenter().length, at);
                    assertEquals(a.instanceNumber(k), (int) f.dataSet().number(ich.dicom.Tag.INSTANCE_NUMBER, ich.dicom.VR.IS, 0), at);
                    assertEquals(a.encoding() == PixelEncoding.UNSIGNED_12_MODULO,
                            HounsfieldTransform.needsRsna12BitFix(h.bitsStored(), h.pixelRepresentation(), h.rescaleIntercept()), at);

                    float[] hu = HounsfieldTransform.of(h, 0).apply(f.pixelData().frame(0));
                    for (int p = 0; p < hu.length; p++) {
                        if (hu[p] != slice.hu()[p]) fail(at + ": pixel " + p + " reads " + hu[p] + " HU, rendered " + slice.hu()[p]);
                    }
                    if (a.encoding() == PixelEncoding.UNSIGNED_12_MODULO) {
                        // Without the fix, air reads as dense bone: proof that this is the broken kind.
                        float[] raw = HounsfieldTransform.of(h, 0, HounsfieldTransform.Options.DEFAULT.withRsna12BitFix(false))
                                .apply(f.pixelData().frame(0));
                        for (int p = 0; p < raw.length; p++) {
                            if (slice.tissue()[p] == SliceRenderer.AIR) assertTrue(raw[p] >= 3000, at + ": unfixed air " + raw[p]);
                        }
                    }
                    stats.computeIfAbsent(a.encoding(), e -> new TissueStats()).add(slice, hu);
                }
            }
        }
        assertEquals(STUDIES * SLICES, files);
        try (Stream<Path> s = Files.list(out.resolve(SynthDataset.IMAGES))) {
            assertEquals(STUDIES * SLICES, s.count(), "nothing else in images/");
        }
        assertEquals(3, stats.size());
        stats.forEach((encoding, st) -> st.check(encoding.toString()));
    }

    /** DCMTK on one file per encoding and syntax: a Part 10 file, and the stored values we meant. */
    @Test
    void dcmtkReadsTheStoredValuesWeMeant() {
        ich.dicom.Dcmtk.assumeInstalled("dcmftest", "dcm2pnm");
        SliceRenderer renderer = new SliceRenderer(SIZE);
        Set<String> done = new HashSet<>();
        for (SynthStudy s : plan) {
            Acquisition a = s.acquisition();
            if (!done.add(a.encoding() + " " + a.syntax())) continue;
            int k = s.slices() / 2;
            Path file = out.resolve(SynthDataset.IMAGES).resolve(s.imageIds().get(k) + ".dcm");
            ich.dicom.Dcmtk.Result test = ich.dicom.Dcmtk.run("dcmftest", file.toString());
            assertEquals("yes: " + file, test.out().strip());
            int[] stored = ich.dicom.Dcmtk.storedValues(file, a.encoding().bitsStored, a.encoding().pixelRepresentation == 1);
            short[] hu = renderer.render(s, k).hu();
            for (int p = 0; p < hu.length; p++) {
                int expected = a.encoding().stored(hu[p]);
                if (a.encoding().pixelRepresentation == 1) expected = (short) expected;
                if (stored[p] != expected) fail(file + " pixel " + p + ": DCMTK reads " + stored[p] + ", we stored " + expected);
            }
        }
        assertTrue(done.size() >= 4, "encodings and syntaxes covered: " + done);
    }

    /** HU per tissue class (blood excluded), for the expected ranges. */
    static final class TissueStats {
        final List<List<Float>> values = new ArrayList<>();

        TissueStats() { for (int t = 0; t < SliceRenderer.TISSUES; t++) values.add(new ArrayList<>()); }

        /**
         * The pixels inside a region of one tissue, without blood: their eight neighbours (the reach of the
         * renderer's 3 x 3 edge blur) of the same tissue. Edge pixels are partial volume of two tissues.
         */
        void add(SliceRenderer.Slice slice, float[] hu) {
            byte[] t = slice.tissue();
            for (int j = 1; j < SIZE - 1; j++) {
                next:
                for (int i = 1; i < SIZE - 1; i++) {
                    int p = j * SIZE + i;
                    if (slice.lesionMask()[p] != 0) continue;
                    for (int dj = -SIZE; dj <= SIZE; dj += SIZE) {
                        for (int di = -1; di <= 1; di++) if (t[p + dj + di] != t[p]) continue next;
                    }
                    values.get(t[p]).add(hu[p]);
                }
            }
        }

        /** The q-quantile of a class. */
        double quantile(int tissue, double q) {
            float[] v = new float[values.get(tissue).size()];
            for (int i = 0; i < v.length; i++) v[i] = values.get(tissue).get(i);
            Arrays.sort(v);
            return v[(int) Math.min(v.length - 1, Math.floor(q * v.length))];
        }

        void check(String encoding) {
            // Medians: the tissue's density. Noise is 2.5-5 HU per pixel (15 in bone), so single pixels stray
            // from a range that the tissue itself keeps; bone and air are checked at 0.1 % and 99.9 % too.
            within(encoding, SliceRenderer.AIR, 0.5, -1010, -990);
            within(encoding, SliceRenderer.AIR, 0.001, -1024, -975);
            within(encoding, SliceRenderer.AIR, 0.999, -1024, -975);
            for (byte bone : new byte[]{SliceRenderer.BONE, SliceRenderer.DIPLOE, SliceRenderer.BASE_BONE}) {
                if (values.get(bone).isEmpty()) continue;
                within(encoding, bone, 0.001, 700, 2000);
                within(encoding, bone, 0.999, 700, 2000);
            }
            within(encoding, SliceRenderer.GREY, 0.5, 20, 45);
            within(encoding, SliceRenderer.WHITE, 0.5, 20, 45);
            within(encoding, SliceRenderer.DEEP_GREY, 0.5, 20, 45);
            assertTrue(quantile(SliceRenderer.GREY, 0.5) > quantile(SliceRenderer.WHITE, 0.5) + 4, encoding + ": grey is denser than white");
            within(encoding, SliceRenderer.CSF, 0.5, 0, 15);
            within(encoding, SliceRenderer.VENTRICLE, 0.5, 0, 15);
        }

        private void within(String encoding, int tissue, double q, double lo, double hi) {
            assertFalse(values.get(tissue).isEmpty(), encoding + ": no " + SliceRenderer.tissueName(tissue));
            double v = quantile(tissue, q);
            assertTrue(v >= lo && v <= hi, encoding + ": " + SliceRenderer.tissueName(tissue) + " quantile " + q + " is " + v
                    + " HU, outside [" + lo + ", " + hi + "]");
        }
    }

    /**
     * Blood where a label says so and nowhere else, at acute density, never smaller than visible. On a plan with
     * more hemorrhage than RSNA's (60 % of slices) so that every subtype shows; the rendered HU are those of the
     * files (see {@link #everyFileReadsBackWithTheRenderedHounsfieldUnits}).
     */
    @Test
    void lesionPixelsMatchTheLabels() {
        SliceRenderer renderer = new SliceRenderer(SIZE);
        int positives = 0, agree = 0, slices = 0;
        Set<Subtype> seen = EnumSet.noneOf(Subtype.class);
        for (SynthStudy s : SynthDataset.plan(config.withPrevalence(Prevalence.RSNA_STAGE_1.withAnyRate(0.6)))) {
            double pixelArea = s.acquisition().pixelSpacing() * s.acquisition().pixelSpacing();
            for (int k = 0; k < s.slices(); k++) {
                SliceRenderer.Slice slice = renderer.render(s, k);
                slices++;
                String at = "study " + s.index() + ", slice " + k;
                int[] count = new int[Subtype.COUNT];
                for (int p = 0; p < slice.lesionMask().length; p++) {
                    int m = slice.lesionMask()[p];
                    if (m == 0) continue;
                    assertTrue(slice.hu()[p] >= 50 && slice.hu()[p] <= 90, at + ": blood pixel at " + slice.hu()[p] + " HU");
                    for (int t = 1; t < Subtype.COUNT; t++) count[t] += (m >>> t) & 1;
                    assertEquals(0, m & Subtype.ANY.bit(), "the mask has no any bit");
                }
                for (int t = 1; t < Subtype.COUNT; t++) {
                    boolean label = (slice.labelBits() >>> t & 1) == 1;
                    assertEquals(label, count[t] > 0, at + ": " + Subtype.of(t).csvName() + " label vs blood pixels " + count[t]);
                    if (label) {
                        assertTrue(count[t] * pixelArea >= SliceRenderer.MIN_VISIBLE_MM2, at + ": visible");
                        seen.add(Subtype.of(t));
                    }
                }
                assertEquals((slice.labelBits() & ~1) != 0, (slice.labelBits() & 1) == 1, at + ": any is the OR of the subtypes");
                if (slice.labelBits() != 0) positives++;
                if (slice.labelBits() == slice.plannedBits()) agree++;
            }
        }
        assertTrue(positives > 0.3 * slices, positives + " positive slices");
        assertEquals(EnumSet.range(Subtype.EPIDURAL, Subtype.SUBDURAL), seen, "every subtype occurs");
        // The plan decides the labels; rendering only drops a lesion's end where too little of it shows.
        assertTrue(agree >= 0.98 * slices, agree + " of " + slices + " slices as planned");
    }

    @Test
    void labelFilesParseAndMatchTheImagesOnDisk() throws IOException {
        LabelTable train = LabelCsv.read(out.resolve(SynthDataset.TRAIN_LABELS));
        LabelTable test = LabelCsv.read(out.resolve(SynthDataset.TEST_LABELS));
        Submission sample = SubmissionCsv.read(out.resolve(SynthDataset.SAMPLE_SUBMISSION));
        Set<String> onDisk = new HashSet<>();
        try (Stream<Path> s = Files.list(out.resolve(SynthDataset.IMAGES))) {
            s.forEach(p -> onDisk.add(p.getFileName().toString().replace(".dcm", "")));
        }
        Set<String> labelled = new HashSet<>(train.imageIds());
        for (String id : test.imageIds()) assertTrue(labelled.add(id), id + " is in both the training and the test labels");
        assertEquals(onDisk, labelled, "every image on disk is labelled once, and every label has its image");
        assertEquals(test.imageIds(), sample.imageIds(), "the sample submission lists the test images");
        for (int i = 0; i < sample.images(); i++) {
            for (Subtype t : Subtype.values()) assertEquals(0.5f, sample.predictions().probability(i, t));
        }
        assertEquals(6 * sample.images(), sample.rows());
        assertEquals(0, train.duplicatesMerged());

        // Labels as rendered, per image, in both files; the summary counts them.
        SliceRenderer renderer = new SliceRenderer(SIZE);
        long[] positives = new long[Subtype.COUNT];
        Set<String> trainStudies = new HashSet<>(), testStudies = new HashSet<>(), trainPatients = new HashSet<>(), testPatients = new HashSet<>();
        for (SynthStudy s : plan) {
            LabelTable table = s.test() ? test : train;
            (s.test() ? testStudies : trainStudies).add(s.studyInstanceUid());
            (s.test() ? testPatients : trainPatients).add(s.patientId());
            for (int k = 0; k < s.slices(); k++) {
                int image = table.indexOf(s.imageIds().get(k));
                assertTrue(image >= 0, s.imageIds().get(k) + " is in the " + (s.test() ? "test" : "training") + " labels");
                int bits = renderer.render(s, k).labelBits();
                assertEquals(bits, table.labelBits(image), s.imageIds().get(k));
                for (int t = 0; t < Subtype.COUNT; t++) positives[t] += bits >>> t & 1;
            }
        }
        for (Subtype t : Subtype.values()) assertEquals(positives[t.ordinal()], summary.positives(t), t.csvName());
        assertEquals(STUDIES * SLICES, summary.images());

        // Disjoint by study and by patient, as the files' own headers say.
        assertTrue(Collections.disjoint(trainStudies, testStudies));
        assertTrue(Collections.disjoint(trainPatients, testPatients));
        for (String id : test.imageIds()) {
            try (DicomFile f = DicomFile.open(out.resolve(SynthDataset.IMAGES).resolve(id + ".dcm"))) {
                assertTrue(testStudies.contains(f.header().studyInstanceUid()));
                assertFalse(trainPatients.contains(f.header().patientId()));
            }
        }
        assertEquals(Math.round(0.25 * STUDIES), testStudies.size(), "a quarter of the studies held out");
    }

    /**
     * The label rates of the 320 rendered slices against RSNA's. Positive slices come in runs within studies, so
     * the error of a rate is that of a mean over 16 studies: its standard error is the standard deviation of the
     * per-study rates over sqrt(16). Allowed: 4 such errors (plus one slice), which a correct generator exceeds
     * for a seed about once in 10,000; the tight check of the rates is {@link LesionPlannerTest} on 20,000 plans.
     */
    @Test
    void labelRatesWithinSamplingErrorOfTheTargets() {
        SliceRenderer renderer = new SliceRenderer(SIZE);
        double[][] perStudy = new double[STUDIES][Subtype.COUNT];
        for (SynthStudy s : plan) {
            for (int k = 0; k < s.slices(); k++) {
                int bits = renderer.render(s, k).labelBits();
                for (int t = 0; t < Subtype.COUNT; t++) perStudy[s.index()][t] += (bits >>> t & 1) / (double) SLICES;
            }
        }
        for (Subtype t : Subtype.values()) {
            double mean = 0, var = 0;
            for (double[] r : perStudy) mean += r[t.ordinal()] / STUDIES;
            for (double[] r : perStudy) var += (r[t.ordinal()] - mean) * (r[t.ordinal()] - mean) / (STUDIES - 1);
            // With no positive study in the sample, the spread is unknown: take the target's own (a study that has
            // the subtype covers about a third of its slices).
            double se = Math.sqrt(Math.max(var, config.prevalence().rate(t) * 0.35) / STUDIES);
            double tolerance = 4 * se + 1.0 / (STUDIES * SLICES);
            assertEquals(config.prevalence().rate(t), mean, tolerance, t.csvName() + " rate over " + STUDIES * SLICES + " slices");
        }
    }
}
