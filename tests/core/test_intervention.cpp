// Interventions (docs/inside-the-loop.md, "Interventions"): the JSON form (parsing, checks,
// round trip, files), each kind's effect on the forward pass against an equivalent change
// of the weights or a hand-made computation, and the trace of a modified model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/generate.h"
#include "mythos/intervention.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"
#include "mythos/trace.h"
#include "testutil.h"

using namespace mythos;
using nlohmann::json;

namespace {

using testutil::maxRelErr;
using testutil::TempDir;

std::unique_ptr<Model> openCase(const std::string& name) { return Model::open(golden::find(name).dir.string()); }

// A fixed prompt of the tiny models' 64-token vocabulary.
const std::vector<int32_t> kPrompt = {3, 17, 42, 5, 9, 60, 28, 11};
const std::vector<int32_t> kOther = {50, 2, 33, 19, 7, 44};

Intervention parse(const std::string& text) { return interventionFromJson(json::parse(text)); }

std::vector<float> run(Model& m, const std::vector<int32_t>& ids, int64_t nLoops, Trace* tr = nullptr) {
    return m.forward(ids, 1, int64_t(ids.size()), {.nLoops = nLoops, .trace = tr});
}

// The ArgumentError's message of fn, or a failure.
template <typename Fn>
std::string argumentError(Fn&& fn) {
    try {
        fn();
    } catch (const ArgumentError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not an ArgumentError: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no ArgumentError was thrown";
    return {};
}

std::string parseError(const std::string& text) {
    return argumentError([&] { parse(text); });
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------------------
// JSON form

TEST(InterventionJsonTest, ParsesEveryDocumentedField) {
    const Intervention iv = parse(R"({
        "schema": "mythos-intervention/1", "name": "label",
        "ablate_experts": [{"expert": 2, "loop": 3}, {"expert": 1}],
        "ablate_heads": [{"stage": "recurrent", "layer": 0, "head": 1, "loop": 2}, {"stage": "coda", "head": 3}, {"head": 0}],
        "exit": {"loop": 3}, "injection_off_after": 2, "lora_scale_zero": true, "loop_shift": 1,
        "patch": {"token": 5, "loop": 2, "ids": [1, 2, 3, 4, 5, 6], "source_token": 4}})");
    EXPECT_EQ(iv.name, "label");
    ASSERT_EQ(iv.ablateExperts.size(), 2u);
    EXPECT_EQ(iv.ablateExperts[0].expert, 2);
    EXPECT_EQ(iv.ablateExperts[0].loop, 3);
    EXPECT_EQ(iv.ablateExperts[1].expert, 1);
    EXPECT_EQ(iv.ablateExperts[1].loop, 0);
    ASSERT_EQ(iv.ablateHeads.size(), 3u);
    EXPECT_EQ(iv.ablateHeads[0].stage, AttnStage::Recurrent);
    EXPECT_EQ(iv.ablateHeads[0].loop, 2);
    EXPECT_EQ(iv.ablateHeads[1].stage, AttnStage::Coda);
    EXPECT_EQ(iv.ablateHeads[1].head, 3);
    EXPECT_EQ(iv.ablateHeads[2].stage, AttnStage::Recurrent); // the default stage
    EXPECT_EQ(iv.exit, Intervention::Exit::Fixed);
    EXPECT_EQ(iv.exitLoop, 3);
    ASSERT_TRUE(iv.injectionOffAfter.has_value());
    EXPECT_EQ(*iv.injectionOffAfter, 2);
    EXPECT_TRUE(iv.loraScaleZero);
    EXPECT_EQ(iv.loopShift, 1);
    ASSERT_TRUE(iv.patch.has_value());
    EXPECT_EQ(iv.patch->token, 5);
    EXPECT_EQ(iv.patch->loop, 2);
    EXPECT_EQ(iv.patch->sourceToken, 4);
    EXPECT_EQ(iv.patch->ids, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
    EXPECT_FALSE(iv.empty());
    // expertAblated: 0-based loop j, the entry's loop 1-based (0 = every loop).
    EXPECT_TRUE(iv.expertAblated(2, 2));
    EXPECT_FALSE(iv.expertAblated(2, 3));
    EXPECT_TRUE(iv.expertAblated(1, 0));
    EXPECT_TRUE(iv.expertAblated(1, 100));
    EXPECT_FALSE(iv.expertAblated(0, 0));

    const Intervention conv =
        parse(R"({"exit": {"at": "convergence"}, "patch": {"token": 1, "loop": 1, "prompt": "hi"}})");
    EXPECT_EQ(conv.exit, Intervention::Exit::Convergence);
    EXPECT_EQ(conv.patch->prompt, "hi");
    EXPECT_EQ(conv.patch->sourceToken, 1); // defaults to token
    EXPECT_TRUE(conv.patch->ids.empty());
}

TEST(InterventionJsonTest, EmptyAndNameOnlyObjectsChangeNothing) {
    EXPECT_TRUE(parse("{}").empty());
    EXPECT_TRUE(parse(R"({"name": "x", "schema": "mythos-intervention/1"})").empty());
    EXPECT_TRUE(parse(R"({"lora_scale_zero": false, "loop_shift": 0, "ablate_experts": []})").empty());
    EXPECT_FALSE(parse(R"({"injection_off_after": 0})").empty());
    EXPECT_EQ(parse("{}").describe(), "no change");
}

TEST(InterventionJsonTest, RejectsMalformedObjectsNamingTheField) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"[]", "must be a JSON object"},
        {R"({"foo": 1})", "'foo'"},
        {R"({"schema": "mythos-intervention/2"})", "'schema'"},
        {R"({"name": 3})", "'name'"},
        {R"({"ablate_experts": {"expert": 1}})", "'ablate_experts' must be an array"},
        {R"({"ablate_experts": [{"loop": 1}]})", "ablate_experts[].expert"},
        {R"({"ablate_experts": [{"expert": -1}]})", "ablate_experts[].expert"},
        {R"({"ablate_experts": [{"expert": 1.5}]})", "ablate_experts[].expert"},
        {R"({"ablate_experts": [{"expert": "1"}]})", "ablate_experts[].expert"},
        {R"({"ablate_experts": [{"expert": 1, "loop": -2}]})", "ablate_experts[].loop"},
        {R"({"ablate_experts": [{"expert": 1, "layer": 0}]})", "ablate_experts[].layer"},
        {R"({"ablate_experts": [{"expert": 18446744073709551615}]})", "ablate_experts[].expert"},
        {R"({"ablate_heads": [{"stage": "coda"}]})", "ablate_heads[].head"},
        {R"({"ablate_heads": [{"head": 0, "stage": "middle"}]})", "ablate_heads[].stage"},
        {R"({"ablate_heads": [{"head": 0, "stage": "coda", "loop": 1}]})", "ablate_heads[].loop"},
        {R"({"ablate_heads": [{"head": -1}]})", "ablate_heads[].head"},
        {R"({"exit": {}})", "'exit'"},
        {R"({"exit": {"loop": 2, "at": "convergence"}})", "'exit'"},
        {R"({"exit": {"loop": 0}})", "exit.loop"},
        {R"({"exit": {"loop": -1}})", "exit.loop"},
        {R"({"exit": {"loop": true}})", "exit.loop"},
        {R"({"exit": {"at": "start"}})", "exit.at"},
        {R"({"exit": {"at": 3}})", "exit.at"},
        {R"({"exit": 3})", "exit"},
        {R"({"injection_off_after": -1})", "injection_off_after"},
        {R"({"injection_off_after": "2"})", "injection_off_after"},
        {R"({"lora_scale_zero": 1})", "lora_scale_zero"},
        {R"({"loop_shift": 1.0})", "loop_shift"},
        {R"({"loop_shift": 1000000})", "loop_shift"},
        {R"({"patch": {"token": 1, "loop": 1}})", "'patch'"},
        {R"({"patch": {"token": 1, "ids": [1]}})", "'patch'"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1], "prompt": "a"}})", "'patch'"},
        {R"({"patch": {"token": 1, "loop": 0, "ids": [1]}})", "patch.loop"},
        {R"({"patch": {"token": -1, "loop": 1, "ids": [1]}})", "patch.token"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1], "source_token": -3}})", "patch.source_token"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": []}})", "patch.ids"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1, -2]}})", "patch.ids"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1, 2.5]}})", "patch.ids"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": "1 2"}})", "patch.ids"},
        {R"({"patch": {"token": 1, "loop": 1, "prompt": ""}})", "patch.prompt"},
        {R"({"patch": {"token": 1, "loop": 1, "prompt": 7}})", "patch.prompt"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1], "layer": 2}})", "patch.layer"},
    };
    for (const auto& [text, field] : cases) {
        const std::string msg = parseError(text);
        EXPECT_EQ(msg.rfind("intervention", 0), 0u) << text << " -> " << msg;
        EXPECT_TRUE(contains(msg, field)) << text << " -> " << msg << " (expected to name " << field << ")";
    }
}

