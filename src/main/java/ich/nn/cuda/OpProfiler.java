package ich.nn.cuda;

import ich.gpu.Closing;
import ich.gpu.Context;
import ich.gpu.Event;
import ich.gpu.Stream;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * GPU time per op of eager steps: a CUDA event is recorded on the compute stream before and after each op the
 * backend queues, and the time between the two is added to the op's total. Events are read (which waits for the
 * device) every {@link #DRAIN_EVERY} ops and at the end, then reused, so a long profile holds a bounded number of
 * them. The reads make the host wait now and then, and an event pair costs a few microseconds of launch overhead
 * per op: the profile says where the device time goes, not how fast an unprofiled step runs.
 */
final class OpProfiler implements AutoCloseable {
    /** Ops timed between two reads of their events. */
    static final int DRAIN_EVERY = 1024;

    private record Timed(String op, Event start, Event end) {}

    private static final class Total {
        long calls;
        double millis;
    }

    private final Context context;
    private final Stream stream;
    private final ArrayDeque<Event> spare = new ArrayDeque<>();
    private final List<Timed> pending = new ArrayList<>();
    private final Map<String, Total> totals = new LinkedHashMap<>();

    OpProfiler(Context context, Stream stream) {
        this.context = context;
        this.stream = stream;
    }

    /** Runs {@code work}, which queues one op on the stream, between two events. */
    void time(String op, Runnable work) {
        Event start = take(), end = take();
        stream.record(start);
        try {
            work.run();
        } catch (RuntimeException e) {
            spare.push(start);
            spare.push(end);
            throw e;
        }
        stream.record(end);
        pending.add(new Timed(op, start, end));
        if (pending.size() >= DRAIN_EVERY) drain();
    }

    /** The totals so far, the longest first; waits for the ops still running. */
    List<CudaBackend.OpTime> totals() {
        drain();
        List<CudaBackend.OpTime> out = new ArrayList<>();
        totals.forEach((op, t) -> out.add(new CudaBackend.OpTime(op, t.calls, t.millis)));
        out.sort(Comparator.comparingDouble(CudaBackend.OpTime::millis).reversed().thenComparing(CudaBackend.OpTime::op));
        return out;
    }

    private Event take() {
        return spare.isEmpty() ? context.createEvent() : spare.pop();
    }

    private void drain() {
        if (pending.isEmpty()) return;
        pending.getLast().end().synchronize(); // events complete in stream order
        for (Timed t : pending) {
            Total total = totals.computeIfAbsent(t.op(), k -> new Total());
            total.calls++;
            total.millis += t.end().millisSince(t.start());
            spare.push(t.start());
            spare.push(t.end());
        }
        pending.clear();
    }

    @Override
    public void close() {
        List<Event> all = new ArrayList<>(spare);
        for (Timed t : pending) {
            all.add(t.start());
            all.add(t.end());
        }
        spare.clear();
        pending.clear();
        Closing.closeAll(all);
    }
}
