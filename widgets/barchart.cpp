#include "barchart.h"

#include <QHelpEvent>
#include <QPainter>
#include <QToolTip>
#include <cmath>
#include <limits>

#include "palette.h"

namespace mx {

// ---- BarChart ----
//
// Painted by hand: Qt Charts needs one stacked QBarSet per distinct colour, i.e. bars x colours
// graphics items, which made a 66-bar, 9-colour chart cost tens of milliseconds to rebuild.
// Everything below is computed from the stored data on each paint; the setters only store.

namespace {

const QColor kBarTitleColor(40, 40, 40);
const QColor kBarNoteColor(176, 48, 32); // same dark red as the Qt Charts titles' notes
const QColor kBarMarkerColor(176, 48, 32);
const QColor kBarTextColor(70, 70, 70);
const QColor kBarGridColor(228, 228, 228);
const QColor kBarAxisColor(150, 150, 150);

struct YAxis {
    double lo = 0, hi = 1; // shown range
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

QString barValueText(double v) { return std::isnan(v) ? QStringLiteral("n/a") : QString::number(v, 'g', 6); }

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
    QRectF plot; // the bars' area
    QRectF titleRect, noteRect, xTitleRect, legendRect;
    double yTitleX = 0; // left edge of the rotated y title
    double tickLabelW = 0;
    double labelTop = 0; // top of the category labels
    double labelH = 0;   // their height (rotated: their length)
    int labelStride = 1; // every labelStride-th category label is drawn
    bool rotated = false;
    YAxis y;
    double slot = 0; // width per category
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
    p.fillRect(QRectF(rect()), Qt::white);
    paintTitleAndNote(p, g);
    paintGrid(p, g);
    paintBars(p, g);
    paintAxes(p, g);
    paintCategoryLabels(p, g);
    paintAxisTitles(p, g);
    paintMarkerLegend(p, g);
}

void BarChart::paintTitleAndNote(QPainter& p, const Geometry& g) const {
    QFont bold = font();
    bold.setBold(true);
    const QFontMetricsF fm(font(), p.device());
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
}

void BarChart::paintGrid(QPainter& p, const Geometry& g) const {
    const QFontMetricsF fm(font(), p.device());
    const double fh = fm.height();
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
}

void BarChart::paintBars(QPainter& p, const Geometry& g) const {
    const int n = int(m_values.size());
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
}

// The axes, the zero line and the horizontal marker.
void BarChart::paintAxes(QPainter& p, const Geometry& g) const {
    const double yBase = g.toY(std::clamp(0.0, g.y.lo, g.y.hi));
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
}

void BarChart::paintCategoryLabels(QPainter& p, const Geometry& g) const {
    const QFontMetricsF fm(font(), p.device());
    const double fh = fm.height();
    const QRectF r = QRectF(rect());
    const int n = int(m_values.size());
    // Category labels under the bars.
    p.setFont(font());
    p.setPen(kBarTextColor);
    auto labelAt = [&](int i) { return i < m_categories.size() ? m_categories[i] : QString::number(i); };
    QVector<int> shown;
    for (int i = 0; i < n; i += g.labelStride)
        shown.push_back(i);
    if (n > 0 && shown.last() != n - 1 && (n - 1 - shown.last()) * g.slot >= (g.rotated ? fh * 1.1 : 0)) {
        // The last category ("never", ...) is often the one to read: show it when it fits.
        const double need =
            g.rotated
                ? fh * 1.1
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
}

void BarChart::paintAxisTitles(QPainter& p, const Geometry& g) const {
    QFont bold = font();
    bold.setBold(true);
    const double fh = QFontMetricsF(font(), p.device()).height();
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
}

void BarChart::paintMarkerLegend(QPainter& p, const Geometry& g) const {
    if (g.legendRect.isEmpty())
        return;
    const QFontMetricsF fm(font(), p.device());
    const double fh = fm.height();
    // A dashed sample and its label, centred at the bottom.
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
    t.columns << "category"
              << "value";
    for (int i = 0; i < m_values.size(); ++i)
        t.addRow({i < m_categories.size() ? m_categories[i] : QString::number(i), m_values[i]});
    return t;
}

} // namespace mx
