#pragma once
// Everything a view shows about one run, as an immutable value. Serialises to JSON with
// a versioned schema (docs/trace-schema.md): "mythos-trace/1".
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mythos/config.h"
#include "mythos/kvcache.h"

namespace mythos {

inline constexpr const char* kTraceSchema = "mythos-trace/1";

// The logit lens of one run (docs/inside-the-loop.md): per loop t = 1..K and position.
struct LensSide {
    std::vector<int32_t> top1;                      // [K][B][T]
    std::vector<float> p, entropy, klFinal, klPrev; // [K][B][T]; klPrev is NaN at t = 1
    std::vector<int32_t> convergence;               // [B][T], 1..K
    std::vector<float> logits;                      // [K][B][T][V], optional
};
struct LensRecord {
    int64_t loops = 0; // K; 0 = no lens
    LensSide act;      // the model's own output at t loops
    LensSide state;    // h_t alone through the coda and head
    // The text of every token id the lens predicts (what a view writes in its cells), when a
    // tokenizer was at hand; ascending ids.
    std::vector<std::pair<int32_t, std::string>> pieces;
};
// Fills lr.pieces with piece(id) for every id of both lenses' top-1.
template <class PieceFn>
void setLensPieces(LensRecord& lr, const PieceFn& piece) {
    std::vector<int32_t> ids(lr.act.top1);
    ids.insert(ids.end(), lr.state.top1.begin(), lr.state.top1.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    lr.pieces.clear();
    for (int32_t id : ids)
        lr.pieces.emplace_back(id, piece(id));
}

// The causal attention probabilities of one attention application, for one batch row.
struct AttentionSite {
    std::string name;  // "prelude_0", "recurrent_loop_3" (0-based, as the KV cache keys), "coda_0"
    std::string stage; // "prelude", "recurrent", "coda"
    int64_t layer = 0;
    int64_t loop = 0;         // 1-based for recurrent sites, else 0
    std::vector<float> probs; // [H][W][W] over the record's window
};
struct AttentionRecord {
    int64_t batchRow = 0;
    int64_t from = 0, to = 0;         // the window of positions [from, to) the sites hold
    std::vector<AttentionSite> sites; // empty = not recorded
};

// PCA of the states h_1..h_K (docs/inside-the-loop.md).
struct TrajectoryRecord {
    int64_t loops = 0;            // K; 0 = not recorded
    double explained[2] = {0, 0}; // share of the variance along each component
    std::vector<float> coords;    // [K][B][T][2]
    std::vector<float> cosFinal;  // [K][B][T] cos(h_t, h_K)
    std::vector<float> delta;     // [K][B][T] |h_t - h_{t-1}|, h_0 the prelude output
};

struct Trace {
    Config config;
    std::string model;                                 // folder or preset name
    std::string weightsHash;                           // hashWeights() of the model
    nlohmann::json options = nlohmann::json::object(); // engine options used

    int64_t batch = 0, seqLen = 0, startPos = 0;
    int64_t nLoops = 0;              // requested
    int64_t loopsExecuted = 0;       // L
    std::vector<int32_t> ids;        // [B][T]
    std::vector<std::string> pieces; // [B][T] text of each token (may be empty)

    // ACT, [L][B][T]
    std::vector<float> actP, actCumP, actWeight;
    std::vector<int32_t> haltLoop; // [B][T], 1-based, 0 = never halted
    std::vector<float> weightSum;  // [B][T]
    // |h_t| and |h_t - h_{t-1}| (h_{-1} = the prelude output), [L][B][T]
    std::vector<float> hNorm, hDelta;

    // Routing of the recurrent MoE, [L][B][T][k] and [L][B][T][E]
    int64_t topK = 0, nExperts = 0;
    std::vector<int32_t> topkIds;
    std::vector<float> topkWeights;
    std::vector<float> routerLogits;
    std::vector<float> routerBias; // [E]

    // Injection
    std::vector<float> injA, injB; // [dim]
    double rhoA = 0;

    std::vector<float> logits; // [B][T][V], may be empty
    int64_t vocab = 0;
    // The k largest logits of the head rows that were computed (every position, or only the
    // last: a large vocabulary's window run), best first: [B][P][k] for the P positions in
    // topLogitPositions (ascending), with each row's log-sum-exp [B][P] so that
    // probabilities p = exp(value - logsumexp) need no full row. Empty when not computed.
    int64_t topLogitK = 0;
    std::vector<int32_t> topLogitPositions; // [P]
    std::vector<int32_t> topLogitIds;       // [B][P][k]
    std::vector<float> topLogitValues;      // [B][P][k]
    std::vector<float> logitLse;            // [B][P]

    bool hasKv = false;
    KvLedger kv;

    std::vector<std::pair<std::string, double>> timingsMs; // stage -> milliseconds

    // Optional parts (docs/trace-schema.md, "inside the loop").
    LensRecord lens;
    AttentionRecord attention;
    TrajectoryRecord trajectory;
    nlohmann::json intervention; // null when the run was not modified

    // The end of the attention window (AttentionRecord::to, 0 meaning seqLen).
    int64_t attentionEnd() const { return attention.to > 0 ? attention.to : seqLen; }

    // Index helpers
    std::size_t at(int64_t l, int64_t b, int64_t t) const { return std::size_t((l * batch + b) * seqLen + t); }
};

// Fills the trace's top-k logits from head rows [B][P][V] for the given positions.
void setTopLogits(Trace& tr, const std::vector<float>& rows, const std::vector<int32_t>& positions, int64_t k);
// The number of top logits a trace keeps per computed position.
inline constexpr int64_t kTraceTopLogits = 10;
// Whether a trace's full logits [B][T][V] are small enough to keep by default (at most
// 2^22 values, 16 MiB: the bundled and golden models); larger ones keep the top-k only
// unless asked (mythos-cli trace --full-logits).
inline bool fullLogitsByDefault(int64_t batch, int64_t seqLen, int64_t vocab) {
    return batch > 0 && seqLen > 0 && vocab > 0 && batch * seqLen <= (int64_t(1) << 22) / vocab;
}

// Full trace JSON (schema mythos-trace/1). `includeLogits` controls the [B][T][V] array.
nlohmann::json traceToJson(const Trace& tr, bool includeLogits = true);
// Validates the schema string, every array's shape, the counts against the trace's config
// (experts, top-k, vocab), every index (token ids, expert ids, halting loops) and the
// sizes derived from it (loops at most kMaxLoops, a KV ledger that fits in 64 bits);
// FormatError naming `source`. A trace that loads is safe for every view.
Trace traceFromJson(const nlohmann::json& j, const std::string& source);
// The same from JSON text, streamed: the large numeric arrays go straight into the
// trace's vectors (about the text's size in memory, not a DOM of 16+ bytes a number).
Trace parseTrace(std::string_view text, const std::string& source);
void saveTrace(const std::filesystem::path& path, const Trace& tr, bool includeLogits = true); // atomic
// Reads a trace file of at most kMaxTraceFileBytes; FileError / FormatError naming it.
Trace loadTrace(const std::filesystem::path& path);
inline constexpr uint64_t kMaxTraceFileBytes = uint64_t(512) << 20;

} // namespace mythos
