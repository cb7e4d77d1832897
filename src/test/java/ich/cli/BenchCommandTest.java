package ich.cli;

import ich.gpu.Gpu;
import ich.gpu.Kernels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.*;

/** {@code ich bench preprocess} as a user runs it: one table, CPU rows measured, GPU rows measured or saying why not. */
class BenchCommandTest {
    private static double slicesPerSecond(String line) {
        String[] cells = line.substring(34).trim().split("\\s+");
        return Double.parseDouble(cells[0].replace(",", ""));
    }

    @Test
    void preprocessPrintsOneTableWithEveryPath() {
        CliTest.Run r = CliTest.run("bench", "preprocess", "--batch", "6", "--size", "48", "--seconds", "0.3");
        assertEquals(0, r.exit(), r.out() + r.err());
        List<String> lines = Arrays.asList(r.out().split("\n"));
        assertTrue(lines.getFirst().contains("synthetic 512 x 512 int16") && lines.getFirst().contains("3 x 48 x 48"), r.out());
        assertTrue(lines.get(1).startsWith("path") && lines.get(1).contains("slices/s"), r.out());
        int cores = Runtime.getRuntime().availableProcessors();
        String one = lines.stream().filter(l -> l.startsWith("CPU, 1 thread")).findFirst().orElseThrow(() -> new AssertionError(r.out()));
        String all = lines.stream().filter(l -> l.startsWith("CPU, " + cores + " threads")).findFirst().orElseThrow(() -> new AssertionError(r.out()));
        assertTrue(slicesPerSecond(one) > 0, one);
        assertTrue(slicesPerSecond(all) > 0, all);
        for (String row : List.of("GPU kernel (events)", "GPU incl. host->device copies", "GPU kernel bandwidth")) {
            String line = lines.stream().filter(l -> l.startsWith(row)).findFirst().orElseThrow(() -> new AssertionError(row + " missing:\n" + r.out()));
            if (Gpu.probe() instanceof Gpu.Unavailable u) {
                assertTrue(line.contains("no GPU: " + u.reason()), line);
            } else if (Kernels.preprocessFatbin().isEmpty()) {
                assertTrue(line.contains(Kernels.NOT_BUILT), line);
            } else {
                assertTrue(line.matches(".*\\d.*") && !line.contains("no GPU"), line);
            }
        }
        assertEquals(7, lines.size(), "header, column names, 2 CPU rows, 3 GPU rows:\n" + r.out());
    }

    @Test
    void badArgumentsAreUsageErrors(@TempDir Path tmp) {
        CliTest.Run zero = CliTest.run("bench", "preprocess", "--batch", "0");
        assertEquals(2, zero.exit());
        assertTrue(zero.err().contains("--batch must be 1 to 65535"), zero.err());
        CliTest.Run missing = CliTest.run("bench", "preprocess", "--data", tmp.resolve("nope").toString(), "--seconds", "0.1");
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("is not a directory"), missing.err());
        CliTest.Run empty = CliTest.run("bench", "preprocess", "--data", tmp.toString(), "--seconds", "0.1");
        assertEquals(2, empty.exit());
        assertTrue(empty.err().toLowerCase(Locale.ROOT).contains("no readable .dcm files"), empty.err());
    }
}
