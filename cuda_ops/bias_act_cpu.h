// Fused bias + activation + gain + clamp on the CPU: the parameter block shared by the host binding
// (bias_act_cpu.cpp) and the loops (bias_act_cpu_kernels.h). Same modes, activation ids and formulas as
// the CUDA kernel (bias_act.h / bias_act.cu), so bias_act.py's autograd Functions drive either one.
#pragma once

#include <cstdint>

namespace sga_cpu {

enum BiasActMode : int { kForward = 0, kGrad1 = 1, kGrad2 = 2 };

// Same order as `_CUDA_ACTS` in bias_act.py (and BiasActKind in bias_act.h).
enum BiasActKind : int {
    kLinear = 0,
    kRelu = 1,
    kLrelu = 2,
    kTanh = 3,
    kSigmoid = 4,
    kElu = 5,
    kSelu = 6,
    kSoftplus = 7,
    kSwish = 8,
    kNumActs = 9,
};

struct BiasActCpuParams {
    // All element tensors share one memory-dense layout: element i sits at offset i in each of them.
    const void* x;     // forward: the input; gradient modes: the incoming gradient
    const void* b;     // bias [size_b] (x's dtype) or nullptr
    const void* xref;  // gradient modes: the forward's input, or nullptr
    const void* yref;  // gradient modes: the forward's output, or nullptr
    const void* dy;    // kGrad2: the gradient grad1 was applied to; else nullptr
    void* y;           // output

    int mode;  // BiasActMode
    int act;   // BiasActKind
    double alpha, gain, clamp;  // clamp < 0: no clamping

    int64_t size_x;  // number of elements
    int64_t size_b;  // x.size(dim) (1 without a bias)
    int64_t step_b;  // x.stride(dim): channel of element i = (i / step_b) % size_b
};

// Runs elements [begin, end) of the flat index space (the caller splits the work across threads).
// `begin` and `end` are multiples of the block length the binding chose (see bias_act_cpu.cpp).
template <typename T>
void bias_act_cpu_range(const BiasActCpuParams& p, int64_t begin, int64_t end);

}  // namespace sga_cpu
