#include "mainwindow.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QDir>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressDialog>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolBar>
#include <QVBoxLayout>

#include "chartexporter.h"
#include "comparisoncontroller.h"
#include "comparisonview.h"
#include "depthsweepview.h"
#include "generationcontroller.h"
#include "mythos/config.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/modelspec.h"
#include "mythos/trace.h"
#include "reportcontroller.h"
#include "stabilityview.h"
#include "tokenstrip.h"
#include "viewregistry.h"

namespace mx {

namespace {
constexpr int kDebounceMs = 30;
constexpr int kMaxRecent = 8;
} // namespace

QString MainWindow::defaultModel() {
    // The bundled demo model when it is installed under the executable's prefix, or in the
    // source tree for an executable inside its build folder (never for an installed one);
    // otherwise a small random-weight preset with a byte tokenizer.
    QStringList dirs = {QCoreApplication::applicationDirPath() + "/../share/mythos-explorer/models/demo_mla"};
    if (const auto src = mythos::buildSourceTree(); !src.empty())
        dirs << QString::fromStdString((src / "resources/models/demo_mla").string());
    for (const QString& dir : dirs)
        if (QFileInfo::exists(dir + "/config.json"))
            return QDir::cleanPath(dir);
    return QStringLiteral("preset:readme_mla:1");
}

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent), m_thread(new WorkerThread(this)) {
    setWindowTitle(tr("Mythos Explorer"));
    setAcceptDrops(true);
    m_generation = new GenerationController(*this);
    m_report = new ReportController(*this);
    buildUi();
    buildMenus();

    m_debounce.setSingleShot(true);
    m_debounce.setInterval(kDebounceMs);
    connect(&m_debounce, &QTimer::timeout, this, &MainWindow::runNow);
    m_progressDelay.setSingleShot(true);
    m_progressDelay.setInterval(300);
    connect(&m_progressDelay, &QTimer::timeout, this, [this] {
        if (m_progress)
            m_progress->show();
    });

    auto* w = m_thread->worker();
    connect(w, &InferenceWorker::modelOpened, this, &MainWindow::onModelOpened);
    connect(w, &InferenceWorker::modelFailed, this, &MainWindow::onModelFailed);
    connect(w, &InferenceWorker::modelProgress, this, [this](quint64 id, int done, int total) {
        if (m_progress && m_requests.isCurrent(RequestTracker::Kind::Model, id)) {
            m_progress->setMaximum(total);
            m_progress->setValue(done);
        }
    });
    connect(w, &InferenceWorker::runFinished, this, &MainWindow::onRunFinished);
    connect(w, &InferenceWorker::runFailed, this, &MainWindow::onRunFailed);
    connect(w, &InferenceWorker::runCancelled, this, &MainWindow::onRunCancelled);
    connect(w, &InferenceWorker::generationStep, m_generation, &GenerationController::handleStep);
    connect(w, &InferenceWorker::sweepProgress, this, [this](quint64 id, int done, int total) {
        if (m_requests.isCurrent(RequestTracker::Kind::Sweep, id))
            m_sweep->setProgress(done, total);
    });
    connect(w, &InferenceWorker::sweepFinished, this, [this](quint64 id, SweepResultPtr r) {
        if (m_requests.isCurrent(RequestTracker::Kind::Sweep, id)) {
            m_sweep->setResult(r);
            emit sweepShown();
        }
    });
    connect(w, &InferenceWorker::sweepFailed, this, [this](quint64 id, const QString& error) {
        if (m_requests.isCurrent(RequestTracker::Kind::Sweep, id)) {
            m_sweep->setError(error);
            emit sweepFailed(error);
        }
    });
    connect(m_sweep, &DepthSweepView::runRequested, this, [this](const QString& file, const QList<int>& ks) {
        const quint64 id = m_requests.issue(RequestTracker::Kind::Sweep);
        m_sweep->setRunning(true);
        worker()->depthSweep(id, file, ks, m_sweep->exitRules(), m_sweep->interventionJson());
    });
    connect(m_sweep, &DepthSweepView::cancelRequested, this, [this] { worker()->cancelSweep(); });
    connect(w, &InferenceWorker::rescaleChanged, this, [this](bool on, double rho) {
        m_stability->setRescalePreviewActive(on);
        statusBar()->showMessage(on ? tr("Previewing A rescaled to rho = %1").arg(rho, 0, 'f', 4)
                                    : tr("A restored (rho = %1)").arg(rho, 0, 'f', 4),
                                 5000);
    });
    connect(w, &InferenceWorker::saveFinished, this, [this](const QString& folder, const QString& error) {
        if (!error.isEmpty())
            showError(tr("Could not save the rescaled model"), error);
        else
            statusBar()->showMessage(tr("Saved the rescaled model to %1").arg(folder), 8000);
    });
    updateLoopControls();
}

