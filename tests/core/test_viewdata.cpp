// The chart data of the halting, routing and KV-cache views, built from traces without widgets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/model.h"
#include "mythos/viewdata.h"
#include "testutil.h"

using namespace mythos;

namespace {

// Batch 2 (row 1 must be ignored), 3 tokens, 2 loops executed of 3 requested, max_loop_iters 1.
Trace haltingTrace() {
    Trace tr;
    tr.config.max_loop_iters = 1;
    tr.config.act_threshold = 0.99;
    tr.batch = 2;
    tr.seqLen = 3;
    tr.nLoops = 3;
    tr.loopsExecuted = 2;
    tr.haltLoop = {2, 0, 1,  // row 0
                   1, 1, 1}; // row 1
    tr.weightSum = {1.0f, 0.7f, 1.0f, 1, 1, 1};
    //             row 0 t0..t2       row 1
    tr.actCumP = {0.5f, 0.2f, 0.995f, 0, 0, 0,  // loop 1
                  1.3f, 0.7f, 1.0f,   0, 0, 0}; // loop 2
    return tr;
}

Trace goldenTrace(const char* name, int64_t loops) {
    auto data = golden::load(golden::find(name));
    int64_t B = 0, T = 0;
    const auto ids = data.input("b1", B, T);
    auto model = Model::open(data.c.dir.string());
    Trace tr;
    ForwardOptions fo;
    fo.nLoops = loops;
    fo.trace = &tr;
    model->forward(ids, B, T, fo);
    return tr;
}

} // namespace

TEST(HaltingViewData, BarsCellsRangesAndHealthOfRowZero) {
    const Trace tr = haltingTrace();
    const auto d = haltingViewData(tr);
    EXPECT_EQ(d.tokens, 3);
    EXPECT_EQ(d.loops, 2);
    EXPECT_EQ(d.requestedLoops, 3);
    EXPECT_DOUBLE_EQ(d.threshold, double(0.99f)); // as the engine compares, in float
    EXPECT_EQ(d.haltLoop, (std::vector<int32_t>{2, 0, 1}));
    EXPECT_EQ(d.haltBar, (std::vector<double>{2, 3, 1})); // never halted at L + 1
    ASSERT_EQ(d.cumP.size(), 6u);                         // [T][L]
    EXPECT_DOUBLE_EQ(d.cumP[0 * 2 + 1], double(1.3f));
    EXPECT_DOUBLE_EQ(d.cumP[1 * 2 + 0], double(0.2f));
    EXPECT_DOUBLE_EQ(d.cumPTop, double(1.3f));
    EXPECT_DOUBLE_EQ(d.lastCumP[1], double(0.7f));
    EXPECT_EQ(d.pastMaxLoopIters, (std::vector<int64_t>{1})); // loop 2 > max_loop_iters 1
    EXPECT_DOUBLE_EQ(d.weightSumTop, 1.0);
    EXPECT_FALSE(d.finalRemainder);
    EXPECT_EQ(d.summary.never, 1);
    EXPECT_EQ(d.summary.atLoopOne, 1);
    EXPECT_EQ(d.summary.histogram, (std::vector<int64_t>{1, 1, 1}));
    EXPECT_DOUBLE_EQ(d.neverShare, 1.0 / 3);
    EXPECT_EQ(d.health, ActHealth::Healthy);
}

TEST(HaltingViewData, MissingValuesAreNaNAndTheRangeStaysAtOne) {
    Trace tr = haltingTrace();
    tr.actCumP.clear();
    tr.weightSum.resize(1);
    tr.options = {{"act_final_remainder", true}};
    const auto d = haltingViewData(tr);
    for (double v : d.cumP)
        EXPECT_TRUE(std::isnan(v));
    EXPECT_DOUBLE_EQ(d.cumPTop, 1.0);
    EXPECT_TRUE(std::isnan(d.weightSum[2]));
    EXPECT_DOUBLE_EQ(d.weightSumTop, 1.0);
    EXPECT_TRUE(d.finalRemainder);
}

TEST(HaltingViewData, NeverHaltsAndCollapseNeedMoreThanOneLoop) {
    Trace tr = haltingTrace();
    tr.haltLoop = {0, 0, 0, 1, 1, 1};
    EXPECT_EQ(haltingViewData(tr).health, ActHealth::NeverHalts);
    tr.haltLoop = {1, 1, 1, 0, 0, 0};
    const auto collapsed = haltingViewData(tr);
    EXPECT_EQ(collapsed.health, ActHealth::Collapsed);
    EXPECT_DOUBLE_EQ(collapsed.atLoopOneShare, 1.0);
    tr.haltLoop = {1, 1, 2, 0, 0, 0}; // 2 of 3 at loop 1: below 90%
    EXPECT_EQ(haltingViewData(tr).health, ActHealth::Healthy);
    tr.haltLoop = {1, 1, 1, 0, 0, 0};
    tr.nLoops = tr.loopsExecuted = 1; // one loop: halting there is all it can do
    EXPECT_EQ(haltingViewData(tr).health, ActHealth::Healthy);
}

