#pragma once
// The effect of an intervention in the Compare view (docs/inside-the-loop.md): when model B
// is model A under an intervention, per token of the prompt how much its next-token
// distribution moved (KL), whether its top-1 changed, its halting loop in each, and the share
// of loops whose selected experts changed.
#include <QWidget>

#include "mythos/lens.h"
#include "traceview.h"

namespace mx {

class BarChart;

class InterventionEffectPanel : public QWidget {
    Q_OBJECT
public:
    explicit InterventionEffectPanel(QWidget* parent = nullptr);

    // Shows the effect when `b` is a modified run of `a`'s tokens; false (and nothing shown)
    // otherwise.
    bool setTraces(const TracePtr& a, const TracePtr& b);
    void setSelectedToken(int index);
    const mythos::InterventionEffect& effect() const { return m_effect; }
    QString summary() const;
    BarChart* routingChart() const { return m_routing; }
    ChartHandle chart() const;
    DataTable data() const; // per token: KL, top-1 of each, halting of each, routing changed

private:
    void paintBars();

    QLabel* m_summary = nullptr;
    BarChart* m_routing = nullptr;
    TracePtr m_a, m_b;
    mythos::InterventionEffect m_effect;
    int m_selected = -1;
};

} // namespace mx
