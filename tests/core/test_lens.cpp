// Inside the loop (docs/inside-the-loop.md): the logit lens per loop, exit rules on a lens,
// attention probabilities per attention application, PCA trajectories, and their optional
// trace parts (docs/trace-schema.md).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/modelspec.h"
#include "mythos/trace.h"
#include "mythos/viewdata.h"
#include "testutil.h"

using namespace mythos;
using nlohmann::json;

namespace {

using testutil::maxRelErr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::unique_ptr<Model> openCase(const std::string& name) { return Model::open(golden::find(name).dir.string()); }

const std::vector<int32_t> kPrompt = {3, 17, 42, 5, 9, 60, 28, 11};
const std::vector<int32_t> kOther = {50, 2, 33, 19, 7, 44, 21, 8};

// Rows [t0, t1) of a [..][V] array.
std::vector<float> rows(const std::vector<float>& z, int64_t t0, int64_t t1, int64_t V) {
    return std::vector<float>(z.begin() + t0 * V, z.begin() + t1 * V);
}

// Equal, NaN equal to NaN.
bool sameFloats(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))))
            return false;
    return true;
}

struct Softmax {
    std::vector<double> logp;
    int32_t top = 0;
};
Softmax softmaxOf(const float* z, int64_t V) {
    Softmax s;
    s.top = int32_t(std::max_element(z, z + V) - z);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i)
        sum += std::exp(double(z[i]) - double(z[s.top]));
    const double lse = double(z[s.top]) + std::log(sum);
    for (int64_t i = 0; i < V; ++i)
        s.logp.push_back(double(z[i]) - lse);
    return s;
}
double kl(const Softmax& p, const Softmax& q) {
    double s = 0;
    for (std::size_t i = 0; i < p.logp.size(); ++i)
        s += std::exp(p.logp[i]) * (p.logp[i] - q.logp[i]);
    return s;
}
double entropy(const Softmax& p) {
    double s = 0;
    for (double lp : p.logp)
        s -= std::exp(lp) * lp;
    return s;
}

// ---------------------------------------------------------------------------------------
// Logit lens

class LensTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override { m = openCase(GetParam()); }
    std::unique_ptr<Model> m;
};

// The act lens at t is the model's output at t loops: logitsAt(run, t), also past
// max_loop_iters (4 for the tiny models).
TEST_P(LensTest, ActLensIsTheOutputAtEachLoopCount) {
    const int64_t T = int64_t(kPrompt.size()), K = 6, V = m->config().vocab_size, N = T;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    const LensRecord lr = m->lens(run, K, true);
    ASSERT_EQ(lr.loops, K);
    ASSERT_EQ(lr.act.logits.size(), std::size_t(K * N * V));
    ASSERT_EQ(lr.state.logits.size(), std::size_t(K * N * V));
    for (int64_t t = 1; t <= K; ++t) {
        SCOPED_TRACE("loop " + std::to_string(t));
        EXPECT_EQ(rows(lr.act.logits, (t - 1) * N, t * N, V), m->logitsAt(run, t));
    }
    for (int64_t n = 0; n < N; ++n) {
        EXPECT_EQ(lr.act.klFinal[std::size_t((K - 1) * N + n)], 0.0f);
    }
    // Without keepLogits the numbers are the same and no rows are kept.
    const LensRecord lean = m->lens(run, K);
    EXPECT_TRUE(lean.act.logits.empty());
    EXPECT_EQ(lean.act.top1, lr.act.top1);
    EXPECT_EQ(lean.state.p, lr.state.p);
    EXPECT_EQ(lean.state.convergence, lr.state.convergence);
    // A lens over fewer loops than the run: its own final output.
    const LensRecord shorter = m->lens(run, 3, true);
    EXPECT_EQ(rows(shorter.act.logits, 0, 3 * N, V), rows(lr.act.logits, 0, 3 * N, V));
    EXPECT_EQ(shorter.state.top1, std::vector<int32_t>(lr.state.top1.begin(), lr.state.top1.begin() + 3 * N));
    EXPECT_THROW(m->lens(run, 0), ArgumentError);
    EXPECT_THROW(m->lens(run, K + 1), ArgumentError);
}

// Once every position of a batch row has halted, its ACT mixture repeats bit for bit and
// the lens takes that row's logits from the loop before instead of another coda pass: the
// rows still equal logitsAt at every loop count, for the halted row and the running one.
TEST_P(LensTest, HaltedBatchRowsReuseTheirLogitsExactly) {
    auto hm = mythos::open(parseModelSpec("preset:" + GetParam() + ":5"), {}, json{{"act_threshold", 0.6}});
    const int64_t T = int64_t(kPrompt.size()), K = 8, V = hm->config().vocab_size, N = 2 * T;
    std::vector<int32_t> both = kPrompt;
    both.insert(both.end(), kOther.begin(), kOther.end());
    DeepRun run = hm->deepRun(both, 2, T, K);
    const LensRecord lr = hm->lens(run, K, true);
    int shared = 0;
    std::vector<float> before = hm->logitsAt(run, 1);
    for (int64_t t = 1; t <= K; ++t) {
        SCOPED_TRACE("loop " + std::to_string(t));
        const std::vector<float> z = hm->logitsAt(run, t);
        EXPECT_EQ(rows(lr.act.logits, (t - 1) * N, t * N, V), z);
        for (int64_t b = 0; b < 2 && t > 1; ++b)
            shared += int(rows(z, b * T, (b + 1) * T, V) == rows(before, b * T, (b + 1) * T, V));
        before = z;
    }
    EXPECT_GT(shared, 0) << "no batch row halted: the case does not reach the shared rows";
    EXPECT_LT(shared, 2 * (K - 1));
    // The rows a deep run keeps give the same lens.
    EXPECT_EQ(hm->lens(run, K, true).act.logits, lr.act.logits);
    EXPECT_EQ(hm->lens(run, K, true).state.logits, lr.state.logits);
}

// A short prompt (MLA takes its absorbed form for up to 4 rows, the lens' stacked batch
// may not): the act lens still equals logitsAt up to rounding.
TEST_P(LensTest, ShortPromptActLensEqualsLogitsAt) {
    const std::vector<int32_t> ids = {7, 30};
    const int64_t T = 2, K = 4, V = m->config().vocab_size;
    const DeepRun run = m->deepRun(ids, 1, T, K);
    const LensRecord lr = m->lens(run, K, true);
    for (int64_t t = 1; t <= K; ++t)
        EXPECT_LT(maxRelErr(rows(lr.act.logits, (t - 1) * T, t * T, V), m->logitsAt(run, t)), 1e-5) << t;
    for (int64_t n = 0; n < T; ++n)
        EXPECT_LT(lr.act.klFinal[std::size_t((K - 1) * T + n)], 1e-6f);
}

