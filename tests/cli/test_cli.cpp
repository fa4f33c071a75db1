// End-to-end tests of mythos-cli on the golden cases: run the real executable, check its
// exit code, its output and the files it writes.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "mythos/config.h"
#include "mythos/kvcache.h"
#include "mythos/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Result {
    int code = -1;
    std::string out; // stdout + stderr
};

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s)
        q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

Result run(const std::vector<std::string>& args) {
    std::string cmd = quote(MYTHOS_CLI);
    for (const auto& a : args)
        cmd += " " + quote(a);
    cmd += " 2>&1";
    Result r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p)
        return r;
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
        r.out.append(buf.data(), n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

json readJson(const fs::path& p) {
    std::ifstream in(p);
    return json::parse(in);
}

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("mythos_cli_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }
    fs::path dir;
    const std::string tinyMla = std::string(MYTHOS_TEST_DATA_DIR) + "/tiny_mla";
    const std::string tinyGqa = std::string(MYTHOS_TEST_DATA_DIR) + "/tiny_gqa";
};

json golden(const std::string& caseDir) { return readJson(fs::path(caseDir) / "golden.json"); }

std::vector<float> goldenTensor(const std::string& caseDir, const std::string& name) {
    auto f = mythos::SafetensorsFile::open(fs::path(caseDir) / "golden.safetensors");
    return f.readF32(*f.find(name));
}

template <typename T>
void flatten(const json& j, std::vector<T>& out) {
    if (j.is_array())
        for (const auto& x : j)
            flatten(x, out);
    else
        out.push_back(j.get<T>());
}

std::string idsArg(const json& rows) {
    std::string s;
    for (const auto& row : rows) {
        if (!s.empty())
            s += ";";
        for (std::size_t i = 0; i < row.size(); ++i)
            s += (i ? "," : "") + std::to_string(row[i].get<int>());
    }
    return s;
}

TEST_F(Cli, HelpAndUnknownCommand) {
    auto r = run({"--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("usage: mythos-cli"), std::string::npos);
    r = run({"trace", "--help"});
    EXPECT_EQ(r.code, 0);
    r = run({"frobnicate"});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("unknown command"), std::string::npos);
}

// The help is made from the command table: every command is listed in it, and a command's
// --help prints that command's synopsis and summary from the same table with the common
// options (presets takes no options and lists the presets).
TEST_F(Cli, EveryCommandIsInTheHelp) {
    const auto help = run({"--help"});
    ASSERT_EQ(help.code, 0);
    for (const std::string name :
         {"info", "trace", "generate", "bench", "rescale", "eval", "report", "tokenize", "presets"}) {
        std::string column = "\n  " + name;
        column.resize(12, ' ');
        EXPECT_NE(help.out.find(column), std::string::npos) << name;
        if (name == "presets")
            continue;
        const auto r = run({name, "--help"});
        EXPECT_EQ(r.code, 0) << name;
        EXPECT_EQ(r.out.rfind("usage: mythos-cli " + name + " ", 0), 0u) << r.out;
        EXPECT_NE(r.out.find("Common options:"), std::string::npos) << name;
        // Only this command: no other command's line.
        for (const std::string other : {"info", "trace", "generate", "bench", "rescale", "eval", "report"}) {
            if (other != name) {
                EXPECT_EQ(r.out.find("usage: mythos-cli " + other), std::string::npos) << name;
            }
        }
    }
    // A command's help holds its options and what it does.
    const auto trace = run({"trace", "--help"});
    EXPECT_NE(trace.out.find("--attention-row B"), std::string::npos) << trace.out;
    EXPECT_NE(trace.out.find("write its trace"), std::string::npos) << trace.out;
    EXPECT_EQ(trace.out.find("\n  generate"), std::string::npos) << trace.out;
    auto r = run({});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, help.out);
    r = run({"info", "--help", "--bogus"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.out.find("mythos-cli info: unknown option --bogus"), std::string::npos) << r.out;
}

TEST_F(Cli, InfoJsonMatchesGolden) {
    for (const auto& c : {tinyMla, tinyGqa}) {
        auto r = run({"info", "--model", c, "--json"});
        ASSERT_EQ(r.code, 0) << r.out;
        const json j = json::parse(r.out);
        const json g = golden(c);
        EXPECT_EQ(j["parameters"]["total"].get<int64_t>(), g["param_count"].get<int64_t>());
        EXPECT_NEAR(j["rho_A"].get<double>(), g["rho_A"].get<double>(), 1e-6);
        // One entry of the reference's cache per position: compare with a one-token run's ledger.
        EXPECT_EQ(j["kv"]["entries"].size(),
                  size_t(g["config"]["prelude_layers"].get<int>() + g["config"]["max_loop_iters"].get<int>() +
                         g["config"]["coda_layers"].get<int>()));
    }
    auto r = run({"info", "--model", "preset:mythos_1b"});
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("1,064,028,034"), std::string::npos) << r.out;
}

TEST_F(Cli, TraceMatchesGoldenForwardRuns) {
    const json g = golden(tinyMla);
    int checked = 0;
    for (const auto& runj : g["forward_runs"]) {
        const std::string name = runj["name"];
        const bool cached = runj["kv_cache"].get<bool>();
        const fs::path out = dir / (name + ".json");
        std::vector<std::string> args = {"trace",
                                         "--model",
                                         tinyMla,
                                         "--ids",
                                         idsArg(g["inputs"][runj["input"].get<std::string>()]),
                                         "--loops",
                                         std::to_string(runj["n_loops"].get<int>()),
                                         "--out",
                                         out.string()};
        if (cached)
            args.push_back("--kv-cache");
        auto r = run(args);
        ASSERT_EQ(r.code, 0) << r.out;
        const json t = readJson(out);
        EXPECT_EQ(t["schema"], "mythos-trace/1");
        EXPECT_EQ(t["loops_executed"], runj["loops_executed"]) << name;
        EXPECT_EQ(t["act"]["halt_loop"], runj["halt_loop"]) << name;
        EXPECT_EQ(t["routing"]["topk_ids"], runj["router_topk_ids"]) << name;
        std::vector<float> logits, ref = goldenTensor(tinyMla, runj["tensors"]["logits"]);
        flatten(t["logits"], logits);
        ASSERT_EQ(logits.size(), ref.size());
        float maxRef = 0;
        for (float v : ref)
            maxRef = std::max(maxRef, std::fabs(v));
        for (std::size_t i = 0; i < ref.size(); ++i)
            ASSERT_NEAR(logits[i], ref[i], 1e-4 * maxRef + 1e-5) << name << " logit " << i;
        std::vector<float> p, pref = goldenTensor(tinyMla, runj["tensors"]["act_p"]);
        flatten(t["act"]["p"], p);
        ASSERT_EQ(p.size(), pref.size());
        for (std::size_t i = 0; i < p.size(); ++i)
            ASSERT_NEAR(p[i], pref[i], 1e-5);
        ASSERT_TRUE(t.contains("h_norm"));
        ASSERT_TRUE(t["routing"].contains("weights"));
        EXPECT_NEAR(t["rho_A"].get<double>(), g["rho_A"].get<double>(), 1e-6);
        if (cached) {
            EXPECT_EQ(t["kv"]["total_bytes"], runj["kv_cache_total_bytes"]);
            ASSERT_EQ(t["kv"]["entries"].size(), runj["kv_cache_after"].size());
            for (std::size_t i = 0; i < runj["kv_cache_after"].size(); ++i) {
                EXPECT_EQ(t["kv"]["entries"][i]["key"], runj["kv_cache_after"][i]["key"]);
                EXPECT_EQ(t["kv"]["entries"][i]["bytes"], runj["kv_cache_after"][i]["nbytes"]);
            }
        } else {
            EXPECT_FALSE(t.contains("kv"));
        }
        ++checked;
    }
    EXPECT_EQ(checked, int(g["forward_runs"].size()));
}

TEST_F(Cli, GenerateGreedyMatchesGoldenDecode) {
    for (const auto& c : {tinyMla, tinyGqa}) {
        const json g = golden(c);
        for (const auto& d : g["decode_runs"]) {
            const fs::path out = dir / "gen.json";
            auto r = run({"generate", "--model", c, "--ids", idsArg(g["inputs"][d["input"].get<std::string>()]),
                          "--loops", std::to_string(d["n_loops"].get<int>()), "--new-tokens",
                          std::to_string(d["new_tokens"].get<int>()), "--greedy", "--out", out.string()});
            ASSERT_EQ(r.code, 0) << r.out;
            const json j = readJson(out);
            EXPECT_EQ(j["generated"], d["generated"]) << c << " " << d["name"];
            std::vector<float> logits, ref = goldenTensor(c, d["tensors"]["step_logits"]);
            flatten(j["step_logits"], logits);
            ASSERT_EQ(logits.size(), ref.size());
            float maxRef = 0;
            for (float v : ref)
                maxRef = std::max(maxRef, std::fabs(v));
            for (std::size_t i = 0; i < ref.size(); ++i)
                ASSERT_NEAR(logits[i], ref[i], 1e-4 * maxRef + 1e-5);
        }
    }
}

TEST_F(Cli, GenerateSampledIsSeeded) {
    auto a = run({"generate", "--model", tinyMla, "--ids", "1,2,3", "--loops", "4", "--new-tokens", "12",
                  "--temperature", "1.5", "--top-k", "20", "--seed", "7"});
    auto b = run({"generate", "--model", tinyMla, "--ids", "1,2,3", "--loops", "4", "--new-tokens", "12",
                  "--temperature", "1.5", "--top-k", "20", "--seed", "7"});
    auto c = run({"generate", "--model", tinyMla, "--ids", "1,2,3", "--loops", "4", "--new-tokens", "12",
                  "--temperature", "1.5", "--top-k", "20", "--seed", "8"});
    ASSERT_EQ(a.code, 0) << a.out;
    EXPECT_EQ(a.out, b.out);
    EXPECT_NE(a.out, c.out);
    auto bad = run({"generate", "--model", tinyMla, "--ids", "1,2,3", "--loops", "4", "--new-tokens", "2", "--greedy",
                    "--seed", "3"});
    EXPECT_NE(bad.code, 0);
}

TEST_F(Cli, BenchJsonHasEveryLoopCount) {
    auto r = run({"bench", "--model", tinyMla, "--prompt-len", "16", "--loops", "1,4", "--decode", "4", "--repeats",
                  "1", "--threads", "1", "--json"});
    ASSERT_EQ(r.code, 0) << r.out;
    const json j = json::parse(r.out);
    for (const char* k : {"1", "4"}) {
        ASSERT_TRUE(j["prefill_ms"].contains(k));
        EXPECT_GT(j["prefill_ms"][k].get<double>(), 0);
        ASSERT_TRUE(j["decode_tokens_per_s"].contains(k));
        EXPECT_GT(j["decode_tokens_per_s"][k].get<double>(), 0);
        ASSERT_TRUE(j["loop_change_ms"].contains(k));
        EXPECT_GT(j["loop_change_ms"][k].get<double>(), 0);
        EXPECT_GT(j["roofline"]["prefill_matmul_gflop"].get<double>(), 0);
        EXPECT_GT(j["roofline"]["fraction"].get<double>(), 0);
    }
    EXPECT_EQ(j["threads"], 1);
    // A decode loop count that is not prefilled is an error, not a silently missing row.
    r = run({"bench", "--model", tinyMla, "--prompt-len", "8", "--loops", "1", "--decode-loops", "4", "--decode", "2",
             "--repeats", "1", "--threads", "1"});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("--decode-loops 4"), std::string::npos) << r.out;
}

