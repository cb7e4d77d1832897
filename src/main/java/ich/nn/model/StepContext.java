package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Storage;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;

/**
 * Everything one forward/backward step needs besides the model: the backend, training or evaluation mode, an
 * arena that owns the step's activations and gradients (freed all at once by {@link #close}), and the seeded
 * random streams of dropout and drop-path.
 *
 * <p>Randomness is a pure function of (seed, step, layer name): each layer draws from its own stream
 * {@code SplittableRandom(mix(seed, step, fnv1a(name)))}, so a step replays exactly no matter how many other
 * layers drew before it, and resuming a run at step t reproduces the masks of an uninterrupted run.
 *
 * <p>The arena comes from {@link Backend#stepArena}: shared, not confined, because a multi-threaded backend reads
 * and writes activations from its worker threads, and recycled from step to step where the backend can.
 */
public final class StepContext implements AutoCloseable {
    private final Backend backend;
    private final boolean training;
    private final long seed;
    private final long step;
    private final Arena arena;

    private StepContext(Backend backend, boolean training, long seed, long step) {
        this.backend = backend;
        this.arena = backend.stepArena();
        this.training = training;
        this.seed = seed;
        this.step = step;
    }

    /** A training step: batch statistics, dropout and drop-path drawn from (seed, step). */
    public static StepContext training(Backend backend, long seed, long step) {
        return new StepContext(backend, true, seed, step);
    }

    /** Inference: running statistics, no dropout or drop-path. */
    public static StepContext eval(Backend backend) {
        return new StepContext(backend, false, 0, 0);
    }

    public Backend backend() {
        return backend;
    }

    public boolean training() {
        return training;
    }

    public long seed() {
        return seed;
    }

    public long step() {
        return step;
    }

    public Arena arena() {
        return arena;
    }

    /**
     * A zero-filled tensor on the backend's device that lives until the step ends; an image tensor [n, c, h, w] is
     * in the backend's {@link Backend#activationStorage() activation storage}, anything else fp32.
     */
    public Tensor allocate(int... shape) {
        return backend.allocate(arena, storageFor(shape), shape);
    }

    /**
     * A tensor with unspecified contents that lives until the step ends: for the output of an op that overwrites
     * it (see the {@link Backend} contract), which need not be zeroed first. Stored as {@link #allocate} says.
     */
    public Tensor output(int... shape) {
        return backend.allocateUninitialized(arena, storageFor(shape), shape);
    }

    /** {@link #output} in fp32 whatever its shape: for what the host writes (masks, labels) or reads back. */
    public Tensor outputFloat32(int... shape) {
        return backend.allocateUninitialized(arena, Storage.FLOAT32, shape);
    }

    /**
     * The activation storage for image tensors, fp32 for the rest: a network's [n, c, h, w] activations are what
     * mixed precision halves; [n, c] vectors (squeeze-excitation, the head) are small and stay exact.
     */
    private Storage storageFor(int[] shape) {
        return shape.length == 4 ? backend.activationStorage() : Storage.FLOAT32;
    }

    /**
     * {@code x} in the backend's activation storage: itself when it already is, else a converted copy living until
     * the step ends (a network's input arrives in fp32 NCHW from the host or a loader).
     */
    public Tensor asActivation(Tensor x) {
        if (x.rank() != 4 || x.storage().equals(backend.activationStorage())) return x;
        Tensor converted = output(x.shape());
        backend.copy(x, converted);
        return converted;
    }

    /** An fp32 tensor on the backend's device holding {@code values} (masks built on the host). */
    public Tensor upload(float[] values, int... shape) {
        Tensor t = outputFloat32(shape);
        if (t.isHost()) {
            t.copyFrom(values);
        } else {
            backend.copy(Tensor.of(arena, values, shape), t);
        }
        return t;
    }

    /** The random stream of the layer {@code name} in this step. */
    public SplittableRandom random(String name) {
        return new SplittableRandom(mix(mix(seed) ^ mix(step + 0x9E3779B97F4A7C15L) ^ fnv1a(name)));
    }

    @Override
    public void close() {
        arena.close();
    }

    /** FNV-1a over the UTF-8 bytes: stable across JVMs, unlike String.hashCode's 32 bits. */
    static long fnv1a(String s) {
        long h = 0xcbf29ce484222325L;
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }

    /** SplitMix64's finaliser: spreads nearby seeds (step, step + 1) over unrelated streams. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