// The state lens at t is the output with every position forced to exit at loop t (the
// intervention's path: one pass instead of the lens' stacked batch).
TEST_P(LensTest, StateLensIsTheOutputOfAForcedExit) {
    const int64_t T = int64_t(kPrompt.size()), K = 5, V = m->config().vocab_size, N = T;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    const LensRecord lr = m->lens(run, K, true);
    for (int64_t t = 1; t <= K; ++t) {
        SCOPED_TRACE("loop " + std::to_string(t));
        m->setIntervention(interventionFromJson(json{{"exit", {{"loop", t}}}}));
        const auto exitLogits = m->logitsAt(run, K);
        EXPECT_LT(maxRelErr(rows(lr.state.logits, (t - 1) * N, t * N, V), exitLogits), 1e-6);
    }
    // The state alone at K is not the ACT mixture at K (the act lens).
    m->setIntervention(Intervention{});
    EXPECT_NE(rows(lr.state.logits, (K - 1) * N, K * N, V), rows(lr.act.logits, (K - 1) * N, K * N, V));
}

// Under a fixed forced exit at loop k the model's output at t >= k loops is the state at k:
// the act lens from k on repeats the state lens at k.
TEST_P(LensTest, ActLensUnderAForcedExitRepeatsTheExitState) {
    const int64_t T = int64_t(kPrompt.size()), K = 4, V = m->config().vocab_size, N = T;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    m->setIntervention(interventionFromJson(json{{"exit", {{"loop", 2}}}}));
    const LensRecord lr = m->lens(run, K, true);
    const auto exitState = rows(lr.state.logits, N, 2 * N, V);
    EXPECT_LT(maxRelErr(rows(lr.act.logits, 0, N, V), rows(lr.state.logits, 0, N, V)), 1e-6);
    for (int64_t t = 2; t <= K; ++t)
        EXPECT_LT(maxRelErr(rows(lr.act.logits, (t - 1) * N, t * N, V), exitState), 1e-6) << t;
    for (int64_t n = 0; n < N; ++n) {
        EXPECT_EQ(lr.act.convergence[std::size_t(n)],
                  lr.act.top1[std::size_t(n)] == lr.act.top1[std::size_t(N + n)] ? 1 : 2);
        EXPECT_NEAR(lr.act.klPrev[std::size_t(3 * N + n)], 0.0f, 1e-6);
    }
}

// Every statistic recomputed in double from the kept logits.
TEST_P(LensTest, StatisticsMatchTheKeptLogits) {
    const int64_t T = int64_t(kPrompt.size()), K = 5, V = m->config().vocab_size, N = T;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    const LensRecord lr = m->lens(run, K, true);
    std::vector<Softmax> finalP;
    for (int64_t n = 0; n < N; ++n)
        finalP.push_back(softmaxOf(lr.act.logits.data() + ((K - 1) * N + n) * V, V));
    for (const LensSide* side : {&lr.act, &lr.state}) {
        SCOPED_TRACE(side == &lr.act ? "act" : "state");
        const LensSide& s = *side;
        ASSERT_EQ(s.top1.size(), std::size_t(K * N));
        ASSERT_EQ(s.klPrev.size(), std::size_t(K * N));
        ASSERT_EQ(s.convergence.size(), std::size_t(N));
        for (int64_t n = 0; n < N; ++n) {
            Softmax prev;
            for (int64_t t = 0; t < K; ++t) {
                const std::size_t at = std::size_t(t * N + n);
                const Softmax p = softmaxOf(s.logits.data() + at * std::size_t(V), V);
                EXPECT_EQ(s.top1[at], p.top);
                EXPECT_NEAR(s.p[at], std::exp(p.logp[std::size_t(p.top)]), 1e-6);
                const double h = entropy(p);
                EXPECT_NEAR(s.entropy[at], h, 1e-5 + 1e-5 * h);
                const double kf = kl(finalP[std::size_t(n)], p);
                EXPECT_NEAR(s.klFinal[at], kf, 1e-5 + 1e-4 * kf);
                if (t == 0) {
                    EXPECT_TRUE(std::isnan(s.klPrev[at]));
                } else {
                    const double kp = kl(p, prev);
                    EXPECT_NEAR(s.klPrev[at], kp, 1e-5 + 1e-4 * kp);
                }
                EXPECT_GE(s.klFinal[at], 0.0f);
                prev = p;
            }
            // Convergence: the first loop from which the top-1 stays that of loop K.
            int32_t conv = int32_t(K);
            while (conv > 1 && s.top1[std::size_t((conv - 2) * N + n)] == s.top1[std::size_t((K - 1) * N + n)])
                --conv;
            EXPECT_EQ(s.convergence[std::size_t(n)], conv);
            for (int64_t t = conv; t <= K; ++t) {
                EXPECT_EQ(s.top1[std::size_t((t - 1) * N + n)], s.top1[std::size_t((K - 1) * N + n)]);
            }
            if (conv > 1) {
                EXPECT_NE(s.top1[std::size_t((conv - 2) * N + n)], s.top1[std::size_t((K - 1) * N + n)]);
            }
        }
    }
}

// The coda attends within a batch row: a row's lens is the same alone or next to another.
TEST_P(LensTest, BatchRowsAreIndependent) {
    const int64_t T = int64_t(kPrompt.size()), K = 4, V = m->config().vocab_size, N = T;
    std::vector<int32_t> both = kPrompt;
    both.insert(both.end(), kOther.begin(), kOther.end());
    const LensRecord lb = m->lens(m->deepRun(both, 2, T, K), K, true);
    for (int64_t b = 0; b < 2; ++b) {
        SCOPED_TRACE("row " + std::to_string(b));
        const LensRecord la = m->lens(m->deepRun(b == 0 ? kPrompt : kOther, 1, T, K), K, true);
        for (const auto& [one, two] : {std::pair{&la.act, &lb.act}, std::pair{&la.state, &lb.state}}) {
            for (int64_t t = 0; t < K; ++t)
                for (int64_t n = 0; n < N; ++n) {
                    const std::size_t a1 = std::size_t(t * N + n), a2 = std::size_t(t * 2 * N + b * N + n);
                    EXPECT_EQ(one->top1[a1], two->top1[a2]);
                    EXPECT_NEAR(one->p[a1], two->p[a2], 1e-5);
                    EXPECT_NEAR(one->entropy[a1], two->entropy[a2], 1e-4);
                    EXPECT_NEAR(one->klFinal[a1], two->klFinal[a2], 1e-4);
                    if (t > 0) {
                        EXPECT_NEAR(one->klPrev[a1], two->klPrev[a2], 1e-4);
                    }
                    const std::vector<float> r1(one->logits.begin() + std::ptrdiff_t(a1 * V),
                                                one->logits.begin() + std::ptrdiff_t((a1 + 1) * V));
                    const std::vector<float> r2(two->logits.begin() + std::ptrdiff_t(a2 * V),
                                                two->logits.begin() + std::ptrdiff_t((a2 + 1) * V));
                    EXPECT_LT(maxRelErr(r2, r1), 1e-5);
                }
            for (int64_t n = 0; n < N; ++n) {
                EXPECT_EQ(one->convergence[std::size_t(n)], two->convergence[std::size_t(b * N + n)]);
            }
        }
    }
}

