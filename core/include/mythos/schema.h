#pragma once
// The model's structure, written once: every tensor of the reference's state_dict() for a
// config, with its name (as in a safetensors checkpoint), its shape and its slot (the part of
// the model it binds to). The checkpoint reader's expected tensors, the engine's binding of
// its blocks and the parameter counts of validation are all derived from it.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mythos/checked.h"
#include "mythos/config.h"

namespace mythos {

// Where in the forward pass a tensor is used.
enum class Stage {
    Embed,     // embed.weight (also the tied head)
    Prelude,   // prelude.<layer>.*
    Recurrent, // recurrent.block.* and the loop's own tensors (injection, ACT, LoRA, norm)
    Coda,      // coda.<layer>.*
    FinalNorm, // norm.weight
    Head,      // head.weight: tied to embed.weight, optional in a checkpoint
};

// Which field of its stage a tensor fills, grouped by where the tensor sits.
// clang-format off
enum class Field {
    Embed,
    // A transformer block (a prelude or coda layer, the recurrent block).
    AttnNorm, FfnNorm,
    Wq, Wk, Wv,                                           // GQA
    QDown, QNorm, QUpNope, QUpRope, KvDown, KvNorm, KvUp, // MLA
    Wo,                                                   // both
    RouterBias, Router,                                   // the recurrent block's MoE
    Gate, Up, Down,                                       // a SwiGLU (Ffn says which)
    // The recurrent loop outside its block.
    InjectionLogA, InjectionLogDt, InjectionB, HaltWeight, HaltBias, LoraB, LoraDown, LoraScale, RecurrentNorm,
    FinalNorm,
    Head,
};
// clang-format on

// The SwiGLU a Gate / Up / Down tensor belongs to.
enum class Ffn { None, Dense, Routed, Shared };

struct TensorSlot {
    Stage stage = Stage::Embed;
    Field field = Field::Embed;
    int64_t layer = 0; // prelude / coda layer
    Ffn ffn = Ffn::None;
    int64_t expert = 0; // routed / shared expert

    bool operator==(const TensorSlot&) const = default;
};

// Parameters are counted by countParameters; the router bias is a stored buffer; the head is
// tied to the embedding (counted once, optional in a checkpoint).
enum class TensorKind { Parameter, Buffer, Tied };

struct SchemaTensor {
    std::string name;
    std::vector<int64_t> shape;
    TensorSlot slot;
    TensorKind kind = TensorKind::Parameter;
};

// Calls `yield` for every tensor of the model, in the reference's state_dict order (the RoPE
// buffers excepted: a pure function of the config). Throws ConfigError when a shape does not
// fit in 64-bit integers (a config that validate() refuses); the walk is as long as the model
// has tensors, so validate a config before walking it.
void walkSchema(const Config& cfg, const std::function<void(const SchemaTensor&)>& yield);
std::vector<SchemaTensor> schemaTensors(const Config& cfg);

// The parameter-count part of a slot (the head's: the embedding's, to which it is tied), as
// countParameters names them ("embed", "prelude",
// "recurrent.attn", "recurrent.moe.router", "recurrent.moe.routed", "recurrent.moe.shared",
// "recurrent.other", "coda", "final_norm").
const char* paramPartName(const TensorSlot& slot);

// The same walk counted without enumerating repeated layers or experts (each repeated body is
// counted once and multiplied): the elements of every parameter, summed per part in the order
// above, and of every stored buffer. Every product and sum is checked, so a hostile config
// reports an overflow instead of wrapping; only meaningful once the sizes are positive
// (validate checks that first).
struct SchemaCount {
    struct Part {
        const char* name;
        Checked count;
    };
    std::vector<Part> parts;
    Checked buffers;
};
SchemaCount countSchema(const Config& cfg);

} // namespace mythos
