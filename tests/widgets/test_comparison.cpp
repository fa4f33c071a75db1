// The Compare view and the window's second model: halting side by side and the agreement
// figures are the traces' numbers, a model against itself agrees completely, different
// tokens are reported instead of compared, and in the window a config variant follows the
// shared loop count with measured latency; bad variants are refused with clear errors.
#include <QSettings>
#include <QSignalSpy>
#include <QTableWidget>
#include <cmath>

#include "attentioncompare.h"
#include "attentionview.h"
#include "charts.h"
#include "comparisonview.h"
#include "heatmap.h"
#include "kvview.h"
#include "mainwindow.h"
#include "mythos/analysis.h"
#include "mythos/model.h"
#include "qtest_main.h"

using namespace mx;

namespace {

TracePtr runOf(mythos::Model& m, int loops) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 10; ++i)
        ids.push_back((i * 5 + 1) % int(m.config().vocab_size));
    auto run = m.deepRun(ids, 1, int64_t(ids.size()), loops);
    auto tr = std::make_shared<mythos::Trace>();
    m.logitsAt(run, loops, tr.get());
    return tr;
}

ModelInfoPtr infoOf(const mythos::Model& m, const QString& name) {
    auto info = std::make_shared<ModelInfo>();
    info->spec = info->displayName = name;
    info->config = m.config();
    info->parameters = mythos::countParameters(m.config()).total;
    info->rhoA = 0.5;
    return info;
}

RunResultPtr resultOf(TracePtr tr) {
    auto r = std::make_shared<RunResult>();
    r->trace = std::move(tr);
    r->prefillMs = 1.5;
    r->decodeMsPerToken = 0.25;
    return r;
}

QString cell(QTableWidget* t, const QString& figure, int col) {
    for (int r = 0; r < t->rowCount(); ++r)
        if (t->item(r, 0) && t->item(r, 0)->text() == figure)
            return t->item(r, col) ? t->item(r, col)->text() : QString();
    return QStringLiteral("<missing>");
}

} // namespace

class TestComparison : public QObject {
    Q_OBJECT
private slots:
    void init() {
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QSettings().clear();
    }

    // A large vocabulary's runs have no per-token logits (only the last position's head):
    // halting is still compared, and the summary says why next-token agreement is missing.
    void withoutPerTokenLogitsHaltingIsStillCompared() {
        auto a = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
        auto ta = std::make_shared<mythos::Trace>(*runOf(*a, 3)), tb = std::make_shared<mythos::Trace>(*runOf(*a, 3));
        ta->logits.clear();
        tb->logits.clear();
        ComparisonView v;
        v.resize(1200, 900);
        v.setModels(infoOf(*a, "A"), infoOf(*a, "B"));
        v.setTrace(ta);
        v.setResultA(resultOf(ta));
        v.setResultB(resultOf(tb));
        QVERIFY(v.comparable());
        QVERIFY2(v.summary().contains("the same halting loop for 10 of"), qPrintable(v.summary()));
        QVERIFY2(v.summary().contains("next-token agreement needs"), qPrintable(v.summary()));
        QVERIFY(v.agreement().top1A.empty());
        // Different tokens are still refused.
        auto tc = std::make_shared<mythos::Trace>(*tb);
        tc->ids[0] = (tc->ids[0] + 1) % int32_t(a->config().vocab_size);
        v.setResultB(resultOf(tc));
        QVERIFY2(v.summary().contains("different tokens"), qPrintable(v.summary()));
        QVERIFY(!v.comparable());
    }

