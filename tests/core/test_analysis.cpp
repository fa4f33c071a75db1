// Routing statistics, the unbiased router choice, KV variants, model agreement and the
// joining of decode-step traces.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "golden.h"
#include "mythos/analysis.h"
#include "mythos/checked.h"
#include "mythos/errors.h"
#include "mythos/evaluate.h"
#include "mythos/generate.h"
#include "mythos/model.h"
#include "testutil.h"

using namespace mythos;

TEST(Analysis, EvalCellCountsEveryTokenAndTheAnswerToken) {
    EvalCell c;
    c.add(true, {1, 2, 3});  // answer token (the last) halted at loop 3
    c.add(false, {1, 0, 0}); // answer token never halted
    c.add(true, {2, 2, 1});
    EXPECT_EQ(c.n, 3);
    EXPECT_EQ(c.correct, 2);
    EXPECT_EQ(c.tokens, 9);
    EXPECT_EQ(c.halted, 7);
    EXPECT_DOUBLE_EQ(c.meanHalt(), 12.0 / 7.0);
    EXPECT_DOUBLE_EQ(c.neverHalted(), 2.0 / 9.0);
    EXPECT_EQ(c.answerHalted, 2);
    EXPECT_DOUBLE_EQ(c.meanAnswerHalt(), 2.0); // (3 + 1) / 2
    EXPECT_DOUBLE_EQ(c.answerNeverHalted(), 1.0 / 3.0);
    EvalCell empty;
    EXPECT_EQ(empty.meanAnswerHalt(), 0.0);
    EXPECT_EQ(empty.answerNeverHalted(), 0.0);
}

TEST(Analysis, GiniAndEntropyOfKnownDistributions) {
    EXPECT_DOUBLE_EQ(gini({1, 1, 1, 1}), 0.0);
    EXPECT_DOUBLE_EQ(gini({0, 0, 0, 4}), 0.75); // (n-1)/n
    EXPECT_NEAR(gini({1, 2, 3}), 2.0 / 9.0, 1e-12);
    EXPECT_DOUBLE_EQ(gini({}), 0.0);
    EXPECT_DOUBLE_EQ(entropyBits({1, 1, 1, 1}), 2.0);
    EXPECT_DOUBLE_EQ(entropyBits({0, 5, 0, 0}), 0.0);
    EXPECT_NEAR(entropyBits({1, 3}), -(0.25 * std::log2(0.25) + 0.75 * std::log2(0.75)), 1e-12);
}

TEST(Analysis, RoutingStatsCountLoadsSwitchesAndDeadExperts) {
    const auto st = routingStats(testutil::handMadeSelection());
    ASSERT_EQ(st.perLoop.size(), 2u);
    // Loop 1 slots: e0 x3, e1 x2, e2 x1, e3 x0.
    const auto& l1 = st.perLoop[0];
    EXPECT_NEAR(l1.load[0], 3.0 / 6, 1e-12);
    EXPECT_NEAR(l1.load[1], 2.0 / 6, 1e-12);
    EXPECT_NEAR(l1.load[2], 1.0 / 6, 1e-12);
    EXPECT_EQ(l1.load[3], 0.0);
    EXPECT_EQ(l1.dead, 1);
    EXPECT_NEAR(l1.maxOverMean, 0.5 * 4, 1e-12);
    EXPECT_NEAR(l1.gateMass[0], (0.75 + 0.5 + 0.4) / 3, 1e-6);
    EXPECT_NEAR(l1.entropyBits, entropyBits({3, 2, 1, 0}), 1e-12);
    EXPECT_NEAR(l1.gini, gini({3, 2, 1, 0}), 1e-12);
    // Loop 2 slots: e0 x2, e1 x1, e2 x2, e3 x1: nobody dead.
    EXPECT_EQ(st.perLoop[1].dead, 0);
    // Overall: e0 5, e1 3, e2 3, e3 1 of 12.
    EXPECT_NEAR(st.overall.load[0], 5.0 / 12, 1e-12);
    EXPECT_EQ(st.overall.dead, 0);
    // Switches into loop 2: top-1 0->0 (same), 0->2 (changed), 1->3 (changed); sets {0,1} same,
    // {0,2} same, {0,1} -> {2,3} changed.
    EXPECT_EQ(st.top1Switch[0], 0.0);
    EXPECT_NEAR(st.top1Switch[1], 2.0 / 3, 1e-12);
    EXPECT_NEAR(st.setSwitch[1], 1.0 / 3, 1e-12);
    EXPECT_NEAR(st.meanTop1Switch, 2.0 / 3, 1e-12);
}

