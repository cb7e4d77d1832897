package ich.nn.cpu;

/**
 * Grow-only float buffers of one worker thread, reused across calls so that the hot paths allocate nothing.
 * Each slot is used by one role at a time (packed A, packed B, im2col, a plane, ...).
 */
final class Scratch {
    static final int PACK_A = 0, PACK_B = 1, TILE = 2, COLUMNS = 3, OUT = 4, PLANE = 5, PLANE2 = 6, ROW = 7, PLANE3 = 8;
    private final float[][] slots = new float[9][];

    /** The buffer of a slot with at least {@code size} elements; contents are whatever was left there. */
    float[] get(int slot, int size) {
        float[] b = slots[slot];
        if (b == null || b.length < size) {
            b = new float[Math.max(size, b == null ? 0 : b.length + b.length / 2)];
            slots[slot] = b;
        }
        return b;
    }

    /** Like {@link #get} but zero-filled over the first {@code size} elements. */
    float[] zeroed(int slot, int size) {
        float[] b = get(slot, size);
        java.util.Arrays.fill(b, 0, size, 0f);
        return b;
    }
}
