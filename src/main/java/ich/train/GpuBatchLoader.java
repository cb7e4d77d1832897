package ich.train;

import ich.dicom.DicomFormatException;
import ich.gpu.GpuPreprocessor;
import ich.nn.Storage;
import ich.nn.Tensor;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.TreeMap;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The {@link BatchLoader} of a GPU: worker threads read and decode each batch's DICOM files into host memory, one
 * staging thread hands the batches in order to {@link GpuPreprocessor#submit} (which copies the pixels into pinned
 * memory, then to the device, and queues the kernel), and the consumer gets each batch as a device tensor
 * [n, c, h, w] fp32 NCHW, written by the kernel straight into the preprocessor's output.
 *
 * <p>Same batches as the CPU loader: the same plan, the same {@link Preprocessor.Config}, the crops and flips of
 * (seed, epoch, sample key), failed samples dropped and listed in the same way; the kernel's output is the CPU
 * path's bit for bit for linear windows (see {@link GpuPreprocessor}).
 *
 * <p>Double buffering: the preprocessor has two output slots, and a batch's output stays valid only until the
 * second submission after it. So the staging thread submits a batch only when the batch two submissions earlier
 * has been released by the consumer ({@link LoadedBatch#releaseImages()}), and the consumer may hold at most two
 * batches (taking a third would wait forever; it is an {@link IllegalStateException} instead). Release runs the
 * {@code fence} first: it must return only when the device work that read the images has finished (the CUDA
 * backend's synchronize), so the kernel never overwrites a batch that a queued copy still reads. A consumer that
 * has waited for that work itself (the loss of the step that copied the batch) releases without the fence
 * ({@link LoadedBatch#releaseImagesReadByFinishedWork()}), so the next step, already queued, runs on meanwhile.
 *
 * <p>Ordering: {@link #next()} waits for the batch's kernel on the host (event synchronize) before handing it
 * out, so any stream may read it. Recording that event and letting the backend's stream wait on it instead would
 * keep the host free for one more batch; the wait counts in {@link #waitNanos()}, where it shows if it matters.
 *
 * <p>One loader uses the preprocessor at a time: close it before the next one starts.
 */
public final class GpuBatchLoader implements BatchSource {
    /** A batch read from disk: its slices (pixels in {@code arena}) and the samples that made it. */
    private record Decoded(List<GpuPreprocessor.Slice> slices, int[] samples, float[] targets,
                           List<Preprocessor.Failure> failures, Arena arena) {}

    /** A batch queued on the device ({@code batch} null when no sample of it could be read). */
    private record Submitted(GpuPreprocessor.Batch batch, int submission, int[] samples, float[] targets,
                             List<Preprocessor.Failure> failures) {}

    private final GpuPreprocessor preprocessor;
    private final BatchLoader.Plan plan;
    private final Runnable fence;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final OrderedWorkers<Decoded> decoded; // taken by the staging thread
    private final TreeMap<Integer, Object> submitted = new TreeMap<>(); // Submitted or Throwable
    private final BitSet released = new BitSet(); // by submission number
    private final Thread stager;
    private int nextToHand, outstanding;
    private boolean closed;
    private Throwable stagingFailed;
    private long waitNanos;
    private GpuPreprocessor.Batch lastHanded;
    /** How the preprocessor's batches hold their elements: the storage of the tensors handed out. */
    private final Storage storage;

    /**
     * @param preprocessor fp32 NCHW or bf16 NHWC (the two storages of the engine's activations), with room for the
     *                     plan's batch size; used by this loader alone until it closes
     * @param workers      decoding threads
     * @param prefetch     decoded batches held ahead of the staging thread (host memory: a batch's stored pixels)
     * @param fence        run on the consumer's thread when it releases a batch; see the class comment
     */
    public GpuBatchLoader(GpuPreprocessor preprocessor, BatchLoader.Plan plan, int workers, int prefetch, Runnable fence) {
        if (workers <= 0 || prefetch <= 0) throw new IllegalArgumentException("workers and prefetch must be positive");
        this.storage = storage(preprocessor); // refuses what the model cannot take
        if (plan.batchSize() > preprocessor.maxBatch()) {
            throw new IllegalArgumentException("batches of " + plan.batchSize() + " do not fit the preprocessor's " + preprocessor.maxBatch());
        }
        this.preprocessor = preprocessor;
        this.plan = plan;
        this.fence = fence;
        this.decoded = new OrderedWorkers<>("ich-gpu-loader", workers, prefetch, plan.batches(), this::read, d -> d.arena().close());
        this.stager = Thread.ofPlatform().daemon().name("ich-gpu-stager").start(this::stage);
    }

    /** The storage of the batches a preprocessor writes: fp32 NCHW or bf16 NHWC, the engine's activation storages. */
    static Storage storage(GpuPreprocessor preprocessor) {
        GpuPreprocessor.Precision p = preprocessor.precision();
        SliceKernel.Layout order = preprocessor.config().layout();
        if (p == GpuPreprocessor.Precision.FP32 && order == SliceKernel.Layout.NCHW) return Storage.FLOAT32;
        if (p == GpuPreprocessor.Precision.BF16 && order == SliceKernel.Layout.NHWC) return Storage.BF16_NHWC;
        throw new IllegalArgumentException("the model takes fp32 NCHW or bf16 NHWC; the preprocessor writes " + p + " " + order);
    }

    @Override
    public int batches() {
        return plan.batches();
    }

    @Override
    public boolean hasNext() {
        return nextToHand < plan.batches();
    }

    @Override
    public LoadedBatch next() throws InterruptedException {
        if (!hasNext()) throw new NoSuchElementException("all " + plan.batches() + " batches handed out");
        long start = System.nanoTime();
        Object item;
        int index;
        lock.lock();
        try {
            if (outstanding >= 2) {
                throw new IllegalStateException("two GPU batches are still in use: release one before taking the next "
                        + "(the preprocessor has two output slots)");
            }
            while ((item = submitted.remove(nextToHand)) == null) {
                if (closed) throw new IllegalStateException("loader closed");
                if (stagingFailed != null) throw new IllegalStateException("batch staging failed: " + stagingFailed, stagingFailed);
                changed.await();
            }
            index = nextToHand++;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        try {
            if (item instanceof Throwable t) throw new IllegalStateException("batch loading failed: " + t, t);
            Submitted s = (Submitted) item;
            Arena arena = Arena.ofConfined(); // the batch's own memory is on the device; the record wants an arena
            if (s.batch() == null) return new LoadedBatch(index, null, s.targets(), s.samples(), s.failures(), arena);
            s.batch().await();
            var config = preprocessor.config();
            Tensor images = Tensor.wrap(MemorySegment.ofAddress(s.batch().output().pointer()), false, storage,
                    s.batch().size(), config.channelCount(), config.size(), config.size());
            lock.lock();
            try {
                outstanding++;
                lastHanded = s.batch();
            } finally {
                lock.unlock();
            }
            return new LoadedBatch(index, images, s.targets(), s.samples(), s.failures(), arena, release(s.submission()));
        } finally {
            waitNanos += System.nanoTime() - start;
        }
    }

    private LoadedBatch.Release release(int submission) {
        AtomicBoolean done = new AtomicBoolean();
        return fenced -> {
            if (done.getAndSet(true)) return;
            try {
                if (fenced) fence.run();
            } finally {
                lock.lock();
                try {
                    released.set(submission);
                    outstanding--;
                    changed.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        };
    }

    @Override
    public long waitNanos() {
        return waitNanos;
    }

    /** The preprocessor's batch last handed out by {@link #next()}: its timings and checked host copies. */
    GpuPreprocessor.Batch lastDeviceBatch() {
        lock.lock();
        try {
            return lastHanded;
        } finally {
            lock.unlock();
        }
    }

    /** Reads a batch's files as {@link BatchLoader} does, up to the pixels: the same samples fail with the same messages. */
    private Decoded read(int b) {
        int from = b * plan.batchSize();
        int to = Math.min(plan.inputs().size(), from + plan.batchSize());
        int labels = plan.labelsPerSample();
        Arena arena = Arena.ofShared();
        try {
            List<GpuPreprocessor.Slice> slices = new ArrayList<>(to - from);
            int[] samples = new int[to - from];
            float[] targets = new float[(to - from) * labels];
            List<Preprocessor.Failure> failures = new ArrayList<>();
            for (int i = from; i < to; i++) {
                Preprocessor.Input in = plan.inputs().get(i);
                try {
                    slices.add(GpuPreprocessor.Slice.read(in.file(), in.frame(), in.sampleKey(), preprocessor.config(), arena));
                } catch (IOException | RuntimeException e) {
                    String message = e instanceof DicomFormatException ? e.getMessage() : in.file() + ": " + e;
                    failures.add(new Preprocessor.Failure(i - from, in.file(), message));
                    continue;
                }
                int n = slices.size() - 1;
                samples[n] = plan.samples()[i];
                System.arraycopy(plan.targets(), i * labels, targets, n * labels, labels);
            }
            int n = slices.size();
            return new Decoded(slices, Arrays.copyOf(samples, n), Arrays.copyOf(targets, n * labels), List.copyOf(failures), arena);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** The one thread that submits: in batch order, each when its slot's previous batch has been released. */
    private void stage() {
        int submissions = 0;
        try {
            for (int b = 0; b < plan.batches(); b++) {
                Object item;
                try {
                    item = decoded.take();
                } catch (ExecutionException e) {
                    item = e.getCause(); // handed on: next() rethrows it at this batch
                } catch (CancellationException e) {
                    return; // closed
                }
                Object out = item;
                if (item instanceof Decoded d) {
                    try {
                        if (d.slices().isEmpty()) {
                            out = new Submitted(null, -1, d.samples(), d.targets(), d.failures());
                        } else {
                            int m = submissions;
                            lock.lock();
                            try {
                                while (!closed && m >= 2 && !released.get(m - 2)) changed.await();
                                if (closed) return;
                            } finally {
                                lock.unlock();
                            }
                            GpuPreprocessor.Batch batch;
                            try {
                                batch = preprocessor.submit(d.slices(), plan.seed(), plan.epoch());
                            } catch (RuntimeException e) {
                                fail(e);
                                return;
                            }
                            submissions++;
                            out = new Submitted(batch, m, d.samples(), d.targets(), d.failures());
                        }
                    } finally {
                        d.arena().close(); // submit copied the pixels into pinned staging memory
                    }
                }
                lock.lock();
                try {
                    if (closed) return;
                    submitted.put(b, out);
                    changed.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException | Error e) {
            fail(e);
        }
    }

    /** The device refused a batch: the batches after it can never come, so every later {@link #next()} says why. */
    private void fail(Throwable t) {
        lock.lock();
        try {
            stagingFailed = t;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Stops the threads and frees the decoded batches not submitted; the device batches stay the preprocessor's. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            submitted.clear();
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        decoded.close();
        try {
            stager.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
