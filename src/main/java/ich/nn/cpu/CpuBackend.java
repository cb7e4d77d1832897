package ich.nn.cpu;

import ich.nn.Backend;
import ich.nn.ConvGeometry;
import ich.nn.OpShapes;
import ich.nn.Storage;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;

import static ich.nn.OpShapes.channels;
import static ich.nn.OpShapes.linearDims;
import static ich.nn.OpShapes.perChannel;
import static ich.nn.OpShapes.planes;
import static ich.nn.OpShapes.shape;

/**
 * The reference backend: every op of {@link Backend} on the CPU, multi-threaded over images, channels or
 * element ranges. Convolutions are GEMMs ({@link Sgemm}): 1x1 stride-1 convolutions (most of EfficientNet's
 * multiply-adds) multiply the weights with the pixels of the whole batch as one matrix, read in place (so a
 * 3 x 3 late-stage plane still fills register tiles); other shapes go through im2col
 * (one column range of one image at a time, so the buffer stays small); depthwise convolutions have their own
 * kernel ({@link Depthwise}).
 *
 * <p>One caller at a time: ops are not to be called concurrently on the same backend (they share per-thread
 * scratch buffers and the pool). Sums that decide statistics (batch-norm moments, pooling, losses, norms) are
 * accumulated in double.
 */
public final class CpuBackend implements Backend {
    /**
     * How the inner loops are vectorised: the GEMM micro-kernel, the depthwise taps, SiLU and sigmoid. In
     * ich.bench.ConvBenchmark VECTOR was 10-25x faster for the GEMM convolutions and 2-4x for the depthwise
     * ones: C2 leaves the plain loops scalar (see {@link ScalarKernel}).
     */
    public enum Kernel {
        /** {@code jdk.incubator.vector}: register-tiled FMAs, vector exp. Needs the module loaded. */
        VECTOR,
        /** Plain loops left to C2's auto-vectoriser; what {@link #best()} picks without the module. */
        SCALAR;

        /** VECTOR where {@code --add-modules jdk.incubator.vector} was given, else SCALAR. */
        public static Kernel best() {
            return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent() ? VECTOR : SCALAR;
        }
    }

    /** Elements per task of the element-wise ops: 64 KiB, a few L2-resident buffers at once. */
    private static final int CHUNK = 16384;

