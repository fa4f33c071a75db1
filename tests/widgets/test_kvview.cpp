// KvView: the ledger, the per-entry bars and the curves for every attention variant come
// from the engine's accounting; the live ledger of a cached run is used when the trace has
// one; MLA's rope-key copies and the per-loop entries are spelled out; export handles.
#include <QTableWidget>
#include <memory>

#include "charts.h"
#include "kvview.h"
#include "mythos/analysis.h"
#include "mythos/model.h"
#include "qtest_main.h"

using namespace mx;

namespace {

std::shared_ptr<mythos::Trace> traceOf(const char* model, int loops, bool cached) {
    auto m = mythos::Model::open(std::string(MYTHOS_TEST_DATA_DIR) + "/" + model);
    std::vector<int32_t> ids;
    for (int i = 0; i < 9; ++i)
        ids.push_back(i + 1);
    auto tr = std::make_shared<mythos::Trace>();
    auto cache = m->newCache(1);
    mythos::ForwardOptions fo;
    fo.nLoops = loops;
    fo.cache = cached ? &cache : nullptr;
    fo.trace = tr.get();
    m->forward(ids, 1, int64_t(ids.size()), fo);
    return tr;
}

// Value of a series at x (points are sampled; x must be one of them).
double valueAt(const Series& s, double x) {
    for (const auto& p : s.points)
        if (p.x() == x)
            return p.y();
    return -1;
}

} // namespace

class TestKvView : public QObject {
    Q_OBJECT
private slots:
    void ledgerOfAnUncachedRunIsComputed();
    void liveLedgerIsUsedWhenTheTraceHasOne();
    void curvesMatchTheAccountingForEveryVariant();
    void summaryExplainsLoopsAndRopeCopies();
    void formatBytesPicksUnits();
    void exportHandlesAndScreenshot();
    void sizesThatDoNotFitAreSaidNotCrashed();
};

// A GQA trace whose unused MLA fields are absurd (nothing validates them for GQA): the MLA
// curves cannot be computed, and the view says so instead of throwing out of a slot.
void TestKvView::sizesThatDoNotFitAreSaidNotCrashed() {
    auto tr = traceOf("tiny_gqa", 3, false);
    auto odd = std::make_shared<mythos::Trace>(*tr);
    odd->config.kv_lora_rank = int64_t(1) << 62;
    KvView v;
    v.setTrace(odd);
    QVERIFY2(v.summary().contains("cannot be accounted for"), qPrintable(v.summary()));
    QVERIFY(v.ledger().entries.empty());
    v.setTrace(tr); // and it recovers with the next trace
    QVERIFY(!v.summary().contains("cannot be accounted for"));
    QCOMPARE(int(v.ledger().entries.size()), int(tr->config.prelude_layers + 3 + tr->config.coda_layers));
}

void TestKvView::ledgerOfAnUncachedRunIsComputed() {
    auto tr = traceOf("tiny_mla", 5, false);
    KvView v;
    v.setTrace(tr);
    QVERIFY(!v.liveLedger());
    const auto want = mythos::kvLedgerFor(tr->config, 1, 9, 5, mythos::KvLayout::Reference);
    QCOMPARE(v.ledger().referenceBytes, want.referenceBytes);
    QCOMPARE(int(v.ledger().entries.size()), int(tr->config.prelude_layers + 5 + tr->config.coda_layers));
    QCOMPARE(v.compactBytes(), mythos::kvLedgerFor(tr->config, 1, 9, 5, mythos::KvLayout::Compact).engineBytes);
    QVERIFY(v.compactBytes() < v.ledger().referenceBytes);
    auto* t = v.ledgerTable();
    QCOMPARE(t->rowCount(), int(want.entries.size()) + 2);
    QCOMPARE(t->item(0, 0)->text(), QString::fromStdString(want.entries[0].key));
    QCOMPARE(t->item(int(want.entries.size()), 3)->text(), formatBytes(double(want.referenceBytes)));
    // Bars: one per entry, in the unit on the axis.
    QCOMPARE(v.entryBars()->values().size(), int(want.entries.size()));
    const DataTable d = v.ledgerData();
    QCOMPARE(d.rows.size(), int(want.entries.size()) + 1);
    QCOMPARE(d.rows.back()[2].toLongLong(), qlonglong(want.referenceBytes));
}

