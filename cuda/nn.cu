// Training kernels of our own for the CUDA backend (ich.nn.Backend): the element-wise ops, squeeze-excitation
// scaling, global average pooling, BCE-with-logits, the Adam/AdamW step (per tensor, or over every tensor of a
// model in one launch) and depthwise convolution (forward and both gradients), all fp32 NCHW, plus the bf16
// and NCHW/NHWC conversions of the bf16 path. The host side is ich.gpu.NnKernels; the reference of every op
// is ich.nn.cpu.CpuBackend.
//
// Exactness: as in preprocess.cu, fp32 products and sums are written with __fmul_rn/__fadd_rn/__fsub_rn and
// the build passes -fmad=false, so the arithmetic ops round as Java's do, in Java's order. Where the CPU works
// in double (the sums of reductions, the BCE loss and gradient) so does the kernel. Only exp differs: expf is
// within 2 ulp of the exact value, the CPU's double exp rounded to float within 1, so exp-based outputs agree to
// a few ulp, not bit for bit.
//
// Determinism: no atomics. A reduction is one block per output, each thread summing a fixed strided subset in
// a fixed order, then a fixed tree in shared memory; the same launch gives the same bits every time.
//
// Napkin math for the element-wise kernels: they are pure bandwidth. On an H100 (~3.3 TB/s), a binary op over
// the largest EfficientNet-B0 activation at batch 256, 256x256 (256 x 96 x 128 x 128 floats = 1.6 GB read +
// 0.8 GB written) takes ~0.7 ms; a grid of a few thousand 256-thread blocks striding over it keeps every SM
// busy, and more blocks buy nothing.

#include <cstdint>

#define ICH_NN_BLOCK 256  // threads per block of every kernel here: the reductions' shared arrays are sized by it

typedef long long i64;

__device__ __forceinline__ i64 first_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 grid_stride() { return (i64)gridDim.x * blockDim.x; }

// 1 / (1 + exp(-x)) in fp32. The CPU rounds the double expression once; expf plus two rounded ops stays within
// a few ulp of it, and saturates to 0 or 1 the same way for large |x|.
__device__ __forceinline__ float sigmoidf(float x) {
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x)));
}

// Fixed-order tree sum of one double per thread into s[0]; every thread must call it.
__device__ __forceinline__ double block_sum(double v, double* s) {
    s[threadIdx.x] = v;
    __syncthreads();
    for (int half = ICH_NN_BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    double total = s[0];
    __syncthreads();  // s may be reused by the caller's next call
    return total;
}

// ---- element-wise: one read (or two) and one write per element ----

extern "C" __global__ void ich_nn_silu(const float* x, float* y, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) {
        float v = x[i];
        y[i] = __fmul_rn(v, sigmoidf(v));
    }
}

// dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x), in the CPU's order.
extern "C" __global__ void ich_nn_silu_backward(const float* x, const float* dy, float* dx, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) {
        float v = x[i];
        float s = sigmoidf(v);
        dx[i] = __fmul_rn(__fmul_rn(dy[i], s), __fadd_rn(1.0f, __fmul_rn(v, __fsub_rn(1.0f, s))));
    }
}

extern "C" __global__ void ich_nn_sigmoid(const float* x, float* y, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) y[i] = sigmoidf(x[i]);
}

// dx = dy * y * (1 - y).
extern "C" __global__ void ich_nn_sigmoid_backward(const float* y, const float* dy, float* dx, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) {
        float v = y[i];
        dx[i] = __fmul_rn(__fmul_rn(dy[i], v), __fsub_rn(1.0f, v));
    }
}

// y = a + b; y may be a or b (accumulate is add(into, from, into)).
extern "C" __global__ void ich_nn_add(const float* a, const float* b, float* y, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) y[i] = __fadd_rn(a[i], b[i]);
}

// y = x * mask, mask of x's size (dropout) or one value per sample of per_sample elements (drop-path: pass
// per_sample = c*h*w; for the same-shape mask pass per_sample = 1).
extern "C" __global__ void ich_nn_multiply_by_mask(const float* x, const float* mask, float* y, i64 n, i64 per_sample) {
    for (i64 i = first_index(); i < n; i += grid_stride()) y[i] = __fmul_rn(x[i], mask[i / per_sample]);
}

