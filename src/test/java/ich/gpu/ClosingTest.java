package ich.gpu;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ClosingTest {
    /** Records its close in {@code log}, then fails with {@code failure} when there is one. */
    private static AutoCloseable resource(String name, List<String> log, Exception failure) {
        return () -> {
            log.add(name);
            if (failure != null) throw failure;
        };
    }

    @Test
    void everyResourceIsClosedInOrderAndTheFirstFailureCarriesTheOthers() {
        List<String> log = new ArrayList<>();
        IllegalStateException first = new IllegalStateException("first");
        Exception checked = new Exception("checked");
        IllegalArgumentException third = new IllegalArgumentException("third");
        RuntimeException thrown = assertThrows(RuntimeException.class, () -> Closing.closeAll(Arrays.asList(
                resource("a", log, null), null, resource("b", log, first), resource("c", log, checked),
                resource("d", log, null), resource("e", log, third))));
        assertEquals(List.of("a", "b", "c", "d", "e"), log, "a failure does not stop the later closes; nulls are skipped");
        assertSame(first, thrown);
        assertArrayEquals(new Throwable[] {checked, third}, thrown.getSuppressed());
    }

    @Test
    void aCheckedFirstFailureIsWrappedAndAnEarlierFailureKeepsEveryOne() {
        Exception checked = new Exception("checked");
        RuntimeException wrapped = Closing.closeEach(null, List.of(resource("a", new ArrayList<>(), checked)));
        assertInstanceOf(IllegalStateException.class, wrapped);
        assertSame(checked, wrapped.getCause());

        RuntimeException earlier = new RuntimeException("earlier");
        IllegalStateException later = new IllegalStateException("later");
        assertSame(earlier, Closing.closeEach(earlier, List.of(resource("a", new ArrayList<>(), later))));
        assertArrayEquals(new Throwable[] {later}, earlier.getSuppressed());

        assertNull(Closing.closeEach(null, List.of(resource("a", new ArrayList<>(), null))), "nothing failed");
    }
}
