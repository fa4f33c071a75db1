// Depth sweep: the worker's sweep equals mythos::evaluate on the same prompts, the view's
// curves are its numbers (overall and per hop count), progress arrives, cancel stops it,
// bad prompt sets are reported, and the window offers the model folder's prompts.jsonl.
#include <QFile>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <set>

#include "charts.h"
#include "depthsweepview.h"
#include "inferenceworker.h"
#include "mainwindow.h"
#include "mythos/evaluate.h"
#include "qtest_main.h"
#include "workerrelay.h"

using namespace mx;

namespace {

const QString kModel = QStringLiteral(MYTHOS_SOURCE_DIR "/resources/models/demo_mla");

// `n` prompts of the bundled set, spread evenly over it (it is ordered by hop count), so
// the set has several hop counts.
QString smallSet(const QTemporaryDir& dir, int n) {
    QFile in(kModel + "/prompts.jsonl");
    if (!in.open(QIODevice::ReadOnly))
        return {};
    QList<QByteArray> lines;
    while (!in.atEnd())
        lines << in.readLine();
    if (lines.size() < n)
        return {};
    QByteArray out;
    for (int i = 0; i < n; ++i)
        out += lines[int(qsizetype(i) * lines.size() / n)];
    const QString path = dir.filePath("set.jsonl");
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return {};
    f.write(out);
    return path;
}

} // namespace

