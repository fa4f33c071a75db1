#include "mythos/intervention.h"

#include <set>
#include <sstream>

#include "mythos/checked.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/tokenizer.h"

namespace mythos {

namespace {

[[noreturn]] void fail(const std::string& what) { throw ArgumentError("intervention: " + what); }

// Caps on what a file may list: far above any real use, small enough that checking is instant.
constexpr std::size_t kMaxListed = 4096;
constexpr int64_t kMaxPatchIds = int64_t(1) << 20;

void allowOnly(const nlohmann::json& obj, const std::string& where, std::initializer_list<const char*> keys) {
    if (!obj.is_object())
        fail(where + " must be a JSON object");
    const std::set<std::string> allowed(keys.begin(), keys.end());
    for (auto it = obj.begin(); it != obj.end(); ++it)
        if (!allowed.count(it.key())) {
            std::string list;
            for (const char* k : keys)
                list += std::string(list.empty() ? "" : ", ") + k;
            fail("unknown field '" + where + (where.empty() ? "" : ".") + it.key() + "' (known: " + list + ")");
        }
}

int64_t integer(const nlohmann::json& obj, const char* key, const std::string& where, int64_t fallback, int64_t lo,
                int64_t hi) {
    if (!obj.contains(key))
        return fallback;
    const auto& v = obj.at(key);
    if (!v.is_number_integer())
        fail("'" + where + key + "' must be an integer");
    const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
    if (x < lo || x > hi)
        fail("'" + where + key + "' = " + std::to_string(x) + " is outside [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "]");
    return x;
}

const nlohmann::json& listOf(const nlohmann::json& j, const char* key) {
    const auto& v = j.at(key);
    if (!v.is_array())
        fail(std::string("'") + key + "' must be an array");
    if (v.size() > kMaxListed)
        fail(std::string("'") + key + "' lists " + std::to_string(v.size()) + " entries, at most " +
             std::to_string(kMaxListed));
    return v;
}

AttnStage parseStage(const nlohmann::json& v, const std::string& where) {
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "prelude")
            return AttnStage::Prelude;
        if (s == "recurrent")
            return AttnStage::Recurrent;
        if (s == "coda")
            return AttnStage::Coda;
    }
    fail("'" + where + "stage' must be \"prelude\", \"recurrent\" or \"coda\"");
}

} // namespace

const char* attnStageName(AttnStage s) {
    switch (s) {
    case AttnStage::Prelude: return "prelude";
    case AttnStage::Recurrent: return "recurrent";
    case AttnStage::Coda: return "coda";
    }
    return "?";
}

bool Intervention::empty() const {
    return ablateExperts.empty() && ablateHeads.empty() && exit == Exit::None && !injectionOffAfter && !loraScaleZero &&
           loopShift == 0 && !patch;
}

bool Intervention::expertAblated(int64_t e, int64_t j) const {
    for (const auto& a : ablateExperts)
        if (a.expert == e && (a.loop == 0 || a.loop == j + 1))
            return true;
    return false;
}

std::string Intervention::describe() const {
    std::vector<std::string> parts;
    const auto loopText = [](int64_t loop) { return loop ? " at loop " + std::to_string(loop) : std::string(); };
    for (const auto& a : ablateExperts)
        parts.push_back("ablate expert " + std::to_string(a.expert) + loopText(a.loop));
    for (const auto& h : ablateHeads)
        parts.push_back("ablate head " + std::to_string(h.head) + " of " + attnStageName(h.stage) +
                        (h.stage == AttnStage::Recurrent ? loopText(h.loop) : " layer " + std::to_string(h.layer)));
    if (exit == Exit::Fixed)
        parts.push_back("exit at loop " + std::to_string(exitLoop));
    else if (exit == Exit::Convergence)
        parts.push_back("exit at convergence");
    if (injectionOffAfter)
        parts.push_back("no re-injection after loop " + std::to_string(*injectionOffAfter));
    if (loraScaleZero)
        parts.push_back("depth LoRA off");
    if (loopShift)
        parts.push_back("loop embedding shifted by " + std::to_string(loopShift));
    if (patch)
        parts.push_back("patch token " + std::to_string(patch->token) + " at loop " + std::to_string(patch->loop) +
                        " from token " + std::to_string(patch->sourceToken) + " of a second prompt");
    std::string out;
    for (const auto& p : parts)
        out += (out.empty() ? "" : "; ") + p;
    return out.empty() ? "no change" : out;
}

