// The model's schema (one walk yields every tensor's name, shape and slot), the attention
// type enum, model specs, mythos::open with config overrides, and the engine options' JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "mythos/engineoptions.h"
#include "mythos/errors.h"
#include "mythos/modelspec.h"
#include "mythos/schema.h"
#include "mythos/weights.h"

#ifndef MYTHOS_TEST_DATA_DIR
#define MYTHOS_TEST_DATA_DIR "tests/data"
#endif

using namespace mythos;
namespace fs = std::filesystem;

namespace {

const fs::path kDataDir = MYTHOS_TEST_DATA_DIR;

template <typename E>
std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "no error";
}

int64_t numel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    return n;
}

} // namespace

// ---------------------------------------------------------------- attention type

TEST(AttnType, NamesRoundTripAndOthersAreRefused) {
    for (AttnType t : {AttnType::Gqa, AttnType::Mla})
        EXPECT_EQ(parseAttnType(attnTypeName(t)), t);
    EXPECT_EQ(attnTypeName(AttnType::Gqa), "gqa");
    EXPECT_EQ(attnTypeName(AttnType::Mla), "mla");
    for (const char* bad : {"", "GQA", "mha", "mla ", " gqa"})
        EXPECT_FALSE(parseAttnType(bad).has_value()) << bad;
    // config.json keeps the strings.
    Config c = preset("tiny_gqa");
    EXPECT_EQ(configToJson(c).at("attn_type"), "gqa");
    c.attn_type = AttnType::Mla;
    EXPECT_EQ(configToJson(c).at("attn_type"), "mla");
    EXPECT_EQ(parseConfig(R"({"attn_type": "gqa"})", "t").attn_type, AttnType::Gqa);
}

// ---------------------------------------------------------------- schema

// The tensor list as weights.cpp wrote it before the schema: the reference's state_dict.
std::vector<ExpectedTensor> handWrittenTensors(const Config& c) {
    std::vector<ExpectedTensor> out;
    const int64_t D = c.dim, H = c.n_heads;
    auto add = [&](std::string name, std::vector<int64_t> shape, bool optional = false) {
        out.push_back({std::move(name), std::move(shape), optional});
    };
    auto ffn = [&](const std::string& p, int64_t hidden) {
        add(p + "gate.weight", {hidden, D});
        add(p + "up.weight", {hidden, D});
        add(p + "down.weight", {D, hidden});
    };
    auto block = [&](const std::string& p, bool moe) {
        add(p + "attn_norm.weight", {D});
        add(p + "ffn_norm.weight", {D});
        const std::string a = p + "attn.";
        if (c.isMla()) {
            add(a + "q_down.weight", {c.q_lora_rank, D});
            add(a + "q_norm.weight", {c.q_lora_rank});
            add(a + "q_up_nope.weight", {H * c.qk_nope_head_dim, c.q_lora_rank});
            add(a + "q_up_rope.weight", {H * c.qk_rope_head_dim, c.q_lora_rank});
            add(a + "kv_down.weight", {c.kv_lora_rank + c.qk_rope_head_dim, D});
            add(a + "kv_norm.weight", {c.kv_lora_rank});
            add(a + "kv_up.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
            add(a + "wo.weight", {D, H * c.v_head_dim});
        } else {
            const int64_t d = c.headDim();
            add(a + "wq.weight", {H * d, D});
            add(a + "wk.weight", {c.n_kv_heads * d, D});
            add(a + "wv.weight", {c.n_kv_heads * d, D});
            add(a + "wo.weight", {D, H * d});
        }
        if (moe) {
            add(p + "ffn.router_bias", {c.n_experts});
            add(p + "ffn.router.weight", {c.n_experts, D});
            for (int64_t e = 0; e < c.n_experts; ++e)
                ffn(p + "ffn.routed_experts." + std::to_string(e) + ".", c.expert_dim);
            for (int64_t e = 0; e < c.n_shared_experts; ++e)
                ffn(p + "ffn.shared_experts." + std::to_string(e) + ".", c.sharedHidden());
        } else {
            ffn(p + "ffn.", c.denseHidden());
        }
    };
    add("embed.weight", {c.vocab_size, D});
    for (int64_t i = 0; i < c.prelude_layers; ++i)
        block("prelude." + std::to_string(i) + ".", false);
    block("recurrent.block.", true);
    add("recurrent.injection.log_A", {D});
    add("recurrent.injection.log_dt", {1});
    add("recurrent.injection.B", {D});
    add("recurrent.act.halt.weight", {1, D});
    add("recurrent.act.halt.bias", {1});
    add("recurrent.lora.B", {c.lora_rank, D});
    add("recurrent.lora.down.weight", {c.lora_rank, D});
    add("recurrent.lora.scale.weight", {c.max_loop_iters, c.lora_rank});
    add("recurrent.norm.weight", {D});
    for (int64_t i = 0; i < c.coda_layers; ++i)
        block("coda." + std::to_string(i) + ".", false);
    add("norm.weight", {D});
    add("head.weight", {c.vocab_size, D}, true);
    return out;
}

std::vector<Config> schemaCases() {
    std::vector<Config> cases;
    for (const auto& name : {"tiny_mla", "tiny_gqa", "readme_mla", "readme_gqa", "mythos_1b"})
        cases.push_back(preset(name));
    for (const auto& name : {"tiny_mla", "tiny_gqa"})
        cases.push_back(loadConfig(kDataDir / name / "config.json"));
    Config odd = preset("tiny_gqa"); // no prelude, three coda layers, no shared expert
    odd.prelude_layers = 0;
    odd.coda_layers = 3;
    odd.n_shared_experts = 0;
    cases.push_back(odd);
    return cases;
}

TEST(Schema, NamesAndShapesAreTheStateDict) {
    for (const Config& c : schemaCases()) {
        SCOPED_TRACE(configToJson(c).dump());
        const auto want = handWrittenTensors(c);
        const auto got = schemaTensors(c);
        ASSERT_EQ(got.size(), want.size());
        for (std::size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i].name, want[i].name);
            EXPECT_EQ(got[i].shape, want[i].shape) << got[i].name;
            EXPECT_EQ(got[i].kind == TensorKind::Tied, want[i].optional) << got[i].name;
        }
        const auto expected = expectedTensors(c);
        ASSERT_EQ(expected.size(), want.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            EXPECT_EQ(expected[i].name, want[i].name);
            EXPECT_EQ(expected[i].shape, want[i].shape);
            EXPECT_EQ(expected[i].optional, want[i].optional);
        }
    }
}

