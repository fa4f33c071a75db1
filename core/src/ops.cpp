#include "mythos/ops.h"
#include "mythos/halfprecision.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <span>
#include <tuple>

#include <omp.h>

#include <immintrin.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "mythos/safetensors.h"
#include "layers.h"
#include "simd.h"
#include "spin_team.h"

namespace mythos {

// Primitives are keyed without M: M (and the row strides) are runtime dimensions, so one
// primitive serves every batch size, MoE group size and growing decode length.
struct MatmulKey {
    int64_t k, n;
    bool accumulate;
    bool weightsKN; // W stored [K, N] instead of nn.Linear's [N, K]
    bool bf16 = false; // bf16 source and weights (fp32 accumulation and destination)
    int64_t ldw = 0;   // W's row stride when not the natural one (a block of W^T's columns)
    auto tie() const { return std::tie(k, n, accumulate, weightsKN, bf16, ldw); }
    bool operator<(const MatmulKey& o) const { return tie() < o.tie(); }
};
namespace {
constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;

// From this many multiply-adds a oneDNN matmul is split by columns across the spin team, each
// block a single-threaded oneDNN call; below it one thread does the whole product.
constexpr int64_t kParallelMacs = int64_t(1) << 24;
// Column blocks of a split matmul are multiples of this many columns.
constexpr int64_t kSplitAlign = 64;

// ---- direct kernels ----
// A decode step multiplies one row by each weight matrix: the work is a few thousand
// multiply-adds, far less than what creating oneDNN memory objects and dispatching a
// primitive costs. Rows up to kSmallRows go through these direct kernels instead (AVX-512
// when the CPU has it, a portable loop otherwise); bench/NOTES.md has the numbers.
constexpr int64_t kSmallRows = 4;
// With AVX-512 the direct kernels also take the small prefill matmuls (MoE groups, the
// projections of models up to dim 256 at T = 64): up to kDirectRows rows and kDirectMacs
// multiply-adds they beat oneDNN's dispatch plus its packing of the weights.
constexpr int64_t kDirectRows = 64;
constexpr int64_t kDirectMacs = int64_t(1) << 21;
// Small-row products from this many multiply-adds (a group of them sharing x from
// kSplitGroupMacs), and with at least kSplitRows weight rows per thread, share their weight
// rows with the spin team (spin_team.h): one core's cache bandwidth bounds them, and the
// hand-off costs about a microsecond, what half of 2^15 multiply-adds take.
constexpr int64_t kSplitMacs = int64_t(1) << 17;
constexpr int64_t kSplitGroupMacs = int64_t(1) << 16;
constexpr int64_t kSplitRows = 32;

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
__attribute__((target("avx512f"))) void linearRowsAvx512(const float* x, int64_t K, int64_t ldx, const W* w,
                                                         int64_t N, float* y, int64_t ldy, bool accumulate) {
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
__attribute__((target("avx512f"))) void knRowsAvx512(const float* x, int64_t K, int64_t ldx, const float* wt,
                                                     int64_t N, float* y, int64_t ldy, bool accumulate) {
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
    case 3:
        block.template operator()<3>(m);
        break;
    case 2:
        block.template operator()<2>(m);
        break;
    case 1:
        block.template operator()<1>(m);
        break;
    default:
        break;
    }
}

// y[M,N] (+)= x W through knRowsAvx512, four rows of x at a time.
__attribute__((target("avx512f"))) void knLinearAvx512(const float* x, int64_t M, int64_t K, int64_t ldx,
                                                       const float* wt, int64_t N, float* y, int64_t ldy,
                                                       bool accumulate) {
    forRowBlocks(M, [&]<int MB>(int64_t m) {
        knRowsAvx512<MB>(x + m * ldx, K, ldx, wt, N, y + m * ldy, ldy, accumulate);
    });
}

// y[M,N] (+)= x W^T through linearRowsAvx512, four rows of x at a time.
template <typename W>
__attribute__((target("avx512f"))) void smallLinearAvx512(const float* x, int64_t M, int64_t K, int64_t ldx,
                                                          const W* w, int64_t N, float* y, int64_t ldy,
                                                          bool accumulate) {
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

// Rows of weights widened at a time where oneDNN has no bf16 matmul: a few MiB of fp32.
constexpr int64_t kWidenRows = 256;

std::atomic<bool> g_portableOnly{false};
std::atomic<uint64_t> g_macs{0};

bool hasAvx512() {
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes && !g_portableOnly.load(std::memory_order_relaxed);
}

} // namespace

bool detail::avx512Enabled() { return hasAvx512(); }

struct MatmulEngine::Primitive {
    dnnl::memory::desc wei;
    dnnl::matmul prim;
    int64_t k, n;
    dnnl::memory::data_type src = dnnl::memory::data_type::f32;
};

struct MatmulEngine::Impl {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    std::map<MatmulKey, Primitive> cache;
    bool bf16Unsupported = false;  // oneDNN has no bf16 matmul on this CPU
    std::vector<uint16_t> xBf16;   // the source rounded to bf16
    std::vector<float> wWide;      // a block of bf16 weight rows widened to fp32
    // Engines for the column blocks 1.. of a split product (each block, whichever thread
    // runs it, has its own primitives).
    std::vector<std::unique_ptr<MatmulEngine>> blocks;

