package ich.nn.cpu;

import ich.nn.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * A strided, read-only view of a matrix for {@link Sgemm} to pack from: element (i, j) lies at
 * {@code offset + i * rowStride + j * colStride} floats into a heap array or a native segment. Transposes are
 * a swap of the strides, so the GEMM never needs a transposed copy of its operands.
 */
record Mat(float[] array, MemorySegment segment, long offset, int rowStride, int colStride) {

    static Mat of(float[] array, long offset, int rowStride, int colStride) {
        return new Mat(array, null, offset, rowStride, colStride);
    }

    static Mat of(MemorySegment segment, long offset, int rowStride, int colStride) {
        return new Mat(null, segment, offset, rowStride, colStride);
    }

    float get(int i, int j) {
        long at = offset + (long) i * rowStride + (long) j * colStride;
        return array != null ? array[(int) at] : segment.getAtIndex(Tensor.FLOAT, at);
    }

    /** Copies {@code count} consecutive elements of row i from column j on; rows must be contiguous. */
    void copyRow(int i, int j, float[] dst, int dstOffset, int count) {
        long at = offset + (long) i * rowStride + j;
        if (array != null) {
            System.arraycopy(array, (int) at, dst, dstOffset, count);
        } else {
            MemorySegment.copy(segment, Tensor.FLOAT, at * Float.BYTES, dst, dstOffset, count);
        }
    }
}
