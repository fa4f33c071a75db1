#include "mythos/trace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "mythos/analysis.h"
#include "mythos/checked.h"
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

// A numeric array of a trace read straight into a flat vector by the streaming reader
// (parseTrace), instead of a json DOM of 16+ bytes per number: the large arrays (logits,
// the per-loop records) are most of a trace. `dims` is the shape as seen; a problem is the
// first one met (kept to report it like the DOM reader does).
struct NumericBlock {
    std::vector<int64_t> dims; // observed length of each level
    std::vector<float> values; // leaves in order (integers too, until one is not exact)
    std::vector<int64_t> ints; // leaves while every one so far is an integer
    bool allInts = true;
    // Arrays open around the numbers: dims.size() for every number of a well-formed array.
    int minLeafDepth = std::numeric_limits<int>::max(), maxLeafDepth = 0;
    int maxArrayDepth = 0; // deepest array
    int raggedDepth = -1;  // first level (0-based, like dims) whose rows differ in length
    bool nonNumber = false;
};
using Blocks = std::map<std::string, NumericBlock, std::less<>>;

class Reader {
public:
    explicit Reader(std::string source, const Blocks* blocks = nullptr)
        : m_source(std::move(source)), m_blocks(blocks) {}

    [[noreturn]] void fail(const std::string& what) const { throw FormatError(m_source + ": " + what); }
    const std::string& source() const { return m_source; }

    const json& field(const json& obj, const char* key) const {
        if (!obj.is_object() || !obj.contains(key))
            fail(std::string("missing field '") + key + "'");
        return obj.at(key);
    }

    int64_t integer(const json& obj, const char* key, int64_t lo, int64_t hi) const {
        const json& v = field(obj, key);
        if (!v.is_number_integer())
            fail(std::string("field '") + key + "' must be an integer");
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
            fail(std::string("field '") + key + "' = " + v.dump() + " is outside [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]");
        const int64_t x = v.get<int64_t>();
        if (x < lo || x > hi)
            fail(std::string("field '") + key + "' = " + std::to_string(x) + " is outside [" + std::to_string(lo) +
                 ", " + std::to_string(hi) + "]");
        return x;
    }

    [[noreturn]] void notAnArrayOf(const std::string& name, const std::vector<int64_t>& dims, std::size_t level) const {
        fail("'" + name + "' must be an array of " + std::to_string(dims[level]) + " at depth " +
             std::to_string(level));
    }

    template <typename T>
    void flatten(const json& a, const std::vector<int64_t>& dims, std::vector<T>& out, const std::string& name,
                 std::size_t level = 0) const {
        if (!a.is_array() || int64_t(a.size()) != dims[level])
            notAnArrayOf(name, dims, level);
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
                if (!x.is_number_integer() || !fitsInt32(x))
                    fail("'" + name + "' holds a non-integer");
                out.push_back(T(x.get<int64_t>()));
            }
        }
    }

    // The array at obj[key] with the given dims. `path` names it among the blocks the
    // streaming reader captured ("act.p"); without a block the DOM value is read.
    template <typename T>
    std::vector<T> array(const json& obj, const char* key, const std::vector<int64_t>& dims,
                         const std::string& path) const {
        const json& v = field(obj, key);
        if (m_blocks) {
            const auto it = m_blocks->find(path);
            if (it != m_blocks->end() && v.is_null())
                return fromBlock<T>(it->second, dims, key);
        }
        // Nothing is reserved from the claimed dims: the vector grows with what the file holds.
        std::vector<T> out;
        flatten(v, dims, out, key);
        return out;
    }

