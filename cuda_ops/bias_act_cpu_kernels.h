// The loops of the fused CPU bias_act (no include guard: bias_act_cpu.cpp includes this file once per ISA,
// inside `namespace SGA_ISA`). Vectorised by the compiler: the fast activations (linear, lrelu) get loops
// with no branches inside, specialised on whether the bias varies along the loop (channels_last) and on
// which saved tensors the gradient reads; the other activations take a plain per-element loop with the
// CUDA kernel's formulas.

// Element loads / stores: bfloat16 by bit shifts (round to nearest even, NaN kept), the rest by casts.
template <typename T, typename A>
inline A ld(const T* p, int64_t i) {
    if constexpr (std::is_same_v<T, c10::BFloat16>) {
        uint16_t h;
        std::memcpy(&h, reinterpret_cast<const char*>(p) + 2 * i, 2);
        uint32_t u = static_cast<uint32_t>(h) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return static_cast<A>(f);
    } else {
        return static_cast<A>(p[i]);
    }
}

template <typename T, typename A>
inline void st(T* p, int64_t i, A v) {
    if constexpr (std::is_same_v<T, c10::BFloat16>) {
        float f = static_cast<float>(v);
        uint32_t u;
        std::memcpy(&u, &f, 4);
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        uint16_t h = static_cast<uint16_t>(f != f ? 0x7fc0u : r);
        std::memcpy(reinterpret_cast<char*>(p) + 2 * i, &h, 2);
    } else {
        p[i] = static_cast<T>(v);
    }
}

// `v` as it reads back after being stored as T: the clamp mask compares a saved bfloat16 / float16 output with
// the clamp rounded the same way (a clamped element holds round(clamp), which may lie below clamp itself).
template <typename T, typename A>
inline A as_stored(A v) {
    T t[1];
    st<T, A>(t, 0, v);
    return ld<T, A>(t, 0);
}

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSoftplusThreshold = 20.0;

template <typename A>
inline A sigmoid_of(A z) {
    return A(1) / (A(1) + std::exp(-z));
}

template <typename A>
inline A act_value(int act, A z, A alpha) {
    switch (act) {
        case kRelu: return z < A(0) ? A(0) : z;
        case kLrelu: return z > A(0) ? z : z * alpha;
        case kTanh: return std::tanh(z);
        case kSigmoid: return sigmoid_of(z);
        case kElu: return z > A(0) ? z : alpha * std::expm1(z);
        case kSelu: return z > A(0) ? A(kSeluScale) * z : A(kSeluScale * kSeluAlpha) * std::expm1(z);
        case kSoftplus: return z > A(kSoftplusThreshold) ? z : std::log1p(std::exp(z));
        case kSwish: return z * sigmoid_of(z);
        default: return z;
    }
}

template <typename A>
inline A act_grad1(int act, bool have_z, A z, A a, A alpha) {
    const bool pos = have_z ? (z > A(0)) : (a > A(0));
    switch (act) {
        case kRelu: return pos ? A(1) : A(0);
        case kLrelu: return pos ? A(1) : alpha;
        case kTanh: return A(1) - a * a;
        case kSigmoid: return a * (A(1) - a);
        case kElu: return pos ? A(1) : (have_z ? alpha * std::exp(z) : a + alpha);
        case kSelu:
            return pos ? A(kSeluScale) : (have_z ? A(kSeluScale * kSeluAlpha) * std::exp(z) : a + A(kSeluScale * kSeluAlpha));
        case kSoftplus: return z > A(kSoftplusThreshold) ? A(1) : sigmoid_of(z);
        case kSwish: {
            const A s = sigmoid_of(z);
            return s * (A(1) + z * (A(1) - s));
        }
        default: return A(1);
    }
}

template <typename A>
inline A act_grad2(int act, bool have_z, A z, A a, A alpha) {
    const bool pos = have_z ? (z > A(0)) : (a > A(0));
    switch (act) {
        case kTanh: return A(-2) * a * (A(1) - a * a);
        case kSigmoid: return a * (A(1) - a) * (A(1) - A(2) * a);
        case kElu: return pos ? A(0) : (have_z ? alpha * std::exp(z) : a + alpha);
        case kSelu: return pos ? A(0) : (have_z ? A(kSeluScale * kSeluAlpha) * std::exp(z) : a + A(kSeluScale * kSeluAlpha));
        case kSoftplus: {
            if (z > A(kSoftplusThreshold)) return A(0);
            const A s = sigmoid_of(z);
            return s * (A(1) - s);
        }
        case kSwish: {
            const A s = sigmoid_of(z);
            return s * (A(1) - s) * (A(2) + z * (A(1) - A(2) * s));
        }
        default: return A(0);
    }
}

