// File > Import PyTorch Checkpoint: the importer runs tools/export_checkpoint.py, turns its
// "progress" lines into signals, says a missing python3 or torch in one message, can be
// cancelled, finds the tool installed or in the source tree; the window opens what a real
// import of a reference-style checkpoint wrote, and shows progress and errors in dialogs.
// Set MYTHOS_SCREENSHOT_DIR to keep pictures of the progress and error dialogs.
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QProcess>
#include <QProgressDialog>
#include <QPushButton>
#include <QSettings>
#include <QTemporaryDir>

#include "checkpointimport.h"
#include "mainwindow.h"
#include "qtest_main.h"

using namespace mx;

namespace {

const QString kDebianPython = QStringLiteral("/usr/bin/python3");

bool writeFile(const QString& path, const QByteArray& data, bool executable = false) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(data) != data.size())
        return false;
    f.close();
    if (executable)
        f.setPermissions(f.permissions() | QFile::ExeOwner | QFile::ExeUser);
    return true;
}

// Python with torch, or empty (the real-tool tests skip then).
QString pythonWithTorch() {
    if (!QFileInfo(kDebianPython).isExecutable())
        return {};
    QProcess p;
    p.start(kDebianPython, {"-c", "import torch"});
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0 ? kDebianPython
                                                                                                   : QString();
}

void keepScreenshot(QWidget* w, const QString& name) {
    const QString dir = qEnvironmentVariable("MYTHOS_SCREENSHOT_DIR");
    if (!dir.isEmpty() && w)
        QVERIFY(w->grab().save(QDir(dir).filePath(name)));
}

} // namespace

class TestCheckpointImport : public QObject {
    Q_OBJECT

    QTemporaryDir tmp;

    QString path(const QString& name) const { return tmp.filePath(name); }

    // A stand-in for the tool, run by /bin/sh instead of Python: the script `body` gets the
    // tool's arguments (--state-dict PT --out OUT --dtype D ...: OUT is $4).
    QString fakeTool(const QString& name, const QByteArray& body) {
        const QString p = path(name + ".sh");
        return writeFile(p, body) ? p : QString();
    }

    // A checkpoint file the fake tools never read.
    QString dummyCheckpoint() {
        const QString p = path("ckpt/step_0000042.pt");
        QDir().mkpath(path("ckpt"));
        return writeFile(p, "not read") ? p : QString();
    }

private slots:
    void initTestCase() {
        QVERIFY(tmp.isValid());
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QSettings().clear();
    }

    void parsesProgressLines() {
        CheckpointImport::Progress p;
        QVERIFY(CheckpointImport::parseProgress("progress 10 100 writing embed.weight", &p));
        QCOMPARE(p.done, qint64(10));
        QCOMPARE(p.total, qint64(100));
        QCOMPARE(p.text, QString("writing embed.weight"));
        QVERIFY(CheckpointImport::parseProgress("progress 0 0 reading step_0001200.pt\n", &p));
        QCOMPARE(p.total, qint64(0));
        QCOMPARE(p.text, QString("reading step_0001200.pt"));
        QVERIFY(CheckpointImport::parseProgress("progress 7 7", &p));
        QCOMPARE(p.text, QString());
        QVERIFY(CheckpointImport::parseProgress("progress 12884901888 25769803776 big", &p)); // > 2^32
        QCOMPARE(p.done, qint64(12884901888));
        for (const char* bad : {"wrote out: 76 tensors", "progress", "progress 5", "progress a 1 x", "progress -1 5 x",
                                "progress 6 5 x", "progress 1 -5 x", " progress 1 2 x", "progressing 1 2 x"})
            QVERIFY2(!CheckpointImport::parseProgress(bad, &p), bad);
    }

