package ich.infer;

import ich.eda.HeaderScan;
import ich.io.Csv;
import ich.labels.Predictions;
import ich.labels.Submission;
import ich.labels.SubmissionCsv;
import ich.labels.Subtype;
import ich.nn.Tensor;
import ich.preprocess.Preprocessor;
import ich.train.BatchLoader;
import ich.train.ImageCatalog;
import ich.train.LoadedBatch;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Scores DICOM files into a Kaggle submission and its companion reports.
 *
 * <p>Outputs, all in the submission's folder and each written atomically at the end: the submission
 * ({@code ID,Label}, six rows per image, in the sample submission's order when one is given), {@code per_image.csv}
 * (identity, slice position and the six probabilities), {@code per_study.csv} (per study, the highest slice
 * probability of each subtype: what a triage list sorts by) and {@code errors.csv} (every input that could not be
 * scored, with the reason). Every input is in exactly one of per_image.csv and errors.csv.
 *
 * <p>While running, results go to {@code per_image.partial.csv} and {@code errors.partial.csv}, flushed after each
 * batch; {@code resume} keeps what they hold and scores only the rest, so a crash costs one batch.
 */
public final class ScoringRun {
    public static final String PER_IMAGE = "per_image.csv";
    public static final String PER_STUDY = "per_study.csv";
    public static final String ERRORS = "errors.csv";
    static final String PARTIAL_IMAGES = "per_image.partial.csv";
    static final String PARTIAL_ERRORS = "errors.partial.csv";
    static final String IMAGE_HEADER = "image,patient_id,study_uid,series_uid,z," + subtypeColumns("");
    static final String ERROR_HEADER = "image,file,reason";

    /**
     * @param size       the model's input size (the centre crop of the image resized to it)
     * @param flipTta    also score each image mirrored and average the two
     * @param resume     keep the partial results of an interrupted run with the same output
     * @param idRoot     null to name each image after its file (the RSNA layout, {@code ID_<hex>.dcm}); else a folder
     *                   above every input, and each image is named by its path under it, '/'-separated, without
     *                   {@code .dcm}, so that exports which reuse file names in each series folder ({@code SE1/IM0},
     *                   {@code SE2/IM0}) keep their images apart
     */
    public record Options(List<Path> inputs, Path sampleSubmission, Path submission, int size, int batch, int workers,
                          boolean flipTta, boolean resume, long seed, Path idRoot) {
        public Options(List<Path> inputs, Path sampleSubmission, Path submission, int size, int batch, int workers,
                       boolean flipTta, boolean resume, long seed) {
            this(inputs, sampleSubmission, submission, size, batch, workers, flipTta, resume, seed, null);
        }

        /** The image id of an input file (of its first frame, for a single-frame file its only one). */
        public String imageId(Path file) {
            if (idRoot == null) return HeaderScan.imageId(file);
            Path relative = idRoot.toAbsolutePath().normalize().relativize(file.toAbsolutePath().normalize());
            if (relative.startsWith("..")) throw new IllegalArgumentException(file + " is not under " + idRoot);
            String parent = relative.getParent() == null ? "" : relative.getParent().toString().replace(java.io.File.separatorChar, '/') + "/";
            return parent + HeaderScan.imageId(relative);
        }
    }

    /** What a run did. {@code complete} is false when the sample submission lists images that were not scored. */
    public record Summary(int scored, int failed, int resumed, double imagesPerSecond, boolean complete, String problem) {}

    private record Scored(String image, String patient, String study, String series, double z, float[] p) {}

    private ScoringRun() {}

    public static Summary run(Scorer scorer, Options o, PrintStream log) throws IOException, InterruptedException {
        Path folder = o.submission().toAbsolutePath().getParent();
        Files.createDirectories(folder);
        Path partialImages = folder.resolve(PARTIAL_IMAGES), partialErrors = folder.resolve(PARTIAL_ERRORS);
        Map<String, Scored> scored = new LinkedHashMap<>();
        Map<String, String[]> errors = new LinkedHashMap<>(); // image -> {file, reason}
        if (o.resume()) {
            readPartials(partialImages, partialErrors, scored, errors);
        } else {
            Files.deleteIfExists(partialImages);
            Files.deleteIfExists(partialErrors);
        }
        int resumed = scored.size() + errors.size();
        Submission sample = o.sampleSubmission() == null ? null : SubmissionCsv.read(o.sampleSubmission());

        // Inputs: one per image id; the first file wins and a second one with the same id is an error row.
        List<Path> todo = new ArrayList<>();
        Map<String, Path> seen = new HashMap<>();
        List<String[]> newErrors = new ArrayList<>();
        for (Path f : o.inputs()) {
            String id = o.imageId(f);
            Path first = seen.putIfAbsent(id, f);
            if (first != null) {
                String why = "a second file for image " + id + " (first: " + first + ")"
                        + (o.idRoot() == null ? "; images are named after their files: ich score --image-id path names them by their path" : "");
                if (!errors.containsKey(id + "@" + f)) newErrors.add(new String[] {id + "@" + f, f.toString(), why});
            } else if (!scored.containsKey(id) && !errors.containsKey(id)) {
                todo.add(f);
            }
        }
        long start = System.nanoTime();
        int newlyScored = 0;
        try (BufferedWriter images = appender(partialImages, IMAGE_HEADER);
             BufferedWriter errorLog = appender(partialErrors, ERROR_HEADER)) {
            for (String[] e : newErrors) {
                errors.put(e[0], new String[] {e[1], e[2]});
                writeError(errorLog, e[0], e[1], e[2]);
            }
            ImageCatalog.Result catalog = ImageCatalog.scan(todo, o::imageId, o.workers());
            for (ImageCatalog.Unreadable u : catalog.unreadable()) {
                errors.put(u.imageId(), new String[] {u.file().toString(), u.error()});
                writeError(errorLog, u.imageId(), u.file().toString(), u.error());
            }
            errorLog.flush();
            // A multi-frame file is one image per frame, each id'd after the file and the frame; on --resume a
            // frame that an earlier run scored, or recorded as an error, is not scored again.
            List<ImageCatalog.Image> readable = catalog.images().stream()
                    .filter(im -> !scored.containsKey(im.imageId()) && !errors.containsKey(im.imageId())).toList();
            List<Preprocessor.Input> inputs = new ArrayList<>(readable.size());
            int[] rows = new int[readable.size()];
            for (int i = 0; i < rows.length; i++) {
                inputs.add(new Preprocessor.Input(readable.get(i).file(), readable.get(i).frame(), i));
                rows[i] = i;
            }
            if (!inputs.isEmpty()) {
                var plan = new BatchLoader.Plan(inputs, rows, new float[rows.length * Subtype.COUNT], Subtype.COUNT, o.batch(), o.seed(), 0);
                Preprocessor pre = new Preprocessor(Preprocessor.Config.eval(o.size(), o.size()));
                try (BatchLoader loader = new BatchLoader(pre, plan, o.workers(), 2)) {
                    while (loader.hasNext()) {
                        try (LoadedBatch batch = loader.next()) {
                            for (Preprocessor.Failure f : batch.failures()) {
                                ImageCatalog.Image image = readable.get(batch.index() * o.batch() + f.index());
                                errors.put(image.imageId(), new String[] {image.file().toString(), f.message()});
                                writeError(errorLog, image.imageId(), image.file().toString(), f.message());
                            }
                            if (batch.n() > 0) {
                                float[] p = predict(scorer, batch.images(), o.flipTta());
                                for (int i = 0; i < batch.n(); i++) {
                                    ImageCatalog.Image im = readable.get(batch.samples()[i]);
                                    float[] pi = java.util.Arrays.copyOfRange(p, i * Subtype.COUNT, (i + 1) * Subtype.COUNT);
                                    Scored s = new Scored(im.imageId(), im.patientId(), im.studyUid(), im.seriesUid(), im.z(), pi);
                                    scored.put(s.image(), s);
                                    images.write(imageRow(s));
                                    images.newLine();
                                }
                                newlyScored += batch.n();
                            }
                            images.flush();
                            errorLog.flush();
                        }
                    }
                }
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double rate = seconds > 0 ? newlyScored / seconds : 0;

        String problem = null;
        if (sample != null) {
            List<String> missing = new ArrayList<>();
            for (String id : sample.imageIds()) {
                if (!scored.containsKey(id) && !errors.containsKey(id)) missing.add(id);
            }
            long notScored = sample.imageIds().stream().filter(id -> !scored.containsKey(id)).count();
            if (notScored > 0) {
                problem = notScored + " image(s) of the sample submission " + o.sampleSubmission() + " were not scored ("
                        + missing.size() + " had no input file, e.g. " + missing.stream().limit(3).toList()
                        + "; the others are in " + ERRORS + "); the submission was not written";
            }
        }
        writeReports(folder, scored, errors);
        if (problem == null) {
            List<String> ids = new ArrayList<>(scored.keySet());
            float[] p = new float[ids.size() * Subtype.COUNT];
            for (int i = 0; i < ids.size(); i++) System.arraycopy(scored.get(ids.get(i)).p(), 0, p, i * Subtype.COUNT, Subtype.COUNT);
            Predictions predictions = new Predictions(ids, p);
            if (sample != null) {
                // Scored images the sample does not list are kept in per_image.csv but cannot go into the submission.
                List<String> wanted = sample.imageIds();
                float[] q = new float[wanted.size() * Subtype.COUNT];
                for (int i = 0; i < wanted.size(); i++) System.arraycopy(scored.get(wanted.get(i)).p(), 0, q, i * Subtype.COUNT, Subtype.COUNT);
                SubmissionCsv.write(o.submission(), new Predictions(wanted, q), sample);
            } else {
                SubmissionCsv.write(o.submission(), predictions);
            }
        }
        Files.deleteIfExists(partialImages);
        Files.deleteIfExists(partialErrors);
        log.printf(Locale.ROOT, "scored %d image(s) (%d from an earlier run), %d error(s), %.1f images/s with %s%n",
                scored.size(), resumed, errors.size(), rate, scorer.name());
        return new Summary(scored.size(), errors.size(), resumed, rate, problem == null, problem);
    }

    /** The scorer's probabilities, averaged with those of the mirrored images when {@code flip}. */
    static float[] predict(Scorer scorer, Tensor images, boolean flip) {
        float[] p = scorer.probabilities(images);
        if (!flip) return p;
        int n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
        try (Arena arena = Arena.ofConfined()) {
            Tensor mirrored = Tensor.allocate(arena, n, c, h, w);
            MemorySegment src = images.data(), dst = mirrored.data();
            for (long row = 0; row < (long) n * c * h; row++) {
                long base = row * w;
                for (int x = 0; x < w; x++) {
                    dst.setAtIndex(Tensor.FLOAT, base + x, src.getAtIndex(Tensor.FLOAT, base + w - 1 - x));
                }
            }
            float[] q = scorer.probabilities(mirrored);
            for (int i = 0; i < p.length; i++) p[i] = (p[i] + q[i]) / 2;
        }
        return p;
    }

    private static void writeReports(Path folder, Map<String, Scored> scored, Map<String, String[]> errors) throws IOException {
        List<Scored> byPosition = new ArrayList<>(scored.values());
        // Study, then slice position: per_image.csv reads as a stack of slices, as a radiologist scrolls it.
        byPosition.sort(Comparator.comparing((Scored s) -> s.study() == null ? "" : s.study())
                .thenComparingDouble(s -> Double.isNaN(s.z()) ? Double.MAX_VALUE : s.z()).thenComparing(Scored::image));
        Csv.write(folder.resolve(PER_IMAGE), IMAGE_HEADER, byPosition.stream().map(ScoringRun::imageRow).toList());

        Map<String, float[]> maxima = new TreeMap<>();
        Map<String, Integer> slices = new HashMap<>();
        for (Scored s : scored.values()) {
            String study = s.study() == null ? "image:" + s.image() : s.study();
            float[] m = maxima.computeIfAbsent(study, k -> new float[Subtype.COUNT]);
            for (int k = 0; k < Subtype.COUNT; k++) m[k] = Math.max(m[k], s.p()[k]);
            slices.merge(study, 1, Integer::sum);
        }
        List<String> studyRows = new ArrayList<>();
        maxima.entrySet().stream()
                .sorted((a, b) -> Float.compare(b.getValue()[0], a.getValue()[0]))
                .forEach(e -> studyRows.add(Csv.cell(e.getKey()) + "," + slices.get(e.getKey()) + "," + probabilities(e.getValue())));
        Csv.write(folder.resolve(PER_STUDY), "study_uid,slices," + subtypeColumns("max_"), studyRows);

        List<String> errorRows = new ArrayList<>();
        for (var e : errors.entrySet()) errorRows.add(errorRow(e.getKey(), e.getValue()[0], e.getValue()[1]));
        Csv.write(folder.resolve(ERRORS), ERROR_HEADER, errorRows);
    }

    private static void readPartials(Path images, Path errorFile, Map<String, Scored> scored, Map<String, String[]> errors) throws IOException {
        if (Files.exists(images)) {
            List<String> lines = Files.readAllLines(images, StandardCharsets.UTF_8);
            for (int i = 1; i < lines.size(); i++) {
                List<String> c = Csv.split(lines.get(i));
                if (c.size() != 5 + Subtype.COUNT) continue; // a line cut short by the crash: scored again
                float[] p = new float[Subtype.COUNT];
                try {
                    for (int k = 0; k < p.length; k++) p[k] = Float.parseFloat(c.get(5 + k));
                } catch (NumberFormatException e) {
                    continue;
                }
                scored.put(c.get(0), new Scored(c.get(0), blank(c.get(1)), blank(c.get(2)), blank(c.get(3)),
                        c.get(4).isEmpty() ? Double.NaN : Double.parseDouble(c.get(4)), p));
            }
        }
        if (Files.exists(errorFile)) {
            List<String> lines = Files.readAllLines(errorFile, StandardCharsets.UTF_8);
            for (int i = 1; i < lines.size(); i++) {
                List<String> c = Csv.split(lines.get(i));
                if (c.size() == 3) errors.put(c.get(0), new String[] {c.get(1), c.get(2)});
            }
        }
    }

    private static BufferedWriter appender(Path file, String header) throws IOException {
        boolean fresh = !Files.exists(file) || Files.size(file) == 0;
        BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        if (fresh) {
            w.write(header);
            w.newLine();
        } else {
            w.newLine(); // ends a line the crash may have cut; the reader skips the empty or broken line
        }
        return w;
    }

    private static void writeError(BufferedWriter w, String image, String file, String reason) throws IOException {
        w.write(errorRow(image, file, reason));
        w.newLine();
    }

    private static String errorRow(String image, String file, String reason) {
        return Csv.cell(image) + "," + Csv.cell(file) + "," + Csv.cell(reason);
    }

    private static String imageRow(Scored s) {
        return Csv.cell(s.image()) + "," + Csv.cell(s.patient()) + "," + Csv.cell(s.study()) + "," + Csv.cell(s.series()) + ","
                + (Double.isNaN(s.z()) ? "" : Double.toString(s.z())) + "," + probabilities(s.p());
    }

    private static String probabilities(float[] p) {
        StringBuilder sb = new StringBuilder();
        for (int k = 0; k < p.length; k++) sb.append(k == 0 ? "" : ",").append(p[k]);
        return sb.toString();
    }

    private static String subtypeColumns(String prefix) {
        StringBuilder sb = new StringBuilder();
        for (Subtype s : Subtype.values()) sb.append(sb.isEmpty() ? "" : ",").append(prefix).append(s.csvName());
        return sb.toString();
    }

    private static String blank(String s) {
        return s.isEmpty() ? null : s;
    }
}
