// Host binding of the CPU upfirdn2d: validates the inputs (the same contract as the CUDA binding,
// upfirdn2d.cpp), allocates the output (channels_last when x is), picks the AVX-512 or the baseline build of
// the loops at run time and splits the N * C planes across at::parallel_for's threads. The loops live in
// upfirdn2d_cpu_kernels.h; the autograd wiring is upfirdn2d.py's (the same Function as the CUDA path).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "ops_cpu_common.h"
#include "upfirdn2d_cpu.h"

namespace sga_cpu {

namespace isa_base {
#include "upfirdn2d_cpu_kernels.h"
}  // namespace isa_base

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SGA_HAVE_AVX512_BUILD 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")
namespace isa_avx512 {
#include "upfirdn2d_cpu_kernels.h"
}  // namespace isa_avx512
#pragma GCC pop_options
#endif

template <typename T>
void upfirdn2d_cpu_planes(const Upfirdn2dCpuParams& p, int64_t begin, int64_t end) {
#ifdef SGA_HAVE_AVX512_BUILD
    // float32 and bfloat16 (training's dtypes) get the AVX-512 build; float64 / float16 keep the baseline
    // one (tests, gradchecks), which halves the compile time.
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>) {
        if (has_avx512()) return isa_avx512::planes<T>(p, begin, end);
    }
#endif
    isa_base::planes<T>(p, begin, end);
}

template <typename T>
void upfirdn2d_cpu_rows_nhwc(const Upfirdn2dCpuParams& p, int64_t begin, int64_t end) {
#ifdef SGA_HAVE_AVX512_BUILD
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>) {
        if (has_avx512()) return isa_avx512::rows_nhwc<T>(p, begin, end);
    }
#endif
    isa_base::rows_nhwc<T>(p, begin, end);
}

}  // namespace sga_cpu

namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

bool supported_dtype(at::ScalarType t) {
    return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip,
                     double scale, bool poison) {
    TORCH_CHECK(x.device().is_cpu(), "upfirdn2d (CPU plugin): x must be a CPU tensor; got a tensor on ", x.device());
    TORCH_CHECK(supported_dtype(x.scalar_type()),
                "upfirdn2d: x must be float32, float64, float16 or bfloat16; got ", x.scalar_type());
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W]; got shape ", x.sizes());
    TORCH_CHECK(x.numel() <= kMaxInt32, "upfirdn2d: x has ", x.numel(), " elements; at most 2^31-1 are supported");
    const at::ScalarType f_dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f is on ", f.device(), " but x is on ", x.device());
    TORCH_CHECK(f.scalar_type() == f_dtype, "upfirdn2d: f must be ", f_dtype, " for x of dtype ", x.scalar_type(),
                "; got ", f.scalar_type());
    TORCH_CHECK(f.dim() == 2 && f.numel() > 0, "upfirdn2d: f must be a non-empty [fh, fw] tensor; got shape ",
                f.sizes());
    TORCH_CHECK(f.is_contiguous(), "upfirdn2d: f must be contiguous");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1,
                "upfirdn2d: up and down factors must be >= 1; got up=(", up_x, ", ", up_y, "), down=(", down_x,
                ", ", down_y, ")");
    const int64_t n = x.size(0), c = x.size(1), in_h = x.size(2), in_w = x.size(3);
    const int64_t fh = f.size(0), fw = f.size(1);
    const int64_t padded_w = in_w * up_x + pad_x0 + pad_x1;
    const int64_t padded_h = in_h * up_y + pad_y0 + pad_y1;
    const int64_t reach_w = in_w * up_x + std::abs(pad_x0) + std::abs(pad_x1) + fw + down_x + up_x;
    const int64_t reach_h = in_h * up_y + std::abs(pad_y0) + std::abs(pad_y1) + fh + down_y + up_y;
    TORCH_CHECK(reach_w <= kMaxInt32 / 4 && reach_h <= kMaxInt32 / 4,
                "upfirdn2d: the upsampled, padded image is too large for 32-bit indexing");
    TORCH_CHECK(padded_w >= fw && padded_h >= fh, "upfirdn2d: empty output: input ", in_h, "x", in_w,
                " upsampled by (", up_x, ", ", up_y, ") and padded by (", pad_x0, ", ", pad_x1, ", ", pad_y0, ", ",
                pad_y1, ") is ", padded_h, "x", padded_w, ", smaller than the ", fh, "x", fw, " filter");
    const int64_t out_w = (padded_w - fw) / down_x + 1;
    const int64_t out_h = (padded_h - fh) / down_y + 1;
    TORCH_CHECK(n * c * out_h * out_w <= kMaxInt32, "upfirdn2d: the output has ", n * c * out_h * out_w,
                " elements; at most 2^31-1 are supported");

    const bool channels_last = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor y = at::empty({n, c, out_h, out_w}, x.options().memory_format(
                                                       channels_last ? at::MemoryFormat::ChannelsLast
                                                                     : at::MemoryFormat::Contiguous));
    if (poison) y.fill_(std::numeric_limits<double>::quiet_NaN());
    if (y.numel() == 0) return y;
    if (x.numel() == 0) return y.zero_();  // H or W is 0: the output is all padding

    sga_cpu::Upfirdn2dCpuParams p{};
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
    p.scale = scale;

    // channels_last with 8 or more channels: NHWC rows, vectorised along the channels (the plane loops would
    // read and write with a stride of C). Fewer channels (RGB images) keep the plane loops.
    const bool nhwc = channels_last && c >= 8 && x.stride(1) == 1 && x.stride(3) == c && x.stride(2) == c * in_w &&
                      y.stride(1) == 1 && y.stride(3) == c && y.stride(2) == c * out_w;
    if (nhwc) {
        // Rows per task: at least about 8 Ki outputs each.
        const int64_t row_grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, out_w * c));
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cpu_nhwc", [&] {
            at::parallel_for(0, n * out_h, row_grain, [&](int64_t begin, int64_t end) {
                sga_cpu::upfirdn2d_cpu_rows_nhwc<scalar_t>(p, begin, end);
            });
        });
        return y;
    }

    // Planes per task: at least about 8 Ki outputs each (two 64 x 64 planes, 32 planes of 16 x 16).
    const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, out_h * out_w));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cpu", [&] {
        at::parallel_for(0, n * c, grain, [&](int64_t begin, int64_t end) {
            sga_cpu::upfirdn2d_cpu_planes<scalar_t>(p, begin, end);
        });
    });
    return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan-anime upfirdn2d (CPU: polyphase vectorised loops, at::parallel_for over planes)";
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR-filter and downsample [N, C, H, W] (see upfirdn2d_cpu.h)",
          pybind11::arg("x"), pybind11::arg("f"), pybind11::arg("up_x"), pybind11::arg("up_y"),
          pybind11::arg("down_x"), pybind11::arg("down_y"), pybind11::arg("pad_x0"), pybind11::arg("pad_x1"),
          pybind11::arg("pad_y0"), pybind11::arg("pad_y1"), pybind11::arg("flip"), pybind11::arg("scale"),
          pybind11::arg("poison") = false);
    m.def("isa", [] { return sga_cpu::has_avx512() ? std::string("avx512") : std::string("baseline"); },
          "the instruction set the kernels run with on this CPU");
}
