package ich.preprocess;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class WindowTest {
    @Test
    void bsbWindowsAreTheSeeds() {
        // brain 40/80: (clamp(x, 0, 80) - 0) / 80
        assertEquals(0f, Window.BRAIN.apply(-5));
        assertEquals(0f, Window.BRAIN.apply(0));
        assertEquals(0.5f, Window.BRAIN.apply(40));
        assertEquals(1f, Window.BRAIN.apply(80));
        assertEquals(1f, Window.BRAIN.apply(1000));
        // subdural 80/200: (clamp(x, -20, 180) + 20) / 200
        assertEquals(0f, Window.SUBDURAL.apply(-21));
        assertEquals(0.5f, Window.SUBDURAL.apply(80));
        assertEquals(1f, Window.SUBDURAL.apply(180));
        assertEquals(0.1f, Window.SUBDURAL.apply(0), 1e-7);
        // soft tissue 40/380: (clamp(x, -150, 230) + 150) / 380
        assertEquals(0f, Window.SOFT_TISSUE.apply(-1000));
        assertEquals(0.5f, Window.SOFT_TISSUE.apply(40));
        assertEquals(1f, Window.SOFT_TISSUE.apply(230));
        assertEquals(150f / 380f, Window.SOFT_TISSUE.apply(0), 1e-7);
    }

    @Test
    void oddWidthUsesFloorOfHalfWidthAsTheSeedDoes() {
        // Python: 135 // 2 = 67, so the window is [-27, 107] but still scaled by 1/135.
        Window w = Window.linear("header", 40, 135);
        assertEquals(-27f, w.low());
        assertEquals(107f, w.high());
        assertEquals(134f / 135f, w.apply(500), 1e-7);
        assertEquals(0f, w.apply(-27));
    }

    @Test
    void sigmoidWindowHitsEpsAtItsEdges() {
        Window w = Window.sigmoid("brain", 40, 80);
        assertEquals(0.5f, w.apply(40), 1e-6);
        assertEquals(1 / 255f, w.apply(0), 1e-6);
        assertEquals(1 - 1 / 255f, w.apply(80), 1e-6);
        // Still graded just outside the window, where the linear window is flat.
        assertTrue(w.apply(-10) > 0 && w.apply(-10) < w.apply(0), "graded below the window");
        assertTrue(w.apply(90) < 1 && w.apply(90) > w.apply(80), "graded above the window");
    }

    @Test
    void parsesSpecs() {
        assertSame(Window.BRAIN, Window.parse("brain"));
        Window bone = Window.parse("bone:600/2800");
        assertEquals(600, bone.center());
        assertEquals(2800, bone.width());
        assertTrue(Window.parse("x:40/80:sigmoid").sigmoid());
        assertThrows(IllegalArgumentException.class, () -> Window.parse("bone"));
        assertThrows(IllegalArgumentException.class, () -> Window.parse("bone:a/b"));
        assertThrows(IllegalArgumentException.class, () -> Window.linear("w", 40, 0));
        assertEquals("brain 40/80, header, subdural 80/200", WindowChannels.parse("brain,header,subdural").toString());
    }
}
