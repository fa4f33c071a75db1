#include "mythos/config.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mythos/checked.h"
#include "mythos/errors.h"

#ifndef MYTHOS_TEST_DATA_DIR
#define MYTHOS_TEST_DATA_DIR "tests/data"
#endif
#ifndef MYTHOS_GOLDEN_DIR
#define MYTHOS_GOLDEN_DIR "../shared/golden"
#endif

namespace {

using mythos::Config;
using mythos::ConfigError;
namespace fs = std::filesystem;

const fs::path kDataDir = MYTHOS_TEST_DATA_DIR;
const fs::path kGoldenDir = MYTHOS_GOLDEN_DIR;
const std::vector<std::string> kGoldenCases = {"tiny_mla", "tiny_gqa", "readme_mla", "readme_gqa"};

std::string readFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    EXPECT_TRUE(in) << "cannot open " << p;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v)
        s += "\n  " + x;
    return s;
}

// The ConfigError message of parsing `text`, or a failure when nothing is thrown.
std::string parseError(const std::string& text, const std::string& source = "test.json") {
    try {
        mythos::parseConfig(text, source);
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no ConfigError for " << text;
    return {};
}

size_t countProblems(const std::string& message) {
    size_t n = 0;
    for (size_t pos = message.find("\n  - "); pos != std::string::npos; pos = message.find("\n  - ", pos + 1))
        ++n;
    return n;
}

void expectSingleProblem(const Config& cfg, const std::string& expected) {
    const auto problems = mythos::validate(cfg);
    ASSERT_EQ(problems.size(), 1u) << "expected only \"" << expected << "\", got:" << joined(problems);
    EXPECT_NE(problems[0].find(expected), std::string::npos)
        << "\"" << problems[0] << "\" does not contain \"" << expected << "\"";
}

void expectValid(const Config& cfg) {
    const auto problems = mythos::validate(cfg);
    EXPECT_TRUE(problems.empty()) << joined(problems);
}

// Field-by-field comparison, so that a mismatch names the field.
void expectSameFields(const Config& got, const Config& want) {
    const auto a = mythos::configToJson(got);
    const auto b = mythos::configToJson(want);
    for (const auto& [key, value] : b.items())
        EXPECT_EQ(a.at(key), value) << "field " << key;
    EXPECT_EQ(got, want);
}

// ---------------------------------------------------------------- defaults

TEST(ConfigDefaults, MatchTheReferenceDataclass) {
    const Config c;
    EXPECT_EQ(c.vocab_size, 32000);
    EXPECT_EQ(c.dim, 2048);
    EXPECT_EQ(c.n_heads, 16);
    EXPECT_EQ(c.n_kv_heads, 4);
    EXPECT_EQ(c.max_seq_len, 4096);
    EXPECT_EQ(c.max_loop_iters, 16);
    EXPECT_EQ(c.prelude_layers, 2);
    EXPECT_EQ(c.coda_layers, 2);
    EXPECT_EQ(mythos::attnTypeName(c.attn_type), "mla");
    EXPECT_EQ(c.kv_lora_rank, 512);
    EXPECT_EQ(c.q_lora_rank, 1536);
    EXPECT_EQ(c.qk_rope_head_dim, 64);
    EXPECT_EQ(c.qk_nope_head_dim, 128);
    EXPECT_EQ(c.v_head_dim, 128);
    EXPECT_EQ(c.n_experts, 64);
    EXPECT_EQ(c.n_shared_experts, 2);
    EXPECT_EQ(c.n_experts_per_tok, 4);
    EXPECT_EQ(c.expert_dim, 512);
    EXPECT_EQ(c.act_threshold, 0.99);
    EXPECT_EQ(c.rope_theta, 500000.0);
    EXPECT_EQ(c.lora_rank, 16);
    EXPECT_EQ(c.max_output_tokens, 4096);
    EXPECT_EQ(c.dropout, 0.0);
    expectValid(c);
}

TEST(ConfigDefaults, EmptyObjectGivesTheDefaults) {
    EXPECT_EQ(mythos::parseConfig("{}", "empty.json"), Config{});
    EXPECT_EQ(mythos::configFromJson(nlohmann::json::object(), "empty"), Config{});
}

// ---------------------------------------------------------------- parsing

TEST(ConfigParse, GoldenConfigsLoadAndEqualThePresets) {
    for (const auto& name : kGoldenCases) {
        SCOPED_TRACE(name);
        const Config loaded = mythos::loadConfig(kGoldenDir / name / "config.json");
        expectSameFields(loaded, mythos::preset(name));
        // golden.json repeats the config.
        const auto golden = nlohmann::json::parse(readFile(kGoldenDir / name / "golden.json"));
        EXPECT_EQ(mythos::configFromJson(golden.at("config"), name), loaded);
    }
}

TEST(ConfigParse, TestDataConfigsEqualTheTinyPresets) {
    for (const std::string name : {"tiny_mla", "tiny_gqa"}) {
        SCOPED_TRACE(name);
        expectSameFields(mythos::loadConfig(kDataDir / name / "config.json"), mythos::preset(name));
    }
}

TEST(ConfigParse, ReadmePresetsMatchTheExampleScript) {
    // example.py: MLA with n_kv_heads 8 and small latent dims, GQA with n_kv_heads 2
    // and the MLA fields left at their defaults.
    const Config mla = mythos::preset("readme_mla");
    const Config gqa = mythos::preset("readme_gqa");
    EXPECT_EQ(mythos::attnTypeName(mla.attn_type), "mla");
    EXPECT_EQ(mla.n_kv_heads, 8);
    EXPECT_EQ(mla.kv_lora_rank, 32);
    EXPECT_EQ(mla.q_lora_rank, 64);
    EXPECT_EQ(mla.qk_rope_head_dim, 16);
    EXPECT_EQ(mla.qk_nope_head_dim, 16);
    EXPECT_EQ(mla.v_head_dim, 16);
    EXPECT_EQ(mythos::attnTypeName(gqa.attn_type), "gqa");
    EXPECT_EQ(gqa.n_kv_heads, 2);
    EXPECT_EQ(gqa.kv_lora_rank, Config{}.kv_lora_rank);
    EXPECT_EQ(gqa.q_lora_rank, Config{}.q_lora_rank);
    EXPECT_EQ(gqa.qk_rope_head_dim, Config{}.qk_rope_head_dim);
    EXPECT_EQ(gqa.qk_nope_head_dim, Config{}.qk_nope_head_dim);
    EXPECT_EQ(gqa.v_head_dim, Config{}.v_head_dim);
    for (const Config* c : {&mla, &gqa}) {
        EXPECT_EQ(c->vocab_size, 1000);
        EXPECT_EQ(c->dim, 256);
        EXPECT_EQ(c->n_heads, 8);
        EXPECT_EQ(c->max_seq_len, 128);
        EXPECT_EQ(c->max_loop_iters, 4);
        EXPECT_EQ(c->prelude_layers, 1);
        EXPECT_EQ(c->coda_layers, 1);
        EXPECT_EQ(c->n_experts, 8);
        EXPECT_EQ(c->n_shared_experts, 1);
        EXPECT_EQ(c->n_experts_per_tok, 2);
        EXPECT_EQ(c->expert_dim, 64);
        EXPECT_EQ(c->lora_rank, 8);
    }
}

TEST(ConfigParse, ToJsonTextReproducesTheReferenceFilesByteForByte) {
    for (const auto& name : kGoldenCases) {
        SCOPED_TRACE(name);
        EXPECT_EQ(mythos::configToJsonText(mythos::preset(name)), readFile(kGoldenDir / name / "config.json"));
    }
    for (const std::string name : {"tiny_mla", "tiny_gqa"}) {
        SCOPED_TRACE(name);
        EXPECT_EQ(mythos::configToJsonText(mythos::preset(name)), readFile(kDataDir / name / "config.json"));
    }
}

TEST(ConfigParse, UnknownKeysAreIgnoredAndMissingKeysTakeDefaults) {
    const Config c = mythos::parseConfig(
        R"({"dim": 256, "n_heads": 8, "future_field": [1, 2], "comment": "x", "DIM": "no"})", "partial.json");
    Config want;
    want.dim = 256;
    want.n_heads = 8;
    EXPECT_EQ(c, want);
}

TEST(ConfigParse, IntegersAreAcceptedForFloatFields) {
    const Config c = mythos::parseConfig(R"({"rope_theta": 10000, "act_threshold": 1, "dropout": 0})", "ints.json");
    EXPECT_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.act_threshold, 1.0);
    EXPECT_EQ(c.dropout, 0.0);
}

