#include "routingview.h"

#include <QComboBox>
#include <QEvent>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPainter>
#include <QScrollArea>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>

#include "charts.h"
#include "heatmap.h"

namespace mx {

namespace {

constexpr int kPadX = 5, kPadY = 3, kGap = 5;

// The largest finite value, 0 for none (no loops, or NaN from a trace's null entries).
double finiteMax(const QVector<double>& v) {
    double top = 0;
    for (double x : v)
        if (std::isfinite(x))
            top = std::max(top, x);
    return top;
}

QString pct(double v) { return QString::number(100.0 * v, 'f', 1) + "%"; }
QString num(double v, int prec = 3) { return QString::number(v, 'f', prec); }

QString expertName(int e) { return QStringLiteral("E%1").arg(e); }

} // namespace

// ---- ExpertText ----

ExpertText::ExpertText(QWidget* parent) : ChipText(kGap, parent) {
    setAccessibleName(tr("Prompt coloured by top expert"));
}

QColor ExpertText::expertColor(int expert, int nExperts) {
    if (expert < 0)
        return QColor(220, 220, 220);
    if (nExperts <= 10)
        return categoricalColor(expert);
    // Spread hues, alternating lightness, so that neighbours stay apart.
    return QColor::fromHsv((expert * 360 / std::max(nExperts, 1)) % 360, 150, expert % 2 ? 170 : 225);
}

void ExpertText::setTokens(const QStringList& labels, const QVector<int>& experts, int nExperts,
                           const QStringList& tooltips) {
    m_experts = experts;
    m_nExperts = nExperts;
    setChips(labels, tooltips);
}

QColor ExpertText::tokenColor(int index) const {
    if (index < 0 || index >= m_experts.size())
        return {};
    return expertColor(m_experts[index], m_nExperts);
}

QVector<QRect> ExpertText::legendRects(int width) const {
    const QFontMetrics fm(font());
    QVector<int> widths{fm.horizontalAdvance(tr("Top expert:")) + 6};
    for (int e = 0; e < m_nExperts; ++e)
        widths << fm.horizontalAdvance(expertName(e)) + 12;
    return flowChips(widths, width - 3, 3, 3, fm.height() + 2, 3, 3);
}

int ExpertText::legendHeight(int width) const {
    const auto r = legendRects(width);
    return r.isEmpty() ? 0 : r.back().bottom() + 1;
}

QVector<QRect> ExpertText::layoutChips(int width) const {
    const QFontMetrics fm(font());
    QVector<int> widths;
    for (const auto& l : m_labels)
        widths << std::max(fm.horizontalAdvance(l), fm.horizontalAdvance(' ')) + 2 * kPadX;
    return flowChips(widths, width - 3, 3, legendHeight(width) + kGap + 2, fm.height() + 2 * kPadY, kGap, kGap);
}

void ExpertText::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QPalette pal = palette();
    const QFontMetrics fm(font());

    const auto legend = legendRects(width());
    for (int i = 0; i < legend.size(); ++i) {
        if (i == 0) {
            p.setPen(pal.color(QPalette::WindowText));
            p.drawText(legend[0], Qt::AlignVCenter | Qt::AlignLeft, tr("Top expert:"));
            continue;
        }
        const QColor c = expertColor(i - 1, m_nExperts);
        p.setPen(c.darker(130));
        p.setBrush(c);
        p.drawRect(QRectF(legend[i]).adjusted(0.5, 0.5, -0.5, -0.5));
        p.setPen(isDark(c) ? Qt::white : Qt::black);
        p.drawText(legend[i], Qt::AlignCenter, expertName(i - 1));
    }

    if (m_labels.isEmpty()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(QRect(3, legendHeight(width()) + kGap, width() - 6, fm.height() + 2 * kPadY),
                   Qt::AlignLeft | Qt::AlignVCenter, tr("(no tokens)"));
        return;
    }
    for (int i = 0; i < m_labels.size() && i < m_rects.size(); ++i) {
        const QRect r = m_rects[i];
        const QColor c = tokenColor(i);
        p.setPen(c.darker(130));
        p.setBrush(c);
        p.drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 3, 3);
        p.setPen(isDark(c) ? Qt::white : Qt::black);
        p.drawText(r, Qt::AlignCenter, m_labels[i]);
    }
    paintSelection(p);
}

