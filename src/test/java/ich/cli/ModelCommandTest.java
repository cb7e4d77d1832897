package ich.cli;

import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.io.Checkpoint;
import ich.nn.io.SafeTensors;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.LoadReport;
import ich.nn.model.StepContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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

    @Test
    void fixtureWritesTimmsStateDictAnInputAndOurLogitsWhichTheFileReproduces(@TempDir Path dir) throws Exception {
        Path a = dir.resolve("a"), b = dir.resolve("b");
        CliTest.Run r = CliTest.run("model", "fixture", "--out", a.toString(), "--size", "64", "--batch", "2", "--seed", "5");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("input [2,3,64,64]"), r.out());
        assertEquals(0, CliTest.run("model", "fixture", "--out", b.toString(), "--size", "64", "--batch", "2", "--seed", "5").exit());
        for (String f : List.of("model.safetensors", "input.safetensors", "expected.safetensors", "README.txt")) {
            assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(b.resolve(f)), f + ": same seed, same file");
        }
        String readme = Files.readString(a.resolve("README.txt"));
        assertTrue(readme.contains("timm_parity.py") && readme.contains("[2,3,64,64]") && readme.contains("[2,1280]"), readme);

        try (Arena arena = Arena.ofShared();
             CpuBackend cpu = new CpuBackend();
             EfficientNetB0 reference = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            // The state dict: every tensor of timm's efficientnet_b0 (6 classes) by name and shape, plus one I64
            // scalar num_batches_tracked per batch norm.
            Map<String, Tensor> state = new LinkedHashMap<>();
            int counters = 0;
            try (SafeTensors st = SafeTensors.open(a.resolve("model.safetensors"))) {
                assertEquals("pt", st.metadata().get("format"));
                for (SafeTensors.Entry e : st.entries()) {
                    if (e.name().endsWith(".num_batches_tracked")) {
                        assertEquals(SafeTensors.DType.I64, e.dtype(), e.name());
                        assertEquals(0, e.shape().length, e.name() + " is a scalar");
                        String module = e.name().substring(0, e.name().length() - ".num_batches_tracked".length());
                        assertTrue(reference.shapes().containsKey(module + ".running_mean"), e.name() + " belongs to a batch norm");
                        counters++;
                    } else {
                        assertEquals(SafeTensors.DType.F32, e.dtype(), e.name());
                        state.put(e.name(), st.tensor(e.name(), arena));
                    }
                }
            }
            assertEquals(reference.shapes().keySet(), state.keySet());
            for (var e : reference.shapes().entrySet()) assertArrayEquals(e.getValue(), state.get(e.getKey()).shape(), e.getKey());
            assertEquals(49, counters, "stem, 2 in the first block, 3 in each of the other 15, head");
            float[] runningVar = state.get("blocks.3.1.bn2.running_var").toArray(), runningMean = state.get("blocks.3.1.bn2.running_mean").toArray();
            for (float v : runningVar) assertTrue(v > 0 && Float.isFinite(v), "running_var " + v);
            assertTrue(java.util.stream.IntStream.range(0, runningVar.length).anyMatch(i -> Math.abs(runningVar[i] - 1f) > 0.1f),
                    "running variances are not timm's fresh 1");
            assertTrue(java.util.stream.IntStream.range(0, runningMean.length).anyMatch(i -> Math.abs(runningMean[i]) > 0.1f),
                    "running means are not timm's fresh 0");

            Tensor input, logits, features;
            try (SafeTensors st = SafeTensors.open(a.resolve("input.safetensors"))) {
                assertEquals(List.of("input"), st.names());
                input = st.tensor("input", arena);
            }
            assertArrayEquals(new int[] {2, 3, 64, 64}, input.shape());
            try (SafeTensors st = SafeTensors.open(a.resolve("expected.safetensors"))) {
                assertEquals(java.util.Set.of("logits", "features"), java.util.Set.copyOf(st.names()));
                logits = st.tensor("logits", arena);
                features = st.tensor("features", arena);
            }
            assertArrayEquals(new int[] {2, 6}, logits.shape());
            assertArrayEquals(new int[] {2, 1280}, features.shape());

            // The file loads back and the model's own forward reproduces the logits exactly.
            float[] expected = logits.toArray();
            try (EfficientNetB0 loaded = EfficientNetB0.fromStateDict(cpu, state, "model.safetensors");
                 StepContext ctx = StepContext.eval(cpu)) {
                assertArrayEquals(expected, loaded.forward(input, ctx).toArray(), "bit for bit on the same backend");
            }

            // Not degenerate: finite, spread over the classes and different for the two images.
            for (float v : expected) assertTrue(Float.isFinite(v), "logit " + v);
            double min = Double.MAX_VALUE, max = -Double.MAX_VALUE;
            for (float v : expected) { min = Math.min(min, v); max = Math.max(max, v); }
            assertTrue(max - min > 1e-2, "logits spread " + java.util.Arrays.toString(expected));
            assertFalse(java.util.Arrays.equals(java.util.Arrays.copyOf(expected, 6), java.util.Arrays.copyOfRange(expected, 6, 12)));

            // The features are what the classifier reads: classifier.weight x features + classifier.bias = logits.
            float[] w = state.get("classifier.weight").toArray(), bias = state.get("classifier.bias").toArray(), f = features.toArray();
            for (int n = 0; n < 2; n++) {
                for (int k = 0; k < 6; k++) {
                    double sum = bias[k];
                    for (int c = 0; c < 1280; c++) sum += (double) w[k * 1280 + c] * f[n * 1280 + c];
                    assertEquals(sum, expected[n * 6 + k], 1e-4 * (1 + Math.abs(sum)), "logit " + n + "," + k);
                }
            }
        }
    }

    @Test
    void fixtureNeedsAPositiveSize(@TempDir Path dir) {
        CliTest.Run r = CliTest.run("model", "fixture", "--out", dir.toString(), "--size", "0");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("must be positive"), r.err());
    }
}
