#include "tokenstrip.h"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

#include "traceview.h"

namespace mx {

namespace {
constexpr int kPadX = 5, kPadY = 3, kGap = 3;
}

std::optional<int> chipSelectionForKey(int key, int selected, int count) {
    if (count <= 0)
        return std::nullopt;
    switch (key) {
    case Qt::Key_Right: return std::min(count - 1, selected + 1);
    case Qt::Key_Left: return std::max(0, selected - 1);
    case Qt::Key_Escape: return -1;
    default: return std::nullopt;
    }
}

QVector<QRect> flowChips(const QVector<int>& widths, int right, int x0, int y0, int h, int gapX, int gapY) {
    QVector<QRect> rects;
    rects.reserve(widths.size());
    int x = x0, y = y0;
    for (int w : widths) {
        if (x > x0 && x + w > right) {
            x = x0;
            y += h + gapY;
        }
        rects.push_back(QRect(x, y, w, h));
        x += w + gapX;
    }
    return rects;
}

// ---- ChipRow ----

ChipRow::ChipRow(QWidget* parent) : QWidget(parent) { setFocusPolicy(Qt::StrongFocus); }

void ChipRow::setSelected(int index) {
    if (index < -1 || index >= count())
        index = -1;
    if (index == m_selected)
        return;
    m_selected = index;
    update();
}

void ChipRow::paintSelection(QPainter& p) const {
    if (m_selected < 0 || m_selected >= m_rects.size())
        return;
    const QRect r = m_rects[m_selected];
    p.setBrush(Qt::NoBrush);
    p.setPen(QPen(selectionColor(), 3));
    p.drawRoundedRect(QRectF(r).adjusted(-3, -3, 3, 3), 4, 4);
    if (hasFocus()) {
        p.setPen(QPen(palette().color(QPalette::WindowText), 1, Qt::DotLine));
        p.drawRect(r.adjusted(-5, -5, 4, 4));
    }
}

void ChipRow::mousePressEvent(QMouseEvent* e) {
    for (int i = 0; i < m_rects.size(); ++i)
        if (m_rects[i].adjusted(-2, -2, 2, 2).contains(e->position().toPoint())) {
            const int next = i == m_selected ? -1 : i;
            setSelected(next);
            emit tokenClicked(next);
            return;
        }
    QWidget::mousePressEvent(e);
}

void ChipRow::keyPressEvent(QKeyEvent* e) {
    const auto next = chipSelectionForKey(e->key(), m_selected, count());
    if (!next)
        return QWidget::keyPressEvent(e);
    setSelected(*next);
    emit tokenClicked(*next);
}

bool ChipRow::event(QEvent* e) {
    if (e->type() == QEvent::ShortcutOverride && static_cast<QKeyEvent*>(e)->key() == Qt::Key_Escape &&
        m_selected >= 0) {
        e->accept();
        return true;
    }
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        for (int i = 0; i < m_rects.size(); ++i)
            if (m_rects[i].contains(he->pos())) {
                QToolTip::showText(he->globalPos(), chipTooltip(i), this, m_rects[i]);
                return true;
            }
        QToolTip::hideText();
        return true;
    }
    return QWidget::event(e);
}

// ---- ChipText ----

ChipText::ChipText(int lineGap, QWidget* parent) : ChipRow(parent), m_lineGap(lineGap) {
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
}

void ChipText::setChips(const QStringList& labels, const QStringList& tooltips) {
    m_labels = labels;
    m_tooltips = tooltips;
    if (m_selected >= m_labels.size())
        m_selected = -1;
    m_rects = layoutChips(width());
    setFixedHeight(heightForWidth(width()));
    update();
}

int ChipText::heightForWidth(int w) const {
    const auto rects = layoutChips(w);
    const QFontMetrics fm(font());
    return (rects.isEmpty() ? legendHeight(w) + m_lineGap + fm.height() + 2 * kPadY : rects.back().bottom() + 1) + 4;
}

QSize ChipText::sizeHint() const { return {600, heightForWidth(std::max(width(), 600))}; }

QSize ChipText::minimumSizeHint() const { return {200, legendHeight(200) + fontMetrics().height() + 20}; }

void ChipText::resizeEvent(QResizeEvent*) {
    m_rects = layoutChips(width());
    const int h = heightForWidth(width());
    if (h != height())
        setFixedHeight(h);
}

// ---- TokenStrip ----

TokenStrip::TokenStrip(QWidget* parent) : ChipRow(parent) {
    connect(this, &ChipRow::tokenClicked, this, &TokenStrip::tokenSelected);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    setAccessibleName(tr("Prompt tokens"));
}

void TokenStrip::setTokens(const QStringList& pieces, const QVector<int>& ids) {
    m_pieces = pieces;
    m_ids = ids;
    if (m_selected >= m_pieces.size())
        m_selected = -1;
    m_rects = layoutChips(width());
    updateGeometry();
    update();
}

QVector<QRect> TokenStrip::layoutChips(int width) const {
    const QFontMetrics fm(font());
    QVector<int> widths;
    for (const auto& p : m_pieces)
        widths << std::max(fm.horizontalAdvance(p), fm.horizontalAdvance(' ')) + 2 * kPadX;
    return flowChips(widths, width, 0, 0, fm.height() + 2 * kPadY, kGap, kGap);
}

int TokenStrip::heightForWidth(int w) const {
    const auto rects = layoutChips(w);
    const QFontMetrics fm(font());
    return rects.isEmpty() ? fm.height() + 2 * kPadY : rects.back().bottom() + 1;
}

QSize TokenStrip::sizeHint() const { return {400, heightForWidth(std::max(width(), 400))}; }

QRect TokenStrip::chipRect(int index) const { return index >= 0 && index < m_rects.size() ? m_rects[index] : QRect(); }

void TokenStrip::resizeEvent(QResizeEvent*) {
    m_rects = layoutChips(width());
    updateGeometry();
}

void TokenStrip::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QPalette pal = palette();
    if (m_pieces.isEmpty()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(rect(), Qt::AlignLeft | Qt::AlignVCenter, tr("(the prompt's tokens appear here)"));
        return;
    }
    for (int i = 0; i < m_pieces.size() && i < m_rects.size(); ++i) {
        const QRect r = m_rects[i];
        const bool sel = i == m_selected;
        p.setPen(sel ? pal.color(QPalette::Highlight).darker(120) : pal.color(QPalette::Mid));
        p.setBrush(sel ? pal.color(QPalette::Highlight) : pal.color(QPalette::AlternateBase));
        p.drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4);
        p.setPen(sel ? pal.color(QPalette::HighlightedText) : pal.color(QPalette::Text));
        p.drawText(r, Qt::AlignCenter, m_pieces[i]);
    }
    if (hasFocus() && m_selected >= 0 && m_selected < m_rects.size()) {
        p.setPen(QPen(pal.color(QPalette::Highlight), 1, Qt::DotLine));
        p.setBrush(Qt::NoBrush);
        p.drawRect(m_rects[m_selected].adjusted(-2, -2, 1, 1));
    }
}

QString TokenStrip::chipTooltip(int i) const {
    return tr("token %1: \"%2\" (id %3)").arg(i).arg(m_pieces.value(i)).arg(m_ids.value(i, -1));
}

} // namespace mx
