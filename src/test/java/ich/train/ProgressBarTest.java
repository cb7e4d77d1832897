package ich.train;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;

import static org.junit.jupiter.api.Assertions.*;

/** The progress line names the GPU's utilisation only for a GPU backend, from the value it is given. */
class ProgressBarTest {
    private static String[] lines(boolean gpu, int... percents) {
        var bytes = new ByteArrayOutputStream();
        ProgressBar bar = new ProgressBar(new PrintStream(bytes, true), "epoch 2/3 full", percents.length, false, gpu);
        for (int i = 0; i < percents.length; i++) bar.update(i + 1, 8, 0.5, percents[i]);
        return bytes.toString().split("\n");
    }

    @Test
    void aGpuBarShowsTheLatestUtilisationBetweenRateAndTime() {
        String[] l = lines(true, 12, 97);
        assertEquals(2, l.length);
        assertTrue(l[0].matches(".* 1/2 loss 0\\.5000 [0-9.]+ img/s GPU 12% ETA [0-9:-]+"), l[0]);
        assertTrue(l[1].matches(".* 2/2 loss 0\\.5000 [0-9.]+ img/s GPU 97% took [0-9:]+"), l[1]);
    }

    @Test
    void anUnknownSampleReadsAsDashes() {
        String[] l = lines(true, -1);
        assertTrue(l[0].contains(" img/s GPU --% took "), l[0]);
    }

    @Test
    void aLossNotReadYetReadsAsDashesAndARealNanStaysNan() {
        var bytes = new ByteArrayOutputStream();
        ProgressBar bar = new ProgressBar(new PrintStream(bytes, true), "epoch 1/2 head", 3, false, true);
        bar.update(1, 8, 40);
        bar.update(2, 8, Double.NaN, 41); // a diverged run must show it
        bar.update(3, 8, 0.125, 42);
        String[] l = bytes.toString().split("\n");
        assertTrue(l[0].matches(".* 1/3 loss -- [0-9.]+ img/s GPU 40% ETA [0-9:-]+"), l[0]);
        assertTrue(l[1].contains(" 2/3 loss NaN "), l[1]);
        assertTrue(l[2].contains(" 3/3 loss 0.1250 "), l[2]);
    }

    @Test
    void aCpuBarHasNoGpuFigureWhateverItIsGiven() {
        for (String line : lines(false, 97, -1)) {
            assertFalse(line.contains("GPU"), line);
            assertTrue(line.matches(".* loss 0\\.5000 [0-9.]+ img/s (ETA|took) [0-9:-]+"), line);
        }
        // The three-argument update is the CPU's line too.
        var bytes = new ByteArrayOutputStream();
        new ProgressBar(new PrintStream(bytes, true), "x", 1, false).update(1, 1, 0.25);
        assertFalse(bytes.toString().contains("GPU"), bytes.toString());
    }
}