// t *= factor in place.
extern "C" __global__ void ich_nn_scale(float* t, float factor, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) t[i] = __fmul_rn(t[i], factor);
}

// ---- squeeze-excitation and pooling; a plane is one (n, c) of spatial = h*w elements ----

// y = x * s[plane].
extern "C" __global__ void ich_nn_scale_channels(const float* x, const float* s, float* y, i64 n, i64 spatial) {
    for (i64 i = first_index(); i < n; i += grid_stride()) y[i] = __fmul_rn(x[i], s[i / spatial]);
}

// One block per plane (grid-striding over planes): dx = dy * s, ds = sum of dy * x in double, as the CPU does.
// Napkin: 2 reads + 1 write per element; an SE block's planes are 8x8 to 128x128, so a block of 256 threads
// does 1 to 64 elements each and the reduction tree (8 steps) is noise next to the traffic.
extern "C" __global__ void ich_nn_scale_channels_backward(const float* x, const float* s, const float* dy, float* dx,
                                                          float* ds, i64 planes, i64 spatial) {
    __shared__ double partial[ICH_NN_BLOCK];
    for (i64 p = blockIdx.x; p < planes; p += gridDim.x) {
        const i64 base = p * spatial;
        const float f = s[p];
        double sum = 0;
        for (i64 j = threadIdx.x; j < spatial; j += blockDim.x) {
            float d = dy[base + j];
            sum += (double)d * (double)x[base + j];
            dx[base + j] = __fmul_rn(d, f);
        }
        double total = block_sum(sum, partial);
        if (threadIdx.x == 0) ds[p] = (float)total;
    }
}

// One block per plane: y[plane] = (float) (sum in double / spatial).
extern "C" __global__ void ich_nn_global_average_pool(const float* x, float* y, i64 planes, i64 spatial) {
    __shared__ double partial[ICH_NN_BLOCK];
    for (i64 p = blockIdx.x; p < planes; p += gridDim.x) {
        const i64 base = p * spatial;
        double sum = 0;
        for (i64 j = threadIdx.x; j < spatial; j += blockDim.x) sum += (double)x[base + j];
        double total = block_sum(sum, partial);
        if (threadIdx.x == 0) y[p] = (float)(total / (double)spatial);
    }
}

// dx = dy[plane] / spatial, divided in float as the CPU does.
extern "C" __global__ void ich_nn_global_average_pool_backward(const float* dy, float* dx, i64 n, i64 spatial) {
    const float div = (float)spatial;
    for (i64 i = first_index(); i < n; i += grid_stride()) dx[i] = __fdiv_rn(dy[i / spatial], div);
}

// ---- loss ----

// Weighted BCE on logits [n, labels], launched as ONE block of ICH_NN_BLOCK threads: at n = 256, labels = 6 that
// is 6 elements a thread, far cheaper than a second pass. loss[0] = sum w[l] bce(z, t) / (n sum w), in double;
// dz = (float) (w[l] (sigmoid(z) - t) / (n sum w)) unless dz is null; weights null means all 1.
extern "C" __global__ void ich_nn_bce_with_logits(const float* z, const float* t, const float* weights, float* dz,
                                                  double* loss, i64 n, i64 labels) {
    __shared__ double partial[ICH_NN_BLOCK];
    double weight_sum = 0;
    for (i64 l = 0; l < labels; l++) weight_sum += weights == nullptr ? 1.0 : (double)weights[l];
    const double norm = (double)n * weight_sum;
    double sum = 0;
    for (i64 i = threadIdx.x; i < n * labels; i += blockDim.x) {
        const double w = weights == nullptr ? 1.0 : (double)weights[i % labels];
        const double zi = z[i], ti = t[i];
        sum += w * (fmax(zi, 0.0) - zi * ti + log1p(exp(-fabs(zi))));
        if (dz != nullptr) dz[i] = (float)(w * (1.0 / (1.0 + exp(-zi)) - ti) / norm);
    }
    double total = block_sum(sum, partial);
    if (threadIdx.x == 0) loss[0] = total / norm;
}

