// The tied head's rows (HeadRows) and the top logits a trace keeps: a large vocabulary
// computes and stores only what is asked for, with the same numbers as the full head.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/model.h"
#include "mythos/modelspec.h"
#include "mythos/trace.h"
#include "testutil.h"

using namespace mythos;
using testutil::maxRelErr;

namespace {

std::unique_ptr<Model> tiny() { return Model::open(golden::find("tiny_mla").dir.string()); }

std::vector<float> lastRows(const std::vector<float>& logits, int64_t B, int64_t T, int64_t V) {
    std::vector<float> out;
    for (int64_t b = 0; b < B; ++b)
        out.insert(out.end(), logits.begin() + (b * T + T - 1) * V, logits.begin() + (b * T + T) * V);
    return out;
}

// The top k of a row by sorting all of it, and its log-sum-exp in double precision.
void expectTopOf(const float* row, int64_t V, const int32_t* ids, const float* values, int64_t k, float lse) {
    std::vector<int32_t> order(static_cast<std::size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [row](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int64_t i = 0; i < k; ++i) {
        EXPECT_EQ(ids[i], order[std::size_t(i)]) << "rank " << i;
        EXPECT_EQ(values[i], row[order[std::size_t(i)]]);
    }
    double mx = row[order[0]], sum = 0;
    for (int64_t v = 0; v < V; ++v)
        sum += std::exp(double(row[v]) - mx);
    EXPECT_NEAR(lse, mx + std::log(sum), 1e-5 * std::max(1.0, std::fabs(mx)));
}

} // namespace

TEST(HeadRowsTest, LastRowsEqualTheFullHeadsLastPositions) {
    auto m = tiny();
    const int64_t B = 2, T = 7, V = m->config().vocab_size;
    std::vector<int32_t> ids(std::size_t(B * T));
    for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = int32_t((i * 7 + 3) % std::size_t(V));
    ForwardOptions all;
    all.nLoops = 3;
    const auto full = m->forward(ids, B, T, all);
    ForwardOptions last = all;
    last.headRows = HeadRows::Last;
    const auto tail = m->forward(ids, B, T, last);
    ASSERT_EQ(tail.size(), std::size_t(B * V));
    EXPECT_LT(maxRelErr(tail, lastRows(full, B, T, V)), 1e-6);

    const DeepRun run = m->deepRun(ids, B, T, 4);
    const auto deepFull = m->logitsAt(run, 3, nullptr, 0, HeadRows::All);
    const auto deepLast = m->logitsAt(run, 3, nullptr, 0, HeadRows::Last);
    EXPECT_LT(maxRelErr(deepLast, lastRows(deepFull, B, T, V)), 1e-6);
    EXPECT_LT(maxRelErr(deepFull, full), 1e-5);
}

TEST(HeadRowsTest, TracesKeepTheTopLogitsOfEveryComputedRow) {
    auto m = tiny();
    const int64_t B = 2, T = 5, V = m->config().vocab_size;
    std::vector<int32_t> ids(std::size_t(B * T));
    for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = int32_t((i * 5 + 1) % std::size_t(V));
    Trace tr;
    ForwardOptions fo;
    fo.nLoops = 2;
    fo.trace = &tr;
    const auto logits = m->forward(ids, B, T, fo);
    const int64_t k = std::min<int64_t>(kTraceTopLogits, V);
    ASSERT_EQ(tr.topLogitK, k);
    ASSERT_EQ(tr.topLogitPositions, (std::vector<int32_t>{0, 1, 2, 3, 4}));
    ASSERT_EQ(tr.topLogitIds.size(), std::size_t(B * T * k));
    EXPECT_EQ(tr.logits, logits);
    for (int64_t r = 0; r < B * T; ++r)
        expectTopOf(logits.data() + r * V, V, tr.topLogitIds.data() + r * k, tr.topLogitValues.data() + r * k, k,
                    tr.logitLse[std::size_t(r)]);

    // Only the last positions: no full logits in the trace, the top of those rows.
    Trace last;
    fo.trace = &last;
    fo.headRows = HeadRows::Last;
    const auto tail = m->forward(ids, B, T, fo);
    EXPECT_TRUE(last.logits.empty());
    ASSERT_EQ(last.topLogitPositions, (std::vector<int32_t>{int32_t(T - 1)}));
    for (int64_t b = 0; b < B; ++b)
        expectTopOf(tail.data() + b * V, V, last.topLogitIds.data() + b * k, last.topLogitValues.data() + b * k, k,
                    last.logitLse[std::size_t(b)]);

    // Both survive the JSON round trip.
    for (const Trace* t : {&tr, &last}) {
        const Trace again = traceFromJson(traceToJson(*t, false), "again");
        EXPECT_TRUE(again.logits.empty());
        EXPECT_EQ(again.topLogitK, t->topLogitK);
        EXPECT_EQ(again.topLogitPositions, t->topLogitPositions);
        EXPECT_EQ(again.topLogitIds, t->topLogitIds);
        EXPECT_EQ(again.topLogitValues, t->topLogitValues);
        EXPECT_EQ(again.logitLse, t->logitLse);
    }
}

TEST(HeadRowsTest, HostileTopLogitsAreRefusedNamingTheField) {
    auto m = tiny();
    Trace tr;
    ForwardOptions fo;
    fo.nLoops = 1;
    fo.trace = &tr;
    m->forward({1, 2, 3}, 1, 3, fo);
    const nlohmann::json good = traceToJson(tr, false);
    auto message = [&](const std::function<void(nlohmann::json&)>& change) -> std::string {
        nlohmann::json j = good;
        change(j);
        try {
            parseTrace(j.dump(), "t.json");
        } catch (const FormatError& e) {
            return e.what();
        }
        return "accepted";
    };
    EXPECT_NE(
        message([](auto& j) { j["logits_topk"]["ids"][0][0][0] = 99999; }).find("'logits_topk.ids' holds token 99999"),
        std::string::npos);
    EXPECT_NE(message([](auto& j) { j["logits_topk"]["positions"] = {2, 1, 0}; }).find("ascending"), std::string::npos);
    EXPECT_NE(message([](auto& j) { j["logits_topk"]["positions"] = {0, 1, 7}; }).find("ascending"), std::string::npos);
    EXPECT_NE(message([](auto& j) { j["logits_topk"]["k"] = 1 << 30; }).find("more than the vocab"), std::string::npos);
    EXPECT_NE(message([](auto& j) { j["logits_topk"]["values"] = 3; }).find("'values' must be an array"),
              std::string::npos);
    EXPECT_NE(message([](auto& j) { j["logits_topk"]["logsumexp"][0] = {1.0}; }).find("logsumexp"), std::string::npos);
    EXPECT_NE(message([](auto& j) { j["logits_topk"] = 5; }).find("'logits_topk' must be an object"),
              std::string::npos);
    EXPECT_EQ(message([](auto&) {}), "accepted");
}

TEST(HeadRowsTest, FullLogitsAreKeptWhileSmall) {
    EXPECT_TRUE(fullLogitsByDefault(1, 64, 100));
    EXPECT_TRUE(fullLogitsByDefault(4, 1024, 1024)); // 2^22 values
    EXPECT_FALSE(fullLogitsByDefault(4, 1025, 1024));
    EXPECT_FALSE(fullLogitsByDefault(1, 64, 199998));             // a 200K vocabulary
    EXPECT_FALSE(fullLogitsByDefault(1 << 30, 1 << 30, 1 << 24)); // no overflow
    EXPECT_FALSE(fullLogitsByDefault(0, 1, 1));
}

TEST(HeadRowsTest, APresetsConfigCanBeAdjustedBeforeItsWeightsAreMade) {
    // mythos::open's config overrides (the CLI's --vocab).
    auto m = mythos::open(parseModelSpec("preset:tiny_mla:2"), {}, {{"vocab_size", 1000}});
    EXPECT_EQ(m->config().vocab_size, 1000);
    EXPECT_EQ(m->weights().at("embed.weight").shape.at(0), 1000);
    EXPECT_THROW(mythos::open(parseModelSpec("preset:tiny_mla"), {}, {{"vocab_size", 0}}), ConfigError);
    // A checkpoint's config takes overrides too, but not one that changes a tensor's shape.
    const ModelSpec folder = parseModelSpec(golden::find("tiny_mla").dir.string());
    EXPECT_THROW(mythos::open(folder, {}, {{"vocab_size", 1000}}), FormatError);
    EXPECT_THROW(mythos::open(folder, {}, {{"no_such_field", 1}}), ArgumentError);
}
