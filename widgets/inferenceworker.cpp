#include "inferenceworker.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <QFileInfo>
#include <QMetaObject>

#include "mythos/analysis.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/intervention.h"
#include "mythos/lens.h"
#include "mythos/modelspec.h"
#include "mythos/stability.h"
#include "mythos/variant.h"

namespace mx {

namespace {
using Clock = std::chrono::steady_clock;
QString qstr(const std::string& s) { return QString::fromStdString(s); }
// An engine error as the window shows it, the same text the CLI prints.
QString errorText(const std::exception& e) { return qstr(mythos::errorMessage(e)); }
} // namespace

void registerMetaTypes() {
    qRegisterMetaType<RunResultPtr>("mx::RunResultPtr");
    qRegisterMetaType<ModelInfoPtr>("mx::ModelInfoPtr");
    qRegisterMetaType<TracePtr>("mx::TracePtr");
    qRegisterMetaType<SweepResultPtr>("mx::SweepResultPtr");
    qRegisterMetaType<QList<int>>("QList<int>");
}

InferenceWorker::InferenceWorker() { registerMetaTypes(); }
InferenceWorker::~InferenceWorker() = default;

void InferenceWorker::submit(RunRequest r) {
    {
        // Under the lock, so that processPending cannot take this request and then see a
        // cancel meant for the one before it.
        QMutexLocker lock(&m_mutex);
        m_pending = std::move(r);
        m_cancel.store(true); // latest wins: stop whatever is running
    }
    QMetaObject::invokeMethod(this, &InferenceWorker::processPending, Qt::QueuedConnection);
}

void InferenceWorker::cancel() {
    QMutexLocker lock(&m_mutex);
    m_pending.reset();
    m_cancel.store(true);
    m_loadCancel.store(true);
}

// The entry points below run on the caller's thread and queue the work to the worker's
// thread, in order with submit(); the captured arguments are copies.
void InferenceWorker::openModel(const QString& spec, quint64 id) {
    QMetaObject::invokeMethod(
        this, [this, spec, id] { loadModel(spec, id); }, Qt::QueuedConnection);
}

void InferenceWorker::openModelVariant(const QString& spec, const QString& overridesJson, quint64 id) {
    QMetaObject::invokeMethod(
        this, [this, spec, overridesJson, id] { loadModelVariant(spec, overridesJson, id); }, Qt::QueuedConnection);
}

void InferenceWorker::setRescalePreview(bool on, double target) {
    QMetaObject::invokeMethod(
        this, [this, on, target] { applyRescalePreview(on, target); }, Qt::QueuedConnection);
}

void InferenceWorker::saveRescaled(const QString& folder, double target) {
    QMetaObject::invokeMethod(
        this, [this, folder, target] { writeRescaled(folder, target); }, Qt::QueuedConnection);
}

void InferenceWorker::depthSweep(quint64 id, const QString& promptsFile, const QList<int>& loops,
                                 const QStringList& exitRules, const QString& interventionJson) {
    QMetaObject::invokeMethod(
        this,
        [this, id, promptsFile, loops, exitRules, interventionJson] {
            runDepthSweep(id, promptsFile, loops, exitRules, interventionJson);
        },
        Qt::QueuedConnection);
}

void InferenceWorker::processPending() {
    std::optional<RunRequest> r;
    {
        QMutexLocker lock(&m_mutex);
        r.swap(m_pending);
        m_cancel.store(false); // only requests submitted after this point cancel this run
    }
    if (r)
        run(*r);
}

void InferenceWorker::invalidateDeepRun() { m_deep.reset(); }

void InferenceWorker::loadModel(const QString& spec, quint64 id) {
    // A run submitted meanwhile (the user typing while a large model loads) must not cancel
    // the load: only cancel() does.
    m_loadCancel.store(false);
    try {
        auto progress = [this, id](int64_t done, int64_t total) {
            emit modelProgress(id, int(done), int(total));
            return !m_loadCancel.load();
        };
        const mythos::ModelSpec parsed = mythos::parseModelSpec(spec.toStdString());
        auto model = mythos::open(parsed, {}, nullptr, progress);
        adopt(std::move(model), spec, qstr(parsed.displayName()), spec, id);
    } catch (const mythos::Cancelled&) {
        emit modelFailed(id, tr("Loading %1 was cancelled.").arg(spec));
    } catch (const std::exception& e) {
        emit modelFailed(id, errorText(e));
    }
}

void InferenceWorker::loadModelVariant(const QString& spec, const QString& overridesJson, quint64 id) {
    // A run submitted meanwhile (the user typing while a large model loads) must not cancel
    // the load: only cancel() does.
    m_loadCancel.store(false);
    try {
        const nlohmann::json over = mythos::parseVariant(overridesJson.toStdString()); // before the slow open
        auto progress = [this, id](int64_t done, int64_t total) {
            emit modelProgress(id, int(done), int(total));
            return !m_loadCancel.load();
        };
        const mythos::ModelSpec parsed = mythos::parseModelSpec(spec.toStdString());
        auto base = mythos::open(parsed, {}, nullptr, progress);
        const mythos::Variant variant = mythos::applyVariant(base->config(), base->options(), over);
        const mythos::Config& c = variant.config;
        const mythos::EngineOptions& opts = variant.options;
        QStringList changes;
        for (const auto& ch : variant.changes)
            changes << QString::fromStdString(ch);
        // The constructor checks that every weight still has the shape the config needs.
        auto model = std::make_unique<mythos::Model>(c, base->weights(), opts);
        if (variant.intervention) {
            mythos::Intervention iv = *variant.intervention;
            if (iv.patch && !iv.patch->prompt.empty()) {
                mythos::TokenizerChoice tok = mythos::chooseTokenizer(parsed.tokenizerFolder(), c.vocab_size);
                if (!tok.tokenizer)
                    throw mythos::ArgumentError("intervention: the patch's prompt needs the model's tokenizer (" +
                                                tok.warning + ")");
                mythos::resolvePatchPrompt(iv, *tok.tokenizer);
            }
            model->setIntervention(std::move(iv));
        }
        const QString name = qstr(parsed.displayName()) + " [" + changes.join(", ") + "]";
        model->setName(name.toStdString());
        adopt(std::move(model), name, name, spec, id);
    } catch (const mythos::Cancelled&) {
        emit modelFailed(id, tr("Loading %1 was cancelled.").arg(spec));
    } catch (const std::exception& e) {
        emit modelFailed(id, errorText(e));
    }
}

void InferenceWorker::adopt(std::unique_ptr<mythos::Model> model, const QString& spec, const QString& displayName,
                            const QString& tokenizerSource, quint64 id) {
    // A tokenizer.json that cannot be read does not stop the model from opening; it is said
    // (ModelInfo::tokenizerWarning) and typed prompts fail with that reason.
    mythos::TokenizerChoice tok = mythos::chooseTokenizer(
        mythos::parseModelSpec(tokenizerSource.toStdString()).tokenizerFolder(), model->config().vocab_size);
    // Only now does the new model replace the old one: a failure above keeps it.
    m_model = std::move(model);
    m_tokenizer = std::move(tok.tokenizer);
    m_tokenizerWarning = qstr(tok.warning);
    m_spec = tokenizerSource;
    m_previewOn = false;
    m_originalLogA = m_model->weights().at("recurrent.injection.log_A").data;
    m_last.reset();
    invalidateDeepRun();
    auto info = std::make_shared<ModelInfo>();
    info->spec = spec;
    info->displayName = displayName;
    info->config = m_model->config();
    info->parameters = mythos::countParameters(m_model->config()).total;
    info->hasTokenizer = m_tokenizer.has_value();
    info->tokenizer = m_tokenizer ? qstr(m_tokenizer->description()) : QString();
    info->tokenizerWarning = m_tokenizerWarning;
    info->rhoA = mythos::spectralRadiusDiagonal(m_model->injectionA());
    info->weightWarning = qstr(mythos::nonFiniteWarning(m_model->nonFiniteWeights()));
    emit modelOpened(id, info);
}

void InferenceWorker::run(const RunRequest& r) {
    if (!m_model) {
        emit runFailed(r.id, tr("No model is open."));
        return;
    }
    emit runStarted(r.id);
    const auto t0 = Clock::now();
    try {
        std::vector<int32_t> ids = r.ids;
        if (ids.empty()) {
            if (!m_tokenizer)
                throw mythos::ArgumentError(m_tokenizerWarning.isEmpty()
                                                ? "this model has no tokenizer.json and a vocabulary under 256 tokens"
                                                : m_tokenizerWarning.toStdString());
            ids = m_tokenizer->encode(r.prompt.toStdString());
        }
        if (ids.empty())
            throw mythos::ArgumentError("the prompt is empty");
        const auto& cfg = m_model->config();
        if (int64_t(ids.size()) > cfg.max_seq_len)
            throw mythos::ArgumentError("the prompt has " + std::to_string(ids.size()) +
                                        " tokens, more than max_seq_len = " + std::to_string(cfg.max_seq_len));
        if (r.newTokens > 0)
            return runGeneration(r, ids);
        const int64_t T = int64_t(ids.size());
        int loopsRun = 0;
        bool reused = true;
        int depth = r.loops;
        for (int k : r.seriesLoops)
            depth = std::max(depth, k);
        if (!m_deep || m_deep->ids != ids) {
            m_deep.reset();
            m_deep = m_model->deepRun(ids, 1, T, depth, &m_cancel);
            loopsRun = depth;
            reused = false;
        } else if (m_deep->depth < depth) {
            loopsRun = int(depth - m_deep->depth);
            m_model->extendDeepRun(*m_deep, depth, &m_cancel);
            reused = false;
        }
        auto traceAt = [&](int k) {
            auto trace = std::make_shared<mythos::Trace>();
            // The head over every position while the logits are small (the bundled models);
            // with a large vocabulary only the last position, which is what generation and
            // a saved trace's prediction need: a loop-count change stays one coda pass.
            const auto rows = mythos::fullLogitsByDefault(1, T, m_model->config().vocab_size) ? mythos::HeadRows::All
                                                                                              : mythos::HeadRows::Last;
            m_model->logitsAt(*m_deep, k, trace.get(), r.actThreshold, rows);
            addInsideParts(r, k, *trace);
            if (m_tokenizer)
                for (int32_t id : ids)
                    trace->pieces.push_back(m_tokenizer->piece(id));
            return trace;
        };
        auto res = std::make_shared<RunResult>();
        for (int k : r.seriesLoops)
            if (k >= 1 && k <= m_deep->depth)
                res->series << traceAt(k);
        auto trace = traceAt(r.loops);
        res->id = r.id;
        res->trace = std::move(trace);
        res->ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        res->reused = reused;
        res->loopsRun = loopsRun;
        res->depth = int(m_deep->depth);
        if (r.measureLatency)
            measureLatency(ids, r.loops, *res);
        m_last = r;
        emit runFinished(res);
    } catch (const mythos::Cancelled&) {
        emit runCancelled(r.id);
    } catch (const std::exception& e) {
        emit runFailed(r.id, errorText(e));
    }
}

void InferenceWorker::addInsideParts(const RunRequest& r, int k, mythos::Trace& trace) {
    if (r.lens) {
        trace.lens = m_model->lens(*m_deep, k, false, &m_cancel);
        if (m_tokenizer)
            mythos::setLensPieces(trace.lens, [this](int32_t id) { return m_tokenizer->piece(id); });
    }
    if (r.trajectory)
        trace.trajectory = mythos::trajectoryOf(*m_deep, k);
    if (r.attention) {
        const int T = int(m_deep->seqLen);
        int from = std::clamp(r.attentionFrom, 0, T - 1);
        int to = r.attentionTo > 0 ? std::clamp(r.attentionTo, from + 1, T) : std::min(T, from + kAttentionWindow);
        to = std::min(to, from + kAttentionWindow);
        trace.attention.batchRow = 0;
        trace.attention.from = from;
        trace.attention.to = to;
        trace.attention.sites = m_model->attention(*m_deep, k, 0, {}, from, to);
    }
}

void InferenceWorker::runGeneration(const RunRequest& r, const std::vector<int32_t>& ids) {
    const auto t0 = Clock::now();
    const auto& cfg = m_model->config();
    const int64_t P = int64_t(ids.size());
    if (P + r.newTokens > cfg.max_seq_len)
        throw mythos::ArgumentError("the prompt (" + std::to_string(P) + " tokens) and " + std::to_string(r.newTokens) +
                                    " new tokens exceed max_seq_len = " + std::to_string(cfg.max_seq_len));
    mythos::GenerateOptions go;
    go.nLoops = r.loops;
    go.maxNewTokens = r.newTokens;
    go.sampling = r.sampling;
    go.keepStepLogits = false;
    go.cancel = &m_cancel;
    go.traceSteps = true;
    go.feedLast = true; // the views show every generated token, not all but the last
    mythos::Trace seq;
    std::vector<int32_t> generated;
    auto pieceOf = [this](int32_t id) { return m_tokenizer ? m_tokenizer->piece(id) : std::string(); };
    go.onToken = [&](int64_t step, const std::vector<int32_t>& tokens, const mythos::Trace* tr) {
        if (step == 0)
            seq = *tr;
        else
            mythos::appendTraceTokens(seq, *tr);
        // Pieces of the tokens this trace covers (the step's trace has none).
        seq.pieces.clear();
        if (m_tokenizer)
            for (int32_t id : seq.ids)
                seq.pieces.push_back(pieceOf(id));
        if (!tokens.empty())
            generated.push_back(tokens.front());
        const QString text = m_tokenizer ? qstr(m_tokenizer->decode(generated)) : QString();
        emit generationStep(r.id, int(generated.size()), r.newTokens, std::make_shared<mythos::Trace>(seq), text);
        return !m_cancel.load();
    };
    mythos::generate(*m_model, ids, 1, P, go);
    if (m_cancel.load())
        throw mythos::Cancelled();
    seq.options["generation"] = {{"new_tokens", r.newTokens},
                                 {"greedy", r.sampling.greedy},
                                 {"temperature", r.sampling.temperature},
                                 {"top_k", r.sampling.topK},
                                 {"seed", r.sampling.seed}};
    auto res = std::make_shared<RunResult>();
    res->id = r.id;
    res->generation = true;
    res->generated = generated;
    res->generatedText = m_tokenizer ? qstr(m_tokenizer->decode(generated)) : QString();
    res->trace = std::make_shared<mythos::Trace>(std::move(seq));
    res->ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    res->loopsRun = r.loops;
    // The deep run (if any) is of another sequence now; the next run over prompt + new
    // tokens re-runs the prefill.
    emit runFinished(res);
}

void InferenceWorker::measureLatency(const std::vector<int32_t>& ids, int loops, RunResult& res) {
    // A cached prefill of the prompt at `loops` loops, then a few greedy decode steps: what a
    // user of the model pays per prompt and per token (not the deep run the views use).
    constexpr int kSteps = 4;
    const auto& cfg = m_model->config();
    const int64_t P = int64_t(ids.size());
    const int steps = int(std::min<int64_t>(kSteps, cfg.max_seq_len - P));
    auto cache = m_model->newCache(1);
    mythos::ForwardOptions fo;
    fo.nLoops = loops;
    fo.cache = &cache;
    fo.cancel = &m_cancel;
    fo.headRows = mythos::HeadRows::Last; // the next token is all a prompt's run needs
    auto t0 = Clock::now();
    auto logits = m_model->forward(ids, 1, P, fo);
    res.prefillMs = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (steps <= 0)
        return;
    int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    t0 = Clock::now();
    for (int s = 0; s < steps; ++s) {
        fo.startPos = P + s;
        logits = m_model->forward({next}, 1, 1, fo);
        next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    res.decodeMsPerToken = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / steps;
}

void InferenceWorker::applyRescalePreview(bool on, double target) {
    if (!m_model)
        return;
    try {
        mythos::Tensor t{{int64_t(m_originalLogA.size())}, m_originalLogA};
        if (on) {
            mythos::Weights w;
            w.emplace("recurrent.injection.log_A", t);
            w.emplace("recurrent.injection.log_dt", m_model->weights().at("recurrent.injection.log_dt"));
            mythos::rescaleInjection(w, target);
            t = w.at("recurrent.injection.log_A");
        }
        m_model->setWeight("recurrent.injection.log_A", t);
        m_previewOn = on;
        invalidateDeepRun();
        emit rescaleChanged(on, mythos::spectralRadiusDiagonal(m_model->injectionA()));
        if (m_last) {
            QMutexLocker lock(&m_mutex);
            if (!m_pending)
                m_pending = m_last;
        }
        processPending();
    } catch (const std::exception& e) {
        emit runFailed(0, errorText(e));
    }
}

void InferenceWorker::writeRescaled(const QString& folder, double target) {
    if (!m_model) {
        emit saveFinished(folder, tr("No model is open."));
        return;
    }
    try {
        mythos::Weights w = m_model->weights(); // a copy: the live model keeps its state
        w.at("recurrent.injection.log_A").data = m_originalLogA;
        const double rho = mythos::rescaleInjection(w, target);
        const std::filesystem::path out = folder.toStdString();
        mythos::saveCheckpoint(out, m_model->config(), w,
                               {{"source", m_spec.toStdString()}, {"rescaled_rho_A", std::to_string(rho)}});
        if (!mythos::isPresetSpec(m_spec.toStdString())) {
            const auto tok = std::filesystem::path(m_spec.toStdString()) / "tokenizer.json";
            if (std::filesystem::exists(tok))
                mythos::writeFileAtomic(out / "tokenizer.json", mythos::readTextFile(tok));
        }
        emit saveFinished(folder, {});
    } catch (const std::exception& e) {
        emit saveFinished(folder, errorText(e));
    }
}

void InferenceWorker::runDepthSweep(quint64 id, const QString& promptsFile, const QList<int>& loops,
                                    const QStringList& exitRules, const QString& interventionJson) {
    m_sweepCancel.store(false);
    if (!m_model) {
        emit sweepFailed(id, tr("No model is open."));
        return;
    }
    // The sweep's intervention is the model's only while it runs; the model's own comes back
    // afterwards, whatever happens.
    std::optional<mythos::Intervention> previous;
    if (m_model->intervention())
        previous = *m_model->intervention();
    struct Restore {
        InferenceWorker* w;
        std::optional<mythos::Intervention>* previous;
        bool active = false;
        ~Restore() {
            if (!active)
                return;
            w->m_model->setIntervention(*previous ? **previous : mythos::Intervention{});
            w->invalidateDeepRun();
        }
    } restore{this, &previous};
    try {
        std::vector<mythos::ExitRule> rules;
        for (const QString& text : exitRules)
            rules.push_back(mythos::parseExitRule(text.trimmed().toStdString()));
        if (rules.empty())
            rules = mythos::defaultExitRules();
        else if (rules.front().kind != mythos::ExitRule::Kind::Act)
            rules.insert(rules.begin(), mythos::ExitRule{});
        QString interventionText;
        if (!interventionJson.trimmed().isEmpty()) {
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(interventionJson.toStdString());
            } catch (const nlohmann::json::exception& e) {
                throw mythos::ArgumentError("intervention: not valid JSON: " + mythos::jsonErrorDetail(e));
            }
            mythos::Intervention iv = mythos::interventionFromJson(j);
            if (m_tokenizer)
                mythos::resolvePatchPrompt(iv, *m_tokenizer);
            interventionText = qstr(iv.describe());
            restore.active = true;
            invalidateDeepRun();
            m_model->setIntervention(std::move(iv));
        }
        if (!m_tokenizer)
            throw mythos::ArgumentError("this model has no tokenizer.json: a prompt set needs text prompts");
        const auto t0 = Clock::now();
        const auto prompts =
            mythos::loadEvalPrompts(promptsFile.toStdString(), *m_tokenizer, m_model->config().max_seq_len);
        std::vector<int64_t> ks(loops.begin(), loops.end());
        auto res = std::make_shared<SweepResult>();
        res->promptsFile = promptsFile;
        res->maxLoopIters = m_model->config().max_loop_iters;
        res->prompts = int64_t(prompts.size());
        res->intervention = interventionText;
        res->eval = mythos::evaluate(
            *m_model, prompts, ks,
            [&](int64_t done, int64_t total) {
                emit sweepProgress(id, int(done), int(total));
                return !m_sweepCancel.load();
            },
            &m_sweepCancel, rules);
        res->ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        emit sweepFinished(id, res);
    } catch (const mythos::Cancelled&) {
        emit sweepFailed(id, QStringLiteral("cancelled"));
    } catch (const std::exception& e) {
        emit sweepFailed(id, errorText(e));
    }
}

WorkerThread::WorkerThread(QObject* parent) : QObject(parent), m_worker(new InferenceWorker) {
    m_thread.setObjectName("mythos-worker");
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    m_thread.start();
}

WorkerThread::~WorkerThread() {
    m_worker->cancel();
    m_thread.quit();
    m_thread.wait();
}

} // namespace mx