TEST(InterventionJsonTest, RoundTripsThroughJson) {
    const std::string text = R"({
        "name": "everything",
        "ablate_experts": [{"expert": 2, "loop": 3}, {"expert": 7}],
        "ablate_heads": [{"stage": "prelude", "layer": 0, "head": 1}, {"stage": "recurrent", "head": 2, "loop": 4}],
        "exit": {"loop": 3}, "injection_off_after": 0, "lora_scale_zero": true, "loop_shift": 2,
        "patch": {"token": 5, "loop": 2, "ids": [1, 2, 3, 4, 5, 6]}})";
    const Intervention a = parse(text);
    const json j = interventionToJson(a);
    EXPECT_EQ(j.at("schema"), kInterventionSchema);
    const Intervention b = interventionFromJson(j);
    EXPECT_EQ(interventionToJson(b), j);
    EXPECT_EQ(b.describe(), a.describe());
    EXPECT_EQ(b.patch->sourceToken, 5);
    EXPECT_EQ(*b.injectionOffAfter, 0);

    const Intervention conv =
        parse(R"({"exit": {"at": "convergence"}, "patch": {"token": 1, "loop": 1, "prompt": "ab"}})");
    const json jc = interventionToJson(conv);
    EXPECT_EQ(jc.at("exit"), json({{"at", "convergence"}}));
    EXPECT_EQ(jc.at("patch").at("prompt"), "ab");
    EXPECT_EQ(interventionToJson(interventionFromJson(jc)), jc);
    // An empty intervention writes the schema only.
    EXPECT_EQ(interventionToJson(Intervention{}), json({{"schema", kInterventionSchema}}));
}

TEST(InterventionJsonTest, DescribeNamesEveryPart) {
    EXPECT_EQ(parse(R"({"ablate_experts": [{"expert": 2, "loop": 3}], "exit": {"at": "convergence"}})").describe(),
              "ablate expert 2 at loop 3; exit at convergence");
    EXPECT_EQ(parse(R"({"ablate_experts": [{"expert": 4}]})").describe(), "ablate expert 4");
    EXPECT_EQ(parse(R"({"ablate_heads": [{"head": 1, "loop": 2}]})").describe(),
              "ablate head 1 of recurrent at loop 2");
    EXPECT_EQ(parse(R"({"ablate_heads": [{"stage": "coda", "layer": 1, "head": 0}]})").describe(),
              "ablate head 0 of coda layer 1");
    EXPECT_EQ(parse(R"({"exit": {"loop": 3}})").describe(), "exit at loop 3");
    EXPECT_EQ(parse(R"({"injection_off_after": 2})").describe(), "no re-injection after loop 2");
    EXPECT_EQ(parse(R"({"lora_scale_zero": true})").describe(), "depth LoRA off");
    EXPECT_EQ(parse(R"({"loop_shift": 2})").describe(), "loop embedding shifted by 2");
    EXPECT_EQ(parse(R"({"patch": {"token": 3, "loop": 2, "ids": [1, 2], "source_token": 1}})").describe(),
              "patch token 3 at loop 2 from token 1 of a second prompt");
}

