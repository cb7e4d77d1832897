package ich.nn.io.onnx;

import com.google.protobuf.ByteString;
import ich.io.AtomicFile;
import ich.nn.ConvGeometry;
import ich.nn.Tensor;
import ich.nn.io.onnx.OnnxProto.AttributeProto;
import ich.nn.io.onnx.OnnxProto.GraphProto;
import ich.nn.io.onnx.OnnxProto.ModelProto;
import ich.nn.io.onnx.OnnxProto.NodeProto;
import ich.nn.io.onnx.OnnxProto.OperatorSetIdProto;
import ich.nn.io.onnx.OnnxProto.TensorProto;
import ich.nn.io.onnx.OnnxProto.TensorShapeProto;
import ich.nn.io.onnx.OnnxProto.TypeProto;
import ich.nn.io.onnx.OnnxProto.ValueInfoProto;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Builds an ONNX inference graph of the standard operators a convolutional classifier needs, in topological
 * order, and writes it as an ONNX model file.
 *
 * <p>Every op method takes the node's name, which also names its (single) output value, so the graph reads like
 * the model's state dict ({@code blocks.1.0.conv_dw}, {@code blocks.1.0.bn1}); names must be unique. Weights are
 * float32 initializers stored as little-endian raw data. The model targets {@link #OPSET} of the default
 * domain and {@link #IR_VERSION}, which ONNX Runtime 1.23 and TensorRT 10 both read.
 */
public final class OnnxGraphBuilder {
    /** ONNX operator set 17: has every op used here in its current form (BatchNormalization-15, Reshape-14). */
    public static final int OPSET = 17;
    /** The IR version that introduced opset 17 (ONNX 1.12); readers accept it for any later opset too. */
    public static final int IR_VERSION = 8;
    public static final String PRODUCER = "ich";

    /** A value in the graph (an input, an initializer or a node's output), known by its unique name. */
    public record Value(String name) {
        public Value {
            Objects.requireNonNull(name, "name");
            if (name.isEmpty()) throw new IllegalArgumentException("value names must not be empty");
        }
    }

    /** One dimension of a declared input or output: a fixed size, or a symbol such as {@code N} for any size. */
    public record Dim(long size, String symbol) {
        public Dim {
            if ((symbol == null) == (size <= 0)) {
                throw new IllegalArgumentException("a dimension is a positive size or a symbol, not both: " + size + ", " + symbol);
            }
        }

        public static Dim of(long size) {
            return new Dim(size, null);
        }

        public static Dim symbol(String name) {
            if (name.isEmpty()) throw new IllegalArgumentException("empty dimension symbol");
            return new Dim(0, name);
        }

        TensorShapeProto.Dimension proto() {
            TensorShapeProto.Dimension.Builder d = TensorShapeProto.Dimension.newBuilder();
            return (symbol != null ? d.setDimParam(symbol) : d.setDimValue(size)).build();
        }

        @Override
        public String toString() {
            return symbol != null ? symbol : Long.toString(size);
        }
    }

    /**
     * A 2-D convolution's attributes: kernel r×s, strides, symmetric padding (PyTorch's), groups. Batch and
     * spatial sizes stay dynamic, so unlike {@link ConvGeometry} this carries none.
     */
    public record Conv(int r, int s, int strideH, int strideW, int padH, int padW, int groups) {
        public Conv {
            if (r <= 0 || s <= 0 || strideH <= 0 || strideW <= 0 || padH < 0 || padW < 0 || groups <= 0) {
                throw new IllegalArgumentException("bad convolution attributes: " + this);
            }
        }

        /** A square kernel with PyTorch-style padding {@code (kernel - 1) / 2}, as {@link ConvGeometry#square}. */
        public static Conv square(int kernel, int stride, int groups) {
            int pad = (kernel - 1) / 2;
            return new Conv(kernel, kernel, stride, stride, pad, pad, groups);
        }

        public static Conv of(ConvGeometry g) {
            return new Conv(g.r(), g.s(), g.strideH(), g.strideW(), g.padH(), g.padW(), g.groups());
        }
    }

    private final GraphProto.Builder graph = GraphProto.newBuilder();
    /** Shapes of the initializers, for the checks an op can make at build time. */
    private final Map<String, long[]> constants = new HashMap<>();
    private final Map<String, String> defined = new HashMap<>();
    private final boolean foldBatchNorm;
    private String producerVersion = "";
    private String docString = "";

    /**
     * @param graphName     the graph's name, e.g. {@code efficientnet_b0}
     * @param foldBatchNorm whether {@link #convBatchNorm} folds inference batch norm into the convolution's
     *                      weights and bias (one op less per conv; exact to float rounding) or emits a
     *                      BatchNormalization node
     */
    public OnnxGraphBuilder(String graphName, boolean foldBatchNorm) {
        graph.setName(graphName);
        this.foldBatchNorm = foldBatchNorm;
    }

    public boolean foldsBatchNorm() {
        return foldBatchNorm;
    }

    public OnnxGraphBuilder producerVersion(String version) {
        this.producerVersion = Objects.requireNonNull(version);
        return this;
    }

    public OnnxGraphBuilder docString(String doc) {
        this.docString = Objects.requireNonNull(doc);
        return this;
    }

    // ---- inputs, outputs, constants ----

    /** A float32 graph input, e.g. {@code input("input", symbol("N"), of(3), symbol("H"), symbol("W"))}. */
    public Value input(String name, Dim... dims) {
        Value v = define(name, "input");
        graph.addInput(valueInfo(name, dims));
        return v;
    }

    /**
     * Declares {@code value} a float32 graph output called {@code name}; when the value has another name an
     * Identity node gives it this one.
     */
    public Value output(Value value, String name, Dim... dims) {
        requireDefined(value, "output " + name);
        Value out = value.name().equals(name) ? value : identity(name, value);
        graph.addOutput(valueInfo(name, dims));
        return out;
    }

    /** A float32 constant holding a copy of the tensor's elements (which must be on the host). */
    public Value initializer(String name, Tensor t) {
        return initializer(name, t.toArray(), t.shape());
    }

    /** A float32 constant with the given row-major elements and shape. */
    public Value initializer(String name, float[] values, int... shape) {
        long[] dims = Arrays.stream(shape).asLongStream().toArray();
        if (Arrays.stream(dims).reduce(1, Math::multiplyExact) != values.length) {
            throw new IllegalArgumentException("initializer " + name + ": " + values.length + " values for shape "
                    + Arrays.toString(shape));
        }
        ByteBuffer raw = ByteBuffer.allocate(Math.multiplyExact(values.length, Float.BYTES)).order(ByteOrder.LITTLE_ENDIAN);
        raw.asFloatBuffer().put(values);
        return addInitializer(name, TensorProto.DataType.FLOAT, dims, raw);
    }

    /** An int64 constant (shapes for Reshape). */
    public Value int64Initializer(String name, long[] values, long... shape) {
        if (Arrays.stream(shape).reduce(1, Math::multiplyExact) != values.length) {
            throw new IllegalArgumentException("initializer " + name + ": " + values.length + " values for shape "
                    + Arrays.toString(shape));
        }
        ByteBuffer raw = ByteBuffer.allocate(Math.multiplyExact(values.length, Long.BYTES)).order(ByteOrder.LITTLE_ENDIAN);
        raw.asLongBuffer().put(values);
        return addInitializer(name, TensorProto.DataType.INT64, shape.clone(), raw);
    }

    private Value addInitializer(String name, TensorProto.DataType type, long[] dims, ByteBuffer raw) {
        Value v = define(name, "initializer");
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(type.getNumber())
                .setRawData(ByteString.copyFrom(raw.array()));
        for (long d : dims) t.addDims(d);
        graph.addInitializer(t);
        constants.put(name, dims);
        return v;
    }

    // ---- ops ----

    /**
     * Conv: x [n, c, h, w] with weights w [k, c / groups, r, s] and an optional bias [k] (null for none) gives
     * [n, k, p, q].
     */
    public Value conv(String name, Value x, Value w, Value bias, Conv a) {
        long[] ws = constants.get(w.name());
        if (ws != null) {
            if (ws.length != 4 || ws[2] != a.r() || ws[3] != a.s() || ws[0] % a.groups() != 0) {
                throw new IllegalArgumentException("conv " + name + ": weights " + Arrays.toString(ws)
                        + " do not fit kernel " + a.r() + "x" + a.s() + " with groups " + a.groups());
            }
            long[] bs = bias == null ? null : constants.get(bias.name());
            if (bs != null && (bs.length != 1 || bs[0] != ws[0])) {
                throw new IllegalArgumentException("conv " + name + ": bias " + Arrays.toString(bs) + " for "
                        + ws[0] + " output channels");
            }
        }
        return node("Conv", name, bias == null ? List.of(x, w) : List.of(x, w, bias),
                ints("kernel_shape", a.r(), a.s()),
                ints("strides", a.strideH(), a.strideW()),
                ints("pads", a.padH(), a.padW(), a.padH(), a.padW()),
                ints("dilations", 1, 1),
                integer("group", a.groups()));
    }

    /** Inference-mode BatchNormalization with the running statistics; all parameters have shape [c]. */
    public Value batchNorm(String name, Value x, Value gamma, Value beta, Value mean, Value var, double eps, double momentum) {
        return node("BatchNormalization", name, List.of(x, gamma, beta, mean, var),
                real("epsilon", (float) eps), real("momentum", (float) momentum));
    }

    /**
     * A bias-free convolution followed by inference batch norm, as every convolution of EfficientNet is. The
     * weights are stored as {@code weightName} and the statistics under {@code bnName}'s {@code .weight},
     * {@code .bias}, {@code .running_mean}, {@code .running_var}; folded, as {@code name.weight} and
     * {@code name.bias} of one Conv (see {@link BatchNormFolding}). Returns the normalised output, named
     * {@code bnName} unfolded and {@code name} folded.
     */
    public Value convBatchNorm(String name, String weightName, String bnName, Value x, Tensor w, Conv a,
                               Tensor gamma, Tensor beta, Tensor mean, Tensor var, double eps, double momentum) {
        if (foldBatchNorm) {
            BatchNormFolding.Folded f = BatchNormFolding.fold(w.toArray(), null, gamma.toArray(), beta.toArray(),
                    mean.toArray(), var.toArray(), eps);
            Value fw = initializer(name + ".weight", f.weight(), w.shape());
            Value fb = initializer(name + ".bias", f.bias(), f.bias().length);
            return conv(name, x, fw, fb, a);
        }
        Value y = conv(name, x, initializer(weightName, w), null, a);
        return batchNorm(bnName, y,
                initializer(bnName + ".weight", gamma), initializer(bnName + ".bias", beta),
                initializer(bnName + ".running_mean", mean), initializer(bnName + ".running_var", var), eps, momentum);
    }

    public Value sigmoid(String name, Value x) {
        return node("Sigmoid", name, List.of(x));
    }

    /** SiLU as ONNX spells it without a dedicated op: x * Sigmoid(x), nodes {@code name.sigmoid} and {@code name}. */
    public Value silu(String name, Value x) {
        return mul(name, x, sigmoid(name + ".sigmoid", x));
    }

    /** Element-wise product with NumPy broadcasting (so [n, c, h, w] * [n, c, 1, 1] scales channels). */
    public Value mul(String name, Value a, Value b) {
        return node("Mul", name, List.of(a, b));
    }

    /** Element-wise sum with NumPy broadcasting. */
    public Value add(String name, Value a, Value b) {
        return node("Add", name, List.of(a, b));
    }

    /** [n, c, h, w] to [n, c, 1, 1], the mean over h and w. */
    public Value globalAveragePool(String name, Value x) {
        return node("GlobalAveragePool", name, List.of(x));
    }

    /** Flattens to 2-D: dimensions before {@code axis} become the rows, the rest the columns. */
    public Value flatten(String name, Value x, int axis) {
        return node("Flatten", name, List.of(x), integer("axis", axis));
    }

    /**
     * y = x · wᵀ + b with w in PyTorch's Linear layout [out, in] (Gemm with transB = 1); b of shape [out] may be
     * null.
     */
    public Value linear(String name, Value x, Value w, Value b) {
        long[] ws = constants.get(w.name());
        if (ws != null && ws.length != 2) {
            throw new IllegalArgumentException("linear " + name + ": weights must be 2-D, not " + Arrays.toString(ws));
        }
        return node("Gemm", name, b == null ? List.of(x, w) : List.of(x, w, b),
                real("alpha", 1f), real("beta", 1f), integer("transA", 0), integer("transB", 1));
    }

    /** Matrix product with NumPy semantics. */
    public Value matMul(String name, Value a, Value b) {
        return node("MatMul", name, List.of(a, b));
    }

    /** Reshape to {@code shape} (0 copies the input's dimension, -1 is inferred), stored as {@code name.shape}. */
    public Value reshape(String name, Value x, long... shape) {
        Value s = int64Initializer(name + ".shape", shape.clone(), shape.length);
        return node("Reshape", name, List.of(x, s), integer("allowzero", 0));
    }

    public Value identity(String name, Value x) {
        return node("Identity", name, List.of(x));
    }

    // ---- output ----

    /** The model: this graph, opset {@value #OPSET} of the default domain, producer {@value #PRODUCER}. */
    public ModelProto build() {
        if (graph.getOutputCount() == 0) throw new IllegalStateException("graph " + graph.getName() + " has no outputs");
        return ModelProto.newBuilder()
                .setIrVersion(IR_VERSION)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
                .setProducerName(PRODUCER)
                .setProducerVersion(producerVersion)
                .setDocString(docString)
                .setGraph(graph.build())
                .build();
    }

    /** Writes {@link #build()} to {@code file} atomically (the old file, if any, stays until the new one is whole). */
    public void write(Path file) throws IOException {
        write(build(), file);
    }

    public static void write(ModelProto model, Path file) throws IOException {
        AtomicFile.write(file, true, channel -> {
            OutputStream out = Channels.newOutputStream(channel);
            model.writeTo(out);
            out.flush();
        });
    }

    // ---- helpers ----

    private Value node(String opType, String name, List<Value> inputs, AttributeProto... attributes) {
        for (Value in : inputs) requireDefined(in, opType + " " + name);
        Value out = define(name, opType);
        NodeProto.Builder n = NodeProto.newBuilder().setName(name).setOpType(opType).addOutput(name);
        for (Value in : inputs) n.addInput(in.name());
        for (AttributeProto a : attributes) n.addAttribute(a);
        graph.addNode(n);
        return out;
    }

    private Value define(String name, String what) {
        String previous = defined.putIfAbsent(name, what);
        if (previous != null) {
            throw new IllegalArgumentException("value name " + name + " (" + what + ") is already used by a " + previous);
        }
        return new Value(name);
    }

    private void requireDefined(Value v, String user) {
        if (!defined.containsKey(v.name())) {
            throw new IllegalArgumentException(user + ": unknown value " + v.name() + " (nodes must come in topological order)");
        }
    }

    private static ValueInfoProto valueInfo(String name, Dim... dims) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (Dim d : dims) shape.addDim(d.proto());
        return ValueInfoProto.newBuilder().setName(name)
                .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                        .setElemType(TensorProto.DataType.FLOAT.getNumber()).setShape(shape)))
                .build();
    }

    private static AttributeProto ints(String name, long... values) {
        AttributeProto.Builder a = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
        for (long v : values) a.addInts(v);
        return a.build();
    }

    private static AttributeProto integer(String name, long value) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(value).build();
    }

    private static AttributeProto real(String name, float value) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF(value).build();
    }
}
