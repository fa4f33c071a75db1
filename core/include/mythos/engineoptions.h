#pragma once
// How the engine runs a model (EngineOptions), and the one JSON form of those options: the
// trace's "options" object, a config variant's engine keys and open()'s options all read and
// write it here.
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "mythos/kvcache.h"
#include "mythos/weights.h"

namespace mythos {

// Options that differ from the reference are opt-in: the defaults reproduce it.
struct EngineOptions {
    // Graves (2016): on the last loop every still-running position takes the remainder
    // 1 - cum_p as its weight, so every position's weights sum to 1. The reference does
    // not do this (never-halting positions sum to cum_p < threshold).
    bool actFinalRemainder = false;
    KvLayout kvLayout = KvLayout::Reference;
    int threads = 0; // 0 = all cores
    // BF16 holds the large matrices in bf16: half the memory, logits within about 2% of
    // fp32's largest logit on the golden cases, more where a near tie in routing or halting
    // flips (docs/engine.md). The default F32 is the reference's numbers.
    WeightType weightType = WeightType::F32;

    bool operator==(const EngineOptions&) const = default;
};

// {"act_final_remainder": false, "kv_layout": "reference", "weight_type": "f32"}: the options
// that change the numbers, as a trace records them. `threads` is not part of it (it changes
// no result).
nlohmann::json engineOptionsToJson(const EngineOptions& o);
// Reads such an object (any subset of its keys) over `base`. ArgumentError for a key that
// is not an engine option or a value of the wrong type or name.
EngineOptions engineOptionsFromJson(const nlohmann::json& j, EngineOptions base = {});
// Whether `key` is one of the JSON form's keys.
bool isEngineOptionKey(std::string_view key);
// Sets the option `key` from its JSON value (the errors of engineOptionsFromJson).
void setEngineOption(EngineOptions& o, std::string_view key, const nlohmann::json& value);
// "kv_layout reference, act_final_remainder off, weights f32": the line a report shows.
std::string describeEngineOptions(const EngineOptions& o);

} // namespace mythos
