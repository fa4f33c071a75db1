#include "mythos/modelspec.h"

#include <algorithm>

#include "mythos/errors.h"

namespace mythos {

namespace {
constexpr std::string_view kPresetPrefix = "preset:";
} // namespace

bool isPresetSpec(std::string_view text) { return text.substr(0, kPresetPrefix.size()) == kPresetPrefix; }

ModelSpec parseModelSpec(std::string_view text) {
    if (text.empty())
        throw ArgumentError("no model given (a model folder or preset:NAME[:SEED])");
    ModelSpec spec;
    spec.text = std::string(text);
    if (!isPresetSpec(text)) {
        spec.folder = spec.text;
        return spec;
    }
    std::string_view name = text.substr(kPresetPrefix.size());
    if (const auto colon = name.find(':'); colon != std::string_view::npos) {
        const std::string s(name.substr(colon + 1));
        name = name.substr(0, colon);
        // At most 19 digits: always within uint64.
        if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
            throw ArgumentError("preset seed '" + s + "' is not a non-negative integer");
        spec.seed = std::stoull(s);
    }
    preset(name); // ConfigError for an unknown name, listing the known ones
    spec.presetName = std::string(name);
    return spec;
}

std::string ModelSpec::displayName() const { return isPreset() ? text : folder.filename().string(); }

std::filesystem::path ModelSpec::tokenizerFolder() const { return isPreset() ? std::filesystem::path() : folder; }

Config ModelSpec::config() const { return isPreset() ? preset(presetName) : loadCheckpointConfig(folder); }

Config applyConfigOverrides(const Config& base, const nlohmann::json& overrides, const std::string& source) {
    if (overrides.is_null() || (overrides.is_object() && overrides.empty()))
        return base;
    if (!overrides.is_object())
        throw ArgumentError(source + ": config overrides must be a JSON object of config fields, e.g. "
                                     "{\"vocab_size\": 1000}");
    nlohmann::json merged = configToJson(base);
    for (auto it = overrides.begin(); it != overrides.end(); ++it) {
        if (!merged.contains(it.key()))
            throw ArgumentError(source + ": override '" + it.key() + "' is not a config field" +
                                (isEngineOptionKey(it.key()) ? " (it is an engine option)" : ""));
        merged[it.key()] = it.value();
    }
    return configFromJson(merged, source + " with config overrides");
}

std::unique_ptr<Model> open(const ModelSpec& spec, const EngineOptions& options, const nlohmann::json& overrides,
                            const ProgressFn& progress) {
    if (spec.isPreset()) {
        const Config cfg = applyConfigOverrides(preset(spec.presetName), overrides, spec.text);
        auto m = std::make_unique<Model>(cfg, randomWeights(cfg, spec.seed, progress, options.weightType), options);
        m->setName(spec.text);
        return m;
    }
    // Overrides apply before the tensors are read, so a shape they change is refused at the
    // first tensor instead of after the whole checkpoint.
    const bool overridden = !overrides.is_null() && !(overrides.is_object() && overrides.empty());
    Checkpoint ck =
        overridden ? loadCheckpointAs(spec.folder,
                                      applyConfigOverrides(loadCheckpointConfig(spec.folder), overrides, spec.text),
                                      progress, options.weightType)
                   : loadCheckpoint(spec.folder, progress, options.weightType);
    auto m = std::make_unique<Model>(ck.config, std::move(ck.weights), options);
    m->setName(spec.text);
    m->m_hash = ck.weightsHash;
    return m;
}

} // namespace mythos