    Primitive& get(const MatmulKey& key) {
        auto it = cache.find(key);
        if (it != cache.end())
            return it->second;
        using dt = dnnl::memory::data_type;
        const dt in = key.bf16 ? dt::bf16 : dt::f32;
        dnnl::memory::desc src({kRuntime, key.k}, in, dnnl::memory::dims{kRuntime, 1});
        // nn.Linear stores W as [N, K]; the matmul wants [K, N]: the same bytes with
        // transposed strides, so no copy is needed.
        const int64_t ldw = key.ldw ? key.ldw : key.weightsKN ? key.n : key.k;
        dnnl::memory::desc wei({key.k, key.n}, in,
                               key.weightsKN ? dnnl::memory::dims{ldw, 1} : dnnl::memory::dims{1, ldw});
        dnnl::memory::desc dst({kRuntime, key.n}, dt::f32, dnnl::memory::dims{kRuntime, 1});
        dnnl::primitive_attr attr;
        if (key.accumulate) {
            dnnl::post_ops po;
            po.append_sum(1.0f);
            attr.set_post_ops(po);
        }
        dnnl::matmul::desc desc(src, wei, dst);
        // oneDNN fixes a primitive's thread count when it is made: one, since the engine
        // spreads large products over its own team (execute) and never runs an OpenMP region.
        const ScopedThreads one(1);
        dnnl::matmul::primitive_desc pd(desc, attr, engine);
        return cache.emplace(key, Primitive{wei, dnnl::matmul(pd), key.k, key.n, in}).first->second;
    }

