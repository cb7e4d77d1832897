package ich.nn.cpu;

import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.Random;
import java.util.function.DoubleSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Random tensors, NaN poisoning and the two comparisons the op tests make: against a reference, against finite differences. */
final class Checks {
    private Checks() {
    }

    static Tensor random(Arena arena, Random random, int... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        for (long i = 0; i < t.size(); i++) t.set(i, random.nextFloat() * 2 - 1);
        return t;
    }

    /** An output filled with NaN, so any element the op fails to write shows up. */
    static Tensor poisoned(Arena arena, int... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        t.fill(Float.NaN);
        return t;
    }

    static void poison(Tensor t) {
        t.fill(Float.NaN);
    }

    /** Element-wise |actual - expected| <= tolerance * max(1, |expected|), with the first offender in the message. */
    static void close(String what, double[] expected, Tensor actual, double tolerance) {
        assertEquals(expected.length, actual.size(), what + ": size");
        for (int i = 0; i < expected.length; i++) {
            double a = actual.get(i), e = expected[i];
            if (!(Math.abs(a - e) <= tolerance * Math.max(1, Math.abs(e)))) {
                fail(what + ": element " + i + " is " + a + ", expected " + e + " (tolerance " + tolerance + ")");
            }
        }
    }

    static double[] toDouble(Tensor t) {
        double[] d = new double[(int) t.size()];
        for (int i = 0; i < d.length; i++) d[i] = t.get(i);
        return d;
    }

    /** sum over i of a[i] * b[i], in double: the scalar "loss" whose gradient with respect to a is b. */
    static double dot(Tensor a, Tensor b) {
        double s = 0;
        for (long i = 0; i < a.size(); i++) s += (double) a.get(i) * b.get(i);
        return s;
    }

    /**
     * Central differences of {@code loss} with respect to up to {@code samples} random elements of {@code input}
     * (all of them when it is small), against the analytic gradient: |numeric - analytic| <= rel * max(|numeric|,
     * |analytic|) + abs.
     */
    static void gradient(String what, Tensor input, Tensor analytic, DoubleSupplier loss, Random random, float eps,
                         double rel, double abs, int samples) {
        assertEquals(input.size(), analytic.size(), what + ": gradient size");
        int n = (int) input.size();
        int checks = Math.min(n, samples);
        int nonZero = 0;
        for (int t = 0; t < checks; t++) {
            int i = checks == n ? t : random.nextInt(n);
            float x0 = input.get(i);
            input.set(i, x0 + eps);
            double up = loss.getAsDouble();
            input.set(i, x0 - eps);
            double down = loss.getAsDouble();
            input.set(i, x0);
            double numeric = (up - down) / (2.0 * eps);
            double a = analytic.get(i);
            if (!(Math.abs(numeric - a) <= rel * Math.max(Math.abs(numeric), Math.abs(a)) + abs)) {
                fail(what + ": d loss / d element " + i + " is " + a + " analytically, " + numeric + " numerically");
            }
            if (Math.abs(a) > abs) nonZero++;
        }
        assertTrue(nonZero > 0, what + ": every checked gradient element was ~0, the check proves nothing");
    }
}
