#include "mythos/model.h"
#include "halfprecision.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include <malloc.h>

#include "layers.h"
#include "lens_kernel.h"
#include "mythos/errors.h"
#include "mythos/modelspec.h"
#include "mythos/safetensors.h"
#include "mythos/schema.h"
#include "mythos/stability.h"
#include "ops.h"

namespace mythos {

using detail::BlockWeights;
using detail::MoeRecord;

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void checkCancel(const std::atomic<bool>* cancel) {
    if (cancel && cancel->load(std::memory_order_relaxed))
        throw Cancelled();
}

// Loop-index embedding (the reference's loop_index_embedding, theta 10000): the first
// m = dim/8 channels get [sin(t f_j), cos(t f_j)], f_j = 1 / 10000^(2j/m), in fp32.
std::vector<float> loopIndexEmbedding(int64_t t, int64_t m) {
    std::vector<float> emb(static_cast<std::size_t>(m), 0.0f);
    const int64_t half = (m + 1) / 2;
    for (int64_t j = 0; j < half; ++j) {
        const float f = 1.0f / std::pow(10000.0f, float(2 * j) / float(m));
        const float a = float(t) * f;
        if (j < m)
            emb[std::size_t(j)] = std::sin(a);
        if (half + j < m)
            emb[std::size_t(half + j)] = std::cos(a);
    }
    return emb;
}

float l2(const float* x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i)
        s += double(x[i]) * double(x[i]);
    return float(std::sqrt(s));
}

float l2diff(const float* a, const float* b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = double(a[i]) - double(b[i]);
        s += d * d;
    }
    return float(std::sqrt(s));
}

// Reference ACT update for one loop. weight: the reference's weight of h_t in h_out.
void actUpdate(const std::vector<float>& p, std::vector<float>& cum, std::vector<float>& weight, float thr) {
    const std::size_t n = p.size();
    weight.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const bool running = !(cum[i] >= thr);
        const float remainder = std::max(1.0f - cum[i], 0.0f);
        float w = (cum[i] + p[i] >= thr) ? remainder : p[i];
        weight[i] = running ? w : 0.0f;
        if (running)
            cum[i] = cum[i] + p[i];
    }
}

bool allHalted(const std::vector<float>& cum, float thr) {
    return std::all_of(cum.begin(), cum.end(), [thr](float c) { return c >= thr; });
}

} // namespace

// [K, N] copies of small fp32 matrices for the direct kernels, by weight name.
using KnCopies = std::map<std::string, std::vector<float>>;

struct Model::Impl {
    MatmulEngine mm;
    RopeTable rope;
    std::vector<BlockWeights> prelude, coda;
    BlockWeights rec;
    WeightRef embed; // also the tied head
    const float* finalNorm = nullptr;
    const float* recNorm = nullptr;
    WeightRef loraDown;
    const float* loraB = nullptr;
    const float* loraScale = nullptr;
    const float* haltW = nullptr;
    const float* haltB = nullptr;
    const float* injB = nullptr;
    std::vector<float> A;                // the forward's (the reference's clamped values)
    std::vector<float> analysisA;        // injectionA(): NaN where log_A or log_dt is not finite, for traces
    std::vector<std::vector<float>> lie; // loop-index embeddings by loop

    std::vector<std::unique_ptr<MatmulEngine>> workers; // engines of threads 1.. (MoE experts in parallel)
    KnCopies kn;                                        // [K, N] copies of the small fp32 matrices, by weight name

    std::optional<Intervention> iv; // docs/inside-the-loop.md
    std::vector<float> patchState;  // the patch's source state [D]
    bool ivSuspended = false;       // while the patch's source runs on the unmodified model
    uint64_t ivVersion = 0;         // counts setIntervention calls (a deep run's kept lens rows name one)
    std::vector<char> headMask, expertMask;

    const Intervention* active() const { return iv && !ivSuspended ? &*iv : nullptr; }
    // The heads of one attention application to zero, or null.
    const std::vector<char>* heads(const Config& c, AttnStage stage, int64_t layer, int64_t loop) {
        const Intervention* a = active();
        if (!a || a->ablateHeads.empty())
            return nullptr;
        headMask.assign(std::size_t(c.n_heads), 0);
        bool any = false;
        for (const auto& h : a->ablateHeads)
            if (h.stage == stage && h.layer == layer &&
                (stage != AttnStage::Recurrent || h.loop == 0 || h.loop == loop)) {
                headMask[std::size_t(h.head)] = 1;
                any = true;
            }
        return any ? &headMask : nullptr;
    }
    // The routed experts to ablate at 0-based loop j, or null.
    const std::vector<char>* experts(const Config& c, int64_t j) {
        const Intervention* a = active();
        if (!a || a->ablateExperts.empty())
            return nullptr;
        expertMask.assign(std::size_t(c.n_experts), 0);
        bool any = false;
        for (int64_t e = 0; e < c.n_experts; ++e)
            if (a->expertAblated(e, j)) {
                expertMask[std::size_t(e)] = 1;
                any = true;
            }
        return any ? &expertMask : nullptr;
    }

    detail::Ctx ctx(const Config& cfg) { return detail::Ctx{cfg, mm, rope, &workers}; }

    const std::vector<float>& loopEmbedding(int64_t t, int64_t m) {
        while (int64_t(lie.size()) <= t)
            lie.push_back(loopIndexEmbedding(int64_t(lie.size()), m));
        return lie[std::size_t(t)];
    }
};

