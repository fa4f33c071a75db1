// The inference worker: latest request wins, cancellation, deep-run reuse, failures that
// keep the previous model.
#include <QSignalSpy>

#include "inferenceworker.h"
#include "mythos/model.h"
#include "qtest_main.h"
#include "workerrelay.h"

using namespace mx;

class TestWorker : public QObject {
    Q_OBJECT

    std::unique_ptr<WorkerThread> thread;
    InferenceWorker* w = nullptr;
    std::unique_ptr<WorkerRelay> relay;

    void open(const QString& spec) {
        QSignalSpy ok(relay.get(), &WorkerRelay::modelOpened);
        w->openModel(spec, 1);
        QVERIFY(waitForSignal(ok, 60000));
    }

    static RunRequest request(quint64 id, const QString& prompt, int loops, double thr = 0) {
        RunRequest r;
        r.id = id;
        r.prompt = prompt;
        r.loops = loops;
        r.actThreshold = thr;
        return r;
    }

    RunResultPtr runAndWait(RunRequest r) {
        QSignalSpy done(relay.get(), &WorkerRelay::runFinished);
        w->submit(std::move(r));
        if (!waitForSignal(done, 60000))
            return nullptr;
        return done.last().at(0).value<RunResultPtr>();
    }

private slots:
    void init() {
        thread = std::make_unique<WorkerThread>();
        w = thread->worker();
        relay = std::make_unique<WorkerRelay>(w);
    }
    void cleanup() {
        thread.reset();
        relay.reset();
    }

    void latestRequestWins() {
        open("preset:readme_mla:1");
        QSignalSpy done(relay.get(), &WorkerRelay::runFinished);
        QSignalSpy cancelled(relay.get(), &WorkerRelay::runCancelled);
        const QString longPrompt = QString("loop ").repeated(25);
        // Heavy requests submitted back to back: only the last may complete.
        for (quint64 id = 1; id <= 4; ++id)
            w->submit(request(id, longPrompt + QString::number(id), 200));
        w->submit(request(5, "short prompt", 3));
        QTRY_VERIFY_WITH_TIMEOUT(done.count() >= 1, 60000);
        QTest::qWait(200);
        QCOMPARE(done.count(), 1);
        const auto r = done.first().at(0).value<RunResultPtr>();
        QCOMPARE(r->id, quint64(5));
        QCOMPARE(r->trace->nLoops, int64_t(3));
        QCOMPARE(r->trace->seqLen, int64_t(QString("short prompt").size()));
        QVERIFY(cancelled.count() <= 4);
    }

    void cancelStopsARunningRequest() {
        open("preset:readme_mla:1");
        QSignalSpy started(relay.get(), &WorkerRelay::runStarted);
        QSignalSpy done(relay.get(), &WorkerRelay::runFinished);
        QSignalSpy cancelled(relay.get(), &WorkerRelay::runCancelled);
        w->submit(request(7, QString("cancel me ").repeated(12), 2000));
        QVERIFY(waitForSignal(started, 10000));
        w->cancel();
        QVERIFY(waitForSignal(cancelled, 10000));
        QCOMPARE(cancelled.first().at(0).toULongLong(), quint64(7));
        QTest::qWait(100);
        QCOMPARE(done.count(), 0);
        // The worker is still usable afterwards.
        const auto r = runAndWait(request(8, "after", 2));
        QVERIFY(r);
        QCOMPARE(r->id, quint64(8));
    }

