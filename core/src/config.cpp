#include "mythos/config.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "mythos/checked.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/kvcache.h"
#include "mythos/schema.h"

namespace mythos {

namespace {

using Json = nlohmann::json;
using IntMember = int64_t Config::*;
using RealMember = double Config::*;
using AttnMember = AttnType Config::*;

struct Field {
    const char* name;
    std::variant<IntMember, RealMember, AttnMember> member;
};

// In the order of the struct, which is the order of the reference's dataclass.
const std::array<Field, 23> kFields = {{
    {"vocab_size", &Config::vocab_size},
    {"dim", &Config::dim},
    {"n_heads", &Config::n_heads},
    {"n_kv_heads", &Config::n_kv_heads},
    {"max_seq_len", &Config::max_seq_len},
    {"max_loop_iters", &Config::max_loop_iters},
    {"prelude_layers", &Config::prelude_layers},
    {"coda_layers", &Config::coda_layers},
    {"attn_type", &Config::attn_type},
    {"kv_lora_rank", &Config::kv_lora_rank},
    {"q_lora_rank", &Config::q_lora_rank},
    {"qk_rope_head_dim", &Config::qk_rope_head_dim},
    {"qk_nope_head_dim", &Config::qk_nope_head_dim},
    {"v_head_dim", &Config::v_head_dim},
    {"n_experts", &Config::n_experts},
    {"n_shared_experts", &Config::n_shared_experts},
    {"n_experts_per_tok", &Config::n_experts_per_tok},
    {"expert_dim", &Config::expert_dim},
    {"act_threshold", &Config::act_threshold},
    {"rope_theta", &Config::rope_theta},
    {"lora_rank", &Config::lora_rank},
    {"max_output_tokens", &Config::max_output_tokens},
    {"dropout", &Config::dropout},
}};

Checked checkedTotal(const SchemaCount& count) {
    Checked total;
    for (const auto& part : count.parts)
        total += part.count;
    return total;
}

// Parameters and stored buffers (router_bias); the tied head adds nothing.
Checked checkedWeightBytes(const SchemaCount& count) { return Checked(4) * (checkedTotal(count) + count.buffers); }

// The shortest representation that reads back as the same double.
std::string formatNumber(double v) {
    char buf[64];
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::isnan(v) || std::strtod(buf, nullptr) == v)
            break;
    }
    return buf;
}

std::string formatBytes(uint64_t bytes) {
    static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024)
        return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
    double value = static_cast<double>(bytes) / 1024.0;
    size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
        value /= 1024.0;
        ++unit;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f %s", value, kUnits[unit]);
    return buf;
}

std::string joinProblems(const std::string& source, const std::vector<std::string>& problems) {
    std::string msg = source + ": invalid configuration:";
    for (const auto& p : problems)
        msg += "\n  - " + p;
    return msg;
}

using Untrusted = std::set<std::string, std::less<>>;

