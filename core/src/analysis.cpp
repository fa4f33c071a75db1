#include "mythos/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "mythos/checked.h"
#include "mythos/errors.h"

namespace mythos {

namespace {

void checkRoutingShape(const Trace& tr, std::size_t have, std::size_t per, const char* what) {
    const std::size_t want = std::size_t(tr.loopsExecuted * tr.batch * tr.seqLen) * per;
    if (have != want)
        throw ArgumentError(std::string("the trace's ") + what + " has " + std::to_string(have) + " values, expected " +
                            std::to_string(want));
}

RoutingSelection emptySelection(const Trace& tr) {
    RoutingSelection s;
    s.loops = tr.loopsExecuted;
    s.batch = tr.batch;
    s.seqLen = tr.seqLen;
    s.topK = tr.topK;
    s.nExperts = tr.nExperts;
    return s;
}

} // namespace

RoutingSelection recordedRouting(const Trace& tr) {
    RoutingSelection s = emptySelection(tr);
    checkRoutingShape(tr, tr.topkIds.size(), std::size_t(tr.topK), "expert ids");
    checkRoutingShape(tr, tr.topkWeights.size(), std::size_t(tr.topK), "expert gates");
    s.ids = tr.topkIds;
    s.gates = tr.topkWeights;
    for (int32_t id : s.ids)
        if (id < 0 || id >= tr.nExperts)
            throw ArgumentError("the trace names expert " + std::to_string(id) + " of " + std::to_string(tr.nExperts));
    return s;
}

RoutingSelection unbiasedRouting(const Trace& tr) {
    RoutingSelection s = emptySelection(tr);
    const int64_t E = tr.nExperts, K = tr.topK;
    if (tr.routerLogits.empty())
        throw ArgumentError("the trace has no router logits");
    checkRoutingShape(tr, tr.routerLogits.size(), std::size_t(E), "router logits");
    if (K < 1 || K > E)
        throw ArgumentError("the trace's top-k (" + std::to_string(K) + ") does not fit " + std::to_string(E) +
                            " experts");
    const int64_t rows = s.loops * s.batch * s.seqLen;
    s.ids.resize(std::size_t(rows * K));
    s.gates.resize(std::size_t(rows * K));
    std::vector<int32_t> order(static_cast<std::size_t>(E));
    std::vector<double> scores(static_cast<std::size_t>(E));
    for (int64_t r = 0; r < rows; ++r) {
        const float* l = tr.routerLogits.data() + r * E;
        const double mx = *std::max_element(l, l + E);
        for (int64_t e = 0; e < E; ++e)
            scores[std::size_t(e)] = std::exp(double(l[e]) - mx); // softmax up to a constant
        std::iota(order.begin(), order.end(), 0);
        // Same tie rule as the engine's router: the lower index first.
        std::partial_sort(order.begin(), order.begin() + K, order.end(),
                          [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
        double sum = 0;
        for (int64_t k = 0; k < K; ++k)
            sum += scores[std::size_t(order[std::size_t(k)])];
        for (int64_t k = 0; k < K; ++k) {
            s.ids[std::size_t(r * K + k)] = order[std::size_t(k)];
            s.gates[std::size_t(r * K + k)] = float(scores[std::size_t(order[std::size_t(k)])] / sum);
        }
    }
    return s;
}

double gini(std::vector<double> v) {
    const std::size_t n = v.size();
    if (n == 0)
        return 0;
    std::sort(v.begin(), v.end());
    const double total = std::accumulate(v.begin(), v.end(), 0.0);
    if (total <= 0)
        return 0;
    // G = sum_i (2i - n - 1) x_i / (n * sum x), i = 1..n over sorted values.
    double acc = 0;
    for (std::size_t i = 0; i < n; ++i)
        acc += (2.0 * double(i + 1) - double(n) - 1.0) * v[i];
    return acc / (double(n) * total);
}

double entropyBits(const std::vector<double>& p) {
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    if (total <= 0)
        return 0;
    double h = 0;
    for (double x : p)
        if (x > 0) {
            const double q = x / total;
            h -= q * std::log2(q);
        }
    return h;
}

LoadStats loadStats(const std::vector<double>& counts, const std::vector<double>& gateSums, double tokens) {
    LoadStats s;
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    const std::size_t E = counts.size();
    s.load.assign(E, 0.0);
    s.gateMass.assign(E, 0.0);
    for (std::size_t e = 0; e < E; ++e) {
        s.load[e] = total > 0 ? counts[e] / total : 0.0;
        s.gateMass[e] = tokens > 0 && e < gateSums.size() ? gateSums[e] / tokens : 0.0;
        if (counts[e] == 0)
            s.dead += 1;
    }
    s.entropyBits = entropyBits(s.load);
    s.maxOverMean = E && total > 0 ? *std::max_element(s.load.begin(), s.load.end()) * double(E) : 0.0;
    s.gini = gini(s.load);
    return s;
}

RoutingStats routingStats(const RoutingSelection& sel) {
    RoutingStats st;
    const int64_t L = sel.loops, E = sel.nExperts, K = sel.topK, N = sel.batch * sel.seqLen;
    st.loops = L;
    st.nExperts = E;
    st.topK = K;
    st.tokens = N;
    std::vector<double> allCounts(static_cast<std::size_t>(E), 0.0), allGates(static_cast<std::size_t>(E), 0.0);
    st.top1Switch.assign(std::size_t(L), 0.0);
    st.setSwitch.assign(std::size_t(L), 0.0);
    for (int64_t l = 0; l < L; ++l) {
        std::vector<double> counts(static_cast<std::size_t>(E), 0.0), gates(static_cast<std::size_t>(E), 0.0);
        int64_t top1Changed = 0, setChanged = 0;
        for (int64_t n = 0; n < N; ++n) {
            const std::size_t base = std::size_t((l * N + n) * K);
            for (int64_t k = 0; k < K; ++k) {
                const int32_t e = sel.ids[base + std::size_t(k)];
                counts[std::size_t(e)] += 1;
                gates[std::size_t(e)] += sel.gates[base + std::size_t(k)];
            }
            if (l > 0) {
                const std::size_t prev = std::size_t(((l - 1) * N + n) * K);
                if (sel.ids[base] != sel.ids[prev])
                    ++top1Changed;
                if (!sameExpertSet(sel.ids.data() + base, sel.ids.data() + prev, K))
                    ++setChanged;
            }
        }
        st.perLoop.push_back(loadStats(counts, gates, double(N)));
        if (l > 0 && N > 0) {
            st.top1Switch[std::size_t(l)] = double(top1Changed) / double(N);
            st.setSwitch[std::size_t(l)] = double(setChanged) / double(N);
        }
        for (int64_t e = 0; e < E; ++e) {
            allCounts[std::size_t(e)] += counts[std::size_t(e)];
            allGates[std::size_t(e)] += gates[std::size_t(e)];
        }
    }
    st.overall = loadStats(allCounts, allGates, double(N * L));
    if (L > 1) {
        st.meanTop1Switch = std::accumulate(st.top1Switch.begin() + 1, st.top1Switch.end(), 0.0) / double(L - 1);
        st.meanSetSwitch = std::accumulate(st.setSwitch.begin() + 1, st.setSwitch.end(), 0.0) / double(L - 1);
    }
    return st;
}

bool sameExpertSet(const int32_t* a, const int32_t* b, int64_t k) {
    std::vector<int32_t> x(a, a + k), y(b, b + k);
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    return x == y;
}

double expertSetDifference(const RoutingSelection& a, const RoutingSelection& b) {
    if (a.loops != b.loops || a.batch != b.batch || a.seqLen != b.seqLen || a.topK != b.topK ||
        a.ids.size() != b.ids.size())
        throw ArgumentError("the two routing selections are of different shapes");
    const int64_t K = a.topK, rows = a.loops * a.batch * a.seqLen;
    int64_t changed = 0;
    for (int64_t r = 0; r < rows; ++r)
        changed += !sameExpertSet(a.ids.data() + r * K, b.ids.data() + r * K, K);
    return rows ? double(changed) / double(rows) : 0.0;
}

std::vector<float> tokenExpertGates(const RoutingSelection& sel, int64_t b, int64_t loop) {
    const int64_t T = sel.seqLen, E = sel.nExperts, K = sel.topK;
    if (b < 0 || b >= sel.batch)
        throw ArgumentError("batch row " + std::to_string(b) + " is outside the trace");
    if (loop >= sel.loops)
        throw ArgumentError("loop " + std::to_string(loop + 1) + " is past the " + std::to_string(sel.loops) +
                            " loops of the trace");
    std::vector<float> out(static_cast<std::size_t>(T * E), 0.0f);
    const int64_t l0 = loop < 0 ? 0 : loop, l1 = loop < 0 ? sel.loops : loop + 1;
    for (int64_t l = l0; l < l1; ++l)
        for (int64_t t = 0; t < T; ++t) {
            const std::size_t base = sel.at(l, b, t);
            for (int64_t k = 0; k < K; ++k)
                out[std::size_t(t * E + sel.ids[base + std::size_t(k)])] += sel.gates[base + std::size_t(k)];
        }
    return out;
}

// ---- KV cache ----

std::vector<KvVariant> kvVariants(const Config& cfg, KvLayout currentLayout) {
    std::vector<KvVariant> out;
    Config mla = cfg;
    mla.attn_type = AttnType::Mla;
    const bool isMla = cfg.isMla();
    out.push_back({"MLA", mla, KvLayout::Reference, isMla && currentLayout == KvLayout::Reference});
    out.push_back({"MLA compact", mla, KvLayout::Compact, isMla && currentLayout == KvLayout::Compact});
    for (int64_t kv = 1; kv <= cfg.n_heads; ++kv) {
        if (cfg.n_heads % kv != 0)
            continue;
        Config g = cfg;
        g.attn_type = AttnType::Gqa;
        g.n_kv_heads = kv;
        const bool cur = !isMla && cfg.n_kv_heads == kv;
        out.push_back({kv == cfg.n_heads ? "MHA" : "GQA kv=" + std::to_string(kv), g, KvLayout::Reference, cur});
    }
    return out;
}

int64_t kvTotalBytes(const Config& cfg, KvLayout layout, int64_t batch, int64_t positions, int64_t nLoops) {
    return requireBoundedProduct(
        {cfg.prelude_layers + nLoops + cfg.coda_layers, batch, positions, kvBytesPerPosition(cfg, layout)},
        std::numeric_limits<int64_t>::max(), "KV cache bytes");
}

// ---- comparison ----

void requireSameTokens(const Trace& a, const Trace& b) {
    if (a.seqLen != b.seqLen || !std::equal(a.ids.begin(), a.ids.begin() + a.seqLen, b.ids.begin()))
        throw ArgumentError("the two runs saw different tokens (their tokenizers differ)");
}

Agreement compareNextToken(const Trace& a, const Trace& b) {
    if (a.logits.empty() || b.logits.empty())
        throw ArgumentError("both traces need next-token logits to be compared");
    if (a.vocab != b.vocab)
        throw ArgumentError("the models have different vocabularies (" + std::to_string(a.vocab) + " and " +
                            std::to_string(b.vocab) + " tokens)");
    requireSameTokens(a, b);
    const int64_t T = a.seqLen, V = a.vocab;
    if (int64_t(a.logits.size()) < T * V || int64_t(b.logits.size()) < T * V)
        throw ArgumentError("a trace's logits are shorter than its tokens");
    Agreement g;
    g.tokens = T;
    int64_t match = 0;
    std::vector<double> la(static_cast<std::size_t>(V)), lb(static_cast<std::size_t>(V));
    for (int64_t t = 0; t < T; ++t) {
        const float* pa = a.logits.data() + t * V;
        const float* pb = b.logits.data() + t * V;
        // log-softmax in double
        auto logSoftmax = [V](const float* x, std::vector<double>& out) {
            const double mx = *std::max_element(x, x + V);
            double s = 0;
            for (int64_t v = 0; v < V; ++v)
                s += std::exp(double(x[v]) - mx);
            const double lse = mx + std::log(s);
            for (int64_t v = 0; v < V; ++v)
                out[std::size_t(v)] = double(x[v]) - lse;
        };
        logSoftmax(pa, la);
        logSoftmax(pb, lb);
        double kl = 0;
        for (int64_t v = 0; v < V; ++v)
            kl += std::exp(la[std::size_t(v)]) * (la[std::size_t(v)] - lb[std::size_t(v)]);
        kl = std::max(kl, 0.0);
        const int32_t ta = int32_t(std::max_element(pa, pa + V) - pa);
        const int32_t tb = int32_t(std::max_element(pb, pb + V) - pb);
        g.top1A.push_back(ta);
        g.top1B.push_back(tb);
        g.klAB.push_back(kl);
        if (ta == tb)
            ++match;
        g.meanKl += kl;
        g.maxKl = std::max(g.maxKl, kl);
    }
    if (T > 0) {
        g.top1Match = double(match) / double(T);
        g.meanKl /= double(T);
    }
    return g;
}

// ---- generation ----

namespace {
// Joins [L][1][Ta][w] and [L][1][Tb][w] into [L][1][Ta+Tb][w].
template <class V>
void joinLoopMajor(V& a, const V& b, int64_t L, int64_t Ta, int64_t Tb, int64_t w) {
    V out;
    out.reserve(a.size() + b.size());
    for (int64_t l = 0; l < L; ++l) {
        out.insert(out.end(), a.begin() + l * Ta * w, a.begin() + (l + 1) * Ta * w);
        out.insert(out.end(), b.begin() + l * Tb * w, b.begin() + (l + 1) * Tb * w);
    }
    a = std::move(out);
}
} // namespace

void appendTraceTokens(Trace& seq, const Trace& step) {
    if (seq.batch != 1 || step.batch != 1)
        throw ArgumentError("only single-row traces can be joined");
    if (step.loopsExecuted != seq.loopsExecuted || step.nLoops != seq.nLoops)
        throw ArgumentError("a decode step ran " + std::to_string(step.loopsExecuted) + " loops, the sequence " +
                            std::to_string(seq.loopsExecuted) + " (a cache is never reused at another loop count)");
    if (step.startPos != seq.startPos + seq.seqLen)
        throw ArgumentError("a decode step starts at position " + std::to_string(step.startPos) + ", expected " +
                            std::to_string(seq.startPos + seq.seqLen));
    if (step.vocab != seq.vocab || step.nExperts != seq.nExperts || step.topK != seq.topK)
        throw ArgumentError("a decode step comes from another model");
    const int64_t L = seq.loopsExecuted, Ta = seq.seqLen, Tb = step.seqLen;
    for (auto [dst, src] : {std::pair{&seq.actP, &step.actP}, std::pair{&seq.actCumP, &step.actCumP},
                            std::pair{&seq.actWeight, &step.actWeight}, std::pair{&seq.hNorm, &step.hNorm},
                            std::pair{&seq.hDelta, &step.hDelta}})
        joinLoopMajor(*dst, *src, L, Ta, Tb, 1);
    joinLoopMajor(seq.topkIds, step.topkIds, L, Ta, Tb, seq.topK);
    joinLoopMajor(seq.topkWeights, step.topkWeights, L, Ta, Tb, seq.topK);
    if (!seq.routerLogits.empty() || !step.routerLogits.empty())
        joinLoopMajor(seq.routerLogits, step.routerLogits, L, Ta, Tb, seq.nExperts);
    seq.ids.insert(seq.ids.end(), step.ids.begin(), step.ids.end());
    if (seq.pieces.size() == std::size_t(Ta) && step.pieces.size() == std::size_t(Tb))
        seq.pieces.insert(seq.pieces.end(), step.pieces.begin(), step.pieces.end());
    else
        seq.pieces.clear();
    seq.haltLoop.insert(seq.haltLoop.end(), step.haltLoop.begin(), step.haltLoop.end());
    seq.weightSum.insert(seq.weightSum.end(), step.weightSum.begin(), step.weightSum.end());
    if (!seq.logits.empty() && !step.logits.empty())
        seq.logits.insert(seq.logits.end(), step.logits.begin(), step.logits.end());
    else
        seq.logits.clear();
    seq.seqLen = Ta + Tb;
    if (step.hasKv) {
        seq.hasKv = true;
        seq.kv = step.kv;
    }
    for (const auto& entry : step.timingsMs) {
        auto it = std::find_if(seq.timingsMs.begin(), seq.timingsMs.end(),
                               [&](const auto& p) { return p.first == entry.first; });
        if (it == seq.timingsMs.end())
            seq.timingsMs.push_back(entry);
        else
            it->second += entry.second;
    }
}

HaltingSummary haltingSummary(const Trace& tr, int64_t row) {
    HaltingSummary s;
    const int64_t L = std::max<int64_t>(0, tr.loopsExecuted);
    s.histogram.assign(std::size_t(L + 1), 0);
    const int64_t T = tr.seqLen;
    const int64_t first = row < 0 ? 0 : row * T;
    const int64_t last = row < 0 ? tr.batch * T : (row + 1) * T;
    double sum = 0;
    for (int64_t i = std::max<int64_t>(0, first); i < last && i < int64_t(tr.haltLoop.size()); ++i) {
        const int32_t h = tr.haltLoop[std::size_t(i)];
        ++s.tokens;
        if (h > 0) {
            ++s.halted;
            sum += h;
            s.atLoopOne += h == 1;
        } else {
            ++s.never;
        }
        s.histogram[std::size_t(h > 0 && h <= L ? h - 1 : L)] += 1;
    }
    if (s.halted > 0)
        s.meanHaltLoop = sum / double(s.halted);
    return s;
}

} // namespace mythos