TEST(Schema, TestDataCheckpointsHoldExactlyTheSchema) {
    for (const auto& name : {"tiny_mla", "tiny_gqa"}) {
        SCOPED_TRACE(name);
        const Checkpoint ck = loadCheckpoint(kDataDir / name);
        std::set<std::string> names;
        for (const auto& t : schemaTensors(ck.config)) {
            if (t.kind == TensorKind::Tied)
                continue;
            names.insert(t.name);
            ASSERT_TRUE(ck.weights.count(t.name)) << t.name;
            EXPECT_EQ(ck.weights.at(t.name).shape, t.shape) << t.name;
        }
        EXPECT_EQ(names.size(), ck.weights.size());
    }
}

TEST(Schema, SlotsNameEveryTensorOnce) {
    for (const Config& c : schemaCases()) {
        SCOPED_TRACE(configToJson(c).dump());
        std::map<std::tuple<int, int, int64_t, int, int64_t>, std::string> seen;
        for (const auto& t : schemaTensors(c)) {
            const auto& s = t.slot;
            const auto key = std::make_tuple(int(s.stage), int(s.field), s.layer, int(s.ffn), s.expert);
            EXPECT_TRUE(seen.emplace(key, t.name).second) << t.name << " and " << seen[key] << " share a slot";
            // The slot says what the name says.
            const std::string& n = t.name;
            switch (s.stage) {
            case Stage::Prelude: EXPECT_EQ(n.rfind("prelude." + std::to_string(s.layer) + ".", 0), 0u) << n; break;
            case Stage::Coda: EXPECT_EQ(n.rfind("coda." + std::to_string(s.layer) + ".", 0), 0u) << n; break;
            case Stage::Recurrent: EXPECT_EQ(n.rfind("recurrent.", 0), 0u) << n; break;
            default: EXPECT_EQ(n.find('.'), n.rfind('.')) << n; // embed.weight, norm.weight, head.weight
            }
            if (s.ffn == Ffn::Routed) {
                EXPECT_NE(n.find("routed_experts." + std::to_string(s.expert) + "."), std::string::npos) << n;
            }
            if (s.ffn == Ffn::Shared) {
                EXPECT_NE(n.find("shared_experts." + std::to_string(s.expert) + "."), std::string::npos) << n;
            }
            if (s.field == Field::Wq) {
                EXPECT_EQ(c.attn_type, AttnType::Gqa);
            }
            if (s.field == Field::KvUp) {
                EXPECT_EQ(c.attn_type, AttnType::Mla);
            }
        }
    }
}

