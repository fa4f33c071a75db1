#include "mythos/viewdata.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mythos {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Value i of v, NaN past its end (a trace with a missing array).
double valueOrNaN(const std::vector<float>& v, std::size_t i) { return i < v.size() ? double(v[i]) : kNaN; }

// The largest finite value, `floor` when there is none larger.
double finiteMax(const std::vector<double>& v, double floor) {
    double top = floor;
    for (double x : v)
        if (std::isfinite(x))
            top = std::max(top, x);
    return top;
}

std::vector<int64_t> loopsPast(int64_t maxLoopIters, int64_t loops) {
    std::vector<int64_t> past;
    for (int64_t l = std::max<int64_t>(0, maxLoopIters); l < loops; ++l)
        past.push_back(l);
    return past;
}

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

} // namespace

// ---- halting ----

HaltingViewData haltingViewData(const Trace& tr) {
    HaltingViewData d;
    const int64_t T = tr.seqLen, L = tr.loopsExecuted;
    d.tokens = T;
    d.loops = L;
    d.requestedLoops = tr.nLoops;
    d.maxLoopIters = tr.config.max_loop_iters;
    d.threshold = double(float(tr.config.act_threshold));
    d.summary = haltingSummary(tr, 0);

    for (int64_t t = 0; t < T; ++t) {
        const int32_t h = std::size_t(t) < tr.haltLoop.size() ? tr.haltLoop[std::size_t(t)] : 0;
        d.haltLoop.push_back(h);
        d.haltBar.push_back(double(h > 0 ? h : L + 1));
        d.weightSum.push_back(valueOrNaN(tr.weightSum, std::size_t(t)));
        d.lastCumP.push_back(L > 0 ? valueOrNaN(tr.actCumP, tr.at(L - 1, 0, t)) : kNaN);
    }
    d.cumP.resize(std::size_t(T * L));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t l = 0; l < L; ++l)
            d.cumP[std::size_t(t * L + l)] = valueOrNaN(tr.actCumP, tr.at(l, 0, t));
    d.cumPTop = finiteMax(d.cumP, 1.0);
    d.weightSumTop = finiteMax(d.weightSum, 0.0);
    d.pastMaxLoopIters = loopsPast(d.maxLoopIters, L);
    d.finalRemainder = tr.options.is_object() && tr.options.value("act_final_remainder", false);

    if (T > 0) {
        d.atLoopOneShare = double(d.summary.atLoopOne) / double(T);
        d.neverShare = double(d.summary.never) / double(T);
    }
    // Collapse needs more than one loop to be meaningful.
    if (T > 0 && d.summary.never == T)
        d.health = ActHealth::NeverHalts;
    else if (T > 0 && std::max(d.requestedLoops, L) > 1 && d.summary.atLoopOne * 10 >= T * 9)
        d.health = ActHealth::Collapsed;
    return d;
}

HaltingComparison compareHalting(const Trace& a, const Trace& b) {
    requireSameTokens(a, b);
    HaltingComparison c;
    const int64_t T = a.seqLen, L = std::max(a.loopsExecuted, b.loopsExecuted);
    c.tokens = T;
    c.loops = L;
    for (int64_t t = 0; t < T; ++t) {
        const int32_t ha = std::size_t(t) < a.haltLoop.size() ? a.haltLoop[std::size_t(t)] : 0;
        const int32_t hb = std::size_t(t) < b.haltLoop.size() ? b.haltLoop[std::size_t(t)] : 0;
        const double va = ha > 0 ? ha : double(L + 1), vb = hb > 0 ? hb : double(L + 1);
        c.haltA.push_back(va);
        c.haltB.push_back(vb);
        c.diff.push_back(vb - va);
        c.sameHaltLoop += ha == hb;
    }
    return c;
}

// ---- expert routing ----

std::vector<int64_t> deadExperts(const LoadStats& s) {
    std::vector<int64_t> dead;
    for (std::size_t e = 0; e < s.load.size(); ++e)
        if (s.load[e] == 0)
            dead.push_back(int64_t(e));
    return dead;
}

ExpertLoadGrid expertLoadGrid(const RoutingStats& stats, int64_t maxLoopIters) {
    ExpertLoadGrid g;
    const int64_t E = stats.nExperts, L = int64_t(stats.perLoop.size());
    g.experts = E;
    g.loops = L;
    g.load.resize(std::size_t(E * L));
    for (int64_t e = 0; e < E; ++e)
        for (int64_t l = 0; l < L; ++l)
            g.load[std::size_t(e * L + l)] = stats.perLoop[std::size_t(l)].load[std::size_t(e)];
    // NaN from a trace's null entries is skipped; 2/E keeps an even load mid-scale.
    g.top = std::max(2.0 / double(std::max<int64_t>(E, 1)), finiteMax(g.load, 0.0));
    g.pastMaxLoopIters = loopsPast(maxLoopIters, L);
    return g;
}