    void findsTheToolInstalledOrInTheSourceTree() {
        qunsetenv("MYTHOS_EXPORT_TOOL");
        // A build: the source tree's tools/ (this executable is not installed).
        const QString built = CheckpointImport::findTool();
        QVERIFY(built.endsWith("/tools/export_checkpoint.py"));
        QVERIFY(QFileInfo(built).isFile());
        QVERIFY(QFileInfo(QFileInfo(built).dir().filePath("mythos_torch.py")).isFile());
        // Installed: <prefix>/bin/mythos-explorer finds <prefix>/share/mythos-explorer/tools first.
        QVERIFY(QDir().mkpath(path("prefix/bin")));
        QVERIFY(QDir().mkpath(path("prefix/share/mythos-explorer/tools")));
        QVERIFY(writeFile(path("prefix/share/mythos-explorer/tools/export_checkpoint.py"), "#"));
        QCOMPARE(CheckpointImport::findTool(path("prefix/bin")),
                 QDir::cleanPath(path("prefix/share/mythos-explorer/tools/export_checkpoint.py")));
        QCOMPARE(CheckpointImport::findTool(path("elsewhere/bin")), built);
        // The environment wins.
        qputenv("MYTHOS_EXPORT_TOOL", "/opt/x/export_checkpoint.py");
        QCOMPARE(CheckpointImport::findTool(path("prefix/bin")), QString("/opt/x/export_checkpoint.py"));
        qunsetenv("MYTHOS_EXPORT_TOOL");
    }

    void defaultsBesideTheCheckpoint() {
        QVERIFY(QDir().mkpath(path("beside")));
        const QString pt = path("beside/step_0001200.pt");
        QVERIFY(writeFile(pt, "x"));
        QCOMPARE(CheckpointImport::defaultOutDir(pt), path("beside/step_0001200_mythos"));
        QVERIFY(QDir().mkpath(path("beside/step_0001200_mythos")));
        QCOMPARE(CheckpointImport::defaultOutDir(pt), path("beside/step_0001200_mythos_2"));
        QCOMPARE(CheckpointImport::tokenizerBeside(pt), QString());
        QVERIFY(writeFile(path("beside/o200k_base.tiktoken"), "x"));
        QCOMPARE(CheckpointImport::tokenizerBeside(pt), path("beside/o200k_base.tiktoken"));
        QVERIFY(writeFile(path("beside/tokenizer.json"), "{}"));
        QCOMPARE(CheckpointImport::tokenizerBeside(pt), path("beside/tokenizer.json"));
        // The dialog proposes them.
        CheckpointImportDialog dlg(pt);
        const auto o = dlg.options();
        QCOMPARE(o.checkpoint, pt);
        QCOMPARE(o.outDir, path("beside/step_0001200_mythos_2"));
        QCOMPARE(o.tokenizer, QString()); // empty: the tool takes the one beside
        QCOMPARE(o.dtype, QString("f32"));
        keepScreenshot(&dlg, "import_dialog.png");
    }

    void missingPythonIsOneClearError() {
        CheckpointImport imp;
        QSignalSpy failed(&imp, &CheckpointImport::failed);
        QSignalSpy finished(&imp, &CheckpointImport::finished);
        CheckpointImportOptions o;
        o.checkpoint = dummyCheckpoint();
        o.outDir = path("out_nopython");
        o.python = path("no/such/python3");
        imp.start(o);
        QVERIFY(waitForSignal(failed, 10000));
        QCOMPARE(failed.count(), 1);
        const QString error = failed.first().first().toString();
        QVERIFY2(error.contains("runs Python 3 with PyTorch"), qPrintable(error));
        QVERIFY2(error.contains(o.python + " could not be started"), qPrintable(error));
        QVERIFY2(error.contains("python3-torch"), qPrintable(error));
        QVERIFY(!error.contains('\n'));
        QCOMPARE(finished.count(), 0);
        QVERIFY(!imp.running());
    }

    void pythonWithoutTorchIsOneClearError() {
        // A real Python that cannot see torch: Debian's with site-packages left out.
        if (!QFileInfo(kDebianPython).isExecutable())
            QSKIP("no /usr/bin/python3");
        QProcess probe;
        probe.start(kDebianPython, {"-I", "-S", "-c", "import torch"});
        QVERIFY(probe.waitForFinished(30000));
        if (probe.exitCode() == 0)
            QSKIP("torch is importable without site-packages here");
        const QString fakePython = path("python3-without-torch");
        QVERIFY(writeFile(fakePython, "#!/bin/sh\nexec /usr/bin/python3 -I -S \"$@\"\n", true));
        CheckpointImport imp;
        QSignalSpy failed(&imp, &CheckpointImport::failed);
        CheckpointImportOptions o;
        o.checkpoint = dummyCheckpoint();
        o.outDir = path("out_notorch");
        o.python = fakePython;
        imp.start(o);
        QVERIFY(waitForSignal(failed, 30000));
        const QString error = failed.first().first().toString();
        QCOMPARE(error, QString("Importing a PyTorch checkpoint needs PyTorch, which %1 does not have. Install the "
                                "Debian package python3-torch, or set MYTHOS_PYTHON to a Python that has torch.")
                            .arg(fakePython));
        QVERIFY(!QFileInfo::exists(o.outDir));
    }