// A name is cut to 200 bytes; the cut must not split a UTF-8 character, or the intervention
// (and every trace of the modified model) could no longer be written as JSON.
TEST(InterventionJsonTest, LongNamesAreCutAtACharacterBoundary) {
    const std::string name = std::string(199, 'a') + "\xc3\xa9" + "tail"; // é straddles byte 200
    const Intervention iv = interventionFromJson(json{{"name", name}, {"lora_scale_zero", true}});
    EXPECT_LE(iv.name.size(), 200u);
    EXPECT_EQ(iv.name.rfind(std::string(199, 'a'), 0), 0u);
    std::string dumped;
    EXPECT_NO_THROW(dumped = interventionToJson(iv).dump());
    EXPECT_EQ(interventionFromJson(json::parse(dumped)).name, iv.name);
    // A name within the limit is kept whole.
    EXPECT_EQ(interventionFromJson(json{{"name", "Zürich €"}}).name, "Zürich €");
}

TEST(InterventionJsonTest, FilesLoadSaveAndErrorsNameTheFile) {
    TempDir dir("intervention");
    const auto path = dir / "iv.json";
    const Intervention iv =
        parse(R"({"name": "n", "ablate_experts": [{"expert": 1, "loop": 2}], "exit": {"loop": 2}})");
    saveIntervention(path, iv);
    EXPECT_EQ(interventionToJson(loadIntervention(path)), interventionToJson(iv));

    const auto expectError = [&](const std::filesystem::path& p, const std::string& what) {
        try {
            loadIntervention(p);
            ADD_FAILURE() << "no error for " << p;
        } catch (const Error& e) {
            EXPECT_TRUE(contains(e.what(), p.string())) << e.what();
            EXPECT_TRUE(contains(e.what(), what)) << e.what();
        }
    };
    EXPECT_THROW(loadIntervention(dir / "missing.json"), FileError);
    expectError(dir / "missing.json", "missing.json");
    { std::ofstream(dir / "bad.json") << "{ not json"; }
    EXPECT_THROW(loadIntervention(dir / "bad.json"), ArgumentError);
    expectError(dir / "bad.json", "not valid JSON");
    { std::ofstream(dir / "field.json") << R"({"exit": {"loop": 0}})"; }
    expectError(dir / "field.json", "exit.loop");
    {
        std::ofstream big(dir / "big.json");
        big << "{\"name\": \"" << std::string(2 << 20, 'x') << "\"}";
    }
    EXPECT_THROW(loadIntervention(dir / "big.json"), FileError);
    expectError(dir / "big.json", "big.json");
}

// ---------------------------------------------------------------------------------------
// Checks against a model

TEST(InterventionModelTest, SetInterventionRejectsIndicesOutsideTheModel) {
    auto m = openCase("tiny_gqa"); // 8 experts, 4 heads, 1 prelude and 1 coda layer, max_seq_len 128
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"ablate_experts": [{"expert": 8}]})", "ablate_experts"},
        {R"({"ablate_heads": [{"head": 4}]})", "ablate_heads"},
        {R"({"ablate_heads": [{"stage": "coda", "layer": 1, "head": 0}]})", "coda layer 1"},
        {R"({"ablate_heads": [{"stage": "prelude", "layer": 2, "head": 0}]})", "prelude layer 2"},
        {R"({"ablate_heads": [{"stage": "recurrent", "layer": 1, "head": 0}]})", "recurrent layer 1"},
        {R"({"patch": {"token": 128, "loop": 1, "ids": [1, 2]}})", "patch.token"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1, 2], "source_token": 2}})", "patch.source_token"},
        {R"({"patch": {"token": 1, "loop": 1, "ids": [1, 64]}})", "patch.ids"},
        {R"({"patch": {"token": 1, "loop": 1, "prompt": "not tokenized"}})", "patch"},
    };
    for (const auto& entry : cases) {
        // Named copies, not a structured binding: clang 14 cannot capture those in a lambda.
        const auto& text = entry.first;
        const auto& field = entry.second;
        const std::string msg = argumentError([&] { m->setIntervention(parse(text)); });
        EXPECT_EQ(msg.rfind("intervention", 0), 0u) << text << " -> " << msg;
        EXPECT_TRUE(contains(msg, field)) << text << " -> " << msg;
        EXPECT_EQ(m->intervention(), nullptr) << "a rejected intervention must not stay set: " << text;
    }
    // A patch source longer than max_seq_len.
    Intervention longSource = parse(R"({"patch": {"token": 0, "loop": 1, "ids": [1]}})");
    longSource.patch->ids.assign(129, 1);
    EXPECT_TRUE(contains(argumentError([&] { m->setIntervention(longSource); }), "max_seq_len"));
    // Within range: fine, and an empty one clears it again.
    m->setIntervention(parse(R"({"ablate_experts": [{"expert": 7}], "ablate_heads": [{"head": 3}]})"));
    ASSERT_NE(m->intervention(), nullptr);
    m->setIntervention(Intervention{});
    EXPECT_EQ(m->intervention(), nullptr);
}

// A negative loop shift moves loop 0's embedding index below 0: the forward pass says so.
// Loop 0 always runs, so a negative shift could never run: refused when read.
TEST(InterventionModelTest, NegativeLoopShiftIsAnErrorNamingIt) {
    const std::string msg = argumentError([&] { parse(R"({"loop_shift": -1})"); });
    EXPECT_TRUE(contains(msg, "loop_shift")) << msg;
}

// ---------------------------------------------------------------------------------------
// Effects, against equivalent weights or hand-made computations

class InterventionEffectTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        m = openCase(GetParam());
        ref = openCase(GetParam());
    }
    std::unique_ptr<Model> m, ref;
};

