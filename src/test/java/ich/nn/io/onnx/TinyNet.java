package ich.nn.io.onnx;

import ich.nn.Tensor;
import ich.nn.io.onnx.NchwReference.Act;
import ich.nn.io.onnx.OnnxGraphBuilder.Conv;
import ich.nn.io.onnx.OnnxGraphBuilder.Dim;
import ich.nn.io.onnx.OnnxGraphBuilder.Value;

import java.lang.foreign.Arena;
import java.util.Random;

import static ich.nn.io.onnx.NchwReference.*;

/**
 * A small network with every pattern of EfficientNet-B0, random weights, exported through
 * {@link OnnxGraphBuilder} and computed by {@link NchwReference}:
 * <pre>
 * stem     conv 3x3/2 3->8, BN, SiLU
 * block 0  depthwise 5x5/1, BN, SiLU; SE (pool, 1x1 8->2 + bias, SiLU, 1x1 2->8 + bias, sigmoid, scale);
 *          pointwise 1x1 8->8, BN; + stem output (residual)
 * block 1  depthwise 3x3/2, BN, SiLU; pointwise 1x1 8->12, BN, SiLU
 * head     global average pool, flatten, linear 12->6 = logits; sigmoid = probabilities
 * </pre>
 */
final class TinyNet {
    static final double EPS = 1e-5;
    static final int CLASSES = 6;

    /** How the head turns [n, 12, 1, 1] into logits: Flatten + Gemm, or Reshape + MatMul + Add. */
    enum Head { FLATTEN_GEMM, RESHAPE_MATMUL }

    record ConvBn(String conv, String bn, float[] w, int[] shape, float[] gamma, float[] beta, float[] mean, float[] var) {}

    final ConvBn stem, dw0, pw0, dw1, pw1;
    final float[] seReduceW, seReduceB, seExpandW, seExpandB, fcW, fcB;

    TinyNet(long seed) {
        Random random = new Random(seed);
        stem = convBn(random, "conv_stem", "bn1", 8, 3, 3);
        dw0 = convBn(random, "blocks.0.0.conv_dw", "blocks.0.0.bn1", 8, 1, 5);
        seReduceW = gaussian(random, 2 * 8, Math.sqrt(2.0 / 8));
        seReduceB = gaussian(random, 2, 0.2);
        seExpandW = gaussian(random, 8 * 2, Math.sqrt(2.0 / 2));
        seExpandB = gaussian(random, 8, 0.2);
        pw0 = convBn(random, "blocks.0.0.conv_pw", "blocks.0.0.bn2", 8, 8, 1);
        dw1 = convBn(random, "blocks.1.0.conv_dw", "blocks.1.0.bn1", 8, 1, 3);
        pw1 = convBn(random, "blocks.1.0.conv_pw", "blocks.1.0.bn2", 12, 8, 1);
        fcW = gaussian(random, CLASSES * 12, Math.sqrt(1.0 / 12));
        fcB = gaussian(random, CLASSES, 0.1);
    }

    private static ConvBn convBn(Random random, String conv, String bn, int k, int cPerGroup, int kernel) {
        int fanIn = cPerGroup * kernel * kernel;
        return new ConvBn(conv, bn, gaussian(random, k * fanIn, Math.sqrt(2.0 / fanIn)), new int[] {k, cPerGroup, kernel, kernel},
                uniform(random, k, 0.5, 1.5), gaussian(random, k, 0.1), gaussian(random, k, 0.1), uniform(random, k, 0.5, 1.5));
    }

