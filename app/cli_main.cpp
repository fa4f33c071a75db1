// mythos-cli: headless access to the engine (info, trace, generate, bench, rescale, eval,
// report).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>

#include "cli_args.h"
#include "mythos/checked.h"
#include "mythos/config.h"
#include "mythos/errors.h"
#include "mythos/evaluate.h"
#include "mythos/fileio.h"
#include "mythos/generate.h"
#include "mythos/kvcache.h"
#include "mythos/model.h"
#include "mythos/modelspec.h"
#include "mythos/ops.h"
#include "mythos/safetensors.h"
#include "mythos/stability.h"
#include "mythos/tokenizer.h"
#include "mythos/trace.h"

#ifdef MYTHOS_CLI_HAS_REPORT
#include <QApplication>
#include <QByteArray>
#include <QSize>
#include <QString>

#include "report.h"
#endif

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mythos;
using cli::Args;
using cli::UsageError;

namespace {

const char* kUsage = R"(usage: mythos-cli <command> [options]

Commands:
  info      --model SPEC [--json]
            configuration, parameter count by part, rho(A), KV-cache bytes per token
  trace     --model SPEC (--ids "1,2,3;4,5,6" | --prompt TEXT) --loops N [--kv-cache]
            [--start-pos P] [--no-logits | --full-logits] --out FILE.json
            run one forward pass and write its trace (schema mythos-trace/1): the
            top-10 logits of every position, and all logits when B x T x vocab is at
            most 2^22 (or with --full-logits)
  generate  --model SPEC (--ids ... | --prompt TEXT) --loops N --new-tokens M
            [--greedy | --temperature T --top-k K --seed S] [--out FILE.json]
            generate with a KV cache like the reference's generate()
  bench     --model SPEC [--prompt-len 64 | --prompt TEXT | --prompt-file FILE]
            [--loops 1,4,8,16] [--decode 32] [--decode-loops 4,16] [--repeats 5]
            [--threads N] [--json]
            prefill latency, loop-count change on a deep run (one coda pass) and
            decode tokens/s (medians after a warm-up); a typed prompt is encoded by
            the model's tokenizer (or --tokenizer), and that is timed too
  rescale   --model DIR --target 0.9 --out DIR
            rescale the injection A to a spectral radius and save a new model folder
  eval      --model DIR [--prompts FILE.jsonl] [--loops 1,2,4,8,16] [--json]
            greedy exact-match accuracy of held-out prompts ({"prompt", "answer",
            "hops"[, "task"]} per line) at each loop count, by hops x loops, with the
            mean halting loop, routing entropy, dead experts and rho(A)
  report    --model SPEC (--prompt TEXT | --ids "1,2,3") [--loops 1,4,8,16] --out DIR
            [--size 1000x600] [--logits]
            run once to the largest loop count and write a report folder offscreen:
            every chart (PNG, SVG) and its data (CSV, JSON) and the trace per loop
            count, summary.json, and report.pdf with a summary table and all charts
  tokenize  --model SPEC (--prompt TEXT | --ids "1,2,3") [--json]
            the model's tokenizer on a text (ids and pieces) or on ids (the text)
  presets   list the built-in presets

Common options:
  --threads N               threads for oneDNN and the engine (default: all cores)
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

SPEC is a model folder (config.json + *.safetensors [+ tokenizer.json or one
*.tiktoken file: docs/tokenizer.md]) or
preset:NAME[:SEED] for random weights (see `mythos-cli presets`). Without --model
the bundled demo model (demo_mla) is used, and eval's --prompts defaults to the
model folder's prompts.jsonl.
Run `mythos-cli <command> --help` for a command's options.
)";

const std::set<std::string> kCommonValued = {"model", "threads", "kv-layout", "weights", "tokenizer", "vocab"};

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

// --model, or the bundled demo model when it is not given (said once on stderr).
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
const std::set<std::string> kCommonFlags = {"act-final-remainder", "help"};

std::set<std::string> with(std::set<std::string> base, std::initializer_list<std::string> more) {
    base.insert(more);
    return base;
}

EngineOptions engineOptions(const Args& a) {
    EngineOptions o;
    o.threads = int(a.integer("threads", 0, 0, 1024));
    o.kvLayout = parseKvLayout(a.str("kv-layout", "reference"));
    o.actFinalRemainder = a.flag("act-final-remainder");
    o.weightType = parseWeightType(a.str("weights", "f32"));
    return o;
}

// The model's tokenizer. `needed`: text will be encoded (--prompt, eval). A tokenizer.json
// that cannot be read is then the error; otherwise (--ids) it is said once on stderr and the
// run goes on. Encoding text as bytes for want of a tokenizer.json is said too, never silent.
// --tokenizer FILE replaces the folder's (a preset has none).
std::optional<Tokenizer> tokenizerFor(const Args& a, const std::string& spec, int64_t vocab, bool needed) {
    if (a.has("tokenizer"))
        return Tokenizer::load(a.str("tokenizer"), vocab);
    const TokenizerChoice c = chooseTokenizer(spec.rfind("preset:", 0) == 0 ? fs::path() : fs::path(spec), vocab);
    if (c.unreadable && needed)
        throw FormatError(c.warning);
    if (!c.warning.empty() && (needed || c.unreadable))
        std::cerr << "mythos-cli: warning: " << c.warning << "\n";
    return c.tokenizer;
}

