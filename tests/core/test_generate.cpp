// Autoregressive generation and the sampler.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/generate.h"
#include "mythos/model.h"

using namespace mythos;
using golden::flattenInts;

namespace {

class GenerateTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        s_data = new golden::Data(golden::load(golden::find("tiny_gqa")));
        s_model = Model::open(s_data->c.dir.string()).release();
    }
    static void TearDownTestSuite() {
        delete s_model;
        delete s_data;
        s_model = nullptr;
        s_data = nullptr;
    }
    Model& model() { return *s_model; }
    const golden::Data& data() const { return *s_data; }
    std::vector<int32_t> prompt(int64_t& B, int64_t& P) const { return data().input("b1", B, P); }

    static Model* s_model;
    static golden::Data* s_data;
};

Model* GenerateTest::s_model = nullptr;
golden::Data* GenerateTest::s_data = nullptr;

GenerateOptions sampled(uint64_t seed, double temperature = 1.5, int64_t topK = 0) {
    GenerateOptions go;
    go.nLoops = 4;
    go.maxNewTokens = 16;
    go.sampling.greedy = false;
    go.sampling.temperature = temperature;
    go.sampling.topK = topK;
    go.sampling.seed = seed;
    return go;
}

TEST_F(GenerateTest, GreedyMatchesTheGoldenDecode) {
    const nlohmann::json* run = nullptr;
    for (const auto& r : data().json.at("decode_runs"))
        if (r.at("name") == "b1_L4")
            run = &r;
    ASSERT_NE(run, nullptr);
    int64_t B = 0, P = 0;
    const auto ids = prompt(B, P);
    GenerateOptions go;
    go.nLoops = run->at("n_loops");
    go.maxNewTokens = run->at("new_tokens");
    const auto res = generate(model(), ids, B, P, go);
    EXPECT_EQ(res.batch, B);
    EXPECT_EQ(res.steps, go.maxNewTokens);
    EXPECT_EQ(res.vocab, model().config().vocab_size);
    EXPECT_EQ(res.generated, flattenInts<int32_t>(run->at("generated")));
    EXPECT_EQ(res.stepLogits.size(), std::size_t(res.steps * B * res.vocab));
    EXPECT_EQ(res.kv.referenceBytes, run->at("kv_cache_total_bytes").get<int64_t>());
    ASSERT_FALSE(res.kv.entries.empty());
    EXPECT_EQ(res.kv.entries.front().positions, P + go.maxNewTokens - 1);

    go.keepStepLogits = false;
    const auto lean = generate(model(), ids, B, P, go);
    EXPECT_TRUE(lean.stepLogits.empty());
    EXPECT_EQ(lean.generated, res.generated);
}

TEST_F(GenerateTest, GreedyBatchOfTwoMatchesTheGoldenDecode) {
    const nlohmann::json* run = nullptr;
    for (const auto& r : data().json.at("decode_runs"))
        if (r.at("name") == "b2_L8")
            run = &r;
    ASSERT_NE(run, nullptr);
    int64_t B = 0, P = 0;
    const auto ids = data().input("b2", B, P);
    GenerateOptions go;
    go.nLoops = run->at("n_loops");
    go.maxNewTokens = run->at("new_tokens");
    EXPECT_EQ(generate(model(), ids, B, P, go).generated, flattenInts<int32_t>(run->at("generated")));
}

TEST_F(GenerateTest, SamplingIsReproduciblePerSeed) {
    int64_t B = 0, P = 0;
    const auto ids = prompt(B, P);
    const auto a = generate(model(), ids, B, P, sampled(11));
    const auto b = generate(model(), ids, B, P, sampled(11));
    const auto c = generate(model(), ids, B, P, sampled(12));
    ASSERT_EQ(a.generated.size(), 16u);
    EXPECT_EQ(a.generated, b.generated);
    EXPECT_EQ(a.stepLogits, b.stepLogits);
    EXPECT_NE(a.generated, c.generated);
    const auto greedy = generate(model(), ids, B, P, [] {
        GenerateOptions go;
        go.nLoops = 4;
        go.maxNewTokens = 16;
        return go;
    }());
    EXPECT_NE(a.generated, greedy.generated) << "temperature 1.5 sampling should leave the greedy path";
    for (int32_t t : a.generated) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, model().config().vocab_size);
    }
}

