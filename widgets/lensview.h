#pragma once
// "Logit lens": what the model would say after each loop (docs/inside-the-loop.md). A tokens x
// loops heatmap of the lens' top-1 (its text in every cell, coloured by its probability, the
// entropy or the KL to the final output) with each token's convergence and halting loop
// marked; halting against convergence; entropy and KL by loop; and what exit rules decide.
#include <functional>

#include <QHash>
#include <QPointF>
#include <QString>
#include <QStringList>
#include <QVector>
#include <vector>

#include "heatmap.h"
#include "mythos/lens.h"
#include "mythos/viewdata.h"
#include "tokenchart.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QComboBox;
class QPainter;
class QLabel;
class QLineEdit;
class QScrollArea;
class QTableWidget;
QT_END_NAMESPACE

namespace mx {

class LineChart;

// The lens heatmap: a Heatmap that also writes each cell's top-1 text (elided, black or white
// by the cell's colour) and marks every token's convergence loop (a bar on the cell's left
// edge: the top-1 is final from there on) and ACT halting loop (a dot in the cell's corner).
class LensHeatmap : public Heatmap {
    Q_OBJECT
public:
    explicit LensHeatmap(QWidget* parent = nullptr);

    // texts: [rows][cols]; convergence and halting: 1-based loop per row, 0 = none.
    void setAnnotations(const QStringList& texts, const QVector<int>& convergence, const QVector<int>& halting);
    QString cellText(int row, int col) const;
    int convergenceLoop(int row) const { return m_convergence.value(row); }
    int haltingLoop(int row) const { return m_halting.value(row); }
    QColor cellColor(int row, int col) const; // the colour the cell is painted in (invalid: empty)
    // Heatmap::setColorFunction, kept here too so that cellColor picks each text's colour.
    void setColorFunction(std::function<QColor(double)> fn);
    static QColor convergenceColor() { return QColor(255, 150, 0); }
    static QColor haltingColor() { return QColor(200, 40, 40); }

protected:
    void paintEvent(QPaintEvent* e) override;

private:
    void paintMarkerLegend(QPainter& p, const QRectF& grid, double rad) const;
    std::function<QColor(double)> m_colorFn;
    QStringList m_texts;
    QVector<int> m_convergence, m_halting;
};

// Halting loop against convergence loop, one point per token: points that coincide are one
// bubble sized by their count; never-halted tokens sit in a band at K + 1; y = x dashed.
class HaltConvergenceChart : public TokenChart {
    Q_OBJECT
public:
    explicit HaltConvergenceChart(QWidget* parent = nullptr);

    void setPoints(const QVector<QPointF>& points, int loops, const QStringList& labels);
    const QVector<QPointF>& points() const { return m_points; }
    QPointF toPixel(QPointF value) const;
    int tokenAt(QPoint pos) const override; // a token of the bubble under pos (cycling from the selection), else -1
    DataTable table() const;

    QSize sizeHint() const override { return {360, 260}; }
    QSize minimumSizeHint() const override { return {240, 200}; }

protected:
    int tokenCount() const override { return int(m_points.size()); }
    QString tooltipAt(QPoint pos) const override;
    void paintEvent(QPaintEvent*) override;

private:
    QRectF plotRect() const;
    QVector<int> tokensNear(QPoint pos) const;
    QVector<QPointF> m_points;
    QStringList m_labels;
    int m_loops = 0;
};

class LensView : public TraceView {
    Q_OBJECT
public:
    enum class Metric { Probability, Entropy, KlFinal };

    explicit LensView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("lens"); }
    QString viewTitle() const override { return tr("Logit lens"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;
    Needs needs() const override { return {.lens = true}; }

    void setSource(mythos::LensSource source);
    mythos::LensSource source() const { return m_source; }
    void setMetric(Metric metric);
    Metric colourMetric() const { return m_metric; } // not metric(): QWidget::metric is virtual
    // Parses a comma-separated rule list (ACT is always included); on an error keeps the
    // last good rules and shows the error. False on an error.
    bool setExitRulesText(const QString& text);
    QString exitRulesError() const { return m_rulesError; }
    const std::vector<mythos::ExitRule>& exitRules() const { return m_rules; }

    QString summary() const;
    bool hasLens() const { return m_data.loops > 0; }
    // The piece of a predicted token id ("#id" without one).
    QString pieceOf(int32_t id) const;
    const mythos::LensViewData& data() const { return m_data; }
    const mythos::ExitRuleTable& exitTable() const { return m_exit; }

    LensHeatmap* heatmap() const { return m_heatmap; }
    HaltConvergenceChart* haltChart() const { return m_halt; }
    LineChart* lossChart() const { return m_loss; }
    QTableWidget* exitRuleTableWidget() const { return m_exitTable; }
    QLineEdit* exitRulesEdit() const { return m_rulesEdit; }
    QComboBox* sourceCombo() const { return m_sourceCombo; }
    QComboBox* metricCombo() const { return m_metricCombo; }

private:
    void rebuild();
    void showHeatmap();
    void showHaltChart();
    void showLossChart();
    void showExitRules();
    void showSummary();
    void applySelection();
    DataTable heatmapTable() const;
    DataTable exitTableData() const;
    QString tokenText(int t) const { return m_labels.value(t); }

    QScrollArea* m_scroll = nullptr;
    QLabel* m_summary = nullptr;
    QLabel* m_message = nullptr;
    QComboBox* m_sourceCombo = nullptr;
    QComboBox* m_metricCombo = nullptr;
    QLabel* m_markerLegend = nullptr;
    QWidget* m_body = nullptr; // the charts, hidden for a trace without a lens
    LensHeatmap* m_heatmap = nullptr;
    HaltConvergenceChart* m_halt = nullptr;
    LineChart* m_loss = nullptr;
    QWidget* m_exitBox = nullptr;
    QLineEdit* m_rulesEdit = nullptr;
    QLabel* m_rulesErrorLabel = nullptr;
    QTableWidget* m_exitTable = nullptr;

    mythos::LensSource m_source = mythos::LensSource::Act;
    Metric m_metric = Metric::Probability;
    std::vector<mythos::ExitRule> m_rules;
    QString m_rulesError;
    mythos::LensViewData m_data;
    mythos::ExitRuleTable m_exit;
    QHash<int32_t, QString> m_pieces;
    QStringList m_labels;
};

} // namespace mx
