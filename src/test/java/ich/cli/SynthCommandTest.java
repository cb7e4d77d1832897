package ich.cli;

import ich.labels.LabelCsv;
import ich.labels.LabelTable;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static ich.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code ich synth} as a user runs it. */
class SynthCommandTest {
    @TempDir
    Path dir;

    @Test
    void writesTheDataSetAndPrintsTheCounts() throws IOException {
        Path out = dir.resolve("set");
        CliTest.Run r = run("synth", "--out", out.toString(), "--studies", "4", "--slices-per-study", "3", "--seed", "9",
                "--size", "96", "--test-fraction", "0.25", "--positive-rate", "0.5", "--rate", "epidural=0.05", "--threads", "2");
        assertEquals(0, r.exit(), r.err());
        for (String word : new String[]{"12 images of 4 studies", "any", "epidural", "subdural", "target", "slices/s"}) {
            assertTrue(r.out().contains(word), word + " in\n" + r.out());
        }
        try (Stream<Path> s = Files.list(out.resolve("images"))) {
            assertEquals(12, s.count());
        }
        LabelTable train = LabelCsv.read(out.resolve("stage_1_train.csv")), test = LabelCsv.read(out.resolve("stage_1_test_labels.csv"));
        assertEquals(12, train.images() + test.images());
        assertTrue(Files.isRegularFile(out.resolve("stage_1_sample_submission.csv")));

        CliTest.Run again = run("synth", "--out", out.toString(), "--studies", "1", "--slices-per-study", "2", "--size", "96");
        assertEquals(2, again.exit(), "a folder with images needs --overwrite");
        assertTrue(again.err().contains("--overwrite") || again.err().contains("overwrite"), again.err());
        CliTest.Run overwrite = run("synth", "--out", out.toString(), "--studies", "1", "--slices-per-study", "2", "--size", "96",
                "--test-fraction", "0", "--overwrite");
        assertEquals(0, overwrite.exit(), overwrite.err());
        try (Stream<Path> s = Files.list(out.resolve("images"))) {
            assertEquals(2, s.count());
        }
        assertFalse(Files.exists(out.resolve("stage_1_test_labels.csv")), "no held-out studies, no test files");
    }

    @Test
    void badOptionsAreUsageErrors() {
        String out = dir.resolve("x").toString();
        assertEquals(2, run("synth", "--out", out, "--studies", "2").exit(), "--slices-per-study is required");
        CliTest.Run unknown = run("synth", "--out", out, "--studies", "2", "--slices-per-study", "2", "--rate", "chronic=0.1");
        assertEquals(2, unknown.exit());
        assertTrue(unknown.err().contains("chronic"), unknown.err());
        CliTest.Run impossible = run("synth", "--out", out, "--studies", "2", "--slices-per-study", "2", "--rate", "subdural=0.5");
        assertEquals(2, impossible.exit());
        assertTrue(impossible.err().contains("subdural"), impossible.err());
        assertEquals(2, run("synth", "--out", out, "--studies", "0", "--slices-per-study", "2").exit());
        assertEquals(2, run("synth", "--out", out, "--studies", "2", "--slices-per-study", "2", "--test-fraction", "1").exit());
        assertFalse(Files.exists(dir.resolve("x").resolve("images")), "nothing written");
    }
}
