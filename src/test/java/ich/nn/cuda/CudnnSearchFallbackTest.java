package ich.nn.cuda;

import ich.gpu.CudaException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Which cuDNN search failures let a depthwise convolution fall back to our kernel: the "not supported" family
 * (cuDNN 9's 3000-3999), never a failure of the call itself. Needs no GPU: the statuses are cuDNN's documented
 * numbers and names (cudnnStatus_t, cuDNN 9).
 */
class CudnnSearchFallbackTest {
    private static CudaException cudnn(int status, String name) {
        return new CudaException(status, "cudnnFindConvolutionForwardAlgorithmEx", name, "text");
    }

    @Test
    void notSupportedStatusesLetOurKernelTakeOver() {
        assertTrue(CudaBackend.notSupported(cudnn(3000, "CUDNN_STATUS_NOT_SUPPORTED")));
        assertTrue(CudaBackend.notSupported(cudnn(3004, "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT")));
        assertTrue(CudaBackend.notSupported(cudnn(3007, "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH")));
        assertTrue(CudaBackend.notSupported(cudnn(3999, "CUDNN_STATUS_3999")), "a sub-code this build has no name for");
    }

    @Test
    void failuresOfTheCallStillThrow() {
        assertFalse(CudaBackend.notSupported(cudnn(2000, "CUDNN_STATUS_BAD_PARAM")));
        assertFalse(CudaBackend.notSupported(cudnn(4000, "CUDNN_STATUS_INTERNAL_ERROR")));
        assertFalse(CudaBackend.notSupported(cudnn(5000, "CUDNN_STATUS_EXECUTION_FAILED")));
        assertFalse(CudaBackend.notSupported(cudnn(1001, "CUDNN_STATUS_NOT_INITIALIZED")));
        assertFalse(CudaBackend.notSupported(new CudaException(3000, "cuLaunchKernel", "CUDA_ERROR_3000", "text")),
                "a driver status that happens to be 3000 is not cuDNN's");
    }
}
