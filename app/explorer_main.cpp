// mythos-explorer: the GUI. `--screenshot FILE.png` renders the window offscreen after one
// run and exits (used for the README and for checking the views by eye).
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QIcon>
#include <QImageWriter>
#include <QSettings>
#include <QTimer>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "depthsweepview.h"
#include "mainwindow.h"
#include "mythos/modelspec.h"
#include "viewregistry.h"

namespace {

bool wantsScreenshot(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], "--screenshot", 12) == 0)
            return true;
    return false;
}

// A chain prompt in the demo models' format (tools/tasks.py): three queries of 4, 2 and 1
// hops, each followed by its answer, so the halting view shows the queried variables of "?d",
// "?b" and "?x" thinking for 4, 2 and 1 loops. Short enough for the token strip's one line.
const char* kDefaultPrompt = "a=3;x=7;b=a;c=b;d=c;?d3;?b3;?x7";

} // namespace

int main(int argc, char** argv) {
    // OpenMP threads that spin while waiting compete with the GUI thread for the cores and
    // stall painting by a scheduler quantum at a time; sleeping waiters cost the engine far
    // less than that. libgomp reads the policy when it loads, so set it and start again.
    if (!std::getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        execv("/proc/self/exe", argv);
        // exec failed: run on with the default policy
    }
    // A screenshot needs no display.
    if (wantsScreenshot(argc, argv) && !std::getenv("QT_QPA_PLATFORM"))
        setenv("QT_QPA_PLATFORM", "offscreen", 0);
    QApplication app(argc, argv);
    QApplication::setApplicationName("mythos-explorer");
    QApplication::setOrganizationName("MythosExplorer");
    QApplication::setApplicationVersion("0.1.0");
    QApplication::setWindowIcon(QIcon(":/icons/mythos-explorer.svg"));

    QCommandLineParser cli;
    cli.setApplicationDescription("Look inside looped OpenMythos transformers.");
    cli.addHelpOption();
    cli.addVersionOption();
    QCommandLineOption modelOpt("model", "Model folder or preset:NAME[:SEED].", "DIR");
    QCommandLineOption promptOpt("prompt", "Prompt text.", "TEXT");
    QCommandLineOption loopsOpt("loops", "Loop count.", "N");
    const QString viewNames = mx::viewIds().join(", "); // every view of the registry, in tab order
    QCommandLineOption viewOpt("view", "View to show: " + viewNames + ".", "NAME");
    QCommandLineOption traceOpt("trace", "Open a recorded trace instead of a model.", "FILE");
    QCommandLineOption shotOpt(
        "screenshot", "Render the window to FILE.png after one run (in the sweep view: and a depth sweep) and exit.",
        "FILE");
    QCommandLineOption sizeOpt("size", "Window size for --screenshot (default 1280x800).", "WxH", "1280x800");
    QCommandLineOption tokenOpt("select-token", "Select token I.", "I");
    QCommandLineOption compareOpt("compare", "Compare with a second model folder or preset.", "DIR");
    QCommandLineOption variantOpt("compare-variant",
                                  "Compare with the model's config changed by a JSON object, e.g. "
                                  "'{\"act_threshold\": 0.9}'.",
                                  "JSON");
    cli.addOptions(
        {modelOpt, promptOpt, loopsOpt, viewOpt, traceOpt, shotOpt, sizeOpt, tokenOpt, compareOpt, variantOpt});
    cli.process(app);

    auto fail = [](const QString& msg) {
        std::fprintf(stderr, "mythos-explorer: %s\n", qPrintable(msg));
        return 1;
    };

    const bool shot = cli.isSet(shotOpt);
    QSize size(1280, 800);
    {
        const QStringList wh = cli.value(sizeOpt).split('x');
        bool ok1 = false, ok2 = false;
        if (wh.size() == 2)
            size = QSize(wh[0].toInt(&ok1), wh[1].toInt(&ok2));
        if (!ok1 || !ok2 || size.width() < 200 || size.height() < 150 || size.width() > 8000 || size.height() > 8000)
            return fail("--size must be WxH between 200x150 and 8000x8000");
    }
    int loops = 0;
    if (cli.isSet(loopsOpt)) {
        bool ok = false;
        loops = cli.value(loopsOpt).toInt(&ok);
        if (!ok || loops < 1 || loops > 4096)
            return fail("--loops must be an integer in 1..4096");
    }

    mx::MainWindow w;
    w.setInteractive(!shot);
    if (shot) {
        w.resize(size);
    } else if (!w.restoreGeometry(QSettings().value("window/geometry").toByteArray())) {
        w.resize(1280, 800);
    }
    if (cli.isSet(viewOpt) && !w.selectView(cli.value(viewOpt)))
        return fail("unknown view '" + cli.value(viewOpt) + "' (" + viewNames + ")");

    {
        const QSignalBlocker block(&w); // set the prompt before any model: the first run uses it
        w.setPrompt(cli.isSet(promptOpt) ? cli.value(promptOpt) : QString::fromUtf8(kDefaultPrompt));
    }
    const bool comparing = cli.isSet(compareOpt) || cli.isSet(variantOpt);
    QObject::connect(&w, &mx::MainWindow::modelReady, &w, [&] {
        if (const QString warning = w.modelWarning(); !warning.isEmpty())
            std::fprintf(stderr, "mythos-explorer: warning: %s: %s\n", qPrintable(w.modelSpec()), qPrintable(warning));
        if (cli.isSet(compareOpt))
            w.openCompareModel(cli.value(compareOpt));
        else if (cli.isSet(variantOpt))
            w.openCompareVariant(cli.value(variantOpt));
        if (loops > 0) {
            if (loops > w.loopLimit())
                w.setLoopLimit(loops);
            w.setLoops(loops);
        }
        if (cli.isSet(tokenOpt))
            w.setSelectedToken(cli.value(tokenOpt).toInt());
        w.runNow();
    });

    int exitCode = 0;
    const QString out = cli.value(shotOpt); // outlives the lambdas below
    bool sweepStarted = false;              // likewise: the screenshot's sweep runs once
    if (shot) {
        auto finishShot = [&] {
            QTimer::singleShot(150, &w, [&] {
                QImage img = w.grab().toImage();
                QImageWriter writer(out);
                if (!writer.write(img)) {
                    exitCode = fail("cannot write " + out + ": " + writer.errorString());
                } else {
                    std::printf("wrote %s (%dx%d)\n", qPrintable(out), img.width(), img.height());
                }
                QApplication::exit(exitCode);
            });
        };
        // With a comparison, the picture waits for the second model's run; in the Depth sweep
        // view, for a sweep of the view's prompt set (the model folder's by default).
        const bool sweeping = cli.value(viewOpt) == QLatin1String("sweep") && !cli.isSet(traceOpt);
        QObject::connect(&w, comparing ? &mx::MainWindow::compareTraceShown : &mx::MainWindow::traceShown, &w,
                         [&, finishShot, sweeping] {
                             if (cli.isSet(tokenOpt))
                                 w.setSelectedToken(cli.value(tokenOpt).toInt());
                             if (!sweeping) {
                                 finishShot();
                                 return;
                             }
                             if (sweepStarted)
                                 return;
                             sweepStarted = true;
                             auto* sweep = w.depthSweepView();
                             QString error;
                             const QList<int> ks = sweep->loops(&error);
                             if (sweep->promptSet().isEmpty() || ks.isEmpty()) {
                                 exitCode = fail(sweep->promptSet().isEmpty() ? QStringLiteral("no prompt set to sweep")
                                                                              : error);
                                 QApplication::exit(exitCode);
                                 return;
                             }
                             emit sweep->runRequested(sweep->promptSet(), ks);
                         });
        QObject::connect(&w, &mx::MainWindow::sweepShown, &w, [finishShot] { finishShot(); });
        QObject::connect(&w, &mx::MainWindow::sweepFailed, &w, [&](const QString& e) {
            exitCode = fail(e);
            QApplication::exit(exitCode);
        });
        QObject::connect(&w, &mx::MainWindow::compareFailed, &w, [&](const QString& e) {
            exitCode = fail(e);
            QApplication::exit(exitCode);
        });
        QObject::connect(&w, &mx::MainWindow::modelFailedToOpen, &w, [&](const QString& e) {
            exitCode = fail(e);
            QApplication::exit(exitCode);
        });
        QObject::connect(&w, &mx::MainWindow::runErrored, &w, [&](const QString& e) {
            exitCode = fail(e);
            QApplication::exit(exitCode);
        });
        QTimer::singleShot(180000, &w, [&] {
            exitCode = fail("timed out waiting for the run");
            QApplication::exit(exitCode);
        });
    }
    w.show();

    if (cli.isSet(traceOpt)) {
        if (!w.openTrace(cli.value(traceOpt)) && shot)
            return fail(w.lastError());
    } else {
        // An explicit --model is opened as given: a missing folder is an error (the window
        // says so; with --screenshot the exit code does), never a silent switch to the demo
        // model. Only the remembered last model falls back when it has gone.
        QString spec = cli.value(modelOpt);
        if (!cli.isSet(modelOpt)) {
            if (!shot)
                spec = QSettings().value("recent/last").toString();
            if (spec.isEmpty() || (!mythos::isPresetSpec(spec.toStdString()) && !QFileInfo::exists(spec)))
                spec = mx::MainWindow::defaultModel();
        } else if (spec.isEmpty()) {
            return fail("--model needs a model folder or preset:NAME[:SEED]");
        }
        w.openModel(spec);
    }
    const int rc = app.exec();
    return exitCode ? exitCode : rc;
}
