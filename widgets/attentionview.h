#pragma once
// "Attention": the causal attention probabilities of every attention application (site) of
// batch row 0 over a window of at most kAttentionWindow positions around the selected token.
// A grid of small query x key heatmaps (heads x sites in execution order: prelude blocks, each
// loop of the recurrent block, coda blocks), one of them enlarged with the tokens' text, and
// per-head entropy and mean attention distance by loop (docs/inside-the-loop.md).
#include <QImage>
#include <QPair>
#include <QStringList>
#include <QVector>

#include "mythos/viewdata.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QGridLayout;
class QScrollArea;
QT_END_NAMESPACE

namespace mx {

class Heatmap;
class LineChart;
struct Series;

// The window [from, to) of positions an attention view asks for, for a prompt of seqLen tokens
// with token `selected` selected (-1 = none), given the window shown now ([curFrom, curTo),
// empty = none): the shown window while it holds the selection and is as wide as it can be,
// else the kAttentionWindow positions ending at the selected token (the first ones when none).
// {0, 0} when seqLen is unknown (the worker then takes the first positions).
QPair<int, int> attentionWindowFor(int seqLen, int selected, int curFrom, int curTo);
// What a view showing `trace`'s attention around the selected token asks the worker for: the
// attention part over attentionWindowFor's window (the Attention and Compare views).
TraceView::Needs attentionNeeds(const TracePtr& trace, int selected);
// What an attention view draws of `trace`: the trace itself when its recorded window is at
// most kAttentionWindow positions wide (what the window computes), else
// mythos::attentionWindowTrace over kAttentionWindow positions of the recorded window that
// hold the selected token (ending at it; the first ones without a selection). `shown`, the
// window drawn now for this trace, stays while it holds the selection. A recorded trace of
// a long prompt thus draws 64 positions and follows the selection.
TracePtr attentionShown(const TracePtr& trace, int selected, const TracePtr& shown = nullptr);
// The column header of site s: "prelude 0", "loop 3", "coda 0".
QString attentionSiteLabel(const mythos::AttentionGridData& g, int site);
// The site shown enlarged by default: the last recurrent loop (else the last site); -1 without sites.
int defaultAttentionSite(const mythos::AttentionGridData& g);
// Shows head `head` of site `site` of `tr` in `map`: query rows x key columns labelled with
// the tokens' text, hover text "query 'x' (position i) -> key 'y' (position j): p = 0.123",
// colour range [0, top] and the selected token's row highlighted.
void showAttentionMatrix(Heatmap* map, const mythos::Trace& tr, const mythos::AttentionGridData& g, int site, int head,
                         double top, int selected);
// One line per head over the recurrent sites: entropy (distance = false) or mean attention
// distance by loop. `prefix` goes before "head h"; `dashed` for a second model.
QVector<Series> attentionLoopSeries(const mythos::AttentionGridData& g, bool distance, const QString& prefix = {},
                                    bool dashed = false);
// The colour of a probability normalised to [0, 1] (a square-root scale), in every attention map.
QColor attentionColor(double t);
// The largest finite probability of the trace's attention sites (at least 1e-6; 1 without).
double attentionTop(const mythos::Trace& tr);

// Every (site, head) of a trace as small heatmaps in one painted widget: heads in rows, sites in
// columns, with headers. The current cell is framed and shown enlarged by the view; a click or
// the arrow keys change it.
class AttentionGrid : public QWidget {
    Q_OBJECT
public:
    explicit AttentionGrid(QWidget* parent = nullptr);

    void setData(const mythos::Trace& tr, const mythos::AttentionGridData& g, double top);
    void clear();
    void setCurrent(int site, int head);
    int currentSite() const { return m_site; }
    int currentHead() const { return m_head; }
    void setHighlightedRow(int row); // query row in the window (-1 = none)
    int highlightedRow() const { return m_row; }

    int sites() const { return int(m_siteLabels.size()); }
    int heads() const { return m_heads; }
    int mapCount() const { return int(m_images.size()); }
    int window() const { return m_w; }
    QRect mapRect(int site, int head) const;
    QPair<int, int> mapAt(QPoint pos) const; // (site, head); (-1, -1) outside
    QString tooltipText(int site, int head) const;
    DataTable table() const; // long format: site, head, query, key, p

    // The height that shows every map at its size for `width`.
    int heightForWidth(int width) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

signals:
    void currentChanged(int site, int head);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;
    void mouseMoveEvent(QMouseEvent* e) override;
    void keyPressEvent(QKeyEvent* e) override;

private:
    int cellSize(int width) const; // side of one small map at that width
    int cellSize() const;          // ... fitting the widget's width and height
    int headerWidth() const;
    int headerHeight() const;

    QVector<QImage> m_images; // [S][H]
    QVector<QVector<double>> m_values;
    QStringList m_siteLabels, m_siteNames;
    QVector<double> m_entropy, m_distance; // [S][H]
    int m_heads = 0, m_w = 0, m_from = 0;
    int m_site = -1, m_head = 0, m_row = -1;
};

class AttentionView : public TraceView {
    Q_OBJECT
public:
    explicit AttentionView(QWidget* parent = nullptr);

    QString viewId() const override { return QStringLiteral("attention"); }
    QString viewTitle() const override { return tr("Attention"); }
    void setTrace(const TracePtr& trace) override;
    void setSelectedToken(int index) override;
    QList<ChartHandle> charts() const override;
    Needs needs() const override;

    // The enlarged map: site index in the trace's sites and head.
    void setCurrent(int site, int head);
    int currentSite() const { return m_grid->currentSite(); }
    int currentHead() const { return m_grid->currentHead(); }
    bool hasAttention() const { return m_data.heads > 0; }
    const mythos::AttentionGridData& gridData() const { return m_data; }

    QString summary() const;
    AttentionGrid* grid() const { return m_grid; }
    Heatmap* enlarged() const { return m_big; }
    LineChart* entropyChart() const { return m_entropy; }
    LineChart* distanceChart() const { return m_distance; }

protected:
    void resizeEvent(QResizeEvent* e) override;

private:
    void showTrace(); // draws m_shown
    void fitGrid();
    void showEnlarged();
    void showLoopCharts();
    void showSummary();
    DataTable enlargedTable() const;

    QScrollArea* m_scroll = nullptr;
    QLabel* m_summary = nullptr;
    AttentionGrid* m_grid = nullptr;
    Heatmap* m_big = nullptr;
    LineChart* m_entropy = nullptr;
    LineChart* m_distance = nullptr;
    QWidget* m_body = nullptr; // everything but the summary: hidden without attention
    QGridLayout* m_bodyLayout = nullptr;

    TracePtr m_shown; // what is drawn: the trace, or a window of its attention (attentionShown)
    mythos::AttentionGridData m_data;
    double m_top = 1;
    bool m_sitePicked = false; // the enlarged site is not the default one
};

} // namespace mx
