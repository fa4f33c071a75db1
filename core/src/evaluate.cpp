#include "mythos/evaluate.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/generate.h"
#include "mythos/trace.h"

namespace mythos {

namespace {

std::string firstLine(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

} // namespace

namespace {
constexpr uint64_t kEvalMaxBytes = 16ull << 20;
constexpr std::size_t kEvalMaxLines = 100000;
} // namespace

// Every line is validated; a bad one is a FormatError naming FILE:LINE.
std::vector<EvalPrompt> loadEvalPrompts(const std::filesystem::path& file, const Tokenizer& tok, int64_t maxSeqLen) {
    const std::string text = readTextFile(file, kEvalMaxBytes);
    std::vector<EvalPrompt> out;
    forEachLine(text, [&](std::size_t lineNo, std::string_view line) {
        if (line.find_first_not_of(" \t") == std::string_view::npos)
            return;
        if (out.size() >= kEvalMaxLines)
            throw FormatError(file.string() + ": more than " + std::to_string(kEvalMaxLines) + " prompts");
        const std::string where = file.string() + ":" + std::to_string(lineNo) + ": ";
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
            throw FormatError(where + "not a JSON object");
        }
        if (!j.is_object())
            throw FormatError(where + "not a JSON object");
        for (const char* key : {"prompt", "answer"})
            if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
                throw FormatError(where + "\"" + key + "\" must be a non-empty string");
        if (!j.contains("hops") || !j["hops"].is_number_integer() || j["hops"].get<int64_t>() < 0 ||
            j["hops"].get<int64_t>() > 1000000)
            throw FormatError(where + "\"hops\" must be an integer >= 0");
        if (j.contains("task") && !j["task"].is_string())
            throw FormatError(where + "\"task\" must be a string");
        EvalPrompt p;
        try {
            p.prompt = tok.encode(j["prompt"].get<std::string>());
            p.answer = tok.encode(j["answer"].get<std::string>());
        } catch (const std::exception& e) {
            throw FormatError(where + firstLine(e.what()));
        }
        if (int64_t(p.prompt.size() + p.answer.size()) > maxSeqLen)
            throw FormatError(where + "prompt + answer exceed max_seq_len = " + std::to_string(maxSeqLen));
        p.hops = j["hops"].get<int64_t>();
        p.task = j.value("task", std::string());
        out.push_back(std::move(p));
    });
    if (out.empty())
        throw FormatError(file.string() + ": no prompts");
    return out;
}

void EvalCell::add(bool ok, const std::vector<int32_t>& haltLoop) {
    ++n;
    correct += ok;
    for (int32_t h : haltLoop) {
        ++tokens;
        if (h > 0) {
            ++halted;
            haltSum += h;
        }
    }
    if (!haltLoop.empty() && haltLoop.back() > 0) {
        ++answerHalted;
        answerHaltSum += haltLoop.back();
    }
}

void HaltConvCell::add(int64_t halt, int64_t conv, int64_t K) {
    ++n;
    if (halt < 1 || halt > K) {
        ++never;
        halt = K;
    }
    haltSum += double(halt);
    convSum += double(conv);
    early += halt < conv;
    same += halt == conv;
    late += halt > conv;
}

EvalResult evaluate(Model& model, const std::vector<EvalPrompt>& prompts, std::vector<int64_t> loops,
                    const std::function<bool(int64_t, int64_t)>& progress, const std::atomic<bool>* cancel,
                    const std::vector<ExitRule>& rules) {
    std::sort(loops.begin(), loops.end());
    loops.erase(std::unique(loops.begin(), loops.end()), loops.end());
    for (int64_t L : loops)
        if (L < 1)
            throw ArgumentError("loop counts must be >= 1");
    EvalResult res;
    res.loops = loops;
    res.rules = rules;
    const int64_t total = int64_t(loops.size() * prompts.size() + prompts.size());
    int64_t done = 0;
    for (int64_t L : loops) {
        for (const auto& p : prompts) {
            if (cancel && cancel->load())
                throw Cancelled();
            const int64_t P = int64_t(p.prompt.size());
            GenerateOptions go;
            go.nLoops = L;
            go.maxNewTokens = int64_t(p.answer.size());
            go.sampling.greedy = true;
            go.keepStepLogits = false;
            go.cancel = cancel;
            const auto gen = generate(model, p.prompt, 1, P, go);
            const bool ok = gen.generated == p.answer;
            Trace tr;
            ForwardOptions fo;
            fo.nLoops = L;
            fo.trace = &tr;
            fo.cancel = cancel;
            model.forward(p.prompt, 1, P, fo);
            res.byLoops[L].add(ok, tr.haltLoop);
            res.byHops[{p.hops, L}].add(ok, tr.haltLoop);
            res.byTask[{p.task, p.hops, L}].add(ok, tr.haltLoop);
            ++done;
            if (progress && !progress(done, total))
                throw Cancelled();
        }
    }
    // Exit rules and halting against convergence: one deep run per prompt to the largest
    // loop count, its lens at each.
    for (const auto& p : prompts) {
        const int64_t P = int64_t(p.prompt.size());
        if (!loops.empty()) {
            DeepRun run = model.deepRun(p.prompt, 1, P, loops.back(), cancel);
            for (int64_t K : loops) {
                Trace tr;
                model.logitsAt(run, K, &tr);
                tr.lens = model.lens(run, K, false, cancel);
                const int32_t answer = p.answer.empty() ? -1 : p.answer.front();
                for (const auto& rule : rules) {
                    const ExitDecision d = exitDecision(tr, rule, 0, P - 1);
                    for (ExitCell* c : {&res.byRule[{rule.name(), K}], &res.byRuleHops[{rule.name(), p.hops, K}]}) {
                        ++c->n;
                        c->correct += d.token == answer;
                        c->loopSum += double(d.loop);
                    }
                }
                res.haltConv[{p.hops, K}].add(tr.haltLoop[std::size_t(P - 1)],
                                              tr.lens.state.convergence[std::size_t(P - 1)], K);
            }
        }
        ++done;
        if (progress && !progress(done, total))
            throw Cancelled();
    }
    return res;
}

} // namespace mythos
