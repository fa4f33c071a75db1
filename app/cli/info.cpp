// mythos-cli info: the configuration, parameter count by part, rho(A) and KV-cache bytes per
// token of a model folder or preset.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "mythos/config.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/format.h"
#include "mythos/kvcache.h"
#include "mythos/safetensors.h"
#include "mythos/stability.h"
#include "mythos/tokenizer.h"
#include "mythos/weights.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mythos;

namespace cli {
namespace {

// info needs only the config and the injection parameters: it never loads the whole
// model, so it is instant even for the largest presets.
int runInfo(const Args& a) {
    const std::string spec = modelSpec(a);
    Config cfg;
    std::vector<float> A;
    std::string source;
    std::vector<NonFiniteTensor> nonFinite;
    if (isPresetSpec(spec)) {
        cfg = parseModelSpec(spec).config();
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
                if (t.dtype != DType::I64 && t.dtype != DType::I32 && t.dtype != DType::I16 && t.dtype != DType::I8 &&
                    t.dtype != DType::U8 && t.dtype != DType::BOOL)
                    if (const int64_t n = countNonFinite(file.readF32(t));
                        n > 0) // FormatError for a dtype it cannot read
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

    const TokenizerChoice tok = chooseTokenizer(tokenizerFolderOf(spec), cfg.vocab_size);
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
                  {"tokenizer",
                   {{"description", tok.tokenizer ? json(tokText) : json(nullptr)},
                    {"warning", tok.warning.empty() ? json(nullptr) : json(tok.warning)}}},
                  {"stability", stabilityStatusName(stabilityStatus(rho))},
                  {"memory_horizon_loops", rho < 1 ? json(memoryHorizon(rho)) : json(nullptr)},
                  {"kv",
                   {{"n_loops", loops},
                    {"bytes_per_token_per_entry",
                     {{"reference", kvBytesPerPosition(cfg, KvLayout::Reference)},
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
    std::printf("\nparameters   %s  (tied embedding counted once; %s of fp32 weights)\n", withCommas(pc.total).c_str(),
                humanBytes(double(weightBytesF32(cfg))).c_str());
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
    std::printf("\nKV cache per token at %lld loops (%lld entries):\n", (long long)loops,
                (long long)ref.entries.size());
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

} // namespace

Command infoCommand() {
    return {"info",
            "--model SPEC [--json]",
            "configuration, parameter count by part, rho(A), KV-cache bytes per token",
            {},
            {"json"},
            runInfo};
}

} // namespace cli
