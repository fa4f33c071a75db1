#include "chartadapter.h"

#include <QChart>
#include <QChartView>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QPainter>
#include <QScatterSeries>
#include <QVBoxLayout>
#include <QValueAxis>
#include <QtMath>
#include <cmath>
#include <limits>

#include "palette.h"

namespace mx {

namespace {
// A series name as the legend (rich text) must get it: the characters of tags escaped.
QString legendText(QString name) { return name.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"); }
} // namespace

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
        ls->setName(legendText(s.name)); // the legend renders rich text: "kl<0.01" must stay text
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
        ls->setName(legendText(name));
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
    t.columns << "series"
              << "x"
              << "y";
    for (const auto& s : m_series)
        for (const auto& p : s.points)
            t.addRow({s.name, p.x(), p.y()});
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
    t.columns << "x"
              << "y";
    for (const auto& p : m_points)
        t.addRow({p.x(), p.y()});
    return t;
}

} // namespace mx
