package ich.gpu;

/**
 * A CUDA driver or NVML call returned an error. Carries the status, the function, the library's own name for
 * the error (e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}) and its text, and for a module load the JIT error log.
 */
public final class CudaException extends RuntimeException {
    private final int status;
    private final String function;
    private final String name;
    private final String message;

    public CudaException(int status, String function, String name, String message) {
        this(status, function, name, message, null);
    }

    /** @param log extra output from the library (the JIT error log), or null */
    public CudaException(int status, String function, String name, String message, String log) {
        super(format(status, function, name, message, log));
        this.status = status;
        this.function = function;
        this.name = name;
        this.message = message;
    }

    /** E.g. {@code cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory}, then the log. */
    static String format(int status, String function, String name, String message, String log) {
        StringBuilder s = new StringBuilder().append(function).append(" failed: ").append(name)
                .append(" (").append(status).append(')');
        if (message != null && !message.isBlank() && !message.equals(name)) s.append(": ").append(message);
        if (log != null && !log.isBlank()) s.append('\n').append(log.strip());
        return s.toString();
    }

    public int status() {
        return status;
    }

    public String function() {
        return function;
    }

    /** The library's name for the status, e.g. {@code CUDA_ERROR_INVALID_PTX}. */
    public String name() {
        return name;
    }

    /** The library's description of the status, without the function and the log. */
    public String errorMessage() {
        return message;
    }

    /**
     * Whether the device ran out of memory: the driver's CUDA_ERROR_OUT_OF_MEMORY, cuBLAS's ALLOC_FAILED or
     * cuDNN's INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED (a smaller batch may fit where nothing else is wrong).
     */
    public boolean outOfMemory() {
        return name != null && (name.equals("CUDA_ERROR_OUT_OF_MEMORY") || name.equals("CUBLAS_STATUS_ALLOC_FAILED")
                || name.equals("CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"));
    }
}
