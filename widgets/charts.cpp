#include "charts.h"

#include <QChart>
#include <QChartView>
#include <QHelpEvent>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QPainter>
#include <QScatterSeries>
#include <QToolTip>
#include <QVBoxLayout>
#include <QValueAxis>
#include <QtMath>
#include <cmath>
#include <limits>

namespace mx {

namespace {

QChartView* makeView(QWidget* parent, QChart*& chart) {
    chart = new QChart;
    chart->setAnimationOptions(QChart::NoAnimation);
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->setMargins(QMargins(4, 4, 4, 4));
    auto* view = new QChartView(chart, parent);
    view->setRenderHint(QPainter::Antialiasing);
    auto* lay = new QVBoxLayout(parent);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->addWidget(view);
    parent->setMinimumSize(220, 160);
    return view;
}

void clearChart(QChart* chart) {
    chart->removeAllSeries();
    for (auto* ax : chart->axes())
        chart->removeAxis(ax), delete ax;
}

QString titleWithNote(const QString& title, const QString& note) {
    if (note.isEmpty())
        return "<b>" + title.toHtmlEscaped() + "</b>";
    return "<b>" + title.toHtmlEscaped() + "</b><br><span style='color:#b03020'>" + note.toHtmlEscaped() + "</span>";
}

// Nice bounds for an automatic axis.
QPair<double, double> autoRange(double lo, double hi) {
    if (!std::isfinite(lo) || !std::isfinite(hi))
        return {0, 1};
    if (hi - lo < 1e-12) {
        const double pad = std::max(std::fabs(hi) * 0.1, 1e-6);
        return {lo - pad, hi + pad};
    }
    const double pad = (hi - lo) * 0.05;
    return {lo - pad, hi + pad};
}

} // namespace

QColor sequentialColor(double t) {
    // A compact viridis approximation (5 anchors, linear interpolation).
    static const QColor anchors[] = {QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140),
                                     QColor(94, 201, 98), QColor(253, 231, 37)};
    if (!std::isfinite(t))
        t = 0;
    t = std::clamp(t, 0.0, 1.0) * 4.0;
    const int i = std::min(int(t), 3);
    const double f = t - i;
    const QColor& a = anchors[i];
    const QColor& b = anchors[i + 1];
    return QColor(int(a.red() + f * (b.red() - a.red())), int(a.green() + f * (b.green() - a.green())),
                  int(a.blue() + f * (b.blue() - a.blue())));
}

QColor categoricalColor(int i) {
    static const QColor palette[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                     QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75),
                                     QColor(227, 119, 194), QColor(127, 127, 127), QColor(188, 189, 34),
                                     QColor(23, 190, 207)};
    return palette[((i % 10) + 10) % 10];
}

// ---- LineChart ----

LineChart::LineChart(const QString& title, const QString& xLabel, const QString& yLabel, QWidget* parent)
    : QWidget(parent), m_title(title), m_xLabel(xLabel), m_yLabel(yLabel) {
    m_view = makeView(this, m_chart);
    rebuild();
}

void LineChart::setSeries(const QVector<Series>& series) {
    m_series = series;
    rebuild();
}
void LineChart::setXRange(double lo, double hi) {
    m_xlo = lo;
    m_xhi = hi;
    rebuild();
}
void LineChart::setYRange(double lo, double hi) {
    m_ylo = lo;
    m_yhi = hi;
    rebuild();
}
void LineChart::setLogY(bool on) {
    m_logY = on;
    rebuild();
}
void LineChart::setMarkers(const QVector<QPair<double, QString>>& v, const QVector<QPair<double, QString>>& h) {
    m_vmarkers = v;
    m_hmarkers = h;
    rebuild();
}
void LineChart::setIntegerX(bool on) {
    m_integerX = on;
    rebuild();
}
void LineChart::setYLabel(const QString& label) {
    m_yLabel = label;
    rebuild();
}
void LineChart::setTitle(const QString& title) {
    m_title = title;
    m_chart->setTitle(titleWithNote(m_title, m_note));
}
void LineChart::setNote(const QString& text) {
    m_note = text;
    m_chart->setTitle(titleWithNote(m_title, m_note));
}

