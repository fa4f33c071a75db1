#include "attentionview.h"

#include <QGridLayout>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QScrollArea>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>

#include "charts.h"
#include "heatmap.h"
#include "inferenceworker.h"

namespace mx {

namespace {

constexpr int kGap = 6;
constexpr int kMinCell = 20, kMaxCell = 64;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QString num(double v, int prec = 3) { return std::isfinite(v) ? QString::number(v, 'f', prec) : QStringLiteral("-"); }

// Probabilities of one (site, head) with the masked cells (key after query) empty.
QVector<double> causalCells(const mythos::Trace& tr, int site, int head, int w) {
    const std::vector<double> m = mythos::attentionMatrix(tr, std::size_t(site), head);
    QVector<double> v(qsizetype(w) * w, kNaN);
    if (m.size() != std::size_t(w) * std::size_t(w))
        return v;
    for (int i = 0; i < w; ++i)
        for (int j = 0; j <= i; ++j)
            v[qsizetype(i) * w + j] = m[std::size_t(i) * std::size_t(w) + std::size_t(j)];
    return v;
}

// Mean of head h's values over the recurrent sites (every site when none is recurrent).
double headMean(const mythos::AttentionGridData& g, const std::vector<double>& v, int h) {
    const int S = int(g.names.size()), H = int(g.heads);
    bool anyRecurrent = false;
    for (int s = 0; s < S; ++s)
        anyRecurrent = anyRecurrent || g.recurrent[std::size_t(s)];
    double sum = 0;
    int n = 0;
    for (int s = 0; s < S; ++s) {
        const double x = v[std::size_t(s * H + h)];
        if ((!anyRecurrent || g.recurrent[std::size_t(s)]) && std::isfinite(x)) {
            sum += x;
            ++n;
        }
    }
    return n ? sum / n : kNaN;
}

} // namespace

// A square-root scale: the few large probabilities (a query near the window's start has few
// keys) would otherwise leave every other cell at the bottom of the colour map.
QColor attentionColor(double t) { return sequentialColor(std::sqrt(std::max(0.0, t))); }

QPair<int, int> attentionWindowFor(int seqLen, int selected, int curFrom, int curTo) {
    if (seqLen <= 0)
        return {0, 0};
    const int widest = std::min(seqLen, kAttentionWindow);
    const bool holds = selected < 0 || (selected >= curFrom && selected < curTo);
    if (curFrom >= 0 && curTo <= seqLen && curTo - curFrom == widest && holds)
        return {curFrom, curTo};
    if (selected < 0 || selected >= seqLen)
        return {0, widest};
    const int from = std::max(0, selected + 1 - kAttentionWindow);
    return {from, std::min(seqLen, from + kAttentionWindow)};
}

TracePtr attentionShown(const TracePtr& trace, int selected, const TracePtr& shown) {
    if (!trace || trace->attention.sites.empty())
        return trace;
    const int from = int(trace->attention.from), to = int(trace->attentionEnd());
    if (to - from <= kAttentionWindow)
        return trace;
    if (shown && shown != trace &&
        (selected < 0 || (selected >= shown->attention.from && selected < shown->attentionEnd())))
        return shown;
    int first = selected >= from && selected < to ? selected + 1 - kAttentionWindow : from;
    first = std::clamp(first, from, to - kAttentionWindow);
    return std::make_shared<const mythos::Trace>(mythos::attentionWindowTrace(*trace, first, first + kAttentionWindow));
}

QString attentionSiteLabel(const mythos::AttentionGridData& g, int site) {
    if (site < 0 || site >= int(g.names.size()))
        return {};
    if (g.recurrent[std::size_t(site)])
        return QObject::tr("loop %1").arg(g.loops[std::size_t(site)]);
    QString name = QString::fromStdString(g.names[std::size_t(site)]);
    name.replace('_', ' ');
    return name;
}

int defaultAttentionSite(const mythos::AttentionGridData& g) {
    for (int s = int(g.names.size()) - 1; s >= 0; --s)
        if (g.recurrent[std::size_t(s)])
            return s;
    return int(g.names.size()) - 1;
}

double attentionTop(const mythos::Trace& tr) {
    double top = 0;
    for (const auto& s : tr.attention.sites)
        for (float p : s.probs)
            if (std::isfinite(p))
                top = std::max(top, double(p));
    return top > 0 ? std::max(top, 1e-6) : 1.0;
}

void showAttentionMatrix(Heatmap* map, const mythos::Trace& tr, const mythos::AttentionGridData& g, int site, int head,
                         double top, int selected) {
    const int W = int(g.to - g.from), from = int(g.from);
    if (site < 0 || site >= int(g.names.size()) || W < 1) {
        map->setData(0, 0, {}, {}, {});
        map->setTitle({});
        return;
    }
    QStringList rows, cols, tokens;
    for (int i = 0; i < W; ++i) {
        tokens << displayToken(tr, from + i);
        rows << QStringLiteral("%1 %2").arg(from + i).arg(tokens.back());
        cols << tokens.back();
    }
    map->setData(W, W, causalCells(tr, site, head, W), rows, cols);
    map->setRange(0, top);
    map->setColorFunction(attentionColor);
    map->setLegendTitle(QObject::tr("p (sqrt scale)"));
    map->setTitle(QObject::tr("Head %1, %2 (%3): positions %4-%5")
                      .arg(head)
                      .arg(attentionSiteLabel(g, site), QString::fromStdString(g.names[std::size_t(site)]))
                      .arg(from)
                      .arg(from + W - 1));
    map->tooltip = [map, tokens, from](int r, int c) {
        const QString head = QObject::tr("query '%1' (position %2) -> key '%3' (position %4)")
                                 .arg(tokens.value(r))
                                 .arg(from + r)
                                 .arg(tokens.value(c))
                                 .arg(from + c);
        if (c > r)
            return QObject::tr("%1: masked (the key comes after the query)").arg(head);
        const double p = map->value(r, c);
        return std::isfinite(p) ? QStringLiteral("%1: p = %2").arg(head, QString::number(p, 'f', 3))
                                : QObject::tr("%1: p not finite").arg(head);
    };
    map->setHighlightedRow(selected >= from && selected < from + W ? selected - from : -1);
}

QVector<Series> attentionLoopSeries(const mythos::AttentionGridData& g, bool distance, const QString& prefix,
                                    bool dashed) {
    const int S = int(g.names.size()), H = int(g.heads);
    int recurrent = 0;
    for (int s = 0; s < S; ++s)
        recurrent += g.recurrent[std::size_t(s)] ? 1 : 0;
    QVector<Series> out;
    for (int h = 0; h < H; ++h) {
        Series sr;
        sr.name = prefix + QObject::tr("head %1").arg(h);
        sr.color = categoricalColor(h);
        sr.dashed = dashed;
        sr.markers = recurrent <= 24;
        for (int s = 0; s < S; ++s) {
            if (!g.recurrent[std::size_t(s)])
                continue;
            const double v = (distance ? g.distance : g.entropy)[std::size_t(s * H + h)];
            if (std::isfinite(v))
                sr.points << QPointF(double(g.loops[std::size_t(s)]), v);
        }
        out << sr;
    }
    return out;
}

// ---- AttentionGrid ----

AttentionGrid::AttentionGrid(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Minimum);
    setAccessibleName(tr("Attention of every head and site"));
}

