package ich.gpu;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bf16 reference that NnKernelsTest holds the GPU conversion to, checked on its own (no GPU needed). */
class Bf16ReferenceTest {
    private static void rounds(int f32Bits, int bf16Bits) {
        assertEquals(bf16Bits, Bf16Reference.round(f32Bits),
                () -> String.format("0x%08X should round to 0x%04X, got 0x%04X", f32Bits, bf16Bits, Bf16Reference.round(f32Bits)));
    }

    @Test
    void knownBitPatterns() {
        rounds(0x3F800000, 0x3F80); // 1.0 is exact
        rounds(0xBF800000, 0xBF80); // -1.0
        rounds(0x3F807FFF, 0x3F80); // just below half an ulp: down
        rounds(0x3F808001, 0x3F81); // just above: up
        rounds(0x3F808000, 0x3F80); // tie, kept bit even: stays
        rounds(0x3F818000, 0x3F82); // tie, kept bit odd: up to even
        rounds(0xBF818000, 0xBF82); // the same for a negative value (away from zero in magnitude)
        rounds(0x3F7FFFFF, 0x3F80); // carry out of the mantissa steps the exponent: just below 1.0 -> 1.0
        rounds(0x00000000, 0x0000);
        rounds(0x80000000, 0x8000); // -0 keeps its sign
        rounds(0x00008000, 0x0000); // subnormal tie to even
        rounds(0x00018000, 0x0002);
        rounds(0x00000001, 0x0000); // smallest subnormal underflows to zero
        rounds(0x7F800000, 0x7F80); // infinities stay
        rounds(0xFF800000, 0xFF80);
        rounds(0x7F7FFFFF, 0x7F80); // the largest float is past bf16's largest plus half an ulp: infinity
        rounds(0x7F7F7FFF, 0x7F7F); // below the halfway point: bf16's largest finite
        rounds(0x7F7F8000, 0x7F80); // the tie at the top rounds to even, which is infinity
    }

    @Test
    void everyNaNStaysANaN() {
        rounds(0x7FC00000, 0x7FC0); // the canonical quiet NaN is unchanged
        rounds(0xFFC00000, 0xFFC0);
        rounds(0x7F800001, 0x7FC0); // payload only in the dropped bits: truncating would give infinity
        rounds(0xFF80FFFF, 0xFFC0);
        rounds(0x7FFFFFFF, 0x7FFF); // rounding up would carry into the sign
        rounds(0x7F810000, 0x7FC1); // a signalling payload in the kept bits is kept, and quietened
        SplittableRandom random = new SplittableRandom(1);
        for (int i = 0; i < 100_000; i++) {
            int bits = (random.nextInt() & 0x807FFFFF) | 0x7F800000;
            if ((bits & 0x007FFFFF) == 0) continue;
            int b = Bf16Reference.round(bits);
            assertTrue((b & 0x7F80) == 0x7F80 && (b & 0x007F) != 0, () -> String.format("NaN 0x%08X became 0x%04X", bits, b));
            assertEquals(bits >>> 31, b >>> 15, "sign of a NaN");
        }
    }

    /**
     * On random finite floats (a third of them exact ties), the result is the nearer of the two bf16 values
     * around the input, compared exactly in BigDecimal, and the even one on a tie; it also agrees with the
     * preprocessing path's own conversion.
     */
    @Test
    void isTheNearestBf16TiesToEvenOnRandomFloats() {
        SplittableRandom random = new SplittableRandom(2);
        BigDecimal twoTo128 = new BigDecimal(2).pow(128);
        for (int i = 0; i < 200_000; i++) {
            int bits = random.nextInt();
            if (i % 3 == 0) bits = (bits & 0xFFFF0000) | 0x8000;
            if ((bits & 0x7F800000) == 0x7F800000) continue; // infinities and NaNs: see the other tests
            int result = Bf16Reference.round(bits);
            int down = bits >>> 16, up = down + 1;
            BigDecimal v = new BigDecimal(Float.intBitsToFloat(bits)).abs();
            BigDecimal lo = new BigDecimal(Float.intBitsToFloat(down << 16)).abs();
            BigDecimal hi = (up & 0x7F80) == 0x7F80 ? twoTo128 : new BigDecimal(Float.intBitsToFloat(up << 16)).abs();
            int cmp = v.subtract(lo).compareTo(hi.subtract(v));
            int expected = cmp < 0 ? down : cmp > 0 ? up : (down & 1) == 0 ? down : up;
            int b = bits;
            assertEquals(expected & 0xFFFF, result, () -> String.format("0x%08X", b));
            assertEquals(result, GpuPreprocessor.Precision.toBfloat16(Float.intBitsToFloat(bits)) & 0xFFFF,
                    () -> String.format("0x%08X: the preprocessing path's conversion disagrees", b));
        }
    }

    @Test
    void wideningIsExactAndRoundingAWidenedValueGivesItBack() {
        for (int b = 0; b < 0x10000; b++) {
            int f = Bf16Reference.widen(b);
            assertEquals(b << 16, f);
            boolean nan = (b & 0x7F80) == 0x7F80 && (b & 0x7F) != 0;
            assertEquals(nan ? b | 0x40 : b, Bf16Reference.round(f), "bf16 0x" + Integer.toHexString(b));
        }
    }
}
