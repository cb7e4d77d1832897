package ich.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The worker pool under both batch loaders: order whatever the timing, the prefetch bound, failures at their own
 * turn, close with workers waiting or busy, and the consumer's waiting time. Liveness is checked with generous
 * deadlines only; nothing here measures speed.
 */
@Timeout(120)
class OrderedWorkersTest {
    /** An item: the index it was made for, so order and disposal can be checked. */
    record Item(int index) {}

    private final List<Integer> disposed = Collections.synchronizedList(new ArrayList<>());

    private OrderedWorkers<Item> start(int workers, int prefetch, int count, OrderedWorkers.Producer<Item> producer) {
        return new OrderedWorkers<>("test-worker", workers, prefetch, count, producer, item -> disposed.add(item.index()));
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) fail("gave up waiting: " + what);
            Thread.sleep(1);
        }
    }

    private static void awaitWaiting(Thread thread) throws InterruptedException {
        await(() -> thread.getState() == Thread.State.WAITING, thread.getName() + " waiting");
    }

    @Test
    void itemsComeInOrderWhateverTheWorkersAndTheirDelays() throws Exception {
        int count = 40;
        for (int[] wp : new int[][] {{1, 1}, {3, 2}, {5, 4}, {4, 9}, {2, 50}}) {
            int workers = wp[0], prefetch = wp[1];
            String what = workers + " workers, prefetch " + prefetch;
            try (OrderedWorkers<Item> items = start(workers, prefetch, count, i -> {
                Thread.sleep(new Random(i * 7919L + workers).nextInt(4)); // finish out of order
                return new Item(i);
            })) {
                for (int k = 0; k < count; k++) {
                    assertTrue(items.hasNext(), what);
                    assertEquals(k, items.take().index(), what);
                }
                assertFalse(items.hasNext(), what);
                assertThrows(NoSuchElementException.class, items::take, what);
            }
            assertEquals(List.of(), disposed, what + ": every item was taken");
        }
    }

    @Test
    void noItemsMeansNothingToTake() throws Exception {
        try (OrderedWorkers<Item> items = start(2, 2, 0, i -> fail("made item " + i))) {
            assertFalse(items.hasNext());
            assertThrows(NoSuchElementException.class, items::take);
        }
        assertThrows(IllegalArgumentException.class, () -> start(0, 1, 3, Item::new));
        assertThrows(IllegalArgumentException.class, () -> start(1, 0, 3, Item::new));
    }

    @Test
    void atMostPrefetchItemsAreInFlightAheadOfTheConsumer() throws Exception {
        int count = 12, prefetch = 3;
        AtomicInteger started = new AtomicInteger(), highest = new AtomicInteger(-1);
        try (OrderedWorkers<Item> items = start(5, prefetch, count, i -> {
            started.incrementAndGet();
            highest.accumulateAndGet(i, Math::max);
            return new Item(i);
        })) {
            for (int k = 0; k < count; k++) {
                int taken = k, expected = Math.min(prefetch, count - k);
                // More workers than the window: they fill it and then wait, idle, for the consumer.
                await(() -> started.get() - taken >= expected, "the window after " + k + " taken");
                Thread.sleep(20); // room for a worker to overstep, were it allowed to
                assertEquals(expected, started.get() - taken, "items begun and not taken after " + k + " taken");
                assertEquals(taken + expected - 1, highest.get(), "highest item begun after " + k + " taken");
                assertEquals(k, items.take().index());
            }
        }
    }

    @Test
    void aFailureIsThrownAtItsOwnTurnAfterTheItemsBeforeIt() throws Exception {
        IOException broken = new IOException("item 3 is broken");
        Error fatal = new Error("item 5 is fatal");
        CountDownLatch failed = new CountDownLatch(1);
        try (OrderedWorkers<Item> items = start(4, 4, 8, i -> {
            switch (i) {
                case 0, 1, 2 -> assertTrue(failed.await(20, TimeUnit.SECONDS)); // done only after item 3 failed
                case 3 -> {
                    failed.countDown();
                    throw broken;
                }
                case 5 -> throw fatal;
                default -> { }
            }
            return new Item(i);
        })) {
            for (int k = 0; k < 3; k++) assertEquals(k, items.take().index());
            var e3 = assertThrows(ExecutionException.class, items::take);
            assertSame(broken, e3.getCause());
            assertEquals(4, items.take().index());
            var e5 = assertThrows(ExecutionException.class, items::take);
            assertSame(fatal, e5.getCause());
            assertEquals(6, items.take().index());
            assertEquals(7, items.take().index());
            assertFalse(items.hasNext());
        }
        assertEquals(List.of(), disposed);
    }

    @Test
    void closeWhileWorkersWaitForRoomDisposesOfTheUntakenItemsOnce() throws Exception {
        AtomicInteger made = new AtomicInteger();
        OrderedWorkers<Item> items = start(4, 3, 100, i -> {
            made.incrementAndGet();
            return new Item(i);
        });
        Item first = items.take();
        await(() -> made.get() == 4, "items 1 to 3 made");
        assertTimeoutPreemptively(Duration.ofSeconds(20), items::close);
        disposed.sort(null);
        assertEquals(List.of(1, 2, 3), disposed, "item 0 was taken: the consumer's to dispose of");
        assertEquals(4, made.get(), "no item made after close");
        assertEquals(0, first.index());
        var closed = assertThrows(CancellationException.class, items::take);
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
        items.close();
        assertEquals(List.of(1, 2, 3), disposed, "a second close disposes of nothing again");
    }

    @Test
    void closeWakesAWaitingConsumerAndWaitsForTheItemBeingMade() throws Exception {
        CountDownLatch makingTwo = new CountDownLatch(1), finishTwo = new CountDownLatch(1);
        AtomicInteger made = new AtomicInteger();
        OrderedWorkers<Item> items = start(2, 4, 10, i -> {
            if (i == 2) {
                makingTwo.countDown();
                assertTrue(finishTwo.await(20, TimeUnit.SECONDS));
            }
            made.incrementAndGet();
            return new Item(i);
        });
        assertEquals(0, items.take().index());
        assertEquals(1, items.take().index());
        assertTrue(makingTwo.await(20, TimeUnit.SECONDS));
        await(() -> made.get() == 5, "items 3 to 5 made while item 2 is being made");

        AtomicReference<Throwable> consumerSaw = new AtomicReference<>();
        Thread consumer = Thread.ofPlatform().name("consumer").start(() -> {
            try {
                consumerSaw.set(new AssertionError("took " + items.take()));
            } catch (Throwable t) {
                consumerSaw.set(t);
            }
        });
        awaitWaiting(consumer);
        Thread closer = Thread.ofPlatform().name("closer").start(items::close);
        consumer.join(TimeUnit.SECONDS.toMillis(20));
        assertInstanceOf(CancellationException.class, consumerSaw.get(), "the consumer is woken by close");

        closer.join(200);
        assertTrue(closer.isAlive(), "close waits for the worker still making item 2");
        finishTwo.countDown();
        closer.join(TimeUnit.SECONDS.toMillis(20));
        assertFalse(closer.isAlive());
        disposed.sort(null);
        assertEquals(List.of(2, 3, 4, 5), disposed, "items 3 to 5 by close, item 2 by its worker");
        assertEquals(6, made.get());
    }

    @Test
    void theConsumersWaitForSlowProducersIsCounted() throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        try (OrderedWorkers<Item> items = start(2, 2, 3, i -> {
            if (i == 0) assertTrue(go.await(20, TimeUnit.SECONDS));
            return new Item(i);
        })) {
            assertEquals(0, items.waitNanos());
            long[] outside = new long[1];
            Thread consumer = Thread.ofPlatform().name("consumer").start(() -> {
                long t = System.nanoTime();
                try {
                    items.take();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
                outside[0] = System.nanoTime() - t;
            });
            awaitWaiting(consumer); // in take(), waiting for item 0
            Thread.sleep(50);
            go.countDown();
            consumer.join();
            long waited = items.waitNanos();
            assertTrue(waited >= TimeUnit.MILLISECONDS.toNanos(50), "waited " + waited + " ns while item 0 was held back 50 ms");
            assertTrue(waited <= outside[0], "waited " + waited + " ns within a take() of " + outside[0] + " ns");
        }
    }
}
