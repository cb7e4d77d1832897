package ich.io;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/** A function over a list on a fixed number of threads, results in the list's order (header scans of many files). */
public final class Parallel {
    private Parallel() {}

    /**
     * {@code f} applied to every item on {@code threads} threads; the items are handed out one at a time, so a slow
     * file does not hold up a whole share. {@code f} should not throw for a bad item (return an outcome instead);
     * if it does, the exception ends the call.
     */
    public static <T, R> List<R> map(List<T> items, int threads, Function<T, R> f) throws InterruptedException {
        Object[] results = new Object[items.size()];
        AtomicInteger next = new AtomicInteger();
        int workers = Math.max(1, Math.min(threads, items.size()));
        try (ExecutorService pool = Executors.newFixedThreadPool(workers)) {
            List<Future<?>> jobs = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                jobs.add(pool.submit(() -> {
                    for (int i; (i = next.getAndIncrement()) < results.length; ) results[i] = f.apply(items.get(i));
                }));
            }
            for (Future<?> job : jobs) {
                try {
                    job.get();
                } catch (ExecutionException e) {
                    throw new IllegalStateException("parallel task failed: " + e.getCause(), e.getCause());
                }
            }
        }
        @SuppressWarnings("unchecked")
        List<R> list = (List<R>) (List<?>) java.util.Arrays.asList(results);
        return list;
    }
}
