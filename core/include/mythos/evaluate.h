#pragma once
// Held-out prompt sets and their evaluation: greedy exact-match accuracy and halting
// statistics per loop count, per hop count and per task (`mythos-cli eval` and the
// explorer's depth sweep share this).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"

namespace mythos {

// One line of a prompt set (JSONL: {"prompt", "answer", "hops"[, "task"]}), tokenized.
struct EvalPrompt {
    std::vector<int32_t> prompt, answer;
    int64_t hops = 0;
    std::string task;
};

// Every line is validated; a bad one is a FormatError naming FILE:LINE. At most 16 MiB and
// 100000 prompts; prompt + answer must fit max_seq_len.
std::vector<EvalPrompt> loadEvalPrompts(const std::filesystem::path& file, const Tokenizer& tok, int64_t maxSeqLen);

// Accuracy and halting statistics of one group of prompts at one loop count. Halting is
// counted twice: over every prompt token, and over the answer token alone (the prompt's
// last token, whose prediction is the first answer character). The second is the one that
// measures the work a prompt needs: most prompt tokens are easy whatever the question.
struct EvalCell {
    int64_t n = 0, correct = 0;
    int64_t tokens = 0, halted = 0; // prompt tokens, those that halted
    double haltSum = 0;
    int64_t answerHalted = 0; // prompts whose answer token halted
    double answerHaltSum = 0;
    // haltLoop: 1-based halting loop of every prompt token, 0 = never halted.
    void add(bool ok, const std::vector<int32_t>& haltLoop);
    double accuracy() const { return n ? double(correct) / double(n) : 0.0; }
    double meanHalt() const { return halted ? haltSum / double(halted) : 0.0; } // of halted tokens
    double neverHalted() const { return tokens ? double(tokens - halted) / double(tokens) : 0.0; }
    double meanAnswerHalt() const { return answerHalted ? answerHaltSum / double(answerHalted) : 0.0; }
    double answerNeverHalted() const { return n ? double(n - answerHalted) / double(n) : 0.0; }
};

// An exit rule on the answer token (docs/inside-the-loop.md, "Exit rules"): its prediction
// scored against the first answer token, and the loops it used.
struct ExitCell {
    int64_t n = 0, correct = 0;
    double loopSum = 0;
    double accuracy() const { return n ? double(correct) / double(n) : 0.0; }
    double meanLoops() const { return n ? loopSum / double(n) : 0.0; }
};

// The answer token's ACT halting loop against the loop from which its state-lens top-1 stays
// fixed (the convergence loop): does ACT stop when the answer is settled?
struct HaltConvCell {
    int64_t n = 0;
    int64_t never = 0;                     // did not halt within the loop count (counted at K below)
    double haltSum = 0, convSum = 0;       // halting loop (K when never), convergence loop
    int64_t early = 0, same = 0, late = 0; // halted before / at / after convergence
    void add(int64_t halt, int64_t conv, int64_t K);
    double meanHalt() const { return n ? haltSum / double(n) : 0.0; }
    double meanConv() const { return n ? convSum / double(n) : 0.0; }
};

struct EvalResult {
    std::vector<int64_t> loops; // ascending
    std::map<int64_t, EvalCell> byLoops;
    std::map<std::pair<int64_t, int64_t>, EvalCell> byHops;                   // (hops, loops)
    std::map<std::tuple<std::string, int64_t, int64_t>, EvalCell> byTask;     // (task, hops, loops)
    std::vector<ExitRule> rules;                                              // in the order given
    std::map<std::pair<std::string, int64_t>, ExitCell> byRule;               // (rule name, loops)
    std::map<std::tuple<std::string, int64_t, int64_t>, ExitCell> byRuleHops; // (rule name, hops, loops)
    std::map<std::pair<int64_t, int64_t>, HaltConvCell> haltConv;             // (hops, loops)
};

// For each loop count and prompt: greedy generation of len(answer) tokens with a KV cache
// (exact match of the whole answer) and the halting loops of an uncached forward of the
// prompt; then, from one deep run per prompt and its logit lens at each loop count, every
// exit rule's decision on the answer token and its halting against convergence.
// `progress(done, total)` after each step; false cancels (Cancelled).
EvalResult evaluate(Model& model, const std::vector<EvalPrompt>& prompts, std::vector<int64_t> loops,
                    const std::function<bool(int64_t done, int64_t total)>& progress = {},
                    const std::atomic<bool>* cancel = nullptr, const std::vector<ExitRule>& rules = defaultExitRules());

} // namespace mythos