TEST_F(Cli, Bf16WeightsHalveTheWeightBytesAndAreRecorded) {
    const std::vector<std::string> bench = {"bench", "--model",  tinyGqa, "--prompt-len", "8", "--loops",
                                            "2",     "--decode", "3",     "--repeats",    "1", "--threads",
                                            "1",     "--json"};
    auto withWeights = [&](const std::string& w) {
        auto args = bench;
        args.insert(args.end(), {"--weights", w});
        return args;
    };
    const auto f32 = run(withWeights("f32"));
    const auto bf16 = run(withWeights("bf16"));
    ASSERT_EQ(f32.code, 0) << f32.out;
    ASSERT_EQ(bf16.code, 0) << bf16.out;
    const json jf = json::parse(f32.out), jb = json::parse(bf16.out);
    EXPECT_EQ(jf["weight_type"], "f32");
    EXPECT_EQ(jb["weight_type"], "bf16");
    EXPECT_LE(jb["weight_bytes"].get<double>(), 0.55 * jf["weight_bytes"].get<double>());
    EXPECT_GT(jb["decode_tokens_per_s"]["2"].get<double>(), 0);
    EXPECT_EQ(json::parse(run(bench).out)["weight_type"], "f32") << "f32 is the default";

    const fs::path out = dir / "t.json";
    auto r = run(
        {"trace", "--model", tinyMla, "--ids", "1,2,3", "--loops", "2", "--weights", "bf16", "--out", out.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(readJson(out)["options"]["weight_type"], "bf16");
    r = run({"generate", "--model", tinyMla, "--ids", "1,2,3", "--loops", "2", "--new-tokens", "3", "--greedy",
             "--weights", "bf16"});
    EXPECT_EQ(r.code, 0) << r.out;
}

TEST_F(Cli, RescaleWritesANewModel) {
    const fs::path out = dir / "rescaled";
    auto r = run({"rescale", "--model", tinyGqa, "--target", "0.5", "--out", out.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    r = run({"info", "--model", out.string(), "--json"});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NEAR(json::parse(r.out)["rho_A"].get<double>(), 0.5, 1e-5);
    r = run({"trace", "--model", out.string(), "--ids", "1,2,3", "--loops", "2", "--out", (dir / "t.json").string()});
    EXPECT_EQ(r.code, 0) << r.out;
}

TEST_F(Cli, ErrorsAreOneLineAndNonZero) {
    const std::vector<std::vector<std::string>> bad = {
        {"info", "--model", "/nonexistent/folder"},
        {"trace", "--model", tinyMla, "--ids", "1,2,999", "--loops", "2", "--out", (dir / "x.json").string()},
        {"trace", "--model", tinyMla, "--ids", "1,2;3", "--loops", "2", "--out", (dir / "x.json").string()},
        {"trace", "--model", tinyMla, "--ids", "1,x", "--loops", "2", "--out", (dir / "x.json").string()},
        {"trace", "--model", tinyMla, "--ids", "1,2", "--loops", "0", "--out", (dir / "x.json").string()},
        {"trace", "--model", tinyMla, "--ids", "1,2", "--loops", "2", "--out", "/nonexistent/dir/x.json"},
        {"bench", "--model", tinyMla, "--loops", "1,a"},
        {"trace", "--model", tinyMla, "--ids", "1,2", "--loops", "2", "--weights", "f16", "--out",
         (dir / "x.json").string()},
        {"info", "--model", tinyMla, "--bogus"},
        {"generate", "--model", "preset:no_such_preset", "--ids", "1", "--loops", "1", "--new-tokens", "1"},
    };
    for (const auto& args : bad) {
        const auto r = run(args);
        EXPECT_NE(r.code, 0) << args[0] << ": " << r.out;
        EXPECT_FALSE(r.out.empty());
        // one line: the only newline is the last character
        EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;
    }
    EXPECT_FALSE(fs::exists(dir / "x.json"));
}

TEST_F(Cli, BadModelFilesGiveClearErrors) {
    // A model folder with a truncated weight file.
    const fs::path m = dir / "broken";
    fs::create_directories(m);
    fs::copy_file(fs::path(tinyMla) / "config.json", m / "config.json");
    {
        std::ifstream in(fs::path(tinyMla) / "model.safetensors", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream(m / "model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    }
    auto r = run({"trace", "--model", m.string(), "--ids", "1", "--loops", "1", "--out", (dir / "t.json").string()});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("model.safetensors"), std::string::npos) << r.out;
    // An invalid config lists every problem on one line.
    std::ofstream(m / "config.json") << R"({"dim": 130, "n_heads": 4, "attn_type": "gqa", "n_kv_heads": 3})";
    r = run({"info", "--model", m.string()});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("config.json"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("n_heads"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("n_kv_heads"), std::string::npos) << r.out;
}

TEST_F(Cli, WithoutModelTheBundledDemoModelAndItsPromptsAreUsed) {
    auto r = run({"info", "--json"});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("using the bundled demo model"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("demo_mla"), std::string::npos) << r.out;
    const json info = json::parse(r.out.substr(r.out.find('{')));
    std::ifstream cfgIn(fs::path(MYTHOS_SOURCE_DIR) / "resources/models/demo_mla/config.json");
    const json cfg = json::parse(cfgIn);
    EXPECT_EQ(info.dump().find("\"dim\":" + std::to_string(cfg["dim"].get<int64_t>())) != std::string::npos, true)
        << info.dump();
    // eval's prompt set defaults to the model folder's prompts.jsonl.
    r = run({"eval", "--loops", "1", "--json", "--threads", "1"});
    ASSERT_EQ(r.code, 0) << r.out;
    const json ev = json::parse(r.out.substr(r.out.find('{')));
    std::ifstream promptsIn(fs::path(MYTHOS_SOURCE_DIR) / "resources/models/demo_mla/prompts.jsonl");
    int64_t lines = 0;
    for (std::string line; std::getline(promptsIn, line);)
        lines += !line.empty();
    EXPECT_EQ(ev["n_prompts"].get<int64_t>(), lines);
    EXPECT_NE(ev["prompts"].get<std::string>().find("prompts.jsonl"), std::string::npos);
    // A model folder without prompts.jsonl still needs --prompts.
    r = run({"eval", "--model", tinyMla, "--loops", "1"});
    EXPECT_NE(r.code, 0);
}

TEST_F(Cli, EvalReportsAccuracyByLoopsAndRejectsBadPrompts) {
    // tiny_mla has vocab 64 and no tokenizer: give a copy a 64-character tokenizer.json.
    const fs::path m = dir / "tiny_tok";
    fs::create_directories(m);
    fs::copy_file(fs::path(tinyMla) / "config.json", m / "config.json");
    fs::copy_file(fs::path(tinyMla) / "model.safetensors", m / "model.safetensors");
    json vocab = json::array({"<pad>", "\n", " "});
    const std::string chars = "0123456789abcdefghijklmnopqrstuvwxyz=;?+.,!-:ABCDEFGHIJKLMNOP";
    for (char c : chars)
        vocab.push_back(std::string(1, c));
    ASSERT_EQ(vocab.size(), 64u);
    std::ofstream(m / "tokenizer.json")
        << json({{"type", "char"}, {"version", 1}, {"vocab", vocab}, {"unk", 0}}).dump();
    const fs::path prompts = dir / "prompts.jsonl";
    std::ofstream(prompts) << R"({"prompt": "a=3;b=a;b?", "answer": "3", "hops": 2, "task": "chain"})"
                              "\n"
                           << R"({"prompt": "12+34=", "answer": "46", "hops": 2, "task": "add"})"
                              "\n"
                           << "\n"
                           << R"({"prompt": "c=1;c?", "answer": "1", "hops": 1})"
                              "\n";
    auto r = run({"eval", "--model", m.string(), "--prompts", prompts.string(), "--loops", "1,2,4,8", "--json",
                  "--threads", "1"});
    ASSERT_EQ(r.code, 0) << r.out;
    const json j = json::parse(r.out);
    ASSERT_EQ(j["by_loops"].size(), 4u);
    std::vector<int64_t> seen;
    for (const auto& e : j["by_loops"]) {
        seen.push_back(e["loops"].get<int64_t>());
        EXPECT_GE(e["accuracy"].get<double>(), 0.0);
        EXPECT_LE(e["accuracy"].get<double>(), 1.0);
        EXPECT_EQ(e["n"].get<int64_t>(), 3);
        EXPECT_GE(e["never_halted"].get<double>(), 0.0);
        EXPECT_LE(e["never_halted"].get<double>(), 1.0);
        // The answer token's halting: a loop in 1..L when some answer token halted, else null.
        const double anh = e["answer_never_halted"].get<double>();
        EXPECT_GE(anh, 0.0);
        EXPECT_LE(anh, 1.0);
        if (anh < 1.0) {
            EXPECT_GE(e["answer_halt_loop"].get<double>(), 1.0);
            EXPECT_LE(e["answer_halt_loop"].get<double>(), double(e["loops"].get<int64_t>()));
        } else {
            EXPECT_TRUE(e["answer_halt_loop"].is_null());
        }
    }
    EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 4, 8}));
    int64_t hopsTotal = 0;
    for (const auto& e : j["by_hops"])
        if (e["loops"] == 1)
            hopsTotal += e["n"].get<int64_t>();
    EXPECT_EQ(hopsTotal, 3);
    EXPECT_TRUE(j["routing"]["entropy"].is_number());
    EXPECT_TRUE(j["routing"]["dead_experts"].is_array());
    EXPECT_GT(j["rho_A"].get<double>(), 0.0);
    // Text output has the table.
    r = run({"eval", "--model", m.string(), "--prompts", prompts.string(), "--loops", "1,2", "--threads", "1"});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;

    // A malformed line: non-zero exit, one line naming the file and the line number.
    const fs::path bad = dir / "bad.jsonl";
    std::ofstream(bad) << R"({"prompt": "a=1;a?", "answer": "1", "hops": 1})"
                          "\n"
                       << R"({"prompt": "a=1;a?", "answer": 1, "hops": 1})"
                          "\n";
    r = run({"eval", "--model", m.string(), "--prompts", bad.string(), "--loops", "1"});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("bad.jsonl:2"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;
    std::ofstream(bad) << "not json\n";
    r = run({"eval", "--model", m.string(), "--prompts", bad.string(), "--loops", "1"});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("bad.jsonl:1"), std::string::npos) << r.out;
}

} // namespace

#if MYTHOS_CLI_HAS_REPORT
TEST_F(Cli, ReportOnGoldenCaseWritesEveryFile) {
    const json g = golden(tinyMla);
    const fs::path out = dir / "report";
    // Unsorted with a duplicate: the report takes each loop count once, ascending.
    auto r = run({"report", "--model", tinyMla, "--ids", idsArg(g["inputs"]["b1"]), "--loops", "8,1,4,1", "--size",
                  "640x400", "--threads", "1", "--out", out.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(out.string()), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("100%"), std::string::npos) << r.out;
    for (const auto& e : fs::directory_iterator(dir))
        EXPECT_EQ(e.path().filename(), "report") << "left behind: " << e.path();

    const json s = readJson(out / "summary.json");
    EXPECT_EQ(s["schema"], "mythos-report/1");
    EXPECT_EQ(s["model"], tinyMla);
    EXPECT_EQ(s["loop_counts"], json({1, 4, 8}));
    EXPECT_EQ(s["parameters"].get<int64_t>(), g["param_count"].get<int64_t>());
    EXPECT_NEAR(s["rho_A"].get<double>(), g["rho_A"].get<double>(), 1e-6);
    EXPECT_EQ(s["config"]["attn_type"], "mla");
    EXPECT_EQ(s["chart_size"], json({640, 400}));
    const auto cfg = mythos::configFromJson(s["config"], "summary.json");
    const int64_t T = int64_t(g["inputs"]["b1"][0].size());
    ASSERT_EQ(s["runs"].size(), 3u);
    for (const auto& run : s["runs"]) {
        const int64_t k = run["loops"].get<int64_t>();
        // The golden forward run at this loop count: the same halting and loops executed.
        const std::string name = "b1_L" + std::to_string(k) + "_nocache";
        json golden;
        for (const auto& f : g["forward_runs"])
            if (f["name"] == name)
                golden = f;
        ASSERT_FALSE(golden.is_null()) << name;
        EXPECT_EQ(run["loops_executed"], golden["loops_executed"]) << name;
        EXPECT_EQ(run["tokens"].get<int64_t>(), T);
        EXPECT_EQ(run["kv_bytes"]["reference"].get<int64_t>(),
                  mythos::kvLedgerFor(cfg, 1, T, k, mythos::KvLayout::Reference).referenceBytes);
        EXPECT_EQ(run["kv_bytes"]["compact"].get<int64_t>(),
                  mythos::kvLedgerFor(cfg, 1, T, k, mythos::KvLayout::Compact).engineBytes);
        const fs::path sub = out / ("loops-" + std::to_string(k));
        const json t = readJson(sub / "trace.json");
        EXPECT_EQ(t["schema"], "mythos-trace/1");
        EXPECT_EQ(t["act"]["halt_loop"], golden["halt_loop"]) << name;
        EXPECT_FALSE(t.contains("logits")) << "logits only with --logits";
        for (const std::string chart : {"halting-halting-heatmap", "halting-halting-bars", "halting-halting-text",
                                        "stability-h-norm", "stability-rho-summary"})
            for (const std::string suffix : {".png", ".svg", ".csv", ".json"})
                EXPECT_TRUE(fs::is_regular_file(sub / (chart + suffix))) << sub / (chart + suffix);
        // The heatmap's CSV: a header and one row per token and loop executed.
        std::ifstream csv(sub / "halting-halting-heatmap.csv");
        int lines = 0;
        for (std::string line; std::getline(csv, line);)
            ++lines;
        EXPECT_GT(lines, 1);
    }
    // Every listed file exists; the PDF is whole.
    ASSERT_FALSE(s["files"].empty());
    for (const auto& f : s["files"])
        EXPECT_TRUE(fs::is_regular_file(out / f.get<std::string>())) << f;
    std::ifstream pdfIn(out / "report.pdf", std::ios::binary);
    const std::string pdf((std::istreambuf_iterator<char>(pdfIn)), std::istreambuf_iterator<char>());
    EXPECT_EQ(pdf.rfind("%PDF-", 0), 0u);
    EXPECT_NE(pdf.find("%%EOF", pdf.size() > 16 ? pdf.size() - 16 : 0), std::string::npos);

    // Run again into the same folder: the old report is replaced.
    r = run({"report", "--model", tinyMla, "--ids", idsArg(g["inputs"]["b1"]), "--loops", "2", "--size", "640x400",
             "--threads", "1", "--out", out.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(readJson(out / "summary.json")["loop_counts"], json({2}));
    EXPECT_FALSE(fs::exists(out / "loops-8"));
}

TEST_F(Cli, ReportRejectsBadArguments) {
    const fs::path out = dir / "report";
    const fs::path notes = dir / "notes";
    fs::create_directories(notes);
    std::ofstream(notes / "notes.txt") << "keep me";
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"report", "--model", tinyMla, "--ids", "1,2,3", "--loops", "0", "--out", out.string()}, "--loops"},
        {{"report", "--model", tinyMla, "--ids", "1,2,3", "--loops", "1,x", "--out", out.string()}, "--loops"},
        {{"report", "--model", tinyMla, "--ids", "1,2,3", "--loops", "1,4"}, "--out"},
        {{"report", "--model", tinyMla, "--ids", "1,2,3", "--size", "10x10", "--out", out.string()}, "--size"},
        {{"report", "--model", tinyMla, "--ids", "1,2,3", "--size", "big", "--out", out.string()}, "--size"},
        {{"report", "--model", tinyMla, "--ids", "1,2;3,4", "--out", out.string()}, "single row"},
        {{"report", "--model", tinyMla, "--prompt", "hello", "--out", out.string()}, "--ids"},
        {{"report", "--model", tinyMla, "--ids", "1,2,999", "--loops", "1", "--out", out.string()}, "999"},
        {{"report", "--model", tinyMla, "--ids", "1,2,3", "--loops", "1", "--out", notes.string()}, notes.string()},
    };
    for (const auto& [args, needle] : bad) {
        const auto r = run(args);
        EXPECT_NE(r.code, 0) << r.out;
        EXPECT_NE(r.out.find(needle), std::string::npos) << needle << ": " << r.out;
        EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;
    }
    EXPECT_FALSE(fs::exists(out));
    EXPECT_EQ(std::distance(fs::directory_iterator(notes), fs::directory_iterator()), 1);
    std::ifstream kept(notes / "notes.txt");
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>()), "keep me");
    // Nothing but the two folders the test made (no temporary report folders).
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}
#else
TEST_F(Cli, ReportNeedsQt) {
    const auto r = run({"report", "--model", tinyMla, "--ids", "1,2,3", "--out", (dir / "report").string()});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("built without Qt"), std::string::npos) << r.out;
}
#endif

