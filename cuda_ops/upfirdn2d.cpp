// Host binding of the upfirdn2d kernel: validates the inputs, allocates the output and dispatches on dtype.
// The math lives in upfirdn2d.cu; the autograd wiring (gradient = upfirdn2d with the flipped filter and
// swapped up/down) and the separable two-pass path in upfirdn2d.py.
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <cstdlib>
#include <limits>

#include "upfirdn2d.h"

namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

bool supported_dtype(at::ScalarType t) {
    return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip,
                     double scale, bool poison) {
    // x.
    TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor; got a tensor on ", x.device());
    TORCH_CHECK(supported_dtype(x.scalar_type()),
                "upfirdn2d: x must be float32, float64, float16 or bfloat16; got ", x.scalar_type());
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W]; got shape ", x.sizes());
    TORCH_CHECK(x.numel() <= kMaxInt32, "upfirdn2d: x has ", x.numel(), " elements; at most 2^31-1 are supported");

    // f.
    const at::ScalarType f_dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f is on ", f.device(), " but x is on ", x.device());
    TORCH_CHECK(f.scalar_type() == f_dtype, "upfirdn2d: f must be ", f_dtype, " for x of dtype ", x.scalar_type(),
                "; got ", f.scalar_type());
    TORCH_CHECK(f.dim() == 2 && f.numel() > 0, "upfirdn2d: f must be a non-empty [fh, fw] tensor; got shape ",
                f.sizes());
    TORCH_CHECK(f.is_contiguous(), "upfirdn2d: f must be contiguous");

    // Factors and sizes. Everything the kernel computes in 32-bit integers must fit.
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1,
                "upfirdn2d: up and down factors must be >= 1; got up=(", up_x, ", ", up_y, "), down=(", down_x,
                ", ", down_y, ")");
    // x may have any strides (views, expanded gradients): the kernel reads it with 64-bit offsets.
    const int64_t n = x.size(0), c = x.size(1), in_h = x.size(2), in_w = x.size(3);
    const int64_t fh = f.size(0), fw = f.size(1);
    const int64_t padded_w = in_w * up_x + pad_x0 + pad_x1;
    const int64_t padded_h = in_h * up_y + pad_y0 + pad_y1;
    const int64_t reach_w = in_w * up_x + std::abs(pad_x0) + std::abs(pad_x1) + fw + down_x + up_x;
    const int64_t reach_h = in_h * up_y + std::abs(pad_y0) + std::abs(pad_y1) + fh + down_y + up_y;
    TORCH_CHECK(reach_w <= kMaxInt32 && reach_h <= kMaxInt32 && fw <= kMaxInt32 && fh <= kMaxInt32,
                "upfirdn2d: the upsampled, padded image is too large for 32-bit indexing");
    TORCH_CHECK(padded_w >= fw && padded_h >= fh, "upfirdn2d: empty output: input ", in_h, "x", in_w,
                " upsampled by (", up_x, ", ", up_y, ") and padded by (", pad_x0, ", ", pad_x1, ", ", pad_y0, ", ",
                pad_y1, ") is ", padded_h, "x", padded_w, ", smaller than the ", fh, "x", fw, " filter");
    const int64_t out_w = (padded_w - fw) / down_x + 1;
    const int64_t out_h = (padded_h - fh) / down_y + 1;
    TORCH_CHECK(n * c * out_h * out_w <= kMaxInt32, "upfirdn2d: the output has ", n * c * out_h * out_w,
                " elements; at most 2^31-1 are supported");

    // Output layout follows x: channels_last in, channels_last out (then threads walk channels).
    const bool channels_last = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
    const c10::cuda::OptionalCUDAGuard device_guard(x.device());
    at::Tensor y = at::empty({n, c, out_h, out_w},
                             x.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                                                     : at::MemoryFormat::Contiguous));
    if (poison) y.fill_(std::numeric_limits<double>::quiet_NaN());  // debug: unwritten outputs show up as NaN
    if (y.numel() == 0) return y;
    if (x.numel() == 0) return y.zero_();  // H or W is 0: the output is all padding

    sga::Upfirdn2dParams p{};
    p.x = x.data_ptr();
    p.f = f.data_ptr();
    p.y = y.data_ptr();
    p.x_stride_n = x.stride(0);
    p.x_stride_c = x.stride(1);
    p.x_stride_h = x.stride(2);
    p.x_stride_w = x.stride(3);
    p.y_stride_n = y.stride(0);
    p.y_stride_c = y.stride(1);
    p.y_stride_h = y.stride(2);
    p.y_stride_w = y.stride(3);
    p.n = static_cast<int>(n);
    p.c = static_cast<int>(c);
    p.in_h = static_cast<int>(in_h);
    p.in_w = static_cast<int>(in_w);
    p.out_h = static_cast<int>(out_h);
    p.out_w = static_cast<int>(out_w);
    p.up_x = static_cast<int>(up_x);
    p.up_y = static_cast<int>(up_y);
    p.down_x = static_cast<int>(down_x);
    p.down_y = static_cast<int>(down_y);
    p.pad_x0 = static_cast<int>(pad_x0);
    p.pad_y0 = static_cast<int>(pad_y0);
    p.filter_h = static_cast<int>(fh);
    p.filter_w = static_cast<int>(fw);
    p.flip = flip ? 1 : 0;
    p.channels_inner = channels_last ? 1 : 0;
    p.scale = scale;
    p.size_y = y.numel();

    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
    cudaError_t err = cudaSuccess;
    switch (x.scalar_type()) {
        case at::kFloat:
            err = sga::launch_upfirdn2d<float>(p, stream);
            break;
        case at::kDouble:
            err = sga::launch_upfirdn2d<double>(p, stream);
            break;
        case at::kHalf:
            err = sga::launch_upfirdn2d<c10::Half>(p, stream);
            break;
        case at::kBFloat16:
            err = sga::launch_upfirdn2d<c10::BFloat16>(p, stream);
            break;
        default:
            TORCH_CHECK(false, "upfirdn2d: unsupported dtype ", x.scalar_type());
    }
    TORCH_CHECK(err == cudaSuccess, "upfirdn2d: CUDA kernel launch failed: ", cudaGetErrorString(err));
    return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan-anime upfirdn2d: upsample, pad, FIR filter, downsample (CUDA)";
    m.def("upfirdn2d", &upfirdn2d, "y = scale * FIR(pad(zero_insert(x, up)), f)[::down] per channel",
          pybind11::arg("x"), pybind11::arg("f"), pybind11::arg("up_x"), pybind11::arg("up_y"),
          pybind11::arg("down_x"), pybind11::arg("down_y"), pybind11::arg("pad_x0"), pybind11::arg("pad_x1"),
          pybind11::arg("pad_y0"), pybind11::arg("pad_y1"), pybind11::arg("flip"), pybind11::arg("scale"),
          pybind11::arg("poison") = false);
}
