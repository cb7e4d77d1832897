package ich.cli;

import ich.infer.EngineScorer;
import ich.infer.Scorer;
import ich.infer.ScoringRun;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

@Command(name = "score", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Scores DICOM slices into a Kaggle submission (ID,Label, 6 rows per image), with per_image.csv, "
                + "per_study.csv (highest slice probability per study, for triage) and errors.csv beside it.",
                "Every input ends up in exactly one of per_image.csv and errors.csv."})
final class ScoreCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "CKPT|ONNX", description = "A training checkpoint (.safetensors) or an exported model (.onnx).")
    Path model;

    static final class Inputs {
        @Option(names = "--images", paramLabel = "DIR", description = "Every file under DIR (recursively; .csv files are skipped).")
        Path images;

        @Option(names = "--list", paramLabel = "FILE", description = "One DICOM path per line.")
        Path list;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Inputs inputs;

    @Option(names = "--sample-submission", paramLabel = "CSV", description = "Write the submission in this file's row order.")
    Path sample;

    @Option(names = "--out", required = true, paramLabel = "CSV", description = "The submission to write; the reports go beside it.")
    Path out;

    @Option(names = "--engine", paramLabel = "NAME",
            description = "onnxruntime (default; a checkpoint is exported to ONNX in memory first) or java (our engine, checkpoints only).")
    String engine;

    @Option(names = "--device", paramLabel = "D",
            description = "With --engine java: cpu (default), gpu or gpu:N (our CUDA backend: cuDNN, cuBLAS, our kernels). Implies --engine java.")
    String device;

    @Option(names = "--precision", paramLabel = "P",
            description = "With --device gpu: fp32 (default; the CPU's probabilities up to summation order), tf32, or bf16: bf16 "
                    + "channels-last activations on tensor cores with the checkpoint's fp32 weights (probabilities within ~1e-2).")
    String precision;

    @Option(names = "--image-id", paramLabel = "name|path", defaultValue = "name",
            description = "How images are named in the outputs: name (default), the file name without .dcm, as the RSNA layout "
                    + "(ID_<hex>.dcm) and its submissions want; or path, the path under --images (with --list, under the deepest "
                    + "folder that holds every file) without .dcm, e.g. SE2/IM0, for exports that reuse file names in each series folder.")
    String imageId;

    @Option(names = "--tta", paramLabel = "flip", description = "Test-time augmentation: flip also scores the mirrored image and averages.")
    String tta;

    @Option(names = "--image-size", paramLabel = "S", description = "Model input size (default: the size the checkpoint was trained at).")
    Integer imageSize;

    @Option(names = "--batch", defaultValue = "32", paramLabel = "B", description = "Images per batch (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--workers", paramLabel = "N", description = "Loader threads (default: all cores).")
    Integer workers;

    @Option(names = "--threads", paramLabel = "N", description = "Compute threads (default: all cores).")
    Integer threads;

    @Option(names = "--resume", description = "Keep what an interrupted run with the same --out scored and do the rest.")
    boolean resume;

    @Override
    public Integer call() throws Exception {
        int cores = Runtime.getRuntime().availableProcessors();
        if (tta != null && !tta.equals("flip")) return fail("--tta takes flip, not " + tta);
        if (!imageId.equals("name") && !imageId.equals("path")) return fail("--image-id takes name or path, not " + imageId);
        if (!Files.isRegularFile(model)) return fail("no model file " + model);
        boolean onnx = model.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".onnx");
        String chosen = engine != null ? engine : device != null ? "java" : "onnxruntime";
        if (device != null && !chosen.equals("java")) return fail("--device runs our engine: use it with --engine java, not " + chosen);
        List<Path> files;
        try {
            files = inputs.images != null ? listImages(inputs.images) : listFile(inputs.list);
        } catch (IOException e) {
            return fail(e.getMessage());
        }
        if (files.isEmpty()) return fail("no input files in " + (inputs.images != null ? inputs.images : inputs.list));
        int computeThreads = threads != null ? threads : cores;
        ich.nn.Device where;
        try {
            where = DeviceOptions.resolve(device != null ? device : "cpu", precision, computeThreads);
        } catch (IllegalArgumentException e) {
            return fail(e.getMessage());
        }
        try (Scorer scorer = open(chosen, onnx, computeThreads, where)) {
            int size = imageSize != null ? imageSize : scorer instanceof EngineScorer e ? e.imageSize()
                    : scorer instanceof ich.infer.OnnxRuntimeModel m ? m.imageSize() : 0;
            if (size <= 0) return fail("the model does not say its input size: give --image-size");
            var options = new ScoringRun.Options(files, sample, out, size, batch, workers != null ? workers : cores,
                    tta != null, resume, 0, imageId.equals("path") ? idRoot(files) : null);
            ScoringRun.Summary s = ScoringRun.run(scorer, options, System.out);
            if (!s.complete()) {
                spec.commandLine().getErr().println("ich score: " + s.problem());
                return 1;
            }
            System.out.println("submission: " + out + "; reports: " + out.toAbsolutePath().resolveSibling(ScoringRun.PER_IMAGE).getParent());
            return 0;
        } catch (IllegalArgumentException | ich.gpu.GpuUnavailableException e) {
            return fail(e.getMessage());
        } catch (ich.gpu.CudaException e) {
            // per_image.csv and errors.csv already hold every batch scored before the failure
            spec.commandLine().getErr().println("ich score: CUDA error on " + where.label() + ": " + e.getMessage()
                    + DeviceOptions.outOfMemoryHint(e, batch, where) + "; --resume keeps the images scored so far");
            return 1;
        }
    }

    private Scorer open(String name, boolean onnx, int threads, ich.nn.Device where) throws IOException {
        return switch (name) {
            case "java" -> {
                if (onnx) throw new IllegalArgumentException("--engine java scores a checkpoint (.safetensors), not an ONNX file");
                yield EngineScorer.open(model, where);
            }
            case "onnxruntime" -> onnx ? ich.infer.OnnxRuntimeModel.open(model, threads) : checkpointInOnnxRuntime(threads);
            default -> throw new IllegalArgumentException("unknown --engine " + name + " (onnxruntime or java)");
        };
    }

    /** A checkpoint exported to ONNX in memory (as `ich export onnx` would write it) and run by ONNX Runtime. */
    private Scorer checkpointInOnnxRuntime(int threads) throws IOException {
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            ich.nn.io.Checkpoint.Contents contents = ich.nn.io.Checkpoint.read(model, arena);
            try (ich.nn.model.EfficientNetB0 b0 = ich.nn.model.EfficientNetB0.fromStateDict(null, contents.model(), model.toString())) {
                byte[] bytes = ich.nn.io.onnx.EfficientNetOnnx.export(b0, true, Main.version(),
                        EngineScorer.imageSizeOf(contents.state().config())).toByteArray();
                return ich.infer.OnnxRuntimeModel.open(bytes, model, threads);
            }
        }
    }

    static List<Path> listImages(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) throw new IOException("no folder " + dir);
        return ich.train.ImageCatalog.files(dir);
    }

    static List<Path> listFile(Path list) throws IOException {
        if (!Files.isRegularFile(list)) throw new IOException("no list file " + list);
        List<Path> out = new ArrayList<>();
        Path base = list.toAbsolutePath().getParent();
        for (String line : Files.readAllLines(list, StandardCharsets.UTF_8)) {
            String s = line.strip();
            if (s.isEmpty() || s.startsWith("#")) continue;
            Path p = Path.of(s);
            out.add(p.isAbsolute() ? p : base.resolve(p));
        }
        return out;
    }

    /** The folder that path ids are relative to: --images, or the deepest folder holding every file of a --list. */
    private Path idRoot(List<Path> files) {
        if (inputs.images != null) return inputs.images;
        Path root = files.getFirst().toAbsolutePath().normalize().getParent();
        for (Path f : files) {
            Path p = f.toAbsolutePath().normalize();
            while (root != null && !p.startsWith(root)) root = root.getParent();
        }
        return root != null ? root : files.getFirst().toAbsolutePath().getRoot();
    }

    /** Errors go to the command line's error writer (stderr when run as a program), so callers can capture them. */
    private int fail(String message) {
        spec.commandLine().getErr().println("ich score: " + message);
        return 2;
    }
}
