package ich.bench;

import ich.nn.AdamTensors;
import ich.nn.Backend;
import ich.nn.ConvGeometry;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * A {@link Backend} that forwards every op to another one and adds up the wall time per op class, for finding
 * where a training step spends its time. Convolutions are split by shape class (stem, 1x1 expand / project /
 * head, depthwise by kernel and stride) and by pass. Profiling only: it adds a clock read per op.
 */
public final class TimingBackend implements Backend {
    private final Backend inner;
    private final Map<String, long[]> totals = new TreeMap<>();

    public TimingBackend(Backend inner) {
        this.inner = inner;
    }

    /** Nanoseconds and calls per op class since the last {@link #reset}. */
    public Map<String, long[]> totals() {
        return totals;
    }

    public void reset() {
        totals.clear();
    }

    private void time(String key, Runnable op) {
        long t0 = System.nanoTime();
        op.run();
        add(key, System.nanoTime() - t0);
    }

    private <T> T time(String key, Supplier<T> op) {
        long t0 = System.nanoTime();
        T result = op.get();
        add(key, System.nanoTime() - t0);
        return result;
    }

    /** Adds time measured outside the backend (e.g. freeing the step's arena). */
    public void add(String key, long nanos) {
        long[] t = totals.computeIfAbsent(key, k -> new long[2]);
        t[0] += nanos;
        t[1]++;
    }

    static String convClass(ConvGeometry g) {
        if (g.depthwise()) return "dw" + g.r() + "x" + g.s() + "/" + g.strideH();
        if (g.r() == 1 && g.s() == 1) return g.k() > g.c() ? (g.c() >= 320 ? "pw head" : "pw expand") : "pw project";
        return "conv" + g.r() + "x" + g.s() + "/" + g.strideH();
    }

    @Override public String name() { return "timed " + inner.name(); }

    @Override public Tensor allocate(Arena arena, int... shape) { return time("allocate", () -> inner.allocate(arena, shape)); }

    @Override public Tensor allocateUninitialized(Arena arena, int... shape) {
        return time("allocate", () -> inner.allocateUninitialized(arena, shape));
    }

    @Override public Arena stepArena() { return inner.stepArena(); }

    @Override public void copy(Tensor source, Tensor destination) { time("copy", () -> inner.copy(source, destination)); }

    @Override public void conv2dForward(ConvGeometry g, Tensor x, Tensor w, Tensor y) {
        time("conv fwd " + convClass(g), () -> inner.conv2dForward(g, x, w, y));
    }

    @Override public void conv2dBackwardData(ConvGeometry g, Tensor dy, Tensor w, Tensor dx) {
        time("conv bwdData " + convClass(g), () -> inner.conv2dBackwardData(g, dy, w, dx));
    }

