#include "trajectoryview.h"

#include <QEvent>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QScrollArea>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>

#include "charts.h"
#include "heatmap.h"

namespace mx {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QString num(double v) { return std::isfinite(v) ? QString::number(v, 'g', 4) : QStringLiteral("n/a"); }

bool finitePoint(QPointF p) { return std::isfinite(p.x()) && std::isfinite(p.y()); }

// Tick positions: about `n` round steps over [lo, hi].
QVector<double> ticks(double lo, double hi, int n) {
    QVector<double> out;
    if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi))
        return out;
    const double raw = (hi - lo) / std::max(n, 1);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * mag >= raw * 0.7) { // rather one tick more than one too few
            step = m * mag;
            break;
        }
    const double first = std::ceil(lo / step) * step;
    for (int i = 0; i < 64 && first + i * step <= hi + step * 1e-9; ++i) {
        const double v = first + i * step;
        out << (std::fabs(v) < step * 1e-9 ? 0.0 : v);
    }
    return out;
}

} // namespace

// ---- OrbitChart ----

OrbitChart::OrbitChart(QWidget* parent) : TokenChart(tr("Orbits on the first two principal components"), parent) {
    setMouseTracking(false);
}

QColor OrbitChart::loopColor(int loop, int loops) {
    // The palette's last, yellow end is hard to see on white: the orbits stop short of it.
    const double t = loops > 1 ? double(loop - 1) / double(loops - 1) : 0.5;
    return sequentialColor(0.85 * std::clamp(t, 0.0, 1.0));
}

void OrbitChart::setOrbits(const QVector<QVector<QPointF>>& orbits, int loops, const QStringList& labels, QRectF extent,
                           const QString& xTitle, const QString& yTitle) {
    m_orbits = orbits;
    m_loops = std::max(loops, 0);
    m_labels = labels;
    m_extent = extent.isValid() ? extent : QRectF(0, 0, 1, 1);
    m_xTitle = xTitle;
    m_yTitle = yTitle;
    keepSelectionInRange();
    update();
}

QRectF OrbitChart::plotRect() const {
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const double left = 2 * lh + fm.horizontalAdvance(QStringLiteral("-0.000")) + 8;
    const double top = 2 * lh + 18; // title and the loop legend
    const double bottom = height() - 2 * lh - 10, right = width() - 14;
    return QRectF(QPointF(left, top), QPointF(std::max(left + 10, right), std::max(top + 10, bottom)));
}

QPointF OrbitChart::toPixel(QPointF v) const {
    const QRectF r = plotRect();
    const double fx = m_extent.width() > 0 ? (v.x() - m_extent.left()) / m_extent.width() : 0.5;
    const double fy = m_extent.height() > 0 ? (v.y() - m_extent.top()) / m_extent.height() : 0.5;
    return {r.left() + fx * r.width(), r.bottom() - fy * r.height()};
}

QPair<int, int> OrbitChart::pointAt(QPoint pos) const {
    QPair<int, int> best{-1, -1};
    double bestD = 8.0;
    // The selected orbit is on top: it wins ties.
    for (int t = 0; t < m_orbits.size(); ++t)
        for (int l = 0; l < m_orbits[t].size(); ++l) {
            if (!finitePoint(m_orbits[t][l]))
                continue;
            const double d = QLineF(toPixel(m_orbits[t][l]), QPointF(pos)).length() - (t == m_selected ? 0.5 : 0.0);
            if (d < bestD) {
                bestD = d;
                best = {t, l};
            }
        }
    return best;
}

int OrbitChart::tokenAt(QPoint pos) const { return pointAt(pos).first; }

QString OrbitChart::tooltipAt(QPoint pos) const {
    const auto [t, l] = pointAt(pos);
    if (t < 0)
        return {};
    const QPointF v = m_orbits[t][l];
    return tr("token %1 '%2', loop %3: PC1 %4, PC2 %5 (click to select)")
        .arg(t)
        .arg(m_labels.value(t))
        .arg(l + 1)
        .arg(num(v.x()), num(v.y()));
}

