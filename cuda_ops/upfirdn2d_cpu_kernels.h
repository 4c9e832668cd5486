// The loops of the CPU upfirdn2d (no include guard: upfirdn2d_cpu.cpp includes this file once per ISA,
// inside `namespace SGA_ISA`).
//
// Per plane: the input is widened (to float32, float64 for float64) into a buffer with zero margins wide
// enough for every tap, so that the inner loops need no bounds checks. Each output row sums, over the
// filter rows that meet an input row, a 1-D pass along x into a row of accumulators. The x pass is
// polyphase: only the taps that meet an input pixel (not the zeros of the upsampling) are computed.
//   up_x == 1:                for each tap, acc[ox] += w * in[ox * down_x + offset]  (contiguous for down 1)
//   up_x > 1, down_x == 1:    each output phase ox = up_x * q + r is a contiguous 1-D filter of the input
//                             with its own taps, accumulated apart and interleaved at the end
//   otherwise:                a per-output tap table (correct for any factors, not vectorised).
// The networks' case, a 4x4 filter without upsampling (filter2d, downsample2d), sums all 16 taps in one
// vectorised loop per output row instead (small planes, 8 or 16 px, are dominated by loop overheads otherwise).

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

inline int ceil_div(int a, int b) {  // b > 0
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// acc[o] += w * src[o * DOWN] for o < n (DOWN 0: the runtime `down`).
template <typename A, int DOWN>
inline void axpy(A* __restrict acc, const A* __restrict src, A w, int n, int down) {
    const int d = DOWN > 0 ? DOWN : down;
    for (int o = 0; o < n; ++o) acc[o] += w * src[static_cast<int64_t>(o) * d];
}

// out[o] = sum over the 4x4 taps F[ty][tx] * r_ty[o * D + tx]: one output row of a 4x4 filter, no upsampling.
template <typename A, int D>
inline void fir4x4_row(A* __restrict out, const A* __restrict r0, const A* __restrict r1, const A* __restrict r2,
                       const A* __restrict r3, const A* __restrict F, int n) {
    const A f0 = F[0], f1 = F[1], f2 = F[2], f3 = F[3], f4 = F[4], f5 = F[5], f6 = F[6], f7 = F[7];
    const A f8 = F[8], f9 = F[9], f10 = F[10], f11 = F[11], f12 = F[12], f13 = F[13], f14 = F[14], f15 = F[15];
    for (int o = 0; o < n; ++o) {
        const int64_t i = static_cast<int64_t>(o) * D;
        A s = f0 * r0[i] + f1 * r0[i + 1] + f2 * r0[i + 2] + f3 * r0[i + 3];
        s += f4 * r1[i] + f5 * r1[i + 1] + f6 * r1[i + 2] + f7 * r1[i + 3];
        s += f8 * r2[i] + f9 * r2[i + 1] + f10 * r2[i + 2] + f11 * r2[i + 3];
        s += f12 * r3[i] + f13 * r3[i + 1] + f14 * r3[i + 2] + f15 * r3[i + 3];
        out[o] = s;
    }
}

// The filter in tap-position order (t = 0 meets the first pixel of the window), times the scale: [fh * fw].
template <typename A>
std::vector<A> taps_in_order(const Upfirdn2dCpuParams& p) {
    const int fw = p.filter_w, fh = p.filter_h;
    std::vector<A> F(static_cast<size_t>(fh) * fw);
    const A* f = static_cast<const A*>(p.f);
    for (int ty = 0; ty < fh; ++ty)
        for (int tx = 0; tx < fw; ++tx) {
            const int ky = p.flip ? ty : fh - 1 - ty, kx = p.flip ? tx : fw - 1 - tx;
            F[static_cast<size_t>(ty) * fw + tx] = static_cast<A>(static_cast<double>(f[ky * fw + kx]) * p.scale);
        }
    return F;
}

template <typename T>
void planes(const Upfirdn2dCpuParams& p, int64_t begin, int64_t end) {
    using A = typename Acc<T>::type;
    const int fw = p.filter_w, fh = p.filter_h, upx = p.up_x, upy = p.up_y, dnx = p.down_x, dny = p.down_y;
    const int W = p.in_w, H = p.in_h, OW = p.out_w, OH = p.out_h;

    const std::vector<A> F = taps_in_order<A>(p);

    // Along x: output ox reads input ix0[ox] + j with tap tx0[ox] + j * up_x (< fw).
    std::vector<int> ix0(OW), tx0(OW);
    int lo = 0, hi = 0;
    bool any = false;
    for (int ox = 0; ox < OW; ++ox) {
        const int s = ox * dnx - p.pad_x0;
        const int i0 = ceil_div(s, upx);
        ix0[ox] = i0;
        tx0[ox] = i0 * upx - s;
        if (tx0[ox] < fw) {
            const int last = i0 + (fw - 1 - tx0[ox]) / upx;
            lo = any ? std::min(lo, i0) : i0;
            hi = any ? std::max(hi, last) : last;
            any = true;
        }
    }
    const int Lx = std::max(0, -lo);
    const int Bw = Lx + W + std::max(0, hi - (W - 1));
    // Along y likewise; the zero rows above and below let the 4x4 path read every tap's row unchecked.
    int lo_y = 0, hi_y = 0;
    bool any_y = false;
    for (int oy = 0; oy < OH; ++oy) {
        const int sy = oy * dny - p.pad_y0;
        const int i0 = ceil_div(sy, upy), t0 = i0 * upy - sy;
        if (t0 < fh) {
            const int last = i0 + (fh - 1 - t0) / upy;
            lo_y = any_y ? std::min(lo_y, i0) : i0;
            hi_y = any_y ? std::max(hi_y, last) : last;
            any_y = true;
        }
    }
    const int Ty = std::max(0, -lo_y);
    const int Bh = Ty + H + std::max(0, hi_y - (H - 1));
    std::vector<A> buf(static_cast<size_t>(Bh) * Bw, A(0));  // margins stay zero: only the interior is rewritten
    const bool fir4 = upx == 1 && upy == 1 && fw == 4 && fh == 4 && (dnx == 1 || dnx == 2);

    const int mode = upx == 1 ? (dnx == 1 ? 1 : (dnx == 2 ? 2 : 3)) : (dnx == 1 ? 4 : 5);
    const int nq = (OW + upx - 1) / upx;  // outputs per phase (mode 4)
    std::vector<A> acc(static_cast<size_t>(mode == 4 ? upx * nq : OW));

    const T* X = static_cast<const T*>(p.x);
    T* Y = static_cast<T*>(p.y);
    for (int64_t pc = begin; pc < end; ++pc) {
        const int64_t n = pc / p.c, c = pc % p.c;
        const T* xp = X + n * p.x_stride_n + c * p.x_stride_c;
        T* yp = Y + n * p.y_stride_n + c * p.y_stride_c;
        for (int iy = 0; iy < H; ++iy) {
            const T* src = xp + iy * p.x_stride_h;
            A* dst = buf.data() + static_cast<size_t>(Ty + iy) * Bw + Lx;
            if (p.x_stride_w == 1) {
                for (int ix = 0; ix < W; ++ix) dst[ix] = ld<T, A>(src, ix);
            } else {
                for (int ix = 0; ix < W; ++ix) dst[ix] = ld<T, A>(src, ix * p.x_stride_w);
            }
        }
        for (int oy = 0; oy < OH; ++oy) {
            const int sy = oy * dny - p.pad_y0;
            const int iy0 = ceil_div(sy, upy);
            if (fir4) {  // up 1: rows iy0 .. iy0 + 3 with taps 0 .. 3, all inside the buffer
                const A* r = buf.data() + static_cast<size_t>(Ty + iy0) * Bw + Lx - p.pad_x0;
                if (dnx == 1) fir4x4_row<A, 1>(acc.data(), r, r + Bw, r + 2 * Bw, r + 3 * Bw, F.data(), OW);
                else fir4x4_row<A, 2>(acc.data(), r, r + Bw, r + 2 * Bw, r + 3 * Bw, F.data(), OW);
            } else {
                std::fill(acc.begin(), acc.end(), A(0));
                for (int iy = iy0, ty = iy0 * upy - sy; ty < fh; ++iy, ty += upy) {
                    if (iy < 0 || iy >= H) continue;
                    const A* row = buf.data() + static_cast<size_t>(Ty + iy) * Bw + Lx;  // row[ix], ix in [lo, hi]
                    const A* Fr = F.data() + static_cast<size_t>(ty) * fw;
                    switch (mode) {
                        case 1:
                            for (int tx = 0; tx < fw; ++tx) axpy<A, 1>(acc.data(), row - p.pad_x0 + tx, Fr[tx], OW, 1);
                            break;
                        case 2:
                            for (int tx = 0; tx < fw; ++tx) axpy<A, 2>(acc.data(), row - p.pad_x0 + tx, Fr[tx], OW, 2);
                            break;
                        case 3:
                            for (int tx = 0; tx < fw; ++tx) axpy<A, 0>(acc.data(), row - p.pad_x0 + tx, Fr[tx], OW, dnx);
                            break;
                        case 4:
                            for (int r = 0; r < upx && r < OW; ++r) {
                                const int cr = ceil_div(r - p.pad_x0, upx);
                                const int n_r = (OW - r + upx - 1) / upx;
                                A* acc_r = acc.data() + static_cast<size_t>(r) * nq;
                                for (int j = 0, tx = cr * upx - (r - p.pad_x0); tx < fw; ++j, tx += upx)
                                    axpy<A, 1>(acc_r, row + cr + j, Fr[tx], n_r, 1);
                            }
                            break;
                        default:
                            for (int ox = 0; ox < OW; ++ox) {
                                A s = A(0);
                                for (int j = 0, tx = tx0[ox]; tx < fw; ++j, tx += upx) s += Fr[tx] * row[ix0[ox] + j];
                                acc[ox] += s;
                            }
                    }
                }
            }
            T* out = yp + oy * p.y_stride_h;
            if (mode == 4) {
                for (int r = 0; r < upx && r < OW; ++r) {
                    const int n_r = (OW - r + upx - 1) / upx;
                    const A* acc_r = acc.data() + static_cast<size_t>(r) * nq;
                    for (int q = 0; q < n_r; ++q) st<T, A>(out, static_cast<int64_t>(q * upx + r) * p.y_stride_w, acc_r[q]);
                }
            } else if (p.y_stride_w == 1) {
                for (int ox = 0; ox < OW; ++ox) st<T, A>(out, ox, acc[ox]);
            } else {
                for (int ox = 0; ox < OW; ++ox) st<T, A>(out, static_cast<int64_t>(ox) * p.y_stride_w, acc[ox]);
            }
        }
    }
}

// channels_last (NHWC) tensors: one task per output row (n, oy), vectorised along the channels, which are
// contiguous there. Each output pixel sums, over the taps that meet an input pixel (the zeros of the upsampling
// are skipped, as in the polyphase plane loops), the tap times the input pixel's channel vector. The caller
// guarantees x and y are NHWC-dense (stride_c == 1, stride_w == C, stride_h == C * W).
template <typename T>
void rows_nhwc(const Upfirdn2dCpuParams& p, int64_t begin, int64_t end) {
    using A = typename Acc<T>::type;
    const int fw = p.filter_w, fh = p.filter_h, upx = p.up_x, upy = p.up_y, dnx = p.down_x, dny = p.down_y;
    const int W = p.in_w, H = p.in_h, OW = p.out_w, OH = p.out_h, C = p.c;

    const std::vector<A> F = taps_in_order<A>(p);
    // Along x: output ox reads input ix0[ox] + j with tap tx0[ox] + j * up_x (< fw); taps outside the
    // input are dropped here, once, so that the inner loops need no checks.
    std::vector<int> tap_begin(OW + 1);
    std::vector<int> tap_ix, tap_tx;
    for (int ox = 0; ox < OW; ++ox) {
        tap_begin[ox] = static_cast<int>(tap_ix.size());
        const int s = ox * dnx - p.pad_x0;
        const int i0 = ceil_div(s, upx);
        for (int j = 0, tx = i0 * upx - s; tx < fw; ++j, tx += upx) {
            const int ix = i0 + j;
            if (ix >= 0 && ix < W) {
                tap_ix.push_back(ix);
                tap_tx.push_back(tx);
            }
        }
    }
    tap_begin[OW] = static_cast<int>(tap_ix.size());

    // The input rows this task's output rows read, widened to the accumulator type once per image (each input
    // row is read by about fh / up output rows), so that the inner loops are plain A-typed vector loops.
    const int64_t row_len = static_cast<int64_t>(W) * C;
    std::vector<A> wide;
    int64_t wide_n = -1;
    int wide_lo = 0;
    std::vector<const A*> rows(fh);
    std::vector<const A*> frs(fh);
    std::vector<A> acc(static_cast<size_t>(OW) * C);
    const T* X = static_cast<const T*>(p.x);
    T* Y = static_cast<T*>(p.y);
    constexpr int V = 16;  // channels per register block (one AVX-512 register of float32)
    const bool blocked = C % V == 0;
    for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / OH;
        const int oy = static_cast<int>(row % OH);
        if (n != wide_n) {  // a new image: widen the input rows its output rows [oy, last] of this task read
            const int last = static_cast<int>(std::min<int64_t>(end - 1 - n * OH, OH - 1));
            const int lo = std::max(0, ceil_div(oy * dny - p.pad_y0, upy));
            const int hi = std::min(H - 1, (last * dny - p.pad_y0 + fh - 1) / upy + 1);
            wide_n = n;
            wide_lo = lo;
            wide.resize(static_cast<size_t>(std::max(0, hi - lo + 1)) * row_len);
            for (int iy = lo; iy <= hi; ++iy) {
                const T* src = X + n * p.x_stride_n + static_cast<int64_t>(iy) * p.x_stride_h;
                A* dst = wide.data() + static_cast<size_t>(iy - lo) * row_len;
                for (int64_t i = 0; i < row_len; ++i) dst[i] = ld<T, A>(src, i);
            }
        }
        const int sy = oy * dny - p.pad_y0;
        const int iy0 = ceil_div(sy, upy);
        int ny = 0;
        for (int iy = iy0, ty = iy0 * upy - sy; ty < fh; ++iy, ty += upy) {
            if (iy < 0 || iy >= H) continue;
            rows[ny] = wide.data() + static_cast<size_t>(iy - wide_lo) * row_len;
            frs[ny] = F.data() + static_cast<size_t>(ty) * fw;
            ++ny;
        }
        T* out = Y + n * p.y_stride_n + static_cast<int64_t>(oy) * p.y_stride_h;
        if (blocked) {  // each output pixel's channel block summed in registers over every tap, then stored
            for (int ox = 0; ox < OW; ++ox) {
                const int k0 = tap_begin[ox], k1 = tap_begin[ox + 1];
                for (int c0 = 0; c0 < C; c0 += V) {
                    A v[V] = {};
                    for (int yi = 0; yi < ny; ++yi) {
                        const A* __restrict r = rows[yi] + c0;
                        const A* Fr = frs[yi];
                        for (int k = k0; k < k1; ++k) {
                            const A w = Fr[tap_tx[k]];
                            const A* __restrict s = r + static_cast<int64_t>(tap_ix[k]) * C;
                            for (int c = 0; c < V; ++c) v[c] += w * s[c];
                        }
                    }
                    A* __restrict a = acc.data() + static_cast<size_t>(ox) * C + c0;
                    for (int c = 0; c < V; ++c) a[c] = v[c];
                }
            }
        } else {
            std::fill(acc.begin(), acc.end(), A(0));
            for (int yi = 0; yi < ny; ++yi) {
                const A* r = rows[yi];
                const A* Fr = frs[yi];
                for (int ox = 0; ox < OW; ++ox) {
                    A* __restrict a = acc.data() + static_cast<size_t>(ox) * C;
                    for (int k = tap_begin[ox]; k < tap_begin[ox + 1]; ++k) {
                        const A w = Fr[tap_tx[k]];
                        const A* __restrict s = r + static_cast<int64_t>(tap_ix[k]) * C;
                        for (int c = 0; c < C; ++c) a[c] += w * s[c];
                    }
                }
            }
        }
        const int64_t m = static_cast<int64_t>(OW) * C;
        for (int64_t i = 0; i < m; ++i) st<T, A>(out, i, acc[i]);
    }
}