// ---- optimiser ----

// One element of an Adam/AdamW step, in place on param, m and v: the CPU's float formulas in its order. Both
// Adam kernels below use it, so the multi-tensor one gives the per-tensor one's bits.
__device__ __forceinline__ void adam_element(float* param, const float* grad, float* m, float* v, i64 i, float beta1,
                                             float beta2, float one_minus_b1, float one_minus_b2, float eps,
                                             float step_size, float inv_sqrt_bias2, float l2, float decay) {
    const float p0 = param[i];
    const float g = __fadd_rn(grad[i], __fmul_rn(l2, p0));
    const float p = __fmul_rn(p0, decay);
    const float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(one_minus_b1, g));
    const float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), inv_sqrt_bias2), eps);
    param[i] = __fsub_rn(p, __fdiv_rn(__fmul_rn(step_size, mi), denom));
}

// One Adam/AdamW step over a parameter tensor, in place on param, m and v. The host computes, in double as the
// CPU does, and rounds to float: step_size = lr / (1 - beta1^step), inv_sqrt_bias2 = 1 / sqrt(1 - beta2^step),
// l2 = weight decay for Adam (0 for AdamW), decay = 1 - lr * wd for AdamW (1 for Adam). Napkin: 4 reads + 3
// writes of 4 bytes per element; all 5.3 M parameters of EfficientNet-B0 are ~150 MB, ~50 us at H100
// bandwidth, so one launch per tensor (~210 of them) is launch-bound, not bandwidth: see ich_nn_adam_multi.
extern "C" __global__ void ich_nn_adam_step(float* param, const float* grad, float* m, float* v, i64 n,
                                            float beta1, float beta2, float eps, float step_size,
                                            float inv_sqrt_bias2, float l2, float decay) {
    const float one_minus_b1 = __fsub_rn(1.0f, beta1), one_minus_b2 = __fsub_rn(1.0f, beta2);
    for (i64 i = first_index(); i < n; i += grid_stride()) {
        adam_element(param, grad, m, v, i, beta1, beta2, one_minus_b1, one_minus_b2, eps, step_size, inv_sqrt_bias2,
                     l2, decay);
    }
}

// One tensor of a multi-tensor Adam step; the host (NnKernels.AdamTable) writes these, 48 bytes each.
struct AdamTensor {
    float* param;
    const float* grad;
    float* m;
    float* v;
    i64 n;            // elements, >= 1
    i64 first_chunk;  // index of the tensor's first chunk among all tensors' chunks
};

// The per-step values of ich_nn_adam_step's arguments, read from device memory (28 bytes) so that a launch
// captured into a CUDA graph picks up the learning rate and step count of each replay.
struct AdamScalars {
    float beta1, beta2, eps, step_size, inv_sqrt_bias2, l2, decay;
};

// One Adam/AdamW step over every tensor of a table, in one launch: ich_nn_adam_step's arithmetic per element.
// Each tensor is cut into chunks of `chunk` elements (its last one shorter); chunk_tensor[c] is the tensor of
// global chunk c, so a block finds its work with one lookup, no search. Blocks stride over the chunks; the
// threads of a block stride over the chunk's elements, so a warp touches 128 consecutive bytes per array.
//
// Napkin: EfficientNet-B0 with a 6-label head trains 213 tensors of 4.0 M floats in all; at chunk = 4096 (16
// elements a thread) that is 1143 chunks, ~210 of them short ones (most tensors are batch-norm vectors of 16 to
// 1280 elements), ~1.5 waves of blocks on a 132-SM H100 (at 38 registers a thread, 6 blocks of 256 fit an
// SM). Traffic is the per-tensor kernel's 28 bytes per element (~112 MB, ~35 us at 3.3 TB/s) plus 52 bytes of
// table per chunk (60 KB); it replaces 213 launches of a few microseconds each, host and GPU.
extern "C" __global__ void ich_nn_adam_multi(const AdamTensor* tensors, const int* chunk_tensor, i64 chunks,
                                             i64 chunk, const AdamScalars* scalars) {
    const AdamScalars s = *scalars;
    const float one_minus_b1 = __fsub_rn(1.0f, s.beta1), one_minus_b2 = __fsub_rn(1.0f, s.beta2);
    for (i64 c = blockIdx.x; c < chunks; c += gridDim.x) {
        const AdamTensor t = tensors[chunk_tensor[c]];
        const i64 begin = (c - t.first_chunk) * chunk, end = min(begin + chunk, t.n);
        for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) {
            adam_element(t.param, t.grad, t.m, t.v, i, s.beta1, s.beta2, one_minus_b1, one_minus_b2, s.eps,
                         s.step_size, s.inv_sqrt_bias2, s.l2, s.decay);
        }
    }
}