RoutingBalanceCurves routingBalanceCurves(const RoutingStats& stats) {
    RoutingBalanceCurves c;
    const int64_t E = stats.nExperts, L = int64_t(stats.perLoop.size());
    c.maxEntropyBits = E > 1 ? std::log2(double(E)) : 1.0;
    for (int64_t l = 0; l < L; ++l) {
        const auto& s = stats.perLoop[std::size_t(l)];
        const double x = double(l + 1);
        c.entropyShare.emplace_back(x, s.entropyBits / c.maxEntropyBits);
        c.gini.emplace_back(x, s.gini);
        if (l > 0) {
            c.top1Switch.emplace_back(x, stats.top1Switch[std::size_t(l)]);
            c.setSwitch.emplace_back(x, stats.setSwitch[std::size_t(l)]);
        }
    }
    return c;
}

TokenRouting tokenRouting(const RoutingSelection& sel, int64_t loop) {
    TokenRouting r;
    const int64_t T = sel.seqLen, E = sel.nExperts, L = sel.loops, K = sel.topK;
    if (L == 0 || E == 0)
        return r;
    loop = std::clamp<int64_t>(loop, 0, L);
    r.tokens = T;
    r.experts = E;
    r.loop = loop;
    r.gateTop = loop > 0 ? 1.0 : double(L);
    const auto gates = tokenExpertGates(sel, 0, loop - 1);
    r.gates.resize(std::size_t(T * E));
    r.top.assign(std::size_t(T), -1);
    r.topGate.assign(std::size_t(T), -1.0);
    for (int64_t t = 0; t < T; ++t) {
        double best = -1;
        for (int64_t e = 0; e < E; ++e) {
            const double g = gates[std::size_t(t * E + e)];
            r.gates[std::size_t(t * E + e)] = g;
            if (g > best && g > 0) {
                best = g;
                r.top[std::size_t(t)] = int32_t(e);
            }
        }
        r.topGate[std::size_t(t)] = best;
        if (loop > 0 && K > 0) // at one loop the first choice is the top expert
            r.top[std::size_t(t)] = sel.ids[sel.at(loop - 1, 0, t)];
    }
    return r;
}

RouterBiasBars routerBiasBars(const Trace& tr) {
    RouterBiasBars b;
    b.present = !tr.routerBias.empty();
    for (int64_t e = 0; e < tr.nExperts; ++e) {
        const double v = std::size_t(e) < tr.routerBias.size() ? double(tr.routerBias[std::size_t(e)]) : 0.0;
        b.nonZero = b.nonZero || v != 0.0;
        b.bias.push_back(v);
    }
    return b;
}

// ---- stability of the recurrence ----

namespace {

// The per-loop arrays hold [L][B][T]; a hand-made or foreign trace may lack them.
bool hasLoopArray(const Trace& tr, const std::vector<float>& a) {
    return tr.loopsExecuted > 0 && tr.batch > 0 && tr.seqLen > 0 &&
           a.size() >= std::size_t(tr.loopsExecuted * tr.batch * tr.seqLen);
}

// Delta(t + 1) / Delta(t) of one token at 1-based loop t (NaN when undefined).
double contractionRatio(const Trace& tr, int64_t t, int64_t token) {
    const double num = tr.hDelta[tr.at(t, 0, token)];
    const double den = tr.hDelta[tr.at(t - 1, 0, token)];
    if (!(den > 0) || !std::isfinite(num) || !std::isfinite(den))
        return kNaN;
    return num / den;
}

// Mean of the finite values, NaN for none.
struct FiniteMean {
    double sum = 0;
    int64_t n = 0;
    void add(double v) {
        if (std::isfinite(v)) {
            sum += v;
            ++n;
        }
    }
    double value() const { return n > 0 ? sum / double(n) : kNaN; }
};

void addFinite(std::vector<std::pair<double, double>>& curve, double x, double y) {
    if (std::isfinite(y))
        curve.emplace_back(x, y);
}

} // namespace

LoopCurves loopCurves(const Trace& tr, int64_t token) {
    LoopCurves c;
    const int64_t L = tr.loopsExecuted, T = tr.seqLen;
    c.haveNorm = hasLoopArray(tr, tr.hNorm);
    c.haveDelta = hasLoopArray(tr, tr.hDelta);
    if (token >= T)
        return c;
    const int64_t first = token < 0 ? 0 : token, last = token < 0 ? T : token + 1;
    for (int64_t l = 0; l < L; ++l) {
        FiniteMean norm, delta, ratio;
        for (int64_t t = first; t < last; ++t) {
            if (c.haveNorm)
                norm.add(tr.hNorm[tr.at(l, 0, t)]);
            if (c.haveDelta) {
                const double d = tr.hDelta[tr.at(l, 0, t)];
                delta.add(d);
                if (d > 0 && std::isfinite(d)) {
                    c.deltaMin = std::min(c.deltaMin, d);
                    c.deltaMax = std::max(c.deltaMax, d);
                }
                if (l + 1 < L)
                    ratio.add(contractionRatio(tr, l + 1, t));
            }
        }
        const double x = double(l + 1);
        addFinite(c.norm, x, norm.value());
        addFinite(c.delta, x, delta.value());
        addFinite(c.ratio, x, ratio.value());
    }
    return c;
}

