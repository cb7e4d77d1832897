package ich.nn.cpu;

import ich.nn.ConvGeometry;
import ich.nn.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static ich.nn.cpu.Checks.close;
import static ich.nn.cpu.Checks.dot;
import static ich.nn.cpu.Checks.poisoned;
import static ich.nn.cpu.Checks.random;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Convolution forward, backward-data and backward-filter of the CPU backend against plain seven-loop
 * definitions, for every path (pointwise GEMM, im2col GEMM, depthwise, other groups) on both micro-kernels,
 * one and several threads; and the backward passes against finite differences.
 */
class CpuConvolutionTest {
    private static final CpuBackend VECTOR_3 = new CpuBackend(3, CpuBackend.Kernel.VECTOR);
    private static final CpuBackend SCALAR_1 = new CpuBackend(1, CpuBackend.Kernel.SCALAR);

    @AfterAll
    static void closeBackends() {
        VECTOR_3.close();
        SCALAR_1.close();
    }

    static List<Object[]> cases() {
        List<ConvGeometry> shapes = List.of(
                // generic im2col, odd sizes
                ConvGeometry.square(2, 3, 9, 11, 5, 3, 1, 1),
                // stem-like 3x3 stride 2
                ConvGeometry.square(2, 3, 17, 15, 8, 3, 2, 1),
                // pointwise with partial tiles in every direction
                ConvGeometry.square(3, 20, 7, 5, 13, 1, 1, 1),
                // pointwise with k > the GEMM's depth block (128)
                ConvGeometry.square(2, 150, 10, 10, 40, 1, 1, 1),
                // pointwise with more columns than the GEMM's column block (2048) in one task
                ConvGeometry.square(1, 3, 96, 96, 5, 1, 1, 1),
                // pointwise filter gradient by row dots: a last chunk of 65 pixels after a full one of 1024, padded
                // with zeros to whole vectors over what the full chunk left in the buffers
                ConvGeometry.square(2, 5, 33, 33, 6, 1, 1, 1),
                // pointwise on late-stage planes (3 x 3): the batch's pixels form one matrix, tiles straddle images;
                // more output than input channels, so the filter gradient is split by rows
                ConvGeometry.square(7, 12, 3, 3, 40, 1, 1, 1),
                ConvGeometry.square(5, 70, 2, 3, 9, 1, 1, 1),
                // 1 x 1 planes (the last stages at a small input): rows and columns of the batched views both have stride 1
                ConvGeometry.square(6, 40, 1, 1, 24, 1, 1, 1),
                ConvGeometry.square(6, 24, 1, 1, 40, 1, 1, 1),
                // 1x1 with stride 2 goes through im2col
                ConvGeometry.square(2, 6, 9, 8, 7, 1, 2, 1),
                // depthwise 3x3 and 5x5, stride 1 and 2, odd and even sizes
                ConvGeometry.square(2, 7, 11, 13, 7, 3, 1, 7),
                ConvGeometry.square(2, 7, 11, 12, 7, 3, 2, 7),
                ConvGeometry.square(2, 5, 12, 9, 5, 5, 1, 5),
                ConvGeometry.square(3, 6, 11, 14, 6, 5, 2, 6),
                // depthwise on a plane smaller than the kernel's reach
                ConvGeometry.square(1, 4, 2, 3, 4, 5, 2, 4),
                ConvGeometry.square(2, 3, 1, 2, 3, 5, 1, 3),
                // depthwise at stride 1 (the gathered data gradient) with padding past the filter, and a 3x5 filter
                new ConvGeometry(2, 4, 5, 6, 4, 3, 3, 1, 1, 4, 4, 4),
                new ConvGeometry(1, 5, 7, 9, 5, 3, 5, 1, 1, 1, 2, 5),
                // other groups
                ConvGeometry.square(2, 6, 8, 7, 4, 3, 1, 2),
                ConvGeometry.square(2, 9, 5, 6, 6, 1, 1, 3),
                ConvGeometry.square(1, 4, 9, 9, 8, 3, 2, 4),
                // rectangular kernel, unequal strides and paddings
                new ConvGeometry(2, 3, 10, 9, 4, 3, 1, 2, 1, 1, 0, 1),
                new ConvGeometry(1, 2, 6, 7, 3, 2, 4, 1, 2, 0, 2, 1));
        List<Object[]> out = new ArrayList<>();
        for (ConvGeometry g : shapes) {
            out.add(new Object[] {"vector x3", g});
            out.add(new Object[] {"scalar x1", g});
        }
        return out;
    }

