#include "depthsweepview.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>
#include <functional>
#include <optional>
#include <set>

#include "charts.h"
#include "mythos/errors.h"
#include "mythos/intervention.h"
#include "mythos/lens.h"

namespace mx {

DepthSweepView::DepthSweepView(QWidget* parent) : TraceView(parent) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);

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

    auto* controls2 = new QHBoxLayout;
    auto* rulesLabel = new QLabel(tr("E&xit rules:"), content);
    m_rulesEdit = new QLineEdit(QStringLiteral("kl<0.01, entropy<0.1, stable:2"), content);
    m_rulesEdit->setObjectName("sweepExitRules");
    m_rulesEdit->setToolTip(tr("Rules that stop a token's loop early, besides ACT (always measured): kl<EPS (KL "
                               "between successive loops), entropy<EPS, stable:K (top-1 unchanged for K loops). "
                               "A token exiting at loop t predicts its state's top-1 there."));
    rulesLabel->setBuddy(m_rulesEdit);
    auto* ivLabel = new QLabel(tr("&Intervention:"), content);
    m_intervention = new QLineEdit(content);
    m_intervention->setObjectName("sweepIntervention");
    m_intervention->setPlaceholderText(tr("none (a JSON file, docs/inside-the-loop.md)"));
    ivLabel->setBuddy(m_intervention);
    auto* ivBrowse = new QPushButton(tr("Choose..."), content);
    controls2->addWidget(rulesLabel);
    controls2->addWidget(m_rulesEdit, 1);
    controls2->addSpacing(12);
    controls2->addWidget(ivLabel);
    controls2->addWidget(m_intervention, 1);
    controls2->addWidget(ivBrowse);
    lay->addLayout(controls2);

    m_summary = addSummaryLabel(content, lay);

    m_accuracy = new LineChart(tr("Exact-match accuracy against loop count"), tr("loops"), tr("accuracy"), content);
    m_halting =
        new LineChart(tr("Mean halting loop against loop count"), tr("loops"), tr("mean halting loop"), content);
    for (auto* c : {m_accuracy, m_halting}) {
        c->setIntegerX(true);
        c->setMinimumSize(300, 280);
    }
    auto* haltRow = new QHBoxLayout;
    auto* haltLabel = new QLabel(tr("&Halting of:"), content);
    m_haltingOf = new QComboBox(content);
    m_haltingOf->setObjectName("sweepHaltingOf");
    m_haltingOf->addItem(tr("the answer token"));
    m_haltingOf->addItem(tr("every prompt token"));
    m_haltingOf->setToolTip(tr("The answer token is the prompt's last: its prediction is the first answer "
                               "character, so its halting loop is the work the question needed. Most other "
                               "prompt tokens are easy whatever the question."));
    haltLabel->setBuddy(m_haltingOf);
    haltRow->addStretch(1);
    haltRow->addWidget(haltLabel);
    haltRow->addWidget(m_haltingOf);
    auto* grid = new QGridLayout;
    grid->addLayout(haltRow, 0, 1);
    grid->addWidget(m_accuracy, 1, 0);
    grid->addWidget(m_halting, 1, 1);
    m_rules = new LineChart(tr("Exit rules: accuracy against mean loops used (answer token)"), tr("mean loops used"),
                            tr("accuracy"), content);
    m_rules->setToolTip(tr("One point per loop count of the sweep: the rule's accuracy on the first answer token "
                           "against the loops it used. Up and to the left is better: as accurate with fewer "
                           "loops. ACT exits at its halting loop; the others on the state lens."));
    m_rules->setMinimumSize(300, 280);
    m_haltConv = makeReadOnlyTable(content, "sweepHaltConv");
    m_haltConv->setMinimumHeight(200);
    grid->addWidget(m_rules, 2, 0);
    grid->addWidget(m_haltConv, 2, 1);
    grid->setColumnStretch(0, 1);
    grid->setColumnStretch(1, 1);
    lay->addLayout(grid, 1);
    connect(ivBrowse, &QPushButton::clicked, this, &DepthSweepView::chooseIntervention);

    connect(browse, &QPushButton::clicked, this, &DepthSweepView::choose);
    connect(m_run, &QPushButton::clicked, this, &DepthSweepView::start);
    connect(m_cancel, &QPushButton::clicked, this, &DepthSweepView::cancelRequested);
    connect(m_haltingOf, &QComboBox::currentIndexChanged, this, &DepthSweepView::rebuildHalting);
    m_summary->setText(tr("Accuracy and halting of a held-out prompt set at several loop counts: does thinking "
                          "longer help, and beyond the trained depth? Choose a prompt set and run the sweep."));
    setModelAvailable(false);
    rebuildHalting();
    showNotRun();
    connect(m_loops, &QLineEdit::textChanged, this, [this] {
        if (!m_result)
            showNotRun();
    });
}

