// Training kernels of our own for the CUDA backend (ich.nn.Backend): the element-wise ops, squeeze-excitation
// scaling, global average pooling, BCE-with-logits, the Adam/AdamW step (per tensor, or over every tensor of a
// model in one launch) and depthwise convolution (forward and both gradients), all fp32 NCHW; then the bf16
// mixed-precision path: the bf16 and NCHW/NHWC conversions, bf16 element-wise ops, and NHWC squeeze-excitation,
// pooling and batch norm on bf16 activations with fp32 per-channel tensors (see its section at the end). The
// host side is ich.gpu.NnKernels; the reference of every op is ich.nn.cpu.CpuBackend.
//
// Exactness: as in preprocess.cu, fp32 products and sums are written with __fmul_rn/__fadd_rn/__fsub_rn and
// the build passes -fmad=false, so the arithmetic ops round as Java's do, in Java's order. Where the CPU works
// in double (the sums of reductions, the BCE loss and gradient) so does the kernel. Only exp differs: expf is
// within 2 ulp of the exact value, the CPU's double exp rounded to float within 1, so exp-based outputs agree to
// a few ulp, not bit for bit.
//
// Determinism: no atomics. A reduction is one block per output, each thread summing a fixed strided subset in
// a fixed order, then a fixed tree in shared memory (batch norm: fixed per-chunk partial sums first, written to
// a workspace, then one block per channel over them); the same launch gives the same bits every time.
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

// Sigmoid for the kernels that round their result to bf16: __expf (one multiply and ex2.approx) and __fdividef
// (rcp.approx), 4 instructions, two of them on the special-function unit, where sigmoidf's expf and IEEE division
// take ~20. Their error (CUDA C Programming Guide, intrinsic functions: __expf within 2 + 1.17|x| ulp,
// __fdividef within 2 ulp) stays under 1.3e-5 relative for |x| < 88, under 1/150 of bf16's half ulp (2^-9), so
// the rounded output is the same but for values within that distance of a rounding boundary, then one bf16 ulp
// apart. Why it matters: the fused batch norm + SiLU passes stream 4-6 bytes an element, ~33-50 issue slots an
// element at the H200's copy bandwidth, and sigmoidf alone took ~20 of them. Saturation as sigmoidf's: 1 for x >
// 88 (the exp flushes to 0), 0 for x < -88 (1 / inf); NaN stays NaN.
__device__ __forceinline__ float sigmoid_for_bf16(float x) {
    return __fdividef(1.0f, __fadd_rn(1.0f, __expf(-x)));
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

// One block per plane (grid-striding over planes): dx = dy * s unless dx is null, ds = sum of dy * x in double,
// as the CPU does. Napkin: 2 reads (+ 1 write with dx) per element; an SE block's planes are 8x8 to 128x128, so
// a block of 256 threads does 1 to 64 elements each and the reduction tree (8 steps) is noise next to the traffic.
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
            if (dx) dx[base + j] = __fmul_rn(d, f);
        }
        double total = block_sum(sum, partial);
        if (threadIdx.x == 0) ds[p] = (float)total;
    }
}

