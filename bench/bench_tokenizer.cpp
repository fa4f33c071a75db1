// Byte-level BPE encoding speed (issue: 1 MB of text well under a second). Two texts of
// 1 MiB each: the project's own documentation repeated (English prose, code and tables:
// words repeat, as in real text), and a deterministic mixture of words from several
// scripts, numbers, emoji and whitespace runs (fewer repeats, longer UTF-8).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "mythos/fileio.h"
#include "mythos/tokenizer.h"

namespace {

namespace fs = std::filesystem;

const fs::path kSource = MYTHOS_SOURCE_DIR;
constexpr std::size_t kBytes = 1 << 20;

std::string documentation() {
    std::string all;
    for (const char* name : {"README.md", "docs/engine.md", "docs/trace-schema.md", "docs/tokenizer.md",
                             "docs/fuzzing.md", "bench/NOTES.md"})
        if (fs::exists(kSource / name))
            all += mythos::readTextFile(kSource / name);
    std::string text;
    while (text.size() < kBytes)
        text += all;
    text.resize(kBytes);
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80)
        text.pop_back(); // do not end inside a character
    return text;
}

std::string mixture() {
    const std::vector<std::string> words = {
        "the",        "loop",         "expert",  "halting",  "Recurrent", "depth",           "naïve",
        "café",       "Ελληνικά",     "русский", "中文字符", "日本語",    "한국어",          "العربية",
        "हिन्दी",      "👍🏽",     "🎉",       "3.14159",  "2026",      "don't",           "I'M",
        "x**2",       "{a: b}",       "\n",      "\t",       "   ",       "https://x.org/a", "CamelCase",
        "snake_case", "<|endoftext|>"};
    std::mt19937 rng(5);
    std::string text;
    while (text.size() < kBytes) {
        text += words[rng() % words.size()];
        text += (rng() % 4) ? " " : (rng() % 2 ? ", " : ".\n");
        if (rng() % 16 == 0)
            text += std::to_string(rng() % 1000000);
    }
    return text;
}

void encode(benchmark::State& state, const mythos::Tokenizer& tok, const std::string& text) {
    std::size_t tokens = 0;
    for (auto _ : state) {
        const auto ids = tok.encode(text);
        tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
    state.counters["tokens"] = double(tokens);
}

void BM_EncodeGpt2(benchmark::State& state, bool mixed) {
    static const auto tok = mythos::Tokenizer::load(kSource / "tests/data/tokenizers/gpt2_tokenizer.json", 50257);
    static const std::string docs = documentation(), mix = mixture();
    encode(state, tok, mixed ? mix : docs);
}

void BM_EncodeO200k(benchmark::State& state, bool mixed) {
    static const auto tok = mythos::Tokenizer::load(kSource / "tests/data/tokenizers/o200k_base.tiktoken", 199998);
    static const std::string docs = documentation(), mix = mixture();
    encode(state, tok, mixed ? mix : docs);
}

} // namespace

BENCHMARK_CAPTURE(BM_EncodeGpt2, docs_1MiB, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeGpt2, mixed_1MiB, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeO200k, docs_1MiB, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeO200k, mixed_1MiB, true)->Unit(benchmark::kMillisecond);
