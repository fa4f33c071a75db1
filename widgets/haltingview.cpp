#include "haltingview.h"
#include "mythos/viewdata.h"

#include <QGridLayout>
#include <QHelpEvent>
#include <QKeyEvent>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QScrollArea>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <utility>

#include "charts.h"
#include "heatmap.h"
#include "tokenstrip.h"

namespace mx {

namespace {

constexpr int kPadX = 5, kPadY = 3, kGapX = 7, kGapY = 7;

QColor weightColor() { return categoricalColor(0); }

QString num(double v) { return QString::number(v, 'g', 4); }

// The smallest multiple of 4 >= v (at least 4), so that the default 5 ticks are integers.
double niceTop(double v) { return std::max(4.0, 4.0 * std::ceil(v / 4.0)); }

QString haltText(int loop) {
    return loop > 0 ? QObject::tr("halted at loop %1").arg(loop) : QObject::tr("never halted");
}

} // namespace

// ---- HaltingText ----

HaltingText::HaltingText(QWidget* parent) : ChipText(kGapY, parent) {
    setAccessibleName(tr("Prompt shaded by halting loop"));
}

QColor HaltingText::loopColor(int loop, int loops) {
    if (loop <= 0)
        return neverHaltedColor();
    return sequentialColor(loops > 1 ? double(loop - 1) / double(loops - 1) : 0.5);
}

void HaltingText::setTokens(const QStringList& labels, const QVector<int>& haltLoops, int loops,
                            const QStringList& tooltips) {
    m_halt = haltLoops;
    m_halt.resize(labels.size());
    m_loops = loops;
    setChips(labels, tooltips);
}

QColor HaltingText::tokenColor(int index) const {
    if (index < 0 || index >= m_halt.size())
        return {};
    return loopColor(m_halt[index], m_loops);
}

int HaltingText::legendHeight(int) const { return fontMetrics().height() + 8; }

QVector<QRect> HaltingText::layoutChips(int width) const {
    const QFontMetrics fm(font());
    QFont small = font();
    small.setPointSizeF(font().pointSizeF() * 0.75);
    const QFontMetrics fms(small);
    QVector<int> widths;
    for (int i = 0; i < m_labels.size(); ++i) {
        const QString tag = m_halt.value(i) > 0 ? QString::number(m_halt[i]) : QStringLiteral("\u2014");
        widths << std::max(fm.horizontalAdvance(m_labels[i]), fm.horizontalAdvance(' ')) + 3 +
                      fms.horizontalAdvance(tag) + 2 * kPadX;
    }
    return flowChips(widths, width - 3, 3, legendHeight(width) + kGapY, fm.height() + 2 * kPadY, kGapX, kGapY);
}

void HaltingText::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QBrush hatch(QColor(neverHaltedColor().red(), neverHaltedColor().green(), neverHaltedColor().blue(), 150),
                       Qt::BDiagPattern);
    paintLegend(p, hatch);
    paintTokens(p, hatch);
}