MainWindow::~MainWindow() = default;

InferenceWorker* MainWindow::worker() const { return m_thread->worker(); }

void MainWindow::buildUi() {
    auto* central = new QWidget(this);
    auto* lay = new QVBoxLayout(central);
    lay->setContentsMargins(6, 6, 6, 6);
    auto* split = new QSplitter(Qt::Vertical, central);

    auto* top = new QWidget(split);
    auto* topLay = new QVBoxLayout(top);
    topLay->setContentsMargins(0, 0, 0, 0);
    m_prompt = new QPlainTextEdit(top);
    m_prompt->setObjectName("prompt");
    m_prompt->setPlaceholderText(tr("Type a prompt; the views update as you type."));
    m_prompt->setTabChangesFocus(true);
    m_prompt->setMaximumHeight(56);
    m_prompt->setAccessibleName(tr("Prompt"));
    m_tokens = new TokenStrip(top);
    m_tokens->setObjectName("tokens");
    // Said under the prompt: typed text is a guess (bytes) or cannot be encoded.
    m_tokenizerNote = new QLabel(top);
    m_tokenizerNote->setObjectName("tokenizerNote");
    m_tokenizerNote->setWordWrap(true);
    m_tokenizerNote->setStyleSheet(QStringLiteral("color: rgb(170, 90, 0)"));
    m_tokenizerNote->hide();
    topLay->addWidget(m_prompt);
    topLay->addWidget(m_tokenizerNote);
    topLay->addWidget(m_tokens);
    topLay->addWidget(m_generation->buildBar(top));

    m_tabs = new QTabWidget(split);
    m_tabs->setObjectName("views");
    m_views = createViews(ViewSet::Window, m_tabs);
    m_stability = findView<StabilityView>(m_views);
    m_sweep = findView<DepthSweepView>(m_views);
    m_compare = findView<ComparisonView>(m_views);
    m_comparison = new ComparisonController(*this, m_compare);
    for (auto* v : m_views) {
        m_tabs->addTab(v, v->viewTitle());
        connect(v, &TraceView::tokenSelected, this, &MainWindow::setSelectedToken);
    }
    connect(m_tabs, &QTabWidget::currentChanged, this, [this](int i) {
        syncView(qobject_cast<TraceView*>(m_tabs->widget(i)));
        refreshForView();
        if (m_tabs->widget(i) == m_compare && m_comparison->comparing())
            runNow(); // measures both models' latency while the Compare view is open
    });
    split->addWidget(top);
    split->addWidget(m_tabs);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    lay->addWidget(split);
    setCentralWidget(central);

    connect(m_prompt, &QPlainTextEdit::textChanged, this, &MainWindow::scheduleRun);
    connect(m_tokens, &TokenStrip::tokenSelected, this, &MainWindow::setSelectedToken);
    connect(m_stability, &StabilityView::rescalePreviewChanged, this, [this](bool on, double target) {
        m_changeClock.start();
        worker()->setRescalePreview(on, target);
    });
    connect(m_stability, &StabilityView::saveRescaledRequested, this, [this](double target) {
        const QString dir = QFileDialog::getSaveFileName(this, tr("Save the rescaled model as a folder"),
                                                         QSettings().value("paths/lastModelFolder").toString() +
                                                             QStringLiteral("_rho%1").arg(target, 0, 'f', 2));
        if (dir.isEmpty())
            return;
        worker()->saveRescaled(dir, target);
    });

    // Toolbar: loop count, ACT threshold, live mode.
    auto* tb = addToolBar(tr("Run"));
    tb->setObjectName("runToolbar");
    tb->setMovable(false);
    tb->addWidget(new QLabel(tr(" Loops "), tb));
    m_loopSlider = new QSlider(Qt::Horizontal, tb);
    m_loopSlider->setObjectName("loopSlider");
    m_loopSlider->setMinimumWidth(220);
    m_loopSlider->setRange(1, 16);
    m_loopSlider->setPageStep(4);
    m_loopSlider->setToolTip(tr("Loop count (arrow keys, [ and ])"));
    m_loopSlider->setAccessibleName(tr("Loop count"));
    tb->addWidget(m_loopSlider);
    m_loopSpin = new QSpinBox(tb);
    m_loopSpin->setObjectName("loopSpin");
    m_loopSpin->setRange(1, 16);
    tb->addWidget(m_loopSpin);
    m_extrapolation = new QLabel(tb);
    m_extrapolation->setObjectName("extrapolation");
    m_extrapolation->setMinimumWidth(150);
    tb->addWidget(m_extrapolation);
    tb->addSeparator();
    tb->addWidget(new QLabel(tr(" ACT threshold "), tb));
    m_threshold = new QDoubleSpinBox(tb);
    m_threshold->setObjectName("actThreshold");
    m_threshold->setDecimals(3);
    m_threshold->setRange(0.01, 1.0);
    m_threshold->setSingleStep(0.01);
    m_threshold->setValue(0.99);
    m_threshold->setToolTip(tr("Cumulative halting probability at which a token stops (changes need no new loop run)"));
    tb->addWidget(m_threshold);
    tb->addSeparator();
    m_live = new QCheckBox(tr("Live"), tb);
    m_live->setObjectName("live");
    m_live->setChecked(true);
    m_live->setToolTip(tr("Recompute on every change"));
    tb->addWidget(m_live);

    connect(m_loopSlider, &QSlider::valueChanged, this, [this](int v) {
        if (m_loopSpin->value() != v)
            m_loopSpin->setValue(v);
        updateLoopControls();
        scheduleRun();
    });
    connect(m_loopSpin, qOverload<int>(&QSpinBox::valueChanged), this, [this](int v) {
        if (m_loopSlider->value() != v)
            m_loopSlider->setValue(v);
    });
    connect(m_threshold, qOverload<double>(&QDoubleSpinBox::valueChanged), this, &MainWindow::scheduleRun);

    m_modelLabel = new QLabel(tr("no model"), this);
    m_modelLabel->setObjectName("modelLabel");
    m_statusRun = new QLabel(this);
    m_statusRun->setObjectName("runStatus");
    statusBar()->addWidget(m_statusRun, 1);
    m_weightWarning = new QLabel(this);
    m_weightWarning->setObjectName("weightWarning");
    m_weightWarning->setStyleSheet(QStringLiteral("color: rgb(140, 0, 140); font-weight: 600"));
    m_weightWarning->hide();
    statusBar()->addPermanentWidget(m_weightWarning);
    statusBar()->addPermanentWidget(m_modelLabel);
}

