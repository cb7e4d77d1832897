package ich.gpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CudaExceptionTest {
    @Test
    void carriesTheLibrarysNameAndText() {
        CudaException e = new CudaException(2, "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        assertEquals("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", e.getMessage());
        assertEquals(2, e.status());
        assertEquals("cuMemAlloc_v2", e.function());
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", e.name());
        assertEquals("out of memory", e.errorMessage());
    }

    @Test
    void appendsTheJitLog() {
        CudaException e = new CudaException(218, "cuModuleLoadDataEx", "CUDA_ERROR_INVALID_PTX",
                "a PTX JIT compilation failed", "JIT error log:\nptxas application ptx input, line 3; error   : syntax\n");
        assertEquals("cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_PTX (218): a PTX JIT compilation failed\n"
                + "JIT error log:\nptxas application ptx input, line 3; error   : syntax", e.getMessage());
    }

    @Test
    void doesNotRepeatAMissingOrEchoedText() {
        assertEquals("nvmlInit_v2 failed: NVML_ERROR_DRIVER_NOT_LOADED (9)",
                new CudaException(9, "nvmlInit_v2", "NVML_ERROR_DRIVER_NOT_LOADED", "").getMessage());
        assertEquals("cuInit failed: CUDA_ERROR_100 (100)",
                new CudaException(100, "cuInit", "CUDA_ERROR_100", "CUDA_ERROR_100").getMessage());
    }

    @Test
    void outOfDeviceMemoryIsRecognisedFromAnyLibrary() {
        for (CudaException e : new CudaException[] {
                new CudaException(2, "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
                new CudaException(3, "cublasGemmEx", "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"),
                new CudaException(4004, "cudnnConvolutionForward", "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED", "")}) {
            assertTrue(e.outOfMemory(), e.getMessage());
        }
        assertFalse(new CudaException(700, "cuStreamSynchronize", "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access").outOfMemory());
    }
}
