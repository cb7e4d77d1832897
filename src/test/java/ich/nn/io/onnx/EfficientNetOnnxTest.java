package ich.nn.io.onnx;

import ich.infer.OnnxRuntimeModel;
import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.io.onnx.OnnxProto.ModelProto;
import ich.nn.io.onnx.OnnxProto.NodeProto;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import java.util.stream.Collectors;

import static ich.nn.io.onnx.NchwReference.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/** The exported EfficientNet-B0 run by ONNX Runtime against our own CPU forward pass. */
class EfficientNetOnnxTest {
    @TempDir
    Path dir;

    static Backend backend() {
        return new CpuBackend();
    }

    /**
     * timm's initialisation leaves batch norm at the identity (gamma 1, beta 0, mean 0, var 1), which would hide
     * a mix-up of its four tensors; random statistics make every one of them count.
     */
    static EfficientNetB0 randomModel(Backend backend, long seed) {
        EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), seed);
        Random random = new Random(seed);
        for (Parameter p : model.namedParameters().values()) {
            String n = p.name();
            float[] v = p.value().toArray();
            for (int i = 0; i < v.length; i++) {
                if (n.endsWith("running_var")) v[i] = (float) (0.5 + random.nextDouble());
                else if (n.endsWith("running_mean")) v[i] = (float) (0.1 * random.nextGaussian());
                else if (n.matches(".*bn\\d\\.weight")) v[i] = (float) (0.8 + 0.4 * random.nextDouble());
                else if (n.matches(".*bn\\d\\.bias") || n.endsWith("classifier.bias")) v[i] = (float) (0.1 * random.nextGaussian());
            }
            p.value().copyFrom(v);
        }
        return model;
    }

    @ParameterizedTest(name = "fold={0}")
    @ValueSource(booleans = {true, false})
    void onnxRuntimeMatchesOurForwardAtTwoSizes(boolean fold) throws Exception {
        Path file = dir.resolve("b0.onnx");
        try (Backend backend = backend(); EfficientNetB0 model = randomModel(backend, 5)) {
            EfficientNetOnnx.write(model, fold, "test", file);
            try (OnnxRuntimeModel ort = OnnxRuntimeModel.open(file, 2); Arena arena = Arena.ofConfined()) {
                Random random = new Random(17);
                for (int[] nhw : new int[][] {{2, 64, 64}, {1, 96, 80}}) {
                    int n = nhw[0], h = nhw[1], w = nhw[2];
                    Tensor x = Tensor.of(arena, NchwReference.gaussian(random, n * 3 * h * w, 1), n, 3, h, w);
                    float[] expected;
                    try (StepContext ctx = StepContext.eval(backend)) {
                        expected = model.forward(x, ctx).toArray();
                    }
                    OnnxRuntimeModel.Prediction p = ort.predict(x);
                    assertEquals(n, p.n());
                    assertEquals(6, p.classes());
                    String at = " at " + n + "x3x" + h + "x" + w;
                    assertClose(expected, p.logits(), 1e-4, "logits" + at);
                    assertClose(TinyNet.sigmoidOf(expected), p.probabilities(), 1e-4, "probabilities" + at);
                    assertArrayEquals(p.probabilities(), ort.probabilities(x), "the Scorer view gives the same probabilities");
                }
            }
        }
    }

    @Test
    void graphHasTheDeclaredInterfaceAndTimmNames() throws Exception {
        Path file = dir.resolve("b0.onnx");
        try (EfficientNetB0 model = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            model.initialize(1);
            EfficientNetOnnx.write(model, false, "test", file);
            ModelProto m = ModelProto.parseFrom(Files.readAllBytes(file));
            assertEquals("input", m.getGraph().getInput(0).getName());
            assertEquals(4, m.getGraph().getInput(0).getType().getTensorType().getShape().getDimCount());
            assertEquals("logits", m.getGraph().getOutput(0).getName());
            assertEquals("probabilities", m.getGraph().getOutput(1).getName());
            Map<String, Long> ops = m.getGraph().getNodeList().stream()
                    .collect(Collectors.groupingBy(NodeProto::getOpType, Collectors.counting()));
            // 49 convolutions + 32 SE 1x1 convolutions; one batch norm per convolution of the backbone.
            assertEquals(81, ops.get("Conv"));
            assertEquals(49, ops.get("BatchNormalization"));
            assertEquals(16 + 1, ops.get("GlobalAveragePool"), "one per SE, one before the classifier");
            assertEquals(9, ops.get("Add"), "blocks with a skip connection");
            assertEquals(1, ops.get("Gemm"));
            // Every weight and buffer of the model is an initializer under its state-dict name, same size.
            Map<String, Integer> sizes = m.getGraph().getInitializerList().stream()
                    .collect(Collectors.toMap(OnnxProto.TensorProto::getName, t -> t.getRawData().size()));
            for (Parameter p : model.namedParameters().values()) {
                assertEquals(Math.toIntExact(p.value().bytes()), sizes.get(p.name()), p.name());
            }
            assertEquals(model.namedParameters().size(), sizes.size());
            try (OnnxRuntimeModel ort = OnnxRuntimeModel.open(file, 1)) {
                assertArrayEquals(new long[] {-1, 3, -1, -1}, ort.inputShape());
            }
        }
    }
}
