package ich.nn.model;

import ich.nn.AdamTensors;
import ich.nn.Backend;
import ich.nn.ConvGeometry;
import ich.nn.Parameter;
import ich.nn.Storage;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;

/**
 * The engine's ops one at a time, on the shapes EfficientNet-B0 gives them at a batch and input size, so that two
 * backends can be timed side by side on the same calls ({@code ich bench ops}): the CPU reference against the CUDA
 * backend's cuDNN, cuBLAS and kernels of our own. Each case allocates its tensors on the backend (inputs random and
 * seeded, in the backend's activation storage where the model keeps them there), is called a few times untimed (cuDNN
 * picks its algorithms on a shape's first call), then timed.
 *
 * <p>Rates: GFLOP/s for convolutions and Linear (2 flops a multiply-add); for the rest, which are memory-bound, GB/s of
 * the tensors the op reads and writes, each counted once (a lower bound on the traffic: an op that reads its input
 * twice, like a batch norm's statistics and normalisation passes, moves more).
 */
public final class OpBench {
    private OpBench() {
    }

    /** An op ready to call: the call, the bytes of the tensors it reads and writes, and its flops (0 where memory-bound). */
    public record Prepared(Runnable call, long bytes, double flops) {}

    /** One op at one shape: a name, the shape in words, and how to allocate its tensors and call it. */
    public record Case(String op, String shape, Function<Tensors, Prepared> prepare) {}

    /** A case's measurement on one backend. */
    public record Timing(double millisPerCall, long bytes, double flops) {
        /** GFLOP/s where the op has flops, else GB/s. */
        public double rate() {
            return (flops > 0 ? flops : bytes) / (millisPerCall * 1e6);
        }

        public String rateUnit() {
            return flops > 0 ? "GFLOP/s" : "GB/s";
        }
    }

    /**
     * Prepares {@code c} on {@code backend} and times it: {@code warmup} untimed calls and more until a third of
     * {@code seconds} has passed (the JIT, the first touch of every output, cuDNN's algorithm search), then rounds of
     * calls, doubling, until at least {@code minCalls} calls and {@code seconds} have been timed. The device is
     * waited for ({@code synchronize}) before the clock starts and at the end of each round, not after each call, so
     * a GPU's launches queue as they do in a training step.
     */
    public static Timing time(Backend backend, Case c, int warmup, int minCalls, double seconds, Runnable synchronize) {
        if (minCalls < 1) throw new IllegalArgumentException("minCalls must be positive, got " + minCalls);
        try (Arena arena = Arena.ofShared(); Tensors tensors = new Tensors(backend, arena, synchronize)) {
            Prepared p = c.prepare().apply(tensors);
            tensors.finishUploads();
            long warmStart = System.nanoTime();
            for (int i = 0; i < warmup || System.nanoTime() - warmStart < seconds / 3 * 1e9; i++) {
                p.call().run();
                synchronize.run();
            }
            long calls = 0, round = 1, start = System.nanoTime(), elapsed;
            do {
                for (long i = 0; i < round; i++) p.call().run();
                synchronize.run();
                calls += round;
                round *= 2;
                elapsed = System.nanoTime() - start;
            } while (calls < minCalls || elapsed < seconds * 1e9);
            return new Timing(elapsed / 1e6 / calls, p.bytes(), p.flops());
        }
    }

    /**
     * A case's tensors on one backend: image tensors ([n, c, h, w]) in the backend's activation storage, everything
     * else (weights, statistics, [n, c] vectors) in fp32, as the model keeps them. Inputs are filled from one seeded
     * generator on the host and copied over.
     */
    public static final class Tensors implements AutoCloseable {
        private final Backend backend;
        private final Arena arena;
        private final Runnable synchronize;
        private final Arena staging = Arena.ofShared();
        private final SplittableRandom random = new SplittableRandom(1);