void MainWindow::buildMenus() {
    auto* file = menuBar()->addMenu(tr("&File"));
    auto* openFolder = file->addAction(tr("&Open Model Folder..."), this, &MainWindow::openModelDialog);
    openFolder->setShortcut(QKeySequence::Open);
    auto* openPreset = file->addAction(tr("Open &Preset (random weights)..."), this, &MainWindow::openPresetDialog);
    openPreset->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    m_recentMenu = file->addMenu(tr("Open &Recent"));
    updateRecentMenu();
    file->addAction(tr("&Import PyTorch Checkpoint..."), this, &MainWindow::importCheckpointDialog);
    file->addSeparator();
    auto* openTr = file->addAction(tr("Open &Trace..."), this, &MainWindow::openTraceDialog);
    openTr->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_T));
    auto* saveTr = file->addAction(tr("&Save Trace..."), this, &MainWindow::saveTraceDialog);
    saveTr->setShortcut(QKeySequence::Save);
    auto* exp = file->addAction(tr("&Export Chart..."), this, &MainWindow::exportDialog);
    exp->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    auto* rep = file->addAction(tr("Export &Report..."), m_report, &ReportController::exportDialog);
    rep->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E));
    file->addSeparator();
    auto* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    auto* runMenu = menuBar()->addMenu(tr("&Run"));
    auto* runAct = runMenu->addAction(tr("&Run Now"), this, &MainWindow::runNow);
    runAct->setShortcuts({QKeySequence(Qt::CTRL | Qt::Key_Return), QKeySequence(Qt::Key_F5)});
    auto* gen = runMenu->addAction(tr("&Generate"), m_generation, &GenerationController::generateFromBar);
    gen->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_G));
    m_cancelAction = runMenu->addAction(tr("&Cancel"), this, &MainWindow::cancelRun);
    m_cancelAction->setShortcut(QKeySequence(Qt::Key_Escape));
    runMenu->addSeparator();
    auto* more = runMenu->addAction(tr("More Loops"), this, [this] { setLoops(loops() + 1); });
    more->setShortcuts({QKeySequence(Qt::Key_BracketRight), QKeySequence(Qt::CTRL | Qt::Key_Up)});
    auto* fewer = runMenu->addAction(tr("Fewer Loops"), this, [this] { setLoops(loops() - 1); });
    fewer->setShortcuts({QKeySequence(Qt::Key_BracketLeft), QKeySequence(Qt::CTRL | Qt::Key_Down)});
    auto* raise = runMenu->addAction(tr("Raise Loop Limit..."), this, &MainWindow::raiseLoopLimit);
    raise->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_L));
    auto* live = runMenu->addAction(tr("&Live Mode"));
    live->setCheckable(true);
    live->setChecked(true);
    live->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_L));
    connect(live, &QAction::toggled, m_live, &QCheckBox::setChecked);
    connect(m_live, &QCheckBox::toggled, live, &QAction::setChecked);
    connect(m_live, &QCheckBox::toggled, this, [this](bool on) {
        if (on)
            scheduleRun();
    });
    auto* focusSlider = runMenu->addAction(tr("Focus Loop Slider"), this, [this] { m_loopSlider->setFocus(); });
    focusSlider->setShortcut(QKeySequence(Qt::ALT | Qt::Key_L));
    auto* focusPrompt = runMenu->addAction(tr("Focus Prompt"), this, [this] { m_prompt->setFocus(); });
    focusPrompt->setShortcut(QKeySequence(Qt::ALT | Qt::Key_P));

    auto* view = menuBar()->addMenu(tr("&View"));
    for (int i = 0; i < m_views.size(); ++i) {
        auto* a = view->addAction(m_views[i]->viewTitle(), this, [this, i] { m_tabs->setCurrentIndex(i); });
        a->setShortcut(QKeySequence(Qt::CTRL | (Qt::Key_1 + i)));
    }

    auto* cmp = menuBar()->addMenu(tr("&Compare"));
    cmp->addAction(tr("Compare With Model &Folder..."), m_compare, &ComparisonView::compareWithFolderRequested);
    cmp->addAction(tr("Compare With &Preset..."), m_compare, &ComparisonView::compareWithPresetRequested);
    auto* variant =
        cmp->addAction(tr("Compare With Config &Variant..."), m_compare, &ComparisonView::compareWithVariantRequested);
    variant->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_K));
    auto* intervention = cmp->addAction(tr("Compare With &Intervention..."), m_compare,
                                        &ComparisonView::compareWithInterventionRequested);
    intervention->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_I));
    cmp->addAction(tr("&Stop Comparing"), this, &MainWindow::stopComparing);

    auto* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About Mythos Explorer"), this, [this] {
        QMessageBox::about(this, tr("About Mythos Explorer"),
                           tr("<b>Mythos Explorer</b><p>Look inside looped (recurrent-depth) OpenMythos "
                              "transformers: ACT halting, expert routing, KV-cache cost and the stability of "
                              "the recurrence, live as you move the loop count.</p>"));
    });
}

