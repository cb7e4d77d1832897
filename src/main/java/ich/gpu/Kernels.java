package ich.gpu;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Optional;

/**
 * The compiled CUDA kernels shipped in the jar: resource names, entry point names and the layout of the
 * kernels' parameter structs (cuda/preprocess.cu). The build puts {@code preprocess.fatbin} (SASS for sm_80
 * and sm_90, PTX for compute_90) on the class path when nvcc was found at build time, and leaves it out otherwise.
 */
public final class Kernels {
    /** Class-path resource of the preprocessing kernels' fatbin. */
    public static final String PREPROCESS_FATBIN = "/ich/gpu/kernels/preprocess.fatbin";
    /** Class-path resource of the training kernels' fatbin (cuda/nn.cu; see {@link NnKernels}). */
    public static final String NN_FATBIN = "/ich/gpu/kernels/nn.fatbin";
    /** Why {@link #preprocessFatbin()} is empty. */
    public static final String NOT_BUILT = "kernels were not built (no nvcc at build time)";
    /** First four bytes of a fatbin, read little-endian. */
    public static final int FATBIN_MAGIC = 0xBA55ED50;

    /** Entry points, {@code ich_preprocess_<dtype>_<layout>}: (const IchImage*, IchBatch by value, out*). */
    public static final String PREPROCESS_F32_NCHW = "ich_preprocess_f32_nchw";
    public static final String PREPROCESS_F32_NHWC = "ich_preprocess_f32_nhwc";
    public static final String PREPROCESS_F16_NCHW = "ich_preprocess_f16_nchw";
    public static final String PREPROCESS_F16_NHWC = "ich_preprocess_f16_nhwc";
    public static final String PREPROCESS_BF16_NCHW = "ich_preprocess_bf16_nchw";
    public static final String PREPROCESS_BF16_NHWC = "ich_preprocess_bf16_nhwc";

    /** Sizes of the kernel's structs in bytes (static_asserts in the .cu file), and its channel limit. */
    public static final int IMAGE_STRUCT_BYTES = 64, CHANNEL_STRUCT_BYTES = 20, BATCH_STRUCT_BYTES = 240, MAX_CHANNELS = 8;
    /** Thread block of the preprocessing kernels: grid (ceil(outW / 32), ceil(outH / 8), batch). */
    public static final int BLOCK_X = 32, BLOCK_Y = 8;
    /** Output rows per thread of the linear kernels ({@code ICH_ROWS}): their grid is (ceil(outW / 32), ceil(outH / 32), batch). */
    public static final int LINEAR_ROWS = 4;

    private Kernels() {}

    /** The preprocessing fatbin's bytes, or empty ({@link #NOT_BUILT}) when the build had no nvcc. */
    public static Optional<byte[]> preprocessFatbin() {
        return resource(PREPROCESS_FATBIN);
    }

    /** The training kernels' fatbin, or empty ({@link #NOT_BUILT}) when the build had no nvcc. */
    public static Optional<byte[]> nnFatbin() {
        return resource(NN_FATBIN);
    }

    static Optional<byte[]> resource(String name) {
        try (InputStream in = Kernels.class.getResourceAsStream(name)) {
            return in == null ? Optional.empty() : Optional.of(in.readAllBytes());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + name + " from the class path", e);
        }
    }
}
