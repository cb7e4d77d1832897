package ich.cli;

import ich.gpu.CudaException;
import ich.gpu.GpuUnavailableException;
import ich.nn.Device;
import ich.train.Schedule;
import ich.train.TrainConfig;
import ich.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Trains EfficientNet-B0 on labelled DICOM slices, as the seed does: one epoch of the head with the "
                + "backbone frozen, then the whole network. Writes best.safetensors, last.safetensors, metrics.csv, "
                + "curves.png, split.csv, errors.csv and config.json into the run folder.",
                "Ctrl-C saves where the run stands; --resume continues it with the same random stream."})
final class TrainCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--data", required = true, paramLabel = "DIR", description = "DICOM files (DIR/images when it exists), searched recursively.")
    Path data;

    @Option(names = "--labels", paramLabel = "CSV", description = "Labels in stage_1_train.csv format (default: DIR/stage_1_train.csv).")
    Path labels;

    @Option(names = "--out", required = true, paramLabel = "RUN_DIR", description = "Run folder (created).")
    Path out;

    @Option(names = "--resume", description = "Continue the run in RUN_DIR from last.safetensors.")
    boolean resume;

    @Option(names = "--epochs", defaultValue = "10", paramLabel = "N", description = "Epochs of the whole network after the head epochs (default ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--head-epochs", defaultValue = "1", paramLabel = "N", description = "Epochs with the backbone frozen (default ${DEFAULT-VALUE}).")
    int headEpochs;

    @Option(names = "--lr", defaultValue = "4e-4", paramLabel = "LR", description = "Learning rate of the whole network (default ${DEFAULT-VALUE}).")
    double lr;

    @Option(names = "--head-lr", defaultValue = "1e-4", paramLabel = "LR", description = "Learning rate of the head epochs (default ${DEFAULT-VALUE}).")
    double headLr;

    @Option(names = "--epoch-fraction", defaultValue = "6", paramLabel = "F",
            description = "Each whole-network epoch takes training images / F / batch steps, as the seed's steps_per_epoch (default ${DEFAULT-VALUE}; 1 = every image).")
    int epochFraction;

    @Option(names = "--cosine", description = "Cosine learning-rate decay within each phase (the seed: constant).")
    boolean cosine;

    @Option(names = "--batch", defaultValue = "32", paramLabel = "B", description = "Images per step (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--image-size", defaultValue = "224", paramLabel = "S", description = "Model input size, the crop (default ${DEFAULT-VALUE}).")
    int imageSize;

    @Option(names = "--resize", paramLabel = "R", description = "Resize before the crop (default: image size * 8/7, e.g. 256 for 224).")
    Integer resize;

    @Option(names = "--split", defaultValue = "grouped", paramLabel = "KIND",
            description = "grouped (by patient, stratified by label) or stratified (the seed's, ungrouped) (default ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--val-fraction", defaultValue = "0.1", paramLabel = "F", description = "Share held out for validation (default ${DEFAULT-VALUE}).")
    double valFraction;

    @Option(names = "--pretrained", paramLabel = "FILE", description = "timm efficientnet_b0 ImageNet weights (safetensors); the classifier is skipped.")
    Path pretrained;

    @Option(names = "--adamw", description = "AdamW (decoupled weight decay) instead of Adam.")
    boolean adamw;

    @Option(names = "--weight-decay", defaultValue = "0", paramLabel = "WD", description = "Weight decay (default ${DEFAULT-VALUE}).")
    double weightDecay;

    @Option(names = "--clip-norm", defaultValue = "0", paramLabel = "N", description = "Clip the global gradient norm (default ${DEFAULT-VALUE}: off).")
    double clipNorm;

    @Option(names = "--label-weights", paramLabel = "W,W,W,W,W,W", split = ",",
            description = "Loss weight per subtype (any, epidural, intraparenchymal, intraventricular, subarachnoid, subdural); e.g. 2,1,1,1,1,1 trains on the competition's metric.")
    double[] labelWeights;

    @Option(names = "--dropout", defaultValue = "0.125", paramLabel = "P", description = "Dropout before the classifier (default ${DEFAULT-VALUE}, the seed's).")
    double dropout;

    @Option(names = "--drop-path", defaultValue = "0.2", paramLabel = "P", description = "Stochastic-depth rate (default ${DEFAULT-VALUE}, timm's).")
    double dropPath;

    @Option(names = "--head-init", defaultValue = "prior", paramLabel = "KIND",
            description = "prior: classifier bias at the training prevalence, weights timm's x 0.1 (default); timm: timm's initialisation as is.")
    String headInit;

    @Option(names = "--workers", paramLabel = "N", description = "Loader threads (default: all cores).")
    Integer workers;

    @Option(names = "--threads", paramLabel = "N", description = "Compute threads of the CPU backend (default: all cores).")
    Integer threads;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEV",
            description = "cpu, gpu (the first GPU) or gpu:N (default ${DEFAULT-VALUE}). Checkpoints are the same files on either; --resume may change it.")
    String device;

    @Option(names = "--tf32", description = "With --device gpu: let convolutions and GEMMs use TF32 tensor cores (faster; ~1e-3 relative instead of fp32's ~1e-6). Same as --precision tf32.")
    boolean tf32;

    @Option(names = "--precision", paramLabel = "P",
            description = "With --device gpu: fp32 (default; matches the CPU), tf32, or bf16: mixed precision with bf16 channels-last "
                    + "activations on tensor cores and fp32 weights, optimizer state and batch-norm statistics (~1e-2 relative).")
    String precision;

    @Option(names = "--cuda-graph", description = "With --device gpu: run each training step as a CUDA graph, captured once per batch shape and "
            + "replayed (cuts the host's launch cost; not with --clip-norm, which reads the gradient norm mid-step).")
    boolean cudaGraph;

    @Option(names = "--reproducible", description = "With --device gpu: choose convolution algorithms without timing them (cuDNN's heuristics, "
            + "our depthwise kernels), so two runs on the same GPU and software give the same numbers; the timed choice may be faster.")
    boolean reproducible;

    @Option(names = "--gpu-preprocess", negatable = true,
            description = "With --device gpu: decode on the loader threads and preprocess on the GPU, straight into device memory "
                    + "(default on for a GPU; --no-gpu-preprocess copies the CPU loader's batches to the GPU instead).")
    Boolean gpuPreprocess;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Seed of everything random (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        TrainConfig config = config(err);
        if (config == null) return 2;
        Trainer trainer = new Trainer(config, System.out, System.console() != null);
        try {
            Trainer.Result r = trainer.run(resume);
            if (r.bestEpoch() >= 0) {
                System.out.printf(Locale.ROOT, "best validation loss %.4f at epoch %d: %s%n", r.bestValLoss(), r.bestEpoch() + 1,
                        out.resolve(Trainer.BEST));
            }
            System.out.println("run folder: " + out + " (metrics.csv, curves.png, split.csv, errors.csv, config.json)");
            return r.interrupted() ? 130 : 0;
        } catch (IllegalArgumentException e) {
            err.println("ich train: " + e.getMessage());
            return 2;
        } catch (GpuUnavailableException e) {
            // The device opens before the run folder is made: nothing was written.
            err.println("ich train: cannot train on " + config.device().label() + ": " + e.getMessage());
            return 1;
        } catch (CudaException e) {
            err.println("ich train: CUDA error on " + config.device().label() + ": " + e.getMessage()
                    + DeviceOptions.outOfMemoryHint(e, config.batch(), config.device()));
            return 1;
        }
    }

    /** The run's configuration from the options, or null after saying on {@code err} what is wrong. */
    TrainConfig config(PrintWriter err) {
        int cores = Runtime.getRuntime().availableProcessors();
        if (!split.equals("grouped") && !split.equals("stratified")) {
            err.println("ich train: --split must be grouped or stratified, not " + split);
            return null;
        }
        if (!headInit.equals("prior") && !headInit.equals("timm")) {
            err.println("ich train: --head-init must be prior or timm, not " + headInit);
            return null;
        }
        // --tf32 is --precision tf32; with another --precision it contradicts it.
        if (tf32 && precision != null && !precision.trim().equalsIgnoreCase("tf32")) {
            err.println("ich train: --tf32 and --precision " + precision + " contradict each other");
            return null;
        }
        Device where;
        try {
            where = DeviceOptions.resolve(device, tf32 ? "tf32" : precision, tf32 && precision == null ? "--tf32" : null,
                    threads != null ? threads : cores);
        } catch (IllegalArgumentException e) {
            err.println("ich train: " + e.getMessage());
            return null;
        }
        if (cudaGraph) {
            if (clipNorm > 0) {
                err.println("ich train: --cuda-graph cannot be used with --clip-norm (clipping reads the gradient norm back mid-step)");
                return null;
            }
            if (!(where instanceof Device.Gpu gpu)) {
                err.println("ich train: --cuda-graph needs --device gpu (the device is " + where.label() + ")");
                return null;
            }
            where = gpu.withCudaGraphs(true);
        }
        if (reproducible) {
            if (!(where instanceof Device.Gpu gpu)) {
                err.println("ich train: --reproducible needs --device gpu (the device is " + where.label() + "; the CPU always computes the same numbers)");
                return null;
            }
            where = gpu.withReproducible(true);
        }
        if (Boolean.TRUE.equals(gpuPreprocess) && !(where instanceof Device.Gpu)) {
            err.println("ich train: --gpu-preprocess needs --device gpu (the device is " + where.label() + ")");
            return null;
        }
        Path labelFile = labels != null ? labels : data.resolve("stage_1_train.csv");
        if (!Files.isRegularFile(labelFile)) {
            err.println("ich train: no label file " + labelFile + (labels == null ? " (give one with --labels)" : ""));
            return null;
        }
        if (!Files.isDirectory(data)) {
            err.println("ich train: no data folder " + data);
            return null;
        }
        try {
            return new TrainConfig(data.toAbsolutePath().normalize(), labelFile.toAbsolutePath().normalize(), out,
                    new Schedule(headEpochs, headLr, epochs, lr, epochFraction, cosine), batch,
                    resize != null ? resize : Math.round(imageSize * 8f / 7f), imageSize, split.equals("grouped"), valFraction,
                    pretrained, adamw, weightDecay, 1e-7, clipNorm, labelWeights, dropout, dropPath,
                    workers != null ? workers : cores, threads != null ? threads : cores, seed, !headInit.equals("timm"),
                    where, gpuPreprocess != null ? gpuPreprocess : where instanceof Device.Gpu);
        } catch (IllegalArgumentException e) {
            err.println("ich train: " + e.getMessage());
            return null;
        }
    }
}