// ---- model ----

void MainWindow::openModel(const QString& spec) {
    m_pendingSpec = spec;
    const quint64 id = m_requests.issue(RequestTracker::Kind::Model);
    if (m_interactive) {
        m_progress = new QProgressDialog(tr("Opening %1...").arg(spec), tr("Cancel"), 0, 0, this);
        m_progress->setWindowModality(Qt::WindowModal);
        m_progress->setMinimumDuration(0);
        m_progress->setAutoClose(false);
        m_progress->hide();
        connect(m_progress, &QProgressDialog::canceled, this, [this] { worker()->cancel(); });
        m_progressDelay.start();
    }
    m_modelLabel->setText(tr("opening %1...").arg(spec));
    worker()->openModel(spec, id);
}

void MainWindow::onModelOpened(quint64 id, ModelInfoPtr info) {
    if (!m_requests.isCurrent(RequestTracker::Kind::Model, id))
        return;
    m_progressDelay.stop();
    if (m_progress)
        m_progress->deleteLater();
    const bool first = !m_info;
    m_info = std::move(info);
    m_recorded = false;
    const auto& c = m_info->config;
    m_modelLabel->setText(tr("%1 · %2 · %3 params · max_loop_iters %4")
                              .arg(m_info->displayName,
                                   QString::fromStdString(mythos::attnTypeName(c.attn_type)).toUpper(),
                                   QLocale().toString(qlonglong(m_info->parameters)))
                              .arg(c.max_loop_iters));
    m_modelLabel->setToolTip(
        tr("tokenizer: %1").arg(m_info->hasTokenizer ? m_info->tokenizer : tr("none (prompts as ids)")));
    setWindowTitle(tr("%1 — Mythos Explorer").arg(m_info->displayName));
    {
        const QSignalBlocker b1(m_threshold);
        m_threshold->setValue(c.act_threshold);
    }
    {
        const QSignalBlocker b1(m_loopSlider), b2(m_loopSpin);
        setLoopLimit(int(4 * c.max_loop_iters));
        if (first || loops() > loopLimit())
            m_loopSlider->setValue(int(c.max_loop_iters));
        m_loopSpin->setValue(m_loopSlider->value());
    }
    updateLoopControls();
    m_stability->setModelAvailable(true);
    m_stability->setRescalePreviewActive(false);
    // NaN/inf weights: said where the user looks (status bar) and where it shows (rho(A)).
    m_weightWarning->setText(m_info->weightWarning.isEmpty() ? QString() : tr("⚠ NaN/inf weights"));
    m_weightWarning->setToolTip(m_info->weightWarning);
    m_weightWarning->setVisible(!m_info->weightWarning.isEmpty());
    m_stability->setWeightWarning(m_info->weightWarning);
    m_tokenizerNote->setText(m_info->tokenizerWarning.isEmpty() ? QString()
                                                                : QStringLiteral("⚠ ") + m_info->tokenizerWarning);
    m_tokenizerNote->setVisible(!m_info->tokenizerWarning.isEmpty());
    if (!m_info->weightWarning.isEmpty())
        statusBar()->showMessage(m_info->weightWarning, 15000);
    else if (!m_info->tokenizerWarning.isEmpty())
        statusBar()->showMessage(m_info->tokenizerWarning, 15000);
    m_comparison->modelChanged(m_info);
    m_sweep->setModelAvailable(true);
    {
        // The model folder's held-out prompt set, when it has one.
        const QString set = QDir(m_info->spec).filePath("prompts.jsonl");
        if (!mythos::isPresetSpec(m_info->spec.toStdString()) && QFileInfo::exists(set))
            m_sweep->setPromptSet(set);
    }
    m_prompt->setReadOnly(false);
    if (!mythos::isPresetSpec(m_info->spec.toStdString()))
        QSettings().setValue("paths/lastModelFolder", m_info->spec);
    addRecent(m_info->spec);
    emit modelReady();
    if (!prompt().isEmpty())
        runNow();
}

