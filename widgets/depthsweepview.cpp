#include "depthsweepview.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QVBoxLayout>
#include <set>

#include "charts.h"

namespace mx {

DepthSweepView::DepthSweepView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = new QVBoxLayout(content);
    lay->setContentsMargins(8, 6, 8, 6);
    lay->setSpacing(6);

    auto* controls = new QHBoxLayout;
    auto* fileLabel = new QLabel(tr("&Prompt set:"), content);
    m_file = new QLineEdit(content);
    m_file->setObjectName("sweepFile");
    m_file->setPlaceholderText(tr("a JSONL file of {\"prompt\", \"answer\", \"hops\"} lines"));
    fileLabel->setBuddy(m_file);
    auto* browse = new QPushButton(tr("Choose..."), content);
    auto* loopsLabel = new QLabel(tr("&Loops:"), content);
    m_loops = new QLineEdit(QStringLiteral("1,2,4,8,16"), content);
    m_loops->setObjectName("sweepLoops");
    m_loops->setMaximumWidth(160);
    loopsLabel->setBuddy(m_loops);
    m_run = new QPushButton(tr("Run sweep"), content);
    m_run->setObjectName("sweepRun");
    m_cancel = new QPushButton(tr("Cancel"), content);
    m_cancel->setObjectName("sweepCancel");
    m_cancel->setEnabled(false);
    m_progress = new QProgressBar(content);
    m_progress->setObjectName("sweepProgress");
    m_progress->setMaximumWidth(200);
    m_progress->hide();
    controls->addWidget(fileLabel);
    controls->addWidget(m_file, 1);
    controls->addWidget(browse);
    controls->addSpacing(12);
    controls->addWidget(loopsLabel);
    controls->addWidget(m_loops);
    controls->addWidget(m_run);
    controls->addWidget(m_cancel);
    controls->addWidget(m_progress);
    lay->addLayout(controls);

    m_summary = new WrapLabel(content);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    lay->addWidget(m_summary);