void LineChart::rebuild() {
    clearChart(m_chart);
    m_chart->setTitle(titleWithNote(m_title, m_note));
    double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
    for (const auto& s : m_series)
        for (const auto& p : s.points) {
            if (!std::isfinite(p.y()) || (m_logY && p.y() <= 0))
                continue;
            xlo = std::min(xlo, p.x());
            xhi = std::max(xhi, p.x());
            ylo = std::min(ylo, p.y());
            yhi = std::max(yhi, p.y());
        }
    for (const auto& m : m_hmarkers) {
        ylo = std::min(ylo, m.first);
        yhi = std::max(yhi, m.first);
    }
    auto xr = m_xlo < m_xhi ? qMakePair(m_xlo, m_xhi) : autoRange(xlo, xhi);
    auto yr = m_ylo < m_yhi ? qMakePair(m_ylo, m_yhi) : autoRange(ylo, yhi);
    QAbstractAxis* ax = nullptr;
    auto* xAxis = new QValueAxis;
    xAxis->setTitleText(m_xLabel);
    xAxis->setRange(xr.first, xr.second);
    xAxis->setLabelFormat("%g");
    if (m_integerX && xr.second > xr.first) {
        // Ticks on whole numbers (loops, counts), at most about 10 of them.
        xAxis->setTickType(QValueAxis::TicksDynamic);
        xAxis->setTickAnchor(std::ceil(xr.first));
        xAxis->setTickInterval(std::max(1.0, std::ceil((xr.second - xr.first) / 10.0)));
    }
    m_chart->addAxis(xAxis, Qt::AlignBottom);
    if (m_logY) {
        auto* y = new QLogValueAxis;
        y->setBase(10);
        y->setLabelFormat("%.2g");
        // Without a positive value ylo is +inf, and an infinite range sends Qt Charts' log
        // axis and domain into endless mutual recursion.
        if (yr.first <= 0)
            yr.first = std::max(1e-12, std::isfinite(ylo) ? ylo : 1.0);
        if (!std::isfinite(yr.first)) // no positive data: Qt Charts recurses forever on an infinite log range
            yr = {0.1, 1.0};
        y->setRange(std::max(yr.first, 1e-12), std::max(yr.second, yr.first * 10));
        ax = y;
    } else {
        auto* y = new QValueAxis;
        y->setRange(yr.first, yr.second);
        if (!(m_ylo < m_yhi)) {
            // An automatic range gets round tick values (0.5, 1, 1.5, ... rather than 0.85,
            // 1.68, ...); markers span the widened range.
            y->applyNiceNumbers();
            yr = {y->min(), y->max()};
        }
        y->setLabelFormat("%.3g");
        ax = y;
    }
    ax->setTitleText(m_yLabel);
    m_chart->addAxis(ax, Qt::AlignLeft);

    int auto_ = 0;
    for (const auto& s : m_series) {
        auto* ls = new QLineSeries;
        ls->setName(s.name);
        QVector<QPointF> pts;
        for (const auto& p : s.points)
            if (std::isfinite(p.y()) && (!m_logY || p.y() > 0))
                pts.push_back(p);
        ls->replace(pts);
        QPen pen(s.color.isValid() ? s.color : categoricalColor(auto_++));
        pen.setWidthF(2.0);
        if (s.dashed)
            pen.setStyle(Qt::DashLine);
        ls->setPen(pen);
        ls->setPointsVisible(s.markers);
        m_chart->addSeries(ls);
        ls->attachAxis(xAxis);
        ls->attachAxis(ax);
    }
    auto addMarker = [&](QPointF a, QPointF b, const QString& name, QColor c) {
        auto* ls = new QLineSeries;
        ls->setName(name);
        ls->append(a);
        ls->append(b);
        QPen pen(c);
        pen.setStyle(Qt::DotLine);
        pen.setWidthF(1.5);
        ls->setPen(pen);
        m_chart->addSeries(ls);
        ls->attachAxis(xAxis);
        ls->attachAxis(ax);
    };
    for (const auto& m : m_vmarkers)
        addMarker({m.first, yr.first}, {m.first, yr.second}, m.second, QColor(90, 90, 90));
    for (const auto& m : m_hmarkers)
        addMarker({xr.first, m.first}, {xr.second, m.first}, m.second, QColor(176, 48, 32));
    const qsizetype entries = m_series.size() + m_vmarkers.size() + m_hmarkers.size();
    m_chart->legend()->setVisible(entries > 1);
    // A bottom legend is one row, and Qt Charts elides its entries when they do not fit
    // (a depth sweep has one series per hop count): more than five go in a column at the right.
    m_chart->legend()->setAlignment(entries > 5 ? Qt::AlignRight : Qt::AlignBottom);
}