void MainWindow::onModelFailed(quint64 id, const QString& error) {
    if (!m_requests.isCurrent(RequestTracker::Kind::Model, id))
        return;
    m_progressDelay.stop();
    if (m_progress)
        m_progress->deleteLater();
    m_modelLabel->setText(m_info ? tr("%1 (still open)").arg(m_info->displayName) : tr("no model"));
    m_lastError = error;
    showError(tr("Could not open the model"), error);
    emit modelFailedToOpen(error);
}

// ---- runs ----

void MainWindow::scheduleRun() {
    m_changeClock.start();
    if (m_live->isChecked() && m_info && !m_recorded)
        m_debounce.start();
}

void MainWindow::runNow() {
    m_debounce.stop();
    if (!m_info || m_recorded || prompt().isEmpty())
        return;
    if (m_generation->generating()) {
        // A change during generation stops it; the tokens so far join the prompt and the new
        // run covers them (a cache built at one loop count is never reused at another).
        worker()->cancel();
        m_generation->stop();
    }
    if (!m_changeClock.isValid())
        m_changeClock.start();
    RunRequest r = newRequest();
    r.measureLatency = m_comparison->measuring();
    m_comparison->submit(r);
    m_statusRun->setText(tr("running %1 loops...").arg(r.loops));
    worker()->submit(std::move(r));
}

RunRequest MainWindow::newRequest() {
    RunRequest r;
    r.id = m_requests.issue(RequestTracker::Kind::Run);
    r.prompt = prompt();
    r.loops = loops();
    r.actThreshold = m_threshold->value();
    // The optional parts the view on screen draws (the compare view's also go to the second model).
    if (const TraceView* v = currentView()) {
        const TraceView::Needs n = v->needs();
        r.lens = n.lens;
        r.trajectory = n.trajectory;
        r.attention = n.attention;
        r.attentionFrom = n.attentionFrom;
        r.attentionTo = n.attentionTo;
    }
    return r;
}

void MainWindow::refreshForView() {
    TraceView* v = currentView();
    // Not for a recorded trace (no model ran it) nor a generation's (decoded with a cache: the
    // parts come from a prompt run, which would replace it).
    if (v && m_trace && m_info && !m_recorded && !m_trace->hasKv && !m_generation->generating() &&
        !v->hasNeeds(*m_trace))
        runNow();
}

void MainWindow::cancelRun() {
    worker()->cancel();
    worker()->cancelSweep();
    m_statusRun->setText(tr("cancelled"));
}

void MainWindow::onRunFinished(RunResultPtr r) {
    if (!m_requests.isCurrent(RequestTracker::Kind::Run, r->id))
        return; // a newer request is on its way
    if (m_report->handleFinished(r) || m_generation->handleFinished(r))
        return;
    m_comparison->showResultA(r);
    showTrace(r->trace);
    m_lastLatencyMs = m_changeClock.isValid() ? double(m_changeClock.nsecsElapsed()) / 1e6 : 0;
    const auto& tr_ = *r->trace;
    QString how = r->reused ? tr("deep run reused: one coda pass")
                            : tr("ran %1 new loop%2").arg(r->loopsRun).arg(r->loopsRun == 1 ? "" : "s");
    m_statusRun->setText(tr("%1 tokens · %2 of %3 loops executed · %4 · %5 ms in the engine, %6 ms to the views")
                             .arg(tr_.seqLen)
                             .arg(tr_.loopsExecuted)
                             .arg(tr_.nLoops)
                             .arg(how)
                             .arg(r->ms, 0, 'f', 1)
                             .arg(m_lastLatencyMs, 0, 'f', 1));
}

void MainWindow::onRunFailed(quint64 id, const QString& error) {
    if (id != 0 && !m_requests.isCurrent(RequestTracker::Kind::Run, id))
        return;
    m_generation->handleFailed(id);
    m_report->handleFailed(id, error);
    m_lastError = error;
    m_statusRun->setText(tr("error: %1").arg(error));
    emit runErrored(error);
}

