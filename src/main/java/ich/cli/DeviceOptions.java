package ich.cli;

import ich.gpu.CudaException;
import ich.nn.Device;

/**
 * The {@code --device} and {@code --precision} options of the commands that run the engine (train, score, bench
 * train, bench ops), read the same way by each, with errors that name the option at fault.
 */
final class DeviceOptions {
    private DeviceOptions() {}

    /**
     * {@code device} ("cpu", "gpu", "gpu:N") computing in {@code precision} ("fp32", "tf32", "bf16"; null keeps the
     * device's default, fp32).
     *
     * @param precisionOption how the user asked for the precision, for the message when the device cannot compute in
     *                        it: "--precision bf16", or another option that implies one ("--tf32")
     * @throws IllegalArgumentException naming the option: "--device: unknown device 'tpu': use cpu, gpu or gpu:N",
     *                                  "--precision: unknown precision 'fp8': use fp32, tf32 or bf16", "--precision
     *                                  bf16 needs --device gpu (the device is cpu)"
     */
    static Device resolve(String device, String precision, String precisionOption, int threads) {
        Device where;
        try {
            where = Device.parse(device, threads);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--device: " + e.getMessage(), e);
        }
        if (precision == null) return where;
        Device.Precision p;
        try {
            p = Device.Precision.parse(precision);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--precision: " + e.getMessage(), e);
        }
        try {
            return where.withPrecision(p);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException((precisionOption != null ? precisionOption : "--precision " + p) + " " + e.getMessage(), e);
        }
    }

    /** {@link #resolve} with the precision asked for by {@code --precision} itself. */
    static Device resolve(String device, String precision, int threads) {
        return resolve(device, precision, null, threads);
    }

    /**
     * What a user can do when {@code e}, or an exception it caused, is a {@link CudaException#outOfMemory} on
     * {@code device}: a smaller batch, and bf16 unless the device computes in it already ("" otherwise). For the
     * commands that train or score on a GPU.
     */
    static String outOfMemoryHint(Throwable e, int batch, Device device) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CudaException c && c.outOfMemory()) {
                return " (the GPU's memory does not hold a batch of " + batch + ": try a smaller --batch"
                        + (device.precision() == Device.Precision.BF16 ? ")" : ", or --precision bf16, whose activations take half the memory)");
            }
        }
        return "";
    }
}
