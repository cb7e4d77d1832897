package ich.nn;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A dense float32 tensor in row-major order (NCHW for images on the CPU backend), stored off the Java heap.
 *
 * <p>A tensor does not own its memory: the {@link Arena} it was allocated in does, so a training step can
 * allocate its activations in one arena and free them all at once, and parameters live in the model's arena.
 * On the CPU the segment is ordinary native memory; a device backend hands out tensors whose segment is the
 * device address (zero length, not dereferenceable from Java), which is why element access checks
 * {@link #isHost()}.
 */
public final class Tensor {
    public static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Allocations are aligned for the widest vector loads (AVX-512) and cache lines. */
    public static final long ALIGNMENT = 64;

    private final int[] shape;
    private final long size;
    private final MemorySegment data;
    private final boolean host;

    private Tensor(int[] shape, MemorySegment data, boolean host) {
        this.shape = shape;
        this.size = sizeOf(shape);
        this.data = data;
        this.host = host;
    }

    /** A zero-filled host tensor owned by {@code arena}. */
    public static Tensor allocate(Arena arena, int... shape) {
        int[] dims = checkedShape(shape);
        return new Tensor(dims, arena.allocate(sizeOf(dims) * Float.BYTES, ALIGNMENT), true);
    }

    /** A host tensor holding a copy of {@code values}. */
    public static Tensor of(Arena arena, float[] values, int... shape) {
        Tensor t = allocate(arena, shape);
        if (values.length != t.size) {
            throw new IllegalArgumentException(values.length + " values for shape " + Arrays.toString(shape));
        }
        MemorySegment.copy(values, 0, t.data, FLOAT, 0, values.length);
        return t;
    }

    /** Wraps memory owned elsewhere (a host segment, or a device address for {@code host == false}). */
    public static Tensor wrap(MemorySegment data, boolean host, int... shape) {
        int[] dims = checkedShape(shape);
        if (host && data.byteSize() < sizeOf(dims) * Float.BYTES) {
            throw new IllegalArgumentException(data.byteSize() + " bytes cannot hold shape " + Arrays.toString(dims));
        }
        return new Tensor(dims, data, host);
    }

    /** The number of elements of {@code shape}, whose dimensions must be positive (as every tensor's are). */
    public static long elementCount(int... shape) {
        return sizeOf(checkedShape(shape));
    }

    /** The same memory seen with another shape of the same size (e.g. [N, C, 1, 1] as [N, C]). */
    public Tensor reshape(int... newShape) {
        int[] dims = checkedShape(newShape);
        if (sizeOf(dims) != size) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(dims));
        }
        return new Tensor(dims, data, host);
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public int dim(int axis) {
        return shape[axis < 0 ? shape.length + axis : axis];
    }

    /** Number of elements. */
    public long size() {
        return size;
    }

    public long bytes() {
        return size * Float.BYTES;
    }

    public MemorySegment data() {
        return data;
    }

    public boolean isHost() {
        return host;
    }

    public boolean sameShape(Tensor other) {
        return Arrays.equals(shape, other.shape);
    }

    public float get(long index) {
        requireHost();
        return data.getAtIndex(FLOAT, Objects.checkIndex(index, size));
    }

    public void set(long index, float value) {
        requireHost();
        data.setAtIndex(FLOAT, Objects.checkIndex(index, size), value);
    }

    public void fill(float value) {
        requireHost();
        if (value == 0f) {
            data.asSlice(0, bytes()).fill((byte) 0);
        } else {
            for (long i = 0; i < size; i++) data.setAtIndex(FLOAT, i, value);
        }
    }

    public float[] toArray() {
        requireHost();
        if (size > Integer.MAX_VALUE - 8) throw new IllegalStateException("tensor too large for an array: " + size);
        float[] out = new float[(int) size];
        MemorySegment.copy(data, FLOAT, 0, out, 0, out.length);
        return out;
    }

    public void copyFrom(float[] values) {
        requireHost();
        if (values.length != size) throw new IllegalArgumentException(values.length + " values for " + this);
        MemorySegment.copy(values, 0, data, FLOAT, 0, values.length);
    }

    public void copyFrom(Tensor source) {
        requireHost();
        source.requireHost();
        if (source.size != size) throw new IllegalArgumentException("copy " + source + " into " + this);
        MemorySegment.copy(source.data, 0, data, 0, bytes());
    }

    private void requireHost() {
        if (!host) throw new IllegalStateException("tensor " + Arrays.toString(shape) + " lives on a device, not the host");
    }

    private static int[] checkedShape(int[] shape) {
        for (int d : shape) {
            if (d <= 0) throw new IllegalArgumentException("dimensions must be positive: " + Arrays.toString(shape));
        }
        return shape.clone();
    }

    private static long sizeOf(int[] shape) {
        long n = 1;
        for (int d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + (host ? "" : "@device");
    }
}
