// The fused preprocessing kernel: stored pixels -> HU -> window channels -> crop + bilinear resize -> flip ->
// optional normalisation -> fp32/fp16/bf16 in NCHW or NHWC, for a whole batch in one launch.
//
// It reproduces ich.preprocess.SliceKernel.run (the CPU reference) operation for operation in fp32, so that
// fp32 output is meant to be bit-identical to the CPU path (see "Exactness" below for the one exception).
// The host side (the Java runtime in package ich.gpu) fills the structs below; their layout is fixed by the
// static_asserts and must be mirrored there byte for byte.
//
// Exactness (why the arithmetic looks the way it does):
//  * Every fp32 multiply and add is written with __fmul_rn / __fadd_rn / __fsub_rn / __fmaf_rn. The first
//    three are never contracted into an FMA, whatever the compiler flags, so each operation rounds once, as in
//    Java; the interpolation's multiply-adds are fused on purpose, on both sides (__fmaf_rn here, Math.fma in
//    Java: one rounding each, the same result). The build also passes -fmad=false as a second line of defence
//    for anything written as a plain operator.
//  * min/max follow java.lang.Math (NaN propagates, +0.0 is larger than -0.0), not fminf/fmaxf.
//  * Values the Java code computes in double and rounds to float once are computed on the host, the same
//    way, and passed in: the resampling step (float)(box.width / outW), the window bounds and scales
//    (Window.low/high/scale/bias) and 1f / std.
//  * Sigmoid windows: Java evaluates 1 / (1 + Math.exp(-(W x + b))) in double and rounds to float; so does
//    this kernel, with CUDA's double exp (error < 1 ulp of double, as is Math.exp). The float result can differ
//    by 1 ulp only where the two double results straddle a float rounding boundary: rare, not impossible.
//
// Not handled here (the host keeps the CPU path for such images): Bits Allocated other than 16, Modality LUTs,
// pixel padding masks. An image with bits_allocated != 16 gets NaN in every output value, so a host that
// forgets the check sees it at once.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstddef>
#include <cstdint>

#define ICH_MAX_CHANNELS 8

// One image of the batch (64 bytes, 8-byte aligned). Output image i starts at element
// i * channels * out_h * out_w of the output buffer.
struct IchImage {
    const uint16_t* pixels;  //  0: stored pixel words of the frame, little-endian, rows * columns, device memory
    int32_t rows;            //  8
    int32_t columns;         // 12
    int32_t bits_allocated;  // 16: 16 only for now (the host leaves other images out of the launch)
    int32_t shift_left;      // 20: 31 - High Bit            (StoredValues)
    int32_t shift_right;     // 24: 32 - Bits Stored
    int32_t is_signed;       // 28: Pixel Representation == 1: arithmetic right shift, else logical
    int32_t rsna_fix;        // 32: 1: v = (stored + 1000) & 0xFFF (the host then passes intercept -1000)
    int32_t flip;            // 36: 1: output column ox holds the sample computed for outW - 1 - ox
    float slope;             // 40: Rescale Slope (1 when absent)
    float intercept;         // 44: Rescale Intercept (0 when absent; -1000 with the RSNA fix)
    float box_x;             // 48: crop box origin in source pixels, (float) CropBox.x
    float box_y;             // 52: (float) CropBox.y
    float step_x;            // 56: (float) (CropBox.width / out_w), divided in double as SliceKernel does
    float step_y;            // 60: (float) (CropBox.height / out_h)
};
// Every offset is asserted: ich.gpu.PreprocessStructs mirrors them, and PreprocessStructsTest parses these lines.
static_assert(sizeof(IchImage) == 64, "IchImage layout is shared with the Java runtime");
static_assert(offsetof(IchImage, pixels) == 0, "IchImage.pixels");
static_assert(offsetof(IchImage, rows) == 8, "IchImage.rows");
static_assert(offsetof(IchImage, columns) == 12, "IchImage.columns");
static_assert(offsetof(IchImage, bits_allocated) == 16, "IchImage.bits_allocated");
static_assert(offsetof(IchImage, shift_left) == 20, "IchImage.shift_left");
static_assert(offsetof(IchImage, shift_right) == 24, "IchImage.shift_right");
static_assert(offsetof(IchImage, is_signed) == 28, "IchImage.is_signed");
static_assert(offsetof(IchImage, rsna_fix) == 32, "IchImage.rsna_fix");
static_assert(offsetof(IchImage, flip) == 36, "IchImage.flip");
static_assert(offsetof(IchImage, slope) == 40, "IchImage.slope");
static_assert(offsetof(IchImage, intercept) == 44, "IchImage.intercept");
static_assert(offsetof(IchImage, box_x) == 48, "IchImage.box_x");
static_assert(offsetof(IchImage, box_y) == 52, "IchImage.box_y");
static_assert(offsetof(IchImage, step_x) == 56, "IchImage.step_x");
static_assert(offsetof(IchImage, step_y) == 60, "IchImage.step_y");