private:
    static bool fitsInt32(const json& x) {
        if (x.is_number_unsigned())
            return x.get<uint64_t>() <= uint64_t(std::numeric_limits<int32_t>::max());
        const int64_t v = x.get<int64_t>();
        return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    }

    template <typename T>
    std::vector<T> fromBlock(const NumericBlock& b, const std::vector<int64_t>& dims, const std::string& name) const {
        // The same messages as flatten(): the first level that is not an array of its length
        // (a number where an array belongs, or rows of another or of differing lengths).
        for (std::size_t d = 0; d < dims.size(); ++d) {
            if (int(d) >= b.minLeafDepth)
                notAnArrayOf(name, dims, d);
            if (d >= b.dims.size()) {
                if (d > 0 && b.dims[d - 1] == 0)
                    break; // nothing below an empty level
                notAnArrayOf(name, dims, d);
            }
            if (b.dims[d] != dims[d] || int(d) == b.raggedDepth)
                notAnArrayOf(name, dims, d);
        }
        if (b.nonNumber || b.maxArrayDepth > int(dims.size()) || b.maxLeafDepth > int(dims.size()))
            fail("'" + name + "' holds a non-number");
        if constexpr (std::is_floating_point_v<T>) {
            if (b.allInts)
                return std::vector<T>(b.ints.begin(), b.ints.end());
            return std::vector<T>(b.values.begin(), b.values.end());
        } else {
            if (!b.allInts)
                fail("'" + name + "' holds a non-integer");
            std::vector<T> out;
            out.reserve(b.ints.size());
            for (int64_t v : b.ints) {
                if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max())
                    fail("'" + name + "' holds a non-integer");
                out.push_back(T(v));
            }
            return out;
        }
    }

    std::string m_source;
    const Blocks* m_blocks;
};

// The trace's large numeric arrays, read into blocks as they stream by.
const std::set<std::string, std::less<>>& capturedPaths() {
    static const std::set<std::string, std::less<>> paths = {"ids",
                                                             "act.p",
                                                             "act.cum_p",
                                                             "act.weight",
                                                             "act.halt_loop",
                                                             "act.weight_sum",
                                                             "h_norm",
                                                             "h_delta",
                                                             "routing.topk_ids",
                                                             "routing.weights",
                                                             "routing.router_logits",
                                                             "logits",
                                                             "lens.act.logits",
                                                             "lens.state.logits",
                                                             "lens.act.top1",
                                                             "lens.state.top1",
                                                             "lens.act.p",
                                                             "lens.state.p",
                                                             "lens.act.entropy",
                                                             "lens.state.entropy",
                                                             "lens.act.kl_final",
                                                             "lens.state.kl_final",
                                                             "lens.act.kl_prev",
                                                             "lens.state.kl_prev",
                                                             "trajectory.coords",
                                                             "trajectory.cos_final"};
    return paths;
}

// SAX handler: builds the DOM of everything but the captured arrays, which become
// NumericBlocks (the DOM holds null in their place).
class TraceSax {
public:
    using number_integer_t = json::number_integer_t;
    using number_unsigned_t = json::number_unsigned_t;
    using number_float_t = json::number_float_t;
    using string_t = json::string_t;
    using binary_t = json::binary_t;

    TraceSax(json& root, Blocks& blocks) : m_dom(root, false), m_blocks(blocks) {}

    bool null() {
        if (m_block)
            return leaf(std::numeric_limits<float>::quiet_NaN(), 0, false);
        return m_dom.null();
    }
    bool boolean(bool v) { return m_block ? other() : m_dom.boolean(v); }
    bool number_integer(number_integer_t v) { return m_block ? leaf(float(v), v, true) : m_dom.number_integer(v); }
    bool number_unsigned(number_unsigned_t v) {
        if (!m_block)
            return m_dom.number_unsigned(v);
        if (v <= number_unsigned_t(std::numeric_limits<int64_t>::max()))
            return leaf(float(v), int64_t(v), true);
        return leaf(float(v), 0, false);
    }
    bool number_float(number_float_t v, const string_t& s) {
        return m_block ? leaf(float(v), 0, false) : m_dom.number_float(v, s);
    }
    bool string(string_t& v) { return m_block ? other() : m_dom.string(v); }
    bool binary(binary_t& v) { return m_block ? other() : m_dom.binary(v); }

