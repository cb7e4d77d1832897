package ich.cli;

import ich.gpu.CudaException;
import ich.nn.Device;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceOptionsTest {
    @Test
    void outOfDeviceMemoryFromAnyLibrarySuggestsASmallerBatch() {
        Device fp32 = new Device.Gpu(0), bf16 = new Device.Gpu(0).withPrecision(Device.Precision.BF16);
        for (CudaException e : new CudaException[] {
                new CudaException(2, "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
                new CudaException(3, "cublasGemmEx", "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"),
                new CudaException(4004, "cudnnConvolutionForward", "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED", "")}) {
            String onFp32 = DeviceOptions.outOfMemoryHint(e, 256, fp32), onBf16 = DeviceOptions.outOfMemoryHint(e, 256, bf16);
            assertTrue(onFp32.contains("a batch of 256: try a smaller --batch, or --precision bf16"), onFp32);
            assertTrue(onBf16.contains("try a smaller --batch") && !onBf16.contains("--precision"), onBf16);
            // wrapped, as a loader thread's failure reaches the command
            assertEquals(onFp32, DeviceOptions.outOfMemoryHint(new IllegalStateException("step failed", e), 256, fp32));
        }
        CudaException other = new CudaException(700, "cuStreamSynchronize", "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access");
        assertEquals("", DeviceOptions.outOfMemoryHint(other, 256, fp32));
        assertEquals("", DeviceOptions.outOfMemoryHint(new IllegalArgumentException("bad"), 256, fp32));
    }

    @Test
    void theCpuComputesInFp32AndAGpuInWhatItWasGiven() {
        assertEquals(Device.Precision.FP32, new Device.Cpu(2).precision());
        assertEquals(Device.Precision.BF16, DeviceOptions.resolve("gpu", "bf16", 2).precision());
        assertEquals(Device.Precision.FP32, DeviceOptions.resolve("gpu", null, 2).precision());
    }
}
