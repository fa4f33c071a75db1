#pragma once
// "Trajectories": where the loop takes each token's state (docs/inside-the-loop.md). Every
// token's orbit across loops on the first two principal components, coloured by loop, and
// tokens x loops heatmaps of the step size |h_t - h_{t-1}| and of cos(h_t, h_K).
#include <QPointF>
#include <QString>
#include <QStringList>
#include <QVector>

#include "mythos/viewdata.h"
#include "tokenchart.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QLabel;
class QScrollArea;
QT_END_NAMESPACE

namespace mx {

class Heatmap;

// Orbits in the plane of the first two principal components: one path per token, segments
// and points coloured by loop (a gradient legend 1..K), the selected orbit on top in the
// selection colour. Clicking near a point selects its token.
class OrbitChart : public TokenChart {
    Q_OBJECT
public:
    explicit OrbitChart(QWidget* parent = nullptr);

    // orbits[t][l]: the point of token t at loop l + 1 (NaN coordinates are skipped).
    void setOrbits(const QVector<QVector<QPointF>>& orbits, int loops, const QStringList& labels, QRectF extent,
                   const QString& xTitle, const QString& yTitle);
    const QVector<QVector<QPointF>>& orbits() const { return m_orbits; }
    QString xTitle() const { return m_xTitle; }
    QString yTitle() const { return m_yTitle; }
    static QColor loopColor(int loop, int loops);
    QPointF toPixel(QPointF value) const;
    int tokenAt(QPoint pos) const override; // the token of the nearest point within a few pixels, else -1
    DataTable table() const;

    QSize sizeHint() const override { return {520, 460}; }
    QSize minimumSizeHint() const override { return {280, 240}; }

protected:
    int tokenCount() const override { return int(m_orbits.size()); }
    QString tooltipAt(QPoint pos) const override;
    void paintEvent(QPaintEvent*) override;

private:
    QRectF plotRect() const;
    QPair<int, int> pointAt(QPoint pos) const; // (token, loop index) or (-1, -1)
    void paintOrbit(QPainter& p, int t, bool selected) const;
    void paintLegend(QPainter& p, const QRectF& plot) const;

    QString m_xTitle, m_yTitle;
    QVector<QVector<QPointF>> m_orbits;
    QStringList m_labels;
    QRectF m_extent{0, 0, 1, 1};
    int m_loops = 0;
};

class TrajectoryView : public TraceView {
    Q_OBJECT
public:
    explicit TrajectoryView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("trajectory"); }
    QString viewTitle() const override { return tr("Trajectories"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;
    Needs needs() const override { return {.trajectory = true}; }

    QString summary() const;
    bool hasTrajectory() const { return m_data.loops > 0; }
    bool deltaIsLog() const { return m_deltaLog; } // the step heatmap shows log10 |h_t - h_{t-1}|
    const mythos::TrajectoryViewData& data() const { return m_data; }

    OrbitChart* orbitChart() const { return m_orbit; }
    Heatmap* deltaHeatmap() const { return m_delta; }
    Heatmap* cosHeatmap() const { return m_cos; }

private:
    void showOrbits();
    void showHeatmaps();
    void showSummary();
    void applySelection();
    DataTable cellTable(const QString& title, const QString& column, const std::vector<double>& values) const;

    QScrollArea* m_scroll = nullptr;
    QLabel* m_summary = nullptr;
    QLabel* m_message = nullptr;
    QWidget* m_body = nullptr; // the charts, hidden for a trace without trajectories
    OrbitChart* m_orbit = nullptr;
    Heatmap* m_delta = nullptr;
    Heatmap* m_cos = nullptr;

    mythos::TrajectoryViewData m_data;
    QStringList m_labels;
    bool m_deltaLog = false;
};

} // namespace mx
