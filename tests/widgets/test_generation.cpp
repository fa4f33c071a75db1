// Streaming generation and report export from the explorer window: every generated token
// reaches the token strip and the visible view, cancel stops it and keeps the tokens so far,
// a loop-count change afterwards re-runs the whole sequence, sampling is reproducible per
// seed, and "Export report" writes every view's charts at each loop count.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>

#include "mainwindow.h"
#include "mythos/model.h"
#include "qtest_main.h"
#include "tokenstrip.h"

using namespace mx;

namespace {
const QString kPrompt = QStringLiteral("Loops");
} // namespace

class TestGeneration : public QObject {
    Q_OBJECT

    std::unique_ptr<MainWindow> win;

    bool openAndRun() {
        QSignalSpy ready(win.get(), &MainWindow::modelReady);
        QSignalSpy shown(win.get(), &MainWindow::traceShown);
        {
            const QSignalBlocker b(win.get());
            win->setPrompt(kPrompt);
        }
        win->openModel("preset:readme_mla:1");
        if (!waitForSignal(ready, 60000))
            return false;
        return shown.count() > 0 || waitForSignal(shown, 60000);
    }

private slots:
    void init() {
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QSettings().clear();
        win = std::make_unique<MainWindow>();
        win->setInteractive(false);
        win->resize(1280, 800);
        win->show();
        QVERIFY(openAndRun());
        win->setLive(false); // only explicit runs in these tests
    }
    void cleanup() { win.reset(); }

    void streamsEveryTokenIntoTheViews() {
        const int P = int(win->currentTrace()->seqLen);
        win->setLoops(3);
        QVERIFY(win->selectView("routing"));
        QList<QPair<int, int>> seen; // (step, tokens the views show)
        QList<bool> viewsInStep;
        connect(win.get(), &MainWindow::generationProgress, this, [&](int step, int) {
            seen << qMakePair(step, int(win->currentTrace()->seqLen));
            viewsInStep << (win->currentView()->trace() == win->currentTrace() &&
                            win->tokenStrip()->count() == int(win->currentTrace()->seqLen));
        });
        QSignalSpy done(win.get(), &MainWindow::generationFinished);
        const int N = 6;
        win->generate(N);
        QVERIFY(win->generating());
        QVERIFY(waitForSignal(done, 60000));
        QCOMPARE(done.first().first().toBool(), true);
        QVERIFY(!win->generating());
        // One update per generated token, plus the last token fed through the model.
        QCOMPARE(seen.size(), N + 1);
        for (int i = 0; i < seen.size(); ++i) {
            QCOMPARE(seen[i].second, P + i);
            QVERIFY(viewsInStep[i]);
        }
        const auto tr = win->currentTrace();
        QCOMPARE(int(tr->seqLen), P + N);
        QCOMPARE(tr->nLoops, int64_t(3));
        QCOMPARE(tr->loopsExecuted, int64_t(3)); // a cached run: every loop
        QVERIFY(tr->hasKv);
        QCOMPARE(tr->kv.entries.front().positions, int64_t(P + N));
        // The new text joined the prompt without a new run.
        QVERIFY(win->prompt().startsWith(kPrompt));
        QVERIFY(win->prompt().size() > kPrompt.size());
        QCOMPARE(win->currentTrace(), tr);

        // The same tokens as the engine's greedy generate().
        auto model = mythos::Model::open("preset:readme_mla:1");
        mythos::GenerateOptions go;
        go.nLoops = 3;
        go.maxNewTokens = N;
        const std::vector<int32_t> prompt(tr->ids.begin(), tr->ids.begin() + P);
        const auto ref = mythos::generate(*model, prompt, 1, P, go);
        QCOMPARE(std::vector<int32_t>(tr->ids.begin() + P, tr->ids.end()), ref.generated);

        // A loop-count change afterwards runs the whole sequence again at the new count.
        QSignalSpy shown(win.get(), &MainWindow::traceShown);
        win->setLoops(5);
        win->runNow();
        QVERIFY(QTest::qWaitFor([&] { return win->currentTrace()->nLoops == 5; }, 60000));
        QCOMPARE(win->currentTrace()->seqLen, int64_t(P + N));
        QVERIFY(!win->currentTrace()->hasKv); // the deep run, not the generation's cache
    }

    void cancelStopsAndKeepsTheTokensSoFar() {
        const int P = int(win->currentTrace()->seqLen);
        QSignalSpy done(win.get(), &MainWindow::generationFinished);
        int steps = 0;
        connect(win.get(), &MainWindow::generationProgress, this, [&](int step, int) {
            steps = step;
            if (step == 3)
                win->cancelRun();
        });
        win->generate(100);
        QVERIFY(waitForSignal(done, 60000));
        QCOMPARE(done.first().first().toBool(), false);
        QVERIFY(steps >= 3 && steps < 100);
        QVERIFY(!win->generating());
        QVERIFY(win->currentTrace()->seqLen >= P + 2);
        QVERIFY(win->currentTrace()->seqLen < P + 100);
        QVERIFY(win->prompt().size() > kPrompt.size());
    }

    void sampledGenerationIsReproduciblePerSeed() {
        auto run = [&](quint64 seed) {
            {
                const QSignalBlocker b(win.get());
                win->setPrompt(kPrompt);
            }
            win->setSampling(false, 1.5, 0, seed);
            QSignalSpy done(win.get(), &MainWindow::generationFinished);
            win->generate(8);
            if (!waitForSignal(done, 60000))
                return std::vector<int32_t>();
            return win->currentTrace()->ids;
        };
        const auto a = run(11), b = run(11), c = run(12);
        QVERIFY(!a.empty());
        QCOMPARE(a, b);
        QVERIFY(a != c);
    }

    void exportsAReportOfEveryViewAtEachLoopCount() {
        QTemporaryDir tmp;
        const QString folder = tmp.filePath("report");
        QSignalSpy finished(win.get(), &MainWindow::reportFinished);
        win->exportReport(folder, {2, 1});
        QVERIFY(waitForSignal(finished, 120000));
        QVERIFY2(finished.first().at(0).toBool(), qPrintable(finished.first().at(1).toString()));
        QFile f(folder + "/summary.json");
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QJsonObject summary = QJsonDocument::fromJson(f.readAll()).object();
        QVERIFY(!summary.isEmpty());
        QVERIFY(QFile::exists(folder + "/report.pdf"));
        for (const char* loops : {"loops-1", "loops-2"})
            for (const char* chart : {"halting-heatmap", "routing-token-gates", "kv-by-seqlen", "stability-hnorm"}) {
                const QString base = QStringLiteral("%1/%2/").arg(folder, loops);
                const QDir dir(base);
                const QStringList hits = dir.entryList({QString(chart).section('-', 0, 0) + "-*.png"});
                QVERIFY2(!hits.isEmpty(), qPrintable(base + chart));
            }
        // A non-report folder is refused and left alone.
        QTemporaryDir other;
        QFile keep(other.filePath("keep.txt"));
        QVERIFY(keep.open(QIODevice::WriteOnly));
        keep.write("x");
        keep.close();
        QSignalSpy refused(win.get(), &MainWindow::reportFinished);
        win->exportReport(other.path(), {1});
        QVERIFY(waitForSignal(refused, 10000));
        QCOMPARE(refused.first().at(0).toBool(), false);
        QVERIFY(QFile::exists(other.filePath("keep.txt")));
    }
};

MX_QTEST_MAIN(TestGeneration)
#include "test_generation.moc"