TEST(Analysis, ExpertSetDifferenceIgnoresOrder) {
    const auto a = testutil::handMadeSelection();
    auto b = a;
    std::swap(b.ids[0], b.ids[1]); // same set, other order
    EXPECT_DOUBLE_EQ(expertSetDifference(a, b), 0.0);
    b.ids[2] = 3; // token 1 at loop 1: {0,2} -> {3,2}
    EXPECT_DOUBLE_EQ(expertSetDifference(a, b), 1.0 / 6.0);
    b.ids.pop_back();
    EXPECT_THROW(expertSetDifference(a, b), ArgumentError);
    const int32_t x[] = {4, 1}, y[] = {1, 4}, z[] = {1, 5};
    EXPECT_TRUE(sameExpertSet(x, y, 2));
    EXPECT_FALSE(sameExpertSet(x, z, 2));
}

TEST(Analysis, TokenExpertGatesPerLoopAndSummed) {
    const auto s = testutil::handMadeSelection();
    const auto l2 = tokenExpertGates(s, 0, 1);
    ASSERT_EQ(l2.size(), 12u);
    EXPECT_FLOAT_EQ(l2[1 * 4 + 2], 0.7f); // token 1, expert 2 at loop 2
    EXPECT_FLOAT_EQ(l2[1 * 4 + 1], 0.0f);
    const auto sum = tokenExpertGates(s, 0, -1);
    EXPECT_FLOAT_EQ(sum[0 * 4 + 0], 0.75f + 0.9f);
    EXPECT_FLOAT_EQ(sum[2 * 4 + 2], 0.5f);
    EXPECT_THROW(tokenExpertGates(s, 0, 2), ArgumentError);
    EXPECT_THROW(tokenExpertGates(s, 1, 0), ArgumentError);
}

TEST(Analysis, UnbiasedRoutingFromHandMadeLogits) {
    Trace tr;
    tr.batch = 1;
    tr.seqLen = 1;
    tr.loopsExecuted = 1;
    tr.topK = 2;
    tr.nExperts = 4;
    tr.routerLogits = {0.0f, 2.0f, 1.0f, 2.0f}; // tie between 1 and 3: the lower index first
    const auto s = unbiasedRouting(tr);
    ASSERT_EQ(s.ids.size(), 2u);
    EXPECT_EQ(s.ids[0], 1);
    EXPECT_EQ(s.ids[1], 3);
    EXPECT_FLOAT_EQ(s.gates[0], 0.5f);
    EXPECT_FLOAT_EQ(s.gates[1], 0.5f);
    tr.routerLogits.pop_back();
    EXPECT_THROW(unbiasedRouting(tr), ArgumentError);
}

// With a router bias, the first loop's unbiased choice must be what the same model routes
// with the bias set to zero (later loops differ because the routing changed h).
TEST(Analysis, UnbiasedRoutingIsWhatTheModelDoesWithoutItsBias) {
    auto data = golden::load(golden::find("tiny_mla"));
    int64_t B = 0, T = 0;
    const auto ids = data.input("b1", B, T);
    auto model = Model::open(data.c.dir.string());
    const std::string biasName = "recurrent.block.ffn.router_bias";
    ASSERT_TRUE(model->weights().count(biasName)) << "router bias name changed";
    const Tensor zero = model->weights().at(biasName);
    Tensor biased = zero;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    for (auto& v : biased.data)
        v = nd(rng);

    Trace withBias, without;
    ForwardOptions fo;
    fo.nLoops = 3;
    model->setWeight(biasName, biased);
    fo.trace = &withBias;
    model->forward(ids, B, T, fo);
    model->setWeight(biasName, zero);
    fo.trace = &without;
    model->forward(ids, B, T, fo);

    const auto recorded = recordedRouting(withBias);
    const auto unbiased = unbiasedRouting(withBias);
    const auto reference = recordedRouting(without);
    const std::size_t loop0 = std::size_t(B * T * withBias.topK);
    int differs = 0;
    for (std::size_t i = 0; i < loop0; ++i) {
        EXPECT_EQ(unbiased.ids[i], reference.ids[i]) << i;
        EXPECT_NEAR(unbiased.gates[i], reference.gates[i], 1e-5) << i;
        differs += recorded.ids[i] != unbiased.ids[i];
    }
    EXPECT_GT(differs, 0) << "a strong random bias should change some choices";
}

