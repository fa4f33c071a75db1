#include "mythos/variant.h"

#include "mythos/errors.h"
#include "mythos/intervention.h"

namespace mythos {

namespace {
[[noreturn]] void fail(const std::string& what) { throw ArgumentError("config variant: " + what); }
} // namespace

nlohmann::json parseVariant(std::string_view text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail("not valid JSON: " + jsonErrorDetail(e));
    }
    if (!j.is_object())
        fail("must be a JSON object of fields to change, e.g. {\"act_threshold\": 0.9}");
    return j;
}

Variant applyVariant(const Config& base, const EngineOptions& baseOptions, const nlohmann::json& variant) {
    if (!variant.is_object())
        fail("must be a JSON object of fields to change, e.g. {\"act_threshold\": 0.9}");
    Variant v;
    v.options = baseOptions;
    nlohmann::json cfg = configToJson(base);
    for (auto it = variant.begin(); it != variant.end(); ++it) {
        const std::string& key = it.key();
        const nlohmann::json& value = it.value();
        v.changes.push_back(key + "=" + value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        try {
            if (key == "intervene") {
                v.intervention = interventionFromJson(value);
                v.changes.back() = "intervene: " + v.intervention->describe();
            } else if (isEngineOptionKey(key)) {
                setEngineOption(v.options, key, value); // its ArgumentError, prefixed below
            } else if (!cfg.contains(key)) {
                fail("'" + key + "' is not a config field or engine option");
            } else {
                cfg[key] = value;
            }
        } catch (const ArgumentError& e) {
            const std::string msg = e.what();
            if (msg.rfind("config variant", 0) == 0)
                throw;
            fail(msg);
        }
    }
    try {
        v.config = configFromJson(cfg, "config variant");
    } catch (const ConfigError& e) {
        throw ConfigError(oneLine(e.what()));
    }
    return v;
}

} // namespace mythos
