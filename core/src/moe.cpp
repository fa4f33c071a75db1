// Dense SwiGLU FFN, the mixture-of-experts FFN and the pre-norm transformer block.
#include <algorithm>
#include <numeric>

#include "layers.h"

namespace mythos::detail {

namespace {

// y[N][D] (= or +=) down(silu(gate(x)) * up(x)) for N rows of x.
void swiglu(MatmulEngine& mm, int64_t D, const FfnWeights& w, const float* x, int64_t N, float* y, bool accumulate) {
    const int64_t Hd = w.hidden;
    Scratch g(N * Hd), u(N * Hd);
    mm.linearGroup(x, N, D, {{w.gate, Hd, g.data()}, {w.up, Hd, u.data()}});
    siluMul(g.data(), u.data(), N * Hd);
    mm.linear(g.data(), N, Hd, w.down, D, y, accumulate);
}

// One unit of MoE work: a routed expert over the tokens sent to it, or a shared expert over
// every token.
struct ExpertTask {
    int64_t index; // routed expert id, or shared expert number
    bool shared;
    int64_t rows;
    int64_t macs;
};

// From this many multiply-adds an MoE call runs its experts across the threads: the shared
// and the two routed experts of one token (decode) already gain from the second core.
constexpr int64_t kParallelMoeMacs = int64_t(1) << 16;

} // namespace

void ffnForward(Ctx& ctx, const FfnWeights& w, const float* xn, int64_t N, float* x) {
    swiglu(ctx.mm, ctx.cfg.dim, w, xn, N, x, true);
}

void moeForward(Ctx& ctx, const MoeWeights& w, const float* xn, int64_t N, float* x, MoeRecord* rec) {
    const int64_t D = ctx.cfg.dim, E = ctx.cfg.n_experts, K = ctx.cfg.n_experts_per_tok;
    std::vector<float> logits(static_cast<std::size_t>(N * E));
    ctx.mm.linear(xn, N, D, w.router, E, logits.data());

    // Selection uses logits + bias; the gates come from the unbiased softmax,
    // renormalised over the selected experts (aux-loss-free balancing, DeepSeek-V3).
    std::vector<int32_t> ids(static_cast<std::size_t>(N * K));
    std::vector<float> gates(static_cast<std::size_t>(N * K));
    std::vector<std::vector<std::pair<int64_t, int64_t>>> byExpert(static_cast<std::size_t>(E)); // (token, slot)
    {
        std::vector<float> scores(static_cast<std::size_t>(E)), biased(static_cast<std::size_t>(E));
        std::vector<int32_t> order(static_cast<std::size_t>(E));
        for (int64_t n = 0; n < N; ++n) {
            const float* l = logits.data() + n * E;
            std::copy(l, l + E, scores.begin());
            softmaxInPlace(scores.data(), E);
            for (int64_t e = 0; e < E; ++e)
                biased[std::size_t(e)] = l[e] + (w.routerBias ? w.routerBias[e] : 0.0f);
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) {
                return biased[std::size_t(a)] > biased[std::size_t(b)] ||
                       (biased[std::size_t(a)] == biased[std::size_t(b)] && a < b);
            });
            // An ablated expert (intervention) keeps its slot with gate 0; the others are
            // renormalised over their own scores.
            const auto ablated = [&](int32_t e) { return ctx.zeroExperts && (*ctx.zeroExperts)[std::size_t(e)]; };
            float sum = 0;
            for (int64_t s = 0; s < K; ++s)
                if (!ablated(order[std::size_t(s)]))
                    sum += scores[std::size_t(order[std::size_t(s)])];
            for (int64_t s = 0; s < K; ++s) {
                const int32_t e = order[std::size_t(s)];
                ids[std::size_t(n * K + s)] = e;
                gates[std::size_t(n * K + s)] = ablated(e) ? 0.0f : scores[std::size_t(e)] / sum;
                byExpert[std::size_t(e)].push_back({n, s});
            }
        }
    }

    // One matmul chain per expert over the tokens routed to it, and one per shared expert:
    // independent, so with enough work they run across the threads, largest first, each
    // with its own engine. Shared experts write their own buffers, summed below in order.
    std::vector<ExpertTask> tasks;
    const auto taskMacs = [&](int64_t rows, const FfnWeights& f) { return rows * D * 3 * f.hidden; };
    for (int64_t e = 0; e < E; ++e)
        if (const int64_t rows = int64_t(byExpert[std::size_t(e)].size()))
            tasks.push_back({e, false, rows, taskMacs(rows, w.routed[std::size_t(e)])});
    for (std::size_t s = 0; s < w.shared.size(); ++s)
        tasks.push_back({int64_t(s), true, N, taskMacs(N, w.shared[s])});
    std::stable_sort(tasks.begin(), tasks.end(),
                     [](const ExpertTask& a, const ExpertTask& b) { return a.macs > b.macs; });
    int64_t macs = 0;
    for (const auto& t : tasks)
        macs += t.macs;
    const int threads = SpinTeam::instance().threads();
    const bool parallel = threads > 1 && tasks.size() > 1 && macs >= kParallelMoeMacs;
    if (parallel)
        ctx.ensureEngines(threads);

    Scratch slotOut(N * K * D);
    const int64_t nShared = int64_t(w.shared.size());
    Scratch sharedOut(nShared * N * D); // [shared expert][N][D]
    auto runTask = [&](const ExpertTask& t, MatmulEngine& mm) {
        if (t.shared) {
            swiglu(mm, D, w.shared[std::size_t(t.index)], xn, N, sharedOut.data() + t.index * N * D, false);
            return;
        }
        const auto& members = byExpert[std::size_t(t.index)];
        const int64_t ne = t.rows;
        Scratch xe(ne * D), ye(ne * D);
        for (int64_t i = 0; i < ne; ++i)
            std::copy(xn + members[std::size_t(i)].first * D, xn + (members[std::size_t(i)].first + 1) * D,
                      xe.data() + i * D);
        swiglu(mm, D, w.routed[std::size_t(t.index)], xe.data(), ne, ye.data(), false);
        for (int64_t i = 0; i < ne; ++i) {
            const auto [n, s] = members[std::size_t(i)];
            std::copy(ye.data() + i * D, ye.data() + (i + 1) * D, slotOut.data() + (n * K + s) * D);
        }
    };
    forEachIndex(int64_t(tasks.size()), parallel,
                 [&](int64_t i, int thread) { runTask(tasks[std::size_t(i)], ctx.engine(thread)); });

    // Same accumulation order as the reference: slot by slot, then each shared expert.
    Scratch out(N * D);
    std::fill(out.data(), out.data() + N * D, 0.0f);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < K; ++s) {
            const float g = gates[std::size_t(n * K + s)];
            const float* y = slotOut.data() + (n * K + s) * D;
            float* o = out.data() + n * D;
            for (int64_t i = 0; i < D; ++i)
                o[i] += g * y[i];
        }
    for (int64_t s = 0; s < nShared; ++s) {
        const float* y = sharedOut.data() + s * N * D;
        for (int64_t i = 0; i < N * D; ++i)
            out[std::size_t(i)] += y[i];
    }
    for (int64_t i = 0; i < N * D; ++i)
        x[i] += out[std::size_t(i)];

    if (rec) {
        rec->ids = std::move(ids);
        rec->gates = std::move(gates);
        rec->logits = std::move(logits);
    }
}

void blockForward(Ctx& ctx, const BlockWeights& w, float* x, int64_t B, int64_t T, int64_t startPos, KvCache* cache,
                  const std::string& key, MoeRecord* rec) {
    const int64_t D = ctx.cfg.dim, N = B * T;
    Scratch xn(N * D);
    rmsNorm(x, w.attnNorm, xn.data(), N, D);
    attentionForward(ctx, w.attn, xn.data(), B, T, startPos, cache, key, x);
    rmsNorm(x, w.ffnNorm, xn.data(), N, D);
    if (w.moe)
        moeForward(ctx, w.experts, xn.data(), N, x, rec);
    else
        ffnForward(ctx, w.dense, xn.data(), N, x);
}

} // namespace mythos::detail
