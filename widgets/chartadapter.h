#pragma once
// A small adapter over Qt Charts, so that views never touch QtCharts types directly (newer
// Qt replaces Qt Charts with Qt Graphs; only this file pair would change). Every chart keeps
// the values it shows so that tests and export can read them back.
#include <QColor>
#include <QPair>
#include <QPointF>
#include <QString>
#include <QVector>
#include <QWidget>

#include "datatable.h"

QT_BEGIN_NAMESPACE
class QChart;
class QChartView;
QT_END_NAMESPACE

namespace mx {

struct Series {
    QString name;
    QVector<QPointF> points;
    QColor color; // invalid = automatic
    bool dashed = false;
    bool markers = false;
};

// Lines over a numeric x axis, with optional vertical and horizontal reference lines.
class LineChart : public QWidget {
    Q_OBJECT
public:
    explicit LineChart(const QString& title, const QString& xLabel, const QString& yLabel, QWidget* parent = nullptr);

    // Replaces every series in one pass.
    void setSeries(const QVector<Series>& series);
    const QVector<Series>& series() const { return m_series; }
    void setXRange(double lo, double hi);
    void setYRange(double lo, double hi); // lo == hi: automatic
    void setLogY(bool on);
    void setIntegerX(bool on); // x ticks on whole numbers (loops, counts)
    // Vertical line at x (e.g. the current loop count or max_loop_iters), horizontal at y.
    void setMarkers(const QVector<QPair<double, QString>>& verticals,
                    const QVector<QPair<double, QString>>& horizontals = {});
    void setTitle(const QString& title);
    QString title() const { return m_title; }
    void setYLabel(const QString& label);
    void setNote(const QString& text); // small text under the title (e.g. a warning)
    QString note() const { return m_note; }

    DataTable table() const; // x plus one column per series

private:
    void rebuild();
    QString m_title, m_xLabel, m_yLabel, m_note;
    QVector<Series> m_series;
    QVector<QPair<double, QString>> m_vmarkers, m_hmarkers;
    double m_xlo = 0, m_xhi = 0, m_ylo = 0, m_yhi = 0;
    bool m_logY = false;
    bool m_integerX = false;
    QChart* m_chart = nullptr;
    QChartView* m_view = nullptr;
};

// Points in the plane (e.g. eigenvalues) with an optional unit circle.
class ScatterChart : public QWidget {
    Q_OBJECT
public:
    explicit ScatterChart(const QString& title, const QString& xLabel, const QString& yLabel,
                          QWidget* parent = nullptr);
    void setPoints(const QVector<QPointF>& points, const QString& name);
    const QVector<QPointF>& points() const { return m_points; }
    void setUnitCircle(bool on);
    void setTitle(const QString& title);
    QString title() const { return m_title; }
    DataTable table() const;

private:
    void rebuild();
    QString m_title, m_xLabel, m_yLabel, m_name;
    QVector<QPointF> m_points;
    bool m_circle = true;
    QChart* m_chart = nullptr;
    QChartView* m_view = nullptr;
};

} // namespace mx
