// The engine's own kernels for small matrix products (ops_kernels.h): AVX-512 where the
// CPU has it, portable loops otherwise.
#include "ops_kernels.h"
#include "halfprecision.h"

#include <algorithm>

#include <immintrin.h>

#include "layers.h"
#include "simd.h"

namespace mythos {
namespace detail {

std::atomic<bool> g_portableOnly{false};

bool avx512Enabled() { return hasAvx512(); }

} // namespace detail

namespace {
using detail::hasAvx512;

// ---- bf16 weights ----
// The small-row kernels widen the weights as they load them (bf16ToFloat's shift) and keep
// x in fp32, so the only rounding beyond fp32's is the weights' own.

// One 16-lane load of a weight row as fp32 (whole or the first `tail` lanes, the rest 0):
// fp32 rows load directly, bf16 rows are widened. The widening is AVX512F only, so both
// weight types run wherever the fp32 kernel does; the bf16 tail goes through a zeroed
// buffer (a masked 16-bit load would need AVX512BW/VL). The zero-masked conversions with a
// full mask: GCC 12 warns falsely about the unmasked ones' undefined pass-through operand.
__attribute__((target("avx512f"))) inline __m512 loadRow(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f"))) inline __m512 loadRow(const float* p, __mmask16 tail) {
    return _mm512_maskz_loadu_ps(tail, p);
}
__attribute__((target("avx512f"))) inline __m512 widenBf16x16(__m256i raw) {
    const __mmask16 all = 0xFFFF;
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, raw), 16));
}
__attribute__((target("avx512f"))) inline __m512 loadRow(const uint16_t* p) {
    return widenBf16x16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
__attribute__((target("avx512f"))) inline __m512 loadRow(const uint16_t* p, __mmask16 tail) {
    alignas(32) uint16_t buf[16] = {};
    for (int i = 0; i < 16; ++i)
        if (tail & (1u << i))
            buf[i] = p[i];
    return widenBf16x16(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf)));
}

// MB rows of y (+)= x W^T for w [N][K] row-major, w fp32 or bf16 (widened as loaded, x kept
// in fp32). Blocks of MB x rows by four weight rows: each weight load serves MB rows and
// each x load four weight rows, and one shuffle reduction (hsum4) yields four outputs.
// A one-row product (decode) reads each weight once, from L2 or L3: software prefetch of
// the rows this far ahead keeps the loads ahead of the short row-streams the hardware
// prefetcher sees (+5-10% decode, bench/NOTES.md). Prefetching past the end is harmless.
constexpr int64_t kPrefetchRows = 8;

template <typename W, int MB>
__attribute__((target("avx512f"))) void linearRowsAvx512(const float* x, int64_t K, int64_t ldx, const W* w, int64_t N,
                                                         float* y, int64_t ldy, bool accumulate) {
    const int64_t tail = K % 16, body = K - tail;
    const __mmask16 mask = simd::firstLanes(tail);
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const W* wr[4] = {w + n * K, w + (n + 1) * K, w + (n + 2) * K, w + (n + 3) * K};
        __m512 a[MB][4];
#pragma GCC unroll 4
        for (int r = 0; r < MB; ++r)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j)
                a[r][j] = _mm512_setzero_ps();
        for (int64_t k = 0; k < body; k += 16) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                if constexpr (MB == 1) // a decode step streams W once: fetch two blocks ahead
                    _mm_prefetch(reinterpret_cast<const char*>(wr[j] + k + kPrefetchRows * K), _MM_HINT_T0);
                wv[j] = loadRow(wr[j] + k);
            }
#pragma GCC unroll 4
            for (int r = 0; r < MB; ++r) {
                const __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j)
                    a[r][j] = _mm512_fmadd_ps(xv, wv[j], a[r][j]);
            }
        }
        if (tail) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j)
                wv[j] = loadRow(wr[j] + body, mask);
