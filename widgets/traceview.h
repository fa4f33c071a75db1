#pragma once
// The interface every view implements: it shows one immutable trace, shares the selected
// token with the rest of the window, and lists its charts for export.
#include <functional>
#include <memory>

#include <QColor>
#include <QLabel>
#include <QList>
#include <QString>
#include <QWidget>

#include "datatable.h"
#include "mythos/trace.h"
#include "results.h"

QT_BEGIN_NAMESPACE
class QScrollArea;
class QTableWidget;
class QVBoxLayout;
QT_END_NAMESPACE

namespace mx {

// One exportable chart: the widget to render and the data behind it.
struct ChartHandle {
    QString id;    // file-name friendly, e.g. "halting-heatmap"
    QString title; // human readable
    QWidget* widget = nullptr;
    std::function<DataTable()> data;
};

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

    // The optional trace parts (docs/inside-the-loop.md) the view draws: the window asks the
    // worker for them while the view is on screen, so the others cost nothing.
    struct Needs {
        bool lens = false;
        bool trajectory = false;
        bool attention = false;
        int attentionFrom = 0, attentionTo = 0; // the window the view shows (to = 0: from the start)
    };
    virtual Needs needs() const { return {}; }
    // Whether `tr` holds everything needs() asks for (a run that lacks it is redone).
    bool hasNeeds(const mythos::Trace& tr) const;

    TracePtr trace() const { return m_trace; }
    // Batch row 0's selected token as the view keeps it (-1 = none).
    int selectedToken() const { return m_selected; }

signals:
    void tokenSelected(int index);

protected:
    // The view's page: a frameless, resizable scroll area filling the view (stored in
    // `scroll`) around the returned content widget, which the caller gives a layout.
    QWidget* makeScrollPage(QScrollArea*& scroll);
    // The page's column layout, with the margins and spacing every view uses.
    static QVBoxLayout* makePageColumn(QWidget* content);
    // The view's summary text: word-wrapped and selectable, added to `column`.
    static QLabel* addSummaryLabel(QWidget* content, QVBoxLayout* column);
    // What a view says before its first trace.
    static QString noTraceText();
    // A read-only table without row numbers, for the figures beside the charts.
    static QTableWidget* makeReadOnlyTable(QWidget* parent, const QString& objectName);
    // A scroll area holding the prompt's token chips: a long prompt scrolls there, the charts
    // stay in view. The view refits it (fitTokenTextArea) when its viewport resizes: the view
    // is the viewport's event filter.
    QScrollArea* makeTokenTextArea(QWidget* content, QWidget* chips);
    // Fits the area to the chips' height, capped at about five lines of chips (each `lineStep`
    // pixels high with its gap) or a quarter of the view, whichever is more.
    void fitTokenTextArea(QScrollArea* area, const QWidget* chips, int lineStep);

    // Keeps `index` as the selection (-1 when it is outside [0, tokens)); whether that changed
    // it: a view's setSelectedToken then updates what shows the selection.
    bool keepSelection(int index, int tokens);
    // A token picked inside the view (a click on a chart or the text): shown as
    // setSelectedToken shows it, then told to the window.
    void selectFromUi(int index);

    TracePtr m_trace;
    int m_selected = -1;
};

// Helpers shared by the views.
// Display text of token i of batch row 0 (the trace's piece, or "#id").
QString tokenLabel(const mythos::Trace& tr, int i);
// tokenLabel with control characters (byte-level tokenizers produce them) drawn as their
// Unicode pictures; never empty.
QString displayToken(const mythos::Trace& tr, int i);
// The same colour marks the selected token in every chart (heatmaps frame its row in it).
inline QColor selectionColor() { return QColor(230, 0, 160); }
// Whether black text would be hard to read on `c`.
inline bool isDark(const QColor& c) { return 0.299 * c.redF() + 0.587 * c.greenF() + 0.114 * c.blueF() < 0.55; }

// A word-wrapped label whose height follows its width inside a scroll area (no
// height-for-width support needed from the layout).
class WrapLabel : public QLabel {
public:
    explicit WrapLabel(QWidget* parent) : QLabel(parent) {
        setWordWrap(true);
        setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Fixed);
    }
    bool hasHeightForWidth() const override { return false; }
    QSize sizeHint() const override { return {200, heightForWidth(std::max(width(), 200))}; }
    QSize minimumSizeHint() const override { return sizeHint(); }

protected:
    void resizeEvent(QResizeEvent* e) override {
        QLabel::resizeEvent(e);
        updateGeometry();
    }
};

} // namespace mx
