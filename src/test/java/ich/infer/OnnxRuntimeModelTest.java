package ich.infer;

import ich.nn.Tensor;
import ich.nn.io.onnx.OnnxGraphBuilder;
import ich.nn.io.onnx.OnnxGraphBuilder.Dim;
import ich.nn.io.onnx.OnnxGraphBuilder.Value;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The ONNX Runtime wrapper's contract: what it accepts, and what it says when it cannot. */
class OnnxRuntimeModelTest {
    @TempDir
    Path dir;

    /** y = x * x + x on [N, 2, H, W]: exact in float, so results compare exactly. */
    private Path squarePlus() throws IOException {
        OnnxGraphBuilder g = new OnnxGraphBuilder("square_plus", false);
        Value x = g.input("pixels", Dim.symbol("N"), Dim.of(2), Dim.symbol("H"), Dim.symbol("W"));
        g.output(g.add("y", g.mul("square", x, x), x), "y", Dim.symbol("N"), Dim.of(2), Dim.symbol("H"), Dim.symbol("W"));
        Path file = dir.resolve("square_plus.onnx");
        g.write(file);
        return file;
    }

    @Test
    void runsATensorAndAnArrayAlike() throws Exception {
        try (OnnxRuntimeModel model = OnnxRuntimeModel.open(squarePlus(), 1); Arena arena = Arena.ofConfined()) {
            assertEquals("pixels", model.inputName());
            float[] x = new float[2 * 2 * 3 * 1];
            for (int i = 0; i < x.length; i++) x[i] = i - 5.5f;
            OnnxRuntimeModel.Output fromArray = model.run(x, 2, 2, 3, 1).get("y");
            OnnxRuntimeModel.Output fromTensor = model.run(Tensor.of(arena, x, 2, 2, 3, 1)).get("y");
            assertArrayEquals(new long[] {2, 2, 3, 1}, fromArray.shape());
            for (int i = 0; i < x.length; i++) assertEquals(x[i] * x[i] + x[i], fromArray.values()[i], 0f);
            assertArrayEquals(fromArray.values(), fromTensor.values(), 0f);
        }
    }

    @Test
    void errorsNameTheFileAndTheProblem() throws Exception {
        Path missing = dir.resolve("missing.onnx");
        var e1 = assertThrows(NoSuchFileException.class, () -> OnnxRuntimeModel.open(missing, 1));
        assertTrue(e1.getMessage().contains("missing.onnx"), e1.getMessage());

        Path garbage = dir.resolve("garbage.onnx");
        Files.writeString(garbage, "this is not a protobuf model");
        var e2 = assertThrows(IOException.class, () -> OnnxRuntimeModel.open(garbage, 1));
        assertTrue(e2.getMessage().contains("garbage.onnx"), e2.getMessage());

        assertThrows(IllegalArgumentException.class, () -> OnnxRuntimeModel.open(garbage, -1));

        Path file = squarePlus();
        try (OnnxRuntimeModel model = OnnxRuntimeModel.open(file, 1)) {
            var e3 = assertThrows(IllegalArgumentException.class, () -> model.run(new float[3 * 4 * 4], 1, 3, 4, 4));
            assertTrue(e3.getMessage().contains("square_plus.onnx") && e3.getMessage().contains("[1, 3, 4, 4]"), e3.getMessage());
            assertThrows(IllegalArgumentException.class, () -> model.run(new float[7], 1, 2, 2, 2));
            // Not a classifier: no logits or probabilities to predict with.
            var e4 = assertThrows(IOException.class, () -> model.predict(new float[2 * 4], 1, 2, 2, 2));
            assertTrue(e4.getMessage().contains("logits") && e4.getMessage().contains("square_plus.onnx"), e4.getMessage());
            try (Arena arena = Arena.ofConfined()) {
                Scorer scorer = model;
                var e5 = assertThrows(java.io.UncheckedIOException.class, () -> scorer.probabilities(Tensor.allocate(arena, 1, 2, 2, 2)));
                assertTrue(e5.getMessage().contains("square_plus.onnx"), e5.getMessage());
            }
        }
    }
}