TEST(ConfigParse, LargestInt64IsAccepted) {
    const Config c = mythos::parseConfig(R"({"max_output_tokens": 9223372036854775807})", "big.json");
    EXPECT_EQ(c.max_output_tokens, std::numeric_limits<int64_t>::max());
}

TEST(ConfigParse, EachWronglyTypedValueIsReportedAlone) {
    struct Case {
        std::string json;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {R"({"dim": "2048"})", R"(dim must be an integer, got the string "2048")"},
        {R"({"dim": 2.5})", "dim must be an integer, got 2.5"},
        {R"({"dim": 2048.0})", "dim must be an integer, got 2048.0"},
        {R"({"n_heads": true})", "n_heads must be an integer, got true"},
        {R"({"vocab_size": null})", "vocab_size must be an integer, got null"},
        {R"({"expert_dim": [64]})", "expert_dim must be an integer, got an array"},
        {R"({"lora_rank": {}})", "lora_rank must be an integer, got an object"},
        {R"({"max_seq_len": 9223372036854775808})",
         "max_seq_len = 9223372036854775808 does not fit in a 64-bit integer"},
        {R"({"max_seq_len": 99999999999999999999999})", "max_seq_len = "},
        {R"({"prelude_layers": -9223372036854775809})", "does not fit in a 64-bit integer"},
        {R"({"attn_type": 3})", R"(attn_type must be a string ("gqa" or "mla"), got 3)"},
        {R"({"attn_type": null})", "attn_type must be a string"},
        {R"({"act_threshold": "0.99"})", R"(act_threshold must be a number, got the string "0.99")"},
        {R"({"rope_theta": null})", "rope_theta must be a number, got null"},
        {R"({"dropout": false})", "dropout must be a number, got false"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.json);
        const std::string msg = parseError(c.json, "types.json");
        EXPECT_EQ(msg.rfind("types.json: invalid configuration:\n  - ", 0), 0u) << msg;
        EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
        EXPECT_EQ(countProblems(msg), 1u) << msg;
    }
    EXPECT_NE(parseError(R"({"max_seq_len": 99999999999999999999999})").find("does not fit"), std::string::npos);
}

