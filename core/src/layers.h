#pragma once
// Internal building blocks of the model (not part of the public API).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mythos/config.h"
#include "mythos/kvcache.h"
#include "ops.h"
#include "spin_team.h"

namespace mythos::detail {

// body(i, thread) for i in [0, n): across the spin team (spin_team.h) when `parallel` and the
// team is free, each index taken by the next free thread (so unequal pieces such as MoE
// experts balance), else in a plain loop on this thread (thread 0). The team, not OpenMP:
// its workers hand work over in a fraction of a microsecond and sleep when idle, where an
// OpenMP team's threads spin for milliseconds after each region and would take the second
// core from the next decode step's workers.
template <typename Body>
void forEachIndex(int64_t n, bool parallel, const Body& body) {
    if (parallel && n > 1 && SpinTeam::instance().tryRun(n, body))
        return;
    for (int64_t i = 0; i < n; ++i)
        body(i, 0);
}

// AVX-512 kernels are used (the CPU has them and usePortableSmallKernels is off).
bool avx512Enabled();

// Working floats of one op (q, k, v, an expert's hidden units...), taken from this thread's
// pool and given back when the Scratch goes out of scope: once warm, a forward allocates and
// zero-fills none of them (malloc, free and the zero-fill of fresh std::vectors were 3-6%
// of a decode step and of a small model's prefill). The contents start undefined: every user
// writes a buffer before reading it. Buffers over kScratchKeepBytes are freed, not pooled.
class Scratch {
public:
    explicit Scratch(int64_t n);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    float* data() { return m_p; }
    const float* data() const { return m_p; }
    float& operator[](std::size_t i) { return m_p[i]; }
    float operator[](std::size_t i) const { return m_p[i]; }

    static constexpr std::size_t kScratchKeepBytes = std::size_t(8) << 20;

private:
    float* m_p = nullptr;
    std::size_t m_capacity = 0;
};

struct Ctx {
    const Config& cfg;
    MatmulEngine& mm;
    const RopeTable& rope; // positions 0..max_seq_len-1
    // Engines of the spin team's other threads (MatmulEngine is one per thread).
    std::vector<std::unique_ptr<MatmulEngine>>* workers = nullptr;
    // Interventions (mythos/intervention.h) of the current block: heads whose output is
    // zeroed (nonzero entries, [n_heads]) and routed experts whose gate is zeroed with the
    // others renormalised ([n_experts]); null = none.
    const std::vector<char>* zeroHeads = nullptr;
    const std::vector<char>* zeroExperts = nullptr;

    // Makes sure threads 0..n-1 have an engine; call outside a parallel region.
    void ensureEngines(int n) {
        while (workers && int(workers->size()) < n - 1)
            workers->push_back(std::make_unique<MatmulEngine>());
    }
    // The engine of team thread `thread` (0: mm, the caller's).
    MatmulEngine& engine(int thread) { return thread == 0 || !workers ? mm : *(*workers)[std::size_t(thread - 1)]; }
};

// Matrices are WeightRef (fp32 or bf16, EngineOptions::weightType); norm scales and the
// router bias are always fp32.
struct AttnWeights {
    // GQA
    WeightRef wq;
    WeightRef wk;
    WeightRef wv;
    // MLA
    WeightRef qDown;
    const float* qNorm = nullptr;
    WeightRef qUpNope;
    WeightRef qUpRope;
    WeightRef kvDown;
    const float* kvNorm = nullptr;
    WeightRef kvUp;
    // both
    WeightRef wo;
};

struct FfnWeights {
    WeightRef gate;
    WeightRef up;
    WeightRef down;
    int64_t hidden = 0;
};

struct MoeWeights {
    const float* router = nullptr; // fp32 in both weight types (bf16Eligible)
    const float* routerBias = nullptr;
    std::vector<FfnWeights> routed;
    std::vector<FfnWeights> shared;
};

struct BlockWeights {
    const float* attnNorm = nullptr;
    const float* ffnNorm = nullptr;
    AttnWeights attn;
    bool moe = false;
    FfnWeights dense;
    MoeWeights experts;
};

// Routing decisions of one MoE call, N tokens.
struct MoeRecord {
    std::vector<int32_t> ids;  // [N][k], by descending biased logit
    std::vector<float> gates;  // [N][k], renormalised unbiased softmax scores
    std::vector<float> logits; // [N][E], unbiased
};

// x[N][D] += attention(xn) for a batch of B rows of T tokens at positions startPos...
// With a cache, the new keys/values are appended to cache entry `key` first and the
// queries attend to every cached position (causally within the new chunk).
void attentionForward(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t B, int64_t T, int64_t startPos,
                      KvCache* cache, const std::string& key, float* x);

// The causal attention probabilities [H][T][T] of one batch row of T tokens at positions
// 0..T-1 (no cache), from the block's normalised input xn[T][D], computed as the forward
// pass computes them (row: query, column: key; 0 above the diagonal).
std::vector<float> attentionProbabilities(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t T);

// x[N][D] += down(silu(gate(xn)) * up(xn))
void ffnForward(Ctx& ctx, const FfnWeights& w, const float* xn, int64_t N, float* x);

// x[N][D] += MoE(xn): routed experts (top-k by biased logits, gates from unbiased
// softmax renormalised over the chosen) plus the shared experts.
void moeForward(Ctx& ctx, const MoeWeights& w, const float* xn, int64_t N, float* x, MoeRecord* rec);

// Pre-norm transformer block, in place on x[B*T][D].
void blockForward(Ctx& ctx, const BlockWeights& w, float* x, int64_t B, int64_t T, int64_t startPos, KvCache* cache,
                  const std::string& key, MoeRecord* rec);

} // namespace mythos::detail
