#include "requesttracker.h"

namespace mx {

quint64 RequestTracker::issue(Kind kind) {
    m_last += 1;
    m_current[index(kind)] = m_last;
    return m_last;
}

} // namespace mx
