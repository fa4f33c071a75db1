// MatmulEngine: every Linear's product through oneDNN's matmul (primitives made once per
// shape and reused, large products split by columns over the spin team), or through the
// engine's own kernels (ops_kernels.h) for the small ones; and the engine's thread count.
#include "halfprecision.h"
#include "mythos/runtime.h"
#include "ops.h"
#include "ops_kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <span>
#include <tuple>

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "spin_team.h"

namespace mythos {

// Primitives are keyed without M: M (and the row strides) are runtime dimensions, so one
// primitive serves every batch size, MoE group size and growing decode length.
struct MatmulKey {
    int64_t k, n;
    bool accumulate;
    bool weightsKN;    // W stored [K, N] instead of nn.Linear's [N, K]
    bool bf16 = false; // bf16 source and weights (fp32 accumulation and destination)
    int64_t ldw = 0;   // W's row stride when not the natural one (a block of W^T's columns)
    auto tie() const { return std::tie(k, n, accumulate, weightsKN, bf16, ldw); }
    bool operator<(const MatmulKey& o) const { return tie() < o.tie(); }
};

namespace {
using detail::directLinear;
using detail::g_portableOnly;
using detail::hasAvx512;
using detail::kDirectMacs;
using detail::kDirectRows;
using detail::kSmallRows;

constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;

// From this many multiply-adds a oneDNN matmul is split by columns across the spin team, each
// block a single-threaded oneDNN call; below it one thread does the whole product.
constexpr int64_t kParallelMacs = int64_t(1) << 24;
// Column blocks of a split matmul are multiples of this many columns.
constexpr int64_t kSplitAlign = 64;

// Small-row products from this many multiply-adds (a group of them sharing x from
// kSplitGroupMacs), and with at least kSplitRows weight rows per thread, share their weight
// rows with the spin team (spin_team.h): one core's cache bandwidth bounds them, and the
// hand-off costs about a microsecond, what half of 2^15 multiply-adds take.
constexpr int64_t kSplitMacs = int64_t(1) << 17;
constexpr int64_t kSplitGroupMacs = int64_t(1) << 16;
constexpr int64_t kSplitRows = 32;

// Rows of weights widened at a time where oneDNN has no bf16 matmul: a few MiB of fp32.
constexpr int64_t kWidenRows = 256;

std::atomic<uint64_t> g_macs{0};

} // namespace

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
    bool bf16Unsupported = false; // oneDNN has no bf16 matmul on this CPU
    std::vector<uint16_t> xBf16;  // the source rounded to bf16
    std::vector<float> wWide;     // a block of bf16 weight rows widened to fp32
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

void MatmulEngine::linear(const float* x, int64_t M, int64_t K, WeightRef w, int64_t N, float* y, bool accumulate) {
    linearStrided(x, M, K, K, w, N, y, N, accumulate);
}

void MatmulEngine::linearStrided(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y,
                                 int64_t ldy, bool accumulate) {
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
    if (M > 0 && K > 0 && M * K * rows >= kSplitGroupMacs &&
        shareRows(x, M, K, K, {outs.begin(), outs.size()}, false)) {
        g_macs.fetch_add(uint64_t(M * K * rows), std::memory_order_relaxed);
        return;
    }
    for (const auto& o : outs)
        linear(x, M, K, o.w, o.n, o.y);
}

void MatmulEngine::runBf16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w, int64_t N, float* y,
                           int64_t ldy, bool accumulate) {
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

void MatmulEngine::matmulKNStrided(const float* x, int64_t M, int64_t K, int64_t ldx, WeightRef w, int64_t N, float* y,
                                   int64_t ldy, bool accumulate) {
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
        detail::directMatmulKN(x, M, K, ldx, w, N, y, ldy, accumulate);
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

void linearReference(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y, bool accumulate) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k)
                s += double(x[i * K + k]) * double(w[j * K + k]);
            y[i * N + j] = float(accumulate ? y[i * N + j] + s : s);
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

void setNumThreads(int n) {
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    detail::SpinTeam::instance().setThreads(n);
}

int numThreads() { return omp_get_max_threads(); }

double sgemmGflops(int64_t n) {
    using Clock = std::chrono::steady_clock;
    MatmulEngine mm;
    std::vector<float> x(std::size_t(n * n), 0.5f), w(std::size_t(n * n), 0.25f), y(std::size_t(n * n));
    std::vector<double> t;
    for (int r = 0; r < 6; ++r) {
        const auto t0 = Clock::now();
        mm.linear(x.data(), n, n, w.data(), n, y.data());
        if (r > 0)
            t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    const double median = t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
    return 2.0 * double(n * n * n) / (median / 1000.0) / 1e9;
}

} // namespace mythos