void DepthSweepView::showNotRun() {
    // Empty charts with the axes the sweep will fill, and a line saying how to fill them.
    const QList<int> ks = loops();
    const double lo = ks.isEmpty() ? 1 : ks.front(), hi = ks.isEmpty() ? 16 : std::max(ks.back(), ks.front() + 1);
    for (auto* c : {m_accuracy, m_halting}) {
        c->setSeries({});
        c->setMarkers({});
        c->setXRange(lo, hi);
        c->setNote(tr("Not run yet: press Run sweep to measure every loop count."));
    }
    m_accuracy->setYRange(0, 1.0);
    m_halting->setYRange(0, hi);
    m_rules->setSeries({});
    m_rules->setXRange(lo, hi);
    m_rules->setYRange(0, 1.0);
    m_rules->setNote(tr("Not run yet: press Run sweep to measure every exit rule."));
    m_haltConv->clear();
    m_haltConv->setRowCount(0);
    m_haltConv->setColumnCount(0);
}

QStringList DepthSweepView::exitRules(QString* error) const {
    QStringList out;
    for (const QString& part : m_rulesEdit->text().split(',', Qt::SkipEmptyParts)) {
        const QString text = part.trimmed();
        if (text.isEmpty() || text == QLatin1String("act"))
            continue;
        try {
            mythos::parseExitRule(text.toStdString());
        } catch (const std::exception& e) {
            if (error)
                *error = QString::fromStdString(e.what());
            return {};
        }
        out << text;
    }
    return out;
}

void DepthSweepView::setExitRules(const QString& text) { m_rulesEdit->setText(text); }

void DepthSweepView::setInterventionFile(const QString& file) { m_intervention->setText(file); }
QString DepthSweepView::interventionFile() const { return m_intervention->text().trimmed(); }

QString DepthSweepView::interventionJson(QString* error) const {
    const QString file = interventionFile();
    if (file.isEmpty())
        return {};
    try {
        // Parsed here so that a bad file is said at once, before the sweep starts.
        const mythos::Intervention iv = mythos::loadIntervention(file.toStdString());
        return QString::fromStdString(mythos::interventionToJson(iv).dump());
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromStdString(mythos::errorMessage(e));
        return {};
    }
}

