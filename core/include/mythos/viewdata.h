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
#include "mythos/lens.h"
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

// ---- inside the loop (docs/inside-the-loop.md) ----

enum class LensSource { Act, State };

// The logit lens of batch row 0 as the lens view draws it: [T][K] cells.
struct LensViewData {
    int64_t tokens = 0, loops = 0;    // T, K (0 when the trace has no lens)
    std::vector<int32_t> top1;        // [T][K]
    std::vector<double> p, entropy;   // [T][K]
    std::vector<double> klFinal;      // [T][K]
    std::vector<double> klPrev;       // [T][K], NaN at loop 1
    std::vector<int32_t> convergence; // [T] 1..K
    std::vector<int32_t> finalTop1;   // [T] the model's output at K loops (act lens at K)
    std::vector<int32_t> haltLoop;    // [T] the trace's ACT halting loop, 0 = never
    double entropyTop = 1, klTop = 1; // colour ranges: the largest finite values (at least 1e-6)
    // Halting against convergence, one point per token: (convergence, halting), never
    // halted at K + 1; and how many halted before / at / after convergence, or never.
    std::vector<std::pair<double, double>> haltVsConv;
    int64_t early = 0, same = 0, late = 0, never = 0;
};
LensViewData lensViewData(const Trace& tr, LensSource source);

// Every exit rule's decision for each token of batch row 0 (rules x tokens).
struct ExitRuleTable {
    std::vector<std::string> names;  // [R]
    std::vector<int64_t> loops;      // [R][T] exit loop
    std::vector<int32_t> tokens;     // [R][T] prediction at exit
    std::vector<double> meanLoops;   // [R]
    std::vector<int64_t> agreeFinal; // [R] tokens whose prediction equals the model's output at K
};
// Empty without a lens.
ExitRuleTable exitRuleTable(const Trace& tr, const std::vector<ExitRule>& rules);

// The attention sites of a trace, with per-head summaries: entropy (nats) and mean distance
// (sum_j p_ij (i - j)) per head, averaged over the window's query rows.
struct AttentionGridData {
    int64_t heads = 0, from = 0, to = 0; // the window [from, to)
    std::vector<std::string> names;      // [S] site names
    std::vector<int64_t> loops;          // [S] 1-based for recurrent sites, else 0
    std::vector<bool> recurrent;         // [S]
    std::vector<double> entropy;         // [S][H]
    std::vector<double> distance;        // [S][H]
    double distanceTop = 1;              // the largest finite mean distance, at least 1
    std::vector<double> outside;         // [S][H] mean attention mass on keys before the window
};
AttentionGridData attentionGridData(const Trace& tr);
// The trace as an attention view draws it over the positions [from, to), inside the
// recorded attention window (ArgumentError otherwise): what names the tokens (config,
// sizes, ids, pieces) and the attention part cut to the window's queries and keys, a row's
// mass on keys before `from` dropping out as on keys before a recorded window. Nothing else
// is copied (no logits, lens, routing), so a window of a long recorded trace costs only
// what it shows.
Trace attentionWindowTrace(const Trace& tr, int64_t from, int64_t to);
// Head h's [W][W] probabilities of site s (row: query from + i, column: key from + j), as doubles.
std::vector<double> attentionMatrix(const Trace& tr, std::size_t site, int64_t head);

// The trajectory view's numbers for batch row 0: each token's orbit on the two principal
// components, and [T][K] heatmaps of |h_t - h_{t-1}| and cos(h_t, h_K).
struct TrajectoryViewData {
    int64_t tokens = 0, loops = 0; // T, K (0 without a trajectory)
    double explained[2] = {0, 0};
    std::vector<std::vector<std::pair<double, double>>> orbits; // [T] points by loop (non-finite dropped)
    std::vector<double> delta, cosFinal;                        // [T][K]
    double deltaTop = 1;                                        // the largest finite delta
    double xMin = 0, xMax = 1, yMin = 0, yMax = 1;              // the orbits' extent (padded, never empty)
};
TrajectoryViewData trajectoryViewData(const Trace& tr);

} // namespace mythos
