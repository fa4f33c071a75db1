#pragma once
// What the inference worker hands to the GUI: immutable results shared by pointer through
// queued signals (docs/architecture.md, "Threads").
#include <cstdint>
#include <memory>
#include <vector>

#include <QList>
#include <QMetaType>
#include <QString>

#include "mythos/config.h"
#include "mythos/evaluate.h"
#include "mythos/trace.h"

namespace mx {

using TracePtr = std::shared_ptr<const mythos::Trace>;

struct RunResult {
    quint64 id = 0;
    TracePtr trace;
    double ms = 0;       // wall time of the request in the worker
    bool reused = false; // answered from the stored deep run (one coda pass)
    int loopsRun = 0;    // recurrent iterations this request had to run
    int depth = 0;       // depth of the stored deep run afterwards
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
    QString intervention; // what the sweep's intervention did, empty for none
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

} // namespace mx

Q_DECLARE_METATYPE(mx::RunResultPtr)
Q_DECLARE_METATYPE(mx::ModelInfoPtr)
Q_DECLARE_METATYPE(mx::TracePtr)
Q_DECLARE_METATYPE(mx::SweepResultPtr)