// The SE input's gradient through both of its paths, the scaling and the mean the scales came from:
// dx = dy * s[plane] + dpooled[plane] / spatial, in fp32 in the CPU's order (product, quotient, sum), so it is
// the separate scale-channels backward, pooling backward and accumulate bit for bit in one pass: 1 read + 1
// write per element instead of 2 + 1, 1 and 2 + 1.
extern "C" __global__ void ich_nn_scale_channels_input_gradient(const float* dy, const float* s, const float* dpooled,
                                                                float* dx, i64 n, i64 spatial) {
    const float div = (float)spatial;
    for (i64 i = first_index(); i < n; i += grid_stride()) {
        const i64 p = i / spatial;
        dx[i] = __fadd_rn(__fmul_rn(dy[i], s[p]), __fdiv_rn(dpooled[p], div));
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
// result is the CPU's up to that rounding (it too sums exact products in double: with fp32 sums instead, B0 could
// not memorise a batch in OverfitTest). The FP64 rate of an A100/H100 is half its FP32 rate, so this costs little.
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

// Widening to and narrowing from the fp32 of a transpose's shared tile: exact for bf16 in, rounded to nearest
// even for bf16 out.
__device__ __forceinline__ float tile_value(float v) { return v; }
__device__ __forceinline__ float tile_value(unsigned short bf16_bits) { return __uint_as_float((unsigned int)bf16_bits << 16); }
__device__ __forceinline__ void put_value(float* p, float v) { *p = v; }
__device__ __forceinline__ void put_value(unsigned short* p, float v) { *p = f32_to_bf16_bits(v); }

// dst[b][col][row] = src[b][row][col] for `batch` matrices of rows x cols, through a 32 x 33 shared tile (the
// extra column keeps the column-wise reads free of bank conflicts): a warp reads 32 consecutive elements of a
// source row and writes 32 consecutive elements of a destination row, so both sides coalesce. 256 threads are
// 32 x 8, each moving 4 elements of a tile; blocks stride over the batch's tiles. In and Out are float or bf16
// bits (unsigned short), so a layout change and a precision change take one pass. Napkin: 8 bytes per element
// fp32 to fp32 (6 with one bf16 side), pure bandwidth, ~0.5 ms for 400 M fp32 elements on an H100.
template <typename In, typename Out>
__device__ __forceinline__ void transpose_batch(const In* src, Out* dst, i64 batch, i64 rows, i64 cols) {
    __shared__ float tile[32][33];
    const i64 tiles_r = (rows + 31) / 32, tiles_c = (cols + 31) / 32, items = batch * tiles_r * tiles_c;
    const int tx = threadIdx.x % 32, ty = threadIdx.x / 32, ty_step = blockDim.x / 32;
    for (i64 item = blockIdx.x; item < items; item += gridDim.x) {
        const i64 b = item / (tiles_r * tiles_c), r0 = item / tiles_c % tiles_r * 32, c0 = item % tiles_c * 32;
        const In* in = src + b * rows * cols;
        Out* out = dst + b * rows * cols;
        for (int i = ty; i < 32; i += ty_step) {
            if (r0 + i < rows && c0 + tx < cols) tile[i][tx] = tile_value(in[(r0 + i) * cols + c0 + tx]);
        }
        __syncthreads();
        for (int i = ty; i < 32; i += ty_step) {
            if (c0 + i < cols && r0 + tx < rows) put_value(&out[(c0 + i) * rows + r0 + tx], tile[tx][i]);
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

// fp32 [n, c, h, w] -> bf16 [n, h, w, c], rounded to nearest even: a tensor entering the bf16 NHWC path.
extern "C" __global__ void ich_nn_nchw_f32_to_nhwc_bf16(const float* x, unsigned short* y, i64 n, i64 c, i64 hw) {
    transpose_batch(x, y, n, c, hw);
}

// bf16 [n, h, w, c] -> fp32 [n, c, h, w], exact: a tensor leaving the bf16 NHWC path.
extern "C" __global__ void ich_nn_nhwc_bf16_to_nchw_f32(const unsigned short* x, float* y, i64 n, i64 c, i64 hw) {
    transpose_batch(x, y, n, hw, c);
}

// ---- the bf16 mixed-precision path: bf16 activations (NHWC where the layout matters), fp32 arithmetic ----
//
// A bf16 value is its 16 bits; it widens to fp32 exactly, the kernel computes in fp32 with the rounded ops of the
// fp32 kernels above (so before the last step the value is the fp32 kernel's on the same inputs) and rounds the
// result to bf16, to nearest even (f32_to_bf16_bits). Per-(image, channel) and per-channel tensors (SE scales,
// pooled values, batch-norm parameters and statistics) stay fp32; sums are in double, in a fixed order.
//
// Bytes in flight: HBM needs ~20 KB in flight per SM to stream at full rate (~3.3 TB/s x ~0.8 us over 132 SMs
// on an H100; ~29 KB at the H200's 4.8 TB/s), and 2048 resident threads with one 2-byte load each hold 4 KB. So
// where the host finds every bf16 pointer 16-byte aligned (and, for NHWC tensors, c a multiple of 8) a thread
// moves 8 values with one 16-byte load or store (vec == 8); otherwise one (vec == 1: any alignment and any c,
// about a quarter of the rate). The batch-norm passes, whose registers allow only 2-4 blocks an SM, also load
// 2-4 rows (PackedBf16, not yet widened) before computing the first, for ~32 KB an SM.

typedef unsigned short bf16;  // the bits of a bfloat16: the top half of the float it stands for

__device__ __forceinline__ float bf16_to_f32(bf16 b) { return __uint_as_float((unsigned int)b << 16); }

// Two bf16 in a 32-bit word, the first at the lower address (little-endian, on the GPU as on the host). On the
// GPU one cvt.rn.bf16x2.f32 (sm_80 and later), which puts its first operand in the upper half: the same round to
// nearest, ties to even as f32_to_bf16_bits for every non-NaN value, in 1 instruction instead of ~12; a NaN may
// come out as another NaN (the conversion kernels, whose tests compare NaN bits, keep f32_to_bf16_bits). Why it
// matters: the packed stores of the streaming NHWC kernels round 8 values a row, and the bit arithmetic was a
// third of the fused batch norm + SiLU's instructions. Elsewhere (a host build) the bit arithmetic.
__device__ __forceinline__ unsigned int pack_bf16x2(float first, float second) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned int packed;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(second), "f"(first));
    return packed;
#else
    return (unsigned int)f32_to_bf16_bits(first) | ((unsigned int)f32_to_bf16_bits(second) << 16);
#endif
}

// VEC consecutive bf16 values as loaded, not yet widened: half the registers of the floats, so a thread can hold
// several rows' loads in flight and widen each row only when it uses it.
template <int VEC>
struct PackedBf16 {
    static_assert(VEC == 8 || VEC == 2 || VEC == 1, "packs of 8 or 2 values, or single values");
    unsigned int w[VEC == 8 ? 4 : 1];
};

// VEC consecutive bf16 values from p (16-byte aligned when VEC == 8, 4-byte when VEC == 2), one load.
template <int VEC>
__device__ __forceinline__ PackedBf16<VEC> load_packed_bf16(const bf16* p) {
    PackedBf16<VEC> packed;
    if constexpr (VEC == 8) {
        const uint4 u = *reinterpret_cast<const uint4*>(p);
        packed.w[0] = u.x;
        packed.w[1] = u.y;
        packed.w[2] = u.z;
        packed.w[3] = u.w;
    } else if constexpr (VEC == 2) {
        packed.w[0] = *reinterpret_cast<const unsigned int*>(p);
    } else {
        packed.w[0] = *p;
    }
    return packed;
}

// The values of a pack as floats (exact).
template <int VEC>
__device__ __forceinline__ void widen_bf16(const PackedBf16<VEC>& packed, float (&v)[VEC]) {
    if constexpr (VEC == 1) {
        v[0] = bf16_to_f32((bf16)packed.w[0]);
    } else {
        for (int k = 0; k < VEC / 2; k++) {
            v[2 * k] = __uint_as_float(packed.w[k] << 16);
            v[2 * k + 1] = __uint_as_float(packed.w[k] & 0xFFFF0000u);
        }
    }
}

// VEC consecutive bf16 values from p (16-byte aligned when VEC == 8, 4-byte when VEC == 2), widened.
template <int VEC>
__device__ __forceinline__ void load_bf16(const bf16* p, float (&v)[VEC]) {
    widen_bf16<VEC>(load_packed_bf16<VEC>(p), v);
}

// VEC fp32 values rounded to bf16 and stored at p (16-byte aligned when VEC == 8, 4-byte when VEC == 2).
template <int VEC>
__device__ __forceinline__ void store_bf16(bf16* p, const float (&v)[VEC]) {
    if constexpr (VEC == 8) {
        uint4 u;
        u.x = pack_bf16x2(v[0], v[1]);
        u.y = pack_bf16x2(v[2], v[3]);
        u.z = pack_bf16x2(v[4], v[5]);
        u.w = pack_bf16x2(v[6], v[7]);
        *reinterpret_cast<uint4*>(p) = u;
    } else if constexpr (VEC == 2) {
        *reinterpret_cast<unsigned int*>(p) = pack_bf16x2(v[0], v[1]);
    } else {
        static_assert(VEC == 1, "packs of 8 or 2 values, or single values");
        *p = f32_to_bf16_bits(v[0]);
    }
}

// ---- bf16 element-wise, layout-agnostic: the fp32 kernels' formulas (with sigmoid_for_bf16), one rounding to
// bf16 at the end ----
//
// Napkin: 2 bytes per input and 2 per output element, half the fp32 kernels' traffic: a binary op over the
// largest B0 activation at batch 256, 256x256 (256 x 96 x 128 x 128 = 403 M elements) moves 2.4 GB, ~0.7 ms at
// ~3.3 TB/s.

// Calls op.apply<V>(i) for elements i .. i + V - 1 of n: packs of 8 when vec == 8, then the n % 8 left one at a
// time; one at a time throughout when vec == 1. A thread reads its elements before writing them, so an output
// may be one of the inputs.
template <typename Op>
__device__ __forceinline__ void bf16_elementwise(const Op& op, i64 n, int vec) {
    i64 done = 0;
    if (vec == 8) {
        const i64 packs = n / 8;
        for (i64 p = first_index(); p < packs; p += grid_stride()) op.template apply<8>(p * 8);
        done = packs * 8;
    }
    for (i64 i = done + first_index(); i < n; i += grid_stride()) op.template apply<1>(i);
}

struct SiluBf16 {
    const bf16* x;
    bf16* y;
    template <int V>
    __device__ __forceinline__ void apply(i64 i) const {
        float v[V];
        load_bf16<V>(x + i, v);
        for (int k = 0; k < V; k++) v[k] = __fmul_rn(v[k], sigmoid_for_bf16(v[k]));
        store_bf16<V>(y + i, v);
    }
};

extern "C" __global__ void ich_nn_silu_bf16(const bf16* x, bf16* y, i64 n, int vec) {
    bf16_elementwise(SiluBf16{x, y}, n, vec);
}

// dx = dy * s * (1 + x * (1 - s)), s = sigmoid_for_bf16(x), as ich_nn_silu_backward.
struct SiluBackwardBf16 {
    const bf16* x;
    const bf16* dy;
    bf16* dx;
    template <int V>
    __device__ __forceinline__ void apply(i64 i) const {
        float v[V], g[V];
        load_bf16<V>(x + i, v);
        load_bf16<V>(dy + i, g);
        for (int k = 0; k < V; k++) {
            const float s = sigmoid_for_bf16(v[k]);
            g[k] = __fmul_rn(__fmul_rn(g[k], s), __fadd_rn(1.0f, __fmul_rn(v[k], __fsub_rn(1.0f, s))));
        }
        store_bf16<V>(dx + i, g);
    }
};

extern "C" __global__ void ich_nn_silu_backward_bf16(const bf16* x, const bf16* dy, bf16* dx, i64 n, int vec) {
    bf16_elementwise(SiluBackwardBf16{x, dy, dx}, n, vec);
}

// y = a + b; y may be a or b (accumulate is add(into, from, into)).
struct AddBf16 {
    const bf16* a;
    const bf16* b;
    bf16* y;
    template <int V>
    __device__ __forceinline__ void apply(i64 i) const {
        float u[V], v[V];
        load_bf16<V>(a + i, u);
        load_bf16<V>(b + i, v);
        for (int k = 0; k < V; k++) u[k] = __fadd_rn(u[k], v[k]);
        store_bf16<V>(y + i, u);
    }
};

extern "C" __global__ void ich_nn_add_bf16(const bf16* a, const bf16* b, bf16* y, i64 n, int vec) {
    bf16_elementwise(AddBf16{a, b, y}, n, vec);
}

// y = x * mask[i / per_sample], the mask fp32 as in ich_nn_multiply_by_mask. One division a pack: the elements
// of a pack step over sample boundaries one by one (per_sample may be smaller than the pack).
struct MultiplyByMaskBf16 {
    const bf16* x;
    const float* mask;
    bf16* y;
    i64 per_sample;
    template <int V>
    __device__ __forceinline__ void apply(i64 i) const {
        float v[V];
        load_bf16<V>(x + i, v);
        i64 sample = i / per_sample, next = (sample + 1) * per_sample;
        float f = mask[sample];
        for (int k = 0; k < V; k++) {
            if (i + k == next) {
                f = mask[++sample];
                next += per_sample;
            }
            v[k] = __fmul_rn(v[k], f);
        }
        store_bf16<V>(y + i, v);
    }
};

extern "C" __global__ void ich_nn_multiply_by_mask_bf16(const bf16* x, const float* mask, bf16* y, i64 n,
                                                        i64 per_sample, int vec) {
    bf16_elementwise(MultiplyByMaskBf16{x, mask, y, per_sample}, n, vec);
}

// t *= factor in place.
struct ScaleBf16 {
    bf16* t;
    float factor;
    template <int V>
    __device__ __forceinline__ void apply(i64 i) const {
        float v[V];
        load_bf16<V>(t + i, v);
        for (int k = 0; k < V; k++) v[k] = __fmul_rn(v[k], factor);
        store_bf16<V>(t + i, v);
    }
};

extern "C" __global__ void ich_nn_scale_bf16(bf16* t, float factor, i64 n, int vec) {
    bf16_elementwise(ScaleBf16{t, factor}, n, vec);
}

// ---- NHWC tiles: a tensor [images, rows, c] of bf16, rows = h*w (for batch norm: one image of all n*h*w rows) ----
//
// A block's threads are `lanes` = blockDim / cw row lanes of cw threads. Thread j of a lane owns the VEC
// consecutive channels of group slice * cw + j (VEC == 8 only when c % 8 == 0) and steps over the rows of its
// block's work item lane, lane + lanes, ...; so a lane reads cw * VEC consecutive channels of a row, and when
// that is all of c (c <= 256 at VEC 8, <= 32 at VEC 1) a warp reads consecutive rows: every load coalesces. The
// host (NnKernels.nhwcTiling) takes cw = ceil(groups / ceil(groups / 32)), at most 32, so the slices of c come
// out nearly equal and at least 7/8 of a block's threads work (c = 144 at VEC 8: 18 groups, 14 lanes of 18).
// Per-channel values live in registers for a whole work item; there is no integer division per element.

struct NhwcSlot {
    int lane, lanes;  // the thread's row lane, of lanes
    i64 ch;           // its first channel
    bool active;      // false past the last full lane, and past c in a narrower last slice
};

template <int VEC>
__device__ __forceinline__ NhwcSlot nhwc_slot(i64 c, int cw, i64 slice) {
    NhwcSlot t;
    t.lanes = (int)blockDim.x / cw;
    t.lane = (int)threadIdx.x / cw;
    t.ch = (slice * cw + (int)threadIdx.x % cw) * VEC;
    t.active = t.lane < t.lanes && t.ch < c;
    return t;
}

// Sums v[q] (q < Q) of the threads of each channel over the block's lanes, in a fixed tree (lane l takes lane
// l + half, half = the power of two below the lane count, then half / 2, ...; a lane count that is not a power of
// two just skips partners past the end), so the result repeats bit for bit. Lane 0's threads end up with the
// totals in v. s: Q * blockDim.x doubles of shared memory. Every thread of the block must call it.
template <int Q>
__device__ __forceinline__ void lane_sum(double (&v)[Q], double* s, int lanes, int cw) {
    const int t = threadIdx.x, stride = blockDim.x, lane = t / cw;
    for (int q = 0; q < Q; q++) s[q * stride + t] = v[q];
    __syncthreads();
    int half = 1;
    while (half * 2 < lanes) half *= 2;
    for (; half > 0 && lanes > 1; half /= 2) {
        if (lane < half && lane + half < lanes) {
            for (int q = 0; q < Q; q++) s[q * stride + t] += s[q * stride + t + half * cw];
        }
        __syncthreads();
    }
    for (int q = 0; q < Q; q++) v[q] = s[q * stride + t];
    __syncthreads();  // s may be reused by the caller's next call
}

// Shared doubles of the NHWC reductions: two sums of 8 channels per thread (batch norm), 32 KB.
#define ICH_NHWC_SHARED (2 * 8 * ICH_NN_BLOCK)

// Dispatches a kernel body on the host's vec (uniform over the grid, so no divergence).
#define ICH_BY_VEC(body, ...) \
    do { if (vec == 8) body<8>(__VA_ARGS__); else body<1>(__VA_ARGS__); } while (0)

// ---- squeeze-excitation and pooling, NHWC: x [n, hw, c] bf16, per-(image, channel) tensors fp32 [n, c] ----

// y = x * s[img, ch], plus pooled[img, ch] / hw where pooled is given (then in fp32 before the one rounding:
// the SE input's gradient, dy * s + the pooling's share of it); y may be x. A work item is rows_per_chunk rows
// of one image and one channel slice. Napkin: 4 bytes per element; B0's largest SE input at batch 256, 256x256
// (256 x 128 x 128 x 32, 134 M elements) is ~0.16 ms at ~3.3 TB/s. For the gradient that replaces the separate
// backward's write of dx, the pooling gradient's write and the accumulate's 2 reads + 1 write: 4 bytes instead
// of 10 per element.
template <int VEC, bool POOLED>
__device__ __forceinline__ void scale_channels_nhwc(const bf16* x, const float* s, const float* pooled, bf16* y,
                                                    i64 n, i64 hw, i64 c, int cw, i64 rows_per_chunk) {
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (hw + rows_per_chunk - 1) / rows_per_chunk;
    const float div = (float)hw;
    for (i64 item = blockIdx.x; item < n * slices * chunks; item += gridDim.x) {
        const i64 img = item / (slices * chunks), slice = item / chunks % slices, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        if (!t.active) continue;
        float f[VEC], add[VEC];
        for (int k = 0; k < VEC; k++) {
            f[k] = s[img * c + t.ch + k];
            if (POOLED) add[k] = __fdiv_rn(pooled[img * c + t.ch + k], div);
        }
        const i64 end = min(hw, (chunk + 1) * rows_per_chunk);
        for (i64 r = chunk * rows_per_chunk + t.lane; r < end; r += t.lanes) {
            const i64 at = (img * hw + r) * c + t.ch;
            float v[VEC];
            load_bf16<VEC>(x + at, v);
            for (int k = 0; k < VEC; k++) v[k] = POOLED ? __fadd_rn(__fmul_rn(v[k], f[k]), add[k]) : __fmul_rn(v[k], f[k]);
            store_bf16<VEC>(y + at, v);
        }
    }
}

template <int VEC>
__device__ __forceinline__ void scale_channels_only_nhwc(const bf16* x, const float* s, bf16* y, i64 n, i64 hw, i64 c,
                                                         int cw, i64 rows_per_chunk) {
    scale_channels_nhwc<VEC, false>(x, s, nullptr, y, n, hw, c, cw, rows_per_chunk);
}

template <int VEC>
__device__ __forceinline__ void scale_channels_input_gradient_nhwc(const bf16* dy, const float* s, const float* pooled,
                                                                   bf16* dx, i64 n, i64 hw, i64 c, int cw,
                                                                   i64 rows_per_chunk) {
    scale_channels_nhwc<VEC, true>(dy, s, pooled, dx, n, hw, c, cw, rows_per_chunk);
}

extern "C" __global__ void ich_nn_scale_channels_nhwc(const bf16* x, const float* s, bf16* y, i64 n, i64 hw, i64 c,
                                                      int vec, int cw, i64 rows_per_chunk) {
    ICH_BY_VEC(scale_channels_only_nhwc, x, s, y, n, hw, c, cw, rows_per_chunk);
}

// dx = dy * s[img, ch] + dpooled[img, ch] / hw: the SE input's gradient (see scale_channels_nhwc).
extern "C" __global__ void ich_nn_scale_channels_input_gradient_nhwc(const bf16* dy, const float* s,
                                                                     const float* dpooled, bf16* dx, i64 n, i64 hw,
                                                                     i64 c, int vec, int cw, i64 rows_per_chunk) {
    ICH_BY_VEC(scale_channels_input_gradient_nhwc, dy, s, dpooled, dx, n, hw, c, cw, rows_per_chunk);
}

// dx = dy * s (bf16) unless dx is null, ds[img, ch] = sum over hw of dy * x in double (fp32). No workspace, so a
// block owns one (image, channel slice) and all its rows: no other block writes its ds. Napkin: 6 bytes per
// element (4 without dx, as the SE layer runs it: its dx comes later, with the pooling's share), ~0.25 ms
// for B0's largest SE input (256 x 128 x 128 x 32 at batch 256, 256x256: 805 MB moved). That is 256 blocks,
// about two a SM on a 132-SM H100, each thread with two 16-byte loads in flight (~16 KB a SM): close to what
// the bandwidth needs, so within a small factor of the bound; deeper layers have more slices, hence blocks.
// The lane tree at the end (at most 8 steps) is noise next to hw rows.
template <int VEC>
__device__ __forceinline__ void scale_channels_backward_nhwc(const bf16* x, const float* s, const bf16* dy, bf16* dx,
                                                             float* ds, i64 n, i64 hw, i64 c, int cw, double* shared) {
    const i64 slices = (c / VEC + cw - 1) / cw;
    for (i64 item = blockIdx.x; item < n * slices; item += gridDim.x) {
        const i64 img = item / slices, slice = item % slices;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        double sum[VEC] = {};
        if (t.active) {
            float f[VEC];
            for (int k = 0; k < VEC; k++) f[k] = s[img * c + t.ch + k];
            for (i64 r = t.lane; r < hw; r += t.lanes) {
                const i64 at = (img * hw + r) * c + t.ch;
                float g[VEC], v[VEC];
                load_bf16<VEC>(dy + at, g);
                load_bf16<VEC>(x + at, v);
                for (int k = 0; k < VEC; k++) {
                    sum[k] += (double)g[k] * (double)v[k];
                    g[k] = __fmul_rn(g[k], f[k]);
                }
                if (dx) store_bf16<VEC>(dx + at, g);
            }
        }
        lane_sum<VEC>(sum, shared, t.lanes, cw);
        if (t.active && t.lane == 0) {
            for (int k = 0; k < VEC; k++) ds[img * c + t.ch + k] = (float)sum[k];
        }
    }
}

extern "C" __global__ void ich_nn_scale_channels_backward_nhwc(const bf16* x, const float* s, const bf16* dy, bf16* dx,
                                                               float* ds, i64 n, i64 hw, i64 c, int vec, int cw) {
    __shared__ double shared[ICH_NHWC_SHARED];
    ICH_BY_VEC(scale_channels_backward_nhwc, x, s, dy, dx, ds, n, hw, c, cw, shared);
}

// y[img, ch] = (float) (sum over hw of x, in double, / hw): one block per (image, channel slice), as above.
// Napkin: 2 bytes per element read, 4 per (image, channel) written.
template <int VEC>
__device__ __forceinline__ void global_average_pool_nhwc(const bf16* x, float* y, i64 n, i64 hw, i64 c, int cw,
                                                         double* shared) {
    const i64 slices = (c / VEC + cw - 1) / cw;
    for (i64 item = blockIdx.x; item < n * slices; item += gridDim.x) {
        const i64 img = item / slices, slice = item % slices;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        double sum[VEC] = {};
        if (t.active) {
            for (i64 r = t.lane; r < hw; r += t.lanes) {
                float v[VEC];
                load_bf16<VEC>(x + (img * hw + r) * c + t.ch, v);
                for (int k = 0; k < VEC; k++) sum[k] += (double)v[k];
            }
        }
        lane_sum<VEC>(sum, shared, t.lanes, cw);
        if (t.active && t.lane == 0) {
            for (int k = 0; k < VEC; k++) y[img * c + t.ch + k] = (float)(sum[k] / (double)hw);
        }
    }
}

extern "C" __global__ void ich_nn_global_average_pool_nhwc(const bf16* x, float* y, i64 n, i64 hw, i64 c, int vec,
                                                           int cw) {
    __shared__ double shared[ICH_NHWC_SHARED];
    ICH_BY_VEC(global_average_pool_nhwc, x, y, n, hw, c, cw, shared);
}

// dx[img, r, ch] = dy[img, ch] / hw, divided in fp32 as the CPU does, then rounded: tiled as scale_channels_nhwc.
// Napkin: 2 bytes written per element.
template <int VEC>
__device__ __forceinline__ void global_average_pool_backward_nhwc(const float* dy, bf16* dx, i64 n, i64 hw, i64 c,
                                                                  int cw, i64 rows_per_chunk) {
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (hw + rows_per_chunk - 1) / rows_per_chunk;
    const float div = (float)hw;
    for (i64 item = blockIdx.x; item < n * slices * chunks; item += gridDim.x) {
        const i64 img = item / (slices * chunks), slice = item / chunks % slices, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        if (!t.active) continue;
        float v[VEC];
        for (int k = 0; k < VEC; k++) v[k] = __fdiv_rn(dy[img * c + t.ch + k], div);
        const i64 end = min(hw, (chunk + 1) * rows_per_chunk);
        for (i64 r = chunk * rows_per_chunk + t.lane; r < end; r += t.lanes) store_bf16<VEC>(dx + (img * hw + r) * c + t.ch, v);
    }
}

extern "C" __global__ void ich_nn_global_average_pool_backward_nhwc(const float* dy, bf16* dx, i64 n, i64 hw, i64 c,
                                                                    int vec, int cw, i64 rows_per_chunk) {
    ICH_BY_VEC(global_average_pool_backward_nhwc, dy, dx, n, hw, c, cw, rows_per_chunk);
}

// ---- batch norm, NHWC: x [m = n*h*w rows, c] bf16; gamma, beta, statistics fp32 [c] ----
//
// Three launches per direction, so that every pass keeps the whole GPU busy whatever m and c are:
//   1. sums: work items of rows_per_chunk rows x one channel slice (chunks x slices blocks) write per-chunk sums,
//      in double, to the workspace: partial[q][ch][chunk], q = 0, 1 (forward: x - shift and its square, shift
//      = the channel's first value as on the CPU, so that E[x^2] - E[x]^2 does not cancel when |mean| >> std;
//      backward: dy and dy * (x - mean)).
//   2. finish: one block per channel adds its chunks' sums in a fixed order and computes what the CPU computes
//      in double from the same sums: statistics, running statistics, dgamma, dbeta and the fp32 coefficients of
//      the element-wise pass, written after the partial sums (coef[k][c]).
//   3. apply: the same tiling as pass 1, y = x * scale + shift, or dx = p * dy + q * x + r, each in the CPU's
//      rounded fp32 ops, then rounded to bf16.
// The host (NnKernels.batchNormRowsPerChunk) sizes chunks at >= 128 rows (partial sums, 16 bytes per chunk and
// channel, stay under 1/16 of the 2 bytes per element read) and at most 2048 of them (pass 2 reads <= 32 KB a
// channel). Napkin, forward at B0's largest (m = 256 x 128 x 128 = 4.2 M, c = 32, 268 MB of bf16): pass 1 reads
// 268 MB in 2048 blocks, pass 2 reads 1 MB, pass 3 reads 268 MB and writes 268 MB: ~0.25 ms at ~3.3 TB/s, no
// pass with fewer blocks than SMs unless the whole tensor is tiny. Backward: 536 + 1 + 804 MB, ~0.4 ms. At the
// other end (m = 256 x 8 x 8 = 16 K, c = 1280) pass 1 is 128 chunks x 5 slices = 640 blocks of 16 rows a lane.

// Adds row r of the thread's channels to its sums: x - center and its square, or dy and dy * (x - center).
template <int VEC, bool GRAD>
__device__ __forceinline__ void batch_norm_add_row(double (&sum)[2 * VEC], const float (&v)[VEC], const float (&g)[VEC],
                                                   const float (&center)[VEC]) {
    for (int k = 0; k < VEC; k++) {
        const double d = (double)v[k] - (double)center[k];  // exact: bf16 minus bf16 or fp32
        if constexpr (GRAD) {
            sum[k] += (double)g[k];
            sum[VEC + k] += (double)g[k] * d;
        } else {
            sum[k] += d;
            sum[VEC + k] += d * d;
        }
    }
}

// Batch norm + SiLU fused (BatchNorm2d followed by SiLU, as timm's BatchNormAct2d): the forward applies SiLU to
// the affine result before rounding, so the normalised tensor z is never written; the backward recomputes z =
// x scale + shift from x and the saved statistics and turns the SiLU's dy into the batch norm's, dz = dy s (1 +
// z (1 - s)), s = sigmoid(z) (ich_nn_silu_backward's formula), in both passes that read dy. Napkin, per element
// of bf16: forward 6 bytes instead of 10 (z written, read back, y written), backward 10 instead of 16, and z
// need not be kept for the backward at all.

// scale and shift of the thread's channels from gamma, beta and the saved statistics: pass 2's formulas.
template <int VEC>
__device__ __forceinline__ void saved_affine(const float* gamma, const float* beta, const float* mean,
                                             const float* inv_std, i64 ch, float (&scale)[VEC], float (&shift)[VEC]) {
    for (int k = 0; k < VEC; k++) {
        const double g = (double)gamma[ch + k], is = (double)inv_std[ch + k];
        scale[k] = (float)(g * is);
        shift[k] = (float)((double)beta[ch + k] - (double)mean[ch + k] * g * is);
    }
}

// g = d loss / d z from d loss / d silu(z), z = v scale + shift.
template <int VEC>
__device__ __forceinline__ void silu_gradient_through(float (&g)[VEC], const float (&v)[VEC], const float (&scale)[VEC],
                                                      const float (&shift)[VEC]) {
    for (int k = 0; k < VEC; k++) {
        const float z = __fadd_rn(__fmul_rn(v[k], scale[k]), shift[k]), s = sigmoid_for_bf16(z);
        g[k] = __fmul_rn(__fmul_rn(g[k], s), __fadd_rn(1.0f, __fmul_rn(z, __fsub_rn(1.0f, s))));
    }
}

// Pass 1. A thread loads ROWS rows (4 of x, or 2 of x and dy: 64 bytes) before it sums the first, then the last
// rows one at a time: at ~128 registers a thread only two blocks fit an SM, and one 16-byte load a thread in
// flight would be ~8 KB an SM, a third of what the bandwidth needs; 64 bytes make ~32 KB. The loads stay packed
// (PackedBf16: 4 registers a row of 8 channels) until their row is summed. The sums still go row by row, in order.
// With ACT (backward only) dy is the fused SiLU's and gamma, beta and inv_std give z; else they may be null.
template <int VEC, bool GRAD, bool ACT = false>
__device__ __forceinline__ void batch_norm_sums_nhwc(const bf16* x, const bf16* dy, const float* mean, const float* gamma,
                                                     const float* beta, const float* inv_std, double* partial,
                                                     i64 m, i64 c, int cw, i64 rows_per_chunk, double* shared) {
    static_assert(GRAD || !ACT, "the fused SiLU changes only the backward sums");
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
    for (i64 item = blockIdx.x; item < chunks * slices; item += gridDim.x) {
        const i64 slice = item / chunks, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        double sum[2 * VEC] = {};
        if (t.active) {
            float center[VEC];  // forward: the shift (row 0); backward: the saved mean
            if constexpr (GRAD) {
                for (int k = 0; k < VEC; k++) center[k] = mean[t.ch + k];
            } else {
                load_bf16<VEC>(x + t.ch, center);
            }
            float scale[VEC], shift[VEC];
            if constexpr (ACT) saved_affine<VEC>(gamma, beta, mean, inv_std, t.ch, scale, shift);
            const i64 end = min(m, (chunk + 1) * rows_per_chunk);
            i64 r = chunk * rows_per_chunk + t.lane;
            constexpr int ROWS = GRAD ? 2 : 4;  // rows loaded before the first is summed: 64 bytes a thread
            for (; r + (ROWS - 1) * t.lanes < end; r += ROWS * t.lanes) {
                PackedBf16<VEC> px[ROWS], pg[ROWS];
                for (int j = 0; j < ROWS; j++) {
                    px[j] = load_packed_bf16<VEC>(x + (r + j * t.lanes) * c + t.ch);
                    if constexpr (GRAD) pg[j] = load_packed_bf16<VEC>(dy + (r + j * t.lanes) * c + t.ch);
                }
                for (int j = 0; j < ROWS; j++) {
                    float v[VEC], g[VEC];
                    widen_bf16<VEC>(px[j], v);
                    if constexpr (GRAD) widen_bf16<VEC>(pg[j], g);
                    if constexpr (ACT) silu_gradient_through<VEC>(g, v, scale, shift);
                    batch_norm_add_row<VEC, GRAD>(sum, v, g, center);
                }
            }
            for (; r < end; r += t.lanes) {  // the last rows, fewer than ROWS
                float v[VEC], g[VEC];
                load_bf16<VEC>(x + r * c + t.ch, v);
                if constexpr (GRAD) load_bf16<VEC>(dy + r * c + t.ch, g);
                if constexpr (ACT) silu_gradient_through<VEC>(g, v, scale, shift);
                batch_norm_add_row<VEC, GRAD>(sum, v, g, center);
            }
        }
        lane_sum<2 * VEC>(sum, shared, t.lanes, cw);
        if (t.active && t.lane == 0) {
            for (int k = 0; k < VEC; k++) {
                partial[(t.ch + k) * chunks + chunk] = sum[k];
                partial[(c + t.ch + k) * chunks + chunk] = sum[VEC + k];
            }
        }
    }
}

template <int VEC>
__device__ __forceinline__ void batch_norm_stats(const bf16* x, double* partial, i64 m, i64 c, int cw,
                                                 i64 rows_per_chunk, double* shared) {
    batch_norm_sums_nhwc<VEC, false>(x, nullptr, nullptr, nullptr, nullptr, nullptr, partial, m, c, cw, rows_per_chunk, shared);
}

// Pass 1 of the training forward.
extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_batch_norm_stats_nhwc(const bf16* x, double* partial, i64 m, i64 c, int vec, int cw,
                                                        i64 rows_per_chunk) {
    __shared__ double shared[ICH_NHWC_SHARED];
    ICH_BY_VEC(batch_norm_stats, x, partial, m, c, cw, rows_per_chunk, shared);
}

// Pass 2 of the training forward: per channel, the CPU's double formulas on the sums (biased variance to
// normalise, unbiased for the running variance, PyTorch's momentum); coef[0][ch] = scale, coef[1][ch] = shift.
extern "C" __global__ void ich_nn_batch_norm_finish_training_nhwc(const bf16* x, const double* partial,
                                                                  const float* gamma, const float* beta,
                                                                  float* running_mean, float* running_var,
                                                                  double momentum, double eps, float* save_mean,
                                                                  float* save_inv_std, float* coef, i64 m, i64 c,
                                                                  i64 chunks) {
    __shared__ double s[ICH_NN_BLOCK];
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s1 = 0, s2 = 0;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            s1 += partial[ch * chunks + k];
            s2 += partial[(c + ch) * chunks + k];
        }
        s1 = block_sum(s1, s);
        s2 = block_sum(s2, s);
        if (threadIdx.x == 0) {
            const double count = (double)m, shift = (double)bf16_to_f32(x[ch]);
            const double shifted_mean = s1 / count, mean = shift + shifted_mean;
            const double var = fmax(0.0, s2 / count - shifted_mean * shifted_mean);
            const double inv_std = 1.0 / sqrt(var + eps);
            const double g = (double)gamma[ch];
            save_mean[ch] = (float)mean;
            save_inv_std[ch] = (float)inv_std;
            running_mean[ch] = (float)((1 - momentum) * (double)running_mean[ch] + momentum * mean);
            running_var[ch] = (float)((1 - momentum) * (double)running_var[ch] + momentum * var * count / (count - 1));
            coef[ch] = (float)(g * inv_std);
            coef[c + ch] = (float)((double)beta[ch] - mean * g * inv_std);
        }
    }
}

// y = x * scale + shift over the thread's channels and rows [r0, r1): the CPU's affine, two rounded fp32 ops;
// with ACT then silu of that (ich_nn_silu's formula, with sigmoid_for_bf16), before the one rounding to bf16.
template <int VEC, bool ACT>
__device__ __forceinline__ void affine_values(float (&v)[VEC], const float (&scale)[VEC], const float (&shift)[VEC]) {
    for (int k = 0; k < VEC; k++) {
        v[k] = __fadd_rn(__fmul_rn(v[k], scale[k]), shift[k]);
        if constexpr (ACT) v[k] = __fmul_rn(v[k], sigmoid_for_bf16(v[k]));
    }
}

template <int VEC, bool ACT>
__device__ __forceinline__ void affine_rows(const bf16* x, bf16* y, const float (&scale)[VEC],
                                            const float (&shift)[VEC], i64 c, const NhwcSlot& t, i64 r0, i64 r1) {
    constexpr int ROWS = 2;  // rows loaded before the first is computed (see "Bytes in flight")
    i64 r = r0 + t.lane;
    for (; r + (ROWS - 1) * t.lanes < r1; r += ROWS * t.lanes) {
        PackedBf16<VEC> px[ROWS];
        for (int j = 0; j < ROWS; j++) px[j] = load_packed_bf16<VEC>(x + (r + j * t.lanes) * c + t.ch);
        for (int j = 0; j < ROWS; j++) {
            float v[VEC];
            widen_bf16<VEC>(px[j], v);
            affine_values<VEC, ACT>(v, scale, shift);
            store_bf16<VEC>(y + (r + j * t.lanes) * c + t.ch, v);
        }
    }
    if (r < r1) {  // the last row, when the lane has an odd count
        float v[VEC];
        load_bf16<VEC>(x + r * c + t.ch, v);
        affine_values<VEC, ACT>(v, scale, shift);
        store_bf16<VEC>(y + r * c + t.ch, v);
    }
}

template <int VEC, bool ACT = false>
__device__ __forceinline__ void batch_norm_apply(const bf16* x, const float* coef, bf16* y, i64 m, i64 c, int cw,
                                                 i64 rows_per_chunk) {
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
    for (i64 item = blockIdx.x; item < chunks * slices; item += gridDim.x) {
        const i64 slice = item / chunks, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        if (!t.active) continue;
        float scale[VEC], shift[VEC];
        for (int k = 0; k < VEC; k++) {
            scale[k] = coef[t.ch + k];
            shift[k] = coef[c + t.ch + k];
        }
        affine_rows<VEC, ACT>(x, y, scale, shift, c, t, chunk * rows_per_chunk, min(m, (chunk + 1) * rows_per_chunk));
    }
}

// Pass 3 of the training forward; y may be x.
extern "C" __global__ void ich_nn_batch_norm_apply_nhwc(const bf16* x, const float* coef, bf16* y, i64 m, i64 c,
                                                        int vec, int cw, i64 rows_per_chunk) {
    ICH_BY_VEC(batch_norm_apply, x, coef, y, m, c, cw, rows_per_chunk);
}

template <int VEC>
__device__ __forceinline__ void batch_norm_silu_apply(const bf16* x, const float* coef, bf16* y, i64 m, i64 c, int cw,
                                                      i64 rows_per_chunk) {
    batch_norm_apply<VEC, true>(x, coef, y, m, c, cw, rows_per_chunk);
}

// Pass 3 of the fused forward: y = silu(x scale + shift); y may be x.
extern "C" __global__ void ich_nn_batch_norm_silu_apply_nhwc(const bf16* x, const float* coef, bf16* y, i64 m, i64 c,
                                                             int vec, int cw, i64 rows_per_chunk) {
    ICH_BY_VEC(batch_norm_silu_apply, x, coef, y, m, c, cw, rows_per_chunk);
}

// Inference: one pass, each thread computing its channels' scale and shift from the running statistics as the
// CPU does (running mean times gamma in fp32, the rest in double) at the start of each work item. y may be x.
// Napkin: 4 bytes per element.
template <int VEC, bool ACT = false>
__device__ __forceinline__ void batch_norm_inference(const bf16* x, const float* gamma, const float* beta,
                                                     const float* running_mean, const float* running_var, double eps,
                                                     bf16* y, i64 m, i64 c, int cw, i64 rows_per_chunk) {
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
    for (i64 item = blockIdx.x; item < chunks * slices; item += gridDim.x) {
        const i64 slice = item / chunks, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        if (!t.active) continue;
        float scale[VEC], shift[VEC];
        for (int k = 0; k < VEC; k++) {
            const i64 ch = t.ch + k;
            const double inv_std = 1.0 / sqrt((double)running_var[ch] + eps);
            scale[k] = (float)((double)gamma[ch] * inv_std);
            shift[k] = (float)((double)beta[ch] - (double)__fmul_rn(running_mean[ch], gamma[ch]) * inv_std);
        }
        affine_rows<VEC, ACT>(x, y, scale, shift, c, t, chunk * rows_per_chunk, min(m, (chunk + 1) * rows_per_chunk));
    }
}

extern "C" __global__ void ich_nn_batch_norm_inference_nhwc(const bf16* x, const float* gamma, const float* beta,
                                                            const float* running_mean, const float* running_var,
                                                            double eps, bf16* y, i64 m, i64 c, int vec, int cw,
                                                            i64 rows_per_chunk) {
    ICH_BY_VEC(batch_norm_inference, x, gamma, beta, running_mean, running_var, eps, y, m, c, cw, rows_per_chunk);
}

template <int VEC>
__device__ __forceinline__ void batch_norm_silu_inference(const bf16* x, const float* gamma, const float* beta,
                                                          const float* running_mean, const float* running_var,
                                                          double eps, bf16* y, i64 m, i64 c, int cw, i64 rows_per_chunk) {
    batch_norm_inference<VEC, true>(x, gamma, beta, running_mean, running_var, eps, y, m, c, cw, rows_per_chunk);
}

// Inference batch norm + SiLU, one pass; y may be x.
extern "C" __global__ void ich_nn_batch_norm_silu_inference_nhwc(const bf16* x, const float* gamma, const float* beta,
                                                                 const float* running_mean, const float* running_var,
                                                                 double eps, bf16* y, i64 m, i64 c, int vec, int cw,
                                                                 i64 rows_per_chunk) {
    ICH_BY_VEC(batch_norm_silu_inference, x, gamma, beta, running_mean, running_var, eps, y, m, c, cw, rows_per_chunk);
}

template <int VEC>
__device__ __forceinline__ void batch_norm_backward_sums(const bf16* x, const bf16* dy, const float* mean,
                                                         double* partial, i64 m, i64 c, int cw, i64 rows_per_chunk,
                                                         double* shared) {
    batch_norm_sums_nhwc<VEC, true>(x, dy, mean, nullptr, nullptr, nullptr, partial, m, c, cw, rows_per_chunk, shared);
}

// Pass 1 of the backward: per-chunk sums of dy and dy * (x - saved mean).
extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_batch_norm_backward_sums_nhwc(const bf16* x, const bf16* dy, const float* save_mean,
                                                                double* partial, i64 m, i64 c, int vec, int cw,
                                                                i64 rows_per_chunk) {
    __shared__ double shared[ICH_NHWC_SHARED];
    ICH_BY_VEC(batch_norm_backward_sums, x, dy, save_mean, partial, m, c, cw, rows_per_chunk, shared);
}

template <int VEC>
__device__ __forceinline__ void batch_norm_silu_backward_sums(const bf16* x, const bf16* dy, const float* gamma,
                                                              const float* beta, const float* mean, const float* inv_std,
                                                              double* partial, i64 m, i64 c, int cw, i64 rows_per_chunk,
                                                              double* shared) {
    batch_norm_sums_nhwc<VEC, true, true>(x, dy, mean, gamma, beta, inv_std, partial, m, c, cw, rows_per_chunk, shared);
}

// Pass 1 of the fused backward: the sums of pass 1 with dz (from the SiLU's dy) in place of dy.
// Registers decide its speed: past 128 a thread (z, its sigmoid, scale and shift beside the 16 double sums and
// two packed rows of x and dy) one 256-thread block would fit an SM, 8 warps with 16 KB in flight; capped at 128,
// two blocks and ~32 KB, without spills (sm_80 and sm_90, nvcc 13.0), as for the other two sums passes. It reads
// the two largest tensors of every fused layer's backward (x and dy: 4 bytes an element).
extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_batch_norm_silu_backward_sums_nhwc(const bf16* x, const bf16* dy, const float* gamma,
                                                                     const float* beta, const float* save_mean,
                                                                     const float* save_inv_std, double* partial, i64 m,
                                                                     i64 c, int vec, int cw, i64 rows_per_chunk) {
    __shared__ double shared[ICH_NHWC_SHARED];
    ICH_BY_VEC(batch_norm_silu_backward_sums, x, dy, gamma, beta, save_mean, save_inv_std, partial, m, c, cw,
               rows_per_chunk, shared);
}

// Pass 2 of the backward: dbeta = sum dy, dgamma = sum dy * xhat, and dx = p dy + q x + r with the CPU's
// p = gamma invStd, q = -p invStd mean(dy xhat), r = p (invStd mean(dy xhat) mean - mean(dy)), all in double
// from the sums and rounded once; coef[0..2][ch] = p, q, r.
extern "C" __global__ void ich_nn_batch_norm_backward_finish_nhwc(const double* partial, const float* gamma,
                                                                  const float* save_mean, const float* save_inv_std,
                                                                  float* dgamma, float* dbeta, float* coef, i64 m,
                                                                  i64 c, i64 chunks) {
    __shared__ double s[ICH_NN_BLOCK];
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s1 = 0, s2 = 0;
        for (i64 k = threadIdx.x; k < chunks; k += blockDim.x) {
            s1 += partial[ch * chunks + k];
            s2 += partial[(c + ch) * chunks + k];
        }
        s1 = block_sum(s1, s);
        s2 = block_sum(s2, s);
        if (threadIdx.x == 0) {
            const double count = (double)m, mean = (double)save_mean[ch], inv_std = (double)save_inv_std[ch];
            const double sum_dy_xhat = s2 * inv_std;
            dbeta[ch] = (float)s1;
            dgamma[ch] = (float)sum_dy_xhat;
            const double k = (double)gamma[ch] * inv_std;
            const double mean_dy = s1 / count, mean_dy_xhat = sum_dy_xhat / count;
            coef[ch] = (float)k;
            coef[c + ch] = (float)(-k * inv_std * mean_dy_xhat);
            coef[2 * c + ch] = (float)(k * (inv_std * mean_dy_xhat * mean - mean_dy));
        }
    }
}