TEST(ConfigParse, TypeProblemsAndRuleViolationsAreReportedTogether) {
    const std::string msg = parseError(
        R"({"dim": "x", "n_heads": 2.5, "dropout": null, "n_experts_per_tok": 100, "coda_layers": -1})", "many.json");
    EXPECT_EQ(msg.rfind("many.json: invalid configuration:\n", 0), 0u) << msg;
    EXPECT_EQ(countProblems(msg), 5u) << msg;
    EXPECT_NE(msg.find("dim must be an integer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("n_heads must be an integer, got 2.5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dropout must be a number, got null"), std::string::npos) << msg;
    EXPECT_NE(msg.find("n_experts_per_tok = 100 is larger than n_experts = 64"), std::string::npos) << msg;
    EXPECT_NE(msg.find("coda_layers = -1 must not be negative"), std::string::npos) << msg;
    // The defaults standing in for the rejected dim / n_heads are not judged.
    EXPECT_EQ(msg.find("divisible"), std::string::npos) << msg;
}

TEST(ConfigParse, RulesReadingARejectedValueAreSkipped) {
    // With the default n_heads = 16 standing in for "4", dim = 130 would look wrong.
    std::string msg = parseError(R"({"dim": 130, "n_heads": "4"})");
    EXPECT_EQ(countProblems(msg), 1u) << msg;
    EXPECT_NE(msg.find(R"(n_heads must be an integer, got the string "4")"), std::string::npos) << msg;
    msg = parseError(R"({"n_experts": "128", "n_experts_per_tok": 100})");
    EXPECT_EQ(countProblems(msg), 1u) << msg;
    msg = parseError(R"({"n_experts": 128.0, "n_experts_per_tok": 100, "dim": 130})");
    EXPECT_EQ(countProblems(msg), 2u) << msg;
    EXPECT_NE(msg.find("dim = 130 is not divisible by n_heads = 16"), std::string::npos) << msg;
}

TEST(ConfigParse, RejectsTextThatIsNotAJsonObject) {
    for (const std::string text : {"", "not json", "{\"dim\": 1,}", "{\"dim\": 12", "{} {}"}) {
        SCOPED_TRACE(text);
        const std::string msg = parseError(text, "bad.json");
        EXPECT_EQ(msg.rfind("bad.json: not valid JSON: ", 0), 0u) << msg;
        EXPECT_EQ(msg.find("[json.exception"), std::string::npos) << msg;
    }
    for (const std::string text : {"[1, 2]", "42", "\"mla\"", "null"}) {
        SCOPED_TRACE(text);
        const std::string msg = parseError(text, "bad.json");
        EXPECT_EQ(msg.rfind("bad.json: a configuration must be a JSON object", 0), 0u) << msg;
    }
    EXPECT_THROW(mythos::configFromJson(nlohmann::json::array(), "arr"), ConfigError);
}

TEST(ConfigParse, AParsedConfigIsValidated) {
    EXPECT_EQ(parseError(R"({"dim": 130})", "config.json"),
              "config.json: invalid configuration:\n  - dim = 130 is not divisible by n_heads = 16");
}

TEST(ConfigLoad, ErrorsNameTheFile) {
    const fs::path dir = fs::path(testing::TempDir()) / "mythos_test_config";
    fs::create_directories(dir);
    const fs::path bad = dir / "bad_config.json";
    {
        std::ofstream out(bad);
        out << R"({"dim": 2048, "n_heads": 3})";
    }
    try {
        mythos::loadConfig(bad);
        ADD_FAILURE() << "no ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()).rfind(bad.string() + ": invalid configuration:", 0), 0u) << e.what();
    }
    const fs::path good = dir / "good_config.json";
    {
        std::ofstream out(good);
        out << mythos::configToJsonText(mythos::preset("readme_gqa"));
    }
    EXPECT_EQ(mythos::loadConfig(good), mythos::preset("readme_gqa"));
    EXPECT_THROW(mythos::loadConfig(dir / "does_not_exist.json"), mythos::FileError);
    fs::remove_all(dir);
}

// ---------------------------------------------------------------- validation

TEST(ConfigValidate, AllPresetsAreValid) {
    for (const auto& name : mythos::presetNames()) {
        SCOPED_TRACE(name);
        expectValid(mythos::preset(name));
    }
}

TEST(ConfigValidate, EverySizeMustBePositive) {
    struct Size {
        const char* name;
        int64_t Config::*member;
        const char* base; // a preset where the field is used
    };
    const std::vector<Size> sizes = {
        {"vocab_size", &Config::vocab_size, "tiny_gqa"},
        {"dim", &Config::dim, "tiny_gqa"},
        {"n_heads", &Config::n_heads, "tiny_mla"},
        {"n_kv_heads", &Config::n_kv_heads, "tiny_gqa"},
        {"max_seq_len", &Config::max_seq_len, "tiny_mla"},
        {"max_loop_iters", &Config::max_loop_iters, "tiny_mla"},
        {"kv_lora_rank", &Config::kv_lora_rank, "tiny_mla"},
        {"q_lora_rank", &Config::q_lora_rank, "tiny_mla"},
        {"qk_rope_head_dim", &Config::qk_rope_head_dim, "tiny_mla"},
        {"qk_nope_head_dim", &Config::qk_nope_head_dim, "tiny_mla"},
        {"v_head_dim", &Config::v_head_dim, "tiny_mla"},
        {"n_experts", &Config::n_experts, "tiny_gqa"},
        {"n_experts_per_tok", &Config::n_experts_per_tok, "tiny_gqa"},
        {"expert_dim", &Config::expert_dim, "tiny_mla"},
        {"lora_rank", &Config::lora_rank, "tiny_gqa"},
    };
    for (const auto& s : sizes) {
        for (const int64_t bad : {int64_t{0}, int64_t{-3}}) {
            SCOPED_TRACE(std::string(s.name) + " = " + std::to_string(bad));
            Config c = mythos::preset(s.base);
            c.*s.member = bad;
            expectSingleProblem(c, std::string(s.name) + " = " + std::to_string(bad) + " must be positive");
            EXPECT_THROW(mythos::countParameters(c), ConfigError);
        }
    }
}

TEST(ConfigValidate, LayerAndSharedExpertCountsMustNotBeNegative) {
    for (auto member : {&Config::prelude_layers, &Config::coda_layers, &Config::n_shared_experts}) {
        Config c = mythos::preset("tiny_mla");
        c.*member = -1;
        const auto problems = mythos::validate(c);
        ASSERT_EQ(problems.size(), 1u) << joined(problems);
        EXPECT_NE(problems[0].find(" = -1 must not be negative"), std::string::npos) << problems[0];
        c.*member = 0;
        expectValid(c);
    }
    Config c = mythos::preset("tiny_mla");
    c.prelude_layers = -2;
    expectSingleProblem(c, "prelude_layers = -2 must not be negative");
    c = mythos::preset("tiny_mla");
    c.coda_layers = -2;
    expectSingleProblem(c, "coda_layers = -2 must not be negative");
    c = mythos::preset("tiny_mla");
    c.n_shared_experts = -2;
    expectSingleProblem(c, "n_shared_experts = -2 must not be negative");
}

TEST(ConfigValidate, AttentionTypeMustBeGqaOrMla) {
    // The struct holds only the two types: any other string is config.json's problem.
    for (const std::string bad : {"mha", "", "GQA", "mla "}) {
        nlohmann::json j = mythos::configToJson(mythos::preset("tiny_gqa"));
        j["attn_type"] = bad;
        const std::string msg = parseError(j.dump());
        EXPECT_EQ(countProblems(msg), 1u) << msg;
        EXPECT_NE(msg.find("attn_type = \"" + bad + "\" must be \"gqa\" or \"mla\""), std::string::npos) << msg;
    }
}

TEST(ConfigValidate, DimMustBeDivisibleByHeads) {
    for (const std::string base : {"tiny_gqa", "tiny_mla"}) {
        Config c = mythos::preset(base);
        c.dim = 130;
        expectSingleProblem(c, "dim = 130 is not divisible by n_heads = 4");
    }
}

TEST(ConfigValidate, GqaHeadsMustBeDivisibleByKvHeads) {
    Config c = mythos::preset("tiny_gqa");
    c.n_kv_heads = 3;
    expectSingleProblem(c, "n_heads = 4 is not divisible by n_kv_heads = 3");
    c.n_kv_heads = 8; // more KV heads than query heads
    expectSingleProblem(c, "n_heads = 4 is not divisible by n_kv_heads = 8");
    c.n_kv_heads = 4;
    expectValid(c);
    c.n_kv_heads = 1;
    expectValid(c);
}

TEST(ConfigValidate, GqaHeadWidthMustBeEven) {
    Config c = mythos::preset("tiny_gqa");
    c.dim = 144; // 16 heads of width 9; dim / 8 = 18 is fine
    c.n_heads = 16;
    expectSingleProblem(c, "the GQA head width dim / n_heads = 9 must be even");
    c.attn_type = mythos::AttnType::Mla; // MLA does not use dim / n_heads as a RoPE width
    expectValid(c);
}

TEST(ConfigValidate, MlaRopeWidthMustBeEven) {
    Config c = mythos::preset("tiny_mla");
    c.qk_rope_head_dim = 15;
    expectSingleProblem(c, "qk_rope_head_dim = 15 must be even");
    c.attn_type = mythos::AttnType::Gqa;
    expectValid(c);
}

TEST(ConfigValidate, MlaIgnoresKvHeadsAndGqaIgnoresLatentDims) {
    for (const int64_t kv : {int64_t{0}, int64_t{-1}, int64_t{3}, int64_t{64}}) {
        Config c = mythos::preset("tiny_mla");
        c.n_kv_heads = kv;
        expectValid(c);
        EXPECT_EQ(mythos::countParameters(c).total, 370882);
    }
    Config c = mythos::preset("tiny_gqa");
    c.kv_lora_rank = 0;
    c.q_lora_rank = -1;
    c.qk_rope_head_dim = 15;
    c.qk_nope_head_dim = 0;
    c.v_head_dim = -7;
    expectValid(c);
    EXPECT_EQ(mythos::countParameters(c).total, 413602);
}

TEST(ConfigValidate, ExpertsPerTokenAtMostExperts) {
    Config c = mythos::preset("tiny_gqa");
    c.n_experts_per_tok = 9;
    expectSingleProblem(c, "n_experts_per_tok = 9 is larger than n_experts = 8");
    c.n_experts_per_tok = 8;
    expectValid(c);
}

TEST(ConfigValidate, AnyLoopIndexWidthIsAccepted) {
    // The reference slices cat([sin, cos])[:dim / 8], so odd and zero widths run there too.
    Config c = mythos::preset("tiny_gqa");
    c.dim = 200; // dim / 8 = 25
    expectValid(c);
    c.dim = 8;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    expectValid(c);
    c.dim = 4;
    expectValid(c);
}

TEST(ConfigValidate, ActThresholdInHalfOpenUnitInterval) {
    for (const double bad : {0.0, -0.5, 1.0001, std::nan("")}) {
        Config c = mythos::preset("tiny_mla");
        c.act_threshold = bad;
        expectSingleProblem(c, "must be in (0, 1]");
    }
    Config c = mythos::preset("tiny_mla");
    c.act_threshold = 1.5;
    expectSingleProblem(c, "act_threshold = 1.5 must be in (0, 1]");
    for (const double good : {1.0, 0.5, 1e-9}) {
        c.act_threshold = good;
        expectValid(c);
    }
}

TEST(ConfigValidate, RopeThetaPositiveAndFinite) {
    for (const double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::nan("")}) {
        Config c = mythos::preset("tiny_gqa");
        c.rope_theta = bad;
        expectSingleProblem(c, "must be a positive finite number");
    }
    Config c = mythos::preset("tiny_gqa");
    c.rope_theta = -2.5;
    expectSingleProblem(c, "rope_theta = -2.5 must be a positive finite number");
    c.rope_theta = 1.0;
    expectValid(c);
}

TEST(ConfigValidate, DropoutInUnitInterval) {
    for (const double bad : {-0.1, 1.0, 2.0, std::nan("")}) {
        Config c = mythos::preset("tiny_gqa");
        c.dropout = bad;
        expectSingleProblem(c, "must be in [0, 1)");
    }
    Config c = mythos::preset("tiny_gqa");
    c.dropout = 1.0;
    expectSingleProblem(c, "dropout = 1 must be in [0, 1)");
    c.dropout = 0.5;
    expectValid(c);
}

TEST(ConfigValidate, MaxOutputTokensNotNegative) {
    Config c = mythos::preset("tiny_gqa");
    c.max_output_tokens = -1;
    expectSingleProblem(c, "max_output_tokens = -1 must not be negative");
    c.max_output_tokens = 0;
    expectValid(c);
}

TEST(ConfigValidate, EveryProblemIsReportedInOneMessage) {
    Config c = mythos::preset("tiny_gqa");
    c.dim = 130;
    c.n_kv_heads = 3;
    c.n_experts_per_tok = 9;
    c.act_threshold = 2.0;
    c.dropout = 1.0;
    EXPECT_EQ(mythos::validate(c).size(), 5u) << joined(mythos::validate(c));
    try {
        mythos::validateOrThrow(c, "cfg.json");
        ADD_FAILURE() << "no ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "cfg.json: invalid configuration:\n"
                  "  - dim = 130 is not divisible by n_heads = 4\n"
                  "  - n_heads = 4 is not divisible by n_kv_heads = 3 (each key/value head serves "
                  "n_heads / n_kv_heads query heads)\n"
                  "  - n_experts_per_tok = 9 is larger than n_experts = 8 (the router picks that "
                  "many distinct experts)\n"
                  "  - act_threshold = 2 must be in (0, 1]\n"
                  "  - dropout = 1 must be in [0, 1)");
    }
    EXPECT_NO_THROW(mythos::validateOrThrow(mythos::preset("tiny_gqa"), "cfg.json"));
}