TEST(HaltingViewData, GoldenTraceAgreesWithTheTrace) {
    const Trace tr = goldenTrace("tiny_mla", 6);
    const auto d = haltingViewData(tr);
    ASSERT_EQ(d.tokens, tr.seqLen);
    ASSERT_EQ(d.loops, tr.loopsExecuted);
    ASSERT_GT(d.loops, 0);
    int64_t counted = 0;
    for (int64_t c : d.summary.histogram)
        counted += c;
    EXPECT_EQ(counted, d.tokens);
    for (int64_t t = 0; t < d.tokens; ++t) {
        EXPECT_EQ(d.haltLoop[std::size_t(t)], tr.haltLoop[std::size_t(t)]);
        EXPECT_DOUBLE_EQ(d.lastCumP[std::size_t(t)], double(tr.actCumP[tr.at(d.loops - 1, 0, t)]));
        EXPECT_LE(d.cumP[std::size_t(t * d.loops + d.loops - 1)], d.cumPTop);
    }
}

TEST(HaltingViewData, ComparisonPutsNeverHaltedAtTheLargerLoopCountPlusOne) {
    Trace a = haltingTrace(), b = haltingTrace();
    a.ids = b.ids = {5, 6, 7, 5, 6, 7};
    b.loopsExecuted = 4;
    b.haltLoop = {3, 0, 1, 0, 0, 0};
    const auto c = compareHalting(a, b);
    EXPECT_EQ(c.tokens, 3);
    EXPECT_EQ(c.loops, 4);
    EXPECT_EQ(c.haltA, (std::vector<double>{2, 5, 1}));
    EXPECT_EQ(c.haltB, (std::vector<double>{3, 5, 1}));
    EXPECT_EQ(c.diff, (std::vector<double>{1, 0, 0}));
    EXPECT_EQ(c.sameHaltLoop, 2); // never == never counts as the same
    b.ids[1] = 9;
    EXPECT_THROW(compareHalting(a, b), ArgumentError);
}

TEST(RoutingViewData, LoadGridBalanceCurvesAndDeadExperts) {
    const auto st = routingStats(testutil::handMadeSelection());
    const auto g = expertLoadGrid(st, 1);
    EXPECT_EQ(g.experts, 4);
    EXPECT_EQ(g.loops, 2);
    // Loop 1 slots: E0 x3, E1 x2, E2 x1, E3 none; loop 2: E0 x2, E1 x1, E2 x2, E3 x1.
    EXPECT_NEAR(g.load[0 * 2 + 0], 3.0 / 6, 1e-12);
    EXPECT_NEAR(g.load[3 * 2 + 0], 0.0, 1e-12);
    EXPECT_NEAR(g.load[2 * 2 + 1], 2.0 / 6, 1e-12);
    EXPECT_DOUBLE_EQ(g.top, 0.5); // the larger of 2/E and the largest load, both 0.5 here
    EXPECT_EQ(g.pastMaxLoopIters, (std::vector<int64_t>{1}));
    EXPECT_EQ(deadExperts(st.perLoop[0]), (std::vector<int64_t>{3}));
    EXPECT_TRUE(deadExperts(st.overall).empty());

    const auto c = routingBalanceCurves(st);
    EXPECT_DOUBLE_EQ(c.maxEntropyBits, 2.0);
    ASSERT_EQ(c.entropyShare.size(), 2u);
    EXPECT_DOUBLE_EQ(c.entropyShare[1].first, 2.0);
    EXPECT_DOUBLE_EQ(c.entropyShare[0].second, st.perLoop[0].entropyBits / 2.0);
    ASSERT_EQ(c.top1Switch.size(), 1u); // loop 2 only
    EXPECT_DOUBLE_EQ(c.top1Switch[0].first, 2.0);
    EXPECT_DOUBLE_EQ(c.top1Switch[0].second, st.top1Switch[1]);
    EXPECT_DOUBLE_EQ(c.setSwitch[0].second, st.setSwitch[1]);
}

