// mythos-cli trace: one forward pass, written as a trace (schema mythos-trace/1).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "command.h"
#include "common.h"
#include "mythos/checked.h"
#include "mythos/kvcache.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/trace.h"

namespace fs = std::filesystem;
using namespace mythos;

namespace cli {
namespace {

int runTrace(const Args& a) {
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
    const bool inside = a.flag("lens") || a.flag("attention") || a.flag("trajectory");
    if (inside && (cache || fo.startPos != 0))
        throw UsageError("--lens, --attention and --trajectory read a deep run of the whole prompt: "
                         "leave out --kv-cache and --start-pos");
    if (a.has("attention-row") && !a.flag("attention"))
        throw UsageError("--attention-row goes with --attention");
    if (inside) {
        // One deep run to n_loops; the trace of n_loops from it equals the forward's.
        const int64_t K = fo.nLoops;
        DeepRun run = model->deepRun(ids, B, T, K);
        model->logitsAt(run, K, &tr);
        if (a.flag("lens")) {
            const bool keep =
                a.flag("full-logits") || (!a.flag("no-logits") && fullLogitsByDefault(K * B, T, tr.vocab));
            tr.lens = model->lens(run, K, keep);
            if (tok)
                setLensPieces(tr.lens, [&](int32_t id) { return tok->piece(id); });
        }
        if (a.flag("attention")) {
            const int64_t row = a.integer("attention-row", 0, 0, B - 1);
            const auto& c = model->config();
            const int64_t sites = c.prelude_layers + K + c.coda_layers;
            if (!boundedProduct({sites, c.n_heads, T, T}, int64_t(1) << 26))
                throw UsageError("--attention: " + std::to_string(sites) + " sites x " + std::to_string(c.n_heads) +
                                 " heads x " + std::to_string(T) +
                                 "^2 positions is more than 2^26 values; use "
                                 "fewer tokens or loops");
            tr.attention.batchRow = row;
            tr.attention.to = T;
            tr.attention.sites = model->attention(run, K, row);
        }
        if (a.flag("trajectory"))
            tr.trajectory = trajectoryOf(run, K);
    } else {
        model->forward(ids, B, T, fo);
    }
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
                 out.string().c_str(), (long long)B, (long long)T, (long long)tr.loopsExecuted, (long long)tr.nLoops,
                 tr.rhoA);
    return 0;
}

} // namespace

Command traceCommand() {
    return {"trace",
            "--model SPEC (--ids \"1,2,3;4,5,6\" | --prompt TEXT) --loops N [--kv-cache]\n"
            "[--start-pos P] [--no-logits | --full-logits] [--lens] [--attention\n"
            "[--attention-row B]] [--trajectory] [--intervene FILE.json] --out FILE.json",
            "run one forward pass and write its trace (schema mythos-trace/1): the\n"
            "top-10 logits of every position, and all logits when B x T x vocab is at\n"
            "most 2^22 (or with --full-logits); with --lens the logit lens of every loop,\n"
            "--attention every attention application's probabilities (one batch row),\n"
            "--trajectory the PCA of the states (docs/inside-the-loop.md)",
            {"ids", "prompt", "loops", "out", "start-pos", "attention-row"},
            {"kv-cache", "no-logits", "full-logits", "lens", "attention", "trajectory"},
            runTrace};
}

} // namespace cli