// Any activation, any mode: the CUDA kernel's per-element code. bias(k) = bvec ? bvec[k] : bscalar.
template <typename T>
void segment_generic(const BiasActCpuParams& p, int64_t i0, int64_t n, const T* bvec, typename Acc<T>::type bs) {
    using A = typename Acc<T>::type;
    const T* x = static_cast<const T*>(p.x) + i0;
    const T* xref = p.xref ? static_cast<const T*>(p.xref) + i0 : nullptr;
    const T* yref = p.yref ? static_cast<const T*>(p.yref) + i0 : nullptr;
    const T* dy = p.dy ? static_cast<const T*>(p.dy) + i0 : nullptr;
    T* y = static_cast<T*>(p.y) + i0;
    const A alpha = A(p.alpha), gain = A(p.gain), clamp = A(p.clamp);
    const bool do_clamp = p.clamp >= 0;
    const A clamp_mask = yref != nullptr ? as_stored<T, A>(clamp) : clamp;
    for (int64_t k = 0; k < n; ++k) {
        const A v = ld<T, A>(x, k);
        const A bias = bvec ? ld<T, A>(bvec, k) : bs;
        A out;
        if (p.mode == kForward) {
            out = act_value<A>(p.act, v + bias, alpha) * gain;
            if (do_clamp) out = out > clamp ? clamp : (out < -clamp ? -clamp : out);
        } else {
            const bool have_z = xref != nullptr;
            A z = A(0), a = A(0);
            if (have_z) {
                z = ld<T, A>(xref, k) + bias;
                a = act_value<A>(p.act, z, alpha);
            } else if (yref != nullptr && gain != A(0)) {
                a = ld<T, A>(yref, k) / gain;
            }
            bool keep = true;
            if (do_clamp) {
                const A yv = yref != nullptr ? ld<T, A>(yref, k) : a * gain;
                keep = std::abs(yv) < clamp_mask;
            }
            if (!keep) {
                out = A(0);
            } else if (p.mode == kGrad1) {
                out = v * gain * act_grad1<A>(p.act, have_z, z, a, alpha);
            } else {
                out = v * ld<T, A>(dy, k) * gain * act_grad2<A>(p.act, have_z, z, a, alpha);
            }
        }
        st<T, A>(y, k, out);
    }
}

// Forward of linear / lrelu (LRELU false: linear), branch-free. A missing clamp is +inf (NaN still passes).
template <typename T, bool LRELU, bool BVEC>
void segment_fwd(const BiasActCpuParams& p, int64_t i0, int64_t n, const T* __restrict bvec, typename Acc<T>::type bs) {
    using A = typename Acc<T>::type;
    const T* __restrict x = static_cast<const T*>(p.x) + i0;
    T* __restrict y = static_cast<T*>(p.y) + i0;
    const A alpha = A(p.alpha), gain = A(p.gain);
    const A clamp = p.clamp >= 0 ? A(p.clamp) : std::numeric_limits<A>::infinity();
    for (int64_t k = 0; k < n; ++k) {
        A z = ld<T, A>(x, k) + (BVEC ? ld<T, A>(bvec, k) : bs);
        if (LRELU) z = z > A(0) ? z : z * alpha;
        A out = z * gain;
        out = out > clamp ? clamp : (out < -clamp ? -clamp : out);
        st<T, A>(y, k, out);
    }
}