TEST(ConfigValidate, OverflowingSizesAreErrorsNotUndefinedBehaviour) {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    const std::vector<std::pair<std::string, std::function<void(Config&)>>> cases = {
        {"dim = 2^40", [](Config& c) { c.dim = int64_t{1} << 40; }},
        {"vocab_size = max", [](Config& c) { c.vocab_size = kMax; }},
        {"expert_dim = max / 2", [](Config& c) { c.expert_dim = kMax / 2; }},
        {"n_experts = max", [](Config& c) { c.n_experts = kMax; }},
        {"prelude_layers = max", [](Config& c) { c.prelude_layers = kMax; }},
        {"max_loop_iters = max", [](Config& c) { c.max_loop_iters = kMax; }},
        {"lora_rank = 2^62", [](Config& c) { c.lora_rank = int64_t{1} << 62; }},
        {"n_shared_experts = 2^60", [](Config& c) { c.n_shared_experts = int64_t{1} << 60; }},
        // Each of prelude and coda fits (7 * 2^60), their sum does not.
        {"total", [](Config& c) { c.prelude_layers = c.coda_layers = int64_t{1} << 46; }},
        // The count fits (7 * 2^59 + ...), 4 bytes per parameter do not.
        {"bytes", [](Config& c) { c.prelude_layers = c.coda_layers = int64_t{1} << 44; }},
    };
    for (const auto& [label, mutate] : cases) {
        SCOPED_TRACE(label);
        Config c = mythos::preset("tiny_gqa");
        mutate(c);
        expectSingleProblem(c, "the sizes are too large");
        EXPECT_THROW(mythos::countParameters(c), ConfigError);
        EXPECT_THROW(mythos::weightBytesF32(c), ConfigError);
    }
    Config c = mythos::preset("tiny_mla");
    c.max_seq_len = kMax;
    expectSingleProblem(c, "max_seq_len = 9223372036854775807 is too large");
    c = mythos::preset("tiny_mla");
    c.qk_rope_head_dim = int64_t{1} << 62;
    EXPECT_FALSE(mythos::validate(c).empty());

    // The parts fit but the per-part sum check is what catches it.
    c = mythos::preset("tiny_gqa");
    c.prelude_layers = c.coda_layers = int64_t{1} << 46;
    EXPECT_NE(mythos::validate(c)[0].find("fp32 weight size does not fit"), std::string::npos);
}