    void progressLinesBecomeSignalsAndTheFolderIsReported() {
        const QString tool =
            fakeTool("ok", "out=\"$4\"\n"
                           "echo 'progress 0 0 reading step_0000042.pt'\n"
                           "echo 'export_checkpoint: note: no tokenizer here' >&2\n"
                           "printf 'progress 0 300 writing embed.weight\\nprogress 100 300 writing a'\n"
                           "sleep 0.2\n"
                           "printf '.b\\nprogress 300 300 writing done\\nnot a progress line\\n'\n"
                           "mkdir -p \"$out\" && echo '{}' > \"$out/config.json\"\n"
                           "echo \"wrote $out\"\n");
        QVERIFY(!tool.isEmpty());
        CheckpointImport imp;
        QSignalSpy progress(&imp, &CheckpointImport::progress);
        QSignalSpy finished(&imp, &CheckpointImport::finished);
        QSignalSpy failed(&imp, &CheckpointImport::failed);
        CheckpointImportOptions o;
        o.checkpoint = dummyCheckpoint();
        o.outDir = path("out_ok");
        o.python = "/bin/sh";
        o.tool = tool;
        o.dtype = "bf16";
        o.tokenizer = path("tok.json");
        imp.start(o);
        QCOMPARE(imp.arguments(), QStringList({tool, "--state-dict", o.checkpoint, "--out", o.outDir, "--dtype", "bf16",
                                               "--tokenizer", o.tokenizer}));
        QVERIFY(waitForSignal(finished, 20000));
        QCOMPARE(failed.count(), 0);
        QCOMPARE(finished.first().first().toString(), o.outDir);
        // "starting", then the tool's four lines; a line split across writes arrives whole.
        QCOMPARE(progress.count(), 5);
        QCOMPARE(progress.at(1).at(2).toString(), QString("reading step_0000042.pt"));
        QCOMPARE(progress.at(3).at(0).toLongLong(), qint64(100));
        QCOMPARE(progress.at(3).at(2).toString(), QString("writing a.b"));
        QCOMPARE(progress.at(4).at(0).toLongLong(), qint64(300));
        QCOMPARE(progress.at(4).at(1).toLongLong(), qint64(300));
        QCOMPARE(imp.notes(), QStringList{"no tokenizer here"});
    }

    void toolErrorsArriveAsTheirOneLine() {
        struct Case {
            QByteArray body;
            QString expected;
        };
        const QList<Case> cases = {
            {"echo 'export_checkpoint: note: something' >&2\n"
             "echo 'export_checkpoint: error: x.pt: its 77 tensors do not match the checkpoint'\"'\"'s cfg' >&2\nexit "
             "1\n",
             "x.pt: its 77 tensors do not match the checkpoint's cfg"},
            {"echo 'Traceback (most recent call last):' >&2\necho 'RuntimeError: boom' >&2\nexit 1\n",
             "The checkpoint converter failed (exit status 1): RuntimeError: boom"},
            {"echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n", "needs PyTorch"},
            {"exit 0\n", "ended without writing"}, // exit 0 without config.json
            {"kill -SEGV $$\n", "stopped unexpectedly"},
        };
        int i = 0;
        for (const auto& c : cases) {
            CheckpointImport imp;
            QSignalSpy failed(&imp, &CheckpointImport::failed);
            CheckpointImportOptions o;
            o.checkpoint = dummyCheckpoint();
            o.outDir = path(QString("out_err%1").arg(i));
            o.python = "/bin/sh";
            o.tool = fakeTool(QString("err%1").arg(i++), c.body);
            imp.start(o);
            QVERIFY(waitForSignal(failed, 20000));
            const QString error = failed.first().first().toString();
            QVERIFY2(error.contains(c.expected), qPrintable(error));
            QVERIFY(!error.contains('\n'));
        }
    }

