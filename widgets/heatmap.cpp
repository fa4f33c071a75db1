#include "heatmap.h"

#include <QEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "charts.h"

namespace mx {

namespace {

constexpr int kMargin = 6;
constexpr int kLegendBar = 14;
constexpr double kMaxCellHeight = 48;

QColor highlightColor() { return QColor(230, 0, 160); }

bool darkColor(const QColor& c) { return 0.299 * c.redF() + 0.587 * c.greenF() + 0.114 * c.blueF() < 0.55; }

} // namespace

Heatmap::Heatmap(QWidget* parent) : QWidget(parent), m_color(sequentialColor) {
    setMouseTracking(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    setAccessibleName(tr("Heatmap"));
}

void Heatmap::setData(int rows, int cols, const QVector<double>& values, const QStringList& rowLabels,
                      const QStringList& colLabels) {
    m_rows = std::max(rows, 0);
    m_cols = std::max(cols, 0);
    m_values = values;
    m_values.resize(qsizetype(m_rows) * m_cols, std::numeric_limits<double>::quiet_NaN());
    m_rowLabels = rowLabels;
    m_colLabels = colLabels;
    if (m_highlightRow >= m_rows)
        m_highlightRow = -1;
    m_hover = {-1, -1};
    rebuildImage();
    relayout();
    updateGeometry();
}

void Heatmap::setRange(double lo, double hi) {
    m_userLo = lo;
    m_userHi = hi;
    rebuildImage();
    relayout();
}

void Heatmap::setColorFunction(std::function<QColor(double)> fn) {
    m_color = fn ? std::move(fn) : std::function<QColor(double)>(sequentialColor);
    rebuildImage();
    update();
}

void Heatmap::setThresholdContour(double v, const QString& label) {
    m_threshold = v;
    m_thresholdLabel = label;
    relayout();
}

void Heatmap::setHighlightedRow(int row) {
    if (row < -1 || row >= m_rows)
        row = -1;
    if (row == m_highlightRow)
        return;
    m_highlightRow = row;
    update();
}

void Heatmap::setMarkedColumns(const QVector<int>& cols, const QString& label) {
    m_marked = cols;
    m_markedLabel = label;
    relayout();
}

void Heatmap::setTitle(const QString& title) {
    m_title = title;
    relayout();
}

void Heatmap::setAxisTitles(const QString& rowTitle, const QString& colTitle) {
    m_rowTitle = rowTitle;
    m_colTitle = colTitle;
    relayout();
}

void Heatmap::setLegendTitle(const QString& title) {
    m_legendTitle = title;
    relayout();
}

void Heatmap::setCellText(std::function<QString(double)> fn) {
    m_cellText = std::move(fn);
    update();
}

double Heatmap::value(int row, int col) const {
    if (row < 0 || row >= m_rows || col < 0 || col >= m_cols)
        return std::numeric_limits<double>::quiet_NaN();
    return m_values[qsizetype(row) * m_cols + col];
}

QString Heatmap::tooltipText(int row, int col) const {
    if (row < 0 || row >= m_rows || col < 0 || col >= m_cols)
        return {};
    if (tooltip)
        return tooltip(row, col);
    const double v = value(row, col);
    return QStringLiteral("%1, %2: %3")
        .arg(rowLabel(row), colLabel(col), std::isfinite(v) ? formatNumber(v) : tr("empty"));
}

QStringList Heatmap::thresholdLines() const {
    return m_thresholdLabel.isEmpty() ? QStringList{formatNumber(m_threshold)} : m_thresholdLabel.split('\n');
}

QString Heatmap::formatNumber(double v) const { return QString::number(v, 'g', 4); }

QColor Heatmap::colorFor(double v) const {
    const double t = m_hi > m_lo ? (v - m_lo) / (m_hi - m_lo) : 0.5;
    return m_color(std::clamp(t, 0.0, 1.0));
}

void Heatmap::rebuildImage() {
    if (m_userLo < m_userHi) {
        m_lo = m_userLo;
        m_hi = m_userHi;
    } else {
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        for (double v : m_values)
            if (std::isfinite(v)) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
        if (!std::isfinite(lo)) {
            lo = 0;
            hi = 1;
        }
        m_lo = lo;
        m_hi = hi;
    }
    if (m_rows == 0 || m_cols == 0) {
        m_image = QImage();
        return;
    }
    m_image = QImage(m_cols, m_rows, QImage::Format_ARGB32);
    for (int r = 0; r < m_rows; ++r) {
        auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(r));
        for (int c = 0; c < m_cols; ++c) {
            const double v = m_values[qsizetype(r) * m_cols + c];
            line[c] = std::isfinite(v) ? colorFor(v).rgb() : qRgba(0, 0, 0, 0);
        }
    }
}

void Heatmap::relayout() {
    m_geo = computeGeometry();
    update();
}

Heatmap::Geometry Heatmap::computeGeometry() const {
    Geometry g;
    const QFontMetrics fm(font());
    QFont bold = font();
    bold.setBold(true);
    const QFontMetrics fmb(bold);
    const int lh = fm.height();
    const int w = width(), h = height();

    int top = kMargin;
    if (!m_title.isEmpty()) {
        g.title = QRectF(kMargin, top, std::max(0, w - 2 * kMargin), fmb.height());
        top += fmb.height() + 4;
    }
    const bool markedLabel = !m_marked.isEmpty() && !m_markedLabel.isEmpty();
    if (markedLabel)
        top += lh + 4;

    // Legend: title above a vertical colour bar, value labels to its right.
    int legendLabels = std::max(fm.horizontalAdvance(formatNumber(m_lo)), fm.horizontalAdvance(formatNumber(m_hi)));
    if (std::isfinite(m_threshold))
        for (const auto& line : thresholdLines())
            legendLabels = std::max(legendLabels, fm.horizontalAdvance(line));
    int legendW = std::max(kLegendBar + 6 + legendLabels, fmb.horizontalAdvance(m_legendTitle));
    legendW = std::min(legendW, std::max(60, w / 3));

    int left = kMargin;
    if (!m_rowTitle.isEmpty()) {
        g.rowTitleX = left;
        left += lh + 4;
    }
    int labelW = 0;
    for (const auto& l : m_rowLabels)
        labelW = std::max(labelW, fmb.horizontalAdvance(l));
    labelW = std::min(labelW + 2, std::max(40, std::min(160, w / 5)));
    g.labelWidth = labelW;
    left += labelW + 6;
    g.rowLabelRight = left - 6;

    int bottom = h - kMargin;
    if (!m_colTitle.isEmpty()) {
        bottom -= lh;
        g.colTitleTop = bottom;
        bottom -= 2;
    }
    bottom -= lh;
    g.colLabelTop = bottom;
    bottom -= 3;

    const int right = w - kMargin - legendW - 12;
    double gw = std::max(1, right - left), gh = std::max(1, bottom - top);
    if (m_rows > 0)
        gh = std::min(gh, kMaxCellHeight * m_rows);
    g.grid = QRectF(left, top, gw, gh);
    // Column labels follow the grid when its cells reached their maximum height.
    g.colLabelTop = int(std::ceil(top + gh)) + 3;
    g.colTitleTop = g.colLabelTop + lh + 2;
    // The legend bar starts below the legend title and spans the grid (at least 60 px).
    const double legendTop = top + (m_legendTitle.isEmpty() ? 0 : fmb.height() + 4);
    g.legend = QRectF(right + 12, legendTop, kLegendBar, std::max(60.0, top + gh - legendTop));

    if (m_rows > 0 && m_cols > 0) {
        const double ch = gh / m_rows, cw = gw / m_cols;
        g.rowStep = ch >= lh ? 1 : int(std::ceil(lh / std::max(ch, 1e-3)));
        int colW = 0;
        for (const auto& l : m_colLabels)
            colW = std::max(colW, fm.horizontalAdvance(l));
        g.colStep = cw >= colW + 6 ? 1 : int(std::ceil((colW + 6) / std::max(cw, 1e-3)));
        if (markedLabel) {
            const int c0 = *std::min_element(m_marked.begin(), m_marked.end());
            const int c1 = *std::max_element(m_marked.begin(), m_marked.end());
            g.marked = QRectF(left + std::clamp(c0, 0, m_cols) * cw, top - lh - 4,
                              (std::clamp(c1 + 1, 0, m_cols) - std::clamp(c0, 0, m_cols)) * cw, lh + 2);
        }
    }
    return g;
}

QSize Heatmap::sizeHint() const {
    const QFontMetrics fm(font());
    const int rowH = std::max(fm.height() + 4, 18);
    const int gridH = std::clamp(m_rows * rowH, 120, 600);
    return {520, gridH + 4 * fm.height() + 40};
}

QSize Heatmap::minimumSizeHint() const { return {260, 150}; }

QRectF Heatmap::gridRect() const { return m_geo.grid; }

QRect Heatmap::cellRect(int row, int col) const {
    if (row < 0 || row >= m_rows || col < 0 || col >= m_cols)
        return {};
    const QRectF g = m_geo.grid;
    const double cw = g.width() / m_cols, ch = g.height() / m_rows;
    const int x0 = int(std::lround(g.left() + col * cw)), x1 = int(std::lround(g.left() + (col + 1) * cw));
    const int y0 = int(std::lround(g.top() + row * ch)), y1 = int(std::lround(g.top() + (row + 1) * ch));
    return QRect(x0, y0, std::max(1, x1 - x0), std::max(1, y1 - y0));
}

QPair<int, int> Heatmap::cellAt(QPoint pos) const {
    const QRectF g = m_geo.grid;
    if (m_rows == 0 || m_cols == 0 || pos.x() < g.left() || pos.y() < g.top() || pos.x() >= g.right() ||
        pos.y() >= g.bottom())
        return {-1, -1};
    const int c = std::clamp(int((pos.x() - g.left()) / (g.width() / m_cols)), 0, m_cols - 1);
    const int r = std::clamp(int((pos.y() - g.top()) / (g.height() / m_rows)), 0, m_rows - 1);
    return {r, c};
}

int Heatmap::rowAt(QPoint pos) const {
    const QRectF g = m_geo.grid;
    if (m_rows == 0 || pos.y() < g.top() || pos.y() >= g.bottom() || pos.x() >= g.right())
        return -1;
    if (pos.x() < g.left() - m_geo.labelWidth - 6)
        return -1;
    return std::clamp(int((pos.y() - g.top()) / (g.height() / m_rows)), 0, m_rows - 1);
}

DataTable Heatmap::table() const {
    DataTable t;
    t.title = m_title;
    t.columns << (m_rowTitle.isEmpty() ? QStringLiteral("row") : m_rowTitle)
              << (m_colTitle.isEmpty() ? QStringLiteral("column") : m_colTitle)
              << (m_legendTitle.isEmpty() ? QStringLiteral("value") : m_legendTitle);
    for (int r = 0; r < m_rows; ++r)
        for (int c = 0; c < m_cols; ++c) {
            const double v = value(r, c);
            t.addRow({rowLabel(r), colLabel(c), std::isfinite(v) ? QVariant(v) : QVariant()});
        }
    return t;
}

void Heatmap::resizeEvent(QResizeEvent*) { m_geo = computeGeometry(); }

void Heatmap::changeEvent(QEvent* e) {
    if (e->type() == QEvent::FontChange || e->type() == QEvent::PaletteChange)
        relayout();
    QWidget::changeEvent(e);
}

void Heatmap::paintEvent(QPaintEvent*) {
    QPainter p(this);
    paintTitle(p);
    if (m_rows == 0 || m_cols == 0) {
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(rect(), Qt::AlignCenter, tr("(no data)"));
        return;
    }
    paintCells(p);
    paintMarkedColumns(p);
    p.setRenderHint(QPainter::Antialiasing, true);
    paintThresholdContour(p);
    paintHighlights(p);
    p.setRenderHint(QPainter::Antialiasing, false);
    paintAxisLabels(p);
    paintLegend(p);
}

void Heatmap::paintTitle(QPainter& p) const {
    if (m_title.isEmpty())
        return;
    QFont bold = font();
    bold.setBold(true);
    const QFontMetrics fmb(bold);
    p.setFont(bold);
    p.setPen(palette().color(QPalette::WindowText));
    p.drawText(m_geo.title, Qt::AlignHCenter | Qt::AlignVCenter,
               fmb.elidedText(m_title, Qt::ElideRight, int(m_geo.title.width())));
    p.setFont(font());
}

// The cached image, cell separators when cells are large, and values in cells that fit them.
void Heatmap::paintCells(QPainter& p) const {
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const QRectF grid = m_geo.grid;
    const double cw = grid.width() / m_cols, ch = grid.height() / m_rows;

    // Empty (NaN) cells show a light cross-hatch through the transparent image pixels.
    p.fillRect(grid, pal.color(QPalette::Base));
    p.fillRect(grid, QBrush(pal.color(QPalette::Mid), Qt::DiagCrossPattern));
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    p.drawImage(grid, m_image);

    if (cw >= 10 && ch >= 10) {
        QPen sep(pal.color(QPalette::Base));
        sep.setWidthF(1);
        p.setPen(sep);
        for (int c = 1; c < m_cols; ++c)
            p.drawLine(QPointF(grid.left() + c * cw, grid.top()), QPointF(grid.left() + c * cw, grid.bottom()));
        for (int r = 1; r < m_rows; ++r)
            p.drawLine(QPointF(grid.left(), grid.top() + r * ch), QPointF(grid.right(), grid.top() + r * ch));
    }

    if (m_cellText && ch >= lh) {
        for (int r = 0; r < m_rows; ++r)
            for (int c = 0; c < m_cols; ++c) {
                const double v = value(r, c);
                if (!std::isfinite(v))
                    continue;
                const QString s = m_cellText(v);
                if (fm.horizontalAdvance(s) + 4 > cw)
                    continue;
                p.setPen(darkColor(colorFor(v)) ? Qt::white : Qt::black);
                p.drawText(QRectF(grid.left() + c * cw, grid.top() + r * ch, cw, ch), Qt::AlignCenter, s);
            }
    }
}

void Heatmap::paintMarkedColumns(QPainter& p) const {
    if (m_marked.isEmpty())
        return;
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const Geometry& g = m_geo;
    const QRectF grid = g.grid;
    const double cw = grid.width() / m_cols;
    // Washed out and hatched, with a bracket and label above.
    for (int c : m_marked) {
        if (c < 0 || c >= m_cols)
            continue;
        const QRectF col(grid.left() + c * cw, grid.top(), cw, grid.height());
        p.fillRect(col, QColor(255, 255, 255, 80));
        p.fillRect(col, QBrush(QColor(60, 60, 60, 120), Qt::BDiagPattern));
    }
    if (g.marked.isEmpty())
        return;
    p.setPen(pal.color(QPalette::WindowText));
    const QRectF m = g.marked;
    p.drawLine(QPointF(m.left() + 1, m.bottom()), QPointF(m.right() - 1, m.bottom()));
    p.drawLine(QPointF(m.left() + 1, m.bottom()), QPointF(m.left() + 1, m.bottom() - 4));
    p.drawLine(QPointF(m.right() - 1, m.bottom()), QPointF(m.right() - 1, m.bottom() - 4));
    // The label may extend left of a narrow span, over the empty corner above the row labels.
    const int tw = fm.horizontalAdvance(m_markedLabel);
    QRectF lr(m.left(), m.top() - 1, m.width(), lh);
    if (tw + 4 > lr.width())
        lr.setLeft(std::max<double>(kMargin, m.right() - tw - 4));
    p.drawText(lr, Qt::AlignRight | Qt::AlignVCenter, fm.elidedText(m_markedLabel, Qt::ElideLeft, int(lr.width())));
}

// The boundary edges between cells >= the threshold and the rest (or the border).
QVector<QLineF> Heatmap::contourEdges() const {
    const QRectF grid = m_geo.grid;
    const double cw = grid.width() / m_cols, ch = grid.height() / m_rows;
    auto inside = [&](int r, int c) {
        if (r < 0 || r >= m_rows || c < 0 || c >= m_cols)
            return false;
        const double v = value(r, c);
        return std::isfinite(v) && v >= m_threshold;
    };
    QVector<QLineF> edges;
    for (int r = 0; r < m_rows; ++r)
        for (int c = 0; c < m_cols; ++c) {
            if (!inside(r, c))
                continue;
            const double x0 = grid.left() + c * cw, x1 = x0 + cw, y0 = grid.top() + r * ch, y1 = y0 + ch;
            if (!inside(r - 1, c))
                edges.push_back(QLineF(x0, y0, x1, y0));
            if (!inside(r + 1, c))
                edges.push_back(QLineF(x0, y1, x1, y1));
            if (!inside(r, c - 1))
                edges.push_back(QLineF(x0, y0, x0, y1));
            if (!inside(r, c + 1))
                edges.push_back(QLineF(x1, y0, x1, y1));
        }
    return edges;
}

void Heatmap::paintThresholdContour(QPainter& p) const {
    if (!std::isfinite(m_threshold))
        return;
    const QVector<QLineF> edges = contourEdges();
    const double cw = m_geo.grid.width() / m_cols, ch = m_geo.grid.height() / m_rows;
    const double wOuter = std::clamp(std::min(cw, ch) / 5.0, 1.0, 3.5);
    QPen outer(Qt::black, wOuter, Qt::SolidLine, Qt::SquareCap);
    p.setPen(outer);
    p.drawLines(edges);
    if (wOuter >= 2.5) {
        p.setPen(QPen(Qt::white, wOuter / 2.5, Qt::SolidLine, Qt::SquareCap));
        p.drawLines(edges);
    }
}

// The highlighted row's frame and the hovered cell's dotted outline.
void Heatmap::paintHighlights(QPainter& p) const {
    const QPalette pal = palette();
    const QRectF grid = m_geo.grid;
    const double cw = grid.width() / m_cols, ch = grid.height() / m_rows;
    // The highlighted row: a coloured frame and a bold label.
    if (m_highlightRow >= 0) {
        const QRectF r(grid.left(), grid.top() + m_highlightRow * ch, grid.width(), ch);
        p.setBrush(Qt::NoBrush);
        p.setPen(QPen(Qt::black, 4));
        p.drawRect(r.adjusted(-1, -1, 1, 1));
        p.setPen(QPen(highlightColor(), 2.5));
        p.drawRect(r.adjusted(-1, -1, 1, 1));
    }
    if (m_hover.first >= 0 && m_hover.first < m_rows && m_hover.second < m_cols) {
        p.setBrush(Qt::NoBrush);
        p.setPen(QPen(pal.color(QPalette::WindowText), 1, Qt::DotLine));
        p.drawRect(QRectF(grid.left() + m_hover.second * cw, grid.top() + m_hover.first * ch, cw, ch));
    }
}

// Row labels, column labels and both axis titles.
void Heatmap::paintAxisLabels(QPainter& p) const {
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    QFont bold = font();
    bold.setBold(true);
    const QFontMetrics fmb(bold);
    const Geometry& g = m_geo;
    const int lh = fm.height();
    const QRectF grid = g.grid;
    const double cw = grid.width() / m_cols, ch = grid.height() / m_rows;

    // Row labels, every rowStep-th plus the highlighted one (its neighbours give way).
    p.setPen(pal.color(QPalette::WindowText));
    const double hlY = m_highlightRow >= 0 ? grid.top() + (m_highlightRow + 0.5) * ch : -1e9;
    for (int r = 0; r < m_rows; ++r) {
        const bool hl = r == m_highlightRow;
        const double cy = grid.top() + (r + 0.5) * ch;
        if (!hl && (r % g.rowStep != 0 || std::fabs(cy - hlY) < lh))
            continue;
        const QRectF lr(g.rowLabelRight - g.labelWidth, cy - lh / 2.0, g.labelWidth, lh);
        if (hl) {
            p.setFont(bold);
            p.setPen(highlightColor().darker(130));
        }
        const QFontMetrics& m = hl ? fmb : fm;
        p.drawText(lr, Qt::AlignRight | Qt::AlignVCenter, m.elidedText(rowLabel(r), Qt::ElideRight, g.labelWidth));
        if (hl) {
            p.setFont(font());
            p.setPen(pal.color(QPalette::WindowText));
        }
    }
    // Column labels, every colStep-th.
    for (int c = 0; c < m_cols; c += g.colStep) {
        const double cx = grid.left() + (c + 0.5) * cw;
        const QString s = colLabel(c);
        const int tw = fm.horizontalAdvance(s);
        p.drawText(QRectF(cx - tw / 2.0 - 2, g.colLabelTop, tw + 4, lh), Qt::AlignCenter, s);
    }
    if (!m_colTitle.isEmpty())
        p.drawText(QRectF(grid.left(), g.colTitleTop, grid.width(), lh), Qt::AlignCenter,
                   fm.elidedText(m_colTitle, Qt::ElideRight, int(grid.width())));
    if (!m_rowTitle.isEmpty()) {
        p.save();
        p.translate(g.rowTitleX, grid.center().y());
        p.rotate(-90);
        const int avail = int(std::max(grid.height(), 60.0));
        p.drawText(QRectF(-avail / 2.0, 0, avail, lh), Qt::AlignCenter,
                   fm.elidedText(m_rowTitle, Qt::ElideRight, avail));
        p.restore();
    }
}

void Heatmap::paintLegend(QPainter& p) const {
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    QFont bold = font();
    bold.setBold(true);
    const QFontMetrics fmb(bold);
    const int lh = fm.height();
    // Legend: title, a gradient bar (high at the top), min/max labels and the threshold tick.
    const QRectF lb = m_geo.legend;
    p.setPen(pal.color(QPalette::WindowText));
    if (!m_legendTitle.isEmpty()) {
        p.setFont(bold);
        p.drawText(QRectF(lb.left(), lb.top() - fmb.height() - 4, width() - lb.left() - 2, fmb.height()),
                   Qt::AlignLeft | Qt::AlignVCenter,
                   fmb.elidedText(m_legendTitle, Qt::ElideRight, int(width() - lb.left() - 2)));
        p.setFont(font());
    }
    QImage bar(1, 128, QImage::Format_RGB32);
    for (int i = 0; i < 128; ++i)
        bar.setPixel(0, i, m_color(1.0 - i / 127.0).rgb());
    p.setRenderHint(QPainter::SmoothPixmapTransform, true);
    p.drawImage(lb, bar);
    p.setPen(pal.color(QPalette::Mid));
    p.setBrush(Qt::NoBrush);
    p.drawRect(lb);
    p.setPen(pal.color(QPalette::WindowText));
    const double tx = lb.right() + 5;
    const double labelW = width() - tx - 1;
    const QRectF hiR(tx, lb.top() - 2, labelW, lh), loR(tx, lb.bottom() - lh + 2, labelW, lh);
    p.drawText(hiR, Qt::AlignLeft | Qt::AlignVCenter, formatNumber(m_hi));
    p.drawText(loR, Qt::AlignLeft | Qt::AlignVCenter, formatNumber(m_lo));
    if (std::isfinite(m_threshold) && m_hi > m_lo) {
        const double f = std::clamp((m_threshold - m_lo) / (m_hi - m_lo), 0.0, 1.0);
        const double y = lb.bottom() - f * lb.height();
        p.setPen(QPen(Qt::black, 2));
        p.drawLine(QPointF(lb.left() - 3, y), QPointF(lb.right() + 3, y));
        // The label sits between the max and min labels, joined to its tick by a leader.
        const QStringList lines = thresholdLines();
        const double lyLo = hiR.bottom() + 1, lyHi = std::max(lyLo, loR.top() - lh - 1);
        const double ly = std::clamp(y - lh / 2.0, lyLo, lyHi);
        p.setPen(pal.color(QPalette::WindowText));
        if (std::fabs(ly + lh / 2.0 - y) > 2)
            p.drawLine(QPointF(lb.right() + 3, y), QPointF(tx + 2, ly + lh / 2.0));
        for (int i = 0; i < lines.size(); ++i) {
            const double top = ly + i * lh;
            if (i > 0 && top + lh > loR.top() && top < loR.bottom())
                break; // would cover the min label
            p.drawText(QRectF(tx + 4, top, labelW - 4, lh), Qt::AlignLeft | Qt::AlignVCenter,
                       fm.elidedText(lines[i], Qt::ElideRight, int(labelW - 4)));
        }
    }
}

void Heatmap::mouseMoveEvent(QMouseEvent* e) {
    const QPoint pos = e->position().toPoint();
    const auto cell = cellAt(pos);
    if (cell != m_hover) {
        m_hover = cell;
        update();
    }
    if (cell.first >= 0)
        QToolTip::showText(e->globalPosition().toPoint(), tooltipText(cell.first, cell.second), this,
                           cellRect(cell.first, cell.second));
    else
        QToolTip::hideText();
    QWidget::mouseMoveEvent(e);
}

void Heatmap::mousePressEvent(QMouseEvent* e) {
    if (e->button() == Qt::LeftButton) {
        const int row = rowAt(e->position().toPoint());
        if (row >= 0) {
            setHighlightedRow(row);
            emit rowClicked(row);
            return;
        }
    }
    QWidget::mousePressEvent(e);
}

void Heatmap::leaveEvent(QEvent* e) {
    if (m_hover.first >= 0) {
        m_hover = {-1, -1};
        update();
    }
    QToolTip::hideText();
    QWidget::leaveEvent(e);
}

} // namespace mx
