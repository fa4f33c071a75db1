// The view registry: one list for the window's tabs and the report's views.
#include "qtest_main.h"

#include <QSet>
#include <QTabWidget>

#include "mainwindow.h"
#include "report.h"
#include "stabilityview.h"
#include "traceview.h"
#include "viewregistry.h"

using namespace mx;

class TestViewRegistry : public QObject {
    Q_OBJECT
private slots:
    void entriesMakeTheViewsTheyName() {
        QWidget host;
        QSet<QString> ids;
        for (const ViewEntry& e : viewRegistry()) {
            QVERIFY2(!ids.contains(e.id), qPrintable(e.id));
            ids.insert(e.id);
            QVERIFY(e.create);
            TraceView* v = e.create(&host);
            QVERIFY(v);
            QCOMPARE(v->viewId(), e.id);
            QCOMPARE(v->parentWidget(), &host);
            QVERIFY(!v->viewTitle().isEmpty());
        }
        QCOMPARE(ids.size(), int(viewRegistry().size()));
    }

    void setsFollowTheRegistry() {
        QWidget host;
        QStringList window, report;
        for (auto* v : createViews(ViewSet::Window, &host))
            window << v->viewId();
        for (auto* v : createViews(ViewSet::Report, &host))
            report << v->viewId();
        QStringList all, inReport;
        for (const ViewEntry& e : viewRegistry()) {
            all << e.id;
            if (e.inReport)
                inReport << e.id;
        }
        QCOMPARE(window, all);
        QCOMPARE(report, inReport);
        QCOMPARE(window, (QStringList{"halting", "routing", "kv", "stability", "lens", "attention", "trajectory",
                                      "sweep", "compare"}));
        QCOMPARE(report, (QStringList{"halting", "routing", "kv", "stability", "lens", "attention", "trajectory"}));
        QStringList fromReport;
        for (auto* v : createReportViews(&host))
            fromReport << v->viewId();
        QCOMPARE(fromReport, report);
        QCOMPARE(viewIds(), window);
        QCOMPARE(viewIds(ViewSet::Window), window);
        QCOMPARE(viewIds(ViewSet::Report), report);
    }

    void aReportsStabilityViewHasNoModel() {
        QWidget host;
        auto* report = findView<StabilityView>(createViews(ViewSet::Report, &host));
        auto* window = findView<StabilityView>(createViews(ViewSet::Window, &host));
        QVERIFY(report && window);
        QVERIFY(report != window);
        QVERIFY(!report->modelAvailable());
        QVERIFY(findView<StabilityView>({}) == nullptr);
    }

    void theWindowsTabsAreTheRegistrysViews() {
        MainWindow win;
        win.setInteractive(false);
        auto* tabs = win.findChild<QTabWidget*>("views");
        QVERIFY(tabs);
        QCOMPARE(tabs->count(), int(viewRegistry().size()));
        QCOMPARE(win.views().size(), int(viewRegistry().size()));
        for (int i = 0; i < tabs->count(); ++i) {
            auto* v = qobject_cast<TraceView*>(tabs->widget(i));
            QVERIFY(v);
            QCOMPARE(v, win.views()[i]);
            QCOMPARE(v->viewId(), viewRegistry()[i].id);
            QCOMPARE(tabs->tabText(i), v->viewTitle());
            QVERIFY(win.selectView(v->viewId()));
            QCOMPARE(win.currentView(), v);
        }
    }
};

MX_QTEST_MAIN(TestViewRegistry)
#include "test_viewregistry.moc"
