#include "mythos/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

namespace mythos {

namespace {
// Primitives are keyed without M: M (and the row strides) are runtime dimensions, so one
// primitive serves every batch size, MoE group size and growing decode length.
struct MatmulKey {
    int64_t k, n;
    bool accumulate;
    bool weightsKN; // W stored [K, N] instead of nn.Linear's [N, K]
    auto tie() const { return std::tie(k, n, accumulate, weightsKN); }
    bool operator<(const MatmulKey& o) const { return tie() < o.tie(); }
};
constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;
} // namespace

struct MatmulEngine::Primitive {
    dnnl::memory::desc wei;
    dnnl::matmul prim;
    int64_t k, n;
};

struct MatmulEngine::Impl {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    std::map<MatmulKey, Primitive> cache;

    Primitive& get(const MatmulKey& key) {
        auto it = cache.find(key);
        if (it != cache.end())
            return it->second;
        using dt = dnnl::memory::data_type;
        dnnl::memory::desc src({kRuntime, key.k}, dt::f32, dnnl::memory::dims{kRuntime, 1});
        // nn.Linear stores W as [N, K]; the matmul wants [K, N]: the same bytes with
        // transposed strides, so no copy is needed.
        dnnl::memory::desc wei({key.k, key.n}, dt::f32,
                               key.weightsKN ? dnnl::memory::dims{key.n, 1} : dnnl::memory::dims{1, key.k});
        dnnl::memory::desc dst({kRuntime, key.n}, dt::f32, dnnl::memory::dims{kRuntime, 1});
        dnnl::primitive_attr attr;
        if (key.accumulate) {
            dnnl::post_ops po;
            po.append_sum(1.0f);
            attr.set_post_ops(po);
        }
        dnnl::matmul::desc desc(src, wei, dst);
        dnnl::matmul::primitive_desc pd(desc, attr, engine);
        return cache.emplace(key, Primitive{wei, dnnl::matmul(pd), key.k, key.n}).first->second;
    }
};

MatmulEngine::MatmulEngine() : m_impl(std::make_unique<Impl>()) {}
MatmulEngine::~MatmulEngine() = default;

void MatmulEngine::linear(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y,
                          bool accumulate) {
    linearStrided(x, M, K, K, w, N, y, N, accumulate);
}

void MatmulEngine::linearStrided(const float* x, int64_t M, int64_t K, int64_t ldx, const float* w,
                                 int64_t N, float* y, int64_t ldy, bool accumulate) {
    if (M <= 0 || N <= 0)
        return;
    if (K == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i)
                std::fill(y + i * ldy, y + i * ldy + N, 0.0f);
        return;
    }
    run(m_impl->get({K, N, accumulate, false}), x, M, ldx, w, y, ldy);
}

void MatmulEngine::matmulKN(const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y,
                            bool accumulate) {
    if (M <= 0 || N <= 0 || K <= 0)
        return linearStrided(x, M, K, K, w, N, y, N, accumulate);
    run(m_impl->get({K, N, accumulate, true}), x, M, K, w, y, N);
}

void MatmulEngine::run(Primitive& e, const float* x, int64_t M, int64_t ldx, const float* w, float* y, int64_t ldy) {
    using dt = dnnl::memory::data_type;
    dnnl::memory src({{M, e.k}, dt::f32, {ldx, 1}}, m_impl->engine, const_cast<float*>(x));
    dnnl::memory wei(e.wei, m_impl->engine, const_cast<float*>(w));
    dnnl::memory dst({{M, e.n}, dt::f32, {ldy, 1}}, m_impl->engine, y);
    e.prim.execute(m_impl->stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    m_impl->stream.wait();
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

void rmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
#pragma omp parallel for if (rows * n > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        double ss = 0; // a double sum keeps long rows (dim 2048+) as exact as fp32 allows
        for (int64_t i = 0; i < n; ++i)
            ss += double(xr[i]) * double(xr[i]);
        const float inv = 1.0f / std::sqrt(float(ss / double(n)) + eps);
        for (int64_t i = 0; i < n; ++i)
            yr[i] = xr[i] * inv * w[i];
    }
}

void siluMul(float* a, const float* b, int64_t n) {
#pragma omp parallel for if (n > 65536)
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

void setNumThreads(int n) {
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
}

int numThreads() { return omp_get_max_threads(); }

} // namespace mythos