    private final int threads;
    private final ForkJoinPool pool;
    private final Sgemm gemm;
    private final ElementOps elementOps;
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);
    private final StepArena.Pool stepMemory = new StepArena.Pool();
    /** Set by {@link #host} when the current op touches a tensor that only the calling thread may access. */
    private boolean callerOnly;
    /** A thread that owns nothing: a segment it may not access is confined to some other thread. */
    private static final Thread STRANGER = new Thread(() -> { });

    /** All available cores, the best kernels this JVM offers. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        this(threads, Kernel.best());
    }

    public CpuBackend(int threads, Kernel kernel) {
        if (threads < 1) throw new IllegalArgumentException("cpu backend: threads must be >= 1, got " + threads);
        if (kernel == Kernel.VECTOR && Kernel.best() != Kernel.VECTOR) {
            throw new IllegalStateException("cpu backend: the VECTOR kernel needs --add-modules jdk.incubator.vector");
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
        this.gemm = new Sgemm(kernel == Kernel.VECTOR ? VectorKernel.create() : new ScalarKernel());
        this.elementOps = ElementOps.create(kernel);
    }

    public int threads() {
        return threads;
    }

    @Override
    public String name() {
        return "cpu (" + threads + (threads == 1 ? " thread, " : " threads, ") + gemm.kernel().name() + " gemm)";
    }

    @Override
    public Tensor allocate(Arena arena, int... shape) {
        return Tensor.allocate(arena, shape);
    }

    @Override
    public Tensor allocateUninitialized(Arena arena, int... shape) {
        if (!(arena instanceof StepArena step)) return Tensor.allocate(arena, shape);
        long bytes = Tensor.elementCount(shape) * Float.BYTES;
        return Tensor.wrap(step.allocateUninitialized(bytes, Tensor.ALIGNMENT), true, shape);
    }

    /** An arena whose memory comes back to this backend when it closes, for the next step to reuse. */
    @Override
    public Arena stepArena() {
        return new StepArena(stepMemory);
    }

    @Override
    public void copy(Tensor source, Tensor destination) {
        host("copy", source, destination);
        if (source.size() != destination.size()) {
            throw new IllegalArgumentException("copy: " + source + " into " + destination + " (sizes differ)");
        }
        MemorySegment.copy(source.data(), 0, destination.data(), 0, source.bytes());
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdown();
        stepMemory.close();
    }

    // ---------------------------------------------------------------- convolution

    @Override
    public void conv2dForward(ConvGeometry g, Tensor x, Tensor w, Tensor y) {
        checkConv("conv2dForward", g, x, w, y);
        if (g.depthwise()) {
            Depthwise dw = new Depthwise(g, elementOps);
            parallel(g.n() * g.c(), (from, to, sc) -> dw.forward(x.data(), w.data(), y.data(), from, to, sc));
            return;
        }
        int groups = g.groups(), cg = g.c() / groups, kg = g.k() / groups;
        int crs = cg * g.r() * g.s(), pq = g.p() * g.q(), hw = g.h() * g.w();
        float[] wa = w.toArray();
        boolean pointwise = pointwise(g);
        if (pointwise && groups == 1) {
            // Y[k, n hw] = W[k, c] X[c, n hw], the batch's pixels side by side as columns.
            Mat a = Mat.of(wa, 0, crs, 1);
            Mat b = Mat.batchedColumns(x.data(), hw, hw, (long) g.c() * hw);
            batchedColumns(g.n() * hw, (j0, nc, sc) -> {
                float[] out = sc.get(Scratch.OUT, g.k() * nc);
                gemm.multiply(g.k(), nc, g.c(), a, b.from(0, j0), out, 0, nc, false, sc);
                scatterColumns(out, g.k(), nc, j0, hw, y.data());
            });
            return;
        }
        int images = g.n() * groups;
        int chunks = columnChunks(images, pq);
        parallel(images * chunks, (from, to, sc) -> {
            for (int t = from; t < to; t++) {
                int img = t / (groups * chunks), grp = t / chunks % groups, part = t % chunks;
                int j0 = (int) ((long) pq * part / chunks), j1 = (int) ((long) pq * (part + 1) / chunks), nc = j1 - j0;
                Mat a = Mat.of(wa, (long) grp * kg * crs, crs, 1);
                Mat b;
                if (pointwise) {
                    b = Mat.of(x.data(), ((long) img * g.c() + (long) grp * cg) * hw + j0, hw, 1);
                } else {
                    float[] col = sc.get(Scratch.COLUMNS, crs * nc);
                    im2col(g, x.data(), img, grp, j0, j1, col, sc);
                    b = Mat.of(col, 0, nc, 1);
                }
                float[] out = sc.get(Scratch.OUT, kg * nc);
                gemm.multiply(kg, nc, crs, a, b, out, 0, nc, false, sc);
                long y0 = ((long) img * g.k() + (long) grp * kg) * pq + j0;
                for (int kk = 0; kk < kg; kk++) {
                    MemorySegment.copy(out, kk * nc, y.data(), Tensor.FLOAT, (y0 + (long) kk * pq) * Float.BYTES, nc);
                }
            }
        });
    }

    @Override
    public void conv2dBackwardData(ConvGeometry g, Tensor dy, Tensor w, Tensor dx) {
        checkConv("conv2dBackwardData", g, dx, w, dy);
        if (g.depthwise()) {
            Depthwise dw = new Depthwise(g, elementOps);
            parallel(g.n() * g.c(), (from, to, sc) -> dw.backwardData(dy.data(), w.data(), dx.data(), from, to, sc));
            return;
        }
        int groups = g.groups(), cg = g.c() / groups, kg = g.k() / groups;
        int crs = cg * g.r() * g.s(), pq = g.p() * g.q(), hw = g.h() * g.w();
        float[] wa = w.toArray();
        int images = g.n() * groups;
        if (pointwise(g) && groups == 1) {
            // dX[c, n hw] = W^T[c, k] dY[k, n hw].
            Mat a = Mat.of(wa, 0, 1, crs);
            Mat b = Mat.batchedColumns(dy.data(), pq, pq, (long) g.k() * pq);
            batchedColumns(g.n() * hw, (j0, nc, sc) -> {
                float[] out = sc.get(Scratch.OUT, g.c() * nc);
                gemm.multiply(g.c(), nc, g.k(), a, b.from(0, j0), out, 0, nc, false, sc);
                scatterColumns(out, g.c(), nc, j0, hw, dx.data());
            });
            return;
        }
        if (pointwise(g)) {
            // dx[c, hw] = W^T[c, k] dy[k, hw]: a GEMM per column range, nothing overlaps.
            int chunks = columnChunks(images, pq);
            parallel(images * chunks, (from, to, sc) -> {
                for (int t = from; t < to; t++) {
                    int img = t / (groups * chunks), grp = t / chunks % groups, part = t % chunks;
                    int j0 = (int) ((long) pq * part / chunks), j1 = (int) ((long) pq * (part + 1) / chunks), nc = j1 - j0;
                    Mat a = Mat.of(wa, (long) grp * kg * crs, 1, crs);
                    Mat b = Mat.of(dy.data(), ((long) img * g.k() + (long) grp * kg) * pq + j0, pq, 1);
                    float[] out = sc.get(Scratch.OUT, cg * nc);
                    gemm.multiply(cg, nc, kg, a, b, out, 0, nc, false, sc);
                    long x0 = ((long) img * g.c() + (long) grp * cg) * hw + j0;
                    for (int cc = 0; cc < cg; cc++) {
                        MemorySegment.copy(out, cc * nc, dx.data(), Tensor.FLOAT, (x0 + (long) cc * hw) * Float.BYTES, nc);
                    }
                }
            });
            return;
        }
        // Columns of neighbouring outputs overlap in dx, so one task owns a whole (image, group).
        parallel(images, (from, to, sc) -> {
            for (int t = from; t < to; t++) {
                int img = t / groups, grp = t % groups;
                Mat a = Mat.of(wa, (long) grp * kg * crs, 1, crs);
                Mat b = Mat.of(dy.data(), ((long) img * g.k() + (long) grp * kg) * pq, pq, 1);
                float[] col = sc.get(Scratch.COLUMNS, crs * pq);
                gemm.multiply(crs, pq, kg, a, b, col, 0, pq, false, sc);
                float[] planes = sc.zeroed(Scratch.PLANE, cg * hw);
                col2im(g, col, planes);
                MemorySegment.copy(planes, 0, dx.data(), Tensor.FLOAT,
                        ((long) img * g.c() + (long) grp * cg) * hw * Float.BYTES, cg * hw);
            }
        });
    }

    @Override
    public void conv2dBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) {
        checkConv("conv2dBackwardFilter", g, x, dw, dy);
        if (g.depthwise()) {
            Depthwise d = new Depthwise(g, elementOps);
            parallel(g.c(), (from, to, sc) -> d.backwardFilter(x.data(), dy.data(), dw.data(), from, to, sc));
            return;
        }
        int groups = g.groups(), cg = g.c() / groups, kg = g.k() / groups;
        int crs = cg * g.r() * g.s(), pq = g.p() * g.q(), hw = g.h() * g.w();
        boolean pointwise = pointwise(g);
        if (pointwise && groups == 1) {
            pointwiseBackwardFilter(g, x, dy, dw);
            return;
        }
        // The batch is a reduction: each task sums its images into a private dw, then the partials are added.
        int parts = Math.min(g.n(), threads);
        float[][] partial = new float[parts][g.k() * crs];
        parallel(parts, (from, to, sc) -> {
            for (int part = from; part < to; part++) {
                int n0 = (int) ((long) g.n() * part / parts), n1 = (int) ((long) g.n() * (part + 1) / parts);
                for (int img = n0; img < n1; img++) {
                    for (int grp = 0; grp < groups; grp++) {
                        Mat a = Mat.of(dy.data(), ((long) img * g.k() + (long) grp * kg) * pq, pq, 1);
                        float[] col;
                        if (pointwise) {
                            col = sc.get(Scratch.COLUMNS, cg * hw);
                            MemorySegment.copy(x.data(), Tensor.FLOAT,
                                    ((long) img * g.c() + (long) grp * cg) * hw * Float.BYTES, col, 0, cg * hw);
                        } else {
                            col = sc.get(Scratch.COLUMNS, crs * pq);
                            im2col(g, x.data(), img, grp, 0, pq, col, sc);
                        }
                        // B[pixel, crs] is the transposed column matrix.
                        Mat b = Mat.of(col, 0, 1, pq);
                        gemm.multiply(kg, crs, pq, a, b, partial[part], grp * kg * crs, crs, true, sc);
                    }
                }
            }
        });
        float[] sum = partial[0];
        for (int i = 1; i < parts; i++) {
            float[] pi = partial[i];
            for (int j = 0; j < sum.length; j++) sum[j] += pi[j];
        }
        dw.copyFrom(sum);
    }

    @FunctionalInterface
    private interface Columns {
        void run(int j0, int count, Scratch scratch);
    }

    /**
     * Runs body over the columns [0, total) of a batched GEMM in ranges of whole register-tile panels: enough
     * ranges for every thread (4 per thread where there are columns enough), none wider than 2048 columns.
     */
    private void batchedColumns(int total, Columns body) {
        int nr = gemm.kernel().nr();
        int panels = (total + nr - 1) / nr;
        int tasks = Math.max(Math.min(panels, 4 * threads), (total + 2047) / 2048);
        parallel(tasks, (from, to, sc) -> {
            for (int t = from; t < to; t++) {
                int j0 = (int) ((long) panels * t / tasks) * nr;
                int j1 = Math.min(total, (int) ((long) panels * (t + 1) / tasks) * nr);
                if (j1 > j0) body.run(j0, j1 - j0, sc);
            }
        });
    }

    /** Copies rows x nc of out (batched columns j0.. of images hw pixels each) into an NCHW tensor of {@code rows} channels. */
    private static void scatterColumns(float[] out, int rows, int nc, int j0, int hw, MemorySegment dst) {
        for (int row = 0; row < rows; row++) {
            for (int done = 0; done < nc; ) {
                int j = j0 + done, img = j / hw, px = j % hw, run = Math.min(nc - done, hw - px);
                MemorySegment.copy(out, row * nc + done, dst, Tensor.FLOAT,
                        (((long) img * rows + row) * hw + px) * Float.BYTES, run);
                done += run;
            }
        }
    }

    /**
     * dW[k, c] = dY[k, n hw] X^T[n hw, c]: the whole batch is the depth of one GEMM, so no per-thread partial
     * sums, and the sums run in the same order for any number of threads. The longer of k and c becomes the
     * GEMM's column side (tiles are 6 rows by 32 columns, so 16 channels as columns would waste half of each
     * tile; as rows, 11 %): for k > c it computes dW^T = X dY^T and transposes. Threads take column ranges; each
     * packs its own part of that operand and all of the other, shorter one.
     */
    private void pointwiseBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) {
        if (g.h() * g.w() >= ROW_DOTS_MIN_PIXELS) {
            pointwiseBackwardFilterByRowDots(g, x, dy, dw);
            return;
        }
        int k = g.k(), c = g.c(), hw = g.h() * g.w(), depth = g.n() * hw;
        boolean transposed = k > c;
        int m = transposed ? c : k, n = transposed ? k : c;
        Mat dyRows = Mat.batchedColumns(dy.data(), hw, hw, (long) k * hw), xRows = Mat.batchedColumns(x.data(), hw, hw, (long) c * hw);
        Mat dyCols = Mat.batchedRows(dy.data(), hw, hw, (long) k * hw), xCols = Mat.batchedRows(x.data(), hw, hw, (long) c * hw);
        Mat a = transposed ? xRows : dyRows, b = transposed ? dyCols : xCols;
        float[] sum = new float[m * n];
        int nr = gemm.kernel().nr();
        int units = (n + nr - 1) / nr;
        int tasks = Math.min(units, threads);
        parallel(tasks, (from, to, sc) -> {
            for (int t = from; t < to; t++) {
                int lo = (int) ((long) units * t / tasks) * nr;
                int hi = Math.min(n, (int) ((long) units * (t + 1) / tasks) * nr);
                if (hi > lo) gemm.multiply(m, hi - lo, depth, a, b.from(0, lo), sum, lo, n, false, sc);
            }
        });
        if (transposed) {
            float[] t = new float[k * c];
            for (int i = 0; i < c; i++) {
                for (int j = 0; j < k; j++) t[j * c + i] = sum[i * k + j];
            }
            dw.copyFrom(t);
        } else {
            dw.copyFrom(sum);
        }
    }

    /** Pixels per plane from which {@link #pointwiseBackwardFilterByRowDots} beats the packed GEMM. */
    static final int ROW_DOTS_MIN_PIXELS = 64;

    /**
     * dW[k, c] = sum over images and pixels of dY[img, k, px] X[img, c, px] as dot products of rows, which NCHW
     * already stores contiguously: no packing. The packed GEMM transposes both operands over a depth of n h w, and on
     * the early planes (48 x 48 with 16 channels in, 96 out, at 96 px) that packing cost more than its 20-35
     * GFLOP/s of arithmetic. Here each thread takes a range of k, copies a chunk of the n h w positions of every row it
     * needs (zero-padded to whole vectors), and {@link ElementOps#rowDots} adds 4 x 4 row pairs' products into float lane
     * sums; the lanes are added once, in double, at the end. The order of every sum is fixed by the shape alone.
     */
    private void pointwiseBackwardFilterByRowDots(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) {
        int k = g.k(), c = g.c(), hw = g.h() * g.w(), lanes = elementOps.lanes();
        int depth = g.n() * hw;
        int units = (k + 3) / 4, tasks = Math.min(units, threads);
        // a chunk of every row in L2 (about 512 KiB), in whole vectors, at most 1024 pixels; a chunk runs on across
        // images, so every chunk but the last has the same length (C2 compiled the kernel's loop for one trip count
        // and ran others 2.5 x slower when the chunks were a plane each)
        int chunk = Math.max(lanes, Math.min(1024, 131_072 / (c + 4 * ((units + tasks - 1) / tasks))) / lanes * lanes);
        float[] out = new float[k * c];
        // each channel's n h w positions as one row, running across the images (as the GEMM path views them)
        Mat xRows = Mat.batchedColumns(x.data(), hw, hw, (long) c * hw), dyRows = Mat.batchedColumns(dy.data(), hw, hw, (long) k * hw);
        parallel(tasks, (from, to, sc) -> {
            for (int t = from; t < to; t++) {
                int k0 = (int) ((long) units * t / tasks) * 4, k1 = Math.min(k, (int) ((long) units * (t + 1) / tasks) * 4);
                int rows = k1 - k0;
                if (rows <= 0) continue;
                float[] xs = sc.get(Scratch.PLANE, c * chunk), ys = sc.get(Scratch.PLANE2, rows * chunk);
                float[] acc = new float[rows * c * lanes];
                for (int d0 = 0; d0 < depth; d0 += chunk) {
                    int len = Math.min(chunk, depth - d0), padded = (len + lanes - 1) / lanes * lanes;
                    rowChunk(xRows, 0, c, d0, len, padded, chunk, xs);
                    rowChunk(dyRows, k0, rows, d0, len, padded, chunk, ys);
                    elementOps.rowDots(ys, rows, xs, c, padded, chunk, acc);
                }
                for (int r = 0; r < rows; r++) {
                    for (int cc = 0; cc < c; cc++) {
                        double sum = 0;
                        for (int l = 0; l < lanes; l++) sum += acc[(r * c + cc) * lanes + l];
                        out[(k0 + r) * c + cc] = (float) sum;
                    }
                }
            }
        });
        dw.copyFrom(out);
    }

    /** Columns d0 .. d0 + len of rows first .. first + count of m, each a row {@code ld} apart in rows, zero from len to padded. */
    private static void rowChunk(Mat m, int first, int count, int d0, int len, int padded, int ld, float[] rows) {
        for (int r = 0; r < count; r++) {
            m.copyRow(first + r, d0, rows, r * ld, len);
            if (padded > len) Arrays.fill(rows, r * ld + len, r * ld + padded, 0f);
        }
    }

    private static boolean pointwise(ConvGeometry g) {
        return g.r() == 1 && g.s() == 1 && g.strideH() == 1 && g.strideW() == 1 && g.padH() == 0 && g.padW() == 0;
    }

    /** Column ranges per (image, group): enough tasks for every thread, none narrower than 256 columns. */
    private int columnChunks(int images, int columns) {
        int wanted = (2 * threads + images - 1) / images;
        return Math.max(1, Math.min(wanted, columns / 256));
    }

    /**
     * col[(c' r + r') s + s', j - j0] = x[img, grp cg + c', p stride + r' - pad, q stride + s' - pad] for output
     * pixels j = p q' + q in [j0, j1), zero in the padding.
     */
    private static void im2col(ConvGeometry g, MemorySegment x, int img, int grp, int j0, int j1, float[] col, Scratch sc) {
        int cg = g.c() / g.groups(), h = g.h(), w = g.w(), r = g.r(), s = g.s(), q = g.q();
        int sh = g.strideH(), sw = g.strideW(), ph = g.padH(), pw = g.padW(), nc = j1 - j0;
        float[] plane = sc.get(Scratch.PLANE, h * w);
        int pFirst = j0 / q, pLast = (j1 - 1) / q;
        for (int cc = 0; cc < cg; cc++) {
            MemorySegment.copy(x, Tensor.FLOAT, ((long) img * g.c() + (long) grp * cg + cc) * h * w * Float.BYTES,
                    plane, 0, h * w);
            for (int rr = 0; rr < r; rr++) {
                for (int ss = 0; ss < s; ss++) {
                    int base = ((cc * r + rr) * s + ss) * nc - j0;
                    // Output columns whose input column is inside the image.
                    int qMin = Math.max(0, Math.ceilDiv(pw - ss, sw));
                    int qMax = Math.min(q, Math.floorDiv(w - 1 + pw - ss, sw) + 1);
                    for (int pp = pFirst; pp <= pLast; pp++) {
                        int qStart = pp == pFirst ? j0 - pp * q : 0;
                        int qEnd = pp == pLast ? j1 - pp * q : q;
                        int d = base + pp * q;
                        int hh = pp * sh + rr - ph;
                        if (hh < 0 || hh >= h) {
                            Arrays.fill(col, d + qStart, d + qEnd, 0f);
                            continue;
                        }
                        int lo = Math.max(qStart, qMin), hi = Math.min(qEnd, qMax);
                        if (lo >= hi) {
                            Arrays.fill(col, d + qStart, d + qEnd, 0f);
                            continue;
                        }
                        Arrays.fill(col, d + qStart, d + lo, 0f);
                        int src = hh * w + ss - pw;
                        if (sw == 1) {
                            System.arraycopy(plane, src + lo, col, d + lo, hi - lo);
                        } else {
                            for (int qq = lo; qq < hi; qq++) col[d + qq] = plane[src + qq * sw];
                        }
                        Arrays.fill(col, d + hi, d + qEnd, 0f);
                    }
                }
            }
        }
    }

    /** The adjoint of {@link #im2col} over all columns: adds col back into the (zeroed) planes of one group. */
    private static void col2im(ConvGeometry g, float[] col, float[] planes) {
        int cg = g.c() / g.groups(), h = g.h(), w = g.w(), r = g.r(), s = g.s(), p = g.p(), q = g.q();
        int sh = g.strideH(), sw = g.strideW(), ph = g.padH(), pw = g.padW(), pq = p * q;
        for (int cc = 0; cc < cg; cc++) {
            int planeBase = cc * h * w;
            for (int rr = 0; rr < r; rr++) {
                for (int ss = 0; ss < s; ss++) {
                    int base = ((cc * r + rr) * s + ss) * pq;
                    int qMin = Math.max(0, Math.ceilDiv(pw - ss, sw));
                    int qMax = Math.min(q, Math.floorDiv(w - 1 + pw - ss, sw) + 1);
                    for (int pp = 0; pp < p; pp++) {
                        int hh = pp * sh + rr - ph;
                        if (hh < 0 || hh >= h) continue;
                        int dst = planeBase + hh * w + ss - pw;
                        int src = base + pp * q;
                        if (sw == 1) {
                            for (int qq = qMin; qq < qMax; qq++) planes[dst + qq] += col[src + qq];
                        } else {
                            for (int qq = qMin; qq < qMax; qq++) planes[dst + qq * sw] += col[src + qq];
                        }
                    }
                }
            }
        }
    }

    private void checkConv(String op, ConvGeometry g, Tensor x, Tensor w, Tensor y) {
        begin(op, x, w, y);
        OpShapes.conv(op, g, x, w, y);
    }

    // ---------------------------------------------------------------- batch norm

    @Override
    public void batchNormForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                         double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        batchNormForwardTraining("batchNormForwardTraining", false, x, gamma, beta, runningMean, runningVar, momentum, eps, y,
                saveMean, saveInvStd);
    }

    /** Fused on the CPU too: SiLU runs on each plane while it is in cache, and the normalised tensor is never stored. */
    @Override
    public boolean fusesBatchNormSilu(Storage storage) {
        return Storage.FLOAT32.equals(storage);
    }

    @Override
    public void batchNormSiluForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                             double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) {
        batchNormForwardTraining("batchNormSiluForwardTraining", true, x, gamma, beta, runningMean, runningVar, momentum, eps, y,
                saveMean, saveInvStd);
    }

    private void batchNormForwardTraining(String op, boolean silu, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean,
                                          Tensor runningVar, double momentum, double eps, Tensor y, Tensor saveMean,
                                          Tensor saveInvStd) {
        begin(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        int c = OpShapes.batchNormTraining(op, x, gamma, beta, runningMean, runningVar, y, saveMean, saveInvStd);
        int n = x.dim(0);
        int spatial = (int) (x.size() / ((long) n * c));
        long count = (long) n * spatial;
        int run = planesPerRun(n, spatial);
        parallel(c, (from, to, sc) -> {
            float[] planes = sc.get(Scratch.PLANE, run * spatial);
            double[] moments = new double[2];
            for (int ch = from; ch < to; ch++) {
                // Moments about the channel's first value, not 0: E[x^2] - E[x]^2 cancels badly when |mean| >> std.
                float shift = x.data().getAtIndex(Tensor.FLOAT, planeOffset(0, ch, c, spatial) / Float.BYTES);
                moments[0] = moments[1] = 0;
                for (int i = 0; i < n; i += run) {
                    int k = Math.min(run, n - i);
                    gather(x, i, k, ch, c, spatial, planes);
                    elementOps.moments(planes, k * spatial, shift, moments);
                }
                double shiftedMean = moments[0] / count;
                double mean = shift + shiftedMean;
                double var = Math.max(0, moments[1] / count - shiftedMean * shiftedMean);
                double invStd = 1 / Math.sqrt(var + eps);
                saveMean.set(ch, (float) mean);
                saveInvStd.set(ch, (float) invStd);
                runningMean.set(ch, (float) ((1 - momentum) * runningMean.get(ch) + momentum * mean));
                runningVar.set(ch, (float) ((1 - momentum) * runningVar.get(ch) + momentum * var * count / (count - 1)));
                float scale = (float) (gamma.get(ch) * invStd);
                float offset = (float) (beta.get(ch) - mean * gamma.get(ch) * invStd);
                affine(x, y, n, ch, c, spatial, scale, offset, silu, planes, run == n);
            }
        });
    }

    @Override
    public void batchNormForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                          double eps, Tensor y) {
        batchNormForwardInference("batchNormForwardInference", false, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    @Override
    public void batchNormSiluForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                              double eps, Tensor y) {
        batchNormForwardInference("batchNormSiluForwardInference", true, x, gamma, beta, runningMean, runningVar, eps, y);
    }

    private void batchNormForwardInference(String op, boolean silu, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean,
                                           Tensor runningVar, double eps, Tensor y) {
        begin(op, x, gamma, beta, runningMean, runningVar, y);
        int c = OpShapes.batchNormInference(op, x, gamma, beta, runningMean, runningVar, y);
        int n = x.dim(0);
        int spatial = (int) (x.size() / ((long) n * c));
        int run = planesPerRun(n, spatial);
        parallel(c, (from, to, sc) -> {
            float[] planes = sc.get(Scratch.PLANE, run * spatial);
            for (int ch = from; ch < to; ch++) {
                double invStd = 1 / Math.sqrt(runningVar.get(ch) + eps);
                float scale = (float) (gamma.get(ch) * invStd);
                float shift = (float) (beta.get(ch) - runningMean.get(ch) * gamma.get(ch) * invStd);
                affine(x, y, n, ch, c, spatial, scale, shift, silu, planes, false);
            }
        });
    }

    /**
     * y = x scale + shift over a channel's planes, then (with {@code silu}) SiLU of that, a run of planes at a time
     * while it is in cache. {@code gathered}: the whole channel is in {@code planes} already (the statistics pass
     * left it there), so x is not read again.
     */
    private void affine(Tensor x, Tensor y, int n, int ch, int c, int spatial, float scale, float shift, boolean silu,
                        float[] planes, boolean gathered) {
        int run = planesPerRun(n, spatial);
        for (int i = 0; i < n; i += run) {
            int k = Math.min(run, n - i), len = k * spatial;
            if (!gathered) gather(x, i, k, ch, c, spatial, planes);
            elementOps.affine(planes, len, scale, shift);
            if (silu) elementOps.silu(planes, len);
            scatter(planes, y, i, k, ch, c, spatial);
        }
    }

    /**
     * Floats in one run of a channel's planes, gathered back to back so that the per-channel loops see one long
     * array. B0's late planes are tiny (6 x 6, 3 x 3: under one AVX-512 vector or a few), and handled a plane at a
     * time their loop set-up and lane reductions cost more than the arithmetic: 2-7 ns an element against 0.7 at
     * 48 x 48. 16 K floats = 64 KiB, so a backward's x, dy and z runs stay in L2 together.
     */
    private static final int RUN_FLOATS = 16384;

    /** Planes per run: as many as fit in {@link #RUN_FLOATS} ({@link #planesPerBlock}), at least one, at most the batch. */
    static int planesPerRun(int n, int spatial) {
        return Math.max(1, Math.min(n, planesPerBlock(spatial)));
    }

    /** Planes first .. first + count - 1 of channel ch of t, back to back into a. */
    private static void gather(Tensor t, int first, int count, int ch, int c, int spatial, float[] a) {
        for (int i = 0; i < count; i++) {
            MemorySegment.copy(t.data(), Tensor.FLOAT, planeOffset(first + i, ch, c, spatial), a, i * spatial, spatial);
        }
    }

    /** The inverse of {@link #gather}: a's planes into channel ch of t. */
    private static void scatter(float[] a, Tensor t, int first, int count, int ch, int c, int spatial) {
        for (int i = 0; i < count; i++) {
            MemorySegment.copy(a, i * spatial, t.data(), Tensor.FLOAT, planeOffset(first + i, ch, c, spatial), spatial);
        }
    }

    @Override
    public void batchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, double eps,
                                  Tensor dx, Tensor dgamma, Tensor dbeta) {
        batchNormBackward("batchNormBackward", x, dy, gamma, null, saveMean, saveInvStd, dx, dgamma, dbeta);
    }

    /**
     * The batch-norm backward of dz = dy silu'(z), z = x scale + shift recomputed from the saved statistics. dz of
     * each element is computed once, in the statistics pass, and kept in scratch (a channel that fits one run) or
     * parked in dx until the second pass turns it into dx, so dx may be dy but not x.
     */
    @Override
    public void batchNormSiluBackward(Tensor x, Tensor dy, Tensor gamma, Tensor beta, Tensor saveMean, Tensor saveInvStd,
                                      double eps, Tensor dx, Tensor dgamma, Tensor dbeta) {
        String op = "batchNormSiluBackward";
        if (beta == null) throw new IllegalArgumentException(op + ": a required tensor is null");
        if (dx.isHost() && x.isHost() && dx.data().asOverlappingSlice(x.data()).isPresent()) {
            throw new IllegalArgumentException(op + ": dx holds dz between the two passes, so it must not be x");
        }
        batchNormBackward(op, x, dy, gamma, beta, saveMean, saveInvStd, dx, dgamma, dbeta);
    }

    /** beta null: plain batch norm; else the fused SiLU's backward (beta gives z). */
    private void batchNormBackward(String op, Tensor x, Tensor dy, Tensor gamma, Tensor beta, Tensor saveMean, Tensor saveInvStd,
                                   Tensor dx, Tensor dgamma, Tensor dbeta) {
        boolean silu = beta != null;
        begin(op, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        if (silu) begin(op, beta);
        int c = OpShapes.batchNormBackward(op, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta);
        if (silu) OpShapes.perChannel(op, c, beta);
        int n = x.dim(0);
        int spatial = (int) (x.size() / ((long) n * c));
        long count = (long) n * spatial;
        int run = planesPerRun(n, spatial);
        boolean whole = run == n; // the channel fits in one run: the second pass works on what the first gathered
        parallel(c, (from, to, sc) -> {
            float[] xs = sc.get(Scratch.PLANE, run * spatial);
            float[] gs = sc.get(Scratch.PLANE2, run * spatial);
            float[] zs = silu ? sc.get(Scratch.PLANE3, run * spatial) : null;
            double[] moments = new double[2];
            for (int ch = from; ch < to; ch++) {
                float mean = saveMean.get(ch), invStd = saveInvStd.get(ch);
                moments[0] = moments[1] = 0;
                for (int i = 0; i < n; i += run) {
                    int k = Math.min(run, n - i), len = k * spatial;
                    gather(x, i, k, ch, c, spatial, xs);
                    gather(dy, i, k, ch, c, spatial, gs);
                    if (silu) {
                        // z as the forward computed it (its scale and shift, from the saved statistics), then dz in gs
                        double g = gamma.get(ch);
                        System.arraycopy(xs, 0, zs, 0, len);
                        elementOps.affine(zs, len, (float) (g * invStd), (float) (beta.get(ch) - mean * g * invStd));
                        elementOps.siluBackward(zs, gs, len);
                        if (!whole) scatter(gs, dx, i, k, ch, c, spatial); // parked until the second pass
                    }
                    elementOps.gradientMoments(gs, xs, len, mean, moments);
                }
                double sumDy = moments[0], sumDyXhat = moments[1] * invStd;
                dbeta.set(ch, (float) sumDy);
                dgamma.set(ch, (float) sumDyXhat);
                // dx = gamma invStd (dy - mean(dy) - xhat mean(dy xhat)) = p dy + q x + r, xhat = (x - mean) invStd
                double k = gamma.get(ch) * (double) invStd;
                double meanDy = sumDy / count, meanDyXhat = sumDyXhat / count;
                float p = (float) k;
                float q = (float) (-k * invStd * meanDyXhat);
                float r = (float) (k * (invStd * meanDyXhat * mean - meanDy));
                for (int i = 0; i < n; i += run) {
                    int planes = Math.min(run, n - i);
                    if (!whole) {
                        gather(x, i, planes, ch, c, spatial, xs);
                        gather(silu ? dx : dy, i, planes, ch, c, spatial, gs);
                    }
                    elementOps.combine(gs, xs, planes * spatial, p, q, r);
                    scatter(gs, dx, i, planes, ch, c, spatial);
                }
            }
        });
    }

    private static long planeOffset(int i, int ch, int c, int spatial) {
        return ((long) i * c + ch) * spatial * Float.BYTES;
    }



    // ---------------------------------------------------------------- element-wise

    @Override
    public void silu(Tensor x, Tensor y) {
        sameSize("silu", x, y);
        elementwise(x.size(), (from, len, sc) -> {
            float[] a = load(x, from, len, sc.get(Scratch.PLANE, len));
            elementOps.silu(a, len);
            store(a, y, from, len);
        });
    }

    @Override
    public void siluBackward(Tensor x, Tensor dy, Tensor dx) {
        sameSize("siluBackward", x, dy, dx);
        elementwise(x.size(), (from, len, sc) -> {
            float[] a = load(x, from, len, sc.get(Scratch.PLANE, len));
            float[] d = load(dy, from, len, sc.get(Scratch.PLANE2, len));
            elementOps.siluBackward(a, d, len);
            store(d, dx, from, len);
        });
    }

    @Override
    public void sigmoid(Tensor x, Tensor y) {
        sameSize("sigmoid", x, y);
        elementwise(x.size(), (from, len, sc) -> {
            float[] a = load(x, from, len, sc.get(Scratch.PLANE, len));
            elementOps.sigmoid(a, len);
            store(a, y, from, len);
        });
    }

    @Override
    public void sigmoidBackward(Tensor y, Tensor dy, Tensor dx) {
        sameSize("sigmoidBackward", y, dy, dx);
        elementwise(y.size(), (from, len, sc) -> {
            float[] a = load(y, from, len, sc.get(Scratch.PLANE, len));
            float[] d = load(dy, from, len, sc.get(Scratch.PLANE2, len));
            for (int i = 0; i < len; i++) d[i] = d[i] * a[i] * (1 - a[i]);
            store(d, dx, from, len);
        });
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor y) {
        sameSize("add", a, b, y);
        elementwise(a.size(), (from, len, sc) -> {
            float[] u = load(a, from, len, sc.get(Scratch.PLANE, len));
            float[] v = load(b, from, len, sc.get(Scratch.PLANE2, len));
            for (int i = 0; i < len; i++) u[i] += v[i];
            store(u, y, from, len);
        });
    }

    @Override
    public void accumulate(Tensor into, Tensor from) {
        sameSize("accumulate", into, from);
        add(into, from, into);
    }

    @Override
    public void multiplyByMask(Tensor x, Tensor mask, Tensor y) {
        String op = "multiplyByMask";
        begin(op, x, mask, y);
        sameSize(op, x, y);
        host(op, mask);
        if (mask.size() == x.size()) {
            elementwise(x.size(), (from, len, sc) -> {
                float[] u = load(x, from, len, sc.get(Scratch.PLANE, len));
                float[] m = load(mask, from, len, sc.get(Scratch.PLANE2, len));
                for (int i = 0; i < len; i++) u[i] *= m[i];
                store(u, y, from, len);
            });
        } else if (mask.size() == x.dim(0)) {
            long perSample = x.size() / x.dim(0);
            elementwise(x.size(), (from, len, sc) -> {
                float[] u = load(x, from, len, sc.get(Scratch.PLANE, len));
                for (int i = 0; i < len; ) {
                    long at = from + i;
                    int sample = (int) (at / perSample);
                    int end = (int) Math.min(len, (sample + 1) * perSample - from);
                    float m = mask.get(sample);
                    for (; i < end; i++) u[i] *= m;
                }
                store(u, y, from, len);
            });
        } else {
            throw new IllegalArgumentException(op + ": mask " + mask + " fits neither " + x + " nor its batch of "
                    + x.dim(0));
        }
    }

    @Override
    public void scale(Tensor t, float factor) {
        begin("scale", t);
        elementwise(t.size(), (from, len, sc) -> {
            float[] u = load(t, from, len, sc.get(Scratch.PLANE, len));
            for (int i = 0; i < len; i++) u[i] *= factor;
            store(u, t, from, len);
        });
    }

    @Override
    public double sumOfSquares(Tensor t) {
        begin("sumOfSquares", t);
        int chunks = (int) ((t.size() + CHUNK - 1) / CHUNK);
        double[] partial = new double[chunks];
        elementwise(t.size(), (from, len, sc) -> {
            float[] u = load(t, from, len, sc.get(Scratch.PLANE, len));
            double s = 0;
            for (int i = 0; i < len; i++) s += (double) u[i] * u[i];
            partial[(int) (from / CHUNK)] = s;
        });
        double sum = 0;
        for (double p : partial) sum += p;
        return sum;
    }

    // ---------------------------------------------------------------- squeeze-excitation and pooling

    // The SE and pooling ops work on planes, which are contiguous in NCHW: a worker's range of planes is read and
    // written in blocks of up to RUN_FLOATS floats, one copy each, not a copy a plane (most SE planes are 6 x 6 or
    // 3 x 3 in a 96 px step). Per-plane sums go through ElementOps: float lanes, not one double add after another.

    /** Planes in one block of {@link #RUN_FLOATS} floats (at least one). */
    private static int planesPerBlock(int spatial) {
        return Math.max(1, RUN_FLOATS / Math.max(1, spatial));
    }

    /** One block of contiguous planes: the first plane's index, the planes in the block and their offset in bytes. */
    private interface PlaneBlock {
        void run(int first, int count, long at, Scratch sc);
    }

    private void planeBlocks(int planes, int spatial, PlaneBlock body) {
        int perBlock = planesPerBlock(spatial);
        parallel(planes, (from, to, sc) -> {
            for (int first = from; first < to; first += perBlock) {
                body.run(first, Math.min(perBlock, to - first), (long) first * spatial * Float.BYTES, sc);
            }
        });
    }

    @Override
    public void scaleChannels(Tensor x, Tensor s, Tensor y) {
        String op = "scaleChannels";
        begin(op, x, s, y);
        int planes = planes(op, x, s);
        shape(op, "output", y, x.shape());
        int spatial = (int) (x.size() / planes);
        planeBlocks(planes, spatial, (first, count, at, sc) -> {
            float[] a = sc.get(Scratch.PLANE, count * spatial);
            MemorySegment.copy(x.data(), Tensor.FLOAT, at, a, 0, count * spatial);
            for (int pl = 0; pl < count; pl++) {
                float f = s.get(first + pl);
                for (int j = pl * spatial, end = j + spatial; j < end; j++) a[j] *= f;
            }
            MemorySegment.copy(a, 0, y.data(), Tensor.FLOAT, at, count * spatial);
        });
    }

    @Override
    public void scaleChannelsBackward(Tensor x, Tensor s, Tensor dy, Tensor dx, Tensor ds) {
        String op = "scaleChannelsBackward";
        begin(op, x, s, dy, ds);
        if (dx != null) begin(op, dx);
        int planes = planes(op, x, s);
        shape(op, "output gradient", dy, x.shape());
        if (dx != null) shape(op, "input gradient", dx, x.shape());
        if (ds.size() != planes) throw new IllegalArgumentException(op + ": scale gradient " + ds + " should have " + planes + " elements");
        int spatial = (int) (x.size() / planes);
        planeBlocks(planes, spatial, (first, count, at, sc) -> {
            float[] a = sc.get(Scratch.PLANE, count * spatial);
            float[] d = sc.get(Scratch.PLANE2, count * spatial);
            MemorySegment.copy(x.data(), Tensor.FLOAT, at, a, 0, count * spatial);
            MemorySegment.copy(dy.data(), Tensor.FLOAT, at, d, 0, count * spatial);
            for (int pl = 0; pl < count; pl++) {
                ds.set(first + pl, (float) elementOps.products(d, a, pl * spatial, spatial));
                if (dx == null) continue;
                float f = s.get(first + pl);
                for (int j = pl * spatial, end = j + spatial; j < end; j++) d[j] *= f;
            }
            if (dx != null) MemorySegment.copy(d, 0, dx.data(), Tensor.FLOAT, at, count * spatial);
        });
    }

    @Override
    public void scaleChannelsInputGradient(Tensor dy, Tensor s, Tensor dPooled, Tensor dx) {
        String op = "scaleChannelsInputGradient";
        begin(op, dy, s, dPooled, dx);
        int planes = planes(op, dy, s);
        planes(op, dy, dPooled);
        shape(op, "input gradient", dx, dy.shape());
        int spatial = (int) (dy.size() / planes);
        planeBlocks(planes, spatial, (first, count, at, sc) -> {
            float[] d = sc.get(Scratch.PLANE, count * spatial);
            MemorySegment.copy(dy.data(), Tensor.FLOAT, at, d, 0, count * spatial);
            for (int pl = 0; pl < count; pl++) {
                float f = s.get(first + pl), pooledShare = dPooled.get(first + pl) / spatial;
                for (int j = pl * spatial, end = j + spatial; j < end; j++) d[j] = d[j] * f + pooledShare;
            }
            MemorySegment.copy(d, 0, dx.data(), Tensor.FLOAT, at, count * spatial);
        });
    }

    @Override
    public void globalAveragePool(Tensor x, Tensor y) {
        String op = "globalAveragePool";
        begin(op, x, y);
        int planes = planes(op, x, y);
        int spatial = (int) (x.size() / planes);
        planeBlocks(planes, spatial, (first, count, at, sc) -> {
            float[] a = sc.get(Scratch.PLANE, count * spatial);
            MemorySegment.copy(x.data(), Tensor.FLOAT, at, a, 0, count * spatial);
            for (int pl = 0; pl < count; pl++) y.set(first + pl, (float) (elementOps.sum(a, pl * spatial, spatial) / spatial));
        });
    }

    @Override
    public void globalAveragePoolBackward(Tensor dy, Tensor dx) {
        String op = "globalAveragePoolBackward";
        begin(op, dy, dx);
        int planes = planes(op, dx, dy);
        int spatial = (int) (dx.size() / planes);
        planeBlocks(planes, spatial, (first, count, at, sc) -> {
            float[] a = sc.get(Scratch.PLANE, count * spatial);
            for (int pl = 0; pl < count; pl++) Arrays.fill(a, pl * spatial, (pl + 1) * spatial, dy.get(first + pl) / spatial);
            MemorySegment.copy(a, 0, dx.data(), Tensor.FLOAT, at, count * spatial);
        });
    }

    // ---------------------------------------------------------------- fully connected

    @Override
    public void linearForward(Tensor x, Tensor w, Tensor b, Tensor y) {
        String op = "linearForward";
        begin(op, x, w, y);
        int[] d = linearDims(op, x, w, b);
        int n = d[0], in = d[1], out = d[2];
        shape(op, "output", y, n, out);
        float[] xa = x.toArray(), wa = w.toArray();
        // y = x W^T on the GEMM: the SE layers' 32 x 1152 x 48 products are too small to split between threads.
        float[] ya = new float[n * out];
        Scratch sc = scratch.get();
        gemm.multiply(n, out, in, Mat.of(xa, 0, in, 1), Mat.of(wa, 0, 1, in), ya, 0, out, false, sc);
        if (b != null) {
            float[] ba = b.toArray();
            for (int i = 0; i < n; i++) {
                for (int o = 0; o < out; o++) ya[i * out + o] += ba[o];
            }
        }
        y.copyFrom(ya);
    }

    @Override
    public void linearBackward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, Tensor db) {
        String op = "linearBackward";
        begin(op, x, w, dy, dw);
        int[] d = linearDims(op, x, w, db);
        int n = d[0], in = d[1], out = d[2];
        shape(op, "output gradient", dy, n, out);
        shape(op, "weight gradient", dw, out, in);
        float[] xa = x.toArray(), wa = w.toArray(), ga = dy.toArray();
        Scratch sc = scratch.get();
        if (dx != null) {
            host(op, dx);
            if (dx.size() != (long) n * in) throw new IllegalArgumentException(op + ": input gradient " + dx + " should match input " + x);
            // dx = dy W
            float[] dxa = new float[n * in];
            gemm.multiply(n, in, out, Mat.of(ga, 0, out, 1), Mat.of(wa, 0, in, 1), dxa, 0, in, false, sc);
            dx.copyFrom(dxa);
        }
        // dW = dy^T x
        float[] dwa = new float[out * in];
        gemm.multiply(out, in, n, Mat.of(ga, 0, 1, out), Mat.of(xa, 0, in, 1), dwa, 0, in, false, sc);
        dw.copyFrom(dwa);
        if (db != null) {
            host(op, db);
            for (int o = 0; o < out; o++) {
                double sum = 0;
                for (int i = 0; i < n; i++) sum += ga[i * out + o];
                db.set(o, (float) sum);
            }
        }
    }

    // ---------------------------------------------------------------- loss

    @Override
    public double bceWithLogits(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits) {
        String op = "bceWithLogits";
        begin(op, logits, targets);
        OpShapes.bceWithLogits(op, logits, targets, labelWeights, dLogits);
        int n = logits.dim(0), labels = logits.dim(1);
        float[] z = logits.toArray(), t = targets.toArray();
        double[] wl = new double[labels];
        if (labelWeights == null) {
            Arrays.fill(wl, 1);
        } else {
            host(op, labelWeights);
            for (int l = 0; l < labels; l++) wl[l] = labelWeights.get(l);
        }
        double weightSum = 0;
        for (double v : wl) weightSum += v;
        double norm = n * weightSum;
        if (!(norm > 0)) throw new IllegalArgumentException(op + ": label weights sum to " + weightSum);
        float[] grad = dLogits == null ? null : new float[z.length];
        double loss = 0;
        for (int i = 0; i < n; i++) {
            for (int l = 0; l < labels; l++) {
                int at = i * labels + l;
                double zi = z[at], ti = t[at];
                loss += wl[l] * (Math.max(zi, 0) - zi * ti + Math.log1p(Math.exp(-Math.abs(zi))));
                if (grad != null) grad[at] = (float) (wl[l] * (1 / (1 + Math.exp(-zi)) - ti) / norm);
            }
        }
        if (grad != null) {
            host(op, dLogits);
            dLogits.copyFrom(grad);
        }
        return loss / norm;
    }

    // ---------------------------------------------------------------- optimiser

    @Override
    public void adamStep(Tensor param, Tensor grad, Tensor m, Tensor v, long step, double lr, double beta1,
                         double beta2, double eps, double weightDecay, boolean decoupled) {
        String op = "adamStep";
        sameSize(op, param, grad, m, v);
        if (step < 1) throw new IllegalArgumentException(op + ": step counts from 1, got " + step);
        float b1 = (float) beta1, b2 = (float) beta2, e = (float) eps;
        float stepSize = (float) (lr / (1 - Math.pow(beta1, step)));
        float invSqrtBias2 = (float) (1 / Math.sqrt(1 - Math.pow(beta2, step)));
        float l2 = decoupled ? 0f : (float) weightDecay;
        float decay = decoupled ? (float) (1 - lr * weightDecay) : 1f;
        elementwise(param.size(), (from, len, sc) -> {
            float[] pa = load(param, from, len, sc.get(Scratch.PLANE, len));
            float[] ga = load(grad, from, len, sc.get(Scratch.PLANE2, len));
            float[] ma = load(m, from, len, sc.get(Scratch.OUT, len));
            float[] va = load(v, from, len, sc.get(Scratch.COLUMNS, len));
            for (int i = 0; i < len; i++) {
                float gi = ga[i] + l2 * pa[i];
                float p = pa[i] * decay;
                float mi = b1 * ma[i] + (1 - b1) * gi;
                float vi = b2 * va[i] + (1 - b2) * gi * gi;
                ma[i] = mi;
                va[i] = vi;
                pa[i] = p - stepSize * mi / ((float) Math.sqrt(vi) * invSqrtBias2 + e);
            }
            store(pa, param, from, len);
            store(ma, m, from, len);
            store(va, v, from, len);
        });
    }

    // ---------------------------------------------------------------- plumbing

    @FunctionalInterface
    private interface Range {
        void run(int from, int to, Scratch scratch);
    }

    @FunctionalInterface
    private interface Span {
        void run(long from, int length, Scratch scratch);
    }

    /** Runs body over [0, count) split into contiguous ranges, one per task; returns when all are done. */
    private void parallel(int count, Range body) {
        if (count <= 0) return;
        if (pool == null || count == 1 || callerOnly) {
            body.run(0, count, scratch.get());
            return;
        }
        int tasks = Math.min(count, threads * 4);
        ForkJoinTask<?>[] running = new ForkJoinTask<?>[tasks];
        for (int t = 0; t < tasks; t++) {
            int from = (int) ((long) count * t / tasks), to = (int) ((long) count * (t + 1) / tasks);
            running[t] = pool.submit(() -> body.run(from, to, scratch.get()));
        }
        for (ForkJoinTask<?> task : running) task.join();
    }

    private void elementwise(long size, Span body) {
        int chunks = (int) ((size + CHUNK - 1) / CHUNK);
        parallel(chunks, (from, to, sc) -> {
            for (int ch = from; ch < to; ch++) {
                long start = (long) ch * CHUNK;
                body.run(start, (int) Math.min(CHUNK, size - start), sc);
            }
        });
    }

    private static float[] load(Tensor t, long from, int len, float[] into) {
        MemorySegment.copy(t.data(), Tensor.FLOAT, from * Float.BYTES, into, 0, len);
        return into;
    }

    private static void store(float[] from, Tensor t, long at, int len) {
        MemorySegment.copy(from, 0, t.data(), Tensor.FLOAT, at * Float.BYTES, len);
    }

    /** Starts an op: checks its tensors and decides whether it may use the pool (see {@link #host}). */
    private void begin(String op, Tensor... ts) {
        callerOnly = false;
        host(op, ts);
    }

    /**
     * Checks that the tensors are on the host. A tensor of a confined arena can only be touched by the thread
     * that owns it, so an op on one runs on the calling thread alone instead of failing in a worker.
     */
    private void host(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t == null) throw new IllegalArgumentException(op + ": a required tensor is null");
            if (!t.isHost()) throw new IllegalArgumentException(op + ": " + t + " is on a device, not on the CPU");
            if (!t.data().isAccessibleBy(STRANGER)) callerOnly = true;
        }
    }

    private void sameSize(String op, Tensor... ts) {
        begin(op, ts);
        OpShapes.sameSize(op, ts);
    }

}
