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

namespace {

// The two largest eigenpairs of a symmetric positive semi-definite S (n x n): Lanczos with
// full reorthogonalisation from a fixed pseudo-random start, stopped when both Ritz pairs'
// residuals |S v - theta v| are below 1e-10 theta_1, or when the Krylov space is invariant
// or spans the whole space (its Ritz pairs are then S's own: a generic start has a part
// along every eigenvector, so an invariant Krylov space holds the top ones). A few dozen products with S
// for a state cloud, against O(n^3) for a whole eigendecomposition.
struct TopTwo {
    double values[2] = {0, 0};
    Eigen::MatrixXd vectors; // n x 2
};
TopTwo topTwoEigen(const Eigen::MatrixXd& S) {
    const Eigen::Index n = S.rows();
    TopTwo out;
    out.vectors = Eigen::MatrixXd::Zero(n, 2);
    if (n <= 16) { // small: the whole decomposition
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
        for (Eigen::Index c = 0; c < std::min<Eigen::Index>(2, n); ++c) {
            out.values[c] = es.eigenvalues()(n - 1 - c);
            out.vectors.col(c) = es.eigenvectors().col(n - 1 - c);
        }
        return out;
    }
    // A fixed pseudo-random start: the same components every time for the same states.
    Eigen::VectorXd q(n);
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (Eigen::Index i = 0; i < n; ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        q(i) = double(seed >> 11) / double(uint64_t(1) << 53) - 0.5;
    }
    q.normalize();
    Eigen::MatrixXd Q(n, n);
    std::vector<double> alpha, beta;
    const double scale = std::max(S.diagonal().sum(), std::numeric_limits<double>::min());
    Eigen::Index check = 8;
    for (Eigen::Index m = 1; m <= n; ++m) {
        Q.col(m - 1) = q;
        Eigen::VectorXd w = S * q;
        alpha.push_back(q.dot(w));
        for (int pass = 0; pass < 2; ++pass)
            w -= Q.leftCols(m) * (Q.leftCols(m).transpose() * w);
        const double b = w.norm();
        const bool invariant = b <= 1e-13 * scale;
        if (m == n || invariant || m == check) {
            check += std::max<Eigen::Index>(8, check / 2);
            Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
            es.computeFromTridiagonal(Eigen::Map<const Eigen::VectorXd>(alpha.data(), m),
                                      Eigen::Map<const Eigen::VectorXd>(beta.data(), m - 1));
            const Eigen::MatrixXd& s = es.eigenvectors();
            const double tol = 1e-10 * std::max(es.eigenvalues()(m - 1), 0.0);
            const bool done = m == n || invariant ||
                              (m >= 2 && b * std::abs(s(m - 1, m - 1)) <= tol && b * std::abs(s(m - 1, m - 2)) <= tol);
            if (done) {
                for (Eigen::Index c = 0; c < std::min<Eigen::Index>(2, m); ++c) {
                    out.values[c] = es.eigenvalues()(m - 1 - c);
                    out.vectors.col(c) = Q.leftCols(m) * s.col(m - 1 - c);
                }
                return out;
            }
        }
        beta.push_back(b);
        q = w / b;
    }
    return out;
}

} // namespace

TrajectoryRecord trajectoryOf(const DeepRun& run, int64_t K) {
    if (K < 1 || K > run.depth)
        throw ArgumentError("trajectory: loop count " + std::to_string(K) + " is outside the deep run's 1.." +
                            std::to_string(run.depth));
    const int64_t N = run.batch * run.seqLen;
    const int64_t D = N > 0 ? int64_t(run.h[0].size()) / N : 0;
    const int64_t M = K * N;
    TrajectoryRecord tr;
    tr.loops = K;
    // States as rows of a centred matrix X [M][D] (double, row-major: filled as stored).
    using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    RowMatrix X(M, D);
    for (int64_t t = 0; t < K; ++t)
        std::copy(run.h[std::size_t(t)].begin(), run.h[std::size_t(t)].begin() + N * D, X.data() + t * N * D);
    const Eigen::RowVectorXd mean = X.colwise().mean();
    X.rowwise() -= mean;
    // Non-finite states (a broken checkpoint) give no components: coordinates stay NaN.
    const bool finite = X.allFinite();
    Eigen::MatrixXd comps = Eigen::MatrixXd::Zero(D, 2);
    double total = finite ? X.squaredNorm() : 0.0;
    if (finite && total > 0 && D > 0) {
        double values[2] = {0, 0};
        if (D <= M || D <= 512) {
            // Covariance D x D (one triangle, mirrored).
            Eigen::MatrixXd C = Eigen::MatrixXd::Zero(D, D);
            C.selfadjointView<Eigen::Lower>().rankUpdate(X.transpose());
            C.triangularView<Eigen::StrictlyUpper>() = C.transpose();
            const TopTwo top = topTwoEigen(C);
            comps = top.vectors;
            values[0] = top.values[0];
            values[1] = top.values[1];
        } else {
            // Gram M x M: the components are X^T u / |X^T u|.
            Eigen::MatrixXd G = Eigen::MatrixXd::Zero(M, M);
            G.selfadjointView<Eigen::Lower>().rankUpdate(X);
            G.triangularView<Eigen::StrictlyUpper>() = G.transpose();
            const TopTwo top = topTwoEigen(G);
            for (int c = 0; c < 2; ++c) {
                values[c] = top.values[c];
                Eigen::VectorXd v = X.transpose() * top.vectors.col(c);
                if (v.norm() > 0)
                    comps.col(c) = v / v.norm();
            }
        }
        for (int c = 0; c < 2; ++c) {
            tr.explained[c] = std::max(0.0, values[c]) / total;
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
    tr.delta.resize(std::size_t(M));
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
            const float* prev = (t == 0 ? run.e.data() : run.h[std::size_t(t - 1)].data()) + n * D;
            double dd = 0;
            for (int64_t i = 0; i < D; ++i)
                dd += (double(a[i]) - double(prev[i])) * (double(a[i]) - double(prev[i]));
            tr.delta[std::size_t(t * N + n)] = float(std::sqrt(dd));
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
