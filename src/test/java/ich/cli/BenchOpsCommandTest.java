package ich.cli;

import ich.gpu.Gpu;
import ich.nn.model.OpBench;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code ich bench ops}: one row per op of {@link OpBench#cases}, each timed on the CPU (a positive time and rate,
 * no failure), the GPU columns measured where a GPU is usable and else "-" with the reason in the header; bad
 * options are usage errors.
 */
class BenchOpsCommandTest {
    /** The five cells after the op and shape: cpu ms, gpu ms, speed-up, cpu rate, gpu rate (a rate is "-" or "x.y unit"). */
    private static final Pattern CELLS = Pattern.compile("(\\S+) +(\\S+) +(\\S+) +(\\S+ \\S+|-) +(\\S+ \\S+|-)$");
    private static final String[] QUICK = {"--batch", "2", "--size", "32", "--seconds", "0.002", "--min-calls", "1"};

    private static CliTest.Run run(String... options) {
        String[] args = new String[2 + QUICK.length + options.length];
        args[0] = "bench";
        args[1] = "ops";
        System.arraycopy(QUICK, 0, args, 2, QUICK.length);
        System.arraycopy(options, 0, args, 2 + QUICK.length, options.length);
        return CliTest.run(args);
    }

    @Test
    void everyOpRunsOnTheCpuAndGetsItsRow() {
        CliTest.Run r = run("--device", "cpu");
        assertEquals(0, r.exit(), r.out() + r.err());
        List<String> lines = Arrays.asList(r.out().split("\n"));
        assertTrue(lines.get(0).startsWith("ich bench ops:") && lines.get(0).contains("batch 2, input 32 x 32"), r.out());
        assertTrue(lines.get(1).startsWith("cpu: ") && lines.get(1).contains("cpu ("), r.out());
        assertEquals("gpu: not asked for (--device cpu)", lines.get(2));
        assertTrue(lines.get(3).startsWith("op") && lines.get(3).contains("speed-up"), r.out());
        List<OpBench.Case> cases = OpBench.cases(2, 32);
        assertEquals(4 + cases.size(), lines.size(), r.out());
        for (int i = 0; i < cases.size(); i++) {
            String line = lines.get(4 + i);
            OpBench.Case c = cases.get(i);
            assertTrue(line.startsWith(c.op()) && line.contains(c.shape()), "row " + i + " should be " + c.op() + ": " + line);
            assertTrue(!line.contains("failed"), line);
            Matcher m = CELLS.matcher(line);
            assertTrue(m.find(), line);
            assertTrue(Double.parseDouble(m.group(1)) > 0, "cpu ms: " + line);
            assertEquals("-", m.group(2), line);
            assertEquals("-", m.group(3), line);
            assertTrue(m.group(4).matches("\\d+\\.\\d (GFLOP/s|GB/s)"), "cpu rate: " + line);
            assertEquals("-", m.group(5), line);
        }
        // each kind of layer is there
        for (String op : List.of("conv 1x1 (expand) backward filter", "depthwise 5x5/2 backward data", "batch norm + SiLU training backward",
                "SE input gradient (scale + pool paths)", "drop-path (per-sample mask)", "BCE with logits (loss and gradient)", "Adam step, all parameters")) {
            assertTrue(cases.stream().anyMatch(c -> c.op().equals(op)), op);
        }
    }

    @Test
    void theGpuColumnsSayWhyWhenThereIsNoGpu() {
        CliTest.Run r = run("--ops", "residual|linear forward");
        assertEquals(0, r.exit(), r.out() + r.err());
        List<String> lines = Arrays.asList(r.out().split("\n"));
        assertEquals(4 + 2, lines.size(), "two ops match:\n" + r.out());
        if (Gpu.probe() instanceof Gpu.Unavailable u) {
            assertTrue(lines.get(2).startsWith("gpu: gpu:0 is not usable: ") && lines.get(2).contains(u.reason()), lines.get(2));
            Matcher m = CELLS.matcher(lines.get(4));
            assertTrue(lines.get(4).startsWith("residual add") && m.find() && m.group(2).equals("-") && m.group(5).equals("-"), lines.get(4));
        } else {
            assertTrue(lines.get(4).matches("residual add .*\\d+\\.\\dx.*") || lines.get(2).contains("not usable"), r.out());
        }
    }

    /** Where convolutions ran on a GPU, the table ends with the engine each one's first-call race chose. */
    @Test
    void convolutionsOnAGpuListTheirEngines() {
        assumeTrue(Gpu.probe() instanceof Gpu.Available, "no GPU");
        CliTest.Run r = run("--ops", "depthwise 3x3/1 forward|conv 1x1 \\(expand\\) forward");
        assertEquals(0, r.exit(), r.out() + r.err());
        List<String> lines = Arrays.asList(r.out().split("\n"));
        int at = lines.indexOf("convolution engines on the GPU:");
        assertTrue(at > 4 && lines.size() > at + 1, r.out());
        assertTrue(lines.stream().skip(at + 1).allMatch(l -> l.startsWith("  ")), r.out());
        assertTrue(lines.stream().skip(at + 1).anyMatch(l -> l.contains("3x3")), r.out());
    }

    @Test
    void badOptionsAreUsageErrors() {
        CliTest.Run none = run("--ops", "no such op");
        assertEquals(2, none.exit());
        assertTrue(none.err().contains("matches no op"), none.err());
        CliTest.Run regex = run("--ops", "(");
        assertEquals(2, regex.exit());
        assertTrue(regex.err().contains("--ops is not a regular expression"), regex.err());
        CliTest.Run bf16 = run("--device", "cpu", "--precision", "bf16");
        assertEquals(2, bf16.exit());
        assertTrue(bf16.err().contains("--precision bf16 needs --device gpu"), bf16.err());
        CliTest.Run small = CliTest.run("bench", "ops", "--size", "16");
        assertEquals(2, small.exit());
        assertTrue(small.err().contains("--size must be 32 to 4096"), small.err());
        CliTest.Run device = run("--device", "tpu");
        assertEquals(2, device.exit());
        assertTrue(device.err().contains("--device: unknown device 'tpu'"), device.err());
    }
}
