#pragma once
// "Depth sweep": accuracy and mean halting loop of a held-out prompt set (the model folder's
// prompts.jsonl by default) against the loop count, overall and per hop count, computed in
// the worker with progress and cancel. It is about the model, not the shown trace.
#include <QStringList>

#include "inferenceworker.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QComboBox;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QScrollArea;
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
    void start();
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
    SweepResultPtr m_result;
    bool m_modelAvailable = false;
};

} // namespace mx