// ---- RoutingView ----

RoutingView::RoutingView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);

    auto* controls = new QHBoxLayout;
    auto* loopLabel = new QLabel(tr("&Loop:"), content);
    m_loopCombo = new QComboBox(content);
    m_loopCombo->setObjectName("routingLoop");
    m_loopCombo->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    m_loopCombo->setToolTip(tr("The loop whose routing the text, the token heatmap and the load bars show"));
    loopLabel->setBuddy(m_loopCombo);
    auto* modeLabel = new QLabel(tr("&Selection:"), content);
    m_modeCombo = new QComboBox(content);
    m_modeCombo->setObjectName("routingMode");
    m_modeCombo->addItem(tr("Biased top-k (what the model uses)"));
    m_modeCombo->addItem(tr("Unbiased top-k (router logits alone)"));
    m_modeCombo->setToolTip(tr("The router picks its experts by logits + a balancing bias; the unbiased choice "
                               "shows what the bias changes"));
    modeLabel->setBuddy(m_modeCombo);
    controls->addWidget(loopLabel);
    controls->addWidget(m_loopCombo);
    controls->addSpacing(16);
    controls->addWidget(modeLabel);
    controls->addWidget(m_modeCombo);
    controls->addStretch(1);
    lay->addLayout(controls);

    m_summary = addSummaryLabel(content, lay);

    m_text = new ExpertText;
    m_textScroll = makeTokenTextArea(content, m_text);
    lay->addWidget(m_textScroll);

    m_tokenMap = new Heatmap(content);
    m_tokenMap->setAxisTitles(tr("token"), tr("expert"));
    m_tokenMap->setLegendTitle(tr("gate"));
    m_tokenMap->setCellText([](double v) { return v > 0 ? QString::number(v, 'f', 2) : QString(); });
    m_loadMap = new Heatmap(content);
    m_loadMap->setTitle(tr("Expert load per loop (share of routing slots)"));
    m_loadMap->setAxisTitles(tr("expert"), tr("loop"));
    m_loadMap->setLegendTitle(tr("load"));
    m_loadMap->setCellText([](double v) { return QString::number(100.0 * v, 'f', 0); });
    m_loadBars = new BarChart(tr("Expert load"), tr("expert"), tr("share of slots"), content);
    m_biasBars = new BarChart(tr("Router bias per expert"), tr("expert"), tr("bias"), content);
    m_balance = new LineChart(tr("Balance by loop"), tr("loop"), tr("0 .. 1"), content);
    m_balance->setIntegerX(true);
    m_table = makeReadOnlyTable(content, "routingBalanceTable");
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    for (QWidget* w :
         {static_cast<QWidget*>(m_tokenMap), static_cast<QWidget*>(m_loadMap), static_cast<QWidget*>(m_loadBars),
          static_cast<QWidget*>(m_biasBars), static_cast<QWidget*>(m_balance), static_cast<QWidget*>(m_table)})
        w->setMinimumSize(300, 230);

    auto* grid = new QGridLayout;
    grid->setSpacing(8);
    grid->addWidget(m_tokenMap, 0, 0, 2, 1);
    grid->addWidget(m_loadMap, 0, 1);
    grid->addWidget(m_loadBars, 1, 1);
    grid->addWidget(m_balance, 2, 0);
    grid->addWidget(m_biasBars, 2, 1);
    grid->addWidget(m_table, 3, 0, 1, 2);
    for (int r = 0; r < 3; ++r)
        grid->setRowStretch(r, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    lay->addLayout(grid, 1);

    connect(m_text, &ExpertText::tokenClicked, this, &RoutingView::selectFromUi);
    connect(m_tokenMap, &Heatmap::rowClicked, this, &RoutingView::selectFromUi);
    connect(m_loopCombo, qOverload<int>(&QComboBox::activated), this, [this](int i) { setLoop(i); });
    connect(m_modeCombo, qOverload<int>(&QComboBox::activated), this, [this](int i) { setUnbiased(i == 1); });

    m_summary->setText(noTraceText());
}