TEST(ConfigValidate, MemoryBudget) {
    const Config mla = mythos::preset("readme_mla");
    const uint64_t bytes = mythos::weightBytesF32(mla);
    EXPECT_EQ(bytes, 4u * (1538626u + 8u));
    expectValid(mla);
    EXPECT_TRUE(mythos::validate(mla, bytes).empty());
    EXPECT_TRUE(mythos::validate(mla, 0).empty()); // 0 = no limit

    auto problems = mythos::validate(mla, 1u << 20);
    ASSERT_EQ(problems.size(), 1u) << joined(problems);
    EXPECT_EQ(problems[0], "the model needs 5.87 MiB of fp32 weights, more than the 1.00 MiB available");

    // When both round to the same text, the exact byte counts are added.
    problems = mythos::validate(mla, bytes - 1);
    ASSERT_EQ(problems.size(), 1u) << joined(problems);
    EXPECT_NE(problems[0].find("(" + std::to_string(bytes) + " bytes)"), std::string::npos) << problems[0];

    const Config big = mythos::preset("mythos_1b");
    EXPECT_TRUE(mythos::validate(big, 4ull << 30).empty());
    problems = mythos::validate(big, 2ull << 30);
    ASSERT_EQ(problems.size(), 1u) << joined(problems);
    EXPECT_EQ(problems[0], "the model needs 3.96 GiB of fp32 weights, more than the 2.00 GiB available");

    problems = mythos::validate(mythos::preset("mythos_1t"), 64ull << 30);
    ASSERT_EQ(problems.size(), 1u) << joined(problems);
    EXPECT_EQ(problems[0], "the model needs 3.64 TiB of fp32 weights, more than the 64.00 GiB available");

    try {
        mythos::validateOrThrow(big, "big.json", 1000);
        ADD_FAILURE() << "no ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), "big.json: invalid configuration:\n  - the model needs 3.96 GiB "
                                         "of fp32 weights, more than the 1000 bytes available");
    }
}

