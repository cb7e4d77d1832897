package ich.nn;

import ich.gpu.Gpu;
import ich.gpu.GpuUnavailableException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class DeviceTest {

    @Test
    void parsesWhatUsersType() {
        assertEquals(new Device.Cpu(3), Device.parse("cpu", 3));
        assertEquals(new Device.Cpu(3), Device.parse(" CPU ", 3));
        assertEquals(new Device.Gpu(0), Device.parse("gpu", 3));
        assertEquals(new Device.Gpu(0), Device.parse("cuda", 3));
        assertEquals(new Device.Gpu(2), Device.parse("gpu:2", 3));
        assertEquals(new Device.Gpu(1), Device.parse("cuda:1", 3));
        assertEquals("gpu:2", Device.parse("gpu:2", 1).label());
        assertEquals("cpu", Device.parse("cpu", 1).label());
    }

    @Test
    void rejectsOtherTextNamingWhatIsAccepted() {
        for (String bad : new String[] {"", "tpu", "gpu:", "gpu:x", "gpu:-1", "gpu0"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Device.parse(bad, 1), bad);
            assertTrue(e.getMessage().contains("cpu, gpu or gpu:N") || e.getMessage().contains(">= 0"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Device.parse(null, 1));
        assertThrows(IllegalArgumentException.class, () -> new Device.Cpu(0));
    }

    @Test
    void precisionsParseAndShowInTheLabel() {
        assertEquals(Device.Precision.BF16, Device.Precision.parse(" bf16 "));
        assertEquals(Device.Precision.TF32, Device.Precision.parse("TF32"));
        assertThrows(IllegalArgumentException.class, () -> Device.Precision.parse("fp16"));
        Device.Gpu gpu = new Device.Gpu(1);
        assertEquals(Device.Precision.FP32, gpu.precision());
        assertEquals("gpu:1 (bf16)", gpu.withPrecision(Device.Precision.BF16).label());
        assertTrue(gpu.withTf32(true).allowTf32());
        assertEquals(gpu.withTf32(true), gpu.withPrecision(Device.Precision.TF32));
        // every with* keeps the other settings
        Device.Gpu all = gpu.withCudaGraphs(true).withReproducible(true).withPrecision(Device.Precision.BF16);
        assertEquals("gpu:1 (bf16) (CUDA graphs) (reproducible)", all.label());
        assertTrue(all.withTf32(true).reproducible() && all.withTf32(true).cudaGraphs());
        assertFalse(all.withReproducible(false).label().contains("reproducible"));
    }

    @Test
    void theCpuComputesInFp32Only() {
        Device cpu = Device.parse("cpu", 2);
        assertEquals(cpu, cpu.withPrecision(Device.Precision.FP32));
        for (Device.Precision p : new Device.Precision[] {Device.Precision.TF32, Device.Precision.BF16}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cpu.withPrecision(p));
            assertEquals("needs --device gpu (the device is cpu)", e.getMessage());
        }
    }

    @Test
    void theCpuBackendOpens() {
        try (Backend b = Device.parse("cpu", 1).open()) {
            assertTrue(b.name().startsWith("cpu"), b.name());
        }
    }

    /** On a machine without a GPU (CI), asking for one is a clear error, not a crash. */
    @Test
    void aGpuWithoutOneSaysWhy() {
        assumeTrue(Gpu.probe() instanceof Gpu.Unavailable, "a GPU is present: CudaBackendTest covers opening it");
        GpuUnavailableException e = assertThrows(GpuUnavailableException.class, () -> Device.parse("gpu", 1).open());
        assertTrue(!e.getMessage().isBlank(), "the reason is given");
    }
}
