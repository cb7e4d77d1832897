package ich.synth;

import ich.dicom.DicomWriter;
import ich.labels.Predictions;
import ich.labels.Subtype;
import ich.labels.SubmissionCsv;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * A synthetic RSNA-style data set: {@code images/ID_<9 hex>.dcm}, {@code stage_1_train.csv} for the training
 * studies and, for the held-out ones, {@code stage_1_test_labels.csv} and {@code stage_1_sample_submission.csv}
 * (every probability 0.5). Label files are the RSNA format (header {@code ID,Label}, six rows per image, any
 * first, images in id order) written by {@link SubmissionCsv} and read by {@link ich.labels.LabelCsv}.
 *
 * <p>Everything random is planned first, on one thread, from the seed: patients (one in ten has two studies),
 * the split (whole patients held out), ids, anatomy, acquisition and lesions. The studies are then rendered in
 * parallel, each from its own seed, so the files are the same byte for byte whatever the threads do.
 */
public final class SynthDataset {
    public static final String IMAGES = "images";
    public static final String TRAIN_LABELS = "stage_1_train.csv";
    public static final String TEST_LABELS = "stage_1_test_labels.csv";
    public static final String SAMPLE_SUBMISSION = "stage_1_sample_submission.csv";
    /** Share of patients with a second study. */
    static final double SECOND_STUDY = 0.1;

    private SynthDataset() {}

