package ich.nn.model;

import java.util.List;

/**
 * What {@link EfficientNetB0#load} did with a state dict: the keys it loaded, the model's keys the file lacked,
 * the file's keys the model does not have, those whose shape differs (e.g. a 1000-class ImageNet classifier,
 * "classifier.weight: file [1000, 1280], model [6, 1280]"), and the {@code num_batches_tracked} counters it
 * ignored. Mis-shaped and unexpected tensors are not loaded.
 */
public record LoadReport(List<String> loaded, List<String> missing, List<String> unexpected, List<String> misShaped,
                         List<String> ignored) {
    public LoadReport {
        loaded = List.copyOf(loaded);
        missing = List.copyOf(missing);
        unexpected = List.copyOf(unexpected);
        misShaped = List.copyOf(misShaped);
        ignored = List.copyOf(ignored);
    }

    /** Every model tensor was loaded and nothing in the file was left over. */
    public boolean exact() {
        return missing.isEmpty() && unexpected.isEmpty() && misShaped.isEmpty();
    }

    /** A few lines for a log: counts, then each problem key. */
    public String describe() {
        StringBuilder b = new StringBuilder();
        b.append(loaded.size()).append(" loaded, ").append(missing.size()).append(" missing, ")
                .append(unexpected.size()).append(" unexpected, ").append(misShaped.size()).append(" mis-shaped, ")
                .append(ignored.size()).append(" ignored");
        for (String k : missing) b.append("\n  missing: ").append(k);
        for (String k : unexpected) b.append("\n  unexpected: ").append(k);
        for (String k : misShaped) b.append("\n  mis-shaped: ").append(k);
        return b.toString();
    }
}