    bool start_object(std::size_t n) {
        if (m_block) {
            other();
            ++m_skip;
            return true;
        }
        m_frames.push_back({true, {}});
        return m_dom.start_object(n);
    }
    bool key(string_t& k) {
        if (m_block)
            return true; // only inside a skipped object
        m_frames.back().key = k;
        return m_dom.key(k);
    }
    bool end_object() {
        if (m_block) {
            --m_skip;
            return true;
        }
        m_frames.pop_back();
        return m_dom.end_object();
    }
    bool start_array(std::size_t n) {
        if (m_block) {
            if (m_skip > 0) {
                ++m_skip;
                return true;
            }
            NumericBlock& b = *m_block;
            ++m_counts[std::size_t(m_depth) - 1];
            ++m_depth;
            b.maxArrayDepth = std::max(b.maxArrayDepth, m_depth);
            if (m_counts.size() < std::size_t(m_depth))
                m_counts.push_back(0);
            m_counts[std::size_t(m_depth) - 1] = 0;
            return true;
        }
        if (const std::string path = currentPath(); !path.empty() && capturedPaths().count(path)) {
            m_block = &m_blocks[path];
            *m_block = NumericBlock{};
            m_depth = 1;
            m_block->maxArrayDepth = 1;
            m_counts.assign(1, 0);
            return true;
        }
        m_frames.push_back({false, {}});
        return m_dom.start_array(n);
    }
    bool end_array() {
        if (m_block) {
            if (m_skip > 0) {
                --m_skip;
                return true;
            }
            NumericBlock& b = *m_block;
            const std::size_t level = std::size_t(m_depth) - 1;
            const int64_t n = m_counts[level];
            if (b.dims.size() <= level)
                b.dims.resize(level + 1, -1);
            if (b.dims[level] < 0)
                b.dims[level] = n;
            else if (b.dims[level] != n && b.raggedDepth < 0)
                b.raggedDepth = int(level);
            if (--m_depth == 0) {
                m_block = nullptr;
                return m_dom.null(); // the key's value in the DOM
            }
            return true;
        }
        m_frames.pop_back();
        return m_dom.end_array();
    }
    bool parse_error(std::size_t /*position*/, const std::string& /*token*/, const nlohmann::detail::exception& e) {
        m_error = jsonErrorDetail(e);
        return false;
    }
    const std::string& error() const { return m_error; }

private:
    struct Frame {
        bool object;
        std::string key;
    };

    // "act.p" for the value about to start, when every level above it is an object.
    std::string currentPath() const {
        std::string path;
        for (const auto& f : m_frames) {
            if (!f.object)
                return {};
            path += (path.empty() ? "" : ".") + f.key;
        }
        return path;
    }

    // One element (a number or anything else) at the current depth of the captured array.
    void countElement() {
        m_block->minLeafDepth = std::min(m_block->minLeafDepth, m_depth);
        m_block->maxLeafDepth = std::max(m_block->maxLeafDepth, m_depth);
        ++m_counts[std::size_t(m_depth) - 1];
    }

    bool leaf(float f, int64_t i, bool isInt) {
        if (m_skip > 0)
            return true;
        countElement();
        NumericBlock& b = *m_block;
        if (b.allInts && !isInt) {
            b.allInts = false;
            b.values.assign(b.ints.begin(), b.ints.end());
            std::vector<int64_t>().swap(b.ints);
        }
        if (b.allInts)
            b.ints.push_back(i);
        else
            b.values.push_back(f);
        return true;
    }
    bool other() {
        if (m_skip > 0)
            return true;
        m_block->nonNumber = true;
        countElement();
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<json> m_dom;
    Blocks& m_blocks;
    std::vector<Frame> m_frames;
    NumericBlock* m_block = nullptr;
    int m_depth = 0;               // nesting inside the captured array
    int m_skip = 0;                // nesting inside a non-number value there
    std::vector<int64_t> m_counts; // elements so far at each level
    std::string m_error;
};

Trace traceFromJsonChecked(const json& j, const Reader& r);
void validateTrace(const Trace& tr, const Reader& r);

// Every field is checked in traceFromJsonChecked; this only turns a missed type mismatch
// into the same kind of error instead of an nlohmann exception escaping the engine.
Trace readTrace(const json& j, const Reader& r) {
    try {
        return traceFromJsonChecked(j, r);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(r.source() + ": malformed trace (" + e.what() + ")");
    }
}

} // namespace

