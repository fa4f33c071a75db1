#include "kvview.h"

#include "mythos/errors.h"

#include <QGridLayout>
#include <QHeaderView>
#include <QLabel>
#include <QScrollArea>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "charts.h"
#include "mythos/viewdata.h"

namespace mx {

QString formatBytes(double bytes) {
    const double a = std::abs(bytes);
    if (a < 1024)
        return QStringLiteral("%1 B").arg(qlonglong(std::llround(bytes)));
    if (a < 1024.0 * 1024)
        return QStringLiteral("%1 KiB").arg(bytes / 1024.0, 0, 'f', a < 10 * 1024 ? 2 : 1);
    if (a < 1024.0 * 1024 * 1024)
        return QStringLiteral("%1 MiB").arg(bytes / (1024.0 * 1024), 0, 'f', 2);
    return QStringLiteral("%1 GiB").arg(bytes / (1024.0 * 1024 * 1024), 0, 'f', 2);
}

namespace {

QString shapeText(const std::vector<int64_t>& shape) {
    QStringList parts;
    for (int64_t d : shape)
        parts << QString::number(d);
    return parts.join(QChar(0x00d7));
}

QColor kindColor(mythos::KvEntryKind kind) {
    switch (kind) {
    case mythos::KvEntryKind::Prelude: return QColor(120, 144, 170);
    case mythos::KvEntryKind::Recurrent: return categoricalColor(1);
    default: return categoricalColor(2);
    }
}

// "prelude_0" -> "pre 0", "recurrent_loop_3" -> "loop 3", "coda_1" -> "coda 1" (axis labels).
QString shortKey(const std::string& key) {
    QString k = QString::fromStdString(key);
    k.replace("recurrent_loop_", "loop ").replace("prelude_", "pre ").replace("coda_", "coda ");
    return k;
}

struct Unit {
    double div = 1;
    QString name = QStringLiteral("B");
};
Unit unitFor(double maxBytes) {
    if (maxBytes >= 1024.0 * 1024 * 1024)
        return {1024.0 * 1024 * 1024, QStringLiteral("GiB")};
    if (maxBytes >= 1024.0 * 1024)
        return {1024.0 * 1024, QStringLiteral("MiB")};
    if (maxBytes >= 1024.0)
        return {1024.0, QStringLiteral("KiB")};
    return {};
}

} // namespace

KvView::KvView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);
    m_summary = addSummaryLabel(content, lay);

    m_table = makeReadOnlyTable(content, "kvLedgerTable");
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setStretchLastSection(true);
    m_entries = new BarChart(tr("Bytes per cache entry"), tr("cache entry"), tr("KiB"), content);
    m_bySeq = new LineChart(tr("KV cache against sequence length"), tr("cached positions"), tr("KiB"), content);
    m_bySeq->setIntegerX(true);
    m_byLoops = new LineChart(tr("KV cache against loop count"), tr("loops"), tr("KiB"), content);
    m_byLoops->setIntegerX(true);
    for (QWidget* w : {static_cast<QWidget*>(m_table), static_cast<QWidget*>(m_entries), static_cast<QWidget*>(m_bySeq),
                       static_cast<QWidget*>(m_byLoops)})
        w->setMinimumSize(300, 240);

    auto* grid = new QGridLayout;
    grid->setSpacing(8);
    grid->addWidget(m_bySeq, 0, 0);
    grid->addWidget(m_byLoops, 0, 1);
    grid->addWidget(m_entries, 1, 0);
    grid->addWidget(m_table, 1, 1);
    grid->setRowStretch(0, 1);
    grid->setRowStretch(1, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    lay->addLayout(grid, 1);
    m_summary->setText(noTraceText());
}

void KvView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    try {
        rebuild();
    } catch (const std::exception& e) {
        // A config whose other attention variants' sizes do not fit (a GQA trace's unused MLA
        // fields, say): say so instead of showing a half-built view.
        m_ledger = {};
        m_compactBytes = 0;
        m_table->clear();
        m_table->setRowCount(0);
        m_entries->setBars({}, {}, {});
        m_bySeq->setSeries({});
        m_byLoops->setSeries({});
        m_summary->setText(tr("The KV cache of this trace cannot be accounted for: %1")
                               .arg(QString::fromStdString(mythos::oneLine(e.what())).toHtmlEscaped()));
    }
}

void KvView::rebuild() {
    const mythos::KvViewData d = mythos::kvViewData(*m_trace);
    m_live = d.live;
    m_positions = d.positions;
    m_ledger = d.ledger;
    m_compactBytes = d.compactTotal;
    showLedgerTable(d);
    showEntryBars(d);
    showVariantCurves(d);
    showSummary(d);
}

