#pragma once
// Is the recurrence h_{t+1} = A*h_t + B*e + block(h_t, e) stable? Shows rho(A) with its
// status and memory horizon, the distribution of A (or its eigenvalues for a dense A), the
// per-loop norms |h_t| and |h_t - h_{t-1}|, the contraction ratio, and a "Rescale A" control
// that only emits requests (the view never touches the model).
#include <vector>

#include "charts.h"
#include "mythos/stability.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QBoxLayout;
class QDoubleSpinBox;
class QFrame;
class QGridLayout;
class QGroupBox;
class QLabel;
class QPushButton;
class QScrollArea;
class QStackedWidget;
QT_END_NAMESPACE

namespace mx {

class StabilityView : public TraceView {
    Q_OBJECT
public:
    explicit StabilityView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("stability"); }
    QString viewTitle() const override { return tr("Stability"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;

    // A dense n x n row-major A (for traces of other architectures): the distribution panel
    // shows its eigenvalues and rho comes from them. An empty matrix returns to the trace's
    // diagonal A; setTrace also returns to it, so call this after setTrace.
    void setDenseA(std::vector<float> matrix, int n);
    bool hasDenseA() const { return m_denseN > 0; }

    void setRescalePreviewActive(bool on);
    bool rescalePreviewActive() const { return m_previewActive; }
    void setModelAvailable(bool available);
    // A warning about the open model's weights (NaN or infinite values); empty hides it.
    void setWeightWarning(const QString& text);
    QString weightWarning() const;
    bool modelAvailable() const { return m_modelAvailable; }
    double rescaleTarget() const;

    // What the summary shows (NaN / Fine before the first trace).
    double rho() const { return m_rho; }
    mythos::StabilityStatus status() const { return m_status; }
    double memoryHorizon() const { return m_horizon; }

signals:
    void rescalePreviewChanged(bool on, double target);
    void saveRescaledRequested(double target);

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    int nonFiniteCount() const;                   // entries of A (dense or diagonal) that are NaN or infinite
    void setRangeOf(const std::vector<float>& a); // m_minA, m_maxA of the finite entries
    enum class Layout { None, Narrow, Medium, Wide };

    void buildUi();
    void relayout(int width);
    void updateSummary();
    void updateDistribution();
    void updateLoopCharts();     // everything but the selected token
    void updateSelectedSeries(); // the selected token only
    DataTable summaryTable() const;
    DataTable lineTable(const LineChart* chart) const;

    // Summary panel
    QFrame* m_summary = nullptr;
    QLabel* m_rhoLabel = nullptr;
    QLabel* m_statusLabel = nullptr;
    QLabel* m_horizonLabel = nullptr;
    QLabel* m_rangeLabel = nullptr;
    QLabel* m_sourceLabel = nullptr;
    QLabel* m_weightWarning = nullptr;
    // Rescale controls
    QGroupBox* m_rescale = nullptr;
    QDoubleSpinBox* m_target = nullptr;
    QPushButton* m_preview = nullptr;
    QPushButton* m_save = nullptr;
    QLabel* m_rescaleHint = nullptr;
    QWidget* m_leftColumn = nullptr; // summary and rescale, stacked or side by side
    QBoxLayout* m_headerLayout = nullptr;
    // Charts
    QStackedWidget* m_distStack = nullptr;
    BarChart* m_histogram = nullptr;
    ScatterChart* m_eigen = nullptr;
    LineChart* m_hNorm = nullptr;
    LineChart* m_hDelta = nullptr;
    LineChart* m_contraction = nullptr;
    QScrollArea* m_scroll = nullptr;
    QGridLayout* m_grid = nullptr;
    Layout m_layout = Layout::None;

    // Derived from the trace in setTrace (the selected token reuses these).
    double m_rho = 0;
    mythos::StabilityStatus m_status = mythos::StabilityStatus::Fine;
    double m_horizon = 0;
    double m_minA = 0, m_maxA = 0;
    int m_aEntries = 0;
    bool m_hasRho = false;
    std::vector<float> m_dense;
    int m_denseN = 0;
    bool m_previewActive = false;
    bool m_modelAvailable = false;
    bool m_deltaLog = false;
    QVector<Series> m_normBase, m_deltaBase, m_ratioBase; // the mean series of each chart
    QVector<QPair<double, QString>> m_depthMarker;        // "trained depth", when L > max_loop_iters
    QVector<QPair<double, QString>> m_ratioMarkers;       // 1 and rho(A) on the contraction chart
};

} // namespace mx