// g = p dy + q x + r for one row, dy first turned into dz with ACT.
template <int VEC, bool ACT>
__device__ __forceinline__ void batch_norm_input_gradient(float (&g)[VEC], const float (&v)[VEC], const float (&p)[VEC],
                                                          const float (&q)[VEC], const float (&r)[VEC],
                                                          const float (&scale)[VEC], const float (&shift)[VEC]) {
    if constexpr (ACT) silu_gradient_through<VEC>(g, v, scale, shift);
    for (int k = 0; k < VEC; k++) g[k] = __fadd_rn(__fadd_rn(__fmul_rn(p[k], g[k]), __fmul_rn(q[k], v[k])), r[k]);
}

// Pass 3 of the backward: dx = p dy + q x + r in the CPU's order; dx may be dy or x. With ACT, dy is the fused
// SiLU's, turned into dz first (gamma, beta and the saved statistics give z; else they may be null).
template <int VEC, bool ACT = false>
__device__ __forceinline__ void batch_norm_backward_apply(const bf16* x, const bf16* dy, const float* coef, bf16* dx,
                                                          i64 m, i64 c, int cw, i64 rows_per_chunk,
                                                          const float* gamma = nullptr, const float* beta = nullptr,
                                                          const float* mean = nullptr, const float* inv_std = nullptr) {
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
    for (i64 item = blockIdx.x; item < chunks * slices; item += gridDim.x) {
        const i64 slice = item / chunks, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        if (!t.active) continue;
        float p[VEC], q[VEC], r[VEC];
        for (int k = 0; k < VEC; k++) {
            p[k] = coef[t.ch + k];
            q[k] = coef[c + t.ch + k];
            r[k] = coef[2 * c + t.ch + k];
        }
        float scale[VEC], shift[VEC];
        if constexpr (ACT) saved_affine<VEC>(gamma, beta, mean, inv_std, t.ch, scale, shift);
        const i64 end = min(m, (chunk + 1) * rows_per_chunk);
        // Two rows' x and dy loaded before the first is computed (see "Bytes in flight"), then a last odd row.
        constexpr int ROWS = 2;
        i64 row = chunk * rows_per_chunk + t.lane;
        for (; row + (ROWS - 1) * t.lanes < end; row += ROWS * t.lanes) {
            PackedBf16<VEC> px[ROWS], pg[ROWS];
            for (int j = 0; j < ROWS; j++) {
                px[j] = load_packed_bf16<VEC>(x + (row + j * t.lanes) * c + t.ch);
                pg[j] = load_packed_bf16<VEC>(dy + (row + j * t.lanes) * c + t.ch);
            }
            for (int j = 0; j < ROWS; j++) {
                float v[VEC], g[VEC];
                widen_bf16<VEC>(px[j], v);
                widen_bf16<VEC>(pg[j], g);
                batch_norm_input_gradient<VEC, ACT>(g, v, p, q, r, scale, shift);
                store_bf16<VEC>(dx + (row + j * t.lanes) * c + t.ch, g);
            }
        }
        if (row < end) {
            float v[VEC], g[VEC];
            load_bf16<VEC>(x + row * c + t.ch, v);
            load_bf16<VEC>(dy + row * c + t.ch, g);
            batch_norm_input_gradient<VEC, ACT>(g, v, p, q, r, scale, shift);
            store_bf16<VEC>(dx + row * c + t.ch, g);
        }
    }
}

