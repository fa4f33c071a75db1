#include "spin_team.h"

#include <chrono>
#include <exception>

#include <immintrin.h>
#include <omp.h>

namespace mythos::detail {

namespace {
// How long an idle worker spins before it sleeps: far longer than the gaps between the
// products of a decode step (microseconds), short enough that an idle program stops
// burning its cores at once.
constexpr auto kSpin = std::chrono::microseconds(200);
constexpr uint64_t kFieldMask = 0xFFFF;

inline void relax() { _mm_pause(); }
} // namespace

SpinTeam& SpinTeam::instance() {
    static SpinTeam team;
    return team;
}

SpinTeam::~SpinTeam() { stopWorkers(); }

void SpinTeam::setThreads(int n) { m_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

int64_t SpinTeam::claim(uint32_t gen) {
    uint64_t t = m_ticket.load(std::memory_order_acquire);
    for (;;) {
        if (uint32_t(t >> 32) != gen)
            return -1;
        const uint64_t parts = (t >> 16) & kFieldMask, next = t & kFieldMask;
        if (next >= parts)
            return -1;
        if (m_ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire))
            return int64_t(next);
    }
}

bool SpinTeam::dispatch(int64_t parts, Fn fn, const void* body) {
    if (parts <= 0)
        return true;
    const int nThreads = threads();
    if (nThreads <= 1 || parts > kMaxParts)
        return false;
    bool expected = false;
    if (!m_busy.compare_exchange_strong(expected, true, std::memory_order_acquire))
        return false;
    if (int(m_workers.size()) != nThreads - 1) {
        stopWorkers();
        startWorkers(nThreads - 1);
    }

    m_fn = fn;
    m_body = body;
    m_error = nullptr;
    m_finished.store(0, std::memory_order_relaxed);
    const uint32_t gen = uint32_t(m_ticket.load(std::memory_order_relaxed) >> 32) + 1;
    // seq_cst, like the sleepers count below and a sleeping worker's two steps: either it
    // sees this ticket before it sleeps, or this thread sees it asleep and wakes it.
    m_ticket.store(uint64_t(gen) << 32 | uint64_t(parts) << 16);
    if (m_sleepers.load() > 0) {
        std::lock_guard lock(m_mutex);
        m_wake.notify_all();
    }

    int64_t mine = 0;
    std::exception_ptr error;
    for (int64_t p; (p = claim(gen)) >= 0; ++mine) {
        try {
            fn(body, p, 0);
        } catch (...) {
            if (!error)
                error = std::current_exception();
        }
    }
    // Every part is claimed now; wait for the ones the workers took.
    while (m_finished.load(std::memory_order_acquire) < parts - mine)
        relax();
    if (!error)
        error = m_error;
    m_busy.store(false, std::memory_order_release);
    if (error)
        std::rethrow_exception(error);
    return true;
}

void SpinTeam::work(int thread, uint32_t seen) {
    // OpenMP (oneDNN's kernels) inside a part stays on this thread: the team is the
    // parallelism here.
    omp_set_num_threads(1);
    for (;;) {
        auto spinStart = std::chrono::steady_clock::now();
        unsigned spins = 0;
        uint64_t t;
        while (uint32_t((t = m_ticket.load(std::memory_order_acquire)) >> 32) == seen) {
            if (m_stop.load(std::memory_order_relaxed))
                return;
            relax();
            if (++spins % 1024 == 0 && std::chrono::steady_clock::now() - spinStart > kSpin) {
                std::unique_lock lock(m_mutex);
                m_sleepers.fetch_add(1);
                m_wake.wait(lock, [&] { return m_stop.load() || uint32_t(m_ticket.load() >> 32) != seen; });
                m_sleepers.fetch_sub(1);
                spinStart = std::chrono::steady_clock::now();
            }
        }
        if (m_stop.load(std::memory_order_relaxed))
            return;
        seen = uint32_t(t >> 32);
        // A claimed part keeps the job (m_fn, m_body) alive until it is counted finished.
        for (int64_t p; (p = claim(seen)) >= 0;) {
            try {
                m_fn(m_body, p, thread);
            } catch (...) {
                std::lock_guard lock(m_mutex);
                if (!m_error)
                    m_error = std::current_exception();
            }
            m_finished.fetch_add(1, std::memory_order_release);
        }
    }
}

void SpinTeam::startWorkers(int n) {
    std::lock_guard lock(m_mutex);
    m_stop.store(false);
    // The last job a worker has seen is the one before now: the job about to be published
    // may come before the thread first looks.
    const uint32_t seen = uint32_t(m_ticket.load() >> 32);
    for (int i = 1; i <= n; ++i)
        m_workers.emplace_back([this, i, seen] { work(i, seen); });
}

void SpinTeam::stopWorkers() {
    {
        std::lock_guard lock(m_mutex);
        m_stop.store(true);
        m_wake.notify_all();
    }
    for (auto& w : m_workers)
        w.join();
    m_workers.clear();
}

} // namespace mythos::detail
