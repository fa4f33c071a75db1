#pragma once
// Model weights: fp32 tensors keyed by the reference's state_dict() names, loaded from a
// checkpoint folder (config.json + *.safetensors), initialised randomly like the
// reference, or written back as a checkpoint folder.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mythos/config.h"

namespace mythos {

struct Tensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
    int64_t numel() const;
};

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
    std::string weightsHash; // FNV-1a 64 of the fp32 weight bytes, hex
};

// Reads `folder`/config.json and `folder`/model.safetensors (or every *.safetensors file
// in the folder, for sharded checkpoints). Every expected tensor must be present with
// the expected shape (F32, F16 or BF16 on disk); errors name the file, the key, and the
// expected and found shapes.
Checkpoint loadCheckpoint(const std::filesystem::path& folder, const ProgressFn& progress = {});

// The reference's initialisation (Linear and Embedding N(0, 0.02), LoRA B N(0, 0.02),
// halt bias U(-1/sqrt(dim), 1/sqrt(dim)), log_A = log_dt = 0, B = 0.1, norms 1,
// router_bias 0), from a seed; deterministic on every platform.
Weights randomWeights(const Config& cfg, uint64_t seed, const ProgressFn& progress = {});

// Writes config.json + model.safetensors into `folder` (created if missing), each file
// atomically. `head.weight` is not written (it is tied to embed.weight).
void saveCheckpoint(const std::filesystem::path& folder, const Config& cfg, const Weights& weights,
                    const std::map<std::string, std::string>& metadata = {});

std::string hashWeights(const Weights& weights);

} // namespace mythos
