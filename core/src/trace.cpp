#include "mythos/trace.h"

#include <cmath>
#include <limits>

#include "mythos/errors.h"
#include "mythos/fileio.h"

namespace mythos {

using nlohmann::json;

namespace {

// Flat row-major vector -> nested arrays of the given dims.
template <typename T>
json nest(const std::vector<T>& v, const std::vector<int64_t>& dims, std::size_t level = 0, std::size_t offset = 0) {
    json a = json::array();
    if (level + 1 == dims.size()) {
        for (int64_t i = 0; i < dims[level]; ++i) {
            const T x = v[offset + std::size_t(i)];
            if constexpr (std::is_floating_point_v<T>) {
                if (std::isfinite(x))
                    a.push_back(x);
                else
                    a.push_back(nullptr); // JSON has no inf/nan
            } else {
                a.push_back(x);
            }
        }
        return a;
    }
    std::size_t stride = 1;
    for (std::size_t l = level + 1; l < dims.size(); ++l)
        stride *= std::size_t(dims[l]);
    for (int64_t i = 0; i < dims[level]; ++i)
        a.push_back(nest(v, dims, level + 1, offset + std::size_t(i) * stride));
    return a;
}

class Reader {
public:
    explicit Reader(std::string source) : m_source(std::move(source)) {}

    [[noreturn]] void fail(const std::string& what) const { throw FormatError(m_source + ": " + what); }

    const json& field(const json& obj, const char* key) const {
        if (!obj.is_object() || !obj.contains(key))
            fail(std::string("missing field '") + key + "'");
        return obj.at(key);
    }

    int64_t integer(const json& obj, const char* key, int64_t lo, int64_t hi) const {
        const json& v = field(obj, key);
        if (!v.is_number_integer())
            fail(std::string("field '") + key + "' must be an integer");
        const int64_t x = v.get<int64_t>();
        if (x < lo || x > hi)
            fail(std::string("field '") + key + "' = " + std::to_string(x) + " is outside [" + std::to_string(lo) +
                 ", " + std::to_string(hi) + "]");
        return x;
    }

    template <typename T>
    void flatten(const json& a, const std::vector<int64_t>& dims, std::vector<T>& out, const std::string& name,
                 std::size_t level = 0) const {
        if (!a.is_array() || int64_t(a.size()) != dims[level])
            fail("'" + name + "' must be an array of " + std::to_string(dims[level]) + " at depth " +
                 std::to_string(level));
        for (const auto& x : a) {
            if (level + 1 < dims.size()) {
                flatten(x, dims, out, name, level + 1);
                continue;
            }
            if constexpr (std::is_floating_point_v<T>) {
                if (x.is_null())
                    out.push_back(std::numeric_limits<T>::quiet_NaN());
                else if (x.is_number())
                    out.push_back(x.get<T>());
                else
                    fail("'" + name + "' holds a non-number");
            } else {
                if (!x.is_number_integer())
                    fail("'" + name + "' holds a non-integer");
                out.push_back(T(x.get<int64_t>()));
            }
        }
    }