// Ids from --ids (rows of equal length) or --prompt (one row, tokenized).
std::vector<int32_t> inputIds(const Args& a, const std::optional<Tokenizer>& tok, int64_t& B, int64_t& T) {
    if (a.has("ids") == a.has("prompt"))
        throw UsageError("give exactly one of --ids and --prompt");
    std::vector<std::vector<int32_t>> rows;
    if (a.has("ids")) {
        rows = cli::parseIdRows(a.str("ids"));
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

// A checkpoint with NaN or infinite weights opens (it may be what the user came to look
// at), with a warning on stderr: its outputs mean nothing.
void warnNonFinite(const std::string& spec, const std::vector<NonFiniteTensor>& found) {
    if (!found.empty())
        std::cerr << "mythos-cli: warning: " << spec << ": " << nonFiniteWarning(found) << "\n";
}

std::unique_ptr<Model> openModel(const Args& a) {
    json overrides;
    if (a.has("vocab")) { // a preset with another vocabulary size (random weights)
        if (modelSpec(a).rfind("preset:", 0) != 0)
            throw UsageError("--vocab applies to presets only (a checkpoint's vocabulary is its own)");
        overrides["vocab_size"] = a.integer("vocab", 0, 2, 1 << 24);
    }
    auto model = mythos::open(parseModelSpec(modelSpec(a)), engineOptions(a), overrides);
    warnNonFinite(modelSpec(a), model->nonFiniteWeights());
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

std::string withCommas(int64_t n) {
    std::string s = std::to_string(n), out;
    int k = 0;
    for (auto it = s.rbegin(); it != s.rend(); ++it) {
        if (k && k % 3 == 0 && *it != '-')
            out += ',';
        out += *it;
        ++k;
    }
    return {out.rbegin(), out.rend()};
}

// info needs only the config and the injection parameters: it never loads the whole
// model, so it is instant even for the largest presets.
int cmdInfo(const Args& a) {
    const std::string spec = modelSpec(a);
    Config cfg;
    std::vector<float> A;
    std::string source;
    std::vector<NonFiniteTensor> nonFinite;
    if (spec.rfind("preset:", 0) == 0) {
        std::string name = spec.substr(7);
        name = name.substr(0, name.find(':'));
        cfg = preset(name);
        A = injectionFromLogs(std::vector<float>(std::size_t(cfg.dim), 0.0f), 0.0f); // log_A = log_dt = 0 at init
        source = "random initialisation";
    } else {
        const fs::path dir = spec;
        const PathKind kind = pathKind(dir);
        if (kind == PathKind::Missing)
            throw FileError(spec + ": no such model folder");
        if (kind != PathKind::Folder)
            throw FileError(spec + ": not a model folder");
        cfg = loadConfig(dir / "config.json");
        const fs::path st = dir / "model.safetensors";
        std::vector<fs::path> files;
        if (pathKind(st) != PathKind::Missing)
            files.push_back(st);
        else
            for (const auto& e : fs::directory_iterator(dir))
                if (e.path().extension() == ".safetensors")
                    files.push_back(e.path());
        std::vector<float> logA, logDt;
        for (const auto& f : files) {
            auto file = SafetensorsFile::open(f);
            if (auto* t = file.find("recurrent.injection.log_A"))
                logA = file.readF32(*t);
            if (auto* t = file.find("recurrent.injection.log_dt"))
                logDt = file.readF32(*t);
            // One tensor at a time: a scan of every value, never the whole model in memory.
            for (const auto& t : file.tensors())
                if (t.dtype != DType::I64 && t.dtype != DType::I32 && t.dtype != DType::I16 &&
                    t.dtype != DType::I8 && t.dtype != DType::U8 && t.dtype != DType::BOOL)
                    if (const int64_t n = countNonFinite(file.readF32(t)); n > 0) // FormatError for a dtype it cannot read
                        nonFinite.push_back({t.name, n});
        }
        if (int64_t(logA.size()) != cfg.dim || logDt.size() != 1)
            throw FormatError(spec + ": recurrent.injection.log_A / log_dt missing or mis-shaped");
        A = injectionForAnalysis(logA, logDt[0]);
        source = "checkpoint";
    }
    warnNonFinite(spec, nonFinite);
    const ParamCount pc = countParameters(cfg);
    const double rho = spectralRadiusDiagonal(A);
    const int64_t loops = cfg.max_loop_iters;
    const KvLedger ref = kvLedgerFor(cfg, 1, 1, loops, KvLayout::Reference);
    const KvLedger compact = kvLedgerFor(cfg, 1, 1, loops, KvLayout::Compact);

    const TokenizerChoice tok = chooseTokenizer(spec.rfind("preset:", 0) == 0 ? fs::path() : fs::path(spec), cfg.vocab_size);
    const std::string tokText = tok.tokenizer ? tok.tokenizer->description() : "none (prompts as ids)";

    json nonFiniteJson = json::object(); // tensor -> count of NaN/inf values
    for (const auto& t : nonFinite)
        nonFiniteJson[t.name] = t.count;
    if (a.flag("json")) {
        json parts = json::object();
        for (const auto& p : pc.parts)
            parts[p.name] = p.count;
        json entries = json::array();
        for (std::size_t i = 0; i < ref.entries.size(); ++i)
            entries.push_back({{"key", ref.entries[i].key},
                               {"bytes_per_token", ref.entries[i].referenceBytes},
                               {"compact_bytes_per_token", compact.entries[i].engineBytes}});
        json j = {{"model", spec},
                  {"config", configToJson(cfg)},
                  {"parameters", {{"total", pc.total}, {"parts", parts}}},
                  {"weight_bytes_f32", weightBytesF32(cfg)},
                  {"rho_A", std::isfinite(rho) ? json(rho) : json(nullptr)},
                  {"rho_A_source", source},
                  {"non_finite_weights", nonFiniteJson},
                  {"tokenizer", {{"description", tok.tokenizer ? json(tokText) : json(nullptr)},
                                 {"warning", tok.warning.empty() ? json(nullptr) : json(tok.warning)}}},
                  {"stability", stabilityStatusName(stabilityStatus(rho))},
                  {"memory_horizon_loops", rho < 1 ? json(memoryHorizon(rho)) : json(nullptr)},
                  {"kv",
                   {{"n_loops", loops},
                    {"bytes_per_token_per_entry", {{"reference", kvBytesPerPosition(cfg, KvLayout::Reference)},
                                                   {"compact", kvBytesPerPosition(cfg, KvLayout::Compact)}}},
                    {"bytes_per_token", {{"reference", ref.referenceBytes}, {"compact", compact.engineBytes}}},
                    {"entries", entries}}}};
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("model        %s\n", spec.c_str());
    std::printf("attention    %s   dim %lld   heads %lld", attnTypeName(cfg.attn_type).c_str(), (long long)cfg.dim,
                (long long)cfg.n_heads);
    if (cfg.isMla())
        std::printf("   kv_lora_rank %lld   q_lora_rank %lld   rope/nope/v %lld/%lld/%lld\n",
                    (long long)cfg.kv_lora_rank, (long long)cfg.q_lora_rank, (long long)cfg.qk_rope_head_dim,
                    (long long)cfg.qk_nope_head_dim, (long long)cfg.v_head_dim);
    else
        std::printf("   kv heads %lld   head dim %lld\n", (long long)cfg.n_kv_heads, (long long)cfg.headDim());
    std::printf("layers       prelude %lld + recurrent x %lld (max_loop_iters) + coda %lld\n",
                (long long)cfg.prelude_layers, (long long)cfg.max_loop_iters, (long long)cfg.coda_layers);
    std::printf("experts      %lld routed (top-%lld, width %lld) + %lld shared\n", (long long)cfg.n_experts,
                (long long)cfg.n_experts_per_tok, (long long)cfg.expert_dim, (long long)cfg.n_shared_experts);
    std::printf("vocab        %lld   max_seq_len %lld   act_threshold %g   rope_theta %g   lora_rank %lld\n",
                (long long)cfg.vocab_size, (long long)cfg.max_seq_len, cfg.act_threshold, cfg.rope_theta,
                (long long)cfg.lora_rank);
    std::printf("tokenizer    %s\n", tokText.c_str());
    if (!tok.warning.empty())
        std::printf("             (%s)\n", tok.warning.c_str());
    std::printf("\nparameters   %s  (tied embedding counted once; %s of fp32 weights)\n",
                withCommas(pc.total).c_str(), humanBytes(double(weightBytesF32(cfg))).c_str());
    for (const auto& p : pc.parts)
        std::printf("  %-22s %15s  %5.1f%%\n", p.name.c_str(), withCommas(p.count).c_str(),
                    100.0 * double(p.count) / double(pc.total));
    if (!std::isfinite(rho))
        std::printf("\nrho(A)       not finite  (log_A or log_dt holds NaN or infinite values; %s)\n", source.c_str());
    else
        std::printf("\nrho(A)       %.6f  (%s, %s; memory horizon %s loops)\n", rho,
                    stabilityStatusName(stabilityStatus(rho)), source.c_str(),
                    rho < 1 ? std::to_string(memoryHorizon(rho)).substr(0, 6).c_str() : "inf");
    if (!nonFinite.empty())
        std::printf("non-finite   %s\n", describeNonFinite(nonFinite, 8).c_str());
    std::printf("\nKV cache per token at %lld loops (%lld entries):\n", (long long)loops, (long long)ref.entries.size());
    // Entries of one kind (prelude_i, recurrent_loop_t, coda_i) cost the same: one line each.
    for (const auto& [prefix, count] : {std::pair<std::string, int64_t>{"prelude_", cfg.prelude_layers},
                                        {"recurrent_loop_", loops},
                                        {"coda_", cfg.coda_layers}}) {
        if (count == 0)
            continue;
        const std::string keys = count == 1 ? prefix + "0" : prefix + "0.." + std::to_string(count - 1);
        std::printf("  %-22s %3lld x %-10s compact %lld x %s\n", keys.c_str(), (long long)count,
                    humanBytes(double(kvBytesPerPosition(cfg, KvLayout::Reference))).c_str(), (long long)count,
                    humanBytes(double(kvBytesPerPosition(cfg, KvLayout::Compact))).c_str());
    }
    std::printf("  %-22s %s, compact %s\n", "total", humanBytes(double(ref.referenceBytes)).c_str(),
                humanBytes(double(compact.engineBytes)).c_str());
    return 0;
}

int cmdTrace(const Args& a) {
    auto model = openModel(a);
    const auto tok = tokenizerFor(a, modelSpec(a), model->config().vocab_size, a.has("prompt"));
    int64_t B = 0, T = 0;
    const auto ids = inputIds(a, tok, B, T);
    const fs::path out = a.str("out");
    Trace tr;
    ForwardOptions fo;
    fo.nLoops = a.integer("loops", 1, kMaxLoops);
    fo.startPos = a.integer("start-pos", 0, 0, model->config().max_seq_len);
    fo.trace = &tr;
    std::optional<KvCache> cache;
    if (a.flag("kv-cache")) {
        cache.emplace(model->newCache(B));
        fo.cache = &*cache;
    }
    if (a.flag("no-logits") && a.flag("full-logits"))
        throw UsageError("--no-logits and --full-logits contradict each other");
    model->forward(ids, B, T, fo);
    if (tok)
        for (int32_t id : ids)
            tr.pieces.push_back(tok->piece(id));
    // The top logits of every position always; the full [B][T][V] array when it is small or
    // asked for (a 200K vocabulary makes it 0.8 MB of JSON per token).
    const bool full = a.flag("full-logits") || (!a.flag("no-logits") && fullLogitsByDefault(B, T, tr.vocab));
    if (a.flag("no-logits"))
        tr.topLogitK = 0;
    saveTrace(out, tr, full);
    std::fprintf(stderr, "wrote %s: %lld x %lld tokens, %lld of %lld loops executed, rho(A) %.4f\n",
                 out.string().c_str(), (long long)B, (long long)T, (long long)tr.loopsExecuted,
                 (long long)tr.nLoops, tr.rhoA);
    return 0;
}

int cmdGenerate(const Args& a) {
    auto model = openModel(a);
    const auto tok = tokenizerFor(a, modelSpec(a), model->config().vocab_size, a.has("prompt"));
    int64_t B = 0, P = 0;
    const auto ids = inputIds(a, tok, B, P);
    GenerateOptions go;
    go.nLoops = a.integer("loops", 1, kMaxLoops);
    go.maxNewTokens = a.integer("new-tokens", 1, model->config().max_seq_len);
    const bool sampled = a.has("temperature") || a.has("top-k") || a.has("seed");
    if (a.flag("greedy") && sampled)
        throw UsageError("--greedy cannot be combined with --temperature / --top-k / --seed");
    go.sampling.greedy = !sampled;
    go.sampling.temperature = a.real("temperature", 1.0, 1e-6, 1e6);
    go.sampling.topK = a.integer("top-k", 50, 0, model->config().vocab_size);
    go.sampling.seed = uint64_t(a.integer("seed", 0, 0, INT64_MAX));
    const bool stream = tok && B == 1 && !a.flag("ids-only");
    if (stream) {
        std::cout << tok->decode(ids) << std::flush;
        go.onToken = [&](int64_t, const std::vector<int32_t>& t, const Trace*) {
            std::cout << tok->decode(t) << std::flush;
            return true;
        };
    }
    const auto res = generate(*model, ids, B, P, go);
    if (stream) {
        std::cout << "\n";
    } else {
        for (int64_t b = 0; b < B; ++b) {
            std::vector<int32_t> row(res.generated.begin() + b * res.steps, res.generated.begin() + (b + 1) * res.steps);
            if (tok && !a.flag("ids-only")) {
                std::cout << tok->decode(row) << "\n";
            } else {
                for (std::size_t i = 0; i < row.size(); ++i)
                    std::cout << (i ? "," : "") << row[i];
                std::cout << "\n";
            }
        }
    }
    if (a.has("out")) {
        json gen = json::array(), steps = json::array(), seq = json::array();
        for (int64_t b = 0; b < B; ++b) {
            json row = json::array(), s = json::array();
            for (int64_t t = 0; t < P; ++t)
                s.push_back(ids[std::size_t(b * P + t)]);
            for (int64_t t = 0; t < res.steps; ++t) {
                row.push_back(res.generated[std::size_t(b * res.steps + t)]);
                s.push_back(res.generated[std::size_t(b * res.steps + t)]);
            }
            gen.push_back(row);
            seq.push_back(s);
        }
        const int64_t V = res.vocab;
        for (int64_t t = 0; t < res.steps; ++t) {
            json perB = json::array();
            for (int64_t b = 0; b < B; ++b)
                perB.push_back(std::vector<float>(res.stepLogits.begin() + (t * B + b) * V,
                                                  res.stepLogits.begin() + (t * B + b + 1) * V));
            steps.push_back(perB);
        }
        json j = {{"model", modelSpec(a)},
                  {"n_loops", go.nLoops},
                  {"prompt_len", P},
                  {"sampling",
                   {{"greedy", go.sampling.greedy},
                    {"temperature", go.sampling.temperature},
                    {"top_k", go.sampling.topK},
                    {"seed", go.sampling.seed}}},
                  {"generated", gen},
                  {"sequence", seq},
                  {"step_logits", steps},
                  {"kv_total_bytes", res.kv.referenceBytes},
                  {"kv_engine_bytes", res.kv.engineBytes}};
        if (tok) {
            json texts = json::array();
            for (int64_t b = 0; b < B; ++b)
                texts.push_back(tok->decode(std::vector<int32_t>(res.generated.begin() + b * res.steps,
                                                                 res.generated.begin() + (b + 1) * res.steps)));
            j["text"] = texts;
        }
        writeFileAtomic(a.str("out"), j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    }
    return 0;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cmdBench(const Args& a) {
    const auto loops = a.intList("loops", {1, 4, 8, 16}, 1, 4096);
    const auto decodeLoops = a.intList("decode-loops", loops, 1, 4096);
    for (int64_t L : decodeLoops)
        if (std::find(loops.begin(), loops.end(), L) == loops.end())
            throw UsageError("--decode-loops " + std::to_string(L) +
                             " is not among --loops: decode is timed at loop counts that are also prefilled");
    const int64_t repeats = a.integer("repeats", 5, 1, 1000);
    if (a.has("prompt") && a.has("prompt-file"))
        throw UsageError("give at most one of --prompt and --prompt-file");
    if ((a.has("prompt") || a.has("prompt-file")) && a.has("prompt-len"))
        throw UsageError("--prompt-len is the length of a random prompt; a typed prompt is as long as its tokens");
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
    const auto tOpen = Clock::now();
    auto model = openModel(a);
    const double openMs = ms(tOpen);
    const Config& c = model->config();
    // The prompt: typed text through the model's tokenizer (timed), or random ids.
    std::vector<int32_t> prompt;
    json textJson = nullptr;
    if (a.has("prompt") || a.has("prompt-file")) {
        const std::string text = a.has("prompt") ? a.str("prompt") : readTextFile(a.str("prompt-file"));
        const auto tok = tokenizerFor(a, modelSpec(a), c.vocab_size, true);
        if (!tok)
            throw UsageError("this model has no tokenizer: give --tokenizer FILE or use --prompt-len");
        std::vector<double> times;
        for (int r = 0; r < 3; ++r) {
            const auto t0 = Clock::now();
            prompt = tok->encode(text);
            times.push_back(ms(t0));
        }
        if (prompt.empty())
            throw UsageError("the prompt is empty");
        if (int64_t(prompt.size()) > c.max_seq_len)
            throw UsageError("the prompt is " + std::to_string(prompt.size()) + " tokens; max_seq_len is " +
                             std::to_string(c.max_seq_len));
        textJson = {{"tokenizer", tok->description()},
                    {"bytes", text.size()},
                    {"tokens", prompt.size()},
                    {"encode_ms", median(times)}};
    } else {
        const int64_t len = a.integer("prompt-len", 64, 1, c.max_seq_len);
        std::mt19937 rng(1234);
        prompt.resize(static_cast<std::size_t>(len));
        for (auto& id : prompt)
            id = int32_t(rng() % uint32_t(c.vocab_size));
    }
    const int64_t P = int64_t(prompt.size());
    const int64_t decode = a.integer("decode", 32, 0, c.max_seq_len);
    if (P + decode - 1 > c.max_seq_len)
        throw UsageError("the prompt + --decode exceed max_seq_len = " + std::to_string(c.max_seq_len));

    json prefill = json::object(), tps = json::object(), decodeMs = json::object();
    for (int64_t L : loops) {
        const bool doDecode = decode > 1 && std::find(decodeLoops.begin(), decodeLoops.end(), L) != decodeLoops.end();
        std::vector<double> pre, dec;
        for (int64_t r = 0; r <= repeats; ++r) { // r == 0 is the warm-up
            KvCache cache = model->newCache(1);
            ForwardOptions fo;
            fo.nLoops = L;
            fo.cache = &cache;
            fo.headRows = HeadRows::Last; // what a prompt's run needs for the next token
            auto t0 = Clock::now();
            auto logits = model->forward(prompt, 1, P, fo);
            const double tp = ms(t0);
            double td = 0;
            if (doDecode) {
                int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
                auto t1 = Clock::now();
                for (int64_t s = 1; s < decode; ++s) {
                    fo.startPos = P + s - 1;
                    logits = model->forward({next}, 1, 1, fo);
                    next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
                }
                td = ms(t1);
            }
            if (r > 0) {
                pre.push_back(tp);
                if (doDecode)
                    dec.push_back(td);
            }
        }
        const std::string key = std::to_string(L);
        prefill[key] = median(pre);
        if (doDecode) {
            decodeMs[key] = median(dec);
            tps[key] = double(decode - 1) / (median(dec) / 1000.0);
        }
    }
    // Roofline: the matmul GFLOP/s of the prefill at the deepest loop count against the best
    // rate oneDNN reaches for a large sgemm in this run (same threads).
    json roofline = json::object();
    {
        const int64_t deepest = *std::max_element(loops.begin(), loops.end());
        KvCache cache = model->newCache(1);
        ForwardOptions fo;
        fo.nLoops = deepest;
        fo.cache = &cache;
        fo.headRows = HeadRows::Last; // as timed above
        resetMatmulMacs();
        model->forward(prompt, 1, P, fo);
        const double macs = double(matmulMacs());
        const double prefillMs = prefill[std::to_string(deepest)].get<double>();
        MatmulEngine mm;
        const int64_t n = 1024;
        std::vector<float> x(std::size_t(n * n), 0.5f), w(std::size_t(n * n), 0.25f), y(std::size_t(n * n));
        std::vector<double> t;
        for (int r = 0; r < 6; ++r) {
            auto t0 = Clock::now();
            mm.linear(x.data(), n, n, w.data(), n, y.data());
            if (r > 0)
                t.push_back(ms(t0));
        }
        const double peak = 2.0 * double(n * n * n) / (median(t) / 1000.0) / 1e9;
        const double got = 2.0 * macs / (prefillMs / 1000.0) / 1e9;
        roofline = {{"loops", deepest}, {"prefill_matmul_gflop", 2.0 * macs / 1e9}, {"prefill_gflops", got},
                    {"sgemm_1024_gflops", peak}, {"fraction", got / peak}};
    }
    // A loop-count change in the explorer: one deep run to the largest count, then each count
    // is one coda pass and the head over the stored loops, with its trace (DESIGN.md); the
    // head's rows as the explorer asks for them (every position while the logits are small,
    // else the last).
    json loopChange = json::object();
    {
        const int64_t deepest = *std::max_element(loops.begin(), loops.end());
        const DeepRun run = model->deepRun(prompt, 1, P, deepest);
        const HeadRows rows = fullLogitsByDefault(1, P, c.vocab_size) ? HeadRows::All : HeadRows::Last;
        for (int64_t L : loops) {
            std::vector<double> times;
            for (int64_t r = 0; r <= repeats; ++r) {
                Trace tr;
                auto t0 = Clock::now();
                model->logitsAt(run, L, &tr, 0, rows);
                if (r > 0)
                    times.push_back(ms(t0));
            }
            loopChange[std::to_string(L)] = median(times);
        }
    }
    if (a.flag("json")) {
        json j = {{"model", modelSpec(a)},
                  {"threads", numThreads()},
                  {"weight_type", weightTypeName(model->options().weightType)},
                  {"weight_bytes", model->weightBytes()},
                  {"kernel_copy_bytes", model->kernelCopyBytes()},
                  {"vocab", c.vocab_size},
                  {"open_ms", openMs},
                  {"prompt_len", P},
                  {"prompt_text", textJson},
                  {"loop_change_ms", loopChange},
                  {"roofline", roofline},
                  {"decode", decode},
                  {"repeats", repeats},
                  {"prefill_ms", prefill},
                  {"decode_ms", decodeMs},
                  {"decode_tokens_per_s", tps}};
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("%s: %s weights (%s, + %s of [K, N] copies for the matmul kernels), prompt %lld tokens, %lld decode "
                "steps, %lld threads, median of %lld after a warm-up\n",
                modelSpec(a).c_str(), weightTypeName(model->options().weightType).c_str(),
                humanBytes(double(model->weightBytes())).c_str(), humanBytes(double(model->kernelCopyBytes())).c_str(),
                (long long)P, (long long)(decode > 0 ? decode - 1 : 0), (long long)numThreads(), (long long)repeats);
    std::printf("vocab %lld, model made or read in %.0f ms\n", (long long)c.vocab_size, openMs);
    if (!textJson.is_null())
        std::printf("prompt typed as text: %lld bytes -> %lld tokens in %.3f ms (%s)\n",
                    (long long)textJson["bytes"].get<int64_t>(), (long long)textJson["tokens"].get<int64_t>(),
                    textJson["encode_ms"].get<double>(), textJson["tokenizer"].get<std::string>().c_str());
    std::printf("%8s %14s %18s %18s\n", "loops", "prefill ms", "loop change ms", "decode tokens/s");
    for (int64_t L : loops) {
        const std::string key = std::to_string(L);
        std::printf("%8lld %14.3f %18.3f", (long long)L, prefill[key].get<double>(), loopChange[key].get<double>());
        if (tps.contains(key))
            std::printf(" %18.1f", tps[key].get<double>());
        std::printf("\n");
    }
    std::printf("matmuls of the %lld-loop prefill: %.3f GFLOP at %.1f GFLOP/s = %.1f%% of a 1024^3 sgemm's %.1f GFLOP/s\n",
                (long long)roofline["loops"].get<int64_t>(), roofline["prefill_matmul_gflop"].get<double>(),
                roofline["prefill_gflops"].get<double>(), 100.0 * roofline["fraction"].get<double>(),
                roofline["sgemm_1024_gflops"].get<double>());
    return 0;
}

int cmdRescale(const Args& a) {
    const std::string spec = modelSpec(a);
    if (spec.rfind("preset:", 0) == 0)
        throw UsageError("rescale needs a model folder");
    const double target = a.real("target", 0.9, 1e-9, 1.0);
    Checkpoint ck = loadCheckpoint(spec);
    const auto A = injectionFromLogs(ck.weights.at("recurrent.injection.log_A").data,
                                     ck.weights.at("recurrent.injection.log_dt").data.at(0));
    const double before = spectralRadiusDiagonal(A);
    const double after = rescaleInjection(ck.weights, target);
    const fs::path out = a.str("out");
    saveCheckpoint(out, ck.config, ck.weights, {{"source", spec}, {"rescaled_rho_A", std::to_string(after)}});
    if (const fs::path tokFile = Tokenizer::tokenizerFile(spec); !tokFile.empty() && !fs::exists(out / tokFile.filename()))
        writeFileAtomic(out / tokFile.filename(), readTextFile(tokFile, 128ull << 20));
    std::printf("rho(A) %.6f -> %.6f, saved %s\n", before, after, out.string().c_str());
    return 0;
}

#ifdef MYTHOS_CLI_HAS_REPORT
// "1000x600" -> QSize; UsageError otherwise.
QSize parseSize(const std::string& text) {
    const auto x = text.find('x');
    if (x == std::string::npos)
        throw UsageError("--size: expected WIDTHxHEIGHT (e.g. 1000x600), got '" + text + "'");
    const int w = int(cli::parseInt(text.substr(0, x), "--size width", 320, 8192));
    const int h = int(cli::parseInt(text.substr(x + 1), "--size height", 200, 8192));
    return {w, h};
}

std::string engineOptionsText(const EngineOptions& o) {
    return "kv_layout " + kvLayoutName(o.kvLayout) + ", act_final_remainder " + (o.actFinalRemainder ? "on" : "off") +
           ", weights " + weightTypeName(o.weightType);
}
#endif

// The same report as the explorer's "Export report", rendered offscreen: one deep run to the
// largest loop count serves every loop count (DESIGN.md).
int cmdReport(const Args& a) {
#ifndef MYTHOS_CLI_HAS_REPORT
    (void)a;
    throw UsageError("this mythos-cli was built without Qt (MYTHOS_BUILD_GUI=OFF), so it cannot render reports");
#else
    const std::string spec = modelSpec(a);
    const std::string outDir = a.str("out");
    auto loops = a.intList("loops", {1, 4, 8, 16}, 1, 4096);
    std::sort(loops.begin(), loops.end());
    loops.erase(std::unique(loops.begin(), loops.end()), loops.end());
    const QSize size = parseSize(a.str("size", "1000x600"));
    const EngineOptions options = engineOptions(a);
    if (const QString problem = mx::reportFolderProblem(QString::fromStdString(outDir)); !problem.isEmpty())
        throw ArgumentError(problem.toStdString());

    using Clock = std::chrono::steady_clock;
    auto msSince = [](Clock::time_point since) {
        return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
    };
    auto t0 = Clock::now();
    auto model = openModel(a);
    const double loadMs = msSince(t0);
    const auto tok = tokenizerFor(a, spec, model->config().vocab_size, a.has("prompt"));
    int64_t B = 0, T = 0;
    const auto ids = inputIds(a, tok, B, T);
    if (B != 1)
        throw UsageError("report takes one prompt: give --ids as a single row");

    t0 = Clock::now();
    const DeepRun run = model->deepRun(ids, B, T, loops.back());
    const double deepMs = msSince(t0);
    std::fprintf(stderr, "report: %lld tokens run to %lld loops in %.1f ms\n", (long long)T, (long long)loops.back(),
                 deepMs);
    mx::ReportInput in;
    in.model = QString::fromStdString(spec);
    in.config = model->config();
    in.parameters = countParameters(model->config()).total;
    in.rhoA = spectralRadiusDiagonal(model->injectionA());
    in.prompt = QString::fromStdString(a.str("prompt", ""));
    in.engineOptions = QString::fromStdString(engineOptionsText(options));
    in.runTimingsMs = {{"load", loadMs}, {"deep_run_" + std::to_string(loops.back()), deepMs}};
    in.includeLogits = a.flag("logits");
    for (int64_t k : loops) {
        auto tr = std::make_shared<Trace>();
        model->logitsAt(run, k, tr.get());
        if (tok)
            for (int32_t id : ids)
                tr->pieces.push_back(tok->piece(id));
        in.traces.push_back(std::move(tr));
    }

    // No display is needed or used: the views render into images and the PDF.
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication::setAttribute(Qt::AA_Use96Dpi);
    static int qargc = 1;
    static char qname[] = "mythos-cli";
    static char* qargv[] = {qname, nullptr};
    QApplication app(qargc, qargv);

    int lastTenth = -1;
    const auto progress = [&](int done, int total) {
        const int tenth = total > 0 ? done * 10 / total : 10;
        if (tenth != lastTenth) {
            std::fprintf(stderr, "report: %3d%% (%d of %d steps)\n", tenth * 10, done, total);
            lastTenth = tenth;
        }
        return true;
    };
    const mx::ExportResult r = mx::writeReport(in, QString::fromStdString(outDir), size, progress);
    if (!r.ok)
        throw FileError(r.error.toStdString());
    std::fprintf(stderr, "report: %lld files for loop counts", (long long)r.files.size());
    for (int64_t k : loops)
        std::fprintf(stderr, " %lld", (long long)k);
    std::fprintf(stderr, "\n");
    std::printf("%s\n", outDir.c_str());
    return 0;
#endif
}

int cmdPresets() {
    for (const auto& n : presetNames()) {
        const Config c = preset(n);
        std::printf("%-12s %-3s dim %-6lld params %s\n", n.c_str(), attnTypeName(c.attn_type).c_str(), (long long)c.dim,
                    withCommas(countParameters(c).total).c_str());
    }
    return 0;
}


json meanHaltJson(const EvalCell& c) { return c.halted ? json(c.meanHalt()) : json(nullptr); }
json answerHaltJson(const EvalCell& c) { return c.answerHalted ? json(c.meanAnswerHalt()) : json(nullptr); }

// The halting fields of one cell: every prompt token, and the answer token alone.
void addHaltFields(json& j, const EvalCell& c) {
    j["mean_halt_loop"] = meanHaltJson(c);
    j["never_halted"] = c.neverHalted();
    j["answer_halt_loop"] = answerHaltJson(c);
    j["answer_never_halted"] = c.answerNeverHalted();
    j["n"] = c.n;
}

std::string fmtHalt(bool any, double mean) {
    char buf[32];
    if (any)
        std::snprintf(buf, sizeof buf, "%.2f", mean);
    else
        std::snprintf(buf, sizeof buf, "-");
    return buf;
}
std::string fmtHalt(const EvalCell& c) { return fmtHalt(c.halted > 0, c.meanHalt()); }
std::string fmtAnswerHalt(const EvalCell& c) { return fmtHalt(c.answerHalted > 0, c.meanAnswerHalt()); }

int cmdEval(const Args& a) {
    const std::string spec = modelSpec(a);
    if (spec.rfind("preset:", 0) == 0)
        throw UsageError("eval needs a model folder with tokenizer.json");
    auto loops = a.intList("loops", {1, 2, 4, 8, 16}, 1, 4096);
    std::sort(loops.begin(), loops.end());
    loops.erase(std::unique(loops.begin(), loops.end()), loops.end());
    auto model = openModel(a);
    const Config& c = model->config();
    const auto tok = tokenizerFor(a, spec, c.vocab_size, true);
    if (!tok)
        throw UsageError("this model has no tokenizer.json and a vocabulary under 256: eval needs text prompts");
    // Default: the model folder's own prompt set, as in the explorer's Depth sweep.
    const fs::path file = a.has("prompts") ? fs::path(a.str("prompts")) : fs::path(spec) / "prompts.jsonl";
    if (!a.has("prompts") && !fs::exists(file))
        throw UsageError("eval needs --prompts FILE.jsonl (" + spec + " has no prompts.jsonl)");
    const auto prompts = loadEvalPrompts(file, *tok, c.max_seq_len);

    const EvalResult ev = evaluate(*model, prompts, std::vector<int64_t>(loops.begin(), loops.end()));
    const auto& byLoops = ev.byLoops;
    auto byHops = ev.byHops;
    auto byTask = ev.byTask;
    // Expert load over every prompt at max_loop_iters (every loop executed, every position).
    std::vector<int64_t> load(std::size_t(c.n_experts), 0);
    double rho = 0;
    for (const auto& p : prompts) {
        Trace tr;
        ForwardOptions fo;
        fo.nLoops = c.max_loop_iters;
        fo.trace = &tr;
        model->forward(p.prompt, 1, int64_t(p.prompt.size()), fo);
        for (int32_t e : tr.topkIds)
            if (e >= 0 && e < c.n_experts)
                ++load[std::size_t(e)];
        rho = tr.rhoA;
    }
    int64_t total = 0;
    for (int64_t l : load)
        total += l;
    double entropy = 0;
    json dead = json::array(), loadJ = json::array();
    for (std::size_t e = 0; e < load.size(); ++e) {
        loadJ.push_back(load[e]);
        if (load[e] == 0)
            dead.push_back(int64_t(e));
        else if (total > 0) {
            const double q = double(load[e]) / double(total);
            entropy -= q * std::log2(q);
        }
    }
    const double maxEntropy = c.n_experts > 1 ? std::log2(double(c.n_experts)) : 0.0;

    if (a.flag("json")) {
        json jl = json::array(), jh = json::array(), jt = json::array();
        for (const auto& [L, cell] : byLoops)
        {
            json o = {{"loops", L}, {"accuracy", cell.accuracy()}};
            addHaltFields(o, cell);
            jl.push_back(o);
        }
        for (const auto& [key, cell] : byHops)
        {
            json o = {{"hops", key.first}, {"loops", key.second}, {"accuracy", cell.accuracy()}};
            addHaltFields(o, cell);
            jh.push_back(o);
        }
        for (const auto& [key, cell] : byTask)
        {
            json o = {{"task", std::get<0>(key)},
                      {"hops", std::get<1>(key)},
                      {"loops", std::get<2>(key)},
                      {"accuracy", cell.accuracy()}};
            addHaltFields(o, cell);
            jt.push_back(o);
        }
        json j = {{"model", spec},
                  {"prompts", file.string()},
                  {"n_prompts", int64_t(prompts.size())},
                  {"max_loop_iters", c.max_loop_iters},
                  {"by_loops", jl},
                  {"by_hops", jh},
                  {"by_task_hops", jt},
                  {"routing",
                   {{"loops", c.max_loop_iters},
                    {"entropy", entropy},
                    {"entropy_unit", "bits"},
                    {"max_entropy", maxEntropy},
                    {"expert_load", loadJ},
                    {"dead_experts", dead}}},
                  {"rho_A", rho}};
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("%s: %lld prompts from %s, greedy, KV cache; halting from an uncached forward of each prompt\n",
                spec.c_str(), (long long)prompts.size(), file.string().c_str());
    std::printf("\n%8s %10s %16s %14s %18s %14s %6s\n", "loops", "accuracy", "mean halt loop", "never halted",
                "answer halt loop", "never halted", "n");
    std::printf("%8s %10s %31s %33s\n", "", "", "(every prompt token)", "(answer token)");
    for (const auto& [L, cell] : byLoops)
        std::printf("%8lld %10.3f %16s %14.3f %18s %14.3f %6lld\n", (long long)L, cell.accuracy(), fmtHalt(cell).c_str(),
                    cell.neverHalted(), fmtAnswerHalt(cell).c_str(), cell.answerNeverHalted(), (long long)cell.n);
    auto table = [&](const std::string& title, auto cellFor, const std::vector<std::pair<std::string, int64_t>>& rows) {
        std::printf("\n%s\n%-12s", title.c_str(), "hops");
        for (int64_t L : loops)
            std::printf(" %12s", ("L=" + std::to_string(L)).c_str());
        std::printf("\n");
        for (const auto& [task, h] : rows) {
            std::printf("%-12s", (task.empty() ? std::to_string(h) : task + " " + std::to_string(h)).c_str());
            for (int64_t L : loops) {
                const EvalCell& cell = cellFor(task, h, L);
                std::printf(" %5.2f %6s", cell.accuracy(), fmtAnswerHalt(cell).c_str());
            }
            std::printf("\n");
        }
    };
    std::vector<std::pair<std::string, int64_t>> hopRows, taskRows;
    for (const auto& [key, cell] : byHops)
        if (key.second == loops.front())
            hopRows.push_back({"", key.first});
    for (const auto& [key, cell] : byTask)
        if (std::get<2>(key) == loops.front())
            taskRows.push_back({std::get<0>(key).empty() ? "-" : std::get<0>(key), std::get<1>(key)});
    table("accuracy and mean halting loop of the answer token (the prompt's last) by hops x loops", [&](const std::string&, int64_t h, int64_t L) -> const EvalCell& {
        return byHops[{h, L}];
    }, hopRows);
    const bool anyTask = std::any_of(prompts.begin(), prompts.end(), [](const EvalPrompt& p) { return !p.task.empty(); });
    if (anyTask)
        table("by task and hops", [&](const std::string& t, int64_t h, int64_t L) -> const EvalCell& {
            return byTask[{t == "-" ? std::string() : t, h, L}];
        }, taskRows);
    std::printf("\nrouting at %lld loops: entropy %.3f of %.3f bits, dead experts %s\n", (long long)c.max_loop_iters,
                entropy, maxEntropy, dead.empty() ? "none" : dead.dump().c_str());
    std::printf("rho(A) %.6f\n", rho);
    return 0;
}

// The tokenizer alone (no weights are read): text -> ids and pieces, or ids -> text.
int cmdTokenize(const Args& a) {
    const std::string spec = modelSpec(a);
    int64_t vocab = 0;
    if (spec.rfind("preset:", 0) == 0) {
        std::string name = spec.substr(7);
        vocab = preset(name.substr(0, name.find(':'))).vocab_size;
    } else {
        vocab = loadConfig(fs::path(spec) / "config.json").vocab_size;
    }
    const auto tok = tokenizerFor(a, spec, vocab, true);
    if (!tok)
        throw UsageError("this model has no tokenizer file and a vocabulary under 256: there is nothing to tokenize with");
    if (a.has("ids") == a.has("prompt"))
        throw UsageError("give exactly one of --ids and --prompt");
    std::vector<int32_t> ids;
    if (a.has("ids")) {
        for (const auto& row : cli::parseIdRows(a.str("ids")))
            ids.insert(ids.end(), row.begin(), row.end());
    } else {
        ids = tok->encode(a.str("prompt"));
    }
    const std::string text = tok->decode(ids);
    if (a.flag("json")) {
        json pieces = json::array();
        for (int32_t id : ids)
            pieces.push_back(tok->displayPiece(id));
        // Text that is not valid UTF-8 (ids that end inside a character) cannot be a JSON
        // string: such bytes are replaced by U+FFFD.
        std::cout << json({{"tokenizer", tok->description()}, {"ids", ids}, {"pieces", pieces},
                           {"text", text}})
                         .dump(-1, ' ', false, json::error_handler_t::replace)
                  << "\n";
        return 0;
    }
    std::printf("tokenizer  %s\n%zu tokens\n", tok->description().c_str(), ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i)
        std::printf("%6zu  %8d  %s\n", i, ids[i], tok->displayPiece(ids[i]).c_str());
    if (a.has("ids"))
        std::printf("text: %s\n", text.c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    try {
        const bool help = std::find(args.begin(), args.end(), "--help") != args.end();
        if (cmd == "info") {
            Args a(args, kCommonValued, with(kCommonFlags, {"json"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdInfo(a);
        }
        if (cmd == "trace") {
            Args a(args, with(kCommonValued, {"ids", "prompt", "loops", "out", "start-pos"}),
                   with(kCommonFlags, {"kv-cache", "no-logits", "full-logits"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdTrace(a);
        }
        if (cmd == "generate") {
            Args a(args, with(kCommonValued, {"ids", "prompt", "loops", "new-tokens", "temperature", "top-k", "seed", "out"}),
                   with(kCommonFlags, {"greedy", "ids-only"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdGenerate(a);
        }
        if (cmd == "bench") {
            Args a(args, with(kCommonValued, {"prompt-len", "prompt", "prompt-file", "loops", "decode", "decode-loops", "repeats"}),
                   with(kCommonFlags, {"json"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdBench(a);
        }
        if (cmd == "rescale") {
            Args a(args, with(kCommonValued, {"target", "out"}), kCommonFlags);
            if (help)
                return std::cout << kUsage, 0;
            return cmdRescale(a);
        }
        if (cmd == "eval") {
            Args a(args, with(kCommonValued, {"prompts", "loops"}), with(kCommonFlags, {"json"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdEval(a);
        }
        if (cmd == "report") {
            Args a(args, with(kCommonValued, {"ids", "prompt", "loops", "out", "size"}),
                   with(kCommonFlags, {"logits"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdReport(a);
        }
        if (cmd == "tokenize") {
            Args a(args, with(kCommonValued, {"ids", "prompt"}), with(kCommonFlags, {"json"}));
            if (help)
                return std::cout << kUsage, 0;
            return cmdTokenize(a);
        }
        if (cmd == "presets")
            return cmdPresets();
        throw UsageError("unknown command '" + cmd + "' (try mythos-cli --help)");
    } catch (const UsageError& e) {
        std::cerr << "mythos-cli " << cmd << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "mythos-cli " << cmd << ": error: " << errorMessage(e) << "\n";
        return 1;
    }
}
