package ich.metrics;

import ich.labels.Subtype;

import java.util.Locale;

/**
 * Metrics of predictions against labels; arrays are per label in {@link Subtype} order. See {@link Metrics}
 * for the definitions.
 *
 * @param images          images evaluated
 * @param weightedLogLoss the competition's metric
 * @param logLoss         mean clipped log loss per label
 * @param auc             ROC AUC per label; NaN where the images hold only one class of it
 * @param accuracy        fraction right at the threshold 0.5
 * @param prevalence      fraction of the images labelled 1
 */
public record Evaluation(int images, double weightedLogLoss, double[] logLoss, double[] auc, double[] accuracy, double[] prevalence) {
    public Evaluation {
        logLoss = logLoss.clone();
        auc = auc.clone();
        accuracy = accuracy.clone();
        prevalence = prevalence.clone();
    }

    public double logLoss(Subtype s) { return logLoss[s.ordinal()]; }

    public double auc(Subtype s) { return auc[s.ordinal()]; }

    public double accuracy(Subtype s) { return accuracy[s.ordinal()]; }

    public double prevalence(Subtype s) { return prevalence[s.ordinal()]; }

    @Override
    public double[] logLoss() { return logLoss.clone(); }

    @Override
    public double[] auc() { return auc.clone(); }

    @Override
    public double[] accuracy() { return accuracy.clone(); }

    @Override
    public double[] prevalence() { return prevalence.clone(); }

    /**
     * One JSON object: {@code {"images": n, "weightedLogLoss": x, "subtypes": {"any": {"logLoss": .., "auc": ..,
     * "accuracy": .., "prevalence": ..}, ...}}}; an undefined AUC is null.
     */
    public String toJson() {
        StringBuilder sb = new StringBuilder("{\"images\": ").append(images).append(", \"weightedLogLoss\": ");
        number(sb, weightedLogLoss).append(", \"subtypes\": {");
        for (Subtype s : Subtype.values()) {
            int l = s.ordinal();
            if (l > 0) sb.append(", ");
            sb.append('"').append(s.csvName()).append("\": {\"logLoss\": ");
            number(sb, logLoss[l]).append(", \"auc\": ");
            number(sb, auc[l]).append(", \"accuracy\": ");
            number(sb, accuracy[l]).append(", \"prevalence\": ");
            number(sb, prevalence[l]).append('}');
        }
        return sb.append("}}").toString();
    }

    static StringBuilder number(StringBuilder sb, double v) {
        return Double.isFinite(v) ? sb.append(v) : sb.append("null");
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "weighted log loss %.6f over %d images;", weightedLogLoss, images));
        for (Subtype s : Subtype.values()) {
            sb.append(String.format(Locale.ROOT, " %s %.4f/AUC %.4f", s.csvName(), logLoss(s), auc(s)));
        }
        return sb.toString();
    }
}