Intervention interventionFromJson(const nlohmann::json& j) {
    allowOnly(j, "",
              {"schema", "name", "ablate_experts", "ablate_heads", "exit", "injection_off_after", "lora_scale_zero",
               "loop_shift", "patch"});
    Intervention iv;
    if (j.contains("schema") && j.at("schema") != kInterventionSchema)
        fail("'schema' must be \"" + std::string(kInterventionSchema) + "\"");
    if (j.contains("name")) {
        if (!j.at("name").is_string())
            fail("'name' must be a string");
        // At most 200 bytes, cut before a character that would straddle the limit: half a
        // UTF-8 sequence could not be written as JSON again (a trace of the modified model).
        iv.name = j.at("name").get<std::string>();
        if (iv.name.size() > 200) {
            std::size_t cut = 200;
            while (cut > 0 && (static_cast<unsigned char>(iv.name[cut]) & 0xC0) == 0x80)
                --cut;
            iv.name.resize(cut);
        }
    }
    if (j.contains("ablate_experts"))
        for (const auto& a : listOf(j, "ablate_experts")) {
            allowOnly(a, "ablate_experts[]", {"expert", "loop"});
            if (!a.contains("expert"))
                fail("'ablate_experts[].expert' is missing");
            iv.ablateExperts.push_back({integer(a, "expert", "ablate_experts[].", 0, 0, INT32_MAX),
                                        integer(a, "loop", "ablate_experts[].", 0, 0, kMaxLoops)});
        }
    if (j.contains("ablate_heads"))
        for (const auto& a : listOf(j, "ablate_heads")) {
            allowOnly(a, "ablate_heads[]", {"stage", "layer", "head", "loop"});
            if (!a.contains("head"))
                fail("'ablate_heads[].head' is missing");
            Intervention::HeadAblation h;
            h.stage = a.contains("stage") ? parseStage(a.at("stage"), "ablate_heads[].") : AttnStage::Recurrent;
            h.layer = integer(a, "layer", "ablate_heads[].", 0, 0, INT32_MAX);
            h.head = integer(a, "head", "ablate_heads[].", 0, 0, INT32_MAX);
            h.loop = integer(a, "loop", "ablate_heads[].", 0, 0, kMaxLoops);
            if (h.stage != AttnStage::Recurrent && h.loop != 0)
                fail("'ablate_heads[].loop' applies to the recurrent stage only");
            iv.ablateHeads.push_back(h);
        }
    if (j.contains("exit")) {
        const auto& e = j.at("exit");
        allowOnly(e, "exit", {"loop", "at"});
        if (e.contains("loop") == e.contains("at"))
            fail("'exit' needs exactly one of \"loop\" (a loop number) and \"at\": \"convergence\"");
        if (e.contains("at")) {
            if (e.at("at") != "convergence")
                fail("'exit.at' must be \"convergence\"");
            iv.exit = Intervention::Exit::Convergence;
        } else {
            iv.exit = Intervention::Exit::Fixed;
            iv.exitLoop = integer(e, "loop", "exit.", 1, 1, kMaxLoops);
        }
    }
    if (j.contains("injection_off_after"))
        iv.injectionOffAfter = integer(j, "injection_off_after", "", 0, 0, kMaxLoops);
    if (j.contains("lora_scale_zero")) {
        if (!j.at("lora_scale_zero").is_boolean())
            fail("'lora_scale_zero' must be true or false");
        iv.loraScaleZero = j.at("lora_scale_zero").get<bool>();
    }
    // Loop 0 always runs: a negative shift would index the embedding below 0.
    iv.loopShift = integer(j, "loop_shift", "", 0, 0, kMaxLoops);
    if (j.contains("patch")) {
        const auto& p = j.at("patch");
        allowOnly(p, "patch", {"token", "loop", "ids", "prompt", "source_token"});
        if (!p.contains("token") || !p.contains("loop"))
            fail("'patch' needs \"token\" and \"loop\"");
        if (p.contains("ids") == p.contains("prompt"))
            fail("'patch' needs exactly one of \"ids\" (token ids) and \"prompt\" (text) for the source prompt");
        Intervention::Patch pt;
        pt.token = integer(p, "token", "patch.", 0, 0, INT32_MAX);
        pt.loop = integer(p, "loop", "patch.", 1, 1, kMaxLoops);
        pt.sourceToken = integer(p, "source_token", "patch.", pt.token, 0, INT32_MAX);
        if (p.contains("prompt")) {
            if (!p.at("prompt").is_string() || p.at("prompt").get<std::string>().empty())
                fail("'patch.prompt' must be a non-empty string");
            pt.prompt = p.at("prompt").get<std::string>();
        } else {
            const auto& ids = p.at("ids");
            if (!ids.is_array() || ids.empty() || int64_t(ids.size()) > kMaxPatchIds)
                fail("'patch.ids' must be a non-empty array of token ids");
            for (const auto& id : ids) {
                if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
                    fail("'patch.ids' must hold token ids (integers >= 0)");
                pt.ids.push_back(id.get<int32_t>());
            }
        }
        iv.patch = std::move(pt);
    }
    return iv;
}