    m_accuracy = new LineChart(tr("Exact-match accuracy against loop count"), tr("loops"), tr("accuracy"), content);
    m_halting = new LineChart(tr("Mean halting loop against loop count"), tr("loops"), tr("mean halting loop"), content);
    for (auto* c : {m_accuracy, m_halting}) {
        c->setIntegerX(true);
        c->setMinimumSize(300, 280);
    }
    auto* grid = new QGridLayout;
    grid->addWidget(m_accuracy, 0, 0);
    grid->addWidget(m_halting, 0, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    lay->addLayout(grid, 1);

    connect(browse, &QPushButton::clicked, this, &DepthSweepView::choose);
    connect(m_run, &QPushButton::clicked, this, &DepthSweepView::start);
    connect(m_cancel, &QPushButton::clicked, this, &DepthSweepView::cancelRequested);
    m_summary->setText(tr("Accuracy and halting of a held-out prompt set at several loop counts: does thinking "
                          "longer help, and beyond the trained depth? Choose a prompt set and run the sweep."));
    setModelAvailable(false);
}

void DepthSweepView::choose() {
    const QString f = QFileDialog::getOpenFileName(this, tr("Choose a prompt set"), QFileInfo(promptSet()).path(),
                                                   tr("Prompt sets (*.jsonl);;All files (*)"));
    if (!f.isEmpty())
        setPromptSet(f);
}

void DepthSweepView::setPromptSet(const QString& file) { m_file->setText(file); }
QString DepthSweepView::promptSet() const { return m_file->text().trimmed(); }

void DepthSweepView::setLoops(const QList<int>& loops) {
    QStringList parts;
    for (int k : loops)
        parts << QString::number(k);
    m_loops->setText(parts.join(","));
}

QList<int> DepthSweepView::loops(QString* error) const {
    std::set<int> ks;
    for (const QString& p : m_loops->text().split(',', Qt::SkipEmptyParts)) {
        bool ok = false;
        const int k = p.trimmed().toInt(&ok);
        if (!ok || k < 1 || k > 4096) {
            if (error)
                *error = tr("'%1' is not a loop count between 1 and 4096").arg(p.trimmed());
            return {};
        }
        ks.insert(k);
    }
    if (ks.empty() && error)
        *error = tr("list at least one loop count");
    return QList<int>(ks.begin(), ks.end());
}

void DepthSweepView::setModelAvailable(bool on) {
    m_modelAvailable = on;
    m_run->setEnabled(on && !m_cancel->isEnabled());
    m_run->setToolTip(on ? tr("Evaluate the prompt set at each loop count") : tr("Open a model first"));
}

void DepthSweepView::start() {
    QString error;
    const QList<int> ks = loops(&error);
    if (ks.isEmpty()) {
        setError(tr("Loops: %1.").arg(error));
        return;
    }
    if (promptSet().isEmpty()) {
        setError(tr("Choose a prompt set first."));
        return;
    }
    emit runRequested(promptSet(), ks);
}

void DepthSweepView::setRunning(bool on) {
    m_cancel->setEnabled(on);
    m_run->setEnabled(!on && m_modelAvailable);
    m_progress->setVisible(on);
    if (on) {
        m_progress->setRange(0, 0);
        m_summary->setText(tr("Running the sweep..."));
    }
}

void DepthSweepView::setProgress(int done, int total) {
    m_progress->setRange(0, total);
    m_progress->setValue(done);
    m_progress->setFormat(tr("%v / %m runs"));
}

void DepthSweepView::setError(const QString& error) {
    setRunning(false);
    m_summary->setText(error == "cancelled" ? tr("The sweep was cancelled.")
                                            : tr("<span style='color:#a01e14'><b>The sweep failed:</b> %1</span>")
                                                  .arg(error.toHtmlEscaped()));
}

void DepthSweepView::setResult(const SweepResultPtr& r) {
    setRunning(false);
    m_result = r;
    if (!r)
        return;
    const auto& ev = r->eval;
    Series acc, halt;
    acc.name = halt.name = tr("all prompts");
    acc.markers = halt.markers = true;
    acc.color = halt.color = QColor(20, 20, 20);
    for (const auto& [L, cell] : ev.byLoops) {
        acc.points << QPointF(double(L), cell.accuracy());
        if (cell.halted)
            halt.points << QPointF(double(L), cell.meanHalt());
    }
    QVector<Series> accs{acc}, halts{halt};
    std::map<int64_t, std::pair<Series, Series>> byHops;
    for (const auto& [key, cell] : ev.byHops) {
        auto& [a, h] = byHops[key.first];
        a.points << QPointF(double(key.second), cell.accuracy());
        if (cell.halted)
            h.points << QPointF(double(key.second), cell.meanHalt());
    }
    int i = 0;
    for (auto& [hops, pair] : byHops) {
        auto& [a, h] = pair;
        a.name = h.name = hops == 1 ? tr("1 hop") : tr("%1 hops").arg(hops);
        a.color = h.color = categoricalColor(i++);
        a.dashed = h.dashed = true;
        accs << a;
        halts << h;
    }
    const double hi = double(ev.loops.empty() ? 1 : ev.loops.back());
    for (auto* c : {m_accuracy, m_halting})
        c->setXRange(ev.loops.empty() ? 1 : double(ev.loops.front()), std::max(hi, double(ev.loops.front()) + 1));
    m_accuracy->setSeries(accs);
    m_accuracy->setYRange(0, 1.0);
    m_halting->setSeries(halts);
    m_halting->setYRange(0, 0);
    const QVector<QPair<double, QString>> mark{{double(r->maxLoopIters), tr("max_loop_iters")}};
    m_accuracy->setMarkers(mark);
    m_halting->setMarkers(mark);

    QStringList rows;
    for (const auto& [L, cell] : ev.byLoops)
        rows << tr("%1 loops: %2% correct, mean halting loop %3")
                    .arg(L)
                    .arg(100.0 * cell.accuracy(), 0, 'f', 1)
                    .arg(cell.halted ? QString::number(cell.meanHalt(), 'f', 2) : QStringLiteral("-"));
    m_summary->setText(tr("<b>%1</b>: %2 prompts, greedy exact match, in %3 s. %4.")
                           .arg(QFileInfo(r->promptsFile).fileName().toHtmlEscaped())
                           .arg(r->prompts)
                           .arg(r->ms / 1000.0, 0, 'f', 1)
                           .arg(rows.join("; ")));
}

QString DepthSweepView::summary() const { return m_summary->text(); }

QList<ChartHandle> DepthSweepView::charts() const {
    return {ChartHandle{"sweep-accuracy", m_accuracy->title(), m_accuracy, [this] { return m_accuracy->table(); }},
            ChartHandle{"sweep-halting", m_halting->title(), m_halting, [this] { return m_halting->table(); }}};
}

} // namespace mx
