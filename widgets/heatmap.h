#pragma once
// A custom-painted heatmap (Qt Charts has none): rows x columns of values drawn from a cached
// one-pixel-per-cell image, with axis labels, a colour legend, a threshold contour, a
// highlighted row, shaded "marked" columns, hover tooltips and row clicks.
#include <functional>
#include <limits>

#include <QColor>
#include <QImage>
#include <QLineF>
#include <QPair>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include "datatable.h"

QT_BEGIN_NAMESPACE
class QPainter;
QT_END_NAMESPACE

namespace mx {

class Heatmap : public QWidget {
    Q_OBJECT
public:
    explicit Heatmap(QWidget* parent = nullptr);

    // values: row-major, rows * cols entries (missing ones are NaN); NaN = empty cell.
    void setData(int rows, int cols, const QVector<double>& values, const QStringList& rowLabels,
                 const QStringList& colLabels);
    // lo >= hi: the finite data range.
    void setRange(double lo, double hi);
    QPair<double, double> range() const { return {m_lo, m_hi}; }
    // Maps a normalised value in [0, 1] to a colour; empty = sequentialColor.
    void setColorFunction(std::function<QColor(double)> fn);
    // Outlines the region of cells >= v (NaN = none); `label` (may hold line breaks) is shown
    // next to the legend.
    void setThresholdContour(double v, const QString& label = {});
    double thresholdContour() const { return m_threshold; }
    void setHighlightedRow(int row); // -1 = none
    int highlightedRow() const { return m_highlightRow; }
    // Hatches these columns and writes `label` above them (e.g. loops past max_loop_iters).
    void setMarkedColumns(const QVector<int>& cols, const QString& label = {});
    const QVector<int>& markedColumns() const { return m_marked; }
    void setTitle(const QString& title);
    QString title() const { return m_title; }
    void setAxisTitles(const QString& rowTitle, const QString& colTitle);
    void setLegendTitle(const QString& title); // also the value column of table()
    // Formats values written inside cells when they fit; empty = no values in cells.
    void setCellText(std::function<QString(double)> fn);

    // Hover text for a cell; empty = the label pair and the value.
    std::function<QString(int row, int col)> tooltip;
    QString tooltipText(int row, int col) const;

    int rows() const { return m_rows; }
    int cols() const { return m_cols; }
    double value(int row, int col) const; // NaN outside or empty
    QString rowLabel(int row) const { return row >= 0 && row < m_rowLabels.size() ? m_rowLabels[row] : QString(); }
    QString colLabel(int col) const { return col >= 0 && col < m_colLabels.size() ? m_colLabels[col] : QString(); }
    QPair<int, int> cellAt(QPoint pos) const; // (-1, -1) outside the grid
    int rowAt(QPoint pos) const;              // the grid or the row labels; -1 elsewhere
    QRect cellRect(int row, int col) const;
    QRectF gridRect() const;

    DataTable table() const; // one row per cell: row label, column label, value

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

signals:
    void rowClicked(int row);

protected:
    void paintEvent(QPaintEvent*) override;
    void resizeEvent(QResizeEvent*) override;
    void mouseMoveEvent(QMouseEvent* e) override;
    void mousePressEvent(QMouseEvent* e) override;
    void leaveEvent(QEvent* e) override;
    void changeEvent(QEvent* e) override;

private:
    struct Geometry {
        QRectF grid, legend, title, marked;
        int rowLabelRight = 0, rowTitleX = 0, colLabelTop = 0, colTitleTop = 0;
        int rowStep = 1, colStep = 1; // draw every n-th label
        int labelWidth = 0;
    };
    void rebuildImage();
    // The parts of paintEvent, in painting order.
    void paintTitle(QPainter& p) const;
    void paintCells(QPainter& p) const;
    void paintMarkedColumns(QPainter& p) const;
    void paintThresholdContour(QPainter& p) const;
    void paintHighlights(QPainter& p) const;
    void paintAxisLabels(QPainter& p) const;
    void paintLegend(QPainter& p) const;
    QVector<QLineF> contourEdges() const;
    void relayout();
    Geometry computeGeometry() const;
    QColor colorFor(double v) const;
    QString formatNumber(double v) const;
    QStringList thresholdLines() const;

    int m_rows = 0, m_cols = 0;
    QVector<double> m_values;
    QStringList m_rowLabels, m_colLabels;
    double m_userLo = 0, m_userHi = 0, m_lo = 0, m_hi = 1;
    std::function<QColor(double)> m_color;
    std::function<QString(double)> m_cellText;
    double m_threshold = std::numeric_limits<double>::quiet_NaN();
    QString m_thresholdLabel;
    int m_highlightRow = -1;
    QVector<int> m_marked;
    QString m_markedLabel;
    QString m_title, m_rowTitle, m_colTitle, m_legendTitle;
    QImage m_image;
    Geometry m_geo;
    QPair<int, int> m_hover{-1, -1};
};

} // namespace mx
