#pragma once
// "KV cache": what the current run's cache costs and what it would cost under other attention
// variants. The ledger of cache entries (prelude_i, recurrent_loop_t, coda_i) in the reference
// and the compact layout, bytes per entry, and bytes against sequence length and against loop
// count for MLA (both layouts), GQA at every KV-head count and plain multi-head attention, all
// from the engine's accounting, with the current run marked. During generation the trace
// carries the live cache's ledger, so the view grows with every token.
#include <QStringList>
#include <QVector>

#include "mythos/kvcache.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QScrollArea;
class QTableWidget;
QT_END_NAMESPACE

namespace mythos {
struct KvViewData;
}

namespace mx {

class BarChart;
class LineChart;

// "12.5 KiB", "3.20 MiB", "812 B".
QString formatBytes(double bytes);

class KvView : public TraceView {
    Q_OBJECT
public:
    explicit KvView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("kv"); }
    QString viewTitle() const override { return tr("KV cache"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int) override {}
    QList<ChartHandle> charts() const override;

    // The ledger shown: the live cache's when the trace has one (generation), otherwise the
    // cache a cached run over the trace's tokens at its loop count would hold.
    const mythos::KvLedger& ledger() const { return m_ledger; }
    bool liveLedger() const { return m_live; }
    int64_t compactBytes() const { return m_compactBytes; }
    QString summary() const;

    QTableWidget* ledgerTable() const { return m_table; }
    BarChart* entryBars() const { return m_entries; }
    LineChart* bySeqLen() const { return m_bySeq; }
    LineChart* byLoops() const { return m_byLoops; }
    DataTable ledgerData() const;

private:
    void rebuild(); // from m_trace; throws mythos::Error when a size does not fit
    // Each part of the view from the trace's cache data (mythos::kvViewData).
    void showLedgerTable(const mythos::KvViewData& d);
    void showEntryBars(const mythos::KvViewData& d);
    void showVariantCurves(const mythos::KvViewData& d);
    void showSummary(const mythos::KvViewData& d);
    QScrollArea* m_scroll = nullptr;
    QLabel* m_summary = nullptr;
    QTableWidget* m_table = nullptr;
    BarChart* m_entries = nullptr;
    LineChart* m_bySeq = nullptr;
    LineChart* m_byLoops = nullptr;

    mythos::KvLedger m_ledger;
    bool m_live = false;
    int64_t m_compactBytes = 0;
    int64_t m_positions = 0;
};

} // namespace mx
