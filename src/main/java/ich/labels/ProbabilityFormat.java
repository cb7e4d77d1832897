package ich.labels;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;

/**
 * Writes probabilities for the submission file: plain decimal notation (never {@code 1.0E-5}: CSV readers
 * and graders differ on exponents), trailing zeros dropped, and six significant digits of whichever of
 * p and 1 - p is smaller.
 *
 * <p>Why the smaller one: the log loss depends on p where the truth is 1 and on 1 - p where it is 0. Six
 * significant digits of p alone would write 0.99999988 as 1, and an image wrongly certain at 1 - 1.2e-7
 * would cost 34.5 (the grader's clip at 1e-15) instead of 16. Rounding either side to 6 digits changes a
 * log term by at most 5e-6 relative, which no score resolves.
 */
final class ProbabilityFormat {
    static final int SIGNIFICANT_DIGITS = 6;
    /** Up to here a double holds p x 10^decimals exactly enough to round it (below 2^53). */
    private static final int MAX_FAST_DECIMALS = 15;
    private static final long[] POW10 = new long[MAX_FAST_DECIMALS + 1];

    static {
        POW10[0] = 1;
        for (int i = 1; i < POW10.length; i++) POW10[i] = POW10[i - 1] * 10;
    }

    private ProbabilityFormat() {}

    static String format(float p) {
        byte[] out = new byte[64];
        return new String(out, 0, write(p, out, 0), StandardCharsets.US_ASCII);
    }

    /**
     * Writes p (within [0, 1]) into {@code out} at {@code pos}; returns the position after it. {@code out}
     * needs room for 64 bytes: the longest output, for the smallest float, is 52 characters (50 decimals).
     */
    static int write(float p, byte[] out, int pos) {
        if (p == 0) {
            out[pos] = '0';
            return pos + 1;
        }
        if (p == 1) {
            out[pos] = '1';
            return pos + 1;
        }
        double v = p;  // exact, and so is 1 - v: a float has 24 bits, a double 53
        int decimals = SIGNIFICANT_DIGITS - 1 - (int) Math.floor(Math.log10(Math.min(v, 1 - v)));
        if (decimals > MAX_FAST_DECIMALS) return writeSlow(v, decimals, out, pos);
        long scaled = Math.round(v * POW10[decimals]);
        if (scaled >= POW10[decimals]) {  // cannot happen for p < 1 with these decimals, but never write "0.1000000"
            out[pos] = '1';
            return pos + 1;
        }
        while (scaled % 10 == 0) {  // scaled > 0: the decimals keep 6 significant digits of p
            scaled /= 10;
            decimals--;
        }
        out[pos++] = '0';
        out[pos++] = '.';
        for (int i = pos + decimals - 1; i >= pos; i--) {
            out[i] = (byte) ('0' + scaled % 10);
            scaled /= 10;
        }
        return pos + decimals;
    }

    /** Values below 1e-10: rare enough to take BigDecimal, which rounds exactly at any scale. */
    private static int writeSlow(double v, int decimals, byte[] out, int pos) {
        String s = new BigDecimal(v).setScale(decimals, RoundingMode.HALF_EVEN).stripTrailingZeros().toPlainString();
        for (int i = 0; i < s.length(); i++) out[pos++] = (byte) s.charAt(i);
        return pos;
    }
}