// ---------------------------------------------------------------- presets

TEST(ConfigPresets, NamesInOrder) {
    const std::vector<std::string> want = {"mythos_1b",   "mythos_3b",   "mythos_10b", "mythos_50b",
                                           "mythos_100b", "mythos_500b", "mythos_1t",  "readme_mla",
                                           "readme_gqa",  "tiny_mla",    "tiny_gqa"};
    EXPECT_EQ(mythos::presetNames(), want);
}

TEST(ConfigPresets, UnknownNameListsTheKnownOnes) {
    try {
        mythos::preset("mythos_2b");
        ADD_FAILURE() << "no ConfigError";
    } catch (const ConfigError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("mythos_2b"), std::string::npos) << msg;
        for (const auto& name : mythos::presetNames())
            EXPECT_NE(msg.find(name), std::string::npos) << name << " missing in: " << msg;
    }
    EXPECT_THROW(mythos::preset(""), ConfigError);
    EXPECT_THROW(mythos::preset("MYTHOS_1B"), ConfigError);
}

TEST(ConfigPresets, VariantsMatchTheReference) {
    // One row per variant: the fields variants.py sets (the others keep the defaults).
    struct Row {
        const char* name;
        int64_t vocab, dim, heads, kvHeads, seq, loops, prelude, coda, kvRank, qRank, rope, nope, v, experts, shared,
            perTok, expertDim;
        double theta;
        int64_t lora, maxOut;
    };
    const std::vector<Row> rows = {
        {"mythos_1b", 32000, 2048, 16, 4, 4096, 16, 2, 2, 256, 512, 32, 64, 64, 64, 2, 4, 2048, 500000.0, 8, 4096},
        {"mythos_3b", 32000, 3072, 24, 6, 4096, 16, 2, 2, 384, 768, 32, 96, 96, 64, 2, 4, 4096, 500000.0, 8, 4096},
        {"mythos_10b", 32000, 4096, 32,  8, 8192, 24,   2,        2,  512, 1024,
         64,           128,   128,  128, 2, 4,    5632, 500000.0, 16, 4096},
        {"mythos_50b", 32000, 6144, 48,  8, 8192, 32,   3,        3,  512, 1536,
         64,           128,   128,  256, 4, 4,    9728, 500000.0, 32, 4096},
        {"mythos_100b", 32000, 8192, 64, 8, 1000000, 32,        4,  4,     512, 2048, 64,
         128,           128,   256,  4,  8, 13568,   1000000.0, 64, 131072},
        {"mythos_500b", 100000, 12288, 96, 16, 1000000, 48,        4,   4,     1024, 3072, 64,
         128,           128,    512,   8,  8,  23040,   1000000.0, 128, 131072},
        {"mythos_1t", 100000, 16384, 128, 16, 1000000, 64,    6,         6,   1024,  4096,
         64,          128,    128,   512, 8,  8,       34560, 2000000.0, 256, 131072},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        const Config want{.vocab_size = r.vocab,
                          .dim = r.dim,
                          .n_heads = r.heads,
                          .n_kv_heads = r.kvHeads,
                          .max_seq_len = r.seq,
                          .max_loop_iters = r.loops,
                          .prelude_layers = r.prelude,
                          .coda_layers = r.coda,
                          .attn_type = mythos::AttnType::Mla,
                          .kv_lora_rank = r.kvRank,
                          .q_lora_rank = r.qRank,
                          .qk_rope_head_dim = r.rope,
                          .qk_nope_head_dim = r.nope,
                          .v_head_dim = r.v,
                          .n_experts = r.experts,
                          .n_shared_experts = r.shared,
                          .n_experts_per_tok = r.perTok,
                          .expert_dim = r.expertDim,
                          .act_threshold = 0.99,
                          .rope_theta = r.theta,
                          .lora_rank = r.lora,
                          .max_output_tokens = r.maxOut,
                          .dropout = 0.0};
        expectSameFields(mythos::preset(r.name), want);
    }
}

// ---------------------------------------------------------------- parameter counts