// One window channel (20 bytes): the values of ich.preprocess.Window.
struct IchChannel {
    float low;        //  0: Window.low()  (linear windows)
    float high;       //  4: Window.high() (linear windows)
    float scale;      //  8: Window.scale(): 1 / width, or the sigmoid slope W
    float bias;       // 12: Window.bias(): the sigmoid bias b (0 for linear windows)
    int32_t sigmoid;  // 16: 1 for a sigmoid window
};
static_assert(sizeof(IchChannel) == 20, "IchChannel layout is shared with the Java runtime");
static_assert(offsetof(IchChannel, low) == 0, "IchChannel.low");
static_assert(offsetof(IchChannel, high) == 4, "IchChannel.high");
static_assert(offsetof(IchChannel, scale) == 8, "IchChannel.scale");
static_assert(offsetof(IchChannel, bias) == 12, "IchChannel.bias");
static_assert(offsetof(IchChannel, sigmoid) == 16, "IchChannel.sigmoid");

// Per-batch parameters, passed by value as a kernel argument (240 bytes).
struct IchBatch {
    int32_t channels;   //   0: 1..ICH_MAX_CHANNELS
    int32_t out_h;      //   4
    int32_t out_w;      //   8
    int32_t normalize;  //  12: 1: v = (v - mean[k]) * inv_std[k]
    IchChannel channel[ICH_MAX_CHANNELS];  // 16
    float mean[ICH_MAX_CHANNELS];          // 176
    float inv_std[ICH_MAX_CHANNELS];       // 208: 1f / std, divided in float on the host as SliceKernel does
};
static_assert(sizeof(IchBatch) == 240, "IchBatch layout is shared with the Java runtime");
static_assert(offsetof(IchBatch, channels) == 0, "IchBatch.channels");
static_assert(offsetof(IchBatch, out_h) == 4, "IchBatch.out_h");
static_assert(offsetof(IchBatch, out_w) == 8, "IchBatch.out_w");
static_assert(offsetof(IchBatch, normalize) == 12, "IchBatch.normalize");
static_assert(offsetof(IchBatch, channel) == 16, "IchBatch.channel");
static_assert(offsetof(IchBatch, mean) == 176, "IchBatch.mean");
static_assert(offsetof(IchBatch, inv_std) == 208, "IchBatch.inv_std");

