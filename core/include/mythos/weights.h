#pragma once
// Model weights: tensors keyed by the reference's state_dict() names, loaded from a
// checkpoint folder (config.json + *.safetensors), initialised randomly like the
// reference, or written back as a checkpoint folder. Tensors are fp32, or bf16 for the
// large matrices when the engine runs in WeightType::BF16.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mythos/config.h"

namespace mythos {

// How the engine holds the large matrices (EngineOptions::weightType). BF16 keeps every
// Linear weight except the router, and the embedding / tied head, as bf16 (round to nearest
// even): half the memory, fp32 accumulation. Everything else stays fp32 (bf16Eligible).
enum class WeightType { F32, BF16 };
std::string weightTypeName(WeightType t);         // "f32", "bf16"
WeightType parseWeightType(const std::string& s); // ArgumentError for an unknown name

struct Tensor {
    std::vector<int64_t> shape;
    std::vector<float> data;         // the values, unless the tensor is held in bf16
    std::vector<uint16_t> bf16 = {}; // bf16 bits instead of `data` (then `data` is empty)
    int64_t numel() const;
    bool isBf16() const { return !bf16.empty(); }
    std::vector<float> values() const; // fp32 values either way (bf16 widened exactly)
    std::size_t bytes() const;         // resident bytes of the values
    void toBf16();                     // rounds `data` to bf16 and frees it
    void toF32();                      // widens `bf16` to fp32 and frees it
};

// The tensors WeightType::BF16 holds in bf16: every Linear weight and the embedding, except
// the MoE router (tiny, and expert choices are discrete: kept exact), the ACT halting head and
// the LoRA scale. LoRA's B is a parameter used as [rank, dim], kept fp32 (small).
bool bf16Eligible(const std::string& name);

struct ExpectedTensor {
    std::string name;
    std::vector<int64_t> shape;
    bool optional = false; // head.weight (tied to embed.weight)
};

// Every tensor the reference's state_dict() holds for this config, in state_dict order,
// except the RoPE buffers (a pure function of the config).
std::vector<ExpectedTensor> expectedTensors(const Config& cfg);

using Weights = std::map<std::string, Tensor>;

// Progress callback: (done, total) -> false to cancel (throws Cancelled).
using ProgressFn = std::function<bool(int64_t done, int64_t total)>;

struct Checkpoint {
    Config config;
    Weights weights;
    std::filesystem::path folder;
    std::string weightsHash; // FNV-1a 64 of the weight values (as fp32), hex
};

// Reads `folder`/config.json and the weights: the shards model.safetensors.index.json names
// (the Hugging Face convention; the index is validated like any untrusted file, each tensor
// read from the shard it names), else model.safetensors, else every *.safetensors file in
// the folder. Every expected tensor must be present with
// the expected shape (F32, F16 or BF16 on disk); errors name the file, the key, and the
// expected and found shapes. With `type` BF16 the eligible tensors are read straight into
// bf16 (no fp32 copy; BF16 on disk is copied bit for bit).
Checkpoint loadCheckpoint(const std::filesystem::path& folder, const ProgressFn& progress = {},
                          WeightType type = WeightType::F32);
// The config.json of a checkpoint folder, read and validated (FileError when `folder` is not
// a folder, FileError / ConfigError for its config.json).
Config loadCheckpointConfig(const std::filesystem::path& folder);
// loadCheckpoint with `config` in place of the folder's config.json (e.g. it with config
// overrides applied, mythos::open): every tensor must have the shape `config` needs.
Checkpoint loadCheckpointAs(const std::filesystem::path& folder, const Config& config, const ProgressFn& progress = {},
                            WeightType type = WeightType::F32);

// The reference's initialisation (Linear and Embedding N(0, 0.02), LoRA B N(0, 0.02),
// halt bias U(-1/sqrt(dim), 1/sqrt(dim)), log_A = log_dt = 0, B = 0.1, norms 1,
// router_bias 0), from a seed; deterministic on every platform. With `type` BF16 the
// eligible tensors are generated straight into bf16: the same values rounded.
Weights randomWeights(const Config& cfg, uint64_t seed, const ProgressFn& progress = {},
                      WeightType type = WeightType::F32);

// Writes config.json + model.safetensors into `folder` (created if missing), each file
// atomically. `head.weight` is not written (it is tied to embed.weight). Tensors held in
// bf16 are written as their fp32 values.
// With `maxShardBytes` > 0 the weights go to shards model-0000i-of-0000N.safetensors of at
// most that many bytes each (a larger tensor alone) and model.safetensors.index.json.
void saveCheckpoint(const std::filesystem::path& folder, const Config& cfg, const Weights& weights,
                    const std::map<std::string, std::string>& metadata = {}, uint64_t maxShardBytes = 0);

// FNV-1a over the values as fp32 (bf16 tensors widened), so a checkpoint stored as BF16 hashes
// the same in both weight types.
std::string hashWeights(const Weights& weights);
// Tensors holding NaN or infinite values, with how many, in name order: a broken
// checkpoint (a diverged training run) that would otherwise load silently.
struct NonFiniteTensor {
    std::string name;
    int64_t count = 0;
};
std::vector<NonFiniteTensor> findNonFinite(const Weights& weights);
// Counts the values of `values` that are NaN or infinite (the exponent bits all set).
int64_t countNonFinite(const std::vector<float>& values);
// "a: 3, b: 1" for at most `most` tensors, then "and N more".
std::string describeNonFinite(const std::vector<NonFiniteTensor>& found, std::size_t most = 3);
// The warning the CLI and the window give for them: "1 weight tensor holds NaN or infinite
// values (a: 3): the outputs are not meaningful"; empty when none.
std::string nonFiniteWarning(const std::vector<NonFiniteTensor>& found);

// Resident bytes of every tensor's values.
std::size_t weightBytes(const Weights& weights);

} // namespace mythos
