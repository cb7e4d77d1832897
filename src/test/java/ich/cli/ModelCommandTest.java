package ich.cli;

import ich.nn.Tensor;
import ich.nn.io.Checkpoint;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.LoadReport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ModelCommandTest {

    @Test
    void summaryPrintsTheTableTheCountsAndTheCost() {
        CliTest.Run r = CliTest.run("model", "summary");
        assertEquals(0, r.exit(), r.err());
        String out = r.out();
        assertTrue(out.contains("conv_stem"), out);
        assertTrue(out.contains("blocks.5.3") && out.contains("InvertedResidual"), out);
        assertTrue(out.contains("[1,1280,7,7]"), out);
        assertTrue(out.contains("classifier") && out.contains("[1,6]"), out);
        assertTrue(out.contains("4,015,234 total, 4,015,234 trainable, 0 frozen (4,007,548 backbone + 7,686 classifier)"), out);
        assertTrue(out.matches("(?s).*forward    [\\d,]+ MACs = 0\\.(38|39|40)\\d GMACs.*"), out);
    }

    @Test
    void summaryAtAnotherSizeWithTheBackboneFrozen() {
        CliTest.Run r = CliTest.run("model", "summary", "--size", "64", "--batch", "2", "--freeze-backbone");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("[2,1280,2,2]"), r.out());
        assertTrue(r.out().contains("10,246 trainable, 4,004,988 frozen"), r.out());
        assertTrue(r.out().contains("input      [2,3,64,64]"), r.out());
    }

    @Test
    void badSizeIsAUsageError() {
        CliTest.Run r = CliTest.run("model", "summary", "--size", "0");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("must be positive"), r.err());
    }

    @Test
    void initWritesASeededTimmCheckpointThatLoadsBack(@TempDir Path dir) throws Exception {
        Path a = dir.resolve("a.safetensors"), b = dir.resolve("b.safetensors"), c = dir.resolve("c.safetensors");
        CliTest.Run r = CliTest.run("model", "init", "--out", a.toString(), "--seed", "17");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("4,015,234 weights") && r.out().contains("311 tensors"), r.out());
        assertEquals(0, CliTest.run("model", "init", "--out", b.toString(), "--seed", "17").exit());
        assertEquals(0, CliTest.run("model", "init", "--out", c.toString(), "--seed", "18").exit());
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), "same seed, same file");
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(a), Files.readAllBytes(c)), "another seed, other weights");

        try (Arena arena = Arena.ofShared();
             EfficientNetB0 expected = EfficientNetB0.onHost(EfficientNetB0.Config.defaults());
             EfficientNetB0 loaded = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            expected.initialize(17);
            Checkpoint.Contents contents = Checkpoint.read(a, arena);
            assertEquals(0, contents.state().epoch());
            assertEquals(17, contents.state().seed());
            assertTrue(contents.optimizer().isEmpty());
            LoadReport report = loaded.load(contents.model());
            assertTrue(report.exact(), report.describe());
            for (String name : List.of("conv_stem.weight", "blocks.5.3.conv_dw.weight", "bn2.running_var", "classifier.weight")) {
                Tensor t = loaded.namedParameters().get(name).value();
                assertArrayEquals(expected.namedParameters().get(name).value().toArray(), t.toArray(), name);
            }
        }
    }

    @Test
    void initIntoAMissingDirectoryFailsNamingTheFile(@TempDir Path dir) {
        Path out = dir.resolve("no-such-dir").resolve("m.safetensors");
        CliTest.Run r = CliTest.run("model", "init", "--out", out.toString());
        assertEquals(1, r.exit());
        assertTrue(r.err().contains(out.toString()), r.err());
    }
}
