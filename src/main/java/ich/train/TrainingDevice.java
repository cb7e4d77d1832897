package ich.train;

import ich.gpu.Closing;
import ich.gpu.GpuPreprocessor;
import ich.gpu.UtilisationSampler;
import ich.nn.Backend;
import ich.nn.Storage;
import ich.nn.cuda.CudaBackend;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Where a run computes: the backend of its {@link TrainConfig#device()}, and on a GPU the preprocessing kernel (one
 * preprocessor for training batches, one for validation, on the backend's context) and the NVML utilisation
 * sampler. Opened before the run folder is made, so a missing GPU leaves nothing behind.
 */
public final class TrainingDevice implements AutoCloseable {
    /** NVML's own period is 1/6 s to 1 s; sampling faster only repeats values, slower blurs the epoch's edges. */
    static final Duration SAMPLE_PERIOD = Duration.ofMillis(100);

    private final Backend backend;
    private final CudaBackend cuda;
    private final GpuPreprocessor trainKernel, evalKernel;
    private final UtilisationSampler sampler;
    private final String samplerProblem;

    private TrainingDevice(Backend backend, CudaBackend cuda, GpuPreprocessor trainKernel, GpuPreprocessor evalKernel,
                           UtilisationSampler sampler, String samplerProblem) {
        this.backend = backend;
        this.cuda = cuda;
        this.trainKernel = trainKernel;
        this.evalKernel = evalKernel;
        this.sampler = sampler;
        this.samplerProblem = samplerProblem;
    }

    /**
     * Opens the device of {@code c}.
     *
     * @throws ich.gpu.GpuUnavailableException when the GPU, its libraries or the kernels are missing, saying which
     * @throws ich.gpu.CudaException           when the driver refuses (out of memory, ...)
     */
    static TrainingDevice open(TrainConfig c) {
        Backend backend = c.device().open();
        if (!(backend instanceof CudaBackend cuda)) return new TrainingDevice(backend, null, null, null, null, null);
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            GpuPreprocessor train = null, eval = null;
            if (c.gpuPreprocess()) {
                train = preprocessorFor(cuda, Preprocessor.Config.train(c.resize(), c.crop()), c.batch());
                opened.add(train);
                eval = preprocessorFor(cuda, Preprocessor.Config.eval(c.resize(), c.crop()), c.batch());
                opened.add(eval);
            }
            UtilisationSampler sampler = null;
            String problem = null;
            try {
                sampler = UtilisationSampler.start(cuda.ordinal(), SAMPLE_PERIOD);
            } catch (RuntimeException e) {
                problem = e.getMessage(); // training does not need NVML; the figures say "unknown"
            }
            return new TrainingDevice(backend, cuda, train, eval, sampler, problem);
        } catch (RuntimeException | Error e) {
            for (int i = opened.size() - 1; i >= 0; i--) {
                try {
                    opened.get(i).close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            backend.close();
            throw e;
        }
    }

    Backend backend() {
        return backend;
    }

    /** Whether the backend's tensors live on a GPU (the progress bar and the log then show its figures). */
    boolean isGpu() {
        return cuda != null;
    }

    /**
     * The GPU preprocessing of {@code config} for batches of up to {@code batch} slices, writing them in the backend's
     * activation storage (fp32 NCHW, or bf16 NHWC in mixed precision), so the step takes them without a conversion.
     */
    public static GpuPreprocessor preprocessorFor(CudaBackend cuda, Preprocessor.Config config, int batch) {
        boolean bf16 = cuda.activationStorage().equals(Storage.BF16_NHWC);
        return GpuPreprocessor.open(cuda.context(), config.withLayout(bf16 ? SliceKernel.Layout.NHWC : SliceKernel.Layout.NCHW),
                bf16 ? GpuPreprocessor.Precision.BF16 : GpuPreprocessor.Precision.FP32, batch);
    }

    /** One line for the log: the device, and where the batches are preprocessed. */
    String describe() {
        if (cuda == null) return "device: " + backend.name();
        return String.format(Locale.ROOT, "device: gpu:%d, %s (%s); batches preprocessed on the %s%s", cuda.ordinal(), cuda.deviceName(),
                backend.name(), trainKernel != null ? "GPU" : "CPU and copied to the GPU",
                sampler == null ? "; GPU utilisation unknown: " + samplerProblem : "");
    }

    /**
     * The loader of one pass over {@code plan}: the GPU's when GPU preprocessing is on, the CPU's otherwise
     * ({@code cpu} is its preprocessor). Both hand out the same batches.
     */
    BatchSource loader(boolean training, Preprocessor cpu, BatchLoader.Plan plan, int workers) {
        GpuPreprocessor kernel = training ? trainKernel : evalKernel;
        if (kernel == null) return new BatchLoader(cpu, plan, workers, 2);
        // Release waits for the backend's stream: the step's copy of the batch must be done before the kernel
        // writes the next batch but one into the same slot. (A training step, released once its loss is read,
        // skips that wait: the loss comes after the copy.)
        return new GpuBatchLoader(kernel, plan, workers, 2, cuda::synchronize);
    }

    /** The last NVML sample in percent; -1 when unknown (not a GPU, no NVML, or the sample failed). */
    int latestGpuPercent() {
        return sampler == null ? -1 : sampler.latestGpuPercent();
    }

    /** Mean GPU utilisation since the previous call, NaN when not measured (CPU, no NVML or no sample). */
    double gpuPercentSinceLast() {
        if (sampler == null) return Double.NaN;
        UtilisationSampler.Window w = sampler.window();
        return w.samples() == 0 ? Double.NaN : w.meanGpuPercent();
    }

    /** Before a training step's first op: the GPU's idle time since the step before counts (nothing on the CPU). */
    void stepBegins() {
        if (cuda != null) cuda.markStepBegins();
    }

    /** After a training step's last op is queued. */
    void stepQueued() {
        if (cuda != null) cuda.markStepQueued();
    }

    /**
     * Seconds the GPU sat idle between the training steps since the previous call (waiting for data, or for the
     * host); NaN on the CPU, where the host's wait for its loader is the whole story.
     */
    double gpuIdleBetweenStepsSeconds() {
        return cuda == null ? Double.NaN : cuda.idleBetweenStepsSeconds();
    }

    /** The most device memory the backend held so far, -1 on the CPU. */
    long peakDeviceBytes() {
        return cuda == null ? -1 : cuda.peakAllocatedBytes();
    }

    /** Closes the sampler, the preprocessors and then the backend (whose context they use). */
    @Override
    public void close() {
        Closing.closeAll(Arrays.asList(sampler, evalKernel, trainKernel, backend));
    }
}
