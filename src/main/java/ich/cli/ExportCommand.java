package ich.cli;

import ich.nn.io.Checkpoint;
import ich.nn.io.onnx.EfficientNetOnnx;
import ich.nn.io.onnx.OnnxGraphBuilder;
import ich.nn.model.EfficientNetB0;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "export", mixinStandardHelpOptions = true, description = "Write a trained model in a format other runtimes load.",
        subcommands = {ExportCommand.Onnx.class})
final class ExportCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "onnx", mixinStandardHelpOptions = true,
            description = {"EfficientNet-B0 from a checkpoint as an ONNX model (opset " + OnnxGraphBuilder.OPSET + ") in eval mode: "
                    + "input 'input' float32 [N,3,H,W] with N, H and W free; outputs 'logits' and 'probabilities' (sigmoid) [N,classes].",
                    "ONNX Runtime runs it on the CPU; TensorRT builds its engine from it."})
    static final class Onnx implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--checkpoint", required = true, paramLabel = "CKPT", description = "an ich checkpoint (safetensors)")
        Path checkpoint;

        @Option(names = "--out", required = true, paramLabel = "FILE", description = "the ONNX file to write (replaced atomically)")
        Path out;

        @Option(names = "--no-fold-batch-norm",
                description = "keep BatchNormalization nodes instead of folding each into the convolution before it")
        boolean keepBatchNorm;

        @Override
        public Integer call() {
            PrintWriter stdout = spec.commandLine().getOut(), err = spec.commandLine().getErr();
            try (Arena arena = Arena.ofConfined()) {
                Checkpoint.Contents contents = Checkpoint.read(checkpoint, arena);
                try (EfficientNetB0 model = EfficientNetB0.fromStateDict(null, contents.model(), checkpoint.toString())) {
                    Path parent = out.toAbsolutePath().getParent();
                    if (parent != null) Files.createDirectories(parent);
                    EfficientNetOnnx.write(model, !keepBatchNorm, Main.version(),
                            ich.infer.EngineScorer.imageSizeOf(contents.state().config()), out);
                    stdout.printf("%s: EfficientNet-B0, %d classes, opset %d, batch norm %s, %,d bytes%n", out, model.config().numClasses(),
                            OnnxGraphBuilder.OPSET, keepBatchNorm ? "kept" : "folded", Files.size(out));
                    stdout.flush();
                    return 0;
                }
            } catch (IllegalArgumentException e) {
                err.println("ich export onnx: " + e.getMessage());
                err.flush();
                return 1;
            } catch (NoSuchFileException e) {
                err.println("ich export onnx: " + e.getFile() + ": no such file");
                err.flush();
                return 1;
            } catch (IOException e) {
                err.println("ich export onnx: " + e.getMessage());
                err.flush();
                return 1;
            }
        }
    }
}
