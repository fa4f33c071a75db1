#pragma once
// The interface every view implements: it shows one immutable trace, shares the selected
// token with the rest of the window, and lists its charts for export.
#include <functional>
#include <memory>

#include <QList>
#include <QString>
#include <QWidget>

#include "datatable.h"
#include "mythos/trace.h"

namespace mx {

// One exportable chart: the widget to render and the data behind it.
struct ChartHandle {
    QString id;    // file-name friendly, e.g. "halting-heatmap"
    QString title; // human readable
    QWidget* widget = nullptr;
    std::function<DataTable()> data;
};

using TracePtr = std::shared_ptr<const mythos::Trace>;

class TraceView : public QWidget {
    Q_OBJECT
public:
    explicit TraceView(QWidget* parent = nullptr) : QWidget(parent) {}

    virtual QString viewId() const = 0;    // "halting", "stability", ...
    virtual QString viewTitle() const = 0; // tab title
    // Shows `trace` (never null); views rebuild every series from it in one pass.
    virtual void setTrace(const TracePtr& trace) = 0;
    // Batch row 0's token index (-1 = none). Views highlight it without recomputing.
    virtual void setSelectedToken(int index) = 0;
    virtual QList<ChartHandle> charts() const = 0;

    TracePtr trace() const { return m_trace; }

signals:
    void tokenSelected(int index);

protected:
    TracePtr m_trace;
};

// Helpers shared by the views.
// Display text of token i of batch row 0 (the trace's piece, or "#id").
QString tokenLabel(const mythos::Trace& tr, int i);

} // namespace mx
