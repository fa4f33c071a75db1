// One attention head over a causal window: scores, softmax and the weighted sum of values,
// vectorised over keys (AVX-512) with a portable fallback of the same arithmetic.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <immintrin.h>

#include "layers.h"
#include "ops.h"
#include "simd.h"

namespace mythos {

namespace {

// Scratch of one thread: the head's keys transposed to [dk][S rounded up to 16] and one row
// of probabilities. Grown on demand, never shrunk, so a run allocates once per thread.
struct AttendScratch {
    std::vector<float> kt;
    std::vector<float> p;
    std::vector<float> q;
};

AttendScratch& scratch() {
    thread_local AttendScratch s;
    return s;
}

int64_t roundUp16(int64_t n) { return (n + 15) / 16 * 16; }

// Gathers the two parts of the keys into kt[e][j] (e < d1 from k1, then d2 from k2), zero
// past S up to the padded width.
void transposeKeys(const AttendKeys& k, int64_t S, int64_t Sp, float* kt) {
    const int64_t dk = k.d1 + k.d2;
    for (int64_t j = 0; j < S; ++j) {
        const float* r1 = k.k1 + j * k.ld1;
        for (int64_t e = 0; e < k.d1; ++e)
            kt[e * Sp + j] = r1[e];
        const float* r2 = k.k2 + j * k.ld2;
        for (int64_t e = 0; e < k.d2; ++e)
            kt[(k.d1 + e) * Sp + j] = r2[e];
    }
    for (int64_t e = 0; e < dk; ++e)
        std::fill(kt + e * Sp + S, kt + e * Sp + Sp, 0.0f);
}

// ---- AVX-512 ----

// sum over `d` lanes of q * k, accumulated into acc (d any width, masked tail).
__attribute__((target("avx512f"))) inline __m512 fmaRow(const float* q, const float* k, int64_t d, __m512 acc) {
    int64_t e = 0;
    for (; e + 16 <= d; e += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + e), _mm512_loadu_ps(k + e), acc);
    if (e < d) {
        const __mmask16 m = simd::firstLanes(d - e);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + e), _mm512_maskz_loadu_ps(m, k + e), acc);
    }
    return acc;
}

__attribute__((target("avx512f"))) inline __m512 dotKey(const float* q1, const float* q2, const AttendKeys& k,
                                                        int64_t j, __m512 acc) {
    acc = fmaRow(q1, k.k1 + j * k.ld1, k.d1, acc);
    return fmaRow(q2, k.k2 + j * k.ld2, k.d2, acc);
}

// Scores of one query against keys 0..n-1 read in place, four keys per lane reduction:
// cheaper than transposing the keys when only a few queries share them (decode steps).
__attribute__((target("avx512f"))) void scoresDirect(const float* q1, const float* q2, const AttendKeys& k, int64_t n,
                                                     float scale, float* p) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const __m512 z = _mm512_setzero_ps();
        simd::hsum4(dotKey(q1, q2, k, j, z), dotKey(q1, q2, k, j + 1, z), dotKey(q1, q2, k, j + 2, z),
                    dotKey(q1, q2, k, j + 3, z), p + j);
        for (int i = 0; i < 4; ++i)
            p[j + i] *= scale;
    }
    for (; j < n; ++j) {
        float r[4];
        const __m512 z = _mm512_setzero_ps();
        simd::hsum4(dotKey(q1, q2, k, j, z), z, z, z, r);
        p[j] = r[0] * scale;
    }
}

// Below this many queries the scores are computed from the keys in place (scoresDirect);
// from it on, transposing the keys once pays for itself.
constexpr int64_t kTransposeFromQueries = 8;

// Scores of one query against G chunks of 16 transposed keys (kt rows Sp apart): two partial
// sums per chunk (even and odd key dimensions) so that even one chunk is not one long chain
// of dependent multiply-adds.
template <int G>
__attribute__((target("avx512f"))) inline void scoreChunks(const float* qi, const float* base, int64_t dk, int64_t Sp,
                                                           __m512 scale, float* p) {
    __m512 a[G], b[G];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
        a[g] = _mm512_setzero_ps();
        b[g] = _mm512_setzero_ps();
    }
    int64_t e = 0;
    for (; e + 2 <= dk; e += 2) {
        const __m512 q0 = _mm512_set1_ps(qi[e]), q1 = _mm512_set1_ps(qi[e + 1]);
        const float* r0 = base + e * Sp;
        const float* r1 = r0 + Sp;
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
            a[g] = _mm512_fmadd_ps(q0, _mm512_loadu_ps(r0 + 16 * g), a[g]);
            b[g] = _mm512_fmadd_ps(q1, _mm512_loadu_ps(r1 + 16 * g), b[g]);
        }
    }
    if (e < dk) {
        const __m512 q0 = _mm512_set1_ps(qi[e]);
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g)
            a[g] = _mm512_fmadd_ps(q0, _mm512_loadu_ps(base + e * Sp + 16 * g), a[g]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g)
        _mm512_storeu_ps(p + 16 * g, _mm512_mul_ps(_mm512_add_ps(a[g], b[g]), scale));
}

