package ich.nn.cpu;

import ich.nn.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * A strided, read-only view of a matrix for {@link Sgemm} to pack from: element (i, j) lies at
 * {@code offset + i * rowStride + j * colStride} floats into a heap array or a native segment. Transposes are
 * a swap of the strides, so the GEMM never needs a transposed copy of its operands.
 *
 * <p>A view may also run across the images of a batch along its unit-stride axis: with {@code split > 0}, index
 * t of that axis lies at {@code (t / split) * splitStride + t % split}. That is how a 1x1 convolution sees the
 * pixels of all images as the columns of one matrix [c, n h w] of an NCHW tensor, so the late, small-spatial
 * layers (3 x 3 pixels at 96 px input) still fill whole register tiles.
 */
record Mat(float[] array, MemorySegment segment, long offset, int rowStride, int colStride, int split, long splitStride,
           int first, boolean splitColumns) {

    static Mat of(float[] array, long offset, int rowStride, int colStride) {
        return new Mat(array, null, offset, rowStride, colStride, 0, 0, 0, false);
    }

    static Mat of(MemorySegment segment, long offset, int rowStride, int colStride) {
        return new Mat(null, segment, offset, rowStride, colStride, 0, 0, 0, false);
    }

    /**
     * The pixels of a batch as the columns of one matrix [rows, n * split]: image b's {@code split} pixels start
     * {@code b * splitStride} floats after image 0's; within an image a column is one float on.
     */
    static Mat batchedColumns(MemorySegment segment, int rowStride, int split, long splitStride) {
        return new Mat(null, segment, 0, rowStride, 1, split, splitStride, 0, true);
    }

    /** The transposed view: the batch's pixels as rows [n * split, cols], a column {@code colStride} floats on. */
    static Mat batchedRows(MemorySegment segment, int colStride, int split, long splitStride) {
        return new Mat(null, segment, 0, 1, colStride, split, splitStride, 0, false);
    }

    /** The same matrix without its first {@code rows} rows and {@code cols} columns. */
    Mat from(int rows, int cols) {
        if (split == 0) return new Mat(array, segment, offset + (long) rows * rowStride + (long) cols * colStride, rowStride, colStride, 0, 0, 0, false);
        if (splitColumns) return new Mat(array, segment, offset + (long) rows * rowStride, rowStride, colStride, split, splitStride, first + cols, true);
        return new Mat(array, segment, offset + (long) cols * colStride, rowStride, colStride, split, splitStride, first + rows, false);
    }

    private long at(int i, int j) {
        if (split == 0) return offset + (long) i * rowStride + (long) j * colStride;
        if (splitColumns) {
            int t = first + j;
            return offset + (long) i * rowStride + (long) (t / split) * splitStride + t % split;
        }
        int t = first + i;
        return offset + (long) (t / split) * splitStride + t % split + (long) j * colStride;
    }

    float get(int i, int j) {
        long at = at(i, j);
        return array != null ? array[(int) at] : segment.getAtIndex(Tensor.FLOAT, at);
    }

    /** Copies {@code count} consecutive elements of row i from column j on; needs colStride 1. */
    void copyRow(int i, int j, float[] dst, int dstOffset, int count) {
        while (count > 0) {
            int run = split == 0 || !splitColumns ? count : Math.min(count, split - (first + j) % split);
            copy(at(i, j), dst, dstOffset, run);
            j += run;
            dstOffset += run;
            count -= run;
        }
    }

    /** Copies {@code count} consecutive elements of column j from row i on; needs rowStride 1. */
    void copyColumn(int i, int j, float[] dst, int dstOffset, int count) {
        while (count > 0) {
            int run = split == 0 || splitColumns ? count : Math.min(count, split - (first + i) % split);
            copy(at(i, j), dst, dstOffset, run);
            i += run;
            dstOffset += run;
            count -= run;
        }
    }

    private void copy(long at, float[] dst, int dstOffset, int count) {
        if (array != null) {
            System.arraycopy(array, (int) at, dst, dstOffset, count);
        } else {
            MemorySegment.copy(segment, Tensor.FLOAT, at * Float.BYTES, dst, dstOffset, count);
        }
    }
}