extern "C" __global__ void ich_nn_batch_norm_backward_apply_nhwc(const bf16* x, const bf16* dy, const float* coef,
                                                                 bf16* dx, i64 m, i64 c, int vec, int cw,
                                                                 i64 rows_per_chunk) {
    ICH_BY_VEC(batch_norm_backward_apply, x, dy, coef, dx, m, c, cw, rows_per_chunk);
}

template <int VEC>
__device__ __forceinline__ void batch_norm_silu_backward_apply(const bf16* x, const bf16* dy, const float* gamma,
                                                               const float* beta, const float* mean,
                                                               const float* inv_std, const float* coef, bf16* dx, i64 m,
                                                               i64 c, int cw, i64 rows_per_chunk) {
    batch_norm_backward_apply<VEC, true>(x, dy, coef, dx, m, c, cw, rows_per_chunk, gamma, beta, mean, inv_std);
}

// Pass 3 of the fused backward; dx may be dy or x.
extern "C" __global__ void ich_nn_batch_norm_silu_backward_apply_nhwc(const bf16* x, const bf16* dy, const float* gamma,
                                                                      const float* beta, const float* save_mean,
                                                                      const float* save_inv_std, const float* coef,
                                                                      bf16* dx, i64 m, i64 c, int vec, int cw,
                                                                      i64 rows_per_chunk) {
    ICH_BY_VEC(batch_norm_silu_backward_apply, x, dy, gamma, beta, save_mean, save_inv_std, coef, dx, m, c, cw,
               rows_per_chunk);
}

