// A monkey at the window: at least 1,000 random actions from a printed seed (loop changes by
// slider, spin box and keys, ACT threshold, typing and clearing the prompt, token selection,
// view switches, generation started and stopped, comparisons opened and closed, cancel,
// exports of charts, traces and reports to a temporary folder, model switches between the
// bundled demo model and small random presets), with runs in flight the whole time: the
// actions do not wait for the work they start. Afterwards the window must be idle and
// consistent: the views show the trace of the last request, nothing crashed (and, in the
// sanitizer build, nothing was reported).
//
// MYTHOS_MONKEY_SEED and MYTHOS_MONKEY_ACTIONS override the seed and the action count.
#include <QApplication>
#include <QElapsedTimer>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QRandomGenerator>
#include <QSettings>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTextEdit>

#include "chartexporter.h"
#include "comparisonview.h"
#include "mainwindow.h"
#include "qtest_main.h"
#include "tokenstrip.h"

using namespace mx;

namespace {

quint32 envNumber(const char* name, quint32 fallback) {
    bool ok = false;
    const quint32 v = qEnvironmentVariable(name).toUInt(&ok);
    return ok ? v : fallback;
}

} // namespace

class TestMonkey : public QObject {
    Q_OBJECT

private slots:
    void thousandRandomActionsEndConsistent() {
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QSettings().clear();
        const quint32 seed = envNumber("MYTHOS_MONKEY_SEED", 20261205);
        const int actions = int(envNumber("MYTHOS_MONKEY_ACTIONS", 1000));
        qInfo("monkey: seed %u, %d actions (MYTHOS_MONKEY_SEED / MYTHOS_MONKEY_ACTIONS to change)", seed, actions);
        QRandomGenerator rng(seed);
        auto pick = [&](int n) { return int(rng.bounded(n)); };

        MainWindow win;
        win.setInteractive(false);
        win.resize(1200, 780);
        win.show();
        QTemporaryDir out;
        QVERIFY(out.isValid());

        const QStringList models = {MainWindow::defaultModel(), "preset:tiny_mla:7", "preset:tiny_gqa:3"};
        const QStringList prompts = {"a=3;x=7;b=a;c=b;?c", "?x", "a=1;?a", "loops", "", "b=2;c=b;d=c;?d3;?b"};
        const QStringList variants = {R"({"act_threshold": 0.9})", R"({"kv_layout": "compact"})",
                                      R"({"act_final_remainder": true})", R"({"warp": 1})", "{not json"};
        QSignalSpy ready(&win, &MainWindow::modelReady);
        win.setPrompt(prompts[0]);
        win.openModel(models[0]);
        QVERIFY(waitForSignal(ready, 60000));

        auto* slider = win.findChild<QSlider*>();
        auto* prompt = win.findChild<QPlainTextEdit*>();
        QVERIFY(slider);
        QElapsedTimer clock;
        clock.start();
        int counts[16] = {};
        for (int i = 0; i < actions; ++i) {
            const int kind = pick(16);
            ++counts[kind];
            switch (kind) {
            case 0: win.setLoops(1 + pick(std::max(1, win.loopLimit()))); break;
            case 1: QTest::keyClick(&win, pick(2) ? Qt::Key_BracketRight : Qt::Key_BracketLeft); break;
            case 2: slider->setValue(slider->minimum() + pick(slider->maximum() - slider->minimum() + 1)); break;
            case 3: win.setActThreshold(0.5 + rng.bounded(0.5)); break;
            case 4: win.setPrompt(prompts[pick(int(prompts.size()))]); break;
            case 5:
                if (prompt) {
                    prompt->setFocus();
                    QTest::keyClicks(prompt, QString("ab=;?1").mid(pick(5), 1 + pick(2)));
                    if (pick(3) == 0)
                        QTest::keyClick(prompt, Qt::Key_Backspace);
                }
                break;
            case 6: win.setSelectedToken(pick(30) - 1); break;
            case 7: QTest::keyClick(&win, Qt::Key(Qt::Key_1 + pick(6)), Qt::ControlModifier); break;
            case 8:
                if (!win.generating())
                    win.generate(1 + pick(4));
                break;
            case 9: QTest::keyClick(&win, Qt::Key_Escape); break;
            case 10:
                if (pick(2))
                    win.openCompareModel(models[1 + pick(2)]);
                else
                    win.openCompareVariant(variants[pick(int(variants.size()))]);
                break;
            case 11: win.stopComparing(); break;
            case 12: win.cancelRun(); break;
            case 13:
                switch (pick(4)) {
                case 0: win.saveTrace(out.filePath(QString("t%1.json").arg(i))); break;
                case 1:
                    if (pick(5) == 0)
                        win.exportReport(out.filePath(QString("report%1").arg(i)), {1, 2});
                    break;
                default: {
                    const auto charts = win.currentView() ? win.currentView()->charts() : QList<ChartHandle>{};
                    if (!charts.isEmpty()) {
                        const auto& h = charts[pick(int(charts.size()))];
                        const int hfw = h.widget->heightForWidth(500);
                        exportChart(h, out.filePath(QString("c%1").arg(i)), QSize(500, hfw > 0 ? hfw : 320), true,
                                    pick(2), false, true, pick(2));
                    }
                }
                }
                break;
            case 14:
                if (pick(8) == 0)
                    win.openModel(models[pick(int(models.size()))]);
                break;
            case 15: QTest::qWait(pick(30)); break;
            }
            if (pick(3) == 0)
                QCoreApplication::processEvents();
        }
        qInfo("monkey: %d actions in %lld ms (loops %d, keys %d, slider %d, threshold %d, prompt %d, typing %d, "
              "token %d, views %d, generate %d, esc %d, compare %d, stop compare %d, cancel %d, export %d, "
              "model %d, wait %d)",
              actions, qint64(clock.elapsed()), counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
              counts[6], counts[7], counts[8], counts[9], counts[10], counts[11], counts[12], counts[13], counts[14],
              counts[15]);

        // Idle and consistent: one last, known request, and the views show exactly it.
        QVERIFY(QTest::qWaitFor([&] { return !win.generating(); }, 120000));
        QSignalSpy ready2(&win, &MainWindow::modelReady);
        win.openModel(models[0]);
        QVERIFY(waitForSignal(ready2, 60000));
        win.stopComparing();
        win.setPrompt("a=1;b=a;?b");
        win.setLoops(3);
        win.setActThreshold(0.99);
        win.runNow();
        QElapsedTimer t;
        t.start();
        bool settled = false;
        while (!settled && t.elapsed() < 60000) {
            QTest::qWait(50);
            const auto tr = win.currentTrace();
            settled = tr && tr->nLoops == 3 && tr->seqLen == 10;
        }
        QVERIFY2(settled, "the views never showed the last request");
        QTest::qWait(300); // nothing older may arrive after it
        const auto tr = win.currentTrace();
        QCOMPARE(tr->nLoops, int64_t(3));
        QCOMPARE(tr->seqLen, int64_t(10));
        QCOMPARE(QString::fromStdString(tr->model), win.modelInfo()->spec);
        QCOMPARE(win.tokenStrip()->count(), 10);
        for (auto* v : win.views()) { // views catch up with the trace when shown
            QVERIFY(win.selectView(v->viewId()));
            QCOMPARE(v->trace(), tr);
        }
        QVERIFY(!win.generating());
        QVERIFY(QApplication::activeModalWidget() == nullptr);
    }
};

MX_QTEST_MAIN(TestMonkey)
#include "test_monkey.moc"