    void variantAgainstTheModelShowsTheTracesNumbers() {
        auto a = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
        mythos::Config cv = a->config();
        cv.rope_theta = 100.0; // keeps every weight's shape, changes every output
        cv.act_threshold = 0.9;
        mythos::Model b(cv, a->weights());
        const auto ta = runOf(*a, 3), tb = runOf(b, 3);
        ComparisonView v;
        v.resize(1200, 900);
        QVERIFY(v.charts().isEmpty()); // nothing to compare yet
        v.setModels(infoOf(*a, "A"), infoOf(b, "B"));
        v.setTrace(ta);
        QVERIFY(!v.comparable());
        QVERIFY(v.summary().contains("Waiting"));
        v.setResultA(resultOf(ta));
        v.setResultB(resultOf(tb));
        QVERIFY(v.comparable());
        const auto want = mythos::compareNextToken(*ta, *tb);
        QCOMPARE(v.agreement().top1Match, want.top1Match);
        QCOMPARE(v.agreement().klAB, want.klAB);
        QVERIFY(want.meanKl > 0); // another RoPE base really changes the outputs
        const auto& s = v.haltingChart()->series();
        QCOMPARE(s.size(), 2);
        const int T = int(ta->seqLen), L = int(std::max(ta->loopsExecuted, tb->loopsExecuted));
        for (int t = 0; t < T; ++t) {
            const int ha = ta->haltLoop[std::size_t(t)], hb = tb->haltLoop[std::size_t(t)];
            QCOMPARE(s[0].points[t].y(), double(ha > 0 ? ha : L + 1));
            QCOMPARE(s[1].points[t].y(), double(hb > 0 ? hb : L + 1));
            QCOMPARE(v.haltingDiff()->values()[t], s[1].points[t].y() - s[0].points[t].y());
            QCOMPARE(v.klChart()->values()[t], want.klAB[std::size_t(t)]);
        }
        auto* table = v.table();
        QCOMPARE(cell(table, "parameters", 1),
                 QLocale().toString(qlonglong(mythos::countParameters(a->config()).total)));
        QCOMPARE(cell(table, "prefill (cached, ms)", 2), QString("1.50"));
        QCOMPARE(cell(table, "decode (ms per token)", 2), QString("0.250"));
        const auto kv = mythos::kvTotalBytes(ta->config, mythos::KvLayout::Reference, 1, T, 3);
        QCOMPARE(cell(table, "KV cache, reference layout", 1), formatBytes(double(kv)));
        QCOMPARE(v.charts().size(), 4);
        QCOMPARE(v.tableData().rows.size(), table->rowCount());
        v.setSelectedToken(2);
        QCOMPARE(v.haltingChart()->series().size(), 2);
    }

    void aModelAgreesWithItself() {
        auto a = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_gqa");
        const auto ta = runOf(*a, 2);
        ComparisonView v;
        v.setModels(infoOf(*a, "A"), infoOf(*a, "A again"));
        v.setTrace(ta);
        v.setResultB(resultOf(runOf(*a, 2)));
        QVERIFY(v.comparable());
        QCOMPARE(v.agreement().top1Match, 1.0);
        QVERIFY(v.agreement().maxKl < 1e-9);
        for (double d : v.haltingDiff()->values())
            QCOMPARE(d, 0.0);
    }

    void differentTokensAreReportedNotCompared() {
        auto a = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
        const auto ta = runOf(*a, 2);
        auto other = std::make_shared<mythos::Trace>(*ta);
        other->ids[0] = (other->ids[0] + 1) % 10;
        ComparisonView v;
        v.setModels(infoOf(*a, "A"), infoOf(*a, "B"));
        v.setTrace(ta);
        v.setResultB(resultOf(other));
        QVERIFY(!v.comparable());
        QVERIFY(v.summary().contains("different tokens"));
        QVERIFY(v.haltingChart()->series().isEmpty());
        QVERIFY(v.table()->rowCount() > 3); // the table still compares what it can
        v.setErrorB("boom");
        QVERIFY(v.summary().contains("boom"));
    }