TEST_P(InterventionEffectTest, EmptyInterventionIsTheUnmodifiedModel) {
    const auto base = run(*ref, kPrompt, 4);
    m->setIntervention(parse(R"({"name": "nothing"})"));
    EXPECT_EQ(m->intervention(), nullptr);
    EXPECT_EQ(run(*m, kPrompt, 4), base);
    // Set and cleared again: back to the original.
    m->setIntervention(parse(R"({"lora_scale_zero": true})"));
    EXPECT_NE(run(*m, kPrompt, 4), base);
    m->setIntervention(Intervention{});
    EXPECT_EQ(run(*m, kPrompt, 4), base);
}

TEST_P(InterventionEffectTest, LoraScaleZeroEqualsZeroScaleWeights) {
    const Tensor& scale = ref->weights().at("recurrent.lora.scale.weight");
    Tensor zero = scale;
    std::fill(zero.data.begin(), zero.data.end(), 0.0f);
    ref->setWeight("recurrent.lora.scale.weight", zero);
    m->setIntervention(parse(R"({"lora_scale_zero": true})"));
    const auto base = run(*openCase(GetParam()), kPrompt, 6);
    const auto got = run(*m, kPrompt, 6);
    EXPECT_EQ(got, run(*ref, kPrompt, 6));
    EXPECT_NE(got, base);
}

TEST_P(InterventionEffectTest, InjectionOffAfterKEqualsZeroB) {
    const auto base = run(*ref, kPrompt, 4);
    // k >= the loops run: nothing changes.
    m->setIntervention(parse(R"({"injection_off_after": 4})"));
    EXPECT_EQ(run(*m, kPrompt, 4), base);
    m->setIntervention(parse(R"({"injection_off_after": 9})"));
    EXPECT_EQ(run(*m, kPrompt, 4), base);
    // k = 0: every loop runs without B*e, as with B = 0.
    Tensor zero = ref->weights().at("recurrent.injection.B");
    std::fill(zero.data.begin(), zero.data.end(), 0.0f);
    ref->setWeight("recurrent.injection.B", zero);
    m->setIntervention(parse(R"({"injection_off_after": 0})"));
    const auto off = run(*m, kPrompt, 4);
    EXPECT_EQ(off, run(*ref, kPrompt, 4));
    EXPECT_NE(off, base);
    // k = 2: the first two loops as the original (the same states), later ones not.
    m->setIntervention(parse(R"({"injection_off_after": 2})"));
    Trace tm, tb;
    run(*m, kPrompt, 4, &tm);
    run(*openCase(GetParam()), kPrompt, 4, &tb);
    const std::size_t N = kPrompt.size();
    ASSERT_GE(tm.hNorm.size(), 3 * N);
    ASSERT_GE(tb.hNorm.size(), 3 * N);
    EXPECT_TRUE(std::equal(tm.hNorm.begin(), tm.hNorm.begin() + std::ptrdiff_t(2 * N), tb.hNorm.begin()));
    EXPECT_FALSE(std::equal(tm.hNorm.begin() + std::ptrdiff_t(2 * N), tm.hNorm.begin() + std::ptrdiff_t(3 * N),
                            tb.hNorm.begin() + std::ptrdiff_t(2 * N)));
}

TEST_P(InterventionEffectTest, LoopShiftChangesTheStates) {
    m->setIntervention(parse(R"({"loop_shift": 1})"));
    Trace tm, tb;
    run(*m, kPrompt, 3, &tm);
    run(*ref, kPrompt, 3, &tb);
    EXPECT_NE(tm.hNorm, tb.hNorm);
    EXPECT_EQ(tm.intervention, interventionToJson(*m->intervention()));
}

// Which experts some position selected at some loop of a trace.
std::set<int32_t> selectedExperts(const Trace& tr) { return {tr.topkIds.begin(), tr.topkIds.end()}; }

TEST_P(InterventionEffectTest, AblatingAnUnselectedExpertChangesNothing) {
    // A short prompt leaves some of the 8 experts unselected at every loop.
    const std::vector<int32_t> ids = {3, 17};
    Trace tb;
    const auto base = run(*ref, ids, 4, &tb);
    const std::set<int32_t> used = selectedExperts(tb);
    int64_t unused = -1;
    for (int64_t e = 0; e < ref->config().n_experts && unused < 0; ++e)
        if (!used.count(int32_t(e)))
            unused = e;
    ASSERT_GE(unused, 0) << "every expert was selected: pick a shorter prompt";
    m->setIntervention(interventionFromJson(json{{"ablate_experts", {{{"expert", unused}}}}}));
    Trace tm;
    EXPECT_EQ(run(*m, ids, 4, &tm), base);
    EXPECT_EQ(tm.topkWeights, tb.topkWeights);
}

TEST_P(InterventionEffectTest, AblatedExpertHasGateZeroAndTheOthersAreRenormalised) {
    Trace tb;
    const auto base = run(*ref, kPrompt, 4, &tb);
    // The expert selected most often at loop 1.
    const int64_t k = tb.topK, N = int64_t(kPrompt.size());
    std::vector<int> count(std::size_t(tb.nExperts), 0);
    for (int64_t i = 0; i < N * k; ++i)
        ++count[std::size_t(tb.topkIds[std::size_t(i)])];
    const int32_t e = int32_t(std::max_element(count.begin(), count.end()) - count.begin());
    m->setIntervention(interventionFromJson(json{{"ablate_experts", {{{"expert", e}}}}}));
    Trace tm;
    const auto got = run(*m, kPrompt, 4, &tm);
    EXPECT_NE(got, base);
    ASSERT_EQ(tm.topkIds.size(), tm.topkWeights.size());
    int64_t rowsWithAblated = 0;
    for (std::size_t row = 0; row * std::size_t(k) < tm.topkIds.size(); ++row) {
        double sum = 0;
        bool all = true, any = false;
        for (int64_t s = 0; s < k; ++s) {
            const std::size_t i = row * std::size_t(k) + std::size_t(s);
            const bool ablated = tm.topkIds[i] == e;
            if (ablated) {
                EXPECT_EQ(tm.topkWeights[i], 0.0f) << "row " << row;
                any = true;
            }
            all = all && ablated;
            sum += tm.topkWeights[i];
        }
        rowsWithAblated += any;
        if (all) {
            EXPECT_EQ(sum, 0.0);
        } else {
            EXPECT_NEAR(sum, 1.0, 1e-6) << "row " << row;
        }
    }
    EXPECT_GT(rowsWithAblated, 0);
    // Loop 1's selection is that of the original (the state before it is the same); the
    // other selected expert of a row that held e has gate 1 with top-2.
    ASSERT_EQ(k, 2);
    for (int64_t i = 0; i < N * k; ++i) {
        EXPECT_EQ(tm.topkIds[std::size_t(i)], tb.topkIds[std::size_t(i)]);
    }
    for (int64_t n = 0; n < N; ++n) {
        const std::size_t a = std::size_t(n * k);
        if (tm.topkIds[a] == e) {
            EXPECT_EQ(tm.topkWeights[a + 1], 1.0f);
        } else if (tm.topkIds[a + 1] == e) {
            EXPECT_EQ(tm.topkWeights[a], 1.0f);
        } else {
            EXPECT_EQ(tm.topkWeights[a], tb.topkWeights[a]);
        }
    }
}

