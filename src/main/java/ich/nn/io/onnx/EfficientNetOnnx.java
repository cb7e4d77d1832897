package ich.nn.io.onnx;

import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.io.onnx.OnnxGraphBuilder.Conv;
import ich.nn.io.onnx.OnnxGraphBuilder.Dim;
import ich.nn.io.onnx.OnnxGraphBuilder.Value;
import ich.nn.io.onnx.OnnxProto.ModelProto;
import ich.nn.model.BatchNorm2d;
import ich.nn.model.Block;
import ich.nn.model.Conv2d;
import ich.nn.model.Dropout;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.GlobalAveragePool;
import ich.nn.model.Layer;
import ich.nn.model.Linear;
import ich.nn.model.Sequential;
import ich.nn.model.SiLU;
import ich.nn.model.SqueezeExcite;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * EfficientNet-B0 in eval mode as an ONNX graph: input {@code input} float32 [N, 3, H, W] (N, H and W dynamic),
 * outputs {@code logits} and {@code probabilities} (sigmoid of the logits, one per label) [N, classes].
 *
 * <p>The graph follows the model's own layer structure: batch norm uses the running statistics (folded into
 * the convolution before it unless asked not to), SiLU is x·Sigmoid(x), squeeze-and-excitation is
 * GlobalAveragePool → Conv 1×1 → SiLU → Conv 1×1 → Sigmoid → Mul, a block with a skip adds its input (no
 * drop-path at inference), dropout is absent, and the classifier is Gemm with transB = 1 on the flattened pool.
 * Node and initializer names are the timm module and state-dict names.
 */
public final class EfficientNetOnnx {
    public static final String INPUT = "input";
    public static final String LOGITS = "logits";
    public static final String PROBABILITIES = "probabilities";

    /**
     * A spatial size that every stride of the network divides, for reading each convolution's stride off its
     * output shape (the layer reports shapes, not strides).
     */
    private static final int PROBE = 1 << 12;

    private final OnnxGraphBuilder g;
    private final double eps;
    private final double momentum;

    private EfficientNetOnnx(EfficientNetB0 model, boolean foldBatchNorm) {
        this.g = new OnnxGraphBuilder("efficientnet_b0", foldBatchNorm);
        this.eps = model.config().bnEps();
        this.momentum = model.config().bnMomentum();
    }

    /**
     * The model as ONNX. Parameters must be on the host ({@link EfficientNetB0#onHost} or a CPU-backed model);
     * copy a device model's state dict to the host first.
     *
     * @param foldBatchNorm fold each batch norm into the convolution before it (fewer ops, the same function to
     *                      float rounding); false keeps BatchNormalization nodes with timm's parameter names
     */
    public static ModelProto export(EfficientNetB0 model, boolean foldBatchNorm, String producerVersion) {
        EfficientNetOnnx e = new EfficientNetOnnx(model, foldBatchNorm);
        e.g.producerVersion(producerVersion)
                .docString("timm efficientnet_b0, " + model.config().numClasses() + " sigmoid outputs, eval mode");
        Value x = e.g.input(INPUT, Dim.symbol("N"), Dim.of(3), Dim.symbol("H"), Dim.symbol("W"));
        int[] probe = {1, 3, PROBE, PROBE};
        Walk out = e.walk(model.network().layers(), x, probe);
        int[] shape = out.shape();
        if (shape.length != 2 || shape[1] != model.config().numClasses()) {
            throw new IllegalStateException("the network ends in " + Arrays.toString(shape) + ", not [n, classes]");
        }
        Dim n = Dim.symbol("N"), classes = Dim.of(shape[1]);
        Value logits = e.g.output(out.value(), LOGITS, n, classes);
        e.g.output(e.g.sigmoid(PROBABILITIES, logits), PROBABILITIES, n, classes);
        return e.g.build();
    }

    /** {@link #export} written atomically to {@code file}. */
    public static void write(EfficientNetB0 model, boolean foldBatchNorm, String producerVersion, Path file) throws IOException {
        OnnxGraphBuilder.write(export(model, foldBatchNorm, producerVersion), file);
    }

    private record Walk(Value value, int[] shape) {}