void HaltingText::paintLegend(QPainter& p, const QBrush& hatch) const {
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    const int lh = fm.height();
    // Legend: "Halting loop" then one swatch per loop (or a gradient when they do not fit),
    // then the never-halted swatch.
    int x = 3;
    const int sy = 3, sh = lh + 2;
    p.setPen(pal.color(QPalette::WindowText));
    const QString lead = tr("Halting loop:");
    p.drawText(QRect(x, sy, fm.horizontalAdvance(lead) + 2, sh), Qt::AlignVCenter, lead);
    x += fm.horizontalAdvance(lead) + 8;
    const QString neverText = tr("never halted");
    const int neverW = sh + 4 + fm.horizontalAdvance(neverText);
    const int swatchW = std::max(sh, fm.horizontalAdvance(QString::number(std::max(m_loops, 1))) + 8);
    const int avail = width() - x - neverW - 16;
    if (m_loops > 0 && m_loops * (swatchW + 2) <= avail) {
        for (int k = 1; k <= m_loops; ++k) {
            const QColor c = loopColor(k, m_loops);
            const QRect r(x, sy, swatchW, sh);
            p.setPen(c.darker(130));
            p.setBrush(c);
            p.drawRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5));
            p.setPen(isDark(c) ? Qt::white : Qt::black);
            p.drawText(r, Qt::AlignCenter, QString::number(k));
            x += swatchW + 2;
        }
    } else if (m_loops > 0) {
        const int gw = std::clamp(avail - 2 * fm.horizontalAdvance(QString::number(m_loops)) - 12, 40, 240);
        p.drawText(QRect(x, sy, 20, sh), Qt::AlignVCenter | Qt::AlignLeft, "1");
        x += fm.horizontalAdvance("1") + 4;
        QLinearGradient g(x, 0, x + gw, 0);
        for (int i = 0; i <= 8; ++i)
            g.setColorAt(i / 8.0, sequentialColor(i / 8.0));
        p.setPen(pal.color(QPalette::Mid));
        p.setBrush(g);
        p.drawRect(QRectF(x, sy, gw, sh).adjusted(0.5, 0.5, -0.5, -0.5));
        x += gw + 4;
        p.setPen(pal.color(QPalette::WindowText));
        const QString last = QString::number(m_loops);
        p.drawText(QRect(x, sy, fm.horizontalAdvance(last) + 2, sh), Qt::AlignVCenter, last);
        x += fm.horizontalAdvance(last);
    }
    x += 14;
    {
        const QRectF r(x + 0.5, sy + 0.5, sh - 1, sh - 1);
        p.setBrush(pal.color(QPalette::Base));
        p.setPen(QPen(neverHaltedColor(), 2));
        p.drawRect(r);
        p.fillRect(r, hatch);
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(QRect(x + sh + 4, sy, fm.horizontalAdvance(neverText) + 2, sh), Qt::AlignVCenter, neverText);
        x += neverW + 14;
    }
    const QString hint = tr("(click a token to select it)");
    if (x + fm.horizontalAdvance(hint) < width()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(QRect(x, sy, fm.horizontalAdvance(hint) + 2, sh), Qt::AlignVCenter, hint);
    }
}

void HaltingText::paintTokens(QPainter& p, const QBrush& hatch) const {
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    QFont small = font();
    small.setPointSizeF(font().pointSizeF() * 0.75);
    const QFontMetrics fms(small);
    const int lh = fm.height();
    if (m_labels.isEmpty()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(QRect(3, legendHeight(width()) + kGapY, width() - 6, lh + 2 * kPadY),
                   Qt::AlignLeft | Qt::AlignVCenter, tr("(no tokens)"));
        return;
    }
    for (int i = 0; i < m_labels.size() && i < m_rects.size(); ++i) {
        const QRect r = m_rects[i];
        const QRectF rf = QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5);
        const int loop = m_halt.value(i);
        QColor text;
        if (loop > 0) {
            const QColor c = loopColor(loop, m_loops);
            p.setPen(c.darker(130));
            p.setBrush(c);
            p.drawRoundedRect(rf, 3, 3);
            text = isDark(c) ? Qt::white : Qt::black;
        } else {
            p.setPen(Qt::NoPen);
            p.setBrush(pal.color(QPalette::Base));
            p.drawRoundedRect(rf, 3, 3);
            p.setBrush(hatch);
            p.drawRoundedRect(rf, 3, 3);
            p.setPen(QPen(neverHaltedColor(), 2));
            p.setBrush(Qt::NoBrush);
            p.drawRoundedRect(QRectF(r).adjusted(1, 1, -1, -1), 3, 3);
            text = pal.color(QPalette::Text);
        }
        const QString tag = loop > 0 ? QString::number(loop) : QStringLiteral("\u2014");
        const int tagW = fms.horizontalAdvance(tag);
        p.setPen(text);
        p.drawText(QRect(r.left() + kPadX, r.top(), r.width() - 2 * kPadX - tagW - 3, r.height()),
                   Qt::AlignLeft | Qt::AlignVCenter, m_labels[i]);
        p.setFont(small);
        p.drawText(QRect(r.right() - kPadX - tagW, r.top(), tagW + 2, r.height() - kPadY),
                   Qt::AlignLeft | Qt::AlignBottom, tag);
        p.setFont(font());
    }
    paintSelection(p);
}

// ---- HaltingView ----