void OrbitChart::paintOrbit(QPainter& p, int t, bool selected) const {
    const QVector<QPointF>& orbit = m_orbits[t];
    const double width = selected ? 3.2 : 1.3;
    const double rad = selected ? 4.2 : 2.6;
    QPointF prev;
    bool havePrev = false;
    for (int l = 0; l < orbit.size(); ++l) {
        if (!finitePoint(orbit[l])) {
            havePrev = false;
            continue;
        }
        const QPointF px = toPixel(orbit[l]);
        if (havePrev) {
            QColor c = selected ? selectionColor() : loopColor(l + 1, m_loops);
            if (!selected)
                c.setAlpha(170);
            if (selected) {
                p.setPen(QPen(Qt::black, width + 2, Qt::SolidLine, Qt::RoundCap));
                p.drawLine(prev, px);
            }
            p.setPen(QPen(c, width, Qt::SolidLine, Qt::RoundCap));
            p.drawLine(prev, px);
        }
        prev = px;
        havePrev = true;
    }
    for (int l = 0; l < orbit.size(); ++l) {
        if (!finitePoint(orbit[l]))
            continue;
        const QColor c = loopColor(l + 1, m_loops);
        p.setPen(selected ? QPen(selectionColor().darker(150), 1.5) : QPen(c.darker(130), 0.6));
        p.setBrush(c);
        p.drawEllipse(toPixel(orbit[l]), rad, rad);
    }
}

void OrbitChart::paintLegend(QPainter& p, const QRectF& plot) const {
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const QString lead = tr("loop");
    const QString lo = QStringLiteral("1"), hi = QString::number(m_loops);
    const int gw = int(std::clamp(plot.width() / 4, 60.0, 180.0));
    const int total = fm.horizontalAdvance(lead) + 6 + fm.horizontalAdvance(lo) + 4 + gw + 4 + fm.horizontalAdvance(hi);
    double x = plot.right() - total;
    const double y = plot.top() - lh - 6;
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRectF(x, y, fm.horizontalAdvance(lead) + 2, lh), Qt::AlignVCenter, lead);
    x += fm.horizontalAdvance(lead) + 6;
    p.drawText(QRectF(x, y, fm.horizontalAdvance(lo) + 2, lh), Qt::AlignVCenter, lo);
    x += fm.horizontalAdvance(lo) + 4;
    QLinearGradient g(x, 0, x + gw, 0);
    for (int i = 0; i <= 8; ++i)
        g.setColorAt(i / 8.0, sequentialColor(0.85 * i / 8.0));
    p.setPen(pal.color(QPalette::Mid));
    p.setBrush(g);
    p.drawRect(QRectF(x, y + 2, gw, lh - 4));
    x += gw + 4;
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRectF(x, y, fm.horizontalAdvance(hi) + 2, lh), Qt::AlignVCenter, hi);
    if (m_selected >= 0) {
        QFont b = font();
        b.setBold(true);
        p.setFont(b);
        p.setPen(selectionColor().darker(130));
        const QString s = tr("\u2501 token %1 '%2'").arg(m_selected).arg(m_labels.value(m_selected));
        const double avail = plot.right() - total - plot.left() - 12;
        p.drawText(QRectF(plot.left(), y, std::max(0.0, avail), lh), Qt::AlignLeft | Qt::AlignVCenter,
                   QFontMetrics(b).elidedText(s, Qt::ElideRight, int(std::max(0.0, avail))));
        p.setFont(font());
    }
}