namespace {

// A forward pass allocates and frees the same buffers every layer. glibc gives the top of
// the heap back to the kernel once 128 KiB of it is free, so each layer took page faults
// (and zeroed pages) for memory it had just released: a fifth of a small model's prefill.
// Keeping up to 64 MiB of freed memory, and taking blocks under 32 MiB from the heap
// rather than fresh mappings, removes that; the process keeps what it once used.
void keepFreedMemoryMapped() {
    static const bool done = [] {
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        return true;
    }();
    (void)done;
}

const Tensor& find(const Weights& w, const std::string& name) {
    auto it = w.find(name);
    if (it == w.end())
        throw ArgumentError("missing weight " + name);
    return it->second;
}

// An fp32 weight (norm scales, biases, the router: never held in bf16).
const float* ptr(const Weights& w, const std::string& name) {
    const Tensor& t = find(w, name);
    if (t.isBf16())
        throw ArgumentError("weight " + name + " is held in bf16 but is only used as fp32");
    return t.data.data();
}

// fp32 matrices up to this many elements (512 KiB) also get a [K, N] copy for the direct
// kernels (WeightRef::kn): every matrix of the small models, none of a large model's big ones.
// Only where the AVX-512 kernel that reads them runs: the portable path has no use for them.
constexpr int64_t kKnCopyMaxElements = int64_t(1) << 17;

void transposeInto(const Tensor& t, std::vector<float>& out) {
    const int64_t N = t.shape[0], K = t.shape[1];
    out.resize(std::size_t(N * K));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
            out[std::size_t(k * N + n)] = t.data[std::size_t(n * K + k)];
}

// A matrix, fp32 or bf16 as held; a small fp32 one with its [K, N] copy (made once, kept in
// `copies` by name).
WeightRef ref(const Weights& w, const std::string& name, KnCopies* copies = nullptr) {
    const Tensor& t = find(w, name);
    if (t.isBf16())
        return WeightRef::bf16Bits(t.bf16.data());
    WeightRef r(t.data.data());
    if (copies && t.shape.size() == 2 && t.numel() <= kKnCopyMaxElements && detail::avx512Enabled()) {
        auto [it, fresh] = copies->try_emplace(name);
        if (fresh)
            transposeInto(t, it->second);
        r.kn = it->second.data();
    }
    return r;
}

// Binds one tensor of a transformer block (a prelude or coda layer, the recurrent block) to
// its field, as the schema's slot says.
void bindBlockTensor(BlockWeights& b, const Weights& w, const SchemaTensor& t, KnCopies* kn) {
    const std::string& n = t.name;
    auto& a = b.attn;
    switch (t.slot.field) {
    case Field::AttnNorm: b.attnNorm = ptr(w, n); break;
    case Field::FfnNorm: b.ffnNorm = ptr(w, n); break;
    case Field::Wq: a.wq = ref(w, n, kn); break;
    case Field::Wk: a.wk = ref(w, n, kn); break;
    case Field::Wv: a.wv = ref(w, n, kn); break;
    case Field::QDown: a.qDown = ref(w, n, kn); break;
    case Field::QNorm: a.qNorm = ptr(w, n); break;
    case Field::QUpNope: a.qUpNope = ref(w, n, kn); break;
    case Field::QUpRope: a.qUpRope = ref(w, n, kn); break;
    case Field::KvDown: a.kvDown = ref(w, n, kn); break;
    case Field::KvNorm: a.kvNorm = ptr(w, n); break;
    case Field::KvUp: a.kvUp = ref(w, n, kn); break;
    case Field::Wo: a.wo = ref(w, n, kn); break;
    case Field::RouterBias: b.experts.routerBias = ptr(w, n); break;
    case Field::Router: b.experts.router = ptr(w, n); break;
    case Field::Gate:
    case Field::Up:
    case Field::Down: {
        detail::FfnWeights* f = &b.dense;
        if (t.slot.ffn != Ffn::Dense) {
            auto& list = t.slot.ffn == Ffn::Routed ? b.experts.routed : b.experts.shared;
            if (list.size() <= std::size_t(t.slot.expert))
                list.resize(std::size_t(t.slot.expert) + 1);
            f = &list[std::size_t(t.slot.expert)];
        }
        (t.slot.field == Field::Gate ? f->gate : t.slot.field == Field::Up ? f->up : f->down) = ref(w, n, kn);
        f->hidden = t.slot.field == Field::Down ? t.shape[1] : t.shape[0];
        break;
    }
    default: throw ArgumentError("weight " + n + " is not part of a block");
    }
}

} // namespace

Model::Model(Config cfg, Weights weights, EngineOptions options)
    : m_cfg(std::move(cfg)), m_opts(options), m_weights(std::move(weights)), m_impl(std::make_unique<Impl>()) {
    keepFreedMemoryMapped();
    validateOrThrow(m_cfg, "model config");
    const std::vector<SchemaTensor> schema = schemaTensors(m_cfg);
    for (const auto& ex : schema) {
        auto it = m_weights.find(ex.name);
        if (it == m_weights.end()) {
            if (ex.kind == TensorKind::Tied)
                continue;
            throw ArgumentError("weight " + ex.name + " is missing");
        }
        if (it->second.shape != ex.shape)
            throw ArgumentError("weight " + ex.name + " has shape " + shapeToString(it->second.shape) +
                                ", the config needs " + shapeToString(ex.shape));
    }
    // One tensor at a time, so a conversion never holds two copies of every weight.
    for (auto& [name, t] : m_weights) {
        if (m_opts.weightType == WeightType::BF16 && bf16Eligible(name))
            t.toBf16();
        else
            t.toF32();
    }
    setNumThreads(m_opts.threads);
    auto& im = *m_impl;
    im.rope = RopeTable(m_cfg.ropeDim(), m_cfg.rope_theta, m_cfg.max_seq_len);
    // Every tensor to its slot, as the schema walks them.
    im.prelude.resize(std::size_t(m_cfg.prelude_layers));
    im.coda.resize(std::size_t(m_cfg.coda_layers));
    im.rec.moe = true;
    for (const auto& t : schema) {
        const std::string& n = t.name;
        switch (t.slot.field) {
        case Field::Embed: im.embed = ref(m_weights, n, &im.kn); break;
        case Field::FinalNorm: im.finalNorm = ptr(m_weights, n); break;
        case Field::RecurrentNorm: im.recNorm = ptr(m_weights, n); break;
        case Field::LoraDown: im.loraDown = ref(m_weights, n, &im.kn); break;
        case Field::LoraB: im.loraB = ptr(m_weights, n); break;
        case Field::LoraScale: im.loraScale = ptr(m_weights, n); break;
        case Field::HaltWeight: im.haltW = ptr(m_weights, n); break;
        case Field::HaltBias: im.haltB = ptr(m_weights, n); break;
        case Field::InjectionB: im.injB = ptr(m_weights, n); break;
        case Field::InjectionLogA: // read as A (forwardInjectionA, injectionA)
        case Field::InjectionLogDt:
        case Field::Head: // the tied head is the embedding
            break;
        default: {
            const auto layer = std::size_t(t.slot.layer);
            bindBlockTensor(t.slot.stage == Stage::Prelude ? im.prelude[layer]
                            : t.slot.stage == Stage::Coda  ? im.coda[layer]
                                                           : im.rec,
                            m_weights, t, &im.kn);
        }
        }
    }
    im.A = forwardInjectionA();
    im.analysisA = injectionA();
}

Model::~Model() = default;

std::unique_ptr<Model> Model::open(const std::string& spec, EngineOptions options, const ProgressFn& progress) {
    return mythos::open(parseModelSpec(spec), options, nullptr, progress);
}

std::size_t Model::weightBytes() const { return mythos::weightBytes(m_weights); }

std::size_t Model::kernelCopyBytes() const {
    std::size_t n = 0;
    for (const auto& [name, v] : m_impl->kn)
        n += v.size() * sizeof(float);
    return n;
}

const std::string& Model::weightsHash() const {
    if (m_hash.empty())
        m_hash = hashWeights(m_weights);
    return m_hash;
}

const std::vector<NonFiniteTensor>& Model::nonFiniteWeights() const {
    if (!m_nonFinite)
        m_nonFinite = findNonFinite(m_weights);
    return *m_nonFinite;
}

std::vector<float> Model::injectionA() const {
    return injectionForAnalysis(m_weights.at("recurrent.injection.log_A").data,
                                m_weights.at("recurrent.injection.log_dt").data.at(0));
}

std::vector<float> Model::forwardInjectionA() const {
    return injectionFromLogs(m_weights.at("recurrent.injection.log_A").data,
                             m_weights.at("recurrent.injection.log_dt").data.at(0));
}

void Model::setWeight(const std::string& name, const Tensor& t) {
    auto it = m_weights.find(name);
    if (it == m_weights.end())
        throw ArgumentError("no weight named " + name);
    if (it->second.shape != t.shape)
        throw ArgumentError("weight " + name + " has shape " + shapeToString(it->second.shape) + ", not " +
                            shapeToString(t.shape));
    // Copy in place: the bound pointers stay valid.
    const std::vector<float> v = t.values();
    Tensor& dst = it->second;
    if (dst.isBf16())
        std::transform(v.begin(), v.end(), dst.bf16.begin(), floatToBf16);
    else
        std::copy(v.begin(), v.end(), dst.data.begin());
    if (auto kn = m_impl->kn.find(name); kn != m_impl->kn.end())
        transposeInto(dst, kn->second); // same size: the bound pointer stays valid
    m_hash.clear();
    m_nonFinite.reset();
    m_impl->A = forwardInjectionA();
    m_impl->analysisA = injectionA();
}

