package ich.bench;

import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

/**
 * What the benchmarks of a fused CPU op against the separate ops it replaces share: the {@code fused} switch, the
 * CPU backend (all cores unless {@code threads} says otherwise) and an arena for the trial, seeded Gaussian
 * tensors, and B0's activation shapes of a 96 x 96 step at batch 32 (the CPU's bench train default).
 */
@State(Scope.Thread)
public abstract class CpuFusionBenchmark {
    /** The first block's 32 channels at 48 x 48 (the stem's output). */
    static final int[] FIRST_BLOCK = {32, 32, 48, 48};
    /** An expansion's 144 channels at 24 x 24. */
    static final int[] EXPANSION = {32, 144, 24, 24};

    @Param({"true", "false"})
    public boolean fused;

    @Param({"0"})
    public int threads;

    protected CpuBackend cpu;
    protected Arena arena;
    private SplittableRandom random;

    @Setup(Level.Trial)
    public final void openBackend() {
        cpu = new CpuBackend(threads == 0 ? Runtime.getRuntime().availableProcessors() : threads);
        arena = Arena.ofShared();
        random = new SplittableRandom(1);
        makeTensors();
    }

    /** The benchmark's tensors, made with {@link #gaussian} and {@link Tensor#allocate} in {@link #arena}. */
    protected abstract void makeTensors();

    protected final Tensor gaussian(int... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        for (long i = 0; i < t.size(); i++) t.set(i, (float) random.nextGaussian());
        return t;
    }

    @TearDown(Level.Trial)
    public final void closeBackend() {
        cpu.close();
        arena.close();
    }
}
