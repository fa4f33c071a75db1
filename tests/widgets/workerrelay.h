#pragma once
// The worker emits from its own thread and QSignalSpy records on the emitting thread (it is
// not thread-safe): spies listen to this relay instead, which re-emits each of the worker's
// signals on the test thread through queued connections.
#include <QObject>
#include <QString>

#include "inferenceworker.h"

class WorkerRelay : public QObject {
    Q_OBJECT
public:
    explicit WorkerRelay(mx::InferenceWorker* w) {
        using W = mx::InferenceWorker;
        const auto q = Qt::QueuedConnection;
        connect(w, &W::modelOpened, this, &WorkerRelay::modelOpened, q);
        connect(w, &W::modelFailed, this, &WorkerRelay::modelFailed, q);
        connect(w, &W::runStarted, this, &WorkerRelay::runStarted, q);
        connect(w, &W::runFinished, this, &WorkerRelay::runFinished, q);
        connect(w, &W::runFailed, this, &WorkerRelay::runFailed, q);
        connect(w, &W::runCancelled, this, &WorkerRelay::runCancelled, q);
        connect(w, &W::rescaleChanged, this, &WorkerRelay::rescaleChanged, q);
        connect(w, &W::sweepProgress, this, &WorkerRelay::sweepProgress, q);
        connect(w, &W::sweepFinished, this, &WorkerRelay::sweepFinished, q);
        connect(w, &W::sweepFailed, this, &WorkerRelay::sweepFailed, q);
    }
signals:
    void modelOpened(quint64 id, mx::ModelInfoPtr info);
    void modelFailed(quint64 id, const QString& error);
    void runStarted(quint64 id);
    void runFinished(mx::RunResultPtr result);
    void runFailed(quint64 id, const QString& error);
    void runCancelled(quint64 id);
    void rescaleChanged(bool on, double rho);
    void sweepProgress(quint64 id, int done, int total);
    void sweepFinished(quint64 id, mx::SweepResultPtr result);
    void sweepFailed(quint64 id, const QString& error);
};