void AttentionGrid::clear() {
    m_images.clear();
    m_values.clear();
    m_siteLabels.clear();
    m_siteNames.clear();
    m_entropy.clear();
    m_distance.clear();
    m_heads = m_w = m_from = 0;
    m_site = -1;
    m_head = 0;
    m_row = -1;
    updateGeometry();
    update();
}

void AttentionGrid::setData(const mythos::Trace& tr, const mythos::AttentionGridData& g, double top) {
    clear();
    const int S = int(g.names.size()), H = int(g.heads), W = int(g.to - g.from);
    if (S < 1 || H < 1 || W < 1)
        return;
    m_heads = H;
    m_w = W;
    m_from = int(g.from);
    for (int s = 0; s < S; ++s) {
        m_siteLabels << attentionSiteLabel(g, s);
        m_siteNames << QString::fromStdString(g.names[std::size_t(s)]);
        for (int h = 0; h < H; ++h) {
            QVector<double> v = causalCells(tr, s, h, W);
            QImage img(W, W, QImage::Format_ARGB32);
            for (int i = 0; i < W; ++i) {
                auto* line = reinterpret_cast<QRgb*>(img.scanLine(i));
                for (int j = 0; j < W; ++j) {
                    const double p = v[qsizetype(i) * W + j];
                    line[j] =
                        std::isfinite(p) ? attentionColor(std::clamp(p / top, 0.0, 1.0)).rgb() : qRgba(0, 0, 0, 0);
                }
            }
            m_images << img;
            m_values << v;
            m_entropy << g.entropy[std::size_t(s * H + h)];
            m_distance << g.distance[std::size_t(s * H + h)];
        }
    }
    m_site = 0;
    updateGeometry();
    update();
}

