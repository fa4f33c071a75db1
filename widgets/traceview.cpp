#include "traceview.h"

namespace mx {

QString tokenLabel(const mythos::Trace& tr, int i) {
    if (i < 0 || i >= tr.seqLen)
        return {};
    if (std::size_t(i) < tr.pieces.size()) {
        const QString p = QString::fromStdString(tr.pieces[std::size_t(i)]);
        if (p == "\n")
            return QStringLiteral("\u23CE");
        if (p == " ")
            return QStringLiteral("\u2423");
        return p;
    }
    return "#" + QString::number(tr.ids[std::size_t(i)]);
}

} // namespace mx