namespace {

// java.lang.Math.max(float, float): NaN if either is NaN; +0.0 > -0.0.
__device__ __forceinline__ float jmax(float a, float b) {
    if (a != a) return a;
    if (a == 0.0f && b == 0.0f) return __int_as_float(__float_as_int(a) & __float_as_int(b));
    return a >= b ? a : b;
}

// java.lang.Math.min(float, float): NaN if either is NaN; -0.0 < +0.0.
__device__ __forceinline__ float jmin(float a, float b) {
    if (a != a) return a;
    if (a == 0.0f && b == 0.0f) return __int_as_float(__float_as_int(a) | __float_as_int(b));
    return a <= b ? a : b;
}

// HounsfieldTransform.apply, 16-bit hot path: ((raw << shl) >>> shr or >> shr) [+ 1000 & 0xFFF] * m + b.
__device__ __forceinline__ float hu_of(const IchImage& im, uint32_t raw) {
    uint32_t up = raw << im.shift_left;  // shift_left >= 16 for 16-bit words: the high bits drop out
    int32_t v = im.is_signed ? (static_cast<int32_t>(up) >> im.shift_right)
                             : static_cast<int32_t>(up >> im.shift_right);
    if (im.rsna_fix) v = (v + 1000) & 0xFFF;
    return __fadd_rn(__fmul_rn(static_cast<float>(v), im.slope), im.intercept);
}

__device__ __forceinline__ float hu(const IchImage& im, int index) {
    return hu_of(im, __ldg(im.pixels + index));
}

// Window.apply for a sigmoid window: in double, rounded once to float.
__device__ __forceinline__ float window_sigmoid(const IchChannel& w, float x) {
    float z = __fadd_rn(__fmul_rn(w.scale, x), w.bias);
    return static_cast<float>(1.0 / (1.0 + exp(-static_cast<double>(z))));
}

// a + (b - a) * f: the difference rounded, then one fused multiply-add (Java: Math.fma).
__device__ __forceinline__ float lerp(float a, float b, float f) {
    return __fmaf_rn(__fsub_rn(b, a), f, a);
}

// Source coordinate of output pixel o along one axis, as SliceKernel: clamp(origin + (o + 0.5) * step - 0.5).
__device__ __forceinline__ void source(float origin, float step, int o, int n, int& i0, int& i1, float& f) {
    float s = __fsub_rn(__fadd_rn(origin, __fmul_rn(__fadd_rn(static_cast<float>(o), 0.5f), step)), 0.5f);
    s = jmin(jmax(s, 0.0f), static_cast<float>(n - 1));
    i0 = static_cast<int>(s);  // s >= 0: truncation is floor, as Java's (int)
    i1 = min(i0 + 1, n - 1);
    f = __fsub_rn(s, static_cast<float>(i0));
}

template <typename T> __device__ __forceinline__ T convert(float v);
template <> __device__ __forceinline__ float convert<float>(float v) { return v; }
template <> __device__ __forceinline__ __half convert<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// One output pixel's value in channel k from the HU values of its 2 x 2 source pixels, as SliceKernel: a linear
// window clamps the four HU values to [low, high], interpolates them and then maps the result by (v - low) * scale
// (the map is affine, so doing it once after the interpolation is the same function as windowing each source pixel,
// for a quarter of the arithmetic); a sigmoid window maps each source value, then interpolates. Then the optional
// normalisation. LINEAR (the linear kernel: no NaN, no -0.0, see preprocess_linear): the hardware's min/max, else
// java.lang.Math's.
// NORM: whether to normalise, from b.normalize (NORM_BY_BATCH) or fixed at compile time (the linear kernel: a branch
// on b.normalize costs predicated loads and operations in every pixel even when it is off).
enum NormMode { NORM_BY_BATCH, NORM_OFF, NORM_ON };

template <bool LINEAR, int NORM = NORM_BY_BATCH>
__device__ __forceinline__ float sample(const IchBatch& b, int k, float h00, float h01, float h10, float h11, float fx, float fy) {
    const IchChannel& w = b.channel[k];
    float v;
    if (!LINEAR && w.sigmoid) {
        v = lerp(lerp(window_sigmoid(w, h00), window_sigmoid(w, h01), fx), lerp(window_sigmoid(w, h10), window_sigmoid(w, h11), fx), fy);
    } else {
        const float c00 = LINEAR ? fminf(fmaxf(h00, w.low), w.high) : jmin(jmax(h00, w.low), w.high);
        const float c01 = LINEAR ? fminf(fmaxf(h01, w.low), w.high) : jmin(jmax(h01, w.low), w.high);
        const float c10 = LINEAR ? fminf(fmaxf(h10, w.low), w.high) : jmin(jmax(h10, w.low), w.high);
        const float c11 = LINEAR ? fminf(fmaxf(h11, w.low), w.high) : jmin(jmax(h11, w.low), w.high);
        v = __fmul_rn(__fsub_rn(lerp(lerp(c00, c01, fx), lerp(c10, c11, fx), fy), w.low), w.scale);
    }
    if (NORM == NORM_ON || (NORM == NORM_BY_BATCH && b.normalize)) v = __fmul_rn(__fsub_rn(v, b.mean[k]), b.inv_std[k]);
    return v;
}

// sample() of every channel, stored at pixel (NCHW: in each channel's plane; NHWC: together). C > 0 fixes the
// channel count at compile time (the loop unrolls and each window's fields become immediate operands); C = 0 takes
// b.channels.
template <bool LINEAR, int C, typename T, bool NHWC, int NORM = NORM_BY_BATCH>
__device__ __forceinline__ void write_samples(const IchBatch& b, T* img, long long pixel, long long plane, float h00,
                                              float h01, float h10, float h11, float fx, float fy) {
    const int c = C > 0 ? C : b.channels;
    for (int k = 0; k < c; k++) {
        img[NHWC ? pixel * c + k : k * plane + pixel] = convert<T>(sample<LINEAR, NORM>(b, k, h00, h01, h10, h11, fx, fy));
    }
}

// write_samples for any channel count, the four HU values read here.
template <bool LINEAR, typename T, bool NHWC>
__device__ __forceinline__ void write_pixel(const IchBatch& b, const IchImage& im, T* img, long long pixel, long long plane,
                                            int x0, int x1, float fx, int y0, int y1, float fy) {
    const float h00 = hu(im, y0 * im.columns + x0), h01 = hu(im, y0 * im.columns + x1);
    const float h10 = hu(im, y1 * im.columns + x0), h11 = hu(im, y1 * im.columns + x1);
    write_samples<LINEAR, 0, T, NHWC>(b, img, pixel, plane, h00, h01, h10, h11, fx, fy);
}

// Napkin math, per output pixel with C channels (BSB: C = 3), 512 x 512 int16 source, 224 x 224 output:
//  * reads 4 source words (8 B) through the read-only cache; neighbouring threads share them, so DRAM sees
//    roughly the touched part of the slice once: ~450 KiB per image. Writes C * 4 B (fp32: 12 B; fp16/bf16:
//    6 B): 600 KiB per fp32 BSB image. About 1 MiB of traffic per image.
//  * FLOPs: coordinates ~10; HU 4 x 2 = 8 (recomputed for each of the 4 samples instead of once per source
//    pixel as on the CPU: cheaper than sharing through shared memory); per linear channel 4 x 2 (clamp) +
//    3 x 2 (lerps, fused) + 2 (window) + 2 (normalisation) = 18. BSB: ~70 FLOPs per output pixel.
//  * ~5 FLOP per byte of DRAM traffic, far below an A100/H100's ~10-20 FLOP/B balance point: memory bound.
//    A 256-image BSB batch moves ~256 MiB: ~0.1 ms at H100 bandwidth (3.35 TB/s), ~0.15 ms on an A100.
//    Sigmoid channels add 4 double exps per pixel; on cards with slow FP64 they, not memory, set the pace.
//
// Launch: block (32, 8), grid (ceil(out_w / 32), ceil(out_h / 8), batch size). One thread per output pixel,
// all channels; in NCHW consecutive threads write consecutive addresses of each plane, in NHWC each thread
// writes C consecutive values.
template <typename T, bool NHWC>
__device__ __forceinline__ void preprocess(const IchImage* __restrict__ images, const IchBatch& b,
                                           T* __restrict__ out) {
    const int ox = blockIdx.x * blockDim.x + threadIdx.x;
    const int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= b.out_w || oy >= b.out_h) return;
    const IchImage im = images[blockIdx.z];
    const int c = b.channels;
    const long long plane = static_cast<long long>(b.out_h) * b.out_w;
    T* img = out + static_cast<long long>(blockIdx.z) * c * plane;
    // NCHW: channel k of pixel (oy, ox) at k * plane + oy * out_w + ox; NHWC: at (oy * out_w + ox) * c + k.
    const long long pixel = static_cast<long long>(oy) * b.out_w + ox;

