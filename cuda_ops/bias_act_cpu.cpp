// Host binding of the fused CPU bias_act: validates the inputs (the same contract as the CUDA binding,
// bias_act.cpp), allocates the output, picks the AVX-512 or the baseline build of the loops at run time and
// splits the elements across at::parallel_for's threads. The loops live in bias_act_cpu_kernels.h; the
// autograd wiring is bias_act.py's (the same Functions as the CUDA path).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "bias_act_cpu.h"
#include "ops_cpu_common.h"

namespace sga_cpu {

namespace isa_base {
#include "bias_act_cpu_kernels.h"
}  // namespace isa_base

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SGA_HAVE_AVX512_BUILD 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")
namespace isa_avx512 {
#include "bias_act_cpu_kernels.h"
}  // namespace isa_avx512
#pragma GCC pop_options
#endif

template <typename T>
void bias_act_cpu_range(const BiasActCpuParams& p, int64_t begin, int64_t end) {
#ifdef SGA_HAVE_AVX512_BUILD
    // float32 and bfloat16 (training's dtypes) get the AVX-512 build; float64 / float16 keep the baseline
    // one (tests, gradchecks), which halves the compile time.
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>) {
        if (has_avx512()) return isa_avx512::range<T>(p, begin, end);
    }
#endif
    isa_base::range<T>(p, begin, end);
}

}  // namespace sga_cpu

namespace {

bool supported_dtype(at::ScalarType t) {
    return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

void check_like_x(const at::Tensor& t, const at::Tensor& x, const char* name) {
    TORCH_CHECK(t.device() == x.device(), "bias_act: ", name, " is on ", t.device(), " but x is on ", x.device());
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), "bias_act: ", name, " has dtype ", t.scalar_type(),
                " but x has dtype ", x.scalar_type());
    TORCH_CHECK(t.sizes() == x.sizes(), "bias_act: ", name, " has shape ", t.sizes(), " but x has shape ",
                x.sizes());
    TORCH_CHECK(t.strides() == x.strides(), "bias_act: ", name, " has strides ", t.strides(),
                " but x has strides ", x.strides(), "; give it x's memory layout first");
}

at::Tensor bias_act(const at::Tensor& x, const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& xref,
                    const std::optional<at::Tensor>& yref, const std::optional<at::Tensor>& dy, int64_t mode,
                    int64_t dim, int64_t act, double alpha, double gain, double clamp, bool poison) {
    TORCH_CHECK(x.device().is_cpu(), "bias_act (CPU plugin): x must be a CPU tensor; got a tensor on ", x.device());
    TORCH_CHECK(supported_dtype(x.scalar_type()),
                "bias_act: x must be float32, float64, float16 or bfloat16; got ", x.scalar_type());
    TORCH_CHECK(x.dim() >= 1, "bias_act: x must have at least one dimension");
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim=", dim, " is out of range for x of shape ", x.sizes());
    TORCH_CHECK(x.is_non_overlapping_and_dense(),
                "bias_act: x must be memory-dense (contiguous, channels_last or another permutation of a "
                "contiguous tensor); got shape ", x.sizes(), " with strides ", x.strides(),
                "; call .contiguous() first");
    TORCH_CHECK(mode >= sga_cpu::kForward && mode <= sga_cpu::kGrad2, "bias_act: mode must be 0, 1 or 2; got ", mode);
    TORCH_CHECK(act >= 0 && act < sga_cpu::kNumActs, "bias_act: unknown activation id ", act);

    const bool has_b = b.has_value() && b->defined();
    if (has_b) {
        TORCH_CHECK(b->device() == x.device(), "bias_act: b is on ", b->device(), " but x is on ", x.device());
        TORCH_CHECK(b->scalar_type() == x.scalar_type(), "bias_act: b has dtype ", b->scalar_type(),
                    " but x has dtype ", x.scalar_type(), "; cast it first");
        TORCH_CHECK(b->dim() == 1, "bias_act: b must be 1-D; got shape ", b->sizes());
        TORCH_CHECK(b->size(0) == x.size(dim), "bias_act: b has ", b->size(0), " elements but x.shape[", dim,
                    "] = ", x.size(dim));
        TORCH_CHECK(b->is_contiguous(), "bias_act: b must be contiguous");
    }
    const bool has_xref = xref.has_value() && xref->defined();
    const bool has_yref = yref.has_value() && yref->defined();
    const bool has_dy = dy.has_value() && dy->defined();
    if (has_xref) check_like_x(*xref, x, "xref");
    if (has_yref) check_like_x(*yref, x, "yref");
    if (has_dy) check_like_x(*dy, x, "dy");
    if (mode == sga_cpu::kForward) {
        TORCH_CHECK(!has_xref && !has_yref && !has_dy, "bias_act: the forward mode takes no xref, yref or dy");
    } else {
        const bool needs_x = act == sga_cpu::kElu || act == sga_cpu::kSelu || act == sga_cpu::kSoftplus ||
                             act == sga_cpu::kSwish || (act == sga_cpu::kLrelu && alpha < 0);
        TORCH_CHECK(!needs_x || has_xref, "bias_act: gradient modes of activation ", act, " need xref");
        TORCH_CHECK(act == sga_cpu::kLinear || has_xref || has_yref,
                    "bias_act: gradient modes of activation ", act, " need xref or yref");
        TORCH_CHECK(clamp < 0 || has_xref || has_yref, "bias_act: gradient modes with clamp need xref or yref");
        TORCH_CHECK(mode != sga_cpu::kGrad2 || has_dy, "bias_act: the second-order mode needs dy");
    }

    at::Tensor y = at::empty_like(x);  // preserve_format: a dense x gives y the same strides
    if (poison) y.fill_(std::numeric_limits<double>::quiet_NaN());
    if (x.numel() == 0) return y;

    sga_cpu::BiasActCpuParams p{};
    p.x = x.data_ptr();
    p.b = has_b ? b->data_ptr() : nullptr;
    p.xref = has_xref ? xref->data_ptr() : nullptr;
    p.yref = has_yref ? yref->data_ptr() : nullptr;
    p.dy = has_dy ? dy->data_ptr() : nullptr;
    p.y = y.data_ptr();
    p.mode = static_cast<int>(mode);
    p.act = static_cast<int>(act);
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    p.size_x = x.numel();
    p.size_b = has_b ? x.size(dim) : 1;
    p.step_b = (has_b && x.size(dim) > 1) ? x.stride(dim) : 1;

    // Chunks of >= 16 Ki elements: the loop is memory-bound, smaller pieces only add scheduling.
    constexpr int64_t kGrain = 16384;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_act_cpu", [&] {
        at::parallel_for(0, p.size_x, kGrain, [&](int64_t begin, int64_t end) {
            sga_cpu::bias_act_cpu_range<scalar_t>(p, begin, end);
        });
    });
    return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan-anime fused bias + activation + gain + clamp (CPU: vectorised loops, at::parallel_for)";
    m.def("bias_act", &bias_act,
          "mode 0: y = clamp(gain * act(x + b)); mode 1: first-order gradient term; mode 2: second-order term",
          pybind11::arg("x"), pybind11::arg("b"), pybind11::arg("xref"), pybind11::arg("yref"), pybind11::arg("dy"),
          pybind11::arg("mode"), pybind11::arg("dim"), pybind11::arg("act"), pybind11::arg("alpha"),
          pybind11::arg("gain"), pybind11::arg("clamp"), pybind11::arg("poison") = false);
    m.def("isa", [] { return sga_cpu::has_avx512() ? std::string("avx512") : std::string("baseline"); },
          "the instruction set the kernels run with on this CPU");
}