class TestDepthSweep : public QObject {
    Q_OBJECT
private slots:
    // The sweep under an intervention: the worker's model runs it for the sweep only, the
    // result says so, and the model is itself again afterwards.
    void sweepUnderAnInterventionRestoresTheModel() {
        QTemporaryDir dir;
        const QString set = smallSet(dir, 4);
        QVERIFY(!set.isEmpty());
        WorkerThread thread;
        auto* w = thread.worker();
        WorkerRelay relay(w);
        QSignalSpy opened(&relay, &WorkerRelay::modelOpened);
        w->openModel(kModel, 1);
        QVERIFY(waitForSignal(opened, 60000));
        QSignalSpy finished(&relay, &WorkerRelay::sweepFinished);
        w->depthSweep(2, set, {4}, {"kl<0.5"}, R"({"injection_off_after": 0, "lora_scale_zero": true})");
        QVERIFY(waitForSignal(finished, 120000));
        const auto modified = finished.last().at(1).value<SweepResultPtr>();
        QVERIFY(modified->intervention.contains("no re-injection"));
        QCOMPARE(int(modified->eval.rules.size()), 2); // ACT and the one asked for
        QCOMPARE(QString::fromStdString(modified->eval.rules[1].name()), QString("kl<0.5"));
        w->depthSweep(3, set, {4});
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 120000);
        const auto plain = finished.last().at(1).value<SweepResultPtr>();
        QVERIFY(plain->intervention.isEmpty());
        auto model = mythos::Model::open(kModel.toStdString());
        const auto tok = mythos::Tokenizer::forModel(kModel.toStdString(), model->config().vocab_size);
        const auto prompts = mythos::loadEvalPrompts(set.toStdString(), *tok, model->config().max_seq_len);
        const auto want = mythos::evaluate(*model, prompts, {4});
        QCOMPARE(plain->eval.byLoops.at(4).answerHaltSum, want.byLoops.at(4).answerHaltSum);
        QCOMPARE(plain->eval.byRule.at({"act", 4}).loopSum, want.byRule.at({"act", 4}).loopSum);
        // Without re-injection and LoRA the model differs: its halting does.
        QVERIFY(modified->eval.byRule.at({"act", 4}).loopSum != want.byRule.at({"act", 4}).loopSum ||
                modified->eval.byLoops.at(4).haltSum != want.byLoops.at(4).haltSum);
    }

    // Bad exit rules or an unreadable intervention file stop the sweep before it starts.
    void badRulesOrInterventionAreSaid() {
        DepthSweepView v;
        v.setModelAvailable(true);
        v.setPromptSet(QStringLiteral("/nonexistent/prompts.jsonl"));
        QSignalSpy requested(&v, &DepthSweepView::runRequested);
        v.setExitRules(QStringLiteral("kl<0.01, bogus"));
        QString error;
        QVERIFY(v.exitRules(&error).isEmpty());
        QVERIFY(error.contains("bogus"));
        QTest::mouseClick(v.findChild<QPushButton*>("sweepRun"), Qt::LeftButton);
        QCOMPARE(requested.count(), 0);
        QVERIFY(v.summary().contains("Exit rules"));
        v.setExitRules(QStringLiteral("act, stable:3"));
        QCOMPARE(v.exitRules(), QStringList{"stable:3"});
        QTemporaryDir dir;
        const QString bad = dir.filePath("iv.json");
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(R"({"ablate_expertz": []})");
        f.close();
        v.setInterventionFile(bad);
        error.clear();
        QVERIFY(v.interventionJson(&error).isEmpty());
        QVERIFY(error.contains("ablate_expertz"));
        QTest::mouseClick(v.findChild<QPushButton*>("sweepRun"), Qt::LeftButton);
        QCOMPARE(requested.count(), 0);
        QVERIFY(v.summary().contains("ablate_expertz"));
    }

    void init() {
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QSettings().clear();
    }

    void sweepEqualsTheEngineEvaluationAndFillsTheCharts() {
        QTemporaryDir dir;
        const QString set = smallSet(dir, 6);
        QVERIFY(!set.isEmpty());
        WorkerThread thread;
        auto* w = thread.worker();
        WorkerRelay relay(w);
        QSignalSpy opened(&relay, &WorkerRelay::modelOpened);
        w->openModel(kModel, 1);
        QVERIFY(waitForSignal(opened, 60000));
        QSignalSpy progress(&relay, &WorkerRelay::sweepProgress);
        QSignalSpy finished(&relay, &WorkerRelay::sweepFinished);
        w->depthSweep(7, set, {4, 1, 2});
        QVERIFY(waitForSignal(finished, 120000));
        // One step per (loop count, prompt), then one per prompt for the exit rules' deep run.
        QCOMPARE(progress.count(), 24);
        QCOMPARE(progress.last().at(1).toInt(), 24);
        const auto r = finished.first().at(1).value<SweepResultPtr>();
        QVERIFY(r);
        QCOMPARE(r->prompts, int64_t(6));
        QCOMPARE(r->eval.loops, (std::vector<int64_t>{1, 2, 4}));

        auto model = mythos::Model::open(kModel.toStdString());
        const auto tok = mythos::Tokenizer::forModel(kModel.toStdString(), model->config().vocab_size);
        QVERIFY(tok.has_value());
        const auto prompts = mythos::loadEvalPrompts(set.toStdString(), *tok, model->config().max_seq_len);
        const auto want = mythos::evaluate(*model, prompts, {1, 2, 4});
        for (const auto& [L, cell] : want.byLoops) {
            QCOMPARE(r->eval.byLoops.at(L).correct, cell.correct);
            QCOMPARE(r->eval.byLoops.at(L).haltSum, cell.haltSum);
            QCOMPARE(r->eval.byLoops.at(L).answerHaltSum, cell.answerHaltSum);
        }
        QCOMPARE(r->eval.byHops.size(), want.byHops.size());

        DepthSweepView v;
        v.resize(1100, 600);
        // Before a sweep the charts are empty and say how to fill them.
        for (auto* c : {v.accuracyChart(), v.haltingChart()}) {
            QVERIFY(c->series().isEmpty());
            QVERIFY(c->note().contains("Run sweep"));
        }
        v.setResult(r);
        for (auto* c : {v.accuracyChart(), v.haltingChart()})
            QVERIFY(c->note().isEmpty());
        const auto& acc = v.accuracyChart()->series();
        QVERIFY(acc.size() >= 4); // all prompts + one per hop count (the set spans several)
        QCOMPARE(acc[0].points.size(), 3);
        QCOMPARE(acc[0].points[2].x(), 4.0);
        QCOMPARE(acc[0].points[2].y(), want.byLoops.at(4).accuracy());
        // The halting chart: the answer token by default, every prompt token on request; a
        // loop count at which no such token halted has no point.
        QCOMPARE(v.haltingOf(), DepthSweepView::HaltingOf::AnswerToken);
        for (auto of : {DepthSweepView::HaltingOf::AnswerToken, DepthSweepView::HaltingOf::EveryToken}) {
            v.setHaltingOf(of);
            const bool answer = of == DepthSweepView::HaltingOf::AnswerToken;
            QCOMPARE(v.haltingChart()->title().contains("answer token"), answer);
            QList<QPointF> expected;
            for (const auto& [L, cell] : want.byLoops)
                if (answer ? cell.answerHalted > 0 : cell.halted > 0)
                    expected << QPointF(double(L), answer ? cell.meanAnswerHalt() : cell.meanHalt());
            const auto& halt = v.haltingChart()->series();
            QCOMPARE(halt.size(), acc.size());
            QCOMPARE(QList<QPointF>(halt[0].points.begin(), halt[0].points.end()), expected);
            // The first hop count's series too.
            const int64_t h1 = want.byHops.begin()->first.first;
            QList<QPointF> hopExpected;
            for (const auto& [key, cell] : want.byHops)
                if (key.first == h1 && (answer ? cell.answerHalted > 0 : cell.halted > 0))
                    hopExpected << QPointF(double(key.second), answer ? cell.meanAnswerHalt() : cell.meanHalt());
            QCOMPARE(QList<QPointF>(halt[1].points.begin(), halt[1].points.end()), hopExpected);
        }
        v.setHaltingOf(DepthSweepView::HaltingOf::AnswerToken);
        int hopSeries = 0;
        std::set<int64_t> hops;
        for (const auto& [key, cell] : want.byHops)
            hops.insert(key.first);
        for (const auto& s : acc)
            hopSeries += s.name.endsWith("hops") || s.name.endsWith("hop");
        QCOMPARE(hopSeries, int(hops.size()));
        // Exit rules: one series per rule (ACT first), a point per loop count at (mean loops
        // used, accuracy) as the engine's evaluation has them.
        const auto& rules = v.exitRuleChart()->series();
        QCOMPARE(rules.size(), int(want.rules.size()));
        QCOMPARE(rules[0].name, QString("act"));
        for (int i = 0; i < rules.size(); ++i) {
            QCOMPARE(rules[i].points.size(), 3);
            const auto& cell = want.byRule.at({want.rules[std::size_t(i)].name(), 4});
            QCOMPARE(rules[i].points[2], QPointF(cell.meanLoops(), cell.accuracy()));
        }
        QCOMPARE(v.exitRuleData().rows.size(), int(want.rules.size()) * 3);
        // Halting against convergence: a row per (hops, loops), the table as shown.
        const DataTable hc = v.haltConvData();
        QCOMPARE(hc.rows.size(), int(want.haltConv.size()));
        QCOMPARE(v.haltConvTable()->rowCount(), hc.rows.size());
        const auto& [firstKey, firstCell] = *want.haltConv.begin();
        QCOMPARE(hc.rows[0][0].toLongLong(), qlonglong(firstKey.first));
        QCOMPARE(hc.rows[0][3].toDouble(), firstCell.meanConv());
        QCOMPARE(hc.rows[0][4].toLongLong() + hc.rows[0][5].toLongLong() + hc.rows[0][6].toLongLong(),
                 qlonglong(firstCell.n));
        QCOMPARE(v.charts().size(), 4);
        QVERIFY(v.summary().contains("6 prompts"));
        v.show();
        QVERIFY(QTest::qWaitForWindowExposed(&v));
        QTest::qWait(100);
        QVERIFY(v.grab().toImage().save(QDir::temp().filePath("mx_depth_sweep.png")));
    }

    void cancelAndBadInput() {
        QTemporaryDir dir;
        WorkerThread thread;
        auto* w = thread.worker();
        WorkerRelay relay(w);
        QSignalSpy opened(&relay, &WorkerRelay::modelOpened);
        w->openModel(kModel, 1);
        QVERIFY(waitForSignal(opened, 60000));
        QSignalSpy failed(&relay, &WorkerRelay::sweepFailed);
        QSignalSpy finished(&relay, &WorkerRelay::sweepFinished);
        // Cancel on the first progress report (on the worker's thread, before the next prompt).
        connect(w, &InferenceWorker::sweepProgress, w, &InferenceWorker::cancelSweep, Qt::DirectConnection);
        w->depthSweep(1, smallSet(dir, 8), {1, 2, 4, 8});
        QVERIFY(waitForSignal(failed, 120000));
        QCOMPARE(failed.last().at(1).toString(), QString("cancelled"));
        QCOMPARE(finished.count(), 0);

        QFile bad(dir.filePath("bad.jsonl"));
        QVERIFY(bad.open(QIODevice::WriteOnly));
        bad.write("{\"prompt\": \"a=1;a?\", \"answer\": \"1\"}\n");
        bad.close();
        w->depthSweep(2, bad.fileName(), {1});
        QVERIFY(QTest::qWaitFor([&] { return failed.count() == 2; }, 60000));
        const QString msg = failed.last().at(1).toString();
        QVERIFY2(msg.contains("bad.jsonl:1") && msg.contains("hops"), qPrintable(msg));
    }

    void windowOffersTheBundledPromptSet() {
        MainWindow win;
        win.setInteractive(false);
        QSignalSpy ready(&win, &MainWindow::modelReady);
        win.openModel(kModel);
        QVERIFY(waitForSignal(ready, 60000));
        QCOMPARE(win.depthSweepView()->promptSet(), kModel + "/prompts.jsonl");
        QVERIFY(win.selectView("sweep"));
        QString error;
        win.depthSweepView()->setLoops({3, 1});
        QCOMPARE(win.depthSweepView()->loops(&error), (QList<int>{1, 3}));
        // A sweep run through the window (as the screenshot mode does) announces its result.
        QSignalSpy shown(&win, &MainWindow::sweepShown);
        emit win.depthSweepView()->runRequested(win.depthSweepView()->promptSet(), {1, 3});
        QVERIFY(waitForSignal(shown, 120000));
        QVERIFY(win.depthSweepView()->result() != nullptr);
        QCOMPARE(win.depthSweepView()->accuracyChart()->series().at(0).points.size(), qsizetype(2));
        QVERIFY(win.depthSweepView()->accuracyChart()->note().isEmpty());
        // A prompt set that cannot be read is reported the same way.
        QSignalSpy failed(&win, &MainWindow::sweepFailed);
        emit win.depthSweepView()->runRequested(QStringLiteral("/nonexistent/prompts.jsonl"), {1});
        QVERIFY(waitForSignal(failed, 60000));
        QVERIFY2(failed.last().at(0).toString().contains("prompts.jsonl"), qPrintable(failed.last().at(0).toString()));
    }
};

MX_QTEST_MAIN(TestDepthSweep)
#include "test_depthsweep.moc"