void TestKvView::liveLedgerIsUsedWhenTheTraceHasOne() {
    auto tr = traceOf("tiny_gqa", 3, true);
    QVERIFY(tr->hasKv);
    KvView v;
    v.setTrace(tr);
    QVERIFY(v.liveLedger());
    QCOMPARE(v.ledger().referenceBytes, tr->kv.referenceBytes);
    QCOMPARE(v.ledger().entries.size(), tr->kv.entries.size());
    QVERIFY(v.summary().contains("live cache"));
}

void TestKvView::curvesMatchTheAccountingForEveryVariant() {
    for (const char* name : {"tiny_mla", "tiny_gqa"}) {
        auto tr = traceOf(name, 4, false);
        KvView v;
        v.setTrace(tr);
        const auto variants = mythos::kvVariants(tr->config);
        const auto& seq = v.bySeqLen()->series();
        const auto& loops = v.byLoops()->series();
        QCOMPARE(seq.size(), int(variants.size()));
        QCOMPARE(loops.size(), int(variants.size()));
        int current = 0;
        for (int i = 0; i < seq.size(); ++i) {
            const auto& var = variants[std::size_t(i)];
            current += seq[i].name.contains("(this)");
            // The ratio of two points of one curve is the ratio of the accounting (unit-free).
            const double a = valueAt(seq[i], 9), b = valueAt(seq[i], 1);
            QVERIFY2(a > 0 && b > 0, name);
            QVERIFY(std::abs(a / b - 9.0) < 1e-9); // linear in positions
            const double at4 = valueAt(loops[i], 4), at8 = valueAt(loops[i], 8);
            const auto bytes4 = double(mythos::kvTotalBytes(var.config, var.layout, 1, 9, 4));
            const auto bytes8 = double(mythos::kvTotalBytes(var.config, var.layout, 1, 9, 8));
            QVERIFY(std::abs(at8 / at4 - bytes8 / bytes4) < 1e-9);
            // Same x at both charts: positions 9 and 4 loops.
            QVERIFY(std::abs(valueAt(seq[i], 9) - at4) < 1e-9 * std::max(1.0, at4));
        }
        QCOMPARE(current, 1);
        // The current variant's point at this run equals the ledger in the chart's unit.
        for (int i = 0; i < seq.size(); ++i)
            if (variants[std::size_t(i)].current) {
                const double ratio = double(v.ledger().referenceBytes) / valueAt(seq[i], 9);
                QVERIFY(ratio == 1.0 || ratio == 1024.0 || ratio == 1024.0 * 1024);
            }
    }
}

void TestKvView::summaryExplainsLoopsAndRopeCopies() {
    KvView mla;
    mla.setTrace(traceOf("tiny_mla", 2, false));
    QVERIFY(mla.summary().contains("rope key"));
    QVERIFY(mla.summary().contains("Every loop writes its own cache entry"));
    KvView gqa;
    gqa.setTrace(traceOf("tiny_gqa", 2, false));
    QVERIFY(gqa.summary().contains("multi-head"));
    QVERIFY(!gqa.summary().contains("rope key"));
}

void TestKvView::formatBytesPicksUnits() {
    QCOMPARE(formatBytes(812), QString("812 B"));
    QCOMPARE(formatBytes(2048), QString("2.00 KiB"));
    QCOMPARE(formatBytes(3.5 * 1024 * 1024), QString("3.50 MiB"));
}

void TestKvView::exportHandlesAndScreenshot() {
    KvView v;
    v.resize(1200, 800);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    v.setTrace(traceOf("tiny_mla", 6, false));
    QSet<QString> ids;
    for (const auto& h : v.charts()) {
        QVERIFY(!ids.contains(h.id));
        ids.insert(h.id);
        QVERIFY2(!h.data().rows.isEmpty(), qPrintable(h.id));
    }
    QCOMPARE(ids.size(), 4);
    QTest::qWait(100); // charts and wrapped labels settle on the event loop
    QVERIFY(v.grab().toImage().save(QDir::temp().filePath("mx_kv_view.png")));
}

MX_QTEST_MAIN(TestKvView)
#include "test_kvview.moc"
