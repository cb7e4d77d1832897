package ich.nn.optim;

import ich.nn.AdamTensors;
import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Adam and AdamW with PyTorch's formulas (torch.optim.Adam / AdamW), through {@link Backend#adamStepAll} (one
 * {@link Backend#adamStep} per trainable parameter, or one launch for all on a GPU), so the update runs wherever
 * the backend's tensors live.
 *
 * <p>State is kept per parameter name: the first and second moments ({@code exp_avg}, {@code exp_avg_sq}, as
 * PyTorch names them) and the parameter's own step count, which only advances when the parameter is trained.
 * Frozen parameters ({@link Parameter#trainable()} false) and buffers are skipped: neither they nor their state
 * change, so unfreezing resumes where they stopped. The state is allocated on first use in the optimiser's
 * arena and can be read ({@link #moments()}, {@link #stepCounts()}) and restored ({@link #restore}) by a
 * checkpoint.
 */
public final class Adam {

    /**
     * Hyper-parameters. {@code eps} defaults to 1e-7, Keras' default, which the seed notebook trained with
     * (PyTorch's default is 1e-8); {@code decoupled} selects AdamW's weight decay.
     */
    public record Options(double learningRate, double beta1, double beta2, double eps, double weightDecay,
                          boolean decoupled) {
        public Options {
            if (!(learningRate >= 0)) throw new IllegalArgumentException("Adam: learning rate must be >= 0, got " + learningRate);
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
                throw new IllegalArgumentException("Adam: betas must lie in [0, 1), got " + beta1 + ", " + beta2);
            }
            if (!(eps > 0)) throw new IllegalArgumentException("Adam: eps must be > 0, got " + eps);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("Adam: weight decay must be >= 0, got " + weightDecay);
        }

        /** Adam with betas (0.9, 0.999), eps 1e-7, no weight decay. */
        public static Options adam(double learningRate) {
            return new Options(learningRate, 0.9, 0.999, 1e-7, 0, false);
        }

        /** AdamW: decoupled weight decay, otherwise as {@link #adam}. */
        public static Options adamW(double learningRate, double weightDecay) {
            return new Options(learningRate, 0.9, 0.999, 1e-7, weightDecay, true);
        }

        public Options withEps(double e) {
            return new Options(learningRate, beta1, beta2, e, weightDecay, decoupled);
        }

        public Options withBetas(double b1, double b2) {
            return new Options(learningRate, b1, b2, eps, weightDecay, decoupled);
        }

        /** L2 weight decay added to the gradient (Adam), or decoupled (AdamW). */
        public Options withWeightDecay(double wd, boolean isDecoupled) {
            return new Options(learningRate, beta1, beta2, eps, wd, isDecoupled);
        }
    }

    private static final class State {
        final Tensor expAvg;
        final Tensor expAvgSq;
        long step;

        State(Tensor expAvg, Tensor expAvgSq) {
            this.expAvg = expAvg;
            this.expAvgSq = expAvgSq;
        }
    }

    private final Backend backend;
    private final Arena arena;
    private final Options options;
    private double learningRate;
    private long steps;
    private final Map<String, State> states = new LinkedHashMap<>();

    /** The state tensors are allocated by {@code backend} in {@code arena}, which must outlive the optimiser. */
    public Adam(Backend backend, Arena arena, Options options) {
        this.backend = backend;
        this.arena = arena;
        this.options = options;
        this.learningRate = options.learningRate();
    }

    public Options options() {
        return options;
    }

    public double learningRate() {
        return learningRate;
    }

    /** For schedules: applies from the next {@link #step}. */
    public void setLearningRate(double learningRate) {
        if (!(learningRate >= 0)) throw new IllegalArgumentException("Adam: learning rate must be >= 0, got " + learningRate);
        this.learningRate = learningRate;
    }

    /** How many times {@link #step} ran. */
    public long steps() {
        return steps;
    }

    /**
     * One update of every trainable parameter from its gradient. Parameters that share a step count (all of them,
     * unless some were frozen for a while) go to the backend together, in one {@link Backend#adamStepAll}, which
     * the CUDA backend runs as one launch; each parameter's update is the same as a lone {@link Backend#adamStep}.
     *
     * @throws IllegalArgumentException when a trainable parameter's name appears twice (its two updates would race
     *                                  in one launch), or its shape differs from its state's; nothing is updated then
     */
    public void step(Collection<Parameter> parameters) {
        List<Parameter> trained = new ArrayList<>();
        List<State> trainedStates = new ArrayList<>();
        Set<String> names = new HashSet<>();
        for (Parameter p : parameters) {
            if (!p.trainable()) continue;
            if (!names.add(p.name())) throw new IllegalArgumentException("Adam: parameter " + p.name() + " is listed twice");
            trained.add(p);
            trainedStates.add(state(p.name(), p.value()));
        }
        // Updates of different parameters are independent, so grouping changes no bit; groups go in order of first
        // appearance and each keeps its parameters' order.
        Map<Long, List<AdamTensors>> byStep = new LinkedHashMap<>();
        for (int i = 0; i < trained.size(); i++) {
            Parameter p = trained.get(i);
            State s = trainedStates.get(i);
            s.step++;
            byStep.computeIfAbsent(s.step, k -> new ArrayList<>()).add(new AdamTensors(p.value(), p.grad(), s.expAvg, s.expAvgSq));
        }
        byStep.forEach((step, tensors) -> backend.adamStepAll(tensors, step, learningRate, options.beta1(), options.beta2(),
                options.eps(), options.weightDecay(), options.decoupled()));
        steps++;
    }

    private State state(String name, Tensor value) {
        State s = states.get(name);
        if (s == null) {
            s = new State(backend.allocate(arena, value.shape()), backend.allocate(arena, value.shape()));
            states.put(name, s);
        } else if (!s.expAvg.sameShape(value)) {
            throw new IllegalArgumentException("Adam: parameter " + name + " is " + value + " but its state is " + s.expAvg);
        }
        return s;
    }

    /** The moments by {@code <parameter>.exp_avg} and {@code <parameter>.exp_avg_sq}, live (not copies). */
    public Map<String, Tensor> moments() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        states.forEach((name, s) -> {
            out.put(name + ".exp_avg", s.expAvg);
            out.put(name + ".exp_avg_sq", s.expAvgSq);
        });
        return Collections.unmodifiableMap(out);
    }

    /** Each parameter's own step count (the bias-correction exponent of its next update minus one). */
    public Map<String, Long> stepCounts() {
        Map<String, Long> out = new LinkedHashMap<>();
        states.forEach((name, s) -> out.put(name, s.step));
        return Collections.unmodifiableMap(out);
    }

    /** Sets one parameter's state from a checkpoint (copies the tensors). */
    public void restore(String name, Tensor expAvg, Tensor expAvgSq, long step) {
        if (!expAvg.sameShape(expAvgSq)) {
            throw new IllegalArgumentException("Adam: state of " + name + " has moments " + expAvg + " and " + expAvgSq);
        }
        if (step < 0) throw new IllegalArgumentException("Adam: state of " + name + " has step " + step);
        State s = state(name, expAvg);
        backend.copy(expAvg, s.expAvg);
        backend.copy(expAvgSq, s.expAvgSq);
        s.step = step;
    }

    /** Sets the optimiser's own step counter from a checkpoint. */
    public void restoreSteps(long steps) {
        if (steps < 0) throw new IllegalArgumentException("Adam: negative step count " + steps);
        this.steps = steps;
    }

    /**
     * As torch.nn.utils.clip_grad_norm_: the L2 norm of all trainable parameters' gradients taken together;
     * when it exceeds {@code maxNorm} every gradient is scaled by maxNorm / (norm + 1e-6). Returns the norm
     * before clipping.
     */
    public static double clipGradNorm(Backend backend, Collection<Parameter> parameters, double maxNorm) {
        if (!(maxNorm > 0)) throw new IllegalArgumentException("clipGradNorm: max norm must be > 0, got " + maxNorm);
        double sumSq = 0;
        for (Parameter p : parameters) {
            if (p.trainable()) sumSq += backend.sumOfSquares(p.grad());
        }
        double norm = Math.sqrt(sumSq);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1) {
            for (Parameter p : parameters) {
                if (p.trainable()) backend.scale(p.grad(), (float) coefficient);
            }
        }
        return norm;
    }
}