void MainWindow::onRunCancelled(quint64 id) {
    m_generation->handleCancelled(id);
    m_report->handleCancelled(id);
    if (m_requests.isCurrent(RequestTracker::Kind::Run, id))
        m_statusRun->setText(tr("cancelled"));
}

// ---- generation, comparison, report (generationcontroller, comparisoncontroller, reportcontroller) ----

void MainWindow::generate(int tokens) { m_generation->generate(tokens); }
bool MainWindow::generating() const { return m_generation->generating(); }

void MainWindow::setSampling(bool greedy, double temperature, int topK, quint64 seed) {
    m_generation->setSampling(greedy, temperature, topK, seed);
}

void MainWindow::openCompareModel(const QString& spec) { m_comparison->openModel(spec); }
void MainWindow::openCompareVariant(const QString& overridesJson) { m_comparison->openVariant(overridesJson); }
void MainWindow::stopComparing() { m_comparison->stop(); }
ModelInfoPtr MainWindow::compareInfo() const { return m_comparison->info(); }

void MainWindow::exportReport(const QString& folder, const QList<int>& loops) { m_report->exportReport(folder, loops); }

// ---- views ----

void MainWindow::showTrace(const TracePtr& tr) {
    m_trace = tr;
    QStringList pieces;
    QVector<int> ids;
    for (int i = 0; i < tr->seqLen; ++i) {
        pieces << tokenLabel(*tr, i);
        ids << tr->ids[std::size_t(i)];
    }
    m_tokens->setTokens(pieces, ids);
    if (m_selected >= tr->seqLen)
        m_selected = -1;
    // Only the visible view rebuilds now; the others catch up when their tab is shown, so a
    // slider move costs one view's work on the GUI thread.
    syncView(qobject_cast<TraceView*>(m_tabs->currentWidget()));
    m_tokens->setSelected(m_selected);
    emit traceShown();
}

void MainWindow::syncView(TraceView* v) {
    if (!v || !m_trace)
        return;
    if (v->trace() != m_trace)
        v->setTrace(m_trace);
    v->setSelectedToken(m_selected);
}

void MainWindow::setSelectedToken(int index) {
    if (m_trace && (index < -1 || index >= m_trace->seqLen))
        index = -1;
    m_selected = index;
    m_tokens->setSelected(index);
    for (auto* v : m_views)
        v->setSelectedToken(index);
    refreshForView(); // a view whose window follows the selection may need another part
}

// ---- controls ----

void MainWindow::setPrompt(const QString& text) { m_prompt->setPlainText(text); }
QString MainWindow::prompt() const { return m_prompt->toPlainText(); }
void MainWindow::setLoops(int k) { m_loopSlider->setValue(std::clamp(k, 1, loopLimit())); }
int MainWindow::loops() const { return m_loopSlider->value(); }
int MainWindow::loopLimit() const { return m_loopSlider->maximum(); }
void MainWindow::setActThreshold(double t) { m_threshold->setValue(t); }
void MainWindow::setLive(bool on) { m_live->setChecked(on); }

void MainWindow::setLoopLimit(int k) {
    k = std::clamp(k, 1, 4096);
    m_loopSlider->setMaximum(k);
    m_loopSpin->setMaximum(k);
    m_loopSlider->setTickInterval(std::max(1, k / 16));
    m_loopSlider->setTickPosition(QSlider::TicksBelow);
    updateLoopControls();
}

void MainWindow::raiseLoopLimit() {
    bool ok = false;
    const int k = QInputDialog::getInt(this, tr("Raise Loop Limit"), tr("Largest loop count on the slider:"),
                                       loopLimit() * 2, 1, 4096, 1, &ok);
    if (ok)
        setLoopLimit(k);
}

void MainWindow::updateLoopControls() {
    if (!m_extrapolation)
        return;
    const int trained = m_info ? int(m_info->config.max_loop_iters) : 0;
    if (m_info && loops() > trained) {
        m_extrapolation->setText(tr("  extrapolating (> %1)").arg(trained));
        m_extrapolation->setStyleSheet("color: #b36b00; font-weight: bold;");
        m_extrapolation->setToolTip(tr("The model was built for %1 loops; more loops are depth extrapolation "
                                       "(the LoRA scale of the last trained loop is reused).")
                                        .arg(trained));
    } else {
        m_extrapolation->setText(m_info ? tr("  trained depth %1").arg(trained) : QString());
        m_extrapolation->setStyleSheet({});
        m_extrapolation->setToolTip({});
    }
}

TraceView* MainWindow::currentView() const { return qobject_cast<TraceView*>(m_tabs->currentWidget()); }

