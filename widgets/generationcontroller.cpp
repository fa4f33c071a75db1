#include "generationcontroller.h"

#include <algorithm>

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTimer>

#include "mainwindow.h"

namespace mx {

GenerationController::GenerationController(MainWindow& window) : QObject(&window), m_win(window) {}

QWidget* GenerationController::buildBar(QWidget* parent) {
    auto* bar = new QWidget(parent);
    bar->setObjectName("generationBar");
    auto* lay = new QHBoxLayout(bar);
    lay->setContentsMargins(0, 0, 0, 0);
    m_button = new QPushButton(tr("Generate"), bar);
    m_button->setObjectName("generateButton");
    m_button->setToolTip(tr("Generate tokens after the prompt with a KV cache at the current loop count (Ctrl+G); "
                            "Esc stops"));
    m_tokens = new QSpinBox(bar);
    m_tokens->setObjectName("generateTokens");
    m_tokens->setRange(1, 4096);
    m_tokens->setValue(16);
    m_tokens->setSuffix(tr(" tokens"));
    m_mode = new QComboBox(bar);
    m_mode->setObjectName("generateMode");
    m_mode->addItems({tr("greedy"), tr("sampled")});
    m_temp = new QDoubleSpinBox(bar);
    m_temp->setObjectName("generateTemperature");
    m_temp->setRange(0.05, 5.0);
    m_temp->setSingleStep(0.05);
    m_temp->setValue(1.0);
    m_temp->setPrefix(tr("T "));
    m_temp->setToolTip(tr("Sampling temperature"));
    m_topK = new QSpinBox(bar);
    m_topK->setObjectName("generateTopK");
    m_topK->setRange(0, 1 << 20);
    m_topK->setValue(50);
    m_topK->setPrefix(tr("top-k "));
    m_topK->setToolTip(tr("Sample among the k most likely tokens (0 = all)"));
    m_seed = new QSpinBox(bar);
    m_seed->setObjectName("generateSeed");
    m_seed->setRange(0, 1 << 30);
    m_seed->setPrefix(tr("seed "));
    m_progress = new QProgressBar(bar);
    m_progress->setObjectName("generateProgress");
    m_progress->setFormat(tr("%v / %m tokens"));
    m_progress->setMaximumWidth(220);
    m_progress->hide();
    for (QWidget* w : {static_cast<QWidget*>(m_button), static_cast<QWidget*>(m_tokens), static_cast<QWidget*>(m_mode),
                       static_cast<QWidget*>(m_temp), static_cast<QWidget*>(m_topK), static_cast<QWidget*>(m_seed),
                       static_cast<QWidget*>(m_progress)})
        lay->addWidget(w);
    lay->addStretch(1);
    auto syncSampling = [this] {
        const bool sampled = m_mode->currentIndex() == 1;
        m_temp->setEnabled(sampled);
        m_topK->setEnabled(sampled);
        m_seed->setEnabled(sampled);
    };
    connect(m_mode, qOverload<int>(&QComboBox::currentIndexChanged), this, syncSampling);
    syncSampling();
    connect(m_button, &QPushButton::clicked, this, [this] {
        if (m_generating)
            m_win.cancelRun();
        else
            generateFromBar();
    });
    return bar;
}

void GenerationController::generateFromBar() { generate(m_tokens->value()); }

void GenerationController::setSampling(bool greedy, double temperature, int topK, quint64 seed) {
    m_mode->setCurrentIndex(greedy ? 0 : 1);
    m_temp->setValue(temperature);
    m_topK->setValue(topK);
    m_seed->setValue(int(seed));
}

void GenerationController::generate(int tokens) {
    if (!m_win.m_info || m_win.m_recorded) {
        m_win.showError(tr("Cannot generate"), tr("Open a model first."));
        return;
    }
    if (m_win.prompt().isEmpty()) {
        m_win.showError(tr("Cannot generate"), tr("Type a prompt first."));
        return;
    }
    m_win.m_debounce.stop();
    RunRequest r = m_win.newRequest();
    r.newTokens = std::max(1, tokens);
    r.sampling.greedy = m_mode->currentIndex() == 0;
    r.sampling.temperature = m_temp->value();
    r.sampling.topK = m_topK->value();
    r.sampling.seed = quint64(m_seed->value());
    m_win.m_requests.track(RequestTracker::Kind::Generation, r.id);
    m_generating = true;
    m_prompt = r.prompt;
    m_text.clear();
    m_win.m_prompt->setReadOnly(true);
    m_button->setText(tr("Stop"));
    m_progress->setRange(0, r.newTokens);
    m_progress->setValue(0);
    m_progress->show();
    m_win.m_statusRun->setText(tr("generating %1 tokens at %2 loops...").arg(r.newTokens).arg(r.loops));
    m_win.worker()->submit(std::move(r));
}

void GenerationController::handleStep(quint64 id, int step, int total, const TracePtr& trace, const QString& text) {
    if (!m_generating || !m_win.m_requests.isCurrent(RequestTracker::Kind::Generation, id))
        return;
    m_text = text;
    m_win.showTrace(trace);
    m_progress->setMaximum(total);
    m_progress->setValue(step);
    m_win.m_statusRun->setText(
        tr("generating: %1 of %2 tokens at %3 loops (Esc stops)").arg(step).arg(total).arg(trace->nLoops));
    emit m_win.generationProgress(step, total);
}

bool GenerationController::handleFinished(const RunResultPtr& r) {
    if (!r->generation)
        return false;
    m_win.showTrace(r->trace);
    m_text = r->generatedText;
    end(true);
    const double perToken = r->generated.empty() ? 0 : r->ms / double(r->generated.size());
    m_win.m_statusRun->setText(tr("generated %1 tokens at %2 loops in %3 ms (%4 ms per token, prefill included); "
                                  "changing the loop count re-runs the whole sequence")
                                   .arg(r->generated.size())
                                   .arg(r->trace->nLoops)
                                   .arg(r->ms, 0, 'f', 0)
                                   .arg(perToken, 0, 'f', 1));
    return true;
}

void GenerationController::handleFailed(quint64 id) {
    if (m_generating && m_win.m_requests.isCurrent(RequestTracker::Kind::Generation, id))
        end(false);
}

void GenerationController::handleCancelled(quint64 id) { handleFailed(id); }

void GenerationController::end(bool completed) {
    m_generating = false;
    m_button->setText(tr("Generate"));
    m_progress->hide();
    m_win.m_prompt->setReadOnly(false);
    // The generated text joins the prompt (without a new run: the views already show it), so
    // that the next change runs over the whole sequence.
    if (!m_text.isEmpty() && m_win.prompt() == m_prompt) {
        const QSignalBlocker block(m_win.m_prompt);
        m_win.m_prompt->setPlainText(m_prompt + m_text);
        m_win.m_prompt->moveCursor(QTextCursor::End);
    }
    if (!completed)
        m_win.m_statusRun->setText(tr("generation stopped after %1 tokens").arg(m_progress->value()));
    emit m_win.generationFinished(completed);
}

} // namespace mx
