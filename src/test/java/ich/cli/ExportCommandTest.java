package ich.cli;

import ich.infer.OnnxRuntimeModel;
import ich.nn.Tensor;
import ich.nn.io.Checkpoint;
import ich.nn.io.onnx.OnnxProto.ModelProto;
import ich.nn.model.EfficientNetB0;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class ExportCommandTest {
    @TempDir
    Path dir;

    private static final Checkpoint.TrainingState STATE = new Checkpoint.TrainingState(0, 0, 0, 1e-3, 1, "", "");

    @Test
    void exportsACheckpointThatOnnxRuntimeRuns() throws Exception {
        Path ckpt = dir.resolve("model.safetensors"), onnx = dir.resolve("out/model.onnx");
        try (EfficientNetB0 model = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            model.initialize(3);
            Checkpoint.write(ckpt, model.stateDict(), Map.of(), STATE);
        }
        CliTest.Run r = CliTest.run("export", "onnx", "--checkpoint", ckpt.toString(), "--out", onnx.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("6 classes") && r.out().contains("opset 17") && r.out().contains("folded"), r.out());
        ModelProto m = ModelProto.parseFrom(Files.readAllBytes(onnx));
        assertEquals(0, m.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals("BatchNormalization")).count());

        Path kept = dir.resolve("kept.onnx");
        CliTest.Run k = CliTest.run("export", "onnx", "--checkpoint", ckpt.toString(), "--out", kept.toString(), "--no-fold-batch-norm");
        assertEquals(0, k.exit(), k.err());
        assertEquals(49, ModelProto.parseFrom(Files.readAllBytes(kept)).getGraph().getNodeList().stream()
                .filter(n -> n.getOpType().equals("BatchNormalization")).count());

        float[] x = new float[2 * 3 * 32 * 32];
        Random random = new Random(2);
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        try (OnnxRuntimeModel a = OnnxRuntimeModel.open(onnx, 1); OnnxRuntimeModel b = OnnxRuntimeModel.open(kept, 1)) {
            OnnxRuntimeModel.Prediction pa = a.predict(x, 2, 3, 32, 32), pb = b.predict(x, 2, 3, 32, 32);
            assertEquals(2, pa.n());
            assertEquals(6, pa.classes());
            for (int i = 0; i < pa.logits().length; i++) {
                assertEquals(pb.logits()[i], pa.logits()[i], 1e-4 * Math.max(1, Math.abs(pb.logits()[i])));
                assertTrue(pa.probabilities()[i] > 0 && pa.probabilities()[i] < 1);
            }
        }
    }

    @Test
    void badCheckpointsAreReportedByName() throws Exception {
        CliTest.Run missing = CliTest.run("export", "onnx", "--checkpoint", dir.resolve("nope.safetensors").toString(),
                "--out", dir.resolve("x.onnx").toString());
        assertEquals(1, missing.exit());
        assertTrue(missing.err().contains("nope.safetensors: no such file"), missing.err());

        Path partial = dir.resolve("partial.safetensors");
        try (EfficientNetB0 model = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            Map<String, Tensor> state = new LinkedHashMap<>(model.stateDict());
            state.remove("blocks.2.1.conv_dw.weight");
            Checkpoint.write(partial, state, Map.of(), STATE);
        }
        Path out = dir.resolve("partial.onnx");
        CliTest.Run r = CliTest.run("export", "onnx", "--checkpoint", partial.toString(), "--out", out.toString());
        assertEquals(1, r.exit());
        assertTrue(r.err().contains("partial.safetensors") && r.err().contains("missing: blocks.2.1.conv_dw.weight"), r.err());
        assertFalse(Files.exists(out), "nothing is written for a bad checkpoint");

        CliTest.Run usage = CliTest.run("export", "onnx", "--out", out.toString());
        assertEquals(2, usage.exit());
        assertTrue(usage.err().contains("--checkpoint"), usage.err());
    }
}
