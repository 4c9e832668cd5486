// Shared helpers of the fused CPU kernels (upfirdn2d_cpu.cpp, bias_act_cpu.cpp): element loads and stores
// that the compiler can vectorise, and the accumulator type per storage type.
//
// The kernel bodies (*_cpu_kernels.h) are compiled twice per translation unit: once for the baseline ISA
// and once under `#pragma GCC target` for AVX-512, chosen at run time (`sga_cpu::has_avx512()`). So this
// header holds only inline, ISA-neutral code.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace sga_cpu {

// float32 / bfloat16 / float16 are computed in float32, float64 in float64.
template <typename T>
struct Acc {
    using type = float;
};
template <>
struct Acc<double> {
    using type = double;
};

// True when this CPU runs AVX-512 F/BW/VL/DQ (the set the AVX-512 build of the kernels is compiled for) and
// $STYLEGAN_ANIME_OPS_CPU_ISA is not 'baseline' (which forces the portable build: tests, comparisons).
inline bool has_avx512() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static const bool ok = [] {
        const char* env = std::getenv("STYLEGAN_ANIME_OPS_CPU_ISA");
        if (env != nullptr && std::strcmp(env, "baseline") == 0) return false;
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }();
    return ok;
#else
    return false;
#endif
}

}  // namespace sga_cpu
