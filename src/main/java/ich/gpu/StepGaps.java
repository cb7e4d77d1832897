package ich.gpu;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * How long a stream sat idle between steps that the host queues one after another: the GPU's own measure of
 * "waiting for data". The host's wait for its loader says less when it queues ahead: while it waits, the device may
 * still be running the step queued before, and only the part of the wait that outlasts that step leaves the
 * device idle. So an event is recorded after each step's work ({@link #stepQueued}) and another before the next
 * step's first work ({@link #stepBegins}). Queued early, the second runs right after the first; queued late, it runs
 * when queued. So the time between the two is the stream's idle time between the steps, whatever kept the host:
 * its loader, or its own work, such as capturing a CUDA graph.
 *
 * <p>Events are reused in turn: pair {@code i} is read back before it is recorded again, which waits only when the
 * host runs {@link #PAIRS} steps ahead of the device. Not thread-safe: the thread that queues the steps calls it,
 * never while that thread captures a stream (the driver refuses an event wait then).
 */
public final class StepGaps implements AutoCloseable {
    /** Pairs of events in turn; a training loop is one step ahead of its device, so two would do. */
    static final int PAIRS = 4;

    private final Event[] ends = new Event[PAIRS], starts = new Event[PAIRS];
    private final boolean[] pending = new boolean[PAIRS];
    private int pair;
    private boolean endRecorded;
    private double idleMillis;
    private int gaps;
    private boolean closed;

    public StepGaps(Context context) {
        try {
            for (int i = 0; i < PAIRS; i++) {
                ends[i] = context.createEvent();
                starts[i] = context.createEvent();
            }
        } catch (RuntimeException e) {
            Closing.closeEach(e, events());
            throw e;
        }
    }

    /** Marks the end of a step's work, queued on {@code stream} so far. */
    public void stepQueued(Stream stream) {
        checkOpen();
        if (pending[pair]) collect(pair); // its events are about to be recorded again
        stream.record(ends[pair]);
        endRecorded = true;
    }

    /**
     * Marks the start of the next step's work on {@code stream}, before the host queues any of it; the time since the
     * last {@link #stepQueued} on the device counts. Does nothing before the first step of a run.
     */
    public void stepBegins(Stream stream) {
        checkOpen();
        if (!endRecorded) return;
        stream.record(starts[pair]);
        pending[pair] = true;
        endRecorded = false;
        pair = (pair + 1) % PAIRS;
    }

    /**
     * Ends a run of steps (an epoch): waits for the gaps still on the device and returns the run's idle time in
     * seconds; the next {@link #stepBegins} starts a new run, so the time between runs (validation, say) does not
     * count.
     */
    public double drainSeconds() {
        checkOpen();
        for (int i = 0; i < PAIRS; i++) if (pending[i]) collect(i);
        double seconds = idleMillis / 1e3;
        idleMillis = 0;
        endRecorded = false;
        return seconds;
    }

    /** Gaps measured since this object was made. */
    public int gapsCounted() {
        return gaps;
    }

    private void collect(int i) {
        starts[i].synchronize();
        idleMillis += starts[i].millisSince(ends[i]);
        gaps++;
        pending[i] = false;
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("step gaps: closed");
    }

    /** Frees the events (the driver releases one still pending on a stream once it completes). */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Closing.closeAll(events());
    }

    /** Every event, those not made yet as nulls. */
    private List<Event> events() {
        List<Event> all = new ArrayList<>(Arrays.asList(ends));
        all.addAll(Arrays.asList(starts));
        return all;
    }
}