TEST_F(GenerateTest, TopKOneEqualsGreedy) {
    int64_t B = 0, P = 0;
    const auto ids = data().input("b2", B, P);
    GenerateOptions greedy;
    greedy.nLoops = 4;
    greedy.maxNewTokens = 8;
    const auto g = generate(model(), ids, B, P, greedy);
    for (const uint64_t seed : {1u, 2u, 3u}) {
        GenerateOptions go = sampled(seed, 2.0, 1);
        go.maxNewTokens = 8;
        EXPECT_EQ(generate(model(), ids, B, P, go).generated, g.generated) << "seed " << seed;
    }
}

TEST(SamplerTest, NeverPicksOutsideTheTopK) {
    const int64_t V = 10, B = 2;
    // Row 0: top-3 = {1, 3, 7}; row 1: top-3 = {0, 4, 9}.
    const std::vector<float> logits = {0.0f, 5.0f,  1.0f, 4.9f, -2.0f, 3.0f,  2.0f, 4.8f, 0.5f, 1.5f,
                                       6.0f, -1.0f, 0.0f, 1.0f, 5.5f,  -3.0f, 2.0f, 0.5f, 1.0f, 5.8f};
    const std::set<int32_t> allowed0 = {1, 3, 7}, allowed1 = {0, 4, 9};
    Sampler sampler({.greedy = false, .temperature = 1.0, .topK = 3, .seed = 42});
    std::set<int32_t> seen0, seen1;
    for (int i = 0; i < 3000; ++i) {
        const auto picks = sampler.next(logits, B, V);
        ASSERT_EQ(picks.size(), 2u);
        ASSERT_TRUE(allowed0.count(picks[0])) << "row 0 picked " << picks[0];
        ASSERT_TRUE(allowed1.count(picks[1])) << "row 1 picked " << picks[1];
        seen0.insert(picks[0]);
        seen1.insert(picks[1]);
    }
    EXPECT_EQ(seen0, allowed0);
    EXPECT_EQ(seen1, allowed1);

    Sampler hot({.greedy = false, .temperature = 50.0, .topK = 2, .seed = 7});
    for (int i = 0; i < 2000; ++i) {
        const auto picks = hot.next(logits, B, V);
        ASSERT_TRUE(picks[0] == 1 || picks[0] == 3) << picks[0];
        ASSERT_TRUE(picks[1] == 0 || picks[1] == 9) << picks[1];
    }
}

TEST(SamplerTest, FrequenciesFollowTheSoftmax) {
    // p(1) = 3 / (1 + 3) at temperature 1; at temperature 2 it is sqrt(3) / (1 + sqrt(3)).
    const std::vector<float> logits = {0.0f, float(std::log(3.0))};
    for (const double temperature : {1.0, 2.0}) {
        Sampler s({.greedy = false, .temperature = temperature, .topK = 0, .seed = 5});
        const int n = 20000;
        int ones = 0;
        for (int i = 0; i < n; ++i)
            ones += s.next(logits, 1, 2)[0];
        const double expected = std::pow(3.0, 1.0 / temperature) / (1.0 + std::pow(3.0, 1.0 / temperature));
        EXPECT_NEAR(double(ones) / n, expected, 0.015) << "temperature " << temperature;
    }
}

TEST(SamplerTest, GreedyTakesTheFirstMaximum) {
    Sampler s({.greedy = true});
    EXPECT_EQ(s.next({0.0f, 2.0f, 1.0f, 2.0f}, 1, 4), std::vector<int32_t>{1});
    EXPECT_EQ(s.next({3.0f, 2.0f, -1.0f, 0.0f, 0.0f, 9.0f}, 2, 3), (std::vector<int32_t>{0, 2}));
}

