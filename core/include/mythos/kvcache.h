#pragma once
// The KV cache and its byte accounting. Entries are keyed like the reference's cache dict
// (`prelude_<i>`, `recurrent_loop_<t>`, `coda_<i>`) and kept in insertion order.
//
// Layouts:
//  - reference: what the PyTorch reference stores. GQA: k and v (B, S, n_kv_heads, head_dim).
//    MLA: c_kv (B, S, kv_lora_rank) and k_rope (B, S, n_heads, qk_rope_head_dim), the one
//    shared rope key copied to every head.
//  - compact: the same, but MLA's rope key is stored once per position (B, S, rope):
//    identical numbers, less memory. GQA is unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include "mythos/config.h"

namespace mythos {

enum class KvLayout { Reference, Compact };
std::string kvLayoutName(KvLayout l);
KvLayout parseKvLayout(const std::string& s); // ArgumentError for an unknown name

struct KvTensorShape {
    std::string name;           // "k", "v", "c_kv", "k_rope"
    std::vector<int64_t> shape; // (B, S, ...)
    int64_t bytes = 0;
};

struct KvLedgerEntry {
    std::string key;
    int64_t positions = 0;
    std::vector<KvTensorShape> reference; // the reference's tensors for this entry
    int64_t referenceBytes = 0;
    int64_t engineBytes = 0; // in the engine's layout
};

struct KvLedger {
    std::string engineLayout; // "reference" or "compact"
    int64_t batch = 0;
    std::vector<KvLedgerEntry> entries;
    int64_t referenceBytes = 0;
    int64_t engineBytes = 0;
};

// Bytes one cached position costs in one cache entry (one layer or one loop).
int64_t kvBytesPerPosition(const Config& cfg, KvLayout layout);
// The reference's tensors of one entry holding `positions` positions of `batch` rows.
std::vector<KvTensorShape> kvReferenceTensors(const Config& cfg, int64_t batch, int64_t positions);
// Ledger of a cache filled by prefill/decoding `positions` positions at `nLoops` loops
// (entries prelude_i, recurrent_loop_t, coda_i), without allocating anything.
KvLedger kvLedgerFor(const Config& cfg, int64_t batch, int64_t positions, int64_t nLoops, KvLayout layout);

struct KvEntry {
    std::string key;
    int64_t length = 0;                // cached positions (same for every batch row)
    int64_t widthA = 0, widthB = 0;    // floats per position: GQA k / v; MLA c_kv / k_rope
    std::vector<std::vector<float>> a; // per batch row, length * widthA
    std::vector<std::vector<float>> b; // per batch row, length * widthB
};

class KvCache {
public:
    KvCache(const Config& cfg, int64_t batch, KvLayout layout);

    int64_t batch() const { return m_batch; }
    KvLayout layout() const { return m_layout; }
    const std::vector<KvEntry>& entries() const { return m_entries; }
    KvEntry* find(const std::string& key);
    KvEntry& getOrCreate(const std::string& key); // appended at the end when new
    void clear() { m_entries.clear(); }

    KvLedger ledger() const;
    int64_t engineBytes() const;

    // MLA: how many copies of the rope key each position stores (n_heads or 1).
    int64_t ropeCopies() const { return m_ropeCopies; }

private:
    Config m_cfg;
    int64_t m_batch;
    KvLayout m_layout;
    int64_t m_ropeCopies;
    std::vector<KvEntry> m_entries;
};

} // namespace mythos