    template <typename T>
    std::vector<T> array(const json& obj, const char* key, const std::vector<int64_t>& dims) const {
        std::vector<T> out;
        flatten(field(obj, key), dims, out, key);
        return out;
    }

private:
    std::string m_source;
};

Trace traceFromJsonChecked(const json& j, const std::string& source);

} // namespace

json traceToJson(const Trace& tr, bool includeLogits) {
    const int64_t L = tr.loopsExecuted, B = tr.batch, T = tr.seqLen, K = tr.topK, E = tr.nExperts;
    json j;
    j["schema"] = kTraceSchema;
    j["model"] = tr.model;
    j["weights_hash"] = tr.weightsHash;
    j["config"] = configToJson(tr.config);
    j["options"] = tr.options;
    j["batch"] = B;
    j["seq_len"] = T;
    j["start_pos"] = tr.startPos;
    j["n_loops"] = tr.nLoops;
    j["loops_executed"] = L;
    j["ids"] = nest(tr.ids, {B, T});
    if (!tr.pieces.empty())
        j["pieces"] = nest(tr.pieces, {B, T});
    j["act"] = {{"threshold", tr.config.act_threshold},
                {"p", nest(tr.actP, {L, B, T})},
                {"cum_p", nest(tr.actCumP, {L, B, T})},
                {"weight", nest(tr.actWeight, {L, B, T})},
                {"halt_loop", nest(tr.haltLoop, {B, T})},
                {"weight_sum", nest(tr.weightSum, {B, T})}};
    j["h_norm"] = nest(tr.hNorm, {L, B, T});
    j["h_delta"] = nest(tr.hDelta, {L, B, T});
    j["routing"] = {{"top_k", K},
                    {"n_experts", E},
                    {"topk_ids", nest(tr.topkIds, {L, B, T, K})},
                    {"weights", nest(tr.topkWeights, {L, B, T, K})},
                    {"router_logits", nest(tr.routerLogits, {L, B, T, E})},
                    {"router_bias", tr.routerBias}};
    j["injection"] = {{"A", tr.injA}, {"B", tr.injB}, {"rho_A", tr.rhoA}};
    j["rho_A"] = tr.rhoA;
    j["vocab"] = tr.vocab;
    if (includeLogits && !tr.logits.empty())
        j["logits"] = nest(tr.logits, {B, T, tr.vocab});
    if (tr.hasKv) {
        json entries = json::array();
        for (const auto& e : tr.kv.entries) {
            json tensors = json::object();
            for (const auto& t : e.reference)
                tensors[t.name] = {{"shape", t.shape}, {"bytes", t.bytes}};
            entries.push_back({{"key", e.key},
                               {"positions", e.positions},
                               {"bytes", e.referenceBytes},
                               {"engine_bytes", e.engineBytes},
                               {"tensors", tensors}});
        }
        j["kv"] = {{"layout", "reference"},
                   {"engine_layout", tr.kv.engineLayout},
                   {"batch", tr.kv.batch},
                   {"total_bytes", tr.kv.referenceBytes},
                   {"engine_total_bytes", tr.kv.engineBytes},
                   {"entries", entries}};
    }
    json timings = json::object();
    for (const auto& [k, v] : tr.timingsMs)
        timings[k] = v;
    j["timings_ms"] = timings;
    return j;
}

Trace traceFromJson(const json& j, const std::string& source) {
    // Every field is checked below; this only turns a missed type mismatch into the same
    // kind of error instead of an nlohmann exception escaping the engine.
    try {
        return traceFromJsonChecked(j, source);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(source + ": malformed trace (" + e.what() + ")");
    }
}

namespace {
Trace traceFromJsonChecked(const json& j, const std::string& source) {
    Reader r(source);
    if (!j.is_object())
        r.fail("not a trace (the top level is not a JSON object)");
    const json& schema = r.field(j, "schema");
    if (!schema.is_string() || schema.get<std::string>() != kTraceSchema)
        r.fail(std::string("unsupported trace schema ") + schema.dump() + " (this version reads " + kTraceSchema + ")");
    Trace tr;
    try {
        tr.config = configFromJson(r.field(j, "config"), source + ": config");
    } catch (const ConfigError& e) {
        throw FormatError(e.what());
    }
    constexpr int64_t kMax = 1 << 20;
    tr.batch = r.integer(j, "batch", 1, kMax);
    tr.seqLen = r.integer(j, "seq_len", 1, kMax);
    tr.startPos = r.integer(j, "start_pos", 0, std::numeric_limits<int32_t>::max());
    tr.nLoops = r.integer(j, "n_loops", 0, kMax);
    tr.loopsExecuted = r.integer(j, "loops_executed", 0, kMax);
    if (j.contains("model") && j["model"].is_string())
        tr.model = j["model"].get<std::string>();
    if (j.contains("weights_hash") && j["weights_hash"].is_string())
        tr.weightsHash = j["weights_hash"].get<std::string>();
    if (j.contains("options") && j["options"].is_object())
        tr.options = j["options"];
    const int64_t L = tr.loopsExecuted, B = tr.batch, T = tr.seqLen;
    tr.ids = r.array<int32_t>(j, "ids", {B, T});
    if (j.contains("pieces")) {
        const json& p = j["pieces"];
        if (!p.is_array() || int64_t(p.size()) != B)
            r.fail("'pieces' must be an array of " + std::to_string(B) + " rows");
        for (const auto& row : p) {
            if (!row.is_array() || int64_t(row.size()) != T)
                r.fail("'pieces' rows must hold " + std::to_string(T) + " strings");
            for (const auto& s : row) {
                if (!s.is_string())
                    r.fail("'pieces' holds a non-string");
                tr.pieces.push_back(s.get<std::string>());
            }
        }
    }
    const json& act = r.field(j, "act");
    tr.actP = r.array<float>(act, "p", {L, B, T});
    tr.actCumP = r.array<float>(act, "cum_p", {L, B, T});
    tr.actWeight = r.array<float>(act, "weight", {L, B, T});
    tr.haltLoop = r.array<int32_t>(act, "halt_loop", {B, T});
    tr.weightSum = r.array<float>(act, "weight_sum", {B, T});
    tr.hNorm = r.array<float>(j, "h_norm", {L, B, T});
    tr.hDelta = r.array<float>(j, "h_delta", {L, B, T});
    const json& routing = r.field(j, "routing");
    tr.topK = r.integer(routing, "top_k", 0, 4096);
    tr.nExperts = r.integer(routing, "n_experts", 0, 1 << 16);
    tr.topkIds = r.array<int32_t>(routing, "topk_ids", {L, B, T, tr.topK});
    tr.topkWeights = r.array<float>(routing, "weights", {L, B, T, tr.topK});
    if (routing.contains("router_logits"))
        tr.routerLogits = r.array<float>(routing, "router_logits", {L, B, T, tr.nExperts});
    if (routing.contains("router_bias"))
        tr.routerBias = r.array<float>(routing, "router_bias", {tr.nExperts});
    for (int32_t id : tr.topkIds)
        if (id < 0 || id >= tr.nExperts)
            r.fail("routing.topk_ids holds expert " + std::to_string(id) + " outside [0, n_experts)");
    const json& inj = r.field(j, "injection");
    const int64_t D = tr.config.dim;
    tr.injA = r.array<float>(inj, "A", {D});
    tr.injB = r.array<float>(inj, "B", {D});
    const json& rho = r.field(inj, "rho_A");
    if (!rho.is_number())
        r.fail("'injection.rho_A' must be a number");
    tr.rhoA = rho.get<double>();
    tr.vocab = j.contains("vocab") ? r.integer(j, "vocab", 1, 1 << 24) : tr.config.vocab_size;
    if (j.contains("logits"))
        tr.logits = r.array<float>(j, "logits", {B, T, tr.vocab});
    if (j.contains("kv")) {
        const json& kv = j["kv"];
        if (!kv.is_object())
            r.fail("'kv' must be an object");
        tr.hasKv = true;
        tr.kv.engineLayout = "reference";
        if (kv.contains("engine_layout")) {
            if (!kv["engine_layout"].is_string())
                r.fail("'kv.engine_layout' must be a string");
            tr.kv.engineLayout = kv["engine_layout"].get<std::string>();
        }
        tr.kv.batch = r.integer(kv, "batch", 0, kMax);
        tr.kv.referenceBytes = r.integer(kv, "total_bytes", 0, std::numeric_limits<int64_t>::max());
        tr.kv.engineBytes = r.integer(kv, "engine_total_bytes", 0, std::numeric_limits<int64_t>::max());
        const json& entries = r.field(kv, "entries");
        if (!entries.is_array())
            r.fail("'kv.entries' must be an array");
        for (const auto& e : entries) {
            KvLedgerEntry le;
            const json& key = r.field(e, "key");
            if (!key.is_string())
                r.fail("'kv.entries[].key' must be a string");
            le.key = key.get<std::string>();
            le.positions = r.integer(e, "positions", 0, std::numeric_limits<int64_t>::max());
            le.referenceBytes = r.integer(e, "bytes", 0, std::numeric_limits<int64_t>::max());
            le.engineBytes = r.integer(e, "engine_bytes", 0, std::numeric_limits<int64_t>::max());
            if (e.contains("tensors") && e["tensors"].is_object())
                for (const auto& [name, t] : e["tensors"].items()) {
                    KvTensorShape s;
                    s.name = name;
                    if (!t.is_object() || !t.contains("shape") || !t["shape"].is_array())
                        r.fail("'kv.entries[].tensors' entries need a shape");
                    for (const auto& d : t["shape"]) {
                        if (!d.is_number_integer())
                            r.fail("'kv' tensor shapes must hold integers");
                        s.shape.push_back(d.get<int64_t>());
                    }
                    s.bytes = r.integer(t, "bytes", 0, std::numeric_limits<int64_t>::max());
                    le.reference.push_back(std::move(s));
                }
            tr.kv.entries.push_back(std::move(le));
        }
    }
    if (j.contains("timings_ms") && j["timings_ms"].is_object())
        for (const auto& [k, v] : j["timings_ms"].items())
            if (v.is_number())
                tr.timingsMs.emplace_back(k, v.get<double>());
    return tr;
}

} // namespace

void saveTrace(const std::filesystem::path& path, const Trace& tr, bool includeLogits) {
    writeFileAtomic(path, traceToJson(tr, includeLogits).dump() + "\n");
}

Trace loadTrace(const std::filesystem::path& path) {
    const std::string text = readTextFile(path, 1ull << 30);
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded())
        throw FormatError(path.string() + ": not valid JSON");
    return traceFromJson(j, path.string());
}

} // namespace mythos
