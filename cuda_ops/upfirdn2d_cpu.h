// upfirdn2d (zero-insert upsample, pad/crop, 2-D FIR filter, downsample) on the CPU: the parameter block
// shared by the host binding (upfirdn2d_cpu.cpp) and the loops (upfirdn2d_cpu_kernels.h). Same meaning as
// Upfirdn2dParams in upfirdn2d.h (the CUDA kernel's), so upfirdn2d.py's autograd Function drives either:
//   y[oy, ox] = scale * sum f'[ky, kx] * x[iy, ix],  t = ix * up_x - (ox * down_x - pad_x0) in [0, filter_w),
//   kx = flip ? t : filter_w - 1 - t   (likewise along y).
#pragma once

#include <cstdint>

namespace sga_cpu {

struct Upfirdn2dCpuParams {
    const void* x;  // [N, C, in_h, in_w], any strides (elements)
    const void* f;  // [filter_h, filter_w], contiguous; float32 (float64 for float64 x)
    void* y;        // [N, C, out_h, out_w], any non-overlapping strides

    int64_t x_stride_n, x_stride_c, x_stride_h, x_stride_w;
    int64_t y_stride_n, y_stride_c, y_stride_h, y_stride_w;

    int n, c;
    int in_h, in_w;
    int out_h, out_w;
    int up_x, up_y;
    int down_x, down_y;
    int pad_x0, pad_y0;
    int filter_h, filter_w;
    int flip;      // 0: convolution, 1: correlation
    double scale;  // gain * up_x * up_y
};

// Computes the planes [begin, end) of the n * c (n-major) planes; the caller splits them across threads.
template <typename T>
void upfirdn2d_cpu_planes(const Upfirdn2dCpuParams& p, int64_t begin, int64_t end);

// channels_last x and y (NHWC-dense): computes the output rows [begin, end) of the n * out_h (n-major) rows,
// vectorised along the channels.
template <typename T>
void upfirdn2d_cpu_rows_nhwc(const Upfirdn2dCpuParams& p, int64_t begin, int64_t end);

}  // namespace sga_cpu