// ---- depthwise convolution, NHWC: x [n, h, w, c], y [n, p, q, c], dy like y, dx like x, all bf16 ----
//
// The bf16 path's own depthwise kernels, raced against cuDNN per shape as the fp32 NCHW ones are. Square 3x3 and
// 5x5 filters (B0's), any stride and padding. The weights are the backend's bf16 copy of the fp32 master weights,
// KRSC with one input channel per group: [c][r][s]. The weight gradient is fp32 [c][r][s] (= [c, 1, r, s]).
//
// Tiling: channels as in the other NHWC kernels (NhwcSlot: cw threads a slice of channels, each thread VEC
// consecutive channels) and the block's lanes over consecutive tiles of a chunk of rows_per_chunk tiles. A tile
// is T consecutive columns of one row: output positions (n, p, q) for the forward pass and the filter gradient,
// input positions (n, h, w) for the data gradient. A thread keeps its channels'
// r*s*VEC taps (or, for the filter gradient, sums) in registers, 50 at 5x5 and VEC 2: hence VEC 2 (one 4-byte
// load, when c is even and every pointer 4-byte aligned), not the element-wise 8.
//
// Why tiles: one output at a time, a thread loads r*s input values per output (25 at 5x5), and the kernel was
// bound by those load instructions, not by DRAM: the H200 profile had the bf16 5x5/2 forward pass at 1.1
// TFLOP/s, ~18 x its bytes' time. A tile of T = 4 outputs of a row shares its columns: a filter row needs
// (T - 1) stride + s loaded values for T outputs (8 for 4 outputs at 5x5/1, 25 % of the loads; 11 at 5x5/2, 44 %),
// the products stay r*s an output. The data gradient at stride 2 tiles too, its tiles aligned so that each
// column's valid taps are known at compile time (see DataGather); any stride but 1 and 2 takes T = 1.
// The host passes T (`tile`) and the kernel traps on another, so the two cannot count tiles differently.
//
// The taps: the weights are [c][r][s], so the taps a thread needs are r*s*VEC values 25 elements apart from its
// neighbours': loaded directly, every load of a warp touched ~24 sectors, and each work item (8 positions a
// thread) loaded them anew. Now the block copies its slice's taps (cw*VEC channels, one contiguous range) into
// shared memory with coalesced loads when the slice changes, and each thread widens its own from there (a
// thread's taps start r*s*VEC*2 bytes after its neighbour's: 25 or 9 words at VEC 2, odd, so no bank conflicts).
//
// Napkin: B0 stage 2's 3x3/2 depthwise at batch 256, 256x256 (96 channels, 128x128 -> 64x64) reads 805 MB and
// writes 201 MB in bf16, ~0.3 ms at ~3.3 TB/s, for 0.9 GFLOP: bandwidth-bound like its fp32 sibling, at half
// the bytes, if the loads are few enough.
//
// Arithmetic: a product of two bf16 values is exact in fp32 (8 + 8 significant bits), so each output is the fp32
// sum of exact products, rr outer, ss inner, in rounded adds: fixed, so it repeats bit for bit, and the same as
// the CPU's up to the order of r*s fp32 additions. A column outside the image is loaded as 0 and its product
// added: the sum starts at +0 and round-to-nearest never makes it -0, so adding k * 0 = +-0 leaves it as
// skipping the tap would (for finite weights; an infinite weight makes NaN there, where the loss is lost anyway).
// The filter gradient sums a thread's products of a chunk in fp32 (at most a few hundred terms: <= ~2e-5
// relative, far under bf16's 4e-3), then the lanes and the chunks in double, in a fixed order, through a
// workspace: no atomics.