    void missingToolOrCheckpointFailsAtOnce() {
        CheckpointImport imp;
        QSignalSpy failed(&imp, &CheckpointImport::failed);
        CheckpointImportOptions o;
        o.checkpoint = path("none.pt");
        o.outDir = path("out_none");
        imp.start(o);
        QCOMPARE(failed.count(), 1); // synchronously
        QCOMPARE(failed.last().first().toString(), path("none.pt") + ": no such file");
        o.checkpoint = dummyCheckpoint();
        o.tool = path("missing/export_checkpoint.py");
        imp.start(o);
        QCOMPARE(failed.count(), 2);
        QVERIFY(failed.last().first().toString().startsWith(o.tool + ": no such file"));
        QVERIFY(!imp.running());
    }

    void cancelStopsTheTool() {
        const QString tool = fakeTool("slow", "echo 'progress 0 100 writing embed.weight'\nexec sleep 30\n");
        CheckpointImport imp;
        QSignalSpy progress(&imp, &CheckpointImport::progress);
        QSignalSpy cancelled(&imp, &CheckpointImport::cancelled);
        QSignalSpy failed(&imp, &CheckpointImport::failed);
        QSignalSpy finished(&imp, &CheckpointImport::finished);
        CheckpointImportOptions o;
        o.checkpoint = dummyCheckpoint();
        o.outDir = path("out_slow");
        o.python = "/bin/sh";
        o.tool = tool;
        imp.start(o);
        QVERIFY(QTest::qWaitFor([&] { return progress.count() >= 2; }, 20000));
        QVERIFY(imp.running());
        QElapsedTimer t;
        t.start();
        imp.cancel();
        QVERIFY(waitForSignal(cancelled, 10000));
        QVERIFY(t.elapsed() < 4000); // SIGTERM, not the 5 s SIGKILL fallback
        QVERIFY(!imp.running());
        QCOMPARE(failed.count(), 0);
        QCOMPARE(finished.count(), 0);
        // It can run again afterwards.
        imp.start(o);
        QVERIFY(QTest::qWaitFor([&] { return imp.running(); }, 10000));
        imp.cancel();
        QVERIFY(QTest::qWaitFor([&] { return cancelled.count() == 2; }, 10000));
    }