    OnnxGraphBuilder export(Arena arena, boolean fold, Head head) {
        OnnxGraphBuilder g = new OnnxGraphBuilder("tiny", fold);
        Value x = g.input("input", Dim.symbol("N"), Dim.of(3), Dim.symbol("H"), Dim.symbol("W"));
        Value stemOut = g.silu("act1", convBn(g, arena, x, stem, Conv.square(3, 2, 1)));

        Value y = g.silu("blocks.0.0.act1", convBn(g, arena, stemOut, dw0, Conv.square(5, 1, 8)));
        Value s = g.globalAveragePool("blocks.0.0.se.pool", y);
        s = g.conv("blocks.0.0.se.conv_reduce", s, g.initializer("blocks.0.0.se.conv_reduce.weight", seReduceW, 2, 8, 1, 1),
                g.initializer("blocks.0.0.se.conv_reduce.bias", seReduceB, 2), Conv.square(1, 1, 1));
        s = g.silu("blocks.0.0.se.act1", s);
        s = g.conv("blocks.0.0.se.conv_expand", s, g.initializer("blocks.0.0.se.conv_expand.weight", seExpandW, 8, 2, 1, 1),
                g.initializer("blocks.0.0.se.conv_expand.bias", seExpandB, 8), Conv.square(1, 1, 1));
        y = g.mul("blocks.0.0.se", y, g.sigmoid("blocks.0.0.se.gate", s));
        y = convBn(g, arena, y, pw0, Conv.square(1, 1, 1));
        y = g.add("blocks.0.0", y, stemOut);

        y = g.silu("blocks.1.0.act1", convBn(g, arena, y, dw1, Conv.square(3, 2, 8)));
        y = g.silu("blocks.1.0", convBn(g, arena, y, pw1, Conv.square(1, 1, 1)));

        Value pooled = g.globalAveragePool("global_pool", y);
        Value logits = switch (head) {
            case FLATTEN_GEMM -> g.linear("classifier", g.flatten("flatten", pooled, 1),
                    g.initializer("classifier.weight", fcW, CLASSES, 12), g.initializer("classifier.bias", fcB, CLASSES));
            case RESHAPE_MATMUL -> {
                float[] wt = new float[12 * CLASSES];
                for (int o = 0; o < CLASSES; o++) for (int i = 0; i < 12; i++) wt[i * CLASSES + o] = fcW[o * 12 + i];
                Value flat = g.reshape("flatten", pooled, 0, -1);
                Value product = g.matMul("classifier.matmul", flat, g.initializer("classifier.weight_t", wt, 12, CLASSES));
                yield g.add("classifier", product, g.initializer("classifier.bias", fcB, CLASSES));
            }
        };
        g.output(logits, "logits", Dim.symbol("N"), Dim.of(CLASSES));
        g.output(g.sigmoid("probabilities", logits), "probabilities", Dim.symbol("N"), Dim.of(CLASSES));
        return g;
    }

    private static Value convBn(OnnxGraphBuilder g, Arena arena, Value x, ConvBn p, Conv a) {
        return g.convBatchNorm(p.conv(), p.conv() + ".weight", p.bn(), x, Tensor.of(arena, p.w(), p.shape()), a,
                Tensor.of(arena, p.gamma(), p.gamma().length), Tensor.of(arena, p.beta(), p.beta().length),
                Tensor.of(arena, p.mean(), p.mean().length), Tensor.of(arena, p.var(), p.var().length), EPS, 0.1);
    }

    /** The reference forward pass; returns logits [n, 6]. */
    float[] forward(float[] input, int n, int h, int w) {
        Act x = new Act(input, n, 3, h, w);
        Act stemOut = silu(convBn(x, stem, 2, 1));
        Act y = silu(convBn(stemOut, dw0, 1, 8));
        Act s = conv(globalAveragePool(y), seReduceW, seReduceB, 2, 1, 1, 1, 0, 1);
        s = conv(silu(s), seExpandW, seExpandB, 8, 1, 1, 1, 0, 1);
        y = scaleChannels(y, sigmoid(s));
        y = add(convBn(y, pw0, 1, 1), stemOut);
        y = silu(convBn(y, dw1, 2, 8));
        y = silu(convBn(y, pw1, 1, 1));
        return linear(globalAveragePool(y).v(), n, fcW, fcB, CLASSES);
    }

    private static Act convBn(Act x, ConvBn p, int stride, int groups) {
        int kernel = p.shape()[2];
        return batchNorm(conv(x, p.w(), null, p.shape()[0], kernel, kernel, stride, (kernel - 1) / 2, groups),
                p.gamma(), p.beta(), p.mean(), p.var(), EPS);
    }

    static float[] sigmoidOf(float[] logits) {
        float[] p = new float[logits.length];
        for (int i = 0; i < p.length; i++) p[i] = (float) NchwReference.sigmoid(logits[i]);
        return p;
    }
}
