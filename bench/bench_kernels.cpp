// Kernel and whole-model benchmarks (Google Benchmark). Compare against a baseline
// measured in the same run; never assert timings in tests.
#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <vector>

#include "mythos/model.h"
#include "mythos/ops.h"

using namespace mythos;

namespace {

std::vector<float> randomVector(std::size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v)
        x = d(rng);
    return v;
}

// y = x W^T through oneDNN, for M x K x N.
void BM_Linear(benchmark::State& state) {
    const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
    auto x = randomVector(std::size_t(M * K), 1), w = randomVector(std::size_t(N * K), 2);
    std::vector<float> y(std::size_t(M * N));
    MatmulEngine mm;
    for (auto _ : state) {
        mm.linear(x.data(), M, K, w.data(), N, y.data());
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * double(M * K * N), benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Linear)->Args({1, 128, 128})->Args({64, 128, 128})->Args({64, 256, 1000})->Args({2048, 2048, 2048});

void BM_Rope(benchmark::State& state) {
    const int64_t d = state.range(0);
    std::vector<float> freqs(std::size_t(d / 2));
    ropeFrequencies(d, 500000.0, freqs.data());
    auto x = randomVector(std::size_t(d), 3);
    int64_t pos = 0;
    for (auto _ : state) {
        applyRope(x.data(), d, pos++ & 127, freqs.data());
        benchmark::DoNotOptimize(x.data());
    }
}
BENCHMARK(BM_Rope)->Arg(16)->Arg(32)->Arg(64);

void BM_RmsNorm(benchmark::State& state) {
    const int64_t rows = state.range(0), n = state.range(1);
    auto x = randomVector(std::size_t(rows * n), 4), w = randomVector(std::size_t(n), 5);
    std::vector<float> y(x.size());
    for (auto _ : state) {
        rmsNorm(x.data(), w.data(), y.data(), rows, n);
        benchmark::DoNotOptimize(y.data());
    }
}
BENCHMARK(BM_RmsNorm)->Args({64, 256})->Args({64, 2048});

// Whole-model prefill (T = 64) and one decode step, random weights of a preset.
Model& presetModel(const std::string& name) {
    static std::map<std::string, std::unique_ptr<Model>> models;
    auto& m = models[name];
    if (!m)
        m = Model::open("preset:" + name + ":1");
    return *m;
}

void BM_Prefill(benchmark::State& state, const char* preset) {
    Model& m = presetModel(preset);
    const int64_t loops = state.range(0), T = 64;
    std::vector<int32_t> ids(T);
    for (int64_t i = 0; i < T; ++i)
        ids[std::size_t(i)] = int32_t((i * 7) % m.config().vocab_size);
    for (auto _ : state) {
        KvCache cache = m.newCache(1);
        ForwardOptions fo;
        fo.nLoops = loops;
        fo.cache = &cache;
        benchmark::DoNotOptimize(m.forward(ids, 1, T, fo));
    }
}
BENCHMARK_CAPTURE(BM_Prefill, tiny_mla, "tiny_mla")->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Prefill, readme_mla, "readme_mla")->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Prefill, readme_gqa, "readme_gqa")->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond);

// Deep run reuse: one coda pass + head for a new loop count.
void BM_LoopCountChange(benchmark::State& state) {
    Model& m = presetModel("readme_mla");
    const int64_t T = 64;
    std::vector<int32_t> ids(T);
    for (int64_t i = 0; i < T; ++i)
        ids[std::size_t(i)] = int32_t((i * 7) % m.config().vocab_size);
    DeepRun run = m.deepRun(ids, 1, T, 16);
    int64_t k = 1;
    for (auto _ : state) {
        benchmark::DoNotOptimize(m.logitsAt(run, k));
        k = k % 16 + 1;
    }
}
BENCHMARK(BM_LoopCountChange)->Unit(benchmark::kMicrosecond);

void BM_DecodeStep(benchmark::State& state, const char* preset) {
    Model& m = presetModel(preset);
    const int64_t loops = state.range(0), P = 64;
    std::vector<int32_t> ids(P);
    for (int64_t i = 0; i < P; ++i)
        ids[std::size_t(i)] = int32_t((i * 7) % m.config().vocab_size);
    for (auto _ : state) {
        state.PauseTiming();
        KvCache cache = m.newCache(1);
        ForwardOptions fo;
        fo.nLoops = loops;
        fo.cache = &cache;
        m.forward(ids, 1, P, fo);
        state.ResumeTiming();
        for (int64_t s = 0; s < 8; ++s) {
            fo.startPos = P + s;
            benchmark::DoNotOptimize(m.forward({int32_t(s + 1)}, 1, 1, fo));
        }
    }
    state.counters["tokens/s"] = benchmark::Counter(8, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(BM_DecodeStep, tiny_mla, "tiny_mla")->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecodeStep, readme_mla, "readme_mla")->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