void OrbitChart::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const QRectF r = plotRect();
    if (!paintFrame(p, r, !m_orbits.isEmpty() && m_loops >= 1))
        return;
    // Grid, ticks and axis titles.
    const QVector<double> xt = ticks(m_extent.left(), m_extent.right(), std::max(2, int(r.width() / 90)));
    const QVector<double> yt = ticks(m_extent.top(), m_extent.bottom(), std::max(2, int(r.height() / 60)));
    for (double v : xt) {
        const double x = toPixel({v, m_extent.top()}).x();
        p.setPen(QPen(pal.color(v == 0 ? QPalette::Mid : QPalette::Midlight), 1));
        p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()));
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(QRectF(x - 40, r.bottom() + 2, 80, lh), Qt::AlignCenter, QString::number(v, 'g', 3));
    }
    for (double v : yt) {
        const double y = toPixel({m_extent.left(), v}).y();
        p.setPen(QPen(pal.color(v == 0 ? QPalette::Mid : QPalette::Midlight), 1));
        p.drawLine(QPointF(r.left(), y), QPointF(r.right(), y));
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(QRectF(0, y - lh / 2.0, r.left() - 4, lh), Qt::AlignRight | Qt::AlignVCenter,
                   QString::number(v, 'g', 3));
    }
    p.setPen(pal.color(QPalette::Mid));
    p.setBrush(Qt::NoBrush);
    p.drawRect(r);
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRectF(r.left(), r.bottom() + lh + 4, r.width(), lh), Qt::AlignCenter,
               fm.elidedText(m_xTitle, Qt::ElideRight, int(r.width())));
    p.save();
    p.translate(4, r.center().y());
    p.rotate(-90);
    p.drawText(QRectF(-r.height() / 2, 0, r.height(), lh), Qt::AlignCenter,
               fm.elidedText(m_yTitle, Qt::ElideRight, int(r.height())));
    p.restore();
    paintLegend(p, r);
    p.save();
    p.setClipRect(r.adjusted(-6, -6, 6, 6));
    for (int t = 0; t < m_orbits.size(); ++t)
        if (t != m_selected)
            paintOrbit(p, t, false);
    if (m_selected >= 0) {
        paintOrbit(p, m_selected, true);
        // Where the selected orbit starts and ends.
        const QVector<QPointF>& o = m_orbits[m_selected];
        QFont b = font();
        b.setBold(true);
        p.setFont(b);
        for (int l : {0, int(o.size()) - 1}) {
            if (l < 0 || !finitePoint(o[l]))
                continue;
            const QPointF px = toPixel(o[l]);
            const QString s = QString::number(l + 1);
            const QRectF box(px.x() + 6, px.y() - lh - 2, QFontMetrics(b).horizontalAdvance(s) + 6, lh);
            p.setPen(Qt::NoPen);
            p.setBrush(QColor(255, 255, 255, 210));
            p.drawRoundedRect(box, 3, 3);
            p.setPen(selectionColor().darker(140));
            p.drawText(box, Qt::AlignCenter, s);
            if (o.size() == 1)
                break;
        }
        p.setFont(font());
    }
    p.restore();
}

DataTable OrbitChart::table() const {
    DataTable t;
    t.title = m_title;
    t.columns << "index"
              << "token"
              << "loop"
              << "PC1"
              << "PC2";
    for (int i = 0; i < m_orbits.size(); ++i)
        for (int l = 0; l < m_orbits[i].size(); ++l) {
            const QPointF v = m_orbits[i][l];
            t.addRow({i, m_labels.value(i), l + 1, std::isfinite(v.x()) ? QVariant(v.x()) : QVariant(),
                      std::isfinite(v.y()) ? QVariant(v.y()) : QVariant()});
        }
    return t;
}

// ---- TrajectoryView ----

TrajectoryView::TrajectoryView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);
    m_summary = addSummaryLabel(content, lay);

    m_message = new WrapLabel(content);
    m_message->setObjectName("trajectoryMessage");
    m_message->setStyleSheet("QLabel { color: #5a4a00; background: #fff6d5; border: 1px solid #e0c860;"
                             " border-radius: 3px; padding: 4px; font-weight: bold; }");
    m_message->hide();
    lay->addWidget(m_message);

    m_orbit = new OrbitChart(content);
    m_orbit->setMinimumSize(380, 360);
    m_delta = new Heatmap(content);
    m_delta->setAxisTitles(tr("token"), tr("loop"));
    m_delta->setMinimumSize(260, 300);
    m_cos = new Heatmap(content);
    m_cos->setTitle(tr("cos(h(t), h(K))"));
    m_cos->setAxisTitles(tr("token"), tr("loop"));
    m_cos->setLegendTitle(tr("cos"));
    m_cos->setMinimumSize(260, 300);

    m_body = new QWidget(content);
    auto* row = new QHBoxLayout(m_body);
    row->setContentsMargins(0, 0, 0, 0);
    row->setSpacing(8);
    // A long prompt makes the heatmaps tall: the plane stays at the top, not stretched with them.
    m_orbit->setMaximumHeight(720);
    row->addWidget(m_orbit, 5, Qt::AlignTop);
    row->addWidget(m_delta, 3);
    row->addWidget(m_cos, 3);
    lay->addWidget(m_body, 1);
    lay->addStretch(0); // takes the room only while the body is hidden

    connect(m_orbit, &OrbitChart::tokenClicked, this, &TrajectoryView::selectFromUi);
    connect(m_delta, &Heatmap::rowClicked, this, &TrajectoryView::selectFromUi);
    connect(m_cos, &Heatmap::rowClicked, this, &TrajectoryView::selectFromUi);

    m_summary->setText(noTraceText());
    showOrbits();
    showHeatmaps();
}

