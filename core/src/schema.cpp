#include "mythos/schema.h"

#include <array>
#include <initializer_list>

#include "mythos/errors.h"

namespace mythos {

namespace {

using Dims = std::initializer_list<Checked>;

// The one description of the model. A visitor `v` gets
//   v.tensor(name, dims, slot, kind)  for each tensor, dims checked, and
//   v.repeat(count, body)             for `count` copies of a layer or expert; body(i) describes copy i,
// so a counter can describe a repeated body once and multiply (a hostile config may ask for
// 2^40 experts) while an enumerator walks every copy.
template <typename V>
void describeBlock(const Config& c, V& v, const std::string& p, Stage stage, int64_t layer, bool moe) {
    const Checked D = c.dim, H = c.n_heads;
    auto add = [&](const std::string& name, Dims dims, Field field, Ffn ffn = Ffn::None, int64_t expert = 0,
                   TensorKind kind = TensorKind::Parameter) {
        v.tensor(p + name, dims, TensorSlot{stage, field, layer, ffn, expert}, kind);
    };
    add("attn_norm.weight", {D}, Field::AttnNorm);
    add("ffn_norm.weight", {D}, Field::FfnNorm);
    if (c.attn_type == AttnType::Mla) {
        const Checked qRank = c.q_lora_rank, kvRank = c.kv_lora_rank, rope = c.qk_rope_head_dim,
                      nope = c.qk_nope_head_dim, vDim = c.v_head_dim;
        add("attn.q_down.weight", {qRank, D}, Field::QDown);
        add("attn.q_norm.weight", {qRank}, Field::QNorm);
        add("attn.q_up_nope.weight", {H * nope, qRank}, Field::QUpNope);
        add("attn.q_up_rope.weight", {H * rope, qRank}, Field::QUpRope);
        add("attn.kv_down.weight", {kvRank + rope, D}, Field::KvDown); // -> [c_kv | k_rope]
        add("attn.kv_norm.weight", {kvRank}, Field::KvNorm);
        add("attn.kv_up.weight", {H * (nope + vDim), kvRank}, Field::KvUp); // -> [k_nope | v] per head
        add("attn.wo.weight", {D, H * vDim}, Field::Wo);
    } else {
        const Checked d = c.n_heads != 0 ? c.dim / c.n_heads : 0, kvHeads = c.n_kv_heads;
        add("attn.wq.weight", {H * d, D}, Field::Wq);
        add("attn.wk.weight", {kvHeads * d, D}, Field::Wk);
        add("attn.wv.weight", {kvHeads * d, D}, Field::Wv);
        add("attn.wo.weight", {D, H * d}, Field::Wo);
    }
    auto swiGlu = [&](const std::string& q, Checked hidden, Ffn ffn, int64_t expert) {
        add(q + "gate.weight", {hidden, D}, Field::Gate, ffn, expert);
        add(q + "up.weight", {hidden, D}, Field::Up, ffn, expert);
        add(q + "down.weight", {D, hidden}, Field::Down, ffn, expert);
    };
    if (moe) {
        const Checked experts = c.n_experts;
        add("ffn.router_bias", {experts}, Field::RouterBias, Ffn::None, 0, TensorKind::Buffer);
        add("ffn.router.weight", {experts, D}, Field::Router);
        v.repeat(c.n_experts, [&](int64_t e) {
            swiGlu("ffn.routed_experts." + std::to_string(e) + ".", c.expert_dim, Ffn::Routed, e);
        });
        const Checked sharedHidden = Checked(c.expert_dim) * Checked(c.n_experts_per_tok);
        v.repeat(c.n_shared_experts, [&](int64_t e) {
            swiGlu("ffn.shared_experts." + std::to_string(e) + ".", sharedHidden, Ffn::Shared, e);
        });
    } else {
        const Checked dim4 = D * Checked(4); // the reference's dim * 4 // 3
        swiGlu("ffn.", dim4.overflow() ? dim4 : Checked(dim4.value() / 3), Ffn::Dense, 0);
    }
}

template <typename V>
void describeModel(const Config& c, V& v) {
    const Checked D = c.dim, rank = c.lora_rank;
    auto add = [&](const char* name, Dims dims, Stage stage, Field field, TensorKind kind = TensorKind::Parameter) {
        v.tensor(name, dims, TensorSlot{stage, field}, kind);
    };
    add("embed.weight", {c.vocab_size, D}, Stage::Embed, Field::Embed);
    v.repeat(c.prelude_layers,
             [&](int64_t i) { describeBlock(c, v, "prelude." + std::to_string(i) + ".", Stage::Prelude, i, false); });
    describeBlock(c, v, "recurrent.block.", Stage::Recurrent, 0, true);
    add("recurrent.injection.log_A", {D}, Stage::Recurrent, Field::InjectionLogA);
    add("recurrent.injection.log_dt", {1}, Stage::Recurrent, Field::InjectionLogDt);
    add("recurrent.injection.B", {D}, Stage::Recurrent, Field::InjectionB);
    add("recurrent.act.halt.weight", {1, D}, Stage::Recurrent, Field::HaltWeight);
    add("recurrent.act.halt.bias", {1}, Stage::Recurrent, Field::HaltBias);
    add("recurrent.lora.B", {rank, D}, Stage::Recurrent, Field::LoraB);
    add("recurrent.lora.down.weight", {rank, D}, Stage::Recurrent, Field::LoraDown);
    add("recurrent.lora.scale.weight", {c.max_loop_iters, rank}, Stage::Recurrent, Field::LoraScale);
    add("recurrent.norm.weight", {D}, Stage::Recurrent, Field::RecurrentNorm);
    v.repeat(c.coda_layers,
             [&](int64_t i) { describeBlock(c, v, "coda." + std::to_string(i) + ".", Stage::Coda, i, false); });
    add("norm.weight", {D}, Stage::FinalNorm, Field::FinalNorm);
    add("head.weight", {c.vocab_size, D}, Stage::Head, Field::Head, TensorKind::Tied);
}

struct Enumerator {
    const std::function<void(const SchemaTensor&)>& yield;
    SchemaTensor t;