    /** The plan of every study, without drawing a pixel. */
    public static List<SynthStudy> plan(SynthConfig c) {
        LesionPlanner.Knobs knobs = LesionPlanner.calibrate(c.slices(), c.prevalence());
        Rng ids = Rng.derive(c.seed(), 0x696473L);
        Set<String> used = new HashSet<>();
        // Patients and their studies.
        List<int[]> patientStudies = new ArrayList<>();
        for (int s = 0; s < c.studies(); ) {
            int n = c.studies() - s >= 2 && ids.chance(SECOND_STUDY) ? 2 : 1;
            int[] studies = new int[n];
            for (int i = 0; i < n; i++) studies[i] = s++;
            patientStudies.add(studies);
        }
        int patients = patientStudies.size();
        // Held out: whole patients, in a seeded order, until the share of studies is reached.
        boolean[] testPatient = new boolean[patients];
        int wanted = (int) Math.round(c.testFraction() * c.studies());
        if (c.testFraction() > 0 && wanted == 0 && patients > 1) wanted = 1;
        int[] order = new int[patients];
        for (int i = 0; i < patients; i++) order[i] = i;
        for (int i = patients - 1; i > 0; i--) {
            int j = ids.nextInt(i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int held = 0;
        for (int i = 0; i < patients && held < wanted && i < patients - 1; i++) {
            testPatient[order[i]] = true;
            held += patientStudies.get(order[i]).length;
        }
        List<SynthStudy> out = new ArrayList<>(c.studies());
        for (int p = 0; p < patients; p++) {
            Anatomy anatomy = Anatomy.sample(Rng.derive(c.seed(), 0x70617469656E74L, p));
            String patientId = unique(ids, used, 8);
            for (int s : patientStudies.get(p)) {
                long seed = Rng.hash(c.seed(), 0x7374756479L, s);
                Rng r = new Rng(seed);
                Acquisition acq = Acquisition.sample(r, anatomy, c.size(), c.slices());
                List<Lesion> lesions = LesionPlanner.plan(r, Rng.derive(seed, 0x7368617065L), anatomy, acq, knobs);
                String study = unique(ids, used, 10), series = unique(ids, used, 10);
                List<String> images = new ArrayList<>(c.slices());
                for (int k = 0; k < c.slices(); k++) images.add(unique(ids, used, 9));
                out.add(new SynthStudy(s, seed, p, patientId, study, series, List.copyOf(images), anatomy, acq, lesions, testPatient[p]));
            }
        }
        return List.copyOf(out);
    }

    /** "ID_" and {@code digits} random hex digits, not used before. */
    private static String unique(Rng r, Set<String> used, int digits) {
        while (true) {
            String hex = Long.toHexString(r.nextLong() >>> (64 - 4 * digits));
            String id = "ID_" + "0".repeat(digits - hex.length()) + hex;
            if (used.add(id)) return id;
        }
    }

    /** Counts of a finished run. {@code positives} and {@code images} by split: [0] train, [1] test. */
    public record Summary(Path out, int studies, int patients, int[] studiesBySplit, int[] imagesBySplit, long[][] positives,
                          Prevalence target, int threads, double seconds) {
        public int images() { return imagesBySplit[0] + imagesBySplit[1]; }

        public long positives(Subtype s) { return positives[0][s.ordinal()] + positives[1][s.ordinal()]; }

        public double rate(Subtype s) { return images() == 0 ? 0 : positives(s) / (double) images(); }

        public String text() {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format(Locale.ROOT, "wrote %d images of %d studies (%d patients) to %s in %.1f s: %.0f slices/s on %d threads%n",
                    images(), studies, patients, out, seconds, images() / Math.max(seconds, 1e-9), threads));
            sb.append(String.format(Locale.ROOT, "split: train %d images (%d studies), test %d images (%d studies)%n",
                    imagesBySplit[0], studiesBySplit[0], imagesBySplit[1], studiesBySplit[1]));
            sb.append(String.format(Locale.ROOT, "%-17s %9s %8s %8s %8s%n", "label", "positives", "rate", "target", "train"));
            for (Subtype s : Subtype.values()) {
                sb.append(String.format(Locale.ROOT, "%-17s %9d %7.2f%% %7.2f%% %9d%n", s.csvName(), positives(s), 100 * rate(s),
                        100 * target.rate(s), positives[0][s.ordinal()]));
            }
            return sb.toString();
        }
    }

    /**
     * Plans, renders and writes the data set. {@code overwrite} first deletes the .dcm files of an earlier run in
     * {@code images/}; without it, a non-empty {@code images/} is an error (its files would not match the labels).
     */
    public static Summary generate(SynthConfig c, boolean overwrite) throws IOException {
        long start = System.nanoTime();
        List<SynthStudy> studies = plan(c);
        Path images = c.out().resolve(IMAGES);
        Files.createDirectories(images);
        List<Path> old;
        try (Stream<Path> s = Files.list(images)) {
            old = s.filter(p -> p.getFileName().toString().endsWith(".dcm")).toList();
        }
        if (!old.isEmpty()) {
            if (!overwrite) throw new IllegalStateException(images + " already holds " + old.size() + " .dcm files: choose an empty folder or overwrite");
            for (Path p : old) Files.delete(p);
        }
        int[][] labels = render(studies, images, c.threads(), c.size());
        writeLabels(c.out(), studies, labels);

        int[] studiesBySplit = new int[2], imagesBySplit = new int[2];
        long[][] positives = new long[2][Subtype.COUNT];
        Set<Integer> patients = new HashSet<>();
        for (SynthStudy s : studies) {
            int side = s.test() ? 1 : 0;
            studiesBySplit[side]++;
            imagesBySplit[side] += s.slices();
            patients.add(s.patient());
            for (int bits : labels[s.index()]) for (int t = 0; t < Subtype.COUNT; t++) positives[side][t] += (bits >>> t) & 1;
        }
        return new Summary(c.out(), studies.size(), patients.size(), studiesBySplit, imagesBySplit, positives, c.prevalence(),
                c.threads(), (System.nanoTime() - start) / 1e9);
    }

    /** Renders and writes every study on {@code threads} threads; returns each slice's label bits. */
    static int[][] render(List<SynthStudy> studies, Path images, int threads, int size) throws IOException {
        int[][] labels = new int[studies.size()][];
        AtomicInteger next = new AtomicInteger();
        AtomicBoolean failed = new AtomicBoolean();
        int workers = Math.min(threads, studies.size());
        try (ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "synth");
            t.setDaemon(true);
            return t;
        })) {
            List<Future<?>> futures = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                futures.add(pool.submit(() -> {
                    SliceRenderer renderer = new SliceRenderer(size);
                    byte[] pixels = new byte[2 * size * size];
                    try {
                        for (int i; !failed.get() && (i = next.getAndIncrement()) < studies.size(); ) {
                            SynthStudy s = studies.get(i);
                            int[] bits = new int[s.slices()];
                            for (int k = 0; k < s.slices(); k++) {
                                SliceRenderer.Slice slice = renderer.render(s, k);
                                SliceRenderer.encode(slice.hu(), s.acquisition().encoding(), pixels);
                                DicomWriter.ctImage(s.image(k, pixels))
                                        .write(images.resolve(s.imageIds().get(k) + ".dcm"), s.acquisition().syntax());
                                bits[k] = slice.labelBits();
                            }
                            labels[s.index()] = bits;
                        }
                    } catch (IOException e) {
                        failed.set(true);
                        throw new UncheckedIOException(e);
                    } catch (RuntimeException | Error e) {
                        failed.set(true);
                        throw e;
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof UncheckedIOException u) throw u.getCause();
                    if (e.getCause() instanceof RuntimeException r) throw r;
                    if (e.getCause() instanceof Error err) throw err;
                    throw new IllegalStateException(e.getCause());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    failed.set(true);
                    throw new IOException("interrupted", e);
                }
            }
        }
        return labels;
    }

    /** The three label files; the test files only when studies are held out. */
    static void writeLabels(Path out, List<SynthStudy> studies, int[][] labels) throws IOException {
        for (boolean test : new boolean[]{false, true}) {
            List<String[]> rows = new ArrayList<>();  // {id, bits}
            for (SynthStudy s : studies) {
                if (s.test() != test) continue;
                for (int k = 0; k < s.slices(); k++) rows.add(new String[]{s.imageIds().get(k), Integer.toString(labels[s.index()][k])});
            }
            if (test && rows.isEmpty()) {
                Files.deleteIfExists(out.resolve(TEST_LABELS));
                Files.deleteIfExists(out.resolve(SAMPLE_SUBMISSION));
                continue;
            }
            rows.sort(Comparator.comparing(r -> r[0]));
            List<String> ids = new ArrayList<>(rows.size());
            float[] truth = new float[rows.size() * Subtype.COUNT], half = new float[truth.length];
            for (int i = 0; i < rows.size(); i++) {
                ids.add(rows.get(i)[0]);
                int bits = Integer.parseInt(rows.get(i)[1]);
                for (int t = 0; t < Subtype.COUNT; t++) truth[i * Subtype.COUNT + t] = (bits >>> t) & 1;
            }
            Arrays.fill(half, 0.5f);
            SubmissionCsv.write(out.resolve(test ? TEST_LABELS : TRAIN_LABELS), new Predictions(ids, truth));
            if (test) SubmissionCsv.write(out.resolve(SAMPLE_SUBMISSION), new Predictions(ids, half));
        }
    }
}
