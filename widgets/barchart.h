#pragma once
// A bar chart painted by hand with QPainter (see barchart.cpp for why not Qt Charts).
#include <QColor>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include "datatable.h"

QT_BEGIN_NAMESPACE
class QPainter;
QT_END_NAMESPACE

namespace mx {

// Vertical bars over categories, one colour per bar. Painted directly with QPainter from the
// stored data (no per-bar objects), so that hundreds of bars cost well under a millisecond to
// set and a few to paint; it renders into any paint device through QWidget::render().
class BarChart : public QWidget {
    Q_OBJECT
public:
    explicit BarChart(const QString& title, const QString& xLabel, const QString& yLabel, QWidget* parent = nullptr);

    void setBars(const QStringList& categories, const QVector<double>& values, const QVector<QColor>& colors = {});
    const QStringList& categories() const { return m_categories; }
    const QVector<double>& values() const { return m_values; }
    void setYRange(double lo, double hi);                     // lo == hi: automatic
    void setHorizontalMarker(double y, const QString& label); // NaN = none
    void setTitle(const QString& title);
    void setYLabel(const QString& label);
    QString title() const { return m_title; }
    void setNote(const QString& text);
    // Category label rotation in degrees (-90: many long labels stay readable instead of "...").
    void setLabelAngle(int degrees);

    DataTable table() const;

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

protected:
    void paintEvent(QPaintEvent* event) override;
    bool event(QEvent* event) override; // QEvent::ToolTip: "category: value" of the bar under the mouse

private:
    struct Geometry;
    Geometry geometry(const QFont& font, QPaintDevice* device) const;
    // The parts of paintEvent, in painting order.
    void paintTitleAndNote(QPainter& p, const Geometry& g) const;
    void paintGrid(QPainter& p, const Geometry& g) const;
    void paintBars(QPainter& p, const Geometry& g) const;
    void paintAxes(QPainter& p, const Geometry& g) const;
    void paintCategoryLabels(QPainter& p, const Geometry& g) const;
    void paintAxisTitles(QPainter& p, const Geometry& g) const;
    void paintMarkerLegend(QPainter& p, const Geometry& g) const;
    QString m_title, m_xLabel, m_yLabel, m_note, m_hLabel;
    QStringList m_categories;
    QVector<double> m_values;
    QVector<QColor> m_colors;
    double m_ylo = 0, m_yhi = 0, m_hmarker;
    int m_labelAngle = 0;
};

} // namespace mx
