#include "traceview.h"

#include <QScrollArea>
#include <QVBoxLayout>

namespace mx {

QWidget* TraceView::makeScrollPage(QScrollArea*& scroll) {
    auto* outer = new QVBoxLayout(this);
    outer->setContentsMargins(0, 0, 0, 0);
    scroll = new QScrollArea(this);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    outer->addWidget(scroll);
    auto* content = new QWidget;
    scroll->setWidget(content);
    return content;
}

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

// Control characters (byte-level tokenizers produce them) drawn as their Unicode pictures.
QString displayToken(const mythos::Trace& tr, int i) {
    QString s = tokenLabel(tr, i);
    if (s.isEmpty())
        return "#" + QString::number(std::size_t(i) < tr.ids.size() ? tr.ids[std::size_t(i)] : -1);
    for (auto& ch : s) {
        if (ch.unicode() < 0x20)
            ch = QChar(0x2400 + ch.unicode());
        else if (ch.unicode() == 0x7f)
            ch = QChar(0x2421);
    }
    return s;
}

} // namespace mx