// ---- depthwise convolution (groups == c == k): x [n, c, h, w], wt [c, 1, r, s], y [n, c, p, q] ----
//
// Output (p, q) of a plane reads input rows p * stride_h + rr - pad_h and columns q * stride_w + ss - pad_w,
// zero outside the image, as ich.nn.ConvGeometry and the CPU's Depthwise define it.
//
// Tiling: a block owns `group` whole planes at once when a plane is small (the late stages are 8x8 or less;
// one plane per block would leave most of 256 threads idle), otherwise one tile of tile_rows x tile_cols
// positions of one plane. The host (NnKernels.depthwiseTiling) picks the tiling and sizes the dynamic shared
// memory with the same layout formulas as the kernels; each kernel checks that it got that much and traps if
// not, so a sizing mismatch fails the launch instead of reading past the tile. Blocks stride over the tiles.
//
// Napkin math: B0 at batch 256, 256x256, stage 1 (32 channels of 128x128, 3x3, stride 1) moves 537 MB in and
// 537 MB out, ~0.33 ms at H100 bandwidth, for 2.4 GFLOP (~0.04 ms of fp32 issue): bandwidth-bound, so the tile
// is read from global memory once (halo overhead (34/32)^2 = 13% for 32x32 outputs, 3x3) and every tap is a
// shared-memory read. A 5x5 tap on an 8x8 plane is the opposite corner: 25 multiply-adds per 8 bytes moved,
// so planes are packed `group` to a block to keep every thread busy.
//
// Sum order: each output (or input gradient) is one thread's float sum over the taps, rr outer, ss inner, each
// product and add rounded (no FMA), starting from the first product: fixed, so the result repeats bit for bit.
// It is not the CPU's order (the CPU may fuse multiply-adds), so the two agree to the rounding of 9 or 25 terms.

extern __shared__ float ich_dw_shared[];  // dynamic: the host passes the size of the layout documented per kernel

__device__ __forceinline__ unsigned dynamic_shared_bytes() {
    unsigned bytes;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
    return bytes;
}

// Traps unless the launch gave at least `floats` floats of dynamic shared memory (a host sizing bug).
__device__ __forceinline__ void require_shared(i64 floats) {
    if ((i64)dynamic_shared_bytes() < floats * (i64)sizeof(float)) __trap();
}