// Each pass has an entry point per filter size, so that a 3x3 launch is not held to the registers of the 5x5
// code (a kernel gets the register count of its largest path), and dispatches on the host's vec, uniform over the
// grid (no divergence). The tiled passes hold 50 taps, 8 sums and up to 22 loaded values at 5x5: ptxas took 132
// registers, one 256-thread block an SM; bounded to 2 blocks an SM they fit 128 without spilling (sm_80, sm_90),
// and the 3x3 entries take ~98 anyway.
#define ICH_BY_VEC2(body, R, ...) \
    do { if (vec == 2) body<R, 2>(__VA_ARGS__); else body<R, 1>(__VA_ARGS__); } while (0)

// Dispatch on a stride too where a pass tiles or divides by it: stride 1 and 2 (B0's) compile to no test and to
// a shift, anything else (S = 0) divides at run time. The forward pass needs only stride_w (its columns), the
// data gradient both (it divides rows and columns).
#define ICH_BY_VEC2_S(body, R, S, ...) \
    do { if (vec == 2) body<R, 2, S>(__VA_ARGS__); else body<R, 1, S>(__VA_ARGS__); } while (0)
#define ICH_BY_STRIDE_W_VEC2(body, R, ...)                                       \
    do {                                                                         \
        if (stride_w == 1) ICH_BY_VEC2_S(body, R, 1, __VA_ARGS__);               \
        else if (stride_w == 2) ICH_BY_VEC2_S(body, R, 2, __VA_ARGS__);          \
        else ICH_BY_VEC2_S(body, R, 0, __VA_ARGS__);                             \
    } while (0)
#define ICH_BY_STRIDE_VEC2(body, R, ...)                                                        \
    do {                                                                                        \
        if (stride_h == 1 && stride_w == 1) ICH_BY_VEC2_S(body, R, 1, __VA_ARGS__);             \
        else if (stride_h == 2 && stride_w == 2) ICH_BY_VEC2_S(body, R, 2, __VA_ARGS__);        \
        else ICH_BY_VEC2_S(body, R, 0, __VA_ARGS__);                                            \
    } while (0)

// Index i of an [n, rows, cols] grid of positions as (img, row, col), in 32-bit unsigned arithmetic: two 32-bit
// divisions instead of three 64-bit ones (a 64-bit division is a ~100-instruction software routine, more than
// a 3x3 position's taps cost). NnKernels keeps n * rows * cols below 2^31 for these kernels.
struct GridPosition {
    int img, row, col;
};
__device__ __forceinline__ GridPosition grid_position(i64 i, i64 rows, i64 cols) {
    const unsigned u = static_cast<unsigned>(i), nc = static_cast<unsigned>(cols);
    const unsigned image_row = u / nc;
    const unsigned img = image_row / static_cast<unsigned>(rows);
    return {static_cast<int>(img), static_cast<int>(image_row - img * static_cast<unsigned>(rows)),
            static_cast<int>(u - image_row * nc)};
}

// t / S when t is a multiple of S (t >= 0), else -1: S = 1 and 2 at compile time, S = 0 with the run-time stride.
template <int S>
__device__ __forceinline__ int exact_quotient(int t, int stride) {
    if (S == 1) return t;
    if (S == 2) return (t & 1) ? -1 : t >> 1;
    return t % stride != 0 ? -1 : t / stride;
}

// The most channels a slice holds: cw <= 32 threads (NnKernels.NHWC_MAX_SLICE_GROUPS) of VEC <= 2.
#define ICH_DEPTHWISE_SLICE_CHANNELS 64

// Copies the taps of the slice's channels [ch0, ch0 + count) into `taps` ([channel - ch0][tap]): one contiguous
// range of [c][r][s], read with consecutive threads on consecutive elements. Every thread of the block calls it.
template <int R>
__device__ __forceinline__ void stage_depthwise_taps(const bf16* wt, i64 ch0, i64 count, bf16* taps) {
    __syncthreads();  // every thread is done with the previous slice's taps
    for (int e = threadIdx.x; e < count * (R * R); e += blockDim.x) taps[e] = wt[ch0 * (R * R) + e];
    __syncthreads();
}

// The thread's VEC channels' taps, widened from the staged slice: k[tap][j] for channel ch0 + first + j.
template <int R, int VEC>
__device__ __forceinline__ void load_depthwise_taps(const bf16* taps, i64 first, float (&k)[R * R][VEC]) {
#pragma unroll
    for (int j = 0; j < VEC; j++) {
#pragma unroll
        for (int tap = 0; tap < R * R; tap++) k[tap][j] = bf16_to_f32(taps[(first + j) * (R * R) + tap]);
    }
}