void AttentionGrid::setCurrent(int site, int head) {
    if (site < 0 || site >= sites() || head < 0 || head >= m_heads)
        return;
    if (site == m_site && head == m_head)
        return;
    m_site = site;
    m_head = head;
    update();
    emit currentChanged(site, head);
}

void AttentionGrid::setHighlightedRow(int row) {
    m_row = row >= 0 && row < m_w ? row : -1;
    update();
}

int AttentionGrid::headerWidth() const {
    QFont bold = font();
    bold.setBold(true); // the current head's header
    return QFontMetrics(bold).horizontalAdvance(tr("head %1").arg(m_heads)) + 10;
}
int AttentionGrid::headerHeight() const { return fontMetrics().height() + 6; }

int AttentionGrid::cellSize(int width) const {
    const int S = std::max(1, sites());
    return std::clamp((width - headerWidth() - 4) / S - kGap, kMinCell, kMaxCell);
}

int AttentionGrid::cellSize() const {
    const int H = std::max(1, m_heads);
    return std::max(kMinCell, std::min(cellSize(width()), (height() - headerHeight() - 4) / H - kGap));
}

int AttentionGrid::heightForWidth(int width) const {
    return headerHeight() + std::max(1, m_heads) * (cellSize(width) + kGap) + 4;
}

QRect AttentionGrid::mapRect(int site, int head) const {
    if (site < 0 || site >= sites() || head < 0 || head >= m_heads)
        return {};
    const int c = cellSize();
    return QRect(headerWidth() + site * (c + kGap), headerHeight() + head * (c + kGap), c, c);
}

QPair<int, int> AttentionGrid::mapAt(QPoint pos) const {
    for (int s = 0; s < sites(); ++s)
        for (int h = 0; h < m_heads; ++h)
            if (mapRect(s, h).adjusted(-kGap / 2, -kGap / 2, kGap / 2, kGap / 2).contains(pos))
                return {s, h};
    return {-1, -1};
}

QSize AttentionGrid::sizeHint() const {
    return {headerWidth() + std::max(1, sites()) * (kMaxCell + kGap) + 4, heightForWidth(width())};
}

QSize AttentionGrid::minimumSizeHint() const {
    return {headerWidth() + std::max(1, sites()) * (kMinCell + kGap) + 4,
            headerHeight() + std::max(1, m_heads) * (kMinCell + kGap) + 4};
}

QString AttentionGrid::tooltipText(int site, int head) const {
    if (site < 0 || site >= sites() || head < 0 || head >= m_heads)
        return {};
    const qsizetype i = qsizetype(site) * m_heads + head;
    return tr("head %1, %2 (%3): entropy %4 nats, mean distance %5 positions; click to enlarge")
        .arg(head)
        .arg(m_siteLabels[site], m_siteNames[site], num(m_entropy[i]), num(m_distance[i], 2));
}

