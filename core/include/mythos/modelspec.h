#pragma once
// What names a model to open: a checkpoint folder, or "preset:NAME[:SEED]" for a preset's
// config with random weights from SEED (0 when left out). Parsed once here; the one way to
// open either, with config overrides and engine options, is mythos::open.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "mythos/config.h"
#include "mythos/engineoptions.h"
#include "mythos/model.h"
#include "mythos/weights.h"

namespace mythos {

struct ModelSpec {
    std::string text;             // as given: the model's name (Model::name) once opened
    std::string presetName;       // a preset's name; empty for a folder
    uint64_t seed = 0;            // a preset's seed
    std::filesystem::path folder; // a checkpoint folder; empty for a preset

    bool isPreset() const { return !presetName.empty(); }
    // What the window and the report call the model: a preset's spec, a folder's last name.
    std::string displayName() const;
    // Where to look for a tokenizer.json: the folder; none (empty) for a preset.
    std::filesystem::path tokenizerFolder() const;
    // The config it opens with (before any overrides), without reading weights.
    Config config() const;

    bool operator==(const ModelSpec&) const = default;
};

// Whether `text` names a preset ("preset:" at its start), without checking the rest; for
// deciding before opening, e.g. whether a folder has a tokenizer to look for.
bool isPresetSpec(std::string_view text);

// "preset:" at the start makes a preset spec (a folder of that name is "./preset:..."), anything
// else is a folder (checked when opened). ArgumentError for an empty spec or a seed that is not
// a non-negative integer, ConfigError for an unknown preset name (naming the known ones).
ModelSpec parseModelSpec(std::string_view text);

// `base` with `overrides` applied: a JSON object of config.json fields (null or {} changes
// nothing). ArgumentError naming `source` for anything but an object or for a key that is no
// config field; ConfigError (from configFromJson, naming `source`) when the result is invalid.
Config applyConfigOverrides(const Config& base, const nlohmann::json& overrides, const std::string& source);

// Opens a model: a preset's random weights or a checkpoint folder's. `overrides` (see
// applyConfigOverrides) change the config before the weights are made or read: a preset's
// weights are made for the changed config (e.g. another vocabulary size); a checkpoint's
// tensors must have the shapes the changed config needs (FormatError naming the tensor
// otherwise). `progress` reports every tensor made or read and cancels (Cancelled) when it
// returns false. With WeightType::BF16 the matrices are read or made straight into bf16.
std::unique_ptr<Model> open(const ModelSpec& spec, const EngineOptions& options = {},
                            const nlohmann::json& overrides = nullptr, const ProgressFn& progress = {});

} // namespace mythos