    void windowImportsAReferenceCheckpointAndOpensIt() {
        const QString python = pythonWithTorch();
        if (python.isEmpty())
            QSKIP("no /usr/bin/python3 with torch");
        const QString demo = QStringLiteral(MYTHOS_SOURCE_DIR "/resources/models/demo_mla");
        // A checkpoint as the reference trainer's save_checkpoint writes it (pickled cfg of
        // open_mythos.main.MythosConfig, AdamW state, "module." prefixes), with the demo's
        // tokenizer.json beside it.
        QProcess make;
        make.start(python, {QStringLiteral(MYTHOS_SOURCE_DIR "/tools/tests/reference_checkpoint.py"), "--model", demo,
                            "--dir", path("train"), "--step", "1200", "--prefix", "module."});
        QVERIFY(make.waitForFinished(120000));
        QVERIFY2(make.exitCode() == 0, make.readAllStandardError().constData());
        const QString pt = QString::fromUtf8(make.readAllStandardOutput()).trimmed();
        QCOMPARE(pt, path("train/step_0001200.pt"));
        QVERIFY(QFile::copy(demo + "/tokenizer.json", path("train/tokenizer.json")));

        MainWindow win;
        win.setInteractive(false);
        win.resize(1000, 700);
        win.show();
        QSignalSpy imported(&win, &MainWindow::checkpointImported);
        QSignalSpy failed(&win, &MainWindow::importFailed);
        QSignalSpy ready(&win, &MainWindow::modelReady);
        QSignalSpy shown(&win, &MainWindow::traceShown);
        QSignalSpy progress(win.checkpointImport(), &CheckpointImport::progress);
        {
            const QSignalBlocker b(&win);
            win.setPrompt("a=3;b=a;?b3");
        }
        CheckpointImportOptions o;
        o.checkpoint = pt;
        o.outDir = CheckpointImport::defaultOutDir(pt);
        o.python = python;
        win.importCheckpoint(o);
        QVERIFY(QTest::qWaitFor([&] { return imported.count() + failed.count() > 0; }, 120000));
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().first().toString()));
        QCOMPARE(imported.first().first().toString(), path("train/step_0001200_mythos"));
        QVERIFY(progress.count() > 20); // a line per tensor
        QVERIFY(waitForSignal(ready, 60000));
        QCOMPARE(win.modelSpec(), path("train/step_0001200_mythos"));
        QVERIFY(win.modelInfo()->hasTokenizer);
        QCOMPARE(readAll(path("train/step_0001200_mythos/tokenizer.json")), readAll(demo + "/tokenizer.json"));
        QVERIFY(waitForSignal(shown, 60000));
        const auto fromImport = win.currentTrace();
        QVERIFY(fromImport);

        // The same prompt on the bundled demo model: the same weights and outputs.
        shown.clear();
        ready.clear();
        win.openModel(demo);
        QVERIFY(waitForSignal(ready, 60000));
        QVERIFY(QTest::qWaitFor([&] { return win.currentTrace() && win.currentTrace() != fromImport; }, 60000));
        const auto fromDemo = win.currentTrace();
        QCOMPARE(QString::fromStdString(fromImport->weightsHash), QString::fromStdString(fromDemo->weightsHash));
        QCOMPARE(fromImport->ids, fromDemo->ids);
        QCOMPARE(fromImport->actP, fromDemo->actP);
        QCOMPARE(fromImport->logits, fromDemo->logits);
    }

    void windowShowsProgressAndErrorDialogs() {
        MainWindow win;
        win.setInteractive(true);
        win.resize(1000, 700);
        win.show();
        QVERIFY(QTest::qWaitForWindowExposed(&win));
        // The File menu has the action.
        QAction* action = nullptr;
        for (auto* a : win.menuBar()->actions())
            if (a->menu() && a->text() == "&File")
                for (auto* item : a->menu()->actions())
                    if (item->text() == "&Import PyTorch Checkpoint...")
                        action = item;
        QVERIFY(action);
        QVERIFY(action->isEnabled());

        // Progress: the dialog follows the tool's lines; its Cancel stops the tool.
        CheckpointImportOptions o;
        o.checkpoint = dummyCheckpoint();
        o.outDir = path("out_dialog");
        o.python = "/bin/sh";
        o.tool =
            fakeTool("dialog", "echo 'progress 0 0 reading step_0000042.pt'\n"
                               "echo 'progress 3000 12000 writing recurrent.block.ffn.routed_experts.17.up.weight'\n"
                               "exec sleep 30\n");
        QSignalSpy cancelled(&win, &MainWindow::importCancelled);
        QSignalSpy failed(&win, &MainWindow::importFailed);
        win.importCheckpoint(o);
        QProgressDialog* dlg = win.findChild<QProgressDialog*>();
        QVERIFY(dlg);
        QVERIFY(QTest::qWaitFor([&] { return dlg->value() == 250; }, 20000));
        QCOMPARE(dlg->maximum(), 1000);
        QVERIFY(dlg->isVisible());
        QVERIFY(dlg->labelText().contains("writing recurrent.block.ffn.routed_experts.17.up.weight"));
        QVERIFY(dlg->labelText().contains("out_dialog"));
        keepScreenshot(dlg, "import_progress.png");
        auto* cancel = dlg->findChild<QPushButton*>();
        QVERIFY(cancel);
        QCOMPARE(cancel->text(), QString("Cancel"));
        cancel->click(); // what the user does (QProgressDialog::cancel() would not signal)
        QVERIFY(waitForSignal(cancelled, 10000));
        QCOMPARE(failed.count(), 0);
        QVERIFY(!win.checkpointImport()->running());
        QTRY_VERIFY(win.findChild<QProgressDialog*>() == nullptr);

        // Error: one message box with the clear text (python3 missing).
        QString boxText;
        QTimer poll;
        poll.setInterval(20);
        connect(&poll, &QTimer::timeout, this, [&] {
            if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget())) {
                boxText = box->text();
                keepScreenshot(box, "import_error.png");
                box->accept();
            }
        });
        poll.start();
        o.python = path("no/python3");
        win.importCheckpoint(o);
        QVERIFY(waitForSignal(failed, 20000));
        poll.stop();
        QVERIFY2(boxText.contains("runs Python 3 with PyTorch, and " + o.python + " could not be started"),
                 qPrintable(boxText));
        QCOMPARE(win.lastError(), boxText);
    }
};

MX_QTEST_MAIN(TestCheckpointImport)
#include "test_checkpointimport.moc"