void DepthSweepView::chooseIntervention() {
    const QString f = QFileDialog::getOpenFileName(this, tr("Choose an intervention"), interventionFile(),
                                                   tr("Interventions (*.json);;All files (*)"));
    if (!f.isEmpty())
        setInterventionFile(f);
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
    exitRules(&error);
    if (!error.isEmpty()) {
        setError(tr("Exit rules: %1.").arg(error));
        return;
    }
    interventionJson(&error);
    if (!error.isEmpty()) {
        setError(tr("Intervention: %1").arg(error));
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
    m_summary->setText(
        error == "cancelled"
            ? tr("The sweep was cancelled.")
            : tr("<span style='color:#a01e14'><b>The sweep failed:</b> %1</span>").arg(error.toHtmlEscaped()));
}

void DepthSweepView::setHaltingOf(HaltingOf h) { m_haltingOf->setCurrentIndex(h == HaltingOf::AnswerToken ? 0 : 1); }

DepthSweepView::HaltingOf DepthSweepView::haltingOf() const {
    return m_haltingOf->currentIndex() == 0 ? HaltingOf::AnswerToken : HaltingOf::EveryToken;
}

namespace {

// The halting statistic the chart shows for one cell, or nothing when no token counted halted.
std::optional<double> haltOf(const mythos::EvalCell& cell, DepthSweepView::HaltingOf of) {
    if (of == DepthSweepView::HaltingOf::AnswerToken)
        return cell.answerHalted ? std::optional<double>(cell.meanAnswerHalt()) : std::nullopt;
    return cell.halted ? std::optional<double>(cell.meanHalt()) : std::nullopt;
}

QString hopsName(int64_t hops) {
    return hops == 1 ? DepthSweepView::tr("1 hop") : DepthSweepView::tr("%1 hops").arg(hops);
}

// One chart's series: all prompts (solid), then one per hop count (dashed, with markers: a
// hop count measured at one loop count is a single point), each point `valueOf(cell)` of a
// loop count where it has one. Every hop count gets its series (and colour), even if empty,
// so colours match between the two charts.
QVector<Series> sweepSeries(const mythos::EvalResult& ev,
                            const std::function<std::optional<double>(const mythos::EvalCell&)>& valueOf) {
    Series all;
    all.name = DepthSweepView::tr("all prompts");
    all.markers = true;
    all.color = QColor(20, 20, 20);
    for (const auto& [L, cell] : ev.byLoops)
        if (auto v = valueOf(cell))
            all.points << QPointF(double(L), *v);
    QVector<Series> out{all};
    std::map<int64_t, Series> byHops;
    for (const auto& [key, cell] : ev.byHops) {
        auto& h = byHops[key.first];
        if (auto v = valueOf(cell))
            h.points << QPointF(double(key.second), *v);
    }
    int i = 0;
    for (auto& [hops, h] : byHops) {
        h.name = hopsName(hops);
        h.color = categoricalColor(i++);
        h.dashed = true;
        h.markers = true;
        out << h;
    }
    return out;
}

} // namespace

void DepthSweepView::setResult(const SweepResultPtr& r) {
    setRunning(false);
    m_result = r;
    if (!r) {
        showNotRun();
        return;
    }
    for (auto* c : {m_accuracy, m_halting})
        c->setNote({});
    const auto& ev = r->eval;
    const QVector<Series> accs =
        sweepSeries(ev, [](const mythos::EvalCell& c) { return std::optional<double>(c.accuracy()); });
    const double hi = double(ev.loops.empty() ? 1 : ev.loops.back());
    for (auto* c : {m_accuracy, m_halting})
        c->setXRange(ev.loops.empty() ? 1 : double(ev.loops.front()), std::max(hi, double(ev.loops.front()) + 1));
    m_accuracy->setSeries(accs);
    m_accuracy->setYRange(0, 1.0);
    const QVector<QPair<double, QString>> mark{{double(r->maxLoopIters), tr("max_loop_iters")}};
    m_accuracy->setMarkers(mark);
    m_halting->setMarkers(mark);
    rebuildHalting();

    QStringList rows;
    auto fmt = [](std::optional<double> v) { return v ? QString::number(*v, 'f', 2) : QStringLiteral("-"); };
    for (const auto& [L, cell] : ev.byLoops)
        rows << tr("%1 loops: %2% correct, answer token halts at loop %3 (never: %4%), prompt tokens at %5")
                    .arg(L)
                    .arg(100.0 * cell.accuracy(), 0, 'f', 1)
                    .arg(fmt(haltOf(cell, HaltingOf::AnswerToken)))
                    .arg(100.0 * cell.answerNeverHalted(), 0, 'f', 0)
                    .arg(fmt(haltOf(cell, HaltingOf::EveryToken)));
    const QString iv = r->intervention.isEmpty()
                           ? QString()
                           : tr(" <b>Under the intervention</b>: %1.").arg(r->intervention.toHtmlEscaped());
    m_summary->setText(tr("<b>%1</b>: %2 prompts, greedy exact match, in %3 s.%4 %5.")
                           .arg(QFileInfo(r->promptsFile).fileName().toHtmlEscaped())
                           .arg(r->prompts)
                           .arg(r->ms / 1000.0, 0, 'f', 1)
                           .arg(iv)
                           .arg(rows.join("; ")));
    showExitRules();
}

void DepthSweepView::showExitRules() {
    const auto& ev = m_result->eval;
    // One series per rule: a point per loop count at (mean loops used, accuracy).
    QVector<Series> series;
    int i = 0;
    double xHi = 1;
    for (const auto& rule : ev.rules) {
        Series s;
        s.name = QString::fromStdString(rule.name());
        s.color = rule.kind == mythos::ExitRule::Kind::Act ? QColor(20, 20, 20) : categoricalColor(i++);
        s.markers = true;
        for (int64_t L : ev.loops) {
            const auto it = ev.byRule.find({rule.name(), L});
            if (it == ev.byRule.end() || it->second.n == 0)
                continue;
            s.points << QPointF(it->second.meanLoops(), it->second.accuracy());
            xHi = std::max(xHi, it->second.meanLoops());
        }
        series << s;
    }
    m_rules->setNote({});
    m_rules->setSeries(series);
    m_rules->setXRange(1, std::max(2.0, std::ceil(xHi)));
    m_rules->setYRange(0, 1.0);

    const DataTable t = haltConvData();
    m_haltConv->clear();
    m_haltConv->setColumnCount(int(t.columns.size()));
    m_haltConv->setHorizontalHeaderLabels(t.columns);
    m_haltConv->setRowCount(int(t.rows.size()));
    for (int r = 0; r < int(t.rows.size()); ++r)
        for (int c = 0; c < int(t.columns.size()); ++c) {
            const QVariant& v = t.rows[r][c];
            auto* item = new QTableWidgetItem(v.typeId() == QMetaType::Double ? QString::number(v.toDouble(), 'f', 2)
                                                                              : v.toString());
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            m_haltConv->setItem(r, c, item);
        }
    m_haltConv->resizeColumnsToContents();
}

DataTable DepthSweepView::exitRuleData() const {
    DataTable t;
    t.title = m_rules->title();
    t.columns = {tr("rule"), tr("loops"), tr("mean loops used"), tr("accuracy"), tr("prompts")};
    if (!m_result)
        return t;
    for (const auto& rule : m_result->eval.rules)
        for (int64_t L : m_result->eval.loops) {
            const auto it = m_result->eval.byRule.find({rule.name(), L});
            if (it != m_result->eval.byRule.end())
                t.addRow({QString::fromStdString(rule.name()), qlonglong(L), it->second.meanLoops(),
                          it->second.accuracy(), qlonglong(it->second.n)});
        }
    return t;
}

DataTable DepthSweepView::haltConvData() const {
    DataTable t;
    t.title = tr("Answer token: halting loop against convergence loop, by hops and loops");
    t.columns = {tr("hops"), tr("loops"), tr("mean halt"), tr("mean convergence"), tr("halted before"),
                 tr("at"),   tr("after"), tr("never"),     tr("prompts")};
    if (!m_result)
        return t;
    for (const auto& [key, c] : m_result->eval.haltConv)
        t.addRow({qlonglong(key.first), qlonglong(key.second), c.meanHalt(), c.meanConv(), qlonglong(c.early),
                  qlonglong(c.same), qlonglong(c.late), qlonglong(c.never), qlonglong(c.n)});
    return t;
}

void DepthSweepView::rebuildHalting() {
    const bool answer = haltingOf() == HaltingOf::AnswerToken;
    m_halting->setTitle(answer ? tr("Halting loop of the answer token against loop count")
                               : tr("Mean halting loop of every prompt token against loop count"));
    if (!m_result)
        return;
    const auto of = haltingOf();
    const QVector<Series> halts =
        sweepSeries(m_result->eval, [of](const mythos::EvalCell& c) { return haltOf(c, of); });
    m_halting->setSeries(halts);
    m_halting->setYRange(0, 0);
}

QString DepthSweepView::summary() const { return m_summary->text(); }

QList<ChartHandle> DepthSweepView::charts() const {
    return {ChartHandle{"sweep-accuracy", m_accuracy->title(), m_accuracy, [this] { return m_accuracy->table(); }},
            ChartHandle{"sweep-halting", m_halting->title(), m_halting, [this] { return m_halting->table(); }},
            ChartHandle{"sweep-exit-rules", m_rules->title(), m_rules, [this] { return exitRuleData(); }},
            ChartHandle{"sweep-halting-vs-convergence", haltConvData().title, m_haltConv,
                        [this] { return haltConvData(); }}};
}

} // namespace mx