// Every routed expert ablated: the routed output is 0 and the shared experts remain, as
// with every routed expert's down projection zero.
TEST_P(InterventionEffectTest, AblatingEveryExpertLeavesTheSharedExperts) {
    const int64_t E = ref->config().n_experts;
    json list = json::array();
    for (int64_t e = 0; e < E; ++e) {
        list.push_back({{"expert", e}});
        const std::string name = "recurrent.block.ffn.routed_experts." + std::to_string(e) + ".down.weight";
        Tensor zero = ref->weights().at(name);
        std::fill(zero.data.begin(), zero.data.end(), 0.0f);
        ref->setWeight(name, zero);
    }
    m->setIntervention(interventionFromJson(json{{"ablate_experts", list}}));
    Trace tm, tr;
    const auto got = run(*m, kPrompt, 4, &tm);
    EXPECT_EQ(got, run(*ref, kPrompt, 4, &tr));
    for (float g : tm.topkWeights)
        EXPECT_EQ(g, 0.0f);
    EXPECT_EQ(tm.topkIds, tr.topkIds); // the selection is unchanged
    EXPECT_NE(got, run(*openCase(GetParam()), kPrompt, 4));
}

TEST_P(InterventionEffectTest, AblatingAtLoopTwoLeavesLoopOneAlone) {
    Trace tb;
    run(*ref, kPrompt, 4, &tb);
    const int64_t k = tb.topK, N = int64_t(kPrompt.size());
    // An expert some position selects at loop 2.
    const int32_t e = tb.topkIds[std::size_t(N * k)];
    m->setIntervention(interventionFromJson(json{{"ablate_experts", {{{"expert", e}, {"loop", 2}}}}}));
    Trace tm;
    run(*m, kPrompt, 4, &tm);
    const auto firstLoop = [&](const std::vector<float>& v, int64_t width) {
        return std::vector<float>(v.begin(), v.begin() + std::ptrdiff_t(N * width));
    };
    EXPECT_EQ(firstLoop(tm.topkWeights, k), firstLoop(tb.topkWeights, k));
    EXPECT_EQ(firstLoop(tm.hNorm, 1), firstLoop(tb.hNorm, 1));
    EXPECT_EQ(firstLoop(tm.actP, 1), firstLoop(tb.actP, 1));
    EXPECT_EQ(std::vector<int32_t>(tm.topkIds.begin(), tm.topkIds.begin() + N * k),
              std::vector<int32_t>(tb.topkIds.begin(), tb.topkIds.begin() + N * k));
    // Loop 2: the same selection (the state before it is the same), e's gate 0.
    for (int64_t i = N * k; i < 2 * N * k; ++i) {
        EXPECT_EQ(tm.topkIds[std::size_t(i)], tb.topkIds[std::size_t(i)]);
        if (tm.topkIds[std::size_t(i)] == e) {
            EXPECT_EQ(tm.topkWeights[std::size_t(i)], 0.0f);
        }
    }
    EXPECT_NE(std::vector<float>(tm.hNorm.begin() + N, tm.hNorm.begin() + 2 * N),
              std::vector<float>(tb.hNorm.begin() + N, tb.hNorm.begin() + 2 * N));
}

TEST_P(InterventionEffectTest, ForcedExitThroughForwardEqualsTheDeepRun) {
    m->setIntervention(parse(R"({"exit": {"loop": 2}})"));
    const int64_t T = int64_t(kPrompt.size());
    Trace tf;
    const auto viaForward = m->forward(kPrompt, 1, T, {.nLoops = 4, .trace = &tf});
    const DeepRun dr = m->deepRun(kPrompt, 1, T, 4);
    const auto viaDeep = m->logitsAt(dr, 4);
    EXPECT_EQ(viaForward, viaDeep);
    // Every requested loop runs (no early exit).
    EXPECT_EQ(tf.loopsExecuted, 4);
    // The output is loop 2's state alone: the exit at loop 2 of a 2-loop run is the same.
    EXPECT_EQ(viaForward, m->logitsAt(dr, 2));
    EXPECT_NE(viaForward, ref->logitsAt(dr, 4));
    // An exit loop past the loops run is the last loop.
    m->setIntervention(parse(R"({"exit": {"loop": 99}})"));
    const auto late = m->logitsAt(dr, 3);
    m->setIntervention(parse(R"({"exit": {"loop": 3}})"));
    EXPECT_EQ(late, m->logitsAt(dr, 3));
}