// `untrusted` names fields whose JSON value was rejected (so the struct holds a default
// the user never wrote); rules reading them are skipped to avoid confusing follow-ups.
// `unknownAttnType` is a config.json's attn_type string that names no attention type (the
// struct cannot hold it): then no rule of either type applies.
std::vector<std::string> validateImpl(const Config& c, uint64_t memoryBudgetBytes, const Untrusted& untrusted,
                                      const std::string* unknownAttnType = nullptr) {
    std::vector<std::string> problems;
    auto trusted = [&](std::initializer_list<std::string_view> names) {
        for (auto n : names)
            if (untrusted.count(n))
                return false;
        return true;
    };
    auto num = [](int64_t v) { return std::to_string(v); };

    const bool attnKnown = unknownAttnType == nullptr;
    const bool gqa = attnKnown && c.attn_type == AttnType::Gqa;
    const bool mla = attnKnown && c.attn_type == AttnType::Mla;

    // Every size that enters a parameter count; `sizesOk` gates the arithmetic below.
    bool sizesOk = attnKnown && untrusted.empty();
    auto positive = [&](const char* name, int64_t v) {
        if (v > 0)
            return;
        sizesOk = false;
        if (trusted({name}))
            problems.push_back(std::string(name) + " = " + num(v) + " must be positive");
    };
    auto nonNegative = [&](const char* name, int64_t v) {
        if (v >= 0)
            return;
        sizesOk = false;
        if (trusted({name}))
            problems.push_back(std::string(name) + " = " + num(v) + " must not be negative");
    };

    positive("vocab_size", c.vocab_size);
    positive("dim", c.dim);
    positive("n_heads", c.n_heads);
    if (gqa)
        positive("n_kv_heads", c.n_kv_heads);
    positive("max_seq_len", c.max_seq_len);
    positive("max_loop_iters", c.max_loop_iters);
    nonNegative("prelude_layers", c.prelude_layers);
    nonNegative("coda_layers", c.coda_layers);
    if (!attnKnown && trusted({"attn_type"}))
        problems.push_back("attn_type = \"" + *unknownAttnType + "\" must be \"gqa\" or \"mla\"");
    if (mla) {
        positive("kv_lora_rank", c.kv_lora_rank);
        positive("q_lora_rank", c.q_lora_rank);
        positive("qk_rope_head_dim", c.qk_rope_head_dim);
        positive("qk_nope_head_dim", c.qk_nope_head_dim);
        positive("v_head_dim", c.v_head_dim);
    }
    positive("n_experts", c.n_experts);
    nonNegative("n_shared_experts", c.n_shared_experts);
    positive("n_experts_per_tok", c.n_experts_per_tok);
    positive("expert_dim", c.expert_dim);
    positive("lora_rank", c.lora_rank);

    if (c.dim > 0 && c.n_heads > 0 && trusted({"dim", "n_heads"})) {
        if (c.dim % c.n_heads != 0) {
            problems.push_back("dim = " + num(c.dim) + " is not divisible by n_heads = " + num(c.n_heads));
        } else if (gqa && c.headDim() % 2 != 0) {
            problems.push_back("the GQA head width dim / n_heads = " + num(c.headDim()) +
                               " must be even (RoPE rotates pairs of channels)");
        }
    }
    if (gqa && c.n_heads > 0 && c.n_kv_heads > 0 && trusted({"n_heads", "n_kv_heads"}) &&
        c.n_heads % c.n_kv_heads != 0) {
        problems.push_back("n_heads = " + num(c.n_heads) + " is not divisible by n_kv_heads = " + num(c.n_kv_heads) +
                           " (each key/value head serves n_heads / n_kv_heads query heads)");
    }
    if (mla && c.qk_rope_head_dim > 0 && c.qk_rope_head_dim % 2 != 0 && trusted({"qk_rope_head_dim"})) {
        problems.push_back("qk_rope_head_dim = " + num(c.qk_rope_head_dim) +
                           " must be even (RoPE rotates pairs of channels)");
    }
    if (c.n_experts > 0 && c.n_experts_per_tok > c.n_experts && trusted({"n_experts", "n_experts_per_tok"})) {
        problems.push_back("n_experts_per_tok = " + num(c.n_experts_per_tok) + " is larger than n_experts = " +
                           num(c.n_experts) + " (the router picks that many distinct experts)");
    }
    // No rule on the loop-index width dim / 8: the reference accepts any width (an odd
    // one drops the last cosine, 0 adds nothing) and the engine reproduces that.

    if (trusted({"act_threshold"}) && !(c.act_threshold > 0.0 && c.act_threshold <= 1.0))
        problems.push_back("act_threshold = " + formatNumber(c.act_threshold) + " must be in (0, 1]");
    if (trusted({"rope_theta"}) && !(c.rope_theta > 0.0 && std::isfinite(c.rope_theta)))
        problems.push_back("rope_theta = " + formatNumber(c.rope_theta) + " must be a positive finite number");
    if (trusted({"dropout"}) && !(c.dropout >= 0.0 && c.dropout < 1.0))
        problems.push_back("dropout = " + formatNumber(c.dropout) + " must be in [0, 1)");
    if (trusted({"max_output_tokens"}) && c.max_output_tokens < 0)
        problems.push_back("max_output_tokens = " + num(c.max_output_tokens) + " must not be negative");

    if (!sizesOk)
        return problems;

    // RoPE table: max_seq_len positions x rope_dim/2 (cos, sin) fp32 pairs.
    const Checked ropeBytes = Checked(c.max_seq_len) * Checked(c.ropeDim()) * Checked(4);
    if (ropeBytes.overflow()) {
        problems.push_back("max_seq_len = " + num(c.max_seq_len) +
                           " is too large: its RoPE table would not fit in 64-bit sizes");
    }
    // Parameter counts from the model's schema, without allocation.
    const SchemaCount count = countSchema(c);
    for (const auto& part : count.parts) {
        if (part.count.overflow()) {
            problems.push_back(std::string("the sizes are too large: the parameter count of ") + part.name +
                               " does not fit in a 64-bit integer");
            return problems;
        }
    }
    const Checked total = checkedTotal(count);
    const Checked bytes = checkedWeightBytes(count);
    if (total.overflow() || bytes.overflow()) {
        problems.push_back("the sizes are too large: the model's fp32 weight size does not fit "
                           "in a 64-bit integer");
        return problems;
    }
    if (c.max_loop_iters > kMaxLoops) {
        problems.push_back("max_loop_iters = " + num(c.max_loop_iters) + " is more than " + num(kMaxLoops) +
                           ", the most loops this tool runs");
        return problems;
    }
    // A full KV cache (reference layout, one batch row), by the KV accounting's own
    // per-position bytes (which throw when they do not fit: the same answer here); it checks
    // its other products (batch, other loop counts) again. The layer sum cannot overflow: the
    // parameter total, which holds (prelude + coda) x a block of more than 5 weights, fits.
    const bool kvFits = [&] {
        try {
            return boundedProduct({kvBytesPerPosition(c, KvLayout::Reference), c.max_seq_len,
                                   c.prelude_layers + c.max_loop_iters + c.coda_layers})
                .has_value();
        } catch (const ArgumentError&) {
            return false;
        }
    }();
    if (!kvFits && !ropeBytes.overflow()) {
        problems.push_back("max_seq_len = " + num(c.max_seq_len) +
                           " is too large: the KV cache of a sequence that long would not fit in 64-bit sizes");
    }

    const auto needed = static_cast<uint64_t>(bytes.value());
    if (memoryBudgetBytes > 0 && needed > memoryBudgetBytes) {
        std::string have = formatBytes(needed);
        std::string avail = formatBytes(memoryBudgetBytes);
        if (have == avail) {
            have += " (" + std::to_string(needed) + " bytes)";
            avail += " (" + std::to_string(memoryBudgetBytes) + " bytes)";
        }
        problems.push_back("the model needs " + have + " of fp32 weights, more than the " + avail + " available");
    }
    return problems;
}