// A tokenizer.json that cannot be read is said once; --ids still works, --prompt fails
// naming the file.
TEST_F(Cli, UnreadableTokenizerStillTakesIds) {
    const fs::path model = dir / "model";
    fs::create_directories(model);
    for (const char* f : {"config.json", "model.safetensors"})
        fs::copy_file(fs::path(tinyMla) / f, model / f);
    std::ofstream(model / "tokenizer.json") << "";
    Result r =
        run({"trace", "--model", model.string(), "--ids", "1,2,3", "--loops", "2", "--out", (dir / "t.json").string()});
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("warning: " + (model / "tokenizer.json").string() + ": the file is empty"), std::string::npos)
        << r.out;
    EXPECT_TRUE(fs::exists(dir / "t.json"));
    r = run({"trace", "--model", model.string(), "--prompt", "ab", "--loops", "2", "--out", (dir / "u.json").string()});
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("error: " + (model / "tokenizer.json").string()), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "u.json"));
}

// A model folder with a real tokenizer: `tokenize` shows ids and pieces (no weights are
// read), `info` names the tokenizer, and special tokens past the model's vocabulary are
// encoded (the model itself refuses them when run).
TEST_F(Cli, TokenizeAndInfoUseTheFoldersTokenizer) {
    const fs::path model = dir / "model";
    fs::create_directories(model);
    json cfg = readJson(fs::path(tinyMla) / "config.json");
    cfg["vocab_size"] = 199998;
    std::ofstream(model / "config.json") << cfg.dump();
    fs::copy_file(fs::path(MYTHOS_TEST_DATA_DIR) / "tokenizers" / "o200k_base.tiktoken", model / "o200k_base.tiktoken");

    Result r = run({"tokenize", "--model", model.string(), "--prompt", "Hello, world!<|endofprompt|>", "--json"});
    ASSERT_EQ(r.code, 0) << r.out;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["ids"], json({13225, 11, 2375, 0, 200018}));
    EXPECT_EQ(j["pieces"], json({"Hello", ",", "\u2423world", "!", "<|endofprompt|>"}));
    EXPECT_EQ(j["text"], "Hello, world!<|endofprompt|>");
    EXPECT_NE(j["tokenizer"].get<std::string>().find("o200k"), std::string::npos) << r.out;

    r = run({"tokenize", "--model", model.string(), "--ids", "13225,2375"});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("text: Hello world"), std::string::npos) << r.out;

    r = run({"tokenize", "--model", model.string()});
    EXPECT_EQ(r.code, 2) << r.out;

    // Too small a vocabulary for the file: an error naming the file.
    cfg["vocab_size"] = 1000;
    std::ofstream(model / "config.json") << cfg.dump();
    r = run({"tokenize", "--model", model.string(), "--prompt", "hi"});
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("o200k_base.tiktoken"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("vocab_size is 1,000"), std::string::npos) << r.out;

    // info on a real model folder with a GPT-2 tokenizer.json names it.
    const fs::path m2 = dir / "m2";
    fs::create_directories(m2);
    for (const char* f : {"config.json", "model.safetensors"})
        fs::copy_file(fs::path(tinyMla) / f, m2 / f);
    r = run({"info", "--model", m2.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("tokenizer    none (prompts as ids)"), std::string::npos) << r.out;
}

