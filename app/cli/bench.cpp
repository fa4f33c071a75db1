// mythos-cli bench: prefill latency, loop-count changes and decode tokens/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "mythos/fileio.h"
#include "mythos/kvcache.h"
#include "mythos/model.h"
#include "mythos/runtime.h"
#include "mythos/trace.h"
#include "mythos/weights.h"

using nlohmann::json;
using namespace mythos;

namespace cli {
namespace {

int runBench(const Args& a) {
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
        const double peak = sgemmGflops(1024);
        const double got = 2.0 * macs / (prefillMs / 1000.0) / 1e9;
        roofline = {{"loops", deepest},
                    {"prefill_matmul_gflop", 2.0 * macs / 1e9},
                    {"prefill_gflops", got},
                    {"sgemm_1024_gflops", peak},
                    {"fraction", got / peak}};
    }
    // A loop-count change in the explorer: one deep run to the largest count, then each count
    // is one coda pass and the head over the stored loops, with its trace (docs/architecture.md); the
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
    std::printf(
        "matmuls of the %lld-loop prefill: %.3f GFLOP at %.1f GFLOP/s = %.1f%% of a 1024^3 sgemm's %.1f GFLOP/s\n",
        (long long)roofline["loops"].get<int64_t>(), roofline["prefill_matmul_gflop"].get<double>(),
        roofline["prefill_gflops"].get<double>(), 100.0 * roofline["fraction"].get<double>(),
        roofline["sgemm_1024_gflops"].get<double>());
    return 0;
}

} // namespace

Command benchCommand() {
    return {"bench",
            "--model SPEC [--prompt-len 64 | --prompt TEXT | --prompt-file FILE]\n"
            "[--loops 1,4,8,16] [--decode 32] [--decode-loops 4,16] [--repeats 5]\n"
            "[--threads N] [--json]",
            "prefill latency, loop-count change on a deep run (one coda pass) and\n"
            "decode tokens/s (medians after a warm-up); a typed prompt is encoded by\n"
            "the model's tokenizer (or --tokenizer), and that is timed too",
            {"prompt-len", "prompt", "prompt-file", "loops", "decode", "decode-loops", "repeats"},
            {"json"},
            runBench};
}

} // namespace cli
