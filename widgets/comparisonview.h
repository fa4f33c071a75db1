#pragma once
// "Compare": two models (for example an MLA and a GQA checkpoint, or one checkpoint and a
// variant of its config) on the same prompt at the same loop count, with the window's shared
// token selection. Halting loops side by side and their difference, next-token agreement per
// token (top-1 match and KL divergence), and a table of routing balance, KV bytes, parameter
// count, rho(A) and measured prefill and decode latency.
#include <QStringList>
#include <QVector>

#include "inferenceworker.h"
#include "mythos/analysis.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QPushButton;
class QScrollArea;
class QStackedWidget;
class QTableWidget;
QT_END_NAMESPACE

namespace mythos {
struct HaltingComparison;
}

namespace mx {

class AttentionCompare;
class BarChart;
class InterventionEffectPanel;
class LineChart;

class ComparisonView : public TraceView {
    Q_OBJECT
public:
    explicit ComparisonView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("compare"); }
    QString viewTitle() const override { return tr("Compare"); }
    // Model A's trace (the window's); B's arrives through setOther.
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;
    // While comparing: the attention window of the Attention view's rule, for both models.
    Needs needs() const override;

    void setModels(const ModelInfoPtr& a, const ModelInfoPtr& b); // b null: nothing to compare
    // Latency of A's run, when measured; give it before setTrace(r->trace), which rebuilds.
    void setResultA(const RunResultPtr& r);
    void setResultB(const RunResultPtr& r); // B's trace and latency
    void setErrorB(const QString& error);
    bool hasComparison() const { return m_b != nullptr; }
    TracePtr traceB() const { return m_b; }

    // Figures of the shown pair; valid when both traces are of the same tokens and loops.
    bool comparable() const { return m_comparable; }
    const mythos::Agreement& agreement() const { return m_agreement; }
    QString summary() const;
    LineChart* haltingChart() const { return m_halting; }
    BarChart* haltingDiff() const { return m_diff; }
    BarChart* klChart() const { return m_kl; }
    QTableWidget* table() const { return m_table; }
    // Shown when B is A under an intervention.
    InterventionEffectPanel* interventionEffect() const { return m_effect; }
    AttentionCompare* attention() const { return m_attention; }
    DataTable tableData() const;

signals:
    void compareWithFolderRequested();
    void compareWithPresetRequested();
    void compareWithVariantRequested();
    void compareWithInterventionRequested();

private:
    void rebuild();
    // The parts of rebuild().
    void showFigureTable(const QString& nameA, const QString& nameB);
    void showPerTokenCharts(const QString& nameA, const QString& nameB, const mythos::HaltingComparison& halting,
                            bool haveLogits);
    void showSummary(const QString& nameA, const QString& nameB, const mythos::HaltingComparison& halting,
                     bool haveLogits);
    void applySelection(); // the selected token's marks in the halting and difference charts

    QStackedWidget* m_stack = nullptr;
    QScrollArea* m_scroll = nullptr;
    QLabel* m_summary = nullptr;
    LineChart* m_halting = nullptr;
    BarChart* m_diff = nullptr;
    BarChart* m_kl = nullptr;
    InterventionEffectPanel* m_effect = nullptr;
    QTableWidget* m_table = nullptr;
    AttentionCompare* m_attention = nullptr;

    ModelInfoPtr m_infoA, m_infoB;
    TracePtr m_b;
    RunResultPtr m_resA, m_resB;
    QString m_errorB;
    bool m_comparable = false;
    mythos::Agreement m_agreement;
    // The difference bars without the selection mark, and the "never halted" height.
    QStringList m_diffCategories;
    QVector<double> m_diffValues;
    QVector<QColor> m_diffColors;
    int m_neverLoop = 0;
};

} // namespace mx
