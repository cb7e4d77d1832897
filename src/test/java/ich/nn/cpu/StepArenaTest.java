package ich.nn.cpu;

import ich.nn.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;

import static org.junit.jupiter.api.Assertions.*;

/** The CPU backend's recycled step arenas: same memory next step, zeros where asked, no use after the step. */
class StepArenaTest {
    @Test
    void aStepReusesTheMemoryOfTheLastOneAndZeroesOnlyWhereAsked() {
        try (CpuBackend cpu = new CpuBackend(2)) {
            long address;
            try (Arena step = cpu.stepArena()) {
                Tensor t = cpu.allocateUninitialized(step, 4, 1000);
                t.fill(7f);
                address = t.data().address();
            }
            try (Arena step = cpu.stepArena()) {
                Tensor recycled = cpu.allocateUninitialized(step, 4, 1000);
                assertEquals(address, recycled.data().address(), "the next step slices the same chunk");
                assertEquals(7f, recycled.get(3999), "uninitialised means not zeroed");
                Tensor zeroed = cpu.allocate(step, 10);
                assertEquals(0, zeroed.data().address() % Tensor.ALIGNMENT);
                for (long i = 0; i < zeroed.size(); i++) assertEquals(0f, zeroed.get(i));
            }
        }
    }

    @Test
    void tensorsDoNotOverlapAndDieWithTheirStep() {
        try (CpuBackend cpu = new CpuBackend(2)) {
            Tensor a, big;
            try (Arena step = cpu.stepArena()) {
                a = cpu.allocateUninitialized(step, 3);
                Tensor b = cpu.allocateUninitialized(step, 5);
                // Larger than a chunk: gets a chunk of its own.
                big = cpu.allocateUninitialized(step, (int) (StepArena.CHUNK / Float.BYTES) + 16);
                assertTrue(b.data().address() >= a.data().address() + a.bytes());
                a.fill(1f);
                b.fill(2f);
                big.set(big.size() - 1, 3f);
                assertEquals(1f, a.get(2));
                assertEquals(3f, big.get(big.size() - 1));
            }
            assertThrows(IllegalStateException.class, () -> a.get(0));
            assertThrows(IllegalStateException.class, () -> big.get(0));
        }
    }
}