namespace {

json lensSideToJson(const LensSide& s, int64_t K, int64_t B, int64_t T, int64_t V, bool includeLogits) {
    json j = {{"top1", nest(s.top1, {K, B, T})},       {"p", nest(s.p, {K, B, T})},
              {"entropy", nest(s.entropy, {K, B, T})}, {"kl_final", nest(s.klFinal, {K, B, T})},
              {"kl_prev", nest(s.klPrev, {K, B, T})},  {"convergence", nest(s.convergence, {B, T})}};
    if (includeLogits && !s.logits.empty())
        j["logits"] = nest(s.logits, {K, B, T, V});
    return j;
}

// The optional parts of docs/trace-schema.md, "inside the loop".
void writeInsideParts(json& j, const Trace& tr, bool includeLogits) {
    const int64_t B = tr.batch, T = tr.seqLen;
    if (const int64_t K = tr.lens.loops) {
        j["lens"] = {{"version", 1},
                     {"loops", K},
                     {"act", lensSideToJson(tr.lens.act, K, B, T, tr.vocab, includeLogits)},
                     {"state", lensSideToJson(tr.lens.state, K, B, T, tr.vocab, includeLogits)}};
        if (!tr.lens.pieces.empty()) {
            json pieces = json::object();
            for (const auto& [id, text] : tr.lens.pieces)
                pieces[std::to_string(id)] = text;
            j["lens"]["pieces"] = std::move(pieces);
        }
    }
    if (!tr.attention.sites.empty()) {
        json sites = json::array();
        const int64_t H = tr.config.n_heads, W = tr.attentionEnd() - tr.attention.from;
        for (const auto& s : tr.attention.sites)
            sites.push_back({{"name", s.name},
                             {"stage", s.stage},
                             {"layer", s.layer},
                             {"loop", s.loop},
                             {"probs", nest(s.probs, {H, W, W})}});
        j["attention"] = {{"version", 1},
                          {"batch_row", tr.attention.batchRow},
                          {"from", tr.attention.from},
                          {"to", tr.attentionEnd()},
                          {"sites", std::move(sites)}};
    }
    if (const int64_t K = tr.trajectory.loops) {
        j["trajectory"] = {{"version", 1},
                           {"loops", K},
                           {"explained", {tr.trajectory.explained[0], tr.trajectory.explained[1]}},
                           {"coords", nest(tr.trajectory.coords, {K, B, T, 2})},
                           {"cos_final", nest(tr.trajectory.cosFinal, {K, B, T})},
                           {"delta", nest(tr.trajectory.delta, {K, B, T})}};
    }
    if (!tr.intervention.is_null())
        j["intervention"] = tr.intervention;
}

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
    j["act"] = {{"threshold", tr.config.act_threshold},   {"p", nest(tr.actP, {L, B, T})},
                {"cum_p", nest(tr.actCumP, {L, B, T})},   {"weight", nest(tr.actWeight, {L, B, T})},
                {"halt_loop", nest(tr.haltLoop, {B, T})}, {"weight_sum", nest(tr.weightSum, {B, T})}};
    j["h_norm"] = nest(tr.hNorm, {L, B, T});
    j["h_delta"] = nest(tr.hDelta, {L, B, T});
    j["routing"] = {{"top_k", K},
                    {"n_experts", E},
                    {"topk_ids", nest(tr.topkIds, {L, B, T, K})},
                    {"weights", nest(tr.topkWeights, {L, B, T, K})}};
    // Optional when read, so written only when held (whole).
    if (!tr.routerLogits.empty())
        j["routing"]["router_logits"] = nest(tr.routerLogits, {L, B, T, E});
    if (!tr.routerBias.empty())
        j["routing"]["router_bias"] = nest(tr.routerBias, {E});
    const json rho = std::isfinite(tr.rhoA) ? json(tr.rhoA) : json(nullptr);
    j["injection"] = {{"A", nest(tr.injA, {int64_t(tr.injA.size())})},
                      {"B", nest(tr.injB, {int64_t(tr.injB.size())})},
                      {"rho_A", rho}};
    j["rho_A"] = rho;
    j["vocab"] = tr.vocab;
    if (includeLogits && !tr.logits.empty())
        j["logits"] = nest(tr.logits, {B, T, tr.vocab});
    if (tr.topLogitK > 0 && !tr.topLogitPositions.empty()) {
        const int64_t P = int64_t(tr.topLogitPositions.size());
        j["logits_topk"] = {{"k", tr.topLogitK},
                            {"positions", tr.topLogitPositions},
                            {"ids", nest(tr.topLogitIds, {B, P, tr.topLogitK})},
                            {"values", nest(tr.topLogitValues, {B, P, tr.topLogitK})},
                            {"logsumexp", nest(tr.logitLse, {B, P})}};
    }
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
    writeInsideParts(j, tr, includeLogits);
    return j;
}

