#pragma once
// The base of the small painted charts that plot one mark per token of a trace (the lens
// view's halting-vs-convergence chart, the trajectory view's orbits): a title, the selected
// token, a click that selects the token under the pointer and a tooltip naming it.
#include <QWidget>

QT_BEGIN_NAMESPACE
class QPainter;
QT_END_NAMESPACE

namespace mx {

class TokenChart : public QWidget {
    Q_OBJECT
public:
    void setSelected(int index); // -1, or outside the chart's tokens: none
    int selected() const { return m_selected; }
    QString title() const { return m_title; }
    virtual int tokenAt(QPoint pos) const = 0; // the token a click at pos selects, else -1

signals:
    void tokenClicked(int index);

protected:
    TokenChart(const QString& title, QWidget* parent);
    virtual int tokenCount() const = 0;
    virtual QString tooltipAt(QPoint pos) const = 0; // empty: no tooltip there
    // Fills the background and draws the title; with nothing to plot, "(no data)" in `plot`
    // too. Returns `hasData`.
    bool paintFrame(QPainter& p, const QRectF& plot, bool hasData) const;
    // Drops a selection past the chart's tokens (after new data).
    void keepSelectionInRange();

    void mousePressEvent(QMouseEvent* e) override;
    bool event(QEvent* e) override;

    QString m_title;
    int m_selected = -1;
};

} // namespace mx