void TrajectoryView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    m_data = mythos::trajectoryViewData(*trace);
    m_labels.clear();
    for (int t = 0; t < int(trace->seqLen); ++t)
        m_labels << displayToken(*trace, t);
    if (m_selected >= int(m_data.tokens))
        m_selected = -1;
    showOrbits();
    showHeatmaps();
    showSummary();
    applySelection();
}

void TrajectoryView::showOrbits() {
    const int T = int(m_data.tokens), K = int(m_data.loops);
    // The orbits by loop from the trace (trajectoryViewData drops non-finite points, which
    // would shift the loops of the rest).
    QVector<QVector<QPointF>> orbits(T);
    if (m_trace && K > 0) {
        const mythos::TrajectoryRecord& r = m_trace->trajectory;
        const int64_t N = m_trace->batch * m_trace->seqLen;
        for (int t = 0; t < T; ++t)
            for (int l = 0; l < K; ++l) {
                const std::size_t at = std::size_t(l * N + t) * 2;
                orbits[t] << (at + 1 < r.coords.size() ? QPointF(r.coords[at], r.coords[at + 1]) : QPointF(kNaN, kNaN));
            }
    }
    const auto pct = [](double v) { return QString::number(100.0 * v, 'f', 1); };
    m_orbit->setOrbits(orbits, K, m_labels.mid(0, T),
                       QRectF(QPointF(m_data.xMin, m_data.yMin), QPointF(m_data.xMax, m_data.yMax)),
                       tr("PC1 (%1% of variance)").arg(pct(m_data.explained[0])),
                       tr("PC2 (%1% of variance)").arg(pct(m_data.explained[1])));
}

void TrajectoryView::showHeatmaps() {
    const int T = int(m_data.tokens), K = int(m_data.loops);
    QStringList rowLabels, colLabels;
    for (int t = 0; t < T; ++t)
        rowLabels << QStringLiteral("%1 %2").arg(t).arg(m_labels.value(t));
    for (int l = 1; l <= K; ++l)
        colLabels << QString::number(l);
    // |h_t - h_{t-1}| on a log scale when it spans more than two decades.
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (double v : m_data.delta)
        if (std::isfinite(v) && v > 0) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    m_deltaLog = std::isfinite(lo) && hi / lo > 100;
    QVector<double> delta;
    for (double v : m_data.delta)
        delta << (m_deltaLog ? (v > 0 ? std::log10(v) : kNaN) : v);
    m_delta->setTitle(m_deltaLog ? tr("Step |h(t) \u2212 h(t\u22121)| (log scale)")
                                 : tr("Step |h(t) \u2212 h(t\u22121)|"));
    m_delta->setLegendTitle(m_deltaLog ? tr("log10 |\u0394h|") : tr("|\u0394h|"));
    if (m_deltaLog)
        m_delta->setRange(std::floor(std::log10(lo)), std::ceil(std::log10(hi)));
    else
        m_delta->setRange(0, m_data.deltaTop);
    m_delta->setData(T, K, delta, rowLabels, colLabels);
    // cos(h_t, h_K) in [min, 1] (the last loop is 1 by definition).
    double cmin = 1;
    for (double v : m_data.cosFinal)
        if (std::isfinite(v))
            cmin = std::min(cmin, v);
    cmin = std::max(-1.0, std::floor(cmin * 10.0) / 10.0);
    m_cos->setRange(std::min(cmin, 0.9), 1.0);
    m_cos->setData(T, K, QVector<double>(m_data.cosFinal.begin(), m_data.cosFinal.end()), rowLabels, colLabels);

    const int minH = std::clamp(T * (fontMetrics().height() + 2) + 5 * fontMetrics().height() + 20, 300,
                                std::max(300, 60 * (fontMetrics().height() + 2)));
    m_delta->setMinimumHeight(minH);
    m_cos->setMinimumHeight(minH);
    m_orbit->setMinimumHeight(std::clamp(minH, 360, 640));

    const auto cellTip = [this](int row, int col) {
        const std::size_t i = std::size_t(row * m_data.loops + col);
        if (i >= m_data.delta.size())
            return QString();
        return tr("token %1 '%2', loop %3: |h(t) \u2212 h(t\u22121)| = %4, cos(h(t), h(K)) = %5")
            .arg(row)
            .arg(m_labels.value(row))
            .arg(col + 1)
            .arg(num(m_data.delta[i]), num(m_data.cosFinal[i]));
    };
    m_delta->tooltip = cellTip;
    m_cos->tooltip = cellTip;
}

