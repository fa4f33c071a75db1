// Engine options and model behaviour beyond the golden parity: KV layouts, chunked
// prefill, decode vs uncached forward, ACT remainder, deep runs, errors, cancellation,
// random initialisation and the matmul primitive cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/model.h"
#include "mythos/stability.h"
#include "ops.h"
#include "testutil.h"

using namespace mythos;

namespace {

using testutil::maxRelErr;

// Logits of the last position of every row, [B][V].
std::vector<float> lastPosition(const std::vector<float>& logits, int64_t B, int64_t T, int64_t V) {
    std::vector<float> out;
    for (int64_t b = 0; b < B; ++b) {
        const auto first = logits.begin() + std::ptrdiff_t((b * T + T - 1) * V);
        out.insert(out.end(), first, first + std::ptrdiff_t(V));
    }
    return out;
}

std::vector<int32_t> argmaxRows(const std::vector<float>& logits, int64_t B, int64_t V) {
    std::vector<int32_t> out;
    for (int64_t b = 0; b < B; ++b) {
        const float* row = logits.data() + b * V;
        out.push_back(int32_t(std::max_element(row, row + V) - row));
    }
    return out;
}

// Columns [t0, t0 + n) of every row of a [B][T] array.
std::vector<int32_t> columns(const std::vector<int32_t>& ids, int64_t B, int64_t T, int64_t t0, int64_t n) {
    std::vector<int32_t> out;
    for (int64_t b = 0; b < B; ++b)
        out.insert(out.end(), ids.begin() + std::ptrdiff_t(b * T + t0), ids.begin() + std::ptrdiff_t(b * T + t0 + n));
    return out;
}

std::string caseDir(const std::string& name) { return golden::find(name).dir.string(); }

std::vector<int32_t> goldenInput(const std::string& caseName, const std::string& input, int64_t& B, int64_t& T) {
    return golden::load(golden::find(caseName)).input(input, B, T);
}

template <typename Fn>
std::string errorMessage(Fn&& fn) {
    try {
        fn();
    } catch (const ArgumentError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no ArgumentError was thrown";
    return {};
}

// ---------------------------------------------------------------------------------------
// KV layouts

TEST(KvLayoutTest, CompactMlaMatchesReferenceWithFewerBytes) {
    auto ref = Model::open(caseDir("tiny_mla"));
    auto compact = Model::open(caseDir("tiny_mla"), EngineOptions{.kvLayout = KvLayout::Compact});
    const Config& c = ref->config();
    ASSERT_TRUE(c.isMla());
    int64_t B = 0, T = 0;
    const auto ids = goldenInput("tiny_mla", "b2", B, T);
    const int64_t V = c.vocab_size, nLoops = 4, steps = 4;

    KvCache refCache = ref->newCache(B), compactCache = compact->newCache(B);
    EXPECT_EQ(refCache.layout(), KvLayout::Reference);
    EXPECT_EQ(compactCache.layout(), KvLayout::Compact);
    ForwardOptions fr{.nLoops = nLoops, .cache = &refCache}, fc{.nLoops = nLoops, .cache = &compactCache};
    auto refLogits = ref->forward(ids, B, T, fr);
    auto compactLogits = compact->forward(ids, B, T, fc);
    EXPECT_LE(maxRelErr(compactLogits, refLogits), 1e-5) << "prefill";
    for (int64_t s = 0; s < steps; ++s) {
        SCOPED_TRACE("decode step " + std::to_string(s));
        const auto next = argmaxRows(lastPosition(refLogits, B, s == 0 ? T : 1, V), B, V);
        fr.startPos = fc.startPos = T + s;
        refLogits = ref->forward(next, B, 1, fr);
        compactLogits = compact->forward(next, B, 1, fc);
        EXPECT_LE(maxRelErr(compactLogits, refLogits), 1e-5);
    }

    const int64_t S = T + steps, f = int64_t(sizeof(float));
    EXPECT_EQ(kvBytesPerPosition(c, KvLayout::Compact), f * (c.kv_lora_rank + c.qk_rope_head_dim));
    EXPECT_EQ(kvBytesPerPosition(c, KvLayout::Reference), f * (c.kv_lora_rank + c.n_heads * c.qk_rope_head_dim));
    const KvLedger refLedger = refCache.ledger(), compactLedger = compactCache.ledger();
    ASSERT_EQ(compactLedger.entries.size(), std::size_t(c.prelude_layers + nLoops + c.coda_layers));
    ASSERT_EQ(refLedger.entries.size(), compactLedger.entries.size());
    for (std::size_t i = 0; i < compactLedger.entries.size(); ++i) {
        const auto& ce = compactLedger.entries[i];
        const auto& re = refLedger.entries[i];
        SCOPED_TRACE(ce.key);
        EXPECT_EQ(ce.key, re.key);
        EXPECT_EQ(ce.positions, S);
        EXPECT_EQ(ce.engineBytes, B * S * f * (c.kv_lora_rank + c.qk_rope_head_dim));
        EXPECT_EQ(re.engineBytes, B * S * f * (c.kv_lora_rank + c.n_heads * c.qk_rope_head_dim));
        // The reference's tensors are described identically in both layouts.
        EXPECT_EQ(ce.referenceBytes, re.referenceBytes);
        EXPECT_EQ(re.engineBytes, re.referenceBytes);
    }
    EXPECT_LT(compactCache.engineBytes(), refCache.engineBytes());
    EXPECT_EQ(compactCache.engineBytes(),
              int64_t(compactLedger.entries.size()) * B * S * f * (c.kv_lora_rank + c.qk_rope_head_dim));
    EXPECT_EQ(compactLedger.engineLayout, "compact");
    EXPECT_EQ(refLedger.engineLayout, "reference");
    EXPECT_EQ(compactLedger.referenceBytes, refLedger.referenceBytes);

    const KvLedger planned = kvLedgerFor(c, B, S, nLoops, KvLayout::Compact);
    EXPECT_EQ(planned.engineBytes, compactLedger.engineBytes);
    EXPECT_EQ(planned.referenceBytes, compactLedger.referenceBytes);
}

TEST(KvLayoutTest, GqaLayoutsAreIdentical) {
    auto ref = Model::open(caseDir("tiny_gqa"));
    auto compact = Model::open(caseDir("tiny_gqa"), EngineOptions{.kvLayout = KvLayout::Compact});
    const Config& c = ref->config();
    ASSERT_FALSE(c.isMla());
    EXPECT_EQ(kvBytesPerPosition(c, KvLayout::Compact), kvBytesPerPosition(c, KvLayout::Reference));
    int64_t B = 0, T = 0;
    const auto ids = goldenInput("tiny_gqa", "b2", B, T);
    const int64_t V = c.vocab_size;
    KvCache refCache = ref->newCache(B), compactCache = compact->newCache(B);
    ForwardOptions fr{.nLoops = 4, .cache = &refCache}, fc{.nLoops = 4, .cache = &compactCache};
    auto refLogits = ref->forward(ids, B, T, fr);
    auto compactLogits = compact->forward(ids, B, T, fc);
    EXPECT_LE(maxRelErr(compactLogits, refLogits), 1e-5);
    const auto next = argmaxRows(lastPosition(refLogits, B, T, V), B, V);
    fr.startPos = fc.startPos = T;
    EXPECT_LE(maxRelErr(compact->forward(next, B, 1, fc), ref->forward(next, B, 1, fr)), 1e-5);
    EXPECT_EQ(compactCache.engineBytes(), refCache.engineBytes());
    EXPECT_EQ(compactCache.engineBytes(), compactCache.ledger().referenceBytes);
    EXPECT_EQ(compactCache.engineBytes(), 6 * B * (T + 1) * kvBytesPerPosition(c, KvLayout::Compact));
}

// ---------------------------------------------------------------------------------------
// Chunked prefill and decoding

TEST(ChunkedPrefillTest, ChunksMatchOnePrefillAndUncachedForward) {
    for (const std::string name : {"tiny_mla", "tiny_gqa", "tiny_mla compact"}) {
        const bool compact = name.find("compact") != std::string::npos;
        auto model = Model::open(caseDir(name.substr(0, 8)),
                                 EngineOptions{.kvLayout = compact ? KvLayout::Compact : KvLayout::Reference});
        const int64_t V = model->config().vocab_size;
        int64_t B2 = 0, T = 0;
        const auto b2 = goldenInput(name.substr(0, 8), "b2", B2, T);
        ASSERT_EQ(T, 16);
        for (const int64_t B : {int64_t(1), int64_t(2)}) {
            SCOPED_TRACE(name + " batch " + std::to_string(B));
            const std::vector<int32_t> ids(b2.begin(), b2.begin() + std::ptrdiff_t(B * T));
            const int64_t nLoops = 4;

            const auto uncached = model->forward(ids, B, T, {.nLoops = nLoops});
            KvCache whole = model->newCache(B);
            const auto prefill = model->forward(ids, B, T, {.nLoops = nLoops, .cache = &whole});
            EXPECT_LE(maxRelErr(prefill, uncached), 1e-5) << "one prefill vs uncached";

            KvCache cache = model->newCache(B);
            std::vector<float> chunked(std::size_t(B * T * V), std::numeric_limits<float>::quiet_NaN());
            int64_t done = 0;
            for (const int64_t n : {5, 7, 4}) {
                const auto part = columns(ids, B, T, done, n);
                const auto logits = model->forward(part, B, n, {.nLoops = nLoops, .cache = &cache, .startPos = done});
                ASSERT_EQ(logits.size(), std::size_t(B * n * V));
                for (int64_t b = 0; b < B; ++b)
                    std::copy(logits.begin() + std::ptrdiff_t(b * n * V),
                              logits.begin() + std::ptrdiff_t((b + 1) * n * V),
                              chunked.begin() + std::ptrdiff_t((b * T + done) * V));
                done += n;
            }
            EXPECT_LE(maxRelErr(chunked, prefill), 1e-5) << "chunked vs one prefill";
            EXPECT_LE(maxRelErr(chunked, uncached), 1e-5) << "chunked vs uncached";
            for (const auto& e : cache.entries())
                EXPECT_EQ(e.length, T) << e.key;
            EXPECT_EQ(cache.engineBytes(), whole.engineBytes());
        }
    }
}

TEST(DecodeTest, CachedDecodeEqualsUncachedForward) {
    for (const std::string name : {"tiny_mla", "tiny_gqa"}) {
        auto model = Model::open(caseDir(name));
        const int64_t V = model->config().vocab_size;
        for (const int64_t nLoops : {int64_t(4), int64_t(8)}) {
            SCOPED_TRACE(name + " n_loops " + std::to_string(nLoops));
            int64_t B = 0, P = 0;
            const auto prompt = goldenInput(name, "b2", B, P);
            std::vector<std::vector<int32_t>> rows(static_cast<std::size_t>(B));
            for (int64_t b = 0; b < B; ++b)
                rows[std::size_t(b)].assign(prompt.begin() + std::ptrdiff_t(b * P),
                                            prompt.begin() + std::ptrdiff_t((b + 1) * P));
            KvCache cache = model->newCache(B);
            auto logits = model->forward(prompt, B, P, {.nLoops = nLoops, .cache = &cache});
            auto last = lastPosition(logits, B, P, V);
            for (int64_t s = 1; s <= 5; ++s) {
                const auto next = argmaxRows(last, B, V);
                for (int64_t b = 0; b < B; ++b)
                    rows[std::size_t(b)].push_back(next[std::size_t(b)]);
                last = model->forward(next, B, 1, {.nLoops = nLoops, .cache = &cache, .startPos = P + s - 1});
                std::vector<int32_t> seq;
                for (const auto& r : rows)
                    seq.insert(seq.end(), r.begin(), r.end());
                const int64_t len = P + s;
                const auto full = model->forward(seq, B, len, {.nLoops = nLoops});
                EXPECT_LE(maxRelErr(last, lastPosition(full, B, len, V)), 1e-5) << "step " << s;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// ACT remainder

TEST(ActRemainderTest, WeightsSumToOneOnlyWithTheOption) {
    auto plain = Model::open(caseDir("tiny_mla"));
    auto remainder = Model::open(caseDir("tiny_mla"), EngineOptions{.actFinalRemainder = true});
    const double thr = plain->config().act_threshold;
    int64_t B = 0, T = 0;
    const auto ids = goldenInput("tiny_mla", "b2", B, T);
    const int64_t N = B * T, V = plain->config().vocab_size;

    Trace tp, tr;
    const auto plainLogits = plain->forward(ids, B, T, {.nLoops = 8, .trace = &tp});
    const auto remLogits = remainder->forward(ids, B, T, {.nLoops = 8, .trace = &tr});
    ASSERT_EQ(tp.loopsExecuted, 8);
    ASSERT_EQ(tr.loopsExecuted, 8);
    EXPECT_EQ(tp.haltLoop, tr.haltLoop);
    ASSERT_EQ(tp.weightSum.size(), std::size_t(N));
    ASSERT_EQ(tr.weightSum.size(), std::size_t(N));

    int neverHalting = 0;
    double maxDiffNeverHalting = 0;
    for (int64_t n = 0; n < N; ++n) {
        SCOPED_TRACE("position " + std::to_string(n));
        EXPECT_NEAR(tr.weightSum[std::size_t(n)], 1.0, 1e-5);
        if (tp.haltLoop[std::size_t(n)] != 0) {
            EXPECT_NEAR(tp.weightSum[std::size_t(n)], 1.0, 1e-5);
            continue;
        }
        ++neverHalting;
        EXPECT_LT(tp.weightSum[std::size_t(n)], thr);
        EXPECT_NEAR(tp.weightSum[std::size_t(n)], tp.actCumP[std::size_t(7 * N + n)], 1e-5);
        const std::vector<float> a(plainLogits.begin() + std::ptrdiff_t(n * V),
                                   plainLogits.begin() + std::ptrdiff_t((n + 1) * V));
        const std::vector<float> b(remLogits.begin() + std::ptrdiff_t(n * V),
                                   remLogits.begin() + std::ptrdiff_t((n + 1) * V));
        maxDiffNeverHalting = std::max(maxDiffNeverHalting, maxRelErr(a, b));
    }
    EXPECT_EQ(neverHalting, 13);
    EXPECT_GT(maxDiffNeverHalting, 1e-3);
    EXPECT_GT(maxRelErr(remLogits, plainLogits), 1e-3);
    EXPECT_EQ(tr.options.at("act_final_remainder"), true);
    EXPECT_EQ(tp.options.at("act_final_remainder"), false);

    // The cached path and the deep run apply the remainder the same way.
    KvCache cache = remainder->newCache(B);
    Trace tc;
    const auto cachedLogits = remainder->forward(ids, B, T, {.nLoops = 8, .cache = &cache, .trace = &tc});
    EXPECT_LE(maxRelErr(cachedLogits, remLogits), 1e-5);
    for (float s : tc.weightSum)
        EXPECT_NEAR(s, 1.0, 1e-5);
    DeepRun run = remainder->deepRun(ids, B, T, 8);
    Trace td;
    EXPECT_LE(maxRelErr(remainder->logitsAt(run, 8, &td), remLogits), 1e-6);
    for (int64_t k = 1; k <= 8; ++k) {
        SCOPED_TRACE("k = " + std::to_string(k));
        const auto deep = remainder->logitsAt(run, k, &td);
        for (float s : td.weightSum)
            EXPECT_NEAR(s, 1.0, 1e-5);
        EXPECT_LE(maxRelErr(deep, remainder->forward(ids, B, T, {.nLoops = k})), 1e-6);
    }
}

// ---------------------------------------------------------------------------------------
// Deep run

TEST(DeepRunTest, LogitsAtEqualsForwardAtEveryDepth) {
    auto model = Model::open(caseDir("tiny_gqa"));
    const auto data = golden::load(golden::find("tiny_gqa"));
    ASSERT_EQ(model->config().max_loop_iters, 4);
    int64_t B = 0, T = 0;
    const auto ids = data.input("b2", B, T);
    const int64_t N = B * T;

    DeepRun direct = model->deepRun(ids, B, T, 12);
    EXPECT_EQ(direct.depth, 12);
    ASSERT_EQ(direct.h.size(), std::size_t(12));
    DeepRun extended = model->deepRun(ids, B, T, 5);
    EXPECT_EQ(extended.depth, 5);
    model->extendDeepRun(extended, 12);
    ASSERT_EQ(extended.depth, 12);
    ASSERT_EQ(extended.h.size(), std::size_t(12));

    for (int64_t k = 1; k <= 12; ++k) {
        SCOPED_TRACE("k = " + std::to_string(k));
        Trace tf, td;
        const auto fwd = model->forward(ids, B, T, {.nLoops = k, .trace = &tf});
        const auto deep = model->logitsAt(direct, k, &td);
        EXPECT_LE(maxRelErr(deep, fwd), 1e-6);
        EXPECT_EQ(td.loopsExecuted, tf.loopsExecuted);
        EXPECT_EQ(td.haltLoop, tf.haltLoop);
        EXPECT_EQ(td.topkIds, tf.topkIds);
        EXPECT_LE(maxRelErr(td.actWeight, tf.actWeight), 1e-6);
        EXPECT_LE(maxRelErr(model->logitsAt(extended, k), deep), 1e-6);
        EXPECT_LE(maxRelErr(extended.h[std::size_t(k - 1)], direct.h[std::size_t(k - 1)]), 1e-6);
        EXPECT_LE(maxRelErr(extended.cum[std::size_t(k - 1)], direct.cum[std::size_t(k - 1)]), 1e-6);
    }
    EXPECT_EQ(extended.trace.actP.size(), std::size_t(12 * N));

    // Depth extrapolation against the reference: n_loops = 8 > max_loop_iters.
    for (const auto& fr : data.json.at("forward_runs")) {
        if (fr.at("input") != "b2" || fr.at("kv_cache").get<bool>())
            continue;
        SCOPED_TRACE(fr.at("name").get<std::string>());
        const auto ref = data.tensor(fr.at("tensors").at("logits"));
        EXPECT_LE(maxRelErr(model->logitsAt(direct, fr.at("n_loops").get<int64_t>()), ref), 1e-4);
    }

    EXPECT_THROW(model->logitsAt(direct, 0), ArgumentError);
    EXPECT_THROW(model->logitsAt(direct, 13), ArgumentError);
    EXPECT_THROW(model->logitsAt(direct, -1), ArgumentError);
    const std::string msg = errorMessage([&] { model->logitsAt(direct, 13); });
    EXPECT_NE(msg.find("1..12"), std::string::npos) << msg;
}

// Loops from max_loop_iters - 1 on (the extrapolated ones included) use the last row of
// the LoRA scale; the loops before it do not see that row.
// A new ACT threshold needs no new loop run: the deep run's stored p and h give exactly what
// a model whose config has that threshold computes from scratch.
TEST(DeepRunTest, ThresholdOverrideEqualsAModelBuiltWithThatThreshold) {
    int64_t B = 0, T = 0;
    const auto ids = goldenInput("tiny_mla", "b2", B, T);
    auto model = Model::open(caseDir("tiny_mla"));
    DeepRun run = model->deepRun(ids, B, T, 8);
    for (double thr : {0.5, 0.8, 0.95}) {
        Config cfg = model->config();
        cfg.act_threshold = thr;
        Model other(cfg, model->weights());
        for (int64_t k : {1, 3, 8}) {
            SCOPED_TRACE("threshold " + std::to_string(thr) + " k " + std::to_string(k));
            Trace fromRun, direct;
            const auto a = model->logitsAt(run, k, &fromRun, thr);
            ForwardOptions fo;
            fo.nLoops = k;
            fo.trace = &direct;
            const auto b = other.forward(ids, B, T, fo);
            EXPECT_LE(maxRelErr(a, b), 1e-6);
            EXPECT_EQ(fromRun.haltLoop, direct.haltLoop);
            EXPECT_EQ(fromRun.loopsExecuted, direct.loopsExecuted);
            EXPECT_LE(maxRelErr(fromRun.actWeight, direct.actWeight), 1e-6);
            EXPECT_FLOAT_EQ(float(fromRun.config.act_threshold), float(thr));
        }
    }
    // A lower threshold halts earlier than the model's own 0.99.
    Trace low, high;
    model->logitsAt(run, 8, &low, 0.5);
    model->logitsAt(run, 8, &high);
    int earlier = 0;
    for (std::size_t i = 0; i < low.haltLoop.size(); ++i) {
        if (high.haltLoop[i] != 0) {
            EXPECT_NE(low.haltLoop[i], 0);
            EXPECT_LE(low.haltLoop[i], high.haltLoop[i]);
        }
        earlier += low.haltLoop[i] != 0 && (high.haltLoop[i] == 0 || low.haltLoop[i] < high.haltLoop[i]);
    }
    EXPECT_GT(earlier, 0);
    EXPECT_THROW(model->logitsAt(run, 4, nullptr, 1.5), ArgumentError);
}

TEST(DeepRunTest, LastLoraScaleRowDrivesExtrapolatedLoops) {
    auto model = Model::open(caseDir("tiny_gqa"));
    const Config& c = model->config();
    int64_t B = 0, T = 0;
    const auto ids = goldenInput("tiny_gqa", "b2", B, T);
    DeepRun before = model->deepRun(ids, B, T, 6);
    Tensor scale = model->weights().at("recurrent.lora.scale.weight");
    for (int64_t r = 0; r < c.lora_rank; ++r)
        scale.data[std::size_t((c.max_loop_iters - 1) * c.lora_rank + r)] *= 3.0f;
    model->setWeight("recurrent.lora.scale.weight", scale);
    DeepRun after = model->deepRun(ids, B, T, 6);
    for (int64_t t = 0; t < c.max_loop_iters - 1; ++t)
        EXPECT_LE(maxRelErr(after.h[std::size_t(t)], before.h[std::size_t(t)]), 1e-6) << "loop " << t;
    for (int64_t t = c.max_loop_iters - 1; t < 6; ++t)
        EXPECT_GT(maxRelErr(after.h[std::size_t(t)], before.h[std::size_t(t)]), 1e-4) << "loop " << t;
}

// ---------------------------------------------------------------------------------------
// Errors and cancellation

TEST(ModelErrorsTest, BadArgumentsThrowHelpfulArgumentErrors) {
    auto model = Model::open(caseDir("tiny_mla"));
    const Config& c = model->config();
    const int32_t V = int32_t(c.vocab_size);

    std::string msg = errorMessage([&] { model->forward({1, V, 2}, 1, 3); });
    EXPECT_NE(msg.find("token id " + std::to_string(V)), std::string::npos) << msg;
    EXPECT_NE(msg.find("vocabulary"), std::string::npos) << msg;
    msg = errorMessage([&] { model->forward({1, -1, 2}, 1, 3); });
    EXPECT_NE(msg.find("token id -1"), std::string::npos) << msg;
    msg = errorMessage([&] { model->deepRun({1, V}, 1, 2, 2); });
    EXPECT_NE(msg.find("vocabulary"), std::string::npos) << msg;

    const int64_t maxLen = c.max_seq_len;
    msg = errorMessage([&] { model->forward({1, 2, 3, 4}, 1, 4, {.startPos = maxLen - 3}); });
    EXPECT_NE(msg.find("max_seq_len"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(maxLen)), std::string::npos) << msg;
    msg = errorMessage([&] { model->forward(std::vector<int32_t>(std::size_t(maxLen + 1), 1), 1, maxLen + 1); });
    EXPECT_NE(msg.find("max_seq_len"), std::string::npos) << msg;
    msg = errorMessage([&] { model->forward({1}, 1, 1, {.startPos = -1}); });
    EXPECT_NE(msg.find("max_seq_len"), std::string::npos) << msg;
    EXPECT_NO_THROW(model->forward({1, 2, 3}, 1, 3, {.nLoops = 1, .startPos = maxLen - 3}));

    KvCache cache = model->newCache(2);
    msg = errorMessage([&] { model->forward({1, 2, 3}, 1, 3, {.nLoops = 1, .cache = &cache}); });
    EXPECT_NE(msg.find("KV cache"), std::string::npos) << msg;
    EXPECT_NE(msg.find("batch"), std::string::npos) << msg;
    EXPECT_TRUE(cache.entries().empty() || cache.entries().front().length == 0);

    msg = errorMessage([&] { model->forward({}, 1, 0); });
    EXPECT_NE(msg.find("non-empty"), std::string::npos) << msg;
    msg = errorMessage([&] { model->forward({}, 0, 0); });
    EXPECT_NE(msg.find("non-empty"), std::string::npos) << msg;
    msg = errorMessage([&] { model->forward({1, 2, 3}, 2, 2); });
    EXPECT_NE(msg.find("3 ids for 2 x 2"), std::string::npos) << msg;
    msg = errorMessage([&] { model->deepRun({}, 1, 0, 2); });
    EXPECT_NE(msg.find("non-empty"), std::string::npos) << msg;
    msg = errorMessage([&] { model->forward({1}, 1, 1, {.nLoops = -1}); });
    EXPECT_NE(msg.find("n_loops"), std::string::npos) << msg;

    EXPECT_THROW(model->newCache(0), ArgumentError);
    EXPECT_THROW(Model::open("preset:tiny_mla:x"), ArgumentError);
}

TEST(ModelErrorsTest, CancelFlagThrowsCancelled) {
    auto model = Model::open(caseDir("tiny_mla"));
    std::atomic<bool> cancel{true};
    EXPECT_THROW(model->forward({1, 2, 3}, 1, 3, {.cancel = &cancel}), Cancelled);
    KvCache cache = model->newCache(1);
    EXPECT_THROW(model->forward({1, 2, 3}, 1, 3, {.cache = &cache, .cancel = &cancel}), Cancelled);
    EXPECT_THROW(model->deepRun({1, 2, 3}, 1, 3, 4, &cancel), Cancelled);
    cancel = false;
    DeepRun run = model->deepRun({1, 2, 3}, 1, 3, 2, &cancel);
    cancel = true;
    EXPECT_THROW(model->extendDeepRun(run, 4, &cancel), Cancelled);
    cancel = false;
    EXPECT_NO_THROW(model->forward({1, 2, 3}, 1, 3, {.nLoops = 1, .cancel = &cancel}));
}

// ---------------------------------------------------------------------------------------
// Random initialisation

double mean(const std::vector<float>& v) {
    double s = 0;
    for (float x : v)
        s += x;
    return s / double(v.size());
}

double stddev(const std::vector<float>& v) {
    const double m = mean(v);
    double s = 0;
    for (float x : v)
        s += (x - m) * (x - m);
    return std::sqrt(s / double(v.size()));
}

TEST(RandomInitTest, DeterministicPerSeedAndReferenceStatistics) {
    auto a = Model::open("preset:tiny_mla:3");
    auto b = Model::open("preset:tiny_mla:3");
    auto other = Model::open("preset:tiny_mla:4");
    EXPECT_EQ(a->config(), preset("tiny_mla"));
    const std::vector<int32_t> ids = {1, 5, 9, 33, 63, 0, 7};
    const auto la = a->forward(ids, 1, 7, {.nLoops = 3});
    const auto lb = b->forward(ids, 1, 7, {.nLoops = 3});
    const auto lo = other->forward(ids, 1, 7, {.nLoops = 3});
    EXPECT_EQ(la, lb);
    EXPECT_GT(maxRelErr(lo, la), 1e-2);
    EXPECT_EQ(a->weightsHash(), b->weightsHash());
    EXPECT_NE(a->weightsHash(), other->weightsHash());
    EXPECT_EQ(a->weights().at("embed.weight").data, b->weights().at("embed.weight").data);
    EXPECT_NE(a->weights().at("embed.weight").data, other->weights().at("embed.weight").data);

    const Weights& w = a->weights();
    for (const std::string name : {"embed.weight", "coda.0.ffn.gate.weight", "recurrent.block.ffn.router.weight"}) {
        SCOPED_TRACE(name);
        const auto& d = w.at(name).data;
        EXPECT_NEAR(stddev(d), 0.02, 0.002);
        EXPECT_NEAR(mean(d), 0.0, 0.002);
    }
    // Normal, not merely scaled right: the kurtosis of N(0, s^2) is 3 (a uniform's is 1.8),
    // and about 4.6% of the values lie beyond 2 s.
    {
        const auto& d = w.at("embed.weight").data;
        const double s = stddev(d);
        double m4 = 0;
        int64_t beyond = 0;
        for (float x : d) {
            m4 += std::pow(double(x) / s, 4);
            beyond += std::fabs(x) > 2 * s;
        }
        EXPECT_NEAR(m4 / double(d.size()), 3.0, 0.3);
        EXPECT_NEAR(double(beyond) / double(d.size()), 0.0455, 0.008);
    }
    for (float x : w.at("recurrent.injection.B").data)
        ASSERT_EQ(x, 0.1f);
    int norms = 0;
    for (const auto& [name, t] : w)
        if (name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0) {
            ++norms;
            for (float x : t.data)
                ASSERT_EQ(x, 1.0f) << name;
        }
    EXPECT_GE(norms, 8);
    for (float x : w.at("recurrent.injection.log_A").data)
        ASSERT_EQ(x, 0.0f);
    EXPECT_EQ(w.at("recurrent.injection.log_dt").data, std::vector<float>{0.0f});
    for (float x : w.at("recurrent.block.ffn.router_bias").data)
        ASSERT_EQ(x, 0.0f);
    const float bound = 1.0f / std::sqrt(float(a->config().dim));
    EXPECT_LE(std::fabs(w.at("recurrent.act.halt.bias").data.at(0)), bound);

    const auto A = a->injectionA();
    ASSERT_EQ(A.size(), std::size_t(a->config().dim));
    for (float x : A)
        ASSERT_NEAR(x, std::exp(-1.0), 1e-7);
    EXPECT_NEAR(spectralRadiusDiagonal(A), std::exp(-1.0), 1e-7);
    Trace tr;
    a->forward(ids, 1, 7, {.nLoops = 1, .trace = &tr});
    EXPECT_NEAR(tr.rhoA, std::exp(-1.0), 1e-7);
}

// ---------------------------------------------------------------------------------------
// MatmulEngine

using testutil::randomVector;

struct Shape {
    int64_t m, k, n;
};

class MatmulEngineTest : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override { usePortableSmallKernels(GetParam()); }
    void TearDown() override { usePortableSmallKernels(false); }
};

INSTANTIATE_TEST_SUITE_P(SmallKernels, MatmulEngineTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "portable" : "native"; });

TEST_P(MatmulEngineTest, LinearMatchesReferenceAndReusesPrimitives) {
    std::mt19937 rng(1234);
    MatmulEngine mm;
    EXPECT_EQ(mm.primitiveCount(), 0u);
    // Rows <= 4 take the direct kernels (no primitive; odd K and N exercise their tails), and
    // with AVX-512 so do small products up to 64 rows; the others oneDNN (M > 64 or many
    // multiply-adds).
    const std::vector<Shape> shapes = {{1, 128, 128}, {64, 128, 170}, {7, 32, 48},  {3, 37, 5},
                                       {4, 200, 33},  {2, 16, 17},    {65, 40, 24}, {64, 300, 130}};
    const auto viaOneDnn = std::count_if(shapes.begin(), shapes.end(),
                                         [](const Shape& s) { return !MatmulEngine::usesDirectKernel(s.m, s.k, s.n); });
    EXPECT_TRUE(MatmulEngine::usesDirectKernel(4, 4096, 4096));
    EXPECT_FALSE(MatmulEngine::usesDirectKernel(65, 40, 24));
    EXPECT_FALSE(MatmulEngine::usesDirectKernel(64, 300, 130)); // 2.5 M multiply-adds
    const bool avx512 = __builtin_cpu_supports("avx512f") && !GetParam();
    EXPECT_EQ(MatmulEngine::usesDirectKernel(64, 128, 170), avx512); // AVX-512 only
    EXPECT_GE(viaOneDnn, 2);
    for (int pass = 0; pass < 2; ++pass) {
        for (const auto& s : shapes) {
            SCOPED_TRACE(std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n));
            const auto x = randomVector(std::size_t(s.m * s.k), rng);
            const auto w = randomVector(std::size_t(s.n * s.k), rng);
            std::vector<float> got(std::size_t(s.m * s.n)), ref(got.size());
            mm.linear(x.data(), s.m, s.k, w.data(), s.n, got.data());
            linearReference(x.data(), s.m, s.k, w.data(), s.n, ref.data());
            EXPECT_LE(maxRelErr(got, ref), 1e-5);

            const auto y0 = randomVector(got.size(), rng);
            got = y0;
            ref = y0;
            mm.linear(x.data(), s.m, s.k, w.data(), s.n, got.data(), true);
            linearReference(x.data(), s.m, s.k, w.data(), s.n, ref.data(), true);
            EXPECT_LE(maxRelErr(got, ref), 1e-5) << "accumulate";
            EXPECT_GT(maxRelErr(got, y0), 1e-2) << "accumulate must add the product";

            // W stored [K, N]: the same product as the transposed [N, K] weight.
            std::vector<float> wt(w.size());
            for (int64_t j = 0; j < s.n; ++j)
                for (int64_t k = 0; k < s.k; ++k)
                    wt[std::size_t(k * s.n + j)] = w[std::size_t(j * s.k + k)];
            std::vector<float> kn(got.size());
            mm.matmulKN(x.data(), s.m, s.k, wt.data(), s.n, kn.data());
            linearReference(x.data(), s.m, s.k, w.data(), s.n, ref.data());
            EXPECT_LE(maxRelErr(kn, ref), 1e-5) << "matmulKN";
            kn = y0;
            ref = y0;
            mm.matmulKN(x.data(), s.m, s.k, wt.data(), s.n, kn.data(), true);
            linearReference(x.data(), s.m, s.k, w.data(), s.n, ref.data(), true);
            EXPECT_LE(maxRelErr(kn, ref), 1e-5) << "matmulKN accumulate";
        }
        // linear, linear+accumulate, matmulKN, matmulKN+accumulate for each shape.
        EXPECT_EQ(mm.primitiveCount(), std::size_t(4 * viaOneDnn)) << "pass " << pass;
    }
}

TEST(MatmulEngine, StridedLinearMatchesReference) {
    std::mt19937 rng(99);
    MatmulEngine mm;
    for (const int64_t M : {5, 3}) { // oneDNN and the small-row kernel
        SCOPED_TRACE(M);
        const int64_t K = 24, N = 12, ldx = 40, ldy = 20;
        const auto xs = randomVector(std::size_t(M * ldx), rng);
        const auto w = randomVector(std::size_t(N * K), rng);
        std::vector<float> ys(std::size_t(M * ldy), -7.0f);
        mm.linearStrided(xs.data(), M, K, ldx, w.data(), N, ys.data(), ldy);
        std::vector<float> x(std::size_t(M * K)), ref(std::size_t(M * N)), got(std::size_t(M * N));
        for (int64_t i = 0; i < M; ++i) {
            std::copy(xs.begin() + std::ptrdiff_t(i * ldx), xs.begin() + std::ptrdiff_t(i * ldx + K),
                      x.begin() + std::ptrdiff_t(i * K));
            std::copy(ys.begin() + std::ptrdiff_t(i * ldy), ys.begin() + std::ptrdiff_t(i * ldy + N),
                      got.begin() + std::ptrdiff_t(i * N));
            for (int64_t j = N; j < ldy; ++j)
                EXPECT_EQ(ys[std::size_t(i * ldy + j)], -7.0f) << "padding overwritten";
        }
        linearReference(x.data(), M, K, w.data(), N, ref.data());
        EXPECT_LE(maxRelErr(got, ref), 1e-5);
    }
}

TEST(MatmulEngine, ModelForwardIsRepeatable) {
    auto model = Model::open(caseDir("tiny_mla"));
    const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
    const auto first = model->forward(ids, 1, 8, {.nLoops = 4});
    const auto second = model->forward(ids, 1, 8, {.nLoops = 4});
    EXPECT_EQ(first, second);
}

} // namespace

TEST(ModelThreads, OneAndTwoThreadsGiveTheSameLogitsAndRouting) {
    // Two threads share the MoE experts and the attention heads of a prefill; each piece is
    // computed the same way whichever thread runs it, so the numbers are identical.
    std::vector<int32_t> ids(64);
    for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = int32_t((i * 37 + 11) % 64);
    std::vector<std::vector<float>> logits;
    std::vector<Trace> traces;
    for (int threads : {1, 2}) {
        EngineOptions eo;
        eo.threads = threads;
        auto model = Model::open(caseDir("tiny_mla"), eo);
        KvCache cache = model->newCache(1);
        Trace tr;
        logits.push_back(model->forward(ids, 1, 64, {.nLoops = 6, .cache = &cache, .trace = &tr}));
        traces.push_back(std::move(tr));
    }
    setNumThreads(0);
    ASSERT_EQ(logits[0].size(), logits[1].size());
    EXPECT_EQ(logits[0], logits[1]);
    EXPECT_EQ(traces[0].topkIds, traces[1].topkIds);
    EXPECT_EQ(traces[0].routerLogits, traces[1].routerLogits);
    EXPECT_EQ(traces[0].actP, traces[1].actP);
}

TEST(MatmulEngine, TransposedCopyGivesTheSameProductAsTheWeight) {
    // WeightRef::kn (W^T stored [K, N]) takes over from four rows on in the direct kernels:
    // every row count, column tails and accumulation agree with the plain product.
    std::mt19937 rng(5);
    MatmulEngine mm;
    for (const Shape s : std::vector<Shape>{{4, 32, 128}, {7, 64, 70}, {64, 128, 170}, {17, 33, 5}, {3, 16, 64}}) {
        SCOPED_TRACE(std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n));
        const auto x = randomVector(std::size_t(s.m * s.k), rng);
        const auto w = randomVector(std::size_t(s.n * s.k), rng);
        std::vector<float> wt(w.size());
        for (int64_t j = 0; j < s.n; ++j)
            for (int64_t k = 0; k < s.k; ++k)
                wt[std::size_t(k * s.n + j)] = w[std::size_t(j * s.k + k)];
        WeightRef ref(w.data());
        ref.kn = wt.data();
        std::vector<float> got(std::size_t(s.m * s.n)), want(got.size());
        mm.linear(x.data(), s.m, s.k, ref, s.n, got.data());
        linearReference(x.data(), s.m, s.k, w.data(), s.n, want.data());
        EXPECT_LE(maxRelErr(got, want), 1e-5);
        const auto y0 = randomVector(got.size(), rng);
        got = y0;
        want = y0;
        mm.linear(x.data(), s.m, s.k, ref, s.n, got.data(), true);
        linearReference(x.data(), s.m, s.k, w.data(), s.n, want.data(), true);
        EXPECT_LE(maxRelErr(got, want), 1e-5) << "accumulate";
        EXPECT_FALSE(ref.rowsFrom(1, s.k).kn) << "a block of rows has no [K, N] copy";
    }
}

TEST(ModelKernelCopies, SmallFp32MatricesAreCopiedAndFollowSetWeight) {
    if (!__builtin_cpu_supports("avx512f"))
        GTEST_SKIP() << "the copies are made only for the AVX-512 kernels";
    auto model = Model::open(caseDir("tiny_mla"));
    EXPECT_GT(model->kernelCopyBytes(), model->weightBytes() / 2); // every matrix of a tiny model
    EngineOptions bf;
    bf.weightType = WeightType::BF16;
    EXPECT_EQ(Model::open(caseDir("tiny_mla"), bf)->kernelCopyBytes(), 0u);
    usePortableSmallKernels(true); // the portable kernels have no use for them
    const auto portable = Model::open(caseDir("tiny_mla"));
    usePortableSmallKernels(false);
    EXPECT_EQ(portable->kernelCopyBytes(), 0u);

    // After setWeight the copy holds the new values: the same logits as a model opened with
    // them from the start.
    const std::string name = "recurrent.block.attn.wo.weight";
    Tensor t = model->weights().at(name);
    for (auto& v : t.data)
        v *= -1.5f;
    model->setWeight(name, t);
    Weights changed = model->weights();
    Model fresh(model->config(), std::move(changed));
    const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    const auto a = model->forward(ids, 1, int64_t(ids.size()), {.nLoops = 3});
    const auto b = fresh.forward(ids, 1, int64_t(ids.size()), {.nLoops = 3});
    EXPECT_EQ(a, b);
    auto original = Model::open(caseDir("tiny_mla"));
    EXPECT_GT(maxRelErr(original->forward(ids, 1, int64_t(ids.size()), {.nLoops = 3}), a), 1e-3)
        << "the changed weight must change the logits";
}
