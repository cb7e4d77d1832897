package ich.infer;

import ich.nn.Backend;
import ich.nn.Device;
import ich.nn.Tensor;
import ich.nn.io.Checkpoint;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Scores with our own engine, on the CPU or a GPU backend, from a training checkpoint. */
public final class EngineScorer implements Scorer {
    private final Backend backend;
    private final EfficientNetB0 model;
    private final int imageSize;

    private EngineScorer(Backend backend, EfficientNetB0 model, int imageSize) {
        this.backend = backend;
        this.model = model;
        this.imageSize = imageSize;
    }

    /** Loads {@code checkpoint} onto a CPU backend with {@code threads} threads. */
    public static EngineScorer open(Path checkpoint, int threads) throws IOException {
        return open(checkpoint, new Device.Cpu(threads));
    }

    /**
     * Loads {@code checkpoint} onto a backend of {@code device}.
     *
     * @throws ich.gpu.GpuUnavailableException for a GPU device where there is none, saying why
     */
    public static EngineScorer open(Path checkpoint, Device device) throws IOException {
        Backend backend = device.open();
        try (Arena arena = Arena.ofConfined()) {
            Checkpoint.Contents contents = Checkpoint.read(checkpoint, arena);
            EfficientNetB0 model = EfficientNetB0.fromStateDict(backend, contents.model(), checkpoint.toString());
            return new EngineScorer(backend, model, imageSizeOf(contents.state().config()));
        } catch (IOException | RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    /** The crop size a run trained at, from the configuration JSON a checkpoint holds; 0 when it does not say. */
    public static int imageSizeOf(String configJson) {
        Matcher m = Pattern.compile("\"crop\"\\s*:\\s*(\\d+)").matcher(configJson);
        return m.find() ? Integer.parseInt(m.group(1)) : 0;
    }

    /** The input size the model was trained at (0 when unknown). */
    public int imageSize() {
        return imageSize;
    }

    @Override
    public String name() {
        return "java engine (" + backend.name() + ")";
    }

    @Override
    public float[] probabilities(Tensor images) {
        try (StepContext ctx = StepContext.eval(backend)) {
            Tensor x = ctx.allocate(images.shape());
            backend.copy(images, x);
            Tensor logits = model.forward(x, ctx);
            Tensor p = ctx.allocate(logits.shape());
            backend.sigmoid(logits, p);
            Tensor host = Tensor.allocate(ctx.arena(), logits.shape());
            backend.copy(p, host);
            return host.toArray();
        }
    }

    @Override
    public void close() {
        model.close();
        backend.close();
    }
}