        Tensors(Backend backend, Arena arena, Runnable synchronize) {
            this.backend = backend;
            this.arena = arena;
            this.synchronize = synchronize;
        }

        public Backend backend() {
            return backend;
        }

        /** An image tensor of standard normal values. */
        public Tensor image(int... shape) {
            return filled(backend.allocate(arena, backend.activationStorage(), shape), 0, 1);
        }

        /** An image tensor the op overwrites. */
        public Tensor imageOut(int... shape) {
            return backend.allocateUninitialized(arena, backend.activationStorage(), shape);
        }

        /** An fp32 tensor of normal values with this mean and standard deviation. */
        public Tensor normal(double mean, double std, int... shape) {
            return filled(backend.allocate(arena, Storage.FLOAT32, shape), mean, std);
        }

        /** An fp32 tensor of standard normal values. */
        public Tensor floats(int... shape) {
            return normal(0, 1, shape);
        }

        /** An fp32 tensor the op overwrites. */
        public Tensor floatsOut(int... shape) {
            return backend.allocateUninitialized(arena, Storage.FLOAT32, shape);
        }

        /** An fp32 tensor of zeros (Adam's moments). */
        public Tensor zeros(int... shape) {
            return backend.allocate(arena, Storage.FLOAT32, shape);
        }

        private Tensor filled(Tensor t, double mean, double std) {
            Tensor host = t.isHost() && t.storage().equals(Storage.FLOAT32) ? t : Tensor.allocate(staging, t.shape());
            for (long i = 0; i < host.size(); i++) host.set(i, (float) (mean + std * random.nextGaussian()));
            if (host != t) backend.copy(host, t);
            return t;
        }

        /** Waits for the copies, so that none is timed and the host copies may be freed. */
        void finishUploads() {
            synchronize.run();
        }

        @Override
        public void close() {
            synchronize.run();
            staging.close();
        }
    }

    private static long bytes(Tensor... tensors) {
        long sum = 0;
        for (Tensor t : tensors) if (t != null) sum += t.bytes();
        return sum;
    }