void TrajectoryView::showSummary() {
    if (!m_trace) {
        m_message->hide();
        m_summary->setText(noTraceText());
        return;
    }
    const int T = int(m_data.tokens), K = int(m_data.loops);
    m_body->setVisible(K > 0);
    if (K < 1) {
        m_message->setText(tr("This trace has no trajectories; run the prompt (or mythos-cli trace --trajectory)."));
        m_message->show();
        m_summary->setText(tr("%n token(s); no trajectories recorded.", nullptr, int(m_trace->seqLen)));
        return;
    }
    m_message->hide();
    // How much the last loop still moves the states, against the first.
    double first = 0, last = 0;
    int n = 0;
    for (int t = 0; t < T; ++t) {
        const double a = m_data.delta[std::size_t(t * K)], b = m_data.delta[std::size_t(t * K + K - 1)];
        if (std::isfinite(a) && std::isfinite(b)) {
            first += a;
            last += b;
            ++n;
        }
    }
    QStringList parts;
    parts << (T == 1 ? tr("1 token") : tr("%1 tokens").arg(T));
    parts << tr("K = %1 loops").arg(K);
    parts << tr("PC1 + PC2 explain %1% of the variance")
                 .arg(QString::number(100.0 * (m_data.explained[0] + m_data.explained[1]), 'f', 1));
    if (n > 0 && K > 1)
        parts << tr("mean step at loop 1: %1, at loop %2: %3").arg(num(first / n)).arg(K).arg(num(last / n));
    m_summary->setText(parts.join(QStringLiteral("  \u00b7  ")));
}

QString TrajectoryView::summary() const { return m_summary->text(); }

void TrajectoryView::setSelectedToken(int index) {
    if (keepSelection(index, int(m_data.tokens)))
        applySelection();
}

void TrajectoryView::applySelection() {
    m_orbit->setSelected(m_selected);
    m_delta->setHighlightedRow(m_selected);
    m_cos->setHighlightedRow(m_selected);
}

DataTable TrajectoryView::cellTable(const QString& title, const QString& column,
                                    const std::vector<double>& values) const {
    DataTable t;
    t.title = title;
    t.columns << "index"
              << "token"
              << "loop" << column;
    const int T = int(m_data.tokens), K = int(m_data.loops);
    for (int r = 0; r < T; ++r)
        for (int l = 0; l < K; ++l) {
            const double v = values[std::size_t(r * K + l)];
            t.addRow({r, m_labels.value(r), l + 1, std::isfinite(v) ? QVariant(v) : QVariant()});
        }
    return t;
}

QList<ChartHandle> TrajectoryView::charts() const {
    QList<ChartHandle> out;
    out << ChartHandle{"trajectory-pca", m_orbit->title(), m_orbit, [this] { return m_orbit->table(); }};
    out << ChartHandle{"trajectory-step", tr("Step |h_t - h_{t-1}| per token and loop"), m_delta,
                       [this] { return cellTable(tr("Step per token and loop"), "|h_t - h_{t-1}|", m_data.delta); }};
    out << ChartHandle{"trajectory-cos-final", tr("cos(h_t, h_K) per token and loop"), m_cos, [this] {
                           return cellTable(tr("cos(h_t, h_K) per token and loop"), "cos(h_t, h_K)", m_data.cosFinal);
                       }};
    return out;
}

} // namespace mx
