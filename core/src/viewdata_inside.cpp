// View data of the lens, attention and trajectory views (viewdata.h, "inside the loop").
#include <algorithm>
#include <cmath>
#include <limits>

#include "mythos/errors.h"
#include "mythos/viewdata.h"

namespace mythos {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double finiteTop(const std::vector<double>& v, double floor) {
    double top = floor;
    for (double x : v)
        if (std::isfinite(x))
            top = std::max(top, x);
    return top;
}

} // namespace

LensViewData lensViewData(const Trace& tr, LensSource source) {
    LensViewData d;
    const int64_t K = tr.lens.loops, T = tr.seqLen, N = tr.batch * tr.seqLen;
    const LensSide& s = source == LensSource::Act ? tr.lens.act : tr.lens.state;
    if (K < 1 || T < 1 || s.top1.size() != std::size_t(K * N))
        return d;
    d.tokens = T;
    d.loops = K;
    const auto cell = [&](int64_t t, int64_t l) { return std::size_t(l * N + t); }; // batch row 0
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t l = 0; l < K; ++l) {
            d.top1.push_back(s.top1[cell(t, l)]);
            d.p.push_back(s.p[cell(t, l)]);
            d.entropy.push_back(s.entropy[cell(t, l)]);
            d.klFinal.push_back(s.klFinal[cell(t, l)]);
            d.klPrev.push_back(l == 0 ? kNaN : double(s.klPrev[cell(t, l)]));
        }
        const int32_t conv = s.convergence[std::size_t(t)];
        d.convergence.push_back(conv);
        d.finalTop1.push_back(tr.lens.act.top1[cell(t, K - 1)]);
        const int32_t halt = std::size_t(t) < tr.haltLoop.size() ? tr.haltLoop[std::size_t(t)] : 0;
        d.haltLoop.push_back(halt);
        if (halt < 1) {
            ++d.never;
            d.haltVsConv.push_back({double(conv), double(K + 1)});
        } else {
            d.haltVsConv.push_back({double(conv), double(halt)});
            d.early += halt < conv;
            d.same += halt == conv;
            d.late += halt > conv;
        }
    }
    d.entropyTop = finiteTop(d.entropy, 1e-6);
    d.klTop = finiteTop(d.klFinal, 1e-6);
    return d;
}

ExitRuleTable exitRuleTable(const Trace& tr, const std::vector<ExitRule>& rules) {
    ExitRuleTable t;
    const int64_t K = tr.lens.loops, T = tr.seqLen, N = tr.batch * tr.seqLen;
    if (K < 1 || tr.lens.state.top1.size() != std::size_t(K * N) || tr.lens.act.top1.size() != std::size_t(K * N))
        return t;
    for (const auto& rule : rules) {
        t.names.push_back(rule.name());
        double sum = 0;
        int64_t agree = 0;
        for (int64_t i = 0; i < T; ++i) {
            const ExitDecision d = exitDecision(tr, rule, 0, i);
            t.loops.push_back(d.loop);
            t.tokens.push_back(d.token);
            sum += double(d.loop);
            agree += d.token == tr.lens.act.top1[std::size_t((K - 1) * N + i)];
        }
        t.meanLoops.push_back(T ? sum / double(T) : 0.0);
        t.agreeFinal.push_back(agree);
    }
    return t;
}

AttentionGridData attentionGridData(const Trace& tr) {
    AttentionGridData g;
    const AttentionRecord& a = tr.attention;
    const int64_t H = tr.config.n_heads, W = tr.attentionEnd() - a.from;
    if (a.sites.empty() || W < 1 || H < 1)
        return g;
    g.heads = H;
    g.from = a.from;
    g.to = tr.attentionEnd();
    for (const auto& s : a.sites) {
        g.names.push_back(s.name);
        g.loops.push_back(s.loop);
        g.recurrent.push_back(s.stage == "recurrent");
        const bool whole = s.probs.size() == std::size_t(H * W * W);
        for (int64_t h = 0; h < H; ++h) {
            double ent = 0, dist = 0, out = 0;
            int64_t rows = 0;
            for (int64_t i = 0; whole && i < W; ++i) {
                const float* row = s.probs.data() + (h * W + i) * W;
                double e = 0, dd = 0, mass = 0;
                for (int64_t j = 0; j <= i; ++j) {
                    const double p = row[j];
                    if (p > 0)
                        e -= p * std::log(p);
                    dd += p * double(i - j);
                    mass += p;
                }
                ent += e;
                dist += dd;
                out += 1.0 - mass;
                ++rows;
            }
            g.entropy.push_back(rows ? ent / double(rows) : kNaN);
            g.distance.push_back(rows ? dist / double(rows) : kNaN);
            g.outside.push_back(rows ? std::max(0.0, out / double(rows)) : kNaN);
        }
    }
    g.distanceTop = finiteTop(g.distance, 1.0);
    return g;
}

