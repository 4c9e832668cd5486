// Host binding of the fused bias_act kernel: validates the inputs, allocates the output and dispatches on
// dtype. The math lives in bias_act.cu; the autograd wiring in bias_act.py.
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <limits>
#include <optional>

#include "bias_act.h"

namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

bool supported_dtype(at::ScalarType t) {
    return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// A saved reference / incoming gradient must sit exactly like x in memory: the kernel walks all of them
// with one flat index.
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
    // x.
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor; got a tensor on ", x.device());
    TORCH_CHECK(supported_dtype(x.scalar_type()),
                "bias_act: x must be float32, float64, float16 or bfloat16; got ", x.scalar_type());
    TORCH_CHECK(x.dim() >= 1, "bias_act: x must have at least one dimension");
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim=", dim, " is out of range for x of shape ", x.sizes());
    TORCH_CHECK(x.is_non_overlapping_and_dense(),
                "bias_act: x must be memory-dense (contiguous, channels_last or another permutation of a "
                "contiguous tensor); got shape ",
                x.sizes(), " with strides ", x.strides(), "; call .contiguous() first");
    TORCH_CHECK(x.numel() <= kMaxInt32, "bias_act: x has ", x.numel(), " elements; at most 2^31-1 are supported");

    // Mode and activation.
    TORCH_CHECK(mode >= sga::kBiasActForward && mode <= sga::kBiasActGrad2, "bias_act: mode must be 0, 1 or 2; got ",
                mode);
    TORCH_CHECK(act >= 0 && act < sga::kNumActs, "bias_act: unknown activation id ", act);

    // Bias.
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

    // References for the gradient modes.
    const bool has_xref = xref.has_value() && xref->defined();
    const bool has_yref = yref.has_value() && yref->defined();
    const bool has_dy = dy.has_value() && dy->defined();
    if (has_xref) check_like_x(*xref, x, "xref");
    if (has_yref) check_like_x(*yref, x, "yref");
    if (has_dy) check_like_x(*dy, x, "dy");
    if (mode == sga::kBiasActForward) {
        TORCH_CHECK(!has_xref && !has_yref && !has_dy, "bias_act: the forward mode takes no xref, yref or dy");
    } else {
        // Activations whose derivative cannot be recovered from the output alone need the input.
        const bool needs_x = act == sga::kActElu || act == sga::kActSelu || act == sga::kActSoftplus ||
                             act == sga::kActSwish || (act == sga::kActLrelu && alpha < 0);
        TORCH_CHECK(!needs_x || has_xref, "bias_act: gradient modes of activation ", act, " need xref");
        TORCH_CHECK(act == sga::kActLinear || has_xref || has_yref,
                    "bias_act: gradient modes of activation ", act, " need xref or yref");
        TORCH_CHECK(clamp < 0 || has_xref || has_yref, "bias_act: gradient modes with clamp need xref or yref");
        TORCH_CHECK(mode != sga::kBiasActGrad2 || has_dy, "bias_act: the second-order mode needs dy");
    }

    const c10::cuda::OptionalCUDAGuard device_guard(x.device());
    at::Tensor y = at::empty_like(x);  // preserve_format: a dense x gives y the same strides
    if (poison) y.fill_(std::numeric_limits<double>::quiet_NaN());  // debug: unwritten outputs show up as NaN
    if (x.numel() == 0) return y;

    sga::BiasActParams p{};
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
    // In a dense tensor, the memory offset i of an element has index (i / stride) % size along any dim.
    p.size_b = has_b ? x.size(dim) : 1;
    p.step_b = (has_b && x.size(dim) > 1) ? x.stride(dim) : 1;

    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
    cudaError_t err = cudaSuccess;
    switch (x.scalar_type()) {
        case at::kFloat:
            err = sga::launch_bias_act<float>(p, stream);
            break;
        case at::kDouble:
            err = sga::launch_bias_act<double>(p, stream);
            break;
        case at::kHalf:
            err = sga::launch_bias_act<c10::Half>(p, stream);
            break;
        case at::kBFloat16:
            err = sga::launch_bias_act<c10::BFloat16>(p, stream);
            break;
        default:
            TORCH_CHECK(false, "bias_act: unsupported dtype ", x.scalar_type());
    }
    TORCH_CHECK(err == cudaSuccess, "bias_act: CUDA kernel launch failed: ", cudaGetErrorString(err));
    return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan-anime fused bias + activation + gain + clamp (CUDA)";
    m.def("bias_act", &bias_act,
          "mode 0: y = clamp(gain * act(x + b)); mode 1: first-order gradient term; mode 2: second-order term",
          pybind11::arg("x"), pybind11::arg("b"), pybind11::arg("xref"), pybind11::arg("yref"), pybind11::arg("dy"),
          pybind11::arg("mode"), pybind11::arg("dim"), pybind11::arg("act"), pybind11::arg("alpha"),
          pybind11::arg("gain"), pybind11::arg("clamp"), pybind11::arg("poison") = false);
}