    private Walk walk(List<Layer> layers, Value x, int[] shape) {
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            int[] next = l.outputShape(shape);
            Layer after = i + 1 < layers.size() ? layers.get(i + 1) : null;
            switch (l) {
                case Conv2d conv when after instanceof BatchNorm2d bn -> {
                    x = convBatchNorm(conv, bn, x, shape);
                    next = bn.outputShape(next);
                    i++;
                }
                case Conv2d conv -> x = g.conv(conv.name(), x, g.initializer(conv.weight().name(), hostValue(conv.weight())),
                        null, convAttributes(conv, shape));
                case BatchNorm2d bn -> x = g.batchNorm(bn.name(), x, constant(bn, ".weight"), constant(bn, ".bias"),
                        constant(bn, ".running_mean"), constant(bn, ".running_var"), eps, momentum);
                case SiLU act -> x = g.silu(act.name(), x);
                case SqueezeExcite se -> x = squeezeExcite(se, x);
                case Block block -> {
                    Value y = walk(block.layers(), x, shape).value();
                    // Eval mode: drop-path keeps every sample, so the skip is a plain sum.
                    x = block.hasSkip() ? g.add(block.name(), y, x) : y;
                }
                case Sequential seq -> x = walk(seq.layers(), x, shape).value();
                // [n, c, h, w] -> [n, c], as the layer does.
                case GlobalAveragePool pool -> x = g.flatten("flatten", g.globalAveragePool("global_pool", x), 1);
                case Dropout _ -> {
                    // Identity at inference.
                }
                case Linear fc -> x = g.linear(fc.name(), x, constant(fc, ".weight"), constant(fc, ".bias"));
                default -> throw new IllegalArgumentException("no ONNX export for layer " + l.name() + " (" + l.type() + ")");
            }
            shape = next;
        }
        return new Walk(x, shape);
    }

    private Value convBatchNorm(Conv2d conv, BatchNorm2d bn, Value x, int[] shape) {
        Tensor w = hostValue(conv.weight());
        return g.convBatchNorm(conv.name(), conv.weight().name(), bn.name(), x, w, convAttributes(conv, shape),
                param(bn, ".weight"), param(bn, ".bias"), param(bn, ".running_mean"), param(bn, ".running_var"), eps, momentum);
    }

    private Value squeezeExcite(SqueezeExcite se, Value x) {
        String n = se.name();
        Value s = g.globalAveragePool(n + ".pool", x);
        s = g.conv(n + ".conv_reduce", s, constant(se, ".conv_reduce.weight"), constant(se, ".conv_reduce.bias"), Conv.square(1, 1, 1));
        s = g.silu(n + ".act1", s);
        s = g.conv(n + ".conv_expand", s, constant(se, ".conv_expand.weight"), constant(se, ".conv_expand.bias"), Conv.square(1, 1, 1));
        return g.mul(n, x, g.sigmoid(n + ".gate", s));
    }

    /**
     * Kernel and groups come from the weight [k, c/groups, r, s] and the input channels; the stride from the
     * output size the layer reports for a probe input (padding is PyTorch's (kernel - 1) / 2 throughout).
     */
    private static Conv convAttributes(Conv2d conv, int[] shape) {
        int[] w = conv.weight().value().shape();
        if (w[2] != w[3] || w[2] % 2 == 0) throw new IllegalArgumentException(conv.name() + ": kernel " + w[2] + "x" + w[3] + " is not odd and square");
        int c = shape[1];
        if (c % w[1] != 0) throw new IllegalArgumentException(conv.name() + ": " + c + " input channels for weights " + Arrays.toString(w));
        int groups = c / w[1];
        int[] out = conv.outputShape(shape);
        int stride = shape[2] / out[2];
        if (stride * out[2] != shape[2]) throw new IllegalStateException(conv.name() + ": cannot read the stride off " + shape[2] + " -> " + out[2]);
        return Conv.square(w[2], stride, groups);
    }

    private Value constant(Layer layer, String suffix) {
        return g.initializer(layer.name() + suffix, param(layer, suffix));
    }

    private Tensor param(Layer layer, String suffix) {
        String name = layer.name() + suffix;
        for (Parameter p : layer.parameters()) {
            if (p.name().equals(name)) return hostValue(p);
        }
        throw new IllegalArgumentException(layer.name() + " has no parameter " + name);
    }

    private static Tensor hostValue(Parameter p) {
        if (!p.value().isHost()) {
            throw new IllegalArgumentException(p.name() + " lives on a device; export a host copy of the model");
        }
        return p.value();
    }
}