DataTable LineChart::table() const {
    DataTable t;
    t.title = m_title;
    t.columns << "series" << "x" << "y";
    for (const auto& s : m_series)
        for (const auto& p : s.points)
            t.addRow({s.name, p.x(), p.y()});
    return t;
}

// ---- BarChart ----
//
// Painted by hand: Qt Charts needs one stacked QBarSet per distinct colour, i.e. bars x colours
// graphics items, which made a 66-bar, 9-colour chart cost tens of milliseconds to rebuild.
// Everything below is computed from the stored data on each paint; the setters only store.

namespace {

const QColor kBarTitleColor(40, 40, 40);
const QColor kBarNoteColor(176, 48, 32);   // same dark red as the Qt Charts titles' notes
const QColor kBarMarkerColor(176, 48, 32);
const QColor kBarTextColor(70, 70, 70);
const QColor kBarGridColor(228, 228, 228);
const QColor kBarAxisColor(150, 150, 150);

struct YAxis {
    double lo = 0, hi = 1;  // shown range
    QVector<double> ticks; // nice values inside [lo, hi]
    double step = 1;
};

// Smallest step out of {1, 2, 2.5, 5} x 10^k that puts at most maxTicks ticks in the range;
// an automatic range grows outwards to whole steps.
YAxis niceAxis(double lo, double hi, bool grow, int maxTicks) {
    YAxis a;
    if (!std::isfinite(lo) || !std::isfinite(hi) || !(hi > lo)) {
        lo = 0;
        hi = 1;
    }
    const double span = hi - lo;
    static const double mult[] = {1, 2, 2.5, 5};
    double step = std::pow(10.0, std::floor(std::log10(span / maxTicks)) - 1);
    double tlo = lo, thi = hi;
    for (int guard = 0; guard < 40; ++guard) {
        bool done = false;
        for (double m : mult) {
            const double s = step * m;
            const double first = std::ceil(lo / s - 1e-9), last = std::floor(hi / s + 1e-9);
            const double glo = std::floor(lo / s + 1e-9), ghi = std::ceil(hi / s - 1e-9);
            const double n = grow ? ghi - glo + 1 : last - first + 1;
            if (n <= maxTicks) {
                step = s;
                tlo = grow ? glo * s : lo;
                thi = grow ? ghi * s : hi;
                done = true;
                break;
            }
        }
        if (done)
            break;
        step *= 10;
    }
    a.lo = tlo;
    a.hi = thi;
    a.step = step;
    for (double k = std::ceil(tlo / step - 1e-9); k <= std::floor(thi / step + 1e-9) && a.ticks.size() < 64; k += 1) {
        double v = k * step;
        if (std::fabs(v) < step * 1e-9)
            v = 0;
        a.ticks.push_back(v);
    }
    return a;
}

QString tickText(double v) {
    return QString::number(v, 'g', std::fabs(v) >= 1e6 || (v != 0 && std::fabs(v) < 1e-4) ? 3 : 7);
}

QString barValueText(double v) {
    return std::isnan(v) ? QStringLiteral("n/a") : QString::number(v, 'g', 6);
}

// 1, 2, 5, 10, 20, 50, ... : the smallest such stride >= n.
int niceStride(double n) {
    if (n <= 1)
        return 1;
    for (int base = 1;; base *= 10)
        for (int m : {1, 2, 5})
            if (m * base >= n || base > 100000000)
                return m * base;
}

} // namespace

// Pixel layout of one paint (also used by the tooltip), from the font metrics of the target device.
struct BarChart::Geometry {
    QRectF plot;            // the bars' area
    QRectF titleRect, noteRect, xTitleRect, legendRect;
    double yTitleX = 0;     // left edge of the rotated y title
    double tickLabelW = 0;
    double labelTop = 0;    // top of the category labels
    double labelH = 0;      // their height (rotated: their length)
    int labelStride = 1;    // every labelStride-th category label is drawn
    bool rotated = false;
    YAxis y;
    double slot = 0;        // width per category
    double toY(double v) const { return plot.bottom() - (v - y.lo) / (y.hi - y.lo) * plot.height(); }
};