// Rounds towards minus infinity, also for a negative numerator (C's / truncates towards zero).
__device__ __forceinline__ i64 floor_div(i64 a, i64 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Loads the r*s taps of `group` consecutive planes (from plane0) into taps[group][r*s]; planes past the end get
// zeros. A plane's channel, and so its filter, is plane % c. Every thread of the block takes part.
__device__ __forceinline__ void load_taps(float* taps, const float* wt, i64 plane0, i64 planes, i64 c, int rs, int group) {
    for (int i = threadIdx.x; i < group * rs; i += blockDim.x) {
        const i64 plane = plane0 + i / rs;
        taps[i] = plane < planes ? wt[plane % c * rs + i % rs] : 0.0f;
    }
}

// Loads a rows x cols window at (row0, col0) of `group` consecutive planes of src (each height x width) into
// tile[group][rows][cols], zero outside the planes (padding, and planes past the end). Every thread takes part.
__device__ __forceinline__ void load_window(float* tile, const float* src, i64 plane0, i64 planes, i64 height,
                                            i64 width, i64 row0, i64 col0, int rows, int cols, int group) {
    const int window = rows * cols;
    for (int i = threadIdx.x; i < group * window; i += blockDim.x) {
        const int g = i / window, at = i - g * window;
        const i64 plane = plane0 + g, hh = row0 + at / cols, ww = col0 + at % cols;
        tile[i] = plane < planes && hh >= 0 && hh < height && ww >= 0 && ww < width ? src[(plane * height + hh) * width + ww] : 0.0f;
    }
}

// y = depthwise conv(x, wt). Planes are the n*c (image, channel) pairs; plane's channel is plane % c.
// Shared layout: taps [group][r*s], then input tiles [group][in_rows][in_cols] with in_rows =
// (tile_rows - 1) * stride_h + r and in_cols = (tile_cols - 1) * stride_w + s: the tile's outputs' whole
// window, zero-filled outside the image. A thread keeps one output column and steps over rows.
extern "C" __global__ void ich_nn_depthwise_forward(const float* x, const float* wt, float* y, i64 planes, i64 c,
                                                    i64 h, i64 w, i64 p, i64 q, int r, int s, int stride_h,
                                                    int stride_w, int pad_h, int pad_w, int group, int tile_rows,
                                                    int tile_cols) {
    const int rs = r * s;
    const int in_rows = (tile_rows - 1) * stride_h + r, in_cols = (tile_cols - 1) * stride_w + s;
    const int in_plane = in_rows * in_cols;
    require_shared((i64)group * (rs + in_plane));
    float* taps = ich_dw_shared;
    float* tile = ich_dw_shared + group * rs;
    const i64 tiles_p = (p + tile_rows - 1) / tile_rows, tiles_q = (q + tile_cols - 1) / tile_cols;
    const i64 items = (planes + group - 1) / group * tiles_p * tiles_q;
    const int row_step = blockDim.x / tile_cols;  // tile_cols <= blockDim.x: the host caps it at 32
    const int col = threadIdx.x % tile_cols;
    const bool computes = threadIdx.x < row_step * tile_cols;
    for (i64 item = blockIdx.x; item < items; item += gridDim.x) {
        const i64 plane0 = item / (tiles_p * tiles_q) * group;
        const i64 p0 = item / tiles_q % tiles_p * tile_rows, q0 = item % tiles_q * tile_cols;
        const i64 row0 = p0 * stride_h - pad_h, col0 = q0 * stride_w - pad_w;
        load_taps(taps, wt, plane0, planes, c, rs, group);
        load_window(tile, x, plane0, planes, h, w, row0, col0, in_rows, in_cols, group);
        __syncthreads();
        if (computes) {
            for (int row = threadIdx.x / tile_cols; row < group * tile_rows; row += row_step) {
                const int g = row / tile_rows, oi = row - g * tile_rows;
                const i64 plane = plane0 + g, pp = p0 + oi, qq = q0 + col;
                if (plane >= planes || pp >= p || qq >= q) continue;
                const float* in = tile + g * in_plane + oi * stride_h * in_cols + col * stride_w;
                const float* k = taps + g * rs;
                float acc = __fmul_rn(k[0], in[0]);
                for (int rr = 0; rr < r; rr++) {
                    for (int ss = rr == 0 ? 1 : 0; ss < s; ss++) {
                        acc = __fadd_rn(acc, __fmul_rn(k[rr * s + ss], in[rr * in_cols + ss]));
                    }
                }
                y[(plane * p + pp) * q + qq] = acc;
            }
        }
        __syncthreads();  // the next item overwrites the tile
    }
}

// dx = d loss / d x: input pixel (hh, ww) gathers dy[o, u] * wt[rr, ss] over the taps with
// hh + pad_h - rr = o * stride_h and ww + pad_w - ss = u * stride_w, 0 <= o < p, 0 <= u < q. No atomics: each
// thread owns its dx elements. Tiles are over dx (tile_rows x tile_cols of h x w). Shared layout: taps
// [group][r*s], then dy tiles [group][dy_rows][dy_cols] with dy_rows = (tile_rows + r - 2) / stride_h + 2 and
// dy_cols = (tile_cols + s - 2) / stride_w + 2, starting at dy row o0 = floor((h0 + pad_h - r + 1) / stride_h)
// and column u0 likewise: the tile's rows h0 .. h0 + tile_rows - 1 gather from dy rows
// floor((h0 + pad_h - r + 1) / stride_h) .. floor((h0 + tile_rows - 1 + pad_h) / stride_h), at most
// (tile_rows + r - 2) / stride_h + 2 of them. Rows and columns outside dy are zero-filled.
extern "C" __global__ void ich_nn_depthwise_backward_data(const float* dy, const float* wt, float* dx, i64 planes,
                                                          i64 c, i64 h, i64 w, i64 p, i64 q, int r, int s,
                                                          int stride_h, int stride_w, int pad_h, int pad_w, int group,
                                                          int tile_rows, int tile_cols) {
    const int rs = r * s;
    const int dy_rows = (tile_rows + r - 2) / stride_h + 2, dy_cols = (tile_cols + s - 2) / stride_w + 2;
    const int dy_plane = dy_rows * dy_cols;
    require_shared((i64)group * (rs + dy_plane));
    float* taps = ich_dw_shared;
    float* tile = ich_dw_shared + group * rs;
    const i64 tiles_h = (h + tile_rows - 1) / tile_rows, tiles_w = (w + tile_cols - 1) / tile_cols;
    const i64 items = (planes + group - 1) / group * tiles_h * tiles_w;
    const int row_step = blockDim.x / tile_cols;
    const int col = threadIdx.x % tile_cols;
    const bool computes = threadIdx.x < row_step * tile_cols;
    for (i64 item = blockIdx.x; item < items; item += gridDim.x) {
        const i64 plane0 = item / (tiles_h * tiles_w) * group;
        const i64 h0 = item / tiles_w % tiles_h * tile_rows, w0 = item % tiles_w * tile_cols;
        const i64 o0 = floor_div(h0 + pad_h - r + 1, stride_h), u0 = floor_div(w0 + pad_w - s + 1, stride_w);
        load_taps(taps, wt, plane0, planes, c, rs, group);
        load_window(tile, dy, plane0, planes, p, q, o0, u0, dy_rows, dy_cols, group);
        __syncthreads();
        if (computes) {
            for (int row = threadIdx.x / tile_cols; row < group * tile_rows; row += row_step) {
                const int g = row / tile_rows, ii = row - g * tile_rows;
                const i64 plane = plane0 + g, hh = h0 + ii, ww = w0 + col;
                if (plane >= planes || hh >= h || ww >= w) continue;
                const float* grad = tile + g * dy_plane;
                const float* k = taps + g * rs;
                float acc = 0.0f;
                bool first = true;
                for (int rr = 0; rr < r; rr++) {
                    const i64 t = hh + pad_h - rr;
                    if (t % stride_h != 0) continue;  // exact for negative t too: -4 % 2 == 0, -3 % 2 == -1
                    const int a = (int)(t / stride_h - o0);
                    for (int ss = 0; ss < s; ss++) {
                        const i64 v = ww + pad_w - ss;
                        if (v % stride_w != 0) continue;
                        const float term = __fmul_rn(k[rr * s + ss], grad[a * dy_cols + (int)(v / stride_w - u0)]);
                        acc = first ? term : __fadd_rn(acc, term);
                        first = false;
                    }
                }
                dx[(plane * h + hh) * w + ww] = acc;
            }
        }
        __syncthreads();
    }
}

// dw[ch, rr, ss] = sum over images and outputs (o, u) of dy[img, ch, o, u] * x[img, ch, o stride_h + rr - pad_h,
// u stride_w + ss - pad_w]. One block per channel (striding over channels), so no two blocks write the same dw
// and no atomics are needed. The block walks the channel's tiles in a fixed order; thread t works on tap
// t % (r*s) and, as lane t / (r*s) of blockDim / (r*s) lanes, on every lanes-th valid output of each tile. Each
// thread sums in double; the lanes of a tap are then added in lane order.
//
// Why double: a tap of B0's first stage sums 256 x 128 x 128 = 4.2 M products. In float a single thread's
// running sum of ~150 k terms would lose up to ~1% of the result; in double each product of two floats is exact
// and the additions lose ~2^-53 each, so the final rounding to float dominates whatever the order, and the
// result is as good as the CPU's (which accumulates each position over the batch in float, then the positions in
// double). The FP64 rate of an A100/H100 is half its FP32 rate, so this costs little.
//
// Tiles are over the outputs (tile_rows x tile_cols of p x q), `group` images at once when the plane is small.
// Shared layout: dy values [group * tile_rows * tile_cols], the tile's valid outputs packed (image, row, column)
// in that order; then as many ints, each the offset in the x tile of that output's window; then x tiles
// [group][in_rows][in_cols] as in the forward kernel. The offsets are computed once per tile so the inner loop,
// run r*s times per output, has no divisions.
extern "C" __global__ void ich_nn_depthwise_backward_filter(const float* x, const float* dy, float* dw, i64 n,
                                                            i64 c, i64 h, i64 w, i64 p, i64 q, int r, int s,
                                                            int stride_h, int stride_w, int pad_h, int pad_w,
                                                            int group, int tile_rows, int tile_cols) {
    __shared__ double partial[ICH_NN_BLOCK];
    const int rs = r * s;  // <= blockDim.x, checked on the host
    const int in_rows = (tile_rows - 1) * stride_h + r, in_cols = (tile_cols - 1) * stride_w + s;
    const int in_plane = in_rows * in_cols, out_tile = group * tile_rows * tile_cols;
    require_shared((i64)2 * out_tile + (i64)group * in_plane);
    float* grad = ich_dw_shared;
    int* window = reinterpret_cast<int*>(ich_dw_shared + out_tile);
    float* tile = ich_dw_shared + 2 * out_tile;
    const int lanes = blockDim.x / rs, lane = threadIdx.x / rs, tap = threadIdx.x % rs;
    const int tap_offset = tap / s * in_cols + tap % s;
    const i64 tiles_p = (p + tile_rows - 1) / tile_rows, tiles_q = (q + tile_cols - 1) / tile_cols;
    const i64 items = (n + group - 1) / group * tiles_p * tiles_q;
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double acc = 0;
        for (i64 item = 0; item < items; item++) {
            const i64 img0 = item / (tiles_p * tiles_q) * group;
            const i64 p0 = item / tiles_q % tiles_p * tile_rows, q0 = item % tiles_q * tile_cols;
            const i64 row0 = p0 * stride_h - pad_h, col0 = q0 * stride_w - pad_w;
            // the valid part of the tile: images img0 .. img0 + vg - 1, vp rows, vq columns
            const int vg = (int)min((i64)group, n - img0), vp = (int)min((i64)tile_rows, p - p0);
            const int vq = (int)min((i64)tile_cols, q - q0), valid = vg * vp * vq;
            for (int i = threadIdx.x; i < valid; i += blockDim.x) {
                const int g = i / (vp * vq), oi = i / vq % vp, oj = i % vq;
                grad[i] = dy[(((img0 + g) * c + ch) * p + p0 + oi) * q + q0 + oj];
                window[i] = g * in_plane + oi * stride_h * in_cols + oj * stride_w;
            }
            for (int i = threadIdx.x; i < vg * in_plane; i += blockDim.x) {
                const int g = i / in_plane, at = i - g * in_plane;
                const i64 hh = row0 + at / in_cols, ww = col0 + at % in_cols;
                tile[i] = hh >= 0 && hh < h && ww >= 0 && ww < w ? x[(((img0 + g) * c + ch) * h + hh) * w + ww] : 0.0f;
            }
            __syncthreads();
            if (lane < lanes) {
                for (int i = lane; i < valid; i += lanes) {
                    acc += (double)grad[i] * (double)tile[window[i] + tap_offset];
                }
            }
            __syncthreads();
        }
        partial[threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.x < rs) {
            double sum = 0;
            for (int l = 0; l < lanes; l++) sum += partial[l * rs + threadIdx.x];
            dw[ch * rs + threadIdx.x] = (float)sum;
        }
        __syncthreads();  // partial is rewritten for the next channel
    }
}