    @Override public void conv2dBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) {
        time("conv bwdFilter " + convClass(g), () -> inner.conv2dBackwardFilter(g, x, dy, dw));
    }

    @Override public void batchNormForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                                   double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        time("bn fwd", () -> inner.batchNormForwardTraining(x, gamma, beta, runningMean, runningVar, momentum, eps, y, saveMean, saveInvStd));
    }

    @Override public void batchNormForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                                    double eps, Tensor y) {
        time("bn inference", () -> inner.batchNormForwardInference(x, gamma, beta, runningMean, runningVar, eps, y));
    }

    @Override public void batchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, double eps,
                                            Tensor dx, Tensor dgamma, Tensor dbeta) {
        time("bn bwd", () -> inner.batchNormBackward(x, dy, gamma, saveMean, saveInvStd, eps, dx, dgamma, dbeta));
    }

    @Override public boolean fusesBatchNormSilu(ich.nn.Storage storage) {
        return inner.fusesBatchNormSilu(storage);
    }

    @Override public void batchNormSiluForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                                       double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        time("bn+silu fwd", () -> inner.batchNormSiluForwardTraining(x, gamma, beta, runningMean, runningVar, momentum, eps, y, saveMean, saveInvStd));
    }

    @Override public void batchNormSiluForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                                        double eps, Tensor y) {
        time("bn+silu inference", () -> inner.batchNormSiluForwardInference(x, gamma, beta, runningMean, runningVar, eps, y));
    }

    @Override public void batchNormSiluBackward(Tensor x, Tensor dy, Tensor gamma, Tensor beta, Tensor saveMean, Tensor saveInvStd,
                                                double eps, Tensor dx, Tensor dgamma, Tensor dbeta) {
        time("bn+silu bwd", () -> inner.batchNormSiluBackward(x, dy, gamma, beta, saveMean, saveInvStd, eps, dx, dgamma, dbeta));
    }

    @Override public void silu(Tensor x, Tensor y) { time("silu fwd", () -> inner.silu(x, y)); }

    @Override public void siluBackward(Tensor x, Tensor dy, Tensor dx) { time("silu bwd", () -> inner.siluBackward(x, dy, dx)); }

    @Override public void sigmoid(Tensor x, Tensor y) { time("se sigmoid", () -> inner.sigmoid(x, y)); }

    @Override public void sigmoidBackward(Tensor y, Tensor dy, Tensor dx) { time("se sigmoid", () -> inner.sigmoidBackward(y, dy, dx)); }

    @Override public void add(Tensor a, Tensor b, Tensor y) { time("add", () -> inner.add(a, b, y)); }

    @Override public void accumulate(Tensor into, Tensor from) { time("accumulate", () -> inner.accumulate(into, from)); }

    @Override public void multiplyByMask(Tensor x, Tensor mask, Tensor y) { time("mask", () -> inner.multiplyByMask(x, mask, y)); }

    @Override public void scale(Tensor t, float factor) { time("scale", () -> inner.scale(t, factor)); }

    @Override public double sumOfSquares(Tensor t) { return time("sumOfSquares", () -> inner.sumOfSquares(t)); }

    @Override public void scaleChannels(Tensor x, Tensor s, Tensor y) { time("se scale fwd", () -> inner.scaleChannels(x, s, y)); }

    @Override public void scaleChannelsBackward(Tensor x, Tensor s, Tensor dy, Tensor dx, Tensor ds) {
        time("se scale bwd", () -> inner.scaleChannelsBackward(x, s, dy, dx, ds));
    }

    @Override public void scaleChannelsInputGradient(Tensor dy, Tensor s, Tensor dPooled, Tensor dx) {
        time("se input grad", () -> inner.scaleChannelsInputGradient(dy, s, dPooled, dx));
    }

    @Override public void globalAveragePool(Tensor x, Tensor y) { time("pool fwd", () -> inner.globalAveragePool(x, y)); }

    @Override public void globalAveragePoolBackward(Tensor dy, Tensor dx) { time("pool bwd", () -> inner.globalAveragePoolBackward(dy, dx)); }

    @Override public void linearForward(Tensor x, Tensor w, Tensor b, Tensor y) { time("linear", () -> inner.linearForward(x, w, b, y)); }

    @Override public void linearBackward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, Tensor db) {
        time("linear", () -> inner.linearBackward(x, w, dy, dx, dw, db));
    }

    @Override public double bceWithLogits(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits) {
        return time("loss", () -> inner.bceWithLogits(logits, targets, labelWeights, dLogits));
    }

    @Override public void adamStep(Tensor param, Tensor grad, Tensor m, Tensor v, long step, double lr, double beta1, double beta2,
                                   double eps, double weightDecay, boolean decoupled) {
        time("adam", () -> inner.adamStep(param, grad, m, v, step, lr, beta1, beta2, eps, weightDecay, decoupled));
    }

    /** Forwarded whole, so a backend that fuses the update (one launch on a GPU) is timed as it runs. */
    @Override public void adamStepAll(List<AdamTensors> tensors, long step, double lr, double beta1, double beta2, double eps,
                                      double weightDecay, boolean decoupled) {
        time("adam", () -> inner.adamStepAll(tensors, step, lr, beta1, beta2, eps, weightDecay, decoupled));
    }

    @Override public void close() { inner.close(); }
}