    if (im.bits_allocated != 16) {
        for (int k = 0; k < c; k++) img[NHWC ? pixel * c + k : k * plane + pixel] = convert<T>(__int_as_float(0x7fc00000));
        return;
    }
    // A flipped image writes output column ox from the sample computed for column out_w - 1 - ox.
    const int sx = im.flip ? b.out_w - 1 - ox : ox;
    int x0, x1, y0, y1;
    float fx, fy;
    source(im.box_x, im.step_x, sx, im.columns, x0, x1, fx);
    source(im.box_y, im.step_y, oy, im.rows, y0, y1, fy);

    write_pixel<false, T, NHWC>(b, im, img, pixel, plane, x0, x1, fx, y0, y1, fy);
}

// ---- The linear kernel: the same results with fewer instructions, for the common batch ----
//
// The kernel above is instruction bound, not memory bound: ~450 instructions per BSB output pixel (Java's NaN-
// and zero-sign-aware min/max as branches, the sigmoid path's registers, a channel loop around a branch), so a
// 256 x 256 batch of 256 took 0.26 ms on an H200, 25 % of its copy bandwidth. This variant runs when the host
// (PreprocessPlan.linearKernel) has checked that every window is linear with finite bounds that are not -0.0,
// and every image has a finite slope and intercept, the intercept not -0.0. Then:
//  * no HU value is NaN: a 16-bit integer times a finite slope plus a finite intercept (an overflow gives an
//    infinity, and inf - inf cannot occur), and none is -0.0 (a sum is -0.0 only when both addends are);
//  * so Java's Math.max/min and the hardware's fmaxf/fminf agree: they differ only for NaN and for a tie of
//    +0.0 with -0.0, and every zero here is +0.0. One FMNMX each instead of a compare-and-branch chain.
// Each thread also does ICH_ROWS output rows of one column (rows blockDim.y apart, so each row's stores stay
// coalesced): the column's source coordinates and the image's parameters are computed and loaded once, and the
// rows' loads are independent, so more of them are in flight per thread.
//
// Napkin math, BSB, fp32 NCHW, 224 x 224 output from 512 x 512: a batch of 256 moves ~280 MB (the touched source
// rows once, 600 KiB of output per image), 70 us at the H200's ~4.0 TB/s copy bandwidth. It is 12.8 M pixels; an
// H200 issues ~1,045 G warp-instructions/s (132 SMs x 4 schedulers x 1.98 GHz), so the kernel stays memory bound
// only below ~180 instructions per pixel, and well below that to leave room for the latency of its loads. Measured
// with Nsight Compute, ~205 per pixel kept it issue bound (83 % of the issue slots, DRAM 40 %). What brought it
// down: the block's coordinates computed once into shared memory (~25 per pixel), the window's affine map once
// per channel after the interpolation and fused interpolation steps (~30), the HU decoding and the normalisation
// chosen per block instead of selected and predicated per word (~15).
#define ICH_ROWS 4
#define ICH_BLOCK_X 32
#define ICH_BLOCK_Y 8