// Softmax over p[0..n) in place; p is padded to a multiple of 16 floats (the lanes past n
// end up 0).
__attribute__((target("avx512f"))) void softmaxAvx512(float* p, int64_t n) {
    const int64_t full = n / 16, tail = n % 16;
    const __mmask16 tmask = __mmask16((1u << tail) - 1u);
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t b = 0; b < full; ++b)
        mx = _mm512_maskz_max_ps(simd::kAll, mx, _mm512_loadu_ps(p + b * 16));
    if (tail)
        mx = _mm512_mask_max_ps(mx, tmask, mx, _mm512_loadu_ps(p + full * 16));
    const __m512 vmax = _mm512_set1_ps(simd::hmax(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t b = 0; b < full; ++b) {
        const __m512 ex = simd::exp16(_mm512_sub_ps(_mm512_loadu_ps(p + b * 16), vmax));
        _mm512_storeu_ps(p + b * 16, ex);
        sum = _mm512_add_ps(sum, ex);
    }
    if (tail) {
        const __m512 ex = _mm512_maskz_mov_ps(tmask, simd::exp16(_mm512_sub_ps(_mm512_loadu_ps(p + full * 16), vmax)));
        _mm512_storeu_ps(p + full * 16, ex);
        sum = _mm512_add_ps(sum, ex);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / simd::hsum(sum));
    for (int64_t b = 0; b < (n + 15) / 16; ++b)
        _mm512_storeu_ps(p + b * 16, _mm512_mul_ps(_mm512_loadu_ps(p + b * 16), inv));
}

// acc[g][jj] += the products of keys j..j+3 (one part: kp, rows ld apart, d wide) with the
// queries' same part (qp + g * ldq).
template <int G>
__attribute__((target("avx512f"))) inline void sharedScorePart(const float* qp, int64_t ldq, const float* kp,
                                                               int64_t ld, int64_t d, int64_t j, __m512 (&acc)[G][4]) {
    for (int64_t e = 0; e < d; e += 16) { // masked loads: a full mask for whole chunks, the tail's last
        const __mmask16 m = e + 16 <= d ? simd::kAll : simd::firstLanes(d - e);
        __m512 kv[4];
#pragma GCC unroll 4
        for (int jj = 0; jj < 4; ++jj)
            kv[jj] = _mm512_maskz_loadu_ps(m, kp + (j + jj) * ld + e);
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
            const __m512 qv = _mm512_maskz_loadu_ps(m, qp + g * ldq + e);
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; ++jj)
                acc[g][jj] = _mm512_fmadd_ps(qv, kv[jj], acc[g][jj]);
        }
    }
}

// Every accumulator of a G x 4 block set to zero.
template <int G>
__attribute__((target("avx512f"))) inline void zeroBlock(__m512 (&acc)[G][4]) {
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
        for (int jj = 0; jj < 4; ++jj)
            acc[g][jj] = _mm512_setzero_ps();
}