    void tensor(const std::string& name, Dims dims, const TensorSlot& slot, TensorKind kind) {
        t.name = name;
        t.shape.clear();
        for (const Checked& d : dims) {
            if (d.overflow())
                throw ConfigError("the shape of tensor '" + name + "' does not fit in 64-bit integers");
            t.shape.push_back(d.value());
        }
        t.slot = slot;
        t.kind = kind;
        yield(t);
    }
    template <typename Body>
    void repeat(int64_t count, const Body& body) {
        for (int64_t i = 0; i < count; ++i)
            body(i);
    }
};

constexpr std::array<const char*, 9> kParts = {"embed",
                                               "prelude",
                                               "recurrent.attn",
                                               "recurrent.moe.router",
                                               "recurrent.moe.routed",
                                               "recurrent.moe.shared",
                                               "recurrent.other",
                                               "coda",
                                               "final_norm"};

std::size_t partIndex(const TensorSlot& s) {
    switch (s.stage) {
    case Stage::Embed:
    case Stage::Head: // tied to the embedding
        return 0;
    case Stage::Prelude: return 1;
    case Stage::Coda: return 7;
    case Stage::FinalNorm: return 8;
    case Stage::Recurrent: break;
    }
    switch (s.field) {
    case Field::Wq:
    case Field::Wk:
    case Field::Wv:
    case Field::QDown:
    case Field::QNorm:
    case Field::QUpNope:
    case Field::QUpRope:
    case Field::KvDown:
    case Field::KvNorm:
    case Field::KvUp:
    case Field::Wo: return 2;
    case Field::Router:
    case Field::RouterBias: return 3;
    case Field::Gate:
    case Field::Up:
    case Field::Down: return s.ffn == Ffn::Shared ? 5 : 4;
    default: return 6; // the block's norms, the injection, ACT, LoRA and the loop's norm
    }
}

struct Counter {
    std::array<Checked, kParts.size()> parts{};
    Checked buffers;

    void tensor(const std::string&, Dims dims, const TensorSlot& slot, TensorKind kind) {
        Checked n = 1;
        for (const Checked& d : dims)
            n = n * d;
        if (kind == TensorKind::Parameter)
            parts[partIndex(slot)] += n;
        else if (kind == TensorKind::Buffer)
            buffers += n;
    }
    // The body counted once (as copy 0), times the count.
    template <typename Body>
    void repeat(int64_t count, const Body& body) {
        const auto outerParts = parts;
        const Checked outerBuffers = buffers;
        parts = {};
        buffers = 0;
        body(0);
        for (std::size_t i = 0; i < parts.size(); ++i)
            parts[i] = outerParts[i] + Checked(count) * parts[i];
        buffers = outerBuffers + Checked(count) * buffers;
    }
};

} // namespace

void walkSchema(const Config& cfg, const std::function<void(const SchemaTensor&)>& yield) {
    Enumerator e{yield, {}};
    describeModel(cfg, e);
}

std::vector<SchemaTensor> schemaTensors(const Config& cfg) {
    std::vector<SchemaTensor> out;
    walkSchema(cfg, [&](const SchemaTensor& t) { out.push_back(t); });
    return out;
}

const char* paramPartName(const TensorSlot& slot) { return kParts[partIndex(slot)]; }

SchemaCount countSchema(const Config& cfg) {
    Counter counter;
    describeModel(cfg, counter);
    SchemaCount out;
    for (std::size_t i = 0; i < kParts.size(); ++i)
        out.parts.push_back({kParts[i], counter.parts[i]});
    out.buffers = counter.buffers;
    return out;
}

} // namespace mythos