// Three channels of one output pixel stored channels-last, through the warp: a warp is one row of 32 consecutive
// pixels (block (32, 8)), whose 3 x 32 values are contiguous in NHWC. Stored by each thread, they are three
// strided 2- or 4-byte stores per thread (in bf16 a warp's store instruction covers every third 2-byte element of
// 192 bytes: 6 sectors touched a third each, three times over). Instead the warp writes its values into a shared
// tile (warp_tile: 32 x 3 values, its own) and copies it out in 16-byte pieces, each sector written whole once
// (bf16: 12 lanes, fp32: 24). Needs the whole warp inside the image and a 16-byte aligned row start (every 224 or 256
// output is); else the strided stores. The same values reach the same addresses either way.
template <typename T, int NORM>
__device__ __forceinline__ void store_nhwc3(const IchBatch& b, T* img, uint4* warp_tile, long long pixel, float h00,
                                            float h01, float h10, float h11, float fx, float fy) {
    T* row = img + (pixel - threadIdx.x) * 3;  // the warp's first pixel: the same address in every lane
    const bool tiled = (blockIdx.x + 1) * ICH_BLOCK_X <= static_cast<unsigned>(b.out_w) &&
                       (reinterpret_cast<uintptr_t>(row) & 15) == 0;
    if (!tiled) {
        write_samples<true, 3, T, true, NORM>(b, img, pixel, 0, h00, h01, h10, h11, fx, fy);
        return;
    }
    T* mine = reinterpret_cast<T*>(warp_tile);
#pragma unroll
    for (int k = 0; k < 3; k++) mine[threadIdx.x * 3 + k] = convert<T>(sample<true, NORM>(b, k, h00, h01, h10, h11, fx, fy));
    __syncwarp();
    constexpr int pieces = 32 * 3 * sizeof(T) / 16;  // bf16, fp16: 12; fp32: 24
    if (threadIdx.x < pieces) reinterpret_cast<uint4*>(row)[threadIdx.x] = warp_tile[threadIdx.x];
    __syncwarp();  // the tile is rewritten by the next row
}