TEST(SamplerTest, RejectsBadOptions) {
    EXPECT_THROW(Sampler({.greedy = false, .temperature = 0.0}), ArgumentError);
    EXPECT_THROW(Sampler({.greedy = false, .temperature = -1.0}), ArgumentError);
    EXPECT_THROW(Sampler({.greedy = false, .temperature = std::nan("")}), ArgumentError);
    EXPECT_THROW(Sampler({.greedy = false, .temperature = 1.0, .topK = -1}), ArgumentError);
    EXPECT_NO_THROW(Sampler({.greedy = false, .temperature = 1e-3}));
}

TEST_F(GenerateTest, TemperatureZeroThrows) {
    int64_t B = 0, P = 0;
    const auto ids = prompt(B, P);
    EXPECT_THROW(generate(model(), ids, B, P, sampled(1, 0.0)), ArgumentError);
    EXPECT_THROW(generate(model(), ids, B, P, sampled(1, -0.5)), ArgumentError);
}

TEST_F(GenerateTest, OnTokenCanStopEarly) {
    int64_t B = 0, P = 0;
    const auto ids = prompt(B, P);
    GenerateOptions go;
    go.nLoops = 4;
    go.maxNewTokens = 8;
    go.traceSteps = true;
    std::vector<int64_t> steps;
    std::vector<int32_t> tokens;
    go.onToken = [&](int64_t step, const std::vector<int32_t>& t, const Trace* tr) {
        steps.push_back(step);
        tokens.insert(tokens.end(), t.begin(), t.end());
        EXPECT_NE(tr, nullptr);
        if (tr) {
            EXPECT_EQ(tr->seqLen, step == 0 ? P : 1);
        }
        return step < 2;
    };
    const auto res = generate(model(), ids, B, P, go);
    EXPECT_EQ(res.steps, 3);
    EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 2}));
    EXPECT_EQ(res.generated, tokens);
    EXPECT_EQ(res.generated.size(), 3u);
    EXPECT_EQ(res.stepLogits.size(), std::size_t(3 * model().config().vocab_size));
    const std::vector<int32_t> golden = flattenInts<int32_t>(data().json.at("decode_runs").at(0).at("generated"));
    EXPECT_EQ(res.generated, std::vector<int32_t>(golden.begin(), golden.begin() + 3));

    go.traceSteps = false;
    go.onToken = [&](int64_t, const std::vector<int32_t>&, const Trace* tr) {
        EXPECT_EQ(tr, nullptr);
        return false;
    };
    EXPECT_EQ(generate(model(), ids, B, P, go).steps, 1);
}

TEST_F(GenerateTest, TooManyNewTokensThrows) {
    int64_t B = 0, P = 0;
    const auto ids = prompt(B, P);
    const int64_t maxLen = model().config().max_seq_len;
    GenerateOptions go;
    go.nLoops = 1;
    go.maxNewTokens = maxLen - P + 2; // P + M - 1 = max_seq_len + 1
    try {
        generate(model(), ids, B, P, go);
        ADD_FAILURE() << "no ArgumentError";
    } catch (const ArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("max_seq_len"), std::string::npos) << e.what();
    }
    go.maxNewTokens = -1;
    EXPECT_THROW(generate(model(), ids, B, P, go), ArgumentError);

    // The largest allowed count feeds position max_seq_len - 1 last.
    go.maxNewTokens = maxLen - P + 1;
    const auto res = generate(model(), ids, B, P, go);
    EXPECT_EQ(res.steps, go.maxNewTokens);
    ASSERT_FALSE(res.kv.entries.empty());
    EXPECT_EQ(res.kv.entries.front().positions, maxLen);
}

TEST_F(GenerateTest, CancelFlagThrows) {
    int64_t B = 0, P = 0;
    const auto ids = prompt(B, P);
    std::atomic<bool> cancel{true};
    GenerateOptions go;
    go.nLoops = 4;
    go.maxNewTokens = 4;
    go.cancel = &cancel;
    EXPECT_THROW(generate(model(), ids, B, P, go), Cancelled);

    cancel = false;
    go.onToken = [&](int64_t step, const std::vector<int32_t>&, const Trace*) {
        if (step == 1)
            cancel = true;
        return true;
    };
    EXPECT_THROW(generate(model(), ids, B, P, go), Cancelled);
}

} // namespace
