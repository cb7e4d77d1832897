// Training kernels of our own for the CUDA backend (ich.nn.Backend): the element-wise ops, squeeze-excitation
// scaling, global average pooling, BCE-with-logits and the Adam/AdamW step, all fp32 NCHW. The host side is
// ich.gpu.NnKernels; the reference of every op is ich.nn.cpu.CpuBackend.
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

// One Adam/AdamW step over a parameter tensor, in place on param, m and v; the CPU's float formulas in its
// order. The host computes, in double as the CPU does, and rounds to float: step_size = lr / (1 - beta1^step),
// inv_sqrt_bias2 = 1 / sqrt(1 - beta2^step), l2 = weight decay for Adam (0 for AdamW), decay = 1 - lr * wd for
// AdamW (1 for Adam). Napkin: 4 reads + 3 writes of 4 bytes per element; all 5.3 M parameters of
// EfficientNet-B0 are ~150 MB, ~50 us at H100 bandwidth, so one launch per tensor is launch-bound, not bandwidth.
extern "C" __global__ void ich_nn_adam_step(float* param, const float* grad, float* m, float* v, i64 n,
                                            float beta1, float beta2, float eps, float step_size,
                                            float inv_sqrt_bias2, float l2, float decay) {
    const float one_minus_b1 = __fsub_rn(1.0f, beta1), one_minus_b2 = __fsub_rn(1.0f, beta2);
    for (i64 i = first_index(); i < n; i += grid_stride()) {
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
}
