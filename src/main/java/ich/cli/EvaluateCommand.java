package ich.cli;

import ich.labels.LabelCsv;
import ich.labels.LabelTable;
import ich.labels.Predictions;
import ich.labels.Submission;
import ich.labels.SubmissionCsv;
import ich.labels.Subtype;
import ich.metrics.Evaluation;
import ich.metrics.Metrics;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

@Command(name = "evaluate", mixinStandardHelpOptions = true,
        description = {"Scores a Kaggle submission against labels: the competition's weighted log loss (any weighted 2, "
                + "the subtypes 1; probabilities clipped to [1e-15, 1 - 1e-15]), per subtype log loss, ROC AUC and accuracy "
                + "at 0.5, and the prior baseline (every image predicted with the prevalence) for comparison.",
                "Every labelled image must be predicted and every predicted image labelled.",
                "Exit codes: 0 done, 1 the files do not match or are malformed, 2 a file cannot be read."})
final class EvaluateCommand implements Callable<Integer> {
    /** How many IDs an error lists before it only counts. */
    static final int SHOWN = 10;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--predictions", required = true, paramLabel = "CSV", description = "submission: ID,Label with 6 rows per image")
    Path predictions;

    @Option(names = "--labels", required = true, paramLabel = "CSV", description = "labels in stage_1_train.csv format (ID,Label with 0/1)")
    Path labels;

    @Option(names = "--prior-from", paramLabel = "CSV",
            description = "training labels whose prevalence the prior baseline predicts; default: the evaluated labels' own prevalence")
    Path priorFrom;

    @Option(names = "--json", description = "one JSON object instead of the table")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        for (Path p : priorFrom == null ? List.of(predictions, labels) : List.of(predictions, labels, priorFrom)) {
            if (!Files.isRegularFile(p)) return fail(err, 2, p + " is not a file");
        }
        Submission submission;
        LabelTable truth, prior;
        try {
            submission = SubmissionCsv.read(predictions);
            truth = LabelCsv.read(labels);
            prior = priorFrom == null ? truth : LabelCsv.read(priorFrom);
        } catch (ich.labels.LabelFormatException e) {
            return fail(err, 1, e.getMessage());
        } catch (IOException e) {
            return fail(err, 2, "cannot read: " + e);
        }
        Predictions predicted = submission.predictions();
        String mismatch = mismatch(predicted, truth);
        if (mismatch != null) return fail(err, 1, mismatch);

