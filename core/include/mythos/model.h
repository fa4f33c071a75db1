#pragma once
// The OpenMythos model: Prelude -> Recurrent Block looped n_loops times (LTI injection,
// depth LoRA, ACT halting) -> Coda -> tied head, matching the PyTorch reference in fp32.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "mythos/config.h"
#include "mythos/engineoptions.h"
#include "mythos/intervention.h"
#include "mythos/kvcache.h"
#include "mythos/trace.h"
#include "mythos/weights.h"

namespace mythos {

namespace detail {
struct MoeRecord;
}
struct ModelSpec;
class Model;
// Defined in modelspec.h (with its default arguments).
std::unique_ptr<Model> open(const ModelSpec& spec, const EngineOptions& options, const nlohmann::json& overrides,
                            const ProgressFn& progress);

// Which rows of the tied head a pass computes. The head is a [D x V] product per position:
// with a 200K vocabulary it costs as much as the rest of a small model, so a caller that
// shows or needs only the next token asks for the last position of each batch row.
enum class HeadRows {
    All,  // logits [B][T][V], the reference's output
    Last, // logits [B][V]: each batch row's last position (all generation needs)
};

struct ForwardOptions {
    int64_t nLoops = 0;                        // 0 = max_loop_iters, like the reference's `n_loops or ...`
    KvCache* cache = nullptr;                  // with a cache every loop runs (no early exit)
    int64_t startPos = 0;                      // RoPE position of the first token
    Trace* trace = nullptr;                    // filled when non-null; no cost when null
    const std::atomic<bool>* cancel = nullptr; // checked between layers and loops
    HeadRows headRows = HeadRows::All;
};

// The state of a recurrent loop run once to depth K without a cache: any k <= K is one
// coda pass away (docs/architecture.md, "The path of a trace").
struct DeepRun {
    int64_t batch = 0, seqLen = 0, depth = 0;
    std::vector<int32_t> ids;
    std::vector<float> e;                   // prelude output [N][D]
    std::vector<std::vector<float>> h;      // h_t after loop t, [N][D] each
    std::vector<std::vector<float>> p;      // halting probability per loop, [N]
    std::vector<std::vector<float>> cum;    // cumulative p after loop t, [N]
    std::vector<std::vector<float>> weight; // reference ACT weight per loop, [N]
    Trace trace;                            // per-loop records to depth K (no logits)
    // The logit lens' rows by loop (Model::lens keeps them while they are small): loop t's
    // do not depend on the loop count asked for, so a slider move only recomputes what
    // compares with the output at K. Made under one intervention (Model's counter).
    struct LensRows {
        uint64_t interventionVersion = 0;
        std::vector<std::vector<float>> act, state; // [t] logits [N][V], empty = not computed
    };
    LensRows lensRows;
};

class Model {
public:
    // Tensors are converted to the options' weight type (bf16 <-> fp32) one at a time.
    Model(Config cfg, Weights weights, EngineOptions options = {});
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // A checkpoint folder, or "preset:NAME[:seed]" for random weights: mythos::open
    // (modelspec.h) with the spec parsed and no config overrides. With WeightType::BF16 the
    // matrices are read or generated straight into bf16.
    static std::unique_ptr<Model> open(const std::string& spec, EngineOptions options = {},
                                       const ProgressFn& progress = {});

    const Config& config() const { return m_cfg; }
    const EngineOptions& options() const { return m_opts; }
    // The weights as held: with WeightType::BF16 the eligible matrices are bf16 (Tensor::bf16).
    const Weights& weights() const { return m_weights; }
    std::size_t weightBytes() const; // resident bytes of the weights
    // Bytes of the [K, N] copies the engine keeps of its small fp32 matrices for the direct
    // matmul kernels (WeightRef::kn), on top of weightBytes(); none for bf16 weights or on a
    // CPU without AVX-512.
    std::size_t kernelCopyBytes() const;
    const std::string& name() const { return m_name; }
    void setName(std::string n) { m_name = std::move(n); }
    const std::string& weightsHash() const;
    // Tensors with NaN or infinite values (scanned once, on the first call).
    const std::vector<NonFiniteTensor>& nonFiniteWeights() const;

    // Logits [B][T][V] for ids [B][T] ([B][V] with HeadRows::Last). A trace gets the full
    // logits (HeadRows::All) and the top kTraceTopLogits of every computed row. Throws
    // ArgumentError for ids outside the vocabulary or positions past max_seq_len, Cancelled
    // when cancelled.
    std::vector<float> forward(const std::vector<int32_t>& ids, int64_t batch, int64_t seqLen,
                               const ForwardOptions& fo = {});

    KvCache newCache(int64_t batch) const { return KvCache(m_cfg, batch, m_opts.kvLayout); }

    // Deep run: the recurrent loop to depth K (no cache, no early exit).
    DeepRun deepRun(const std::vector<int32_t>& ids, int64_t batch, int64_t seqLen, int64_t depth,
                    const std::atomic<bool>* cancel = nullptr);
    void extendDeepRun(DeepRun& run, int64_t depth, const std::atomic<bool>* cancel = nullptr);
    // Logits at loop count k <= depth, identical to forward(ids, n_loops = k); fills `trace`
    // (the first min(k, loops executed) loops) when non-null. The ACT weights are recomputed
    // from the stored halting probabilities, so `actThreshold` (> 0; default: the config's)
    // can change without running the loop again: halting never feeds back into h.
    // `rows` as in ForwardOptions::headRows.
    std::vector<float> logitsAt(const DeepRun& run, int64_t k, Trace* trace = nullptr, double actThreshold = 0,
                                HeadRows rows = HeadRows::All);

