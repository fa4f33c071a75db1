#pragma once
// The worker that owns the model on its own thread (DESIGN.md, "Threading"). The GUI
// submits requests; the latest wins, a running request is cancelled when a newer one
// arrives, and results travel back as immutable traces through queued signals.
#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include <QMutex>
#include <QObject>
#include <QString>
#include <QThread>

#include "mythos/config.h"
#include "mythos/evaluate.h"
#include "mythos/generate.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"
#include "traceview.h"

namespace mx {

struct RunRequest {
    quint64 id = 0;
    QString prompt;              // tokenized by the worker unless `ids` is set
    std::vector<int32_t> ids;    // used when non-empty
    int loops = 1;
    double actThreshold = 0;     // 0 = the model's
    // Generation: newTokens > 0 generates that many tokens after the prompt with a KV cache
    // at `loops` loops, streaming every step (generationStep) before runFinished.
    int newTokens = 0;
    mythos::SamplingOptions sampling;
    bool measureLatency = false; // also time a cached prefill and a few decode steps (comparison)
    // Report: one trace per loop count (ascending) from one deep run, in RunResult::series.
    std::vector<int> seriesLoops;
};

struct RunResult {
    quint64 id = 0;
    TracePtr trace;
    double ms = 0;          // wall time of the request in the worker
    bool reused = false;    // answered from the stored deep run (one coda pass)
    int loopsRun = 0;       // recurrent iterations this request had to run
    int depth = 0;          // depth of the stored deep run afterwards
    // Generation: the new tokens and their text (the trace covers prompt + new tokens).
    bool generation = false;
    std::vector<int32_t> generated;
    QString generatedText;
    // measureLatency: a cached prefill of the prompt and the mean decode step, in ms.
    double prefillMs = 0, decodeMsPerToken = 0;
    QList<TracePtr> series; // RunRequest::seriesLoops
};
using RunResultPtr = std::shared_ptr<const RunResult>;

// A depth sweep: accuracy and halting of a prompt set at several loop counts.
struct SweepResult {
    QString promptsFile;
    int64_t maxLoopIters = 0;
    int64_t prompts = 0;
    mythos::EvalResult eval;
    double ms = 0;
};
using SweepResultPtr = std::shared_ptr<const SweepResult>;

struct ModelInfo {
    QString spec;        // folder or preset:NAME[:seed]
    QString displayName; // folder name or preset
    mythos::Config config;
    int64_t parameters = 0;
    bool hasTokenizer = false;
    QString tokenizer;     // what kind, e.g. "byte-level BPE, 50,257 tokens + 1 added (tokenizer.json)"
    double rhoA = 0;       // NaN when A has non-finite entries
    QString weightWarning; // non-empty when weights hold NaN or infinite values
    // Non-empty when typed text is a guess (bytes, no tokenizer.json) or cannot be encoded
    // (tokenizer.json unreadable): one line naming the file.
    QString tokenizerWarning;
};
using ModelInfoPtr = std::shared_ptr<const ModelInfo>;

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

public slots:
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
    // Evaluates the prompt set (JSONL, see mythos::loadEvalPrompts) at each loop count.
    void depthSweep(quint64 id, const QString& promptsFile, const QList<int>& loops);

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

Q_DECLARE_METATYPE(mx::RunResultPtr)
Q_DECLARE_METATYPE(mx::ModelInfoPtr)
Q_DECLARE_METATYPE(mx::TracePtr)
Q_DECLARE_METATYPE(mx::SweepResultPtr)
