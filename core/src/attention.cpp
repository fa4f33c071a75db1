// GQA and MLA attention with RoPE, causal masking and the KV cache.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "layers.h"
#include "mythos/errors.h"

namespace mythos::detail {

namespace {

KvEntry& cacheEntry(KvCache& cache, const std::string& key, int64_t B, int64_t widthA, int64_t widthB) {
    if (cache.batch() != B)
        throw ArgumentError("KV cache holds " + std::to_string(cache.batch()) + " batch rows, the input has " +
                            std::to_string(B));
    KvEntry& e = cache.getOrCreate(key);
    if (e.a.empty()) {
        e.widthA = widthA;
        e.widthB = widthB;
        e.a.resize(std::size_t(B));
        e.b.resize(std::size_t(B));
    }
    return e;
}

// Appends T rows of width w (rows `stride` floats apart) for batch row b.
void appendRows(std::vector<float>& dst, const float* src, int64_t T, int64_t w, int64_t stride) {
    const std::size_t old = dst.size();
    dst.resize(old + std::size_t(T * w));
    for (int64_t t = 0; t < T; ++t)
        std::memcpy(dst.data() + old + t * w, src + t * stride, std::size_t(w) * sizeof(float));
}

// Heads run across the thread team only when there is enough work to pay for waking it:
// at least 2^21 multiply-adds over all heads (`pairMacs` per query-key pair: the score's and
// the value's widths). Measured (bench/NOTES.md): 64-token prefills of tiny_mla (0.8 M) and
// readme_mla (1.6 M) ran 10-30% faster with their heads on one thread; readme_gqa's (2.1 M)
// was as fast either way, and at 127 tokens (8.3 M) faster across two.
constexpr int64_t kParallelAttnMacs = int64_t(1) << 21;
bool parallelHeads(int64_t B, int64_t H, int64_t T, int64_t S, int64_t pairMacs) {
    return B * H * T * S * pairMacs >= kParallelAttnMacs;
}

// Head ablation: head h's slice of the input of wo, [N][H][width], set to 0.
void zeroAblatedHeads(const Ctx& ctx, float* out, int64_t N, int64_t H, int64_t width) {
    if (!ctx.zeroHeads)
        return;
    for (int64_t h = 0; h < H; ++h)
        if ((*ctx.zeroHeads)[std::size_t(h)])
            for (int64_t n = 0; n < N; ++n)
                std::fill_n(out + (n * H + h) * width, width, 0.0f);
}

// q [N][H][d] and k [N][Hkv][d] with RoPE, v [N][Hkv][d] of GQA.
void gqaProject(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t N, int64_t T, int64_t startPos, float* q,
                float* k, float* v) {
    const Config& c = ctx.cfg;
    const int64_t D = c.dim, H = c.n_heads, Hkv = c.n_kv_heads, d = c.headDim(), kvw = Hkv * d;
    ctx.mm.linearGroup(xn, N, D, {{w.wq, H * d, q}, {w.wk, kvw, k}, {w.wv, kvw, v}});
    for (int64_t n = 0; n < N; ++n) {
        const int64_t pos = startPos + n % T;
        for (int64_t h = 0; h < H; ++h)
            ctx.rope.apply(q + (n * H + h) * d, pos);
        for (int64_t h = 0; h < Hkv; ++h)
            ctx.rope.apply(k + (n * Hkv + h) * d, pos);
    }
}

// MLA's queries (nope [N][H][nope], rope [N][H][rope] with RoPE), raw latent+rope-key rows
// kvRaw [N][r + rope] and the rope keys kr [N][rope] with RoPE.
void mlaProject(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t N, int64_t T, int64_t startPos, float* qn,
                float* qp, float* kvRaw, float* kr) {
    const Config& c = ctx.cfg;
    const int64_t D = c.dim, H = c.n_heads, qr = c.q_lora_rank, r = c.kv_lora_rank;
    const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim;
    Scratch cq(N * qr);
    ctx.mm.linearGroup(xn, N, D, {{w.qDown, qr, cq.data()}, {w.kvDown, r + rope, kvRaw}});
    rmsNorm(cq.data(), w.qNorm, cq.data(), N, qr);
    ctx.mm.linearGroup(cq.data(), N, qr, {{w.qUpNope, H * nope, qn}, {w.qUpRope, H * rope, qp}});
    for (int64_t n = 0; n < N; ++n) {
        const int64_t pos = startPos + n % T;
        for (int64_t h = 0; h < H; ++h)
            ctx.rope.apply(qp + (n * H + h) * rope, pos);
        std::memcpy(kr + n * rope, kvRaw + n * (r + rope) + r, std::size_t(rope) * sizeof(float));
        ctx.rope.apply(kr + n * rope, pos);
    }
}

void gqaForward(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t B, int64_t T, int64_t startPos, KvCache* cache,
                const std::string& key, float* x) {
    const Config& c = ctx.cfg;
    const int64_t D = c.dim, H = c.n_heads, Hkv = c.n_kv_heads, d = c.headDim(), N = B * T;
    const int64_t groups = H / Hkv, kvw = Hkv * d;
    Scratch q(N * H * d), k(N * kvw), v(N * kvw);
    gqaProject(ctx, w, xn, N, T, startPos, q.data(), k.data(), v.data());

    KvEntry* entry = nullptr;
    if (cache) {
        entry = &cacheEntry(*cache, key, B, kvw, kvw);
        for (int64_t b = 0; b < B; ++b) {
            appendRows(entry->a[std::size_t(b)], k.data() + b * T * kvw, T, kvw, kvw);
            appendRows(entry->b[std::size_t(b)], v.data() + b * T * kvw, T, kvw, kvw);
        }
        entry->length += T;
    }
    const int64_t S = entry ? entry->length : T;
    const float scale = float(std::pow(double(d), -0.5));

    Scratch out(N * H * d);
    if (T == 1 && groups > 1) { // decode: each KV head's keys and values read once for its group
        for (int64_t b = 0; b < B; ++b)
            for (int64_t kh = 0; kh < Hkv; ++kh) {
                const float* K = entry ? entry->a[std::size_t(b)].data() : k.data() + b * kvw;
                const float* V = entry ? entry->b[std::size_t(b)].data() : v.data() + b * kvw;
                const int64_t h0 = kh * groups;
                attendSharedKv({q.data() + (b * H + h0) * d, d, nullptr, 0}, groups,
                               {K + kh * d, kvw, d, nullptr, 0, 0}, {V + kh * d, kvw, d}, S, scale,
                               out.data() + (b * H + h0) * d, d);
            }
    } else {
        forEachIndex(B * H, parallelHeads(B, H, T, S, 2 * d), [&](int64_t bh, int) {
            const int64_t b = bh / H, h = bh % H;
            const float* K = entry ? entry->a[std::size_t(b)].data() : k.data() + b * T * kvw;
            const float* V = entry ? entry->b[std::size_t(b)].data() : v.data() + b * T * kvw;
            const int64_t kh = h / groups;
            const AttendQuery qs{q.data() + (b * T * H + h) * d, H * d, nullptr, 0};
            const AttendKeys ks{K + kh * d, kvw, d, nullptr, 0, 0};
            const AttendValues vs{V + kh * d, kvw, d};
            attendHead(qs, T, ks, vs, S, scale, out.data() + (b * T * H + h) * d, H * d);
        });
    }
    zeroAblatedHeads(ctx, out.data(), N, H, d);
    ctx.mm.linear(out.data(), N, H * d, w.wo, D, x, true);
}

// At most this many query rows (decode steps) take MLA's absorbed form.
constexpr int64_t kAbsorbedRows = 4;

// MLA attention with kv_up absorbed into the query and the output (DeepSeek-V2's inference
// form): per head, q'_h = W_k,h^T q_nope,h scores against the normalised latents c_j
// directly, and o_h = W_v,h sum_j p_j c_j. The same sums as up-projecting every cached
// latent, regrouped: a decode step then costs O(S * rank) per head instead of
// O(S * rank * n_heads * (nope + v)) for the up-projection.
void mlaAbsorbed(Ctx& ctx, const AttnWeights& w, const float* qn, const float* qp, const float* latent,
                 const KvEntry* entry, const float* kr, int64_t copies, int64_t B, int64_t T, int64_t S, float scale,
                 float* out) {
    const Config& c = ctx.cfg;
    const int64_t H = c.n_heads, N = B * T, r = c.kv_lora_rank, nope = c.qk_nope_head_dim;
    const int64_t rope = c.qk_rope_head_dim, vd = c.v_head_dim, headRows = nope + vd;
    Scratch qa(N * H * r), lat(N * H * r);
    for (int64_t h = 0; h < H; ++h) // q'_h = q_nope,h W_k,h: W_k,h is rows [h*(nope+v), +nope) of kv_up, [nope][r]
        ctx.mm.matmulKNStrided(qn + h * nope, N, nope, H * nope, w.kvUp.rowsFrom(h * headRows, r), r, qa.data() + h * r,
                               H * r);
    for (int64_t b = 0; b < B; ++b) {
        const float* R = entry ? entry->b[std::size_t(b)].data() : kr + b * T * rope;
        const float* C = latent + b * S * r;
        if (T == 1) {
            // A decode step: every head scores the same latents and rope keys (the reference
            // layout's per-head copies of the rope key are equal), so they attend in one pass.
            attendSharedKv({qa.data() + b * H * r, r, qp + b * H * rope, rope}, H, {C, r, r, R, copies * rope, rope},
                           {C, r, r}, S, scale, lat.data() + b * H * r, r);
            continue;
        }
        for (int64_t h = 0; h < H; ++h) {
            const AttendQuery qs{qa.data() + (b * T * H + h) * r, H * r, qp + (b * T * H + h) * rope, H * rope};
            const AttendKeys ks{C, r, r, R + (copies > 1 ? h * rope : 0), copies * rope, rope};
            const AttendValues vs{C, r, r};
            attendHead(qs, T, ks, vs, S, scale, lat.data() + (b * T * H + h) * r, H * r);
        }
    }
    for (int64_t h = 0; h < H; ++h) // o_h = W_v,h lat_h: W_v,h is rows [h*(nope+v)+nope, +v) of kv_up, [v][r]
        ctx.mm.linearStrided(lat.data() + h * r, N, r, H * r, w.kvUp.rowsFrom(h * headRows + nope, r), vd, out + h * vd,
                             H * vd);
}

void mlaForward(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t B, int64_t T, int64_t startPos, KvCache* cache,
                const std::string& key, float* x) {
    const Config& c = ctx.cfg;
    const int64_t D = c.dim, H = c.n_heads, N = B * T;
    const int64_t r = c.kv_lora_rank, nope = c.qk_nope_head_dim;
    const int64_t rope = c.qk_rope_head_dim, vd = c.v_head_dim, kvUpW = H * (nope + vd);

    Scratch kvRaw(N * (r + rope)), qn(N * H * nope), qp(N * H * rope), kr(N * rope);
    mlaProject(ctx, w, xn, N, T, startPos, qn.data(), qp.data(), kvRaw.data(), kr.data());

    // Latents and rope keys of every visible position, per batch row.
    KvEntry* entry = nullptr;
    int64_t copies = 1;
    std::vector<float> localC, localR;
    if (cache) {
        copies = cache->ropeCopies();
        entry = &cacheEntry(*cache, key, B, r, copies * rope);
        for (int64_t b = 0; b < B; ++b) {
            appendRows(entry->a[std::size_t(b)], kvRaw.data() + b * T * (r + rope), T, r, r + rope);
            auto& dst = entry->b[std::size_t(b)];
            for (int64_t t = 0; t < T; ++t)
                for (int64_t cpy = 0; cpy < copies; ++cpy)
                    dst.insert(dst.end(), kr.data() + (b * T + t) * rope, kr.data() + (b * T + t + 1) * rope);
        }
        entry->length += T;
    } else {
        localC.resize(std::size_t(N * r));
        for (int64_t n = 0; n < N; ++n)
            std::memcpy(localC.data() + n * r, kvRaw.data() + n * (r + rope), std::size_t(r) * sizeof(float));
    }
    const int64_t S = entry ? entry->length : T;

    // The normalised latent of every visible position.
    Scratch latent(B * S * r);
    for (int64_t b = 0; b < B; ++b) {
        const float* src = entry ? entry->a[std::size_t(b)].data() : localC.data() + b * T * r;
        rmsNorm(src, w.kvNorm, latent.data() + b * S * r, S, r);
    }
    const float scale = float(std::pow(double(nope + rope), -0.5));
    Scratch out(N * H * vd);
    if (N <= kAbsorbedRows) {
        mlaAbsorbed(ctx, w, qn.data(), qp.data(), latent.data(), entry, kr.data(), copies, B, T, S, scale, out.data());
    } else {
        // K_nope and V of every visible position, up-projected from the latent.
        Scratch kv(B * S * kvUpW);
        ctx.mm.linear(latent.data(), B * S, r, w.kvUp, kvUpW, kv.data());
        forEachIndex(B * H, parallelHeads(B, H, T, S, nope + rope + vd), [&](int64_t bh, int) {
            const int64_t b = bh / H, h = bh % H;
            const float* KV = kv.data() + b * S * kvUpW + h * (nope + vd);
            const float* R = entry ? entry->b[std::size_t(b)].data() : kr.data() + b * T * rope;
            const int64_t ropeOff = copies > 1 ? h * rope : 0;
            const AttendQuery qs{qn.data() + (b * T * H + h) * nope, H * nope, qp.data() + (b * T * H + h) * rope,
                                 H * rope};
            const AttendKeys ks{KV, kvUpW, nope, R + ropeOff, copies * rope, rope};
            const AttendValues vs{KV + nope, kvUpW, vd};
            attendHead(qs, T, ks, vs, S, scale, out.data() + (b * T * H + h) * vd, H * vd);
        });
    }
    zeroAblatedHeads(ctx, out.data(), N, H, vd);
    ctx.mm.linear(out.data(), N, H * vd, w.wo, D, x, true);
}

// Row-wise causal softmax of scores [T][T] in place (entries above the diagonal become 0).
void causalSoftmax(float* s, int64_t T) {
    for (int64_t i = 0; i < T; ++i) {
        float* row = s + i * T;
        softmaxInPlace(row, i + 1);
        std::fill(row + i + 1, row + T, 0.0f);
    }
}

} // namespace

std::vector<float> attentionProbabilities(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t T) {
    const Config& c = ctx.cfg;
    const int64_t H = c.n_heads;
    std::vector<float> probs(std::size_t(H * T * T));
    if (!c.isMla()) {
        const int64_t Hkv = c.n_kv_heads, d = c.headDim(), groups = H / Hkv;
        Scratch q(T * H * d), k(T * Hkv * d), v(T * Hkv * d);
        gqaProject(ctx, w, xn, T, T, 0, q.data(), k.data(), v.data());
        const double scale = std::pow(double(d), -0.5);
        for (int64_t h = 0; h < H; ++h) {
            float* s = probs.data() + h * T * T;
            for (int64_t i = 0; i < T; ++i)
                for (int64_t j = 0; j <= i; ++j) {
                    const float* qi = q.data() + (i * H + h) * d;
                    const float* kj = k.data() + (j * Hkv + h / groups) * d;
                    float dot = 0;
                    for (int64_t x = 0; x < d; ++x)
                        dot += qi[x] * kj[x];
                    s[i * T + j] = float(dot * scale);
                }
            causalSoftmax(s, T);
        }
        return probs;
    }
    const int64_t r = c.kv_lora_rank, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, vd = c.v_head_dim;
    const int64_t kvUpW = H * (nope + vd);
    Scratch kvRaw(T * (r + rope)), qn(T * H * nope), qp(T * H * rope), kr(T * rope);
    mlaProject(ctx, w, xn, T, T, 0, qn.data(), qp.data(), kvRaw.data(), kr.data());
    Scratch latent(T * r), kv(T * kvUpW);
    for (int64_t t = 0; t < T; ++t)
        rmsNorm(kvRaw.data() + t * (r + rope), w.kvNorm, latent.data() + t * r, 1, r);
    ctx.mm.linear(latent.data(), T, r, w.kvUp, kvUpW, kv.data());
    const double scale = std::pow(double(nope + rope), -0.5);
    for (int64_t h = 0; h < H; ++h) {
        float* s = probs.data() + h * T * T;
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j <= i; ++j) {
                const float* qa = qn.data() + (i * H + h) * nope;
                const float* ka = kv.data() + j * kvUpW + h * (nope + vd);
                const float* qb = qp.data() + (i * H + h) * rope;
                const float* kb = kr.data() + j * rope;
                float dot = 0;
                for (int64_t x = 0; x < nope; ++x)
                    dot += qa[x] * ka[x];
                for (int64_t x = 0; x < rope; ++x)
                    dot += qb[x] * kb[x];
                s[i * T + j] = float(dot * scale);
            }
        causalSoftmax(s, T);
    }
    return probs;
}

void attentionForward(Ctx& ctx, const AttnWeights& w, const float* xn, int64_t B, int64_t T, int64_t startPos,
                      KvCache* cache, const std::string& key, float* x) {
    if (ctx.cfg.isMla())
        mlaForward(ctx, w, xn, B, T, startPos, cache, key, x);
    else
        gqaForward(ctx, w, xn, B, T, startPos, cache, key, x);
}

} // namespace mythos::detail
