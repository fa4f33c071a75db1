#include "tokenchart.h"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

namespace mx {

TokenChart::TokenChart(const QString& title, QWidget* parent) : QWidget(parent), m_title(title) {
    setAccessibleName(m_title);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
}

void TokenChart::setSelected(int index) {
    m_selected = index >= 0 && index < tokenCount() ? index : -1;
    update();
}

void TokenChart::keepSelectionInRange() {
    if (m_selected >= tokenCount())
        m_selected = -1;
}

bool TokenChart::paintFrame(QPainter& p, const QRectF& plot, bool hasData) const {
    const QPalette pal = palette();
    const int lh = QFontMetrics(font()).height();
    QFont bold = font();
    bold.setBold(true);
    p.fillRect(rect(), pal.color(QPalette::Base));
    p.setFont(bold);
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRectF(4, 4, width() - 8, lh), Qt::AlignCenter,
               QFontMetrics(bold).elidedText(m_title, Qt::ElideRight, width() - 8));
    p.setFont(font());
    if (!hasData) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(plot, Qt::AlignCenter, tr("(no data)"));
    }
    return hasData;
}

void TokenChart::mousePressEvent(QMouseEvent* e) {
    if (e->button() == Qt::LeftButton) {
        const int t = tokenAt(e->position().toPoint());
        if (t >= 0) {
            setSelected(t);
            emit tokenClicked(t);
            return;
        }
    }
    QWidget::mousePressEvent(e);
}

bool TokenChart::event(QEvent* e) {
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        const QString text = tooltipAt(he->pos());
        if (text.isEmpty())
            QToolTip::hideText();
        else
            QToolTip::showText(he->globalPos(), text, this);
        return true;
    }
    return QWidget::event(e);
}

} // namespace mx