namespace {

struct LoopRecorder {
    // Appends the records of one loop to a trace.
    static void add(Trace& tr, const std::vector<float>& p, const std::vector<float>& cum,
                    const std::vector<float>& weight, const float* h, const float* hPrev, int64_t D, MoeRecord& rec) {
        const std::size_t N = p.size();
        tr.actP.insert(tr.actP.end(), p.begin(), p.end());
        tr.actCumP.insert(tr.actCumP.end(), cum.begin(), cum.end());
        tr.actWeight.insert(tr.actWeight.end(), weight.begin(), weight.end());
        for (std::size_t n = 0; n < N; ++n) {
            tr.hNorm.push_back(l2(h + n * D, D));
            tr.hDelta.push_back(l2diff(h + n * D, hPrev + n * D, D));
        }
        tr.topkIds.insert(tr.topkIds.end(), rec.ids.begin(), rec.ids.end());
        tr.topkWeights.insert(tr.topkWeights.end(), rec.gates.begin(), rec.gates.end());
        tr.routerLogits.insert(tr.routerLogits.end(), rec.logits.begin(), rec.logits.end());
    }
};

} // namespace

// Shared by forward and the deep run: the static fields of a trace and the derived
// per-position summaries over the first L loops.
static void fillTraceHeader(Trace& tr, const Model& m, const std::vector<int32_t>& ids, int64_t B, int64_t T,
                            int64_t startPos, int64_t nLoops, const std::vector<float>& analysisA) {
    const Config& c = m.config();
    tr.config = c;
    tr.model = m.name();
    tr.weightsHash = m.weightsHash();
    tr.options = engineOptionsToJson(m.options());
    tr.batch = B;
    tr.seqLen = T;
    tr.startPos = startPos;
    tr.nLoops = nLoops;
    tr.ids = ids;
    tr.topK = c.n_experts_per_tok;
    tr.nExperts = c.n_experts;
    tr.vocab = c.vocab_size;
    const auto& bias = m.weights().at("recurrent.block.ffn.router_bias").data;
    tr.routerBias = bias;
    // The analysis form of A (not the forward's): entries whose log_A (or log_dt) is not
    // finite are NaN, so rho(A) shows as not finite instead of the clamp's 0 or 1.
    tr.injA = analysisA;
    tr.injB = m.weights().at("recurrent.injection.B").data;
    tr.rhoA = spectralRadiusDiagonal(tr.injA);
    tr.intervention = m.intervention() ? interventionToJson(*m.intervention()) : nlohmann::json();
}

static void finishTrace(Trace& tr, int64_t L, float thr) {
    const int64_t N = tr.batch * tr.seqLen;
    tr.loopsExecuted = L;
    tr.haltLoop.assign(std::size_t(N), 0);
    tr.weightSum.assign(std::size_t(N), 0.0f);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t l = 0; l < L; ++l) {
            tr.weightSum[std::size_t(n)] += tr.actWeight[std::size_t(l * N + n)];
            if (tr.haltLoop[std::size_t(n)] == 0 && tr.actCumP[std::size_t(l * N + n)] >= thr)
                tr.haltLoop[std::size_t(n)] = int32_t(l + 1);
        }
}

// The head's output as the trace keeps it: the full logits when every row was computed, and
// the top logits of each computed row.
static void setHeadRecord(Trace& tr, const std::vector<float>& logits, HeadRows rows) {
    std::vector<int32_t> positions;
    if (rows == HeadRows::All) {
        tr.logits = logits;
        for (int64_t t = 0; t < tr.seqLen; ++t)
            positions.push_back(int32_t(t));
    } else {
        tr.logits.clear();
        positions.push_back(int32_t(tr.seqLen - 1));
    }
    setTopLogits(tr, logits, positions, kTraceTopLogits);
}

std::vector<float> Model::embedAndPrelude(const std::vector<int32_t>& ids, int64_t B, int64_t T, int64_t startPos,
                                          KvCache* cache, const std::atomic<bool>* cancel) {
    const Config& c = m_cfg;
    auto& im = *m_impl;
    // A patch must reach a position of an uncached pass (with a cache, decode steps after the
    // patched position leave it alone).
    if (const Intervention* iv = im.active();
        iv && iv->patch && !cache && (iv->patch->token < startPos || iv->patch->token >= startPos + T))
        throw ArgumentError("intervention: patch.token " + std::to_string(iv->patch->token) +
                            " is outside the input's positions " + std::to_string(startPos) + ".." +
                            std::to_string(startPos + T - 1));
    if (B < 1 || T < 1 || int64_t(ids.size()) != B * T)
        throw ArgumentError("input ids must be a non-empty batch of equal-length rows (got " +
                            std::to_string(ids.size()) + " ids for " + std::to_string(B) + " x " + std::to_string(T) +
                            ")");
    for (int32_t id : ids)
        if (id < 0 || id >= c.vocab_size)
            throw ArgumentError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(c.vocab_size) + ")");
    if (startPos < 0 || startPos + T > c.max_seq_len)
        throw ArgumentError("positions " + std::to_string(startPos) + ".." + std::to_string(startPos + T - 1) +
                            " exceed max_seq_len = " + std::to_string(c.max_seq_len));
    const int64_t D = c.dim, N = B * T;
    auto ctx = im.ctx(c);
    std::vector<float> x(static_cast<std::size_t>(N * D));
    for (int64_t n = 0; n < N; ++n) {
        const int64_t row = int64_t(ids[std::size_t(n)]) * D;
        float* xn = x.data() + n * D;
        if (im.embed.bf16)
            for (int64_t i = 0; i < D; ++i)
                xn[i] = bf16ToFloat(im.embed.bf16[row + i]);
        else
            std::memcpy(xn, im.embed.f32 + row, std::size_t(D) * sizeof(float));
    }
    for (std::size_t i = 0; i < im.prelude.size(); ++i) {
        checkCancel(cancel);
        ctx.zeroHeads = im.heads(c, AttnStage::Prelude, int64_t(i), 0);
        detail::blockForward(ctx, im.prelude[i], x.data(), B, T, startPos, cache, "prelude_" + std::to_string(i),
                             nullptr);
    }
    return x;
}

