#pragma once
// A config variant: the open model with some config fields and engine options changed, as
// the Compare view, the report and the CLI take it. A JSON object such as
// {"act_threshold": 0.9, "rope_theta": 10000, "act_final_remainder": true,
//  "kv_layout": "compact", "weight_type": "bf16"}: config fields that keep every weight's
// shape, and the engine options act_final_remainder (bool), kv_layout ("reference" /
// "compact") and weight_type ("f32" / "bf16"), and "intervene": an intervention object
// (mythos/intervention.h, docs/inside-the-loop.md). The text is untrusted (typed by a user, or
// read from a file): every problem is an ArgumentError or ConfigError on one line that
// starts with "config variant".
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mythos/config.h"
#include "mythos/intervention.h"
#include "mythos/model.h"

namespace mythos {

struct Variant {
    Config config;
    EngineOptions options;
    std::vector<std::string> changes;         // "key=value" per field, in the object's order
    std::optional<Intervention> intervention; // "intervene"; set on the variant's model (checked there)
};

// Parses the text: a JSON object, or an ArgumentError (before any model is opened, so a
// typo is reported at once).
nlohmann::json parseVariant(std::string_view text);
// Applies a parsed variant to a model's config and options. The config is validated again;
// whether the weights still fit it is the Model constructor's check.
Variant applyVariant(const Config& base, const EngineOptions& baseOptions, const nlohmann::json& variant);

} // namespace mythos