TEST(Schema, CountsEqualTheWalkAndTheParameterCount) {
    for (const Config& c : schemaCases()) {
        SCOPED_TRACE(configToJson(c).dump());
        std::map<std::string, int64_t> perPart;
        int64_t buffers = 0;
        for (const auto& t : schemaTensors(c)) {
            if (t.kind == TensorKind::Parameter)
                perPart[paramPartName(t.slot)] += numel(t.shape);
            else if (t.kind == TensorKind::Buffer)
                buffers += numel(t.shape);
        }
        const SchemaCount count = countSchema(c);
        const ParamCount params = countParameters(c);
        ASSERT_EQ(count.parts.size(), params.parts.size());
        for (std::size_t i = 0; i < count.parts.size(); ++i) {
            EXPECT_FALSE(count.parts[i].count.overflow());
            EXPECT_EQ(count.parts[i].count.value(), perPart[count.parts[i].name]) << count.parts[i].name;
            EXPECT_EQ(params.parts[i].name, count.parts[i].name);
            EXPECT_EQ(params.parts[i].count, count.parts[i].count.value());
        }
        EXPECT_EQ(count.buffers.value(), c.n_experts);
        EXPECT_EQ(buffers, c.n_experts);
        EXPECT_EQ(weightBytesF32(c), 4u * uint64_t(params.total + buffers));
    }
}

TEST(Schema, CountingAHugeConfigWalksNoCopyAndOverflowsCleanly) {
    Config c = preset("tiny_gqa");
    c.n_experts = int64_t(1) << 40; // 2^40 experts: counted, never enumerated
    c.n_experts_per_tok = 2;
    const SchemaCount count = countSchema(c);
    EXPECT_FALSE(count.parts[4].count.overflow());
    EXPECT_EQ(count.parts[4].count.value(), (int64_t(1) << 40) * 3 * c.dim * c.expert_dim);
    c.n_experts = int64_t(1) << 60;
    EXPECT_TRUE(countSchema(c).parts[4].count.overflow());
    EXPECT_FALSE(validate(c).empty());
}

// ---------------------------------------------------------------- model specs

TEST(ModelSpec, ParsesPresetsAndFolders) {
    ModelSpec p = parseModelSpec("preset:tiny_mla:42");
    EXPECT_TRUE(p.isPreset());
    EXPECT_EQ(p.presetName, "tiny_mla");
    EXPECT_EQ(p.seed, 42u);
    EXPECT_EQ(p.text, "preset:tiny_mla:42");
    EXPECT_TRUE(p.folder.empty());
    EXPECT_TRUE(p.tokenizerFolder().empty());
    EXPECT_EQ(p.displayName(), "preset:tiny_mla:42");
    EXPECT_EQ(p.config(), preset("tiny_mla"));

    p = parseModelSpec("preset:readme_gqa");
    EXPECT_EQ(p.presetName, "readme_gqa");
    EXPECT_EQ(p.seed, 0u);
    EXPECT_EQ(parseModelSpec("preset:tiny_gqa:9999999999999999999").seed, 9999999999999999999ull);

    const std::string folder = (kDataDir / "tiny_gqa").string();
    ModelSpec f = parseModelSpec(folder);
    EXPECT_FALSE(f.isPreset());
    EXPECT_EQ(f.folder, fs::path(folder));
    EXPECT_EQ(f.tokenizerFolder(), fs::path(folder));
    EXPECT_EQ(f.displayName(), "tiny_gqa");
    EXPECT_EQ(f.config(), preset("tiny_gqa"));
    // Only the prefix makes a preset: a folder named like one is given with a path.
    f = parseModelSpec("./preset:tiny_mla");
    EXPECT_FALSE(f.isPreset());
    EXPECT_EQ(f.displayName(), "preset:tiny_mla");
    EXPECT_EQ(parseModelSpec("/no/such/folder").displayName(), "folder");
}

