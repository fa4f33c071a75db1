#pragma once
// "Depth sweep": accuracy and mean halting loop of a held-out prompt set (the model folder's
// prompts.jsonl by default) against the loop count, overall and per hop count, computed in
// the worker with progress and cancel; each exit rule's accuracy against the loops it used,
// and the answer token's halting loop against its convergence loop by hops
// (docs/inside-the-loop.md), optionally under an intervention. It is about the model, not
// the shown trace.
#include <QStringList>

#include "inferenceworker.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QComboBox;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QScrollArea;
class QTableWidget;
QT_END_NAMESPACE

namespace mx {

class LineChart;

class DepthSweepView : public TraceView {
    Q_OBJECT
public:
    explicit DepthSweepView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("sweep"); }
    QString viewTitle() const override { return tr("Depth sweep"); }
    void setTrace(const TracePtr& trace) override { m_trace = trace; }
    void setSelectedToken(int) override {}
    QList<ChartHandle> charts() const override;

    void setPromptSet(const QString& file); // empty = none chosen
    QString promptSet() const;
    void setLoops(const QList<int>& loops);
    // The loop counts typed in; empty with `error` set when the text is not a list of 1..4096.
    QList<int> loops(QString* error = nullptr) const;
    void setModelAvailable(bool on);

    void setRunning(bool on);
    void setProgress(int done, int total);
    void setResult(const SweepResultPtr& r);
    void setError(const QString& error);
    SweepResultPtr result() const { return m_result; }
    QString summary() const;
    LineChart* accuracyChart() const { return m_accuracy; }
    LineChart* haltingChart() const { return m_halting; }
    LineChart* exitRuleChart() const { return m_rules; }
    QTableWidget* haltConvTable() const { return m_haltConv; }
    DataTable haltConvData() const;
    DataTable exitRuleData() const; // rule, loops, mean loops used, accuracy, prompts

    // The exit rules typed in (besides ACT); empty with `error` set when one does not parse.
    QStringList exitRules(QString* error = nullptr) const;
    void setExitRules(const QString& text);
    // The intervention file chosen for the sweep (empty: none), and its JSON text; an
    // unreadable file is `error`.
    void setInterventionFile(const QString& file);
    QString interventionFile() const;
    QString interventionJson(QString* error = nullptr) const;
    // Which tokens the halting chart averages: the answer token (the prompt's last, whose
    // prediction is the first answer character; the default) or every prompt token.
    enum class HaltingOf { AnswerToken, EveryToken };
    void setHaltingOf(HaltingOf h);
    HaltingOf haltingOf() const;

signals:
    void runRequested(const QString& promptsFile, const QList<int>& loops);
    void cancelRequested();

private:
    void choose();
    void chooseIntervention();
    void start();
    void showExitRules(); // the exit-rule chart and the halting/convergence table of m_result
    void rebuildHalting();
    void showNotRun(); // the charts before any sweep (or after one was cleared)

    QScrollArea* m_scroll = nullptr;
    QLineEdit* m_file = nullptr;
    QLineEdit* m_loops = nullptr;
    QComboBox* m_haltingOf = nullptr;
    QPushButton* m_run = nullptr;
    QPushButton* m_cancel = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_summary = nullptr;
    LineChart* m_accuracy = nullptr;
    LineChart* m_halting = nullptr;
    QLineEdit* m_rulesEdit = nullptr;
    QLineEdit* m_intervention = nullptr;
    LineChart* m_rules = nullptr;
    QTableWidget* m_haltConv = nullptr;
    SweepResultPtr m_result;
    bool m_modelAvailable = false;
};

} // namespace mx
