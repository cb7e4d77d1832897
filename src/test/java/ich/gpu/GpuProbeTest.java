package ich.gpu;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GpuProbeTest {
    @Test
    void probeNeverThrowsAndSaysWhatItFound() {
        Gpu.Probe probe = Gpu.probe();
        List<String> lines = probe.lines();
        System.out.println(String.join("\n", lines));
        assertEquals(3, probe.libraries().size());
        switch (probe) {
            case Gpu.Unavailable u -> {
                assertFalse(u.reason().isBlank());
                assertEquals("gpu       none: " + u.reason(), lines.getFirst());
            }
            case Gpu.Available a -> {
                assertFalse(a.devices().isEmpty());
                assertTrue(a.cudaVersion() >= 1000, "cuDriverGetVersion: " + a.cudaVersion());
                for (Gpu.Device d : a.devices()) {
                    assertTrue(d.ccMajor() >= 3 && d.multiprocessors() > 0 && d.totalMemory() > 0, d.toString());
                }
            }
        }
    }

    @Test
    void unavailableReportsTheReasonAndTheMissingLibraries() {
        List<NativeLibraries.Result> none = List.of(
                new NativeLibraries.NotFound(NativeLibraries.CUDNN, "libcudnn.so.9 not found", List.of()),
                new NativeLibraries.NotFound(NativeLibraries.CUBLAS, "libcublas.so.13 not found", List.of()),
                new NativeLibraries.NotFound(NativeLibraries.TENSORRT, "libnvinfer.so.10 not found", List.of()));
        assertEquals(List.of("gpu       none: libcuda.so.1 not found (looked at ICH_LIBCUDA (unset))",
                        "cudnn/cublas/tensorrt: not found"),
                new Gpu.Unavailable("libcuda.so.1 not found (looked at ICH_LIBCUDA (unset))", none).lines());
    }

    @Test
    void availableListsDevicesAndEachLibrary() {
        List<NativeLibraries.Result> libs = List.of(
                new NativeLibraries.Found(NativeLibraries.CUDNN, "libcudnn.so.9", null, "system loader"),
                new NativeLibraries.NotFound(NativeLibraries.CUBLAS, "libcublas.so.13 not found", List.of("CUDA_HOME (unset)")),
                new NativeLibraries.NotFound(NativeLibraries.TENSORRT, "libnvinfer.so.10 not found", List.of()));
        Gpu.Available a = new Gpu.Available(List.of(new Gpu.Device(0, "NVIDIA H100", 9, 0, 132, 80L << 30)), 13000,
                "580.1", libs);
        assertEquals(List.of("gpu       1 device, CUDA 13.0 (driver API), driver 580.1",
                "gpu 0     NVIDIA H100, compute capability 9.0, 132 SMs, 80.0 GiB",
                "cudnn     libcudnn.so.9 (system loader)",
                "cublas    libcublas.so.13 not found (looked at CUDA_HOME (unset))",
                "tensorrt  libnvinfer.so.10 not found"), a.lines());
    }
}