void AttentionGrid::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    if (m_images.isEmpty()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(rect(), Qt::AlignCenter, tr("(no attention)"));
        return;
    }
    const int c = cellSize();
    QFont bold = font();
    bold.setBold(true);
    for (int s = 0; s < sites(); ++s) {
        const QRect r = mapRect(s, 0);
        p.setFont(s == m_site ? bold : font());
        p.setPen(pal.color(QPalette::WindowText));
        const QRect hr(r.left() - kGap / 2, 0, c + kGap, headerHeight() - 2);
        p.drawText(hr, Qt::AlignHCenter | Qt::AlignBottom,
                   QFontMetrics(p.font()).elidedText(m_siteLabels[s], Qt::ElideRight, hr.width()));
    }
    for (int h = 0; h < m_heads; ++h) {
        const QRect r = mapRect(0, h);
        p.setFont(h == m_head ? bold : font());
        p.drawText(QRect(0, r.top(), headerWidth() - 6, c), Qt::AlignRight | Qt::AlignVCenter, tr("head %1").arg(h));
    }
    p.setFont(font());
    for (int s = 0; s < sites(); ++s)
        for (int h = 0; h < m_heads; ++h) {
            const QRect r = mapRect(s, h);
            p.fillRect(r, pal.color(QPalette::Base));
            p.drawImage(r, m_images[s * m_heads + h]);
            p.setPen(pal.color(QPalette::Mid));
            p.setBrush(Qt::NoBrush);
            p.drawRect(r.adjusted(0, 0, -1, -1));
            if (m_row >= 0) {
                const double rowH = double(c) / m_w;
                const QRectF row(r.left(), r.top() + m_row * rowH, r.width(), std::max(rowH, 1.0));
                p.setPen(QPen(selectionColor(), 1.5));
                p.drawRect(row.adjusted(-0.5, -0.5, 0.5, 0.5));
            }
        }
    if (m_site >= 0) {
        const QRect r = mapRect(m_site, m_head).adjusted(-3, -3, 2, 2);
        p.setPen(QPen(pal.color(QPalette::WindowText), 2));
        p.setBrush(Qt::NoBrush);
        p.drawRect(r);
        if (hasFocus()) {
            p.setPen(QPen(pal.color(QPalette::Highlight), 1, Qt::DotLine));
            p.drawRect(r.adjusted(-2, -2, 2, 2));
        }
    }
}

void AttentionGrid::mousePressEvent(QMouseEvent* e) {
    const auto [s, h] = mapAt(e->position().toPoint());
    if (e->button() == Qt::LeftButton && s >= 0) {
        setFocus(Qt::MouseFocusReason);
        setCurrent(s, h);
        return;
    }
    QWidget::mousePressEvent(e);
}

void AttentionGrid::mouseMoveEvent(QMouseEvent* e) {
    const auto [s, h] = mapAt(e->position().toPoint());
    if (s >= 0)
        QToolTip::showText(e->globalPosition().toPoint(), tooltipText(s, h), this, mapRect(s, h));
    else
        QToolTip::hideText();
    QWidget::mouseMoveEvent(e);
}

void AttentionGrid::keyPressEvent(QKeyEvent* e) {
    if (m_site < 0)
        return QWidget::keyPressEvent(e);
    switch (e->key()) {
    case Qt::Key_Left: setCurrent(std::max(0, m_site - 1), m_head); break;
    case Qt::Key_Right: setCurrent(std::min(sites() - 1, m_site + 1), m_head); break;
    case Qt::Key_Up: setCurrent(m_site, std::max(0, m_head - 1)); break;
    case Qt::Key_Down: setCurrent(m_site, std::min(m_heads - 1, m_head + 1)); break;
    default: return QWidget::keyPressEvent(e);
    }
}

