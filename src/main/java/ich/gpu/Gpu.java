package ich.gpu;

import java.util.ArrayList;
import java.util.List;

/**
 * What GPU this process can use. {@link #probe()} never throws: it returns the devices, or the plain reason
 * there are none, and in both cases which of cuDNN, cuBLAS and TensorRT were found and where.
 */
public final class Gpu {
    private Gpu() {}

    /** One device as the driver API describes it. */
    public record Device(int ordinal, String name, int ccMajor, int ccMinor, int multiprocessors, long totalMemory) {
        public String computeCapability() {
            return ccMajor + "." + ccMinor;
        }
    }

    public sealed interface Probe permits Available, Unavailable {
        /** cuDNN, cuBLAS and TensorRT, in that order. */
        List<NativeLibraries.Result> libraries();

        /** The report {@code ich info} prints, one line per fact, labels padded to 10 columns. */
        default List<String> lines() {
            List<String> lines = new ArrayList<>();
            switch (this) {
                case Available a -> {
                    lines.add(String.format("gpu       %d device%s, CUDA %s (driver API), driver %s",
                            a.devices().size(), a.devices().size() == 1 ? "" : "s", Cuda.versionString(a.cudaVersion()),
                            a.driverVersion()));
                    for (Device d : a.devices()) {
                        lines.add(String.format("gpu %-5d %s, compute capability %s, %d SMs, %.1f GiB", d.ordinal(),
                                d.name(), d.computeCapability(), d.multiprocessors(), d.totalMemory() / (double) (1L << 30)));
                    }
                }
                case Unavailable u -> lines.add("gpu       none: " + u.reason());
            }
            if (libraries().stream().allMatch(r -> r instanceof NativeLibraries.NotFound)) {
                lines.add("cudnn/cublas/tensorrt: not found");
            } else {
                for (NativeLibraries.Result r : libraries()) {
                    lines.add(String.format("%-9s %s", r.library().shortName(), switch (r) {
                        case NativeLibraries.Found f -> f.where();
                        case NativeLibraries.NotFound n -> n.message();
                    }));
                }
            }
            return lines;
        }
    }

    /**
     * @param cudaVersion   from {@code cuDriverGetVersion}, e.g. 13000
     * @param driverVersion from NVML, or "unknown (why)"
     */
    public record Available(List<Device> devices, int cudaVersion, String driverVersion,
                            List<NativeLibraries.Result> libraries) implements Probe {
        public Available {
            devices = List.copyOf(devices);
            libraries = List.copyOf(libraries);
        }
    }

    public record Unavailable(String reason, List<NativeLibraries.Result> libraries) implements Probe {
        public Unavailable {
            libraries = List.copyOf(libraries);
        }
    }

    /** Looks for the driver, its devices and the NVIDIA libraries. */
    public static Probe probe() {
        List<NativeLibraries.Result> libraries = new ArrayList<>();
        for (NativeLibraries.Library l : List.of(NativeLibraries.CUDNN, NativeLibraries.CUBLAS, NativeLibraries.TENSORRT)) {
            try {
                libraries.add(NativeLibraries.find(l));
            } catch (RuntimeException | LinkageError e) {
                libraries.add(new NativeLibraries.NotFound(l, l.soname() + " not usable: " + e, List.of()));
            }
        }
        try {
            Cuda cuda = Cuda.driver();
            int count = cuda.deviceCount();
            if (count == 0) return new Unavailable("the CUDA driver sees no device", libraries);
            List<Device> devices = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                int d = cuda.device(i);
                devices.add(new Device(i, cuda.deviceName(d), cuda.attribute(d, Cuda.ATTR_COMPUTE_CAPABILITY_MAJOR),
                        cuda.attribute(d, Cuda.ATTR_COMPUTE_CAPABILITY_MINOR),
                        cuda.attribute(d, Cuda.ATTR_MULTIPROCESSOR_COUNT), cuda.totalMemory(d)));
            }
            return new Available(devices, cuda.driverVersion(), nvmlDriverVersion(), libraries);
        } catch (GpuUnavailableException | CudaException e) {
            return new Unavailable(e.getMessage(), libraries);
        } catch (RuntimeException | LinkageError e) {
            return new Unavailable("the CUDA driver cannot be used: " + e, libraries);
        }
    }

    private static String nvmlDriverVersion() {
        try (Nvml nvml = Nvml.open()) {
            return nvml.driverVersion();
        } catch (RuntimeException | LinkageError e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }
}