void RoutingView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    const mythos::Trace& tr_ = *trace;
    m_labels.clear();
    for (int t = 0; t < int(tr_.seqLen); ++t)
        m_labels << displayToken(tr_, t);
    if (m_selected >= int(tr_.seqLen))
        m_selected = -1;
    m_routingError.clear();
    m_recorded = m_unbiasedSel = {};
    m_biasChanged = std::numeric_limits<double>::quiet_NaN();
    try {
        m_recorded = mythos::recordedRouting(tr_);
    } catch (const std::exception& e) {
        m_routingError = QString::fromStdString(e.what());
    }
    m_canUnbias = m_routingError.isEmpty() && !tr_.routerLogits.empty();
    if (m_canUnbias) {
        try {
            m_unbiasedSel = mythos::unbiasedRouting(tr_);
            // How much the router bias changes: expert sets that differ between the two choices.
            m_biasChanged = mythos::expertSetDifference(m_recorded, m_unbiasedSel);
        } catch (const std::exception&) {
            m_canUnbias = false;
        }
    }
    m_modeCombo->setEnabled(m_canUnbias);
    m_modeCombo->setToolTip(m_canUnbias ? tr("The router picks its experts by logits + a balancing bias; the "
                                             "unbiased choice shows what the bias changes")
                                        : tr("This trace has no router logits"));
    const int L = int(tr_.loopsExecuted);
    {
        const QSignalBlocker b(m_loopCombo);
        m_loopCombo->clear();
        m_loopCombo->addItem(tr("All loops (gates summed)"));
        for (int l = 1; l <= L; ++l)
            m_loopCombo->addItem(l > tr_.config.max_loop_iters ? tr("Loop %1 (extrapolated)").arg(l)
                                                               : tr("Loop %1").arg(l));
        m_loop = std::clamp(m_loop, 0, L);
        m_loopCombo->setCurrentIndex(m_loop);
    }
    rebuild();
}

void RoutingView::setLoop(int loop) {
    const int L = m_trace ? int(m_trace->loopsExecuted) : 0;
    loop = std::clamp(loop, 0, L);
    m_loop = loop;
    if (m_loopCombo->currentIndex() != loop)
        m_loopCombo->setCurrentIndex(loop);
    if (m_trace)
        rebuildLoop();
}

void RoutingView::setUnbiased(bool on) {
    m_unbiased = on;
    const QSignalBlocker b(m_modeCombo);
    m_modeCombo->setCurrentIndex(on ? 1 : 0);
    if (m_trace)
        rebuild();
}

void RoutingView::rebuild() {
    const bool unbiased = m_unbiased && m_canUnbias;
    if (!m_routingError.isEmpty()) {
        m_sel = {};
        m_stats = {};
        m_summary->setText(tr("This trace's routing cannot be shown: %1").arg(m_routingError));
        return;
    }
    m_sel = unbiased ? m_unbiasedSel : m_recorded;
    m_stats = mythos::routingStats(m_sel);
    const QString mode = unbiased ? tr("unbiased") : tr("biased");
    showLoadGrid(mode);
    showRouterBias();
    showBalanceChart(mode);
    showBalanceTable();
    showSummary(mode);
    rebuildLoop();
}

QStringList RoutingView::expertNames() const {
    QStringList experts;
    for (int e = 0; e < int(m_trace->nExperts); ++e)
        experts << expertName(e);
    return experts;
}

// Expert x loop load.
void RoutingView::showLoadGrid(const QString& mode) {
    const mythos::ExpertLoadGrid g = mythos::expertLoadGrid(m_stats, m_trace->config.max_loop_iters);
    QStringList loops;
    for (int l = 1; l <= int(g.loops); ++l)
        loops << QString::number(l);
    m_loadMap->setData(int(g.experts), int(g.loops), QVector<double>(g.load.begin(), g.load.end()), expertNames(),
                       loops);
    m_loadMap->setRange(0, g.top);
    QVector<int> past;
    for (int64_t l : g.pastMaxLoopIters)
        past << int(l);
    m_loadMap->setMarkedColumns(past, past.isEmpty() ? QString() : tr("past max_loop_iters"));
    m_loadMap->setTitle(tr("Expert load per loop, %1 (percent of routing slots)").arg(mode));
}

