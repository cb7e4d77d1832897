package ich.train;

import ich.labels.LabelCsv;
import ich.labels.LabelTable;
import ich.metrics.Evaluation;
import ich.metrics.Metrics;
import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.io.Checkpoint;
import ich.nn.io.PretrainedWeights;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import ich.nn.cuda.CudaBackend;
import ich.nn.Device;
import ich.nn.optim.Adam;
import ich.preprocess.Preprocessor;
import ich.split.Split;
import ich.split.SplitCsv;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;

/**
 * {@code ich train}: the seed's training, end to end, on the CPU backend or a GPU ({@link TrainConfig#device()}).
 *
 * <p>Run folder: {@code config.json}, {@code split.csv}, {@code errors.csv} (inputs left out, with reasons),
 * {@code metrics.csv}, {@code curves.png}, {@code last.safetensors} (after every epoch, and when interrupted) and
 * {@code best.safetensors} (the lowest validation loss, as the seed's checkpoint callback).
 *
 * <p>Determinism: the split, initialisation, epoch order, crops, flips, dropout and drop-path all derive from the
 * seed, and the CPU backend's reductions do not depend on thread timing, so a run repeats exactly, and a run
 * interrupted and resumed ends with the same weights as one that was not.
 *
 * <p>Devices: the model, optimizer state and batches live on the backend's device; everything the trainer reads
 * or saves goes through {@link Backend#copy} into host tensors, so a checkpoint is the same file from either device
 * and a run may resume on another one (config.json says which device the run last used).
 */
public final class Trainer {
    public static final String BEST = "best.safetensors";
    public static final String LAST = "last.safetensors";
    public static final String CONFIG = "config.json";
    public static final String SPLIT = "split.csv";
    public static final String ERRORS = "errors.csv";
    /** What a run did. */
    public record Result(int epochs, double bestValLoss, int bestEpoch, boolean interrupted, List<TrainingLog.Epoch> log) {}

    private final TrainConfig config;
    private final PrintStream out;
    private final boolean terminal;
    private volatile boolean stopRequested;
    private long stopAtStep = Long.MAX_VALUE;

    public Trainer(TrainConfig config, PrintStream out, boolean terminal) {
        this.config = config;
        this.out = out;
        this.terminal = terminal;
    }

    /** Asks the run to stop after the current step, saving where it stands (Ctrl-C calls this). */
    public void requestStop() {
        stopRequested = true;
    }

    /** Stops (as Ctrl-C does) once {@code step} training steps are done in all: interruption at a known point, for tests. */
    void stopAtStep(long step) {
        stopAtStep = step;
    }

    /**
     * Trains; with {@code resume}, continues the run in the run folder from {@code last.safetensors}.
     *
     * @throws ich.gpu.GpuUnavailableException when the device is a GPU that cannot be used, saying why; nothing is
     *                                         written then (the run folder is made after the device opens)
     */
    public Result run(boolean resume) throws IOException, InterruptedException {
        TrainConfig c = config;
        Path run = c.runDir();
        Path last = run.resolve(LAST);
        String previousDevice = null;
        if (resume) {
            if (!Files.exists(last)) throw new IllegalArgumentException("nothing to resume: " + last + " does not exist");
            String saved = Files.readString(run.resolve(CONFIG), StandardCharsets.UTF_8);
            if (!TrainConfig.settingsOf(saved).equals(c.settingsJson())) {
                throw new IllegalArgumentException("the options differ from those of the run in " + run + " (" + run.resolve(CONFIG)
                        + "); resume with the same options, or start a new run in another folder");
            }
            previousDevice = TrainConfig.deviceOf(saved);
        } else if (Files.exists(last)) {
            throw new IllegalArgumentException(run + " already holds a run (" + LAST + "); use --resume to continue it or choose another --out");
        }
        try (TrainingDevice device = TrainingDevice.open(c)) {
            return run(resume, device, previousDevice);
        }
    }

