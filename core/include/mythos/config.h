#pragma once
// The model configuration: every field of the reference's MythosConfig
// (open_mythos/main.py), with the same names and defaults, plus validation, presets and
// exact parameter counting that need no allocation.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mythos {

// The attention of every block: grouped-query (wq/wk/wv/wo) or multi-head latent (low-rank
// q and kv, a latent KV cache). config.json spells them "gqa" and "mla".
enum class AttnType { Gqa, Mla };
std::string attnTypeName(AttnType t); // "gqa", "mla"
// The type a config.json string names; nullopt for any other string (validation says so).
std::optional<AttnType> parseAttnType(std::string_view name);

struct Config {
    int64_t vocab_size = 32000;
    int64_t dim = 2048;
    int64_t n_heads = 16;
    int64_t n_kv_heads = 4;
    int64_t max_seq_len = 4096;
    int64_t max_loop_iters = 16;
    int64_t prelude_layers = 2;
    int64_t coda_layers = 2;
    AttnType attn_type = AttnType::Mla;
    int64_t kv_lora_rank = 512;
    int64_t q_lora_rank = 1536;
    int64_t qk_rope_head_dim = 64;
    int64_t qk_nope_head_dim = 128;
    int64_t v_head_dim = 128;
    int64_t n_experts = 64;
    int64_t n_shared_experts = 2;
    int64_t n_experts_per_tok = 4;
    int64_t expert_dim = 512;
    double act_threshold = 0.99;
    double rope_theta = 500000.0;
    int64_t lora_rank = 16;
    int64_t max_output_tokens = 4096;
    double dropout = 0.0;

    bool isMla() const { return attn_type == AttnType::Mla; }
    int64_t headDim() const { return dim / n_heads; } // GQA head width
    int64_t ropeDim() const { return isMla() ? qk_rope_head_dim : headDim(); }
    int64_t denseHidden() const { return dim * 4 / 3; } // prelude/coda SwiGLU width
    int64_t sharedHidden() const { return expert_dim * n_experts_per_tok; }
    int64_t loopDim() const { return dim / 8; } // loop-index embedding width

    bool operator==(const Config&) const = default;
};

// Every problem with the configuration, one sentence each; empty when valid.
// `memoryBudgetBytes` (0 = no limit) bounds the fp32 weight bytes.
std::vector<std::string> validate(const Config& cfg, uint64_t memoryBudgetBytes = 0);

// Throws ConfigError listing every problem, prefixed with `source` (a file name).
void validateOrThrow(const Config& cfg, const std::string& source, uint64_t memoryBudgetBytes = 0);

// Parses a config.json object. Unknown keys are ignored, missing keys take the
// reference defaults, wrongly typed values are errors. Throws ConfigError naming `source`.
Config configFromJson(const nlohmann::json& j, const std::string& source);
Config parseConfig(std::string_view jsonText, const std::string& source);
Config loadConfig(const std::filesystem::path& file); // FileError / ConfigError
nlohmann::json configToJson(const Config& cfg);
// configToJson as text, with the keys in the struct's (and the reference's) field order
// and a 2-space indent, ending in a newline: the layout of the reference's config.json.
std::string configToJsonText(const Config& cfg);

// Presets: the reference's variants (mythos_1b, mythos_3b, mythos_10b, mythos_50b,
// mythos_100b, mythos_500b, mythos_1t) and the README example (readme_mla, readme_gqa),
// plus tiny_mla / tiny_gqa.
std::vector<std::string> presetNames();
Config preset(std::string_view name); // ConfigError for an unknown name

// Parameter counts computed from the config alone (no allocation). The tied
// embedding/head weight is counted once, like sum(p.numel() for p in model.parameters()).
// Buffers (router_bias, RoPE tables) are not parameters.
struct ParamPart {
    std::string name;
    int64_t count;
};
struct ParamCount {
    std::vector<ParamPart> parts; // embed, prelude, recurrent.attn, recurrent.moe, ...
    int64_t total = 0;
};
ParamCount countParameters(const Config& cfg);

// Bytes of fp32 weights (parameters + stored buffers), the size of the in-memory model.
uint64_t weightBytesF32(const Config& cfg);

} // namespace mythos
