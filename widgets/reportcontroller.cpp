#include "reportcontroller.h"

#include <algorithm>
#include <vector>

#include <QCoreApplication>
#include <QDir>
#include <QFileDialog>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QProgressDialog>
#include <QStatusBar>

#include "mainwindow.h"
#include "report.h"

namespace mx {

ReportController::ReportController(MainWindow& window) : QObject(&window), m_win(window) {}

void ReportController::exportDialog() {
    if (!m_win.m_trace) {
        m_win.showError(tr("Nothing to report"), tr("Run a prompt first."));
        return;
    }
    QList<int> loopsList;
    if (!m_win.m_recorded) {
        const auto& config = m_win.m_info->config;
        QList<int> d{1, int(std::max<int64_t>(1, config.max_loop_iters / 2)), int(config.max_loop_iters),
                     m_win.loops()};
        std::sort(d.begin(), d.end());
        d.erase(std::unique(d.begin(), d.end()), d.end());
        QStringList parts;
        for (int k : d)
            parts << QString::number(k);
        bool ok = false;
        const QString text = QInputDialog::getText(&m_win, tr("Export Report"),
                                                   tr("Loop counts (comma-separated; every chart is made at each):"),
                                                   QLineEdit::Normal, parts.join(","), &ok);
        if (!ok)
            return;
        for (const QString& p : text.split(',', Qt::SkipEmptyParts)) {
            bool good = false;
            const int k = p.trimmed().toInt(&good);
            if (!good || k < 1 || k > 4096) {
                m_win.showError(tr("Export Report"),
                                tr("'%1' is not a loop count between 1 and 4096.").arg(p.trimmed()));
                return;
            }
            loopsList << k;
        }
        if (loopsList.isEmpty())
            return;
    }
    const QString folder = QFileDialog::getSaveFileName(
        &m_win, tr("Report folder (created; an old report there is replaced)"), QDir::home().filePath("mythos-report"));
    if (folder.isEmpty())
        return;
    exportReport(folder, loopsList);
}

void ReportController::exportReport(const QString& folder, const QList<int>& loopsList) {
    const QString problem = reportFolderProblem(folder);
    if (!problem.isEmpty()) {
        m_win.showError(tr("Could not export the report"), problem);
        emit m_win.reportFinished(false, problem);
        return;
    }
    m_folder = folder;
    if (m_win.m_recorded || !m_win.m_info) {
        if (!m_win.m_trace) {
            emit m_win.reportFinished(false, tr("nothing to report"));
            return;
        }
        write({m_win.m_trace}, 0);
        return;
    }
    std::vector<int> ks;
    for (int k : loopsList)
        if (k >= 1)
            ks.push_back(k);
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    if (ks.empty())
        ks.push_back(m_win.loops());
    m_win.m_debounce.stop();
    RunRequest r = m_win.newRequest();
    r.seriesLoops = ks;
    // Every report view draws: the inside-the-loop views' parts too.
    r.lens = r.trajectory = r.attention = true;
    r.attentionFrom = 0;
    r.attentionTo = 0;
    m_win.m_requests.track(RequestTracker::Kind::Report, r.id);
    m_win.m_statusRun->setText(tr("running %1 loop counts for the report...").arg(ks.size()));
    m_win.worker()->submit(std::move(r));
}

bool ReportController::handleFinished(const RunResultPtr& r) {
    if (!m_win.m_requests.isCurrent(RequestTracker::Kind::Report, r->id))
        return false;
    m_win.m_requests.forget(RequestTracker::Kind::Report);
    write(r->series, r->ms);
    return true;
}

void ReportController::handleFailed(quint64 id, const QString& error) {
    if (!m_win.m_requests.isCurrent(RequestTracker::Kind::Report, id))
        return;
    m_win.m_requests.forget(RequestTracker::Kind::Report);
    emit m_win.reportFinished(false, error);
}

void ReportController::handleCancelled(quint64 id) { handleFailed(id, tr("cancelled")); }

void ReportController::write(const QList<TracePtr>& traces, double engineMs) {
    const ModelInfoPtr& info = m_win.m_info;
    ReportInput in;
    const TracePtr first = traces.value(0, m_win.m_trace);
    in.model = info ? info->spec : QString::fromStdString(first->model);
    in.config = info ? info->config : first->config;
    in.parameters = info ? info->parameters : mythos::countParameters(first->config).total;
    in.rhoA = info ? info->rhoA : first->rhoA;
    in.prompt = m_win.prompt();
    in.traces = traces;
    in.engineOptions = QString::fromStdString(first->options.dump());
    if (engineMs > 0)
        in.runTimingsMs.push_back({"deep_run_and_traces", engineMs});
    QProgressDialog progress(tr("Writing the report..."), tr("Cancel"), 0, 100, &m_win);
    progress.setWindowModality(Qt::WindowModal);
    progress.setMinimumDuration(500);
    const ExportResult res = writeReport(in, m_folder, QSize(1000, 600), [&](int done, int total) {
        progress.setMaximum(total);
        progress.setValue(done);
        QCoreApplication::processEvents(QEventLoop::ExcludeUserInputEvents);
        return !progress.wasCanceled();
    });
    progress.reset();
    if (res.ok) {
        m_win.statusBar()->showMessage(tr("Wrote the report (%1 files) to %2").arg(res.files.size()).arg(m_folder),
                                       10000);
        m_win.m_statusRun->setText(tr("report written to %1").arg(m_folder));
        emit m_win.reportFinished(true, m_folder);
    } else {
        if (res.error != "cancelled")
            m_win.showError(tr("Could not export the report"), res.error);
        emit m_win.reportFinished(false, res.error);
    }
}

} // namespace mx
