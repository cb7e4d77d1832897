package ich.nn;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A dense tensor stored off the Java heap: float32 in row-major order (NCHW for images) unless its
 * {@link Storage} says otherwise (the CUDA backend's mixed precision keeps activations in bf16 channels-last).
 * The shape is always the logical one, [n, c, h, w] for images, whatever the storage order.
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
    private final Storage storage;

    private Tensor(int[] shape, MemorySegment data, boolean host, Storage storage) {
        this.shape = shape;
        this.size = sizeOf(shape);
        this.data = data;
        this.host = host;
        this.storage = storage;
        if (storage.channelsLast() && shape.length != 4) {
            throw new IllegalArgumentException("channels-last storage needs a [n, c, h, w] shape, not " + Arrays.toString(shape));
        }
    }

    /** A zero-filled host tensor owned by {@code arena}. */
    public static Tensor allocate(Arena arena, int... shape) {
        int[] dims = checkedShape(shape);
        return new Tensor(dims, arena.allocate(sizeOf(dims) * Float.BYTES, ALIGNMENT), true, Storage.FLOAT32);
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

    /** Wraps fp32 memory owned elsewhere (a host segment, or a device address for {@code host == false}). */
    public static Tensor wrap(MemorySegment data, boolean host, int... shape) {
        return wrap(data, host, Storage.FLOAT32, shape);
    }

    /**
     * Wraps memory owned elsewhere holding elements in {@code storage}. Host tensors are fp32 row-major: Java reads
     * them element by element, and the other storages exist for the device.
     */
    public static Tensor wrap(MemorySegment data, boolean host, Storage storage, int... shape) {
        int[] dims = checkedShape(shape);
        if (host && !storage.equals(Storage.FLOAT32)) {
            throw new IllegalArgumentException("host tensors are fp32 row-major, not " + storage);
        }
        if (host && data.byteSize() < sizeOf(dims) * storage.dtype().bytes()) {
            throw new IllegalArgumentException(data.byteSize() + " bytes cannot hold shape " + Arrays.toString(dims));
        }
        return new Tensor(dims, data, host, storage);
    }

    /** The number of elements of {@code shape}, whose dimensions must be positive (as every tensor's are). */
    public static long elementCount(int... shape) {
        return sizeOf(checkedShape(shape));
    }

    /**
     * The same memory seen with another shape of the same size (e.g. [N, C, 1, 1] as [N, C]). A channels-last tensor
     * reshapes only where its order is the row-major one (1x1 images, or a single channel); the result is then
     * row-major too.
     */
    public Tensor reshape(int... newShape) {
        int[] dims = checkedShape(newShape);
        if (sizeOf(dims) != size) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(dims));
        }
        if (!storage.rowMajorFor(shape)) {
            throw new IllegalArgumentException("cannot reshape the channels-last " + this + " to " + Arrays.toString(dims)
                    + ": its elements are not in row-major order");
        }
        // Both orders are the same memory here; the new shape keeps the channels-last mark only where that stays true.
        Storage kept = storage.channelsLast() && !(dims.length == 4 && storage.rowMajorFor(dims))
                ? new Storage(storage.dtype(), false) : storage;
        return new Tensor(dims, data, host, kept);
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

    /** Bytes of the elements: 4 per element in fp32, 2 in bf16. */
    public long bytes() {
        return size * storage.dtype().bytes();
    }

    /** The element type and order; {@link Storage#FLOAT32} unless a device backend chose another. */
    public Storage storage() {
        return storage;
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
        return "Tensor" + Arrays.toString(shape) + (storage.equals(Storage.FLOAT32) ? "" : " " + storage) + (host ? "" : "@device");
    }
}