BarChart::BarChart(const QString& title, const QString& xLabel, const QString& yLabel, QWidget* parent)
    : QWidget(parent), m_title(title), m_xLabel(xLabel), m_yLabel(yLabel),
      m_hmarker(std::numeric_limits<double>::quiet_NaN()) {
    setMinimumSize(220, 160);
    // The Qt Charts version expanded like its QChartView; layouts keep treating it that way.
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    setAttribute(Qt::WA_OpaquePaintEvent);
}

QSize BarChart::sizeHint() const { return {480, 320}; }
QSize BarChart::minimumSizeHint() const { return {220, 160}; }

void BarChart::setBars(const QStringList& categories, const QVector<double>& values, const QVector<QColor>& colors) {
    m_categories = categories;
    m_values = values;
    m_colors = colors;
    update();
}
void BarChart::setYRange(double lo, double hi) {
    m_ylo = lo;
    m_yhi = hi;
    update();
}
void BarChart::setHorizontalMarker(double y, const QString& label) {
    m_hmarker = y;
    m_hLabel = label;
    update();
}
void BarChart::setLabelAngle(int degrees) {
    m_labelAngle = degrees;
    update();
}
void BarChart::setTitle(const QString& title) {
    m_title = title;
    update();
}
void BarChart::setYLabel(const QString& label) {
    m_yLabel = label;
    update();
}
void BarChart::setNote(const QString& text) {
    m_note = text;
    update();
}

BarChart::Geometry BarChart::geometry(const QFont& font, QPaintDevice* device) const {
    Geometry g;
    QFont bold = font;
    bold.setBold(true);
    const QFontMetricsF fm(font, device), bfm(bold, device);
    const QRectF r = QRectF(rect());
    const double fh = fm.height(), margin = std::max(4.0, fh * 0.4), gap = std::max(3.0, fh * 0.3);
    const int n = int(m_values.size());

    // Top: title and note.
    double top = r.top() + margin;
    if (!m_title.isEmpty()) {
        g.titleRect = QRectF(r.left() + margin, top, r.width() - 2 * margin, bfm.height());
        top += bfm.height();
    }
    if (!m_note.isEmpty()) {
        g.noteRect = QRectF(r.left() + margin, top, r.width() - 2 * margin, fh);
        top += fh;
    }
    top += gap + fh * 0.5; // room for the top tick label's upper half

    // Bottom: legend, x title, category labels.
    double bottom = r.bottom() + 1 - margin;
    if (std::isfinite(m_hmarker) && !m_hLabel.isEmpty()) {
        g.legendRect = QRectF(r.left() + margin, bottom - fh, r.width() - 2 * margin, fh);
        bottom -= fh + gap;
    }
    if (!m_xLabel.isEmpty()) {
        g.xTitleRect = QRectF(r.left() + margin, bottom - bfm.height(), r.width() - 2 * margin, bfm.height());
        bottom -= bfm.height() + gap * 0.5;
    }
    g.rotated = m_labelAngle != 0;
    double maxLabelW = 0;
    if (n > 0) {
        // The longest label decides; measuring every one of 1000 labels stays well under 1 ms.
        for (int i = 0; i < n && i < m_categories.size(); ++i)
            maxLabelW = std::max(maxLabelW, fm.horizontalAdvance(m_categories[i]));
        if (g.rotated) {
            const double cap = std::max(fh * 3, r.height() * 0.3);
            g.labelH = std::min(maxLabelW, cap);
        } else {
            g.labelH = fh;
        }
    }
    const double tickLen = 4;
    g.labelTop = bottom - g.labelH;
    double plotBottom = g.labelTop - (n > 0 ? tickLen + 2 : tickLen);

    // Left: y title, tick labels. The tick values depend on the plot height, the tick label
    // width on the tick values: estimate the height first, it barely depends on the labels.
    const double plotH0 = std::max(10.0, plotBottom - top);
    const int maxTicks = std::clamp(int(plotH0 / (fh * 1.8)) + 1, 2, 6);
    double lo = 0, hi = 0;
    const bool automatic = !(m_ylo < m_yhi);
    if (automatic) {
        for (double v : m_values)
            if (std::isfinite(v)) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
        if (std::isfinite(m_hmarker)) {
            lo = std::min(lo, m_hmarker);
            hi = std::max(hi, m_hmarker);
        }
        if (hi > lo) {
            const double pad = (hi - lo) * 0.05;
            hi = hi > 0 ? hi + pad : hi;
            lo = lo < 0 ? lo - pad : lo;
        } else {
            hi = lo + 1;
        }
    } else {
        lo = m_ylo;
        hi = m_yhi;
    }
    g.y = niceAxis(lo, hi, automatic, maxTicks);
    for (double t : g.y.ticks)
        g.tickLabelW = std::max(g.tickLabelW, fm.horizontalAdvance(tickText(t)));
    double left = r.left() + margin;
    if (!m_yLabel.isEmpty()) {
        g.yTitleX = left;
        left += bfm.height() + gap;
    }
    left += g.tickLabelW + tickLen + 2;
    double right = r.right() + 1 - margin - fh * 0.5;
    g.plot = QRectF(QPointF(left, top), QPointF(std::max(left + 10, right), std::max(top + 10, plotBottom)));
    g.slot = n > 0 ? g.plot.width() / n : g.plot.width();

    // Category labels: every k-th one (k = 1, 2, 5, 10, ...) so that none overlaps.
    if (n > 0) {
        const double need = g.rotated ? fh * 1.1 : maxLabelW + fh * 0.6;
        g.labelStride = niceStride(need / std::max(g.slot, 1e-6));
    }
    return g;
}