DataTable AttentionGrid::table() const {
    DataTable t;
    t.title = tr("Attention of every head and site");
    t.columns = {"site", "head", "query", "key", "p"};
    for (int s = 0; s < sites(); ++s)
        for (int h = 0; h < m_heads; ++h) {
            const QVector<double>& v = m_values[s * m_heads + h];
            for (int i = 0; i < m_w; ++i)
                for (int j = 0; j <= i; ++j)
                    t.addRow({m_siteNames[s], h, m_from + i, m_from + j, v[qsizetype(i) * m_w + j]});
        }
    return t;
}

// ---- AttentionView ----

AttentionView::AttentionView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);
    m_summary = addSummaryLabel(content, lay);

    // The grid and the loop charts on the left, the enlarged map beside them at full height.
    m_body = new QWidget(content);
    auto* body = m_bodyLayout = new QGridLayout(m_body);
    body->setContentsMargins(0, 0, 0, 0);
    body->setSpacing(8);
    m_grid = new AttentionGrid(m_body);
    m_grid->setObjectName("attentionGrid");
    m_big = new Heatmap(m_body);
    m_big->setObjectName("attentionEnlarged");
    m_big->setAxisTitles(tr("query"), tr("key"));
    m_big->setMinimumSize(380, 380);
    m_entropy = new LineChart(tr("Attention entropy by loop"), tr("loop"), tr("nats"), m_body);
    m_entropy->setIntegerX(true);
    m_distance = new LineChart(tr("Mean attention distance by loop"), tr("loop"), tr("positions"), m_body);
    m_distance->setIntegerX(true);
    for (QWidget* w : {static_cast<QWidget*>(m_entropy), static_cast<QWidget*>(m_distance)})
        w->setMinimumSize(240, 240);
    auto* charts = new QHBoxLayout;
    charts->setSpacing(8);
    charts->addWidget(m_entropy);
    charts->addWidget(m_distance);
    body->addWidget(m_grid, 0, 0, Qt::AlignTop);
    body->addLayout(charts, 1, 0);
    body->addWidget(m_big, 0, 1, 2, 1);
    body->setColumnStretch(1, 1);
    body->setRowStretch(1, 1);
    lay->addWidget(m_body, 1);

    connect(m_grid, &AttentionGrid::currentChanged, this, [this](int site) {
        m_sitePicked = site != defaultAttentionSite(m_data);
        showEnlarged();
        showLoopCharts();
    });
    connect(m_big, &Heatmap::rowClicked, this, [this](int row) {
        m_selected = int(m_data.from) + row;
        m_grid->setHighlightedRow(row);
        showSummary();
        emit tokenSelected(m_selected);
    });

    m_body->hide();
    m_summary->setText(noTraceText());
}

// The grid takes up to 60% of the page's width (its maps at their largest size when they fit)
// and the height its maps need; the enlarged map takes the rest.
void AttentionView::fitGrid() {
    const int page = std::max(400, m_scroll->viewport()->width() - 16);
    const int w = std::max(m_grid->minimumSizeHint().width(), std::min(m_grid->sizeHint().width(), page * 3 / 5));
    const int h = m_grid->heightForWidth(w);
    if (m_grid->minimumWidth() != w || m_grid->maximumWidth() != w)
        m_grid->setFixedWidth(w);
    if (m_grid->minimumHeight() != h)
        m_grid->setMinimumHeight(h);
    // The loop charts under the grid keep room for their legends when the grid is narrow.
    m_bodyLayout->setColumnMinimumWidth(0, std::max(w, std::min(760, page * 11 / 20)));
}

void AttentionView::resizeEvent(QResizeEvent* e) {
    TraceView::resizeEvent(e);
    fitGrid();
}

