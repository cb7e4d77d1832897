package ich.gpu;

/**
 * The reference of the bf16 conversion kernels, written from the definition rather than with the kernel's
 * add-and-truncate trick: a float's top 16 bits are the truncated bf16, and the dropped 16 bits decide the
 * rounding (more than half: up; exactly half: up only when the kept lowest bit is odd, so the result is even;
 * less: down). Rounding up is adding one to the kept bits; a carry out of the mantissa steps the exponent, so the
 * largest floats round to infinity. A NaN keeps its sign and top payload and gets the quiet bit (0x0040), so a
 * payload only in the dropped bits cannot turn it into infinity.
 */
public final class Bf16Reference {
    private Bf16Reference() {}

    /** The bf16 bits (in the low 16 bits of the result) of the float whose raw bits are {@code f32Bits}. */
    public static int round(int f32Bits) {
        int kept = f32Bits >>> 16, dropped = f32Bits & 0xFFFF;
        boolean nan = (f32Bits & 0x7F800000) == 0x7F800000 && (f32Bits & 0x007FFFFF) != 0;
        if (nan) return kept | 0x0040;
        boolean up = dropped > 0x8000 || (dropped == 0x8000 && (kept & 1) == 1);
        return up ? (kept + 1) & 0xFFFF : kept;
    }

    /** The float whose top half is the bf16 {@code bits} (exact). */
    public static int widen(int bf16Bits) {
        return (bf16Bits & 0xFFFF) << 16;
    }

    /** {@code v} rounded to the nearest bf16, as a float (exact). */
    public static float rounded(float v) {
        return Float.intBitsToFloat(widen(round(Float.floatToRawIntBits(v))));
    }
}