void BarChart::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setFont(font());
    const Geometry g = geometry(font(), p.device());
    QFont bold = font();
    bold.setBold(true);
    const QFontMetricsF fm(font(), p.device());
    const double fh = fm.height();
    const QRectF r = QRectF(rect());
    const int n = int(m_values.size());

    p.fillRect(r, Qt::white);

    // Title and note.
    if (!g.titleRect.isEmpty()) {
        p.setFont(bold);
        p.setPen(kBarTitleColor);
        p.drawText(g.titleRect, Qt::AlignHCenter | Qt::AlignVCenter,
                   QFontMetricsF(bold, p.device()).elidedText(m_title, Qt::ElideRight, g.titleRect.width()));
    }
    if (!g.noteRect.isEmpty()) {
        p.setFont(font());
        p.setPen(kBarNoteColor);
        p.drawText(g.noteRect, Qt::AlignHCenter | Qt::AlignVCenter,
                   fm.elidedText(m_note, Qt::ElideRight, g.noteRect.width()));
    }

    // Grid and tick labels.
    p.setFont(font());
    for (double t : g.y.ticks) {
        const double y = g.toY(t);
        p.setPen(QPen(kBarGridColor, 0));
        p.drawLine(QPointF(g.plot.left(), y), QPointF(g.plot.right(), y));
        p.setPen(QPen(kBarAxisColor, 0));
        p.drawLine(QPointF(g.plot.left() - 4, y), QPointF(g.plot.left(), y));
        p.setPen(kBarTextColor);
        p.drawText(QRectF(g.plot.left() - 6 - g.tickLabelW, y - fh / 2, g.tickLabelW, fh),
                   Qt::AlignRight | Qt::AlignVCenter, tickText(t));
    }

    // Bars: from the baseline (0, or the range edge nearest to it) to the value, clamped to the range.
    const double base = std::clamp(0.0, g.y.lo, g.y.hi);
    const double yBase = g.toY(base);
    const double bw = g.slot * 0.8;
    const bool borders = bw >= 4;
    const QColor fallback = categoricalColor(0);
    for (int i = 0; i < n; ++i) {
        const double v = m_values[i];
        if (!std::isfinite(v) || v == base)
            continue; // NaN: no bar (and a zero-height bar would only draw a stray border line)
        const double yv = g.toY(std::clamp(v, g.y.lo, g.y.hi));
        const QColor c = i < m_colors.size() && m_colors[i].isValid() ? m_colors[i] : fallback;
        const double x = g.plot.left() + (i + 0.1) * g.slot;
        QRectF bar(QPointF(x, std::min(yv, yBase)), QPointF(x + bw, std::max(yv, yBase)));
        if (borders) {
            p.setPen(QPen(c.darker(120), 1));
            p.setBrush(c);
            p.drawRect(bar.adjusted(0.5, 0.5, -0.5, -0.5));
        } else {
            p.fillRect(bar, c);
        }
    }
    p.setBrush(Qt::NoBrush);

    // Axes (and the zero line when the range spans both signs).
    p.setPen(QPen(kBarAxisColor, 0));
    p.drawLine(g.plot.bottomLeft(), g.plot.topLeft());
    p.drawLine(QPointF(g.plot.left(), g.plot.bottom()), QPointF(g.plot.right(), g.plot.bottom()));
    if (g.y.lo < 0 && g.y.hi > 0)
        p.drawLine(QPointF(g.plot.left(), yBase), QPointF(g.plot.right(), yBase));

    // Horizontal marker.
    if (std::isfinite(m_hmarker) && m_hmarker >= g.y.lo && m_hmarker <= g.y.hi) {
        p.setRenderHint(QPainter::Antialiasing, true);
        QPen pen(kBarMarkerColor, 1.5, Qt::DashLine);
        p.setPen(pen);
        const double y = g.toY(m_hmarker);
        p.drawLine(QPointF(g.plot.left(), y), QPointF(g.plot.right(), y));
        p.setRenderHint(QPainter::Antialiasing, false);
    }

    // Category labels under the bars.
    p.setFont(font());
    p.setPen(kBarTextColor);
    auto labelAt = [&](int i) { return i < m_categories.size() ? m_categories[i] : QString::number(i); };
    QVector<int> shown;
    for (int i = 0; i < n; i += g.labelStride)
        shown.push_back(i);
    if (n > 0 && shown.last() != n - 1 && (n - 1 - shown.last()) * g.slot >= (g.rotated ? fh * 1.1 : 0)) {
        // The last category ("never", ...) is often the one to read: show it when it fits.
        const double need = g.rotated ? fh * 1.1
                                      : (fm.horizontalAdvance(labelAt(shown.last())) + fm.horizontalAdvance(labelAt(n - 1))) / 2 + fh * 0.6;
        if ((n - 1 - shown.last()) * g.slot >= need)
            shown.push_back(n - 1);
    }
    for (int i : shown) {
        const double cx = g.plot.left() + (i + 0.5) * g.slot;
        p.setPen(QPen(kBarAxisColor, 0));
        p.drawLine(QPointF(cx, g.plot.bottom()), QPointF(cx, g.plot.bottom() + 4));
        p.setPen(kBarTextColor);
        if (!g.rotated) {
            const QString s = labelAt(i);
            const double w = fm.horizontalAdvance(s);
            const double x = std::clamp(cx - w / 2, r.left(), std::max(r.left(), r.right() + 1 - w));
            p.drawText(QRectF(x, g.labelTop, w + 1, fh), Qt::AlignLeft | Qt::AlignVCenter, s);
        } else {
            const QString s = fm.elidedText(labelAt(i), Qt::ElideRight, g.labelH);
            p.save();
            p.translate(cx, g.labelTop);
            p.rotate(m_labelAngle);
            // Text ends at the tick, i.e. for -90 it reads upwards from below.
            p.drawText(QRectF(-g.labelH, -fh / 2, g.labelH, fh), Qt::AlignRight | Qt::AlignVCenter, s);
            p.restore();
        }
    }

    // Axis titles.
    p.setFont(bold);
    p.setPen(kBarTitleColor);
    const QFontMetricsF bfm(bold, p.device());
    if (!g.xTitleRect.isEmpty()) {
        const QRectF xr(g.plot.left(), g.xTitleRect.top(), g.plot.width(), g.xTitleRect.height());
        p.drawText(xr, Qt::AlignHCenter | Qt::AlignVCenter, bfm.elidedText(m_xLabel, Qt::ElideRight, xr.width()));
    }
    if (!m_yLabel.isEmpty()) {
        p.save();
        p.translate(g.yTitleX, g.plot.center().y());
        p.rotate(-90);
        const double len = g.plot.height() + fh;
        p.drawText(QRectF(-len / 2, 0, len, bfm.height()), Qt::AlignHCenter | Qt::AlignVCenter,
                   bfm.elidedText(m_yLabel, Qt::ElideRight, len));
        p.restore();
    }

    // Legend for the marker: a dashed sample and its label, centred at the bottom.
    if (!g.legendRect.isEmpty()) {
        p.setFont(font());
        const double sample = fh * 1.6;
        const QString s = fm.elidedText(m_hLabel, Qt::ElideRight, std::max(0.0, g.legendRect.width() - sample - 6));
        const double w = sample + 6 + fm.horizontalAdvance(s);
        const double x = g.legendRect.center().x() - w / 2, y = g.legendRect.center().y();
        p.setRenderHint(QPainter::Antialiasing, true);
        p.setPen(QPen(kBarMarkerColor, 1.5, Qt::DashLine));
        p.drawLine(QPointF(x, y), QPointF(x + sample, y));
        p.setRenderHint(QPainter::Antialiasing, false);
        p.setPen(kBarTextColor);
        p.drawText(QRectF(x + sample + 6, g.legendRect.top(), w - sample - 6 + 1, fh), Qt::AlignLeft | Qt::AlignVCenter, s);
    }
}

