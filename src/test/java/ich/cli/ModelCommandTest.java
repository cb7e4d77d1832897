package ich.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ModelCommandTest {

    @Test
    void summaryPrintsTheTableTheCountsAndTheCost() {
        CliTest.Run r = CliTest.run("model", "summary");
        assertEquals(0, r.exit(), r.err());
        String out = r.out();
        assertTrue(out.contains("conv_stem"), out);
        assertTrue(out.contains("blocks.5.3") && out.contains("InvertedResidual"), out);
        assertTrue(out.contains("[1,1280,7,7]"), out);
        assertTrue(out.contains("classifier") && out.contains("[1,6]"), out);
        assertTrue(out.contains("4,015,234 total, 4,015,234 trainable, 0 frozen (4,007,548 backbone + 7,686 classifier)"), out);
        assertTrue(out.matches("(?s).*forward    [\\d,]+ MACs = 0\\.(38|39|40)\\d GMACs.*"), out);
    }

    @Test
    void summaryAtAnotherSizeWithTheBackboneFrozen() {
        CliTest.Run r = CliTest.run("model", "summary", "--size", "64", "--batch", "2", "--freeze-backbone");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("[2,1280,2,2]"), r.out());
        assertTrue(r.out().contains("10,246 trainable, 4,004,988 frozen"), r.out());
        assertTrue(r.out().contains("input      [2,3,64,64]"), r.out());
    }

    @Test
    void badSizeIsAUsageError() {
        CliTest.Run r = CliTest.run("model", "summary", "--size", "0");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("must be positive"), r.err());
    }
}