// A vocabulary large enough that the lens passes two loops at a time (at most 2^24 logits a
// pass; 3 loops: passes {1, 2} and {3}): the statistics across the passes' boundary are those
// of the rows computed one by one (logitsAt for the act lens, a forced exit for the state
// lens). The tolerance is that of fp32 softmaxes over 720K entries: a row's probabilities
// sum to 1 only within ~1e-5, which the KL's log-sum-exp terms carry.
TEST(LensChunkTest, LoopsSplitAcrossPassesGiveTheSameStatistics) {
    const int64_t V = 720001, T = 8, K = 3;
    auto m = mythos::open(parseModelSpec("preset:tiny_gqa:3"), {}, json{{"vocab_size", V}, {"dim", 16}});
    const std::vector<int32_t> ids = {5, 700000, 17, 720000, 2, 77, 123456, 9};
    const DeepRun run = m->deepRun(ids, 1, T, K);
    const LensRecord lr = m->lens(run, K);
    const auto stateAt = [&](int64_t t) {
        m->setIntervention(interventionFromJson(json{{"exit", {{"loop", t}}}}));
        auto z = m->logitsAt(run, K);
        m->setIntervention(Intervention{});
        return z;
    };
    for (const LensSide* side : {&lr.act, &lr.state}) {
        const bool isAct = side == &lr.act;
        SCOPED_TRACE(isAct ? "act" : "state");
        const auto z2 = isAct ? m->logitsAt(run, 2) : stateAt(2);
        const auto z3 = isAct ? m->logitsAt(run, 3) : stateAt(3);
        for (int64_t n = 0; n < T; ++n) {
            const Softmax a = softmaxOf(z2.data() + n * V, V), b = softmaxOf(z3.data() + n * V, V);
            EXPECT_EQ(side->top1[std::size_t(T + n)], a.top);
            EXPECT_EQ(side->top1[std::size_t(2 * T + n)], b.top);
            const double kp = kl(b, a);
            EXPECT_NEAR(side->klPrev[std::size_t(2 * T + n)], kp, 1e-4 + 1e-3 * kp) << n;
            const double h = entropy(b);
            EXPECT_NEAR(side->entropy[std::size_t(2 * T + n)], h, 1e-4 + 1e-4 * h) << n;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Golden, LensTest, ::testing::Values("tiny_mla", "tiny_gqa"));

// ---------------------------------------------------------------------------------------
// Attention probabilities

class AttentionTest : public ::testing::TestWithParam<std::string> {
protected:
    // A random model of the golden case's shape with two prelude and two coda layers.
    void SetUp() override {
        m = mythos::open(parseModelSpec("preset:" + GetParam() + ":7"), {},
                         json{{"prelude_layers", 2}, {"coda_layers", 2}});
    }
    std::unique_ptr<Model> m;
};

TEST_P(AttentionTest, SitesComeInExecutionOrderAndAreCausalDistributions) {
    const int64_t T = int64_t(kPrompt.size()), K = 3, H = m->config().n_heads;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K + 1);
    const auto sites = m->attention(run, K, 0);
    const std::vector<std::string> names = {
        "prelude_0", "prelude_1", "recurrent_loop_0", "recurrent_loop_1", "recurrent_loop_2", "coda_0", "coda_1"};
    ASSERT_EQ(sites.size(), names.size());
    for (std::size_t i = 0; i < sites.size(); ++i) {
        const AttentionSite& s = sites[i];
        SCOPED_TRACE(s.name);
        EXPECT_EQ(s.name, names[i]);
        const std::string stage = i < 2 ? "prelude" : i < 5 ? "recurrent" : "coda";
        EXPECT_EQ(s.stage, stage);
        EXPECT_EQ(s.layer, stage == "prelude" ? int64_t(i) : stage == "coda" ? int64_t(i) - 5 : 0);
        EXPECT_EQ(s.loop, stage == "recurrent" ? int64_t(i) - 1 : 0);
        ASSERT_EQ(s.probs.size(), std::size_t(H * T * T));
        for (int64_t h = 0; h < H; ++h)
            for (int64_t q = 0; q < T; ++q) {
                double sum = 0;
                for (int64_t k = 0; k < T; ++k) {
                    const float p = s.probs[std::size_t((h * T + q) * T + k)];
                    if (k > q) {
                        EXPECT_EQ(p, 0.0f);
                    } else {
                        EXPECT_GE(p, 0.0f);
                        EXPECT_LE(p, 1.0f);
                    }
                    sum += p;
                }
                EXPECT_NEAR(sum, 1.0, 1e-5);
                EXPECT_EQ(s.probs[std::size_t(h * T * T)], 1.0f); // the first query sees only itself
            }
    }
    // Sites differ (different inputs and weights): not one matrix copied.
    EXPECT_NE(sites[2].probs, sites[3].probs);
    EXPECT_NE(sites[0].probs, sites[5].probs);
    EXPECT_THROW(m->attention(run, 0, 0), ArgumentError);
    EXPECT_THROW(m->attention(run, K + 2, 0), ArgumentError);
    EXPECT_THROW(m->attention(run, K, 1), ArgumentError);
}

// A window cut from a recorded whole-prompt attention part (what the view draws of a long
// recorded trace) holds the probabilities the engine computes for that window itself.
TEST_P(AttentionTest, AWindowCutFromTheWholePromptIsTheEngineWindow) {
    const std::vector<int32_t> ids = {3, 17, 42, 5, 9, 60, 28, 11, 2, 33};
    const int64_t T = int64_t(ids.size()), K = 3, from = 3, to = 8, W = to - from;
    const int64_t H = m->config().n_heads;
    DeepRun run = m->deepRun(ids, 1, T, K);
    Trace whole;
    m->logitsAt(run, K, &whole);
    whole.attention.to = T;
    whole.attention.sites = m->attention(run, K, 0);
    whole.pieces.assign(std::size_t(T), "x");
    const Trace cut = attentionWindowTrace(whole, from, to);
    EXPECT_EQ(cut.attention.from, from);
    EXPECT_EQ(cut.attentionEnd(), to);
    EXPECT_EQ(cut.seqLen, T);
    EXPECT_EQ(cut.ids, whole.ids);
    EXPECT_EQ(cut.pieces, whole.pieces);
    EXPECT_TRUE(cut.logits.empty()); // nothing but what the view draws
    const auto direct = m->attention(run, K, 0, {}, from, to);
    ASSERT_EQ(cut.attention.sites.size(), direct.size());
    for (std::size_t s = 0; s < direct.size(); ++s) {
        SCOPED_TRACE(direct[s].name);
        EXPECT_EQ(cut.attention.sites[s].name, direct[s].name);
        EXPECT_EQ(cut.attention.sites[s].loop, direct[s].loop);
        ASSERT_EQ(cut.attention.sites[s].probs.size(), std::size_t(H * W * W));
        EXPECT_LT(maxRelErr(cut.attention.sites[s].probs, direct[s].probs), 1e-6);
    }
    // A window inside a window; and windows outside the recorded one are errors.
    const Trace inner = attentionWindowTrace(cut, 4, 6);
    EXPECT_EQ(inner.attention.sites[0].probs[0], cut.attention.sites[0].probs[std::size_t(1 * W + 1)]);
    EXPECT_THROW(attentionWindowTrace(cut, 2, 6), ArgumentError);
    EXPECT_THROW(attentionWindowTrace(cut, 4, 9), ArgumentError);
    EXPECT_THROW(attentionWindowTrace(cut, 5, 5), ArgumentError);
}

TEST_P(AttentionTest, WantFilterComputesOnlyTheAcceptedSites) {
    const int64_t T = int64_t(kPrompt.size()), K = 3;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    const auto all = m->attention(run, K, 0);
    int calls = 0;
    const auto some = m->attention(run, K, 0, [&](const AttentionSite& s) {
        ++calls;
        EXPECT_TRUE(s.probs.empty());
        return (s.stage == "recurrent" && s.loop == 2) || s.name == "coda_1";
    });
    EXPECT_EQ(calls, int(all.size()));
    ASSERT_EQ(some.size(), 2u);
    EXPECT_EQ(some[0].name, "recurrent_loop_1");
    EXPECT_EQ(some[0].probs, all[3].probs);
    EXPECT_EQ(some[1].name, "coda_1");
    EXPECT_EQ(some[1].probs, all[6].probs);
    EXPECT_TRUE(m->attention(run, K, 0, [](const AttentionSite&) { return false; }).empty());
}

TEST_P(AttentionTest, BatchRowEqualsTheRowAlone) {
    const int64_t T = int64_t(kPrompt.size()), K = 3;
    std::vector<int32_t> both = kPrompt;
    both.insert(both.end(), kOther.begin(), kOther.end());
    const auto inBatch = m->attention(m->deepRun(both, 2, T, K), K, 1);
    const auto alone = m->attention(m->deepRun(kOther, 1, T, K), K, 0);
    ASSERT_EQ(inBatch.size(), alone.size());
    for (std::size_t i = 0; i < alone.size(); ++i) {
        EXPECT_EQ(inBatch[i].name, alone[i].name);
        EXPECT_LT(maxRelErr(inBatch[i].probs, alone[i].probs), 1e-5) << alone[i].name;
    }
    // Row 0 is the other prompt.
    const auto row0 = m->attention(m->deepRun(both, 2, T, K), K, 0);
    EXPECT_GT(maxRelErr(row0[0].probs, alone[0].probs), 1e-3);
}

// Ablating a head zeroes its output, not its attention: the site's probabilities stay, the
// later sites and the output change.
TEST_P(AttentionTest, HeadAblationKeepsItsProbabilitiesButChangesTheOutput) {
    const int64_t T = int64_t(kPrompt.size()), K = 3;
    const DeepRun base = m->deepRun(kPrompt, 1, T, K);
    const auto before = m->attention(base, K, 0);
    const auto outBefore = m->logitsAt(base, K);
    m->setIntervention(
        interventionFromJson(json{{"ablate_heads", {{{"stage", "prelude"}, {"layer", 0}, {"head", 1}}}}}));
    const DeepRun mod = m->deepRun(kPrompt, 1, T, K);
    const auto after = m->attention(mod, K, 0);
    ASSERT_EQ(after.size(), before.size());
    EXPECT_EQ(after[0].probs, before[0].probs);               // prelude_0 itself
    EXPECT_GT(maxRelErr(after[1].probs, before[1].probs), 0); // prelude_1 sees the change
    EXPECT_GT(maxRelErr(m->logitsAt(mod, K), outBefore), 1e-4);

    m->setIntervention(interventionFromJson(json{{"ablate_heads", {{{"stage", "coda"}, {"layer", 1}, {"head", 0}}}}}));
    const auto codaAfter = m->attention(base, K, 0);
    for (std::size_t i = 0; i < before.size(); ++i) {
        EXPECT_EQ(codaAfter[i].probs, before[i].probs) << before[i].name;
    }
    EXPECT_GT(maxRelErr(m->logitsAt(base, K), outBefore), 1e-4);

    m->setIntervention(interventionFromJson(json{{"ablate_heads", {{{"stage", "coda"}, {"layer", 0}, {"head", 0}}}}}));
    const auto coda0 = m->attention(base, K, 0);
    EXPECT_EQ(coda0[5].probs, before[5].probs);
    EXPECT_GT(maxRelErr(coda0[6].probs, before[6].probs), 0);
}

// The attention site of a recurrent loop is computed from the same input as the loop: a
// deep run with that loop's head ablated differs in the next state, not in that site.
TEST_P(AttentionTest, RecurrentSitesFollowTheStoredStates) {
    const int64_t T = int64_t(kPrompt.size()), K = 3;
    m->setIntervention(interventionFromJson(json{{"ablate_heads", {{{"head", 2}, {"loop", 2}}}}}));
    const DeepRun mod = m->deepRun(kPrompt, 1, T, K);
    const auto after = m->attention(mod, K, 0);
    m->setIntervention(Intervention{});
    const auto before = m->attention(m->deepRun(kPrompt, 1, T, K), K, 0);
    EXPECT_EQ(after[2].probs, before[2].probs); // loop 1
    EXPECT_EQ(after[3].probs, before[3].probs); // loop 2: its input is h_1
    EXPECT_NE(after[4].probs, before[4].probs); // loop 3: its input is the changed h_2
}

// Under loop_shift s, loop j's site uses the loop-index embedding of j + s, as the loop
// does: loop 0 of a shifted run (input h_0 = e) equals loop 1 of an unshifted run whose
// h_1 is set to e by hand.
TEST_P(AttentionTest, RecurrentSitesUseTheShiftedLoopEmbedding) {
    const int64_t T = int64_t(kPrompt.size());
    DeepRun run = m->deepRun(kPrompt, 1, T, 2);
    const auto plain = m->attention(run, 1, 0);
    m->setIntervention(interventionFromJson(json{{"loop_shift", 1}}));
    const auto shifted = m->attention(run, 1, 0);
    m->setIntervention(Intervention{});
    run.h[0] = run.e;
    const auto byHand = m->attention(run, 2, 0);
    ASSERT_EQ(shifted[2].name, "recurrent_loop_0");
    ASSERT_EQ(byHand[3].name, "recurrent_loop_1");
    EXPECT_EQ(shifted[2].probs, byHand[3].probs);
    EXPECT_NE(shifted[2].probs, plain[2].probs);
}

INSTANTIATE_TEST_SUITE_P(Presets, AttentionTest, ::testing::Values("tiny_mla", "tiny_gqa"));

// ---------------------------------------------------------------------------------------
// Exit rules

TEST(ExitRuleTest, NamesRoundTripAndBadTextsAreRejected) {
    for (const char* text : {"act", "kl<0.01", "entropy<0.1", "stable:2", "stable:1", "kl<1e-05", "entropy<2.5"}) {
        const ExitRule r = parseExitRule(text);
        EXPECT_EQ(r.name(), text);
        EXPECT_EQ(parseExitRule(r.name()).name(), r.name());
    }
    EXPECT_EQ(parseExitRule("kl<0.01").kind, ExitRule::Kind::KlBelow);
    EXPECT_DOUBLE_EQ(parseExitRule("kl<0.01").eps, 0.01);
    EXPECT_EQ(parseExitRule("entropy<0.5").kind, ExitRule::Kind::EntropyBelow);
    EXPECT_EQ(parseExitRule("stable:3").k, 3);
    EXPECT_EQ(parseExitRule("act").kind, ExitRule::Kind::Act);
    for (const char* bad :
         {"", "ACT", "kl<", "kl<0", "kl<-1", "kl<x", "kl<nan", "kl<inf", "kl<0.1x", "entropy<", "stable:", "stable:0",
          "stable:-1", "stable:2.5", "stable:99999", "stable: 2", "kl 0.1", "act "}) {
        try {
            parseExitRule(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const ArgumentError& e) {
            EXPECT_NE(std::string(e.what()).find("'" + std::string(bad) + "'"), std::string::npos) << e.what();
        }
    }
    const auto defaults = defaultExitRules();
    ASSERT_EQ(defaults.size(), 4u);
    EXPECT_EQ(defaults[0].name(), "act");
    EXPECT_EQ(defaults[1].name(), "kl<0.01");
    EXPECT_EQ(defaults[2].name(), "entropy<0.1");
    EXPECT_EQ(defaults[3].name(), "stable:2");
}

// A hand-made trace of 1 row, 3 positions and K = 4 loops.
Trace handMadeLensTrace() {
    Trace tr;
    tr.batch = 1;
    tr.seqLen = 3;
    tr.nLoops = 4;
    tr.loopsExecuted = 4;
    tr.vocab = 10;
    tr.haltLoop = {2, 0, 4};
    LensRecord& l = tr.lens;
    l.loops = 4;
    //               pos 0  pos 1  pos 2
    l.state.top1 = {1, 5, 7,                // loop 1
                    2, 5, 8,                // loop 2
                    2, 6, 8,                // loop 3
                    2, 6, 9};               // loop 4
    l.state.klPrev = {kNaN,   kNaN,   kNaN, //
                      0.5f,   0.001f, kNaN, //
                      0.005f, 0.2f,   0.3f, //
                      0.001f, 0.05f,  0.02f};
    l.state.entropy = {2.0f,  0.05f, 1.0f, //
                       0.09f, 0.01f, 1.0f, //
                       0.5f,  0.3f,  1.0f, //
                       0.2f,  0.3f,  0.15f};
    l.act.top1 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 5};
    return tr;
}

TEST(ExitRuleTest, EachRulePicksTheDocumentedLoopAndToken) {
    const Trace tr = handMadeLensTrace();
    const auto decide = [&](const char* rule, int64_t t) { return exitDecision(tr, parseExitRule(rule), 0, t); };
    const auto expect = [&](const char* rule, int64_t t, int64_t loop, int32_t token) {
        const ExitDecision d = decide(rule, t);
        EXPECT_EQ(d.loop, loop) << rule << " at position " << t;
        EXPECT_EQ(d.token, token) << rule << " at position " << t;
    };
    // act: the halting loop (K when it never halted), the output at K loops.
    expect("act", 0, 2, 3);
    expect("act", 1, 4, 4);
    expect("act", 2, 4, 5);
    // kl<eps: the first t >= 2 below eps on the state lens; NaN never passes; else K.
    expect("kl<0.01", 0, 3, 2);
    expect("kl<0.01", 1, 2, 5);
    expect("kl<0.01", 2, 4, 9);
    expect("kl<0.1", 2, 4, 9);
    expect("kl<0.025", 2, 4, 9);
    expect("kl<0.6", 0, 2, 2);
    expect("kl<0.6", 2, 3, 8); // loop 2's NaN does not pass
    // entropy<eps: the first t (from 1) below eps.
    expect("entropy<0.1", 0, 2, 2);
    expect("entropy<0.1", 1, 1, 5);
    expect("entropy<0.1", 2, 4, 9); // never: K
    expect("entropy<0.16", 2, 4, 9);
    expect("entropy<3", 2, 1, 7);
    // stable:k: the first t >= k whose top-1 equals that of the k-1 loops before it.
    expect("stable:2", 0, 3, 2);
    expect("stable:2", 1, 2, 5);
    expect("stable:2", 2, 3, 8);
    expect("stable:3", 0, 4, 2);
    expect("stable:3", 1, 4, 6); // loops 3, 4 agree but not 2: never, K
    expect("stable:1", 2, 1, 7);
    expect("stable:9", 0, 4, 2);
    // Errors.
    Trace noLens = tr;
    noLens.lens = {};
    EXPECT_THROW(exitDecision(noLens, parseExitRule("act"), 0, 0), ArgumentError);
    EXPECT_THROW(exitDecision(tr, parseExitRule("act"), 0, 3), ArgumentError);
    EXPECT_THROW(exitDecision(tr, parseExitRule("act"), 1, 0), ArgumentError);
    EXPECT_THROW(exitDecision(tr, parseExitRule("act"), 0, -1), ArgumentError);
}

// On a real lens: every rule's exit loop within 1..K, its token the state lens' top-1 there.
TEST(ExitRuleTest, RulesOnARealLens) {
    auto m = openCase("tiny_mla");
    const int64_t T = int64_t(kPrompt.size()), K = 4;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    Trace tr;
    m->logitsAt(run, K, &tr);
    tr.lens = m->lens(run, K);
    for (const ExitRule& r : defaultExitRules())
        for (int64_t t = 0; t < T; ++t) {
            const ExitDecision d = exitDecision(tr, r, 0, t);
            ASSERT_GE(d.loop, 1);
            ASSERT_LE(d.loop, K);
            const LensSide& side = r.kind == ExitRule::Kind::Act ? tr.lens.act : tr.lens.state;
            const int64_t loop = r.kind == ExitRule::Kind::Act ? K : d.loop;
            EXPECT_EQ(d.token, side.top1[std::size_t((loop - 1) * T + t)]) << r.name();
            if (r.kind == ExitRule::Kind::Act) {
                EXPECT_EQ(d.loop, tr.haltLoop[std::size_t(t)] ? tr.haltLoop[std::size_t(t)] : K);
            }
        }
}

// ---------------------------------------------------------------------------------------
// Trajectories

// A hand-made deep run: 1 row, T positions, states h[t][n][D].
DeepRun handRun(int64_t T, int64_t D, const std::function<float(int64_t t, int64_t n, int64_t i)>& value, int64_t K) {
    DeepRun r;
    r.batch = 1;
    r.seqLen = T;
    r.depth = K;
    r.e.assign(std::size_t(T * D), 0.0f);
    for (int64_t t = 0; t < K; ++t) {
        std::vector<float> h(std::size_t(T * D));
        for (int64_t n = 0; n < T; ++n)
            for (int64_t i = 0; i < D; ++i)
                h[std::size_t(n * D + i)] = value(t, n, i);
        r.h.push_back(std::move(h));
    }
    return r;
}

// States on a line c + s * u (|u| = 1): one component explains everything; each state's
// first coordinate is sign * (s - mean s), sign that of u's largest-magnitude entry (the
// component is chosen with that entry positive).
void expectLine(int64_t D, const std::vector<double>& u, const std::vector<double>& c) {
    const int64_t T = 2, K = 3;
    const auto s = [](int64_t t, int64_t n) { return double(t) * 1.5 + double(n) * 0.25 - (t == 2 ? 4.0 : 0.0); };
    const DeepRun run = handRun(
        T, D, [&](int64_t t, int64_t n, int64_t i) { return float(c[std::size_t(i)] + s(t, n) * u[std::size_t(i)]); },
        K);
    std::size_t big = 0;
    for (std::size_t i = 0; i < u.size(); ++i)
        if (std::fabs(u[i]) > std::fabs(u[big]))
            big = i;
    const double sign = u[big] > 0 ? 1.0 : -1.0;
    const TrajectoryRecord tr = trajectoryOf(run, K);
    EXPECT_EQ(tr.loops, K);
    EXPECT_NEAR(tr.explained[0], 1.0, 1e-6);
    EXPECT_NEAR(tr.explained[1], 0.0, 1e-6);
    double mean = 0;
    for (int64_t t = 0; t < K; ++t)
        for (int64_t n = 0; n < T; ++n)
            mean += s(t, n) / double(K * T);
    ASSERT_EQ(tr.coords.size(), std::size_t(K * T * 2));
    for (int64_t t = 0; t < K; ++t)
        for (int64_t n = 0; n < T; ++n) {
            EXPECT_NEAR(tr.coords[std::size_t((t * T + n) * 2)], sign * (s(t, n) - mean), 1e-4) << t << "," << n;
            EXPECT_NEAR(tr.coords[std::size_t((t * T + n) * 2 + 1)], 0.0, 1e-4);
        }
}

TEST(TrajectoryTest, StatesOnALineHaveOneComponentWithThePositiveSign) {
    // u's largest-magnitude entry positive: coordinates along +u.
    expectLine(3, {0.6, 0.8, 0.0}, {1.0, -2.0, 0.5});
    // Negative: the component is -u, the coordinates flip.
    expectLine(3, {0.28, -0.96, 0.0}, {0.0, 0.0, 3.0});
    // D larger than the states (the Gram path), both signs.
    std::vector<double> u(600, 0.0), c(600, 0.1);
    u[5] = 0.6;
    u[599] = -0.8;
    expectLine(600, u, c);
    u[599] = 0.8;
    expectLine(600, u, c);
}

// The engine finds the two components by Lanczos iteration (a few products with the
// covariance): on state clouds of several spectra (well separated, two nearly equal top
// variances, rank 2, more dimensions than states, and a slowly decaying spectrum that takes
// the iteration many steps) its explained shares and coordinates
// are those of a full eigendecomposition of the covariance.
TEST(TrajectoryTest, ComponentsMatchAFullEigendecomposition) {
    struct Case {
        const char* name;
        int64_t T, D, K;
        std::vector<double> sigma; // per-direction spread; the rest is noise of 0.01
    };
    const std::vector<Case> cases = {
        {"separated", 12, 40, 5, {5.0, 3.0, 1.0}},
        {"near-equal top two", 10, 32, 6, {4.0, 3.9, 0.5}},
        {"rank two", 8, 24, 4, {2.0, 1.0}},
        {"more dims than states", 6, 80, 4, {3.0, 2.0, 1.0}},
        {"slow decay", 16, 64, 6, {}},
    };
    for (Case c : cases) {
        SCOPED_TRACE(c.name);
        if (c.sigma.empty()) // 40 directions, each 3% less spread than the one before
            for (int k = 0; k < 40; ++k)
                c.sigma.push_back(3.0 * std::pow(0.97, k));
        const bool noise = std::string(c.name) != "rank two";
        // Orthonormal directions from a QR of a fixed matrix, sample weights from a sine.
        Eigen::MatrixXd U =
            Eigen::HouseholderQR<Eigen::MatrixXd>(
                Eigen::MatrixXd::NullaryExpr(
                    c.D, c.D, [](Eigen::Index i, Eigen::Index j) { return std::sin(double(i * 13 + j * 7 + 1)); }))
                .householderQ();
        const auto value = [&](int64_t t, int64_t n, int64_t i) {
            double x = 0.3 * double(i % 5);
            for (std::size_t k = 0; k < c.sigma.size(); ++k)
                x += c.sigma[k] * std::sin(double(t * 31 + n * 17) * 0.37 * double(k + 1) + double(k)) *
                     U(i, Eigen::Index(k));
            if (noise)
                x += 0.01 * std::cos(double(t * 1009 + n * 53 + i * 7));
            return float(x);
        };
        const DeepRun run = handRun(c.T, c.D, value, c.K);
        const TrajectoryRecord tr = trajectoryOf(run, c.K);
        // The reference: every state as a row, centred, the covariance's full decomposition.
        const int64_t M = c.K * c.T;
        Eigen::MatrixXd X(M, c.D);
        for (int64_t t = 0; t < c.K; ++t)
            for (int64_t n = 0; n < c.T; ++n)
                for (int64_t i = 0; i < c.D; ++i)
                    X(t * c.T + n, i) = double(run.h[std::size_t(t)][std::size_t(n * c.D + i)]);
        X.rowwise() -= X.colwise().mean();
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(X.transpose() * X);
        const double total = X.squaredNorm();
        for (int comp = 0; comp < 2; ++comp) {
            SCOPED_TRACE("component " + std::to_string(comp));
            Eigen::VectorXd v = es.eigenvectors().col(c.D - 1 - comp);
            Eigen::Index big = 0;
            v.cwiseAbs().maxCoeff(&big);
            if (v(big) < 0)
                v = -v;
            EXPECT_NEAR(tr.explained[comp], es.eigenvalues()(c.D - 1 - comp) / total, 1e-9);
            const Eigen::VectorXd coords = X * v;
            const double scale = coords.cwiseAbs().maxCoeff();
            for (int64_t m = 0; m < M; ++m) {
                EXPECT_NEAR(tr.coords[std::size_t(m * 2 + comp)], coords(m), 1e-4 * scale) << m;
            }
        }
    }
}

TEST(TrajectoryTest, SignFlipsWithTheDirection) {
    // The same states reflected through the mean: the component keeps its sign convention,
    // so every coordinate changes sign.
    const int64_t T = 3, D = 4, K = 3;
    const auto f = [](int64_t t, int64_t n, int64_t i) {
        return float(std::sin(double(t * 7 + n * 3 + i)) + (i == 1 ? double(t) * 2.0 : 0.0));
    };
    const DeepRun a = handRun(T, D, f, K);
    const DeepRun b = handRun(
        T, D, [&](int64_t t, int64_t n, int64_t i) { return -f(t, n, i); }, K);
    const TrajectoryRecord ta = trajectoryOf(a, K), tb = trajectoryOf(b, K);
    EXPECT_NEAR(ta.explained[0], tb.explained[0], 1e-9);
    for (std::size_t i = 0; i < ta.coords.size(); ++i) {
        EXPECT_NEAR(ta.coords[i], -tb.coords[i], 1e-4) << i;
    }
    // cos(h_t, h_K) is invariant under the reflection through 0 and 1 at K.
    EXPECT_EQ(ta.cosFinal.size(), std::size_t(K * T));
    for (int64_t n = 0; n < T; ++n) {
        EXPECT_NEAR(ta.cosFinal[std::size_t((K - 1) * T + n)], 1.0f, 1e-6);
    }
    for (std::size_t i = 0; i < ta.cosFinal.size(); ++i) {
        EXPECT_NEAR(ta.cosFinal[i], tb.cosFinal[i], 1e-6);
    }
    // cos recomputed.
    for (int64_t t = 0; t < K; ++t)
        for (int64_t n = 0; n < T; ++n) {
            double ab = 0, aa = 0, bb = 0;
            for (int64_t i = 0; i < D; ++i) {
                const double x = f(t, n, i), y = f(K - 1, n, i);
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            EXPECT_NEAR(ta.cosFinal[std::size_t(t * T + n)], ab / std::sqrt(aa * bb), 1e-6);
        }
}

TEST(TrajectoryTest, NonFiniteStatesGiveNaNCoordinates) {
    DeepRun run = handRun(
        2, 3, [](int64_t t, int64_t n, int64_t i) { return float(t + n + i); }, 3);
    run.h[1][4] = std::numeric_limits<float>::infinity();
    TrajectoryRecord tr;
    ASSERT_NO_THROW(tr = trajectoryOf(run, 3));
    ASSERT_EQ(tr.coords.size(), 12u);
    for (float c : tr.coords) {
        EXPECT_TRUE(std::isnan(c));
    }
    EXPECT_EQ(tr.explained[0], 0.0);
    EXPECT_THROW(trajectoryOf(run, 0), ArgumentError);
    EXPECT_THROW(trajectoryOf(run, 4), ArgumentError);
    // All states equal: nothing to explain, coordinates 0.
    const TrajectoryRecord flat = trajectoryOf(handRun(
                                                   2, 3, [](int64_t, int64_t, int64_t i) { return float(i); }, 2),
                                               2);
    EXPECT_EQ(flat.explained[0], 0.0);
    for (float c : flat.coords) {
        EXPECT_EQ(c, 0.0f);
    }
}

TEST(TrajectoryTest, RealModelTrajectory) {
    auto m = openCase("tiny_gqa");
    const int64_t T = int64_t(kPrompt.size()), K = 5;
    const DeepRun run = m->deepRun(kPrompt, 1, T, K);
    const TrajectoryRecord tr = trajectoryOf(run, K);
    EXPECT_GT(tr.explained[0], 0.0);
    EXPECT_GE(tr.explained[1], 0.0);
    EXPECT_LE(tr.explained[1], tr.explained[0]);
    EXPECT_LE(tr.explained[0] + tr.explained[1], 1.0 + 1e-9);
    ASSERT_EQ(tr.coords.size(), std::size_t(K * T * 2));
    // The coordinates are centred: they sum to 0 over all states.
    double s0 = 0, s1 = 0, sq = 0;
    for (std::size_t i = 0; i < tr.coords.size(); i += 2) {
        EXPECT_TRUE(std::isfinite(tr.coords[i]));
        s0 += tr.coords[i];
        s1 += tr.coords[i + 1];
        sq += double(tr.coords[i]) * tr.coords[i];
    }
    EXPECT_NEAR(s0, 0.0, 1e-2 * std::sqrt(sq));
    EXPECT_NEAR(s1, 0.0, 1e-2 * std::sqrt(sq));
    for (int64_t n = 0; n < T; ++n) {
        EXPECT_NEAR(tr.cosFinal[std::size_t((K - 1) * T + n)], 1.0f, 1e-6);
    }
    for (float c : tr.cosFinal) {
        EXPECT_GE(c, -1.0f - 1e-6f);
        EXPECT_LE(c, 1.0f + 1e-6f);
    }
}

// ---------------------------------------------------------------------------------------
// Trace parts

class LensTraceTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto m = openCase("tiny_mla");
        m->setIntervention(interventionFromJson(json{{"ablate_experts", {{{"expert", 3}, {"loop", 2}}}}}));
        const int64_t T = 6, K = 3;
        std::vector<int32_t> ids(kPrompt.begin(), kPrompt.begin() + T);
        ids.insert(ids.end(), kOther.begin(), kOther.begin() + T);
        const DeepRun run = m->deepRun(ids, 2, T, K);
        s_trace = new Trace;
        m->logitsAt(run, K, s_trace);
        s_trace->lens = m->lens(run, K, true);
        s_trace->attention.batchRow = 1;
        s_trace->attention.sites = m->attention(run, K, 1);
        s_trace->trajectory = trajectoryOf(run, K);
    }
    static void TearDownTestSuite() {
        delete s_trace;
        s_trace = nullptr;
    }
    static Trace* s_trace;

    // Both readers of an edited copy of the trace's JSON: the FormatError's message.
    static std::string formatError(const std::function<void(json&)>& edit) {
        json j = traceToJson(*s_trace);
        edit(j);
        std::string dom, text;
        try {
            traceFromJson(j, "lens.json");
            ADD_FAILURE() << "no FormatError";
        } catch (const FormatError& e) {
            dom = e.what();
        }
        try {
            parseTrace(j.dump(), "lens.json");
            ADD_FAILURE() << "no FormatError from the streaming reader";
        } catch (const FormatError& e) {
            text = e.what();
        }
        EXPECT_EQ(dom, text);
        return dom;
    }
};

