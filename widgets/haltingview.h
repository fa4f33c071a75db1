#pragma once
// "ACT halting": how deep each token of batch row 0 thinks. The prompt shaded by halting
// loop, the halting loop per token, the cumulative halting probability per token and loop
// (with the ACT threshold), and ACT health: weight sums, a histogram of halting loops and
// warnings when ACT has collapsed or never halts.
#include <QColor>
#include <QStringList>
#include <QVector>

#include "tokenstrip.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QLabel;
class QScrollArea;
QT_END_NAMESPACE

QT_BEGIN_NAMESPACE
class QBrush;
class QPainter;
QT_END_NAMESPACE

namespace mythos {
struct HaltingViewData;
}

namespace mx {

class BarChart;
class Heatmap;

// The prompt as wrapped token chips filled with the colour of their halting loop, under a
// legend of the colour scale; never-halted tokens are hatched and outlined in red.
class HaltingText : public ChipText {
    Q_OBJECT
public:
    explicit HaltingText(QWidget* parent = nullptr);

    // haltLoops: 1-based, 0 = never halted; loops = L (the colour scale's 1..L).
    void setTokens(const QStringList& labels, const QVector<int>& haltLoops, int loops, const QStringList& tooltips);
    QColor tokenColor(int index) const; // fill colour; neverHaltedColor() for never halted
    static QColor loopColor(int loop, int loops);

protected:
    void paintEvent(QPaintEvent*) override;
    QVector<QRect> layoutChips(int width) const override;
    int legendHeight(int width) const override;

private:
    // "Halting loop:", one swatch per loop (or a gradient), the never-halted swatch, a hint.
    void paintLegend(QPainter& p, const QBrush& hatch) const;
    void paintTokens(QPainter& p, const QBrush& hatch) const;
    QVector<int> m_halt;
    int m_loops = 0;
};

class HaltingView : public TraceView {
    Q_OBJECT
public:
    explicit HaltingView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("halting"); }
    QString viewTitle() const override { return tr("ACT halting"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;

    // Never-halted tokens are drawn at this height in the halting-loop bars: L + 1.
    int neverHaltedBarValue() const { return m_loops + 1; }
    // ACT health: empty when healthy.
    QString warning() const { return m_warningText; }
    QString summary() const;

    HaltingText* tokenText() const { return m_text; }
    BarChart* haltingBars() const { return m_bars; }
    Heatmap* heatmap() const { return m_heatmap; }
    BarChart* weightSumChart() const { return m_weightSum; }
    BarChart* histogram() const { return m_histogram; }

protected:
    bool eventFilter(QObject* watched, QEvent* e) override;
    void resizeEvent(QResizeEvent* e) override;

private:
    // Each part of the view from the trace's halting data (mythos::haltingViewData).
    void showPromptText(const mythos::HaltingViewData& d);
    void showHaltingBars(const mythos::HaltingViewData& d);
    void showCumulativeHeatmap(const TracePtr& trace, const mythos::HaltingViewData& d);
    void showWeightSums(const mythos::HaltingViewData& d);
    void showHistogram(const mythos::HaltingViewData& d);
    void showHealth(const mythos::HaltingViewData& d);
    void showSummary(const mythos::Trace& rec, const mythos::HaltingViewData& d);
    void fitTextArea();
    void applySelection();
    DataTable textTable() const;
    DataTable withTokens(DataTable t) const;

    QScrollArea* m_scroll = nullptr;
    QScrollArea* m_textScroll = nullptr; // a long prompt scrolls here, the charts stay in view
    QLabel* m_summary = nullptr;
    QLabel* m_warning = nullptr;
    HaltingText* m_text = nullptr;
    BarChart* m_bars = nullptr;
    Heatmap* m_heatmap = nullptr;
    BarChart* m_weightSum = nullptr;
    BarChart* m_histogram = nullptr;

    // Values computed by setTrace, kept so that selection only recolours.
    int m_loops = 0;
    QStringList m_labels, m_categories;
    QVector<int> m_halt;
    QVector<double> m_barValues, m_weightValues;
    QVector<QColor> m_barColors, m_weightColors;
    QString m_barNote, m_weightNote, m_warningText;
};

} // namespace mx
