#pragma once
// "Expert routing": where the tokens of batch row 0 go among the recurrent block's experts at
// each loop. The prompt coloured by each token's top expert, a token x expert heatmap of gate
// weight (one loop or summed over loops), an expert x loop heatmap of load, per-expert load and
// router-bias bars, and balance per loop and overall (entropy, max/mean load, Gini, dead
// experts, how often tokens switch experts between loops). A toggle shows the unbiased top-k,
// to see what the router's balancing bias changes.
#include <QColor>
#include <QStringList>
#include <QVector>

#include "mythos/analysis.h"
#include "mythos/viewdata.h"
#include "tokenstrip.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QComboBox;
class QScrollArea;
class QTableWidget;
QT_END_NAMESPACE

namespace mx {

class BarChart;
class Heatmap;
class LineChart;

// The prompt as wrapped token chips filled with the colour of each token's top expert, under a
// legend of the expert colours.
class ExpertText : public ChipText {
    Q_OBJECT
public:
    explicit ExpertText(QWidget* parent = nullptr);

    // experts: the top expert of each token (-1 = none); nExperts sets the legend.
    void setTokens(const QStringList& labels, const QVector<int>& experts, int nExperts, const QStringList& tooltips);
    QColor tokenColor(int index) const;
    int tokenExpert(int index) const { return m_experts.value(index, -1); }
    static QColor expertColor(int expert, int nExperts);

protected:
    void paintEvent(QPaintEvent*) override;
    QVector<QRect> layoutChips(int width) const override;
    int legendHeight(int width) const override;

private:
    // "Top expert:" then one swatch per expert, wrapped like the chips.
    QVector<QRect> legendRects(int width) const;
    QVector<int> m_experts;
    int m_nExperts = 0;
};

class RoutingView : public TraceView {
    Q_OBJECT
public:
    explicit RoutingView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("routing"); }
    QString viewTitle() const override { return tr("Expert routing"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;

    // 0 = every loop (gates summed), 1..L = that loop. Clamped to the trace's loops.
    void setLoop(int loop);
    int loop() const { return m_loop; }
    // The unbiased top-k (router logits alone) instead of the model's biased choice; ignored
    // (and the toggle disabled) when the trace has no router logits.
    void setUnbiased(bool on);
    bool unbiased() const { return m_unbiased; }
    bool unbiasedAvailable() const { return m_canUnbias; }

    const mythos::RoutingStats& stats() const { return m_stats; }
    const mythos::RoutingSelection& selection() const { return m_sel; }
    // Share of (loop, token) expert sets that the router bias changes (NaN without logits).
    double biasChangedShare() const { return m_biasChanged; }
    QString summary() const;

    ExpertText* expertText() const { return m_text; }
    Heatmap* tokenHeatmap() const { return m_tokenMap; }
    Heatmap* loadHeatmap() const { return m_loadMap; }
    BarChart* loadBars() const { return m_loadBars; }
    BarChart* biasBars() const { return m_biasBars; }
    LineChart* balanceChart() const { return m_balance; }
    QTableWidget* balanceTable() const { return m_table; }
    DataTable balanceData() const;

protected:
    bool eventFilter(QObject* watched, QEvent* e) override;

private:
    void rebuild();     // everything that depends on the selection mode
    void rebuildLoop(); // everything that depends on the chosen loop
    // The parts of rebuild(); `mode` names the selection shown ("biased", "unbiased").
    void showLoadGrid(const QString& mode);
    void showRouterBias();
    void showBalanceChart(const QString& mode);
    void showBalanceTable();
    void showSummary(const QString& mode);
    // The parts of rebuildLoop().
    void showTokenRouting(const mythos::TokenRouting& r);
    void showLoadBars(int loop);
    QStringList expertNames() const; // "E0", "E1", ... for the trace's experts
    void fitTextArea();
    DataTable textTable() const;

    QScrollArea* m_scroll = nullptr;
    QScrollArea* m_textScroll = nullptr;
    QComboBox* m_loopCombo = nullptr;
    QComboBox* m_modeCombo = nullptr;
    QLabel* m_summary = nullptr;
    ExpertText* m_text = nullptr;
    Heatmap* m_tokenMap = nullptr;
    Heatmap* m_loadMap = nullptr;
    BarChart* m_loadBars = nullptr;
    BarChart* m_biasBars = nullptr;
    LineChart* m_balance = nullptr;
    QTableWidget* m_table = nullptr;

    int m_loop = 0;
    bool m_unbiased = false, m_canUnbias = false;
    double m_biasChanged = 0;
    QStringList m_labels;
    // Both selections of the trace, made once in setTrace; m_sel is the one shown.
    mythos::RoutingSelection m_recorded, m_unbiasedSel;
    QString m_routingError; // why the trace's routing cannot be shown (empty when it can)
    mythos::RoutingSelection m_sel;
    mythos::RoutingStats m_stats;
};

} // namespace mx