TEST_P(InterventionEffectTest, ExitAtConvergenceTakesEachPositionsStateLensConvergenceLoop) {
    const int64_t T = int64_t(kPrompt.size()), K = 4, D = ref->config().dim;
    const DeepRun dr = ref->deepRun(kPrompt, 1, T, K);
    const LensRecord lr = ref->lens(dr, K);
    // The state at each position's convergence loop, assembled by hand, through the coda and
    // head as a one-loop run that halts at once (weight 1).
    DeepRun one;
    one.batch = 1;
    one.seqLen = T;
    one.depth = 1;
    one.ids = kPrompt;
    one.e = dr.e;
    one.h.emplace_back(std::size_t(T * D));
    bool someEarly = false;
    for (int64_t n = 0; n < T; ++n) {
        const int64_t conv = lr.state.convergence[std::size_t(n)];
        someEarly = someEarly || conv < K;
        std::copy_n(dr.h[std::size_t(conv - 1)].begin() + n * D, D, one.h[0].begin() + n * D);
    }
    one.p = {std::vector<float>(std::size_t(T), 1.0f)};
    one.cum = one.p;
    one.weight = one.p;
    const auto expected = ref->logitsAt(one, 1);

    m->setIntervention(parse(R"({"exit": {"at": "convergence"}})"));
    EXPECT_EQ(m->logitsAt(dr, K), expected);
    const auto viaForward = m->forward(kPrompt, 1, T, {.nLoops = K});
    EXPECT_LT(maxRelErr(viaForward, expected), 1e-6);
    if (!someEarly)
        std::cout << "note: every position of the prompt converges at the last loop\n";
}

TEST_P(InterventionEffectTest, PatchFromTheSamePromptChangesNothing) {
    const auto base = run(*ref, kPrompt, 4);
    Intervention iv = parse(R"({"patch": {"token": 3, "loop": 2, "ids": [0]}})");
    iv.patch->ids = kPrompt;
    m->setIntervention(iv);
    EXPECT_EQ(run(*m, kPrompt, 4), base);
}

TEST_P(InterventionEffectTest, PatchFromAnotherPromptCarriesItsState) {
    const int64_t token = 4, loop = 2, source = 2, V = ref->config().vocab_size;
    Trace tSrc, tb;
    run(*ref, kOther, 4, &tSrc);
    const auto base = run(*ref, kPrompt, 4, &tb);
    Intervention iv = parse(R"({"patch": {"token": 4, "loop": 2, "ids": [0], "source_token": 2}})");
    iv.patch->ids = kOther;
    m->setIntervention(iv);
    Trace tm;
    const auto got = run(*m, kPrompt, 4, &tm);
    ASSERT_GE(tm.loopsExecuted, loop);
    ASSERT_GE(tSrc.loopsExecuted, loop);
    EXPECT_EQ(tm.hNorm[tm.at(loop - 1, 0, token)], tSrc.hNorm[tSrc.at(loop - 1, 0, source)]);
    EXPECT_NE(tm.hNorm[tm.at(loop - 1, 0, token)], tb.hNorm[tb.at(loop - 1, 0, token)]);
    // Causal: positions before the patched one see nothing of it (up to rounding: an
    // expert's matmul covers the tokens routed to it, and the patch changes later tokens'
    // routing); it and later ones do.
    const auto rows = [&](const std::vector<float>& z, int64_t t0, int64_t t1) {
        return std::vector<float>(z.begin() + t0 * V, z.begin() + t1 * V);
    };
    EXPECT_LT(maxRelErr(rows(got, 0, token), rows(base, 0, token)), 1e-5);
    EXPECT_GT(maxRelErr(rows(got, token, token + 1), rows(base, token, token + 1)), 1e-3);
    EXPECT_NE(rows(got, token, token + 1), rows(base, token, token + 1));
    EXPECT_NE(rows(got, token + 1, int64_t(kPrompt.size())), rows(base, token + 1, int64_t(kPrompt.size())));
    // The loop before the patch is untouched.
    EXPECT_EQ(tm.hNorm[tm.at(loop - 2, 0, token)], tb.hNorm[tb.at(loop - 2, 0, token)]);
}

TEST_P(InterventionEffectTest, PatchAppliesInACachedPrefill) {
    const int64_t T = int64_t(kPrompt.size());
    Intervention iv = parse(R"({"patch": {"token": 5, "loop": 1, "ids": [0], "source_token": 1}})");
    iv.patch->ids = kOther;
    m->setIntervention(iv);
    const auto uncached = m->forward(kPrompt, 1, T, {.nLoops = 4});
    // One prefill.
    KvCache c1 = m->newCache(1);
    const auto whole = m->forward(kPrompt, 1, T, {.nLoops = 4, .cache = &c1});
    EXPECT_LT(maxRelErr(whole, uncached), 1e-5);
    // Two chunks, the patched position in the second.
    KvCache c2 = m->newCache(1);
    const std::vector<int32_t> a(kPrompt.begin(), kPrompt.begin() + 3), b(kPrompt.begin() + 3, kPrompt.end());
    m->forward(a, 1, 3, {.nLoops = 4, .cache = &c2});
    const auto second = m->forward(b, 1, T - 3, {.nLoops = 4, .cache = &c2, .startPos = 3});
    const std::vector<float> tail(uncached.begin() + 3 * m->config().vocab_size, uncached.end());
    EXPECT_LT(maxRelErr(second, tail), 1e-5);
    // And it did change something.
    KvCache c3 = ref->newCache(1);
    EXPECT_GT(maxRelErr(ref->forward(kPrompt, 1, T, {.nLoops = 4, .cache = &c3}), whole), 1e-4);
}

