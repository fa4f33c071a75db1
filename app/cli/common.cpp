#include "common.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>

#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/intervention.h"
#include "mythos/kvcache.h"
#include "mythos/weights.h"

namespace fs = std::filesystem;
using namespace mythos;

namespace cli {

const std::set<std::string> kCommonValued = {"model",     "threads", "kv-layout", "weights",
                                             "tokenizer", "vocab",   "intervene"};
const std::set<std::string> kCommonFlags = {"act-final-remainder", "help"};

const char* const kCommonOptionsHelp =
    R"(  --threads N               threads for oneDNN and the engine (default: all cores)
  --kv-layout reference|compact
                            KV-cache layout (compact stores MLA's rope key once)
  --act-final-remainder     give still-running positions the ACT remainder on the
                            last loop (Graves 2016; the reference does not)
  --tokenizer FILE          a tokenizer.json or .tiktoken file to use instead of the
                            model folder's (docs/tokenizer.md)
  --vocab N                 a preset's vocabulary size (random weights; e.g. a
                            mythos_1b-sized model with a 200K vocabulary)
  --weights f32|bf16        how the large matrices are held (default f32, the
                            reference's numbers); bf16 halves weight memory, logits
                            within about 2% of fp32 (trace, generate, bench, eval,
                            report)
  --intervene FILE.json     run the model with an intervention: ablate an expert or a
                            head, force exit loops, drop re-injection, zero the depth
                            LoRA, shift the loop index, patch a state
                            (docs/inside-the-loop.md)
)";

namespace {

// The bundled demo model: installed under the executable's prefix, or in the source tree
// for an executable inside its build folder (never for an installed one). Empty when
// neither exists.
std::string bundledDemoModel() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    std::vector<fs::path> dirs;
    if (!ec)
        dirs.push_back(exe.parent_path() / "../share/mythos-explorer/models/demo_mla");
    if (const fs::path src = mythos::buildSourceTree(); !src.empty())
        dirs.push_back(src / "resources/models/demo_mla");
    for (const auto& d : dirs)
        if (fs::exists(d / "config.json", ec))
            return fs::weakly_canonical(d, ec).string();
    return {};
}

} // namespace

std::string modelSpec(const Args& a) {
    if (a.has("model"))
        return a.str("model");
    static const std::string demo = [] {
        std::string d = bundledDemoModel();
        if (!d.empty())
            std::fprintf(stderr, "mythos-cli: no --model given; using the bundled demo model %s\n", d.c_str());
        return d;
    }();
    if (demo.empty())
        throw UsageError("missing required option --model (and the bundled demo model was not found)");
    return demo;
}

fs::path tokenizerFolderOf(const std::string& spec) { return isPresetSpec(spec) ? fs::path() : fs::path(spec); }

EngineOptions engineOptions(const Args& a) {
    EngineOptions o;
    o.threads = int(a.integer("threads", 0, 0, 1024));
    o.kvLayout = parseKvLayout(a.str("kv-layout", "reference"));
    o.actFinalRemainder = a.flag("act-final-remainder");
    o.weightType = parseWeightType(a.str("weights", "f32"));
    return o;
}

std::optional<Tokenizer> tokenizerFor(const Args& a, const std::string& spec, int64_t vocab, bool needed) {
    if (a.has("tokenizer"))
        return Tokenizer::load(a.str("tokenizer"), vocab);
    const TokenizerChoice c = chooseTokenizer(tokenizerFolderOf(spec), vocab);
    if (c.unreadable && needed)
        throw FormatError(c.warning);
    if (!c.warning.empty() && (needed || c.unreadable))
        std::cerr << "mythos-cli: warning: " << c.warning << "\n";
    return c.tokenizer;
}

std::vector<int32_t> inputIds(const Args& a, const std::optional<Tokenizer>& tok, int64_t& B, int64_t& T) {
    if (a.has("ids") == a.has("prompt"))
        throw UsageError("give exactly one of --ids and --prompt");
    std::vector<std::vector<int32_t>> rows;
    if (a.has("ids")) {
        rows = parseIdRows(a.str("ids"));
    } else {
        if (!tok)
            throw UsageError("this model has no tokenizer.json and a vocabulary under 256: use --ids");
        rows.push_back(tok->encode(a.str("prompt")));
        if (rows[0].empty())
            throw UsageError("--prompt is empty");
    }
    for (const auto& r : rows)
        if (r.size() != rows[0].size())
            throw UsageError("--ids rows must have equal lengths to form one batch");
    B = int64_t(rows.size());
    T = int64_t(rows[0].size());
    std::vector<int32_t> ids;
    for (const auto& r : rows)
        ids.insert(ids.end(), r.begin(), r.end());
    return ids;
}

void warnNonFinite(const std::string& spec, const std::vector<NonFiniteTensor>& found) {
    if (!found.empty())
        std::cerr << "mythos-cli: warning: " << spec << ": " << nonFiniteWarning(found) << "\n";
}

std::unique_ptr<Model> openModel(const Args& a) {
    nlohmann::json overrides;
    if (a.has("vocab")) { // a preset with another vocabulary size (random weights)
        if (!isPresetSpec(modelSpec(a)))
            throw UsageError("--vocab applies to presets only (a checkpoint's vocabulary is its own)");
        overrides["vocab_size"] = a.integer("vocab", 0, 2, 1 << 24);
    }
    auto model = mythos::open(parseModelSpec(modelSpec(a)), engineOptions(a), overrides);
    warnNonFinite(modelSpec(a), model->nonFiniteWeights());
    if (a.has("intervene")) {
        const std::filesystem::path file = a.str("intervene");
        mythos::Intervention iv = mythos::loadIntervention(file);
        if (iv.patch && !iv.patch->prompt.empty()) {
            const auto tok = tokenizerFor(a, modelSpec(a), model->config().vocab_size, true);
            if (!tok)
                throw mythos::ArgumentError(file.string() + ": the patch's \"prompt\" needs the model's tokenizer");
            mythos::resolvePatchPrompt(iv, *tok);
        }
        try {
            model->setIntervention(std::move(iv));
        } catch (const mythos::ArgumentError& e) {
            throw mythos::ArgumentError(file.string() + ": " + e.what());
        }
        std::fprintf(stderr, "intervention: %s\n",
                     model->intervention() ? model->intervention()->describe().c_str() : "no change");
    }
    return model;
}

std::string humanBytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
    return buf;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} // namespace cli