// The forward pass and the data gradient are both gathers: each output element of the thread's channels is a sum
// over the taps of a filter tap times an input element. The driver walks the work items and the tiles; Gather
// (ForwardGather, DataGather) sums a tile's T outputs, each in its fixed order. rows x cols are the output grid
// of the pass (p x q forward, h x w for the data gradient), cut into tiles of T columns.
template <int R, int VEC, int S, int T, typename Gather>
__device__ __forceinline__ void depthwise_gather_nhwc(const Gather& gather, const bf16* wt, bf16* out, i64 n,
                                                      i64 rows, i64 cols, i64 c, int cw, int tile,
                                                      i64 rows_per_chunk) {
    __shared__ bf16 taps[ICH_DEPTHWISE_SLICE_CHANNELS * R * R];
    if (tile != T || cw * VEC > ICH_DEPTHWISE_SLICE_CHANNELS) __trap();  // a host bug: tiles counted otherwise
    // a tile starts `offset` columns before a multiple of T (the data gradient at stride 2: see DataGather)
    const int offset = gather.template column_offset<S, T>();
    const i64 tiles_per_row = (cols + offset + T - 1) / T, tiles = n * rows * tiles_per_row;
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (tiles + rows_per_chunk - 1) / rows_per_chunk;
    float k[R * R][VEC];
    i64 staged = -1;  // the slice whose taps are in `taps` and k; uniform over the block
    for (i64 item = blockIdx.x; item < chunks * slices; item += gridDim.x) {
        const i64 slice = item / chunks, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        if (slice != staged) {
            const i64 ch0 = slice * cw * VEC;
            stage_depthwise_taps<R>(wt, ch0, min(static_cast<i64>(cw * VEC), c - ch0), taps);
            if (t.active) load_depthwise_taps<R, VEC>(taps, t.ch - ch0, k);
            staged = slice;
        }
        if (!t.active) continue;
        const i64 end = min(tiles, (chunk + 1) * rows_per_chunk);
        for (i64 at = chunk * rows_per_chunk + t.lane; at < end; at += t.lanes) {
            const GridPosition g = grid_position(at, rows, tiles_per_row);
            const int col0 = g.col * T - offset;
            float acc[T][VEC] = {};
            gather.template sum<R, VEC, S, T>(g.img, g.row, col0, t.ch, k, acc);
            bf16* o = out + ((static_cast<i64>(g.img) * rows + g.row) * cols + col0) * c + t.ch;
#pragma unroll
            for (int u = 0; u < T; u++) {
                if (col0 + u >= 0 && col0 + u < cols) store_bf16<VEC>(o + u * c, acc[u]);
            }
        }
    }
}

// acc += k * v for the VEC channels: exact products, rounded adds. k and v are bf16 values, so their product is
// exact in fp32 (8 + 8 significant bits; barring underflow below 2^-126) and one fused multiply-add rounds the
// same sum as __fadd_rn(acc, __fmul_rn(k, v)): the same bits in half the instructions.
template <int VEC>
__device__ __forceinline__ void add_products(float (&acc)[VEC], const float (&k)[VEC], const float (&v)[VEC]) {
    for (int j = 0; j < VEC; j++) acc[j] = __fmaf_rn(k[j], v[j], acc[j]);
}

// v[i] = line[first + i] (VEC channels each) for i < SPAN, 0 for a column outside [0, limit).
template <int VEC, int SPAN>
__device__ __forceinline__ void load_columns(const bf16* line, int first, int limit, i64 c, float (&v)[SPAN][VEC]) {
#pragma unroll
    for (int i = 0; i < SPAN; i++) {
        const int col = first + i;
        if (col >= 0 && col < limit) {
            load_bf16<VEC>(line + static_cast<i64>(col) * c, v[i]);
        } else {
            for (int j = 0; j < VEC; j++) v[i][j] = 0.0f;
        }
    }
}

// A depthwise convolution's sizes: input h x w, output p x q, c channels (NHWC).
struct DepthwiseShape {
    i64 c, h, w, p, q;
    int stride_h, stride_w, pad_h, pad_w;
};

// y[img, pp, qq, ch] = sum over taps of wt[ch, rr, ss] * x[img, pp stride_h + rr - pad_h, qq stride_w + ss - pad_w, ch],
// zero outside the image. A tile is outputs (img, pp, qq0 .. qq0 + T - 1); S is stride_w (0: not 1 or 2, T = 1).
struct ForwardGather : DepthwiseShape {
    const bf16* x;
    template <int S, int T>
    __device__ __forceinline__ int column_offset() const { return 0; }
    template <int R, int VEC, int S, int T>
    __device__ __forceinline__ void sum(int img, int pp, int qq0, i64 ch, const float (&k)[R * R][VEC],
                                        float (&acc)[T][VEC]) const {
        static_assert(S > 0 || T == 1, "a tile needs its stride at compile time");
        constexpr int SPAN = (T - 1) * S + R;  // the input columns of T outputs of a filter row
        const int sw = S > 0 ? S : stride_w;
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const int hh = pp * stride_h + rr - pad_h;
            if (hh < 0 || hh >= h) continue;
            float v[SPAN][VEC];
            load_columns<VEC, SPAN>(x + (static_cast<i64>(img) * h + hh) * w * c + ch, qq0 * sw - pad_w,
                                    static_cast<int>(w), c, v);
#pragma unroll
            for (int u = 0; u < T; u++) {
#pragma unroll
                for (int ss = 0; ss < R; ss++) add_products<VEC>(acc[u], k[rr * R + ss], v[u * S + ss]);
            }
        }
    }
};

// The forward pass tiles 4 outputs when stride_w is 1 or 2, else 1 (NnKernels.depthwiseNhwcTile).
template <int S>
constexpr int kForwardTile = S > 0 ? 4 : 1;

template <int R, int VEC, int S>
__device__ __forceinline__ void depthwise_forward_nhwc(const bf16* x, const bf16* wt, bf16* y, i64 n, i64 c, i64 h,
                                                       i64 w, i64 p, i64 q, int stride_h, int stride_w, int pad_h,
                                                       int pad_w, int cw, int tile, i64 rows_per_chunk) {
    const ForwardGather gather{{c, h, w, p, q, stride_h, stride_w, pad_h, pad_w}, x};
    depthwise_gather_nhwc<R, VEC, S, kForwardTile<S>>(gather, wt, y, n, p, q, c, cw, tile, rows_per_chunk);
}

#define ICH_DEPTHWISE_FORWARD_NHWC_ARGS                                                                            \
    const bf16 *x, const bf16 *wt, bf16 *y, i64 n, i64 c, i64 h, i64 w, i64 p, i64 q, int stride_h, int stride_w, \
        int pad_h, int pad_w, int vec, int cw, int tile, i64 rows_per_chunk

extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_depthwise_forward_nhwc_3x3(ICH_DEPTHWISE_FORWARD_NHWC_ARGS) {
    ICH_BY_STRIDE_W_VEC2(depthwise_forward_nhwc, 3, x, wt, y, n, c, h, w, p, q, stride_h, stride_w, pad_h, pad_w, cw,
                         tile, rows_per_chunk);
}

extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_depthwise_forward_nhwc_5x5(ICH_DEPTHWISE_FORWARD_NHWC_ARGS) {
    ICH_BY_STRIDE_W_VEC2(depthwise_forward_nhwc, 5, x, wt, y, n, c, h, w, p, q, stride_h, stride_w, pad_h, pad_w, cw,
                         tile, rows_per_chunk);
}

// dx[img, hh, ww, ch] = sum of wt[ch, rr, ss] * dy[img, o, u, ch] over the taps with hh + pad_h - rr = o stride_h
// and ww + pad_w - ss = u stride_w, 0 <= o < p, 0 <= u < q: a gather, so each thread owns its dx, no atomics.
// A tile is inputs (img, hh, ww0 .. ww0 + T - 1), T = 4 at strides 1 and 2 (S = 1, 2), else one input whose
// valid taps are found by exact division (S = 0).
//   Stride 1: u = ww + pad_w - ss, so the tile reads columns ww0 + pad_w - (R - 1) .. ww0 + pad_w + T - 1.
//   Stride 2: a tap counts where ww + pad_w - ss is even. Tiles start where ww0 + pad_w is even (ww0 = 4 j -
//   (pad_w & 1): the first tile of a row may start at column -1, which is not stored), so the parity of each
//   (tile column uu, ss) is known at compile time: the taps with uu - ss even, each at u = U + (uu - ss) / 2 with
//   U = (ww0 + pad_w) / 2. The tile's columns share (T - 2) / 2 + (R - 1) / 2 + 1 loaded dy values: 4 for the
//   4 inputs' 10 taps at 5x5, instead of 10 loads one input at a time.
struct DataGather : DepthwiseShape {
    const bf16* dy;
    template <int S, int T>
    __device__ __forceinline__ int column_offset() const { return S == 2 && T > 1 ? (pad_w & 1) : 0; }
    template <int R, int VEC, int S, int T>
    __device__ __forceinline__ void sum(int img, int hh, int ww0, i64 ch, const float (&k)[R * R][VEC],
                                        float (&acc)[T][VEC]) const {
        static_assert(S > 0 || T == 1, "a tile needs its stride at compile time");
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const int th = hh + pad_h - rr;
            if (th < 0) continue;
            const int o = exact_quotient<S>(th, stride_h);
            if (o < 0 || o >= p) continue;
            const bf16* line = dy + (static_cast<i64>(img) * p + o) * q * c + ch;
            if constexpr (S == 1 && T > 1) {
                constexpr int SPAN = T + R - 1;
                float g[SPAN][VEC];
                load_columns<VEC, SPAN>(line, ww0 + pad_w - (R - 1), static_cast<int>(q), c, g);
#pragma unroll
                for (int uu = 0; uu < T; uu++) {
#pragma unroll
                    for (int ss = 0; ss < R; ss++) add_products<VEC>(acc[uu], k[rr * R + ss], g[uu + R - 1 - ss]);
                }
            } else if constexpr (S == 2 && T > 1) {
                static_assert(T % 2 == 0 && R % 2 == 1, "even tiles, odd filters");
                constexpr int LOW = (R - 1) / 2, SPAN = (T - 2) / 2 + LOW + 1;  // (uu - ss) / 2 from -LOW
                float g[SPAN][VEC];
                load_columns<VEC, SPAN>(line, (ww0 + pad_w) / 2 - LOW, static_cast<int>(q), c, g);
#pragma unroll
                for (int uu = 0; uu < T; uu++) {
#pragma unroll
                    for (int ss = uu % 2; ss < R; ss += 2) {
                        add_products<VEC>(acc[uu], k[rr * R + ss], g[(uu - ss) / 2 + LOW]);
                    }
                }
            } else {
#pragma unroll
                for (int ss = 0; ss < R; ss++) {
                    const int tw = ww0 + pad_w - ss;
                    if (tw < 0) continue;
                    const int u = exact_quotient<S>(tw, stride_w);
                    if (u < 0 || u >= q) continue;
                    float g[VEC];
                    load_bf16<VEC>(line + static_cast<i64>(u) * c, g);
                    add_products<VEC>(acc[0], k[rr * R + ss], g);
                }
            }
        }
    }
};