TEST(Analysis, KvVariantsCoverMlaGqaAndMha) {
    const Config c = preset("tiny_mla");
    const auto vs = kvVariants(c);
    ASSERT_GE(vs.size(), 3u);
    EXPECT_TRUE(vs[0].current);
    EXPECT_EQ(vs[0].layout, KvLayout::Reference);
    EXPECT_FALSE(vs[1].current);
    const auto& mha = vs.back();
    EXPECT_EQ(mha.config.n_kv_heads, c.n_heads);
    EXPECT_EQ(kvBytesPerPosition(mha.config, mha.layout), int64_t(4 * 2 * c.n_heads * c.headDim()));
    // MLA reference copies the rope key per head; compact stores it once.
    EXPECT_EQ(kvBytesPerPosition(vs[0].config, KvLayout::Reference) -
                  kvBytesPerPosition(vs[1].config, KvLayout::Compact),
              int64_t(4 * (c.n_heads - 1) * c.qk_rope_head_dim));
    int gqaCount = 0;
    for (const auto& v : vs)
        if (v.config.attn_type == AttnType::Gqa) {
            EXPECT_EQ(c.n_heads % v.config.n_kv_heads, 0);
            ++gqaCount;
        }
    EXPECT_GE(gqaCount, 2);

    const Config g = preset("tiny_gqa");
    int current = 0;
    for (const auto& v : kvVariants(g))
        if (v.current) {
            ++current;
            EXPECT_EQ(v.config.n_kv_heads, g.n_kv_heads);
            EXPECT_EQ(attnTypeName(v.config.attn_type), "gqa");
        }
    EXPECT_EQ(current, 1);
}

TEST(Analysis, KvTotalBytesMatchesTheLedger) {
    for (const char* name : {"tiny_mla", "tiny_gqa"}) {
        const Config c = preset(name);
        for (int64_t loops : {1, 4, 9}) {
            const auto ref = kvLedgerFor(c, 2, 17, loops, KvLayout::Reference);
            EXPECT_EQ(kvTotalBytes(c, KvLayout::Reference, 2, 17, loops), ref.referenceBytes) << name << loops;
            const auto com = kvLedgerFor(c, 2, 17, loops, KvLayout::Compact);
            EXPECT_EQ(kvTotalBytes(c, KvLayout::Compact, 2, 17, loops), com.engineBytes) << name << loops;
            EXPECT_EQ(int64_t(ref.entries.size()), c.prelude_layers + loops + c.coda_layers);
        }
    }
}

TEST(Analysis, AgreementOfIdenticalAndPerturbedLogits) {
    Trace a;
    a.batch = 1;
    a.seqLen = 2;
    a.vocab = 3;
    a.ids = {1, 2};
    a.logits = {0.0f, 1.0f, 2.0f, 3.0f, 0.0f, 0.0f};
    auto same = compareNextToken(a, a);
    EXPECT_DOUBLE_EQ(same.top1Match, 1.0);
    EXPECT_NEAR(same.meanKl, 0.0, 1e-12);

    Trace b = a;
    b.logits = {0.0f, 1.0f, 2.0f, 0.0f, 0.0f, 3.0f}; // token 1's favourite moves from 0 to 2
    const auto g = compareNextToken(a, b);
    EXPECT_EQ(g.top1A, (std::vector<int32_t>{2, 0}));
    EXPECT_EQ(g.top1B, (std::vector<int32_t>{2, 2}));
    EXPECT_DOUBLE_EQ(g.top1Match, 0.5);
    EXPECT_NEAR(g.klAB[0], 0.0, 1e-12);
    // KL(p || q) with p = softmax(3,0,0), q = softmax(0,0,3): (p0 - p2) * 3.
    const double z = std::exp(3.0) + 2.0;
    EXPECT_NEAR(g.klAB[1], (std::exp(3.0) / z - 1.0 / z) * 3.0, 1e-9);
    EXPECT_NEAR(g.maxKl, g.klAB[1], 1e-12);

    Trace c = a;
    c.ids = {1, 1};
    EXPECT_THROW(compareNextToken(a, c), ArgumentError);
    c = a;
    c.vocab = 4;
    EXPECT_THROW(compareNextToken(a, c), ArgumentError);
    c = a;
    c.logits.clear();
    EXPECT_THROW(compareNextToken(a, c), ArgumentError);
}