// ---- conversions for the bf16 path ----

// fp32 -> bf16 bits, round to nearest, ties to even: add 0x7FFF plus the lowest kept bit, then truncate; a carry
// out of the mantissa rounds up the exponent, and the largest floats round to infinity, as IEEE rounding does.
// A NaN keeps its sign and top payload bits and gets the quiet bit: truncating a NaN whose payload is only in
// the low 16 bits would otherwise give infinity.
__device__ __forceinline__ unsigned short f32_to_bf16_bits(float v) {
    const unsigned int b = __float_as_uint(v);
    if ((b & 0x7FFFFFFFu) > 0x7F800000u) return (unsigned short)((b >> 16) | 0x0040u);
    return (unsigned short)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

// Napkin: 6 bytes per element; a 256 x 96 x 128 x 128 activation (403 M elements) is ~0.7 ms on an H100.
extern "C" __global__ void ich_nn_f32_to_bf16(const float* x, unsigned short* y, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) y[i] = f32_to_bf16_bits(x[i]);
}

// bf16 -> fp32 is exact: the 16 bits become the float's top half.
extern "C" __global__ void ich_nn_bf16_to_f32(const unsigned short* x, float* y, i64 n) {
    for (i64 i = first_index(); i < n; i += grid_stride()) y[i] = __uint_as_float((unsigned int)x[i] << 16);
}