Trace traceFromJson(const json& j, const std::string& source) { return readTrace(j, Reader(source)); }

namespace {
// A part whose version this reader does not know is skipped (the rest of the trace stays
// readable); a known one is checked like the rest of the file.
bool knownPart(const json& j, const char* key, const Reader& r) {
    if (!j.contains(key))
        return false;
    const json& part = j[key];
    if (!part.is_object())
        r.fail(std::string("'") + key + "' must be an object");
    return r.integer(part, "version", 0, std::numeric_limits<int32_t>::max()) == 1;
}

LensSide readLensSide(const json& lens, const char* key, const Reader& r, int64_t K, int64_t B, int64_t T, int64_t V) {
    const json& o = r.field(lens, key);
    if (!o.is_object())
        r.fail(std::string("'lens.") + key + "' must be an object");
    const std::string at = std::string("lens.") + key + ".";
    LensSide s;
    s.top1 = r.array<int32_t>(o, "top1", {K, B, T}, at + "top1");
    s.p = r.array<float>(o, "p", {K, B, T}, at + "p");
    s.entropy = r.array<float>(o, "entropy", {K, B, T}, at + "entropy");
    s.klFinal = r.array<float>(o, "kl_final", {K, B, T}, at + "kl_final");
    s.klPrev = r.array<float>(o, "kl_prev", {K, B, T}, at + "kl_prev");
    s.convergence = r.array<int32_t>(o, "convergence", {B, T}, at + "convergence");
    if (o.contains("logits"))
        s.logits = r.array<float>(o, "logits", {K, B, T, V}, at + "logits");
    for (int32_t id : s.top1)
        if (id < 0 || id >= V)
            r.fail("'" + at + "top1' holds token " + std::to_string(id) + " outside [0, vocab)");
    for (int32_t c : s.convergence)
        if (c < 1 || c > K)
            r.fail("'" + at + "convergence' holds loop " + std::to_string(c) + " outside [1, " + std::to_string(K) +
                   "]");
    return s;
}

void readInsideParts(const json& j, const Reader& r, Trace& tr) {
    const int64_t B = tr.batch, T = tr.seqLen;
    if (knownPart(j, "lens", r)) {
        const json& lens = j["lens"];
        const int64_t K = r.integer(lens, "loops", 1, kMaxLoops);
        tr.lens.act = readLensSide(lens, "act", r, K, B, T, tr.vocab);
        tr.lens.state = readLensSide(lens, "state", r, K, B, T, tr.vocab);
        if (lens.contains("pieces")) {
            const json& pieces = lens["pieces"];
            if (!pieces.is_object() || int64_t(pieces.size()) > tr.vocab)
                r.fail("'lens.pieces' must be an object of at most vocab token texts");
            for (const auto& [key, text] : pieces.items()) {
                int64_t id = -1;
                const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
                if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id >= tr.vocab ||
                    !text.is_string())
                    r.fail("'lens.pieces' maps token ids in [0, vocab) to strings");
                tr.lens.pieces.emplace_back(int32_t(id), text.get<std::string>());
            }
            std::sort(tr.lens.pieces.begin(), tr.lens.pieces.end());
        }
        tr.lens.loops = K;
    }
    if (knownPart(j, "attention", r)) {
        const json& att = j["attention"];
        tr.attention.batchRow = r.integer(att, "batch_row", 0, B - 1);
        tr.attention.from = att.contains("from") ? r.integer(att, "from", 0, T - 1) : 0;
        tr.attention.to = att.contains("to") ? r.integer(att, "to", tr.attention.from + 1, T) : T;
        const int64_t W = tr.attention.to - tr.attention.from;
        const json& sites = r.field(att, "sites");
        if (!sites.is_array() || int64_t(sites.size()) > kMaxLoops + tr.config.prelude_layers + tr.config.coda_layers)
            r.fail("'attention.sites' must be an array of at most one entry per attention application");
        const int64_t H = tr.config.n_heads;
        for (const auto& s : sites) {
            AttentionSite site;
            const json& name = r.field(s, "name");
            const json& stage = r.field(s, "stage");
            if (!name.is_string() || !stage.is_string())
                r.fail("'attention.sites[]' needs a name and a stage (strings)");
            site.name = name.get<std::string>();
            site.stage = stage.get<std::string>();
            if (site.stage != "prelude" && site.stage != "recurrent" && site.stage != "coda")
                r.fail("'attention.sites[].stage' must be prelude, recurrent or coda");
            site.layer = r.integer(s, "layer", 0, std::numeric_limits<int32_t>::max());
            site.loop = r.integer(s, "loop", 0, kMaxLoops);
            site.probs = r.array<float>(s, "probs", {H, W, W}, "attention.sites[].probs");
            tr.attention.sites.push_back(std::move(site));
        }
    }
    if (knownPart(j, "trajectory", r)) {
        const json& tj = j["trajectory"];
        const int64_t K = r.integer(tj, "loops", 1, kMaxLoops);
        // Doubles, as the record holds and writes them (float would not round-trip).
        const std::vector<double> ex = r.array<double>(tj, "explained", {2}, "trajectory.explained");
        tr.trajectory.explained[0] = ex[0];
        tr.trajectory.explained[1] = ex[1];
        tr.trajectory.coords = r.array<float>(tj, "coords", {K, B, T, 2}, "trajectory.coords");
        tr.trajectory.cosFinal = r.array<float>(tj, "cos_final", {K, B, T}, "trajectory.cos_final");
        if (tj.contains("delta"))
            tr.trajectory.delta = r.array<float>(tj, "delta", {K, B, T}, "trajectory.delta");
        tr.trajectory.loops = K;
    }
    if (j.contains("intervention")) {
        if (!j["intervention"].is_object())
            r.fail("'intervention' must be an object");
        tr.intervention = j["intervention"];
    }
}