// Source coordinates of one output column or row (16 bytes: one shared-memory load). Rows keep y0 * columns and
// y1 * columns, the offsets of their two source rows.
struct alignas(16) IchAxis {
    int i0;
    int i1;
    float f;
    int unused;
};

// hu_of for the common images, chosen once per block (hu_mode_of): the shifts' general form is two shifts and a
// select per source word. With High Bit = Bits Stored - 1 (shift_left == shift_right == s), (raw << s) >> s is
// raw & (0xFFFFFFFF >> s) unsigned and a sign extension signed ((int16_t) raw for s = 16); and since & 0xFFF is
// mod 4096, the RSNA fix ((v + 1000) & 0xFFF) of such a v is (raw + 1000) & 0xFFF when the mask keeps the low
// 12 bits (Bits Stored >= 12, s <= 20).
enum HuMode { HU_ANY, HU_UNSIGNED, HU_RSNA, HU_SIGNED16 };

__device__ __forceinline__ int hu_mode_of(const IchImage& im) {
    if (im.shift_left != im.shift_right) return HU_ANY;
    if (!im.is_signed) return !im.rsna_fix ? HU_UNSIGNED : im.shift_right <= 20 ? HU_RSNA : HU_ANY;
    return !im.rsna_fix && im.shift_right == 16 ? HU_SIGNED16 : HU_ANY;
}

template <int MODE>
__device__ __forceinline__ float hu_mode(const IchImage& im, uint32_t raw) {
    static_assert(MODE != HU_ANY, "other images take hu_of, in preprocess_linear's rows loop");
    int32_t v;
    if (MODE == HU_UNSIGNED) v = static_cast<int32_t>(raw & (0xFFFFFFFFu >> im.shift_right));
    if (MODE == HU_RSNA) v = static_cast<int32_t>((raw + 1000) & 0xFFF);
    if (MODE == HU_SIGNED16) v = static_cast<int16_t>(raw);
    return __fadd_rn(__fmul_rn(static_cast<float>(v), im.slope), im.intercept);
}

// Three channels, all ICH_ROWS rows of the thread inside the image: straight-line code. All ICH_ROWS x 4 source
// words are independent loads written before any arithmetic (nvcc may interleave them with it to stay within 32
// registers), and the windows' fields are immediate operands instead of indexed parameter loads.
template <int MODE, int NORM, typename T, bool NHWC>
__device__ __forceinline__ void linear_rows3(const IchBatch& b, const IchImage& im, T* img, uint4* warp_tile,
                                             const IchAxis& col, const IchAxis* rows, int ox, int oy_first, long long plane) {
    uint32_t raw[ICH_ROWS][4];
#pragma unroll
    for (int r = 0; r < ICH_ROWS; r++) {
        const IchAxis y = rows[threadIdx.y + r * ICH_BLOCK_Y];
        raw[r][0] = __ldg(im.pixels + y.i0 + col.i0);
        raw[r][1] = __ldg(im.pixels + y.i0 + col.i1);
        raw[r][2] = __ldg(im.pixels + y.i1 + col.i0);
        raw[r][3] = __ldg(im.pixels + y.i1 + col.i1);
    }
#pragma unroll
    for (int r = 0; r < ICH_ROWS; r++) {
        const float fy = rows[threadIdx.y + r * ICH_BLOCK_Y].f;
        const long long pixel = static_cast<long long>(oy_first + r * ICH_BLOCK_Y) * b.out_w + ox;
        const float h00 = hu_mode<MODE>(im, raw[r][0]), h01 = hu_mode<MODE>(im, raw[r][1]);
        const float h10 = hu_mode<MODE>(im, raw[r][2]), h11 = hu_mode<MODE>(im, raw[r][3]);
        if (NHWC) {
            store_nhwc3<T, NORM>(b, img, warp_tile, pixel, h00, h01, h10, h11, col.f, fy);
        } else {
            write_samples<true, 3, T, NHWC, NORM>(b, img, pixel, plane, h00, h01, h10, h11, col.f, fy);
        }
    }
}

