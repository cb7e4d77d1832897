package ich.cli;

import ich.gpu.Context;
import ich.gpu.Cuda;
import ich.gpu.DeviceBuffer;
import ich.gpu.Event;
import ich.gpu.Gpu;
import ich.gpu.GpuPreprocessor;
import ich.gpu.Kernels;
import ich.gpu.GpuUnavailableException;
import ich.gpu.Stream;
import ich.gpu.SyntheticSlices;
import ich.gpu.UtilisationSampler;
import ich.hu.HounsfieldTransform;
import ich.nn.Backend;
import ich.nn.Device;
import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.cuda.CudaBackend;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import ich.nn.optim.Adam;
import ich.preprocess.Augmentation;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;
import ich.preprocess.WindowChannels;
import ich.train.BatchLoader;
import ich.train.BatchSource;
import ich.train.GpuBatchLoader;
import ich.train.TrainingDevice;
import ich.train.LoadedBatch;
import ich.train.QueuedStep;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.function.DoubleSupplier;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure throughput on this machine.",
        subcommands = {BenchCommand.Preprocess.class, BenchCommand.Train.class, BenchOpsCommand.class})
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
                    "bandwidth against the device's. With --data DIR also how fast threads read the files as the GPU",
                    "loader does (read, parse, copy the pixels out). Without a GPU the GPU rows say why. A quick figure, not a",
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
                List<Path> readable = new ArrayList<>();
                List<GpuPreprocessor.Slice> slices = data.equals("synthetic")
                        ? SyntheticSlices.heads(Math.min(batch, 16), 512, config.channels().resolve(null, "synthetic"), arena)
                        : files(config, arena, readable);
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
                if (!readable.isEmpty()) {
                    // What feeds the GPU from files: a loader thread's work per slice, without the preprocessing;
                    // warmed up on all threads first, as the CPU rows are, so the 1-thread row is not the JIT's.
                    decode(config, readable, cores, Math.max(1, seconds / 3));
                    double decode1 = decode(config, readable, 1, seconds);
                    row(out, "decode files, 1 thread", decode1, "read, parse, pixels copied out (the GPU loader's threads; files in the page cache)");
                    double decodeAll = decode(config, readable, cores, seconds);
                    row(out, "decode files, " + cores + " threads", decodeAll, String.format(Locale.ROOT, "%.1f x 1 thread", decodeAll / decode1));
                }
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
                    forEachSlice(threads, i -> {
                        GpuPreprocessor.Slice s = slices.get(i % slices.size());
                        p.process(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), first + i, 1234, 0, out, i * sampleBytes);
                    });
                };
                return perSecond(oneBatch, time) * batch;
            }
        }

        /**
         * Slices/s of reading {@code files} as the GPU loader's threads do ({@link GpuPreprocessor.Slice#read}: the
         * file, its header, the stored pixels copied into native memory), {@code batch} a run over {@code threads}.
         */
        private double decode(Preprocessor.Config config, List<Path> files, int threads, double time) {
            Runnable oneBatch = () -> forEachSlice(threads, i -> {
                Path file = files.get(i % files.size());
                try (Arena slice = Arena.ofConfined()) {
                    GpuPreprocessor.Slice.read(file, 0, i, config, slice);
                } catch (IOException e) {
                    throw new UncheckedIOException(file + ": read before, now " + e.getMessage(), e);
                }
            });
            return perSecond(oneBatch, time) * batch;
        }

        /** Runs {@code slice} for each index of a batch: in order on this thread, or on the common pool's threads. */
        private void forEachSlice(int threads, IntConsumer slice) {
            IntStream range = IntStream.range(0, batch);
            (threads > 1 ? range.parallel() : range).forEach(slice);
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

        /** The slices of the .dcm files under --data (up to --batch of them); {@code readable} gets their paths. */
        private List<GpuPreprocessor.Slice> files(Preprocessor.Config config, Arena arena, List<Path> readable) throws IOException {
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
                    readable.add(p);
                } catch (IOException | RuntimeException e) {
                    spec.commandLine().getErr().println("skipped " + p + ": " + e.getMessage());
                }
            }
            if (out.isEmpty()) throw new CommandLine.ParameterException(spec.commandLine(), "--data " + data + ": no readable .dcm files");
            return out;
        }
    }

    @Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
            description = {"Images/s of EfficientNet-B0 training steps on the engine (forward, BCE with logits, backward, Adam), "
                    + "only the timed steps after --warmup counting: first with the batch already in device memory (random "
                    + "input and labels, seeded), then with --files each batch read from DICOM files and preprocessed as "
                    + "ich train does it (BSB windows, resize to S * 8 / 7, random crop S x S, flip; --workers loader "
                    + "threads) and copied to the device, so the data path is measured too.",
                    "On a GPU it adds the mean GPU utilisation over the timed steps (NVML) and the peak memory; --precision "
                            + "tf32|bf16 and --cuda-graph run the steps as ich train --precision and --cuda-graph do; --profile "
                            + "adds GPU time per kind of op."})
    static final class Train implements Callable<Integer> {
        private static final int LABELS = 6;
        private static final long SEED = 1;
        private static final double LEARNING_RATE = 4e-4;
        private static final Duration SAMPLE_PERIOD = Duration.ofMillis(100);

        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--device", defaultValue = "cpu", paramLabel = "cpu|gpu|gpu:N", description = "where the steps run (default ${DEFAULT-VALUE})")
        String device;

        @Option(names = "--batch", paramLabel = "B", description = "images per step (default 32 on cpu, 256 on a GPU)")
        Integer batch;

        @Option(names = "--size", paramLabel = "S", description = "input S x S (default 96 on cpu, 256 on a GPU)")
        Integer size;

        @Option(names = "--steps", paramLabel = "N", description = "timed steps per row (default 10 on cpu, 50 on a GPU)")
        Integer steps;

        @Option(names = "--warmup", paramLabel = "N", description = "untimed steps before them (default 2 on cpu, 5 on a GPU)")
        Integer warmup;

        @Option(names = "--threads", paramLabel = "T", description = "compute threads of the CPU backend (default: all cores)")
        Integer threads;

        @Option(names = "--workers", paramLabel = "N", description = "loader threads for --files (default: all cores, as ich train)")
        Integer workers;

        @Option(names = "--files", paramLabel = "DIR", description = "also time batches read from the .dcm files under DIR (cycled), e.g. a folder written by ich synth")
        Path files;

        @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|tf32|bf16",
                description = "fp32, or on a GPU tf32 (convolutions and GEMMs on TF32 tensor cores) or bf16 (mixed precision, "
                        + "channels-last), as ich train --precision (default ${DEFAULT-VALUE})")
        String precision;

        @Option(names = "--cuda-graph", description = "on a GPU: each step as a CUDA graph, captured once and replayed, as ich train --cuda-graph")
        boolean cudaGraph;

        @Option(names = "--gpu-preprocess", negatable = true, defaultValue = "true",
                description = "on a GPU with --files: decode on the loader threads and preprocess on the GPU straight into device memory, "
                        + "as ich train does (default); --no-gpu-preprocess preprocesses on the CPU and copies the batches over")
        boolean gpuPreprocess;

        @Option(names = "--profile", description = "on a GPU: then run up to 20 eager steps on the in-memory batch with CUDA events around "
                + "every op and print each kind of op's calls and GPU milliseconds per step, the longest first")
        boolean profile;

        /** Most steps of a --profile run: enough to average over, few enough to stay quick at batch 256. */
        static final int PROFILE_STEPS = 20;

        /** One timed row: images/s, the loss at the first and last timed step, and what the GPU sampler saw. */
        private record Measured(double imagesPerSecond, double millisPerStep, double firstLoss, double lastLoss,
                                UtilisationSampler.Window utilisation, String extra) {}

        /**
         * What every step of a run uses: {@code cuda} is the backend when it is the CUDA one, {@code graphs} too when
         * steps run as CUDA graphs, {@code sampler} NVML's when it started.
         */
        private record Run(Backend backend, CudaBackend cuda, CudaBackend graphs, UtilisationSampler sampler, EfficientNetB0 model,
                           Adam adam) {
            void synchronize() {
                if (cuda != null) cuda.synchronize(); // CPU ops finish before they return; CUDA ones are queued
            }

            UtilisationSampler.Window window() {
                return sampler == null ? null : sampler.window();
            }
        }

        /** A step's input and targets, made inside its context (a loaded batch copied in) or fixed ones. */
        private interface StepInput {
            Tensor[] inputAndTargets(StepContext ctx);
        }

        @Override
        public Integer call() throws IOException {
            int cores = Runtime.getRuntime().availableProcessors();
            int t = threads != null ? threads : cores;
            int w = workers != null ? workers : cores;
            if (t < 1) throw usage("--threads must be positive, got " + t);
            if (w < 1) throw usage("--workers must be positive, got " + w);
            Device d;
            try {
                d = DeviceOptions.resolve(device, precision, t);
            } catch (IllegalArgumentException e) {
                throw usage(e.getMessage());
            }
            boolean onGpu = d instanceof Device.Gpu;
            int b = batch != null ? batch : onGpu ? 256 : 32;
            int s = size != null ? size : onGpu ? 256 : 96;
            int n = steps != null ? steps : onGpu ? 50 : 10;
            int warm = warmup != null ? warmup : onGpu ? 5 : 2;
            if (b < 1 || b > 65_535) throw usage("--batch must be 1 to 65535, got " + b);
            // B0 halves the resolution five times: below 32 x 32 the last stages see less than one pixel.
            if (s < 32 || s > 4096) throw usage("--size must be 32 to 4096, got " + s);
            if (n < 1) throw usage("--steps must be positive, got " + n);
            if (warm < 0) throw usage("--warmup must be 0 or more, got " + warm);
            Device.Precision p = d.precision();
            if (d instanceof Device.Gpu g) {
                d = g.withCudaGraphs(cudaGraph);
            } else {
                if (cudaGraph) throw usage("--cuda-graph needs a GPU (--device gpu)");
                if (profile) throw usage("--profile needs a GPU (--device gpu): it times the ops with CUDA events");
            }
            List<Path> dicoms = files == null ? List.of() : dicomFiles(files);

            PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            Backend backend;
            try {
                backend = d.open();
            } catch (GpuUnavailableException e) {
                err.println("ich bench train: " + d.label() + " is not usable: " + e.getMessage());
                return 1;
            } catch (RuntimeException e) { // the driver refused (out of memory, a busy device, ...)
                err.println("ich bench train: cannot open " + d.label() + ": " + e.getMessage());
                return 1;
            }
            CudaBackend cuda = backend instanceof CudaBackend c ? c : null;
            try (backend; Arena arena = Arena.ofShared();
                 EfficientNetB0 model = EfficientNetB0.initialized(backend, EfficientNetB0.Config.defaults(), SEED)) {
                String name = cuda != null ? cuda.deviceName() + ", " + d.label() : cpuModel() + ", " + backend.name();
                out.printf(Locale.ROOT, "ich bench train: EfficientNet-B0 training steps (forward, BCE, backward, Adam), batch %d x 3 x %d x %d %s, "
                        + "%d timed steps after %d warm-up%n", b, s, s, p, n, warm);
                out.printf("device: %s; %s%n", name, LocalDateTime.now().truncatedTo(ChronoUnit.MINUTES).toString().replace('T', ' '));
                out.printf("%-34s %12s %12s  %s%n", "path", "images/s", "ms/step", "notes");
                out.flush();
                Adam adam = new Adam(backend, arena, Adam.Options.adam(LEARNING_RATE));
                UtilisationSampler sampler = null;
                String noNvml = null;
                if (cuda != null) {
                    try {
                        sampler = UtilisationSampler.start(cuda.ordinal(), SAMPLE_PERIOD);
                    } catch (RuntimeException e) {
                        noNvml = "unavailable: " + e.getMessage();
                    }
                }
                try {
                    Run run = new Run(backend, cuda, cudaGraph ? cuda : null, sampler, model, adam);
                    String how = p + (cuda == null ? "" : cudaGraph ? ", CUDA graphs" : ", eager");
                    long[] step = {0};
                    StepInput fixed = fixedBatch(run, arena, b, s); // the in-memory rows' batch, the profile's too
                    Measured memory = inMemory(run, fixed, b, n, warm, step);
                    row(out, "training, batch in device memory", how, memory);
                    if (profile) {
                        // eager, whatever --cuda-graph says: a graph replays the step as one launch
                        Run eager = new Run(backend, cuda, null, null, model, adam);
                        // One eager step unprofiled first: after graph steps it is the first to draw on the eager step
                        // arena, whose device memory would otherwise be allocated inside the profile.
                        step(eager, step[0]++, b, "memory", fixed);
                        cuda.synchronize();
                        int k = Math.min(n, PROFILE_STEPS);
                        cuda.startProfile();
                        long start = System.nanoTime();
                        double wall;
                        List<CudaBackend.OpTime> ops;
                        try {
                            for (int i = 0; i < k; i++) step(eager, step[0]++, b, "memory", fixed);
                            cuda.synchronize();
                            wall = (System.nanoTime() - start) / 1e6 / k;
                        } finally {
                            ops = cuda.stopProfile();
                        }
                        for (String line : profileTable(ops, k, wall)) out.println(line);
                        out.flush();
                    }
                    Measured fromFiles = null;
                    if (files == null) {
                        out.printf("%-34s %12s %12s  %s%n", "training, batches from files", "-", "-", "not run: no --files DIR");
                    } else {
                        fromFiles = fromFiles(run, dicoms, b, s, n, warm, w, gpuPreprocess, step);
                        row(out, "training, batches from files", how, fromFiles);
                    }
                    if (cuda != null) {
                        String util = noNvml != null ? noNvml
                                : memory.utilisation().gpuText() + " over the in-memory steps" + (fromFiles == null ? ""
                                : ", " + fromFiles.utilisation().gpuText() + " over the file steps")
                                + String.format(Locale.ROOT, " (NVML every %d ms)", SAMPLE_PERIOD.toMillis());
                        out.printf("%-34s %s%n", "GPU utilisation", util);
                        out.printf(Locale.ROOT, "%-34s %.2f GiB held by the backend; %s%n", "peak GPU memory", gib(cuda.peakAllocatedBytes()),
                                sampler != null ? String.format(Locale.ROOT, "%.2f GiB in use on the device (NVML, all processes)", gib(sampler.peakMemoryUsedBytes()))
                                        : "device total " + noNvml);
                    }
                } finally {
                    if (sampler != null) sampler.close();
                }
                out.flush();
                return 0;
            } catch (RuntimeException | InterruptedException e) {
                if (e instanceof InterruptedException) Thread.currentThread().interrupt();
                out.flush();
                err.println("ich bench train: failed on " + d.label() + ": " + e
                        + DeviceOptions.outOfMemoryHint(e, b, d));
                return 1;
            }
        }

        private CommandLine.ParameterException usage(String message) {
            return new CommandLine.ParameterException(spec.commandLine(), message);
        }

        private static double gib(long bytes) {
            return bytes / (double) (1L << 30);
        }

        private static void row(PrintWriter out, String path, String how, Measured m) {
            out.printf(Locale.ROOT, "%-34s %,12.1f %,12.1f  %s; loss %.4f -> %.4f (first -> last timed step)%s%n", path,
                    m.imagesPerSecond(), m.millisPerStep(), how, m.firstLoss(), m.lastLoss(), m.extra());
            out.flush();
        }

        /**
         * Steps on one fixed batch that lives on the device: the engine alone, no input pipeline. As in training,
         * a step's loss is read once the next step is queued.
         */
        private static Measured inMemory(Run run, StepInput fixed, int b, int n, int warm, long[] step) {
            for (int i = 0; i < warm; i++) step(run, step[0]++, b, "memory", fixed).getAsDouble();
            run.synchronize();
            run.window();
            double first = Double.NaN;
            DoubleSupplier queued = null;
            long start = System.nanoTime();
            for (int i = 0; i < n; i++) {
                DoubleSupplier next = step(run, step[0]++, b, "memory", fixed);
                if (queued != null) {
                    double loss = queued.getAsDouble();
                    if (Double.isNaN(first)) first = loss;
                }
                queued = next;
            }
            double last = queued.getAsDouble();
            if (Double.isNaN(first)) first = last;
            run.synchronize();
            double seconds = (System.nanoTime() - start) / 1e9;
            return new Measured((double) b * n / seconds, 1e3 * seconds / n, first, last, run.window(), "");
        }

        /**
         * The --profile table: one line per kind of op, the longest first, with calls and GPU milliseconds per step and
         * the share of all profiled op time; a header that compares that time with the wall time per step (the
         * difference is what the device spent outside the profiled ops, or idle).
         */
        static List<String> profileTable(List<CudaBackend.OpTime> ops, int steps, double wallMillisPerStep) {
            double total = 0;
            for (CudaBackend.OpTime o : ops) total += o.millis();
            List<String> lines = new ArrayList<>();
            lines.add(String.format(Locale.ROOT, "op profile: %d eager steps, CUDA events around each op; %.2f ms/step in the ops below, %.2f ms/step wall",
                    steps, total / steps, wallMillisPerStep));
            lines.add(String.format(Locale.ROOT, "  %-44s %10s %10s %6s", "op", "calls/step", "ms/step", "%"));
            for (CudaBackend.OpTime o : ops) {
                lines.add(String.format(Locale.ROOT, "  %-44s %10.1f %10.3f %6.1f", o.op(), (double) o.calls() / steps, o.millis() / steps,
                        total > 0 ? 100 * o.millis() / total : 0));
            }
            return lines;
        }

        /** A batch of random images and labels that lives on the device, the same every step. */
        private static StepInput fixedBatch(Run run, Arena arena, int b, int s) {
            Backend backend = run.backend();
            SplittableRandom random = new SplittableRandom(SEED);
            Tensor x = backend.allocate(arena, backend.activationStorage(), b, 3, s, s); // the step takes it as it is
            Tensor targets = backend.allocate(arena, b, LABELS);
            try (Arena staging = Arena.ofConfined()) {
                Tensor host = x.isHost() ? x : Tensor.allocate(staging, b, 3, s, s);
                for (long i = 0; i < host.size(); i++) host.set(i, (float) random.nextGaussian());
                if (host != x) backend.copy(host, x);
                backend.copy(Tensor.of(staging, randomLabels(random, b), b, LABELS), targets);
                run.synchronize(); // before the staging memory is freed
            }
            return ctx -> new Tensor[] {x, targets};
        }

        /**
         * Steps on batches read and preprocessed from the files as {@code ich train} feeds them: on a GPU (unless
         * {@code gpuPreprocess} is off) decoded by the loader threads and preprocessed by the GPU kernel into device
         * memory ({@link GpuBatchLoader}), else by {@link BatchLoader} on the CPU and copied over inside the step. The
         * loader prefetches 2 batches, as in training.
         */
        private static Measured fromFiles(Run run, List<Path> dicoms, int b, int s, int n, int warm, int workers,
                                          boolean gpuPreprocess, long[] step) throws InterruptedException {
            Backend backend = run.backend();
            int total = (warm + n) * b;
            List<Preprocessor.Input> inputs = new ArrayList<>(total);
            int[] samples = new int[total];
            for (int i = 0; i < total; i++) {
                inputs.add(new Preprocessor.Input(dicoms.get(i % dicoms.size()), 0, i));
                samples[i] = i;
            }
            SplittableRandom random = new SplittableRandom(SEED + 1);
            BatchLoader.Plan plan = new BatchLoader.Plan(inputs, samples, randomLabels(random, total), LABELS, b, SEED, 0);
            Preprocessor.Config config = Preprocessor.Config.train(Math.max(s, Math.round(s * 8 / 7f)), s);
            boolean onGpu = run.cuda() != null && gpuPreprocess;
            int failed = 0, trained = 0;
            String firstFailure = null;
            double first = Double.NaN, last = Double.NaN;
            long start = 0, waitAtStart = 0;
            UtilisationSampler.Window util = null;
            QueuedStep queued = null;
            boolean queuedTimed = false;
            try (GpuPreprocessor kernel = onGpu ? TrainingDevice.preprocessorFor(run.cuda(), config, b) : null;
                 BatchSource loader = onGpu ? new GpuBatchLoader(kernel, plan, workers, 2, run.cuda()::synchronize)
                         : new BatchLoader(new Preprocessor(config), plan, workers, 2)) {
                // One pass more than there are batches, to read the last step's loss.
                for (int i = 0; i <= warm + n; i++) {
                    if (i == warm) {
                        run.synchronize();
                        run.window();
                        start = System.nanoTime();
                        waitAtStart = loader.waitNanos();
                        if (run.cuda() != null) run.cuda().idleBetweenStepsSeconds(); // the warm-up's gaps do not count
                    }
                    LoadedBatch lb = i < warm + n ? loader.next() : null;
                    QueuedStep next = null;
                    if (lb != null) {
                        try {
                            failed += lb.failures().size();
                            if (firstFailure == null && !lb.failures().isEmpty()) firstFailure = lb.failures().getFirst().message();
                            if (lb.n() > 0) {
                                next = new QueuedStep(lb, step(run, step[0]++, lb.n(), "files", ctx -> {
                                    Tensor x = ctx.output(lb.images().shape());
                                    backend.copy(lb.images(), x);
                                    return new Tensor[] {x, ctx.upload(lb.targets(), lb.n(), LABELS)};
                                }));
                                if (i >= warm) trained += lb.n();
                            }
                        } finally {
                            if (next == null) lb.close();
                        }
                    }
                    // As in training: the step just queued runs while the host reads the one before.
                    if (queued != null) {
                        QueuedStep done = queued;
                        queued = null;
                        double loss = done.finish();
                        if (queuedTimed) {
                            if (Double.isNaN(first)) first = loss;
                            last = loss;
                        }
                    }
                    queued = next;
                    queuedTimed = i >= warm;
                }
                run.synchronize();
                double seconds = (System.nanoTime() - start) / 1e9;
                util = run.window();
                if (trained == 0) {
                    throw new IllegalStateException("no timed batch could be loaded from the files: " + failed + " samples failed, first: " + firstFailure);
                }
                double waited = (loader.waitNanos() - waitAtStart) / 1e9;
                // The host's wait overlaps the step queued before it; only the GPU's idle time says what the wait cost.
                String idle = run.cuda() == null ? "" : String.format(Locale.ROOT, "; the GPU idled between steps %.1f %% of the time",
                        100 * run.cuda().idleBetweenStepsSeconds() / seconds);
                String extra = String.format(Locale.ROOT, "; %d files, %d loader threads, preprocessed on the %s; the step waited for the loader %.0f %% of the time",
                        dicoms.size(), workers, onGpu ? "GPU" : "CPU", 100 * waited / seconds) + idle
                        + (failed == 0 ? "" : "; " + failed + " samples unreadable, left out (first: " + firstFailure + ")");
                return new Measured(trained / seconds, 1e3 * seconds / n, first, last, util, extra);
            } finally {
                if (queued != null) queued.close();
            }
        }

        /**
         * One training step as the trainer runs it (without clipping or a schedule): queued without reading anything
         * back, as a CUDA graph where the run says so; returns its loss, to be read later.
         */
        private static DoubleSupplier step(Run run, long stepNumber, int n, String path, StepInput input) {
            EfficientNetB0 model = run.model();
            List<Parameter> trainable = model.trainableParameters();
            // The trainer's key (steps with the same batch size and trainable set make the same calls), and the path:
            // a batch in device memory is the step's input as it is, a loaded batch is first copied into the step's
            // pool, so the two make different calls and must not share a graph.
            if (run.cuda() != null) run.cuda().markStepBegins(); // the GPU's idle time between steps, as in training
            if (run.graphs() != null) run.graphs().beginStep(List.of(path, n, trainable.size()));
            try (StepContext ctx = StepContext.training(run.backend(), SEED, stepNumber)) {
                Tensor[] xy = input.inputAndTargets(ctx);
                Tensor logits = model.forward(xy[0], ctx);
                EfficientNetB0.Loss loss = model.loss(logits, xy[1], null, ctx);
                model.backward(loss.dLogits(), ctx);
                run.adam().step(trainable);
                if (run.graphs() != null) run.graphs().endStep();
                if (run.cuda() != null) run.cuda().markStepQueued();
                return loss::value;
            } catch (RuntimeException e) {
                if (run.graphs() != null) run.graphs().abandonStep();
                throw e;
            }
        }

        /** 0/1 labels, about one in four positive (the RSNA "any" rate is one in seven; the exact rate does not change the cost). */
        private static float[] randomLabels(SplittableRandom random, int images) {
            float[] labels = new float[images * LABELS];
            for (int i = 0; i < labels.length; i++) labels[i] = random.nextInt(4) == 0 ? 1 : 0;
            return labels;
        }

        private List<Path> dicomFiles(Path dir) throws IOException {
            if (!Files.isDirectory(dir)) throw usage("--files " + dir + " is not a directory");
            List<Path> paths;
            try (var walk = Files.walk(dir)) {
                paths = walk.filter(Files::isRegularFile).filter(p -> p.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".dcm"))
                        .sorted().toList();
            }
            if (paths.isEmpty()) throw usage("--files " + dir + ": no .dcm files under it");
            return paths;
        }

        /** The "model name" of /proc/cpuinfo (Linux), else the architecture. */
        static String cpuModel() {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                    int colon = line.indexOf(':');
                    if (line.startsWith("model name") && colon > 0) return line.substring(colon + 1).trim();
                }
            } catch (IOException | RuntimeException e) {
                // not Linux, or no access: fall through
            }
            return System.getProperty("os.arch") + " CPU (model unknown)";
        }
    }
}