std::vector<float> Model::forward(const std::vector<int32_t>& ids, int64_t B, int64_t T, const ForwardOptions& fo) {
    const Config& c = m_cfg;
    auto& im = *m_impl;
    if (fo.nLoops < 0)
        throw ArgumentError("n_loops must be >= 0");
    const int64_t nLoops = fo.nLoops > 0 ? fo.nLoops : c.max_loop_iters;
    const int64_t D = c.dim, N = B * T;
    const float thr = float(c.act_threshold);
    // Records go into a fresh trace that replaces the caller's at the end.
    Trace record;
    Trace* tr = fo.trace ? &record : nullptr;

    auto t0 = Clock::now();
    std::vector<float> x = embedAndPrelude(ids, B, T, fo.startPos, fo.cache, fo.cancel);
    const double tPrelude = msSince(t0);

    if (tr)
        fillTraceHeader(*tr, *this, ids, B, T, fo.startPos, nLoops, im.analysisA);
    auto t1 = Clock::now();
    const std::vector<float> e = x;
    std::vector<float> h = x, hPrev, hOut(static_cast<std::size_t>(N * D), 0.0f),
                       cum(static_cast<std::size_t>(N), 0.0f), p, weight;
    MoeRecord rec;
    int64_t L = 0;
    const Intervention* iv = activeIntervention();
    const bool forcedExit = iv && iv->exit != Intervention::Exit::None;
    std::vector<std::vector<float>> states; // every loop's state, under a forced exit
    for (int64_t t = 0; t < nLoops; ++t) {
        checkCancel(fo.cancel);
        if (tr)
            hPrev = h;
        recurrentStep(t, e, h, B, T, fo.startPos, fo.cache, tr ? &rec : nullptr, p);
        const std::vector<float> cumBefore = m_opts.actFinalRemainder ? cum : std::vector<float>{};
        actUpdate(p, cum, weight, thr);
        if (m_opts.actFinalRemainder && t == nLoops - 1)
            for (int64_t n = 0; n < N; ++n)
                if (!(cumBefore[std::size_t(n)] >= thr))
                    weight[std::size_t(n)] = std::max(1.0f - cumBefore[std::size_t(n)], 0.0f);
        for (int64_t n = 0; n < N; ++n) {
            const float w = weight[std::size_t(n)];
            float* o = hOut.data() + n * D;
            const float* hn = h.data() + n * D;
            for (int64_t i = 0; i < D; ++i)
                o[i] = o[i] + w * hn[i];
        }
        if (tr)
            LoopRecorder::add(*tr, p, cum, weight, h.data(), hPrev.data(), D, rec);
        if (forcedExit)
            states.push_back(h);
        L = t + 1;
        if (!fo.cache && !forcedExit && allHalted(cum, thr))
            break;
    }
    if (forcedExit) {
        std::vector<const float*> ptrs;
        for (const auto& st : states)
            ptrs.push_back(st.data());
        hOut = forcedExitOutput(ptrs, B, T, fo.startPos, fo.cache, fo.cancel);
    }
    const double tLoop = msSince(t1);

    auto t2 = Clock::now();
    std::vector<float> logits = finish(std::move(hOut), B, T, fo.startPos, fo.cache, fo.cancel, fo.headRows);
    const double tCoda = msSince(t2);
    if (tr) {
        finishTrace(*tr, L, thr);
        setHeadRecord(*tr, logits, fo.headRows);
        if (fo.cache) {
            tr->hasKv = true;
            tr->kv = fo.cache->ledger();
        }
        tr->timingsMs = {{"prelude", tPrelude}, {"recurrent", tLoop}, {"coda_head", tCoda}};
        *fo.trace = std::move(record);
    }
    return logits;
}

void Model::recurrentStep(int64_t t, const std::vector<float>& e, std::vector<float>& h, int64_t B, int64_t T,
                          int64_t startPos, KvCache* cache, MoeRecord* rec, std::vector<float>& p) {
    const Config& c = m_cfg;
    auto& im = *m_impl;
    auto ctx = im.ctx(c);
    const int64_t D = c.dim, N = B * T, R = c.lora_rank;
    const Intervention* iv = im.active();
    const int64_t lieIndex = t + (iv ? iv->loopShift : 0);
    if (lieIndex < 0)
        throw ArgumentError("intervention: loop_shift " + std::to_string(iv->loopShift) + " makes loop " +
                            std::to_string(t + 1) + "'s loop-index embedding index negative");
    const auto& lie = im.loopEmbedding(lieIndex, c.loopDim());

    // combined = RMSNorm((h + LIE(t)) + e)
    detail::Scratch y(N * D);
    const int64_t lieW = std::min<int64_t>(int64_t(lie.size()), D);
    for (int64_t n = 0; n < N; ++n) {
        const std::size_t row = std::size_t(n * D);
        for (int64_t i = 0; i < lieW; ++i)
            y[row + std::size_t(i)] = (h[row + std::size_t(i)] + lie[std::size_t(i)]) + e[row + std::size_t(i)];
        for (int64_t i = lieW; i < D; ++i)
            y[row + std::size_t(i)] = h[row + std::size_t(i)] + e[row + std::size_t(i)];
    }
    rmsNorm(y.data(), im.recNorm, y.data(), N, D);
    ctx.zeroHeads = im.heads(c, AttnStage::Recurrent, 0, t + 1);
    ctx.zeroExperts = im.experts(c, t);
    detail::blockForward(ctx, im.rec, y.data(), B, T, startPos, cache, "recurrent_loop_" + std::to_string(t), rec);

    // Depth LoRA: y += (down(y) * scale[min(t, max_loop_iters - 1)]) @ lora.B
    if (!(iv && iv->loraScaleZero)) {
        detail::Scratch down(N * R);
        im.mm.linear(y.data(), N, D, im.loraDown, R, down.data());
        const float* s = im.loraScale + std::min<int64_t>(t, c.max_loop_iters - 1) * R;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t r = 0; r < R; ++r)
                down[std::size_t(n * R + r)] *= s[r];
        im.mm.matmulKN(down.data(), N, R, im.loraB, D, y.data(), true);
    }

    // LTI injection: h = A*h + B*e + y (B*e = 0 after the intervention's loop)
    if (iv && iv->injectionOffAfter && t + 1 > *iv->injectionOffAfter) {
        for (int64_t k = 0; k < N * D; ++k)
            h[std::size_t(k)] = im.A[std::size_t(k % D)] * h[std::size_t(k)] + y[std::size_t(k)];
    } else {
        for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < D; ++i) {
                const std::size_t k = std::size_t(n * D + i);
                h[k] = (im.A[std::size_t(i)] * h[k] + im.injB[i] * e[k]) + y[k];
            }
    }
    // Activation patching: the source prompt's state replaces this position's, before its
    // halting probability.
    if (iv && iv->patch && iv->patch->loop == t + 1) {
        const int64_t at = iv->patch->token - startPos;
        if (at >= 0 && at < T)
            for (int64_t b = 0; b < B; ++b)
                std::copy(im.patchState.begin(), im.patchState.end(), h.begin() + (b * T + at) * D);
    }

    // ACT halting probability p = sigmoid(h . w + b)
    // A single output column: a double-precision dot product is as cheap as a matmul call
    // and keeps the halting decision as close to exact as the state allows.
    p.resize(std::size_t(N));
    for (int64_t n = 0; n < N; ++n) {
        const float logit = float(dotF64(h.data() + n * D, im.haltW, D)) + im.haltB[0];
        p[std::size_t(n)] = 1.0f / (1.0f + std::exp(-logit));
    }
}

