package ich.nn.io;

import ich.nn.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * A training checkpoint as one safetensors file, loadable by the Python library (and by timm, being a plain
 * state dict under timm's names):
 * <ul>
 *   <li>the model's weights and batch-norm statistics under their own names ({@code conv_stem.weight},
 *       {@code bn1.running_mean}, ...);</li>
 *   <li>the optimizer's state under {@value #OPTIMIZER_PREFIX} (e.g. {@code optimizer.adam.m.conv_stem.weight});
 *       the optimizer chooses the names after the prefix;</li>
 *   <li>the {@link TrainingState} in {@code __metadata__}, as strings under {@code ich.*} keys, next to
 *       {@code "format": "pt"}, which Hugging Face tools look for in a PyTorch state dict.</li>
 * </ul>
 * Numbers in the metadata are written so that they read back bit for bit (doubles by
 * {@link Double#toString}, which round-trips), so a resumed run continues exactly. All tensors are float32.
 */
public final class Checkpoint {
    /** Bumped when the layout changes incompatibly; a reader refuses newer versions. */
    public static final int FORMAT_VERSION = 1;
    public static final String OPTIMIZER_PREFIX = "optimizer.";
    static final String FORMAT = "ich.format", FORMAT_NAME = "ich-checkpoint", VERSION = "ich.format_version",
            EPOCH = "ich.epoch", STEP = "ich.step", OPTIMIZER_STEP = "ich.optimizer_step", LEARNING_RATE = "ich.learning_rate",
            SEED = "ich.seed", RNG_STATE = "ich.rng_state", CONFIG = "ich.config", EXTRA = "ich.extra.";

    private Checkpoint() {}

    /**
     * Where training stands.
     *
     * @param epoch         epochs completed
     * @param step          training steps (batches) completed in all
     * @param optimizerStep the optimizer's update count (Adam's bias correction uses it); may differ from
     *                      {@code step} when an optimizer is replaced between phases
     * @param learningRate  the learning rate in force at the next step
     * @param seed          the run's seed
     * @param rngState      the random streams' state, encoded by the trainer (opaque here); may be empty
     * @param config        the run's full configuration as JSON; may be empty
     * @param extra         anything else, string to string
     */
    public record TrainingState(int epoch, long step, long optimizerStep, double learningRate, long seed,
                                String rngState, String config, Map<String, String> extra) {
        public TrainingState {
            if (epoch < 0 || step < 0 || optimizerStep < 0) throw new IllegalArgumentException("negative counter in " + epoch + "/" + step + "/" + optimizerStep);
            if (rngState == null || config == null) throw new IllegalArgumentException("rngState and config must not be null (empty is fine)");
            extra = Collections.unmodifiableMap(new TreeMap<>(extra));
        }

        /** No extra entries. */
        public TrainingState(int epoch, long step, long optimizerStep, double learningRate, long seed, String rngState, String config) {
            this(epoch, step, optimizerStep, learningRate, seed, rngState, config, Map.of());
        }
    }

    /** What a checkpoint holds; the maps are in file order (dtype, then name, as the format sorts). */
    public record Contents(Map<String, Tensor> model, Map<String, Tensor> optimizer, TrainingState state) {}

    /**
     * Writes a checkpoint atomically.
     *
     * @param model     weights and buffers by their timm names
     * @param optimizer optimizer state by names without the prefix ({@code adam.m.conv_stem.weight}); may be empty
     */
    public static void write(Path file, Map<String, Tensor> model, Map<String, Tensor> optimizer, TrainingState state) throws IOException {
        SafeTensors.Writer w = new SafeTensors.Writer();
        for (Map.Entry<String, Tensor> e : model.entrySet()) {
            if (e.getKey().startsWith(OPTIMIZER_PREFIX)) {
                throw new IllegalArgumentException("model tensor " + e.getKey() + " would be taken for optimizer state");
            }
            w.add(e.getKey(), e.getValue());
        }
        for (Map.Entry<String, Tensor> e : optimizer.entrySet()) w.add(OPTIMIZER_PREFIX + e.getKey(), e.getValue());
        w.metadata(metadata(state));
        w.write(file);
    }

    static Map<String, String> metadata(TrainingState state) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("format", "pt");
        m.put(FORMAT, FORMAT_NAME);
        m.put(VERSION, Integer.toString(FORMAT_VERSION));
        m.put(EPOCH, Integer.toString(state.epoch()));
        m.put(STEP, Long.toString(state.step()));
        m.put(OPTIMIZER_STEP, Long.toString(state.optimizerStep()));
        m.put(LEARNING_RATE, Double.toString(state.learningRate()));
        m.put(SEED, Long.toString(state.seed()));
        m.put(RNG_STATE, state.rngState());
        m.put(CONFIG, state.config());
        state.extra().forEach((k, v) -> m.put(EXTRA + k, v));
        return m;
    }

    /** Reads a whole checkpoint; tensors are copied into {@code arena}. */
    public static Contents read(Path file, Arena arena) throws IOException {
        try (SafeTensors st = SafeTensors.open(file)) {
            TrainingState state = state(st);
            Map<String, Tensor> model = new LinkedHashMap<>(), optimizer = new LinkedHashMap<>();
            for (SafeTensors.Entry e : st.entries()) {
                if (e.dtype() != SafeTensors.DType.F32) {
                    throw SafeTensors.error(file, "tensor " + e.name() + " is " + e.dtype() + "; a checkpoint holds only F32");
                }
                Tensor t = st.tensor(e.name(), arena);
                if (e.name().startsWith(OPTIMIZER_PREFIX)) optimizer.put(e.name().substring(OPTIMIZER_PREFIX.length()), t);
                else model.put(e.name(), t);
            }
            return new Contents(Collections.unmodifiableMap(model), Collections.unmodifiableMap(optimizer), state);
        }
    }

    /** Only the training state, without reading any tensor. */
    public static TrainingState readState(Path file) throws IOException {
        try (SafeTensors st = SafeTensors.open(file)) {
            return state(st);
        }
    }

    private static TrainingState state(SafeTensors st) throws SafeTensorsFormatException {
        Path file = st.file();
        Map<String, String> m = st.metadata();
        if (!FORMAT_NAME.equals(m.get(FORMAT))) {
            throw SafeTensors.error(file, "is not an ich checkpoint (no \"" + FORMAT + "\": \"" + FORMAT_NAME
                    + "\" in its metadata); pretrained weights are loaded with --pretrained");
        }
        int version = (int) number(file, m, VERSION);
        if (version > FORMAT_VERSION || version < 1) {
            throw SafeTensors.error(file, "is checkpoint format version " + version + "; this build reads versions 1 to " + FORMAT_VERSION);
        }
        long epoch = number(file, m, EPOCH);
        if (epoch > Integer.MAX_VALUE) throw SafeTensors.error(file, "epoch " + epoch + " is out of range");
        String lr = required(file, m, LEARNING_RATE);
        double learningRate;
        try {
            learningRate = Double.parseDouble(lr);
        } catch (NumberFormatException e) {
            throw SafeTensors.error(file, "metadata " + LEARNING_RATE + " = \"" + lr + "\" is not a number");
        }
        Map<String, String> extra = new TreeMap<>();
        m.forEach((k, v) -> { if (k.startsWith(EXTRA)) extra.put(k.substring(EXTRA.length()), v); });
        try {
            return new TrainingState((int) epoch, number(file, m, STEP), number(file, m, OPTIMIZER_STEP), learningRate,
                    signed(file, m, SEED), required(file, m, RNG_STATE), required(file, m, CONFIG), extra);
        } catch (IllegalArgumentException e) {
            throw SafeTensors.error(file, "has an invalid training state: " + e.getMessage());
        }
    }

    private static String required(Path file, Map<String, String> m, String key) throws SafeTensorsFormatException {
        String v = m.get(key);
        if (v == null) throw SafeTensors.error(file, "checkpoint metadata lacks " + key);
        return v;
    }

    private static long number(Path file, Map<String, String> m, String key) throws SafeTensorsFormatException {
        long v = signed(file, m, key);
        if (v < 0) throw SafeTensors.error(file, "metadata " + key + " = " + v + " is negative");
        return v;
    }

    private static long signed(Path file, Map<String, String> m, String key) throws SafeTensorsFormatException {
        String v = required(file, m, key);
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw SafeTensors.error(file, "metadata " + key + " = \"" + v + "\" is not an integer");
        }
    }
}