    void windowComparesWithAConfigVariantAtTheSharedLoopCount() {
        MainWindow win;
        win.setInteractive(false);
        win.resize(1280, 800);
        win.show();
        QSignalSpy ready(&win, &MainWindow::modelReady);
        {
            const QSignalBlocker b(&win);
            win.setPrompt("Compare me");
        }
        win.openModel("preset:readme_mla:1");
        QVERIFY(waitForSignal(ready, 60000));
        QSignalSpy cmpReady(&win, &MainWindow::compareModelReady);
        QSignalSpy cmpShown(&win, &MainWindow::compareTraceShown);
        win.openCompareVariant(R"({"rope_theta": 100.0, "kv_layout": "compact", "weight_type": "bf16"})");
        QVERIFY(waitForSignal(cmpReady, 60000));
        QVERIFY2(win.compareInfo(), qPrintable(win.lastError() + " / " + QString::number(cmpReady.count())));
        QCOMPARE(win.compareInfo()->config.rope_theta, 100.0);
        QVERIFY(win.compareInfo()->displayName.contains("rope_theta"));
        QCOMPARE(win.currentView(), static_cast<TraceView*>(win.comparisonView()));
        QVERIFY(waitForSignal(cmpShown, 60000));
        QVERIFY(QTest::qWaitFor([&] { return win.comparisonView()->comparable(); }, 60000));
        QCOMPARE(win.comparisonView()->traceB()->nLoops, int64_t(win.loops()));
        QCOMPARE(win.comparisonView()->traceB()->options.value("weight_type", ""), std::string("bf16"));
        QCOMPARE(win.currentTrace()->options.value("weight_type", ""), std::string("f32"));

        // The shared loop count moves both models.
        win.setLive(false);
        win.setLoops(2);
        win.runNow();
        QVERIFY(QTest::qWaitFor(
            [&] {
                auto b = win.comparisonView()->traceB();
                return b && b->nLoops == 2 && win.currentTrace()->nLoops == 2 && win.comparisonView()->comparable();
            },
            60000));
        // With the Compare view open, both runs measure their latency.
        QVERIFY(QTest::qWaitFor(
            [&] { return cell(win.comparisonView()->table(), "prefill (cached, ms)", 2) != "<missing>"; }, 60000));
        const double prefillB = cell(win.comparisonView()->table(), "prefill (cached, ms)", 2).toDouble();
        QVERIFY(prefillB > 0);

        // Bad variants: the message names the problem; the running comparison stays.
        for (const auto& [json, word] : {std::pair{QString("{not json"), QString("JSON")},
                                         std::pair{QString(R"({"colour": 1})"), QString("colour")},
                                         std::pair{QString(R"({"dim": 8})"), QString("shape")},
                                         std::pair{QString(R"({"n_experts_per_tok": 1})"), QString("shape")},
                                         std::pair{QString(R"({"kv_layout": "zip"})"), QString("zip")},
                                         std::pair{QString(R"({"weight_type": "f16"})"), QString("f16")}}) {
            QSignalSpy failed(&win, &MainWindow::compareFailed);
            win.openCompareVariant(json);
            QVERIFY2(waitForSignal(failed, 60000), qPrintable(json));
            QVERIFY2(failed.first().first().toString().contains(word), qPrintable(failed.first().first().toString()));
            QVERIFY(win.compareInfo());
        }
        win.stopComparing();
        QVERIFY(!win.compareInfo());
        QVERIFY(!win.comparisonView()->hasComparison());
    }