HaltingView::HaltingView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);
    m_summary = addSummaryLabel(content, lay);

    m_warning = new WrapLabel(content);
    m_warning->setStyleSheet("QLabel { color: #8a1f11; background: #fdeae6; border: 1px solid #e2a595;"
                             " border-radius: 3px; padding: 4px; font-weight: bold; }");
    m_warning->hide();
    lay->addWidget(m_warning);

    m_text = new HaltingText;
    m_textScroll = makeTokenTextArea(content, m_text);
    lay->addWidget(m_textScroll);

    m_heatmap = new Heatmap(content);
    m_heatmap->setTitle(tr("Cumulative halting probability per token and loop"));
    m_heatmap->setAxisTitles(tr("token"), tr("loop"));
    m_heatmap->setLegendTitle(tr("cum. p"));
    m_heatmap->setCellText([](double v) {
        // Truncated, not rounded, so that a cell below the threshold never reads as reaching it.
        return QString::number(std::floor(v * 100.0) / 100.0, 'f', 2);
    });
    m_bars = new BarChart(tr("Halting loop per token"), tr("token index"), tr("halting loop"), content);
    m_weightSum = new BarChart(tr("ACT weight sum per token"), tr("token index"), tr("\u03a3 weight"), content);
    m_histogram = new BarChart(tr("Tokens per halting loop"), tr("halting loop"), tr("tokens"), content);
    for (QWidget* w : {static_cast<QWidget*>(m_heatmap), static_cast<QWidget*>(m_bars),
                       static_cast<QWidget*>(m_weightSum), static_cast<QWidget*>(m_histogram)})
        w->setMinimumSize(300, 230);

    auto* grid = new QGridLayout;
    grid->setSpacing(8);
    grid->addWidget(m_heatmap, 0, 0);
    grid->addWidget(m_bars, 0, 1);
    grid->addWidget(m_weightSum, 1, 0);
    grid->addWidget(m_histogram, 1, 1);
    grid->setRowStretch(0, 1);
    grid->setRowStretch(1, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    lay->addLayout(grid, 1);

    connect(m_text, &HaltingText::tokenClicked, this, &HaltingView::selectFromUi);
    connect(m_heatmap, &Heatmap::rowClicked, this, &HaltingView::selectFromUi);

    m_summary->setText(noTraceText());
}

void HaltingView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    const mythos::HaltingViewData d = mythos::haltingViewData(*trace);
    m_loops = int(d.loops);
    m_labels.clear();
    m_categories.clear();
    m_halt.clear();
    for (int t = 0; t < int(d.tokens); ++t) {
        m_labels << displayToken(*trace, t);
        m_categories << QString::number(t); // token text would be elided under narrow bars
        m_halt << int(d.haltLoop[std::size_t(t)]);
    }
    showPromptText(d);
    showHaltingBars(d);
    showCumulativeHeatmap(trace, d);
    showWeightSums(d);
    showHistogram(d);
    showHealth(d);
    showSummary(*trace, d);
    if (m_selected >= int(d.tokens))
        m_selected = -1;
    applySelection();
}

void HaltingView::showPromptText(const mythos::HaltingViewData& d) {
    QStringList tips;
    for (int t = 0; t < int(d.tokens); ++t)
        tips << tr("token %1 '%2': %3; cumulative p after loop %4 = %5, weight sum = %6")
                    .arg(t)
                    .arg(m_labels[t], haltText(m_halt[t]))
                    .arg(d.loops)
                    .arg(num(d.lastCumP[std::size_t(t)]), num(d.weightSum[std::size_t(t)]));
    m_text->setTokens(m_labels, m_halt, int(d.loops), tips);
    fitTextArea();
}

// Halting loop per token; never-halted tokens stand at L + 1. The bars themselves are set by
// applySelection, which recolours the selected one.
void HaltingView::showHaltingBars(const mythos::HaltingViewData& d) {
    const int L = int(d.loops);
    m_barValues = QVector<double>(d.haltBar.begin(), d.haltBar.end());
    m_barColors.clear();
    for (int h : std::as_const(m_halt))
        m_barColors << HaltingText::loopColor(h, L);
    m_barNote = tr("dashed: L = %1 loops").arg(L);
    if (d.summary.never > 0)
        m_barNote += tr("; red: never halted (at L + 1)");
    m_bars->setYRange(0, niceTop(L + 1));
    m_bars->setHorizontalMarker(L, tr("loops executed"));
}

