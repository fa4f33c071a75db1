// Every trace of the hostile corpus that is valid but odd (no loops at all, no router
// logits, null floats, huge values, ...) opens in the window, and then every view shows it,
// every chart exports in every format, the trace saves and reopens, and a report is written:
// the paths a user takes after opening a file, not only the first paint.
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>

#include "chartexporter.h"
#include "mainwindow.h"
#include "qtest_main.h"

using namespace mx;

namespace {

const QString kCorpus = QStringLiteral(MYTHOS_TEST_DATA_DIR "/hostile");

// The corpus' trace cases that must open (expect "ok"), by name.
QStringList openableTraces() {
    QFile f(kCorpus + "/cases.json");
    if (!f.open(QIODevice::ReadOnly))
        return {};
    QStringList out;
    for (const auto& c : QJsonDocument::fromJson(f.readAll()).object().value("cases").toArray()) {
        const QJsonObject o = c.toObject();
        if (o.value("kind").toString() == "trace" && o.value("expect").toString() == "ok")
            out << o.value("name").toString();
    }
    return out;
}

} // namespace

class TestHostileTraces : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { QCoreApplication::setOrganizationName("MythosExplorerTests"); }

    void everyPathAfterOpening_data() {
        QTest::addColumn<QString>("name");
        const QStringList names = openableTraces();
        QVERIFY2(names.size() >= 5, "the hostile corpus lists too few openable traces");
        for (const auto& n : names)
            QTest::newRow(qPrintable(n)) << n;
    }

    void everyPathAfterOpening() {
        QFETCH(QString, name);
        QSettings().clear();
        MainWindow win;
        win.setInteractive(false);
        win.resize(1100, 750);
        win.show();
        const QString path = kCorpus + "/" + name + ".json";
        QVERIFY2(win.openTrace(path), qPrintable(win.lastError()));
        const auto tr = win.currentTrace();
        QVERIFY(tr);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        int charts = 0;
        for (auto* v : win.views()) {
            QVERIFY(win.selectView(v->viewId()));
            QCOMPARE(v->trace(), tr);
            for (int token : {0, int(tr->seqLen) - 1, -1})
                win.setSelectedToken(token);
            QTest::qWait(10); // paint
            for (const auto& h : v->charts()) {
                // Like the report: a chart whose height follows its width keeps its own height.
                const int hfw = h.widget->heightForWidth(640);
                const QSize size(640, hfw > 0 ? hfw : 400);
                const ExportResult r =
                    exportChart(h, dir.filePath(v->viewId() + "-" + h.id), size, true, true, false, true, true);
                QVERIFY2(r.ok, qPrintable(name + ": " + h.id + ": " + r.error));
                ++charts;
            }
        }
        QVERIFY(charts > 5);
        // Save As and reopen: optional parts stay optional, NaN stays NaN.
        const QString saved = dir.filePath("saved.json");
        QVERIFY2(win.saveTrace(saved), qPrintable(win.lastError()));
        MainWindow again;
        again.setInteractive(false);
        QVERIFY2(again.openTrace(saved), qPrintable(again.lastError()));
        QCOMPARE(again.currentTrace()->ids, tr->ids);
        QCOMPARE(again.currentTrace()->routerLogits.size(), tr->routerLogits.size());
        // A report of the recorded trace.
        QSignalSpy done(&win, &MainWindow::reportFinished);
        win.exportReport(dir.filePath("report"), {});
        QVERIFY(waitForSignal(done, 120000));
        QVERIFY2(done.first().at(0).toBool(), qPrintable(done.first().at(1).toString()));
    }
};

MX_QTEST_MAIN(TestHostileTraces)
#include "test_hostile_traces.moc"
