package ich.nn;

import ich.nn.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tensor storages: sizes, which reshapes keep their meaning, and that the host and the CPU backend stay fp32. */
class StorageTest {

    /** A device-style tensor (not dereferenced): only its shape, storage and byte count matter here. */
    private static Tensor onDevice(Storage storage, int... shape) {
        return Tensor.wrap(MemorySegment.ofAddress(4096), false, storage, shape);
    }

    @Test
    void bf16HalvesTheBytes() {
        assertEquals(2 * 3 * 4 * 5 * 4, onDevice(Storage.FLOAT32, 2, 3, 4, 5).bytes());
        assertEquals(2 * 3 * 4 * 5 * 2, onDevice(Storage.BF16_NHWC, 2, 3, 4, 5).bytes());
        assertTrue(onDevice(Storage.BF16_NHWC, 2, 3, 4, 5).toString().contains("bf16 NHWC"));
    }

    @Test
    void channelsLastReshapesOnlyWhereBothOrdersAgree() {
        Tensor pooledShape = onDevice(Storage.BF16_NHWC, 8, 16, 1, 1);
        Tensor flat = pooledShape.reshape(8, 16);
        assertEquals(new Storage(Storage.DType.BFLOAT16, false), flat.storage(), "[n, c] has one order");
        assertEquals(Storage.BF16_NHWC, pooledShape.reshape(8, 16, 1, 1).storage());
        Tensor planes = onDevice(Storage.BF16_NHWC, 2, 3, 4, 5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> planes.reshape(6, 20));
        assertTrue(e.getMessage().contains("row-major"), e.getMessage());
        assertFalse(Storage.BF16_NHWC.rowMajorFor(new int[] {2, 3, 4, 5}));
        assertTrue(Storage.BF16_NHWC.rowMajorFor(new int[] {2, 1, 4, 5}), "one channel: NCHW and NHWC coincide");
        assertThrows(IllegalArgumentException.class, () -> onDevice(Storage.BF16_NHWC, 6, 20), "channels-last needs 4 dims");
    }

    @Test
    void hostTensorsAndTheCpuBackendAreFp32() {
        try (Arena arena = Arena.ofConfined(); CpuBackend cpu = new CpuBackend(1)) {
            MemorySegment memory = arena.allocate(1024);
            IllegalArgumentException host = assertThrows(IllegalArgumentException.class,
                    () -> Tensor.wrap(memory, true, Storage.BF16_NHWC, 1, 2, 3, 4));
            assertTrue(host.getMessage().contains("fp32"), host.getMessage());
            assertEquals(Storage.FLOAT32, cpu.activationStorage());
            assertEquals(Storage.FLOAT32, cpu.allocate(arena, Storage.FLOAT32, 2, 3).storage());
            IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                    () -> cpu.allocateUninitialized(arena, Storage.BF16_NHWC, 1, 2, 3, 4));
            assertTrue(refused.getMessage().contains("fp32 only"), refused.getMessage());
        }
    }
}
