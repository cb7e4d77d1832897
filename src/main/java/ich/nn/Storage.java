package ich.nn;

/**
 * How a tensor's elements are stored: their type and, for images, their order. A tensor's shape is always the
 * logical NCHW one ([n, c, h, w]); a channels-last tensor keeps the element (n, c, h, w) at
 * ((n * h + y) * w + x) * c + channel instead, the order in which tensor cores read convolutions. Host tensors,
 * parameters, optimizer state and all of the CPU backend are {@link #FLOAT32}; the CUDA backend's mixed precision
 * keeps activations in {@link #BF16_NHWC}.
 */
public record Storage(DType dtype, boolean channelsLast) {

    /** The element types a tensor can hold. */
    public enum DType {
        FLOAT32(4), BFLOAT16(2);

        private final int bytes;

        DType(int bytes) {
            this.bytes = bytes;
        }

        public int bytes() {
            return bytes;
        }
    }

    /** fp32 in row-major (NCHW) order: the reference storage, and the only one of the CPU backend. */
    public static final Storage FLOAT32 = new Storage(DType.FLOAT32, false);

    /** bfloat16 in channels-last (NHWC) order: activations of the CUDA backend's mixed precision. */
    public static final Storage BF16_NHWC = new Storage(DType.BFLOAT16, true);

    public Storage {
        java.util.Objects.requireNonNull(dtype, "dtype");
    }

    /** Whether a tensor of {@code shape} in this storage has the elements in the same order as NCHW: 1x1 images do. */
    public boolean rowMajorFor(int[] shape) {
        return !channelsLast || shape.length != 4 || (long) shape[2] * shape[3] == 1 || shape[1] == 1;
    }

    @Override
    public String toString() {
        return (dtype == DType.FLOAT32 ? "fp32" : "bf16") + (channelsLast ? " NHWC" : "");
    }
}