template <int MODE, typename T, bool NHWC>
__device__ __forceinline__ void linear_rows3_norm(const IchBatch& b, const IchImage& im, T* img, uint4* warp_tile,
                                                  const IchAxis& col, const IchAxis* rows, int ox, int oy_first, long long plane) {
    if (b.normalize) linear_rows3<MODE, NORM_ON, T, NHWC>(b, im, img, warp_tile, col, rows, ox, oy_first, plane);
    else linear_rows3<MODE, NORM_OFF, T, NHWC>(b, im, img, warp_tile, col, rows, ox, oy_first, plane);
}

// Launch: block (ICH_BLOCK_X, ICH_BLOCK_Y) (the host's Kernels.BLOCK_X, BLOCK_Y; other shapes trap), grid
// (ceil(out_w / 32), ceil(out_h / 32), batch size); thread (x, y) does column x of rows y, y + 8, y + 16, y + 24 of
// the block's 32. The block's 32 column and 32 row coordinates are computed once, by its first two warps, into
// shared memory: each of them was computed by 32 or 8 threads before (every lane of a warp shares its row).
template <typename T, bool NHWC>
__device__ __forceinline__ void preprocess_linear(const IchImage* __restrict__ images, const IchBatch& b,
                                                  T* __restrict__ out) {
    if (blockDim.x != ICH_BLOCK_X || blockDim.y != ICH_BLOCK_Y) __trap();
    __shared__ IchAxis axis_x[ICH_BLOCK_X];
    __shared__ IchAxis axis_y[ICH_BLOCK_X];  // ICH_BLOCK_Y * ICH_ROWS == ICH_BLOCK_X rows
    __shared__ uint4 tile[ICH_BLOCK_Y][ICH_BLOCK_X * 3 * sizeof(float) / 16];  // NHWC: store_nhwc3's, one per warp
    const int ox = blockIdx.x * ICH_BLOCK_X + threadIdx.x;
    const int oy_block = blockIdx.y * ICH_BLOCK_Y * ICH_ROWS;
    const int oy_first = oy_block + threadIdx.y;
    const IchImage im = images[blockIdx.z];
    const int c = b.channels;
    const long long plane = static_cast<long long>(b.out_h) * b.out_w;
    T* img = out + static_cast<long long>(blockIdx.z) * c * plane;
    if (im.bits_allocated != 16) {  // the same for the whole block: no thread waits at the barrier below
        if (ox >= b.out_w) return;
        for (int r = 0; r < ICH_ROWS; r++) {
            const int oy = oy_first + r * ICH_BLOCK_Y;
            if (oy >= b.out_h) break;
            const long long pixel = static_cast<long long>(oy) * b.out_w + ox;
            for (int k = 0; k < c; k++) img[NHWC ? pixel * c + k : k * plane + pixel] = convert<T>(__int_as_float(0x7fc00000));
        }
        return;
    }
    if (threadIdx.y == 0 && ox < b.out_w) {
        IchAxis a;
        // A flipped image writes output column ox from the sample computed for column out_w - 1 - ox.
        source(im.box_x, im.step_x, im.flip ? b.out_w - 1 - ox : ox, im.columns, a.i0, a.i1, a.f);
        axis_x[threadIdx.x] = a;
    } else if (threadIdx.y == 1 && oy_block + static_cast<int>(threadIdx.x) < b.out_h) {
        IchAxis a;
        source(im.box_y, im.step_y, oy_block + threadIdx.x, im.rows, a.i0, a.i1, a.f);
        a.i0 *= im.columns;
        a.i1 *= im.columns;
        axis_y[threadIdx.x] = a;
    }
    __syncthreads();
    if (ox >= b.out_w) return;
    const IchAxis col = axis_x[threadIdx.x];
    if (c == 3 && oy_first + (ICH_ROWS - 1) * ICH_BLOCK_Y < b.out_h) {
        // Other images (High Bit not Bits Stored - 1, the fix with fewer than 12 bits) take the loop below.
        switch (hu_mode_of(im)) {
            case HU_UNSIGNED: linear_rows3_norm<HU_UNSIGNED, T, NHWC>(b, im, img, tile[threadIdx.y], col, axis_y, ox, oy_first, plane); return;
            case HU_RSNA: linear_rows3_norm<HU_RSNA, T, NHWC>(b, im, img, tile[threadIdx.y], col, axis_y, ox, oy_first, plane); return;
            case HU_SIGNED16: linear_rows3_norm<HU_SIGNED16, T, NHWC>(b, im, img, tile[threadIdx.y], col, axis_y, ox, oy_first, plane); return;
            default: break;
        }
    }
    for (int r = 0; r < ICH_ROWS; r++) {
        const int oy = oy_first + r * ICH_BLOCK_Y;
        if (oy >= b.out_h) break;
        const IchAxis y = axis_y[threadIdx.y + r * ICH_BLOCK_Y];
        const float h00 = hu(im, y.i0 + col.i0), h01 = hu(im, y.i0 + col.i1);
        const float h10 = hu(im, y.i1 + col.i0), h11 = hu(im, y.i1 + col.i1);
        write_samples<true, 0, T, NHWC>(b, img, static_cast<long long>(oy) * b.out_w + ox, plane, h00, h01, h10, h11, col.f, y.f);
    }
}

}  // namespace