Trace* LensTraceTest::s_trace = nullptr;

void expectSameParts(const Trace& a, const Trace& b) {
    EXPECT_EQ(a.lens.loops, b.lens.loops);
    for (const auto& [x, y] : {std::pair{&a.lens.act, &b.lens.act}, std::pair{&a.lens.state, &b.lens.state}}) {
        EXPECT_EQ(x->top1, y->top1);
        EXPECT_EQ(x->p, y->p);
        EXPECT_EQ(x->entropy, y->entropy);
        EXPECT_EQ(x->klFinal, y->klFinal);
        EXPECT_TRUE(sameFloats(x->klPrev, y->klPrev));
        EXPECT_EQ(x->convergence, y->convergence);
        EXPECT_EQ(x->logits, y->logits);
    }
    EXPECT_EQ(a.attention.batchRow, b.attention.batchRow);
    ASSERT_EQ(a.attention.sites.size(), b.attention.sites.size());
    for (std::size_t i = 0; i < a.attention.sites.size(); ++i) {
        const auto &s = a.attention.sites[i], &t = b.attention.sites[i];
        EXPECT_EQ(s.name, t.name);
        EXPECT_EQ(s.stage, t.stage);
        EXPECT_EQ(s.layer, t.layer);
        EXPECT_EQ(s.loop, t.loop);
        EXPECT_EQ(s.probs, t.probs);
    }
    EXPECT_EQ(a.trajectory.loops, b.trajectory.loops);
    EXPECT_EQ(a.trajectory.explained[0], b.trajectory.explained[0]);
    EXPECT_EQ(a.trajectory.explained[1], b.trajectory.explained[1]);
    EXPECT_EQ(a.trajectory.coords, b.trajectory.coords);
    EXPECT_EQ(a.trajectory.cosFinal, b.trajectory.cosFinal);
    EXPECT_EQ(a.intervention, b.intervention);
}

