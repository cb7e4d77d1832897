package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

/**
 * timm's EfficientNet initialisation ({@code _init_weight_goog}, the TensorFlow reference's): convolutions
 * normal(0, sqrt(2 / fan_out)) with fan_out = r * s * k / groups and zero bias; batch norm weight 1, bias 0,
 * running mean 0, running variance 1; Linear uniform(-1 / sqrt(out), 1 / sqrt(out)) and zero bias.
 *
 * <p>Each parameter draws from its own stream {@code SplittableRandom(mix(seed) ^ fnv1a(name))}, so a
 * parameter's values depend only on the seed and its state-dict name, not on construction order. The values
 * are not PyTorch's (its generator differs); only the distributions are timm's.
 */
public final class Initializer {
    private final Backend backend;
    private final long seed;

    /** {@code backend} null: the parameters are host tensors. */
    public Initializer(Backend backend, long seed) {
        this.backend = backend;
        this.seed = seed;
    }

    public long seed() {
        return seed;
    }

    SplittableRandom random(String parameterName) {
        return new SplittableRandom(StepContext.mix(seed) ^ StepContext.fnv1a(parameterName));
    }

    /** Convolution weights: normal(0, sqrt(2 / fan_out)). */
    void convWeight(String name, Tensor w, int fanOut) {
        SplittableRandom rng = random(name);
        double std = Math.sqrt(2.0 / fanOut);
        float[] v = new float[Math.toIntExact(w.size())];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rng.nextGaussian() * std);
        upload(w, v);
    }

    /** Linear weights: uniform(-1 / sqrt(fan_out), 1 / sqrt(fan_out)), fan_out = output features. */
    void linearWeight(String name, Tensor w, int fanOut) {
        SplittableRandom rng = random(name);
        double range = 1.0 / Math.sqrt(fanOut);
        float[] v = new float[Math.toIntExact(w.size())];
        for (int i = 0; i < v.length; i++) v[i] = (float) rng.nextDouble(-range, range);
        upload(w, v);
    }

    void constant(Tensor t, float value) {
        float[] v = new float[Math.toIntExact(t.size())];
        java.util.Arrays.fill(v, value);
        upload(t, v);
    }

    void upload(Tensor destination, float[] values) {
        upload(backend, destination, values);
    }

    static void upload(Backend backend, Tensor destination, float[] values) {
        if (destination.isHost()) {
            destination.copyFrom(values);
            return;
        }
        try (Arena staging = Arena.ofConfined()) {
            backend.copy(Tensor.of(staging, values, destination.shape()), destination);
        }
    }
}