std::string describeJson(const Json& v) {
    switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case Json::value_t::string: {
        std::string s = v.get<std::string>();
        if (s.size() > 40)
            s = s.substr(0, 40) + "...";
        return "the string \"" + s + "\"";
    }
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: // numbers; dump keeps "2048.0" distinguishable from 2048
        return v.dump();
    }
}

// Appends a problem for a wrongly typed value; returns the value when it is usable.
std::optional<int64_t> readInt(const char* name, const Json& v, std::vector<std::string>& problems) {
    if (v.is_number_integer() && !v.is_number_unsigned())
        return v.get<int64_t>();
    if (v.is_number_unsigned()) {
        const auto u = v.get<uint64_t>();
        if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            return static_cast<int64_t>(u);
        problems.push_back(std::string(name) + " = " + std::to_string(u) + " does not fit in a 64-bit integer");
        return std::nullopt;
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        // Integers too long for uint64 reach us as doubles.
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) >= 0x1p63) {
            problems.push_back(std::string(name) + " = " + v.dump() + " does not fit in a 64-bit integer");
            return std::nullopt;
        }
    }
    problems.push_back(std::string(name) + " must be an integer, got " + describeJson(v));
    return std::nullopt;
}

} // namespace

std::string attnTypeName(AttnType t) { return t == AttnType::Gqa ? "gqa" : "mla"; }

std::optional<AttnType> parseAttnType(std::string_view name) {
    if (name == "gqa")
        return AttnType::Gqa;
    if (name == "mla")
        return AttnType::Mla;
    return std::nullopt;
}

