#include "mythos/engineoptions.h"

#include <nlohmann/json.hpp>

#include "mythos/errors.h"

namespace mythos {

nlohmann::json engineOptionsToJson(const EngineOptions& o) {
    return {{"act_final_remainder", o.actFinalRemainder},
            {"kv_layout", kvLayoutName(o.kvLayout)},
            {"weight_type", weightTypeName(o.weightType)}};
}

bool isEngineOptionKey(std::string_view key) {
    return key == "act_final_remainder" || key == "kv_layout" || key == "weight_type";
}

void setEngineOption(EngineOptions& o, std::string_view key, const nlohmann::json& value) {
    if (key == "act_final_remainder") {
        if (!value.is_boolean())
            throw ArgumentError("act_final_remainder must be true or false");
        o.actFinalRemainder = value.get<bool>();
    } else if (key == "kv_layout") {
        if (!value.is_string())
            throw ArgumentError("kv_layout must be \"reference\" or \"compact\"");
        o.kvLayout = parseKvLayout(value.get<std::string>());
    } else if (key == "weight_type") {
        if (!value.is_string())
            throw ArgumentError("weight_type must be \"f32\" or \"bf16\"");
        o.weightType = parseWeightType(value.get<std::string>());
    } else {
        throw ArgumentError("'" + std::string(key) +
                            "' is not an engine option (act_final_remainder, kv_layout, weight_type)");
    }
}

EngineOptions engineOptionsFromJson(const nlohmann::json& j, EngineOptions base) {
    if (j.is_null())
        return base;
    if (!j.is_object())
        throw ArgumentError("engine options must be a JSON object, e.g. {\"kv_layout\": \"compact\"}");
    for (auto it = j.begin(); it != j.end(); ++it)
        setEngineOption(base, it.key(), it.value());
    return base;
}

std::string describeEngineOptions(const EngineOptions& o) {
    return "kv_layout " + kvLayoutName(o.kvLayout) + ", act_final_remainder " + (o.actFinalRemainder ? "on" : "off") +
           ", weights " + weightTypeName(o.weightType);
}

} // namespace mythos