TEST_P(InterventionEffectTest, ForcedExitRunsInCachedGeneration) {
    const int64_t T = int64_t(kPrompt.size()), V = ref->config().vocab_size;
    m->setIntervention(parse(R"({"exit": {"loop": 1}})"));
    const auto uncached = m->forward(kPrompt, 1, T, {.nLoops = 3});
    const float* last = uncached.data() + (T - 1) * V;
    const int32_t first = int32_t(std::max_element(last, last + V) - last);
    GenerateOptions go;
    go.nLoops = 3;
    go.maxNewTokens = 3;
    const GenerateResult g = generate(*m, kPrompt, 1, T, go);
    ASSERT_EQ(g.generated.size(), 3u);
    EXPECT_EQ(g.generated[0], first);
    for (int32_t id : g.generated) {
        EXPECT_TRUE(id >= 0 && id < V);
    }
    m->setIntervention(parse(R"({"exit": {"at": "convergence"}})"));
    const GenerateResult gc = generate(*m, kPrompt, 1, T, go);
    EXPECT_EQ(gc.generated.size(), 3u);
    // Every step decoded with the cache (the convergence loop's state lens runs on the
    // cache's coda entries, cut back after each loop) picks what an uncached pass over the
    // prompt and the tokens so far picks.
    std::vector<int32_t> ids = kPrompt;
    for (std::size_t i = 0; i < gc.generated.size(); ++i) {
        SCOPED_TRACE("step " + std::to_string(i));
        const int64_t n = int64_t(ids.size());
        const auto conv = m->forward(ids, 1, n, {.nLoops = 3});
        const float* lc = conv.data() + (n - 1) * V;
        EXPECT_EQ(gc.generated[i], int32_t(std::max_element(lc, lc + V) - lc));
        ids.push_back(gc.generated[i]);
    }
}

TEST_P(InterventionEffectTest, HeadAblationEqualsZeroingThatHeadsColumnsOfWo) {
    const Config& c = ref->config();
    const int64_t width = c.isMla() ? c.v_head_dim : c.headDim(), H = c.n_heads, head = 2;
    for (const char* stage : {"prelude", "coda"}) {
        auto a = openCase(GetParam());
        auto b = openCase(GetParam());
        const std::string name = std::string(stage) + ".0.attn.wo.weight";
        Tensor wo = b->weights().at(name);
        ASSERT_EQ(wo.shape, (std::vector<int64_t>{c.dim, H * width}));
        for (int64_t row = 0; row < c.dim; ++row)
            for (int64_t col = head * width; col < (head + 1) * width; ++col)
                wo.data[std::size_t(row * H * width + col)] = 0.0f;
        b->setWeight(name, wo);
        a->setIntervention(
            interventionFromJson(json{{"ablate_heads", {{{"stage", stage}, {"layer", 0}, {"head", head}}}}}));
        const auto got = run(*a, kPrompt, 4);
        EXPECT_LT(maxRelErr(got, run(*b, kPrompt, 4)), 1e-6) << stage;
        EXPECT_GT(maxRelErr(got, run(*ref, kPrompt, 4)), 1e-4) << stage;
    }
}

// A decode step (one query row: MLA's absorbed form) ablates the same heads as a prefill.
TEST_P(InterventionEffectTest, HeadAblationInCachedDecodeEqualsTheUncachedPass) {
    const int64_t T = int64_t(kPrompt.size()), V = ref->config().vocab_size;
    m->setIntervention(parse(R"({"ablate_heads": [{"stage": "prelude", "head": 0}, {"stage": "recurrent", "head": 1},
                                                   {"stage": "coda", "head": 3}]})"));
    const auto uncached = m->forward(kPrompt, 1, T, {.nLoops = 3});
    KvCache cache = m->newCache(1);
    m->forward(std::vector<int32_t>(kPrompt.begin(), kPrompt.end() - 1), 1, T - 1, {.nLoops = 3, .cache = &cache});
    const auto step = m->forward({kPrompt.back()}, 1, 1, {.nLoops = 3, .cache = &cache, .startPos = T - 1});
    const std::vector<float> last(uncached.end() - V, uncached.end());
    EXPECT_LT(maxRelErr(step, last), 1e-4);
    KvCache plain = ref->newCache(1);
    ref->forward(std::vector<int32_t>(kPrompt.begin(), kPrompt.end() - 1), 1, T - 1, {.nLoops = 3, .cache = &plain});
    EXPECT_GT(maxRelErr(ref->forward({kPrompt.back()}, 1, 1, {.nLoops = 3, .cache = &plain, .startPos = T - 1}), step),
              1e-3);
}

TEST_P(InterventionEffectTest, RecurrentHeadAblationAtOneLoop) {
    const int64_t T = int64_t(kPrompt.size());
    m->setIntervention(parse(R"({"ablate_heads": [{"stage": "recurrent", "head": 1, "loop": 2}]})"));
    const DeepRun a = m->deepRun(kPrompt, 1, T, 3);
    const DeepRun b = ref->deepRun(kPrompt, 1, T, 3);
    EXPECT_EQ(a.h[0], b.h[0]);
    EXPECT_NE(a.h[1], b.h[1]);
}

TEST_P(InterventionEffectTest, TraceOfAModifiedModelCarriesTheIntervention) {
    Trace tb, tm;
    run(*ref, kPrompt, 4, &tb);
    const Intervention iv = parse(R"({"name": "x", "ablate_experts": [{"expert": 1}]})");
    m->setIntervention(iv);
    run(*m, kPrompt, 4, &tm);
    EXPECT_TRUE(tb.intervention.is_null());
    EXPECT_EQ(tm.intervention, interventionToJson(iv));
    // The weights are unchanged: so is their hash (the intervention field tells the runs apart).
    EXPECT_EQ(tm.weightsHash, tb.weightsHash);
    EXPECT_EQ(m->weightsHash(), ref->weightsHash());
    const json j = traceToJson(tm);
    EXPECT_EQ(j.at("intervention"), interventionToJson(iv));
    EXPECT_FALSE(traceToJson(tb).contains("intervention"));
    EXPECT_EQ(parseTrace(j.dump(), "t.json").intervention, tm.intervention);
    // The deep run's trace and logitsAt's carry it too.
    const DeepRun dr = m->deepRun(kPrompt, 1, int64_t(kPrompt.size()), 2);
    EXPECT_EQ(dr.trace.intervention, interventionToJson(iv));
    Trace at;
    m->logitsAt(dr, 2, &at);
    EXPECT_EQ(at.intervention, interventionToJson(iv));
}

