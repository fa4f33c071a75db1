#pragma once
// The window's report: asks for the loop counts and the folder, runs one request for the
// traces at every loop count (or takes the recorded trace) and writes the report
// (report.h) with a progress dialog.
#include <QList>
#include <QObject>
#include <QString>

#include "results.h"

namespace mx {

class MainWindow;

class ReportController : public QObject {
    Q_OBJECT
public:
    explicit ReportController(MainWindow& window);

    void exportDialog();
    void exportReport(const QString& folder, const QList<int>& loops);

    // The window's worker's answers; handleFinished returns whether `r` was the report's.
    bool handleFinished(const RunResultPtr& r);
    void handleFailed(quint64 id, const QString& error);
    void handleCancelled(quint64 id);

private:
    void write(const QList<TracePtr>& traces, double engineMs);

    MainWindow& m_win;
    QString m_folder;
};

} // namespace mx