TEST(RoutingViewData, TokenGatesAndTopExpertPerLoopAndSummed) {
    const auto sel = testutil::handMadeSelection();
    const auto at2 = tokenRouting(sel, 2);
    EXPECT_EQ(at2.loop, 2);
    EXPECT_DOUBLE_EQ(at2.gateTop, 1.0);
    EXPECT_EQ(at2.top, (std::vector<int32_t>{0, 2, 3})); // the first choice at loop 2
    EXPECT_NEAR(at2.gates[1 * 4 + 0], 0.3, 1e-6);
    EXPECT_NEAR(at2.topGate[0], 0.9, 1e-6);
    const auto sum = tokenRouting(sel, 0);
    EXPECT_DOUBLE_EQ(sum.gateTop, 2.0);
    // Token 1 summed: E0 0.5 + 0.3, E2 0.5 + 0.7: E2 leads.
    EXPECT_EQ(sum.top[1], 2);
    EXPECT_NEAR(sum.topGate[1], 1.2, 1e-6);
    EXPECT_NEAR(sum.gates[0 * 4 + 0], 1.65, 1e-6);
    EXPECT_EQ(tokenRouting(sel, 9).loop, 2); // clamped
    EXPECT_EQ(tokenRouting(RoutingSelection{}, 1).tokens, 0);
}

TEST(RoutingViewData, RouterBiasBarsSayWhetherThereIsABias) {
    Trace tr;
    tr.nExperts = 3;
    auto b = routerBiasBars(tr);
    EXPECT_FALSE(b.present);
    EXPECT_EQ(b.bias, (std::vector<double>{0, 0, 0}));
    tr.routerBias = {0, 0.5f, 0};
    b = routerBiasBars(tr);
    EXPECT_TRUE(b.present);
    EXPECT_TRUE(b.nonZero);
    EXPECT_DOUBLE_EQ(b.bias[1], 0.5);
}

TEST(RoutingViewData, GoldenTraceLoadsSumToOnePerLoop) {
    const Trace tr = goldenTrace("tiny_gqa", 3);
    const auto st = routingStats(recordedRouting(tr));
    const auto g = expertLoadGrid(st, tr.config.max_loop_iters);
    ASSERT_EQ(g.loops, tr.loopsExecuted); // ACT may stop before the 3 loops asked for
    ASSERT_GT(g.loops, 0);
    for (int64_t l = 0; l < g.loops; ++l) {
        double sum = 0;
        for (int64_t e = 0; e < g.experts; ++e)
            sum += g.load[std::size_t(e * g.loops + l)];
        EXPECT_NEAR(sum, 1.0, 1e-9) << l;
    }
    const auto one = tokenRouting(recordedRouting(tr), 1);
    for (int64_t t = 0; t < one.tokens; ++t) {
        double sum = 0;
        for (int64_t e = 0; e < one.experts; ++e)
            sum += one.gates[std::size_t(t * one.experts + e)];
        EXPECT_NEAR(sum, 1.0, 1e-5) << t; // the k gates renormalised
        EXPECT_GT(one.gates[std::size_t(t * one.experts + one.top[std::size_t(t)])], 0.0);
    }
}

TEST(LoopCurvesTest, MeansOverTokensOrOneTokenAndTheContractionRatio) {
    Trace tr;
    tr.batch = 1;
    tr.seqLen = 2;
    tr.loopsExecuted = 3;
    //            loop 1      loop 2      loop 3   (token 0, token 1)
    tr.hNorm = {1.0f, 3.0f, 2.0f, NAN, 4.0f, 6.0f};
    tr.hDelta = {8.0f, 4.0f, 4.0f, 1.0f, 1.0f, 0.5f};
    const auto m = loopCurves(tr);
    EXPECT_TRUE(m.haveNorm);
    EXPECT_TRUE(m.haveDelta);
    using Curve = std::vector<std::pair<double, double>>;
    EXPECT_EQ(m.norm, (Curve{{1, 2.0}, {2, 2.0}, {3, 5.0}})); // the NaN is left out of loop 2's mean
    EXPECT_EQ(m.delta, (Curve{{1, 6.0}, {2, 2.5}, {3, 0.75}}));
    // Ratios Delta(2)/Delta(1) = 0.5 and 0.25, Delta(3)/Delta(2) = 0.25 and 0.5.
    EXPECT_EQ(m.ratio, (Curve{{1, 0.375}, {2, 0.375}}));
    EXPECT_DOUBLE_EQ(m.deltaMin, 0.5);
    EXPECT_DOUBLE_EQ(m.deltaMax, 8.0);
    const auto one = loopCurves(tr, 1);
    EXPECT_EQ(one.norm, (Curve{{1, 3.0}, {3, 6.0}}));
    EXPECT_EQ(one.ratio, (Curve{{1, 0.25}, {2, 0.5}}));
    tr.hDelta.clear();
    const auto none = loopCurves(tr);
    EXPECT_FALSE(none.haveDelta);
    EXPECT_TRUE(none.delta.empty());
    EXPECT_TRUE(none.ratio.empty());
}

