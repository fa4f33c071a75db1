#include "traceview.h"

#include <QScrollArea>
#include <QVBoxLayout>

#include "mythos/tokenizer.h"

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
    if (std::size_t(i) < tr.pieces.size() && !tr.pieces[std::size_t(i)].empty())
        return QString::fromStdString(mythos::displayText(tr.pieces[std::size_t(i)]));
    return "#" + QString::number(tr.ids[std::size_t(i)]);
}

// A label that is never empty (a token without a piece shows its id); control characters
// are already written as <0xNN> by displayText, this also covers a trace whose pieces
// another tool wrote.
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