// G heads' single queries against one shared KV head (attendSharedKv): the arithmetic of
// attendAvx512 for T = 1 (scoresDirect's sums, the same softmax, the value sum's four
// accumulators by key index mod 4), with every key and value load serving all G heads.
// Query g is q.q1 + g * q.ld1 and q.q2 + g * q.ld2. p: G rows of Sp floats.
template <int G>
__attribute__((target("avx512f"))) void attendSharedAvx512(const AttendQuery& q, const AttendKeys& k,
                                                           const AttendValues& v, int64_t S, float scale, float* out,
                                                           int64_t ldo, float* p, int64_t Sp) {
    const __m512 z = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 4 <= S; j += 4) {
        __m512 acc[G][4];
        zeroBlock<G>(acc);
        sharedScorePart<G>(q.q1, q.ld1, k.k1, k.ld1, k.d1, j, acc);
        sharedScorePart<G>(q.q2, q.ld2, k.k2, k.ld2, k.d2, j, acc);
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
            float* pg = p + g * Sp + j;
            simd::hsum4(acc[g][0], acc[g][1], acc[g][2], acc[g][3], pg);
            for (int i = 0; i < 4; ++i)
                pg[i] *= scale;
        }
    }
    for (; j < S; ++j)
        for (int g = 0; g < G; ++g) {
            float r[4];
            simd::hsum4(dotKey(q.q1 + g * q.ld1, q.q2 + g * q.ld2, k, j, z), z, z, z, r);
            p[g * Sp + j] = r[0] * scale;
        }
    for (int g = 0; g < G; ++g)
        softmaxAvx512(p + g * Sp, S);
    for (int64_t c0 = 0; c0 < v.dv; c0 += 16) {
        const __mmask16 m = c0 + 16 <= v.dv ? simd::kAll : simd::firstLanes(v.dv - c0);
        const float* vb = v.v + c0;
        __m512 a[G][4];
        zeroBlock<G>(a);
        int64_t i = 0;
        for (; i + 4 <= S; i += 4)
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; ++jj) {
                const __m512 vv = _mm512_maskz_loadu_ps(m, vb + (i + jj) * v.ld);
#pragma GCC unroll 4
                for (int g = 0; g < G; ++g)
                    a[g][jj] = _mm512_fmadd_ps(_mm512_set1_ps(p[g * Sp + i + jj]), vv, a[g][jj]);
            }
        for (; i < S; ++i) {
            const __m512 vv = _mm512_maskz_loadu_ps(m, vb + i * v.ld);
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g)
                a[g][0] = _mm512_fmadd_ps(_mm512_set1_ps(p[g * Sp + i]), vv, a[g][0]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g)
            _mm512_mask_storeu_ps(out + g * ldo + c0, m,
                                  _mm512_add_ps(_mm512_add_ps(a[g][0], a[g][1]), _mm512_add_ps(a[g][2], a[g][3])));
    }
}

__attribute__((target("avx512f"))) void attendAvx512(const AttendQuery& q, int64_t T, const AttendKeys& k,
                                                     const AttendValues& v, int64_t S, float scale, float* out,
                                                     int64_t ldo, AttendScratch& s) {
    const int64_t dk = k.d1 + k.d2, dv = v.dv, prev = S - T, Sp = roundUp16(S);
    const bool transposed = T >= kTransposeFromQueries;
    s.p.resize(std::size_t(Sp));
    s.q.resize(std::size_t(dk));
    if (transposed) {
        s.kt.resize(std::size_t(dk * Sp));
        transposeKeys(k, S, Sp, s.kt.data());
    }
    const float* kt = s.kt.data();
    float* p = s.p.data();
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < T; ++i) {
        const int64_t n = prev + i + 1; // keys 0..prev+i are visible
        if (!transposed) {
            scoresDirect(q.q1 + i * q.ld1, q.q2 + i * q.ld2, k, n, scale, p);
        } else {
            std::copy(q.q1 + i * q.ld1, q.q1 + i * q.ld1 + k.d1, s.q.begin());
            std::copy(q.q2 + i * q.ld2, q.q2 + i * q.ld2 + k.d2, s.q.begin() + k.d1);
            const float* qi = s.q.data();
            const int64_t chunks = (n + 15) / 16;
            for (int64_t c = 0; c < chunks; c += 4) {
                const float* base = kt + c * 16;
                switch (std::min<int64_t>(4, chunks - c)) {
                case 4: scoreChunks<4>(qi, base, dk, Sp, vscale, p + c * 16); break;
                case 3: scoreChunks<3>(qi, base, dk, Sp, vscale, p + c * 16); break;
                case 2: scoreChunks<2>(qi, base, dk, Sp, vscale, p + c * 16); break;
                default: scoreChunks<1>(qi, base, dk, Sp, vscale, p + c * 16); break;
                }
            }
        }
        softmaxAvx512(p, n);
        // out_i = sum_j p_j v_j, 16 value lanes at a time, four keys in flight.
        float* o = out + i * ldo;
        for (int64_t c0 = 0; c0 < dv; c0 += 16) {
            const __mmask16 m = c0 + 16 <= dv ? __mmask16(0xFFFF) : __mmask16((1u << (dv - c0)) - 1u);
            const float* vb = v.v + c0;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
                   a3 = _mm512_setzero_ps();
            int64_t j = 0;
            for (; j + 4 <= n; j += 4) {
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, vb + j * v.ld), a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 1]), _mm512_maskz_loadu_ps(m, vb + (j + 1) * v.ld), a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 2]), _mm512_maskz_loadu_ps(m, vb + (j + 2) * v.ld), a2);
                a3 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 3]), _mm512_maskz_loadu_ps(m, vb + (j + 3) * v.ld), a3);
            }
            for (; j < n; ++j)
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, vb + j * v.ld), a0);
            const __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
            _mm512_mask_storeu_ps(o + c0, m, acc);
        }
    }
}