    // The bf16 primitive, or nullptr when this oneDNN cannot make one on this CPU (it
    // needs AVX-512); the caller then widens the weights.
    Primitive* getBf16(const MatmulKey& key) {
        if (bf16Unsupported)
            return nullptr;
        try {
            return &get(key);
        } catch (const dnnl::error&) {
            bf16Unsupported = true;
            return nullptr;
        }
    }
};

namespace {
// The direct kernels: W^T for four rows or more when the model made the [K, N] copy, else
// the row kernels; AVX-512 or portable.
void directLinear(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y,
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

// A decode step's products of one x (up to kSmallRows rows): the outputs' weight rows, laid
// end to end, in contiguous runs across the spin team, cut at multiples of four rows of each
// output so that every row comes from the same kernel code as unsplit. False, with nothing
// done, when the team cannot take them (one thread, busy, too few rows, the [K, N] kernel).
bool shareRows(const float* x, int64_t M, int64_t K, int64_t ldx, std::span<const MatmulEngine::GroupOut> outs,
               bool accumulate) {
    if (M > kSmallRows || omp_in_parallel())
        return false;
    int64_t rows = 0;
    for (const auto& o : outs) {
        if (o.w.kn && M >= 4)
            return false;
        rows += o.n;
    }
    auto& team = detail::SpinTeam::instance();
    const int64_t parts = std::min<int64_t>(team.threads(), rows / kSplitRows);
    if (parts < 2)
        return false;
    const int64_t per = (rows + parts - 1) / parts;
    const auto cut = [&](int64_t g) {
        int64_t base = 0;
        for (const auto& o : outs) {
            if (g < base + o.n)
                return base + std::min(o.n, (g - base + 3) / 4 * 4);
            base += o.n;
        }
        return rows;
    };
    return team.tryRun(parts, [&](int64_t p, int) {
        const int64_t lo = cut(p * per), hi = cut(std::min(rows, (p + 1) * per));
        int64_t base = 0;
        for (const auto& o : outs) {
            const int64_t a = std::max(lo, base) - base, b = std::min(hi, base + o.n) - base;
            if (a < b)
                directLinear(x, M, K, ldx, o.w.rowsFrom(a, K), b - a, o.y + a, o.ldy ? o.ldy : o.n, accumulate);
            base += o.n;
        }
    });
}
} // namespace

MatmulEngine::MatmulEngine() : m_impl(std::make_unique<Impl>()) {}
MatmulEngine::~MatmulEngine() = default;

void MatmulEngine::linear(const float* x, int64_t M, int64_t K, WeightRef w, int64_t N, float* y,
                          bool accumulate) {
    linearStrided(x, M, K, K, w, N, y, N, accumulate);
}

void MatmulEngine::linearStrided(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w,
                                 int64_t N, float* y, int64_t ldy, bool accumulate) {
    if (M <= 0 || N <= 0)
        return;
    if (K == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i)
                std::fill(y + i * ldy, y + i * ldy + N, 0.0f);
        return;
    }
    g_macs.fetch_add(uint64_t(M * K * N), std::memory_order_relaxed);
    if (!usesDirectKernel(M, K, N)) {
        if (w.bf16)
            runBf16(x, M, K, ldx, w.bf16, N, y, ldy, accumulate);
        else
            execute({K, N, accumulate, false}, x, M, ldx, w.f32, y, ldy);
        return;
    }
    const GroupOut one{w, N, y, ldy};
    if (M * K * N >= kSplitMacs && shareRows(x, M, K, ldx, {&one, 1}, accumulate))
        return;
    directLinear(x, M, K, ldx, w, N, y, ldy, accumulate);
}

void MatmulEngine::linearGroup(const float* x, int64_t M, int64_t K, std::initializer_list<GroupOut> outs) {
    int64_t rows = 0;
    for (const auto& o : outs)
        rows += o.n;
    if (M > 0 && K > 0 && M * K * rows >= kSplitGroupMacs && shareRows(x, M, K, K, {outs.begin(), outs.size()}, false)) {
        g_macs.fetch_add(uint64_t(M * K * rows), std::memory_order_relaxed);
        return;
    }
    for (const auto& o : outs)
        linear(x, M, K, o.w, o.n, o.y);
}

void MatmulEngine::runBf16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w, int64_t N,
                           float* y, int64_t ldy, bool accumulate) {
    auto& im = *m_impl;
    Primitive* p =
        g_portableOnly.load(std::memory_order_relaxed) ? nullptr : im.getBf16({K, N, accumulate, false, true});
    if (p) {
        // oneDNN 2.6 multiplies bf16 by bf16 only (no fp32 source with bf16 weights): the
        // source is rounded to bf16 once per call, which costs M*K against M*K*N.
        im.xBf16.resize(std::size_t(M * K));
        for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k)
                im.xBf16[std::size_t(m * K + k)] = floatToBf16(x[m * ldx + k]);
        execute({K, N, accumulate, false, true}, im.xBf16.data(), M, K, w, y, ldy);
        return;
    }
    // No bf16 matmul here: the fp32 one on blocks of weight rows widened to fp32 (exact), so
    // the results are those of the small-row kernels, never a full fp32 copy of W.
    for (int64_t n0 = 0; n0 < N; n0 += kWidenRows) {
        const int64_t nb = std::min(kWidenRows, N - n0);
        im.wWide.resize(std::size_t(nb * K));
        for (int64_t i = 0; i < nb * K; ++i)
            im.wWide[std::size_t(i)] = bf16ToFloat(w[n0 * K + i]);
        execute({K, nb, accumulate, false}, x, M, ldx, im.wWide.data(), y + n0, ldy);
    }
}

void MatmulEngine::matmulKN(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y,
                            bool accumulate) {
    matmulKNStrided(x, M, K, K, w, N, y, N, accumulate);
}

