// upfirdn2d (zero-insert upsample, pad/crop, 2-D FIR filter, downsample): the parameter block shared by
// the host binding (upfirdn2d.cpp) and the kernel (upfirdn2d.cu).
//
// This header is included by both the host compiler and nvcc, so it holds plain C++ only.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace sga {

// One output element, per (n, c):
//   y[oy, ox] = scale * sum_{iy, ix} f'[ky, kx] * x[iy, ix]
// where, along x (y likewise), ix runs over the input pixels whose zero-inserted position
// ix * up_x + pad_x0 lands inside the filter window that starts at ox * down_x in the padded image:
//   t = ix * up_x - (ox * down_x - pad_x0), 0 <= t < filter_w, kx = flip ? t : filter_w - 1 - t.
// (flip = false is true convolution, flip = true is correlation.) The end padding pad_x1 only shows
// up in out_w, which the host computes. Negative padding crops.
struct Upfirdn2dParams {
    const void* x;  // [N, C, in_h, in_w] with arbitrary strides (in elements)
    const void* f;  // [filter_h, filter_w], contiguous, float (double for double x)
    void* y;        // [N, C, out_h, out_w] with arbitrary non-overlapping strides

    int64_t x_stride_n, x_stride_c, x_stride_h, x_stride_w;
    int64_t y_stride_n, y_stride_c, y_stride_h, y_stride_w;

    int n, c;
    int in_h, in_w;
    int out_h, out_w;
    int up_x, up_y;
    int down_x, down_y;
    int pad_x0, pad_y0;
    int filter_h, filter_w;
    int flip;            // 0: convolution, 1: correlation
    int channels_inner;  // 1: consecutive threads walk channels (channels_last output), 0: walk x
    double scale;        // gain * up_x * up_y (the op's convention), applied to every output
    int64_t size_y;      // n * c * out_h * out_w
};

// Launches the kernel on `stream`; T is float, double, c10::Half or c10::BFloat16 (explicit
// instantiations live in upfirdn2d.cu). Returns the launch status.
template <typename T>
cudaError_t launch_upfirdn2d(const Upfirdn2dParams& p, cudaStream_t stream);

}  // namespace sga