    void deepRunIsReusedAndExact() {
        const QString dir = MYTHOS_TEST_DATA_DIR "/tiny_gqa";
        open(dir);
        RunRequest r = request(1, {}, 8);
        r.ids = {13, 15, 44, 41, 40, 61, 34, 2, 9};
        auto a = runAndWait(r);
        QVERIFY(a);
        QCOMPARE(a->reused, false);
        QCOMPARE(a->loopsRun, 8);
        r.id = 2;
        r.loops = 4;
        auto b = runAndWait(r);
        QVERIFY(b);
        QCOMPARE(b->reused, true); // a smaller loop count is one coda pass away
        QCOMPARE(b->loopsRun, 0);
        r.id = 3;
        r.loops = 12;
        auto c = runAndWait(r);
        QVERIFY(c);
        QCOMPARE(c->loopsRun, 4); // only the missing loops run
        QCOMPARE(c->depth, 12);
        // The same numbers as a direct forward pass at each loop count.
        auto model = mythos::Model::open(dir.toStdString());
        for (const auto& res : {b, c}) {
            mythos::ForwardOptions fo;
            fo.nLoops = res->trace->nLoops;
            const auto logits = model->forward(r.ids, 1, int64_t(r.ids.size()), fo);
            QCOMPARE(res->trace->logits.size(), logits.size());
            for (std::size_t i = 0; i < logits.size(); ++i)
                QVERIFY(std::fabs(res->trace->logits[i] - logits[i]) <= 1e-5f * (1 + std::fabs(logits[i])));
        }
        // A new threshold is answered from the stored run too.
        r.id = 4;
        r.loops = 8;
        r.actThreshold = 0.5;
        auto d = runAndWait(r);
        QVERIFY(d);
        QCOMPARE(d->reused, true);
        QCOMPARE(d->trace->config.act_threshold, 0.5);
    }

    void failedOpenKeepsThePreviousModel() {
        open("preset:readme_gqa:2");
        QSignalSpy failed(relay.get(), &WorkerRelay::modelFailed);
        w->openModel("/nonexistent/model", 2);
        QVERIFY(waitForSignal(failed, 10000));
        QVERIFY(failed.first().at(1).toString().contains("/nonexistent/model"));
        const auto r = runAndWait(request(9, "still here", 2));
        QVERIFY(r);
        QCOMPARE(QString::fromStdString(mythos::attnTypeName(r->trace->config.attn_type)), QString("gqa"));
    }

    void runErrorsAreReported() {
        open(MYTHOS_TEST_DATA_DIR "/tiny_mla"); // vocabulary 64: no byte tokenizer
        QSignalSpy failed(relay.get(), &WorkerRelay::runFailed);
        w->submit(request(3, "text needs a tokenizer", 2));
        QVERIFY(waitForSignal(failed, 10000));
        QVERIFY(failed.first().at(1).toString().contains("tokenizer"));
    }

    void rescalePreviewChangesRhoAndRestores() {
        open(MYTHOS_TEST_DATA_DIR "/tiny_gqa");
        RunRequest r = request(1, {}, 4);
        r.ids = {1, 2, 3, 4, 5};
        auto before = runAndWait(r);
        QVERIFY(before);
        QSignalSpy changed(relay.get(), &WorkerRelay::rescaleChanged);
        QSignalSpy done(relay.get(), &WorkerRelay::runFinished);
        w->setRescalePreview(true, 0.5);
        QVERIFY(waitForSignal(changed, 10000));
        QCOMPARE(changed.first().at(0).toBool(), true);
        QVERIFY(std::fabs(changed.first().at(1).toDouble() - 0.5) < 1e-5);
        QTRY_VERIFY_WITH_TIMEOUT(done.count() >= 1, 10000); // the last request re-runs
        const auto preview = done.last().at(0).value<RunResultPtr>();
        QVERIFY(std::fabs(preview->trace->rhoA - 0.5) < 1e-5);
        w->setRescalePreview(false, 0.5);
        QTRY_VERIFY_WITH_TIMEOUT(done.count() >= 2, 10000);
        const auto after = done.last().at(0).value<RunResultPtr>();
        QCOMPARE(after->trace->rhoA, before->trace->rhoA);
        QCOMPARE(after->trace->logits, before->trace->logits);
    }
};

MX_QTEST_MAIN(TestWorker)
#include "test_worker.moc"
