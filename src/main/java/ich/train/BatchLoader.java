package ich.train;

import ich.dicom.DicomFormatException;
import ich.nn.Tensor;
import ich.preprocess.Preprocessor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.ExecutionException;

/**
 * Worker threads that read and preprocess batches ahead of the model into a bounded queue.
 *
 * <p>Each worker takes the next batch number and builds the whole batch itself (decode, HU, windows, crop,
 * resize, flip: the CPU path of {@link Preprocessor}); batches are handed out strictly in order, and every
 * sample's augmentation derives from (seed, epoch, sample key), so a batch is the same bytes whatever the
 * number of workers or their timing. At most {@code prefetch} batches exist ahead of the consumer, which bounds
 * memory (a 256 x 3 x 224 x 224 float batch is 154 MB).
 *
 * <p>The model never waits when the workers keep up; {@link #waitNanos()} says how long it did wait, which is
 * the number to watch when deciding between more workers and GPU preprocessing.
 */
public final class BatchLoader implements BatchSource {
    /** What to load: rows of the dataset in order, with their files and 6 labels each (row-major). */
    public record Plan(List<Preprocessor.Input> inputs, int[] samples, float[] targets, int labelsPerSample,
                       int batchSize, long seed, int epoch) {
        public Plan {
            if (inputs.size() != samples.length || targets.length != (long) samples.length * labelsPerSample) {
                throw new IllegalArgumentException("inputs, samples and targets disagree in length");
            }
            if (batchSize <= 0) throw new IllegalArgumentException("batch size must be positive: " + batchSize);
        }

        public int batches() {
            return (inputs.size() + batchSize - 1) / batchSize;
        }
    }

    private final Preprocessor preprocessor;
    private final Plan plan;
    private final OrderedWorkers<LoadedBatch> workers;

    public BatchLoader(Preprocessor preprocessor, Plan plan, int workers, int prefetch) {
        this.preprocessor = preprocessor;
        this.plan = plan;
        this.workers = new OrderedWorkers<>("ich-loader", workers, prefetch, plan.batches(), this::build, LoadedBatch::close);
    }

    @Override
    public int batches() {
        return plan.batches();
    }

    @Override
    public boolean hasNext() {
        return workers.hasNext();
    }

    /** The next batch in order, waiting for it if needed. A worker's unexpected exception is rethrown here. */
    @Override
    public LoadedBatch next() throws InterruptedException {
        if (!hasNext()) throw new NoSuchElementException("all " + plan.batches() + " batches handed out");
        try {
            return workers.take();
        } catch (ExecutionException e) {
            throw new IllegalStateException("batch loading failed: " + e.getCause(), e.getCause());
        }
    }

    /** Total time {@link #next()} spent waiting for the workers. */
    @Override
    public long waitNanos() {
        return workers.waitNanos();
    }

    private LoadedBatch build(int b) {
        int from = b * plan.batchSize();
        int to = Math.min(plan.inputs().size(), from + plan.batchSize());
        int labels = plan.labelsPerSample();
        Preprocessor.Config config = preprocessor.config();
        long sampleBytes = config.sampleFloats() * Float.BYTES;
        Arena arena = Arena.ofShared();
        try {
            MemorySegment data = arena.allocate(sampleBytes * (to - from), Tensor.ALIGNMENT);
            int[] samples = new int[to - from];
            float[] targets = new float[(to - from) * labels];
            List<Preprocessor.Failure> failures = new ArrayList<>();
            int n = 0;
            for (int i = from; i < to; i++) {
                Preprocessor.Input in = plan.inputs().get(i);
                try {
                    preprocessor.process(in, plan.seed(), plan.epoch(), data, sampleBytes * n);
                } catch (IOException | RuntimeException e) {
                    // Recorded, not trained on: a NaN-filled sample would poison the whole step.
                    String message = e instanceof DicomFormatException ? e.getMessage() : in.file() + ": " + e;
                    failures.add(new Preprocessor.Failure(i - from, in.file(), message));
                    continue;
                }
                samples[n] = plan.samples()[i];
                System.arraycopy(plan.targets(), i * labels, targets, n * labels, labels);
                n++;
            }
            Tensor images = n == 0 ? null : Tensor.wrap(data, true, n, config.channelCount(), config.size(), config.size());
            return new LoadedBatch(b, images, Arrays.copyOf(targets, n * labels), Arrays.copyOf(samples, n),
                    List.copyOf(failures), arena);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Stops the workers and frees every batch not handed out. */
    @Override
    public void close() {
        workers.close();
    }
}
