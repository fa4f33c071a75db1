#pragma once
// Numerical building blocks. Every Linear goes through oneDNN matmul (primitives created
// once per shape and reused) or, for small products, the engine's own kernels; the small
// element-wise work is plain loops. Internal to core: the tests, benchmarks and fuzzers
// reach it through the mythos::core_internal target (docs/engine.md); programs see only
// mythos/runtime.h. Defined in ops_matmul.cpp, ops_kernels.cpp, ops_elementwise.cpp and
// attend.cpp.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "mythos/runtime.h"

namespace mythos {

struct MatmulKey; // a oneDNN primitive's shape (ops_matmul.cpp)

// A Linear weight [N, K] row-major, held as fp32 or as bf16 bits (WeightType::BF16). A
// plain `const float*` converts to an fp32 weight.
//
// `kn`, when set, is the same fp32 matrix transposed to [K, N]: the direct kernels use it for
// products of four rows or more, where broadcasting x against contiguous rows of W^T needs
// no reductions (1.2-2.5x faster than the [N, K] form at K = 32-128). The model makes these
// copies for its small fp32 matrices only (Model::kernelCopyBytes).
struct WeightRef {
    const float* f32 = nullptr;
    const uint16_t* bf16 = nullptr;
    const float* kn = nullptr;
    WeightRef() = default;
    WeightRef(const float* w) : f32(w) {} // implicit: fp32 is the common case
    static WeightRef bf16Bits(const uint16_t* w) {
        WeightRef r;
        r.bf16 = w;
        return r;
    }
    // The matrix from row `first` on, rows `width` values long (without the [K, N] copy).
    WeightRef rowsFrom(int64_t first, int64_t width) const {
        WeightRef r;
        if (f32)
            r.f32 = f32 + first * width;
        if (bf16)
            r.bf16 = bf16 + first * width;
        return r;
    }
};

// y[M,N] = x[M,K] * W^T (+ y when accumulate), W stored row-major as [N,K] like
// nn.Linear.weight. One instance per thread of use; not thread-safe.
// With bf16 weights the products accumulate in fp32: the direct kernels (usesDirectKernel)
// widen the weights in registers and keep x in fp32; larger products go through oneDNN's
// bf16 matmul (x rounded to bf16, fp32 accumulation and output), or, where oneDNN has no
// bf16 matmul (no AVX-512), through the fp32 matmul on blocks of weight rows widened to fp32.
class MatmulEngine {
public:
    MatmulEngine();
    ~MatmulEngine();
    MatmulEngine(const MatmulEngine&) = delete;
    MatmulEngine& operator=(const MatmulEngine&) = delete;

    void linear(const float* x, int64_t M, int64_t K, WeightRef w, int64_t N, float* y, bool accumulate = false);
    // Same, with x rows ldx floats apart and y rows ldy floats apart.
    void linearStrided(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y, int64_t ldy,
                       bool accumulate = false);

    // One product of a group that shares its input (linearGroup): y = x W^T, y [M, n] with
    // rows ldy floats apart (0: n).
    struct GroupOut {
        WeightRef w;
        int64_t n;
        float* y;
        int64_t ldy = 0;
    };
    // Every product of `outs` from the same x [M, K] (no accumulation): a decode step's
    // q, k and v, or an FFN's gate and up, handed to the spin team at once.
    void linearGroup(const float* x, int64_t M, int64_t K, std::initializer_list<GroupOut> outs);

    // y[M,N] = x[M,K] * W (+ y), W stored row-major as [K,N] (used untransposed, like the
    // reference's `down @ lora.B`).
    void matmulKN(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y, bool accumulate = false);
    // Same, with x rows ldx floats apart, y rows ldy floats apart, and W fp32 or bf16.
    void matmulKNStrided(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y,
                         int64_t ldy, bool accumulate = false);

    std::size_t primitiveCount() const; // cached primitives (for tests)
    // Whether an M x K x N product runs in the engine's own kernels rather than oneDNN: up
    // to 4 rows always, and with AVX-512 up to 64 rows and 2^21 multiply-adds. (bf16
    // weights there are widened as loaded and x stays fp32.)
    static bool usesDirectKernel(int64_t M, int64_t K, int64_t N);

private:
    struct Impl;
    struct Primitive;
    // A oneDNN product through the primitive of `key`, split by columns over the spin team
    // when it is large; run executes one primitive on this thread.
    void execute(const MatmulKey& key, const void* x, int64_t M, int64_t ldx, const void* w, float* y, int64_t ldy);
    void run(Primitive& p, const void* x, int64_t M, int64_t ldx, const void* w, float* y, int64_t ldy);
    void runBf16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w, int64_t N, float* y, int64_t ldy,
                 bool accumulate);
    std::unique_ptr<Impl> m_impl;
};