void KvView::showLedgerTable(const mythos::KvViewData& d) {
    const QStringList cols = {tr("entry"), tr("positions"), tr("reference tensors"), tr("reference"), tr("compact")};
    m_table->clear();
    m_table->setColumnCount(int(cols.size()));
    m_table->setHorizontalHeaderLabels(cols);
    const int n = int(m_ledger.entries.size());
    m_table->setRowCount(n + 2);
    auto put = [this](int row, int col, const QString& text, bool bold = false) {
        auto* it = new QTableWidgetItem(text);
        it->setTextAlignment(col >= 3 || col == 1 ? Qt::Alignment(Qt::AlignRight | Qt::AlignVCenter)
                                                  : Qt::Alignment(Qt::AlignLeft | Qt::AlignVCenter));
        if (bold) {
            QFont f = m_table->font();
            f.setBold(true);
            it->setFont(f);
        }
        m_table->setItem(row, col, it);
    };
    for (int i = 0; i < n; ++i) {
        const auto& e = m_ledger.entries[std::size_t(i)];
        QStringList tensors;
        for (const auto& t : e.reference)
            tensors << QStringLiteral("%1 %2").arg(QString::fromStdString(t.name), shapeText(t.shape));
        put(i, 0, QString::fromStdString(e.key));
        put(i, 1, QString::number(e.positions));
        put(i, 2, tensors.join(" + "));
        put(i, 3, formatBytes(double(e.referenceBytes)));
        put(i, 4, formatBytes(double(d.compactBytes[std::size_t(i)])));
    }
    put(n, 0, tr("total"), true);
    put(n, 1, QString::number(m_positions), true);
    put(n, 2, tr("%1 entries").arg(n), true);
    put(n, 3, formatBytes(double(m_ledger.referenceBytes)), true);
    put(n, 4, formatBytes(double(m_compactBytes)), true);
    put(n + 1, 0, tr("per token"));
    put(n + 1, 2, tr("every entry together"));
    put(n + 1, 3, formatBytes(d.perTokenReference));
    put(n + 1, 4, formatBytes(d.perTokenCompact));
}

void KvView::showEntryBars(const mythos::KvViewData& d) {
    const Unit eu = unitFor(double(d.largestEntryBytes));
    QStringList keys;
    QVector<double> entryValues;
    QVector<QColor> entryColors;
    for (std::size_t i = 0; i < m_ledger.entries.size(); ++i) {
        const auto& e = m_ledger.entries[i];
        keys << shortKey(e.key);
        entryValues << double(e.referenceBytes) / eu.div;
        entryColors << kindColor(d.kinds[i]);
    }
    m_entries->setBars(keys, entryValues, entryColors);
    m_entries->setLabelAngle(keys.size() > 12 ? -90 : 0);
    m_entries->setNote(tr("grey: prelude, orange: one entry per loop, green: coda"));
    m_entries->setYRange(0, 0);
    m_entries->setYLabel(eu.name);
    m_entries->setTitle(tr("Bytes per cache entry (reference layout, %1 positions)").arg(m_positions));
}

// Bytes against sequence length and against loop count for every attention variant.
void KvView::showVariantCurves(const mythos::KvViewData& d) {
    const double top = double(d.curveTop);
    const Unit u = unitFor(top);
    QVector<Series> seq, byL;
    int ci = 0;
    for (const auto& curve : d.curves) {
        Series s;
        s.name = QString::fromStdString(curve.variant.name) + (curve.variant.current ? tr(" (this)") : QString());
        s.color = categoricalColor(ci++);
        s.dashed = curve.compactMla;
        s.markers = curve.variant.current;
        Series l = s;
        for (const auto& [x, bytes] : curve.bySeqLen)
            s.points << QPointF(double(x), double(bytes) / u.div);
        for (const auto& [k, bytes] : curve.byLoops)
            l.points << QPointF(double(k), double(bytes) / u.div);
        seq << s;
        byL << l;
    }
    m_bySeq->setSeries(seq);
    m_bySeq->setXRange(1, double(d.maxSeqLen));
    m_bySeq->setYRange(0, top / u.div * 1.05);
    m_bySeq->setYLabel(u.name);
    m_bySeq->setTitle(tr("KV cache against sequence length, at %1 loops").arg(d.loops));
    m_bySeq->setMarkers({{double(m_positions), tr("this run")}});
    m_byLoops->setSeries(byL);
    m_byLoops->setXRange(1, double(d.maxLoops));
    m_byLoops->setYRange(0, top / u.div * 1.05);
    m_byLoops->setYLabel(u.name);
    m_byLoops->setTitle(tr("KV cache against loop count, at %1 positions").arg(m_positions));
    m_byLoops->setMarkers(
        {{double(d.loops), tr("this run")}, {double(m_trace->config.max_loop_iters), tr("max_loop_iters")}});
}

