package ich.preprocess;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class AugmentationTest {
    @Test
    void evalIsTheCentreCropAndNeverFlips() {
        Augmentation.Sample s = Augmentation.eval(256, 224).sample(512, 512, 1, 0, 7);
        assertEquals(new CropBox(32, 32, 448, 448), s.box());
        assertFalse(s.flip());
        // Non-square sources scale each axis on its own.
        assertEquals(new CropBox(16, 32, 224, 448), Augmentation.eval(256, 224).sample(256, 512, 1, 0, 7).box());
    }

    @Test
    void trainCropsStayInsideAndRepeatForTheSameSeedEpochAndKey() {
        Augmentation a = Augmentation.train(256, 224);
        int flips = 0;
        for (long key = 0; key < 2000; key++) {
            Augmentation.Sample s = a.sample(512, 512, 42, 3, key);
            assertEquals(s, a.sample(512, 512, 42, 3, key), "repeatable");
            CropBox b = s.box();
            assertEquals(448, b.width());
            assertEquals(448, b.height());
            assertTrue(b.x() >= 0 && b.x() + b.width() <= 512 && b.y() >= 0 && b.y() + b.height() <= 512, b.toString());
            assertEquals(0, b.x() % 2, "integer offsets in the 256 space");
            if (s.flip()) flips++;
        }
        assertTrue(flips > 900 && flips < 1100, "about half mirrored: " + flips);
        assertNotEquals(a.sample(512, 512, 42, 3, 5), a.sample(512, 512, 42, 4, 5), "another epoch, another crop");
        assertNotEquals(a.sample(512, 512, 42, 3, 5), a.sample(512, 512, 43, 3, 5), "another seed, another crop");
    }

    @Test
    void scaleAndRatioRangesAreRespected() {
        Augmentation a = Augmentation.train(256, 224).withScale(0.25, 1).withRatio(0.75, 4 / 3.0);
        for (long key = 0; key < 1000; key++) {
            CropBox b = a.sample(256, 256, 9, 0, key).box();
            double area = b.width() * b.height() / (256.0 * 256.0);
            assertTrue(area >= 0.2 && area <= 1.0, "area " + area);
            assertTrue(b.x() + b.width() <= 256 && b.y() + b.height() <= 256);
        }
        assertThrows(IllegalArgumentException.class, () -> Augmentation.train(224, 256));
    }
}