// ---- portable ----

void attendPortable(const AttendQuery& q, int64_t T, const AttendKeys& k, const AttendValues& v, int64_t S, float scale,
                    float* out, int64_t ldo, AttendScratch& s) {
    const int64_t dk = k.d1 + k.d2, dv = v.dv, prev = S - T, Sp = roundUp16(S);
    s.kt.resize(std::size_t(dk * Sp));
    s.p.resize(std::size_t(Sp));
    s.q.resize(std::size_t(dk));
    transposeKeys(k, S, Sp, s.kt.data());
    const float* kt = s.kt.data();
    float* p = s.p.data();
    for (int64_t i = 0; i < T; ++i) {
        std::copy(q.q1 + i * q.ld1, q.q1 + i * q.ld1 + k.d1, s.q.begin());
        std::copy(q.q2 + i * q.ld2, q.q2 + i * q.ld2 + k.d2, s.q.begin() + k.d1);
        const int64_t n = prev + i + 1;
        std::fill(p, p + n, 0.0f);
        for (int64_t e = 0; e < dk; ++e) {
            const float qe = s.q[std::size_t(e)];
            const float* row = kt + e * Sp;
            for (int64_t j = 0; j < n; ++j)
                p[j] += qe * row[j];
        }
        for (int64_t j = 0; j < n; ++j)
            p[j] *= scale;
        softmaxInPlace(p, n);
        float* o = out + i * ldo;
        std::fill(o, o + dv, 0.0f);
        for (int64_t j = 0; j < n; ++j) {
            const float pj = p[j];
            const float* vj = v.v + j * v.ld;
            for (int64_t c = 0; c < dv; ++c)
                o[c] += pj * vj[c];
        }
    }
}

} // namespace

void attendSharedKv(const AttendQuery& q, int64_t heads, const AttendKeys& k, const AttendValues& v, int64_t S,
                    float scale, float* out, int64_t ldo) {
    if (heads <= 0 || S <= 0)
        return;
    const auto head = [&](int64_t h) {
        return AttendQuery{q.q1 + h * q.ld1, q.ld1, q.q2 ? q.q2 + h * q.ld2 : nullptr, q.ld2};
    };
    if (!detail::avx512Enabled()) {
        for (int64_t h = 0; h < heads; ++h)
            attendHead(head(h), 1, k, v, S, scale, out + h * ldo, ldo);
        return;
    }
    AttendScratch& s = scratch();
    const int64_t Sp = roundUp16(S);
    s.p.resize(std::size_t(4 * Sp));
    for (int64_t h = 0; h < heads; h += 4) {
        const AttendQuery qh = head(h);
        float* oh = out + h * ldo;
        switch (std::min<int64_t>(4, heads - h)) {
        case 4: attendSharedAvx512<4>(qh, k, v, S, scale, oh, ldo, s.p.data(), Sp); break;
        case 3: attendSharedAvx512<3>(qh, k, v, S, scale, oh, ldo, s.p.data(), Sp); break;
        case 2: attendSharedAvx512<2>(qh, k, v, S, scale, oh, ldo, s.p.data(), Sp); break;
        default: attendSharedAvx512<1>(qh, k, v, S, scale, oh, ldo, s.p.data(), Sp); break;
        }
    }
}

void attendHead(const AttendQuery& q, int64_t T, const AttendKeys& k, const AttendValues& v, int64_t S, float scale,
                float* out, int64_t ldo) {
    if (T <= 0)
        return;
    if (S < T)
        throw std::invalid_argument("attendHead: fewer keys than queries");
    AttendScratch& s = scratch();
    if (detail::avx512Enabled())
        attendAvx512(q, T, k, v, S, scale, out, ldo, s);
    else
        attendPortable(q, T, k, v, S, scale, out, ldo, s);
}

} // namespace mythos