void RoutingView::showRouterBias() {
    const mythos::RouterBiasBars b = mythos::routerBiasBars(*m_trace);
    const int E = int(b.bias.size());
    QVector<QColor> biasColors;
    for (int e = 0; e < E; ++e)
        biasColors << ExpertText::expertColor(e, E);
    m_biasBars->setBars(expertNames(), QVector<double>(b.bias.begin(), b.bias.end()), biasColors);
    m_biasBars->setHorizontalMarker(0.0, {});
    m_biasBars->setNote(!b.present  ? tr("the trace has no router bias")
                        : b.nonZero ? tr("added to the logits for selection only; gates ignore it")
                                    : tr("all zero: the biased and unbiased choices are the same"));
}

namespace {

QVector<QPointF> toPoints(const std::vector<std::pair<double, double>>& xy) {
    QVector<QPointF> points;
    for (const auto& p : xy)
        points << QPointF(p.first, p.second);
    return points;
}

} // namespace

// Balance by loop: every measure in 0..1 so that they share an axis.
void RoutingView::showBalanceChart(const QString& mode) {
    const int L = int(m_stats.perLoop.size());
    const mythos::RoutingBalanceCurves c = mythos::routingBalanceCurves(m_stats);
    QVector<Series> series(4);
    series[0].name = tr("entropy/log2 E");
    series[1].name = tr("Gini");
    series[2].name = tr("top-1 switch");
    series[3].name = tr("set switch");
    series[2].dashed = series[3].dashed = true;
    series[0].points = toPoints(c.entropyShare);
    series[1].points = toPoints(c.gini);
    series[2].points = toPoints(c.top1Switch);
    series[3].points = toPoints(c.setSwitch);
    for (auto& s : series)
        s.markers = L <= 24;
    m_balance->setSeries(series);
    m_balance->setXRange(1, std::max(2, L));
    m_balance->setYRange(0, 1);
    m_balance->setTitle(tr("Balance by loop (%1)").arg(mode));
}

// Balance table: one row per loop, then every loop together.
void RoutingView::showBalanceTable() {
    const int L = int(m_stats.perLoop.size());
    const QStringList cols = {tr("loop"),         tr("entropy (bits)"), tr("max / mean load"), tr("Gini"),
                              tr("dead experts"), tr("top-1 switch"),   tr("set switch")};
    m_table->clear();
    m_table->setColumnCount(int(cols.size()));
    m_table->setHorizontalHeaderLabels(cols);
    m_table->setRowCount(L + 1);
    auto setRow = [this](int row, const QString& name, const mythos::LoadStats& s, const QString& t1,
                         const QString& ts) {
        const QStringList cells = {
            name, num(s.entropyBits), num(s.maxOverMean, 2), num(s.gini), QString::number(s.dead), t1, ts};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            item->setTextAlignment(c == 0 ? Qt::Alignment(Qt::AlignLeft | Qt::AlignVCenter)
                                          : Qt::Alignment(Qt::AlignRight | Qt::AlignVCenter));
            if (s.dead > 0 && c == 4)
                item->setForeground(QColor(170, 30, 20));
            m_table->setItem(row, c, item);
        }
    };
    for (int l = 0; l < L; ++l)
        setRow(l, QString::number(l + 1), m_stats.perLoop[std::size_t(l)],
               l > 0 ? pct(m_stats.top1Switch[std::size_t(l)]) : QStringLiteral("-"),
               l > 0 ? pct(m_stats.setSwitch[std::size_t(l)]) : QStringLiteral("-"));
    setRow(L, tr("all loops"), m_stats.overall, L > 1 ? pct(m_stats.meanTop1Switch) : QStringLiteral("-"),
           L > 1 ? pct(m_stats.meanSetSwitch) : QStringLiteral("-"));
    {
        QFont bold = m_table->font();
        bold.setBold(true);
        for (int c = 0; c < m_table->columnCount(); ++c)
            if (auto* it = m_table->item(L, c))
                it->setFont(bold);
    }
    m_table->setMinimumHeight(std::min(400, m_table->horizontalHeader()->height() +
                                                (L + 1) * m_table->verticalHeader()->defaultSectionSize() + 6));
}