        Comparison c = compare(predicted, truth, prior);
        Evaluation model = c.model(), baseline = c.prior();
        double[] prevalence = c.prevalence();
        String priorSource = priorFrom == null
                ? "the evaluated labels' own prevalence (" + labels + "; optimistic: pass --prior-from TRAIN_LABELS for a fair baseline)"
                : "the prevalence of " + priorFrom + " (" + prior.images() + " images)";
        out.print(json ? json(model, baseline, prevalence, priorFrom == null ? labels : priorFrom, priorFrom == null) + "\n"
                : text(model, baseline, prevalence, priorSource));
        out.flush();
        return 0;
    }

    /** The predictions' evaluation and the prior baseline's, predicting {@code prevalence} (from the prior table). */
    record Comparison(Evaluation model, Evaluation prior, double[] prevalence) {}

    /** Evaluates {@code predicted} (which must cover every image of {@code truth}) against the prior of {@code prior}. */
    static Comparison compare(Predictions predicted, LabelTable truth, LabelTable prior) {
        int n = truth.images();
        float[] p = new float[n * Subtype.COUNT], y = new float[n * Subtype.COUNT];
        for (int i = 0; i < n; i++) {
            int image = predicted.indexOf(truth.imageId(i));
            for (Subtype s : Subtype.values()) {
                p[i * Subtype.COUNT + s.ordinal()] = predicted.probability(image, s);
                y[i * Subtype.COUNT + s.ordinal()] = truth.label(i, s);
            }
        }
        double[] prevalence = new double[Subtype.COUNT];
        for (Subtype s : Subtype.values()) prevalence[s.ordinal()] = (double) prior.positives(s) / prior.images();
        return new Comparison(Metrics.evaluate(p, y, n), Metrics.prior(prevalence, y, n), prevalence);
    }

    /** Null when both name the same images, else the message listing those missing from either side. */
    static String mismatch(Predictions predicted, LabelTable truth) {
        List<String> unpredicted = new ArrayList<>(), unlabelled = new ArrayList<>();
        int unpredictedCount = 0, unlabelledCount = 0;
        for (int i = 0; i < truth.images(); i++) {
            if (predicted.indexOf(truth.imageId(i)) < 0 && unpredictedCount++ < SHOWN) unpredicted.add(truth.imageId(i));
        }
        for (int i = 0; i < predicted.images(); i++) {
            if (truth.indexOf(predicted.imageId(i)) < 0 && unlabelledCount++ < SHOWN) unlabelled.add(predicted.imageId(i));
        }
        if (unpredictedCount == 0 && unlabelledCount == 0) return null;
        StringBuilder sb = new StringBuilder("predictions and labels name different images:");
        if (unpredictedCount > 0) {
            sb.append("\n  ").append(unpredictedCount).append(" of ").append(truth.images())
                    .append(" labelled image(s) have no predictions: ").append(examples(unpredicted, unpredictedCount));
        }
        if (unlabelledCount > 0) {
            sb.append("\n  ").append(unlabelledCount).append(" of ").append(predicted.images()).append(" predicted image(s) have no labels: ")
                    .append(examples(unlabelled, unlabelledCount));
        }
        return sb.toString();
    }

    private static String examples(List<String> shown, int count) {
        return String.join(", ", shown) + (count > shown.size() ? " and " + (count - shown.size()) + " more" : "");
    }

    /** @param priorP the prevalence the prior predicts, per subtype */
    static String text(Evaluation model, Evaluation prior, double[] priorP, String priorSource) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "images             %d%n", model.images()));
        sb.append(String.format(Locale.ROOT, "weighted log loss  %.6f%n", model.weightedLogLoss()));
        sb.append(String.format(Locale.ROOT, "prior baseline     %.6f%n", prior.weightedLogLoss()));
        sb.append(String.format(Locale.ROOT, "%n%-17s %9s %7s %9s %10s %8s %10s%n", "subtype", "log loss", "AUC", "accuracy", "prevalence", "prior p", "prior loss"));
        for (Subtype s : Subtype.values()) {
            double auc = model.auc(s);
            sb.append(String.format(Locale.ROOT, "%-17s %9.6f %7s %9.4f %10.4f %8.4f %10.6f%n", s.csvName(), model.logLoss(s),
                    Double.isNaN(auc) ? "n/a" : String.format(Locale.ROOT, "%.4f", auc), model.accuracy(s), model.prevalence(s),
                    priorP[s.ordinal()], prior.logLoss(s)));
        }
        sb.append(String.format(Locale.ROOT, "%nprior: every image predicted with %s%n", priorSource));
        boolean undefined = false;
        for (Subtype s : Subtype.values()) undefined |= Double.isNaN(model.auc(s));
        if (undefined) sb.append(String.format(Locale.ROOT, "AUC n/a: the labels hold only one class of that subtype%n"));
        return sb.toString();
    }

    /**
     * The model's {@link Evaluation#toJson} object with a {@code prior} member: the baseline's evaluation (whose
     * {@code prevalence} is the evaluated labels', as everywhere), the probabilities it predicts, and where they
     * came from.
     */
    static String json(Evaluation model, Evaluation prior, double[] priorP, Path priorSource, boolean fromEvaluatedLabels) {
        String m = model.toJson(), p = prior.toJson();
        StringBuilder sb = new StringBuilder(m).deleteCharAt(m.length() - 1).append(", \"prior\": ");
        sb.append(p, 0, p.length() - 1).append(", \"predicted\": {");
        for (Subtype s : Subtype.values()) {
            sb.append(s.ordinal() > 0 ? ", " : "").append('"').append(s.csvName()).append("\": ").append(priorP[s.ordinal()]);
        }
        sb.append("}, \"source\": ");
        quote(sb, priorSource.toString());
        return sb.append(", \"fromEvaluatedLabels\": ").append(fromEvaluatedLabels).append("}}").toString();
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        sb.append('"');
    }

    private int fail(PrintWriter err, int code, String message) {
        err.println("ich evaluate: " + message);
        err.flush();
        return code;
    }
}
