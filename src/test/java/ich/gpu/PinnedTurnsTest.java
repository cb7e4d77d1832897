package ich.gpu;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Pinned memory used in turn: copies queued far behind a busy stream, from parts the host keeps rewriting, arrive
 * as they were when queued. The GPU test skips, saying why, where {@link Gpu#probe()} finds no device.
 */
class PinnedTurnsTest extends GpuContextFixture {
    @Test
    void fewerThanTwoPartsOrAnEmptyPartIsRefusedBeforeAnythingIsAllocated() {
        assertThrows(IllegalArgumentException.class, () -> new PinnedTurns(null, 1, 64));
        assertThrows(IllegalArgumentException.class, () -> new PinnedTurns(null, 2, 0));
    }

    @Test
    void copiesQueuedBehindABusyStreamFromPartsTakenInTurnArriveIntact() {
        requireGpu();
        long part = 1 << 20, copy = 300_001; // three copies fit a part (aligned), a fourth does not
        int copies = 20; // about seven laps of the two parts
        long busyBytes = 256L << 20;
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        byte[][] sent = new byte[copies][];
        try (PinnedTurns turns = new PinnedTurns(context, 2, part);
             Stream stream = context.createStream();
             DeviceBuffer busy = context.allocate(2 * busyBytes);
             DeviceBuffer received = context.allocate(copies * copy);
             PinnedBuffer back = context.allocatePinned(copies * copy)) {
            received.fill((byte) 0x5A); // poison: a copy that never ran leaves it
            // Device-to-device copies ahead of everything, so the host queues the turns' copies long before they run.
            for (int i = 0; i < 16; i++) stream.copyOnDevice(busy.pointer(), busy.pointer() + busyBytes, busyBytes);
            int inPart = 0;
            for (int i = 0; i < copies; i++) {
                sent[i] = new byte[(int) copy];
                random.nextBytes(sent[i]);
                MemorySegment staged = turns.take(copy);
                if (staged == null) {
                    assertEquals(3, inPart, "copies that fit a part before take says it is full");
                    turns.copiesQueued(stream);
                    turns.next();
                    staged = turns.take(copy);
                    inPart = 0;
                }
                assertNotNull(staged, "an emptied part holds a copy");
                assertEquals(0, staged.address() % PinnedTurns.ALIGNMENT, "each take starts on a 256-byte boundary");
                inPart++;
                MemorySegment.copy(sent[i], 0, staged, JAVA_BYTE, 0, sent[i].length);
                stream.copyToDevice(staged, received.pointer() + i * copy, copy);
            }
            turns.copiesQueued(stream);
            assertNull(turns.take(part), "a whole part does not fit after a take");
            stream.copyToHost(received, 0, back, 0, copies * copy);
            stream.synchronize();
            for (int i = 0; i < copies; i++) {
                MemorySegment arrived = back.segment().asSlice(i * copy, copy);
                assertEquals(-1, arrived.mismatch(MemorySegment.ofArray(sent[i])), "copy " + i + " differs from what was queued");
            }
        }
    }
}
