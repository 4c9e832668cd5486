// upfirdn2d: zero-insert upsample, pad/crop, 2-D FIR filter and downsample in one pass.
//
// One thread per output element gathers exactly the input pixels that the zero insertion leaves
// non-zero under its filter window, so no work is spent on inserted zeros or padding. A separable filter
// is run as two passes of this kernel (a [1, fw] row pass and a [fh, 1] column pass) from Python.
//
// Only CUDA headers, c10's Half/BFloat16 and our own header are included here, so this file compiles on
// its own with `nvcc -c` (no ATen, no torch/extension.h). The host binding is upfirdn2d.cpp.
#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "upfirdn2d.h"

namespace sga {
namespace {

template <typename T>
struct AccType {
    using type = float;
};
template <>
struct AccType<double> {
    using type = double;
};

// Integer division rounding down / up, for a possibly negative numerator and a positive divisor.
__device__ __forceinline__ int floor_div(int a, int b) {
    const int q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
__device__ __forceinline__ int ceil_div(int a, int b) {
    const int q = a / b;
    return (a % b != 0 && a > 0) ? q + 1 : q;
}

template <typename T>
__global__ void upfirdn2d_kernel(Upfirdn2dParams p) {
    using A = typename AccType<T>::type;
    const T* __restrict__ x = static_cast<const T*>(p.x);
    const A* __restrict__ f = static_cast<const A*>(p.f);
    T* __restrict__ y = static_cast<T*>(p.y);
    const A scale = static_cast<A>(p.scale);
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;

    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.size_y; i += stride) {
        // The host guarantees size_y < 2^31: decompose the index in 32 bits.
        uint32_t r = static_cast<uint32_t>(i);
        int n, c, oy, ox;
        if (p.channels_inner) {  // [N, H, W, C] order: coalesced for channels_last tensors
            c = static_cast<int>(r % static_cast<uint32_t>(p.c));
            r /= static_cast<uint32_t>(p.c);
            ox = static_cast<int>(r % static_cast<uint32_t>(p.out_w));
            r /= static_cast<uint32_t>(p.out_w);
            oy = static_cast<int>(r % static_cast<uint32_t>(p.out_h));
            n = static_cast<int>(r / static_cast<uint32_t>(p.out_h));
        } else {  // [N, C, H, W] order
            ox = static_cast<int>(r % static_cast<uint32_t>(p.out_w));
            r /= static_cast<uint32_t>(p.out_w);
            oy = static_cast<int>(r % static_cast<uint32_t>(p.out_h));
            r /= static_cast<uint32_t>(p.out_h);
            c = static_cast<int>(r % static_cast<uint32_t>(p.c));
            n = static_cast<int>(r / static_cast<uint32_t>(p.c));
        }

        // Window start in zero-inserted (unpadded) coordinates, and the input pixels inside the window.
        const int bx = ox * p.down_x - p.pad_x0;
        const int by = oy * p.down_y - p.pad_y0;
        const int ix0 = max(ceil_div(bx, p.up_x), 0);
        const int ix1 = min(floor_div(bx + p.filter_w - 1, p.up_x), p.in_w - 1);
        const int iy0 = max(ceil_div(by, p.up_y), 0);
        const int iy1 = min(floor_div(by + p.filter_h - 1, p.up_y), p.in_h - 1);

        const T* xp = x + static_cast<int64_t>(n) * p.x_stride_n + static_cast<int64_t>(c) * p.x_stride_c;
        A acc = A(0);
        for (int iy = iy0; iy <= iy1; ++iy) {
            const int ty = iy * p.up_y - by;  // 0 <= ty < filter_h
            const int ky = p.flip ? ty : p.filter_h - 1 - ty;
            const A* frow = f + static_cast<int64_t>(ky) * p.filter_w;
            const T* xrow = xp + static_cast<int64_t>(iy) * p.x_stride_h;
            for (int ix = ix0; ix <= ix1; ++ix) {
                const int tx = ix * p.up_x - bx;  // 0 <= tx < filter_w
                const int kx = p.flip ? tx : p.filter_w - 1 - tx;
                acc += frow[kx] * static_cast<A>(xrow[static_cast<int64_t>(ix) * p.x_stride_w]);
            }
        }
        y[static_cast<int64_t>(n) * p.y_stride_n + static_cast<int64_t>(c) * p.y_stride_c +
          static_cast<int64_t>(oy) * p.y_stride_h + static_cast<int64_t>(ox) * p.y_stride_w] =
            static_cast<T>(acc * scale);
    }
}

}  // namespace

template <typename T>
cudaError_t launch_upfirdn2d(const Upfirdn2dParams& p, cudaStream_t stream) {
    if (p.size_y <= 0) return cudaSuccess;
    constexpr int kBlock = 256;
    constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // the grid-stride loop covers the rest
    int64_t blocks = (p.size_y + kBlock - 1) / kBlock;
    if (blocks > kMaxBlocks) blocks = kMaxBlocks;
    upfirdn2d_kernel<T><<<static_cast<unsigned int>(blocks), kBlock, 0, stream>>>(p);
    return cudaGetLastError();
}

template cudaError_t launch_upfirdn2d<float>(const Upfirdn2dParams&, cudaStream_t);
template cudaError_t launch_upfirdn2d<double>(const Upfirdn2dParams&, cudaStream_t);
template cudaError_t launch_upfirdn2d<c10::Half>(const Upfirdn2dParams&, cudaStream_t);
template cudaError_t launch_upfirdn2d<c10::BFloat16>(const Upfirdn2dParams&, cudaStream_t);

}  // namespace sga