bool MainWindow::selectView(const QString& id) {
    for (int i = 0; i < m_views.size(); ++i)
        if (m_views[i]->viewId() == id) {
            m_tabs->setCurrentIndex(i);
            return true;
        }
    return false;
}

// ---- files ----

void MainWindow::openModelDialog() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a model folder (config.json + safetensors)"),
                                                          QSettings().value("paths/lastModelFolder").toString());
    if (!dir.isEmpty())
        openModel(dir);
}

void MainWindow::openPresetDialog() {
    const QString spec = choosePreset(tr("Open a preset"));
    if (!spec.isEmpty())
        openModel(spec);
}

void MainWindow::importCheckpointDialog() {
    if (m_import && m_import->running()) {
        showError(tr("Could not import the checkpoint"), tr("An import is already running."));
        return;
    }
    const QString pt = QFileDialog::getOpenFileName(this, tr("Import a PyTorch checkpoint"),
                                                    QSettings().value("paths/lastCheckpoint").toString(),
                                                    tr("PyTorch checkpoints (*.pt *.pth *.ckpt);;All files (*)"));
    if (pt.isEmpty())
        return;
    QSettings().setValue("paths/lastCheckpoint", pt);
    CheckpointImportDialog dlg(pt, this);
    if (dlg.exec() == QDialog::Accepted)
        importCheckpoint(dlg.options());
}

CheckpointImport* MainWindow::checkpointImport() {
    if (m_import)
        return m_import;
    m_import = new CheckpointImport(this);
    auto endProgress = [this] {
        if (m_importProgress)
            m_importProgress->deleteLater();
    };
    connect(m_import, &CheckpointImport::progress, this, [this](qint64 done, qint64 total, const QString& text) {
        const QString name = QFileInfo(m_import->outDir()).fileName();
        statusBar()->showMessage(total > 0 ? tr("Importing into %1: %2 (%3%)").arg(name, text).arg(done * 100 / total)
                                           : tr("Importing into %1: %2").arg(name, text));
        if (m_importProgress) {
            m_importProgress->setLabelText(tr("Importing the checkpoint into %1\n%2").arg(name, text));
            m_importProgress->setMaximum(total > 0 ? 1000 : 0);
            m_importProgress->setValue(total > 0 ? int(done * 1000 / total) : 0);
        }
    });
    connect(m_import, &CheckpointImport::finished, this, [this, endProgress](const QString& folder) {
        endProgress();
        const QStringList notes = m_import->notes();
        statusBar()->showMessage(notes.isEmpty() ? tr("Imported %1").arg(folder) : notes.last(), 15000);
        openModel(folder);
        emit checkpointImported(folder);
    });
    connect(m_import, &CheckpointImport::failed, this, [this, endProgress](const QString& error) {
        endProgress();
        showError(tr("Could not import the checkpoint"), error);
        emit importFailed(error);
    });
    connect(m_import, &CheckpointImport::cancelled, this, [this, endProgress] {
        endProgress();
        statusBar()->showMessage(tr("Import cancelled"), 5000);
        emit importCancelled();
    });
    return m_import;
}

void MainWindow::importCheckpoint(const CheckpointImportOptions& options) {
    auto* imp = checkpointImport();
    if (imp->running()) {
        showError(tr("Could not import the checkpoint"), tr("An import is already running."));
        emit importFailed(tr("An import is already running."));
        return;
    }
    if (m_interactive) {
        m_importProgress = new QProgressDialog(tr("Importing %1...").arg(QFileInfo(options.checkpoint).fileName()),
                                               tr("Cancel"), 0, 0, this);
        m_importProgress->setWindowTitle(tr("Import PyTorch checkpoint"));
        m_importProgress->setWindowModality(Qt::WindowModal);
        m_importProgress->setMinimumDuration(0);
        m_importProgress->setAutoClose(false);
        m_importProgress->setAutoReset(false);
        m_importProgress->setMinimumWidth(520);
        connect(m_importProgress, &QProgressDialog::canceled, imp, &CheckpointImport::cancel);
        m_importProgress->show();
    }
    imp->start(options);
}

QString MainWindow::choosePreset(const QString& title) {
    QStringList names;
    for (const auto& n : mythos::presetNames()) {
        const auto c = mythos::preset(n);
        names << QStringLiteral("%1  (%2, %3 parameters)")
                     .arg(QString::fromStdString(n),
                          QString::fromStdString(mythos::attnTypeName(c.attn_type)).toUpper(),
                          QLocale().toString(qlonglong(mythos::countParameters(c).total)));
    }
    bool ok = false;
    const QString choice = QInputDialog::getItem(this, title, tr("Random weights initialised like the reference:"),
                                                 names, names.indexOf(names.filter("readme_mla").value(0)), false, &ok);
    if (!ok)
        return {};
    return "preset:" + choice.section(' ', 0, 0) + ":1";
}

