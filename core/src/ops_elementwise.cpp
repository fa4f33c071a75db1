// The element-wise ops of ops.h: dotF64, rmsNorm, siluMul, softmaxInPlace and RoPE
// (AVX-512 where it pays and the CPU has it, plain loops otherwise).
#include "ops.h"
#include "ops_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <immintrin.h>

#include "layers.h"
#include "simd.h"

namespace mythos {
using detail::hasAvx512;

namespace {

// sum a[i] * b[i] accumulated in double: eight lanes per accumulator, two accumulators.
__attribute__((target("avx512f"))) double dotF64Avx512(const float* a, const float* b, int64_t n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_fmadd_pd(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + i)),
                             _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i)), a0);
        a1 = _mm512_fmadd_pd(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + i + 8)),
                             _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i + 8)), a1);
    }
    alignas(64) double t[8];
    _mm512_store_pd(t, _mm512_add_pd(a0, a1));
    double s = 0;
    for (double v : t)
        s += v;
    for (; i < n; ++i)
        s += double(a[i]) * double(b[i]);
    return s;
}

} // namespace

double dotF64(const float* a, const float* b, int64_t n) {
    if (hasAvx512())
        return dotF64Avx512(a, b, n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i)
        s += double(a[i]) * double(b[i]);
    return s;
}

namespace {

// a[i] = silu(a[i]) * b[i] with the vector exp.
__attribute__((target("avx512f"))) void siluMulAvx512(float* a, const float* b, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = i + 16 <= n ? simd::kAll : simd::firstLanes(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, a + i);
        const __m512 e = simd::exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
        const __m512 r = _mm512_mul_ps(_mm512_div_ps(v, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(a + i, m, r);
    }
}

} // namespace

void rmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
    detail::forEachIndex(rows, rows * n > 65536, [&](int64_t r, int) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        const float inv = 1.0f / std::sqrt(float(dotF64(xr, xr, n) / double(n)) + eps);
        for (int64_t i = 0; i < n; ++i)
            yr[i] = xr[i] * inv * w[i];
    });
}

void siluMul(float* a, const float* b, int64_t n) {
    if (hasAvx512()) {
        siluMulAvx512(a, b, n);
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        const float v = a[i];
        a[i] = v / (1.0f + std::exp(-v)) * b[i];
    }
}

void softmaxInPlace(float* x, int64_t n) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i)
        mx = std::max(mx, x[i]);
    if (mx == -std::numeric_limits<float>::infinity()) {
        std::fill(x, x + n, 0.0f);
        return;
    }
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i)
        x[i] *= inv;
}

void ropeFrequencies(int64_t d, double theta, float* freqs) {
    // 1 / (theta ** (arange(0, d, 2) / d)) in fp32, as the reference computes it.
    const float th = float(theta);
    for (int64_t i = 0; i < d / 2; ++i) {
        const float e = float(2 * i) / float(d);
        freqs[i] = 1.0f / std::pow(th, e);
    }
}

void applyRope(float* x, int64_t d, int64_t pos, const float* freqs) {
    const float p = float(pos);
    for (int64_t i = 0; i < d / 2; ++i) {
        const float angle = p * freqs[i];
        const float c = std::cos(angle), s = std::sin(angle);
        const float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

RopeTable::RopeTable(int64_t d, double theta, int64_t positions)
    : m_d(d), m_positions(std::clamp<int64_t>(positions, 0, kMaxPositions)), m_freqs(std::size_t(d / 2)),
      m_cs(std::size_t(m_positions * (d / 2) * 2)) {
    ropeFrequencies(d, theta, m_freqs.data());
    for (int64_t pos = 0; pos < m_positions; ++pos) {
        const float p = float(pos);
        float* r = m_cs.data() + pos * (d / 2) * 2;
        for (int64_t i = 0; i < d / 2; ++i) {
            const float angle = p * m_freqs[std::size_t(i)];
            r[2 * i] = std::cos(angle);
            r[2 * i + 1] = std::sin(angle);
        }
    }
}

void RopeTable::apply(float* x, int64_t pos) const {
    if (pos < 0 || pos >= m_positions) {
        applyRope(x, m_d, pos, m_freqs.data());
        return;
    }
    const float* cs = m_cs.data() + pos * (m_d / 2) * 2;
    for (int64_t i = 0; i < m_d / 2; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

} // namespace mythos