TEST_P(InterventionEffectTest, EffectOfAnInterventionAgainstTheBase) {
    Trace tb, tm;
    run(*ref, kPrompt, 4, &tb);
    // Same trace: nothing changed.
    const InterventionEffect same = interventionEffect(tb, tb);
    EXPECT_EQ(same.tokens, int64_t(kPrompt.size()));
    EXPECT_EQ(same.changedTop1, 0);
    EXPECT_EQ(same.meanKl, 0.0);
    for (std::size_t t = 0; t < kPrompt.size(); ++t) {
        EXPECT_EQ(same.kl[t], 0.0);
        EXPECT_EQ(same.routingChanged[t], 0.0);
        EXPECT_EQ(same.topBase[t], same.topMod[t]);
    }
    m->setIntervention(parse(R"({"lora_scale_zero": true, "injection_off_after": 0})"));
    run(*m, kPrompt, 4, &tm);
    const InterventionEffect e = interventionEffect(tb, tm);
    EXPECT_GT(e.meanKl, 0.0);
    // The KL recomputed in double.
    const int64_t V = tb.vocab;
    double sum = 0;
    int64_t changed = 0;
    for (int64_t t = 0; t < e.tokens; ++t) {
        const float* zb = tb.logits.data() + t * V;
        const float* zm = tm.logits.data() + t * V;
        const auto lse = [V](const float* z) {
            double mx = *std::max_element(z, z + V), s = 0;
            for (int64_t i = 0; i < V; ++i)
                s += std::exp(double(z[i]) - mx);
            return mx + std::log(s);
        };
        const double lb = lse(zb), lm = lse(zm);
        double kl = 0;
        for (int64_t i = 0; i < V; ++i)
            kl += std::exp(zb[i] - lb) * ((zb[i] - lb) - (zm[i] - lm));
        EXPECT_NEAR(e.kl[std::size_t(t)], kl, 1e-9 + 1e-9 * kl);
        sum += kl;
        const int32_t top = int32_t(std::max_element(zb, zb + V) - zb),
                      topm = int32_t(std::max_element(zm, zm + V) - zm);
        EXPECT_EQ(e.topBase[std::size_t(t)], top);
        EXPECT_EQ(e.topMod[std::size_t(t)], topm);
        changed += top != topm;
        EXPECT_EQ(e.haltBase[std::size_t(t)], tb.haltLoop[std::size_t(t)]);
        EXPECT_EQ(e.haltMod[std::size_t(t)], tm.haltLoop[std::size_t(t)]);
        EXPECT_GE(e.routingChanged[std::size_t(t)], 0.0);
        EXPECT_LE(e.routingChanged[std::size_t(t)], 1.0);
    }
    EXPECT_EQ(e.changedTop1, changed);
    EXPECT_NEAR(e.meanKl, sum / double(e.tokens), 1e-9);
    // Different tokens: an error.
    Trace other;
    run(*ref, kOther, 4, &other);
    EXPECT_THROW(interventionEffect(tb, other), ArgumentError);
}

// Traces with the top logits only (a large vocabulary's): the top-1 from them, no KL.
TEST(InterventionEffectTopKTest, TopLogitsOnlyGiveTop1ButNoKl) {
    auto ref = openCase("tiny_gqa");
    auto m = openCase("tiny_gqa");
    m->setIntervention(parse(R"({"injection_off_after": 0})"));
    Trace tb, tm;
    run(*ref, kPrompt, 4, &tb);
    run(*m, kPrompt, 4, &tm);
    const InterventionEffect full = interventionEffect(tb, tm);
    tb.logits.clear();
    tm.logits.clear();
    const InterventionEffect e = interventionEffect(tb, tm);
    EXPECT_TRUE(std::isnan(e.meanKl));
    for (std::size_t t = 0; t < kPrompt.size(); ++t) {
        EXPECT_TRUE(std::isnan(e.kl[t]));
        EXPECT_EQ(e.topBase[t], full.topBase[t]);
        EXPECT_EQ(e.topMod[t], full.topMod[t]);
    }
    EXPECT_EQ(e.changedTop1, full.changedTop1);
}

// A patch source given as text is tokenized with the model's tokenizer and then behaves as
// the same ids (the bundled demo model has a tokenizer).
TEST(InterventionPromptTest, PatchPromptIsTokenizedWithTheModelsTokenizer) {
    const std::filesystem::path demo =
        std::filesystem::path(MYTHOS_TEST_DATA_DIR) / ".." / ".." / "resources" / "models" / "demo_mla";
    if (!std::filesystem::exists(demo / "config.json"))
        GTEST_SKIP() << "no bundled demo model at " << demo;
    auto m = Model::open(demo.string());
    const auto tok = Tokenizer::forModel(demo, m->config().vocab_size);
    ASSERT_TRUE(tok.has_value());
    const std::vector<int32_t> ids = tok->encode("b=2;a=1;b");
    ASSERT_GE(ids.size(), 4u);
    const int64_t T = int64_t(ids.size());
    const auto base = m->forward(ids, 1, T, {.nLoops = 3});

    Intervention byText = parse(R"({"patch": {"token": 2, "loop": 1, "prompt": "a=1;b=2;", "source_token": 1}})");
    EXPECT_THROW(m->setIntervention(byText), ArgumentError); // not tokenized yet
    resolvePatchPrompt(byText, *tok);
    EXPECT_EQ(byText.patch->ids, tok->encode("a=1;b=2;"));
    m->setIntervention(byText);
    const auto viaText = m->forward(ids, 1, T, {.nLoops = 3});
    Intervention byIds = parse(R"({"patch": {"token": 2, "loop": 1, "ids": [0], "source_token": 1}})");
    byIds.patch->ids = tok->encode("a=1;b=2;");
    m->setIntervention(byIds);
    EXPECT_EQ(m->forward(ids, 1, T, {.nLoops = 3}), viaText);
    EXPECT_NE(viaText, base);
    // Nothing to resolve: unchanged.
    Intervention plain = byIds;
    resolvePatchPrompt(plain, *tok);
    EXPECT_EQ(plain.patch->ids, byIds.patch->ids);
}

INSTANTIATE_TEST_SUITE_P(Golden, InterventionEffectTest, ::testing::Values("tiny_mla", "tiny_gqa"));

} // namespace
