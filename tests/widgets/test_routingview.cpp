// RoutingView: every heatmap cell, bar and table row is the trace's routing (tiny MLA model
// with a strong random router bias, so the biased and unbiased choices differ), the loop and
// selection-mode controls, token selection, export handles and a screenshot.
#include <QComboBox>
#include <QSignalSpy>
#include <QTableWidget>
#include <cmath>
#include <memory>
#include <random>

#include "charts.h"
#include "heatmap.h"
#include "mythos/analysis.h"
#include "mythos/model.h"
#include "qtest_main.h"
#include "routingview.h"

using namespace mx;

namespace {

// A trace of the tiny MLA golden model at `loops` loops, its router bias set to N(0, 2).
std::shared_ptr<mythos::Trace> biasedTrace(int loops, bool withLogits = true) {
    auto model = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
    const std::string name = "recurrent.block.ffn.router_bias";
    mythos::Tensor bias = model->weights().at(name);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    for (auto& v : bias.data)
        v = nd(rng);
    model->setWeight(name, bias);
    std::vector<int32_t> ids;
    for (int i = 0; i < 12; ++i)
        ids.push_back((i * 7 + 3) % int(model->config().vocab_size));
    auto tr = std::make_shared<mythos::Trace>();
    auto cache = model->newCache(1); // with a cache every loop runs (no early exit)
    mythos::ForwardOptions fo;
    fo.nLoops = loops;
    fo.cache = &cache;
    fo.trace = tr.get();
    model->forward(ids, 1, int64_t(ids.size()), fo);
    Q_ASSERT(tr->loopsExecuted == loops);
    if (!withLogits)
        tr->routerLogits.clear();
    return tr;
}

} // namespace

class TestRoutingView : public QObject {
    Q_OBJECT
private slots:
    void showsTheRecordedRoutingPerLoop();
    void summedOverLoopsAndLoadByLoop();
    void unbiasedToggleShowsTheRouterLogitsChoice();
    void balanceTableAndChart();
    void withoutRouterLogitsTheToggleIsDisabled();
    void selectionIsSharedAndClicksSelect();
    void exportHandlesAndScreenshot();
};

void TestRoutingView::showsTheRecordedRoutingPerLoop() {
    auto tr = biasedTrace(4);
    RoutingView v;
    v.resize(1200, 900);
    v.setTrace(tr);
    v.setLoop(2);
    QCOMPARE(v.loop(), 2);
    const int T = int(tr->seqLen), E = int(tr->nExperts), K = int(tr->topK);
    const auto sel = mythos::recordedRouting(*tr);
    auto* hm = v.tokenHeatmap();
    QCOMPARE(hm->rows(), T);
    QCOMPARE(hm->cols(), E);
    for (int t = 0; t < T; ++t) {
        double rowSum = 0;
        for (int e = 0; e < E; ++e)
            rowSum += hm->value(t, e);
        QVERIFY2(std::abs(rowSum - 1.0) < 1e-5, "gates of one loop sum to 1");
        for (int k = 0; k < K; ++k) {
            const std::size_t i = sel.at(1, 0, t) + std::size_t(k);
            QCOMPARE(float(hm->value(t, sel.ids[i])), sel.gates[i]);
        }
        // The text is coloured by the first choice at loop 2.
        QCOMPARE(v.expertText()->tokenExpert(t), int(sel.ids[sel.at(1, 0, t)]));
        QCOMPARE(v.expertText()->tokenColor(t), ExpertText::expertColor(sel.ids[sel.at(1, 0, t)], E));
    }
    // Load bars: loop 2's share of slots.
    const auto st = mythos::routingStats(sel);
    QCOMPARE(v.loadBars()->values().size(), E);
    for (int e = 0; e < E; ++e)
        QCOMPARE(v.loadBars()->values()[e], st.perLoop[1].load[std::size_t(e)]);
    QVERIFY(v.loadBars()->title().contains("loop 2"));
}

void TestRoutingView::summedOverLoopsAndLoadByLoop() {
    auto tr = biasedTrace(3);
    RoutingView v;
    v.setTrace(tr);
    v.setLoop(0);
    const int T = int(tr->seqLen), E = int(tr->nExperts), L = int(tr->loopsExecuted);
    const auto sel = mythos::recordedRouting(*tr);
    const auto sum = mythos::tokenExpertGates(sel, 0, -1);
    for (int t = 0; t < T; ++t) {
        double rowSum = 0;
        for (int e = 0; e < E; ++e) {
            QCOMPARE(float(v.tokenHeatmap()->value(t, e)), sum[std::size_t(t * E + e)]);
            rowSum += v.tokenHeatmap()->value(t, e);
        }
        QVERIFY(std::abs(rowSum - L) < 1e-4);
    }
    const auto st = mythos::routingStats(sel);
    auto* lm = v.loadHeatmap();
    QCOMPARE(lm->rows(), E);
    QCOMPARE(lm->cols(), L);
    for (int e = 0; e < E; ++e)
        for (int l = 0; l < L; ++l)
            QCOMPARE(lm->value(e, l), st.perLoop[std::size_t(l)].load[std::size_t(e)]);
    for (int e = 0; e < E; ++e)
        QCOMPARE(v.loadBars()->values()[e], st.overall.load[std::size_t(e)]);
    // Bias bars show the trace's bias.
    for (int e = 0; e < E; ++e)
        QCOMPARE(v.biasBars()->values()[e], double(tr->routerBias[std::size_t(e)]));
    // The loop combo offers "all" and every loop.
    auto* combo = v.findChild<QComboBox*>("routingLoop");
    QVERIFY(combo);
    QCOMPARE(combo->count(), L + 1);
}

