#include "attentioncompare.h"

#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>

#include "attentionview.h"
#include "charts.h"
#include "heatmap.h"

namespace mx {

namespace {

QString kindOf(const mythos::Trace& tr) { return tr.config.isMla() ? QStringLiteral("MLA") : QStringLiteral("GQA"); }

// B's site for A's site `s`: the same name, else the same stage and loop (or layer), else -1.
int matchingSite(const mythos::Trace& a, int s, const mythos::Trace& b) {
    if (s < 0 || s >= int(a.attention.sites.size()))
        return -1;
    const auto& sa = a.attention.sites[std::size_t(s)];
    for (int i = 0; i < int(b.attention.sites.size()); ++i)
        if (b.attention.sites[std::size_t(i)].name == sa.name)
            return i;
    for (int i = 0; i < int(b.attention.sites.size()); ++i) {
        const auto& sb = b.attention.sites[std::size_t(i)];
        if (sb.stage == sa.stage && sb.loop == sa.loop && (sb.stage == "recurrent" || sb.layer == sa.layer))
            return i;
    }
    return -1;
}

} // namespace

AttentionCompare::AttentionCompare(QWidget* parent) : QWidget(parent) {
    auto* lay = new QVBoxLayout(this);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->setSpacing(6);
    auto* top = new QHBoxLayout;
    m_note = new WrapLabel(this);
    m_note->setObjectName("compareAttentionNote");
    top->addWidget(m_note, 1);
    auto* siteLabel = new QLabel(tr("At&tention site:"), this);
    m_siteCombo = new QComboBox(this);
    m_siteCombo->setObjectName("compareAttentionSite");
    m_siteCombo->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    siteLabel->setBuddy(m_siteCombo);
    auto* headLabel = new QLabel(tr("&Head:"), this);
    m_headSpin = new QSpinBox(this);
    m_headSpin->setObjectName("compareAttentionHead");
    headLabel->setBuddy(m_headSpin);
    top->addWidget(siteLabel);
    top->addWidget(m_siteCombo);
    top->addSpacing(8);
    top->addWidget(headLabel);
    top->addWidget(m_headSpin);
    lay->addLayout(top);

    m_body = new QWidget(this);
    auto* grid = new QGridLayout(m_body);
    grid->setContentsMargins(0, 0, 0, 0);
    grid->setSpacing(8);
    m_mapA = new Heatmap(m_body);
    m_mapA->setObjectName("compareAttentionA");
    m_mapB = new Heatmap(m_body);
    m_mapB->setObjectName("compareAttentionB");
    for (Heatmap* m : {m_mapA, m_mapB}) {
        m->setAxisTitles(tr("query"), tr("key"));
        m->setMinimumSize(340, 340);
    }
    m_entropy = new LineChart(tr("Attention entropy by loop, A solid, B dashed"), tr("loop"), tr("nats"), m_body);
    m_distance =
        new LineChart(tr("Mean attention distance by loop, A solid, B dashed"), tr("loop"), tr("positions"), m_body);
    for (LineChart* c : {m_entropy, m_distance}) {
        c->setIntegerX(true);
        c->setMinimumSize(300, 260);
    }
    grid->addWidget(m_mapA, 0, 0);
    grid->addWidget(m_mapB, 0, 1);
    grid->addWidget(m_entropy, 1, 0);
    grid->addWidget(m_distance, 1, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    lay->addWidget(m_body, 1);
    m_body->hide();

    connect(m_siteCombo, qOverload<int>(&QComboBox::activated), this, &AttentionCompare::setSite);
    connect(m_headSpin, qOverload<int>(&QSpinBox::valueChanged), this, &AttentionCompare::setHead);
    // A click on a query row of either side selects that token in the window.
    for (Heatmap* m : {m_mapA, m_mapB})
        connect(m, &Heatmap::rowClicked, this, [this, m](int row) {
            const int index = int((m == m_mapA ? m_ga : m_gb).from) + row;
            setSelectedToken(index);
            emit tokenClicked(index);
        });
}

void AttentionCompare::setTraces(const TracePtr& a, const TracePtr& b, const QString& nameA, const QString& nameB) {
    m_fullA = a;
    m_fullB = b;
    m_nameA = nameA;
    m_nameB = nameB;
    showWindows(attentionShown(a, m_selected), attentionShown(b, m_selected));
}

void AttentionCompare::showWindows(const TracePtr& a, const TracePtr& b) {
    m_a = a;
    m_b = b;
    m_ga = a ? mythos::attentionGridData(*a) : mythos::AttentionGridData{};
    m_gb = b ? mythos::attentionGridData(*b) : mythos::AttentionGridData{};
    rebuild();
}

void AttentionCompare::rebuild() {
    if (!showing()) {
        m_body->hide();
        m_siteCombo->setEnabled(false);
        m_headSpin->setEnabled(false);
        m_note->setText(m_a && m_b ? tr("<b>Attention:</b> no attention part in %1 yet (it is computed while this "
                                        "view is shown).")
                                         .arg(m_ga.heads > 0 ? tr("B") : tr("A"))
                                   : tr("<b>Attention:</b> waiting for both runs."));
        return;
    }
    m_top = std::max(attentionTop(*m_a), attentionTop(*m_b));
    const QString oldName = m_siteA >= 0 && m_siteA < m_siteCombo->count() ? m_siteCombo->itemText(m_siteA) : QString();
    {
        const QSignalBlocker b1(m_siteCombo), b2(m_headSpin);
        m_siteCombo->clear();
        for (int s = 0; s < int(m_ga.names.size()); ++s)
            m_siteCombo->addItem(attentionSiteLabel(m_ga, s));
        // A site picked by hand stays; the default (the last loop) follows the loop count.
        int site = m_sitePicked ? m_siteCombo->findText(oldName) : -1;
        if (site < 0)
            site = defaultAttentionSite(m_ga);
        m_siteA = site;
        m_siteCombo->setCurrentIndex(site);
        m_headSpin->setRange(0, int(std::max(m_ga.heads, m_gb.heads)) - 1);
        m_head = std::clamp(m_head, 0, m_headSpin->maximum());
        m_headSpin->setValue(m_head);
    }
    m_siteCombo->setEnabled(true);
    m_headSpin->setEnabled(true);
    m_body->show();

    int K = 0;
    for (std::size_t s = 0; s < m_ga.names.size(); ++s)
        if (m_ga.recurrent[s])
            K = std::max(K, int(m_ga.loops[s]));
    const QString pa = tr("A %1 ").arg(kindOf(*m_a)), pb = tr("B %1 ").arg(kindOf(*m_b));
    m_entropy->setSeries(attentionLoopSeries(m_ga, false, pa) + attentionLoopSeries(m_gb, false, pb, true));
    m_distance->setSeries(attentionLoopSeries(m_ga, true, pa) + attentionLoopSeries(m_gb, true, pb, true));
    for (LineChart* c : {m_entropy, m_distance}) {
        c->setXRange(1, std::max(2, K));
        c->setNote(K == 0 ? tr("no recurrent sites") : QString());
    }
    showMaps();
}

void AttentionCompare::setSite(int siteA) {
    if (!showing() || siteA < 0 || siteA >= int(m_ga.names.size()))
        return;
    m_siteA = siteA;
    m_sitePicked = siteA != defaultAttentionSite(m_ga);
    if (m_siteCombo->currentIndex() != siteA)
        m_siteCombo->setCurrentIndex(siteA);
    showMaps();
}

void AttentionCompare::setHead(int head) {
    m_head = std::max(0, head);
    if (m_headSpin->value() != m_head) {
        const QSignalBlocker b(m_headSpin);
        m_headSpin->setValue(m_head);
    }
    if (showing())
        showMaps();
}

void AttentionCompare::showMaps() {
    m_siteB = matchingSite(*m_a, m_siteA, *m_b);
    if (m_siteB < 0)
        m_siteB = defaultAttentionSite(m_gb);
    m_headA = std::min(m_head, int(m_ga.heads) - 1);
    m_headB = std::min(m_head, int(m_gb.heads) - 1);
    showAttentionMatrix(m_mapA, *m_a, m_ga, m_siteA, m_headA, m_top, m_selected);
    showAttentionMatrix(m_mapB, *m_b, m_gb, m_siteB, m_headB, m_top, m_selected);
    m_mapA->setTitle(tr("A %1 (%2): %3").arg(m_nameA, kindOf(*m_a), m_mapA->title()));
    m_mapB->setTitle(tr("B %1 (%2): %3").arg(m_nameB, kindOf(*m_b), m_mapB->title()));
    QVector<QPair<double, QString>> marks;
    if (m_ga.recurrent[std::size_t(m_siteA)])
        marks << qMakePair(double(m_ga.loops[std::size_t(m_siteA)]), tr("shown"));
    m_entropy->setMarkers(marks);
    m_distance->setMarkers(marks);
    QString text = tr("<b>Attention</b> of head %1 at %2 in both models, positions %3-%4")
                       .arg(m_headA)
                       .arg(attentionSiteLabel(m_ga, m_siteA))
                       .arg(m_ga.from)
                       .arg(m_ga.to - 1);
    if (m_headB != m_headA)
        text += tr(" (B has %1 heads: its head %2)").arg(m_gb.heads).arg(m_headB);
    if (m_ga.from != m_gb.from || m_ga.to != m_gb.to)
        text += tr("; B's window is positions %1-%2").arg(m_gb.from).arg(m_gb.to - 1);
    m_note->setText(text + ".");
}

void AttentionCompare::setSelectedToken(int index) {
    m_selected = index;
    if (!showing())
        return;
    // Windows of recorded traces' attention follow the selection.
    const TracePtr a = attentionShown(m_fullA, index, m_a), b = attentionShown(m_fullB, index, m_b);
    if (a != m_a || b != m_b) {
        showWindows(a, b);
        return;
    }
    const int ra = index >= m_ga.from && index < m_ga.to ? index - int(m_ga.from) : -1;
    const int rb = index >= m_gb.from && index < m_gb.to ? index - int(m_gb.from) : -1;
    m_mapA->setHighlightedRow(ra);
    m_mapB->setHighlightedRow(rb);
}

QString AttentionCompare::note() const { return m_note->text(); }

DataTable AttentionCompare::mapTable(bool b) const {
    const Heatmap* m = b ? m_mapB : m_mapA;
    const mythos::AttentionGridData& g = b ? m_gb : m_ga;
    const int site = b ? m_siteB : m_siteA;
    DataTable t;
    t.title = m->title();
    t.columns = {"model", "site", "head", "query", "key", "p"};
    if (site < 0 || site >= int(g.names.size()))
        return t;
    const QString name = QString::fromStdString(g.names[std::size_t(site)]);
    for (int i = 0; i < m->rows(); ++i)
        for (int j = 0; j <= i; ++j)
            t.addRow(
                {b ? m_nameB : m_nameA, name, b ? m_headB : m_headA, int(g.from) + i, int(g.from) + j, m->value(i, j)});
    return t;
}

QList<ChartHandle> AttentionCompare::charts() const {
    QList<ChartHandle> out;
    if (!showing())
        return out;
    out << ChartHandle{"compare-attention-a", m_mapA->title(), m_mapA, [this] { return mapTable(false); }};
    out << ChartHandle{"compare-attention-b", m_mapB->title(), m_mapB, [this] { return mapTable(true); }};
    out << ChartHandle{"compare-attention-entropy", m_entropy->title(), m_entropy,
                       [this] { return m_entropy->table(); }};
    out << ChartHandle{"compare-attention-distance", m_distance->title(), m_distance,
                       [this] { return m_distance->table(); }};
    return out;
}

} // namespace mx