    // The intervention the model runs with from now on (docs/inside-the-loop.md): checked
    // against the config and, for a patch, the source prompt run at once on the unmodified
    // model (ArgumentError). An empty intervention clears it.
    void setIntervention(Intervention iv);
    const Intervention* intervention() const; // null when none

    // The logit lens of a deep run over loops 1..K (K <= run.depth): the model's output at
    // each loop count and each loop's state alone through the coda and head, with entropy,
    // KL to the output at K loops, KL to the loop before and the convergence loops; the
    // full rows too when `keepLogits`. Cancelled when `cancel` is set.
    LensRecord lens(const DeepRun& run, int64_t K, bool keepLogits = false, const std::atomic<bool>* cancel = nullptr);
    // The same, keeping the rows in the run (DeepRun::lensRows) for the next call.
    LensRecord lens(DeepRun& run, int64_t K, bool keepLogits = false, const std::atomic<bool>* cancel = nullptr);
    // The attention probabilities of batch row `row` at the sites `want` accepts (called with
    // each site's name, stage, layer and loop, probs empty), for the run at k loops: from the
    // stored states, without running the loop again. Only the window [from, to) of positions
    // (to = 0: the whole row) is computed and kept, [H][W][W]: a long prompt costs what the
    // window shows.
    std::vector<AttentionSite> attention(const DeepRun& run, int64_t k, int64_t row,
                                         const std::function<bool(const AttentionSite&)>& want = {}, int64_t from = 0,
                                         int64_t to = 0);

    // Injection A = exp(-exp(clamp(log_dt + log_A, -20, 20))) for analysis: NaN where log_A
    // or log_dt is not finite (the forward pass uses the reference's clamped values).
    std::vector<float> injectionA() const;
    // Replaces the weights (e.g. after rescaling A); shapes must match. A weight held in
    // bf16 takes the new values rounded to bf16.
    void setWeight(const std::string& name, const Tensor& t);

private:
    friend std::unique_ptr<Model> open(const ModelSpec&, const EngineOptions&, const nlohmann::json&,
                                       const ProgressFn&);
    struct Impl;
    std::vector<float> forwardInjectionA() const; // the reference's A, as the forward uses it
    // One loop iteration t: h <- A*h + B*e + (block + LoRA)(RMSNorm(h + LIE(t) + e));
    // p <- the halting probability of the new h.
    void recurrentStep(int64_t t, const std::vector<float>& e, std::vector<float>& h, int64_t B, int64_t T,
                       int64_t startPos, KvCache* cache, detail::MoeRecord* rec, std::vector<float>& p);
    // The recurrent output at k loops from a deep run's states: the ACT mixture (weights into
    // `weights`/`cums` when non-null), or each position's state at its exit loop under a
    // forced exit. `L` gets the loops the mixture used.
    std::vector<float> recurrentOutput(const DeepRun& run, int64_t k, float thr, int64_t* L,
                                       std::vector<std::vector<float>>* weights, std::vector<std::vector<float>>* cums);
    // Under a forced exit: every position's state at its exit loop, from the states of
    // loops 1..states.size() (the convergence loop needs the state lens: coda passes on a
    // copy of the cache when there is one).
    std::vector<float> forcedExitOutput(const std::vector<const float*>& states, int64_t B, int64_t T, int64_t startPos,
                                        const KvCache* cache, const std::atomic<bool>* cancel);
    // The state lens' top-1 of every loop, [loops][N].
    std::vector<int32_t> stateTop1(const std::vector<const float*>& states, int64_t B, int64_t T, int64_t startPos,
                                   const KvCache* cache, const std::atomic<bool>* cancel);
    const Intervention* activeIntervention() const;
    LensRecord lensImpl(const DeepRun& run, DeepRun::LensRows* keep, int64_t K, bool keepLogits,
                        const std::atomic<bool>* cancel);
    // The recurrent block's output at t loops (act) or h_t (state), [N][D] into dst: the
    // lens' input for loop t.
    void lensInput(const DeepRun& run, bool act, int64_t t, float* dst);
    // One lens input: [N][D] rows x whose logits [N][V] go to out. A batch row equal bit for
    // bit to the same row of sameAs (the loop before's input, or null) takes that row of
    // sameLogits instead of a coda pass (a halted ACT mixture repeats; so does a state at
    // a fixed point). sameLogits may be an earlier slot's out.
    struct LensSlot {
        const float* x = nullptr;
        const float* sameAs = nullptr;
        const float* sameLogits = nullptr;
        float* out = nullptr;
    };
    // The slots' logits, in order, from one coda pass over their distinct batch rows.
    void lensLogits(const std::vector<LensSlot>& slots, int64_t B, int64_t T, const std::atomic<bool>* cancel);
    // The lens of a large vocabulary: pass by pass, nothing kept.
    LensRecord lensStreamed(const DeepRun& run, int64_t K, bool keepLogits, const std::atomic<bool>* cancel);
    // Checks the input (ids in the vocabulary, positions within max_seq_len), embeds it and
    // runs the prelude blocks.
    std::vector<float> embedAndPrelude(const std::vector<int32_t>& ids, int64_t B, int64_t T, int64_t startPos,
                                       KvCache* cache, const std::atomic<bool>* cancel);
    // Coda blocks, final norm and the tied head for `rows`.
    std::vector<float> finish(std::vector<float> x, int64_t B, int64_t T, int64_t startPos, KvCache* cache,
                              const std::atomic<bool>* cancel, HeadRows rows);
    Config m_cfg;
    EngineOptions m_opts;
    Weights m_weights;
    std::string m_name;
    mutable std::string m_hash;
    mutable std::optional<std::vector<NonFiniteTensor>> m_nonFinite;
    std::unique_ptr<Impl> m_impl;
};

} // namespace mythos
