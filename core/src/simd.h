#pragma once
// AVX-512 helpers shared by the kernels (callers are compiled for AVX-512F through
// target attributes and reached only where the CPU has it).
#include <cstdint>

#include <immintrin.h>

namespace mythos::simd {

// Zero-masked forms with a full mask stand in for some unmasked intrinsics: GCC 12 warns
// falsely about the unmasked ones' undefined pass-through operand.
constexpr __mmask16 kAll = 0xFFFF;

// e^x, Cephes' single-precision polynomial on x - n ln2 and a scalef by 2^n: within 2 ulp of
// expf on [-87, 88]; x is clamped to [-103, 88.7], so far below gives 0 (through the
// scaling's underflow) and far above 3.4e38.
__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
    x = _mm512_maskz_max_ps(kAll, x, _mm512_set1_ps(-103.0f));
    x = _mm512_maskz_min_ps(kAll, x, _mm512_set1_ps(88.7f));
    const __m512 n = _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps(kAll, y, n);
}

// Sum and maximum of the 16 lanes (through memory: GCC 12 warns falsely inside
// _mm512_reduce_add_ps).
__attribute__((target("avx512f"))) inline float hsum(__m512 v) {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    float s = 0;
    for (float x : t)
        s += x;
    return s;
}

__attribute__((target("avx512f"))) inline float hmax(__m512 v) {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 16; ++i)
        m = m < t[i] ? t[i] : m;
    return m;
}

// Lane mask of the first n (< 16) lanes.
inline __mmask16 firstLanes(int64_t n) { return __mmask16((1u << n) - 1u); }

// The lane sums of four vectors at once: 128-bit quarters folded pairwise with shuffles,
// then the four lanes of each quarter, so four outputs cost about as much as one hsum.
__attribute__((target("avx512f"))) inline void hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3, float* out) {
    const __m512 s01 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, a0, a1, 0x44),
                                     _mm512_maskz_shuffle_f32x4(kAll, a0, a1, 0xEE)); // a0:q0+q2,q1+q3 a1:..
    const __m512 s23 =
        _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, a2, a3, 0x44), _mm512_maskz_shuffle_f32x4(kAll, a2, a3, 0xEE));
    __m512 t = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, s01, s23, 0x88),
                             _mm512_maskz_shuffle_f32x4(kAll, s01, s23, 0xDD)); // quarter i: 4 partials of a_i
    t = _mm512_add_ps(t, _mm512_maskz_permute_ps(kAll, t, 0x4E));
    t = _mm512_add_ps(t, _mm512_maskz_permute_ps(kAll, t, 0xB1));
    alignas(64) float r[16];
    _mm512_store_ps(r, t);
    out[0] = r[0];
    out[1] = r[4];
    out[2] = r[8];
    out[3] = r[12];
}

} // namespace mythos::simd
