#include "mythos/generate.h"
#include "mythos/trace.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mythos/errors.h"

namespace mythos {

Sampler::Sampler(SamplingOptions o) : m_opts(o), m_state(o.seed ^ 0x2545F4914F6CDD1Dull) {
    if (!o.greedy && !(o.temperature > 0))
        throw ArgumentError("temperature must be > 0");
    if (o.topK < 0)
        throw ArgumentError("top-k must be >= 0");
}

double Sampler::uniform() {
    uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
}

std::vector<int32_t> Sampler::next(const std::vector<float>& logits, int64_t B, int64_t V) {
    std::vector<int32_t> out(static_cast<std::size_t>(B));
    std::vector<float> row(static_cast<std::size_t>(V));
    for (int64_t b = 0; b < B; ++b) {
        const float* l = logits.data() + b * V;
        if (m_opts.greedy) {
            out[std::size_t(b)] = int32_t(std::max_element(l, l + V) - l);
            continue;
        }
        for (int64_t i = 0; i < V; ++i)
            row[std::size_t(i)] = l[i] / float(m_opts.temperature);
        if (m_opts.topK > 0 && m_opts.topK < V) {
            std::vector<float> sorted(row);
            std::nth_element(sorted.begin(), sorted.begin() + (m_opts.topK - 1), sorted.end(), std::greater<float>());
            const float kth = sorted[std::size_t(m_opts.topK - 1)];
            for (auto& v : row)
                if (v < kth)
                    v = -std::numeric_limits<float>::infinity();
        }
        const float mx = *std::max_element(row.begin(), row.end());
        double sum = 0;
        for (auto& v : row) {
            v = std::exp(v - mx);
            sum += v;
        }
        const double u = uniform() * sum;
        double acc = 0;
        int32_t pick = int32_t(V - 1);
        for (int64_t i = 0; i < V; ++i) {
            acc += row[std::size_t(i)];
            if (u < acc && row[std::size_t(i)] > 0) {
                pick = int32_t(i);
                break;
            }
        }
        while (pick > 0 && row[std::size_t(pick)] == 0) // never pick a filtered token
            --pick;
        out[std::size_t(b)] = pick;
    }
    return out;
}

GenerateResult generate(Model& model, const std::vector<int32_t>& prompt, int64_t B, int64_t P,
                        const GenerateOptions& opts) {
    const Config& c = model.config();
    if (opts.maxNewTokens < 0)
        throw ArgumentError("the number of new tokens must be >= 0");
    if (P + opts.maxNewTokens - (opts.feedLast ? 0 : 1) > c.max_seq_len)
        throw ArgumentError("prompt (" + std::to_string(P) + ") + new tokens (" + std::to_string(opts.maxNewTokens) +
                            ") exceed max_seq_len = " + std::to_string(c.max_seq_len));
    Sampler sampler(opts.sampling);
    KvCache cache = model.newCache(B);
    GenerateResult res;
    res.batch = B;
    res.vocab = c.vocab_size;
    const int64_t V = c.vocab_size;
    std::vector<std::vector<int32_t>> perStep;
    std::vector<int32_t> last;
    Trace trace;
    for (int64_t s = 0; s < opts.maxNewTokens; ++s) {
        ForwardOptions fo;
        fo.nLoops = opts.nLoops;
        fo.cache = &cache;
        fo.cancel = opts.cancel;
        fo.trace = opts.traceSteps ? &trace : nullptr;
        std::vector<float> logits;
        int64_t T = P;
        // Sampling needs each row's last position; a step's trace keeps every row's logits
        // only while they are small (fullLogitsByDefault).
        const int64_t stepLen = s == 0 ? P : 1;
        fo.headRows = opts.traceSteps && fullLogitsByDefault(B, stepLen, V) ? HeadRows::All : HeadRows::Last;
        if (s == 0) {
            logits = model.forward(prompt, B, P, fo);
        } else {
            fo.startPos = P + s - 1;
            T = 1;
            logits = model.forward(last, B, 1, fo);
        }
        if (fo.headRows == HeadRows::Last)
            T = 1; // logits are [B][V]
        std::vector<float> lastLogits(static_cast<std::size_t>(B * V));
        for (int64_t b = 0; b < B; ++b)
            std::copy(logits.begin() + ((b * T) + T - 1) * V, logits.begin() + ((b * T) + T) * V,
                      lastLogits.begin() + b * V);
        last = sampler.next(lastLogits, B, V);
        if (opts.keepStepLogits)
            res.stepLogits.insert(res.stepLogits.end(), lastLogits.begin(), lastLogits.end());
        perStep.push_back(last);
        res.steps = s + 1;
        if (opts.onToken && !opts.onToken(s, last, opts.traceSteps ? &trace : nullptr))
            break;
    }
    if (opts.feedLast && res.steps > 0) {
        ForwardOptions fo;
        fo.nLoops = opts.nLoops;
        fo.cache = &cache;
        fo.cancel = opts.cancel;
        fo.trace = opts.traceSteps ? &trace : nullptr;
        fo.startPos = P + res.steps - 1;
        fo.headRows = opts.traceSteps && fullLogitsByDefault(B, 1, V) ? HeadRows::All : HeadRows::Last;
        model.forward(last, B, 1, fo);
        if (opts.onToken)
            opts.onToken(res.steps, {}, opts.traceSteps ? &trace : nullptr);
    }
    res.generated.resize(std::size_t(B * res.steps));
    for (int64_t s = 0; s < res.steps; ++s)
        for (int64_t b = 0; b < B; ++b)
            res.generated[std::size_t(b * res.steps + s)] = perStep[std::size_t(s)][std::size_t(b)];
    res.kv = cache.ledger();
    return res;
}

} // namespace mythos
