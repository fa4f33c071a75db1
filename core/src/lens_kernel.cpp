#include "lens_kernel.h"

#include <cmath>
#include <limits>

#include "layers.h"
#include "simd.h"

namespace mythos::detail {

namespace {

// The first index of the largest value (as std::max_element), with the row's max.
LensRow finishRow(const float* z, int64_t V, float m, double s, double a, double b, double c, bool ref, bool prev,
                  double refLse, double prevLse) {
    LensRow r;
    int64_t top = 0;
    while (top < V && !(z[top] == m))
        ++top;
    r.top = int32_t(top < V ? top : 0);
    r.pTop = float(1.0 / s);
    r.lse = double(m) + std::log(s);
    r.entropy = std::log(s) + a / s;
    if (ref)
        r.klRef = b - refLse + r.lse;
    if (prev)
        r.klPrev = c / s - r.lse + prevLse;
    return r;
}

LensRow lensRowPortable(const float* z, int64_t V, const float* refP, const float* refZ, double refLse,
                        const float* prevZ, double prevLse) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < V; ++i)
        m = std::max(m, z[i]);
    double s = 0, a = 0, b = 0, c = 0;
    for (int64_t i = 0; i < V; ++i) {
        const double e = std::exp(double(z[i]) - double(m));
        s += e;
        a += e * (double(m) - double(z[i]));
        if (refP)
            b += double(refP[i]) * (double(refZ[i]) - double(z[i]));
        if (prevZ)
            c += e * (double(z[i]) - double(prevZ[i]));
    }
    return finishRow(z, V, m, s, a, b, c, refP, prevZ, refLse, prevLse);
}

__attribute__((target("avx512f"))) LensRow lensRowAvx512(const float* z, int64_t V, const float* refP,
                                                         const float* refZ, double refLse, const float* prevZ,
                                                         double prevLse) {
    using namespace simd;
    __m512 vm = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + 16 <= V; i += 16)
        vm = _mm512_maskz_max_ps(kAll, vm, _mm512_loadu_ps(z + i));
    if (i < V)
        vm = _mm512_mask_max_ps(vm, firstLanes(V - i), vm, _mm512_maskz_loadu_ps(firstLanes(V - i), z + i));
    const float m = hmax(vm);
    const __m512 mm = _mm512_set1_ps(m);
    __m512 vs = _mm512_setzero_ps(), va = vs, vb = vs, vc = vs;
    for (i = 0; i < V; i += 16) {
        const __mmask16 k = V - i >= 16 ? kAll : firstLanes(V - i);
        const __m512 zi = _mm512_maskz_loadu_ps(k, z + i);
        const __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(zi, mm)));
        vs = _mm512_add_ps(vs, e);
        va = _mm512_fmadd_ps(e, _mm512_sub_ps(mm, zi), va);
        if (refP)
            vb = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, refP + i),
                                 _mm512_sub_ps(_mm512_maskz_loadu_ps(k, refZ + i), zi), vb);
        if (prevZ)
            vc = _mm512_fmadd_ps(e, _mm512_sub_ps(zi, _mm512_maskz_loadu_ps(k, prevZ + i)), vc);
    }
    return finishRow(z, V, m, hsum(vs), hsum(va), hsum(vb), hsum(vc), refP, prevZ, refLse, prevLse);
}

} // namespace

LensRow lensRow(const float* z, int64_t V, const float* refP, const float* refZ, double refLse, const float* prevZ,
                double prevLse) {
    // A row with a non-finite value takes the exact path (the vector max and exp assume
    // finite logits; such a row shows up as non-finite sums); its numbers are NaN or
    // infinite there, as they should be.
    if (avx512Enabled()) {
        const LensRow r = lensRowAvx512(z, V, refP, refZ, refLse, prevZ, prevLse);
        if (std::isfinite(r.lse) && std::isfinite(r.entropy) && std::isfinite(r.klRef) && std::isfinite(r.klPrev))
            return r;
    }
    return lensRowPortable(z, V, refP, refZ, refLse, prevZ, prevLse);
}

} // namespace mythos::detail
