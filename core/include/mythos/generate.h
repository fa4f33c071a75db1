#pragma once
// Autoregressive generation with a KV cache, calling the model exactly like the
// reference's generate(): step 0 feeds the prompt at start_pos 0, step s > 0 feeds the
// previous token at start_pos = prompt_len + s - 1.
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "mythos/model.h"

namespace mythos {

struct SamplingOptions {
    bool greedy = true;       // argmax (lowest index on ties)
    double temperature = 1.0; // > 0
    int64_t topK = 50;        // 0 = no top-k filter
    uint64_t seed = 0;
};

struct GenerateOptions {
    int64_t nLoops = 8;
    int64_t maxNewTokens = 64;
    SamplingOptions sampling;
    bool keepStepLogits = true;
    const std::atomic<bool>* cancel = nullptr;
    // Called after each step with the new token of every batch row and the step's trace
    // (nullptr unless traceSteps); return false to stop early.
    std::function<bool(int64_t step, const std::vector<int32_t>& tokens, const Trace* trace)> onToken;
    bool traceSteps = false;
    // Also feed the last new token through the model (the reference's generate() stops
    // before it), so that the cache and the step traces cover the whole sequence; onToken is
    // then called once more with step = steps and no tokens. Needs one more position.
    bool feedLast = false;
};

struct GenerateResult {
    int64_t batch = 0, steps = 0, vocab = 0;
    std::vector<int32_t> generated; // [B][steps]
    std::vector<float> stepLogits;  // [steps][B][V], before temperature
    KvLedger kv;                    // the cache after the last step
};

GenerateResult generate(Model& model, const std::vector<int32_t>& prompt, int64_t batch, int64_t promptLen,
                        const GenerateOptions& opts);

// Picks the next token of every row from logits [B][V].
class Sampler {
public:
    explicit Sampler(SamplingOptions o);
    std::vector<int32_t> next(const std::vector<float>& logits, int64_t batch, int64_t vocab);

private:
    double uniform();
    SamplingOptions m_opts;
    uint64_t m_state;
};

} // namespace mythos