void RoutingView::showSummary(const QString& mode) {
    const mythos::Trace& tr_ = *m_trace;
    const int L = int(tr_.loopsExecuted), E = int(tr_.nExperts);
    const double maxH = mythos::routingBalanceCurves(m_stats).maxEntropyBits;
    QStringList deadNames;
    for (int64_t e : mythos::deadExperts(m_stats.overall))
        deadNames << expertName(int(e));
    QString text = tr("<b>%1 experts, top-%2</b> over %3 loop%4 and %5 token%6 (%7 selection). Overall: entropy "
                      "<b>%8</b> of %9 bits, max/mean load <b>%10</b>, Gini <b>%11</b>, ")
                       .arg(E)
                       .arg(tr_.topK)
                       .arg(L)
                       .arg(L == 1 ? "" : "s")
                       .arg(tr_.seqLen * tr_.batch)
                       .arg(tr_.seqLen * tr_.batch == 1 ? "" : "s")
                       .arg(mode)
                       .arg(num(m_stats.overall.entropyBits, 2))
                       .arg(num(maxH, 2))
                       .arg(num(m_stats.overall.maxOverMean, 2))
                       .arg(num(m_stats.overall.gini, 3));
    text += deadNames.isEmpty() ? tr("no dead experts. ")
                                : tr("<span style='color:#a01e14'><b>%1 dead</b> (%2)</span>. ")
                                      .arg(deadNames.size())
                                      .arg(deadNames.join(", "));
    if (L > 1)
        text += tr("Between loops %1 of tokens change their first expert, %2 their expert set. ")
                    .arg(pct(m_stats.meanTop1Switch), pct(m_stats.meanSetSwitch));
    if (!std::isnan(m_biasChanged))
        text += tr("The router bias changes %1 of the (loop, token) expert choices.").arg(pct(m_biasChanged));
    m_summary->setText(text);
}

void RoutingView::rebuildLoop() {
    if (m_sel.ids.empty() && m_sel.loops > 0)
        return;
    const mythos::TokenRouting r = mythos::tokenRouting(m_sel, m_loop);
    if (r.tokens == 0 && r.experts == 0)
        return;
    showTokenRouting(r);
    showLoadBars(int(r.loop));
    QVector<QPair<double, QString>> vmark;
    if (r.loop > 0)
        vmark << qMakePair(double(r.loop), tr("shown loop"));
    if (m_trace->config.max_loop_iters < m_sel.loops)
        vmark << qMakePair(double(m_trace->config.max_loop_iters), tr("max_loop_iters"));
    m_balance->setMarkers(vmark);
}

// The prompt coloured by top expert and the token x expert gate heatmap.
void RoutingView::showTokenRouting(const mythos::TokenRouting& r) {
    const int T = int(r.tokens), E = int(r.experts), K = int(m_sel.topK), loop = int(r.loop);
    QStringList rows;
    for (int t = 0; t < T; ++t)
        rows << QStringLiteral("%1 %2").arg(t).arg(m_labels.value(t));
    QVector<int> top;
    QStringList tips;
    for (int t = 0; t < T; ++t) {
        top << int(r.top[std::size_t(t)]);
        QStringList parts;
        if (loop > 0)
            for (int k = 0; k < K; ++k) {
                const std::size_t i = m_sel.at(loop - 1, 0, t) + std::size_t(k);
                parts << QStringLiteral("%1 (gate %2)").arg(expertName(m_sel.ids[i])).arg(num(m_sel.gates[i]));
            }
        else
            parts << tr("%1 (gates summed over loops %2)").arg(expertName(top[t])).arg(num(r.topGate[std::size_t(t)]));
        tips << tr("token %1 \"%2\": %3").arg(t).arg(m_labels.value(t), parts.join(", "));
    }
    m_text->setTokens(m_labels, top, E, tips);
    m_text->setSelected(m_selected);
    fitTextArea();

    m_tokenMap->setData(T, E, QVector<double>(r.gates.begin(), r.gates.end()), rows, expertNames());
    m_tokenMap->setRange(0, r.gateTop);
    m_tokenMap->setTitle(loop > 0 ? tr("Gate weight per token and expert, loop %1").arg(loop)
                                  : tr("Gate weight per token and expert, sum of %1 loops").arg(m_sel.loops));
    m_tokenMap->setHighlightedRow(m_selected);
}