#pragma GCC unroll 4
            for (int r = 0; r < MB; ++r) {
                const __m512 xv = _mm512_maskz_loadu_ps(mask, x + r * ldx + body);
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j)
                    a[r][j] = _mm512_fmadd_ps(xv, wv[j], a[r][j]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < MB; ++r) {
            float s[4];
            simd::hsum4(a[r][0], a[r][1], a[r][2], a[r][3], s);
            float* yr = y + r * ldy + n;
            for (int j = 0; j < 4; ++j)
                yr[j] = accumulate ? yr[j] + s[j] : s[j];
        }
    }
    for (; n < N; ++n) {
        const W* wn = w + n * K;
        for (int r = 0; r < MB; ++r) {
            const float* xr = x + r * ldx;
            __m512 acc = _mm512_setzero_ps();
            for (int64_t k = 0; k < body; k += 16)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(xr + k), loadRow(wn + k), acc);
            if (tail)
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xr + body), loadRow(wn + body, mask), acc);
            const float v = simd::hsum(acc);
            y[r * ldy + n] = accumulate ? y[r * ldy + n] + v : v;
        }
    }
}

// MB rows of y (+)= x W for W^T stored [K, N] (wt, rows N floats apart): each x value is
// broadcast against 64 contiguous columns of W^T, so no lane sums are needed. Blocks of 64
// columns, then 16 at a time with a masked tail.
template <int MB>
__attribute__((target("avx512f"))) void knRowsAvx512(const float* x, int64_t K, int64_t ldx, const float* wt, int64_t N,
                                                     float* y, int64_t ldy, bool accumulate) {
    int64_t n0 = 0;
    for (; n0 + 64 <= N; n0 += 64) {
        __m512 a[MB][4];
#pragma GCC unroll 4
        for (int r = 0; r < MB; ++r)
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c)
                a[r][c] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; ++k) {
            const float* wk = wt + k * N + n0;
            __m512 wv[4];
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c)
                wv[c] = _mm512_loadu_ps(wk + 16 * c);
#pragma GCC unroll 4
            for (int r = 0; r < MB; ++r) {
                const __m512 b = _mm512_set1_ps(x[r * ldx + k]);
#pragma GCC unroll 4
                for (int c = 0; c < 4; ++c)
                    a[r][c] = _mm512_fmadd_ps(b, wv[c], a[r][c]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < MB; ++r)
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c) {
                float* yp = y + r * ldy + n0 + 16 * c;
                _mm512_storeu_ps(yp, accumulate ? _mm512_add_ps(a[r][c], _mm512_loadu_ps(yp)) : a[r][c]);
            }
    }
    for (; n0 < N; n0 += 16) {
        const __mmask16 m = n0 + 16 <= N ? simd::kAll : simd::firstLanes(N - n0);
        __m512 a[MB];
#pragma GCC unroll 4
        for (int r = 0; r < MB; ++r)
            a[r] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; ++k) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, wt + k * N + n0);
#pragma GCC unroll 4
            for (int r = 0; r < MB; ++r)
                a[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + k]), wv, a[r]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < MB; ++r) {
            float* yp = y + r * ldy + n0;
            _mm512_mask_storeu_ps(yp, m, accumulate ? _mm512_add_ps(a[r], _mm512_maskz_loadu_ps(m, yp)) : a[r]);
        }
    }
}

// block.template operator()<MB>(m) over the rows of M: blocks of four rows, then one block
// of the remaining one to three.
template <typename Block>
void forRowBlocks(int64_t M, const Block& block) {
    int64_t m = 0;
    for (; m + 4 <= M; m += 4)
        block.template operator()<4>(m);
    switch (M - m) {
    case 3: block.template operator()<3>(m); break;
    case 2: block.template operator()<2>(m); break;
    case 1: block.template operator()<1>(m); break;
    default: break;
    }
}

// y[M,N] (+)= x W through knRowsAvx512, four rows of x at a time.
__attribute__((target("avx512f"))) void knLinearAvx512(const float* x, int64_t M, int64_t K, int64_t ldx,
                                                       const float* wt, int64_t N, float* y, int64_t ldy,
                                                       bool accumulate) {
    forRowBlocks(
        M, [&]<int MB>(int64_t m) { knRowsAvx512<MB>(x + m * ldx, K, ldx, wt, N, y + m * ldy, ldy, accumulate); });
}

// y[M,N] (+)= x W^T through linearRowsAvx512, four rows of x at a time.
template <typename W>
__attribute__((target("avx512f"))) void smallLinearAvx512(const float* x, int64_t M, int64_t K, int64_t ldx, const W* w,
                                                          int64_t N, float* y, int64_t ldy, bool accumulate) {
    forRowBlocks(M, [&]<int MB>(int64_t m) {
        linearRowsAvx512<W, MB>(x + m * ldx, K, ldx, w, N, y + m * ldy, ldy, accumulate);
    });
}