std::vector<std::string> validate(const Config& cfg, uint64_t memoryBudgetBytes) {
    return validateImpl(cfg, memoryBudgetBytes, {});
}

void validateOrThrow(const Config& cfg, const std::string& source, uint64_t memoryBudgetBytes) {
    const auto problems = validate(cfg, memoryBudgetBytes);
    if (!problems.empty())
        throw ConfigError(joinProblems(source, problems));
}

Config configFromJson(const nlohmann::json& j, const std::string& source) {
    if (!j.is_object()) {
        throw ConfigError(source + ": a configuration must be a JSON object, got " + describeJson(j));
    }
    Config cfg;
    std::vector<std::string> problems;
    Untrusted untrusted;
    std::optional<std::string> unknownAttnType;
    for (const auto& field : kFields) {
        const auto it = j.find(field.name);
        if (it == j.end())
            continue;
        const Json& v = *it;
        bool ok = false;
        if (const auto* m = std::get_if<IntMember>(&field.member)) {
            if (auto value = readInt(field.name, v, problems)) {
                cfg.*(*m) = *value;
                ok = true;
            }
        } else if (const auto* m = std::get_if<RealMember>(&field.member)) {
            if (v.is_number()) {
                cfg.*(*m) = v.get<double>();
                ok = true;
            } else {
                problems.push_back(std::string(field.name) + " must be a number, got " + describeJson(v));
            }
        } else if (const auto* m = std::get_if<AttnMember>(&field.member)) {
            if (v.is_string()) {
                const std::string name = v.get<std::string>();
                if (const auto type = parseAttnType(name))
                    cfg.*(*m) = *type;
                else
                    unknownAttnType = name; // validateImpl says so, in its place among the rules
                ok = true;
            } else {
                problems.push_back(std::string(field.name) + " must be a string (\"gqa\" or \"mla\"), got " +
                                   describeJson(v));
            }
        }
        if (!ok)
            untrusted.insert(field.name);
    }
    // Type problems and rule violations are reported together; with no type problem
    // this is exactly validateOrThrow(cfg, source).
    auto more = validateImpl(cfg, 0, untrusted, unknownAttnType ? &*unknownAttnType : nullptr);
    problems.insert(problems.end(), more.begin(), more.end());
    if (!problems.empty())
        throw ConfigError(joinProblems(source, problems));
    return cfg;
}

Config parseConfig(std::string_view jsonText, const std::string& source) {
    Json j;
    try {
        j = Json::parse(jsonText.begin(), jsonText.end());
    } catch (const Json::exception& e) {
        // parse_error for bad syntax, out_of_range (406) for a number like 1e999.
        throw ConfigError(source + ": not valid JSON: " + jsonErrorDetail(e));
    }
    return configFromJson(j, source);
}

Config loadConfig(const std::filesystem::path& file) { return parseConfig(readTextFile(file), file.string()); }

namespace {
template <typename T>
T jsonValue(T v) {
    return v;
}
std::string jsonValue(AttnType t) { return attnTypeName(t); }
} // namespace

nlohmann::json configToJson(const Config& cfg) {
    Json j = Json::object();
    for (const auto& field : kFields)
        std::visit([&](auto member) { j[field.name] = jsonValue(cfg.*member); }, field.member);
    return j;
}

std::string configToJsonText(const Config& cfg) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const auto& field : kFields)
        std::visit([&](auto member) { j[field.name] = jsonValue(cfg.*member); }, field.member);
    return j.dump(2) + "\n";
}

