#pragma once
// The worker that owns the model on its own thread (docs/architecture.md, "Threads"). The GUI
// submits requests; the latest wins, a running request is cancelled when a newer one
// arrives, and results travel back as immutable traces through queued signals.
#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include <QMutex>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QThread>

#include "mythos/config.h"
#include "mythos/evaluate.h"
#include "mythos/generate.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"
#include "results.h"

namespace mx {

struct RunRequest {
    quint64 id = 0;
    QString prompt;           // tokenized by the worker unless `ids` is set
    std::vector<int32_t> ids; // used when non-empty
    int loops = 1;
    double actThreshold = 0; // 0 = the model's
    // Generation: newTokens > 0 generates that many tokens after the prompt with a KV cache
    // at `loops` loops, streaming every step (generationStep) before runFinished.
    int newTokens = 0;
    mythos::SamplingOptions sampling;
    bool measureLatency = false; // also time a cached prefill and a few decode steps (comparison)
    // Report: one trace per loop count (ascending) from one deep run, in RunResult::series.
    std::vector<int> seriesLoops;
    // Inside the loop (docs/inside-the-loop.md): parts added to the trace(s) of a prompt run
    // (not to generation), as the views on screen need them.
    bool lens = false;
    bool trajectory = false;
    bool attention = false;
    int attentionFrom = 0, attentionTo = 0; // the window of positions; to = 0: the first kAttentionWindow
};

// The most positions an attention window holds (the attention view's grid stays readable and
// a long prompt stays cheap: only the window is computed).
inline constexpr int kAttentionWindow = 64;

class InferenceWorker : public QObject {
    Q_OBJECT
public:
    InferenceWorker();
    ~InferenceWorker() override;

    // Thread-safe, from any thread: queue `r` (dropping any older pending request) and
    // cancel the running one.
    void submit(RunRequest r);
    // Thread-safe: cancels the running request or model load (not a slot, so it works
    // while the worker is busy).
    void cancel();
    // Thread-safe: cancels a running depth sweep (ordinary requests do not cancel a sweep;
    // they wait for it).
    void cancelSweep() { m_sweepCancel.store(true); }

    // Thread-safe, from any thread: each queues its work to the worker's thread (in order with
    // submit) and answers through the signals below.
    void openModel(const QString& spec, quint64 id);
    // The model of `spec` with some config fields and engine options changed (a JSON object:
    // config fields that keep every weight's shape, e.g. {"act_threshold": 0.9,
    // "rope_theta": 10000}, and the engine options "act_final_remainder" (bool) and
    // "kv_layout" ("reference"/"compact")). ModelInfo::spec names the variant.
    void openModelVariant(const QString& spec, const QString& overridesJson, quint64 id);
    // Rescales A to `target` in the loaded model (on) or restores the original (off), then
    // re-runs the last request.
    void setRescalePreview(bool on, double target);
    void saveRescaled(const QString& folder, double target);
    // Evaluates the prompt set (JSONL, see mythos::loadEvalPrompts) at each loop count, with
    // the exit rules (docs/inside-the-loop.md; empty: the defaults) and, when
    // `interventionJson` is not empty, with that intervention on the model for the sweep.
    void depthSweep(quint64 id, const QString& promptsFile, const QList<int>& loops, const QStringList& exitRules = {},
                    const QString& interventionJson = {});

signals:
    void modelProgress(quint64 id, int done, int total);
    void modelOpened(quint64 id, mx::ModelInfoPtr info);
    void modelFailed(quint64 id, const QString& error);
    void runStarted(quint64 id);
    void runFinished(mx::RunResultPtr result);
    void runFailed(quint64 id, const QString& error);
    void runCancelled(quint64 id);
    // One generated token: the sequence so far as a trace (prompt + every token fed so far),
    // step = tokens generated so far, of total.
    void generationStep(quint64 id, int step, int total, mx::TracePtr trace, const QString& text);
    void rescaleChanged(bool on, double rho);
    void saveFinished(const QString& folder, const QString& error); // error empty on success
    void sweepProgress(quint64 id, int done, int total);
    void sweepFinished(quint64 id, mx::SweepResultPtr result);
    void sweepFailed(quint64 id, const QString& error); // "cancelled" when cancelled

private slots:
    void processPending();

private:
    // On the worker's thread: what the entry points of the same meaning queue.
    void loadModel(const QString& spec, quint64 id);
    void loadModelVariant(const QString& spec, const QString& overridesJson, quint64 id);
    void applyRescalePreview(bool on, double target);
    void writeRescaled(const QString& folder, double target);
    void runDepthSweep(quint64 id, const QString& promptsFile, const QList<int>& loops, const QStringList& exitRules,
                       const QString& interventionJson);
    // Adds the inside-the-loop parts `r` asks for to a trace at k loops of the stored deep run.
    void addInsideParts(const RunRequest& r, int k, mythos::Trace& trace);
    void run(const RunRequest& r);
    void adopt(std::unique_ptr<mythos::Model> model, const QString& spec, const QString& displayName,
               const QString& tokenizerSource, quint64 id);
    void runGeneration(const RunRequest& r, const std::vector<int32_t>& ids);
    void measureLatency(const std::vector<int32_t>& ids, int loops, RunResult& res);
    void invalidateDeepRun();

    std::unique_ptr<mythos::Model> m_model;
    std::optional<mythos::Tokenizer> m_tokenizer;
    QString m_tokenizerWarning; // a tokenizer.json that cannot be read, or text as bytes
    QString m_spec;
    std::optional<mythos::DeepRun> m_deep;
    std::vector<float> m_originalLogA;
    bool m_previewOn = false;
    std::optional<RunRequest> m_last;

    QMutex m_mutex;
    std::optional<RunRequest> m_pending;
    std::atomic<bool> m_cancel{false};
    std::atomic<bool> m_loadCancel{false}; // model loads: set by cancel() only, not by submit()
    std::atomic<bool> m_sweepCancel{false};
};

// Owns the worker's thread: `quit(); wait();` on destruction.
class WorkerThread : public QObject {
    Q_OBJECT
public:
    explicit WorkerThread(QObject* parent = nullptr);
    ~WorkerThread() override;
    InferenceWorker* worker() const { return m_worker; }

private:
    QThread m_thread;
    InferenceWorker* m_worker;
};

void registerMetaTypes();

} // namespace mx
