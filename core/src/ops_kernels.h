#pragma once
// The engine's own kernels for small matrix products (ops_kernels.cpp), which MatmulEngine
// (ops_matmul.cpp) runs instead of oneDNN where MatmulEngine::usesDirectKernel says so.
// Internal to core.
#include <atomic>
#include <cstdint>

#include "ops.h"

namespace mythos::detail {

// A decode step multiplies one row by each weight matrix: the work is a few thousand
// multiply-adds, far less than what creating oneDNN memory objects and dispatching a
// primitive costs. Rows up to kSmallRows go through these direct kernels instead (AVX-512
// when the CPU has it, a portable loop otherwise); bench/NOTES.md has the numbers.
inline constexpr int64_t kSmallRows = 4;
// With AVX-512 the direct kernels also take the small prefill matmuls (MoE groups, the
// projections of models up to dim 256 at T = 64): up to kDirectRows rows and kDirectMacs
// multiply-adds they beat oneDNN's dispatch plus its packing of the weights.
inline constexpr int64_t kDirectRows = 64;
inline constexpr int64_t kDirectMacs = int64_t(1) << 21;

// Set by usePortableSmallKernels (tests).
extern std::atomic<bool> g_portableOnly;

// The AVX-512 kernels are used: the CPU has AVX-512F and usePortableSmallKernels is off.
// Inline: the element-wise ops and the matmul dispatch ask on every call.
inline bool hasAvx512() {
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes && !g_portableOnly.load(std::memory_order_relaxed);
}

// y[M,N] (+)= x[M,K] W^T, x rows ldx floats apart and y rows ldy apart, through the direct
// kernels: W^T's [K, N] copy (w.kn) for four rows or more with AVX-512, else the row kernels
// on W [N, K] (fp32 or bf16 widened as loaded); AVX-512 or portable.
void directLinear(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y, int64_t ldy,
                  bool accumulate);
// y[M,N] (+)= x[M,K] W for W stored [K, N] (fp32 or bf16), through the direct kernels.
void directMatmulKN(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y, int64_t ldy,
                    bool accumulate);

} // namespace mythos::detail