    // Recorded traces of a long prompt with the attention of every position: both maps show
    // kAttentionWindow positions of them around the selected token, the recorded numbers.
    void longRecordedAttentionShowsAWindowOfBoth() {
        const std::string root = std::string(MYTHOS_SOURCE_DIR) + "/resources/models/";
        auto ma = mythos::Model::open(root + "demo_mla");
        auto mb = mythos::Model::open(root + "demo_gqa");
        const int T = 90;
        std::vector<int32_t> ids;
        for (int i = 0; i < T; ++i)
            ids.push_back((i * 5 + 1) % int(ma->config().vocab_size));
        auto traceOf = [&](mythos::Model& m) {
            auto run = m.deepRun(ids, 1, T, 3);
            auto tr = std::make_shared<mythos::Trace>();
            m.logitsAt(run, 3, tr.get());
            tr->attention.to = T;
            tr->attention.sites = m.attention(run, 3, 0);
            return tr;
        };
        const auto ta = traceOf(*ma), tb = traceOf(*mb);
        ComparisonView v;
        v.resize(1200, 900);
        v.setModels(infoOf(*ma, "demo_mla"), infoOf(*mb, "demo_gqa"));
        v.setTrace(ta);
        v.setResultA(resultOf(ta));
        v.setResultB(resultOf(tb));
        AttentionCompare* att = v.attention();
        QVERIFY(att->showing());
        QCOMPARE(att->mapA()->rows(), kAttentionWindow);
        QCOMPARE(att->mapB()->rows(), kAttentionWindow);
        QVERIFY(v.hasNeeds(*ta));
        v.setSelectedToken(80);
        QCOMPARE(att->mapA()->rows(), kAttentionWindow);
        QCOMPARE(att->mapA()->highlightedRow(), kAttentionWindow - 1);
        QCOMPARE(att->mapB()->highlightedRow(), kAttentionWindow - 1);
        QVERIFY2(att->note().contains("positions 17-80"), qPrintable(att->note()));
        const int H = int(tb->config.n_heads), from = 17;
        const auto& pb = tb->attention.sites[std::size_t(att->siteB())].probs;
        QCOMPARE(int(pb.size()), H * T * T);
        QCOMPARE(att->mapB()->value(63, 40), double(pb[std::size_t((from + 63) * T + from + 40)]));
        QVERIFY(v.hasNeeds(*ta));
    }

