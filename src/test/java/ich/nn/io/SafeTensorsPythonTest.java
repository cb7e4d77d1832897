package ich.nn.io;

import ich.nn.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Cross-checks against the Python {@code safetensors} library where it is installed (with numpy): the
 * interpreter is {@code $ICH_PYTHON}, else {@code python3}; skipped when it cannot import both. Python writes
 * the same tensors and the files must be byte-identical; Python reads ours and checks every value.
 */
class SafeTensorsPythonTest {
    @TempDir
    Path dir;

    private static String python() {
        String p = System.getenv("ICH_PYTHON");
        return p == null || p.isBlank() ? "python3" : p;
    }

    private static String run(Path script) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(python(), script.toString()).redirectErrorStream(true).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("python timed out");
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    private static void assumePython() {
        try {
            Process p = new ProcessBuilder(python(), "-c", "import safetensors.numpy, numpy").redirectErrorStream(true).start();
            boolean done = p.waitFor(60, TimeUnit.SECONDS);
            Assumptions.assumeTrue(done && p.exitValue() == 0, "no python with safetensors and numpy");
        } catch (IOException | InterruptedException e) {
            Assumptions.abort("no python: " + e);
        }
    }

    @Test
    void pythonWritesTheSameBytesAndReadsOurs() throws Exception {
        assumePython();
        Path ours = dir.resolve("ours.safetensors"), theirs = dir.resolve("theirs.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            // Values from a formula both sides compute exactly: (i * 7 % 23 - 11) / 8.
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            int[][] shapes = {{32, 3, 3, 3}, {32}, {6, 1280}, {1}, {2, 5}};
            String[] names = {"conv_stem.weight", "bn1.running_mean", "classifier.weight", "z", "blocks.1.0.conv_pw.weight"};
            for (int k = 0; k < names.length; k++) {
                Tensor t = Tensor.allocate(arena, shapes[k]);
                for (int i = 0; i < t.size(); i++) t.set(i, (i * 7 % 23 - 11) / 8f);
                tensors.put(names[k], t);
            }
            SafeTensors.Writer w = new SafeTensors.Writer().metadata("format", "pt");
            tensors.forEach(w::add);
            w.addLongs("bn1.num_batches_tracked", new long[]{}, 42);
            w.add("half", SafeTensors.DType.F16, new long[]{3}, SafeTensorsTest.shortsLe(0x3C00, 0xC000, 0x3555));
            w.write(ours);
        }
        Path script = dir.resolve("check.py");
        Files.writeString(script, """
                import numpy as np
                from safetensors import safe_open
                from safetensors.numpy import load_file, save_file
                ours, theirs = %s, %s
                shapes = {"conv_stem.weight": (32, 3, 3, 3), "bn1.running_mean": (32,), "classifier.weight": (6, 1280),
                          "z": (1,), "blocks.1.0.conv_pw.weight": (2, 5)}
                t = {}
                for name, shape in shapes.items():
                    i = np.arange(int(np.prod(shape)), dtype=np.int64)
                    t[name] = ((i * 7 %% 23 - 11) / 8).astype(np.float32).reshape(shape)
                t["bn1.num_batches_tracked"] = np.array(42, dtype=np.int64)
                t["half"] = np.array([0x3C00, 0xC000, 0x3555], dtype=np.uint16).view(np.float16)
                save_file(t, theirs, metadata={"format": "pt"})
                back = load_file(ours)
                assert sorted(back) == sorted(t), sorted(back)
                for name, v in t.items():
                    assert back[name].dtype == v.dtype, (name, back[name].dtype)
                    assert back[name].shape == v.shape, (name, back[name].shape)
                    assert np.array_equal(back[name], v), name
                with safe_open(ours, "np") as f:
                    assert f.metadata() == {"format": "pt"}, f.metadata()
                print("ok", len(back))
                """.formatted(pyString(ours), pyString(theirs)));
        String out = run(script);
        assertTrue(out.contains("ok 7"), out);
        assertArrayEquals(Files.readAllBytes(theirs), Files.readAllBytes(ours),
                "python's file:\n" + new String(Files.readAllBytes(theirs), StandardCharsets.ISO_8859_1));
        try (SafeTensors st = SafeTensors.open(theirs)) {
            assertEquals(List.of("bn1.num_batches_tracked", "blocks.1.0.conv_pw.weight", "bn1.running_mean", "classifier.weight",
                    "conv_stem.weight", "z", "half"), st.names());
        }
    }

    private static String pyString(Path p) {
        return "'" + p.toString().replace("\\", "\\\\").replace("'", "\\'") + "'";
    }
}