bool BarChart::event(QEvent* e) {
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        const int n = int(m_values.size());
        if (n > 0) {
            const Geometry g = geometry(font(), this);
            const QPointF pos = he->pos();
            const int i = int(std::floor((pos.x() - g.plot.left()) / g.slot));
            if (i >= 0 && i < n && pos.y() >= g.plot.top() && pos.y() <= g.labelTop + g.labelH) {
                const QString cat = i < m_categories.size() ? m_categories[i] : QString::number(i);
                QToolTip::showText(he->globalPos(), cat + QStringLiteral(": ") + barValueText(m_values[i]), this);
                return true;
            }
        }
        QToolTip::hideText();
        e->ignore();
        return true;
    }
    return QWidget::event(e);
}

DataTable BarChart::table() const {

    DataTable t;
    t.title = m_title;
    t.columns << "category" << "value";
    for (int i = 0; i < m_values.size(); ++i)
        t.addRow({i < m_categories.size() ? m_categories[i] : QString::number(i), m_values[i]});
    return t;
}

// ---- ScatterChart ----

ScatterChart::ScatterChart(const QString& title, const QString& xLabel, const QString& yLabel, QWidget* parent)
    : QWidget(parent), m_title(title), m_xLabel(xLabel), m_yLabel(yLabel) {
    m_view = makeView(this, m_chart);
    rebuild();
}

