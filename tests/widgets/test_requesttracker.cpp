// RequestTracker: which asynchronous result is the one the window waits for.
#include "qtest_main.h"

#include <QSet>

#include "requesttracker.h"

using namespace mx;
using Kind = RequestTracker::Kind;

class TestRequestTracker : public QObject {
    Q_OBJECT
private slots:
    void nothingIsCurrentAtFirst() {
        const RequestTracker t;
        for (Kind k : {Kind::Model, Kind::Run, Kind::Generation, Kind::Report, Kind::Sweep, Kind::CompareModel,
                       Kind::CompareRun}) {
            QCOMPARE(t.current(k), quint64(0));
            QVERIFY(!t.isCurrent(k, 0));
            QVERIFY(!t.isCurrent(k, 1));
        }
    }

    void aNewerRequestMakesTheOlderStale() {
        RequestTracker t;
        const quint64 a = t.issue(Kind::Run);
        QVERIFY(a != 0);
        QVERIFY(t.isCurrent(Kind::Run, a));
        const quint64 b = t.issue(Kind::Run);
        QVERIFY(b != a);
        QVERIFY(!t.isCurrent(Kind::Run, a));
        QVERIFY(t.isCurrent(Kind::Run, b));
        QCOMPARE(t.current(Kind::Run), b);
    }

    void idsAreUniqueAcrossKinds() {
        RequestTracker t;
        QSet<quint64> ids;
        for (int i = 0; i < 5; ++i)
            for (Kind k : {Kind::Model, Kind::Run, Kind::Sweep, Kind::CompareModel, Kind::CompareRun})
                ids.insert(t.issue(k));
        QCOMPARE(ids.size(), 25);
        QVERIFY(!ids.contains(0));
    }

    void kindsAreIndependent() {
        RequestTracker t;
        const quint64 model = t.issue(Kind::Model);
        const quint64 run = t.issue(Kind::Run);
        const quint64 sweep = t.issue(Kind::Sweep);
        QVERIFY(t.isCurrent(Kind::Model, model));
        QVERIFY(t.isCurrent(Kind::Sweep, sweep));
        // A run's id answers no other kind, and another kind's id is not the current run.
        QVERIFY(!t.isCurrent(Kind::Model, run));
        QVERIFY(!t.isCurrent(Kind::CompareRun, run));
        QVERIFY(!t.isCurrent(Kind::Run, model));
        t.issue(Kind::CompareRun);
        QVERIFY(t.isCurrent(Kind::Run, run));
    }

    void oneRequestOfTwoKinds() {
        RequestTracker t;
        const quint64 gen = t.issue(Kind::Run);
        t.track(Kind::Generation, gen);
        QVERIFY(t.isCurrent(Kind::Run, gen));
        QVERIFY(t.isCurrent(Kind::Generation, gen));
        // The next ordinary run makes the generation's run stale, but it stays the
        // generation's until another generation starts.
        const quint64 next = t.issue(Kind::Run);
        QVERIFY(!t.isCurrent(Kind::Run, gen));
        QVERIFY(t.isCurrent(Kind::Generation, gen));
        QVERIFY(!t.isCurrent(Kind::Generation, next));
    }

    void forgetDropsLateResults() {
        RequestTracker t;
        const quint64 report = t.issue(Kind::Run);
        t.track(Kind::Report, report);
        t.forget(Kind::Report);
        QVERIFY(!t.isCurrent(Kind::Report, report));
        QCOMPARE(t.current(Kind::Report), quint64(0));
        QVERIFY(t.isCurrent(Kind::Run, report)); // other kinds keep it
        // Forgetting does not reuse ids: the next request is new.
        const quint64 again = t.issue(Kind::Report);
        QVERIFY(again != report);
        QVERIFY(t.isCurrent(Kind::Report, again));
    }

    void idZeroIsNeverCurrent() {
        RequestTracker t;
        t.track(Kind::Run, 0);
        QVERIFY(!t.isCurrent(Kind::Run, 0));
    }
};

MX_QTEST_MAIN(TestRequestTracker)
#include "test_requesttracker.moc"