Trace traceFromJsonChecked(const json& j, const Reader& r) {
    const std::string& source = r.source();
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
    tr.nLoops = r.integer(j, "n_loops", 0, kMaxLoops);
    tr.loopsExecuted = r.integer(j, "loops_executed", 0, kMaxLoops);
    if (j.contains("model") && j["model"].is_string())
        tr.model = j["model"].get<std::string>();
    if (j.contains("weights_hash") && j["weights_hash"].is_string())
        tr.weightsHash = j["weights_hash"].get<std::string>();
    if (j.contains("options") && j["options"].is_object())
        tr.options = j["options"];
    const int64_t L = tr.loopsExecuted, B = tr.batch, T = tr.seqLen;
    tr.ids = r.array<int32_t>(j, "ids", {B, T}, "ids");
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
    tr.actP = r.array<float>(act, "p", {L, B, T}, "act.p");
    tr.actCumP = r.array<float>(act, "cum_p", {L, B, T}, "act.cum_p");
    tr.actWeight = r.array<float>(act, "weight", {L, B, T}, "act.weight");
    tr.haltLoop = r.array<int32_t>(act, "halt_loop", {B, T}, "act.halt_loop");
    tr.weightSum = r.array<float>(act, "weight_sum", {B, T}, "act.weight_sum");
    tr.hNorm = r.array<float>(j, "h_norm", {L, B, T}, "h_norm");
    tr.hDelta = r.array<float>(j, "h_delta", {L, B, T}, "h_delta");
    const json& routing = r.field(j, "routing");
    tr.topK = r.integer(routing, "top_k", 0, 4096);
    tr.nExperts = r.integer(routing, "n_experts", 0, 1 << 16);
    tr.topkIds = r.array<int32_t>(routing, "topk_ids", {L, B, T, tr.topK}, "routing.topk_ids");
    tr.topkWeights = r.array<float>(routing, "weights", {L, B, T, tr.topK}, "routing.weights");
    if (routing.contains("router_logits"))
        tr.routerLogits = r.array<float>(routing, "router_logits", {L, B, T, tr.nExperts}, "routing.router_logits");
    if (routing.contains("router_bias"))
        tr.routerBias = r.array<float>(routing, "router_bias", {tr.nExperts}, "routing.router_bias");
    for (int32_t id : tr.topkIds)
        if (id < 0 || id >= tr.nExperts)
            r.fail("routing.topk_ids holds expert " + std::to_string(id) + " outside [0, n_experts)");
    const json& inj = r.field(j, "injection");
    const int64_t D = tr.config.dim;
    tr.injA = r.array<float>(inj, "A", {D}, "injection.A");
    tr.injB = r.array<float>(inj, "B", {D}, "injection.B");
    const json& rho = r.field(inj, "rho_A");
    if (!rho.is_number() && !rho.is_null())
        r.fail("'injection.rho_A' must be a number (or null when A is not finite)");
    tr.rhoA = rho.is_null() ? std::numeric_limits<double>::quiet_NaN() : rho.get<double>();
    tr.vocab = j.contains("vocab") ? r.integer(j, "vocab", 1, 1 << 24) : tr.config.vocab_size;
    if (j.contains("logits"))
        tr.logits = r.array<float>(j, "logits", {B, T, tr.vocab}, "logits");
    if (j.contains("logits_topk")) {
        const json& top = j["logits_topk"];
        if (!top.is_object())
            r.fail("'logits_topk' must be an object");
        tr.topLogitK = r.integer(top, "k", 1, std::numeric_limits<int32_t>::max());
        if (tr.topLogitK > tr.vocab)
            r.fail("'logits_topk.k' = " + std::to_string(tr.topLogitK) + " is more than the vocab (" +
                   std::to_string(tr.vocab) + ")");
        const json& pos = r.field(top, "positions");
        if (!pos.is_array() || pos.empty() || int64_t(pos.size()) > T)
            r.fail("'logits_topk.positions' must be an array of 1 to seq_len positions");
        tr.topLogitPositions = r.array<int32_t>(top, "positions", {int64_t(pos.size())}, "logits_topk.positions");
        for (std::size_t i = 0; i < tr.topLogitPositions.size(); ++i)
            if (tr.topLogitPositions[i] < 0 || tr.topLogitPositions[i] >= T ||
                (i > 0 && tr.topLogitPositions[i] <= tr.topLogitPositions[i - 1]))
                r.fail("'logits_topk.positions' must be ascending positions in [0, seq_len)");
        const int64_t P = int64_t(tr.topLogitPositions.size());
        tr.topLogitIds = r.array<int32_t>(top, "ids", {B, P, tr.topLogitK}, "logits_topk.ids");
        for (int32_t id : tr.topLogitIds)
            if (id < 0 || id >= tr.vocab)
                r.fail("'logits_topk.ids' holds token " + std::to_string(id) + " outside [0, vocab)");
        tr.topLogitValues = r.array<float>(top, "values", {B, P, tr.topLogitK}, "logits_topk.values");
        tr.logitLse = r.array<float>(top, "logsumexp", {B, P}, "logits_topk.logsumexp");
    }
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
    readInsideParts(j, r, tr);
    validateTrace(tr, r);
    return tr;
}