// ---- KV cache ----

KvEntryKind kvEntryKind(const std::string& key) {
    if (startsWith(key, "prelude_"))
        return KvEntryKind::Prelude;
    if (startsWith(key, "recurrent_loop_"))
        return KvEntryKind::Recurrent;
    return KvEntryKind::Coda;
}

std::vector<int64_t> kvSamplePoints(int64_t hi, int64_t mark) {
    std::vector<int64_t> xs;
    const int64_t step = std::max<int64_t>(1, hi / 64);
    for (int64_t x = 1; x <= hi; x += step)
        xs.push_back(x);
    if (xs.empty() || xs.back() != hi)
        xs.push_back(hi);
    if (mark >= 1 && mark <= hi && std::find(xs.begin(), xs.end(), mark) == xs.end()) {
        xs.push_back(mark);
        std::sort(xs.begin(), xs.end());
    }
    return xs;
}

KvViewData kvViewData(const Trace& tr) {
    KvViewData d;
    const Config& c = tr.config;
    d.loops = std::max<int64_t>(1, tr.nLoops);
    d.batch = std::max<int64_t>(1, tr.batch);
    d.live = tr.hasKv && !tr.kv.entries.empty();
    d.positions = d.live ? tr.kv.entries.front().positions : tr.startPos + tr.seqLen;
    d.ledger = d.live ? tr.kv : kvLedgerFor(c, d.batch, d.positions, d.loops, KvLayout::Reference);
    d.bytesPerPositionReference = kvBytesPerPosition(c, KvLayout::Reference);
    d.bytesPerPositionCompact = kvBytesPerPosition(c, KvLayout::Compact);

    for (const auto& e : d.ledger.entries) {
        const int64_t compact = d.batch * e.positions * d.bytesPerPositionCompact;
        d.compactBytes.push_back(compact);
        d.compactTotal += compact;
        d.kinds.push_back(kvEntryKind(e.key));
        d.recurrentEntries += d.kinds.back() == KvEntryKind::Recurrent;
        d.largestEntryBytes = std::max(d.largestEntryBytes, e.referenceBytes);
    }
    if (d.positions > 0) {
        const double tokens = double(d.positions * d.batch);
        d.perTokenReference = double(d.ledger.referenceBytes) / tokens;
        d.perTokenCompact = double(d.compactTotal) / tokens;
    }
    d.extraLoopBytes = d.batch * d.positions * d.bytesPerPositionReference;
    if (c.isMla()) {
        d.ropeCopyBytes = (c.n_heads - 1) * c.qk_rope_head_dim * int64_t(sizeof(float));
    } else {
        Config mha = c;
        mha.n_kv_heads = c.n_heads;
        d.mhaBytesPerPosition = kvBytesPerPosition(mha, KvLayout::Reference);
    }

    const auto variants = kvVariants(c, d.ledger.engineLayout == "compact" ? KvLayout::Compact : KvLayout::Reference);
    d.maxSeqLen = std::max<int64_t>(c.max_seq_len, d.positions);
    d.maxLoops = std::max<int64_t>(4 * c.max_loop_iters, d.loops);
    const int64_t curvePositions = std::max<int64_t>(1, d.positions);
    for (const auto& v : variants) {
        d.curveTop = std::max(d.curveTop, kvTotalBytes(v.config, v.layout, d.batch, d.maxSeqLen, d.loops));
        d.curveTop = std::max(d.curveTop, kvTotalBytes(v.config, v.layout, d.batch, curvePositions, d.maxLoops));
    }
    for (const auto& v : variants) {
        KvCurve curve;
        curve.variant = v;
        curve.compactMla = v.config.isMla() && v.layout == KvLayout::Compact;
        for (int64_t x : kvSamplePoints(d.maxSeqLen, d.positions))
            curve.bySeqLen.emplace_back(x, kvTotalBytes(v.config, v.layout, d.batch, x, d.loops));
        for (int64_t k : kvSamplePoints(d.maxLoops, d.loops))
            curve.byLoops.emplace_back(k, kvTotalBytes(v.config, v.layout, d.batch, curvePositions, k));
        d.curves.push_back(std::move(curve));
    }
    return d;
}

} // namespace mythos
