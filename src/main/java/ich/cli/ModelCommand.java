package ich.cli;

import ich.nn.io.Checkpoint;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.LayerSummary;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "model", mixinStandardHelpOptions = true, description = "The network: EfficientNet-B0 as timm builds it.",
        subcommands = {ModelCommand.Summary.class, ModelCommand.Init.class})
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