// First-order gradient of linear / lrelu: out = dx * gain * (pos ? 1 : alpha) * keep. HAVE_Z: the sign
// comes from xref + b, else from yref (alpha >= 0, checked by the caller). HAVE_Y: the clamp mask reads
// yref, else gain * act(z).
template <typename T, bool LRELU, bool BVEC, bool HAVE_Z, bool HAVE_Y>
void segment_grad1(const BiasActCpuParams& p, int64_t i0, int64_t n, const T* __restrict bvec, typename Acc<T>::type bs) {
    using A = typename Acc<T>::type;
    const T* __restrict x = static_cast<const T*>(p.x) + i0;
    const T* __restrict xref = HAVE_Z ? static_cast<const T*>(p.xref) + i0 : nullptr;
    const T* __restrict yref = HAVE_Y ? static_cast<const T*>(p.yref) + i0 : nullptr;
    T* __restrict y = static_cast<T*>(p.y) + i0;
    const A alpha = A(p.alpha), gain = A(p.gain), clamp = A(p.clamp);
    const bool do_clamp = p.clamp >= 0;
    const A gsign = gain > A(0) ? A(1) : (gain < A(0) ? A(-1) : A(0));  // a = y / gain > 0 <=> y * sign > 0
    const A clamp_mask = HAVE_Y ? as_stored<T, A>(clamp) : clamp;
    for (int64_t k = 0; k < n; ++k) {
        A z = A(0), a = A(0), yv = A(0);
        if constexpr (HAVE_Z) {
            z = ld<T, A>(xref, k) + (BVEC ? ld<T, A>(bvec, k) : bs);
            a = LRELU ? (z > A(0) ? z : z * alpha) : z;
        }
        if constexpr (HAVE_Y) {
            yv = ld<T, A>(yref, k);
        } else {
            yv = a * gain;
        }
        bool pos;
        if constexpr (HAVE_Z) {
            pos = z > A(0);
        } else {
            pos = yv * gsign > A(0);  // the CUDA kernel: a = y / gain (0 when gain is 0), pos = a > 0
        }
        const A slope = LRELU ? (pos ? A(1) : alpha) : A(1);
        const bool keep = !do_clamp || std::abs(yv) < clamp_mask;
        A out = ld<T, A>(x, k) * gain * slope;
        st<T, A>(y, k, keep ? out : A(0));
    }
}

template <typename T, bool BVEC>
void segment_dispatch(const BiasActCpuParams& p, int64_t i0, int64_t n, const T* bvec, typename Acc<T>::type bs) {
    const bool fast_act = p.act == kLinear || p.act == kLrelu;
    const bool lrelu = p.act == kLrelu;
    if (fast_act && p.mode == kForward) {
        if (lrelu) segment_fwd<T, true, BVEC>(p, i0, n, bvec, bs);
        else segment_fwd<T, false, BVEC>(p, i0, n, bvec, bs);
        return;
    }
    // The sign of y tells the branch only for alpha >= 0 (the binding insists on xref otherwise).
    if (fast_act && p.mode == kGrad1 && (p.xref != nullptr || !lrelu || p.alpha >= 0) &&
        (p.xref != nullptr || p.yref != nullptr || (!lrelu && p.clamp < 0))) {
        const bool hz = p.xref != nullptr, hy = p.yref != nullptr;
        if (!hz && !hy) {  // linear without clamp: out = dx * gain
            segment_grad1<T, false, BVEC, false, false>(p, i0, n, bvec, bs);  // reads no saved tensor
            return;
        }
#define SGA_G1(L) \
    if (hz && hy) segment_grad1<T, L, BVEC, true, true>(p, i0, n, bvec, bs); \
    else if (hz) segment_grad1<T, L, BVEC, true, false>(p, i0, n, bvec, bs); \
    else segment_grad1<T, L, BVEC, false, true>(p, i0, n, bvec, bs);
        if (lrelu) { SGA_G1(true) } else { SGA_G1(false) }
#undef SGA_G1
        return;
    }
    segment_generic<T>(p, i0, n, BVEC ? bvec : nullptr, bs);
}

// Elements [begin, end): split into runs with one bias value (channel-major layouts) or runs along which
// the bias index advances with the element (channels_last: step_b == 1).
template <typename T>
void range(const BiasActCpuParams& p, int64_t begin, int64_t end) {
    using A = typename Acc<T>::type;
    const T* b = static_cast<const T*>(p.b);
    if (b == nullptr) {
        segment_dispatch<T, false>(p, begin, end - begin, nullptr, A(0));
        return;
    }
    if (p.step_b == 1) {
        for (int64_t i = begin; i < end;) {
            const int64_t c = i % p.size_b;
            const int64_t n = std::min(end - i, p.size_b - c);
            segment_dispatch<T, true>(p, i, n, b + c, A(0));
            i += n;
        }
        return;
    }
    for (int64_t i = begin; i < end;) {
        const int64_t blk = i / p.step_b;
        const int64_t n = std::min(end - i, (blk + 1) * p.step_b - i);
        segment_dispatch<T, false>(p, i, n, nullptr, ld<T, A>(b, blk % p.size_b));
        i += n;
    }
}
