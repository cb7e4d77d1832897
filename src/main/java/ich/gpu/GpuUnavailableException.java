package ich.gpu;

/** No usable GPU: the driver library is missing, cannot be loaded, or finds no device. The message says why. */
public final class GpuUnavailableException extends RuntimeException {
    public GpuUnavailableException(String reason) {
        super(reason);
    }
}