    private static String dims(int... shape) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < shape.length; i++) b.append(i == 0 ? "" : "x").append(shape[i]);
        return b.toString();
    }

    /** The output side of a B0 layer at stride 2: (in + 1) / 2, as its padded convolutions give. */
    private static int half(int size) {
        return (size + 1) / 2;
    }

    /**
     * B0's ops at batch {@code n} and input {@code s} x {@code s}: a representative layer of each kind, the shape it
     * has there. The stem's input gradient is left out, as training never asks for it.
     */
    public static List<Case> cases(int n, int s) {
        int h2 = half(s), h4 = half(h2), h8 = half(h4), h16 = half(h8), h32 = half(h16);
        List<Case> cases = new ArrayList<>();
        convolution(cases, "conv 3x3/2 (stem)", ConvGeometry.square(n, 3, s, s, 32, 3, 2, 1), false);
        convolution(cases, "conv 1x1 (expand)", ConvGeometry.square(n, 24, h4, h4, 144, 1, 1, 1), true);
        convolution(cases, "conv 1x1 (project)", ConvGeometry.square(n, 1152, h32, h32, 192, 1, 1, 1), true);
        convolution(cases, "depthwise 3x3/1", ConvGeometry.square(n, 144, h4, h4, 144, 3, 1, 144), true);
        convolution(cases, "depthwise 5x5/2", ConvGeometry.square(n, 144, h4, h4, 144, 5, 2, 144), true);
        convolution(cases, "depthwise 5x5/1", ConvGeometry.square(n, 672, h16, h16, 672, 5, 1, 672), true);
        batchNorm(cases, n, 96, h2, true);
        batchNorm(cases, n, 24, h4, false);
        squeezeExcite(cases, n, 144, h4);
        elementwise(cases, n, 24, h4, 96, h2);
        head(cases, n);
        adam(cases);
        return cases;
    }

    private static void convolution(List<Case> cases, String name, ConvGeometry g, boolean inputGradient) {
        double flops = 2.0 * g.n() * g.k() * g.p() * g.q() * (g.c() / g.groups()) * g.r() * g.s();
        String shape = dims(g.inputShape()) + " -> " + dims(g.outputShape()) + (g.groups() > 1 ? " (depthwise)" : "");
        cases.add(new Case(name + " forward", shape, t -> {
            Tensor x = t.image(g.inputShape()), w = t.normal(0, 0.1, g.weightShape()), y = t.imageOut(g.outputShape());
            return new Prepared(() -> t.backend().conv2dForward(g, x, w, y), bytes(x, w, y), flops);
        }));
        if (inputGradient) {
            cases.add(new Case(name + " backward data", shape, t -> {
                Tensor dy = t.image(g.outputShape()), w = t.normal(0, 0.1, g.weightShape()), dx = t.imageOut(g.inputShape());
                return new Prepared(() -> t.backend().conv2dBackwardData(g, dy, w, dx), bytes(dy, w, dx), flops);
            }));
        }
        cases.add(new Case(name + " backward filter", shape, t -> {
            Tensor x = t.image(g.inputShape()), dy = t.image(g.outputShape()), dw = t.floatsOut(g.weightShape());
            return new Prepared(() -> t.backend().conv2dBackwardFilter(g, x, dy, dw), bytes(x, dy, dw), flops);
        }));
    }

    /**
     * Batch norm in training (forward and backward) and in inference, with the SiLU after it ({@code silu}, B0's
     * expansions) or without (its projections). Where the backend does not fuse the pair for its activation storage,
     * the silu cases run the two ops it would run instead, and say so.
     */
    private static void batchNorm(List<Case> cases, int n, int c, int h, boolean silu) {
        int[] shape = {n, c, h, h};
        String what = silu ? "batch norm + SiLU" : "batch norm";
        cases.add(new Case(what + " training forward", dims(shape), t -> {
            Backend b = t.backend();
            Tensor x = t.image(shape), gamma = t.normal(1, 0.1, c), beta = t.normal(0, 0.1, c), mean = t.normal(0, 0.1, c),
                    var = t.normal(1, 0, c), y = t.imageOut(shape), saveMean = t.floatsOut(c), saveInvStd = t.floatsOut(c);
            if (!silu) {
                return new Prepared(() -> b.batchNormForwardTraining(x, gamma, beta, mean, var, 0.1, 1e-5, y, saveMean, saveInvStd),
                        bytes(x, y), 0);
            }
            if (b.fusesBatchNormSilu(x.storage())) {
                return new Prepared(() -> b.batchNormSiluForwardTraining(x, gamma, beta, mean, var, 0.1, 1e-5, y, saveMean, saveInvStd),
                        bytes(x, y), 0);
            }
            Tensor z = t.imageOut(shape);
            return new Prepared(() -> {
                b.batchNormForwardTraining(x, gamma, beta, mean, var, 0.1, 1e-5, z, saveMean, saveInvStd);
                b.silu(z, y);
            }, bytes(x, z, z, y), 0);
        }));
        cases.add(new Case(what + " training backward", dims(shape), t -> {
            Backend b = t.backend();
            Tensor x = t.image(shape), dy = t.image(shape), gamma = t.normal(1, 0.1, c), beta = t.normal(0, 0.1, c),
                    mean = t.normal(0, 0.1, c), var = t.normal(1, 0, c), saveMean = t.floatsOut(c), saveInvStd = t.floatsOut(c),
                    dx = t.imageOut(shape), dgamma = t.floatsOut(c), dbeta = t.floatsOut(c), z = t.imageOut(shape);
            // the statistics the backward works from
            b.batchNormForwardTraining(x, gamma, beta, mean, var, 0.1, 1e-5, z, saveMean, saveInvStd);
            if (!silu) {
                return new Prepared(() -> b.batchNormBackward(x, dy, gamma, saveMean, saveInvStd, 1e-5, dx, dgamma, dbeta),
                        bytes(x, dy, dx), 0);
            }
            if (b.fusesBatchNormSilu(x.storage())) {
                return new Prepared(() -> b.batchNormSiluBackward(x, dy, gamma, beta, saveMean, saveInvStd, 1e-5, dx, dgamma, dbeta),
                        bytes(x, dy, dx), 0);
            }
            Tensor dz = t.imageOut(shape);
            return new Prepared(() -> {
                b.siluBackward(z, dy, dz);
                b.batchNormBackward(x, dz, gamma, saveMean, saveInvStd, 1e-5, dx, dgamma, dbeta);
            }, bytes(z, dy, dz, x, dz, dx), 0);
        }));
        cases.add(new Case(what + " inference", dims(shape), t -> {
            Backend b = t.backend();
            Tensor x = t.image(shape), gamma = t.normal(1, 0.1, c), beta = t.normal(0, 0.1, c), mean = t.normal(0, 0.1, c),
                    var = t.normal(1, 0, c), y = t.imageOut(shape);
            if (!silu) return new Prepared(() -> b.batchNormForwardInference(x, gamma, beta, mean, var, 1e-5, y), bytes(x, y), 0);
            if (b.fusesBatchNormSilu(x.storage())) {
                return new Prepared(() -> b.batchNormSiluForwardInference(x, gamma, beta, mean, var, 1e-5, y), bytes(x, y), 0);
            }
            Tensor z = t.imageOut(shape);
            return new Prepared(() -> {
                b.batchNormForwardInference(x, gamma, beta, mean, var, 1e-5, z);
                b.silu(z, y);
            }, bytes(x, z, z, y), 0);
        }));
    }

    /** The squeeze-and-excitation ops on an expansion's output: pooling, scaling and their gradients. */
    private static void squeezeExcite(List<Case> cases, int n, int c, int h) {
        int[] shape = {n, c, h, h};
        String s = dims(shape) + ", scales " + dims(n, c);
        cases.add(new Case("global average pool forward", dims(shape) + " -> " + dims(n, c), t -> {
            Tensor x = t.image(shape), y = t.floatsOut(n, c);
            return new Prepared(() -> t.backend().globalAveragePool(x, y), bytes(x, y), 0);
        }));
        cases.add(new Case("SE scale forward", s, t -> {
            Tensor x = t.image(shape), scales = t.normal(0.5, 0.1, n, c), y = t.imageOut(shape);
            return new Prepared(() -> t.backend().scaleChannels(x, scales, y), bytes(x, scales, y), 0);
        }));
        cases.add(new Case("SE scale backward (scales' gradient)", s, t -> {
            Tensor x = t.image(shape), scales = t.normal(0.5, 0.1, n, c), dy = t.image(shape), ds = t.floatsOut(n, c);
            return new Prepared(() -> t.backend().scaleChannelsBackward(x, scales, dy, null, ds), bytes(x, dy, ds), 0);
        }));
        cases.add(new Case("SE input gradient (scale + pool paths)", s, t -> {
            Tensor dy = t.image(shape), scales = t.normal(0.5, 0.1, n, c), dPooled = t.floats(n, c), dx = t.imageOut(shape);
            return new Prepared(() -> t.backend().scaleChannelsInputGradient(dy, scales, dPooled, dx), bytes(dy, scales, dPooled, dx), 0);
        }));
    }

    /** Residual add and drop-path on a block's output ([n, c, h, h]); SiLU alone on an expansion's ([n, c2, h2, h2]). */
    private static void elementwise(List<Case> cases, int n, int c, int h, int c2, int h2) {
        int[] shape = {n, c, h, h}, wide = {n, c2, h2, h2};
        cases.add(new Case("residual add", dims(shape), t -> {
            Tensor a = t.image(shape), b = t.image(shape), y = t.imageOut(shape);
            return new Prepared(() -> t.backend().add(a, b, y), bytes(a, b, y), 0);
        }));
        cases.add(new Case("drop-path (per-sample mask)", dims(shape), t -> {
            Tensor x = t.image(shape), y = t.imageOut(shape);
            Tensor mask = t.normal(1, 0, n);
            return new Prepared(() -> t.backend().multiplyByMask(x, mask, y), bytes(x, mask, y), 0);
        }));
        cases.add(new Case("SiLU forward", dims(wide), t -> {
            Tensor x = t.image(wide), y = t.imageOut(wide);
            return new Prepared(() -> t.backend().silu(x, y), bytes(x, y), 0);
        }));
        cases.add(new Case("SiLU backward", dims(wide), t -> {
            Tensor x = t.image(wide), dy = t.image(wide), dx = t.imageOut(wide);
            return new Prepared(() -> t.backend().siluBackward(x, dy, dx), bytes(x, dy, dx), 0);
        }));
    }

    /** The classifier (Linear 1280 -> 6) and the loss. */
    private static void head(List<Case> cases, int n) {
        int in = 1280, out = 6;
        double flops = 2.0 * n * in * out;
        cases.add(new Case("linear forward", dims(n, in) + " -> " + dims(n, out), t -> {
            Tensor x = t.floats(n, in), w = t.normal(0, 0.03, out, in), b = t.floats(out), y = t.floatsOut(n, out);
            return new Prepared(() -> t.backend().linearForward(x, w, b, y), bytes(x, w, b, y), flops);
        }));
        cases.add(new Case("linear backward", dims(n, in) + " -> " + dims(n, out), t -> {
            Tensor x = t.floats(n, in), w = t.normal(0, 0.03, out, in), dy = t.floats(n, out), dx = t.floatsOut(n, in),
                    dw = t.floatsOut(out, in), db = t.floatsOut(out);
            return new Prepared(() -> t.backend().linearBackward(x, w, dy, dx, dw, db), bytes(x, w, dy, dx, dw, db), 2 * flops);
        }));
        cases.add(new Case("BCE with logits (loss and gradient)", dims(n, out), t -> {
            Tensor logits = t.floats(n, out), targets = t.normal(0.5, 0, n, out), dLogits = t.floatsOut(n, out);
            // as the trainer calls it: the loss stays on the device until the step's end, so no round trip is timed
            return new Prepared(() -> t.backend().bceWithLogitsLater(logits, targets, null, dLogits), bytes(logits, targets, dLogits), 0);
        }));
    }

    /** One Adam step over every trainable parameter of B0 (about 4 M), as the trainer calls it. */
    private static void adam(List<Case> cases) {
        List<int[]> shapes = new ArrayList<>();
        long total = 0;
        try (EfficientNetB0 shapesOnly = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            for (Parameter p : shapesOnly.trainableParameters()) {
                shapes.add(p.value().shape());
                total += p.value().size();
            }
        }
        cases.add(new Case("Adam step, all parameters", shapes.size() + " tensors, " + total + " floats", t -> {
            List<AdamTensors> tensors = new ArrayList<>();
            long bytes = 0;
            for (int[] shape : shapes) {
                AdamTensors a = new AdamTensors(t.normal(0, 0.05, shape), t.normal(0, 1e-3, shape), t.zeros(shape), t.zeros(shape));
                tensors.add(a);
                bytes += bytes(a.param(), a.grad(), a.m(), a.v()) + bytes(a.param(), a.m(), a.v()); // read 4, write 3
            }
            long[] step = {0};
            return new Prepared(() -> t.backend().adamStepAll(tensors, ++step[0], 4e-4, 0.9, 0.999, 1e-8, 0, false), bytes, 0);
        }));
    }
}
