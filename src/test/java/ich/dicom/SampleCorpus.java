package ich.dicom;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The real DICOM files in ../shared/dicom-samples and their DCMTK/GDCM ground truth (manifest.json).
 * Tests that use it skip, with the reason, where the corpus is absent.
 */
public final class SampleCorpus {
    private SampleCorpus() {}

    public static Path root() {
        String override = System.getenv("ICH_DICOM_SAMPLES");
        return override != null ? Path.of(override) : Path.of("..", "shared", "dicom-samples");
    }

    public static boolean present() { return Files.isRegularFile(root().resolve("manifest.json")); }

    public static void assumePresent() {
        Assumptions.assumeTrue(present(), () -> "skipped: DICOM sample corpus not found at " + root().toAbsolutePath()
                + " (set ICH_DICOM_SAMPLES to its folder)");
    }

    public static Path file(String name) { return root().resolve("files").resolve(name); }

    private static JsonNode manifest;

    public static synchronized JsonNode manifest() {
        if (manifest == null) {
            try {
                manifest = new ObjectMapper().readTree(root().resolve("manifest.json").toFile());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return manifest;
    }

    /** Names of all files in the manifest; empty when the corpus is absent (the tests then skip). */
    public static List<String> names() {
        List<String> names = new ArrayList<>();
        if (!present()) return List.of("(corpus absent)");
        for (JsonNode f : manifest().get("files")) names.add(f.get("name").asText());
        return names;
    }

    public static JsonNode entry(String name) {
        for (JsonNode f : manifest().get("files")) if (f.get("name").asText().equals(name)) return f;
        throw new IllegalArgumentException(name + " is not in the manifest");
    }
}
