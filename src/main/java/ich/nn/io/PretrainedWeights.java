package ich.nn.io;

import ich.nn.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Loads a published timm state dict ({@code efficientnet_b0}'s {@code model.safetensors}, for instance
 * {@code timm/efficientnet_b0.ra_in1k}) into a model that names its tensors the same way.
 *
 * <p>Given the model's expected name to shape map, every tensor of the file is sorted into one of: loaded
 * (same name, same shape; F32, F16 or BF16, read as float32); skipped (under a skipped prefix, by default
 * {@code classifier.}: the 1000-class ImageNet head, which the model replaces with its own); ignored
 * ({@code *.num_batches_tracked}, the I64 counters PyTorch's batch norm keeps and only uses without a
 * momentum); unexpected (the model has no such tensor). Expected tensors the file lacks are missing. The
 * report says all this; a tensor of the right name but another shape or a non-float dtype is an error, since
 * it means the file is for another architecture.
 */
public final class PretrainedWeights {
    public static final Set<String> DEFAULT_SKIPPED_PREFIXES = Set.of("classifier.");
    static final String IGNORED_SUFFIX = ".num_batches_tracked";

    private PretrainedWeights() {}

    /** A tensor whose name matches but whose shape (or dtype) does not. */
    public record Mismatch(String name, int[] expected, long[] found, SafeTensors.DType dtype) {
        @Override
        public String toString() {
            return name + ": model " + Arrays.toString(expected) + ", file " + dtype + Arrays.toString(found);
        }
    }

    /**
     * @param loaded     tensors that will be (or were) copied, in file order
     * @param skipped    file tensors under a skipped prefix (the ImageNet head)
     * @param ignored    {@code num_batches_tracked} counters
     * @param unexpected file tensors the model does not have
     * @param missing    model tensors the file does not have (left as initialised)
     * @param keptInitialised model tensors under a skipped prefix (the new head, left as initialised)
     * @param mismatched same name, other shape or a non-float dtype
     */
    public record Report(Path file, List<String> loaded, List<String> skipped, List<String> ignored, List<String> unexpected,
                         List<String> missing, List<String> keptInitialised, List<Mismatch> mismatched) {
        public Report {
            loaded = List.copyOf(loaded);
            skipped = List.copyOf(skipped);
            ignored = List.copyOf(ignored);
            unexpected = List.copyOf(unexpected);
            missing = List.copyOf(missing);
            keptInitialised = List.copyOf(keptInitialised);
            mismatched = List.copyOf(mismatched);
        }

        /** Every expected tensor outside the skipped prefixes was found, nothing unexpected, nothing mis-shaped. */
        public boolean complete() {
            return missing.isEmpty() && unexpected.isEmpty() && mismatched.isEmpty();
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder("pretrained weights ").append(file).append(": loaded ")
                    .append(loaded.size()).append(" of ").append(loaded.size() + missing.size() + mismatched.size())
                    .append(" tensors the model expects from the file\n");
            line(sb, "skipped (model head, left as initialised)", skipped);
            line(sb, "kept as initialised", keptInitialised);
            sb.append("  ignored: ").append(ignored.size()).append(" num_batches_tracked counter(s)\n");
            line(sb, "missing from the file (left as initialised)", missing);
            line(sb, "unexpected (in the file, not in the model)", unexpected);
            line(sb, "mis-shaped", mismatched.stream().map(Mismatch::toString).toList());
            return sb.toString();
        }

        private static void line(StringBuilder sb, String what, List<String> names) {
            sb.append("  ").append(what).append(": ");
            if (names.isEmpty()) sb.append("none");
            else sb.append(names.size()).append(": ").append(String.join(", ", names.subList(0, Math.min(names.size(), 20))))
                    .append(names.size() > 20 ? " and " + (names.size() - 20) + " more" : "");
            sb.append('\n');
        }
    }

    /** The tensors to copy into the model, by name, and what was done with the rest. */
    public record Result(Map<String, Tensor> tensors, Report report) {}

    /** Thrown when a tensor has the right name but not the model's shape or a float dtype; nothing is loaded then. */
    public static final class MismatchException extends IOException {
        private final transient Report report;

        MismatchException(Report report) {
            super(report.file() + ": " + report.mismatched().size() + " tensor(s) do not fit the model, is it another architecture? "
                    + report.mismatched().stream().map(Mismatch::toString).collect(Collectors.joining("; ")));
            this.report = report;
        }

        public Report report() { return report; }
    }

    /** Skips {@link #DEFAULT_SKIPPED_PREFIXES}. */
    public static Result load(Path file, Map<String, int[]> expectedShapes, Arena arena) throws IOException {
        return load(file, expectedShapes, DEFAULT_SKIPPED_PREFIXES, arena);
    }

    /**
     * @param expectedShapes the model's tensors (weights and buffers) by name
     * @param arena          where the loaded tensors are allocated
     * @throws MismatchException when a tensor's name matches but its shape or dtype does not
     */
    public static Result load(Path file, Map<String, int[]> expectedShapes, Set<String> skippedPrefixes, Arena arena) throws IOException {
        try (SafeTensors st = SafeTensors.open(file)) {
            Report report = report(st, expectedShapes, skippedPrefixes);
            if (!report.mismatched().isEmpty()) throw new MismatchException(report);
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (String name : report.loaded()) tensors.put(name, st.tensor(name, arena));
            return new Result(Collections.unmodifiableMap(tensors), report);
        }
    }

    /** Sorts the file's tensors against the model's, reading only the header. */
    static Report report(SafeTensors st, Map<String, int[]> expected, Set<String> skippedPrefixes) {
        List<String> loaded = new ArrayList<>(), skipped = new ArrayList<>(), ignored = new ArrayList<>(),
                unexpected = new ArrayList<>(), missing = new ArrayList<>(), kept = new ArrayList<>();
        List<Mismatch> mismatched = new ArrayList<>();
        for (SafeTensors.Entry e : st.entries()) {
            String name = e.name();
            if (name.endsWith(IGNORED_SUFFIX)) ignored.add(name);
            else if (skipped(name, skippedPrefixes)) skipped.add(name);
            else if (!expected.containsKey(name)) unexpected.add(name);
            else if (!e.dtype().isFloat() || !sameShape(expected.get(name), e.shape())) {
                mismatched.add(new Mismatch(name, expected.get(name).clone(), e.shape(), e.dtype()));
            } else loaded.add(name);
        }
        for (String name : expected.keySet()) {
            if (name.endsWith(IGNORED_SUFFIX)) continue;
            if (skipped(name, skippedPrefixes)) kept.add(name);
            else if (!st.contains(name)) missing.add(name);
        }
        return new Report(st.file(), loaded, skipped, ignored, unexpected, missing, kept, mismatched);
    }

    private static boolean skipped(String name, Set<String> prefixes) {
        for (String p : prefixes) if (name.startsWith(p)) return true;
        return false;
    }

    private static boolean sameShape(int[] expected, long[] found) {
        if (expected.length != found.length) return false;
        for (int i = 0; i < found.length; i++) if (expected[i] != found[i]) return false;
        return true;
    }
}
