#include "traceview.h"

#include <QHeaderView>
#include <QScrollArea>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>

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

QVBoxLayout* TraceView::makePageColumn(QWidget* content) {
    auto* lay = new QVBoxLayout(content);
    lay->setContentsMargins(8, 6, 8, 6);
    lay->setSpacing(6);
    return lay;
}

QLabel* TraceView::addSummaryLabel(QWidget* content, QVBoxLayout* column) {
    auto* label = new WrapLabel(content);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    column->addWidget(label);
    return label;
}

QString TraceView::noTraceText() { return tr("No trace yet: run the model or open a trace file."); }

QTableWidget* TraceView::makeReadOnlyTable(QWidget* parent, const QString& objectName) {
    auto* table = new QTableWidget(parent);
    table->setObjectName(objectName);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->verticalHeader()->setVisible(false);
    return table;
}

QScrollArea* TraceView::makeTokenTextArea(QWidget* content, QWidget* chips) {
    auto* area = new QScrollArea(content);
    area->setFrameShape(QFrame::NoFrame);
    area->setWidgetResizable(true);
    area->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    area->setWidget(chips);
    area->viewport()->installEventFilter(this);
    return area;
}

void TraceView::fitTokenTextArea(QScrollArea* area, const QWidget* chips, int lineStep) {
    const int cap = std::max(5 * lineStep + 4, height() / 4);
    const int h = std::min(chips->heightForWidth(area->viewport()->width()), cap);
    if (area->height() != h)
        area->setFixedHeight(h);
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

bool TraceView::keepSelection(int index, int tokens) {
    if (index < 0 || index >= tokens)
        index = -1;
    if (index == m_selected)
        return false;
    m_selected = index;
    return true;
}

void TraceView::selectFromUi(int index) {
    setSelectedToken(index);
    emit tokenSelected(m_selected);
}

bool TraceView::hasNeeds(const mythos::Trace& tr) const {
    const Needs n = needs();
    if (n.lens && tr.lens.loops < 1)
        return false;
    if (n.trajectory && tr.trajectory.loops < 1)
        return false;
    if (n.attention) {
        if (tr.attention.sites.empty())
            return false;
        const int to = n.attentionTo > 0 ? n.attentionTo : int(std::min<int64_t>(tr.seqLen, n.attentionFrom + 64));
        // A wider recorded window holds the one asked for (the view draws that part of it).
        if (tr.attention.from > n.attentionFrom || tr.attentionEnd() < to)
            return false;
    }
    return true;
}

} // namespace mx