void TestRoutingView::unbiasedToggleShowsTheRouterLogitsChoice() {
    auto tr = biasedTrace(2);
    RoutingView v;
    v.setTrace(tr);
    v.setLoop(1);
    QVERIFY(v.unbiasedAvailable());
    QVERIFY2(v.biasChangedShare() > 0, "a strong bias must change some choices");
    QVERIFY(v.summary().contains("router bias changes"));
    const auto before = v.tokenHeatmap()->table().rows;
    auto* mode = v.findChild<QComboBox*>("routingMode");
    QVERIFY(mode && mode->isEnabled());
    mode->setCurrentIndex(1);
    emit mode->activated(1);
    QVERIFY(v.unbiased());
    const auto unb = mythos::unbiasedRouting(*tr);
    const int T = int(tr->seqLen), K = int(tr->topK);
    for (int t = 0; t < T; ++t)
        for (int k = 0; k < K; ++k) {
            const std::size_t i = unb.at(0, 0, t) + std::size_t(k);
            QCOMPARE(float(v.tokenHeatmap()->value(t, unb.ids[i])), unb.gates[i]);
        }
    QVERIFY(v.tokenHeatmap()->table().rows != before);
    QVERIFY(v.summary().contains("unbiased"));
    v.setUnbiased(false);
    QCOMPARE(mode->currentIndex(), 0);
    QCOMPARE(v.tokenHeatmap()->table().rows, before);
}

void TestRoutingView::balanceTableAndChart() {
    auto tr = biasedTrace(4);
    RoutingView v;
    v.setTrace(tr);
    const int L = int(tr->loopsExecuted);
    const auto st = mythos::routingStats(mythos::recordedRouting(*tr));
    auto* table = v.balanceTable();
    QCOMPARE(table->rowCount(), L + 1);
    QCOMPARE(table->item(L, 0)->text(), QString("all loops"));
    QCOMPARE(table->item(0, 1)->text(), QString::number(st.perLoop[0].entropyBits, 'f', 3));
    QCOMPARE(table->item(L, 4)->text(), QString::number(st.overall.dead));
    const DataTable d = v.balanceData();
    QCOMPARE(d.rows.size(), L + 1);
    QCOMPARE(d.rows[1][5].toDouble(), st.top1Switch[1]);
    QCOMPARE(d.rows[L][1].toDouble(), st.overall.entropyBits);
    // Balance chart: entropy normalised by log2(E) per loop; switch rates from loop 2.
    const auto& series = v.balanceChart()->series();
    QCOMPARE(series.size(), 4);
    QCOMPARE(series[0].points.size(), L);
    QCOMPARE(series[2].points.size(), L - 1);
    QCOMPARE(series[0].points[2].y(), st.perLoop[2].entropyBits / std::log2(double(tr->nExperts)));
    QCOMPARE(series[2].points[0].x(), 2.0);
    QCOMPARE(series[2].points[0].y(), st.top1Switch[1]);
}

void TestRoutingView::withoutRouterLogitsTheToggleIsDisabled() {
    auto tr = biasedTrace(2, false);
    RoutingView v;
    v.setUnbiased(true); // asked for, but not possible: the recorded choice is shown
    v.setTrace(tr);
    QVERIFY(!v.unbiasedAvailable());
    QVERIFY(!v.findChild<QComboBox*>("routingMode")->isEnabled());
    QVERIFY(std::isnan(v.biasChangedShare()));
    const auto sel = mythos::recordedRouting(*tr);
    QCOMPARE(v.selection().ids, sel.ids);
}

void TestRoutingView::selectionIsSharedAndClicksSelect() {
    auto tr = biasedTrace(2);
    RoutingView v;
    v.resize(1100, 800);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    v.setTrace(tr);
    v.setSelectedToken(3);
    QCOMPARE(v.tokenHeatmap()->highlightedRow(), 3);
    QCOMPARE(v.expertText()->selected(), 3);
    QSignalSpy spy(&v, &TraceView::tokenSelected);
    QTest::mouseClick(v.expertText(), Qt::LeftButton, {}, v.expertText()->tokenRect(5).center());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.first().first().toInt(), 5);
    QCOMPARE(v.tokenHeatmap()->highlightedRow(), 5);
    v.setSelectedToken(99);
    QCOMPARE(v.selectedToken(), -1);
}

void TestRoutingView::exportHandlesAndScreenshot() {
    auto tr = biasedTrace(8);
    RoutingView v;
    v.resize(1280, 1300);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    v.setTrace(tr);
    v.setSelectedToken(2);
    QSet<QString> ids;
    for (const auto& h : v.charts()) {
        QVERIFY2(!ids.contains(h.id), qPrintable(h.id));
        ids.insert(h.id);
        QVERIFY(h.widget);
        QVERIFY2(!h.data().rows.isEmpty(), qPrintable(h.id));
    }
    QCOMPARE(ids.size(), 7);
    // tiny_mla has max_loop_iters below 8: the loops past it are hatched.
    QVERIFY(!v.loadHeatmap()->markedColumns().isEmpty());
    QTest::qWait(100); // charts and wrapped labels settle on the event loop
    const QImage img = v.grab().toImage();
    QVERIFY(img.save(QDir::temp().filePath("mx_routing_view.png")));
}

MX_QTEST_MAIN(TestRoutingView)
#include "test_routingview.moc"
