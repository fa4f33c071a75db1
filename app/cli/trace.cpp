// mythos-cli trace: one forward pass, written as a trace (schema mythos-trace/1).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "command.h"
#include "common.h"
#include "mythos/checked.h"
#include "mythos/kvcache.h"
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
                 out.string().c_str(), (long long)B, (long long)T, (long long)tr.loopsExecuted, (long long)tr.nLoops,
                 tr.rhoA);
    return 0;
}

} // namespace

Command traceCommand() {
    return {"trace",
            "--model SPEC (--ids \"1,2,3;4,5,6\" | --prompt TEXT) --loops N [--kv-cache]\n"
            "[--start-pos P] [--no-logits | --full-logits] --out FILE.json",
            "run one forward pass and write its trace (schema mythos-trace/1): the\n"
            "top-10 logits of every position, and all logits when B x T x vocab is at\n"
            "most 2^22 (or with --full-logits)",
            {"ids", "prompt", "loops", "out", "start-pos"},
            {"kv-cache", "no-logits", "full-logits"},
            runTrace};
}

} // namespace cli