TEST_F(LensTraceTest, PartsRoundTripThroughBothReaders) {
    const Trace& tr = *s_trace;
    ASSERT_FALSE(tr.intervention.is_null());
    const json j = traceToJson(tr);
    ASSERT_TRUE(j.contains("lens"));
    EXPECT_EQ(j["lens"]["version"], 1);
    EXPECT_EQ(j["lens"]["loops"], 3);
    EXPECT_TRUE(j["lens"]["state"]["kl_prev"][0][0][0].is_null());
    EXPECT_EQ(j["attention"]["batch_row"], 1);
    EXPECT_EQ(j["attention"]["sites"].size(), tr.attention.sites.size());
    EXPECT_EQ(j["trajectory"]["version"], 1);
    const Trace dom = traceFromJson(j, "t.json");
    const Trace text = parseTrace(j.dump(), "t.json");
    expectSameParts(dom, tr);
    expectSameParts(text, tr);
    // Without logits: the lens rows are left out, the rest stays.
    const json lean = traceToJson(tr, false);
    EXPECT_FALSE(lean["lens"]["act"].contains("logits"));
    const Trace leanTrace = parseTrace(lean.dump(), "t.json");
    EXPECT_TRUE(leanTrace.lens.act.logits.empty());
    EXPECT_EQ(leanTrace.lens.act.top1, tr.lens.act.top1);
    // Without the parts: none written, none read.
    Trace bare = tr;
    bare.lens = {};
    bare.attention = {};
    bare.trajectory = {};
    bare.intervention = nullptr;
    const json jb = traceToJson(bare);
    for (const char* key : {"lens", "attention", "trajectory", "intervention"}) {
        EXPECT_FALSE(jb.contains(key)) << key;
    }
    const Trace rb = parseTrace(jb.dump(), "t.json");
    EXPECT_EQ(rb.lens.loops, 0);
    EXPECT_TRUE(rb.attention.sites.empty());
    EXPECT_EQ(rb.trajectory.loops, 0);
    EXPECT_TRUE(rb.intervention.is_null());
}