TEST(ModelSpec, BadSpecsSayWhatIsWrong) {
    EXPECT_EQ(errorOf<ArgumentError>([] { parseModelSpec(""); }),
              "no model given (a model folder or preset:NAME[:SEED])");
    for (const char* seed : {"", "x", "-1", "1.5", "12345678901234567890", " 1"}) {
        SCOPED_TRACE(seed);
        EXPECT_EQ(errorOf<ArgumentError>([&] { parseModelSpec(std::string("preset:tiny_mla:") + seed); }),
                  std::string("preset seed '") + seed + "' is not a non-negative integer");
    }
    const std::string unknown = errorOf<ConfigError>([] { parseModelSpec("preset:tiny_xyz:1"); });
    EXPECT_EQ(unknown.rfind("unknown preset \"tiny_xyz\"; known presets: ", 0), 0u) << unknown;
    EXPECT_NE(unknown.find("tiny_gqa"), std::string::npos) << unknown;
    EXPECT_EQ(errorOf<ConfigError>([] { parseModelSpec("preset:"); }).rfind("unknown preset \"\"", 0), 0u);
    // A folder is only checked when opened.
    EXPECT_EQ(errorOf<FileError>([] { parseModelSpec("/no/such/folder").config(); }),
              "/no/such/folder: no such model folder");
}

// ---------------------------------------------------------------- open with overrides

TEST(Open, PresetOverridesChangeTheConfigBeforeTheWeightsAreMade) {
    const auto plain = open(parseModelSpec("preset:tiny_mla:3"));
    EXPECT_EQ(plain->name(), "preset:tiny_mla:3");
    EXPECT_EQ(plain->config(), preset("tiny_mla"));
    const auto same = Model::open("preset:tiny_mla:3");
    EXPECT_EQ(same->weightsHash(), plain->weightsHash());

    int64_t calls = 0, last = 0, total = 0;
    const auto big = open(parseModelSpec("preset:tiny_mla:3"), {}, {{"vocab_size", 300}, {"act_threshold", 0.5}},
                          [&](int64_t done, int64_t n) {
                              ++calls;
                              last = done;
                              total = n;
                              return true;
                          });
    EXPECT_EQ(big->config().vocab_size, 300);
    EXPECT_DOUBLE_EQ(big->config().act_threshold, 0.5);
    EXPECT_EQ(big->weights().at("embed.weight").shape, (std::vector<int64_t>{300, 128}));
    EXPECT_GT(calls, 0);
    EXPECT_EQ(last, total);
    // Cancel through progress, as before.
    EXPECT_THROW(open(parseModelSpec("preset:tiny_mla"), {}, nullptr, [](int64_t, int64_t) { return false; }),
                 Cancelled);
}

TEST(Open, CheckpointOverridesMustKeepTheShapes) {
    const ModelSpec spec = parseModelSpec((kDataDir / "tiny_gqa").string());
    const auto plain = open(spec);
    const auto changed = open(spec, EngineOptions{.kvLayout = KvLayout::Compact}, {{"rope_theta", 10000.0}});
    EXPECT_DOUBLE_EQ(changed->config().rope_theta, 10000.0);
    EXPECT_EQ(changed->options().kvLayout, KvLayout::Compact);
    EXPECT_EQ(changed->weightsHash(), plain->weightsHash());
    EXPECT_EQ(changed->name(), spec.text);

    const std::string shape = errorOf<FormatError>([&] { open(spec, {}, {{"vocab_size", 65}}); });
    EXPECT_NE(shape.find("tensor 'embed.weight' has shape [64, 128], the config needs [65, 128]"), std::string::npos)
        << shape;
}

