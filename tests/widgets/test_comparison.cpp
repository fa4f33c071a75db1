// The Compare view and the window's second model: halting side by side and the agreement
// figures are the traces' numbers, a model against itself agrees completely, different
// tokens are reported instead of compared, and in the window a config variant follows the
// shared loop count with measured latency; bad variants are refused with clear errors.
#include <QSettings>
#include <QSignalSpy>
#include <QTableWidget>
#include <cmath>

#include "charts.h"
#include "comparisonview.h"
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
};

MX_QTEST_MAIN(TestComparison)
#include "test_comparison.moc"
