#pragma once
// Interventions on the open model (docs/inside-the-loop.md): ablate a routed expert or an
// attention head, force every position's exit loop, turn off the input re-injection after a
// loop, zero the depth LoRA, shift the loop-index embedding, patch one position's state from
// a second prompt. A Model carries one (Model::setIntervention); the forward pass, the deep
// run, decoding and everything built on them (the Compare view, the depth sweep, the report,
// `mythos-cli ... --intervene FILE.json`) then run the modified model. The JSON is untrusted:
// every problem is an ArgumentError starting with "intervention" and naming the field.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mythos/config.h"

namespace mythos {

class Tokenizer;

inline constexpr const char* kInterventionSchema = "mythos-intervention/1";

enum class AttnStage { Prelude, Recurrent, Coda };
const char* attnStageName(AttnStage s);

struct Intervention {
    struct ExpertAblation {
        int64_t expert = 0;
        int64_t loop = 0; // 1-based; 0 = every loop
    };
    struct HeadAblation {
        AttnStage stage = AttnStage::Recurrent;
        int64_t layer = 0;
        int64_t head = 0;
        int64_t loop = 0; // recurrent only: 1-based; 0 = every loop
    };
    enum class Exit { None, Fixed, Convergence };
    struct Patch {
        int64_t token = 0;        // position whose state is replaced
        int64_t loop = 1;         // 1-based: the state after this loop
        int64_t sourceToken = 0;  // position in the source prompt
        std::vector<int32_t> ids; // the source prompt (resolved from "prompt" by resolvePatchPrompt)
        std::string prompt;       // the source prompt as text, when given so
    };

    std::string name;
    std::vector<ExpertAblation> ablateExperts;
    std::vector<HeadAblation> ablateHeads;
    Exit exit = Exit::None;
    int64_t exitLoop = 0;                     // Exit::Fixed: 1-based
    std::optional<int64_t> injectionOffAfter; // loops t > k have B*e = 0
    bool loraScaleZero = false;
    int64_t loopShift = 0;
    std::optional<Patch> patch;

    // Whether it changes anything at all.
    bool empty() const;
    // Whether routed expert e is ablated at 0-based loop j.
    bool expertAblated(int64_t e, int64_t j) const;
    // One line for the window and the CLI: "ablate expert 2 at loop 3; exit at convergence".
    std::string describe() const;
};

// Parses and checks the object's form (field names, types, signs); ArgumentError naming
// the field. Indices are checked against a config by checkIntervention.
Intervention interventionFromJson(const nlohmann::json& j);
nlohmann::json interventionToJson(const Intervention& iv);
// Indices within the config (experts, heads, layers, loops within kMaxLoops); ArgumentError.
void checkIntervention(const Intervention& iv, const Config& cfg);
// Reads a file of at most 1 MiB: FileError / ArgumentError naming it.
Intervention loadIntervention(const std::filesystem::path& path);
void saveIntervention(const std::filesystem::path& path, const Intervention& iv); // atomic
// Tokenizes a patch given as "prompt" (no-op otherwise).
void resolvePatchPrompt(Intervention& iv, const Tokenizer& tok);

} // namespace mythos