// What the shapes alone do not say: the counts agree with the trace's config, every index
// points inside what it indexes, and the sizes the views derive (the KV ledger) fit.
// Values may still be NaN or huge: every view copes with those.
void validateTrace(const Trace& tr, const Reader& r) {
    const Config& c = tr.config;
    auto mismatch = [&](const char* field, int64_t value, const char* configField, int64_t configValue) {
        r.fail(std::string("'") + field + "' = " + std::to_string(value) + " does not match the config's " +
               configField + " = " + std::to_string(configValue));
    };
    if (tr.nExperts != c.n_experts)
        mismatch("routing.n_experts", tr.nExperts, "n_experts", c.n_experts);
    if (tr.topK != c.n_experts_per_tok)
        mismatch("routing.top_k", tr.topK, "n_experts_per_tok", c.n_experts_per_tok);
    if (tr.vocab != c.vocab_size)
        mismatch("vocab", tr.vocab, "vocab_size", c.vocab_size);
    for (int32_t id : tr.ids)
        if (id < 0 || id >= tr.vocab)
            r.fail("'ids' holds token " + std::to_string(id) + " outside [0, vocab = " + std::to_string(tr.vocab) +
                   ")");
    for (int32_t h : tr.haltLoop)
        if (h < 0 || h > tr.loopsExecuted)
            r.fail("'act.halt_loop' holds loop " + std::to_string(h) +
                   " outside [0, loops_executed = " + std::to_string(tr.loopsExecuted) + "]");
    if (!boundedProduct({tr.batch, tr.startPos + tr.seqLen}, int64_t(1) << 40))
        r.fail("'batch' x ('start_pos' + 'seq_len') is too large");
    try {
        // The ledger the KV view and the report build for this trace: its total bounds every
        // entry and every tensor in it, so one product checks them all.
        kvTotalBytes(c, KvLayout::Reference, tr.batch, tr.startPos + tr.seqLen, std::max<int64_t>(1, tr.nLoops));
    } catch (const ArgumentError& e) {
        r.fail(std::string("its KV cache cannot be accounted for: ") + e.what());
    }
    if (tr.hasKv) {
        if (tr.kv.batch != tr.batch)
            r.fail("'kv.batch' = " + std::to_string(tr.kv.batch) +
                   " is not the trace's batch = " + std::to_string(tr.batch));
        for (const auto& e : tr.kv.entries)
            if (!boundedProduct({tr.kv.batch, e.positions, kvBytesPerPosition(c, KvLayout::Reference)}))
                r.fail("'kv.entries' entry '" + e.key + "' holds " + std::to_string(e.positions) +
                       " positions, too many to account for");
        if (int64_t(tr.kv.entries.size()) > kMaxLoops + c.prelude_layers + c.coda_layers)
            r.fail("'kv.entries' holds " + std::to_string(tr.kv.entries.size()) + " entries, more than " +
                   std::to_string(kMaxLoops) + " loops need");
    }
}

} // namespace