// Plain reference path for tests: y = x W^T (+ y).
void linearReference(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y,
                     bool accumulate = false);

// sum a[i] * b[i] in double precision (rmsNorm's sum of squares, the halting logit): a long
// row (dim 2048+) stays as exact as fp32 inputs allow.
double dotF64(const float* a, const float* b, int64_t n);

// y = x * (mean(x^2) + eps)^(-1/2) * w over rows of width n (the sum of squares in double).
void rmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps = 1e-6f);

// a[i] = silu(a[i]) * b[i]
void siluMul(float* a, const float* b, int64_t n);

// In-place softmax over n values (max-subtracted); -inf entries become 0.
void softmaxInPlace(float* x, int64_t n);

// One attention head over a causal window, the reference's
// softmax(scale * q k^T + causal mask) v in fp32: T queries at positions S-T .. S-1 attend
// to keys 0 .. their own position. Queries and keys come in two parts each (MLA's no-rope
// and rope halves; GQA leaves the second empty), rows `ld` floats apart. Vectorised over
// keys with AVX-512 (a portable loop otherwise); each thread keeps its own scratch.
struct AttendQuery {
    const float* q1 = nullptr;
    int64_t ld1 = 0;
    const float* q2 = nullptr;
    int64_t ld2 = 0;
};
struct AttendKeys {
    const float* k1 = nullptr;
    int64_t ld1 = 0, d1 = 0;
    const float* k2 = nullptr;
    int64_t ld2 = 0, d2 = 0;
};
struct AttendValues {
    const float* v = nullptr;
    int64_t ld = 0, dv = 0;
};
void attendHead(const AttendQuery& q, int64_t T, const AttendKeys& k, const AttendValues& v, int64_t S, float scale,
                float* out, int64_t ldo);

// `heads` query heads with one query each, at the newest position (it sees all S keys), that
// share their keys and values (a GQA group's KV head, or MLA's latents in the absorbed form):
// head h's query is q.q1 + h * q.ld1 and q.q2 + h * q.ld2, its output out + h * ldo. The same
// numbers as attendHead with T = 1 for each head, with every key and value row loaded once
// for up to four heads (a decode step).
void attendSharedKv(const AttendQuery& q, int64_t heads, const AttendKeys& k, const AttendValues& v, int64_t S,
                    float scale, float* out, int64_t ldo);

// Rotates interleaved pairs (x[2i], x[2i+1]) of a width-d vector at position pos by the
// angle pos * freqs[i] (the reference's complex multiply).
void applyRope(float* x, int64_t d, int64_t pos, const float* freqs);
// applyRope with the rotations of positions 0..positions-1 precomputed (the same fp32 cos
// and sin values applyRope computes, so the results are identical); later positions are
// computed on the fly. At most kMaxPositions are tabled, whatever max_seq_len claims.
class RopeTable {
public:
    static constexpr int64_t kMaxPositions = 16384;
    RopeTable() = default;
    RopeTable(int64_t d, double theta, int64_t positions);
    void apply(float* x, int64_t pos) const;
    int64_t width() const { return m_d; }

private:
    int64_t m_d = 0, m_positions = 0;
    std::vector<float> m_freqs; // d/2
    std::vector<float> m_cs;    // [pos][i] = (cos, sin)
};

// freqs[i] = 1 / (theta ^ (2i / d)) computed in fp32.
void ropeFrequencies(int64_t d, double theta, float* freqs);

// Tests: take the paths of a CPU without AVX-512 even on one that has it: the small-row
// matmul kernels' portable loops, and for bf16 weights with more rows the fp32 matmul on
// widened blocks of weights instead of oneDNN's bf16 matmul.
void usePortableSmallKernels(bool on);

// Runs the enclosing scope with `n` OpenMP threads (oneDNN reads the team size when a
// primitive executes), restoring the previous count at the end.
class ScopedThreads {
public:
    explicit ScopedThreads(int n);
    ~ScopedThreads();
    ScopedThreads(const ScopedThreads&) = delete;
    ScopedThreads& operator=(const ScopedThreads&) = delete;

private:
    int m_prev;
};

// Sets the number of threads used by oneDNN and the engine's own loops (0 = all cores);
// programs set it through EngineOptions::threads, and read it with numThreads (runtime.h).
void setNumThreads(int n);

} // namespace mythos
