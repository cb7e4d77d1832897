package ich.gpu;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GPU tests skip on CI, so the only run that sees them is {@code bin/gpu-check} on a GPU host, which names the
 * classes it runs one by one: a GPU test class it does not name would never run anywhere.
 */
class GpuCheckScriptTest {
    private static final Path SCRIPT = Path.of("scripts", "gpu-check");
    private static final Path TESTS = Path.of("src", "test", "java");

    /** Classes that look at the GPU but are not GPU tests for gpu-check to run, and why. */
    private static final Map<String, String> NOT_SELECTED = Map.of(
            "ich.cli.BenchCommandTest", "gpu-check runs ich bench preprocess and ich bench train on the GPU itself",
            "ich.cli.BenchOpsCommandTest", "gpu-check runs ich bench ops in both precisions itself",
            "ich.cli.EndToEndTest", "its GPU case checks the message on machines without one",
            "ich.nn.DeviceTest", "its GPU case checks the message on machines without one",
            "ich.gpu.GpuProbeTest", "runs everywhere (the probe's report with and without a GPU)");

    @Test
    void everyGpuTestClassIsOneThatGpuCheckRuns() throws IOException {
        Set<String> selected = selectedClasses();
        Set<String> gpuTests = new TreeSet<>();
        try (Stream<Path> files = Files.walk(TESTS)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.getFileName().toString().endsWith("Test.java"))::iterator) {
                String source = Files.readString(f);
                boolean self = f.getFileName().toString().equals(GpuCheckScriptTest.class.getSimpleName() + ".java");
                if (!self && (source.contains("Gpu.probe()") || source.contains("extends CudaBackendFixture")
                        || source.contains("extends GpuContextFixture"))) {
                    String name = TESTS.relativize(f).toString().replace(f.getFileSystem().getSeparator(), ".");
                    gpuTests.add(name.substring(0, name.length() - ".java".length()));
                }
            }
        }
        assertTrue(gpuTests.size() >= 8, "found only " + gpuTests + ": the scan no longer recognises the GPU tests");
        Set<String> missing = new TreeSet<>(gpuTests);
        missing.removeAll(selected);
        missing.removeAll(NOT_SELECTED.keySet());
        assertEquals(Set.of(), missing, "GPU test classes that " + SCRIPT + " does not --select-class (add them, or to NOT_SELECTED with the reason)");
    }

    @Test
    void everyClassGpuCheckSelectsExists() throws IOException {
        for (String c : selectedClasses()) {
            Path source = TESTS.resolve(c.replace('.', '/') + ".java");
            assertTrue(Files.isRegularFile(source), SCRIPT + " selects " + c + ", which has no source at " + source);
        }
    }

    @Test
    void theGpuHostGuideNamesEveryClassGpuCheckRuns() throws IOException {
        Path guide = Path.of("docs", "gpu-hosts.md");
        String text = Files.readString(guide);
        for (String c : selectedClasses()) {
            String simple = c.substring(c.lastIndexOf('.') + 1);
            assertTrue(text.contains("`" + simple + "`"), guide + " does not name " + simple + ", which " + SCRIPT + " runs");
        }
    }

    private static Set<String> selectedClasses() throws IOException {
        Matcher m = Pattern.compile("--select-class\\s+([A-Za-z0-9_.]+)").matcher(Files.readString(SCRIPT));
        Set<String> classes = new TreeSet<>();
        while (m.find()) classes.add(m.group(1));
        assertTrue(classes.size() >= 8, SCRIPT + " selects only " + classes);
        return classes;
    }
}