TraceView::Needs attentionNeeds(const TracePtr& trace, int selected) {
    TraceView::Needs n;
    n.attention = true;
    const bool shown = trace && !trace->attention.sites.empty();
    const auto w = attentionWindowFor(trace ? int(trace->seqLen) : 0, selected, shown ? int(trace->attention.from) : 0,
                                      shown ? int(trace->attentionEnd()) : -1);
    n.attentionFrom = w.first;
    n.attentionTo = w.second;
    return n;
}

TraceView::Needs AttentionView::needs() const { return attentionNeeds(m_trace, m_selected); }

void AttentionView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    if (m_selected >= int(trace->seqLen))
        m_selected = -1;
    m_shown = attentionShown(trace, m_selected);
    showTrace();
}

void AttentionView::showTrace() {
    const TracePtr& trace = m_shown;
    const int oldSite = m_grid->currentSite(), oldHead = m_grid->currentHead();
    const QString oldName = oldSite >= 0 && oldSite < int(m_data.names.size())
                                ? QString::fromStdString(m_data.names[std::size_t(oldSite)])
                                : QString();
    m_data = mythos::attentionGridData(*trace);
    if (m_data.heads < 1 || m_data.names.empty()) {
        m_data = {};
        m_grid->clear();
        m_body->hide();
        m_summary->setText(tr("This trace has no attention part: run the prompt (the window computes it while this "
                              "view is shown), or record one with <tt>mythos-cli trace --attention</tt>."));
        return;
    }
    m_top = attentionTop(*trace);
    m_grid->setData(*trace, m_data, m_top);
    fitGrid();
    // A site picked by hand stays across runs when the new trace has it; the default (the last
    // loop) follows the loop count. The head stays.
    int site = defaultAttentionSite(m_data);
    const int head = std::clamp(oldHead, 0, int(m_data.heads) - 1);
    if (m_sitePicked)
        for (int s = 0; s < int(m_data.names.size()); ++s)
            if (QString::fromStdString(m_data.names[std::size_t(s)]) == oldName)
                site = s;
    {
        const QSignalBlocker b(m_grid);
        m_grid->setCurrent(site, head);
    }
    m_body->show();
    const int from = int(m_data.from), W = int(m_data.to - m_data.from);
    m_grid->setHighlightedRow(m_selected >= from && m_selected < from + W ? m_selected - from : -1);
    showEnlarged();
    showLoopCharts();
    showSummary();
}

void AttentionView::setCurrent(int site, int head) { m_grid->setCurrent(site, head); }

void AttentionView::setSelectedToken(int index) {
    if (m_trace && (index < -1 || index >= int(m_trace->seqLen)))
        index = -1;
    m_selected = index;
    if (m_data.heads < 1)
        return;
    // A window of a recorded trace's attention follows the selection.
    if (TracePtr next = attentionShown(m_trace, index, m_shown); next != m_shown) {
        m_shown = std::move(next);
        showTrace();
        return;
    }
    const int from = int(m_data.from), W = int(m_data.to - m_data.from);
    const int row = index >= from && index < from + W ? index - from : -1;
    m_grid->setHighlightedRow(row);
    m_big->setHighlightedRow(row);
    showSummary();
}

void AttentionView::showEnlarged() {
    showAttentionMatrix(m_big, *m_shown, m_data, currentSite(), currentHead(), m_top, m_selected);
}

void AttentionView::showLoopCharts() {
    const QVector<Series> ent = attentionLoopSeries(m_data, false), dist = attentionLoopSeries(m_data, true);
    int K = 0;
    for (std::size_t s = 0; s < m_data.names.size(); ++s)
        if (m_data.recurrent[s])
            K = std::max(K, int(m_data.loops[s]));
    for (auto [chart, series] : {std::pair{m_entropy, ent}, std::pair{m_distance, dist}}) {
        chart->setSeries(series);
        chart->setXRange(1, std::max(2, K));
        const int site = currentSite();
        QVector<QPair<double, QString>> marks;
        if (site >= 0 && m_data.recurrent[std::size_t(site)])
            marks << qMakePair(double(m_data.loops[std::size_t(site)]), tr("shown"));
        chart->setMarkers(marks);
        chart->setNote(K == 0 ? tr("no recurrent sites in this trace") : QString());
    }
    m_entropy->setYRange(0, 0);
    m_distance->setYRange(0, 0);
}