// dst[b][col][row] = src[b][row][col] for `batch` matrices of rows x cols, through a 32 x 33 shared tile (the
// extra column keeps the column-wise reads free of bank conflicts): a warp reads 32 consecutive floats of a
// source row and writes 32 consecutive floats of a destination row, so both sides coalesce. 256 threads are
// 32 x 8, each moving 4 elements of a tile; blocks stride over the batch's tiles. Napkin: 8 bytes per element,
// pure bandwidth, ~0.5 ms for 400 M elements on an H100.
__device__ __forceinline__ void transpose_batch(const float* src, float* dst, i64 batch, i64 rows, i64 cols) {
    __shared__ float tile[32][33];
    const i64 tiles_r = (rows + 31) / 32, tiles_c = (cols + 31) / 32, items = batch * tiles_r * tiles_c;
    const int tx = threadIdx.x % 32, ty = threadIdx.x / 32, ty_step = blockDim.x / 32;
    for (i64 item = blockIdx.x; item < items; item += gridDim.x) {
        const i64 b = item / (tiles_r * tiles_c), r0 = item / tiles_c % tiles_r * 32, c0 = item % tiles_c * 32;
        const float* in = src + b * rows * cols;
        float* out = dst + b * rows * cols;
        for (int i = ty; i < 32; i += ty_step) {
            if (r0 + i < rows && c0 + tx < cols) tile[i][tx] = in[(r0 + i) * cols + c0 + tx];
        }
        __syncthreads();
        for (int i = ty; i < 32; i += ty_step) {
            if (c0 + i < cols && r0 + tx < rows) out[(c0 + i) * rows + r0 + tx] = tile[tx][i];
        }
        __syncthreads();  // the next item overwrites the tile
    }
}

// [n, c, h, w] -> [n, h, w, c]: per image, a c x (h w) matrix transposed.
extern "C" __global__ void ich_nn_nchw_to_nhwc_f32(const float* x, float* y, i64 n, i64 c, i64 hw) {
    transpose_batch(x, y, n, c, hw);
}

// [n, h, w, c] -> [n, c, h, w]: per image, an (h w) x c matrix transposed.
extern "C" __global__ void ich_nn_nhwc_to_nchw_f32(const float* x, float* y, i64 n, i64 c, i64 hw) {
    transpose_batch(x, y, n, hw, c);
}
