package ich.nn;

import ich.nn.cpu.CpuBackend;
import ich.nn.cuda.CudaBackend;

import java.util.Locale;

/**
 * Where the engine runs, as a user names it on the command line: {@code cpu}, {@code gpu} (the first GPU) or
 * {@code gpu:N}. {@link #open()} gives the backend; the CPU one is the reference, the CUDA one must give the
 * same results within the precision (CudaBackendTest).
 */
public sealed interface Device permits Device.Cpu, Device.Gpu {

    /** A fresh backend on this device; the caller closes it. */
    Backend open();

    /** {@code cpu} or {@code gpu:N} (as {@link #parse} reads it), plus the precision and CUDA graphs when not defaults. */
    String label();

    /**
     * This device computing in {@code precision}: a GPU switches to it, the CPU computes in fp32 only.
     *
     * @throws IllegalArgumentException for tf32 or bf16 on the CPU: "needs --device gpu (the device is cpu)", for the
     *                                  caller to put its option's name in front of
     */
    Device withPrecision(Precision precision);

    /** The arithmetic this device computes in: a GPU's as chosen, the CPU's always fp32. */
    Precision precision();

    /** The CPU backend with {@code threads} compute threads. */
    record Cpu(int threads) implements Device {
        public Cpu {
            if (threads < 1) throw new IllegalArgumentException("threads must be positive: " + threads);
        }

        @Override
        public Backend open() {
            return new CpuBackend(threads);
        }

        @Override
        public String label() {
            return "cpu";
        }

        @Override
        public Cpu withPrecision(Precision precision) {
            if (precision != Precision.FP32) {
                throw new IllegalArgumentException("needs --device gpu (the device is " + label() + ")");
            }
            return this;
        }

        @Override
        public Precision precision() {
            return Precision.FP32;
        }
    }

    /**
     * The arithmetic of a GPU: strict fp32 (results match the CPU reference), fp32 with TF32 tensor cores
     * (~1e-3 relative), or bf16 mixed precision (bf16 channels-last activations on tensor cores, fp32 weights,
     * optimizer state and statistics; ~1e-2 relative), as {@link CudaBackend.Options} describes.
     */
    enum Precision {
        FP32, TF32, BF16;

        /** {@code fp32}, {@code tf32} or {@code bf16}, case-insensitive. */
        public static Precision parse(String text) {
            String t = text == null ? "" : text.trim().toUpperCase(Locale.ROOT);
            for (Precision p : values()) if (p.name().equals(t)) return p;
            throw new IllegalArgumentException("unknown precision '" + text + "': use fp32, tf32 or bf16");
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * The CUDA backend on the GPU of this CUDA ordinal.
     *
     * @param precision  fp32, TF32 tensor cores, or bf16 mixed precision
     * @param cudaGraphs   run training steps as CUDA graphs (captured once per batch shape, then replayed), which
     *                     removes the host's per-launch cost; see {@link CudaBackend#beginStep}
     * @param reproducible choose convolution algorithms without timing them, so that two runs compute the same bits
     *                     ({@link CudaBackend.Options#reproducible()})
     */
    record Gpu(int ordinal, Precision precision, boolean cudaGraphs, boolean reproducible) implements Device {
        public Gpu {
            if (ordinal < 0) throw new IllegalArgumentException("GPU ordinal must be >= 0: " + ordinal);
            java.util.Objects.requireNonNull(precision, "precision");
        }

        public Gpu(int ordinal, Precision precision, boolean cudaGraphs) {
            this(ordinal, precision, cudaGraphs, false);
        }

        /** Strict fp32 (no TF32), eager launches: results match the CPU reference. */
        public Gpu(int ordinal) {
            this(ordinal, Precision.FP32, false);
        }

        public Gpu(int ordinal, boolean allowTf32) {
            this(ordinal, allowTf32, false);
        }

        public Gpu(int ordinal, boolean allowTf32, boolean cudaGraphs) {
            this(ordinal, allowTf32 ? Precision.TF32 : Precision.FP32, cudaGraphs);
        }

        /** Whether convolutions and GEMMs may use TF32 tensor cores. */
        public boolean allowTf32() {
            return precision == Precision.TF32;
        }

        public Gpu withTf32(boolean allow) {
            return new Gpu(ordinal, allow ? Precision.TF32 : Precision.FP32, cudaGraphs, reproducible);
        }

        @Override
        public Gpu withPrecision(Precision p) {
            return new Gpu(ordinal, p, cudaGraphs, reproducible);
        }

        public Gpu withCudaGraphs(boolean on) {
            return new Gpu(ordinal, precision, on, reproducible);
        }

        public Gpu withReproducible(boolean on) {
            return new Gpu(ordinal, precision, cudaGraphs, on);
        }

        /** @throws ich.gpu.GpuUnavailableException when there is no usable GPU, cuDNN, cuBLAS or kernels, saying which */
        @Override
        public Backend open() {
            return CudaBackend.open(ordinal, CudaBackend.Options.defaults().withTf32(allowTf32())
                    .withBf16(precision == Precision.BF16).withReproducible(reproducible));
        }

        /**
         * {@code gpu:N}, with " (TF32)" or " (bf16)", " (CUDA graphs)" and " (reproducible)" when on, so logs and
         * config.json say how it ran.
         */
        @Override
        public String label() {
            return "gpu:" + ordinal + switch (precision) {
                case FP32 -> "";
                case TF32 -> " (TF32)";
                case BF16 -> " (bf16)";
            } + (cudaGraphs ? " (CUDA graphs)" : "") + (reproducible ? " (reproducible)" : "");
        }
    }

    /**
     * Reads {@code cpu}, {@code gpu} or {@code gpu:N} (case-insensitive); {@code threads} is the CPU backend's.
     *
     * @throws IllegalArgumentException naming the text and what is accepted
     */
    static Device parse(String text, int threads) {
        String t = text == null ? "" : text.trim().toLowerCase(Locale.ROOT);
        if (t.equals("cpu")) return new Cpu(threads);
        if (t.equals("gpu") || t.equals("cuda")) return new Gpu(0);
        for (String prefix : new String[] {"gpu:", "cuda:"}) {
            if (t.startsWith(prefix)) {
                try {
                    return new Gpu(Integer.parseInt(t.substring(prefix.length())));
                } catch (NumberFormatException e) {
                    break;
                }
            }
        }
        throw new IllegalArgumentException("unknown device '" + text + "': use cpu, gpu or gpu:N");
    }
}