// y[m][:] (+)= sum_k x[m][k] * w[k][:] for w [K][N] row-major (fp32 or bf16, widened as
// loaded).
template <typename W>
__attribute__((target("avx512f"))) void smallMatmulKNAvx512(const float* x, int64_t M, int64_t K, int64_t ldx,
                                                            const W* w, int64_t N, float* y, int64_t ldy,
                                                            bool accumulate) {
    for (int64_t m = 0; m < M; ++m) {
        const float* xm = x + m * ldx;
        float* ym = y + m * ldy;
        for (int64_t n0 = 0; n0 < N; n0 += 16) {
            const bool full = n0 + 16 <= N;
            const __mmask16 mk = full ? simd::kAll : simd::firstLanes(N - n0);
            __m512 acc = _mm512_setzero_ps();
            for (int64_t k = 0; k < K; ++k) {
                const __m512 wk = full ? loadRow(w + k * N + n0) : loadRow(w + k * N + n0, mk);
                acc = _mm512_fmadd_ps(_mm512_set1_ps(xm[k]), wk, acc);
            }
            if (accumulate)
                acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mk, ym + n0));
            _mm512_mask_storeu_ps(ym + n0, mk, acc);
        }
    }
}

inline float weightValue(float v) { return v; }
inline float weightValue(uint16_t b) { return bf16ToFloat(b); }

template <typename W>
void smallLinearPortable(const float* x, int64_t M, int64_t K, int64_t ldx, const W* w, int64_t N, float* y,
                         int64_t ldy, bool accumulate) {
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
            float acc[8] = {};
            const float* xm = x + m * ldx;
            const W* wn = w + n * K;
            int64_t k = 0;
            for (; k + 8 <= K; k += 8)
                for (int i = 0; i < 8; ++i)
                    acc[i] += xm[k + i] * weightValue(wn[k + i]);
            float r = 0;
            for (; k < K; ++k)
                r += xm[k] * weightValue(wn[k]);
            for (float a : acc)
                r += a;
            y[m * ldy + n] = accumulate ? y[m * ldy + n] + r : r;
        }
}

template <typename W>
void smallMatmulKNPortable(const float* x, int64_t M, int64_t K, int64_t ldx, const W* w, int64_t N, float* y,
                           int64_t ldy, bool accumulate) {
    for (int64_t m = 0; m < M; ++m) {
        float* ym = y + m * ldy;
        if (!accumulate)
            std::fill(ym, ym + N, 0.0f);
        for (int64_t k = 0; k < K; ++k) {
            const float xk = x[m * ldx + k];
            const W* wk = w + k * N;
            for (int64_t n = 0; n < N; ++n)
                ym[n] += xk * weightValue(wk[n]);
        }
    }
}

} // namespace

// The direct kernels: W^T for four rows or more when the model made the [K, N] copy, else
// the row kernels; AVX-512 or portable.
void detail::directLinear(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y,
                          int64_t ldy, bool accumulate) {
    if (w.kn && M >= 4 && hasAvx512()) {
        knLinearAvx512(x, M, K, ldx, w.kn, N, y, ldy, accumulate);
        return;
    }
    if (!hasAvx512()) {
        if (w.bf16)
            smallLinearPortable(x, M, K, ldx, w.bf16, N, y, ldy, accumulate);
        else
            smallLinearPortable(x, M, K, ldx, w.f32, N, y, ldy, accumulate);
    } else if (w.bf16) {
        smallLinearAvx512(x, M, K, ldx, w.bf16, N, y, ldy, accumulate);
    } else {
        smallLinearAvx512(x, M, K, ldx, w.f32, N, y, ldy, accumulate);
    }
}

// The [K, N] kernels: AVX-512 or portable.
void detail::directMatmulKN(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y,
                            int64_t ldy, bool accumulate) {
    const bool simd = hasAvx512();
    if (w.bf16)
        simd ? smallMatmulKNAvx512(x, M, K, ldx, w.bf16, N, y, ldy, accumulate)
             : smallMatmulKNPortable(x, M, K, ldx, w.bf16, N, y, ldy, accumulate);
    else
        simd ? smallMatmulKNAvx512(x, M, K, ldx, w.f32, N, y, ldy, accumulate)
             : smallMatmulKNPortable(x, M, K, ldx, w.f32, N, y, ldy, accumulate);
}

void usePortableSmallKernels(bool on) { detail::g_portableOnly.store(on); }

} // namespace mythos