// The joined step traces of a generation equal one cached forward over the whole sequence.
TEST(Analysis, JoinedGenerationStepsMatchOneForwardOverTheSequence) {
    auto data = golden::load(golden::find("tiny_gqa"));
    int64_t B = 0, P = 0;
    const auto prompt = data.input("b1", B, P);
    ASSERT_EQ(B, 1);
    auto model = Model::open(data.c.dir.string());

    GenerateOptions go;
    go.nLoops = 3;
    go.maxNewTokens = 5;
    go.traceSteps = true;
    go.feedLast = true;
    Trace joined;
    int calls = 0;
    bool sawFinal = false;
    go.onToken = [&](int64_t step, const std::vector<int32_t>& tokens, const Trace* tr) {
        ++calls;
        EXPECT_NE(tr, nullptr);
        if (step == 0)
            joined = *tr;
        else
            appendTraceTokens(joined, *tr);
        if (tokens.empty())
            sawFinal = true;
        return true;
    };
    const auto res = generate(*model, prompt, B, P, go);
    EXPECT_EQ(calls, go.maxNewTokens + 1);
    EXPECT_TRUE(sawFinal);
    ASSERT_EQ(joined.seqLen, P + go.maxNewTokens);
    EXPECT_EQ(res.kv.entries.front().positions, P + go.maxNewTokens);

    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), res.generated.begin(), res.generated.end());
    EXPECT_EQ(joined.ids, seq);
    Trace whole;
    auto cache = model->newCache(1);
    ForwardOptions fo;
    fo.nLoops = go.nLoops;
    fo.cache = &cache;
    fo.trace = &whole;
    model->forward(seq, 1, int64_t(seq.size()), fo);
    ASSERT_EQ(whole.seqLen, joined.seqLen);
    ASSERT_EQ(whole.loopsExecuted, joined.loopsExecuted);
    const auto cp = golden::compare(joined.actCumP, whole.actCumP, 1e-4, 1e-5);
    EXPECT_LE(cp.worst, 1.0);
    const auto cl = golden::compare(joined.logits, whole.logits, 1e-4, 1e-5);
    EXPECT_LE(cl.worst, 1.0);
    EXPECT_EQ(joined.topkIds, whole.topkIds);
    EXPECT_EQ(joined.haltLoop, whole.haltLoop);
    EXPECT_EQ(joined.kv.referenceBytes, whole.kv.referenceBytes);

    Trace other = whole;
    other.startPos = 3;
    EXPECT_THROW(appendTraceTokens(joined, other), ArgumentError);
}

// Sizes from untrusted numbers are checked before anything is built: a huge position count
// or loop count is an ArgumentError, not an overflow or a million-entry ledger.
TEST(KvAccounting, HugeSizesAreErrorsNotOverflowOrHugeLedgers) {
    const mythos::Config c = mythos::preset("tiny_mla");
    EXPECT_THROW(mythos::kvLedgerFor(c, 1, int64_t(1) << 62, 4, mythos::KvLayout::Reference), mythos::ArgumentError);
    EXPECT_THROW(mythos::kvLedgerFor(c, 1, 8, mythos::kMaxLoops + 1, mythos::KvLayout::Reference),
                 mythos::ArgumentError);
    EXPECT_THROW(mythos::kvTotalBytes(c, mythos::KvLayout::Reference, int64_t(1) << 40, int64_t(1) << 40, 4),
                 mythos::ArgumentError);
    const auto l = mythos::kvLedgerFor(c, 2, 8, 3, mythos::KvLayout::Reference);
    EXPECT_EQ(l.entries.size(), std::size_t(c.prelude_layers + 3 + c.coda_layers));
    EXPECT_EQ(mythos::boundedProduct({3, 4}), std::optional<int64_t>(12));
    EXPECT_EQ(mythos::boundedProduct({3, 4}, 11), std::nullopt);
    EXPECT_EQ(mythos::boundedProduct({int64_t(1) << 62, 4}), std::nullopt);
    EXPECT_EQ(mythos::boundedProduct({-1, 4}), std::nullopt);
}

// The halting summary the halting view, the comparison and the report share.
TEST(HaltingSummaryTest, CountsMeanAndHistogramPerRowOrAll) {
    mythos::Trace tr;
    tr.batch = 2;
    tr.seqLen = 4;
    tr.loopsExecuted = 3;
    tr.haltLoop = {1, 2, 0, 3,  // row 0: mean of 1, 2, 3 = 2, one never
                   1, 1, 1, 0}; // row 1: three at loop 1
    const auto r0 = mythos::haltingSummary(tr, 0);
    EXPECT_EQ(r0.tokens, 4);
    EXPECT_EQ(r0.halted, 3);
    EXPECT_EQ(r0.never, 1);
    EXPECT_EQ(r0.atLoopOne, 1);
    EXPECT_DOUBLE_EQ(r0.meanHaltLoop, 2.0);
    EXPECT_EQ(r0.histogram, (std::vector<int64_t>{1, 1, 1, 1}));
    const auto r1 = mythos::haltingSummary(tr, 1);
    EXPECT_EQ(r1.atLoopOne, 3);
    EXPECT_DOUBLE_EQ(r1.meanHaltLoop, 1.0);
    EXPECT_EQ(r1.histogram, (std::vector<int64_t>{3, 0, 0, 1}));
    const auto all = mythos::haltingSummary(tr);
    EXPECT_EQ(all.tokens, 8);
    EXPECT_EQ(all.never, 2);
    EXPECT_DOUBLE_EQ(all.meanHaltLoop, 9.0 / 6.0);
    EXPECT_EQ(all.histogram, (std::vector<int64_t>{4, 1, 1, 2}));
    tr.haltLoop = {0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_TRUE(std::isnan(mythos::haltingSummary(tr).meanHaltLoop));
    EXPECT_EQ(mythos::haltingSummary(tr, 5).tokens, 0); // a row past the batch: nothing
}