void MatmulEngine::matmulKNStrided(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N,
                                   float* y, int64_t ldy, bool accumulate) {
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i)
                std::fill(y + i * ldy, y + i * ldy + N, 0.0f);
        return;
    }
    g_macs.fetch_add(uint64_t(M * K * N), std::memory_order_relaxed);
    if (usesDirectKernel(M, K, N)) {
        const bool simd = hasAvx512();
        if (w.bf16)
            simd ? smallMatmulKNAvx512(x, M, K, ldx, w.bf16, N, y, ldy, accumulate)
                 : smallMatmulKNPortable(x, M, K, ldx, w.bf16, N, y, ldy, accumulate);
        else
            simd ? smallMatmulKNAvx512(x, M, K, ldx, w.f32, N, y, ldy, accumulate)
                 : smallMatmulKNPortable(x, M, K, ldx, w.f32, N, y, ldy, accumulate);
        return;
    }
    const float* wf = w.f32;
    if (w.bf16) { // the fp32 matmul on W widened to fp32 (exact): these weights are small
        auto& wide = m_impl->wWide;
        wide.resize(std::size_t(K * N));
        for (int64_t i = 0; i < K * N; ++i)
            wide[std::size_t(i)] = bf16ToFloat(w.bf16[i]);
        wf = wide.data();
    }
    execute({K, N, accumulate, true}, x, M, ldx, wf, y, ldy);
}

void MatmulEngine::execute(const MatmulKey& key, const void* x, int64_t M, int64_t ldx, const void* w, float* y,
                           int64_t ldy) {
    auto& team = detail::SpinTeam::instance();
    const int64_t parts = std::min<int64_t>(team.threads(), key.n / kSplitAlign);
    if (parts > 1 && M * key.k * key.n >= kParallelMacs) {
        auto& blocks = m_impl->blocks;
        while (int64_t(blocks.size()) < parts - 1)
            blocks.push_back(std::make_unique<MatmulEngine>());
        const int64_t per = (key.n / parts + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
        const int64_t ldw = key.ldw ? key.ldw : key.weightsKN ? key.n : key.k;
        const std::size_t elem = key.bf16 ? sizeof(uint16_t) : sizeof(float);
        const bool ran = team.tryRun(parts, [&](int64_t p, int) {
            const int64_t n0 = p * per, n1 = std::min(key.n, n0 + per);
            if (n0 >= n1)
                return;
            MatmulKey sub = key;
            sub.n = n1 - n0;
            sub.ldw = ldw;
            const auto* wb = static_cast<const char*>(w) + std::size_t(key.weightsKN ? n0 : n0 * ldw) * elem;
            MatmulEngine& e = p == 0 ? *this : *blocks[std::size_t(p - 1)];
            e.run(e.m_impl->get(sub), x, M, ldx, wb, y + n0, ldy);
        });
        if (ran)
            return;
    }
    run(m_impl->get(key), x, M, ldx, w, y, ldy);
}

void MatmulEngine::run(Primitive& e, const void* x, int64_t M, int64_t ldx, const void* w, float* y, int64_t ldy) {
    using dt = dnnl::memory::data_type;
    dnnl::memory src({{M, e.k}, e.src, {ldx, 1}}, m_impl->engine, const_cast<void*>(x));
    dnnl::memory wei(e.wei, m_impl->engine, const_cast<void*>(w));
    dnnl::memory dst({{M, e.n}, dt::f32, {ldy, 1}}, m_impl->engine, y);
    // Some of oneDNN's kernels read the thread count again when they run.
    const ScopedThreads one(1);
    e.prim.execute(m_impl->stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    m_impl->stream.wait();
}

bool MatmulEngine::usesDirectKernel(int64_t M, int64_t K, int64_t N) {
    return M <= kSmallRows || (hasAvx512() && M <= kDirectRows && M * K * N <= kDirectMacs);
}

std::size_t MatmulEngine::primitiveCount() const { return m_impl->cache.size(); }

void linearReference(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y,
                     bool accumulate) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k)
                s += double(x[i * K + k]) * double(w[j * K + k]);
            y[i * N + j] = float(accumulate ? y[i * N + j] + s : s);
        }
}

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

ScopedThreads::ScopedThreads(int n) : m_prev(omp_get_max_threads()) {
    if (n != m_prev)
        omp_set_num_threads(n);
}

ScopedThreads::~ScopedThreads() {
    if (omp_get_max_threads() != m_prev)
        omp_set_num_threads(m_prev);
}

uint64_t matmulMacs() { return g_macs.load(std::memory_order_relaxed); }
void resetMatmulMacs() { g_macs.store(0, std::memory_order_relaxed); }

void usePortableSmallKernels(bool on) { g_portableOnly.store(on); }

void setNumThreads(int n) {
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    detail::SpinTeam::instance().setThreads(n);
}

int numThreads() { return omp_get_max_threads(); }

} // namespace mythos