void MainWindow::updateRecentMenu() {
    m_recentMenu->clear();
    const QStringList recent = QSettings().value("recent/models").toStringList();
    for (const auto& spec : recent)
        m_recentMenu->addAction(spec, this, [this, spec] { openModel(spec); });
    m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::addRecent(const QString& spec) {
    QSettings s;
    QStringList recent = s.value("recent/models").toStringList();
    recent.removeAll(spec);
    recent.prepend(spec);
    while (recent.size() > kMaxRecent)
        recent.removeLast();
    s.setValue("recent/models", recent);
    s.setValue("recent/last", spec);
    updateRecentMenu();
}

bool MainWindow::openTrace(const QString& path) {
    try {
        auto rec = std::make_shared<mythos::Trace>(mythos::loadTrace(path.toStdString()));
        m_recorded = true;
        m_info.reset();
        m_stability->setModelAvailable(false);
        m_sweep->setModelAvailable(false);
        m_modelLabel->setText(tr("recorded trace %1 (no model)").arg(QFileInfo(path).fileName()));
        {
            const QSignalBlocker b(m_prompt);
            QString text;
            for (int i = 0; i < rec->seqLen; ++i)
                text += std::size_t(i) < rec->pieces.size() ? QString::fromStdString(rec->pieces[std::size_t(i)])
                                                            : QStringLiteral("#%1 ").arg(rec->ids[std::size_t(i)]);
            m_prompt->setPlainText(text);
        }
        m_prompt->setReadOnly(true);
        m_tokenizerNote->hide();
        {
            const QSignalBlocker b1(m_loopSlider), b2(m_loopSpin), b3(m_threshold);
            m_loopSlider->setMaximum(std::max<int>(1, int(rec->nLoops)));
            m_loopSpin->setMaximum(std::max<int>(1, int(rec->nLoops)));
            m_loopSlider->setValue(int(rec->nLoops));
            m_loopSpin->setValue(int(rec->nLoops));
            m_threshold->setValue(rec->config.act_threshold);
        }
        m_extrapolation->setText(tr("  recorded at %1 loops").arg(rec->nLoops));
        showTrace(rec);
        m_statusRun->setText(tr("viewing the recorded trace %1; open a model to run").arg(path));
        return true;
    } catch (const std::exception& e) {
        m_lastError = QString::fromStdString(e.what());
        showError(tr("Could not open the trace"), m_lastError);
        return false;
    }
}

bool MainWindow::saveTrace(const QString& path) {
    if (!m_trace)
        return false;
    try {
        mythos::saveTrace(path.toStdString(), *m_trace);
        statusBar()->showMessage(tr("Saved the trace to %1").arg(path), 5000);
        return true;
    } catch (const std::exception& e) {
        m_lastError = QString::fromStdString(e.what());
        showError(tr("Could not save the trace"), m_lastError);
        return false;
    }
}

void MainWindow::openTraceDialog() {
    const QString f = QFileDialog::getOpenFileName(this, tr("Open a trace"), {}, tr("Traces (*.json)"));
    if (!f.isEmpty())
        openTrace(f);
}

void MainWindow::saveTraceDialog() {
    if (!m_trace) {
        showError(tr("Nothing to save"), tr("Run a prompt first."));
        return;
    }
    QString f = QFileDialog::getSaveFileName(this, tr("Save the trace"), "trace.json", tr("Traces (*.json)"));
    if (f.isEmpty())
        return;
    if (!f.endsWith(".json"))
        f += ".json";
    saveTrace(f);
}

void MainWindow::exportDialog() {
    auto* view = qobject_cast<TraceView*>(m_tabs->currentWidget());
    if (!view || !m_trace) {
        showError(tr("Nothing to export"), tr("Run a prompt first."));
        return;
    }
    ExportDialog dlg(view->charts(), this);
    dlg.exec();
}

QString MainWindow::modelWarning() const { return m_info ? m_info->weightWarning : QString(); }
QString MainWindow::modelSpec() const { return m_info ? m_info->spec : QString(); }

void MainWindow::showError(const QString& title, const QString& text) {
    m_lastError = text;
    statusBar()->showMessage(title + ": " + text, 10000);
    if (m_interactive)
        QMessageBox::critical(this, title, text);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
    if (e->mimeData()->hasUrls())
        e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
    const auto urls = e->mimeData()->urls();
    if (urls.isEmpty())
        return;
    const QString path = urls.first().toLocalFile();
    const QFileInfo fi(path);
    if (fi.isDir())
        openModel(path);
    else if (fi.fileName() == "config.json" || fi.suffix() == "safetensors")
        openModel(fi.absolutePath());
    else if (fi.suffix() == "json")
        openTrace(path);
    e->acceptProposedAction();
}

void MainWindow::closeEvent(QCloseEvent* e) {
    worker()->cancel();
    QSettings().setValue("window/geometry", saveGeometry());
    QMainWindow::closeEvent(e);
}

} // namespace mx