nlohmann::json interventionToJson(const Intervention& iv) {
    nlohmann::json j = {{"schema", kInterventionSchema}};
    if (!iv.name.empty())
        j["name"] = iv.name;
    if (!iv.ablateExperts.empty()) {
        auto& a = j["ablate_experts"] = nlohmann::json::array();
        for (const auto& e : iv.ablateExperts)
            a.push_back({{"expert", e.expert}, {"loop", e.loop}});
    }
    if (!iv.ablateHeads.empty()) {
        auto& a = j["ablate_heads"] = nlohmann::json::array();
        for (const auto& h : iv.ablateHeads)
            a.push_back({{"stage", attnStageName(h.stage)}, {"layer", h.layer}, {"head", h.head}, {"loop", h.loop}});
    }
    if (iv.exit == Intervention::Exit::Fixed)
        j["exit"] = {{"loop", iv.exitLoop}};
    else if (iv.exit == Intervention::Exit::Convergence)
        j["exit"] = {{"at", "convergence"}};
    if (iv.injectionOffAfter)
        j["injection_off_after"] = *iv.injectionOffAfter;
    if (iv.loraScaleZero)
        j["lora_scale_zero"] = true;
    if (iv.loopShift)
        j["loop_shift"] = iv.loopShift;
    if (iv.patch) {
        const auto& p = *iv.patch;
        nlohmann::json pj = {{"token", p.token}, {"loop", p.loop}, {"source_token", p.sourceToken}};
        if (!p.prompt.empty())
            pj["prompt"] = p.prompt;
        else
            pj["ids"] = p.ids;
        j["patch"] = std::move(pj);
    }
    return j;
}

void checkIntervention(const Intervention& iv, const Config& c) {
    const auto need = [](bool ok, const std::string& what) {
        if (!ok)
            fail(what);
    };
    for (const auto& a : iv.ablateExperts)
        need(a.expert < c.n_experts, "ablate_experts: expert " + std::to_string(a.expert) +
                                         " does not exist (the model has " + std::to_string(c.n_experts) +
                                         " routed experts)");
    for (const auto& h : iv.ablateHeads) {
        need(h.head < c.n_heads, "ablate_heads: head " + std::to_string(h.head) + " does not exist (the model has " +
                                     std::to_string(c.n_heads) + " heads)");
        const int64_t layers = h.stage == AttnStage::Prelude ? c.prelude_layers
                               : h.stage == AttnStage::Coda  ? c.coda_layers
                                                             : 1;
        need(h.layer < layers, "ablate_heads: " + std::string(attnStageName(h.stage)) + " layer " +
                                   std::to_string(h.layer) + " does not exist (" + std::to_string(layers) +
                                   (layers == 1 ? " layer)" : " layers)"));
    }
    if (iv.patch) {
        need(iv.patch->token < c.max_seq_len, "patch.token " + std::to_string(iv.patch->token) +
                                                  " is past max_seq_len " + std::to_string(c.max_seq_len));
        if (!iv.patch->ids.empty()) {
            need(int64_t(iv.patch->ids.size()) <= c.max_seq_len,
                 "the patch's source prompt is longer than max_seq_len " + std::to_string(c.max_seq_len));
            need(iv.patch->sourceToken < int64_t(iv.patch->ids.size()),
                 "patch.source_token " + std::to_string(iv.patch->sourceToken) + " is past the source prompt's " +
                     std::to_string(iv.patch->ids.size()) + " tokens");
            for (int32_t id : iv.patch->ids)
                need(id < c.vocab_size, "patch.ids: token " + std::to_string(id) + " is outside the vocabulary [0, " +
                                            std::to_string(c.vocab_size) + ")");
        }
    }
}

Intervention loadIntervention(const std::filesystem::path& path) {
    const std::string text = readTextFile(path, uint64_t(1) << 20);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw ArgumentError(path.string() + ": not valid JSON: " + jsonErrorDetail(e));
    }
    try {
        return interventionFromJson(j);
    } catch (const ArgumentError& e) {
        throw ArgumentError(path.string() + ": " + e.what());
    }
}

void saveIntervention(const std::filesystem::path& path, const Intervention& iv) {
    writeFileAtomic(path, interventionToJson(iv).dump(2) + "\n");
}

void resolvePatchPrompt(Intervention& iv, const Tokenizer& tok) {
    if (!iv.patch || iv.patch->prompt.empty())
        return;
    iv.patch->ids = tok.encode(iv.patch->prompt);
    if (iv.patch->ids.empty())
        fail("the patch's source prompt encodes to no tokens");
}

} // namespace mythos
