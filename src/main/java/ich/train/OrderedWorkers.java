package ich.train;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * Worker threads that make items {@code 0..count-1} ahead of one consumer, who takes them strictly in order: the
 * shared core of {@link BatchLoader} (items are whole batches) and {@link GpuBatchLoader} (decoded batches, taken by
 * its staging thread).
 *
 * <p>Each worker claims the next index and makes that item itself, so items finish out of order and wait for their
 * turn. A worker starts item {@code i} only while {@code i < taken + prefetch}, so at most {@code prefetch} items
 * exist ahead of the consumer, made or being made: that bounds the memory held (a batch can be 154 MB).
 *
 * <p>A failure to make item {@code i} keeps its place: {@link #take()} throws it when item {@code i} is due, not
 * earlier, so the items before it are still delivered, and the workers go on with the items after it.
 *
 * <p>{@link #close()} stops the workers: the ones waiting for room return at once, the ones making an item finish it
 * first (close waits for them). Every item made and not taken is disposed of exactly once, by close or by the worker
 * that made it; items taken belong to the consumer.
 */
final class OrderedWorkers<T> implements AutoCloseable {
    /** Makes item {@code index}; whatever it throws is rethrown by {@link #take()} at that index. */
    @FunctionalInterface
    interface Producer<T> {
        T make(int index) throws Exception;
    }

    /** In an item's place when making it threw; a wrapper, so that an item may itself be a Throwable. */
    private record Failed(Throwable cause) {}

    private final int count;
    private final int prefetch;
    private final Producer<? extends T> producer;
    private final Consumer<? super T> dispose;
    private final AtomicInteger nextToMake = new AtomicInteger();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final TreeMap<Integer, Object> ready = new TreeMap<>(); // T or Failed, by index
    private final List<Thread> workers = new ArrayList<>();
    private volatile int nextToTake; // written under the lock
    private volatile long waitNanos; // written under the lock
    private boolean closed;

    /**
     * Starts the workers.
     *
     * @param name     the threads are {@code name-0}, {@code name-1}, ...
     * @param dispose  frees an item that was made but will never be taken
     */
    OrderedWorkers(String name, int workers, int prefetch, int count, Producer<? extends T> producer, Consumer<? super T> dispose) {
        if (workers <= 0 || prefetch <= 0) throw new IllegalArgumentException("workers and prefetch must be positive");
        if (count < 0) throw new IllegalArgumentException("negative item count: " + count);
        this.count = count;
        this.prefetch = prefetch;
        this.producer = Objects.requireNonNull(producer);
        this.dispose = Objects.requireNonNull(dispose);
        for (int t = 0; t < workers; t++) this.workers.add(Thread.ofPlatform().daemon().name(name + "-" + t).start(this::work));
    }

    /** Whether an item is left to take. */
    boolean hasNext() {
        return nextToTake < count;
    }

    /**
     * The next item in order, waiting for it if needed.
     *
     * @throws ExecutionException    making this item failed; the cause is what the producer threw. The item counts as
     *                               taken: the next call goes on with the item after it
     * @throws CancellationException the workers were closed
     */
    @SuppressWarnings("unchecked")
    T take() throws InterruptedException, ExecutionException {
        if (!hasNext()) throw new NoSuchElementException("all " + count + " items taken");
        long start = System.nanoTime();
        lock.lock();
        try {
            Object item;
            while ((item = ready.remove(nextToTake)) == null) {
                if (closed) throw new CancellationException("loader closed");
                changed.await();
            }
            nextToTake++;
            changed.signalAll();
            waitNanos += System.nanoTime() - start;
            if (item instanceof Failed f) throw new ExecutionException("item " + (nextToTake - 1) + " failed", f.cause());
            return (T) item;
        } finally {
            lock.unlock();
        }
    }

    /** Total time {@link #take()} spent waiting for the workers (and for the lock), failed items included. */
    long waitNanos() {
        return waitNanos;
    }

    private void work() {
        try {
            for (int i; (i = nextToMake.getAndIncrement()) < count; ) {
                if (!awaitRoom(i)) return;
                Object item = make(i);
                if (!offer(i, item)) {
                    disposeMade(item); // closed while it was being made: nobody will take it
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Waits until item {@code i} is within {@code prefetch} of the consumer; false when closed first. */
    private boolean awaitRoom(int i) throws InterruptedException {
        lock.lock();
        try {
            while (!closed && i >= nextToTake + prefetch) changed.await();
            return !closed;
        } finally {
            lock.unlock();
        }
    }

    private Object make(int i) {
        try {
            return Objects.requireNonNull(producer.make(i), "the producer made no item");
        } catch (Throwable t) {
            return new Failed(t);
        }
    }

    /** Puts a made item in its place for {@link #take()}; false when closed. */
    private boolean offer(int i, Object item) {
        lock.lock();
        try {
            if (closed) return false;
            ready.put(i, item);
            changed.signalAll();
            return true;
        } finally {
            lock.unlock();
        }
    }

    @SuppressWarnings("unchecked")
    private void disposeMade(Object item) {
        if (!(item instanceof Failed)) dispose.accept((T) item);
    }

    /** Stops the workers, wakes a waiting {@link #take()} and disposes of every item made but not taken. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            // Out of the map before disposal: should one dispose throw, no item is disposed of twice by a second close.
            for (Map.Entry<Integer, Object> e; (e = ready.pollFirstEntry()) != null; ) disposeMade(e.getValue());
        } finally {
            changed.signalAll();
            lock.unlock();
        }
        for (Thread t : workers) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