    private Result run(boolean resume, TrainingDevice device, String previousDevice) throws IOException, InterruptedException {
        TrainConfig c = config;
        Path run = c.runDir();
        Path last = run.resolve(LAST);
        String configJson = c.toJson();
        Files.createDirectories(run);
        Files.writeString(run.resolve(CONFIG), configJson, StandardCharsets.UTF_8);
        out.println(device.describe());
        if (previousDevice != null && !previousDevice.equals(c.device().label())) {
            out.printf("resuming on %s; the run so far was on %s (checkpoints are the same files on either)%n", c.device().label(), previousDevice);
        }

        LabelTable table = LabelCsv.read(c.labels());
        Path images = Files.isDirectory(c.data().resolve("images")) ? c.data().resolve("images") : c.data();
        TrainingData data = TrainingData.of(table, images, c.workers());
        writeProblems(run.resolve(ERRORS), data.problems());
        if (data.size() < 2) throw new IllegalArgumentException("need at least 2 readable labelled images, found " + data.size() + " under " + images);
        String[] ids = data.images().stream().map(ImageCatalog.Image::imageId).toArray(String[]::new);
        String[] groups = data.groups();
        Split split = c.groupedSplit() ? Split.grouped(data.labelRows(), groups, c.valFraction(), c.seed())
                : Split.stratified(data.labelRows(), c.valFraction(), c.seed());
        SplitCsv.write(run.resolve(SPLIT), ids, groups, split);
        out.printf(Locale.ROOT, "data: %d images (%d train, %d validation, %s split), %d left out (see %s)%n", data.size(),
                split.train().length, split.test().length, c.groupedSplit() ? "grouped by patient" : "stratified", data.problems().size(), ERRORS);

        List<Schedule.Epoch> plan = c.schedule().plan(split.train().length, c.batch());
        Preprocessor trainPre = new Preprocessor(Preprocessor.Config.train(c.resize(), c.crop()));
        Preprocessor valPre = new Preprocessor(Preprocessor.Config.eval(c.resize(), c.crop()));

        CountDownLatch saved = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            requestStop();
            try {
                saved.await(120, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "ich-train-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        Backend backend = device.backend();
        try (EfficientNetB0 model = EfficientNetB0.initialized(backend,
                     EfficientNetB0.Config.defaults().withDropRates(c.dropout(), c.dropPath()), c.seed());
             Arena state = Arena.ofShared()) {
            if (c.pretrained() != null) {
                Map<String, int[]> shapes = new LinkedHashMap<>();
                model.namedParameters().forEach((k, p) -> shapes.put(k, p.value().shape()));
                PretrainedWeights.Result weights = PretrainedWeights.load(c.pretrained(), shapes, state);
                model.load(weights.tensors());
                out.print(weights.report());
            }
            if (c.priorHead() && !resume) initHeadAtPrior(model, data, split.train(), state);
            Tensor labelWeights = c.labelWeights() == null ? null : upload(backend, state, c.labelWeights());
            Optimizer optimizer = newOptimizer(backend, c);
            TrainingLog log = new TrainingLog();
            boolean chartProblemShown = false;
            int startEpoch = 0, startStep = 0;
            long globalStep = 0;
            double bestValLoss = Double.POSITIVE_INFINITY, lossSum = 0;
            int bestEpoch = -1, lossImages = 0;
            if (resume) {
                Checkpoint.TrainingState s;
                try (Arena host = Arena.ofConfined()) { // the file's tensors, freed once copied into the model and optimizer
                    Checkpoint.Contents ck = Checkpoint.read(last, host);
                    var report = model.load(ck.model());
                    if (!report.exact()) throw new IllegalStateException(last + ": the weights do not fit the model: " + report.describe());
                    restore(optimizer.adam(), ck.optimizer(), ck.state());
                    s = ck.state();
                }
                startEpoch = s.epoch();
                globalStep = s.step();
                Map<String, String> x = s.extra();
                startStep = Integer.parseInt(x.getOrDefault("epoch_step", "0"));
                lossSum = Double.parseDouble(x.getOrDefault("epoch_loss_sum", "0"));
                lossImages = Integer.parseInt(x.getOrDefault("epoch_images", "0"));
                bestValLoss = Double.parseDouble(x.getOrDefault("best_val_loss", "Infinity"));
                bestEpoch = Integer.parseInt(x.getOrDefault("best_epoch", "-1"));
                for (TrainingLog.Epoch e : TrainingLog.read(run)) if (e.epoch() < startEpoch) log.add(e);
                out.printf(Locale.ROOT, "resuming at epoch %d, step %d of it (%d steps done in all)%n", startEpoch + 1, startStep, globalStep);
            }

            boolean interrupted = false;
            for (int e = startEpoch; e < plan.size() && !interrupted; e++) {
                Schedule.Epoch epoch = plan.get(e);
                if (epoch.frozenBackbone()) model.freezeBackbone();
                else model.unfreezeAll();
                if (e == c.schedule().headEpochs() && e > 0 && startStep == 0) {
                    // The seed compiles a new Adam for the second phase: fresh moments, bias correction from step 1.
                    // (Resumed in the middle of that epoch, the checkpoint already holds the new optimizer's state.)
                    optimizer.close();
                    optimizer = newOptimizer(backend, c);
                    // The head-only steps do not come again: their CUDA graphs' memory goes to the whole network's.
                    if (backend instanceof CudaBackend cuda) cuda.releaseStepGraphs();
                }
                int[] rows = Schedule.rows(split.train(), epoch, c.batch(), c.seed());
                long epochStart = System.nanoTime();
                device.gpuPercentSinceLast(); // starts the epoch's window
                ProgressBar bar = new ProgressBar(out, String.format(Locale.ROOT, "epoch %d/%d %s", e + 1, plan.size(), epoch.phase()),
                        epoch.steps(), terminal, device.isGpu());
                long wait = 0;
                int step = startStep;
                int[] remaining = java.util.Arrays.copyOfRange(rows, Math.min(rows.length, startStep * c.batch()), rows.length);
                if (remaining.length > 0) {
                    try (BatchSource loader = device.loader(true, trainPre, data.plan(remaining, c.batch(), c.seed(), e), c.workers())) {
                        QueuedStep queued = null; // the step before the newest: its loss is read once the newest is queued
                        try {
                            boolean more = true;
                            while (more) {
                                more = loader.hasNext() && !interrupted;
                                LoadedBatch batch = more ? loader.next() : null;
                                QueuedStep next = null;
                                if (batch != null) {
                                    try {
                                        if (batch.n() > 0) {
                                            double lr = epoch.lr((int) globalStep, c.schedule().cosine());
                                            device.stepBegins();
                                            next = new QueuedStep(batch, queueStep(model, optimizer.adam(), batch, labelWeights, lr, globalStep));
                                            device.stepQueued();
                                        }
                                    } finally {
                                        if (next == null) batch.close();
                                    }
                                    step++;
                                    globalStep++;
                                }
                                QueuedStep previous = queued;
                                queued = next; // closed by the finally below if reading a loss fails
                                if (previous != null) { // the device runs the step just queued meanwhile
                                    lossSum += previous.finish() * previous.batch().n();
                                    lossImages += previous.batch().n();
                                }
                                if (queued != null && !loader.hasNext()) {
                                    // the epoch's last step has nothing to queue behind it: its loss at once, for the bar
                                    QueuedStep lastStep = queued;
                                    queued = null;
                                    lossSum += lastStep.finish() * lastStep.batch().n();
                                    lossImages += lastStep.batch().n();
                                }
                                if (batch != null) {
                                    if (lossImages == 0) bar.update(step, batch.n(), device.latestGpuPercent());
                                    else bar.update(step, batch.n(), lossSum / lossImages, device.latestGpuPercent());
                                    if (globalStep >= stopAtStep) stopRequested = true;
                                    if (stopRequested && loader.hasNext()) interrupted = true;
                                }
                            }
                        } finally {
                            if (queued != null) queued.close();
                        }
                        wait = loader.waitNanos();
                    }
                }
                if (interrupted) {
                    save(last, model, optimizer.adam(), e, globalStep, step, lossSum, lossImages, bestValLoss, bestEpoch, epoch.lr((int) globalStep, c.schedule().cosine()), configJson);
                    out.printf("interrupted: saved %s at epoch %d, step %d; continue with --resume%n", last, e + 1, step);
                    break;
                }
                double gpuPercent = device.gpuPercentSinceLast();
                double gpuIdle = device.gpuIdleBetweenStepsSeconds();
                double trainLoss = lossImages == 0 ? Double.NaN : lossSum / lossImages;
                int trainedImages = lossImages;
                Validation v = validate(model, device, valPre, data, split.test(), labelWeights);
                long peak = device.peakDeviceBytes();
                boolean best = v.loss() < bestValLoss;
                if (best) {
                    bestValLoss = v.loss();
                    bestEpoch = e;
                }
                double seconds = (System.nanoTime() - epochStart) / 1e9;
                log.add(new TrainingLog.Epoch(e, epoch.phase(), epoch.lr((int) globalStep - 1, c.schedule().cosine()), step, trainedImages,
                        trainLoss, v.loss(), v.metrics().weightedLogLoss(), v.metrics().auc(), v.metrics().accuracy(), seconds,
                        trainedImages / Math.max(1e-9, seconds - v.seconds()), wait / 1e9, best, gpuPercent,
                        peak < 0 ? Double.NaN : peak / (double) (1 << 20)));
                startStep = 0;
                lossSum = 0;
                lossImages = 0;
                save(last, model, optimizer.adam(), e + 1, globalStep, 0, 0, 0, bestValLoss, bestEpoch,
                        e + 1 < plan.size() ? plan.get(e + 1).baseLr() : epoch.baseLr(), configJson);
                if (best) Files.copy(last, run.resolve(BEST), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                String chartProblem = log.write(run);
                if (chartProblem != null && !chartProblemShown) {
                    out.println("warning: " + chartProblem);
                    chartProblemShown = true;
                }
                out.printf(Locale.ROOT, "epoch %d/%d: train loss %.4f, val loss %.4f, weighted log loss %.4f, AUC any %.3f; waited %.1f s for data%s%s%n",
                        e + 1, plan.size(), trainLoss, v.loss(), v.metrics().weightedLogLoss(), v.metrics().auc()[0], wait / 1e9,
                        deviceFigures(device.isGpu(), gpuPercent, gpuIdle, peak), best ? " (best)" : "");
                if (stopRequested && e + 1 < plan.size()) {
                    interrupted = true;
                    out.printf("interrupted after epoch %d; continue with --resume%n", e + 1);
                }
            }
            optimizer.close();
            return new Result(log.epochs().size(), bestValLoss, bestEpoch, interrupted, log.epochs());
        } finally {
            saved.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running: the JVM is exiting after the save
            }
        }
    }

    /**
     * Queues one training step (forward, loss, backward, update) without waiting for it, and returns its loss to
     * be read later: on a GPU nothing is read back, so the caller can queue the next step first.
     */
    private DoubleSupplier queueStep(EfficientNetB0 model, Adam adam, LoadedBatch batch, Tensor labelWeights, double lr, long globalStep) {
        Backend backend = model.backend();
        List<Parameter> trainable = model.trainableParameters();
        CudaBackend graphs = backend instanceof CudaBackend cuda && config.device() instanceof Device.Gpu g && g.cudaGraphs()
                && config.clipNorm() == 0 ? cuda : null;
        // Steps of one key make the same calls with the same shapes: the batch size and the trainable set decide them.
        if (graphs != null) graphs.beginStep(List.of(batch.n(), trainable.size()));
        try (StepContext ctx = StepContext.training(backend, config.seed(), globalStep)) {
            Tensor x = input(backend, batch, ctx);
            Tensor targets = ctx.upload(batch.targets(), batch.n(), TrainingData.LABELS);
            Tensor logits = model.forward(x, ctx);
            EfficientNetB0.Loss loss = model.loss(logits, targets, labelWeights, ctx);
            model.backward(loss.dLogits(), ctx);
            if (config.clipNorm() > 0) Adam.clipGradNorm(backend, trainable, config.clipNorm());
            adam.setLearningRate(lr);
            adam.step(trainable);
            if (graphs != null) graphs.endStep();
            return loss::value;
        } catch (RuntimeException e) {
            if (graphs != null) graphs.abandonStep();
            throw e;
        }
    }

    /** Validation loss (plain mean BCE, as the seed's checkpoint monitors) and the competition's metrics. */
    record Validation(double loss, Evaluation metrics, double seconds) {}

    Validation validate(EfficientNetB0 model, TrainingDevice device, Preprocessor pre, TrainingData data, int[] rows, Tensor labelWeights)
            throws InterruptedException {
        long start = System.nanoTime();
        float[] probabilities = new float[rows.length * TrainingData.LABELS];
        float[] labels = new float[rows.length * TrainingData.LABELS];
        double lossSum = 0;
        int n = 0;
        Backend backend = model.backend();
        try (BatchSource loader = device.loader(false, pre, data.plan(rows, config.batch(), config.seed(), 0), config.workers());
             Arena host = Arena.ofConfined()) {
            while (loader.hasNext()) {
                try (LoadedBatch batch = loader.next(); StepContext ctx = StepContext.eval(backend)) {
                    if (batch.n() == 0) continue;
                    Tensor x = input(backend, batch, ctx);
                    Tensor targets = ctx.upload(batch.targets(), batch.n(), TrainingData.LABELS);
                    Tensor logits = model.forward(x, ctx);
                    java.util.function.DoubleSupplier batchLoss = backend.bceWithLogitsLater(logits, targets, null, null);
                    Tensor p = ctx.allocate(logits.shape());
                    backend.sigmoid(logits, p);
                    // Read through a host tensor of its own: on a GPU the step arena's tensors are device memory.
                    Tensor probabilitiesOnHost = Tensor.allocate(host, logits.shape());
                    backend.copy(p, probabilitiesOnHost);
                    float[] pv = probabilitiesOnHost.toArray();
                    lossSum += batchLoss.getAsDouble() * batch.n();
                    batch.releaseImages();
                    System.arraycopy(pv, 0, probabilities, n * TrainingData.LABELS, pv.length);
                    System.arraycopy(batch.targets(), 0, labels, n * TrainingData.LABELS, batch.targets().length);
                    n += batch.n();
                }
            }
        }
        probabilities = java.util.Arrays.copyOf(probabilities, n * TrainingData.LABELS);
        labels = java.util.Arrays.copyOf(labels, n * TrainingData.LABELS);
        return new Validation(n == 0 ? Double.NaN : lossSum / n, Metrics.evaluate(probabilities, labels, n),
                (System.nanoTime() - start) / 1e9);
    }

    /**
     * The step's input on the backend's device: a copy of the batch's images (host to device, or device to device
     * from a GPU loader). The caller releases a GPU loader's images once that copy has run: a training step after
     * reading its loss ({@link QueuedStep#finish}), so the release costs no wait of its own, and the loader may
     * preprocess the batch after next meanwhile.
     */
    private static Tensor input(Backend backend, LoadedBatch batch, StepContext ctx) {
        Tensor x = ctx.output(batch.images().shape());
        backend.copy(batch.images(), x);
        return x;
    }

    /** "; GPU 93 %, idle 0.4 s between steps, peak 11.2 GiB" on a GPU ("unknown" where NVML gave nothing), nothing on the CPU. */
    static String deviceFigures(boolean gpu, double gpuPercent, double gpuIdleSeconds, long peakBytes) {
        if (!gpu) return "";
        return String.format(Locale.ROOT, "; GPU %s, idle %.1f s between steps, peak %.2f GiB of device memory",
                Double.isNaN(gpuPercent) ? "% unknown" : String.format(Locale.ROOT, "%.0f %%", gpuPercent), gpuIdleSeconds,
                peakBytes / (double) (1L << 30));
    }

    /** A fresh optimizer whose state lives in its own arena (closing the arena frees it). */
    private record Optimizer(Adam adam, Arena arena) implements AutoCloseable {
        @Override
        public void close() {
            arena.close();
        }
    }

    private static Optimizer newOptimizer(Backend backend, TrainConfig c) {
        Arena arena = Arena.ofShared();
        return new Optimizer(new Adam(backend, arena, new Adam.Options(c.schedule().headLr(), 0.9, 0.999, c.adamEps(),
                c.weightDecay(), c.adamw())), arena);
    }

    private static final String STEP_COUNTS = "adam_step_counts";

    /** Adam's moments under {@code adam.<parameter>.exp_avg|exp_avg_sq}, its step counts in the metadata. */
    private static Map<String, Tensor> optimizerTensors(Adam adam) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        adam.moments().forEach((k, v) -> out.put("adam." + k, v));
        return out;
    }

    private static String stepCounts(Adam adam) {
        StringBuilder sb = new StringBuilder();
        adam.stepCounts().forEach((k, v) -> sb.append(sb.isEmpty() ? "" : ";").append(k).append('=').append(v));
        return sb.toString();
    }

    private static void restore(Adam adam, Map<String, Tensor> tensors, Checkpoint.TrainingState state) {
        String counts = state.extra().getOrDefault(STEP_COUNTS, "");
        for (String entry : counts.isEmpty() ? new String[0] : counts.split(";")) {
            int eq = entry.lastIndexOf('=');
            String name = entry.substring(0, eq);
            Tensor m = tensors.get("adam." + name + ".exp_avg"), v = tensors.get("adam." + name + ".exp_avg_sq");
            if (m == null || v == null) throw new IllegalStateException("checkpoint lacks the Adam moments of " + name);
            adam.restore(name, m, v, Long.parseLong(entry.substring(eq + 1)));
        }
        adam.restoreSteps(state.optimizerStep());
    }

    /** See {@link TrainConfig#priorHead()}. Prevalences are clipped to [0.01, 0.99] so no bias is extreme. */
    static void initHeadAtPrior(EfficientNetB0 model, TrainingData data, int[] trainRows, Arena arena) {
        Backend backend = model.backend();
        Parameter w = model.namedParameters().get("classifier.weight"), b = model.namedParameters().get("classifier.bias");
        backend.scale(w.value(), 0.1f);
        float[] bias = new float[TrainingData.LABELS];
        for (int k = 0; k < bias.length; k++) {
            int positives = 0;
            for (int row : trainRows) positives += data.labels()[row * TrainingData.LABELS + k];
            double p = Math.min(0.99, Math.max(0.01, positives / (double) trainRows.length));
            bias[k] = (float) Math.log(p / (1 - p));
        }
        backend.copy(Tensor.of(arena, bias, bias.length), b.value());
    }

    private static Tensor upload(Backend backend, Arena arena, double[] values) {
        float[] f = new float[values.length];
        for (int i = 0; i < f.length; i++) f[i] = (float) values[i];
        Tensor host = Tensor.of(arena, f, f.length);
        Tensor t = backend.allocate(arena, f.length);
        backend.copy(host, t);
        return t;
    }

    private void save(Path file, EfficientNetB0 model, Adam adam, int epochsDone, long globalStep, int epochStep,
                             double lossSum, int lossImages, double bestValLoss, int bestEpoch, double lr, String configJson) throws IOException {
        Map<String, String> extra = new LinkedHashMap<>();
        extra.put("epoch_step", Integer.toString(epochStep));
        extra.put("epoch_loss_sum", Double.toString(lossSum));
        extra.put("epoch_images", Integer.toString(lossImages));
        extra.put("best_val_loss", Double.toString(bestValLoss));
        extra.put("best_epoch", Integer.toString(bestEpoch));
        extra.put(STEP_COUNTS, stepCounts(adam));
        // Saved from host copies, so the file is the same whichever device trained (and CPU tensors are read as is).
        Backend backend = model.backend();
        try (Arena host = Arena.ofConfined()) {
            Map<String, Tensor> weights = new LinkedHashMap<>();
            for (Parameter p : model.namedParameters().values()) weights.put(p.name(), onHost(backend, p.value(), host));
            Map<String, Tensor> optimizer = new LinkedHashMap<>();
            optimizerTensors(adam).forEach((k, t) -> optimizer.put(k, onHost(backend, t, host)));
            Checkpoint.write(file, weights, optimizer, new Checkpoint.TrainingState(epochsDone, globalStep, adam.steps(), lr,
                    config.seed(), "", configJson, extra));
        }
    }

    /** {@code t} itself when it is on the host, else a host copy in {@code arena}. */
    static Tensor onHost(Backend backend, Tensor t, Arena arena) {
        if (t.isHost()) return t;
        Tensor copy = Tensor.allocate(arena, t.shape());
        backend.copy(t, copy);
        return copy;
    }

    private static void writeProblems(Path file, List<TrainingData.Problem> problems) throws IOException {
        List<String> rows = new ArrayList<>();
        for (TrainingData.Problem p : problems) {
            rows.add(ich.io.Csv.cell(p.imageId()) + "," + ich.io.Csv.cell(p.file() == null ? "" : p.file().toString()) + ","
                    + ich.io.Csv.cell(p.reason()));
        }
        ich.io.Csv.write(file, "image,file,reason", rows);
    }
}
