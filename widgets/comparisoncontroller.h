#pragma once
// The window's comparison: a second model on its own worker (the compare worker) runs every
// prompt of the window at the same loop count, and the Compare view shows both.
#include <QObject>
#include <QString>

#include "inferenceworker.h"
#include "results.h"

namespace mx {

class ComparisonView;
class MainWindow;

class ComparisonController : public QObject {
    Q_OBJECT
public:
    ComparisonController(MainWindow& window, ComparisonView* view);

    void openModel(const QString& spec);
    void openVariant(const QString& overridesJson); // the window's model with changed fields
    void stop();
    ModelInfoPtr info() const { return m_info; }
    bool comparing() const { return bool(m_info); }
    // Whether the window's runs also measure latency (the Compare view is open).
    bool measuring() const;
    // Runs the window's request on the second model too (a copy with its own id).
    void submit(const RunRequest& r);
    // The window's model changed, or its run `r` finished.
    void modelChanged(const ModelInfoPtr& a);
    void showResultA(const RunResultPtr& r);

private:
    InferenceWorker* worker(); // the compare worker, started on first use

    MainWindow& m_win;
    ComparisonView* m_view;
    WorkerThread* m_thread = nullptr;
    ModelInfoPtr m_info;
    QString m_lastIntervention; // the dialog's text last compared, offered again
};

} // namespace mx
