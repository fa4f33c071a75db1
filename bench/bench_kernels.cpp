// Kernel and whole-model benchmarks (Google Benchmark). Compare against a baseline
// measured in the same run; never assert timings in tests.
#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "mythos/lens.h"
#include "mythos/model.h"
#include "ops.h"

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

// y = x W^T for M x K x N: the engine's direct kernels where MatmulEngine::usesDirectKernel,
// oneDNN otherwise (the label says which).
void BM_Linear(benchmark::State& state) {
    const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
    auto x = randomVector(std::size_t(M * K), 1), w = randomVector(std::size_t(N * K), 2);
    std::vector<float> y(std::size_t(M * N));
    MatmulEngine mm;
    state.SetLabel(MatmulEngine::usesDirectKernel(M, K, N) ? "direct" : "oneDNN");
    for (auto _ : state) {
        mm.linear(x.data(), M, K, w.data(), N, y.data());
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(
        2.0 * double(M * K * N), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Linear)
    ->Args({1, 128, 128})
    ->Args({1, 256, 1000})
    ->Args({16, 256, 64})
    ->Args({1024, 256, 1000}) // the logit lens head of 64 tokens x 16 loops (BM_Lens)
    ->Args({64, 128, 128})
    ->Args({64, 256, 256})
    ->Args({64, 256, 1000})
    ->Args({2048, 2048, 2048});

// One attention head (attendHead): a prefill (T = S = 64) and decode steps (T = 1) over S
// cached keys, MLA's widths (nope 16 + rope 16, values 16) and GQA's (32, 32).
void BM_AttendHead(benchmark::State& state) {
    const int64_t T = state.range(0), S = state.range(1), d1 = state.range(2), d2 = state.range(3), dv = state.range(4);
    auto q1 = randomVector(std::size_t(T * d1), 6), q2 = randomVector(std::size_t(T * d2), 7);
    auto k1 = randomVector(std::size_t(S * d1), 8), k2 = randomVector(std::size_t(S * d2), 9);
    auto v = randomVector(std::size_t(S * dv), 10);
    std::vector<float> out(std::size_t(T * dv));
    const float scale = 1.0f / std::sqrt(float(d1 + d2));
    for (auto _ : state) {
        attendHead({q1.data(), d1, q2.data(), d2}, T, {k1.data(), d1, d1, k2.data(), d2, d2}, {v.data(), dv, dv}, S,
                   scale, out.data(), dv);
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_AttendHead)
    ->Args({64, 64, 16, 16, 16})
    ->Args({1, 96, 16, 16, 16})
    ->Args({64, 64, 32, 0, 32})
    ->Args({1, 96, 32, 0, 32})
    ->Args({1, 96, 64, 0, 64});

// A GQA decode step's group: `heads` single queries against one shared KV head, keys and
// values read once for the group (compare with `heads` times BM_AttendHead/1/S/d/0/d).
void BM_AttendSharedKv(benchmark::State& state) {
    const int64_t heads = state.range(0), S = state.range(1), d = state.range(2);
    auto q = randomVector(std::size_t(heads * d), 6), k = randomVector(std::size_t(S * d), 8),
         v = randomVector(std::size_t(S * d), 10);
    std::vector<float> out(std::size_t(heads * d));
    const float scale = 1.0f / std::sqrt(float(d));
    for (auto _ : state) {
        attendSharedKv({q.data(), d, nullptr, 0}, heads, {k.data(), d, d, nullptr, 0, 0}, {v.data(), d, d}, S, scale,
                       out.data(), d);
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_AttendSharedKv)->Args({4, 96, 32})->Args({4, 96, 64});

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

// Inside the loop on readme_mla, 64 tokens x 16 loops (docs/inside-the-loop.md): the logit
// lens (both lenses, every loop: 2 x 16 coda passes and heads, batched), one attention grid
// (every site of the 64-token window: prelude, 16 loops, coda) and the trajectory PCA.
// BM_LoopCountChange above is the baseline of the same run (one coda pass).
DeepRun& insideRun() {
    static DeepRun run = [] {
        Model& m = presetModel("readme_mla");
        std::vector<int32_t> ids(64);
        for (int64_t i = 0; i < 64; ++i)
            ids[std::size_t(i)] = int32_t((i * 7) % m.config().vocab_size);
        return m.deepRun(ids, 1, 64, 16);
    }();
    return run;
}

// The whole lens, from the states alone (nothing kept from an earlier call). readme_mla's
// random weights halt every position of this prompt after 2 loops, so the act lens' loops
// 3..16 take loop 2's rows (Model::lensLogits) and 18 of the 32 loop-rows go through the
// coda and head.
void BM_Lens(benchmark::State& state) {
    Model& m = presetModel("readme_mla");
    const DeepRun& run = insideRun();
    for (auto _ : state)
        benchmark::DoNotOptimize(m.lens(run, 16));
}
BENCHMARK(BM_Lens)->Unit(benchmark::kMillisecond);

// The same lens when no position halts within the 16 loops (the halting head's bias set to
// -30: p ~ 1e-13 a loop), so no loop's rows can be shared: all 32 loop-rows go through the
// coda and head.
void BM_LensNoHalting(benchmark::State& state) {
    static std::unique_ptr<Model> m = [] {
        auto model = Model::open("preset:readme_mla:1");
        Tensor bias = model->weights().at("recurrent.act.halt.bias");
        bias.data.assign(bias.data.size(), -30.0f);
        model->setWeight("recurrent.act.halt.bias", bias);
        return model;
    }();
    static const DeepRun run = [] {
        std::vector<int32_t> ids(64);
        for (int64_t i = 0; i < 64; ++i)
            ids[std::size_t(i)] = int32_t((i * 7) % m->config().vocab_size);
        return m->deepRun(ids, 1, 64, 16);
    }();
    for (auto _ : state)
        benchmark::DoNotOptimize(m->lens(run, 16));
    // Positions whose halting sum reached the threshold within the 16 loops (0 expected).
    int halted = 0;
    for (float c : run.cum.back())
        halted += c >= float(m->config().act_threshold);
    state.counters["halted"] = halted;
}
BENCHMARK(BM_LensNoHalting)->Unit(benchmark::kMillisecond);

// A loop-count change with the lens: the deep run keeps each loop's rows, so only what
// compares with the new final output is recomputed (the window's slider).
void BM_LensLoopCountChange(benchmark::State& state) {
    Model& m = presetModel("readme_mla");
    DeepRun& run = insideRun();
    m.lens(run, 16);
    int64_t k = 1;
    for (auto _ : state) {
        benchmark::DoNotOptimize(m.lens(run, k));
        k = k % 16 + 1;
    }
}
BENCHMARK(BM_LensLoopCountChange)->Unit(benchmark::kMillisecond);

void BM_AttentionGrid(benchmark::State& state) {
    Model& m = presetModel("readme_mla");
    DeepRun& run = insideRun();
    for (auto _ : state)
        benchmark::DoNotOptimize(m.attention(run, 16, 0));
}
BENCHMARK(BM_AttentionGrid)->Unit(benchmark::kMillisecond);

void BM_Trajectory(benchmark::State& state) {
    DeepRun& run = insideRun();
    for (auto _ : state)
        benchmark::DoNotOptimize(trajectoryOf(run, 16));
}
BENCHMARK(BM_Trajectory)->Unit(benchmark::kMillisecond);

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
