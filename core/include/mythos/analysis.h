#pragma once
// Figures computed from traces for the routing, KV-cache and comparison views and for
// reports: expert load and balance per loop, the router's unbiased choice, KV bytes of other
// attention variants, agreement of two models' next-token distributions, and the joining of
// decode-step traces into one trace of a generated sequence.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mythos/config.h"
#include "mythos/kvcache.h"
#include "mythos/trace.h"

namespace mythos {

// ---- expert routing ----

// The experts each (loop, row, token) uses: [L][B][T][k] ids (in selection order) and gates.
struct RoutingSelection {
    int64_t loops = 0, batch = 0, seqLen = 0, topK = 0, nExperts = 0;
    std::vector<int32_t> ids;
    std::vector<float> gates;
    std::size_t at(int64_t l, int64_t b, int64_t t) const { return std::size_t(((l * batch + b) * seqLen + t) * topK); }
};

// What the model used: the biased top-k recorded in the trace.
RoutingSelection recordedRouting(const Trace& tr);
// Top-k by the router logits alone (no bias), gates = softmax of the logits renormalised over
// the chosen experts, exactly as the model would route without its balancing bias.
// ArgumentError when the trace has no router logits.
RoutingSelection unbiasedRouting(const Trace& tr);

struct LoadStats {
    std::vector<double> load;     // [E] share of the k*N routing slots, sums to 1
    std::vector<double> gateMass; // [E] mean gate weight per token (sums to 1 per token)
    double entropyBits = 0;       // of `load`; log2(E) is perfect balance
    double maxOverMean = 0;       // max load / (1/E); 1 is perfect balance
    double gini = 0;              // of `load` over experts; 0 is perfect balance
    int64_t dead = 0;             // experts no token used
};

struct RoutingStats {
    int64_t loops = 0, nExperts = 0, topK = 0, tokens = 0; // tokens = B*T
    std::vector<LoadStats> perLoop;                        // [L]
    LoadStats overall;                                     // every loop together
    // Share of tokens whose first-choice expert / whose set of k experts differs from the
    // previous loop's; [L], entry 0 is 0 (no previous loop).
    std::vector<double> top1Switch, setSwitch;
    double meanTop1Switch = 0, meanSetSwitch = 0; // over loops 1..L-1 (0 when L < 2)
};

RoutingStats routingStats(const RoutingSelection& sel);

// Whether the k experts at a and at b are the same set (order ignored).
bool sameExpertSet(const int32_t* a, const int32_t* b, int64_t k);
// Share of (loop, row, token) positions whose expert sets differ between two selections of
// the same trace (e.g. the recorded and the unbiased one). ArgumentError on other shapes.
double expertSetDifference(const RoutingSelection& a, const RoutingSelection& b);
LoadStats loadStats(const std::vector<double>& counts, const std::vector<double>& gateSums, double tokens);

// Gate weight of every expert for every token of batch row `b`: [T][E]; loop < 0 sums over loops.
std::vector<float> tokenExpertGates(const RoutingSelection& sel, int64_t b, int64_t loop);

// Gini coefficient of non-negative values (0 = all equal, (n-1)/n = one holds everything).
double gini(std::vector<double> v);
// Shannon entropy in bits of a distribution (normalised first; zeros ignored).
double entropyBits(const std::vector<double>& p);

// ---- KV cache ----

// The same model with another attention variant: what the cache would cost.
struct KvVariant {
    std::string name; // short, for legends: "MLA", "MLA compact", "GQA kv=2", "MHA"
    Config config;
    KvLayout layout = KvLayout::Reference;
    bool current = false; // the variant and layout of `cfg` itself
};
// MLA in the reference and the compact layout, GQA at every n_kv_heads dividing n_heads
// (below n_heads), and plain multi-head attention (n_kv_heads = n_heads).
std::vector<KvVariant> kvVariants(const Config& cfg, KvLayout currentLayout = KvLayout::Reference);
// Bytes of a cache holding `positions` positions after prefill/decoding at `nLoops` loops:
// (prelude_layers + nLoops + coda_layers) entries.
int64_t kvTotalBytes(const Config& cfg, KvLayout layout, int64_t batch, int64_t positions, int64_t nLoops);

// ---- halting ----

// How deep the tokens thought: what the halting view, the comparison and the report say.
struct HaltingSummary {
    int64_t tokens = 0, halted = 0, never = 0;
    int64_t atLoopOne = 0;                                          // halted at loop 1 (ACT collapse)
    double meanHaltLoop = std::numeric_limits<double>::quiet_NaN(); // over halted tokens
    // [L + 1]: tokens halting at loop 1..L, then the never-halted ones (a halting loop
    // past loops_executed, which a loaded trace cannot have, counts as never).
    std::vector<int64_t> histogram;
};
// Of batch row `row`, or of every row when row < 0.
HaltingSummary haltingSummary(const Trace& tr, int64_t row = -1);

// ---- comparing two models ----

struct Agreement {
    int64_t tokens = 0;
    std::vector<int32_t> top1A, top1B; // [T] argmax of each model's next-token logits
    std::vector<double> klAB;          // [T] KL(P_A || P_B) in nats
    double top1Match = 0;              // share of tokens with top1A == top1B
    double meanKl = 0, maxKl = 0;
};
// ArgumentError unless both runs saw the same tokens (batch row 0): what comparing them
// per token needs, with or without logits.
void requireSameTokens(const Trace& a, const Trace& b);
// Per token of batch row 0. ArgumentError when a trace has no logits or the two traces differ
// in tokens or vocabulary.
Agreement compareNextToken(const Trace& a, const Trace& b);

// ---- generation ----

// Appends the tokens of `step` (a trace of a later chunk of the same sequence: a decode step,
// batch 1, run with a KV cache at the same loop count) to `seq` along the token axis, so that
// the views can show the whole generated sequence. ArgumentError on a mismatch.
void appendTraceTokens(Trace& seq, const Trace& step);

} // namespace mythos
