#pragma once
// Inside the loop (docs/inside-the-loop.md): exit rules over a trace's logit lens, latent
// trajectories of a deep run, and the effect of an intervention against the unmodified run.
// The lens and the attention probabilities themselves are computed by the Model
// (Model::lens, Model::attention) from a DeepRun.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mythos/model.h"
#include "mythos/trace.h"

namespace mythos {

// ---- exit rules ----

struct ExitRule {
    enum class Kind { Act, KlBelow, EntropyBelow, StableTop1 };
    Kind kind = Kind::Act;
    double eps = 0; // KlBelow, EntropyBelow
    int64_t k = 2;  // StableTop1
    // "act", "kl<0.01", "entropy<0.1", "stable:2" (parseExitRule reads these back).
    std::string name() const;
};
// ArgumentError naming the text for anything else.
ExitRule parseExitRule(std::string_view text);
// act, kl<0.01, entropy<0.1, stable:2.
std::vector<ExitRule> defaultExitRules();

struct ExitDecision {
    int64_t loop = 0;  // 1-based exit loop within the lens' K
    int32_t token = 0; // the prediction at exit
};
// The rule applied to position t of batch row b of a trace that has a lens. ACT exits at
// the halting loop (K when it never halted within K) with the model's output at K loops;
// the others exit on the state lens and predict its top-1 there.
ExitDecision exitDecision(const Trace& tr, const ExitRule& rule, int64_t b, int64_t t);

// ---- trajectories ----

// PCA of the states h_1..h_K of every position (centred; two components, each sign chosen
// so that its largest-magnitude entry is positive) and cos(h_t, h_K).
TrajectoryRecord trajectoryOf(const DeepRun& run, int64_t K);

// ---- interventions ----

// The effect of an intervention per position of batch row 0: both traces must hold the same
// tokens (ArgumentError otherwise) and their logits (full or top-k of the same rows).
struct InterventionEffect {
    int64_t tokens = 0;
    std::vector<double> kl;                 // [T] KL(P_base || P_modified), NaN without full logits
    std::vector<int32_t> topBase, topMod;   // [T] top-1 of each
    std::vector<int32_t> haltBase, haltMod; // [T] halting loop (0 = never)
    std::vector<double> routingChanged;     // [T] share of the common loops whose selected expert set differs
    int64_t changedTop1 = 0;
    double meanKl = 0;
};
InterventionEffect interventionEffect(const Trace& base, const Trace& modified);

} // namespace mythos