// The data gradient tiles 4 inputs at strides 1 and 2, else 1 (NnKernels.depthwiseNhwcTile).
template <int S>
constexpr int kDataTile = S > 0 ? 4 : 1;

template <int R, int VEC, int S>
__device__ __forceinline__ void depthwise_backward_data_nhwc(const bf16* dy, const bf16* wt, bf16* dx, i64 n, i64 c,
                                                             i64 h, i64 w, i64 p, i64 q, int stride_h, int stride_w,
                                                             int pad_h, int pad_w, int cw, int tile,
                                                             i64 rows_per_chunk) {
    const DataGather gather{{c, h, w, p, q, stride_h, stride_w, pad_h, pad_w}, dy};
    depthwise_gather_nhwc<R, VEC, S, kDataTile<S>>(gather, wt, dx, n, h, w, c, cw, tile, rows_per_chunk);
}

#define ICH_DEPTHWISE_BACKWARD_DATA_NHWC_ARGS                                                                        \
    const bf16 *dy, const bf16 *wt, bf16 *dx, i64 n, i64 c, i64 h, i64 w, i64 p, i64 q, int stride_h, int stride_w, \
        int pad_h, int pad_w, int vec, int cw, int tile, i64 rows_per_chunk

extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_depthwise_backward_data_nhwc_3x3(ICH_DEPTHWISE_BACKWARD_DATA_NHWC_ARGS) {
    ICH_BY_STRIDE_VEC2(depthwise_backward_data_nhwc, 3, dy, wt, dx, n, c, h, w, p, q, stride_h, stride_w, pad_h, pad_w, cw,
                       tile, rows_per_chunk);
}

extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_depthwise_backward_data_nhwc_5x5(ICH_DEPTHWISE_BACKWARD_DATA_NHWC_ARGS) {
    ICH_BY_STRIDE_VEC2(depthwise_backward_data_nhwc, 5, dy, wt, dx, n, c, h, w, p, q, stride_h, stride_w, pad_h, pad_w, cw,
                       tile, rows_per_chunk);
}

// Pass 1 of the filter gradient: for each chunk of output tiles, partial[chunk][ch][rr][ss] = sum over the
// chunk's outputs (img, o, u) of dy[img, o, u, ch] * x[img, o stride_h + rr - pad_h, u stride_w + ss - pad_w, ch]
// (double). Tiles of T = 4 columns at stride_w 1, 2 at stride_w 2, else 1 (at 5x5/2 four columns would take
// more than the 128 registers of two blocks an SM): the T outputs of a filter row share (T - 1) stride + s loaded
// input columns. A thread sums its products in fp32 registers, tile by tile, each
// tap's outputs in column order; then the lanes are added one filter row at a time (lane_sum of R * VEC doubles:
// 20 KB of shared memory at 5x5). A column past q (a ragged last tile) loads dy as 0 and adds products of 0 (for
// finite x: an infinite activation would make NaN there, where the loss is lost anyway).
// The filter gradient's tile (NnKernels.depthwiseNhwcTile).
template <int S>
constexpr int kFilterTile = S == 1 ? 4 : S == 2 ? 2 : 1;

template <int R, int VEC, int S>
__device__ __forceinline__ void depthwise_filter_sums_nhwc(const bf16* x, const bf16* dy, double* partial, i64 n,
                                                           i64 c, i64 h, i64 w, i64 p, i64 q, int stride_h,
                                                           int stride_w, int pad_h, int pad_w, int cw, int tile,
                                                           i64 rows_per_chunk, double* shared) {
    constexpr int T = kFilterTile<S>, SPAN = (T - 1) * S + R;
    if (tile != T) __trap();  // a host bug: tiles counted otherwise
    const int sw = S > 0 ? S : stride_w;
    const i64 tiles_per_row = (q + T - 1) / T, tiles = n * p * tiles_per_row;
    const i64 slices = (c / VEC + cw - 1) / cw, chunks = (tiles + rows_per_chunk - 1) / rows_per_chunk;
    for (i64 item = blockIdx.x; item < chunks * slices; item += gridDim.x) {
        const i64 slice = item / chunks, chunk = item % chunks;
        const NhwcSlot t = nhwc_slot<VEC>(c, cw, slice);
        float acc[R * R][VEC] = {};
        if (t.active) {
            const i64 end = min(tiles, (chunk + 1) * rows_per_chunk);
            for (i64 at = chunk * rows_per_chunk + t.lane; at < end; at += t.lanes) {
                const GridPosition pos = grid_position(at, p, tiles_per_row);
                const int col0 = pos.col * T;
                float g[T][VEC];
                load_columns<VEC, T>(dy + (static_cast<i64>(pos.img) * p + pos.row) * q * c + t.ch, col0,
                                     static_cast<int>(q), c, g);
#pragma unroll
                for (int rr = 0; rr < R; rr++) {
                    const int hh = pos.row * stride_h + rr - pad_h;
                    if (hh < 0 || hh >= h) continue;
                    float v[SPAN][VEC];
                    load_columns<VEC, SPAN>(x + (static_cast<i64>(pos.img) * h + hh) * w * c + t.ch,
                                            col0 * sw - pad_w, static_cast<int>(w), c, v);
#pragma unroll
                    for (int ss = 0; ss < R; ss++) {
#pragma unroll
                        for (int u = 0; u < T; u++) add_products<VEC>(acc[rr * R + ss], g[u], v[u * S + ss]);
                    }
                }
            }
        }
        double* out = partial + chunk * c * (R * R);
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            double s[R * VEC];
            for (int ss = 0; ss < R; ss++) {
                for (int j = 0; j < VEC; j++) s[ss * VEC + j] = (double)acc[rr * R + ss][j];
            }
            lane_sum<R * VEC>(s, shared, t.lanes, cw);
            if (t.active && t.lane == 0) {
                for (int ss = 0; ss < R; ss++) {
                    for (int j = 0; j < VEC; j++) out[(t.ch + j) * (R * R) + rr * R + ss] = s[ss * VEC + j];
                }
            }
        }
    }
}

#define ICH_DEPTHWISE_FILTER_SUMS_NHWC_ARGS                                                                          \
    const bf16 *x, const bf16 *dy, double *partial, i64 n, i64 c, i64 h, i64 w, i64 p, i64 q, int stride_h,        \
        int stride_w, int pad_h, int pad_w, int vec, int cw, int tile, i64 rows_per_chunk

extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_depthwise_filter_sums_nhwc_3x3(ICH_DEPTHWISE_FILTER_SUMS_NHWC_ARGS) {
    __shared__ double shared[3 * 2 * ICH_NN_BLOCK];  // lane_sum of R * VEC doubles a thread
    ICH_BY_STRIDE_W_VEC2(depthwise_filter_sums_nhwc, 3, x, dy, partial, n, c, h, w, p, q, stride_h, stride_w, pad_h,
                         pad_w, cw, tile, rows_per_chunk, shared);
}

extern "C" __global__ void __launch_bounds__(ICH_NN_BLOCK, 2) ich_nn_depthwise_filter_sums_nhwc_5x5(ICH_DEPTHWISE_FILTER_SUMS_NHWC_ARGS) {
    __shared__ double shared[5 * 2 * ICH_NN_BLOCK];
    ICH_BY_STRIDE_W_VEC2(depthwise_filter_sums_nhwc, 5, x, dy, partial, n, c, h, w, p, q, stride_h, stride_w, pad_h,
                         pad_w, cw, tile, rows_per_chunk, shared);
}

// Pass 2: dw[j] = (float) sum over chunks of partial[chunk][j], in chunk order, j over the c * r * s weights: a
// warp reads 32 consecutive doubles of each chunk. Napkin: at most 64 MB of partial sums (the host caps them),
// usually a few MB: microseconds.
extern "C" __global__ void ich_nn_depthwise_filter_finish_nhwc(const double* partial, float* dw, i64 weights,
                                                               i64 chunks) {
    for (i64 j = first_index(); j < weights; j += grid_stride()) {
        double s = 0;
        for (i64 k = 0; k < chunks; k++) s += partial[k * weights + j];
        dw[j] = (float)s;
    }
}

// ---- im2col, NHWC bf16: the rows of a dense convolution's weight gradient as a GEMM ----
//
// col[row][(rr s + ss) c + ch] = x[img, pp stride_h + rr - pad_h, qq stride_w + ss - pad_w, ch] (0 outside the
// image) for the output positions m0 + row = (img, pp, qq), row < rows: the matrix whose product with dy [m, k]
// is the weight gradient in [k][r][s][c] order (CudaBackend sums it chunk by chunk with cublasGemmEx). For the
// stem (c = 3, 3x3/2), whose weight gradient cuDNN's legacy bf16 NHWC algorithms took 5.8 ms a step for at batch
// 256 on an H200. A thread fills one (row, tap): c consecutive values. Napkin, the stem at batch 256, 256x256:
// 4.2 M rows x 27 values, 226 MB written and ~100 MB read, ~0.1 ms at 3.3 TB/s.
extern "C" __global__ void ich_nn_im2col_nhwc(const bf16* x, bf16* col, i64 m0, i64 rows, i64 c, i64 h, i64 w, i64 p,
                                              i64 q, int r, int s, int stride_h, int stride_w, int pad_h, int pad_w) {
    const i64 taps = static_cast<i64>(r) * s;
    for (i64 e = first_index(); e < rows * taps; e += grid_stride()) {
        const i64 row = e / taps;
        const int tap = static_cast<int>(e - row * taps), rr = tap / s, ss = tap - rr * s;
        const GridPosition at = grid_position(m0 + row, p, q);
        const int hh = at.row * stride_h + rr - pad_h, ww = at.col * stride_w + ss - pad_w;
        bf16* out = col + e * c;
        if (hh < 0 || hh >= h || ww < 0 || ww >= w) {
            for (i64 ch = 0; ch < c; ch++) out[ch] = 0;  // +0.0 in bf16
        } else {
            const bf16* in = x + ((static_cast<i64>(at.img) * h + hh) * w + ww) * c;
            for (i64 ch = 0; ch < c; ch++) out[ch] = in[ch];
        }
    }
}
