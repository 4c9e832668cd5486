// Fused bias + activation + gain + clamp, and its first- and second-order gradient terms.
//
// Only CUDA headers, c10's Half/BFloat16 and our own header are included here, so this file compiles on
// its own with `nvcc -c` (no ATen, no torch/extension.h). The host binding is bias_act.cpp.
#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "bias_act.h"

namespace sga {
namespace {

// Arithmetic type: float for float/half/bfloat16 storage, double for double.
template <typename T>
struct AccType {
    using type = float;
};
template <>
struct AccType<double> {
    using type = double;
};

__device__ __forceinline__ float dexp(float v) { return expf(v); }
__device__ __forceinline__ double dexp(double v) { return exp(v); }
__device__ __forceinline__ float dexpm1(float v) { return expm1f(v); }
__device__ __forceinline__ double dexpm1(double v) { return expm1(v); }
__device__ __forceinline__ float dlog1p(float v) { return log1pf(v); }
__device__ __forceinline__ double dlog1p(double v) { return log1p(v); }
__device__ __forceinline__ float dtanh(float v) { return tanhf(v); }
__device__ __forceinline__ double dtanh(double v) { return tanh(v); }
__device__ __forceinline__ float dabs(float v) { return fabsf(v); }
__device__ __forceinline__ double dabs(double v) { return fabs(v); }

// SELU constants (Klambauer et al. 2017), as used by torch.nn.functional.selu.
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
// softplus returns z itself above this (torch's default threshold for beta = 1).
constexpr double kSoftplusThreshold = 20.0;

template <typename A>
__device__ __forceinline__ A sigmoid_of(A z) {
    return A(1) / (A(1) + dexp(-z));
}

// act(z), before the gain.
template <typename A>
__device__ __forceinline__ A act_value(int act, A z, A alpha) {
    switch (act) {
        case kActRelu:
            return z < A(0) ? A(0) : z;  // NaN passes through, like torch.relu
        case kActLrelu:
            return z > A(0) ? z : z * alpha;
        case kActTanh:
            return dtanh(z);
        case kActSigmoid:
            return sigmoid_of(z);
        case kActElu:
            return z > A(0) ? z : alpha * dexpm1(z);
        case kActSelu:
            return z > A(0) ? A(kSeluScale) * z : A(kSeluScale * kSeluAlpha) * dexpm1(z);
        case kActSoftplus:
            return z > A(kSoftplusThreshold) ? z : dlog1p(dexp(z));
        case kActSwish:
            return z * sigmoid_of(z);
        default:  // kActLinear
            return z;
    }
}

// First derivative act'(z). With have_z the pre-activation z and a = act(z) are both known; without it
// only a (recovered from the saved output) is, and only the activations the host allows in that case
// (linear, relu, lrelu with alpha >= 0, tanh, sigmoid) may get here.
template <typename A>
__device__ __forceinline__ A act_grad1(int act, bool have_z, A z, A a, A alpha) {
    const bool pos = have_z ? (z > A(0)) : (a > A(0));
    switch (act) {
        case kActRelu:
            return pos ? A(1) : A(0);
        case kActLrelu:
            return pos ? A(1) : alpha;
        case kActTanh:
            return A(1) - a * a;
        case kActSigmoid:
            return a * (A(1) - a);
        case kActElu:
            return pos ? A(1) : (have_z ? alpha * dexp(z) : a + alpha);
        case kActSelu:
            return pos ? A(kSeluScale)
                       : (have_z ? A(kSeluScale * kSeluAlpha) * dexp(z) : a + A(kSeluScale * kSeluAlpha));
        case kActSoftplus:
            return z > A(kSoftplusThreshold) ? A(1) : sigmoid_of(z);
        case kActSwish: {
            const A s = sigmoid_of(z);
            return s * (A(1) + z * (A(1) - s));
        }
        default:  // kActLinear
            return A(1);
    }
}

// Second derivative act''(z); same conventions as act_grad1.
template <typename A>
__device__ __forceinline__ A act_grad2(int act, bool have_z, A z, A a, A alpha) {
    const bool pos = have_z ? (z > A(0)) : (a > A(0));
    switch (act) {
        case kActTanh:
            return A(-2) * a * (A(1) - a * a);
        case kActSigmoid:
            return a * (A(1) - a) * (A(1) - A(2) * a);
        case kActElu:
            return pos ? A(0) : (have_z ? alpha * dexp(z) : a + alpha);
        case kActSelu:
            return pos ? A(0)
                       : (have_z ? A(kSeluScale * kSeluAlpha) * dexp(z) : a + A(kSeluScale * kSeluAlpha));
        case kActSoftplus: {
            if (z > A(kSoftplusThreshold)) return A(0);
            const A s = sigmoid_of(z);
            return s * (A(1) - s);
        }
        case kActSwish: {
            const A s = sigmoid_of(z);
            return s * (A(1) - s) * (A(2) + z * (A(1) - A(2) * s));
        }
        default:  // linear, relu, lrelu: zero almost everywhere
            return A(0);
    }
}

template <typename T>
__global__ void bias_act_kernel(BiasActParams p) {
    using A = typename AccType<T>::type;
    const T* __restrict__ x = static_cast<const T*>(p.x);
    const T* __restrict__ b = static_cast<const T*>(p.b);
    const T* __restrict__ xref = static_cast<const T*>(p.xref);
    const T* __restrict__ yref = static_cast<const T*>(p.yref);
    const T* __restrict__ dy = static_cast<const T*>(p.dy);
    T* __restrict__ y = static_cast<T*>(p.y);

    const A alpha = static_cast<A>(p.alpha);
    const A gain = static_cast<A>(p.gain);
    const A clamp = static_cast<A>(p.clamp);
    const bool do_clamp = p.clamp >= 0;
    // The host guarantees size_x < 2^31, so 32-bit division finds the channel.
    const uint32_t step_b = static_cast<uint32_t>(p.step_b);
    const uint32_t size_b = static_cast<uint32_t>(p.size_b);
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;

    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.size_x; i += stride) {
        const A v = static_cast<A>(x[i]);
        const A bias = b ? static_cast<A>(b[(static_cast<uint32_t>(i) / step_b) % size_b]) : A(0);
        A out;
        if (p.mode == kBiasActForward) {
            out = act_value<A>(p.act, v + bias, alpha) * gain;
            if (do_clamp) out = out > clamp ? clamp : (out < -clamp ? -clamp : out);  // keeps NaN
        } else {
            const bool have_z = xref != nullptr;
            A z = A(0);
            A a = A(0);
            if (have_z) {
                z = static_cast<A>(xref[i]) + bias;
                a = act_value<A>(p.act, z, alpha);
            } else if (yref != nullptr && gain != A(0)) {
                a = static_cast<A>(yref[i]) / gain;  // unclamped elements: y = gain * act(z)
            }
            bool keep = true;
            if (do_clamp) {
                const A yv = yref != nullptr ? static_cast<A>(yref[i]) : a * gain;
                keep = dabs(yv) < clamp;
            }
            if (!keep) {
                out = A(0);
            } else if (p.mode == kBiasActGrad1) {
                out = v * gain * act_grad1<A>(p.act, have_z, z, a, alpha);
            } else {  // kBiasActGrad2
                out = v * static_cast<A>(dy[i]) * gain * act_grad2<A>(p.act, have_z, z, a, alpha);
            }
        }
        y[i] = static_cast<T>(out);
    }
}

}  // namespace

template <typename T>
cudaError_t launch_bias_act(const BiasActParams& p, cudaStream_t stream) {
    if (p.size_x <= 0) return cudaSuccess;
    constexpr int kBlock = 256;
    constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // the grid-stride loop covers the rest
    int64_t blocks = (p.size_x + kBlock - 1) / kBlock;
    if (blocks > kMaxBlocks) blocks = kMaxBlocks;
    bias_act_kernel<T><<<static_cast<unsigned int>(blocks), kBlock, 0, stream>>>(p);
    return cudaGetLastError();
}

template cudaError_t launch_bias_act<float>(const BiasActParams&, cudaStream_t);
template cudaError_t launch_bias_act<double>(const BiasActParams&, cudaStream_t);
template cudaError_t launch_bias_act<c10::Half>(const BiasActParams&, cudaStream_t);
template cudaError_t launch_bias_act<c10::BFloat16>(const BiasActParams&, cudaStream_t);

}  // namespace sga
