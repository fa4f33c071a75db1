// The per-thread pool behind detail::Scratch (layers.h).
#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

#include "layers.h"

namespace mythos::detail {

namespace {

struct Block {
    float* p;
    std::size_t capacity; // floats
};

// Free blocks of this thread, at most kMaxBlocks: a forward holds a handful at once, the
// nested ops' included, so the pool settles at that many. Freed with the thread.
struct Pool {
    static constexpr std::size_t kMaxBlocks = 32;
    std::vector<Block> free;
    ~Pool() {
        for (const auto& b : free)
            std::free(b.p);
    }
};

Pool& pool() {
    thread_local Pool p;
    return p;
}

} // namespace

Scratch::Scratch(int64_t n) {
    const std::size_t want = std::size_t(std::max<int64_t>(n, 1));
    auto& fl = pool().free;
    // The smallest free block that fits (the pool is a few dozen blocks at most).
    std::size_t best = fl.size();
    for (std::size_t i = 0; i < fl.size(); ++i)
        if (fl[i].capacity >= want && (best == fl.size() || fl[i].capacity < fl[best].capacity))
            best = i;
    if (best < fl.size()) {
        m_p = fl[best].p;
        m_capacity = fl[best].capacity;
        fl[best] = fl.back();
        fl.pop_back();
        return;
    }
    // Rounded up so that slightly larger requests of the next call reuse the block.
    m_capacity = (want + 1023) / 1024 * 1024;
    m_p = static_cast<float*>(std::aligned_alloc(64, m_capacity * sizeof(float)));
    if (!m_p)
        throw std::bad_alloc();
}

Scratch::~Scratch() {
    auto& fl = pool().free;
    if (m_capacity * sizeof(float) > kScratchKeepBytes) {
        std::free(m_p);
        return;
    }
    if (fl.size() >= Pool::kMaxBlocks) { // keep the larger blocks
        auto smallest = std::min_element(fl.begin(), fl.end(),
                                         [](const Block& a, const Block& b) { return a.capacity < b.capacity; });
        if (smallest->capacity >= m_capacity) {
            std::free(m_p);
            return;
        }
        std::free(smallest->p);
        *smallest = {m_p, m_capacity};
        return;
    }
    fl.push_back({m_p, m_capacity});
}

} // namespace mythos::detail