void saveTrace(const std::filesystem::path& path, const Trace& tr, bool includeLogits) {
    // A byte-level token's piece may be a lone byte that is not UTF-8: written as U+FFFD
    // rather than failing the save (the ids are what a trace reproduces).
    writeFileAtomic(path, traceToJson(tr, includeLogits).dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

Trace parseTrace(std::string_view text, const std::string& source) {
    json dom;
    Blocks blocks;
    TraceSax sax(dom, blocks);
    // Syntax errors (a number like 1e999 among them) reach the handler, not an exception.
    if (!json::sax_parse(text.begin(), text.end(), &sax) || dom.is_discarded())
        throw FormatError(source + ": not valid JSON" + (sax.error().empty() ? "" : ": " + sax.error()));
    return readTrace(dom, Reader(source, &blocks));
}

Trace loadTrace(const std::filesystem::path& path) {
    return parseTrace(readTextFile(path, kMaxTraceFileBytes), path.string());
}

void setTopLogits(Trace& tr, const std::vector<float>& rows, const std::vector<int32_t>& positions, int64_t k) {
    const int64_t V = tr.vocab, P = int64_t(positions.size());
    if (V <= 0 || P == 0 || int64_t(rows.size()) != tr.batch * P * V)
        throw ArgumentError("setTopLogits: " + std::to_string(rows.size()) + " values for " + std::to_string(tr.batch) +
                            " x " + std::to_string(P) + " rows of " + std::to_string(V));
    k = std::clamp<int64_t>(k, 1, V);
    tr.topLogitK = k;
    tr.topLogitPositions = positions;
    tr.topLogitIds.assign(std::size_t(tr.batch * P * k), 0);
    tr.topLogitValues.assign(std::size_t(tr.batch * P * k), 0.0f);
    tr.logitLse.assign(std::size_t(tr.batch * P), 0.0f);
    std::vector<int32_t> order(static_cast<std::size_t>(V));
    for (int64_t r = 0; r < tr.batch * P; ++r) {
        const float* row = rows.data() + r * V;
        // Largest first (NaN last); equal values by lower id, the same order on every run.
        const auto key = [row](int32_t v) {
            return std::isnan(row[v]) ? -std::numeric_limits<float>::infinity() : row[v];
        };
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&key](int32_t a, int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); });
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t v = 0; v < V; ++v)
            mx = std::max(mx, double(row[v]));
        double sum = 0;
        for (int64_t v = 0; v < V; ++v)
            sum += std::exp(double(row[v]) - mx);
        tr.logitLse[std::size_t(r)] = float(mx + std::log(sum));
        for (int64_t i = 0; i < k; ++i) {
            tr.topLogitIds[std::size_t(r * k + i)] = order[std::size_t(i)];
            tr.topLogitValues[std::size_t(r * k + i)] = row[order[std::size_t(i)]];
        }
    }
}

} // namespace mythos
