// Fused bias + activation + gain + clamp: the parameter block shared by the host binding
// (bias_act.cpp) and the kernels (bias_act.cu).
//
// This header is included by both the host compiler and nvcc, so it holds plain C++ only: no torch
// headers, no device code.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace sga {

// What the kernel computes, per element i (z = xref[i] + b[c] or the forward's x[i] + b[c], a = act(z)):
//   kBiasActForward: out = clamp(gain * act(x + b))
//   kBiasActGrad1:   out = x * gain * act'(z) * mask            (x holds the incoming gradient)
//   kBiasActGrad2:   out = x * dy * gain * act''(z) * mask      (x holds the gradient of the grad1 output)
// mask = 0 where the forward output was clamped (|y| >= clamp), else 1.
enum BiasActMode : int {
    kBiasActForward = 0,
    kBiasActGrad1 = 1,
    kBiasActGrad2 = 2,
};

// Same order as the Python table `_CUDA_ACT_IDS` in bias_act.py.
enum BiasActKind : int {
    kActLinear = 0,
    kActRelu = 1,
    kActLrelu = 2,
    kActTanh = 3,
    kActSigmoid = 4,
    kActElu = 5,
    kActSelu = 6,
    kActSoftplus = 7,
    kActSwish = 8,
    kNumActs = 9,
};

struct BiasActParams {
    // All element tensors share one memory-dense layout, so element i sits at offset i in each of them.
    const void* x;     // forward: the input; grad modes: the incoming gradient
    const void* b;     // bias [size_b], same dtype as x, or nullptr
    const void* xref;  // grad modes: the forward's input (z = xref + b), or nullptr
    const void* yref;  // grad modes: the forward's output (act from y, clamp mask), or nullptr
    const void* dy;    // kBiasActGrad2: the gradient that grad1 was applied to; else nullptr
    void* y;           // output

    int mode;    // BiasActMode
    int act;     // BiasActKind
    double alpha;
    double gain;
    double clamp;  // < 0: no clamping

    int64_t size_x;  // number of elements
    int64_t size_b;  // x.size(dim) (1 when there is no bias)
    int64_t step_b;  // x.stride(dim): channel of element i = (i / step_b) % size_b
};

// Launches the kernel on `stream`; T is float, double, c10::Half or c10::BFloat16 (explicit
// instantiations live in bias_act.cu). Returns the launch status.
template <typename T>
cudaError_t launch_bias_act(const BiasActParams& p, cudaStream_t stream);

}  // namespace sga