void KvView::showSummary(const mythos::KvViewData& d) {
    const mythos::Config& c = m_trace->config;
    const int64_t recurrent = d.recurrentEntries;
    const int64_t perPosRef = d.bytesPerPositionReference, perPosCompact = d.bytesPerPositionCompact;
    QString text = tr("<b>%1 positions x %2 cache entries</b> (%3 prelude + %4 loop%5 + %6 coda): "
                      "<b>%7</b> in the reference layout (%8 per token), %9 compact. %10")
                       .arg(m_positions)
                       .arg(int(m_ledger.entries.size()))
                       .arg(c.prelude_layers)
                       .arg(recurrent)
                       .arg(recurrent == 1 ? "" : "s")
                       .arg(c.coda_layers)
                       .arg(formatBytes(double(m_ledger.referenceBytes)), formatBytes(d.perTokenReference),
                            formatBytes(double(m_compactBytes)),
                            m_live ? tr("(The live cache of the generation, growing with every token.)")
                                   : tr("(What a cached run over these tokens at %1 loops holds.)").arg(d.loops));
    text += "<br>" + tr("Every loop writes its own cache entry, so the cache grows linearly with the loop count: "
                        "each extra loop adds %1 here.")
                         .arg(formatBytes(double(d.extraLoopBytes)));
    if (c.isMla()) {
        text += "<br>" +
                tr("MLA caches c_kv (%1 floats) and the rope key; the reference copies the one shared rope "
                   "key to each of the %2 heads (%2 x %3 floats), so %4 of the %5 per position and entry "
                   "are copies. The compact layout stores it once (%6 per position and entry, %7 less).")
                    .arg(c.kv_lora_rank)
                    .arg(c.n_heads)
                    .arg(c.qk_rope_head_dim)
                    .arg(formatBytes(double(d.ropeCopyBytes)), formatBytes(double(perPosRef)),
                         formatBytes(double(perPosCompact)),
                         QString::number(100.0 * double(perPosRef - perPosCompact) / double(perPosRef), 'f', 0) + "%");
    } else {
        text += "<br>" + tr("GQA caches k and v for %1 KV heads x %2 floats: %3 per position and entry; plain "
                            "multi-head attention (%4 KV heads) would need %5.")
                             .arg(c.n_kv_heads)
                             .arg(c.headDim())
                             .arg(formatBytes(double(perPosRef)))
                             .arg(c.n_heads)
                             .arg(formatBytes(double(d.mhaBytesPerPosition)));
    }
    m_summary->setText(text);
}

QString KvView::summary() const { return m_summary->text(); }

DataTable KvView::ledgerData() const {
    DataTable t;
    t.title = tr("KV-cache ledger");
    t.columns = {"entry", "positions", "reference_bytes", "compact_bytes", "engine_bytes"};
    const int64_t batch = std::max<int64_t>(1, m_ledger.batch);
    const int64_t perPosCompact = m_trace ? mythos::kvBytesPerPosition(m_trace->config, mythos::KvLayout::Compact) : 0;
    for (const auto& e : m_ledger.entries)
        t.addRow({QString::fromStdString(e.key), qlonglong(e.positions), qlonglong(e.referenceBytes),
                  qlonglong(batch * e.positions * perPosCompact), qlonglong(e.engineBytes)});
    t.addRow({QStringLiteral("total"), qlonglong(m_positions), qlonglong(m_ledger.referenceBytes),
              qlonglong(m_compactBytes), qlonglong(m_ledger.engineBytes)});
    return t;
}

QList<ChartHandle> KvView::charts() const {
    QList<ChartHandle> out;
    out << ChartHandle{"kv-by-seqlen", m_bySeq->title(), m_bySeq, [this] { return m_bySeq->table(); }};
    out << ChartHandle{"kv-by-loops", m_byLoops->title(), m_byLoops, [this] { return m_byLoops->table(); }};
    out << ChartHandle{"kv-entries", m_entries->title(), m_entries, [this] { return m_entries->table(); }};
    out << ChartHandle{"kv-ledger", tr("KV-cache ledger"), m_table, [this] { return ledgerData(); }};
    return out;
}

} // namespace mx