void AttentionView::showSummary() {
    if (m_data.heads < 1 || !m_shown)
        return;
    const mythos::Trace& tr_ = *m_shown;
    const int from = int(m_data.from), to = int(m_data.to), H = int(m_data.heads), S = int(m_data.names.size());
    QString text = tr("<b>Positions %1-%2</b> (%3 of %4 tokens), %5 heads at %6 sites")
                       .arg(from)
                       .arg(to - 1)
                       .arg(to - from)
                       .arg(tr_.seqLen)
                       .arg(H)
                       .arg(S);
    if (m_selected >= from && m_selected < to)
        text += tr("; the selected token '%1' (position %2) is framed in every map")
                    .arg(displayToken(tr_, m_selected).toHtmlEscaped())
                    .arg(m_selected);
    else if (m_selected >= 0)
        text += tr("; the selected token (position %1) is outside this window").arg(m_selected);
    text += ". ";
    double outside = 0;
    QString outsideAt;
    for (int s = 0; s < S; ++s)
        for (int h = 0; h < H; ++h) {
            const double o = m_data.outside[std::size_t(s * H + h)];
            if (std::isfinite(o) && o > outside) {
                outside = o;
                outsideAt = tr("head %1, %2").arg(h).arg(attentionSiteLabel(m_data, s));
            }
        }
    if (from > 0 && outside > 1e-4)
        text += tr("Keys before the window take up to <b>%1%</b> of a query's attention on average (%2). ")
                    .arg(QString::number(100.0 * outside, 'f', 1), outsideAt);
    int local = -1, diffuse = -1;
    double bestDist = 0, bestEnt = 0;
    for (int h = 0; h < H; ++h) {
        const double d = headMean(m_data, m_data.distance, h), e = headMean(m_data, m_data.entropy, h);
        if (std::isfinite(d) && (local < 0 || d < bestDist)) {
            local = h;
            bestDist = d;
        }
        if (std::isfinite(e) && (diffuse < 0 || e > bestEnt)) {
            diffuse = h;
            bestEnt = e;
        }
    }
    if (local >= 0 && diffuse >= 0)
        text += tr("Over the loops, head <b>%1</b> is the most local (mean distance %2 positions), head <b>%3</b> "
                   "the most diffuse (entropy %4 nats).")
                    .arg(local)
                    .arg(num(bestDist, 2))
                    .arg(diffuse)
                    .arg(num(bestEnt));
    m_summary->setText(text);
}

QString AttentionView::summary() const { return m_summary->text(); }

DataTable AttentionView::enlargedTable() const {
    DataTable t;
    t.title = m_big->title();
    t.columns = {"site", "head", "query", "key", "p"};
    const int site = currentSite();
    if (site < 0 || site >= int(m_data.names.size()))
        return t;
    const QString name = QString::fromStdString(m_data.names[std::size_t(site)]);
    const int from = int(m_data.from);
    for (int i = 0; i < m_big->rows(); ++i)
        for (int j = 0; j <= i; ++j)
            t.addRow({name, currentHead(), from + i, from + j, m_big->value(i, j)});
    return t;
}

QList<ChartHandle> AttentionView::charts() const {
    QList<ChartHandle> out;
    out << ChartHandle{"attention-grid", tr("Attention of every head and site"), m_grid,
                       [this] { return m_grid->table(); }};
    out << ChartHandle{"attention-enlarged", m_big->title(), m_big, [this] { return enlargedTable(); }};
    out << ChartHandle{"attention-entropy", m_entropy->title(), m_entropy, [this] { return m_entropy->table(); }};
    out << ChartHandle{"attention-distance", m_distance->title(), m_distance, [this] { return m_distance->table(); }};
    return out;
}

} // namespace mx
