#include "mythos/lens.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>

#include "mythos/analysis.h"
#include "mythos/errors.h"

namespace mythos {

namespace {

std::string shortNumber(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

} // namespace

std::string ExitRule::name() const {
    switch (kind) {
    case Kind::Act: return "act";
    case Kind::KlBelow: return "kl<" + shortNumber(eps);
    case Kind::EntropyBelow: return "entropy<" + shortNumber(eps);
    case Kind::StableTop1: return "stable:" + std::to_string(k);
    }
    return "?";
}

ExitRule parseExitRule(std::string_view text) {
    const auto bad = [&]() -> ArgumentError {
        return ArgumentError("exit rule '" + std::string(text) +
                             "' is not one of act, kl<EPS, entropy<EPS, stable:K (e.g. kl<0.01, stable:2)");
    };
    const auto number = [&](std::string_view s) {
        const std::string str(s);
        char* end = nullptr;
        const double v = std::strtod(str.c_str(), &end);
        if (str.empty() || end != str.c_str() + str.size() || !std::isfinite(v) || v <= 0)
            throw bad();
        return v;
    };
    ExitRule r;
    if (text == "act")
        return r;
    if (text.rfind("kl<", 0) == 0) {
        r.kind = ExitRule::Kind::KlBelow;
        r.eps = number(text.substr(3));
    } else if (text.rfind("entropy<", 0) == 0) {
        r.kind = ExitRule::Kind::EntropyBelow;
        r.eps = number(text.substr(8));
    } else if (text.rfind("stable:", 0) == 0) {
        r.kind = ExitRule::Kind::StableTop1;
        const std::string_view k = text.substr(7);
        int64_t v = 0;
        const auto [ptr, ec] = std::from_chars(k.data(), k.data() + k.size(), v);
        if (ec != std::errc() || ptr != k.data() + k.size() || v < 1 || v > 1024)
            throw bad();
        r.k = v;
    } else {
        throw bad();
    }
    return r;
}

std::vector<ExitRule> defaultExitRules() {
    return {parseExitRule("act"), parseExitRule("kl<0.01"), parseExitRule("entropy<0.1"), parseExitRule("stable:2")};
}

ExitDecision exitDecision(const Trace& tr, const ExitRule& rule, int64_t b, int64_t t) {
    const int64_t K = tr.lens.loops, N = tr.batch * tr.seqLen, n = b * tr.seqLen + t;
    if (K < 1)
        throw ArgumentError("the trace has no logit lens");
    if (b < 0 || b >= tr.batch || t < 0 || t >= tr.seqLen)
        throw ArgumentError("exit rule: position outside the trace");
    const LensSide& s = tr.lens.state;
    const auto at = [&](int64_t loop) { return std::size_t((loop - 1) * N + n); }; // 1-based loop
    ExitDecision d{K, s.top1[at(K)]};
    switch (rule.kind) {
    case ExitRule::Kind::Act: {
        const int32_t halt = std::size_t(n) < tr.haltLoop.size() ? tr.haltLoop[std::size_t(n)] : 0;
        d.loop = halt >= 1 && halt <= K ? halt : K;
        d.token = tr.lens.act.top1[at(K)];
        return d;
    }
    case ExitRule::Kind::KlBelow:
        for (int64_t l = 2; l <= K; ++l)
            if (s.klPrev[at(l)] < rule.eps)
                return {l, s.top1[at(l)]};
        return d;
    case ExitRule::Kind::EntropyBelow:
        for (int64_t l = 1; l <= K; ++l)
            if (s.entropy[at(l)] < rule.eps)
                return {l, s.top1[at(l)]};
        return d;
    case ExitRule::Kind::StableTop1:
        for (int64_t l = rule.k; l <= K; ++l) {
            bool same = true;
            for (int64_t u = l - rule.k + 1; u < l && same; ++u)
                same = s.top1[at(u)] == s.top1[at(l)];
            if (same)
                return {l, s.top1[at(l)]};
        }
        return d;
    }
    return d;
}

TrajectoryRecord trajectoryOf(const DeepRun& run, int64_t K) {
    if (K < 1 || K > run.depth)
        throw ArgumentError("trajectory: loop count " + std::to_string(K) + " is outside the deep run's 1.." +
                            std::to_string(run.depth));
    const int64_t N = run.batch * run.seqLen;
    const int64_t D = N > 0 ? int64_t(run.h[0].size()) / N : 0;
    const int64_t M = K * N;
    TrajectoryRecord tr;
    tr.loops = K;
    // States as rows of a centred matrix X [M][D] (double).
    Eigen::MatrixXd X(M, D);
    for (int64_t t = 0; t < K; ++t)
        for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < D; ++i)
                X(t * N + n, i) = double(run.h[std::size_t(t)][std::size_t(n * D + i)]);
    const Eigen::RowVectorXd mean = X.colwise().mean();
    X.rowwise() -= mean;
    // Non-finite states (a broken checkpoint) give no components: coordinates stay NaN.
    const bool finite = X.allFinite();
    Eigen::MatrixXd comps = Eigen::MatrixXd::Zero(D, 2);
    double total = finite ? X.squaredNorm() : 0.0;
    if (finite && total > 0 && D > 0) {
        Eigen::VectorXd values;
        if (D <= M || D <= 512) {
            // Covariance D x D.
            const Eigen::MatrixXd C = X.transpose() * X;
            Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(C);
            values = es.eigenvalues().reverse();
            const Eigen::MatrixXd vecs = es.eigenvectors().rowwise().reverse();
            comps.leftCols(std::min<int64_t>(2, D)) = vecs.leftCols(std::min<int64_t>(2, D));
        } else {
            // Gram M x M: the components are X^T u / |X^T u|.
            const Eigen::MatrixXd G = X * X.transpose();
            Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(G);
            values = es.eigenvalues().reverse();
            const Eigen::MatrixXd us = es.eigenvectors().rowwise().reverse();
            for (int c = 0; c < std::min<int64_t>(2, M); ++c) {
                Eigen::VectorXd v = X.transpose() * us.col(c);
                if (v.norm() > 0)
                    comps.col(c) = v / v.norm();
            }
        }
        for (int c = 0; c < 2; ++c) {
            if (c < values.size())
                tr.explained[c] = std::max(0.0, values(c)) / total;
            Eigen::Index big = 0;
            comps.col(c).cwiseAbs().maxCoeff(&big);
            if (comps(big, c) < 0)
                comps.col(c) = -comps.col(c);
        }
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    tr.coords.resize(std::size_t(M * 2));
    for (int64_t m = 0; m < M; ++m)
        for (int c = 0; c < 2; ++c)
            tr.coords[std::size_t(m * 2 + c)] = float(finite ? X.row(m).dot(comps.col(c)) : nan);
    tr.cosFinal.resize(std::size_t(M));
    const auto& hK = run.h[std::size_t(K - 1)];
    for (int64_t t = 0; t < K; ++t)
        for (int64_t n = 0; n < N; ++n) {
            const float* a = run.h[std::size_t(t)].data() + n * D;
            const float* b = hK.data() + n * D;
            double ab = 0, aa = 0, bb = 0;
            for (int64_t i = 0; i < D; ++i) {
                ab += double(a[i]) * double(b[i]);
                aa += double(a[i]) * double(a[i]);
                bb += double(b[i]) * double(b[i]);
            }
            tr.cosFinal[std::size_t(t * N + n)] = float(aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : nan);
        }
    return tr;
}

namespace {

// The top-1 of position t of batch row 0: from the full logits, else from the top-k rows.
int32_t topOf(const Trace& tr, int64_t t) {
    const int64_t V = tr.vocab;
    if (!tr.logits.empty()) {
        const float* row = tr.logits.data() + t * V;
        return int32_t(std::max_element(row, row + V) - row);
    }
    for (std::size_t i = 0; i < tr.topLogitPositions.size(); ++i)
        if (tr.topLogitPositions[i] == t)
            return tr.topLogitIds[i * std::size_t(tr.topLogitK)];
    return -1;
}

} // namespace

InterventionEffect interventionEffect(const Trace& base, const Trace& mod) {
    requireSameTokens(base, mod);
    const int64_t T = base.seqLen, V = base.vocab;
    InterventionEffect e;
    e.tokens = T;
    const bool full = !base.logits.empty() && !mod.logits.empty() && base.vocab == mod.vocab;
    std::vector<float> pb(static_cast<std::size_t>(V)), pm(static_cast<std::size_t>(V));
    double klSum = 0;
    int64_t klN = 0;
    for (int64_t t = 0; t < T; ++t) {
        double kl = std::numeric_limits<double>::quiet_NaN();
        if (full) {
            const float* zb = base.logits.data() + t * V;
            const float* zm = mod.logits.data() + t * V;
            // KL(Pb || Pm) = sum pb (log pb - log pm), log p = z - lse.
            const auto lse = [V](const float* z) {
                const double m = *std::max_element(z, z + V);
                double s = 0;
                for (int64_t i = 0; i < V; ++i)
                    s += std::exp(double(z[i]) - m);
                return m + std::log(s);
            };
            const double lb = lse(zb), lm = lse(zm);
            kl = 0;
            for (int64_t i = 0; i < V; ++i) {
                const double p = std::exp(double(zb[i]) - lb);
                kl += p * ((double(zb[i]) - lb) - (double(zm[i]) - lm));
            }
            kl = kl < 0 ? 0 : kl;
            if (std::isfinite(kl)) {
                klSum += kl;
                ++klN;
            }
        }
        e.kl.push_back(kl);
        e.topBase.push_back(topOf(base, t));
        e.topMod.push_back(topOf(mod, t));
        if (e.topBase.back() != e.topMod.back())
            ++e.changedTop1;
        e.haltBase.push_back(std::size_t(t) < base.haltLoop.size() ? base.haltLoop[std::size_t(t)] : 0);
        e.haltMod.push_back(std::size_t(t) < mod.haltLoop.size() ? mod.haltLoop[std::size_t(t)] : 0);
        // Routing: the selected sets per common loop.
        const int64_t L = std::min(base.loopsExecuted, mod.loopsExecuted), k = base.topK;
        int64_t differ = 0;
        if (k == mod.topK && k > 0)
            for (int64_t l = 0; l < L; ++l) {
                const std::size_t ab = base.at(l, 0, t) * std::size_t(k), am = mod.at(l, 0, t) * std::size_t(k);
                std::set<int32_t> sb(base.topkIds.begin() + ab, base.topkIds.begin() + ab + k);
                std::set<int32_t> sm(mod.topkIds.begin() + am, mod.topkIds.begin() + am + k);
                differ += sb != sm;
            }
        e.routingChanged.push_back(L > 0 ? double(differ) / double(L) : 0.0);
    }
    e.meanKl = klN ? klSum / double(klN) : std::numeric_limits<double>::quiet_NaN();
    return e;
}

} // namespace mythos