TEST_F(LensTraceTest, PartsOfAnUnknownVersionAreSkipped) {
    json j = traceToJson(*s_trace);
    j["lens"]["version"] = 2;
    j["lens"]["act"] = "a future layout";
    j["attention"]["version"] = 2;
    j["attention"]["sites"] = 7;
    j["trajectory"]["version"] = 2;
    j["trajectory"]["coords"] = json::array({json::array({"x"})});
    for (const Trace& t : {traceFromJson(j, "v2.json"), parseTrace(j.dump(), "v2.json")}) {
        EXPECT_EQ(t.lens.loops, 0);
        EXPECT_TRUE(t.attention.sites.empty());
        EXPECT_EQ(t.trajectory.loops, 0);
        EXPECT_EQ(t.ids, s_trace->ids); // the rest is read
        EXPECT_EQ(t.intervention, s_trace->intervention);
    }
}

TEST_F(LensTraceTest, MalformedPartsAreErrorsNamingTheField) {
    const auto expectNames = [](const std::string& msg, const std::string& field) {
        EXPECT_NE(msg.find("lens.json"), std::string::npos) << msg;
        EXPECT_NE(msg.find(field), std::string::npos) << msg << " (expected to name " << field << ")";
    };
    expectNames(formatError([](json& j) { j["lens"]["act"]["convergence"][0][0] = 0; }), "lens.act.convergence");
    expectNames(formatError([](json& j) { j["lens"]["state"]["convergence"][1][2] = 4; }), "lens.state.convergence");
    expectNames(formatError([](json& j) { j["lens"]["act"]["top1"][0][0][0] = 64; }), "lens.act.top1");
    expectNames(formatError([](json& j) { j["lens"]["state"]["top1"][2][1][0] = -1; }), "lens.state.top1");
    expectNames(formatError([](json& j) { j["lens"]["act"]["p"][0].erase(1); }), "'p'");
    expectNames(formatError([](json& j) { j["lens"]["loops"] = 4; }), "lens");
    expectNames(formatError([](json& j) { j["lens"]["state"]["logits"][0][0][0].erase(0); }), "'logits'");
    expectNames(formatError([](json& j) { j["lens"]["version"] = "1"; }), "version");
    expectNames(formatError([](json& j) { j["lens"] = 3; }), "lens");
    expectNames(formatError([](json& j) { j["attention"]["batch_row"] = 2; }), "batch_row");
    expectNames(formatError([](json& j) { j["attention"]["batch_row"] = -1; }), "batch_row");
    expectNames(formatError([](json& j) { j["attention"]["sites"][0]["stage"] = "middle"; }), "attention.sites");
    expectNames(formatError([](json& j) { j["attention"]["sites"][1]["probs"][0].erase(0); }), "probs");
    expectNames(formatError([](json& j) { j["attention"]["sites"][0].erase("name"); }), "name");
    expectNames(formatError([](json& j) { j["trajectory"]["coords"][0][0][0].push_back(1.0); }), "'coords'");
    expectNames(formatError([](json& j) { j["trajectory"]["explained"] = {0.5}; }), "'explained'");
    expectNames(formatError([](json& j) { j["intervention"] = "ablate"; }), "intervention");
}

} // namespace
