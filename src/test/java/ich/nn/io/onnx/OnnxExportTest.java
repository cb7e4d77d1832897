package ich.nn.io.onnx;

import ich.infer.OnnxRuntimeModel;
import ich.nn.Tensor;
import ich.nn.io.onnx.NchwReference.Act;
import ich.nn.io.onnx.OnnxGraphBuilder.Conv;
import ich.nn.io.onnx.OnnxGraphBuilder.Dim;
import ich.nn.io.onnx.OnnxGraphBuilder.Value;
import ich.nn.io.onnx.OnnxProto.GraphProto;
import ich.nn.io.onnx.OnnxProto.ModelProto;
import ich.nn.io.onnx.OnnxProto.NodeProto;
import ich.nn.io.onnx.OnnxProto.TensorProto;
import ich.nn.io.onnx.OnnxProto.TensorShapeProto;
import ich.nn.io.onnx.OnnxProto.ValueInfoProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static ich.nn.io.onnx.NchwReference.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/** Graphs written by {@link OnnxGraphBuilder}, run by ONNX Runtime, against the plain-Java reference. */
class OnnxExportTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "fold={0}, head={1}")
    @CsvSource({"true, FLATTEN_GEMM", "false, FLATTEN_GEMM", "true, RESHAPE_MATMUL", "false, RESHAPE_MATMUL"})
    void smallNetworkMatchesTheReferenceAtTwoSizes(boolean fold, TinyNet.Head head) throws Exception {
        TinyNet net = new TinyNet(42);
        Path file = dir.resolve("tiny.onnx");
        try (Arena arena = Arena.ofConfined()) {
            net.export(arena, fold, head).write(file);
            try (OnnxRuntimeModel model = OnnxRuntimeModel.open(file, 1)) {
                Random random = new Random(7);
                // Two batch sizes and two spatial sizes (odd and non-square) on one session: the dims are dynamic.
                int[][] sizes = {{2, 17, 17}, {3, 24, 20}};
                for (int[] nhw : sizes) {
                    int n = nhw[0], h = nhw[1], w = nhw[2];
                    float[] x = NchwReference.gaussian(random, n * 3 * h * w, 1);
                    float[] expected = net.forward(x, n, h, w);
                    OnnxRuntimeModel.Prediction p = nhw == sizes[0]
                            ? model.predict(Tensor.of(arena, x, n, 3, h, w))
                            : model.predict(x, n, 3, h, w);
                    assertEquals(n, p.n());
                    assertEquals(TinyNet.CLASSES, p.classes());
                    String at = " at " + n + "x3x" + h + "x" + w;
                    // Float accumulation in ORT's order against the double reference: a few 1e-7 here.
                    assertClose(expected, p.logits(), 1e-5, "logits" + at);
                    assertClose(TinyNet.sigmoidOf(expected), p.probabilities(), 1e-5, "probabilities" + at);
                    assertEquals(expected[TinyNet.CLASSES + 1], p.logit(1, 1), 1e-5 * Math.max(1, Math.abs(expected[7])));
                }
            }
        }
    }

    @Test
    void foldedAndUnfoldedModelsAgree() throws Exception {
        TinyNet net = new TinyNet(3);
        Path folded = dir.resolve("folded.onnx"), unfolded = dir.resolve("unfolded.onnx");
        try (Arena arena = Arena.ofConfined()) {
            net.export(arena, true, TinyNet.Head.FLATTEN_GEMM).write(folded);
            net.export(arena, false, TinyNet.Head.FLATTEN_GEMM).write(unfolded);
        }
        ModelProto f = ModelProto.parseFrom(Files.readAllBytes(folded));
        ModelProto u = ModelProto.parseFrom(Files.readAllBytes(unfolded));
        assertEquals(0, f.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals("BatchNormalization")).count());
        assertEquals(5, u.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals("BatchNormalization")).count());
        float[] x = NchwReference.gaussian(new Random(1), 2 * 3 * 32 * 32, 1);
        try (OnnxRuntimeModel a = OnnxRuntimeModel.open(folded, 1); OnnxRuntimeModel b = OnnxRuntimeModel.open(unfolded, 1)) {
            assertClose(b.predict(x, 2, 3, 32, 32).logits(), a.predict(x, 2, 3, 32, 32).logits(), 1e-5, "folded vs unfolded logits");
        }
    }

    @Test
    void foldingIsExactInTheReference() {
        Random random = new Random(11);
        int k = 6, c = 4, kernel = 3;
        Act x = new Act(NchwReference.gaussian(random, 2 * c * 9 * 7, 1), 2, c, 9, 7);
        float[] w = NchwReference.gaussian(random, k * c * kernel * kernel, 0.3);
        float[] gamma = NchwReference.uniform(random, k, 0.2, 2), beta = NchwReference.gaussian(random, k, 0.5);
        float[] mean = NchwReference.gaussian(random, k, 0.5), var = NchwReference.uniform(random, k, 0.01, 3);
        Act expected = NchwReference.batchNorm(NchwReference.conv(x, w, null, k, kernel, kernel, 2, 1, 1), gamma, beta, mean, var, 1e-5);
        BatchNormFolding.Folded f = BatchNormFolding.fold(w, null, gamma, beta, mean, var, 1e-5);
        Act folded = NchwReference.conv(x, f.weight(), f.bias(), k, kernel, kernel, 2, 1, 1);
        assertClose(expected.v(), folded.v(), 1e-5, "folded conv");
        assertThrows(IllegalArgumentException.class, () -> BatchNormFolding.fold(w, null, gamma, beta, mean, new float[k - 1], 1e-5));
        float[] negative = var.clone();
        negative[2] = -1;
        var e = assertThrows(IllegalArgumentException.class, () -> BatchNormFolding.fold(w, null, gamma, beta, mean, negative, 1e-5));
        assertTrue(e.getMessage().contains("channel 2"), e.getMessage());
    }

    /** One convolution per case, held to 1e-5: few terms per output, so float accumulation barely differs. */
    @ParameterizedTest(name = "c={0} k={1} kernel={2} stride={3} groups={4} bias={5}")
    @CsvSource({
            "3, 8, 3, 1, 1, false",
            "8, 8, 3, 2, 8, false",   // depthwise, stride 2
            "6, 6, 5, 2, 6, true",    // depthwise 5x5, padding 2
            "4, 6, 5, 2, 2, false",   // grouped
            "8, 3, 1, 1, 1, true"})   // pointwise with bias (SE)
    void convolutionsMatchTheReference(int c, int k, int kernel, int stride, int groups, boolean bias) throws Exception {
        Random random = new Random(c * 31 + k + kernel + stride + groups);
        float[] w = NchwReference.gaussian(random, k * (c / groups) * kernel * kernel, 0.5);
        float[] b = bias ? NchwReference.gaussian(random, k, 0.5) : null;
        OnnxGraphBuilder g = new OnnxGraphBuilder("conv", false);
        Value x = g.input("x", Dim.symbol("N"), Dim.of(c), Dim.symbol("H"), Dim.symbol("W"));
        Value y = g.conv("conv", x, g.initializer("conv.weight", w, k, c / groups, kernel, kernel),
                b == null ? null : g.initializer("conv.bias", b, k), Conv.square(kernel, stride, groups));
        g.output(y, "y", Dim.symbol("N"), Dim.of(k), Dim.symbol("P"), Dim.symbol("Q"));
        Path file = dir.resolve("conv.onnx");
        g.write(file);
        try (OnnxRuntimeModel model = OnnxRuntimeModel.open(file, 1)) {
            for (int[] nhw : new int[][] {{1, 11, 13}, {3, 8, 8}}) {
                Act in = new Act(NchwReference.gaussian(random, nhw[0] * c * nhw[1] * nhw[2], 1), nhw[0], c, nhw[1], nhw[2]);
                Act expected = NchwReference.conv(in, w, b, k, kernel, kernel, stride, (kernel - 1) / 2, groups);
                OnnxRuntimeModel.Output out = model.run(in.v(), in.n(), c, in.h(), in.w()).get("y");
                assertArrayEquals(new long[] {expected.n(), k, expected.h(), expected.w()}, out.shape());
                assertClose(expected.v(), out.values(), 1e-5, "conv output at " + nhw[0] + "x" + c + "x" + nhw[1] + "x" + nhw[2]);
            }
        }
    }

    @Test
    void batchNormAndSqueezeExcitationMatchTheReference() throws Exception {
        Random random = new Random(5);
        int c = 5;
        float[] gamma = NchwReference.uniform(random, c, 0.5, 1.5), beta = NchwReference.gaussian(random, c, 0.3);
        float[] mean = NchwReference.gaussian(random, c, 0.3), var = NchwReference.uniform(random, c, 0.2, 2);
        float[] rw = NchwReference.gaussian(random, 2 * c, 0.6), rb = NchwReference.gaussian(random, 2, 0.3);
        float[] ew = NchwReference.gaussian(random, c * 2, 0.6), eb = NchwReference.gaussian(random, c, 0.3);
        OnnxGraphBuilder g = new OnnxGraphBuilder("se", false);
        Value x = g.input("x", Dim.symbol("N"), Dim.of(c), Dim.symbol("H"), Dim.symbol("W"));
        Value y = g.silu("act", g.batchNorm("bn", x, g.initializer("bn.weight", gamma, c), g.initializer("bn.bias", beta, c),
                g.initializer("bn.running_mean", mean, c), g.initializer("bn.running_var", var, c), 1e-5, 0.1));
        Value s = g.conv("se.conv_reduce", g.globalAveragePool("se.pool", y), g.initializer("se.conv_reduce.weight", rw, 2, c, 1, 1),
                g.initializer("se.conv_reduce.bias", rb, 2), Conv.square(1, 1, 1));
        s = g.conv("se.conv_expand", g.silu("se.act", s), g.initializer("se.conv_expand.weight", ew, c, 2, 1, 1),
                g.initializer("se.conv_expand.bias", eb, c), Conv.square(1, 1, 1));
        Value out = g.add("residual", g.mul("se", y, g.sigmoid("se.gate", s)), x);
        g.output(out, "y", Dim.symbol("N"), Dim.of(c), Dim.symbol("H"), Dim.symbol("W"));
        Path file = dir.resolve("se.onnx");
        g.write(file);
        try (OnnxRuntimeModel model = OnnxRuntimeModel.open(file, 2)) {
            for (int[] nhw : new int[][] {{2, 6, 9}, {1, 15, 4}}) {
                Act in = new Act(NchwReference.gaussian(random, nhw[0] * c * nhw[1] * nhw[2], 1), nhw[0], c, nhw[1], nhw[2]);
                Act a = NchwReference.silu(NchwReference.batchNorm(in, gamma, beta, mean, var, 1e-5));
                Act se = NchwReference.conv(NchwReference.globalAveragePool(a), rw, rb, 2, 1, 1, 1, 0, 1);
                se = NchwReference.conv(NchwReference.silu(se), ew, eb, c, 1, 1, 1, 0, 1);
                Act expected = NchwReference.add(NchwReference.scaleChannels(a, NchwReference.sigmoid(se)), in);
                OnnxRuntimeModel.Output o = model.run(in.v(), in.n(), c, in.h(), in.w()).get("y");
                assertClose(expected.v(), o.values(), 1e-5, "SE block at " + nhw[0] + "x" + c + "x" + nhw[1] + "x" + nhw[2]);
            }
        }
    }

    @Test
    void fileParsesBackWithTheDeclaredInterface() throws Exception {
        TinyNet net = new TinyNet(9);
        Path file = dir.resolve("tiny.onnx");
        try (Arena arena = Arena.ofConfined()) {
            net.export(arena, false, TinyNet.Head.FLATTEN_GEMM).producerVersion("test").write(file);
        }
        ModelProto m = ModelProto.parseFrom(Files.readAllBytes(file));
        assertEquals(OnnxGraphBuilder.IR_VERSION, m.getIrVersion());
        assertEquals(1, m.getOpsetImportCount());
        assertEquals("", m.getOpsetImport(0).getDomain());
        assertEquals(17, m.getOpsetImport(0).getVersion());
        assertEquals("ich", m.getProducerName());
        assertEquals("test", m.getProducerVersion());
        GraphProto g = m.getGraph();

        assertEquals(1, g.getInputCount(), "initializers are not listed as inputs");
        assertShape(g.getInput(0), "input", "N", 3, "H", "W");
        assertEquals(2, g.getOutputCount());
        assertShape(g.getOutput(0), "logits", "N", TinyNet.CLASSES);
        assertShape(g.getOutput(1), "probabilities", "N", TinyNet.CLASSES);

        TensorProto w = g.getInitializerList().stream().filter(t -> t.getName().equals("conv_stem.weight")).findFirst().orElseThrow();
        assertEquals(List.of(8L, 3L, 3L, 3L), w.getDimsList());
        assertEquals(TensorProto.DataType.FLOAT.getNumber(), w.getDataType());
        float[] stored = new float[net.stem.w().length];
        ByteBuffer.wrap(w.getRawData().toByteArray()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(stored);
        assertArrayEquals(net.stem.w(), stored, "raw_data is the weights, little-endian, bit for bit");

        // Topological order: every node input exists before the node.
        Set<String> known = new HashSet<>();
        g.getInputList().forEach(v -> known.add(v.getName()));
        g.getInitializerList().forEach(t -> known.add(t.getName()));
        for (NodeProto n : g.getNodeList()) {
            for (String in : n.getInputList()) assertTrue(known.contains(in), n.getName() + " reads " + in + " before it exists");
            assertEquals("", n.getDomain());
            known.addAll(n.getOutputList());
        }
        NodeProto dw = g.getNodeList().stream().filter(n -> n.getName().equals("blocks.0.0.conv_dw")).findFirst().orElseThrow();
        Map<String, OnnxProto.AttributeProto> attrs = new java.util.HashMap<>();
        dw.getAttributeList().forEach(a -> attrs.put(a.getName(), a));
        assertEquals(8, attrs.get("group").getI());
        assertEquals(List.of(5L, 5L), attrs.get("kernel_shape").getIntsList());
        assertEquals(List.of(2L, 2L, 2L, 2L), attrs.get("pads").getIntsList());
        assertEquals(List.of(1L, 1L), attrs.get("strides").getIntsList());

        try (OnnxRuntimeModel model = OnnxRuntimeModel.open(file, 1)) {
            assertEquals("input", model.inputName());
            assertArrayEquals(new long[] {-1, 3, -1, -1}, model.inputShape(), "N, H and W are dynamic");
            assertEquals(Set.of("logits", "probabilities"), Set.copyOf(model.outputNames()));
        }
    }

    private static void assertShape(ValueInfoProto v, String name, Object... dims) {
        assertEquals(name, v.getName());
        assertEquals(TensorProto.DataType.FLOAT.getNumber(), v.getType().getTensorType().getElemType());
        List<TensorShapeProto.Dimension> actual = v.getType().getTensorType().getShape().getDimList();
        assertEquals(dims.length, actual.size(), name + " rank");
        for (int i = 0; i < dims.length; i++) {
            if (dims[i] instanceof String symbol) {
                assertEquals(symbol, actual.get(i).getDimParam(), name + " dim " + i);
            } else {
                assertEquals(((Integer) dims[i]).longValue(), actual.get(i).getDimValue(), name + " dim " + i);
            }
        }
    }

    @Test
    void builderRejectsMalformedGraphs() {
        OnnxGraphBuilder g = new OnnxGraphBuilder("bad", false);
        Value x = g.input("x", Dim.symbol("N"), Dim.of(4), Dim.symbol("H"), Dim.symbol("W"));
        assertThrows(IllegalStateException.class, g::build, "no outputs");
        var dup = assertThrows(IllegalArgumentException.class, () -> g.sigmoid("x", x));
        assertTrue(dup.getMessage().contains("already used"), dup.getMessage());
        var unknown = assertThrows(IllegalArgumentException.class, () -> g.sigmoid("s", new Value("nowhere")));
        assertTrue(unknown.getMessage().contains("nowhere"), unknown.getMessage());
        Value w = g.initializer("w", new float[4 * 4 * 9], 4, 4, 3, 3);
        var kernel = assertThrows(IllegalArgumentException.class, () -> g.conv("c", x, w, null, Conv.square(5, 1, 1)));
        assertTrue(kernel.getMessage().contains("do not fit"), kernel.getMessage());
        Value b = g.initializer("b", new float[3], 3);
        assertThrows(IllegalArgumentException.class, () -> g.conv("c2", x, w, b, Conv.square(3, 1, 1)));
        assertThrows(IllegalArgumentException.class, () -> g.initializer("short", new float[5], 2, 3));
        assertThrows(IllegalArgumentException.class, () -> Dim.of(0));
        assertThrows(IllegalArgumentException.class, () -> new Conv(3, 3, 0, 1, 1, 1, 1));
    }
}