TEST(KvViewData, SamplePointsEndAtTheTopAndHoldTheMark) {
    EXPECT_EQ(kvSamplePoints(4, 3), (std::vector<int64_t>{1, 2, 3, 4}));
    const auto xs = kvSamplePoints(1000, 17);
    EXPECT_EQ(xs.front(), 1);
    EXPECT_EQ(xs.back(), 1000);
    EXPECT_LE(xs.size(), 70u);
    EXPECT_NE(std::find(xs.begin(), xs.end(), 17), xs.end());
    EXPECT_TRUE(std::is_sorted(xs.begin(), xs.end()));
    EXPECT_EQ(kvSamplePoints(10, 0).size(), 10u); // no mark
}

TEST(KvViewData, EntryKindsFromLedgerKeys) {
    EXPECT_EQ(kvEntryKind("prelude_0"), KvEntryKind::Prelude);
    EXPECT_EQ(kvEntryKind("recurrent_loop_3"), KvEntryKind::Recurrent);
    EXPECT_EQ(kvEntryKind("coda_1"), KvEntryKind::Coda);
}

TEST(KvViewData, LedgerOfAnUncachedRunAndCurvesOfEveryVariant) {
    for (const char* name : {"tiny_mla", "tiny_gqa"}) {
        Trace tr;
        tr.config = preset(name);
        tr.batch = 2;
        tr.seqLen = 5;
        tr.startPos = 2;
        tr.nLoops = 3;
        const auto d = kvViewData(tr);
        const Config& c = tr.config;
        EXPECT_FALSE(d.live);
        EXPECT_EQ(d.positions, 7);
        EXPECT_EQ(int64_t(d.ledger.entries.size()), c.prelude_layers + 3 + c.coda_layers) << name;
        EXPECT_EQ(d.recurrentEntries, 3);
        EXPECT_EQ(d.kinds.front(), KvEntryKind::Prelude);
        EXPECT_EQ(d.kinds.back(), KvEntryKind::Coda);
        EXPECT_EQ(d.ledger.referenceBytes, kvTotalBytes(c, KvLayout::Reference, 2, 7, 3));
        EXPECT_EQ(d.compactTotal, kvTotalBytes(c, KvLayout::Compact, 2, 7, 3));
        EXPECT_DOUBLE_EQ(d.perTokenReference, double(d.ledger.referenceBytes) / 14.0);
        EXPECT_EQ(d.extraLoopBytes, 2 * 7 * kvBytesPerPosition(c, KvLayout::Reference));
        EXPECT_EQ(d.maxSeqLen, c.max_seq_len);
        EXPECT_EQ(d.maxLoops, 4 * c.max_loop_iters);
        ASSERT_EQ(d.curves.size(), kvVariants(c).size());
        int current = 0;
        for (const auto& cv : d.curves) {
            current += cv.variant.current;
            EXPECT_EQ(cv.bySeqLen.back().first, d.maxSeqLen);
            EXPECT_LE(cv.bySeqLen.back().second, d.curveTop);
            EXPECT_EQ(cv.byLoops.back().second, kvTotalBytes(cv.variant.config, cv.variant.layout, 2, 7, d.maxLoops));
        }
        EXPECT_EQ(current, 1);
        if (c.isMla()) {
            EXPECT_EQ(d.ropeCopyBytes, int64_t(4 * (c.n_heads - 1) * c.qk_rope_head_dim));
            EXPECT_LT(d.bytesPerPositionCompact, d.bytesPerPositionReference);
        } else {
            EXPECT_EQ(d.mhaBytesPerPosition, int64_t(4 * 2 * c.n_heads * c.headDim()));
            EXPECT_EQ(d.bytesPerPositionCompact, d.bytesPerPositionReference);
        }
    }
}

TEST(KvViewData, TheLiveLedgerOfAGenerationIsShownAsItIs) {
    Trace tr;
    tr.config = preset("tiny_mla");
    tr.batch = 1;
    tr.seqLen = 1;
    tr.nLoops = 2;
    tr.hasKv = true;
    tr.kv = kvLedgerFor(tr.config, 1, 9, 2, KvLayout::Compact);
    const auto d = kvViewData(tr);
    EXPECT_TRUE(d.live);
    EXPECT_EQ(d.positions, 9);
    EXPECT_EQ(d.ledger.referenceBytes, tr.kv.referenceBytes);
    EXPECT_EQ(d.ledger.engineLayout, "compact");
    int currentCompact = 0;
    for (const auto& cv : d.curves)
        currentCompact += cv.variant.current && cv.compactMla;
    EXPECT_EQ(currentCompact, 1); // the engine's layout is the current one
}
