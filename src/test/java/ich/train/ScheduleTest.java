package ich.train;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ScheduleTest {
    @Test
    void theSeedsScheduleIsOneFrozenEpochOverAllImagesThenTenSixthEpochs() {
        List<Schedule.Epoch> plan = Schedule.seed().plan(1000, 32);
        assertEquals(11, plan.size());
        assertTrue(plan.get(0).frozenBackbone());
        assertEquals(1e-4, plan.get(0).baseLr());
        assertEquals(32, plan.get(0).steps(), "ceil(1000 / 32)");
        for (int e = 1; e < 11; e++) {
            assertFalse(plan.get(e).frozenBackbone());
            assertEquals(4e-4, plan.get(e).baseLr());
            assertEquals(5, plan.get(e).steps(), "1000 / 6 / 32");
            assertEquals(e, plan.get(e).index());
        }
    }

    @Test
    void epochRowsArePermutationsFixedBySeedAndEpoch() {
        int[] train = new int[100];
        for (int i = 0; i < train.length; i++) train[i] = 3 * i;
        List<Schedule.Epoch> plan = new Schedule(1, 1e-4, 2, 4e-4, 6, false).plan(train.length, 8);
        int[] head = Schedule.rows(train, plan.get(0), 8, 42);
        assertEquals(100, head.length);
        int[] sorted = head.clone();
        Arrays.sort(sorted);
        assertArrayEquals(train, sorted, "the frozen epoch sees every image once");
        assertArrayEquals(head, Schedule.rows(train, plan.get(0), 8, 42));
        int[] e1 = Schedule.rows(train, plan.get(1), 8, 42);
        int[] e2 = Schedule.rows(train, plan.get(2), 8, 42);
        assertEquals(16, e1.length, "100 / 6 / 8 = 2 steps");
        assertFalse(Arrays.equals(e1, e2));
        assertFalse(Arrays.equals(head, Schedule.rows(train, plan.get(0), 8, 43)));
    }

    @Test
    void cosineDecaysEachPhaseToZero() {
        Schedule s = new Schedule(1, 1e-4, 2, 4e-4, 1, true);
        List<Schedule.Epoch> plan = s.plan(64, 8);
        Schedule.Epoch full = plan.get(1);
        assertEquals(4e-4, full.lr(full.firstStepOfPhase(), true), 1e-12);
        assertEquals(2e-4, full.lr(full.firstStepOfPhase() + full.phaseSteps() / 2, true), 1e-12);
        assertEquals(4e-4, full.lr(full.firstStepOfPhase() + 5, false));
        assertThrows(IllegalArgumentException.class, () -> new Schedule(0, 1e-4, 0, 4e-4, 6, false));
    }

    @Test
    void progressLinesNameStepsLossRateAndTime() {
        var bytes = new java.io.ByteArrayOutputStream();
        ProgressBar bar = new ProgressBar(new java.io.PrintStream(bytes, true), "epoch 1/3", 20, false);
        for (int i = 1; i <= 20; i++) bar.update(i, 4, 0.25);
        String[] lines = bytes.toString().split("\n");
        assertEquals(11, lines.length, bytes.toString());
        assertTrue(lines[10].startsWith("epoch 1/3 [########################] 20/20 loss 0.2500"), lines[10]);
        assertTrue(lines[10].contains("img/s took"), lines[10]);
        assertEquals("1:01:05", ProgressBar.clock(3665));
        assertEquals("--:--", ProgressBar.clock(Double.NaN));
    }
}