namespace {

struct Preset {
    const char* name;
    Config cfg;
};

// The reference's variants.py (fields it leaves out keep the MythosConfig defaults),
// its example.py (the README example, both attention types), and the tiny test cases.
const std::vector<Preset>& presets() {
    // One preset per paragraph reads better than one field per line.
    // clang-format off
    static const std::vector<Preset> table = {
        {"mythos_1b",
         {.vocab_size = 32000, .dim = 2048, .n_heads = 16, .n_kv_heads = 4, .max_seq_len = 4096,
          .max_loop_iters = 16, .prelude_layers = 2, .coda_layers = 2, .attn_type = AttnType::Mla,
          .kv_lora_rank = 256, .q_lora_rank = 512, .qk_rope_head_dim = 32,
          .qk_nope_head_dim = 64, .v_head_dim = 64, .n_experts = 64, .n_shared_experts = 2,
          .n_experts_per_tok = 4, .expert_dim = 2048, .act_threshold = 0.99,
          .rope_theta = 500000.0, .lora_rank = 8}},
        {"mythos_3b",
         {.vocab_size = 32000, .dim = 3072, .n_heads = 24, .n_kv_heads = 6, .max_seq_len = 4096,
          .max_loop_iters = 16, .prelude_layers = 2, .coda_layers = 2, .attn_type = AttnType::Mla,
          .kv_lora_rank = 384, .q_lora_rank = 768, .qk_rope_head_dim = 32,
          .qk_nope_head_dim = 96, .v_head_dim = 96, .n_experts = 64, .n_shared_experts = 2,
          .n_experts_per_tok = 4, .expert_dim = 4096, .act_threshold = 0.99,
          .rope_theta = 500000.0, .lora_rank = 8}},
        {"mythos_10b",
         {.vocab_size = 32000, .dim = 4096, .n_heads = 32, .n_kv_heads = 8, .max_seq_len = 8192,
          .max_loop_iters = 24, .prelude_layers = 2, .coda_layers = 2, .attn_type = AttnType::Mla,
          .kv_lora_rank = 512, .q_lora_rank = 1024, .qk_rope_head_dim = 64,
          .qk_nope_head_dim = 128, .v_head_dim = 128, .n_experts = 128, .n_shared_experts = 2,
          .n_experts_per_tok = 4, .expert_dim = 5632, .act_threshold = 0.99,
          .rope_theta = 500000.0, .lora_rank = 16}},
        {"mythos_50b",
         {.vocab_size = 32000, .dim = 6144, .n_heads = 48, .n_kv_heads = 8, .max_seq_len = 8192,
          .max_loop_iters = 32, .prelude_layers = 3, .coda_layers = 3, .attn_type = AttnType::Mla,
          .kv_lora_rank = 512, .q_lora_rank = 1536, .qk_rope_head_dim = 64,
          .qk_nope_head_dim = 128, .v_head_dim = 128, .n_experts = 256, .n_shared_experts = 4,
          .n_experts_per_tok = 4, .expert_dim = 9728, .act_threshold = 0.99,
          .rope_theta = 500000.0, .lora_rank = 32}},
        {"mythos_100b",
         {.vocab_size = 32000, .dim = 8192, .n_heads = 64, .n_kv_heads = 8,
          .max_seq_len = 1000000, .max_loop_iters = 32, .prelude_layers = 4, .coda_layers = 4,
          .attn_type = AttnType::Mla, .kv_lora_rank = 512, .q_lora_rank = 2048,
          .qk_rope_head_dim = 64, .qk_nope_head_dim = 128, .v_head_dim = 128,
          .n_experts = 256, .n_shared_experts = 4, .n_experts_per_tok = 8,
          .expert_dim = 13568, .act_threshold = 0.99, .rope_theta = 1000000.0,
          .lora_rank = 64, .max_output_tokens = 131072}},
        {"mythos_500b",
         {.vocab_size = 100000, .dim = 12288, .n_heads = 96, .n_kv_heads = 16,
          .max_seq_len = 1000000, .max_loop_iters = 48, .prelude_layers = 4, .coda_layers = 4,
          .attn_type = AttnType::Mla, .kv_lora_rank = 1024, .q_lora_rank = 3072,
          .qk_rope_head_dim = 64, .qk_nope_head_dim = 128, .v_head_dim = 128,
          .n_experts = 512, .n_shared_experts = 8, .n_experts_per_tok = 8,
          .expert_dim = 23040, .act_threshold = 0.99, .rope_theta = 1000000.0,
          .lora_rank = 128, .max_output_tokens = 131072}},
        {"mythos_1t",
         {.vocab_size = 100000, .dim = 16384, .n_heads = 128, .n_kv_heads = 16,
          .max_seq_len = 1000000, .max_loop_iters = 64, .prelude_layers = 6, .coda_layers = 6,
          .attn_type = AttnType::Mla, .kv_lora_rank = 1024, .q_lora_rank = 4096,
          .qk_rope_head_dim = 64, .qk_nope_head_dim = 128, .v_head_dim = 128,
          .n_experts = 512, .n_shared_experts = 8, .n_experts_per_tok = 8,
          .expert_dim = 34560, .act_threshold = 0.99, .rope_theta = 2000000.0,
          .lora_rank = 256, .max_output_tokens = 131072}},
        {"readme_mla",
         {.vocab_size = 1000, .dim = 256, .n_heads = 8, .n_kv_heads = 8, .max_seq_len = 128,
          .max_loop_iters = 4, .prelude_layers = 1, .coda_layers = 1, .attn_type = AttnType::Mla,
          .kv_lora_rank = 32, .q_lora_rank = 64, .qk_rope_head_dim = 16,
          .qk_nope_head_dim = 16, .v_head_dim = 16, .n_experts = 8, .n_shared_experts = 1,
          .n_experts_per_tok = 2, .expert_dim = 64, .lora_rank = 8}},
        {"readme_gqa",
         {.vocab_size = 1000, .dim = 256, .n_heads = 8, .n_kv_heads = 2, .max_seq_len = 128,
          .max_loop_iters = 4, .prelude_layers = 1, .coda_layers = 1, .attn_type = AttnType::Gqa,
          .n_experts = 8, .n_shared_experts = 1, .n_experts_per_tok = 2, .expert_dim = 64,
          .lora_rank = 8}},
        {"tiny_mla",
         {.vocab_size = 64, .dim = 128, .n_heads = 4, .n_kv_heads = 2, .max_seq_len = 128,
          .max_loop_iters = 4, .prelude_layers = 1, .coda_layers = 1, .attn_type = AttnType::Mla,
          .kv_lora_rank = 32, .q_lora_rank = 64, .qk_rope_head_dim = 16,
          .qk_nope_head_dim = 16, .v_head_dim = 16, .n_experts = 8, .n_shared_experts = 1,
          .n_experts_per_tok = 2, .expert_dim = 32, .act_threshold = 0.99,
          .rope_theta = 500000.0, .lora_rank = 8, .max_output_tokens = 4096, .dropout = 0.0}},
        {"tiny_gqa",
         {.vocab_size = 64, .dim = 128, .n_heads = 4, .n_kv_heads = 2, .max_seq_len = 128,
          .max_loop_iters = 4, .prelude_layers = 1, .coda_layers = 1, .attn_type = AttnType::Gqa,
          .kv_lora_rank = 32, .q_lora_rank = 64, .qk_rope_head_dim = 16,
          .qk_nope_head_dim = 16, .v_head_dim = 16, .n_experts = 8, .n_shared_experts = 1,
          .n_experts_per_tok = 2, .expert_dim = 32, .act_threshold = 0.99,
          .rope_theta = 500000.0, .lora_rank = 8, .max_output_tokens = 4096, .dropout = 0.0}},
    };
    // clang-format on
    return table;
}

} // namespace

std::vector<std::string> presetNames() {
    std::vector<std::string> names;
    for (const auto& p : presets())
        names.emplace_back(p.name);
    return names;
}

Config preset(std::string_view name) {
    for (const auto& p : presets())
        if (name == p.name)
            return p.cfg;
    std::string known;
    for (const auto& p : presets())
        known += (known.empty() ? "" : ", ") + std::string(p.name);
    throw ConfigError("unknown preset \"" + std::string(name) + "\"; known presets: " + known);
}

ParamCount countParameters(const Config& cfg) {
    const auto problems = validate(cfg);
    if (!problems.empty())
        throw ConfigError(joinProblems("cannot count parameters", problems));
    ParamCount result;
    for (const auto& part : countSchema(cfg).parts) {
        result.parts.push_back({part.name, part.count.value()});
        result.total += part.count.value();
    }
    return result;
}

uint64_t weightBytesF32(const Config& cfg) {
    const auto problems = validate(cfg);
    if (!problems.empty())
        throw ConfigError(joinProblems("cannot size the weights", problems));
    return static_cast<uint64_t>(checkedWeightBytes(countSchema(cfg)).value());
}

} // namespace mythos