std::vector<float> Model::finish(std::vector<float> x, int64_t B, int64_t T, int64_t startPos, KvCache* cache,
                                 const std::atomic<bool>* cancel, HeadRows rows) {
    const Config& c = m_cfg;
    auto& im = *m_impl;
    auto ctx = im.ctx(c);
    const int64_t D = c.dim, N = B * T;
    for (std::size_t i = 0; i < im.coda.size(); ++i) {
        checkCancel(cancel);
        ctx.zeroHeads = im.heads(c, AttnStage::Coda, int64_t(i), 0);
        detail::blockForward(ctx, im.coda[i], x.data(), B, T, startPos, cache, "coda_" + std::to_string(i), nullptr);
    }
    int64_t R = N;
    if (rows == HeadRows::Last) { // the last position of each batch row, moved to the front
        for (int64_t b = 0; b < B; ++b)
            std::copy_n(x.data() + ((b + 1) * T - 1) * D, D, x.data() + b * D);
        R = B;
    }
    rmsNorm(x.data(), im.finalNorm, x.data(), R, D);
    std::vector<float> logits(static_cast<std::size_t>(R * c.vocab_size));
    im.mm.linear(x.data(), R, D, im.embed, c.vocab_size, logits.data());
    return logits;
}

DeepRun Model::deepRun(const std::vector<int32_t>& ids, int64_t B, int64_t T, int64_t depth,
                       const std::atomic<bool>* cancel) {
    DeepRun run;
    run.batch = B;
    run.seqLen = T;
    run.ids = ids;
    run.e = embedAndPrelude(ids, B, T, 0, nullptr, cancel);
    fillTraceHeader(run.trace, *this, ids, B, T, 0, 0, m_impl->analysisA);
    extendDeepRun(run, depth, cancel);
    return run;
}

void Model::extendDeepRun(DeepRun& run, int64_t depth, const std::atomic<bool>* cancel) {
    const Config& c = m_cfg;
    const int64_t D = c.dim;
    const float thr = float(c.act_threshold);
    MoeRecord rec;
    std::vector<float> h = run.h.empty() ? run.e : run.h.back();
    std::vector<float> cum = run.cum.empty() ? std::vector<float>(run.e.size() / std::size_t(D), 0.0f) : run.cum.back();
    std::vector<float> p, weight;
    for (int64_t t = run.depth; t < depth; ++t) {
        checkCancel(cancel);
        const std::vector<float> hPrev = h;
        recurrentStep(t, run.e, h, run.batch, run.seqLen, 0, nullptr, &rec, p);
        actUpdate(p, cum, weight, thr);
        LoopRecorder::add(run.trace, p, cum, weight, h.data(), hPrev.data(), D, rec);
        run.h.push_back(h);
        run.p.push_back(p);
        run.cum.push_back(cum);
        run.weight.push_back(weight);
        run.depth = t + 1;
    }
}

std::vector<float> Model::logitsAt(const DeepRun& run, int64_t k, Trace* trace, double actThreshold, HeadRows rows) {
    const Config& c = m_cfg;
    if (k < 1 || k > run.depth)
        throw ArgumentError("loop count " + std::to_string(k) + " is outside the deep run's 1.." +
                            std::to_string(run.depth));
    if (actThreshold < 0 || actThreshold > 1)
        throw ArgumentError("ACT threshold must be in (0, 1]");
    const int64_t N = run.batch * run.seqLen;
    const float thr = float(actThreshold > 0 ? actThreshold : c.act_threshold);

    std::vector<std::vector<float>> cums, weights;
    int64_t L = k;
    std::vector<float> hOut = recurrentOutput(run, k, thr, &L, &weights, &cums);
    auto t0 = Clock::now();
    std::vector<float> logits = finish(std::move(hOut), run.batch, run.seqLen, 0, nullptr, nullptr, rows);
    if (trace) {
        *trace = run.trace;
        const std::size_t keep = std::size_t(L * N);
        trace->nLoops = k;
        trace->config.act_threshold = thr;
        for (auto* v : {&trace->actP, &trace->hNorm, &trace->hDelta})
            v->resize(keep);
        trace->actCumP.clear();
        trace->actWeight.clear();
        for (int64_t t = 0; t < L; ++t) {
            trace->actCumP.insert(trace->actCumP.end(), cums[std::size_t(t)].begin(), cums[std::size_t(t)].end());
            trace->actWeight.insert(trace->actWeight.end(), weights[std::size_t(t)].begin(),
                                    weights[std::size_t(t)].end());
        }
        trace->topkIds.resize(keep * std::size_t(c.n_experts_per_tok));
        trace->topkWeights.resize(keep * std::size_t(c.n_experts_per_tok));
        trace->routerLogits.resize(keep * std::size_t(c.n_experts));
        finishTrace(*trace, L, thr);
        setHeadRecord(*trace, logits, rows);
        trace->timingsMs = {{"coda_head", msSince(t0)}};
    }
    return logits;
}

std::vector<float> Model::recurrentOutput(const DeepRun& run, int64_t k, float thr, int64_t* L,
                                          std::vector<std::vector<float>>* weights,
                                          std::vector<std::vector<float>>* cums) {
    const int64_t D = m_cfg.dim, N = run.batch * run.seqLen;
    const Intervention* iv = activeIntervention();
    const bool forcedExit = iv && iv->exit != Intervention::Exit::None;
    // ACT over the stored p; the reference stops once every position has halted (later
    // weights would be 0 anyway). A forced exit runs every loop.
    std::vector<float> cum(static_cast<std::size_t>(N), 0.0f);
    std::vector<std::vector<float>> ws;
    int64_t used = k;
    for (int64_t t = 0; t < k; ++t) {
        std::vector<float> weight;
        const std::vector<float> before = cum;
        actUpdate(run.p[std::size_t(t)], cum, weight, thr);
        if (m_opts.actFinalRemainder && t == k - 1)
            for (int64_t n = 0; n < N; ++n)
                if (!(before[std::size_t(n)] >= thr))
                    weight[std::size_t(n)] = std::max(1.0f - before[std::size_t(n)], 0.0f);
        if (cums)
            cums->push_back(cum);
        ws.push_back(std::move(weight));
        if (!forcedExit && allHalted(cum, thr)) {
            used = t + 1;
            break;
        }
    }
    if (L)
        *L = used;
    std::vector<float> hOut;
    if (forcedExit) {
        std::vector<const float*> states;
        for (int64_t t = 0; t < k; ++t)
            states.push_back(run.h[std::size_t(t)].data());
        hOut = forcedExitOutput(states, run.batch, run.seqLen, 0, nullptr, nullptr);
    } else {
        hOut.assign(static_cast<std::size_t>(N * D), 0.0f);
        for (int64_t t = 0; t < used; ++t) {
            const float* hw = ws[std::size_t(t)].data();
            const float* h = run.h[std::size_t(t)].data();
            for (int64_t n = 0; n < N; ++n) {
                const float w = hw[n];
                float* o = hOut.data() + n * D;
                for (int64_t i = 0; i < D; ++i)
                    o[i] = o[i] + w * h[n * D + i];
            }
        }
    }
    if (weights)
        *weights = std::move(ws);
    return hOut;
}