// Entry points, looked up by name through the driver API (cuModuleGetFunction): ich_preprocess_<dtype>_<layout>
// (any windows) and ich_preprocess_<dtype>_<layout>_linear (see preprocess_linear; grid y covers ICH_ROWS rows per
// thread). Arguments: device array of batch-size IchImage, the IchBatch by value, the output buffer (device memory).
// BLOCKS: blocks per SM the registers must allow. The general kernels and the NCHW linear ones fit 8 (all 64
// warps, 32 registers, no spills; without the bound nvcc gives the linear ones 40 and the general ones 32 or, with a
// bound of 1, 40), which latency needs: each thread waits for its loads. The NHWC linear ones need 48 registers for
// the tile store (5 blocks); asked for 6 they spill.
#define ICH_ENTRY(NAME, T, NHWC, BODY, BLOCKS)                                                     \
    extern "C" __global__ void __launch_bounds__(256, BLOCKS)                                      \
    NAME(const IchImage* __restrict__ images, const IchBatch batch, T* __restrict__ out) {         \
        BODY<T, NHWC>(images, batch, out);                                                         \
    }

ICH_ENTRY(ich_preprocess_f32_nchw, float, false, preprocess, 8)
ICH_ENTRY(ich_preprocess_f32_nhwc, float, true, preprocess, 8)
ICH_ENTRY(ich_preprocess_f16_nchw, __half, false, preprocess, 8)
ICH_ENTRY(ich_preprocess_f16_nhwc, __half, true, preprocess, 8)
ICH_ENTRY(ich_preprocess_bf16_nchw, __nv_bfloat16, false, preprocess, 8)
ICH_ENTRY(ich_preprocess_bf16_nhwc, __nv_bfloat16, true, preprocess, 8)
ICH_ENTRY(ich_preprocess_f32_nchw_linear, float, false, preprocess_linear, 8)
ICH_ENTRY(ich_preprocess_f32_nhwc_linear, float, true, preprocess_linear, 5)
ICH_ENTRY(ich_preprocess_f16_nchw_linear, __half, false, preprocess_linear, 8)
ICH_ENTRY(ich_preprocess_f16_nhwc_linear, __half, true, preprocess_linear, 5)
ICH_ENTRY(ich_preprocess_bf16_nchw_linear, __nv_bfloat16, false, preprocess_linear, 8)
ICH_ENTRY(ich_preprocess_bf16_nhwc_linear, __nv_bfloat16, true, preprocess_linear, 5)
