#include "comparisonview.h"
#include "interventioneffect.h"

#include "mythos/viewdata.h"

#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QPushButton>
#include <QScrollArea>
#include <QStackedWidget>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>

#include "attentioncompare.h"
#include "attentionview.h"
#include "charts.h"
#include "kvview.h"

namespace mx {

namespace {

QString fixed(double v, int prec) { return QString::number(v, 'f', prec); }

struct Figures {
    double meanHalt = 0;
    int never = 0;
    mythos::LoadStats routing;
    bool hasRouting = false;
    int64_t kvRef = 0, kvCompact = 0;
};

Figures figuresOf(const mythos::Trace& tr) {
    Figures f;
    const mythos::HaltingSummary halting = mythos::haltingSummary(tr, 0);
    f.meanHalt = halting.halted > 0 ? halting.meanHaltLoop : 0.0;
    f.never = int(halting.never);
    try {
        f.routing = mythos::routingStats(mythos::recordedRouting(tr)).overall;
        f.hasRouting = true;
    } catch (const std::exception&) {}
    const int64_t positions = tr.startPos + tr.seqLen, loops = std::max<int64_t>(1, tr.nLoops);
    try {
        f.kvRef = mythos::kvTotalBytes(tr.config, mythos::KvLayout::Reference, std::max<int64_t>(1, tr.batch),
                                       positions, loops);
        f.kvCompact = mythos::kvTotalBytes(tr.config, mythos::KvLayout::Compact, std::max<int64_t>(1, tr.batch),
                                           positions, loops);
    } catch (const std::exception&) {
        f.kvRef = f.kvCompact = -1; // a loaded trace's sizes fit (checked on load); this is a guard
    }
    return f;
}

QString attentionText(const mythos::Config& c) {
    return c.isMla() ? QStringLiteral("MLA (kv_lora_rank %1)").arg(c.kv_lora_rank)
                     : QStringLiteral("GQA (%1 of %2 heads)").arg(c.n_kv_heads).arg(c.n_heads);
}

// "B / A" for positive figures, "B - A" otherwise.
QString relation(double a, double b, int prec) {
    if (a > 0 && b > 0)
        return QStringLiteral("%1x").arg(b / a, 0, 'f', 2);
    return QStringLiteral("%1%2").arg(b - a >= 0 ? "+" : "").arg(b - a, 0, 'f', prec);
}

} // namespace

ComparisonView::ComparisonView(QWidget* parent) : TraceView(parent) {
    auto* outer = new QVBoxLayout(this);
    outer->setContentsMargins(0, 0, 0, 0);
    m_stack = new QStackedWidget(this);
    outer->addWidget(m_stack);

    // Page 0: how to start a comparison.
    auto* intro = new QWidget;
    auto* il = new QVBoxLayout(intro);
    il->setContentsMargins(24, 24, 24, 24);
    auto* text = new QLabel(tr("<h3>Compare two models on the same prompt</h3>"
                               "<p>Open a second model, for example the GQA sibling of an MLA checkpoint, or the same "
                               "checkpoint with a changed config field (top-k experts, ACT threshold) or engine "
                               "option. Both then run every prompt at the window's loop count, and this view shows "
                               "their halting side by side, how often they agree on the next token, the KL "
                               "divergence between them, routing balance, KV-cache bytes and measured latency.</p>"),
                            intro);
    text->setWordWrap(true);
    il->addWidget(text);
    auto* buttons = new QHBoxLayout;
    auto* folder = new QPushButton(tr("Compare with a model folder..."), intro);
    folder->setObjectName("compareFolderButton");
    auto* preset = new QPushButton(tr("Compare with a preset..."), intro);
    preset->setObjectName("comparePresetButton");
    auto* variant = new QPushButton(tr("Compare with a config variant..."), intro);
    variant->setObjectName("compareVariantButton");
    auto* intervention = new QPushButton(tr("Compare with an intervention..."), intro);
    intervention->setObjectName("compareInterventionButton");
    buttons->addWidget(folder);
    buttons->addWidget(preset);
    buttons->addWidget(variant);
    buttons->addWidget(intervention);
    buttons->addStretch(1);
    il->addLayout(buttons);
    il->addStretch(1);
    connect(folder, &QPushButton::clicked, this, &ComparisonView::compareWithFolderRequested);
    connect(preset, &QPushButton::clicked, this, &ComparisonView::compareWithPresetRequested);
    connect(variant, &QPushButton::clicked, this, &ComparisonView::compareWithVariantRequested);
    connect(intervention, &QPushButton::clicked, this, &ComparisonView::compareWithInterventionRequested);
    m_stack->addWidget(intro);

    // Page 1: the comparison.
    m_scroll = new QScrollArea;
    m_scroll->setWidgetResizable(true);
    m_scroll->setFrameShape(QFrame::NoFrame);
    auto* content = new QWidget;
    auto* lay = new QVBoxLayout(content);
    lay->setContentsMargins(8, 6, 8, 6);
    m_summary = addSummaryLabel(content, lay);
    m_halting = new LineChart(tr("Halting loop per token"), tr("token index"), tr("halting loop"), content);
    m_halting->setIntegerX(true);
    m_diff = new BarChart(tr("Halting loop difference, B - A"), tr("token index"), tr("loops"), content);
    m_kl = new BarChart(tr("Next-token KL(A || B) per token"), tr("token index"), tr("nats"), content);
    m_table = makeReadOnlyTable(content, "compareTable");
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    for (QWidget* w : {static_cast<QWidget*>(m_halting), static_cast<QWidget*>(m_diff), static_cast<QWidget*>(m_kl),
                       static_cast<QWidget*>(m_table)})
        w->setMinimumSize(300, 240);
    auto* grid = new QGridLayout;
    grid->setSpacing(8);
    grid->addWidget(m_halting, 0, 0);
    grid->addWidget(m_diff, 0, 1);
    grid->addWidget(m_kl, 1, 0);
    grid->addWidget(m_table, 1, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    grid->setRowStretch(0, 1);
    grid->setRowStretch(1, 1);
    lay->addLayout(grid, 1);
    m_effect = new InterventionEffectPanel(content);
    m_effect->setObjectName("compareInterventionEffect");
    m_effect->hide();
    lay->addWidget(m_effect);
    m_attention = new AttentionCompare(content);
    connect(m_attention, &AttentionCompare::tokenClicked, this, &ComparisonView::tokenSelected);
    lay->addWidget(m_attention);
    m_scroll->setWidget(content);
    m_stack->addWidget(m_scroll);
}

void ComparisonView::setModels(const ModelInfoPtr& a, const ModelInfoPtr& b) {
    const bool changedB = b != m_infoB;
    m_infoA = a;
    m_infoB = b;
    if (changedB) {
        m_b.reset();
        m_resB.reset();
        m_errorB.clear();
    }
    m_stack->setCurrentIndex(b ? 1 : 0);
    rebuild();
}

void ComparisonView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    rebuild();
}

void ComparisonView::setResultA(const RunResultPtr& r) {
    m_resA = r;
    // The view rebuilds when it is given the result's trace (setTrace); only a result for
    // the trace already shown needs a rebuild here.
    if (r && r->trace == m_trace)
        rebuild();
}

void ComparisonView::setResultB(const RunResultPtr& r) {
    m_resB = r;
    m_b = r ? r->trace : nullptr;
    m_errorB.clear();
    rebuild();
}

void ComparisonView::setErrorB(const QString& error) {
    m_errorB = error;
    rebuild();
}

void ComparisonView::rebuild() {
    m_comparable = false;
    m_agreement = {};
    if (!m_infoB)
        return;
    const QString nameA = m_infoA ? m_infoA->displayName : tr("A");
    const QString nameB = m_infoB->displayName;
    QString note;
    if (!m_errorB.isEmpty())
        note = tr("<span style='color:#a01e14'><b>B failed:</b> %1</span>").arg(m_errorB.toHtmlEscaped());
    else if (!m_trace || !m_b)
        note = tr("Waiting for both runs...");
    else if (m_trace->nLoops != m_b->nLoops)
        note = tr("Waiting for B at %1 loops...").arg(m_trace->nLoops);
    else if (m_trace->ids != m_b->ids)
        note = tr("<b>The models saw different tokens</b> (their tokenizers differ): only the table compares them.");
    else
        m_comparable = true;

    showFigureTable(nameA, nameB);
    m_attention->setTraces(m_comparable ? m_trace : nullptr, m_comparable ? m_b : nullptr, nameA, nameB);
    m_attention->setSelectedToken(m_selected);

    m_effect->setVisible(m_comparable && m_effect->setTraces(m_trace, m_b));
    if (!m_comparable) {
        m_halting->setSeries({});
        m_diff->setBars({}, {});
        m_kl->setBars({}, {});
        m_summary->setText(
            tr("<b>A</b> %1 vs <b>B</b> %2. %3").arg(nameA.toHtmlEscaped(), nameB.toHtmlEscaped(), note));
        return;
    }

    // Next-token agreement needs every position's logits, which a large vocabulary's run
    // does not compute (HeadRows::Last): halting is compared all the same.
    const bool haveLogits = !m_trace->logits.empty() && !m_b->logits.empty();
    mythos::HaltingComparison halting;
    try {
        if (haveLogits)
            m_agreement = mythos::compareNextToken(*m_trace, *m_b);
        halting = mythos::compareHalting(*m_trace, *m_b);
    } catch (const std::exception& e) {
        m_comparable = false;
        m_diffValues.clear();
        m_diffColors.clear();
        m_summary->setText(tr("Cannot compare: %1").arg(QString::fromStdString(e.what())));
        return;
    }
    showPerTokenCharts(nameA, nameB, halting, haveLogits);
    applySelection();
    showSummary(nameA, nameB, halting, haveLogits);
}

// Every figure of A and B side by side, as far as each is known.
void ComparisonView::showFigureTable(const QString& nameA, const QString& nameB) {
    const QStringList cols = {tr("figure"), tr("A: %1").arg(nameA), tr("B: %1").arg(nameB), tr("B vs A")};
    m_table->clear();
    m_table->setColumnCount(int(cols.size()));
    m_table->setHorizontalHeaderLabels(cols);
    QList<QStringList> rows;
    const mythos::Config* ca = m_trace ? &m_trace->config : (m_infoA ? &m_infoA->config : nullptr);
    const mythos::Config& cb = m_b ? m_b->config : m_infoB->config;
    rows << QStringList{tr("attention"), ca ? attentionText(*ca) : QString(), attentionText(cb), {}};
    if (m_infoA)
        rows << QStringList{tr("parameters"), QLocale().toString(qlonglong(m_infoA->parameters)),
                            QLocale().toString(qlonglong(m_infoB->parameters)),
                            relation(double(m_infoA->parameters), double(m_infoB->parameters), 0)};
    if (m_infoA)
        rows << QStringList{tr("rho(A)"), fixed(m_infoA->rhoA, 4), fixed(m_infoB->rhoA, 4),
                            relation(m_infoA->rhoA, m_infoB->rhoA, 4)};
    if (m_trace && m_b) {
        const Figures fa = figuresOf(*m_trace), fb = figuresOf(*m_b);
        rows << QStringList{tr("loops executed"), QString::number(m_trace->loopsExecuted),
                            QString::number(m_b->loopsExecuted),
                            relation(double(m_trace->loopsExecuted), double(m_b->loopsExecuted), 0)};
        rows << QStringList{tr("mean halting loop"), fixed(fa.meanHalt, 2), fixed(fb.meanHalt, 2),
                            relation(fa.meanHalt, fb.meanHalt, 2)};
        rows << QStringList{tr("never halted tokens"), QString::number(fa.never), QString::number(fb.never),
                            relation(fa.never, fb.never, 0)};
        if (fa.hasRouting && fb.hasRouting) {
            rows << QStringList{tr("routing entropy (bits)"), fixed(fa.routing.entropyBits, 3),
                                fixed(fb.routing.entropyBits, 3),
                                relation(fa.routing.entropyBits, fb.routing.entropyBits, 3)};
            rows << QStringList{tr("max / mean expert load"), fixed(fa.routing.maxOverMean, 2),
                                fixed(fb.routing.maxOverMean, 2),
                                relation(fa.routing.maxOverMean, fb.routing.maxOverMean, 2)};
            rows << QStringList{tr("Gini of expert load"), fixed(fa.routing.gini, 3), fixed(fb.routing.gini, 3),
                                relation(fa.routing.gini, fb.routing.gini, 3)};
            rows << QStringList{tr("dead experts"), QString::number(fa.routing.dead), QString::number(fb.routing.dead),
                                relation(double(fa.routing.dead), double(fb.routing.dead), 0)};
        }
        rows << QStringList{tr("KV cache, reference layout"), formatBytes(double(fa.kvRef)),
                            formatBytes(double(fb.kvRef)), relation(double(fa.kvRef), double(fb.kvRef), 0)};
        rows << QStringList{tr("KV cache, compact layout"), formatBytes(double(fa.kvCompact)),
                            formatBytes(double(fb.kvCompact)), relation(double(fa.kvCompact), double(fb.kvCompact), 0)};
    }
    const bool latA = m_resA && m_resA->prefillMs > 0, latB = m_resB && m_resB->prefillMs > 0;
    if (latA || latB) {
        rows << QStringList{tr("prefill (cached, ms)"), latA ? fixed(m_resA->prefillMs, 2) : QStringLiteral("-"),
                            latB ? fixed(m_resB->prefillMs, 2) : QStringLiteral("-"),
                            latA && latB ? relation(m_resA->prefillMs, m_resB->prefillMs, 2) : QString()};
        rows << QStringList{tr("decode (ms per token)"),
                            latA ? fixed(m_resA->decodeMsPerToken, 3) : QStringLiteral("-"),
                            latB ? fixed(m_resB->decodeMsPerToken, 3) : QStringLiteral("-"),
                            latA && latB ? relation(m_resA->decodeMsPerToken, m_resB->decodeMsPerToken, 3) : QString()};
    }
    m_table->setRowCount(int(rows.size()));
    m_table->setMinimumHeight(m_table->horizontalHeader()->sizeHint().height() +
                              int(rows.size()) * m_table->verticalHeader()->defaultSectionSize() + 6);
    for (int r = 0; r < rows.size(); ++r)
        for (int c = 0; c < cols.size(); ++c) {
            auto* it = new QTableWidgetItem(rows[r].value(c));
            it->setTextAlignment(c == 0 ? Qt::Alignment(Qt::AlignLeft | Qt::AlignVCenter)
                                        : Qt::Alignment(Qt::AlignRight | Qt::AlignVCenter));
            m_table->setItem(r, c, it);
        }
}

// Halting side by side (never halted at L + 1, like the halting view), the difference and,
// with logits, KL per token.
void ComparisonView::showPerTokenCharts(const QString& nameA, const QString& nameB,
                                        const mythos::HaltingComparison& halting, bool haveLogits) {
    const int T = int(halting.tokens);
    const int L = int(halting.loops);
    Series sa, sb;
    sa.name = tr("A: %1").arg(nameA);
    sb.name = tr("B: %1").arg(nameB);
    sa.color = categoricalColor(0);
    sb.color = categoricalColor(1);
    sb.dashed = true;
    sa.markers = sb.markers = T <= 80;
    QStringList cats;
    QVector<double> kl;
    QVector<QColor> klColors;
    m_diffValues.clear();
    m_diffColors.clear();
    for (int t = 0; t < T; ++t) {
        const double va = halting.haltA[std::size_t(t)], vb = halting.haltB[std::size_t(t)];
        sa.points << QPointF(t, va);
        sb.points << QPointF(t, vb);
        cats << QString::number(t);
        m_diffValues << halting.diff[std::size_t(t)];
        m_diffColors << (vb > va ? QColor(200, 80, 40) : QColor(40, 110, 190));
        if (!haveLogits)
            continue;
        kl << m_agreement.klAB[std::size_t(t)];
        klColors << (m_agreement.top1A[std::size_t(t)] == m_agreement.top1B[std::size_t(t)] ? QColor(60, 150, 70)
                                                                                            : QColor(200, 50, 40));
    }
    m_halting->setSeries({sa, sb});
    m_halting->setXRange(-0.5, T - 0.5);
    m_halting->setYRange(0, 4.0 * std::ceil((L + 1.5) / 4.0)); // whole-number ticks
    m_neverLoop = L + 1;
    m_halting->setTitle(tr("Halting loop per token at %1 loops").arg(m_trace->nLoops));
    m_diffCategories = cats;
    m_diff->setHorizontalMarker(0.0, {});
    m_diff->setNote(tr("above 0: B thinks longer"));
    if (haveLogits) {
        m_kl->setBars(cats, kl, klColors);
        m_kl->setNote(tr("green: same top-1 token, red: different"));
    } else {
        m_kl->setBars({}, {});
        m_kl->setNote(tr("no per-token logits: with a vocabulary of %1 only the last position's head is computed")
                          .arg(QLocale().toString(qlonglong(m_trace->vocab))));
    }
}

void ComparisonView::showSummary(const QString& nameA, const QString& nameB, const mythos::HaltingComparison& halting,
                                 bool haveLogits) {
    const int T = int(halting.tokens);
    const int sameHalt = int(halting.sameHaltLoop);
    if (!haveLogits) {
        m_summary->setText(tr("<b>A</b> %1 vs <b>B</b> %2 at %3 loops over %4 tokens: the same halting loop for %5 of "
                              "%4 tokens (next-token agreement needs every position's logits, which a vocabulary "
                              "this large does not compute).")
                               .arg(nameA.toHtmlEscaped(), nameB.toHtmlEscaped())
                               .arg(m_trace->nLoops)
                               .arg(T)
                               .arg(sameHalt));
        return;
    }
    m_summary->setText(tr("<b>A</b> %1 vs <b>B</b> %2 at %3 loops over %4 tokens: the same next token (top-1) for "
                          "<b>%5</b> of tokens, mean KL(A || B) <b>%6</b> nats (max %7); the same halting loop for "
                          "%8 of %4 tokens.")
                           .arg(nameA.toHtmlEscaped(), nameB.toHtmlEscaped())
                           .arg(m_trace->nLoops)
                           .arg(T)
                           .arg(QString::number(100.0 * m_agreement.top1Match, 'f', 1) + "%")
                           .arg(fixed(m_agreement.meanKl, 4))
                           .arg(fixed(m_agreement.maxKl, 4))
                           .arg(sameHalt));
}

void ComparisonView::applySelection() {
    m_halting->setMarkers(m_selected >= 0 ? QVector<QPair<double, QString>>{{double(m_selected), tr("selected")}}
                                          : QVector<QPair<double, QString>>{},
                          {{double(m_neverLoop), tr("never halted")}});
    QVector<QColor> colors = m_diffColors;
    if (m_selected >= 0 && m_selected < colors.size())
        colors[m_selected] = selectionColor();
    m_diff->setBars(m_diffCategories, m_diffValues, colors);
    m_effect->setSelectedToken(m_selected);
}

void ComparisonView::setSelectedToken(int index) {
    m_selected = index;
    m_attention->setSelectedToken(index);
    if (m_comparable)
        applySelection(); // the figures stay; only the marks move
}

TraceView::Needs ComparisonView::needs() const {
    Needs n;
    if (!m_infoB)
        return n;
    return attentionNeeds(m_trace, m_selected);
}

QString ComparisonView::summary() const { return m_summary->text(); }

DataTable ComparisonView::tableData() const {
    DataTable t;
    t.title = tr("Model comparison");
    for (int c = 0; c < m_table->columnCount(); ++c)
        t.columns << (m_table->horizontalHeaderItem(c) ? m_table->horizontalHeaderItem(c)->text() : QString());
    for (int r = 0; r < m_table->rowCount(); ++r) {
        QVector<QVariant> row;
        for (int c = 0; c < m_table->columnCount(); ++c)
            row << (m_table->item(r, c) ? m_table->item(r, c)->text() : QString());
        t.addRow(row);
    }
    return t;
}

QList<ChartHandle> ComparisonView::charts() const {
    QList<ChartHandle> out;
    if (!m_infoB)
        return out;
    out << ChartHandle{"compare-halting", m_halting->title(), m_halting, [this] { return m_halting->table(); }};
    out << ChartHandle{"compare-halting-diff", m_diff->title(), m_diff, [this] { return m_diff->table(); }};
    out << ChartHandle{"compare-kl", m_kl->title(), m_kl, [this] {
                           DataTable t = m_kl->table();
                           t.columns << "top1_a"
                                     << "top1_b";
                           for (int i = 0; i < t.rows.size() && std::size_t(i) < m_agreement.top1A.size(); ++i)
                               t.rows[i] << m_agreement.top1A[std::size_t(i)] << m_agreement.top1B[std::size_t(i)];
                           return t;
                       }};
    out << ChartHandle{"compare-table", tr("Model comparison"), m_table, [this] { return tableData(); }};
    if (!m_effect->isHidden())
        out << m_effect->chart();
    out << m_attention->charts();
    return out;
}

} // namespace mx
