package ich.cli;

import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.io.Checkpoint;
import ich.nn.io.SafeTensors;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.GlobalAveragePool;
import ich.nn.model.Layer;
import ich.nn.model.LayerSummary;
import ich.nn.model.StepContext;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

@Command(name = "model", mixinStandardHelpOptions = true, description = "The network: EfficientNet-B0 as timm builds it.",
        subcommands = {ModelCommand.Summary.class, ModelCommand.Init.class, ModelCommand.Fixture.class})
final class ModelCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "summary", mixinStandardHelpOptions = true,
            description = {"The layer table (timm module names, output shapes, weights, multiply-adds), then trainable, "
                    + "frozen and total weights and the forward cost for one input size.",
                    "MACs count the multiply-adds of convolutions and fully connected layers (SE included); FLOPs = 2 x MACs."})
    static final class Summary implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--size", defaultValue = "224", paramLabel = "S", description = "input height and width (default ${DEFAULT-VALUE})")
        int size;

        @Option(names = "--batch", defaultValue = "1", paramLabel = "N", description = "batch size (default ${DEFAULT-VALUE})")
        int batch;

        @Option(names = "--classes", defaultValue = "6", description = "classifier outputs (default ${DEFAULT-VALUE})")
        int classes;

        @Option(names = "--freeze-backbone", description = "as the seed's first epoch: train only bn2 and the classifier")
        boolean freezeBackbone;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            if (size < 1 || batch < 1 || classes < 1) {
                err.println("ich model summary: --size, --batch and --classes must be positive");
                err.flush();
                return 2;
            }
            try (EfficientNetB0 model = EfficientNetB0.onHost(EfficientNetB0.Config.defaults().withClasses(classes))) {
                if (freezeBackbone) model.freezeBackbone();
                out.print(text(model, batch, size));
            }
            out.flush();
            return 0;
        }
    }

    @Command(name = "init", mixinStandardHelpOptions = true,
            description = {"Write a freshly initialised EfficientNet-B0 as a checkpoint (safetensors, timm's names).",
                    "timm's initialisation: convolutions normal(0, sqrt(2 / fan_out)), batch norm 1 and 0, the classifier "
                            + "uniform(-1/sqrt(classes), 1/sqrt(classes)); every tensor drawn from the seed and its name, "
                            + "so the same seed writes the same file. The training state says epoch 0, step 0."})
    static final class Init implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--out", required = true, paramLabel = "FILE", description = "checkpoint to write (written atomically)")
        Path file;

        @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "initialisation seed (default ${DEFAULT-VALUE})")
        long seed;

        @Option(names = "--classes", defaultValue = "6", description = "classifier outputs (default ${DEFAULT-VALUE})")
        int classes;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            if (classes < 1) {
                err.println("ich model init: --classes must be positive");
                err.flush();
                return 2;
            }
            EfficientNetB0.Config config = EfficientNetB0.Config.defaults().withClasses(classes);
            try (EfficientNetB0 model = EfficientNetB0.onHost(config)) {
                model.initialize(seed);
                String json = String.format("{\"model\":\"efficientnet_b0\",\"num_classes\":%d,\"init\":\"timm _init_weight_goog\",\"init_seed\":%d}",
                        classes, seed);
                Checkpoint.write(file, model.stateDict(), Map.of(), new Checkpoint.TrainingState(0, 0, 0, 0.0, seed, "", json));
                out.printf("wrote %s: efficientnet_b0, %d classes, %,d weights and %,d buffers in %d tensors, seed %d%n",
                        file, classes, model.weightCount(), model.count(p -> p.isBuffer()), model.namedParameters().size(), seed);
            } catch (IOException e) {
                err.println("ich model init: cannot write " + file + ": " + e.getMessage());
                err.flush();
                return 1;
            }
            out.flush();
            return 0;
        }
    }

    @Command(name = "fixture", mixinStandardHelpOptions = true,
            description = {"Write a parity fixture for timm: a state dict in timm's names (model.safetensors), a random batch "
                    + "(input.safetensors) and what our engine computes from them on the CPU in eval mode "
                    + "(expected.safetensors: logits and the pooled features), with a README.txt.",
                    "scripts/timm_parity.py (tools/ in the distribution) loads the state dict into timm's efficientnet_b0 "
                            + "on a host with PyTorch and timm and compares.",
                    "Convolution and classifier weights are timm's initialisation from the seed; batch-norm weights and every "
                            + "bias are drawn at random; the running statistics are measured on a separate random batch, so that "
                            + "eval-mode batch norm is exercised and the input still shapes the logits."})
    static final class Fixture implements Callable<Integer> {
        static final String MODEL = "model.safetensors", INPUT = "input.safetensors", EXPECTED = "expected.safetensors",
                README = "README.txt";

        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--out", required = true, paramLabel = "DIR", description = "folder to write the four files into (created if missing)")
        Path dir;

        @Option(names = "--size", defaultValue = "224", paramLabel = "S", description = "input height and width (default ${DEFAULT-VALUE})")
        int size;

        @Option(names = "--batch", defaultValue = "2", paramLabel = "N", description = "images in the batch (default ${DEFAULT-VALUE})")
        int batch;

        @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "seed of the weights and the input (default ${DEFAULT-VALUE})")
        long seed;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            if (size < 1 || batch < 1) {
                err.println("ich model fixture: --size and --batch must be positive");
                err.flush();
                return 2;
            }
            // Momentum 1: one training-mode forward leaves each batch norm's running statistics equal to its batch's.
            // No dropout or drop-path, which would make those statistics depend on the masks.
            EfficientNetB0.Config defaults = EfficientNetB0.Config.defaults();
            EfficientNetB0.Config config = new EfficientNetB0.Config(defaults.numClasses(), 0, 0, 1.0, defaults.bnEps());
            try (CpuBackend cpu = new CpuBackend();
                 EfficientNetB0 model = EfficientNetB0.initialized(cpu, config, seed);
                 Arena arena = Arena.ofConfined()) {
                SplittableRandom root = new SplittableRandom(seed);
                SplittableRandom weights = root.split(), images = root.split(), calibration = root.split();
                randomizeNormsAndBiases(model, weights);
                calibrate(model, cpu, batch, size, calibration);
                float[] pixels = new float[Math.multiplyExact(Math.multiplyExact(batch * 3, size), size)];
                for (int i = 0; i < pixels.length; i++) pixels[i] = (float) images.nextGaussian();
                Tensor input = Tensor.of(arena, pixels, batch, 3, size, size);

                float[] logits, features = null;
                try (StepContext ctx = StepContext.eval(cpu)) {
                    // Layer by layer, to keep the pooled features on the way; the same ops as model.forward, in order
                    // (which fuses each batch norm + SiLU pair: on the CPU the fused op gives the same bits).
                    Tensor x = input;
                    for (Layer layer : model.network().layers()) {
                        x = layer.forward(x, ctx);
                        if (layer instanceof GlobalAveragePool) features = x.toArray();
                    }
                    logits = x.toArray();
                }
                if (features == null) throw new IllegalStateException("the network has no global_pool layer");

                Files.createDirectories(dir);
                Map<String, String> about = Map.of("format", "pt", "ich.version", Main.version(), "ich.backend", cpu.name(),
                        "ich.seed", Long.toString(seed));
                writeStateDict(dir.resolve(MODEL), model, about);
                new SafeTensors.Writer().metadata(about).add("input", input).write(dir.resolve(INPUT));
                new SafeTensors.Writer().metadata(about)
                        .add("logits", Tensor.of(arena, logits, batch, config.numClasses()))
                        .add("features", Tensor.of(arena, features, batch, features.length / batch))
                        .write(dir.resolve(EXPECTED));
                Files.writeString(dir.resolve(README), readme(batch, size, config.numClasses(), seed, cpu.name()), StandardCharsets.UTF_8);
                out.printf("wrote %s: %s, %s, %s and %s; input [%d,3,%d,%d], seed %d, logits from %s%n", dir, MODEL, INPUT,
                        EXPECTED, README, batch, size, size, seed, cpu.name());
            } catch (IOException e) {
                err.println("ich model fixture: cannot write into " + dir + ": " + e.getMessage());
                err.flush();
                return 1;
            }
            out.flush();
            return 0;
        }

        /**
         * Fresh batch norms (weight 1, bias 0) and zero biases would hide a swapped weight and bias or a tensor read
         * in another layout; random values show them.
         */
        static void randomizeNormsAndBiases(EfficientNetB0 model, SplittableRandom rng) {
            Set<String> norms = norms(model);
            for (Parameter p : model.namedParameters().values()) {
                String name = p.name();
                String module = name.substring(0, name.lastIndexOf('.')), field = name.substring(name.lastIndexOf('.') + 1);
                float[] v = new float[Math.toIntExact(p.size())];
                if (norms.contains(module) && field.equals("weight")) {
                    for (int i = 0; i < v.length; i++) v[i] = (float) rng.nextDouble(0.5, 1.5);
                } else if (field.equals("bias")) {
                    for (int i = 0; i < v.length; i++) v[i] = (float) (0.1 * rng.nextGaussian());
                } else {
                    continue;
                }
                p.value().copyFrom(v);
            }
        }

        /**
         * Running statistics measured on a separate random batch. timm's fresh ones (mean 0, variance 1) renormalise
         * nothing in eval mode: with these weights the activations shrink block after block until the logits are
         * the classifier's bias and the input hardly matters, so a wrong stride or padding would hide below the
         * tolerance. Measured ones keep every stage near unit scale, and as they are another batch's, eval mode
         * (running statistics) and training mode (the batch's own) give clearly different logits. The batch has at
         * least 256 values per channel in the last stage (ceil(size / 32) square: five stride-2 convolutions), so
         * that small inputs get steady statistics too.
         */
        static void calibrate(EfficientNetB0 model, CpuBackend cpu, int batch, int size, SplittableRandom rng) {
            int last = size;
            for (int i = 0; i < 5; i++) last = (last + 1) / 2;
            int n = Math.max(Math.max(batch, 4), (256 + last * last - 1) / (last * last));
            float[] pixels = new float[Math.multiplyExact(Math.multiplyExact(n * 3, size), size)];
            for (int i = 0; i < pixels.length; i++) pixels[i] = (float) rng.nextGaussian();
            try (StepContext ctx = StepContext.training(cpu, 0, 0)) {
                model.forward(ctx.upload(pixels, n, 3, size, size), ctx);
            }
        }

        /** The batch norms' module names, in state-dict order. */
        static Set<String> norms(EfficientNetB0 model) {
            Set<String> norms = new java.util.LinkedHashSet<>();
            for (String name : model.namedParameters().keySet()) {
                if (name.endsWith(".running_mean")) norms.add(name.substring(0, name.length() - ".running_mean".length()));
            }
            return norms;
        }

        /**
         * The model's tensors plus the {@code num_batches_tracked} counter (I64 scalar, 0) of every batch norm, so
         * that PyTorch's {@code load_state_dict(strict=True)} finds every key it expects whatever its version.
         */
        static void writeStateDict(Path file, EfficientNetB0 model, Map<String, String> metadata) throws IOException {
            SafeTensors.Writer w = new SafeTensors.Writer().metadata(metadata);
            for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) {
                w.add(e.getKey(), e.getValue());
                String name = e.getKey();
                if (name.endsWith(".running_mean")) {
                    w.addLongs(name.substring(0, name.length() - ".running_mean".length()) + ".num_batches_tracked", new long[0], 0L);
                }
            }
            w.write(file);
        }

        static String readme(int n, int size, int classes, long seed, String backend) {
            return String.format("""
                    A parity fixture for ich's EfficientNet-B0 against timm's efficientnet_b0, written by \
                    `ich model fixture` (ich %s, seed %d). model.safetensors is a state dict under timm's names and \
                    shapes for num_classes=%d (convolution and classifier weights drawn as timm initialises them, \
                    batch-norm weights and all biases drawn at random, running statistics measured on another random \
                    batch; every batch norm's num_batches_tracked as an int64 scalar). input.safetensors holds "input" \
                    [%d,3,%d,%d] float32, drawn from N(0, 1). expected.safetensors holds what ich's engine computed from \
                    them on the %s backend in eval mode: "logits" [%d,%d] and "features" [%d,1280], the globally \
                    average-pooled output of the head (conv_head, bn2, SiLU) that the classifier reads. On a host with \
                    PyTorch and timm, run `python3 timm_parity.py THIS_FOLDER [--device cuda|cpu] [--atol 1e-4] \
                    [--rtol 1e-3]` (scripts/timm_parity.py in the source tree, tools/timm_parity.py in the distribution): \
                    it loads the state dict into timm.create_model("efficientnet_b0", num_classes=%d), runs the input in \
                    fp32 with TF32 off and prints "timm parity: PASS" (exit status 0) when timm's logits and features \
                    match these within the tolerances, else "timm parity: FAIL" (exit status 1).
                    """, Main.version(), seed, classes, n, size, size, backend, n, classes, n, classes);
        }
    }

    static String text(EfficientNetB0 model, int n, int size) {
        List<LayerSummary> rows = model.summary(n, size, size);
        StringBuilder b = new StringBuilder();
        b.append(String.format("%-12s %-22s %-20s %12s %14s%n", "module", "type", "output", "weights", "MACs"));
        for (LayerSummary r : rows) {
            b.append(String.format("%-12s %-22s %-20s %,12d %,14d%n", r.name(), r.type(),
                    Arrays.toString(r.outputShape()).replace(" ", ""), r.parameters(), r.macs()));
        }
        long total = model.weightCount(), trainable = model.trainableCount();
        long macs = model.macs(n, size, size);
        b.append(String.format("%nweights    %,d total, %,d trainable, %,d frozen (%,d backbone + %,d classifier)%n",
                total, trainable, total - trainable, model.backboneWeightCount(), total - model.backboneWeightCount()));
        b.append(String.format("buffers    %,d (batch-norm running statistics)%n", model.count(p -> p.isBuffer())));
        b.append(String.format("input      [%d,3,%d,%d]%n", n, size, size));
        b.append(String.format("forward    %,d MACs = %.3f GMACs, %.3f GFLOPs%n", macs, macs / 1e9, 2 * macs / 1e9));
        return b.toString();
    }
}
