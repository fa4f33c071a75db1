// mythos-cli generate: tokens from a KV-cached run, like the reference's generate().
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "mythos/checked.h"
#include "mythos/fileio.h"
#include "mythos/generate.h"
#include "mythos/model.h"
#include "mythos/trace.h"

using nlohmann::json;
using namespace mythos;

namespace cli {
namespace {

int runGenerate(const Args& a) {
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
            std::vector<int32_t> row(res.generated.begin() + b * res.steps,
                                     res.generated.begin() + (b + 1) * res.steps);
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

} // namespace

Command generateCommand() {
    return {"generate",
            "--model SPEC (--ids ... | --prompt TEXT) --loops N --new-tokens M\n"
            "[--greedy | --temperature T --top-k K --seed S] [--out FILE.json]",
            "generate with a KV cache like the reference's generate()",
            {"ids", "prompt", "loops", "new-tokens", "temperature", "top-k", "seed", "out"},
            {"greedy", "ids-only"},
            runGenerate};
}

} // namespace cli
