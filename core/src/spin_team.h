#pragma once
// The engine's threads: a team of persistent workers that the model's loops (attention
// heads, MoE experts) and its products (split by weight rows or columns) are spread over.
//
// A decode step is dozens of matrix-vector products of a few microseconds each, bound by one
// core's cache bandwidth, so a second core streaming half of the weights would nearly halve
// them, but waking and joining an OpenMP team costs more than that; and an OpenMP team's
// threads spin for milliseconds after each region, taking the second core from whatever
// runs next. Here the workers spin on one atomic word for a short while after their last
// piece of work, so the parts of one step reach them in about a microsecond (the measured
// round trip between the two cores of this machine is 0.6 us), then sleep on a condition
// variable, so an idle program burns no CPU.
//
// Parts are claimed one at a time from a shared ticket, the caller included, and the caller
// waits only for parts that were claimed: a worker that arrives late, or is asleep, costs
// nothing but the parts it did not take. One caller at a time: a second caller, or a nested
// call from inside a part, gets `false` and runs its loop itself.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace mythos::detail {

class SpinTeam {
public:
    // The process's team; its size follows setNumThreads (the caller counts as one thread).
    static SpinTeam& instance();

    SpinTeam() = default;
    ~SpinTeam();
    SpinTeam(const SpinTeam&) = delete;
    SpinTeam& operator=(const SpinTeam&) = delete;

    // Threads a run spreads over, the caller included (1: no workers). Workers start at the
    // first run that needs them; shrinking stops the extra ones.
    void setThreads(int n);
    int threads() const { return m_threads.load(std::memory_order_relaxed); }

    // body(part, thread) for every part in [0, parts), thread 0 being the caller; returns
    // once all are done. Returns false without running anything when the team has one
    // thread, is in use (another caller, or a call from inside a part) or parts exceeds
    // kMaxParts: the caller then runs the loop itself.
    template <typename Body>
    bool tryRun(int64_t parts, const Body& body) {
        return dispatch(
            parts, [](const void* b, int64_t part, int thread) { (*static_cast<const Body*>(b))(part, thread); },
            &body);
    }

    static constexpr int64_t kMaxParts = 0xFFFF;

private:
    using Fn = void (*)(const void*, int64_t, int);
    bool dispatch(int64_t parts, Fn fn, const void* body);
    void work(int thread, uint32_t seen);
    // Claims the next part of job `gen` from the ticket; -1 once none is left (or the job
    // is over).
    int64_t claim(uint32_t gen);
    void startWorkers(int n);
    void stopWorkers();

    // The ticket: job generation (high 32 bits), parts (next 16), next part (low 16).
    alignas(64) std::atomic<uint64_t> m_ticket{0};
    alignas(64) std::atomic<int64_t> m_finished{0}; // parts of the current job done
    alignas(64) std::atomic<bool> m_busy{false};
    std::atomic<int> m_threads{1};
    std::atomic<int> m_sleepers{0};
    std::atomic<bool> m_stop{false};
    // The current job, written before its ticket is published.
    Fn m_fn = nullptr;
    const void* m_body = nullptr;
    std::exception_ptr m_error; // a worker's part threw (under m_mutex)

    std::mutex m_mutex; // sleeping workers, and starting or stopping them
    std::condition_variable m_wake;
    std::vector<std::thread> m_workers;
};

} // namespace mythos::detail
