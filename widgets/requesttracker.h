#pragma once
// Which request of each kind the window is waiting for. Results arrive asynchronously from
// the workers and a newer request makes the older ones stale (the latest wins): a result is
// used only when its id is the current one of its kind.
#include <array>
#include <cstddef>

#include <QtGlobal>

namespace mx {

class RequestTracker {
public:
    enum class Kind {
        Model,        // opening the window's model
        Run,          // every request submitted to the window's worker (views, generation, report)
        Generation,   // the run that generates tokens
        Report,       // the run that makes a report's traces
        Sweep,        // a depth sweep
        CompareModel, // opening the model to compare with
        CompareRun,   // the compare worker's run of the same prompt
    };

    // A new id, unique across kinds and never 0, that becomes the current request of `kind`.
    quint64 issue(Kind kind);
    // Makes `id` (issued for another kind) also the current request of `kind`: a run that
    // generates tokens is both the current run and the current generation.
    void track(Kind kind, quint64 id) { m_current[index(kind)] = id; }
    // Whether a result with `id` answers the current request of `kind`.
    bool isCurrent(Kind kind, quint64 id) const { return id != 0 && m_current[index(kind)] == id; }
    // The current request of `kind`, 0 when none.
    quint64 current(Kind kind) const { return m_current[index(kind)]; }
    // No request of `kind` is current any more: its late results are dropped.
    void forget(Kind kind) { m_current[index(kind)] = 0; }

private:
    static constexpr std::size_t kKinds = std::size_t(Kind::CompareRun) + 1;
    static std::size_t index(Kind kind) { return std::size_t(kind); }

    quint64 m_last = 0;
    std::array<quint64, kKinds> m_current{};
};

} // namespace mx