TEST(Open, BadOverridesAreErrorsNamingTheSpec) {
    const ModelSpec spec = parseModelSpec("preset:tiny_mla:1");
    EXPECT_EQ(errorOf<ArgumentError>([&] {
                  open(spec, {}, {{"warp", 9}});
              }),
              "preset:tiny_mla:1: override 'warp' is not a config field");
    EXPECT_EQ(errorOf<ArgumentError>([&] {
                  open(spec, {}, {{"kv_layout", "compact"}});
              }),
              "preset:tiny_mla:1: override 'kv_layout' is not a config field (it is an engine option)");
    EXPECT_NE(errorOf<ArgumentError>([&] { open(spec, {}, nlohmann::json::array({1})); }).find("must be a JSON object"),
              std::string::npos);
    const std::string invalid = errorOf<ConfigError>([&] { open(spec, {}, {{"vocab_size", -1}}); });
    EXPECT_EQ(invalid, "preset:tiny_mla:1 with config overrides: invalid configuration:\n"
                       "  - vocab_size = -1 must be positive");
    EXPECT_NE(errorOf<ConfigError>([&] {
                  open(spec, {}, {{"attn_type", "mha"}});
              }).find("attn_type = \"mha\" must be \"gqa\" or \"mla\""),
              std::string::npos);
    EXPECT_EQ(applyConfigOverrides(preset("tiny_gqa"), nlohmann::json::object(), "x"), preset("tiny_gqa"));
    EXPECT_EQ(applyConfigOverrides(preset("tiny_gqa"), {{"attn_type", "mla"}}, "x").attn_type, AttnType::Mla);
}

// ---------------------------------------------------------------- engine options

TEST(EngineOptionsJson, RoundTripsEveryOption) {
    for (bool remainder : {false, true})
        for (KvLayout layout : {KvLayout::Reference, KvLayout::Compact})
            for (WeightType type : {WeightType::F32, WeightType::BF16}) {
                const EngineOptions o{.actFinalRemainder = remainder, .kvLayout = layout, .weightType = type};
                const nlohmann::json j = engineOptionsToJson(o);
                EXPECT_EQ(j.size(), 3u);
                EXPECT_EQ(engineOptionsFromJson(j), o) << j.dump();
                EXPECT_EQ(engineOptionsFromJson(nlohmann::json::parse(j.dump())), o);
            }
    EXPECT_EQ(engineOptionsToJson({}),
              nlohmann::json({{"act_final_remainder", false}, {"kv_layout", "reference"}, {"weight_type", "f32"}}));
    // A subset changes only its keys; threads is not part of the JSON form.
    const EngineOptions base{.threads = 3, .weightType = WeightType::BF16};
    const EngineOptions got = engineOptionsFromJson({{"kv_layout", "compact"}}, base);
    EXPECT_EQ(got.kvLayout, KvLayout::Compact);
    EXPECT_EQ(got.threads, 3);
    EXPECT_EQ(got.weightType, WeightType::BF16);
    EXPECT_EQ(engineOptionsFromJson(nullptr, base), base);
    EXPECT_EQ(describeEngineOptions(EngineOptions{.kvLayout = KvLayout::Compact, .weightType = WeightType::BF16}),
              "kv_layout compact, act_final_remainder off, weights bf16");
}

TEST(EngineOptionsJson, BadValuesAreArgumentErrors) {
    auto bad = [](const nlohmann::json& j) { return errorOf<ArgumentError>([&] { engineOptionsFromJson(j); }); };
    EXPECT_EQ(bad({{"act_final_remainder", "yes"}}), "act_final_remainder must be true or false");
    EXPECT_EQ(bad({{"kv_layout", 3}}), "kv_layout must be \"reference\" or \"compact\"");
    EXPECT_NE(bad({{"kv_layout", "sideways"}}).find("unknown KV layout 'sideways'"), std::string::npos);
    EXPECT_EQ(bad({{"weight_type", "fp8"}}), "unknown weight type 'fp8' (use f32 or bf16)");
    EXPECT_EQ(bad({{"threads", 2}}), "'threads' is not an engine option (act_final_remainder, kv_layout, weight_type)");
    EXPECT_NE(bad(nlohmann::json::array()).find("must be a JSON object"), std::string::npos);
}

TEST(EngineOptionsJson, TraceRecordsTheJsonForm) {
    const EngineOptions o{.actFinalRemainder = true, .kvLayout = KvLayout::Compact};
    auto model = open(parseModelSpec("preset:tiny_gqa:1"), o);
    Trace tr;
    model->forward({1, 2, 3}, 1, 3, {.nLoops = 2, .trace = &tr});
    EXPECT_EQ(tr.options, engineOptionsToJson(o));
    EXPECT_EQ(engineOptionsFromJson(tr.options), o);
}
