package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * timm's {@code efficientnet_b0} with a 6-label head, parameter for parameter and name for name:
 * conv_stem 3x3/2 -> 32, bn1, SiLU; 16 blocks in 7 stages (expansion, kernel, stride, channels, repeats)
 * (1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2) (6,3,2,80,3) (6,5,1,112,3) (6,5,2,192,4) (6,3,1,320,1), each with
 * squeeze-and-excitation at a quarter of its input channels; conv_head 1x1 -> 1280, bn2, SiLU; global average
 * pool; dropout; classifier Linear 1280 -> classes. Block i of 16 drops its residual branch with probability
 * dropPathRate * i / 16, as timm's builder scales it. The input size is free (any h, w of at least 1).
 *
 * <p>State-dict names are timm's ({@code conv_stem.weight}, {@code blocks.1.0.conv_pw.weight},
 * {@code blocks.5.3.se.conv_reduce.bias}, {@code bn2.running_var}, {@code classifier.bias}) with timm's shapes, so
 * a timm checkpoint loads as it is. PyTorch state dicts also carry {@code <bn>.num_batches_tracked}: {@link #load}
 * ignores it (B0's momentum 0.1 never reads it) and {@link #namedParameters} has none, so saved files lack it;
 * PyTorch's BatchNorm fills a missing counter with 0 when it loads a state dict without version metadata, as a
 * safetensors file is, so {@code load_state_dict} accepts our files.
 *
 * <p>The model owns its parameters (in a shared arena freed by {@link #close}); activations belong to the
 * {@link StepContext} of each step.
 */
public final class EfficientNetB0 implements AutoCloseable {

    /**
     * @param numClasses   classifier outputs (6 subtypes)
     * @param dropRate     dropout before the classifier (the seed's 0.125)
     * @param dropPathRate stochastic depth of the last block (timm's usual 0.2)
     */
    public record Config(int numClasses, double dropRate, double dropPathRate, double bnMomentum, double bnEps) {
        public Config {
            if (numClasses <= 0) throw new IllegalArgumentException("numClasses must be positive: " + numClasses);
            if (!(dropRate >= 0 && dropRate < 1)) throw new IllegalArgumentException("dropRate must be in [0, 1): " + dropRate);
            if (!(dropPathRate >= 0 && dropPathRate < 1)) throw new IllegalArgumentException("dropPathRate must be in [0, 1): " + dropPathRate);
            if (!(bnMomentum >= 0 && bnMomentum <= 1)) throw new IllegalArgumentException("bnMomentum must be in [0, 1]: " + bnMomentum);
            if (!(bnEps > 0)) throw new IllegalArgumentException("bnEps must be positive: " + bnEps);
        }

        public static Config defaults() {
            return new Config(6, 0.125, 0.2, 0.1, 1e-5);
        }

        public Config withClasses(int classes) {
            return new Config(classes, dropRate, dropPathRate, bnMomentum, bnEps);
        }

        public Config withDropRates(double dropRate, double dropPathRate) {
            return new Config(numClasses, dropRate, dropPathRate, bnMomentum, bnEps);
        }
    }

    /** expansion, kernel, stride, output channels, repeats: timm's arch_def for B0 at multipliers 1.0. */
    private static final int[][] STAGES = {
            {1, 3, 1, 16, 1}, {6, 3, 2, 24, 2}, {6, 5, 2, 40, 2}, {6, 3, 2, 80, 3},
            {6, 5, 1, 112, 3}, {6, 5, 2, 192, 4}, {6, 3, 1, 320, 1}};
    static final int STEM_CHANNELS = 32;
    static final int FEATURES = 1280;
    static final double SE_RATIO = 0.25;
    /** The modules the seed trains while the backbone is frozen, as timm names them (see {@link #freezeBackbone}). */
    static final List<String> HEAD_PREFIXES = List.of("bn2.", "classifier.");

    private final Backend backend;
    private final Config config;
    private final Arena arena = Arena.ofShared();
    private final ParameterSet params;
    private final Sequential network;

    public EfficientNetB0(Backend backend, Config config) {
        this.backend = java.util.Objects.requireNonNull(backend, "backend");
        this.config = config;
        this.params = new ParameterSet(backend, arena);
        this.network = build(params, config);
    }

    private EfficientNetB0(Config config) {
        this.backend = null;
        this.config = config;
        this.params = new ParameterSet(null, arena);
        this.network = build(params, config);
    }

    /**
     * A model whose parameters are plain host tensors, for work that computes nothing on a device: the summary,
     * initialising and converting checkpoints. Any backend that works on host tensors (the CPU backend) can
     * run it.
     */
    public static EfficientNetB0 onHost(Config config) {
        return new EfficientNetB0(config);
    }

    /**
     * The model a state dict holds (checkpoint or export input): its class count is read from
     * {@code classifier.weight}, and every tensor must fit, with nothing missing or left over. {@code backend}
     * null builds it on the host ({@link #onHost}).
     *
     * @param source names the file in messages
     * @throws IllegalArgumentException when the tensors are not those of an EfficientNet-B0
     */
    public static EfficientNetB0 fromStateDict(Backend backend, Map<String, Tensor> stateDict, String source) {
        Tensor classifier = stateDict.get("classifier.weight");
        if (classifier == null || classifier.rank() != 2) {
            throw new IllegalArgumentException(source + ": no classifier.weight [classes, 1280]; not an EfficientNet-B0 checkpoint");
        }
        Config config = Config.defaults().withClasses(classifier.dim(0));
        EfficientNetB0 model = backend == null ? onHost(config) : new EfficientNetB0(backend, config);
        LoadReport report = model.load(stateDict);
        if (!report.exact()) {
            model.close();
            throw new IllegalArgumentException(source + ": the weights do not fit EfficientNet-B0: " + report.describe());
        }
        return model;
    }

    private static Sequential build(ParameterSet params, Config config) {
        double m = config.bnMomentum(), eps = config.bnEps();
        List<Layer> layers = new ArrayList<>();
        layers.add(new Conv2d(params, "conv_stem", 3, STEM_CHANNELS, 3, 2, 1));
        layers.add(new BatchNorm2d(params, "bn1", STEM_CHANNELS, m, eps));
        layers.add(new SiLU("bn1.act"));
        int total = 0;
        for (int[] st : STAGES) total += st[4];
        int in = STEM_CHANNELS, index = 0;
        for (int s = 0; s < STAGES.length; s++) {
            int[] st = STAGES[s];
            for (int i = 0; i < st[4]; i++, index++) {
                String name = "blocks." + s + "." + i;
                int stride = i == 0 ? st[2] : 1;
                double dropPath = config.dropPathRate() * index / total;
                layers.add(st[0] == 1
                        ? new DepthwiseSeparable(params, name, in, st[3], st[1], stride, SE_RATIO, dropPath, m, eps)
                        : new InvertedResidual(params, name, in, st[3], st[1], stride, st[0], SE_RATIO, dropPath, m, eps));
                in = st[3];
            }
        }
        layers.add(new Conv2d(params, "conv_head", in, FEATURES, 1, 1, 1));
        layers.add(new BatchNorm2d(params, "bn2", FEATURES, m, eps));
        layers.add(new SiLU("bn2.act"));
        layers.add(new GlobalAveragePool());
        layers.add(new Dropout("dropout", config.dropRate()));
        layers.add(new Linear(params, "classifier", FEATURES, config.numClasses()));
        return new Sequential("", layers);
    }

    /** A model with timm's initialisation drawn from {@code seed}. */
    public static EfficientNetB0 initialized(Backend backend, Config config, long seed) {
        EfficientNetB0 model = new EfficientNetB0(backend, config);
        model.initialize(seed);
        return model;
    }

    public Config config() {
        return config;
    }

    /** The backend whose device holds the parameters, or null for a host model ({@link #onHost}). */
    public Backend backend() {
        return backend;
    }

    /** The whole network as one sequence of top-level modules (stem, blocks, head). */
    public Sequential network() {
        return network;
    }

    /** Re-initialises every weight and buffer as timm does (see {@link Initializer}). */
    public void initialize(long seed) {
        network.initialize(new Initializer(backend, seed));
    }

    /** Logits [n, classes] for images [n, 3, h, w]. */
    public Tensor forward(Tensor x, StepContext ctx) {
        if (backend != null && ctx.backend() != backend) {
            throw new IllegalArgumentException("step runs on " + ctx.backend().name() + ", model on " + backend.name());
        }
        if (backend == null && !x.isHost()) throw new IllegalArgumentException("a host model needs host input, got " + x);
        if (x.rank() != 4 || x.dim(1) != 3) throw new IllegalArgumentException("expected images [n, 3, h, w], got " + x);
        return network.forward(ctx.asActivation(x), ctx);
    }

    /**
     * Backpropagates d loss / d logits through the last forward of the same step, overwriting the gradients of
     * the trainable weights; work below the lowest trainable layer is skipped. Returns d loss / d input when
     * asked, else null.
     */
    public Tensor backward(Tensor dLogits, StepContext ctx, boolean needInputGrad) {
        return network.backward(dLogits, ctx, needInputGrad);
    }

    public void backward(Tensor dLogits, StepContext ctx) {
        backward(dLogits, ctx, false);
    }

    /**
     * Weighted binary cross-entropy on the logits (see {@link Backend#bceWithLogits}); writes d loss / d logits
     * into a new tensor of the step and returns both. On a GPU the value is read only when asked for
     * ({@link Backend#bceWithLogitsLater}), so ask after queuing the backward pass and the update.
     */
    public Loss loss(Tensor logits, Tensor targets, Tensor labelWeights, StepContext ctx) {
        Tensor dLogits = ctx.output(logits.shape());
        return new Loss(ctx.backend().bceWithLogitsLater(logits, targets, labelWeights, dLogits), dLogits);
    }

    /** A loss and its gradient with respect to the logits; the value is read from the device on first use. */
    public static final class Loss {
        private final java.util.function.DoubleSupplier later;
        private final Tensor dLogits;
        private double value = Double.NaN;
        private boolean read;

        Loss(java.util.function.DoubleSupplier later, Tensor dLogits) {
            this.later = later;
            this.dLogits = dLogits;
        }

        /** The loss; the first call waits for the device to compute it. */
        public double value() {
            if (!read) {
                value = later.getAsDouble();
                read = true;
            }
            return value;
        }

        public Tensor dLogits() {
            return dLogits;
        }
    }

    /** Every weight and buffer by timm state-dict name, in timm's order. */
    public Map<String, Parameter> namedParameters() {
        return params.asMap();
    }

    /** The values of {@link #namedParameters}: the state dict a checkpoint writer stores. */
    public Map<String, Tensor> stateDict() {
        Map<String, Tensor> m = new java.util.LinkedHashMap<>();
        for (Parameter p : namedParameters().values()) m.put(p.name(), p.value());
        return java.util.Collections.unmodifiableMap(m);
    }

    /** Every tensor's shape by state-dict name: what a reader of pretrained weights checks a file against. */
    public Map<String, int[]> shapes() {
        Map<String, int[]> m = new java.util.LinkedHashMap<>();
        for (Parameter p : namedParameters().values()) m.put(p.name(), p.value().shape());
        return java.util.Collections.unmodifiableMap(m);
    }

    public List<Parameter> trainableParameters() {
        return namedParameters().values().stream().filter(Parameter::trainable).toList();
    }

    /** The number of scalars in the parameters that match. */
    public long count(Predicate<Parameter> which) {
        long n = 0;
        for (Parameter p : namedParameters().values()) if (which.test(p)) n += p.size();
        return n;
    }

    /** Weights (not buffers) whether frozen or not: timm's "parameters", 4,015,234 for 6 classes. */
    public long weightCount() {
        return count(p -> !p.isBuffer());
    }

    public long trainableCount() {
        return count(Parameter::trainable);
    }

    /** Weights of the backbone, everything but the classifier (4,007,548, timm's num_classes=0 count). */
    public long backboneWeightCount() {
        return count(p -> !p.isBuffer() && !p.name().startsWith("classifier."));
    }

    /**
     * The seed's first epoch: {@code for layer in model.layers[:-5]: layer.trainable = False} on Keras'
     * EfficientNetB0(include_top=False, pooling='avg') + Dropout + Dense. Its last five layers are top_bn,
     * top_activation, avg_pool, dropout and the dense layer, so only top_bn (timm's {@code bn2}) and the
     * classifier keep training; top_conv ({@code conv_head}) and everything below are frozen: 10,246 weights.
     *
     * <p>Unlike Keras 2 on TensorFlow 2, whose frozen BatchNormalization layers also switch to their moving
     * statistics, frozen batch norms here keep PyTorch's behaviour: in a training step they normalise with batch
     * statistics and update their running statistics.
     */
    public void freezeBackbone() {
        for (Parameter p : namedParameters().values()) {
            if (p.isBuffer()) continue;
            p.setTrainable(HEAD_PREFIXES.stream().anyMatch(p.name()::startsWith));
        }
    }

    public void unfreezeAll() {
        for (Parameter p : namedParameters().values()) if (!p.isBuffer()) p.setTrainable(true);
    }

    /**
     * Copies the tensors of a state dict whose names and shapes match into the model. Tensors the model lacks,
     * and those of another shape, are reported and skipped; {@code *.num_batches_tracked} is ignored. The
     * source tensors may live on the host or on the model's device.
     */
    public LoadReport load(Map<String, Tensor> stateDict) {
        Map<String, Parameter> own = namedParameters();
        List<String> loaded = new ArrayList<>(), unexpected = new ArrayList<>(), misShaped = new ArrayList<>(), ignored = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : stateDict.entrySet()) {
            String key = e.getKey();
            Parameter p = own.get(key);
            if (p == null) {
                (key.endsWith(".num_batches_tracked") ? ignored : unexpected).add(key);
            } else if (!p.value().sameShape(e.getValue())) {
                misShaped.add(key + ": file " + Arrays.toString(e.getValue().shape()) + ", model " + Arrays.toString(p.value().shape()));
            } else {
                if (backend == null) p.value().copyFrom(e.getValue());
                else backend.copy(e.getValue(), p.value());
                loaded.add(key);
            }
        }
        List<String> missing = new ArrayList<>();
        for (String key : own.keySet()) {
            Tensor t = stateDict.get(key);
            if (t == null) missing.add(key);
        }
        return new LoadReport(loaded, missing, unexpected, misShaped, ignored);
    }

    /** One row per top-level module for an input [n, 3, h, w]. */
    public List<LayerSummary> summary(int n, int h, int w) {
        List<LayerSummary> rows = new ArrayList<>();
        int[] shape = {n, 3, h, w};
        for (Layer l : network.layers()) {
            long macs = l.macs(shape);
            shape = l.outputShape(shape);
            long weights = 0, trainable = 0;
            for (Parameter p : l.parameters()) {
                if (!p.isBuffer()) weights += p.size();
                if (p.trainable()) trainable += p.size();
            }
            rows.add(new LayerSummary(l.name(), l.type(), shape, weights, trainable, macs));
        }
        return rows;
    }

    /** Forward multiply-adds for an input [n, 3, h, w]. */
    public long macs(int n, int h, int w) {
        return network.macs(new int[] {n, 3, h, w});
    }

    /** Frees the parameters. */
    @Override
    public void close() {
        arena.close();
    }
}