TEST(ConfigParams, GoldenCasesMatchTheReferenceCount) {
    const std::map<std::string, int64_t> want = {
        {"tiny_mla", 370882}, {"tiny_gqa", 413602}, {"readme_mla", 1538626}, {"readme_gqa", 1771810}};
    for (const auto& name : kGoldenCases) {
        SCOPED_TRACE(name);
        const auto golden = nlohmann::json::parse(readFile(kGoldenDir / name / "golden.json"));
        const int64_t goldenCount = golden.at("param_count").get<int64_t>();
        EXPECT_EQ(goldenCount, want.at(name));
        EXPECT_EQ(mythos::countParameters(mythos::loadConfig(kGoldenDir / name / "config.json")).total, goldenCount);
        EXPECT_EQ(mythos::countParameters(mythos::preset(name)).total, goldenCount);
    }
}

TEST(ConfigParams, VariantsMatchTheReferenceModel) {
    // sum(p.numel() for p in OpenMythos(variant()).parameters()), instantiated on the meta
    // device with the reference implementation.
    const std::map<std::string, int64_t> want = {
        {"mythos_1b", 1064028034},   {"mythos_3b", 3041725186},    {"mythos_10b", 9981316994},
        {"mythos_50b", 50374247426}, {"mythos_100b", 99545072130}, {"mythos_500b", 497849137154},
        {"mythos_1t", 999326352386},
    };
    for (const auto& [name, count] : want) {
        SCOPED_TRACE(name);
        EXPECT_EQ(mythos::countParameters(mythos::preset(name)).total, count);
    }
}

TEST(ConfigParams, OtherShapesMatchTheReferenceModel) {
    // Also counted with the reference on the meta device.
    Config gqa1b = mythos::preset("mythos_1b");
    gqa1b.attn_type = mythos::AttnType::Gqa;
    EXPECT_EQ(mythos::countParameters(gqa1b).total, 1091221634);
    EXPECT_EQ(mythos::countParameters(Config{}).total, 436035842);

    const Config oddMla{.vocab_size = 77,
                        .dim = 96,
                        .n_heads = 6,
                        .n_kv_heads = 3,
                        .max_seq_len = 50,
                        .max_loop_iters = 5,
                        .prelude_layers = 0,
                        .coda_layers = 3,
                        .attn_type = mythos::AttnType::Mla,
                        .kv_lora_rank = 20,
                        .q_lora_rank = 24,
                        .qk_rope_head_dim = 6,
                        .qk_nope_head_dim = 10,
                        .v_head_dim = 12,
                        .n_experts = 5,
                        .n_shared_experts = 0,
                        .n_experts_per_tok = 3,
                        .expert_dim = 14,
                        .lora_rank = 3};
    EXPECT_EQ(mythos::countParameters(oddMla).total, 207265);

    const Config oddGqa{.vocab_size = 77,
                        .dim = 96,
                        .n_heads = 6,
                        .n_kv_heads = 3,
                        .max_seq_len = 50,
                        .max_loop_iters = 5,
                        .prelude_layers = 2,
                        .coda_layers = 0,
                        .attn_type = mythos::AttnType::Gqa,
                        .n_experts = 5,
                        .n_shared_experts = 3,
                        .n_experts_per_tok = 3,
                        .expert_dim = 14,
                        .lora_rank = 3};
    EXPECT_EQ(mythos::countParameters(oddGqa).total, 222641);
}

TEST(ConfigParams, PartsOfMythos1bMatchTheReferenceModules) {
    // Per-module sums of the reference model; the MoE FFN (906100736 in the reference) is
    // router 64 x 2048, 64 experts of 3 x 2048 x 2048, 2 shared of 3 x 2048 x 8192.
    const std::vector<std::pair<std::string, int64_t>> want = {
        {"embed", 65536000},
        {"prelude", 43648512},
        {"recurrent.attn", 5047040},
        {"recurrent.moe.router", 131072},
        {"recurrent.moe.routed", 805306368},
        {"recurrent.moe.shared", 100663296},
        {"recurrent.other", 45186},
        {"coda", 43648512},
        {"final_norm", 2048},
    };
    const auto count = mythos::countParameters(mythos::preset("mythos_1b"));
    ASSERT_EQ(count.parts.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(count.parts[i].name, want[i].first);
        EXPECT_EQ(count.parts[i].count, want[i].second) << want[i].first;
    }
    EXPECT_EQ(count.total, 1064028034);
}

TEST(ConfigParams, PartsOfTinyGqaByHand) {
    // embed 64x128; dense block: 2 norms + wq,wk,wv,wo (128x128, 64x128, 64x128, 128x128)
    // + SwiGLU 3 x 128 x 170; other: 2 norms + injection 128+1+128 + halt 128+1
    // + LoRA 2 x 8 x 128 + scale 4 x 8 + recurrent norm 128.
    const std::vector<std::pair<std::string, int64_t>> want = {
        {"embed", 8192},
        {"prelude", 256 + 49152 + 65280},
        {"recurrent.attn", 49152},
        {"recurrent.moe.router", 1024},
        {"recurrent.moe.routed", 98304},
        {"recurrent.moe.shared", 24576},
        {"recurrent.other", 256 + 257 + 129 + 2048 + 32 + 128},
        {"coda", 256 + 49152 + 65280},
        {"final_norm", 128},
    };
    const auto count = mythos::countParameters(mythos::preset("tiny_gqa"));
    ASSERT_EQ(count.parts.size(), want.size());
    int64_t sum = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(count.parts[i].name, want[i].first);
        EXPECT_EQ(count.parts[i].count, want[i].second) << want[i].first;
        sum += count.parts[i].count;
    }
    EXPECT_EQ(count.total, sum);
    EXPECT_EQ(count.total, 413602);
}

