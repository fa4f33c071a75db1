#pragma once
// The explorer window: prompt editor and token strip on top, the views below, the loop
// count and ACT threshold in the toolbar. Every change is debounced and sent to the
// worker; moving the loop count reuses the worker's deep run.
#include <QElapsedTimer>
#include <QMainWindow>
#include <QPointer>
#include <QTimer>

#include "checkpointimport.h"
#include "inferenceworker.h"
#include "requesttracker.h"
#include "results.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QAction;
class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QMenu;
class QPlainTextEdit;
class QProgressDialog;
class QSlider;
class QSpinBox;
class QTabWidget;
QT_END_NAMESPACE

namespace mx {

class TokenStrip;
class ComparisonController;
class ComparisonView;
class GenerationController;
class ReportController;
class DepthSweepView;
class StabilityView;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Opens a model folder or "preset:NAME[:seed]"; the result arrives asynchronously
    // (modelReady or an error dialog; the previous model stays on failure).
    void openModel(const QString& spec);
    // File > Import PyTorch Checkpoint: converts a .pt with tools/export_checkpoint.py
    // (progress dialog with Cancel when interactive, status bar otherwise), then opens the
    // written folder like openModel; checkpointImported or importFailed (one message: a
    // missing python3 or torch is said as such), importCancelled when stopped.
    void importCheckpoint(const CheckpointImportOptions& options);
    CheckpointImport* checkpointImport();
    bool openTrace(const QString& path); // shows a recorded trace without the model
    bool saveTrace(const QString& path);

    void setPrompt(const QString& text);
    QString prompt() const;
    void setLoops(int k);
    int loops() const;
    int loopLimit() const;
    void setLoopLimit(int k);
    void setActThreshold(double t);
    void setLive(bool on);
    bool selectView(const QString& id); // "halting", "routing", "kv", "stability"
    void setSelectedToken(int index);
    int selectedToken() const { return m_selected; }
    // Shows error dialogs (interactive) or only the status bar (tests, screenshots).
    void setInteractive(bool on) { m_interactive = on; }

    // Generates `tokens` new tokens after the prompt at the current loop count (greedy, or
    // sampled with the generation bar's temperature, top-k and seed), streaming each token
    // into the token strip and the views; Esc or the Stop button cancels.
    void generate(int tokens);
    void setSampling(bool greedy, double temperature, int topK, quint64 seed);
    bool generating() const;
    // Writes a report (every chart of every view at each loop count, data, traces, one PDF)
    // into `folder`; the result arrives as reportFinished. A recorded trace is reported alone.
    void exportReport(const QString& folder, const QList<int>& loops);

    // Comparison: a second model runs every prompt at the same loop count (Compare view).
    void openCompareModel(const QString& spec);
    void openCompareVariant(const QString& overridesJson); // the current model with changed fields
    void stopComparing();
    ModelInfoPtr compareInfo() const;
    ComparisonView* comparisonView() const { return m_compare; }
    DepthSweepView* depthSweepView() const { return m_sweep; }

    TracePtr currentTrace() const { return m_trace; }
    ModelInfoPtr modelInfo() const { return m_info; }
    QList<TraceView*> views() const { return m_views; }
    TraceView* currentView() const;
    InferenceWorker* worker() const;
    TokenStrip* tokenStrip() const { return m_tokens; }
    QString lastError() const { return m_lastError; }
    // Why the open model's outputs are not to be trusted (NaN/inf weights); empty when fine.
    QString modelWarning() const;
    QString modelSpec() const; // the open model's folder or preset, empty when none
    // Milliseconds from the last user change to the views showing its result.
    double lastLatencyMs() const { return m_lastLatencyMs; }

    static QString defaultModel();

public slots:
    void runNow();
    void cancelRun();

signals:
    void modelReady();
    void modelFailedToOpen(const QString& error);
    void traceShown(); // the views show a new trace
    void runErrored(const QString& error);
    void generationProgress(int step, int total); // after the views show that step
    void generationFinished(bool completed);      // false when cancelled or failed
    void reportFinished(bool ok, const QString& folderOrError);
    void compareModelReady();
    void compareFailed(const QString& error);
    void compareTraceShown(); // the Compare view received B's trace
    void sweepShown();        // the Depth sweep view shows a finished sweep
    void sweepFailed(const QString& error);
    void checkpointImported(const QString& folder); // written; openModel(folder) has started
    void importFailed(const QString& error);
    void importCancelled();

protected:
    friend class ComparisonController;
    friend class GenerationController;
    friend class ReportController;

    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;
    void closeEvent(QCloseEvent* e) override;

private:
    void buildUi();
    void buildMenus();
    void scheduleRun();
    // A request for the window's prompt, loop count and threshold, with the next run id.
    RunRequest newRequest();
    // Runs again when the view on screen needs a trace part the shown trace lacks.
    void refreshForView();
    void showTrace(const TracePtr& tr);
    void syncView(TraceView* v); // brings a view up to the current trace and selection
    void updateLoopControls();
    void updateRecentMenu();
    void addRecent(const QString& spec);
    void showError(const QString& title, const QString& text);
    void onModelOpened(quint64 id, ModelInfoPtr info);
    void onModelFailed(quint64 id, const QString& error);
    void onRunFinished(RunResultPtr r);
    void onRunFailed(quint64 id, const QString& error);
    void onRunCancelled(quint64 id);
    void openModelDialog();
    void openPresetDialog();
    void importCheckpointDialog();
    void openTraceDialog();
    void saveTraceDialog();
    void exportDialog();
    void raiseLoopLimit();
    QString choosePreset(const QString& title);

    WorkerThread* m_thread = nullptr;
    ModelInfoPtr m_info;
    TracePtr m_trace;
    bool m_recorded = false; // showing a trace file without its model
    QString m_pendingSpec;
    RequestTracker m_requests; // every worker request the window waits for
    int m_selected = -1;
    bool m_interactive = true;
    QString m_lastError;
    QElapsedTimer m_changeClock;
    double m_lastLatencyMs = 0;

    QPlainTextEdit* m_prompt = nullptr;
    TokenStrip* m_tokens = nullptr;
    QTabWidget* m_tabs = nullptr;
    StabilityView* m_stability = nullptr;
    QList<TraceView*> m_views;
    QSlider* m_loopSlider = nullptr;
    QSpinBox* m_loopSpin = nullptr;
    QLabel* m_extrapolation = nullptr;
    QDoubleSpinBox* m_threshold = nullptr;
    QCheckBox* m_live = nullptr;
    QLabel* m_modelLabel = nullptr;
    QLabel* m_weightWarning = nullptr; // status bar: the open model's weights hold NaN/inf
    QLabel* m_tokenizerNote = nullptr; // under the prompt: text as bytes, or an unreadable tokenizer
    QLabel* m_statusRun = nullptr;
    QMenu* m_recentMenu = nullptr;
    QAction* m_cancelAction = nullptr;
    QPointer<QProgressDialog> m_progress;
    CheckpointImport* m_import = nullptr;
    QPointer<QProgressDialog> m_importProgress;
    DepthSweepView* m_sweep = nullptr;
    ComparisonView* m_compare = nullptr;
    GenerationController* m_generation = nullptr;
    ComparisonController* m_comparison = nullptr; // owns the compare worker
    ReportController* m_report = nullptr;
    QTimer m_debounce;
    QTimer m_progressDelay;
};

} // namespace mx
