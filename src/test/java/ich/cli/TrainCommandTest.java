package ich.cli;

import ich.gpu.GpuUnavailableException;
import ich.nn.Backend;
import ich.nn.Device;
import ich.train.TrainConfig;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@code ich train --device}: parsing, the CPU default, and a GPU that is not there. */
class TrainCommandTest {
    @TempDir
    static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() {
        data = dir.resolve("data");
        CliTest.Run synth = CliTest.run("synth", "--out", data.toString(), "--studies", "6", "--slices-per-study", "4", "--seed", "7",
                "--size", "64", "--positive-rate", "0.5", "--test-fraction", "0");
        assertEquals(0, synth.exit(), synth.err());
    }

    record Parsed(TrainConfig config, String err) {}

    static Parsed parse(String... options) {
        TrainCommand command = new TrainCommand();
        List<String> args = new ArrayList<>(List.of("--data", data.toString(), "--out", dir.resolve("unused").toString(), "--threads", "3"));
        args.addAll(List.of(options));
        new CommandLine(command).parseArgs(args.toArray(String[]::new));
        StringWriter err = new StringWriter();
        TrainConfig config = command.config(new PrintWriter(err, true));
        return new Parsed(config, err.toString());
    }

    static List<String> smallRun(Path out, String... more) {
        List<String> args = new ArrayList<>(List.of("train", "--data", data.toString(), "--out", out.toString(), "--image-size", "32",
                "--resize", "36", "--batch", "6", "--head-epochs", "1", "--epochs", "1", "--epoch-fraction", "1", "--val-fraction", "0.25",
                "--threads", "2", "--workers", "2", "--seed", "5"));
        args.addAll(List.of(more));
        return args;
    }

    @Test
    void devicesParse() {
        Parsed none = parse();
        assertEquals(new Device.Cpu(3), none.config().device(), none.err());
        assertFalse(none.config().gpuPreprocess());
        assertEquals(new Device.Cpu(3), parse("--device", "cpu").config().device());
        Parsed gpu = parse("--device", "gpu");
        assertEquals(new Device.Gpu(0), gpu.config().device(), gpu.err());
        assertTrue(gpu.config().gpuPreprocess(), "GPU preprocessing is the default on a GPU");
        Parsed second = parse("--device", "GPU:1", "--no-gpu-preprocess");
        assertEquals(new Device.Gpu(1), second.config().device(), second.err());
        assertFalse(second.config().gpuPreprocess());
        assertTrue(parse("--device", "gpu:1", "--gpu-preprocess").config().gpuPreprocess());
        Parsed tf32 = parse("--device", "gpu", "--tf32");
        assertEquals(new Device.Gpu(0, true), tf32.config().device(), tf32.err());
        assertEquals("gpu:0 (TF32)", tf32.config().device().label());
        Parsed graphs = parse("--device", "gpu", "--cuda-graph");
        assertEquals(new Device.Gpu(0, false, true), graphs.config().device(), graphs.err());
        assertEquals("gpu:0 (CUDA graphs)", graphs.config().device().label());
        Parsed bf16 = parse("--device", "gpu", "--precision", "BF16", "--cuda-graph");
        assertEquals(new Device.Gpu(0, Device.Precision.BF16, true), bf16.config().device(), bf16.err());
        assertEquals("gpu:0 (bf16) (CUDA graphs)", bf16.config().device().label());
        assertEquals(new Device.Gpu(0, true), parse("--device", "gpu", "--precision", "tf32", "--tf32").config().device(),
                "--tf32 is --precision tf32");
    }

    @Test
    void precisionsOtherThanFp32NeedAGpuAndMustNotContradict() {
        Parsed onCpu = parse("--precision", "bf16");
        assertNull(onCpu.config(), "refused");
        assertTrue(onCpu.err().contains("--precision bf16 needs --device gpu"), onCpu.err());
        assertEquals(new Device.Cpu(3), parse("--precision", "fp32").config().device(), "fp32 is the CPU's own");
        Parsed both = parse("--device", "gpu", "--tf32", "--precision", "bf16");
        assertNull(both.config());
        assertTrue(both.err().contains("contradict"), both.err());
        Parsed unknown = parse("--device", "gpu", "--precision", "fp8");
        assertNull(unknown.config());
        assertTrue(unknown.err().contains("fp32, tf32 or bf16"), unknown.err());
    }