std::vector<int32_t> Model::stateTop1(const std::vector<const float*>& states, int64_t B, int64_t T, int64_t startPos,
                                      const KvCache* cache, const std::atomic<bool>* cancel) {
    const int64_t D = m_cfg.dim, N = B * T, V = m_cfg.vocab_size, K = int64_t(states.size());
    std::vector<int32_t> top(std::size_t(K * N));
    const auto takeTop = [&](const std::vector<float>& logits, int64_t t0, int64_t loops) {
        for (int64_t i = 0; i < loops * N; ++i) {
            const float* row = logits.data() + i * V;
            top[std::size_t(t0 * N + i)] = int32_t(std::max_element(row, row + V) - row);
        }
    };
    if (!cache) {
        // Loops stacked as batch rows of one coda pass (the coda attends within a row), at
        // most 2^24 logits a pass.
        const int64_t perPass =
            std::max<int64_t>(1, std::min<int64_t>(K, (int64_t(1) << 24) / std::max<int64_t>(1, N * V)));
        for (int64_t t0 = 0; t0 < K; t0 += perPass) {
            const int64_t nt = std::min(perPass, K - t0);
            std::vector<float> x(std::size_t(nt * N * D));
            for (int64_t i = 0; i < nt; ++i)
                std::copy(states[std::size_t(t0 + i)], states[std::size_t(t0 + i)] + N * D, x.begin() + i * N * D);
            takeTop(finish(std::move(x), nt * B, T, startPos, nullptr, cancel, HeadRows::All), t0, nt);
        }
        return top;
    }
    // With a cache the lens must not append to it: the coda entries are copied once (nothing
    // else is read) and cut back to their lengths after each loop.
    KvCache scratch(m_cfg, cache->batch(), cache->layout());
    std::vector<std::pair<std::string, int64_t>> lengths;
    for (const KvEntry& e : cache->entries())
        if (e.key.rfind("coda_", 0) == 0) {
            scratch.getOrCreate(e.key) = e;
            lengths.push_back({e.key, e.length});
        }
    for (int64_t t = 0; t < K; ++t) {
        std::vector<float> x(states[std::size_t(t)], states[std::size_t(t)] + N * D);
        takeTop(finish(std::move(x), B, T, startPos, &scratch, cancel, HeadRows::All), t, 1);
        for (const KvEntry& e : scratch.entries())
            if (std::none_of(lengths.begin(), lengths.end(), [&](const auto& kl) { return kl.first == e.key; }))
                lengths.push_back({e.key, 0}); // made by this pass: emptied
        for (const auto& [key, length] : lengths) {
            KvEntry* e = scratch.find(key);
            e->length = length;
            for (auto& row : e->a)
                row.resize(std::size_t(length * e->widthA));
            for (auto& row : e->b)
                row.resize(std::size_t(length * e->widthB));
        }
    }
    return top;
}

namespace {
std::vector<int32_t> convergenceLoops(const std::vector<int32_t>& top, int64_t K, int64_t N); // below
} // namespace

std::vector<float> Model::forcedExitOutput(const std::vector<const float*>& states, int64_t B, int64_t T,
                                           int64_t startPos, const KvCache* cache, const std::atomic<bool>* cancel) {
    const Intervention& iv = *activeIntervention();
    const int64_t D = m_cfg.dim, N = B * T, K = int64_t(states.size());
    std::vector<float> out(static_cast<std::size_t>(N * D), 0.0f);
    if (K == 0)
        return out;
    std::vector<int64_t> exitLoop(static_cast<std::size_t>(N), std::min(iv.exitLoop, K));
    if (iv.exit == Intervention::Exit::Convergence) {
        const std::vector<int32_t> conv = convergenceLoops(stateTop1(states, B, T, startPos, cache, cancel), K, N);
        std::copy(conv.begin(), conv.end(), exitLoop.begin());
    }
    for (int64_t n = 0; n < N; ++n) {
        const float* h = states[std::size_t(exitLoop[std::size_t(n)] - 1)] + n * D;
        std::copy(h, h + D, out.begin() + n * D);
    }
    return out;
}

const Intervention* Model::activeIntervention() const { return m_impl->active(); }
const Intervention* Model::intervention() const { return m_impl->iv ? &*m_impl->iv : nullptr; }

void Model::setIntervention(Intervention iv) {
    auto& im = *m_impl;
    if (iv.empty()) {
        im.iv.reset();
        im.patchState.clear();
        ++im.ivVersion;
        return;
    }
    checkIntervention(iv, m_cfg);
    std::vector<float> patch;
    if (iv.patch) {
        const auto& p = *iv.patch;
        if (p.ids.empty())
            throw ArgumentError("intervention: the patch's source prompt has not been tokenized");
        // The source prompt on the unmodified model, to the patch's loop.
        const int64_t T = int64_t(p.ids.size()), D = m_cfg.dim;
        im.ivSuspended = true;
        try {
            std::vector<float> e = embedAndPrelude(p.ids, 1, T, 0, nullptr, nullptr);
            std::vector<float> h = e, prob;
            for (int64_t t = 0; t < p.loop; ++t)
                recurrentStep(t, e, h, 1, T, 0, nullptr, nullptr, prob);
            patch.assign(h.begin() + p.sourceToken * D, h.begin() + (p.sourceToken + 1) * D);
        } catch (...) {
            im.ivSuspended = false;
            throw;
        }
        im.ivSuspended = false;
    }
    im.iv = std::move(iv);
    im.patchState = std::move(patch);
    ++im.ivVersion;
}

namespace {

// A KL divergence below 0 is rounding; NaN stays NaN.
double nonNegative(double x) { return x < 0 ? 0.0 : x; }

// The logit lens keeps every loop's rows (both lenses) while they take at most this many
// floats (64 MiB): then the output at K loops is one of them and a deep run can keep them
// for the next call.
constexpr int64_t kLensKeepFloats = int64_t(1) << 24;

// What both lenses compare with: the model's output at K loops, [N][V] logits with their
// probabilities and each row's log-sum-exp.
struct LensReference {
    const float* z = nullptr;
    std::vector<float> p;
    std::vector<double> lse;
};

LensReference lensReference(const float* z, int64_t N, int64_t V) {
    LensReference ref;
    ref.z = z;
    ref.p.resize(std::size_t(N * V));
    ref.lse.resize(std::size_t(N));
    for (int64_t n = 0; n < N; ++n) {
        const detail::LensRow r = detail::lensRow(z + n * V, V, nullptr, nullptr, 0, nullptr, 0);
        ref.lse[std::size_t(n)] = r.lse;
        for (int64_t i = 0; i < V; ++i)
            ref.p[std::size_t(n * V + i)] = float(std::exp(double(z[n * V + i]) - r.lse));
    }
    return ref;
}

void sizeLensSide(LensSide& ls, int64_t K, int64_t N) {
    const std::size_t KN = std::size_t(K * N);
    ls.top1.resize(KN);
    ls.p.resize(KN);
    ls.entropy.resize(KN);
    ls.klFinal.resize(KN);
    ls.klPrev.resize(KN);
}

// Loop t's (0-based) rows zt [N][V] of one lens into `ls`, rows across threads. prev: loop
// t-1's rows (null at t = 0); lse: each row's log-sum-exp, of loop t-1 in and of loop t out
// (KL to the previous loop needs it).
void addLensLoop(LensSide& ls, int64_t t, const float* zt, const float* prev, std::vector<double>& lse,
                 const LensReference& ref, int64_t N, int64_t V) {
    detail::forEachIndex(N, N * V >= (int64_t(1) << 16), [&](int64_t n, int) {
        const detail::LensRow r =
            detail::lensRow(zt + n * V, V, ref.p.data() + n * V, ref.z + n * V, ref.lse[std::size_t(n)],
                            prev ? prev + n * V : nullptr, lse[std::size_t(n)]);
        const std::size_t at = std::size_t(t * N + n);
        ls.top1[at] = r.top;
        ls.p[at] = r.pTop;
        ls.entropy[at] = float(r.entropy);
        ls.klFinal[at] = float(nonNegative(r.klRef));
        ls.klPrev[at] = prev ? float(nonNegative(r.klPrev)) : std::numeric_limits<float>::quiet_NaN();
        lse[std::size_t(n)] = r.lse;
    });
}

// For each of N rows, the first loop (1-based) from which its top-1 stays that of loop K;
// top: [K][N].
std::vector<int32_t> convergenceLoops(const std::vector<int32_t>& top, int64_t K, int64_t N) {
    std::vector<int32_t> out(static_cast<std::size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
        int64_t conv = K;
        while (conv > 1 && top[std::size_t((conv - 2) * N + n)] == top[std::size_t((K - 1) * N + n)])
            --conv;
        out[std::size_t(n)] = int32_t(conv);
    }
    return out;
}

} // namespace

