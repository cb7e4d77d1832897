package ich.synth;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class FastMathTest {
    @Test
    void atan2WithinTheStatedError() {
        SplittableRandom r = new SplittableRandom(1);
        for (int i = 0; i < 1_000_000; i++) {
            double y = r.nextDouble(-200, 200), x = r.nextDouble(-200, 200);
            assertEquals(StrictMath.atan2(y, x), FastMath.atan2(y, x), 2e-5, y + ", " + x);
        }
        assertEquals(0, FastMath.atan2(0, 0));
        assertEquals(Math.PI / 2, FastMath.atan2(1, 0), 1e-5);
        assertEquals(Math.PI, FastMath.atan2(0, -1), 1e-5);
        assertEquals(-Math.PI / 2, FastMath.atan2(-1, 0), 1e-5);
    }

    @Test
    void anglesWrap() {
        assertEquals(0.2, FastMath.angleBetween(Math.PI - 0.1, -Math.PI + 0.1) * -1, 1e-12);
        assertEquals(-0.5, FastMath.angleBetween(1, 1.5), 1e-12);
        assertEquals(0.1, FastMath.angleBetween(0.1 + 4 * Math.PI, 0), 1e-9);
    }
}
