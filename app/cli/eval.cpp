// mythos-cli eval: greedy exact-match accuracy of held-out prompts at each loop count.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "mythos/evaluate.h"
#include "mythos/intervention.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/trace.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mythos;

namespace cli {
namespace {

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

// "a,b,c" -> {"a", "b", "c"}, empty items dropped.
std::vector<std::string> splitList(const std::string& text) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at <= text.size()) {
        const std::size_t comma = std::min(text.find(',', at), text.size());
        if (comma > at)
            out.push_back(text.substr(at, comma - at));
        at = comma + 1;
    }
    return out;
}

int runEval(const Args& a) {
    const std::string spec = modelSpec(a);
    if (isPresetSpec(spec))
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

    std::vector<ExitRule> rules = {parseExitRule("act")};
    if (a.has("exit-rules")) {
        for (const std::string& text : splitList(a.str("exit-rules")))
            if (text != "act")
                rules.push_back(parseExitRule(text));
    } else {
        rules = defaultExitRules();
    }
    const EvalResult ev =
        evaluate(*model, prompts, std::vector<int64_t>(loops.begin(), loops.end()), {}, nullptr, rules);
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
        for (const auto& [L, cell] : byLoops) {
            json o = {{"loops", L}, {"accuracy", cell.accuracy()}};
            addHaltFields(o, cell);
            jl.push_back(o);
        }
        for (const auto& [key, cell] : byHops) {
            json o = {{"hops", key.first}, {"loops", key.second}, {"accuracy", cell.accuracy()}};
            addHaltFields(o, cell);
            jh.push_back(o);
        }
        for (const auto& [key, cell] : byTask) {
            json o = {{"task", std::get<0>(key)},
                      {"hops", std::get<1>(key)},
                      {"loops", std::get<2>(key)},
                      {"accuracy", cell.accuracy()}};
            addHaltFields(o, cell);
            jt.push_back(o);
        }
        json jr = json::array(), jrh = json::array(), jc = json::array();
        for (const auto& [key, cell] : ev.byRule)
            jr.push_back({{"rule", key.first},
                          {"loops", key.second},
                          {"accuracy", cell.accuracy()},
                          {"mean_loops", cell.meanLoops()},
                          {"n", cell.n}});
        for (const auto& [key, cell] : ev.byRuleHops)
            jrh.push_back({{"rule", std::get<0>(key)},
                           {"hops", std::get<1>(key)},
                           {"loops", std::get<2>(key)},
                           {"accuracy", cell.accuracy()},
                           {"mean_loops", cell.meanLoops()},
                           {"n", cell.n}});
        for (const auto& [key, cell] : ev.haltConv)
            jc.push_back({{"hops", key.first},
                          {"loops", key.second},
                          {"mean_halt_loop", cell.meanHalt()},
                          {"mean_convergence_loop", cell.meanConv()},
                          {"halted_before_convergence", cell.early},
                          {"halted_at_convergence", cell.same},
                          {"halted_after_convergence", cell.late},
                          {"never_halted", cell.never},
                          {"n", cell.n}});
        json j = {{"model", spec},
                  {"intervention", model->intervention() ? interventionToJson(*model->intervention()) : json()},
                  {"exit_rules", jr},
                  {"exit_rules_by_hops", jrh},
                  {"halting_vs_convergence", jc},
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
        std::printf("%8lld %10.3f %16s %14.3f %18s %14.3f %6lld\n", (long long)L, cell.accuracy(),
                    fmtHalt(cell).c_str(), cell.neverHalted(), fmtAnswerHalt(cell).c_str(), cell.answerNeverHalted(),
                    (long long)cell.n);
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
    table(
        "accuracy and mean halting loop of the answer token (the prompt's last) by hops x loops",
        [&](const std::string&, int64_t h, int64_t L) -> const EvalCell& {
            return byHops[{h, L}];
        },
        hopRows);
    const bool anyTask =
        std::any_of(prompts.begin(), prompts.end(), [](const EvalPrompt& p) { return !p.task.empty(); });
    if (anyTask)
        table(
            "by task and hops",
            [&](const std::string& t, int64_t h, int64_t L) -> const EvalCell& {
                return byTask[{t == "-" ? std::string() : t, h, L}];
            },
            taskRows);
    std::printf("\nthe answer token's halting loop against its convergence loop (the first loop from which the\n"
                "state lens' top-1 stays fixed), by hops x loops: mean halt / mean convergence, and how many\n"
                "halted before / at / after convergence (never halted counts as the loop count)\n");
    std::printf("%-6s %6s %10s %12s %8s %8s %8s %8s %6s\n", "hops", "loops", "halt", "convergence", "before", "at",
                "after", "never", "n");
    for (const auto& [key, cell] : ev.haltConv)
        std::printf("%-6lld %6lld %10.2f %12.2f %8lld %8lld %8lld %8lld %6lld\n", (long long)key.first,
                    (long long)key.second, cell.meanHalt(), cell.meanConv(), (long long)cell.early,
                    (long long)cell.same, (long long)cell.late, (long long)cell.never, (long long)cell.n);
    std::printf("\nexit rules on the answer token: accuracy (first answer token) and mean loops used, by loop count\n"
                "(act: ACT's halting loop and the model's output; the others exit on the state lens)\n%-14s",
                "rule");
    for (int64_t L : loops)
        std::printf(" %14s", ("L=" + std::to_string(L)).c_str());
    std::printf("\n");
    for (const auto& rule : ev.rules) {
        std::printf("%-14s", rule.name().c_str());
        for (int64_t L : loops) {
            const auto it = ev.byRule.find({rule.name(), L});
            if (it == ev.byRule.end())
                std::printf(" %14s", "-");
            else
                std::printf("  %5.3f @ %5.2f", it->second.accuracy(), it->second.meanLoops());
        }
        std::printf("\n");
    }
    std::printf("\nrouting at %lld loops: entropy %.3f of %.3f bits, dead experts %s\n", (long long)c.max_loop_iters,
                entropy, maxEntropy, dead.empty() ? "none" : dead.dump().c_str());
    std::printf("rho(A) %.6f\n", rho);
    return 0;
}

} // namespace

Command evalCommand() {
    return {"eval",
            "--model DIR [--prompts FILE.jsonl] [--loops 1,2,4,8,16]\n"
            "[--exit-rules \"kl<0.01,entropy<0.1,stable:2\"] [--json]",
            "greedy exact-match accuracy of held-out prompts ({\"prompt\", \"answer\",\n"
            "\"hops\"[, \"task\"]} per line) at each loop count, by hops x loops, with the\n"
            "mean halting loop, routing entropy, dead experts and rho(A); the answer\n"
            "token's halting against its convergence loop, and each exit rule's accuracy\n"
            "and mean loops (ACT always; docs/inside-the-loop.md)",
            {"prompts", "loops", "exit-rules"},
            {"json"},
            runEval};
}

} // namespace cli