    @Test
    void badDevicesAreRefusedSayingWhatIsAccepted() {
        for (String bad : List.of("tpu", "gpu:x", "gpu:", "cpu:0", "")) {
            Parsed p = parse("--device", bad);
            assertNull(p.config(), bad);
            assertTrue(p.err().contains("--device: unknown device '" + bad + "': use cpu, gpu or gpu:N"), p.err());
        }
        Parsed negative = parse("--device", "gpu:-1");
        assertNull(negative.config());
        assertTrue(negative.err().contains("GPU ordinal must be >= 0: -1"), negative.err());
        Parsed onCpu = parse("--device", "cpu", "--gpu-preprocess");
        assertNull(onCpu.config());
        assertTrue(onCpu.err().contains("--gpu-preprocess needs --device gpu"), onCpu.err());
        Parsed graphsOnCpu = parse("--cuda-graph");
        assertNull(graphsOnCpu.config());
        assertTrue(graphsOnCpu.err().contains("--cuda-graph needs --device gpu"), graphsOnCpu.err());
        Parsed reproducibleOnCpu = parse("--reproducible");
        assertNull(reproducibleOnCpu.config());
        assertTrue(reproducibleOnCpu.err().contains("--reproducible needs --device gpu"), reproducibleOnCpu.err());
        Parsed reproducible = parse("--device", "gpu:1", "--reproducible", "--cuda-graph");
        assertEquals(new Device.Gpu(1).withCudaGraphs(true).withReproducible(true), reproducible.config().device(), reproducible.err());
        Parsed graphsAndClip = parse("--device", "gpu", "--cuda-graph", "--clip-norm", "1");
        assertNull(graphsAndClip.config());
        assertTrue(graphsAndClip.err().contains("--clip-norm"), graphsAndClip.err());
        Parsed tf32OnCpu = parse("--tf32");
        assertNull(tf32OnCpu.config());
        assertTrue(tf32OnCpu.err().contains("--tf32 needs --device gpu"), tf32OnCpu.err());
        CliTest.Run run = CliTest.run("train", "--data", data.toString(), "--out", dir.resolve("bad").toString(), "--device", "tpu");
        assertEquals(2, run.exit());
        assertTrue(run.err().contains("unknown device 'tpu'"), run.err());
        assertFalse(Files.exists(dir.resolve("bad")));
    }

    @Test
    void aGpuThatIsNotThereFailsWithTheReasonAndWritesNothing() {
        String reason;
        try (Backend b = new Device.Gpu(0).open()) {
            assumeTrue(false, "a GPU backend opened (" + b.name() + "): this test is for machines without one");
            return;
        } catch (GpuUnavailableException e) {
            reason = e.getMessage();
        }
        Path out = dir.resolve("gpu-run");
        CliTest.Run run = CliTest.run(smallRun(out, "--device", "gpu").toArray(String[]::new));
        assertEquals(1, run.exit(), run.err());
        assertTrue(run.err().contains("ich train: cannot train on gpu:0: " + reason), run.err());
        assertFalse(Files.exists(out), "no run folder for a run that could not start");
    }

    @Test
    void deviceCpuIsTheRunWithoutTheFlagBitForBit() throws Exception {
        Path plain = dir.resolve("plain"), cpu = dir.resolve("cpu");
        CliTest.Run a = CliTest.run(smallRun(plain).toArray(String[]::new));
        assertEquals(0, a.exit(), a.err());
        CliTest.Run b = CliTest.run(smallRun(cpu, "--device", "cpu").toArray(String[]::new));
        assertEquals(0, b.exit(), b.err());
        for (String f : List.of("last.safetensors", "best.safetensors", "config.json", "split.csv")) {
            assertArrayEquals(Files.readAllBytes(plain.resolve(f)), Files.readAllBytes(cpu.resolve(f)), f);
        }
        assertTrue(Files.readString(cpu.resolve("config.json")).contains("\"device\": \"cpu\""));
    }
}
