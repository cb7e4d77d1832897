package ich.cli;

import ich.gpu.GpuUnavailableException;
import ich.nn.Backend;
import ich.nn.Device;
import ich.nn.model.OpBench;
import ich.nn.cuda.CudaBackend;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.time.LocalDateTime;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * {@code ich bench ops}: every op of the engine on B0's shapes, on the CPU backend and on the CUDA backend side by side
 * in one run ({@link OpBench}), so that each GPU kernel (cuDNN's and cuBLAS's calls included) is measured against
 * the CPU path it must agree with.
 */
@Command(name = "ops", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Milliseconds per call of each op of the engine (convolutions, batch norm + SiLU, squeeze-excitation, "
                + "pooling, element-wise ops, Linear, the loss, Adam over all of B0's parameters) on the shapes EfficientNet-B0 "
                + "gives them at --batch and --size, on the CPU backend and on a GPU's CUDA backend side by side, with the "
                + "GPU's speed-up and each side's rate (GFLOP/s for convolutions and Linear, else GB/s of the tensors read "
                + "and written). Without a GPU the GPU columns say why."})
final class BenchOpsCommand implements Callable<Integer> {
    /** Untimed calls per op at least: cuDNN picks a shape's algorithms on its first call. */
    private static final int WARMUP = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--device", defaultValue = "gpu", paramLabel = "gpu|gpu:N|cpu",
            description = "the GPU to compare with the CPU, or cpu for the CPU alone (default ${DEFAULT-VALUE})")
    String device;

    @Option(names = "--batch", defaultValue = "32", paramLabel = "B", description = "images per batch (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--size", defaultValue = "224", paramLabel = "S", description = "input S x S (default ${DEFAULT-VALUE})")
    int size;

    @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|tf32|bf16",
            description = "the GPU's arithmetic, as ich train --precision; the CPU computes in fp32 (default ${DEFAULT-VALUE})")
    String precision;

    @Option(names = "--seconds", defaultValue = "0.3", paramLabel = "S",
            description = "timed seconds per op on each device, after a third of that untimed (default ${DEFAULT-VALUE})")
    double seconds;

    @Option(names = "--min-calls", defaultValue = "3", paramLabel = "N", description = "timed calls per op at least (default ${DEFAULT-VALUE})")
    int minCalls;

    @Option(names = "--threads", paramLabel = "T", description = "compute threads of the CPU backend (default: all cores)")
    Integer threads;

    @Option(names = "--ops", paramLabel = "REGEX", description = "only the ops whose name contains a match, e.g. 'conv|depthwise'")
    String ops;

    @Override
    public Integer call() {
        int t = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        if (t < 1) throw usage("--threads must be positive, got " + t);
        if (batch < 1 || batch > 65_535) throw usage("--batch must be 1 to 65535, got " + batch);
        // B0 halves the resolution five times: below 32 x 32 the last stages see less than one pixel.
        if (size < 32 || size > 4096) throw usage("--size must be 32 to 4096, got " + size);
        if (!(seconds > 0)) throw usage("--seconds must be positive, got " + seconds);
        if (minCalls < 1) throw usage("--min-calls must be positive, got " + minCalls);
        Pattern filter;
        try {
            filter = ops == null ? null : Pattern.compile(ops);
        } catch (PatternSyntaxException e) {
            throw usage("--ops is not a regular expression: " + e.getDescription());
        }
        Device gpuDevice;
        try {
            gpuDevice = DeviceOptions.resolve(device, precision, t);
        } catch (IllegalArgumentException e) {
            throw usage(e.getMessage());
        }
        List<OpBench.Case> cases = OpBench.cases(batch, size).stream()
                .filter(c -> filter == null || filter.matcher(c.op()).find()).toList();
        if (cases.isEmpty()) throw usage("--ops " + ops + " matches no op");

        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        String gpuNote = null;
        Backend gpu = null;
        if (gpuDevice instanceof Device.Gpu g) {
            try {
                gpu = g.open();
            } catch (GpuUnavailableException e) {
                gpuNote = g.label() + " is not usable: " + e.getMessage();
            } catch (RuntimeException e) { // the driver refused (out of memory, a busy device, ...)
                gpuNote = "cannot open " + g.label() + ": " + e.getMessage();
            }
        } else {
            gpuNote = "not asked for (--device cpu)";
        }
        CudaBackend cuda = (CudaBackend) gpu;
        try (Backend cpu = new Device.Cpu(t).open(); Backend ignored = gpu) {
            out.printf(Locale.ROOT, "ich bench ops: EfficientNet-B0's ops one at a time, batch %d, input %d x %d; per op and device at least "
                    + "%.2f s and %d calls timed, after %d calls and %.2f s untimed; %s%n", batch, size, size, seconds, minCalls, WARMUP, seconds / 3,
                    LocalDateTime.now().truncatedTo(ChronoUnit.MINUTES).toString().replace('T', ' '));
            out.printf("cpu: %s, %s%n", BenchCommand.Train.cpuModel(), cpu.name());
            out.printf("gpu: %s%n", cuda != null ? cuda.name() : gpuNote);
            out.printf("%-42s %-42s %10s %10s %8s %16s %16s%n", "op", "shape", "cpu ms", "gpu ms", "speed-up", "cpu rate", "gpu rate");
            out.flush();
            int failed = 0;
            for (OpBench.Case c : cases) {
                OpBench.Timing onCpu = null, onGpu = null;
                String problem = null;
                try {
                    onCpu = OpBench.time(cpu, c, WARMUP, minCalls, seconds, () -> {});
                    if (cuda != null) onGpu = OpBench.time(cuda, c, WARMUP, minCalls, seconds, cuda::synchronize);
                } catch (RuntimeException e) {
                    problem = e.toString();
                    failed++;
                }
                out.printf(Locale.ROOT, "%-42s %-42s %10s %10s %8s %16s %16s%s%n", c.op(), c.shape(), millis(onCpu), millis(onGpu),
                        onCpu != null && onGpu != null ? String.format(Locale.ROOT, "%.1fx", onCpu.millisPerCall() / onGpu.millisPerCall()) : "-",
                        rate(onCpu), rate(onGpu), problem == null ? "" : "  failed: " + problem);
                out.flush();
            }
            if (cuda != null && !cuda.convolutionChoices().isEmpty()) {
                // which engine won each convolution's first-call race (cuDNN, our depthwise kernels, a cuBLAS GEMM)
                out.println("convolution engines on the GPU:");
                for (String line : cuda.convolutionChoices()) out.println("  " + line);
            }
            if (failed > 0) {
                err.println("ich bench ops: " + failed + " of " + cases.size() + " ops failed (see their rows)");
                return 1;
            }
            return 0;
        }
    }

    private static String millis(OpBench.Timing t) {
        return t == null ? "-" : String.format(Locale.ROOT, "%.3f", t.millisPerCall());
    }

    private static String rate(OpBench.Timing t) {
        return t == null ? "-" : String.format(Locale.ROOT, "%.1f %s", t.rate(), t.rateUnit());
    }

    private CommandLine.ParameterException usage(String message) {
        return new CommandLine.ParameterException(spec.commandLine(), message);
    }
}