// Load per expert at the shown loop (or over every loop).
void RoutingView::showLoadBars(int loop) {
    const int E = int(m_sel.nExperts);
    const auto& stats = loop > 0 ? m_stats.perLoop[std::size_t(loop - 1)] : m_stats.overall;
    QVector<double> load;
    QVector<QColor> colors;
    for (int e = 0; e < E; ++e) {
        load << stats.load[std::size_t(e)];
        colors << ExpertText::expertColor(e, E);
    }
    m_loadBars->setBars(expertNames(), load, colors);
    m_loadBars->setYRange(0, std::max(2.0 / std::max(E, 1), finiteMax(load) * 1.1));
    m_loadBars->setHorizontalMarker(1.0 / E, tr("even load 1/%1").arg(E));
    m_loadBars->setTitle(loop > 0 ? tr("Expert load at loop %1").arg(loop) : tr("Expert load over all loops"));
    m_loadBars->setNote(stats.dead > 0 ? tr("%1 expert%2 unused").arg(stats.dead).arg(stats.dead == 1 ? "" : "s")
                                       : QString());
}

void RoutingView::setSelectedToken(int index) {
    const int T = int(m_labels.size());
    if (index < -1 || index >= T)
        index = -1;
    m_selected = index;
    m_text->setSelected(index);
    m_tokenMap->setHighlightedRow(index);
}

bool RoutingView::eventFilter(QObject* watched, QEvent* e) {
    if (watched == m_textScroll->viewport() && e->type() == QEvent::Resize)
        fitTextArea();
    return TraceView::eventFilter(watched, e);
}

void RoutingView::fitTextArea() { fitTokenTextArea(m_textScroll, m_text, fontMetrics().height() + 2 * kPadY + kGap); }

QString RoutingView::summary() const { return m_summary->text(); }

DataTable RoutingView::balanceData() const {
    DataTable t;
    t.title = tr("Routing balance by loop");
    t.columns = {"loop", "entropy_bits", "max_over_mean", "gini", "dead_experts", "top1_switch", "set_switch"};
    for (std::size_t l = 0; l < m_stats.perLoop.size(); ++l) {
        const auto& s = m_stats.perLoop[l];
        t.addRow({qlonglong(l + 1), s.entropyBits, s.maxOverMean, s.gini, qlonglong(s.dead), m_stats.top1Switch[l],
                  m_stats.setSwitch[l]});
    }
    const auto& o = m_stats.overall;
    t.addRow({QStringLiteral("all"), o.entropyBits, o.maxOverMean, o.gini, qlonglong(o.dead), m_stats.meanTop1Switch,
              m_stats.meanSetSwitch});
    return t;
}

DataTable RoutingView::textTable() const {
    DataTable t;
    t.title = tr("Top expert per token");
    t.columns = {"token_index", "token", "top_expert"};
    for (int i = 0; i < m_text->count(); ++i)
        t.addRow({i, m_labels.value(i), m_text->tokenExpert(i)});
    return t;
}

QList<ChartHandle> RoutingView::charts() const {
    QList<ChartHandle> out;
    out << ChartHandle{"routing-text", tr("Prompt coloured by top expert"), m_text, [this] { return textTable(); }};
    out << ChartHandle{"routing-token-gates", m_tokenMap->title(), m_tokenMap, [this] { return m_tokenMap->table(); }};
    out << ChartHandle{"routing-load-by-loop", m_loadMap->title(), m_loadMap, [this] { return m_loadMap->table(); }};
    out << ChartHandle{"routing-load", m_loadBars->title(), m_loadBars, [this] { return m_loadBars->table(); }};
    out << ChartHandle{"routing-bias", m_biasBars->title(), m_biasBars, [this] { return m_biasBars->table(); }};
    out << ChartHandle{"routing-balance", m_balance->title(), m_balance, [this] { return m_balance->table(); }};
    out << ChartHandle{"routing-balance-table", tr("Routing balance by loop"), m_table,
                       [this] { return balanceData(); }};
    return out;
}

} // namespace mx
