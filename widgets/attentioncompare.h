#pragma once
// The Compare view's attention section: the same site (kind and loop) and head of both models
// enlarged side by side, with the selected token's query row framed in both, and per-head
// attention entropy and mean distance by loop of both models (A solid, B dashed).
#include <QWidget>

#include "mythos/viewdata.h"
#include "results.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QComboBox;
class QLabel;
class QSpinBox;
QT_END_NAMESPACE

namespace mx {

class Heatmap;
class LineChart;

class AttentionCompare : public QWidget {
    Q_OBJECT
public:
    explicit AttentionCompare(QWidget* parent = nullptr);

    // Both traces of the same tokens (either null: nothing to show); names label the sides.
    void setTraces(const TracePtr& a, const TracePtr& b, const QString& nameA, const QString& nameB);
    void setSelectedToken(int index);
    // The site shown: an index into A's sites (B shows its site of the same name, else of the
    // same stage and loop); the head is clamped to each model's head count.
    void setSite(int siteA);
    void setHead(int head);
    int siteA() const { return m_siteA; }
    int siteB() const { return m_siteB; }
    int headA() const { return m_headA; }
    int headB() const { return m_headB; }
    bool showing() const { return m_ga.heads > 0 && m_gb.heads > 0; }

    Heatmap* mapA() const { return m_mapA; }
    Heatmap* mapB() const { return m_mapB; }
    LineChart* entropyChart() const { return m_entropy; }
    LineChart* distanceChart() const { return m_distance; }
    QString note() const;
    QList<ChartHandle> charts() const;

signals:
    void tokenClicked(int index); // a query row of either map

private:
    void rebuild();
    void showWindows(const TracePtr& a, const TracePtr& b); // draws these (windows of m_fullA, m_fullB)
    void showMaps();
    DataTable mapTable(bool b) const;

    QLabel* m_note = nullptr;
    QComboBox* m_siteCombo = nullptr;
    QSpinBox* m_headSpin = nullptr;
    Heatmap* m_mapA = nullptr;
    Heatmap* m_mapB = nullptr;
    LineChart* m_entropy = nullptr;
    LineChart* m_distance = nullptr;
    QWidget* m_body = nullptr;

    TracePtr m_fullA, m_fullB; // as set
    TracePtr m_a, m_b;         // as drawn: a window of a long recorded attention part (attentionShown)
    QString m_nameA, m_nameB;
    mythos::AttentionGridData m_ga, m_gb;
    double m_top = 1;
    int m_siteA = -1, m_siteB = -1, m_head = 0, m_headA = 0, m_headB = 0;
    int m_selected = -1;
    bool m_sitePicked = false; // the shown site is not the default one
};

} // namespace mx