// Cumulative p, tokens x loops, with the threshold outlined and the loops past
// max_loop_iters marked.
void HaltingView::showCumulativeHeatmap(const TracePtr& trace, const mythos::HaltingViewData& d) {
    const int T = int(d.tokens), L = int(d.loops);
    const int maxIters = int(d.maxLoopIters);
    const double thr = d.threshold;
    QStringList loopLabels;
    for (int l = 0; l < L; ++l)
        loopLabels << QString::number(l + 1);
    QVector<int> extrapolated;
    for (int64_t l : d.pastMaxLoopIters)
        extrapolated << int(l);
    m_heatmap->setRange(0, d.cumPTop);
    m_heatmap->setThresholdContour(thr, tr("threshold %1\n(cells \u2265 it\noutlined)").arg(num(thr)));
    m_heatmap->setMarkedColumns(extrapolated, tr("extrapolation (> max_loop_iters = %1)").arg(maxIters));
    QStringList rowLabels;
    for (int t = 0; t < T; ++t)
        rowLabels << QStringLiteral("%1 %2").arg(t).arg(m_labels[t]);
    m_heatmap->setData(T, L, QVector<double>(d.cumP.begin(), d.cumP.end()), rowLabels, loopLabels);
    const QStringList labels = m_labels;
    const QVector<int> halt = m_halt;
    m_heatmap->tooltip = [trace, labels, halt, maxIters](int row, int col) {
        const mythos::Trace& r = *trace;
        const std::size_t i = r.at(col, 0, row);
        auto get = [&](const std::vector<float>& v) { return i < v.size() ? num(v[i]) : QStringLiteral("n/a"); };
        QString s = QObject::tr("token %1 '%2' loop %3: p = %4, cumulative p = %5, weight = %6")
                        .arg(row)
                        .arg(labels.value(row))
                        .arg(col + 1)
                        .arg(get(r.actP), get(r.actCumP), get(r.actWeight));
        s += "\n" + haltText(halt.value(row));
        if (col + 1 > maxIters)
            s += QObject::tr("; loop %1 is past max_loop_iters = %2 (extrapolation)").arg(col + 1).arg(maxIters);
        return s;
    };
}

// ACT health: weight sums (set with the selection by applySelection).
void HaltingView::showWeightSums(const mythos::HaltingViewData& d) {
    m_weightValues = QVector<double>(d.weightSum.begin(), d.weightSum.end());
    m_weightColors.clear();
    for (int h : std::as_const(m_halt))
        m_weightColors << (h > 0 ? weightColor() : neverHaltedColor());
    if (d.finalRemainder)
        m_weightNote = tr("final remainder on: never-halted tokens sum to 1");
    else if (d.summary.never > 0)
        m_weightNote = tr("red: never halted, sum = cum p < 1 (reference)");
    else
        m_weightNote.clear();
    m_weightSum->setYRange(0, d.weightSumTop <= 1.2 ? 1.2 : 0);
    m_weightSum->setHorizontalMarker(1.0, tr("full weight 1.0"));
}

void HaltingView::showHistogram(const mythos::HaltingViewData& d) {
    const int L = int(d.loops);
    QStringList histCats;
    QVector<double> counts;
    QVector<QColor> histColors;
    for (int l = 1; l <= L; ++l) {
        histCats << QString::number(l);
        histColors << HaltingText::loopColor(l, L);
    }
    histCats << tr("never");
    histColors << neverHaltedColor();
    double maxCount = 0;
    for (int64_t c : d.summary.histogram) {
        counts << double(c);
        maxCount = std::max(maxCount, double(c));
    }
    m_histogram->setYRange(0, niceTop(maxCount));
    m_histogram->setBars(histCats, counts, histColors);
}

// The warning banner and the histogram's note when ACT never halts or has collapsed.
void HaltingView::showHealth(const mythos::HaltingViewData& d) {
    const int T = int(d.tokens), atOne = int(d.summary.atLoopOne);
    QString note;
    m_warningText.clear();
    if (d.health == mythos::ActHealth::NeverHalts) {
        m_warningText = tr("ACT never halts: no token reached the threshold %1 within %2 loops, so every "
                           "output is a partial weighted sum.")
                            .arg(num(d.threshold))
                            .arg(d.loops);
        note = tr("ACT never halts");
    } else if (d.health == mythos::ActHealth::Collapsed) {
        const QString share = QString::number(100.0 * atOne / T, 'f', 0);
        m_warningText = tr("ACT has collapsed: %1 of %2 tokens (%3%) halt at loop 1, so the recurrent depth is unused.")
                            .arg(atOne)
                            .arg(T)
                            .arg(share);
        note = tr("ACT collapsed: %1% halt at loop 1").arg(share);
    }
    m_histogram->setNote(note);
    m_warning->setText(QStringLiteral("\u26a0 ") + m_warningText);
    m_warning->setVisible(!m_warningText.isEmpty());
}

