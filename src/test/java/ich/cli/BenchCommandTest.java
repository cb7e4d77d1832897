package ich.cli;

import ich.gpu.Gpu;
import ich.gpu.GpuUnavailableException;
import ich.gpu.Kernels;
import ich.nn.Backend;
import ich.nn.Device;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code ich bench preprocess} and {@code ich bench train} as a user runs them: one table each, CPU rows measured,
 * GPU rows measured or saying why not.
 */
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
    void preprocessFromFilesAddsTheirDecodeRate(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("synth");
        CliTest.Run synth = CliTest.run("synth", "--out", data.toString(), "--studies", "1", "--slices-per-study", "3", "--seed", "5",
                "--size", "64", "--test-fraction", "0", "--threads", "1");
        assertEquals(0, synth.exit(), synth.err());
        Path broken = data.resolve("broken.dcm");
        Files.writeString(broken, "not a DICOM file");
        CliTest.Run r = CliTest.run("bench", "preprocess", "--data", data.toString(), "--batch", "4", "--size", "32", "--seconds", "0.2");
        assertEquals(0, r.exit(), r.out() + r.err());
        assertTrue(r.err().contains("skipped " + broken), "the unreadable file is named: " + r.err());
        List<String> lines = Arrays.asList(r.out().split("\n"));
        assertTrue(lines.getFirst().contains("3 slices from " + data), r.out());
        int cores = Runtime.getRuntime().availableProcessors();
        String one = row(lines, "decode files, 1 thread", r.out());
        String all = row(lines, "decode files, " + cores + " threads", r.out());
        assertTrue(slicesPerSecond(one) > 0 && slicesPerSecond(all) > 0, one + "\n" + all);
        assertTrue(all.contains(" x 1 thread"), all);
        assertEquals(9, lines.size(), "header, column names, 2 CPU rows, 2 decode rows, 3 GPU rows:\n" + r.out());
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

    private static String row(List<String> lines, String start, String out) {
        return lines.stream().filter(l -> l.startsWith(start)).findFirst().orElseThrow(() -> new AssertionError(start + " missing:\n" + out));
    }

    /** The loss pair "loss a -> b" of a training row: both finite and positive (BCE of a model that is not exact). */
    private static void assertLosses(String line) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("loss (\\S+) -> (\\S+) ").matcher(line);
        assertTrue(m.find(), line);
        for (int g = 1; g <= 2; g++) {
            double loss = Double.parseDouble(m.group(g));
            assertTrue(Double.isFinite(loss) && loss > 0, line);
        }
    }

    private static List<String> trainTable(CliTest.Run r, int batch, int size) {
        assertEquals(0, r.exit(), r.out() + r.err());
        List<String> lines = Arrays.asList(r.out().split("\n"));
        assertTrue(lines.getFirst().startsWith("ich bench train: EfficientNet-B0")
                && lines.getFirst().contains("batch " + batch + " x 3 x " + size + " x " + size + " fp32"), r.out());
        int cores = Runtime.getRuntime().availableProcessors();
        assertTrue(lines.get(1).startsWith("device: " + BenchCommand.Train.cpuModel() + ", cpu (" + cores + " thread"), r.out());
        assertTrue(lines.get(1).matches(".*; \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}$"), "the date: " + lines.get(1));
        assertTrue(lines.get(2).startsWith("path") && lines.get(2).contains("images/s") && lines.get(2).contains("ms/step"), r.out());
        String memory = row(lines, "training, batch in device memory", r.out());
        double perSecond = slicesPerSecond(memory);
        assertTrue(perSecond > 0 && Double.isFinite(perSecond), memory);
        assertLosses(memory);
        assertFalse(r.out().contains("GPU utilisation") || r.out().contains("peak GPU memory"), "no GPU rows on the CPU:\n" + r.out());
        assertEquals(5, lines.size(), "header, device, column names, 2 rows:\n" + r.out());
        return lines;
    }

    @Test
    void trainTimesWholeStepsOnTheCpu() {
        CliTest.Run r = CliTest.run("bench", "train", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "2", "--warmup", "1");
        List<String> lines = trainTable(r, 2, 32);
        assertTrue(row(lines, "training, batches from files", r.out()).contains("not run: no --files DIR"), r.out());
    }

    @Test
    void trainTimesBatchesReadFromFiles(@TempDir Path tmp) {
        Path data = tmp.resolve("synth");
        CliTest.Run synth = CliTest.run("synth", "--out", data.toString(), "--studies", "1", "--slices-per-study", "3", "--seed", "5",
                "--size", "64", "--test-fraction", "0", "--threads", "1");
        assertEquals(0, synth.exit(), synth.err());
        CliTest.Run r = CliTest.run("bench", "train", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "2", "--warmup", "1",
                "--files", data.toString(), "--workers", "1");
        List<String> lines = trainTable(r, 2, 32);
        String files = row(lines, "training, batches from files", r.out());
        double perSecond = slicesPerSecond(files);
        assertTrue(perSecond > 0 && Double.isFinite(perSecond), files);
        assertLosses(files);
        assertTrue(files.contains("3 files, 1 loader threads"), files);
        assertFalse(files.contains("unreadable"), files);
    }

    @Test
    void trainOnAMissingGpuFailsSayingWhy() {
        String why;
        try (Backend gpu = new Device.Gpu(0).open()) {
            Assumptions.abort("skipped: a GPU backend opened here (" + gpu.name() + "); this test is for machines without one");
            return;
        } catch (GpuUnavailableException e) {
            why = e.getMessage();
        }
        CliTest.Run r = CliTest.run("bench", "train", "--device", "gpu", "--steps", "1", "--warmup", "0");
        assertEquals(1, r.exit(), r.out() + r.err());
        assertTrue(r.err().contains("gpu:0 is not usable: " + why), r.err());
        assertFalse(r.out().contains("images/s"), "no table without a device:\n" + r.out());
    }

    @Test
    void badTrainArgumentsAreUsageErrors(@TempDir Path tmp) {
        String[][] cases = { // the arguments, then the message
                {"--device", "tpu", "unknown device 'tpu'"},
                {"--size", "16", "--size must be 32 to 4096"},
                {"--batch", "0", "--batch must be 1 to 65535"},
                {"--steps", "0", "--steps must be positive"},
                {"--precision", "fp8", "--precision: unknown precision 'fp8': use fp32, tf32 or bf16"},
                {"--precision", "bf16", "--precision bf16 needs --device gpu (the device is cpu)"},
                {"--precision", "tf32", "--precision tf32 needs --device gpu (the device is cpu)"},
                {"--cuda-graph", "--cuda-graph needs a GPU"},
                {"--profile", "--profile needs a GPU"},
                {"--files", tmp.resolve("nope").toString(), "is not a directory"},
                {"--files", tmp.toString(), "no .dcm files"}};
        for (String[] c : cases) {
            List<String> args = new java.util.ArrayList<>(List.of("bench", "train"));
            args.addAll(Arrays.asList(c).subList(0, c.length - 1));
            CliTest.Run r = CliTest.run(args.toArray(String[]::new));
            String message = c[c.length - 1];
            assertEquals(2, r.exit(), args + ": " + r.out() + r.err());
            assertTrue(r.err().contains(message), message + " in " + r.err());
        }
    }

    /** The profile table: per-step calls and milliseconds, shares of the op total, the header's totals. */
    @Test
    void profileTableGivesPerStepFiguresAndShares() {
        List<ich.nn.cuda.CudaBackend.OpTime> ops = List.of(new ich.nn.cuda.CudaBackend.OpTime("cuDNN conv 1x1 FORWARD", 60, 30.0),
                new ich.nn.cuda.CudaBackend.OpTime("batchNormForwardTraining bf16", 98, 10.0));
        List<String> lines = BenchCommand.Train.profileTable(ops, 2, 25.5);
        assertEquals(4, lines.size(), String.valueOf(lines));
        assertTrue(lines.get(0).contains("2 eager steps") && lines.get(0).contains("20.00 ms/step in the ops below")
                && lines.get(0).contains("25.50 ms/step wall"), lines.get(0));
        assertTrue(lines.get(2).matches("\\s+cuDNN conv 1x1 FORWARD\\s+30\\.0\\s+15\\.000\\s+75\\.0"), lines.get(2));
        assertTrue(lines.get(3).matches("\\s+batchNormForwardTraining bf16\\s+49\\.0\\s+5\\.000\\s+25\\.0"), lines.get(3));
        assertEquals(2, BenchCommand.Train.profileTable(List.of(), 3, 1).size(), "no ops: the header alone");
    }
}
