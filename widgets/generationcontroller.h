#pragma once
// The window's generation: the generation bar under the prompt, the request that generates
// tokens after the prompt, its streamed steps, and the end (completed or stopped) that joins
// the generated text to the prompt.
#include <QObject>
#include <QString>

#include "results.h"

QT_BEGIN_NAMESPACE
class QComboBox;
class QDoubleSpinBox;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QWidget;
QT_END_NAMESPACE

namespace mx {

class MainWindow;

class GenerationController : public QObject {
    Q_OBJECT
public:
    explicit GenerationController(MainWindow& window);

    // The bar (Generate/Stop, token count, greedy/sampled, temperature, top-k, seed, progress).
    QWidget* buildBar(QWidget* parent);
    void generate(int tokens);
    void generateFromBar(); // as many tokens as the bar says
    void setSampling(bool greedy, double temperature, int topK, quint64 seed);
    bool generating() const { return m_generating; }
    // Ends a generation before its result (a change of the prompt or the loop count).
    void stop() { end(false); }

    // The window's worker's answers; each returns whether it was the generation's.
    bool handleFinished(const RunResultPtr& r);
    void handleFailed(quint64 id);
    void handleCancelled(quint64 id);
    void handleStep(quint64 id, int step, int total, const TracePtr& trace, const QString& text);

private:
    void end(bool completed);

    MainWindow& m_win;
    QSpinBox* m_tokens = nullptr;
    QComboBox* m_mode = nullptr;
    QDoubleSpinBox* m_temp = nullptr;
    QSpinBox* m_topK = nullptr;
    QSpinBox* m_seed = nullptr;
    QPushButton* m_button = nullptr;
    QProgressBar* m_progress = nullptr;
    bool m_generating = false;
    QString m_prompt, m_text; // the prompt generation started from, the text so far
};

} // namespace mx
