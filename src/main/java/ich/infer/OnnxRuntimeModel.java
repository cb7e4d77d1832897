package ich.infer;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import ich.nn.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An ONNX model run by ONNX Runtime on the CPU: one float32 NCHW batch in, float32 outputs back.
 *
 * <p>The classifier ich exports has input {@code input} [N, 3, H, W] and outputs {@code logits} and
 * {@code probabilities} [N, 6]; {@link #predict} returns those two, {@link #run} every output of any
 * single-input float model; as a {@link Scorer} it gives the probabilities. A session is safe to run from several threads at once (ONNX Runtime's own
 * guarantee); close it to free its native memory.
 */
public final class OnnxRuntimeModel implements Scorer {
    public static final String LOGITS = "logits";
    public static final String PROBABILITIES = "probabilities";

    private final Path file;
    private final OrtEnvironment env;
    private final OrtSession session;
    private final String inputName;
    private final long[] inputShape;

    /** One output: its name, shape ([N, classes] for the classifier) and row-major elements. */
    public record Output(String name, long[] shape, float[] values) {}

    /** Per image (row) and label (column), both [n, classes] row-major. */
    public record Prediction(int n, int classes, float[] logits, float[] probabilities) {
        public float logit(int image, int label) {
            return logits[image * classes + label];
        }

        public float probability(int image, int label) {
            return probabilities[image * classes + label];
        }
    }

    private OnnxRuntimeModel(Path file, OrtEnvironment env, OrtSession session) throws IOException {
        this.file = file;
        this.env = env;
        this.session = session;
        try {
            Map<String, NodeInfo> inputs = session.getInputInfo();
            if (inputs.size() != 1) {
                throw new IOException(file + ": the model has " + inputs.size() + " inputs " + inputs.keySet() + "; one image input is expected");
            }
            NodeInfo in = inputs.values().iterator().next();
            if (!(in.getInfo() instanceof TensorInfo t) || t.type != OnnxJavaType.FLOAT) {
                throw new IOException(file + ": input " + in.getName() + " is " + in.getInfo() + ", not a float32 tensor");
            }
            this.inputName = in.getName();
            this.inputShape = t.getShape();
        } catch (OrtException e) {
            throw new IOException(file + ": cannot read the model's inputs: " + e.getMessage(), e);
        }
    }

    /**
     * Loads the model with every graph optimisation on.
     *
     * @param threads threads for the ops (ONNX Runtime's intra-op pool); 0 lets ONNX Runtime choose (one per
     *                physical core)
     */
    public static OnnxRuntimeModel open(Path file, int threads) throws IOException {
        if (threads < 0) throw new IllegalArgumentException("threads must be >= 0, not " + threads);
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "no such ONNX model file");
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            options.setIntraOpNumThreads(threads);
            // One graph, run as a chain: a second pool of inter-op threads would only compete for the cores.
            options.setInterOpNumThreads(1);
            options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            OrtSession session = env.createSession(file.toString(), options);
            try {
                return new OnnxRuntimeModel(file, env, session);
            } catch (IOException | RuntimeException e) {
                closeQuietly(session, e);
                throw e;
            }
        } catch (OrtException e) {
            throw new IOException(file + ": ONNX Runtime cannot load the model: " + e.getMessage(), e);
        }
    }

    public Path file() {
        return file;
    }

    @Override
    public String name() {
        return "onnxruntime (cpu)";
    }

    /** The classifier's probabilities [n, classes] row-major; an ONNX Runtime failure is unchecked here. */
    @Override
    public float[] probabilities(Tensor images) {
        try {
            return predict(images).probabilities();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String inputName() {
        return inputName;
    }

    /** The declared input shape; -1 where a dimension is dynamic. */
    public long[] inputShape() {
        return inputShape.clone();
    }

    public List<String> outputNames() {
        return List.copyOf(session.getOutputNames());
    }

    /** Runs the classifier on a host tensor [n, c, h, w], passing its memory to ONNX Runtime without a copy. */
    public Prediction predict(Tensor batch) throws IOException {
        return prediction(run(batch));
    }

    /** Runs the classifier on row-major NCHW values. */
    public Prediction predict(float[] nchw, int n, int c, int h, int w) throws IOException {
        return prediction(run(nchw, n, c, h, w));
    }

    /** Every output of the model for a host tensor [n, c, h, w]. */
    public Map<String, Output> run(Tensor batch) throws IOException {
        if (!batch.isHost()) throw new IllegalArgumentException(file + ": input " + batch + " must be on the host");
        if (batch.rank() != 4) throw new IllegalArgumentException(file + ": input must be NCHW, not " + batch);
        // A direct buffer over the tensor's memory: ONNX Runtime reads it in place instead of copying.
        FloatBuffer data = batch.data().asSlice(0, batch.bytes()).asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
        return run(data, Arrays.stream(batch.shape()).asLongStream().toArray());
    }

    /** Every output of the model for row-major NCHW values. */
    public Map<String, Output> run(float[] nchw, int n, int c, int h, int w) throws IOException {
        long[] shape = {n, c, h, w};
        if ((long) n * c * h * w != nchw.length) {
            throw new IllegalArgumentException(file + ": " + nchw.length + " values for input shape " + Arrays.toString(shape));
        }
        return run(FloatBuffer.wrap(nchw), shape);
    }

    private Map<String, Output> run(FloatBuffer data, long[] shape) throws IOException {
        checkShape(shape);
        try (OnnxTensor input = OnnxTensor.createTensor(env, data, shape);
             OrtSession.Result result = session.run(Map.of(inputName, input))) {
            Map<String, Output> outputs = new LinkedHashMap<>();
            for (Map.Entry<String, OnnxValue> e : result) {
                if (!(e.getValue() instanceof OnnxTensor t) || t.getInfo().type != OnnxJavaType.FLOAT) {
                    throw new IOException(file + ": output " + e.getKey() + " is " + e.getValue().getInfo() + ", not float32");
                }
                FloatBuffer fb = t.getFloatBuffer();
                float[] values = new float[fb.remaining()];
                fb.get(values);
                outputs.put(e.getKey(), new Output(e.getKey(), t.getInfo().getShape(), values));
            }
            return outputs;
        } catch (OrtException e) {
            throw new IOException(file + ": ONNX Runtime failed on input " + Arrays.toString(shape) + ": " + e.getMessage(), e);
        }
    }

    private void checkShape(long[] shape) {
        boolean fits = shape.length == inputShape.length;
        for (int i = 0; fits && i < shape.length; i++) fits = inputShape[i] < 0 || inputShape[i] == shape[i];
        if (!fits) {
            throw new IllegalArgumentException(file + ": input " + inputName + " is declared " + Arrays.toString(inputShape)
                    + " (-1: any size), given " + Arrays.toString(shape));
        }
    }

    private Prediction prediction(Map<String, Output> outputs) throws IOException {
        Output logits = outputs.get(LOGITS), probabilities = outputs.get(PROBABILITIES);
        if (logits == null || probabilities == null) {
            throw new IOException(file + ": a classifier has outputs " + LOGITS + " and " + PROBABILITIES + ", this model has " + outputs.keySet());
        }
        if (logits.shape().length != 2 || !Arrays.equals(logits.shape(), probabilities.shape())) {
            throw new IOException(file + ": outputs " + LOGITS + " " + Arrays.toString(logits.shape()) + " and " + PROBABILITIES + " "
                    + Arrays.toString(probabilities.shape()) + " should both be [N, classes]");
        }
        return new Prediction((int) logits.shape()[0], (int) logits.shape()[1], logits.values(), probabilities.values());
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            throw new IllegalStateException(file + ": closing the ONNX Runtime session failed: " + e.getMessage(), e);
        }
    }

    private static void closeQuietly(OrtSession session, Exception primary) {
        try {
            session.close();
        } catch (OrtException e) {
            primary.addSuppressed(e);
        }
    }
}