void Model::lensInput(const DeepRun& run, bool act, int64_t t, float* dst) {
    if (act) {
        const std::vector<float> o = recurrentOutput(run, t, float(m_cfg.act_threshold), nullptr, nullptr, nullptr);
        std::copy(o.begin(), o.end(), dst);
    } else {
        const auto& h = run.h[std::size_t(t - 1)];
        std::copy(h.begin(), h.end(), dst);
    }
}

void Model::lensLogits(const std::vector<LensSlot>& slots, int64_t B, int64_t T, const std::atomic<bool>* cancel) {
    const int64_t D = m_cfg.dim, V = m_cfg.vocab_size, rowIn = T * D, rowOut = T * V;
    // Each slot's batch rows: an index into the pass, or -1 for a copy of sameLogits.
    std::vector<int64_t> source(slots.size() * std::size_t(B), -1);
    int64_t distinct = 0;
    for (std::size_t i = 0; i < slots.size(); ++i)
        for (int64_t b = 0; b < B; ++b) {
            const LensSlot& s = slots[i];
            const bool same =
                s.sameAs &&
                std::equal(s.x + b * rowIn, s.x + (b + 1) * rowIn, s.sameAs + b * rowIn,
                           [](float u, float w) { return std::bit_cast<uint32_t>(u) == std::bit_cast<uint32_t>(w); });
            if (!same)
                source[i * std::size_t(B) + std::size_t(b)] = distinct++;
        }
    std::vector<float> z;
    if (distinct > 0) {
        std::vector<float> x(std::size_t(distinct * rowIn));
        for (std::size_t i = 0; i < slots.size(); ++i)
            for (int64_t b = 0; b < B; ++b)
                if (const int64_t u = source[i * std::size_t(B) + std::size_t(b)]; u >= 0)
                    std::copy(slots[i].x + b * rowIn, slots[i].x + (b + 1) * rowIn, x.begin() + u * rowIn);
        z = finish(std::move(x), distinct, T, 0, nullptr, cancel, HeadRows::All);
    }
    // In slot order, so that a copy of an earlier slot's rows finds them written.
    for (std::size_t i = 0; i < slots.size(); ++i)
        for (int64_t b = 0; b < B; ++b) {
            const int64_t u = source[i * std::size_t(B) + std::size_t(b)];
            const float* from = u >= 0 ? z.data() + u * rowOut : slots[i].sameLogits + b * rowOut;
            std::copy(from, from + rowOut, slots[i].out + b * rowOut);
        }
}

LensRecord Model::lens(const DeepRun& run, int64_t K, bool keepLogits, const std::atomic<bool>* cancel) {
    return lensImpl(run, nullptr, K, keepLogits, cancel);
}

LensRecord Model::lens(DeepRun& run, int64_t K, bool keepLogits, const std::atomic<bool>* cancel) {
    return lensImpl(run, &run.lensRows, K, keepLogits, cancel);
}

LensRecord Model::lensImpl(const DeepRun& run, DeepRun::LensRows* keep, int64_t K, bool keepLogits,
                           const std::atomic<bool>* cancel) {
    const Config& c = m_cfg;
    if (K < 1 || K > run.depth)
        throw ArgumentError("lens: loop count " + std::to_string(K) + " is outside the deep run's 1.." +
                            std::to_string(run.depth));
    const int64_t B = run.batch, T = run.seqLen, N = B * T, D = c.dim, V = c.vocab_size;
    if (2 * K * N * V > kLensKeepFloats)
        return lensStreamed(run, K, keepLogits, cancel);
    // Rows kept by the deep run are valid for the intervention they were made under; loop t's
    // rows do not depend on K.
    DeepRun::LensRows local;
    DeepRun::LensRows& rows = keep && 2 * run.depth * N * V <= kLensKeepFloats ? *keep : local;
    if (rows.interventionVersion != m_impl->ivVersion) {
        rows = DeepRun::LensRows{};
        rows.interventionVersion = m_impl->ivVersion;
    }
    rows.act.resize(std::max<std::size_t>(rows.act.size(), std::size_t(K)));
    rows.state.resize(std::max<std::size_t>(rows.state.size(), std::size_t(K)));
    // The missing (side, loop) slots in loop order, each compared with its side's loop before
    // (kept or missing): one coda pass over the distinct batch rows.
    std::vector<LensSlot> slots;
    std::vector<std::vector<float>> inputs[2]; // [side][t], those needed
    for (int side = 0; side < 2; ++side) {
        auto& z = side == 0 ? rows.act : rows.state;
        inputs[side].resize(std::size_t(K + 1));
        auto input = [&](int64_t t) -> const float* {
            auto& in = inputs[side][std::size_t(t)];
            if (in.empty()) {
                in.resize(std::size_t(N * D));
                lensInput(run, side == 0, t, in.data());
            }
            return in.data();
        };
        for (int64_t t = 1; t <= K; ++t) {
            auto& dst = z[std::size_t(t - 1)];
            if (!dst.empty())
                continue;
            checkCancel(cancel);
            dst.resize(std::size_t(N * V));
            LensSlot slot;
            slot.x = input(t);
            if (t > 1) {
                slot.sameAs = input(t - 1);
                slot.sameLogits = z[std::size_t(t - 2)].data();
            }
            slot.out = dst.data();
            slots.push_back(slot);
        }
    }
    lensLogits(slots, B, T, cancel);

    // The model's output at K loops is the act lens at K.
    const LensReference ref = lensReference(rows.act[std::size_t(K - 1)].data(), N, V);
    LensRecord lr;
    lr.loops = K;
    for (int side = 0; side < 2; ++side) {
        LensSide& ls = side == 0 ? lr.act : lr.state;
        const auto& z = side == 0 ? rows.act : rows.state;
        sizeLensSide(ls, K, N);
        std::vector<double> lse(static_cast<std::size_t>(N));
        for (int64_t t = 0; t < K; ++t) {
            const float* zt = z[std::size_t(t)].data();
            addLensLoop(ls, t, zt, t > 0 ? z[std::size_t(t - 1)].data() : nullptr, lse, ref, N, V);
            if (keepLogits)
                ls.logits.insert(ls.logits.end(), zt, zt + N * V);
        }
        ls.convergence = convergenceLoops(ls.top1, K, N);
    }
    return lr;
}