    // MLA against GQA on the same prompt: the same site and head of both side by side, the
    // selected token framed in both, per-head entropy and distance of both by loop; the view
    // asks for the attention window while comparing.
    void attentionOfMlaAndGqaSideBySide() {
        const std::string root = std::string(MYTHOS_SOURCE_DIR) + "/resources/models/";
        auto ma = mythos::Model::open(root + "demo_mla");
        auto mb = mythos::Model::open(root + "demo_gqa");
        std::vector<int32_t> ids;
        for (int i = 0; i < 24; ++i)
            ids.push_back((i * 5 + 1) % int(ma->config().vocab_size));
        auto traceOf = [&](mythos::Model& m, int k = 5) {
            auto run = m.deepRun(ids, 1, int64_t(ids.size()), k);
            auto tr = std::make_shared<mythos::Trace>();
            m.logitsAt(run, k, tr.get());
            tr->attention.from = 0;
            tr->attention.to = int64_t(ids.size());
            tr->attention.sites = m.attention(run, k, 0, {}, 0, int64_t(ids.size()));
            return tr;
        };
        const auto ta = traceOf(*ma), tb = traceOf(*mb);
        ComparisonView v;
        v.resize(1200, 900);
        QVERIFY(!v.needs().attention); // nothing to compare
        v.setModels(infoOf(*ma, "demo_mla"), infoOf(*mb, "demo_gqa"));
        TraceView::Needs n = v.needs();
        QVERIFY(n.attention);
        v.setTrace(ta);
        v.setResultA(resultOf(ta));
        v.setResultB(resultOf(tb));
        QVERIFY(v.comparable());
        AttentionCompare* att = v.attention();
        QVERIFY(att->showing());
        // The last loop, head 0, in both.
        QCOMPARE(ta->attention.sites[std::size_t(att->siteA())].name, std::string("recurrent_loop_4"));
        QCOMPARE(tb->attention.sites[std::size_t(att->siteB())].name, std::string("recurrent_loop_4"));
        QCOMPARE(att->headA(), 0);
        QCOMPARE(att->headB(), 0);
        QVERIFY2(att->mapA()->title().startsWith("A demo_mla (MLA): Head 0, loop 5"), qPrintable(att->mapA()->title()));
        QVERIFY2(att->mapB()->title().startsWith("B demo_gqa (GQA): Head 0, loop 5"), qPrintable(att->mapB()->title()));
        const int W = int(ids.size());
        const auto pa = mythos::attentionMatrix(*ta, std::size_t(att->siteA()), 0);
        const auto pb = mythos::attentionMatrix(*tb, std::size_t(att->siteB()), 0);
        QCOMPARE(att->mapA()->value(W - 1, 3), pa[std::size_t((W - 1) * W + 3)]);
        QCOMPARE(att->mapB()->value(W - 1, 3), pb[std::size_t((W - 1) * W + 3)]);
        QVERIFY(pa != pb); // two different models
        // Another site and head: both follow; a head past B's count is clamped.
        att->setSite(0);
        att->setHead(2);
        QCOMPARE(att->siteB(), 0);
        QCOMPARE(att->headA(), 2);
        QCOMPARE(att->headB(), 2);
        QVERIFY(att->mapB()->title().contains("Head 2, prelude 0"));
        auto fewer = std::make_shared<mythos::Trace>(*tb);
        fewer->config.n_heads = 2;
        for (auto& s : fewer->attention.sites)
            s.probs.resize(std::size_t(2 * W * W));
        v.setResultB(resultOf(fewer));
        QCOMPARE(att->headA(), 2);
        QCOMPARE(att->headB(), 1);
        QVERIFY2(att->note().contains("B has 2 heads"), qPrintable(att->note()));
        v.setResultB(resultOf(tb));
        // The selected token is framed in both.
        v.setSelectedToken(9);
        QCOMPARE(att->mapA()->highlightedRow(), 9);
        QCOMPARE(att->mapB()->highlightedRow(), 9);
        n = v.needs();
        QVERIFY(n.attention);
        QCOMPARE(qMakePair(n.attentionFrom, n.attentionTo), qMakePair(0, W));
        QVERIFY(v.hasNeeds(*ta));
        // Entropy and distance of every head of both models by loop.
        const auto ga = mythos::attentionGridData(*ta), gb = mythos::attentionGridData(*tb);
        const int H = int(ga.heads);
        const auto& ent = att->entropyChart()->series();
        QCOMPARE(ent.size(), 2 * H);
        QCOMPARE(ent[0].name, QString("A MLA head 0"));
        QCOMPARE(ent[H].name, QString("B GQA head 0"));
        QVERIFY(ent[H].dashed && !ent[0].dashed);
        const int firstLoop = int(ma->config().prelude_layers); // site of loop 1
        QCOMPARE(ent[1].points[0].y(), ga.entropy[std::size_t(firstLoop * H + 1)]);
        QCOMPARE(att->distanceChart()->series()[H + 1].points[4].y(),
                 gb.distance[std::size_t((firstLoop + 4) * H + 1)]);
        QStringList ids_;
        for (const auto& c : v.charts())
            ids_ << c.id;
        QVERIFY(ids_.contains("compare-attention-a") && ids_.contains("compare-attention-b"));
        for (const auto& c : v.charts())
            if (c.id == "compare-attention-b")
                QCOMPARE(c.data().rows.size(), W * (W + 1) / 2);
        QVERIFY(!v.grab().isNull());
        // The default site follows the loop count; a site picked by hand stays.
        att->setSite(defaultAttentionSite(ga)); // back to the default
        const auto ta3 = traceOf(*ma, 3), tb3 = traceOf(*mb, 3);
        v.setTrace(ta3);
        v.setResultB(resultOf(tb3));
        QCOMPARE(tb3->attention.sites[std::size_t(att->siteB())].name, std::string("recurrent_loop_2"));
        att->setSite(0);
        v.setTrace(ta);
        v.setResultB(resultOf(tb));
        QCOMPARE(tb->attention.sites[std::size_t(att->siteB())].name, std::string("prelude_0"));
        v.setModels(infoOf(*ma, "demo_mla"), nullptr);
        QVERIFY(!v.needs().attention);
    }
};

MX_QTEST_MAIN(TestComparison)
#include "test_comparison.moc"
