#include "comparisoncontroller.h"
#include "interventiondialog.h"

#include <QFileDialog>
#include <QInputDialog>
#include <QLineEdit>
#include <QSettings>
#include <QStatusBar>

#include "comparisonview.h"
#include "mainwindow.h"

namespace mx {

ComparisonController::ComparisonController(MainWindow& window, ComparisonView* view)
    : QObject(&window), m_win(window), m_view(view) {
    connect(m_view, &ComparisonView::compareWithFolderRequested, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(&m_win, tr("Compare with a model folder"),
                                                              QSettings().value("paths/lastModelFolder").toString());
        if (!dir.isEmpty())
            openModel(dir);
    });
    connect(m_view, &ComparisonView::compareWithPresetRequested, this, [this] {
        const QString spec = m_win.choosePreset(tr("Compare with a preset"));
        if (!spec.isEmpty())
            openModel(spec);
    });
    connect(m_view, &ComparisonView::compareWithVariantRequested, this, [this] {
        if (!m_win.m_info) {
            m_win.showError(tr("Nothing to vary"), tr("Open a model first."));
            return;
        }
        bool ok = false;
        const QString text = QInputDialog::getText(
            &m_win, tr("Compare with a config variant"),
            tr("Fields to change, as JSON: config fields that keep every weight's shape (act_threshold, "
               "rope_theta, ...) and the engine options act_final_remainder (true/false), kv_layout "
               "(reference/compact) and weight_type (f32/bf16):"),
            QLineEdit::Normal, QStringLiteral("{\"act_final_remainder\": true}"), &ok);
        if (ok && !text.trimmed().isEmpty())
            openVariant(text);
    });
    connect(m_view, &ComparisonView::compareWithInterventionRequested, this, [this] {
        if (!m_win.m_info) {
            m_win.showError(tr("Nothing to intervene on"), tr("Open a model first."));
            return;
        }
        InterventionDialog dialog(m_win.m_info->config, &m_win);
        if (!m_lastIntervention.isEmpty())
            dialog.setText(m_lastIntervention);
        if (dialog.exec() != QDialog::Accepted)
            return;
        m_lastIntervention = dialog.text();
        openVariant(QStringLiteral("{\"intervene\": %1}").arg(dialog.json()));
    });
}

InferenceWorker* ComparisonController::worker() {
    if (m_thread)
        return m_thread->worker();
    m_thread = new WorkerThread(this);
    auto* w = m_thread->worker();
    connect(w, &InferenceWorker::modelOpened, this, [this](quint64 id, ModelInfoPtr info) {
        if (!m_win.m_requests.isCurrent(RequestTracker::Kind::CompareModel, id))
            return;
        m_info = std::move(info);
        m_view->setModels(m_win.m_info, m_info);
        m_win.selectView(m_view->viewId());
        m_win.statusBar()->showMessage(tr("Comparing with %1").arg(m_info->displayName), 5000);
        emit m_win.compareModelReady();
        m_win.runNow();
    });
    connect(w, &InferenceWorker::modelFailed, this, [this](quint64 id, const QString& error) {
        if (!m_win.m_requests.isCurrent(RequestTracker::Kind::CompareModel, id))
            return;
        m_win.showError(tr("Could not open the model to compare with"), error);
        emit m_win.compareFailed(error);
    });
    connect(w, &InferenceWorker::runFinished, this, [this](RunResultPtr r) {
        if (!m_win.m_requests.isCurrent(RequestTracker::Kind::CompareRun, r->id) || !m_info)
            return;
        m_view->setResultB(r);
        emit m_win.compareTraceShown();
    });
    connect(w, &InferenceWorker::runFailed, this, [this](quint64 id, const QString& error) {
        if (m_win.m_requests.isCurrent(RequestTracker::Kind::CompareRun, id) && m_info)
            m_view->setErrorB(error);
    });
    return w;
}

void ComparisonController::openModel(const QString& spec) {
    const quint64 id = m_win.m_requests.issue(RequestTracker::Kind::CompareModel);
    m_win.statusBar()->showMessage(tr("Opening %1 to compare...").arg(spec));
    worker()->openModel(spec, id);
}

void ComparisonController::openVariant(const QString& overridesJson) {
    if (!m_win.m_info) {
        m_win.showError(tr("Nothing to vary"), tr("Open a model first."));
        emit m_win.compareFailed(tr("no model is open"));
        return;
    }
    const quint64 id = m_win.m_requests.issue(RequestTracker::Kind::CompareModel);
    m_win.statusBar()->showMessage(tr("Opening a variant of %1 to compare...").arg(m_win.m_info->displayName));
    worker()->openModelVariant(m_win.m_info->spec, overridesJson, id);
}

void ComparisonController::stop() {
    m_win.m_requests.forget(RequestTracker::Kind::CompareModel);
    m_info.reset();
    m_view->setModels(m_win.m_info, nullptr);
}

bool ComparisonController::measuring() const { return m_info && m_win.currentView() == m_view; }

void ComparisonController::submit(const RunRequest& r) {
    if (!m_info)
        return;
    RunRequest b = r;
    b.id = m_win.m_requests.issue(RequestTracker::Kind::CompareRun);
    worker()->submit(std::move(b));
}

void ComparisonController::modelChanged(const ModelInfoPtr& a) { m_view->setModels(a, m_info); }

void ComparisonController::showResultA(const RunResultPtr& r) {
    if (m_info)
        m_view->setResultA(r); // before the views get the trace: one rebuild per run
}

} // namespace mx