    private static CpuBackend backend(String name) {
        return name.startsWith("vector") ? VECTOR_3 : SCALAR_1;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void forwardAndBackwardMatchTheDefinition(String backendName, ConvGeometry g) {
        CpuBackend cpu = backend(backendName);
        Random random = new Random(g.hashCode());
        try (Arena arena = Arena.ofShared()) {
            Tensor x = random(arena, random, g.inputShape());
            Tensor w = random(arena, random, g.weightShape());
            Tensor dy = random(arena, random, g.outputShape());

            Tensor y = poisoned(arena, g.outputShape());
            cpu.conv2dForward(g, x, w, y);
            close("forward " + g, naiveForward(g, x.toArray(), w.toArray()), y, 1e-4);

            Tensor dx = poisoned(arena, g.inputShape());
            cpu.conv2dBackwardData(g, dy, w, dx);
            close("backward data " + g, naiveBackwardData(g, dy.toArray(), w.toArray()), dx, 1e-4);

            Tensor dw = poisoned(arena, g.weightShape());
            cpu.conv2dBackwardFilter(g, x, dy, dw);
            close("backward filter " + g, naiveBackwardFilter(g, x.toArray(), dy.toArray()), dw, 1e-4);
        }
    }

    /** The backward passes as derivatives of loss = sum(conv(x, w) * R): central differences on float32. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("smallShapes")
    void backwardMatchesFiniteDifferences(ConvGeometry g) {
        Random random = new Random(7 + g.hashCode());
        try (Arena arena = Arena.ofShared()) {
            Tensor x = random(arena, random, g.inputShape());
            Tensor w = random(arena, random, g.weightShape());
            Tensor r = random(arena, random, g.outputShape());
            Tensor y = Tensor.allocate(arena, g.outputShape());
            Tensor dx = poisoned(arena, g.inputShape());
            Tensor dw = poisoned(arena, g.weightShape());
            VECTOR_3.conv2dBackwardData(g, r, w, dx);
            VECTOR_3.conv2dBackwardFilter(g, x, r, dw);
            java.util.function.DoubleSupplier loss = () -> {
                VECTOR_3.conv2dForward(g, x, w, y);
                return dot(y, r);
            };
            Checks.gradient("d/dx " + g, x, dx, loss, random, 1e-2f, 1e-2, 1e-3, 60);
            Checks.gradient("d/dw " + g, w, dw, loss, random, 1e-2f, 1e-2, 1e-3, 60);
        }
    }

    static List<ConvGeometry> smallShapes() {
        return List.of(
                ConvGeometry.square(2, 3, 7, 6, 4, 3, 2, 1),
                ConvGeometry.square(2, 5, 4, 5, 6, 1, 1, 1),
                ConvGeometry.square(2, 4, 9, 8, 4, 5, 2, 4),
                ConvGeometry.square(2, 3, 6, 7, 3, 3, 1, 3),
                ConvGeometry.square(1, 4, 5, 5, 6, 3, 1, 2));
    }

    @Test
    void overwritesOutputsAndRepeatsExactly() {
        ConvGeometry g = ConvGeometry.square(2, 8, 12, 12, 16, 1, 1, 1);
        Random random = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            Tensor x = random(arena, random, g.inputShape());
            Tensor w = random(arena, random, g.weightShape());
            Tensor dy = random(arena, random, g.outputShape());
            Tensor dw1 = Tensor.allocate(arena, g.weightShape());
            Tensor dw2 = random(arena, random, g.weightShape());
            VECTOR_3.conv2dBackwardFilter(g, x, dy, dw1);
            VECTOR_3.conv2dBackwardFilter(g, x, dy, dw2);
            assertTrue(java.util.Arrays.equals(dw1.toArray(), dw2.toArray()), "dw is overwritten, not accumulated");
        }
    }

    @Test
    void shapeMismatchNamesTheOp() {
        ConvGeometry g = ConvGeometry.square(1, 4, 8, 8, 6, 3, 1, 1);
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.allocate(arena, g.inputShape());
            Tensor wrongW = Tensor.allocate(arena, 6, 4, 1, 1);
            Tensor y = Tensor.allocate(arena, g.outputShape());
            var e = assertThrows(IllegalArgumentException.class, () -> VECTOR_3.conv2dForward(g, x, wrongW, y));
            assertTrue(e.getMessage().contains("conv2dForward") && e.getMessage().contains("weights"), e.getMessage());
            Tensor wrongDx = Tensor.allocate(arena, 1, 4, 8, 9);
            var e2 = assertThrows(IllegalArgumentException.class,
                    () -> VECTOR_3.conv2dBackwardData(g, y, Tensor.allocate(arena, g.weightShape()), wrongDx));
            assertTrue(e2.getMessage().contains("conv2dBackwardData"), e2.getMessage());
        }
    }

    // ---- definitions, written as plainly as possible ----

    static double[] naiveForward(ConvGeometry g, float[] x, float[] w) {
        int cg = g.c() / g.groups(), kg = g.k() / g.groups(), p = g.p(), q = g.q();
        double[] y = new double[g.n() * g.k() * p * q];
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int pp = 0; pp < p; pp++)
                    for (int qq = 0; qq < q; qq++) {
                        double sum = 0;
                        for (int cc = 0; cc < cg; cc++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int h = pp * g.strideH() + r - g.padH(), ww = qq * g.strideW() + s - g.padW();
                                    if (h < 0 || h >= g.h() || ww < 0 || ww >= g.w()) continue;
                                    int c = k / kg * cg + cc;
                                    sum += x[((n * g.c() + c) * g.h() + h) * g.w() + ww]
                                            * w[((k * cg + cc) * g.r() + r) * g.s() + s];
                                }
                        y[((n * g.k() + k) * p + pp) * q + qq] = sum;
                    }
        return y;
    }

    static double[] naiveBackwardData(ConvGeometry g, float[] dy, float[] w) {
        int cg = g.c() / g.groups(), kg = g.k() / g.groups(), p = g.p(), q = g.q();
        double[] dx = new double[g.n() * g.c() * g.h() * g.w()];
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int pp = 0; pp < p; pp++)
                    for (int qq = 0; qq < q; qq++)
                        for (int cc = 0; cc < cg; cc++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int h = pp * g.strideH() + r - g.padH(), ww = qq * g.strideW() + s - g.padW();
                                    if (h < 0 || h >= g.h() || ww < 0 || ww >= g.w()) continue;
                                    int c = k / kg * cg + cc;
                                    dx[((n * g.c() + c) * g.h() + h) * g.w() + ww] +=
                                            dy[((n * g.k() + k) * p + pp) * q + qq] * w[((k * cg + cc) * g.r() + r) * g.s() + s];
                                }
        return dx;
    }

    static double[] naiveBackwardFilter(ConvGeometry g, float[] x, float[] dy) {
        int cg = g.c() / g.groups(), kg = g.k() / g.groups(), p = g.p(), q = g.q();
        double[] dw = new double[g.k() * cg * g.r() * g.s()];
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int pp = 0; pp < p; pp++)
                    for (int qq = 0; qq < q; qq++)
                        for (int cc = 0; cc < cg; cc++)
                            for (int r = 0; r < g.r(); r++)
                                for (int s = 0; s < g.s(); s++) {
                                    int h = pp * g.strideH() + r - g.padH(), ww = qq * g.strideW() + s - g.padW();
                                    if (h < 0 || h >= g.h() || ww < 0 || ww >= g.w()) continue;
                                    int c = k / kg * cg + cc;
                                    dw[((k * cg + cc) * g.r() + r) * g.s() + s] +=
                                            dy[((n * g.k() + k) * p + pp) * q + qq] * x[((n * g.c() + c) * g.h() + h) * g.w() + ww];
                                }
        return dw;
    }
}
