package ich.cli;

import ich.labels.LabelCsv;
import ich.labels.SubmissionCsv;
import ich.labels.Subtype;
import ich.synth.SynthDataset;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

@Command(name = "demo", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"The whole mission on a small synthetic data set, on the CPU: makes 512x512 head-CT slices with "
                + "labels (DIR/data), trains EfficientNet-B0 briefly at a reduced image size (DIR/run), scores the held-out "
                + "studies into a Kaggle submission (DIR/submission.csv) and evaluates it against their labels and the prior "
                + "baseline (DIR/report.txt).",
                "Each step is an ich command; the demo prints it, so any step can be rerun or changed by hand."})
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--out", defaultValue = "ich-demo", paramLabel = "DIR", description = "Output folder (default ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--studies", defaultValue = "120", paramLabel = "N", description = "Synthetic studies, one patient each (default ${DEFAULT-VALUE}).")
    int studies;

    @Option(names = "--slices-per-study", defaultValue = "12", paramLabel = "M", description = "Slices per study (default ${DEFAULT-VALUE}).")
    int slices;

    @Option(names = "--positive-rate", defaultValue = "0.4", paramLabel = "RATE",
            description = "Share of slices with a hemorrhage (default ${DEFAULT-VALUE}: richer in positives than RSNA's 0.144, so a short run has enough to learn from).")
    double positiveRate;

    @Option(names = "--image-size", defaultValue = "96", paramLabel = "S", description = "Model input size (default ${DEFAULT-VALUE}).")
    int imageSize;

    @Option(names = "--epochs", defaultValue = "14", paramLabel = "E", description = "Whole-network epochs after the frozen one (default ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Seed of the data and the run (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--check", description = "Exit with status 1 unless the held-out weighted log loss is at least 5 % below the prior baseline's (what CI asserts).")
    boolean check;

    @Option(names = "--overwrite", description = "Replace the results of an earlier demo in DIR.")
    boolean overwrite;

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        Path data = out.resolve("data"), run = out.resolve("run"), submission = out.resolve("submission.csv");
        if (Files.exists(run) && !overwrite) {
            System.err.println("ich demo: " + out + " already holds a demo; pass --overwrite or another --out");
            return 2;
        }
        if (overwrite) deleteTree(out);
        Files.createDirectories(out);
        String s = Long.toString(seed);

        int rc = step("1/4 synthetic data", "synth", "--out", data.toString(), "--studies", Integer.toString(studies),
                "--slices-per-study", Integer.toString(slices), "--seed", s, "--positive-rate", Double.toString(positiveRate),
                "--test-fraction", "0.2");
        if (rc != 0) return rc;
        // From scratch (no ImageNet weights can be fetched here) a higher rate than the seed's 4e-4 fine-tuning rate
        // learns within minutes; every image in each epoch (the seed's 1/6 epochs are for 600k images).
        rc = step("2/4 training", "train", "--data", data.toString(), "--out", run.toString(), "--image-size",
                Integer.toString(imageSize), "--batch", "32", "--head-epochs", "1", "--head-lr", "1e-3", "--epochs",
                Integer.toString(epochs), "--lr", "2e-3", "--epoch-fraction", "1", "--cosine", "--val-fraction", "0.15", "--seed", s);
        if (rc != 0) return rc;

        Path sample = data.resolve(SynthDataset.SAMPLE_SUBMISSION);
        List<String> testImages = SubmissionCsv.read(sample).imageIds();
        List<String> lines = new ArrayList<>();
        for (String id : testImages) lines.add(data.resolve(SynthDataset.IMAGES).resolve(id + ".dcm").toAbsolutePath().toString());
        Path list = out.resolve("test-images.txt");
        Files.write(list, lines, StandardCharsets.UTF_8);
        rc = step("3/4 scoring the held-out studies", "score", "--model", run.resolve("best.safetensors").toString(),
                "--list", list.toString(), "--sample-submission", sample.toString(), "--out", submission.toString());
        if (rc != 0) return rc;

        Path labels = data.resolve(SynthDataset.TEST_LABELS), trainLabels = data.resolve(SynthDataset.TRAIN_LABELS);
        StringWriter report = new StringWriter();
        rc = step("4/4 evaluation", report, "evaluate", "--predictions", submission.toString(), "--labels", labels.toString(),
                "--prior-from", trainLabels.toString());
        if (rc != 0) return rc;
        double minutes = (System.nanoTime() - start) / 60e9;
        EvaluateCommand.Comparison summary = summarize(submission, labels, trainLabels);
        String head = String.format(Locale.ROOT, "ich demo: %d synthetic studies x %d slices, EfficientNet-B0 at %dx%d, %d+1 epochs, %.1f minutes%n%n",
                studies, slices, imageSize, imageSize, epochs, minutes);
        Files.writeString(out.resolve("report.txt"), head + report, StandardCharsets.UTF_8);
        System.out.printf(Locale.ROOT, "%ndemo finished in %.1f minutes%n", minutes);
        System.out.printf(Locale.ROOT, "  held-out weighted log loss %.4f (prior baseline %.4f), AUC any %.3f%n",
                summary.model().weightedLogLoss(), summary.prior().weightedLogLoss(), summary.model().auc(Subtype.ANY));
        System.out.println("  report      " + out.resolve("report.txt"));
        System.out.println("  curves      " + run.resolve("curves.png"));
        System.out.println("  metrics     " + run.resolve("metrics.csv"));
        System.out.println("  submission  " + submission + " (per_image.csv, per_study.csv, errors.csv beside it)");
        if (check && !(summary.model().weightedLogLoss() <= 0.95 * summary.prior().weightedLogLoss())) {
            System.err.printf(Locale.ROOT, "ich demo: --check failed: weighted log loss %.4f is not 5 %% below the prior's %.4f%n",
                    summary.model().weightedLogLoss(), summary.prior().weightedLogLoss());
            return 1;
        }
        return 0;
    }

    /** The evaluate step's numbers, for the summary (the step itself prints them as text). */
    static EvaluateCommand.Comparison summarize(Path submission, Path labels, Path trainLabels) throws IOException {
        return EvaluateCommand.compare(SubmissionCsv.read(submission).predictions(), LabelCsv.read(labels), LabelCsv.read(trainLabels));
    }

    private static int step(String title, String... args) {
        return step(title, null, args);
    }

    /** Runs one ich command in this JVM, echoing it; its output also goes to {@code capture} when given. */
    private static int step(String title, StringWriter capture, String... args) {
        System.out.println();
        System.out.println("== " + title + ": ich " + String.join(" ", args));
        CommandLine cl = Main.commandLine();
        if (capture != null) {
            StringWriter both = new StringWriter();
            cl.setOut(new PrintWriter(both, true));
            int rc = cl.execute(args);
            System.out.print(both);
            capture.write(both.toString());
            return rc;
        }
        return cl.execute(args);
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (var walk = Files.walk(dir)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(p);
        }
    }
}