Trace attentionWindowTrace(const Trace& tr, int64_t from, int64_t to) {
    const AttentionRecord& a = tr.attention;
    const int64_t H = tr.config.n_heads, f0 = a.from, W0 = tr.attentionEnd() - f0;
    if (from < f0 || to > f0 + W0 || from >= to)
        throw ArgumentError("attention window " + std::to_string(from) + ".." + std::to_string(to) +
                            " is not inside the recorded " + std::to_string(f0) + ".." + std::to_string(f0 + W0));
    Trace out;
    out.config = tr.config;
    out.model = tr.model;
    out.batch = tr.batch;
    out.seqLen = tr.seqLen;
    out.startPos = tr.startPos;
    out.nLoops = tr.nLoops;
    out.loopsExecuted = tr.loopsExecuted;
    out.vocab = tr.vocab;
    out.ids = tr.ids;
    out.pieces = tr.pieces;
    out.attention.batchRow = a.batchRow;
    out.attention.from = from;
    out.attention.to = to;
    const int64_t W = to - from, off = from - f0;
    for (const AttentionSite& s : a.sites) {
        AttentionSite c;
        c.name = s.name;
        c.stage = s.stage;
        c.layer = s.layer;
        c.loop = s.loop;
        if (s.probs.size() == std::size_t(H * W0 * W0)) {
            c.probs.resize(std::size_t(H * W * W));
            for (int64_t h = 0; h < H; ++h)
                for (int64_t i = 0; i < W; ++i) {
                    const float* src = s.probs.data() + (h * W0 + off + i) * W0 + off;
                    std::copy(src, src + W, c.probs.begin() + (h * W + i) * W);
                }
        }
        out.attention.sites.push_back(std::move(c));
    }
    return out;
}

std::vector<double> attentionMatrix(const Trace& tr, std::size_t site, int64_t head) {
    const AttentionRecord& a = tr.attention;
    const int64_t H = tr.config.n_heads, W = tr.attentionEnd() - a.from;
    if (site >= a.sites.size() || head < 0 || head >= H || W < 1 ||
        a.sites[site].probs.size() != std::size_t(H * W * W))
        return {};
    const float* m = a.sites[site].probs.data() + head * W * W;
    return std::vector<double>(m, m + W * W);
}

TrajectoryViewData trajectoryViewData(const Trace& tr) {
    TrajectoryViewData d;
    const TrajectoryRecord& r = tr.trajectory;
    const int64_t K = r.loops, T = tr.seqLen, N = tr.batch * tr.seqLen;
    if (K < 1 || T < 1 || r.coords.size() != std::size_t(K * N * 2) || r.cosFinal.size() != std::size_t(K * N))
        return d;
    d.tokens = T;
    d.loops = K;
    d.explained[0] = r.explained[0];
    d.explained[1] = r.explained[1];
    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    d.orbits.resize(std::size_t(T));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t l = 0; l < K; ++l) {
            const std::size_t at = std::size_t(l * N + t);
            const double x = r.coords[at * 2], y = r.coords[at * 2 + 1];
            if (std::isfinite(x) && std::isfinite(y)) {
                d.orbits[std::size_t(t)].push_back({x, y});
                x0 = std::min(x0, x);
                x1 = std::max(x1, x);
                y0 = std::min(y0, y);
                y1 = std::max(y1, y);
            }
            d.delta.push_back(r.delta.size() == std::size_t(K * N) ? double(r.delta[at]) : kNaN);
            d.cosFinal.push_back(r.cosFinal[at]);
        }
    if (x0 <= x1) {
        const double px = std::max((x1 - x0) * 0.05, 1e-6), py = std::max((y1 - y0) * 0.05, 1e-6);
        d.xMin = x0 - px;
        d.xMax = x1 + px;
        d.yMin = y0 - py;
        d.yMax = y1 + py;
    }
    d.deltaTop = finiteTop(d.delta, 1e-6);
    return d;
}

} // namespace mythos
