#include "mythos/kvcache.h"

#include "mythos/errors.h"

#include <limits>

#include "mythos/checked.h"

namespace mythos {

std::string kvLayoutName(KvLayout l) { return l == KvLayout::Reference ? "reference" : "compact"; }

KvLayout parseKvLayout(const std::string& s) {
    if (s == "reference")
        return KvLayout::Reference;
    if (s == "compact")
        return KvLayout::Compact;
    throw ArgumentError("unknown KV layout '" + s + "' (use reference or compact)");
}

int64_t kvBytesPerPosition(const Config& cfg, KvLayout layout) {
    constexpr int64_t f = sizeof(float);
    if (cfg.isMla()) {
        const int64_t copies = layout == KvLayout::Reference ? cfg.n_heads : 1;
        return requireBoundedProduct({f, cfg.kv_lora_rank + copies * cfg.qk_rope_head_dim},
                                     std::numeric_limits<int64_t>::max(), "KV bytes per position");
    }
    return requireBoundedProduct({f, 2, cfg.n_kv_heads, cfg.headDim()}, std::numeric_limits<int64_t>::max(),
                                 "KV bytes per position");
}

std::vector<KvTensorShape> kvReferenceTensors(const Config& cfg, int64_t batch, int64_t positions) {
    constexpr int64_t f = sizeof(float);
    constexpr int64_t any = std::numeric_limits<int64_t>::max();
    if (cfg.isMla())
        return {{"c_kv",
                 {batch, positions, cfg.kv_lora_rank},
                 requireBoundedProduct({f, batch, positions, cfg.kv_lora_rank}, any, "KV cache c_kv bytes")},
                {"k_rope",
                 {batch, positions, cfg.n_heads, cfg.qk_rope_head_dim},
                 requireBoundedProduct({f, batch, positions, cfg.n_heads, cfg.qk_rope_head_dim}, any,
                                       "KV cache k_rope bytes")}};
    const int64_t n =
        requireBoundedProduct({f, batch, positions, cfg.n_kv_heads, cfg.headDim()}, any, "KV cache k/v bytes");
    return {{"k", {batch, positions, cfg.n_kv_heads, cfg.headDim()}, n},
            {"v", {batch, positions, cfg.n_kv_heads, cfg.headDim()}, n}};
}

namespace {
KvLedgerEntry ledgerEntry(const Config& cfg, const std::string& key, int64_t batch, int64_t positions,
                          KvLayout layout) {
    KvLedgerEntry e;
    e.key = key;
    e.positions = positions;
    e.reference = kvReferenceTensors(cfg, batch, positions);
    Checked ref;
    for (const auto& t : e.reference)
        ref += t.bytes;
    if (ref.overflow())
        throw ArgumentError("KV cache entry bytes do not fit in 64 bits");
    e.referenceBytes = ref.value();
    e.engineBytes = requireBoundedProduct({batch, positions, kvBytesPerPosition(cfg, layout)},
                                          std::numeric_limits<int64_t>::max(), "KV cache entry bytes");
    return e;
}

void addEntry(KvLedger& l, KvLedgerEntry e) {
    const Checked ref = Checked(l.referenceBytes) + Checked(e.referenceBytes);
    const Checked eng = Checked(l.engineBytes) + Checked(e.engineBytes);
    if (ref.overflow() || eng.overflow())
        throw ArgumentError("the KV cache's total bytes do not fit in 64 bits");
    l.referenceBytes = ref.value();
    l.engineBytes = eng.value();
    l.entries.push_back(std::move(e));
}
} // namespace

KvLedger kvLedgerFor(const Config& cfg, int64_t batch, int64_t positions, int64_t nLoops, KvLayout layout) {
    requireLoopCount(nLoops, "the KV ledger's loop count");
    KvLedger l;
    l.engineLayout = kvLayoutName(layout);
    l.batch = batch;
    for (int64_t i = 0; i < cfg.prelude_layers; ++i)
        addEntry(l, ledgerEntry(cfg, "prelude_" + std::to_string(i), batch, positions, layout));
    for (int64_t t = 0; t < nLoops; ++t)
        addEntry(l, ledgerEntry(cfg, "recurrent_loop_" + std::to_string(t), batch, positions, layout));
    for (int64_t i = 0; i < cfg.coda_layers; ++i)
        addEntry(l, ledgerEntry(cfg, "coda_" + std::to_string(i), batch, positions, layout));
    return l;
}

KvCache::KvCache(const Config& cfg, int64_t batch, KvLayout layout)
    : m_cfg(cfg), m_batch(batch), m_layout(layout),
      m_ropeCopies(cfg.isMla() && layout == KvLayout::Reference ? cfg.n_heads : 1) {
    if (batch < 1)
        throw ArgumentError("KV cache batch must be >= 1");
}

KvEntry* KvCache::find(const std::string& key) {
    for (auto& e : m_entries)
        if (e.key == key)
            return &e;
    return nullptr;
}

KvEntry& KvCache::getOrCreate(const std::string& key) {
    if (KvEntry* e = find(key))
        return *e;
    m_entries.push_back(KvEntry{key, 0, 0, 0, {}, {}});
    return m_entries.back();
}

KvLedger KvCache::ledger() const {
    KvLedger l;
    l.engineLayout = kvLayoutName(m_layout);
    l.batch = m_batch;
    for (const auto& e : m_entries) {
        KvLedgerEntry le = ledgerEntry(m_cfg, e.key, m_batch, e.length, m_layout);
        int64_t bytes = 0;
        for (std::size_t b = 0; b < e.a.size(); ++b)
            bytes += int64_t((e.a[b].size() + e.b[b].size()) * sizeof(float));
        le.engineBytes = bytes;
        addEntry(l, std::move(le));
    }
    return l;
}

int64_t KvCache::engineBytes() const { return ledger().engineBytes; }

} // namespace mythos