TEST(ConfigParams, PartsAlwaysSumToTheTotal) {
    for (const auto& name : mythos::presetNames()) {
        SCOPED_TRACE(name);
        const auto count = mythos::countParameters(mythos::preset(name));
        int64_t sum = 0;
        for (const auto& p : count.parts)
            sum += p.count;
        EXPECT_EQ(sum, count.total);
        EXPECT_EQ(count.parts.size(), 9u);
    }
}

TEST(ConfigParams, WeightBytesCountParametersAndRouterBiasOnce) {
    EXPECT_EQ(mythos::weightBytesF32(mythos::preset("tiny_mla")), 4u * (370882u + 8u));
    EXPECT_EQ(mythos::weightBytesF32(mythos::preset("tiny_gqa")), 4u * (413602u + 8u));
    EXPECT_EQ(mythos::weightBytesF32(mythos::preset("mythos_1t")), 4ull * (999326352386ull + 512ull));
}

// ---------------------------------------------------------------- round trip

TEST(ConfigRoundTrip, EveryFieldSurvivesJson) {
    // Every field differs from its default, and the doubles need all 17 digits.
    const Config c{.vocab_size = 77,
                   .dim = 96,
                   .n_heads = 6,
                   .n_kv_heads = 3,
                   .max_seq_len = 50,
                   .max_loop_iters = 5,
                   .prelude_layers = 0,
                   .coda_layers = 3,
                   .attn_type = mythos::AttnType::Gqa,
                   .kv_lora_rank = 20,
                   .q_lora_rank = 24,
                   .qk_rope_head_dim = 6,
                   .qk_nope_head_dim = 10,
                   .v_head_dim = 12,
                   .n_experts = 5,
                   .n_shared_experts = 0,
                   .n_experts_per_tok = 3,
                   .expert_dim = 14,
                   .act_threshold = 0.1234567890123456789,
                   .rope_theta = 12345.678901234567,
                   .lora_rank = 3,
                   .max_output_tokens = 7,
                   .dropout = 0.1};
    const Config d;
    const auto j = mythos::configToJson(c);
    const auto jd = mythos::configToJson(d);
    ASSERT_EQ(j.size(), 23u);
    for (const auto& [key, value] : j.items())
        EXPECT_NE(value, jd.at(key)) << key << " equals its default, the round trip proves nothing";
    EXPECT_TRUE(j.at("attn_type").is_string());
    EXPECT_TRUE(j.at("dim").is_number_integer());
    EXPECT_TRUE(j.at("act_threshold").is_number_float());
    EXPECT_TRUE(mythos::configToJson(d).at("rope_theta").is_number_float());

    EXPECT_EQ(mythos::configFromJson(j, "roundtrip"), c);
    EXPECT_EQ(mythos::parseConfig(j.dump(), "roundtrip"), c);
    EXPECT_EQ(mythos::parseConfig(mythos::configToJsonText(c), "roundtrip"), c);
    for (const auto& name : mythos::presetNames()) {
        SCOPED_TRACE(name);
        EXPECT_EQ(mythos::configFromJson(mythos::configToJson(mythos::preset(name)), name), mythos::preset(name));
    }
}

TEST(ConfigRoundTrip, TextKeepsTheStructOrder) {
    const std::vector<std::string> order = {"vocab_size",
                                            "dim",
                                            "n_heads",
                                            "n_kv_heads",
                                            "max_seq_len",
                                            "max_loop_iters",
                                            "prelude_layers",
                                            "coda_layers",
                                            "attn_type",
                                            "kv_lora_rank",
                                            "q_lora_rank",
                                            "qk_rope_head_dim",
                                            "qk_nope_head_dim",
                                            "v_head_dim",
                                            "n_experts",
                                            "n_shared_experts",
                                            "n_experts_per_tok",
                                            "expert_dim",
                                            "act_threshold",
                                            "rope_theta",
                                            "lora_rank",
                                            "max_output_tokens",
                                            "dropout"};
    const std::string text = mythos::configToJsonText(Config{});
    size_t last = 0;
    for (const auto& key : order) {
        const size_t pos = text.find("\"" + key + "\":");
        ASSERT_NE(pos, std::string::npos) << key;
        EXPECT_GT(pos, last) << key << " out of order";
        last = pos;
    }
    EXPECT_EQ(text.back(), '\n');
}

} // namespace

// A number too large for a double is nlohmann's out_of_range, not a parse_error: it must
// still be a ConfigError naming the file, on one line.
TEST(ConfigParse, OutOfRangeNumbersAreConfigErrorsNamingTheFile) {
    for (const char* text : {R"({"act_threshold": 1e999})", R"({"dim": -1e999})", "{\"dim\": \"\xff\"}"}) {
        try {
            mythos::parseConfig(text, "cfg/config.json");
            ADD_FAILURE() << "accepted " << text;
        } catch (const ConfigError& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("cfg/config.json: ", 0), 0u) << msg;
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        }
    }
}

TEST(ConfigValidate, LoopCountsPastTheToolsLimitAreErrors) {
    Config c = mythos::preset("tiny_mla");
    c.max_loop_iters = 1000000000;
    const auto problems = mythos::validate(c);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("max_loop_iters = 1000000000 is more than 65536"), std::string::npos) << problems[0];
    c.max_loop_iters = mythos::kMaxLoops;
    EXPECT_TRUE(mythos::validate(c).empty());
}

TEST(ConfigErrors, OneLineJoinsTheProblemList) {
    EXPECT_EQ(mythos::oneLine("f: invalid configuration:\n  - a = 1 is bad\n  - b = 2 is bad"),
              "f: invalid configuration: a = 1 is bad; b = 2 is bad");
    EXPECT_EQ(mythos::oneLine("one\ntwo"), "one two");
}
