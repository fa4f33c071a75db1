#pragma once
// What the halting, routing and KV-cache views draw, built from a trace as plain values: the
// numbers behind each chart (cells, bars, curves, axis ranges, health verdicts), with no
// text and no colours. The views format and draw them; tests check them without widgets.
// Every function reads batch row 0 unless it says otherwise.
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "mythos/analysis.h"
#include "mythos/config.h"
#include "mythos/kvcache.h"
#include "mythos/trace.h"

namespace mythos {

// ---- halting ----

enum class ActHealth {
    Healthy,
    NeverHalts, // no token reached the threshold
    Collapsed,  // at least 90% of the tokens halt at loop 1 although more loops were possible
};

struct HaltingViewData {
    int64_t tokens = 0;         // T
    int64_t loops = 0;          // L, loops executed
    int64_t requestedLoops = 0; // the trace's nLoops
    int64_t maxLoopIters = 0;   // the config's
    // The engine compares in float: the threshold as the engine saw it.
    double threshold = 0;
    std::vector<int32_t> haltLoop; // [T] 1-based, 0 = never halted
    // [T] the halting loop, never-halted tokens at L + 1.
    std::vector<double> haltBar;
    std::vector<double> cumP;              // [T][L] cumulative halting probability, NaN where missing
    double cumPTop = 1;                    // the largest finite cumulative p, at least 1
    std::vector<double> lastCumP;          // [T] after the last loop, NaN where missing (or L = 0)
    std::vector<int64_t> pastMaxLoopIters; // 0-based loop columns past max_loop_iters
    std::vector<double> weightSum;         // [T] ACT weight sum, NaN where missing
    double weightSumTop = 0;               // the largest finite weight sum, 0 for none
    bool finalRemainder = false;           // the run's act_final_remainder option
    HaltingSummary summary;                // of batch row 0
    ActHealth health = ActHealth::Healthy;
    double atLoopOneShare = 0; // summary.atLoopOne / tokens (0 without tokens)
    double neverShare = 0;     // summary.never / tokens (0 without tokens)
};
HaltingViewData haltingViewData(const Trace& tr);

// Two runs over the same tokens side by side, per token of batch row 0.
struct HaltingComparison {
    int64_t tokens = 0;
    int64_t loops = 0;                // L, the larger of the two runs' loops executed
    std::vector<double> haltA, haltB; // [T] halting loop, never halted at L + 1
    std::vector<double> diff;         // [T] haltB - haltA
    int64_t sameHaltLoop = 0;         // tokens with the same halting loop (or never halted in both)
};
// ArgumentError unless both runs saw the same tokens (requireSameTokens).
HaltingComparison compareHalting(const Trace& a, const Trace& b);

// ---- expert routing ----

// Experts no token used, ascending.
std::vector<int64_t> deadExperts(const LoadStats& s);

// Load of every expert at every loop, for the expert x loop heatmap.
struct ExpertLoadGrid {
    int64_t experts = 0, loops = 0;
    std::vector<double> load;              // [E][L] share of the loop's routing slots
    double top = 0;                        // colour range: the largest finite load, at least 2/E
    std::vector<int64_t> pastMaxLoopIters; // 0-based loop columns past max_loop_iters
};
ExpertLoadGrid expertLoadGrid(const RoutingStats& stats, int64_t maxLoopIters);

// The balance measures by loop, each in 0..1 so that they share an axis. x is the 1-based loop.
struct RoutingBalanceCurves {
    double maxEntropyBits = 1;                                    // log2(E), or 1 for a single expert
    std::vector<std::pair<double, double>> entropyShare, gini;    // every loop
    std::vector<std::pair<double, double>> top1Switch, setSwitch; // loops 2..L
};
RoutingBalanceCurves routingBalanceCurves(const RoutingStats& stats);

// Gate weight per token and expert at one loop (1..L) or summed over loops (0), and each
// token's top expert there.
struct TokenRouting {
    int64_t tokens = 0, experts = 0, loop = 0; // loop: the one shown, 0 = summed
    std::vector<double> gates;                 // [T][E]
    std::vector<int32_t> top;                  // [T] first choice at the loop; the largest summed gate (-1 = none) at 0
    std::vector<double> topGate;               // [T] the largest gate (summed at 0), -1 when none is positive
    double gateTop = 1;                        // colour range: 1 at one loop, L for the sum
};
// `loop` is clamped to 0..L. An empty result when the selection has no loops or experts.
TokenRouting tokenRouting(const RoutingSelection& sel, int64_t loop);

// The router's balancing bias per expert (0 where the trace has none).
struct RouterBiasBars {
    std::vector<double> bias; // [E]
    bool present = false;     // the trace carries a bias
    bool nonZero = false;     // some expert's bias is not 0
};
RouterBiasBars routerBiasBars(const Trace& tr);

// ---- stability of the recurrence ----

// Per loop of batch row 0 (x = the 1-based loop): |h_t|, Delta(t) = |h_t - h_{t-1}| and the
// contraction ratio Delta(t+1) / Delta(t) (at x = t), either as the mean over the tokens of
// their finite values (token < 0) or of one token. Only finite points are kept.
struct LoopCurves {
    bool haveNorm = false, haveDelta = false; // the trace carries the [L][B][T] arrays
    std::vector<std::pair<double, double>> norm, delta, ratio;
    // The smallest and largest positive finite Delta of any token (whether a log axis suits).
    double deltaMin = std::numeric_limits<double>::infinity(), deltaMax = 0;
};
LoopCurves loopCurves(const Trace& tr, int64_t token = -1);

// ---- KV cache ----

enum class KvEntryKind { Prelude, Recurrent, Coda };
// From the ledger key: "prelude_i", "recurrent_loop_t", anything else is the coda.
KvEntryKind kvEntryKind(const std::string& key);

// Up to about 64 x values over 1..hi, ending at hi and always holding `mark` (when in range).
std::vector<int64_t> kvSamplePoints(int64_t hi, int64_t mark);

// Cache bytes of one attention variant against sequence length and against loop count.
struct KvCurve {
    KvVariant variant;
    bool compactMla = false;                           // MLA in the compact layout (drawn dashed)
    std::vector<std::pair<int64_t, int64_t>> bySeqLen; // (positions, bytes) at the run's loops
    std::vector<std::pair<int64_t, int64_t>> byLoops;  // (loops, bytes) at the run's positions
};

struct KvViewData {
    // The live cache's ledger when the trace has one (generation), otherwise the cache a
    // cached run over the trace's tokens at its loop count would hold (reference layout).
    KvLedger ledger;
    bool live = false;
    int64_t batch = 1, loops = 1, positions = 0;                        // batch and loops at least 1
    int64_t bytesPerPositionReference = 0, bytesPerPositionCompact = 0; // per entry
    std::vector<int64_t> compactBytes;                                  // [entries] each entry in the compact layout
    int64_t compactTotal = 0;
    double perTokenReference = 0, perTokenCompact = 0; // all entries, per position and row
    int64_t recurrentEntries = 0;
    std::vector<KvEntryKind> kinds; // [entries]
    int64_t largestEntryBytes = 0;  // reference layout
    int64_t extraLoopBytes = 0;     // what one more loop adds (reference layout)
    // MLA: bytes of each position and entry that copy the shared rope key to every head.
    int64_t ropeCopyBytes = 0;
    // GQA: bytes per position and entry of plain multi-head attention.
    int64_t mhaBytesPerPosition = 0;
    // Curves of every attention variant, over 1..maxSeqLen and 1..maxLoops.
    int64_t maxSeqLen = 0, maxLoops = 0;
    int64_t curveTop = 0; // the largest byte count of any curve
    std::vector<KvCurve> curves;
};
// Throws mythos::Error when a size does not fit (a config whose other variants overflow).
KvViewData kvViewData(const Trace& tr);

} // namespace mythos