LensRecord Model::lensStreamed(const DeepRun& run, int64_t K, bool keepLogits, const std::atomic<bool>* cancel) {
    const Config& c = m_cfg;
    const int64_t B = run.batch, T = run.seqLen, N = B * T, D = c.dim, V = c.vocab_size;
    LensRecord lr;
    lr.loops = K;

    // The model's output at K loops: the reference both lenses are compared with.
    std::vector<float> zFinal(static_cast<std::size_t>(N * D));
    lensInput(run, true, K, zFinal.data());
    zFinal = finish(std::move(zFinal), B, T, 0, nullptr, cancel, HeadRows::All);
    const LensReference ref = lensReference(zFinal.data(), N, V);

    // Loops per coda pass: stacked as extra batch rows (the coda attends within a row), at
    // most 2^24 logits at a time.
    const int64_t perPass =
        std::max<int64_t>(1, std::min<int64_t>(K, (int64_t(1) << 24) / std::max<int64_t>(1, N * V)));
    for (int side = 0; side < 2; ++side) {
        LensSide& ls = side == 0 ? lr.act : lr.state;
        sizeLensSide(ls, K, N);
        std::vector<float> xPrev, zPrev; // the last pass's last loop
        std::vector<double> lse(static_cast<std::size_t>(N));
        for (int64_t t0 = 0; t0 < K; t0 += perPass) {
            checkCancel(cancel);
            const int64_t nt = std::min(perPass, K - t0);
            std::vector<float> x(static_cast<std::size_t>(nt * N * D)), z(static_cast<std::size_t>(nt * N * V));
            std::vector<LensSlot> slots(static_cast<std::size_t>(nt));
            for (int64_t i = 0; i < nt; ++i) {
                LensSlot& slot = slots[std::size_t(i)];
                lensInput(run, side == 0, t0 + i + 1, x.data() + i * N * D);
                slot.x = x.data() + i * N * D;
                slot.out = z.data() + i * N * V;
                if (i > 0) {
                    slot.sameAs = slot.x - N * D;
                    slot.sameLogits = slot.out - N * V;
                } else if (t0 > 0) {
                    slot.sameAs = xPrev.data();
                    slot.sameLogits = zPrev.data();
                }
            }
            lensLogits(slots, B, T, cancel);
            for (int64_t i = 0; i < nt; ++i) {
                const int64_t t = t0 + i; // 0-based
                const float* zt = z.data() + i * N * V;
                // The previous loop's rows: in this pass, or kept from the last one.
                addLensLoop(ls, t, zt, t == 0 ? nullptr : i > 0 ? zt - N * V : zPrev.data(), lse, ref, N, V);
                if (keepLogits)
                    ls.logits.insert(ls.logits.end(), zt, zt + N * V);
            }
            xPrev.assign(x.end() - N * D, x.end());
            zPrev.assign(z.end() - N * V, z.end());
        }
        ls.convergence = convergenceLoops(ls.top1, K, N);
    }
    return lr;
}

std::vector<AttentionSite> Model::attention(const DeepRun& run, int64_t k, int64_t row,
                                            const std::function<bool(const AttentionSite&)>& want, int64_t from,
                                            int64_t to) {
    const Config& c = m_cfg;
    auto& im = *m_impl;
    if (k < 1 || k > run.depth)
        throw ArgumentError("attention: loop count " + std::to_string(k) + " is outside the deep run's 1.." +
                            std::to_string(run.depth));
    if (row < 0 || row >= run.batch)
        throw ArgumentError("attention: batch row " + std::to_string(row) + " is outside 0.." +
                            std::to_string(run.batch - 1));
    const int64_t T = run.seqLen, D = c.dim;
    if (to == 0)
        to = T;
    if (from < 0 || from >= to || to > T)
        throw ArgumentError("attention: window " + std::to_string(from) + ".." + std::to_string(to) +
                            " is outside the row's 0.." + std::to_string(T));
    auto ctx = im.ctx(c);
    std::vector<AttentionSite> out;
    detail::Scratch xn(T * D);
    // Records a site when wanted, from the block's input x (before its attn_norm).
    const auto site = [&](const std::string& name, const char* stage, int64_t layer, int64_t loop,
                          const detail::BlockWeights& w, const float* x) {
        AttentionSite s{name, stage, layer, loop, {}};
        if (want && !want(s))
            return;
        rmsNorm(x, w.attnNorm, xn.data(), T, D);
        s.probs = detail::attentionProbabilities(ctx, w.attn, xn.data(), T, from, to);
        out.push_back(std::move(s));
    };
    // Prelude: the row's embeddings through the prelude blocks.
    {
        const std::vector<int32_t> ids(run.ids.begin() + row * T, run.ids.begin() + (row + 1) * T);
        std::vector<float> x(static_cast<std::size_t>(T * D));
        for (int64_t n = 0; n < T; ++n)
            for (int64_t i = 0; i < D; ++i)
                x[std::size_t(n * D + i)] = im.embed.bf16 ? bf16ToFloat(im.embed.bf16[ids[std::size_t(n)] * D + i])
                                                          : im.embed.f32[ids[std::size_t(n)] * D + i];
        for (std::size_t i = 0; i < im.prelude.size(); ++i) {
            site("prelude_" + std::to_string(i), "prelude", int64_t(i), 0, im.prelude[i], x.data());
            if (i + 1 < im.prelude.size()) {
                ctx.zeroHeads = im.heads(c, AttnStage::Prelude, int64_t(i), 0);
                detail::blockForward(ctx, im.prelude[i], x.data(), 1, T, 0, nullptr, "", nullptr);
            }
        }
    }
    // Recurrent loops: RMSNorm(h_j + LIE(j) + e), h_0 = e.
    const Intervention* iv = im.active();
    const float* e = run.e.data() + row * T * D;
    std::vector<float> y(static_cast<std::size_t>(T * D));
    for (int64_t j = 0; j < k; ++j) {
        const float* h = (j == 0 ? run.e.data() : run.h[std::size_t(j - 1)].data()) + row * T * D;
        const int64_t lieIndex = j + (iv ? iv->loopShift : 0);
        const std::vector<float> lie = lieIndex >= 0 ? im.loopEmbedding(lieIndex, c.loopDim()) : std::vector<float>{};
        const int64_t lieW = std::min<int64_t>(int64_t(lie.size()), D);
        for (int64_t n = 0; n < T; ++n)
            for (int64_t i = 0; i < D; ++i) {
                const std::size_t at = std::size_t(n * D + i);
                y[at] = i < lieW ? (h[at] + lie[std::size_t(i)]) + e[at] : h[at] + e[at];
            }
        rmsNorm(y.data(), im.recNorm, y.data(), T, D);
        site("recurrent_loop_" + std::to_string(j), "recurrent", 0, j + 1, im.rec, y.data());
    }
    // Coda: the output at k loops through the coda blocks.
    if (!im.coda.empty()) {
        const std::vector<float> all = recurrentOutput(run, k, float(c.act_threshold), nullptr, nullptr, nullptr);
        std::vector<float> x(all.begin() + row * T * D, all.begin() + (row + 1) * T * D);
        for (std::size_t i = 0; i < im.coda.size(); ++i) {
            site("coda_" + std::to_string(i), "coda", int64_t(i), 0, im.coda[i], x.data());
            if (i + 1 < im.coda.size()) {
                ctx.zeroHeads = im.heads(c, AttnStage::Coda, int64_t(i), 0);
                detail::blockForward(ctx, im.coda[i], x.data(), 1, T, 0, nullptr, "", nullptr);
            }
        }
    }
    return out;
}

} // namespace mythos
