package ich.gpu;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;

/**
 * Samples one GPU's utilisation and memory through NVML on a daemon thread, so training and benchmarks can say
 * how busy the GPU was: the progress bar shows the latest value, each epoch the mean over its {@link #window()}.
 *
 * <p>NVML's utilisation is the percentage of time over its last sample period (1/6 s to 1 s depending on the
 * product) during which at least one kernel ran; sampling every 100 ms and averaging gives the mean over a
 * window to within one NVML period at its ends. It does not say how full the SMs were: a GPU running one tiny
 * kernel at a time reads 100 %. That is why images/s is always reported next to it.
 *
 * <p>The device is found by PCI bus id, not by ordinal, since CUDA and NVML may number devices differently.
 */
public final class UtilisationSampler implements AutoCloseable {
    /** The mean over a window of samples, and the most device memory in use at any sample of it. */
    public record Window(double meanGpuPercent, int samples, long peakMemoryUsedBytes) {
        /** "97 % GPU" or "GPU % unknown" when no sample was taken. */
        public String gpuText() {
            return samples == 0 ? "GPU % unknown" : String.format(java.util.Locale.ROOT, "%.0f %% GPU", meanGpuPercent);
        }
    }

    private final Nvml nvml;
    private final int index;
    private final long periodNanos;
    private final Thread thread;
    private volatile boolean stop;
    private volatile int latest = -1;
    private long sum;
    private int count;
    private long peakUsed;
    private long peakUsedOverall;

    private UtilisationSampler(Nvml nvml, int index, Duration period) {
        this.nvml = nvml;
        this.index = index;
        this.periodNanos = period.toNanos();
        this.thread = Thread.ofPlatform().daemon().name("ich-nvml-sampler").unstarted(this::run);
    }

    /**
     * Starts sampling the GPU of CUDA ordinal {@code ordinal} every {@code period}.
     *
     * @throws GpuUnavailableException when NVML or the driver is missing
     * @throws CudaException           when NVML does not know the device
     */
    public static UtilisationSampler start(int ordinal, Duration period) {
        if (period.isNegative() || period.isZero()) throw new IllegalArgumentException("period must be positive: " + period);
        Cuda cuda = Cuda.driver();
        String busId = cuda.pciBusId(cuda.device(ordinal));
        Nvml nvml = Nvml.open();
        try {
            UtilisationSampler s = new UtilisationSampler(nvml, nvml.indexOfPciBusId(busId), period);
            s.sampleOnce(); // fails here, not silently on the thread, when NVML cannot read this device
            s.thread.start();
            return s;
        } catch (RuntimeException e) {
            nvml.close();
            throw e;
        }
    }

    private void run() {
        while (!stop) {
            LockSupport.parkNanos(periodNanos);
            if (stop) break;
            try {
                sampleOnce();
            } catch (RuntimeException e) {
                latest = -1; // a transient NVML error costs one sample, not the training run
            }
        }
    }

    private void sampleOnce() {
        int gpu = nvml.utilization(index).gpu();
        long used = nvml.memory(index).used();
        synchronized (this) {
            latest = gpu;
            sum += gpu;
            count++;
            peakUsed = Math.max(peakUsed, used);
            peakUsedOverall = Math.max(peakUsedOverall, used);
        }
    }

    /** The last sample's GPU utilisation in percent, or -1 when the last sample failed. */
    public int latestGpuPercent() {
        return latest;
    }

    /** The mean since the previous call (or the start), and starts a new window. */
    public synchronized Window window() {
        Window w = new Window(count == 0 ? 0 : (double) sum / count, count, peakUsed);
        sum = 0;
        count = 0;
        peakUsed = 0;
        return w;
    }

    /** The most device memory in use (all processes, as NVML counts it) at any sample since the start. */
    public synchronized long peakMemoryUsedBytes() {
        return peakUsedOverall;
    }

    @Override
    public void close() {
        stop = true;
        LockSupport.unpark(thread);
        try {
            thread.join(Duration.ofSeconds(2));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        nvml.close();
    }
}