void HaltingView::showSummary(const mythos::Trace& rec, const mythos::HaltingViewData& d) {
    const int T = int(d.tokens);
    const mythos::HaltingSummary& halting = d.summary;
    QStringList parts;
    parts << (rec.batch > 1 ? tr("batch row 0 of %1").arg(rec.batch) : tr("batch row 0"));
    parts << (T == 1 ? tr("1 token") : tr("%1 tokens").arg(T));
    parts << tr("loops executed: %1 of %2 requested (max_loop_iters %3)")
                 .arg(d.loops)
                 .arg(int(d.requestedLoops))
                 .arg(int(d.maxLoopIters));
    parts << tr("threshold %1").arg(num(d.threshold));
    parts << (halting.halted > 0
                  ? tr("mean halting loop %1 (halted tokens)").arg(QString::number(halting.meanHaltLoop, 'f', 2))
                  : tr("mean halting loop: n/a"));
    parts << tr("never halted: %1 of %2 (%3%)")
                 .arg(int(halting.never))
                 .arg(T)
                 .arg(QString::number(T > 0 ? 100.0 * int(halting.never) / T : 0.0, 'f', 1));
    m_summary->setText(parts.join(QStringLiteral("  \u00b7  ")));
}

bool HaltingView::eventFilter(QObject* watched, QEvent* e) {
    if (watched == m_textScroll->viewport() && e->type() == QEvent::Resize)
        fitTextArea();
    return TraceView::eventFilter(watched, e);
}

void HaltingView::resizeEvent(QResizeEvent* e) {
    TraceView::resizeEvent(e);
    fitTextArea();
}

void HaltingView::fitTextArea() {
    // The legend and about four lines of tokens, more in a tall window.
    fitTokenTextArea(m_textScroll, m_text, fontMetrics().height() + 2 * kPadY + kGapY);
}

QString HaltingView::summary() const { return m_summary->text(); }

void HaltingView::setSelectedToken(int index) {
    if (keepSelection(index, int(m_labels.size())))
        applySelection();
}

void HaltingView::applySelection() {
    m_text->setSelected(m_selected);
    m_heatmap->setHighlightedRow(m_selected);
    QVector<QColor> bars = m_barColors, weights = m_weightColors;
    QString barNote = m_barNote, weightNote = m_weightNote;
    if (m_selected >= 0 && m_selected < bars.size()) {
        bars[m_selected] = selectionColor();
        weights[m_selected] = selectionColor();
    }
    m_bars->setNote(barNote);
    m_bars->setBars(m_categories, m_barValues, bars);
    m_weightSum->setNote(weightNote);
    m_weightSum->setBars(m_categories, m_weightValues, weights);
}

DataTable HaltingView::textTable() const {
    DataTable t;
    t.title = tr("Prompt shaded by halting loop");
    t.columns << "index"
              << "token"
              << "halting loop (0 = never)"
              << "status";
    for (int i = 0; i < m_labels.size(); ++i)
        t.addRow({i, m_labels[i], m_halt[i], m_halt[i] > 0 ? tr("halted") : tr("never halted")});
    return t;
}

DataTable HaltingView::withTokens(DataTable t) const {
    // The bars are labelled by index; the export names the token too.
    t.columns << "token";
    for (int i = 0; i < t.rows.size(); ++i)
        t.rows[i].push_back(m_labels.value(i));
    return t;
}

QList<ChartHandle> HaltingView::charts() const {
    QList<ChartHandle> out;
    out << ChartHandle{"halting-text", tr("Prompt shaded by halting loop"), m_text, [this] { return textTable(); }};
    out << ChartHandle{"halting-bars", m_bars->title(), m_bars, [this] { return withTokens(m_bars->table()); }};
    out << ChartHandle{"halting-heatmap", m_heatmap->title(), m_heatmap, [this] { return m_heatmap->table(); }};
    out << ChartHandle{"act-weight-sum", m_weightSum->title(), m_weightSum,
                       [this] { return withTokens(m_weightSum->table()); }};
    out << ChartHandle{"halting-histogram", m_histogram->title(), m_histogram, [this] { return m_histogram->table(); }};
    return out;
}

} // namespace mx
