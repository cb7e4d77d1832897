package ich.cli;

import ich.gpu.Context;
import ich.gpu.Cuda;
import ich.gpu.DeviceBuffer;
import ich.gpu.Event;
import ich.gpu.Gpu;
import ich.gpu.GpuPreprocessor;
import ich.gpu.Kernels;
import ich.gpu.Stream;
import ich.gpu.SyntheticSlices;
import ich.hu.HounsfieldTransform;
import ich.preprocess.Augmentation;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;
import ich.preprocess.WindowChannels;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;

@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure throughput on this machine.",
        subcommands = {BenchCommand.Preprocess.class})
final class BenchCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "preprocess", mixinStandardHelpOptions = true,
            description = {"Slices/s of the preprocessing (stored pixels to BSB model input, random crop and flip):",
                    "the CPU path on 1 thread and on all threads, the GPU kernel alone (CUDA events), the GPU including",
                    "host staging and host-to-device copies (wall clock, double-buffered), and the kernel's DRAM",
                    "bandwidth against the device's. Without a GPU the GPU rows say why. A quick figure, not a",
                    "benchmark harness: the JMH benchmarks (scripts/bench) are the reference for the CPU paths."})
    static final class Preprocess implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--batch", defaultValue = "256", description = "slices per batch (default ${DEFAULT-VALUE})")
        int batch;

        @Option(names = "--size", defaultValue = "224", description = "output size S x S; the slice is resized to S * 8 / 7 first, as 256 for 224 (default ${DEFAULT-VALUE})")
        int size;

        @Option(names = "--seconds", defaultValue = "3", description = "measuring time per row, after a warm-up of a third of it (default ${DEFAULT-VALUE})")
        double seconds;

        @Option(names = "--data", defaultValue = "synthetic", paramLabel = "DIR|synthetic",
                description = "DICOM files under DIR (up to --batch of them, cycled), or synthetic 512 x 512 int16 slices (default)")
        String data;

        @Option(names = "--precision", defaultValue = "FP32", description = "GPU output: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
        GpuPreprocessor.Precision precision;

        @Option(names = "--layout", defaultValue = "NCHW", description = "${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
        SliceKernel.Layout layout;

        @Override
        public Integer call() throws IOException {
            if (batch < 1 || batch > 65_535) throw new CommandLine.ParameterException(spec.commandLine(), "--batch must be 1 to 65535, got " + batch);
            if (size < 1 || size > 4096) throw new CommandLine.ParameterException(spec.commandLine(), "--size must be 1 to 4096, got " + size);
            if (!(seconds > 0)) throw new CommandLine.ParameterException(spec.commandLine(), "--seconds must be positive, got " + seconds);
            PrintWriter out = spec.commandLine().getOut();
            int resize = Math.max(size, Math.round(size * 8 / 7f));
            Preprocessor.Config config = new Preprocessor.Config(WindowChannels.BSB, Augmentation.train(resize, size), null, layout,
                    HounsfieldTransform.Options.DEFAULT);
            try (Arena arena = Arena.ofShared()) {
                List<GpuPreprocessor.Slice> slices = data.equals("synthetic")
                        ? SyntheticSlices.heads(Math.min(batch, 16), 512, config.channels().resolve(null, "synthetic"), arena)
                        : files(config, arena);
                out.printf(Locale.ROOT, "ich bench preprocess: %s -> BSB 3 x %d x %d %s (resize %d, random crop, flip), batch %d, %.1f s per row%n",
                        data.equals("synthetic") ? slices.size() + " synthetic 512 x 512 int16 slices" : slices.size() + " slices from " + data,
                        size, size, layout, resize, batch, seconds);
                out.printf("%-34s %12s %12s  %s%n", "path", "slices/s", "ms/batch", "notes");
                out.flush();
                // JIT warm-up for both CPU rows, at least 2 s: with less, the first row measured C2 still compiling.
                int cores = Runtime.getRuntime().availableProcessors();
                cpu(config, slices, cores, Math.max(2, seconds / 3));
                double cpu1 = cpu(config, slices, 1, seconds);
                row(out, "CPU, 1 thread", cpu1, "fp32");
                double cpuAll = cpu(config, slices, cores, seconds);
                row(out, "CPU, " + cores + " threads", cpuAll, String.format(Locale.ROOT, "fp32, %.1f x 1 thread", cpuAll / cpu1));
                boolean ok = gpu(out, config, slices, cpuAll);
                out.flush();
                return ok ? 0 : 1;
            }
        }

        private void row(PrintWriter out, String path, double perSecond, String notes) {
            out.printf(Locale.ROOT, "%-34s %,12.0f %12.2f  %s%n", path, perSecond, 1000.0 * batch / perSecond, notes);
            out.flush();
        }

        /** Slices/s of the CPU path over {@code time} seconds: batches of {@code batch} slices, each split over {@code threads} threads. */
        private double cpu(Preprocessor.Config config, List<GpuPreprocessor.Slice> slices, int threads, double time) {
            Preprocessor p = new Preprocessor(config);
            long sampleBytes = 4 * config.sampleFloats();
            try (Arena arena = Arena.ofShared()) {
                MemorySegment out = arena.allocate(sampleBytes * batch, 64);
                long[] key = {0};
                Runnable oneBatch = () -> {
                    long first = key[0];
                    key[0] += batch;
                    IntStream range = IntStream.range(0, batch);
                    (threads > 1 ? range.parallel() : range).forEach(i -> {
                        GpuPreprocessor.Slice s = slices.get(i % slices.size());
                        p.process(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), first + i, 1234, 0, out, i * sampleBytes);
                    });
                };
                return perSecond(oneBatch, time) * batch;
            }
        }

        /** Runs of {@code work} per second over {@code time} seconds, after a warm-up of a third of that. */
        private static double perSecond(Runnable work, double time) {
            long warmEnd = System.nanoTime() + (long) (time / 3 * 1e9);
            do work.run(); while (System.nanoTime() < warmEnd);
            long start = System.nanoTime(), end = start + (long) (time * 1e9), now;
            int n = 0;
            do {
                work.run();
                n++;
                now = System.nanoTime();
            } while (now < end);
            return n / ((now - start) / 1e9);
        }

        /** False when the GPU was there but failed (printed); no GPU is not a failure. */
        private boolean gpu(PrintWriter out, Preprocessor.Config config, List<GpuPreprocessor.Slice> slices, double cpuAll) {
            String[] rows = {"GPU kernel (events)", "GPU incl. host->device copies", "GPU kernel bandwidth"};
            String why = null;
            Gpu.Probe probe = Gpu.probe();
            if (probe instanceof Gpu.Unavailable u) why = "no GPU: " + u.reason();
            else if (Kernels.preprocessFatbin().isEmpty()) why = "no GPU kernels: " + Kernels.NOT_BUILT;
            if (why != null) {
                for (String r : rows) out.printf("%-34s %s%n", r, why);
                return true;
            }
            Gpu.Available gpu = (Gpu.Available) probe;
            try (Context context = Context.open(0);
                 GpuPreprocessor pre = GpuPreprocessor.open(context, config, precision, batch)) {
                List<List<GpuPreprocessor.Slice>> batches = new ArrayList<>();
                for (int k = 0; k < 4; k++) {
                    List<GpuPreprocessor.Slice> b = new ArrayList<>(batch);
                    for (int i = 0; i < batch; i++) {
                        GpuPreprocessor.Slice s = slices.get((k * batch + i) % slices.size());
                        b.add(new GpuPreprocessor.Slice(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), (long) k * batch + i));
                    }
                    batches.add(b);
                }
                // Warm-up (module load, first-touch of pinned pages), then the measured pipeline: batch i is read back
                // after batch i + 1 was submitted, so copies and kernels overlap as in training.
                long warmEnd = System.nanoTime() + (long) (seconds / 3 * 1e9);
                int epoch = 0;
                do pre.run(batches.get(epoch % 4), 7, epoch++); while (System.nanoTime() < warmEnd);
                double kernelMs = 0, copyMs = 0;
                long kernelBytes = 0, copied = 0, done = 0;
                GpuPreprocessor.Batch previous = null;
                long start = System.nanoTime(), end = start + (long) (seconds * 1e9);
                while (true) {
                    GpuPreprocessor.Batch b = pre.submit(batches.get(epoch % 4), 7, epoch++);
                    if (previous != null) {
                        kernelMs += previous.kernelMillis();
                        copyMs += previous.copyMillis();
                        kernelBytes += previous.kernelBytes();
                        copied += previous.stagedBytes();
                        done += previous.size();
                    }
                    previous = b;
                    if (System.nanoTime() >= end) break;
                }
                kernelMs += previous.kernelMillis();
                copyMs += previous.copyMillis();
                kernelBytes += previous.kernelBytes();
                copied += previous.stagedBytes();
                done += previous.size();
                double wall = (System.nanoTime() - start) / 1e9;
                double kernelRate = done / (kernelMs / 1e3);
                row(out, rows[0], kernelRate, String.format(Locale.ROOT, "%s %s, %.1f x CPU all threads, %s",
                        precision, layout, kernelRate / cpuAll, gpu.devices().getFirst().name()));
                row(out, rows[1], done / wall, String.format(Locale.ROOT, "wall clock, host staging included; copies %.1f GB/s by events",
                        copied / (copyMs / 1e3) / 1e9));
                double achieved = kernelBytes / (kernelMs / 1e3) / 1e9;
                double copy = deviceCopyBandwidth(context);
                out.printf(Locale.ROOT, "%-34s %,9.0f GB/s = %.0f %% of the device's copy bandwidth (%,.0f GB/s measured, device to device; %s)%n",
                        rows[2], achieved, 100 * achieved / copy, copy, theoreticalBandwidth());
                return true;
            } catch (RuntimeException e) {
                out.printf("%-34s failed: %s%n", "GPU", e);
                return false;
            }
        }

        /**
         * 2 x memory clock x bus width, from the driver's attributes; CUDA 13 deprecates the clock attribute, so a
         * driver that refuses it gives "unknown" and the reason rather than failing the row.
         */
        private static String theoreticalBandwidth() {
            try {
                int dev = Cuda.driver().device(0);
                double clockKhz = Cuda.driver().attribute(dev, Cuda.ATTR_MEMORY_CLOCK_RATE);
                double busBits = Cuda.driver().attribute(dev, Cuda.ATTR_GLOBAL_MEMORY_BUS_WIDTH);
                double gbs = 2 * clockKhz * 1e3 * busBits / 8 / 1e9;
                return gbs > 0 ? String.format(Locale.ROOT, "theoretical %,.0f GB/s", gbs) : "theoretical unknown (the driver reports 0)";
            } catch (RuntimeException e) {
                return "theoretical unknown (" + e.getMessage() + ")";
            }
        }

        /** Read + write bytes per second of a 256 MiB device-to-device copy, best of 10, by events. */
        private static double deviceCopyBandwidth(Context context) {
            long bytes = 256L << 20;
            try (DeviceBuffer a = context.allocate(bytes); DeviceBuffer b = context.allocate(bytes);
                 Stream s = context.createStream(); Event t0 = context.createEvent(); Event t1 = context.createEvent()) {
                a.fill((byte) 1);
                double best = 0;
                for (int i = 0; i < 10; i++) {
                    s.record(t0);
                    s.copyOnDevice(a, 0, b, 0, bytes);
                    s.record(t1);
                    t1.synchronize();
                    best = Math.max(best, 2.0 * bytes / (t1.millisSince(t0) / 1e3) / 1e9);
                }
                return best;
            }
        }

        private List<GpuPreprocessor.Slice> files(Preprocessor.Config config, Arena arena) throws IOException {
            Path dir = Path.of(data);
            if (!Files.isDirectory(dir)) throw new CommandLine.ParameterException(spec.commandLine(), "--data " + data + " is not a directory (or 'synthetic')");
            List<Path> paths;
            try (var walk = Files.walk(dir)) {
                paths = walk.filter(Files::isRegularFile).filter(p -> p.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".dcm"))
                        .sorted().limit(batch).toList();
            }
            List<GpuPreprocessor.Slice> out = new ArrayList<>();
            for (Path p : paths) {
                try {
                    out.add(GpuPreprocessor.Slice.read(p, 0, out.size(), config, arena));
                } catch (IOException | RuntimeException e) {
                    spec.commandLine().getErr().println("skipped " + p + ": " + e.getMessage());
                }
            }
            if (out.isEmpty()) throw new CommandLine.ParameterException(spec.commandLine(), "--data " + data + ": no readable .dcm files");
            return out;
        }
    }
}