void ScatterChart::setPoints(const QVector<QPointF>& points, const QString& name) {
    m_points = points;
    m_name = name;
    rebuild();
}
void ScatterChart::setUnitCircle(bool on) {
    m_circle = on;
    rebuild();
}
void ScatterChart::setTitle(const QString& title) {
    m_title = title;
    m_chart->setTitle(titleWithNote(m_title, {}));
}

void ScatterChart::rebuild() {
    clearChart(m_chart);
    m_chart->setTitle(titleWithNote(m_title, {}));
    // Non-finite points cannot be drawn and would make the axis range infinite.
    QVector<QPointF> finite;
    for (const auto& p : m_points)
        if (std::isfinite(p.x()) && std::isfinite(p.y()))
            finite.push_back(p);
    double r = m_circle ? 1.1 : 0;
    for (const auto& p : finite)
        r = std::max({r, std::fabs(p.x()) * 1.1, std::fabs(p.y()) * 1.1});
    if (r <= 0)
        r = 1;
    auto* x = new QValueAxis;
    x->setRange(-r, r);
    x->setTitleText(m_xLabel);
    auto* y = new QValueAxis;
    y->setRange(-r, r);
    y->setTitleText(m_yLabel);
    m_chart->addAxis(x, Qt::AlignBottom);
    m_chart->addAxis(y, Qt::AlignLeft);
    if (m_circle) {
        auto* c = new QLineSeries;
        c->setName("unit circle");
        for (int i = 0; i <= 128; ++i)
            c->append(std::cos(2 * M_PI * i / 128), std::sin(2 * M_PI * i / 128));
        QPen pen(QColor(120, 120, 120));
        pen.setStyle(Qt::DashLine);
        c->setPen(pen);
        m_chart->addSeries(c);
        c->attachAxis(x);
        c->attachAxis(y);
    }
    auto* s = new QScatterSeries;
    s->setName(m_name);
    s->setMarkerSize(7);
    s->setColor(categoricalColor(0));
    s->replace(finite);
    m_chart->addSeries(s);
    s->attachAxis(x);
    s->attachAxis(y);
}

DataTable ScatterChart::table() const {
    DataTable t;
    t.title = m_title;
    t.columns << "x" << "y";
    for (const auto& p : m_points)
        t.addRow({p.x(), p.y()});
    return t;
}

} // namespace mx