// A large vocabulary: a trace keeps the top logits of every position and the full logits
// only when asked; bench types its prompt through a tokenizer file and times it.
TEST_F(Cli, LargeVocabularyTracesKeepTopLogitsAndBenchTypesText) {
    const std::string spec = "preset:tiny_mla:1";
    std::string ids;
    for (int i = 0; i < 24; ++i)
        ids += (i ? "," : "") + std::to_string(1000 + 7919 * i);
    const fs::path small = dir / "small.json", full = dir / "full.json";
    Result r =
        run({"trace", "--model", spec, "--vocab", "200000", "--ids", ids, "--loops", "2", "--out", small.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    json j = readJson(small);
    EXPECT_FALSE(j.contains("logits")) << "24 x 200000 logits are not kept by default";
    ASSERT_TRUE(j.contains("logits_topk"));
    EXPECT_EQ(j["logits_topk"]["k"], 10);
    EXPECT_EQ(j["logits_topk"]["positions"].size(), 24u);
    EXPECT_EQ(j["vocab"], 200000);
    EXPECT_LT(fs::file_size(small), 200000u);

    r = run({"trace", "--model", spec, "--vocab", "200000", "--ids", "5,6", "--loops", "2", "--full-logits", "--out",
             full.string()});
    ASSERT_EQ(r.code, 0) << r.out;
    j = readJson(full);
    ASSERT_TRUE(j.contains("logits"));
    EXPECT_EQ(j["logits"][0].size(), 2u);
    EXPECT_EQ(j["logits"][0][1].size(), 200000u);
    // The top logits are the largest of the full row.
    std::vector<float> row = j["logits"][0][1].get<std::vector<float>>();
    const auto best = std::max_element(row.begin(), row.end()) - row.begin();
    EXPECT_EQ(j["logits_topk"]["ids"][0][1][0].get<int64_t>(), best);

    r = run({"trace", "--model", spec, "--vocab", "200000", "--ids", "5", "--loops", "1", "--full-logits",
             "--no-logits", "--out", full.string()});
    EXPECT_EQ(r.code, 2) << r.out;
    r = run({"trace", "--model", tinyMla, "--vocab", "300", "--ids", "5", "--loops", "1", "--out", full.string()});
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("presets only"), std::string::npos) << r.out;

    // bench with a prompt typed as text through o200k_base.
    const std::string tok = std::string(MYTHOS_TEST_DATA_DIR) + "/tokenizers/o200k_base.tiktoken";
    r = run({"bench", "--model", spec, "--vocab", "199998", "--tokenizer", tok, "--prompt",
             "Hello, world! Loops think.", "--loops", "1,2", "--decode", "3", "--repeats", "1", "--json"});
    ASSERT_EQ(r.code, 0) << r.out;
    j = json::parse(r.out.substr(r.out.find('{')));
    EXPECT_EQ(j["vocab"], 199998);
    EXPECT_EQ(j["prompt_text"]["tokens"], 8); // Hello , ␣world ! ␣Lo ops ␣think .
    EXPECT_EQ(j["prompt_len"], 8);
    EXPECT_NE(j["prompt_text"]["tokenizer"].get<std::string>().find("o200k"), std::string::npos);
    EXPECT_GE(j["prompt_text"]["encode_ms"].get<double>(), 0.0);
    r = run({"bench", "--model", spec, "--prompt", "x", "--prompt-len", "4"});
    EXPECT_EQ(r.code, 2) << r.out;
}
