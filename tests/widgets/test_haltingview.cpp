// HaltingView and Heatmap: every chart shows exactly the trace's numbers (hand-built and
// from the tiny MLA model), warnings for collapsed and never-halting ACT, tooltips, clicks,
// export handles, and screenshots at two window sizes.
#include <QLabel>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalSpy>
#include <cmath>
#include <memory>
#include <numeric>

#include "charts.h"
#include "haltingview.h"
#include "heatmap.h"
#include "mythos/model.h"
#include "qtest_main.h"

using namespace mx;

namespace {

QString num(double v) { return QString::number(v, 'g', 4); }

// A trace of one row of T tokens and L loops from cum p, p and weights given as [L][T].
std::shared_ptr<mythos::Trace> makeTrace(int T, int L, const std::vector<float>& p, const std::vector<float>& cum,
                                         const std::vector<float>& weight, const std::vector<int32_t>& halt,
                                         int requested = 0) {
    auto tr = std::make_shared<mythos::Trace>();
    tr->config.act_threshold = 0.99;
    tr->config.max_loop_iters = 3;
    tr->batch = 1;
    tr->seqLen = T;
    tr->nLoops = requested > 0 ? requested : L;
    tr->loopsExecuted = L;
    for (int t = 0; t < T; ++t)
        tr->ids.push_back(t + 1);
    tr->actP = p;
    tr->actCumP = cum;
    tr->actWeight = weight;
    tr->haltLoop = halt;
    tr->weightSum.assign(std::size_t(T), 0.0f);
    for (int l = 0; l < L; ++l)
        for (int t = 0; t < T; ++t)
            tr->weightSum[std::size_t(t)] += weight[std::size_t(l * T + t)];
    return tr;
}

// 5 tokens x 4 loops halting at loops 1, 2, 4, never, never (max_loop_iters = 3).
std::shared_ptr<mythos::Trace> handTrace() {
    // clang-format off
    const std::vector<float> cum = {
        0.995f, 0.5f,   0.1f,  0.2f, 0.05f,
        0.995f, 0.999f, 0.3f,  0.4f, 0.10f,
        0.995f, 0.999f, 0.6f,  0.6f, 0.15f,
        0.995f, 0.999f, 0.99f, 0.8f, 0.20f};
    const std::vector<float> p = {
        0.995f, 0.5f,   0.1f,  0.2f, 0.05f,
        0.3f,   0.499f, 0.2f,  0.2f, 0.05f,
        0.3f,   0.3f,   0.3f,  0.2f, 0.05f,
        0.3f,   0.3f,   0.39f, 0.2f, 0.05f};
    const std::vector<float> w = {
        1.0f,   0.5f,   0.1f,  0.2f, 0.05f,
        0.0f,   0.5f,   0.2f,  0.2f, 0.05f,
        0.0f,   0.0f,   0.3f,  0.2f, 0.05f,
        0.0f,   0.0f,   0.4f,  0.2f, 0.05f};
    // clang-format on
    auto tr = makeTrace(5, 4, p, cum, w, {1, 2, 4, 0, 0});
    tr->pieces = {"The", " cat", " sat", "\n", "on"};
    return tr;
}

// Every token halts at `loop` (0 = never) except the first `others` tokens, which halt at 2.
std::shared_ptr<mythos::Trace> uniformTrace(int T, int L, int loop, int others, int requested) {
    std::vector<float> p(std::size_t(T * L), 0.1f), cum(std::size_t(T * L)), w(std::size_t(T * L), 0.0f);
    std::vector<int32_t> halt(static_cast<std::size_t>(T));
    for (int t = 0; t < T; ++t) {
        const int h = t < others ? 2 : loop;
        halt[std::size_t(t)] = h;
        for (int l = 0; l < L; ++l)
            cum[std::size_t(l * T + t)] = h > 0 && l + 1 >= h ? 1.0f : 0.1f * float(l + 1);
        if (h > 0 && h <= L)
            w[std::size_t((h - 1) * T + t)] = 1.0f;
    }
    return makeTrace(T, L, p, cum, w, halt, requested);
}

std::shared_ptr<mythos::Trace> modelTrace(int64_t loops) {
    auto model = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
    auto tr = std::make_shared<mythos::Trace>();
    std::vector<int32_t> ids;
    for (int i = 1; i <= 12; ++i)
        ids.push_back(i);
    mythos::ForwardOptions fo;
    fo.nLoops = loops;
    fo.trace = tr.get();
    model->forward(ids, 1, int64_t(ids.size()), fo);
    return tr;
}

// Whether a label visible in the view holds `text`.
bool warningShown(const QWidget& view, const QString& text) {
    for (const auto* label : view.findChildren<QLabel*>())
        if (label->isVisibleTo(&view) && label->text().contains(text))
            return true;
    return false;
}

// The checks every trace must pass: each chart shows the trace's numbers.
void checkShowsTrace(HaltingView& view, const mythos::Trace& tr) {
    const int T = int(tr.seqLen), L = int(tr.loopsExecuted);
    QCOMPARE(view.neverHaltedBarValue(), L + 1);

    const auto& bars = view.haltingBars()->values();
    QCOMPARE(int(bars.size()), T);
    QCOMPARE(view.haltingBars()->categories().size(), T);
    for (int t = 0; t < T; ++t) {
        const int h = tr.haltLoop[std::size_t(t)];
        QCOMPARE(bars[t], double(h > 0 ? h : L + 1));
    }

    const Heatmap* hm = view.heatmap();
    QCOMPARE(hm->rows(), T);
    QCOMPARE(hm->cols(), L);
    for (int t = 0; t < T; ++t)
        for (int l = 0; l < L; ++l)
            QCOMPARE(hm->value(t, l), double(tr.actCumP[tr.at(l, 0, t)]));
    QCOMPARE(hm->thresholdContour(), double(float(tr.config.act_threshold)));
    QVector<int> marked;
    for (int l = 0; l < L; ++l)
        if (l + 1 > tr.config.max_loop_iters)
            marked << l;
    QCOMPARE(hm->markedColumns(), marked);

    const auto& ws = view.weightSumChart()->values();
    QCOMPARE(int(ws.size()), T);
    for (int t = 0; t < T; ++t)
        QCOMPARE(ws[t], double(tr.weightSum[std::size_t(t)]));

    QVector<double> counts(L + 1, 0.0);
    for (int t = 0; t < T; ++t) {
        const int h = tr.haltLoop[std::size_t(t)];
        counts[h > 0 ? h - 1 : L] += 1;
    }
    QCOMPARE(view.histogram()->values(), counts);
    QCOMPARE(view.histogram()->categories().size(), L + 1);
    QCOMPARE(view.histogram()->categories().front(), QString("1"));
    QCOMPARE(view.histogram()->categories().back(), QString("never"));

    QCOMPARE(view.tokenText()->count(), T);
    for (int t = 0; t < T; ++t) {
        const int h = tr.haltLoop[std::size_t(t)];
        QCOMPARE(view.tokenText()->tokenColor(t), h > 0 ? HaltingText::loopColor(h, L) : neverHaltedColor());
    }

    // Export handles: the five charts, each table holding what is shown.
    const auto charts = view.charts();
    QStringList ids;
    for (const auto& c : charts) {
        ids << c.id;
        QVERIFY(c.widget);
        QVERIFY(!c.title.isEmpty());
    }
    QCOMPARE(ids,
             QStringList({"halting-text", "halting-bars", "halting-heatmap", "act-weight-sum", "halting-histogram"}));
    const DataTable text = charts[0].data();
    QCOMPARE(int(text.rows.size()), T);
    for (int t = 0; t < T; ++t) {
        QCOMPARE(text.rows[t][0].toInt(), t);
        QCOMPARE(text.rows[t][2].toInt(), int(tr.haltLoop[std::size_t(t)]));
    }
    const DataTable barT = charts[1].data();
    QCOMPARE(int(barT.rows.size()), T);
    QCOMPARE(barT.columns, QStringList({"category", "value", "token"}));
    for (int t = 0; t < T; ++t) {
        QCOMPARE(barT.rows[t][0].toString(), QString::number(t));
        QCOMPARE(barT.rows[t][1].toDouble(), bars[t]);
        QCOMPARE(barT.rows[t][2].toString(), text.rows[t][1].toString());
    }
    const DataTable heatT = charts[2].data();
    QCOMPARE(heatT.columns, QStringList({"token", "loop", "cum. p"}));
    QCOMPARE(int(heatT.rows.size()), T * L);
    for (int t = 0; t < T; ++t)
        for (int l = 0; l < L; ++l) {
            const auto& row = heatT.rows[t * L + l];
            QCOMPARE(row[1].toString(), QString::number(l + 1));
            QCOMPARE(row[2].toDouble(), double(tr.actCumP[tr.at(l, 0, t)]));
        }
    const DataTable wT = charts[3].data();
    QCOMPARE(int(wT.rows.size()), T);
    for (int t = 0; t < T; ++t)
        QCOMPARE(wT.rows[t][1].toDouble(), double(tr.weightSum[std::size_t(t)]));
    const DataTable hT = charts[4].data();
    QCOMPARE(int(hT.rows.size()), L + 1);
    for (int k = 0; k <= L; ++k)
        QCOMPARE(hT.rows[k][1].toDouble(), counts[k]);
}

} // namespace

class HaltingViewTest : public QObject {
    Q_OBJECT
private slots:
    void viewIdentity() {
        HaltingView view;
        QCOMPARE(view.viewId(), QString("halting"));
        QCOMPARE(view.viewTitle(), QString("ACT halting"));
        QCOMPARE(view.charts().size(), 5);
    }

    void handTraceShowsItsNumbers() {
        HaltingView view;
        auto tr = handTrace();
        view.setTrace(tr);
        checkShowsTrace(view, *tr);
        QCOMPARE(view.haltingBars()->values(), QVector<double>({1, 2, 4, 5, 5}));
        QCOMPARE(view.histogram()->values(), QVector<double>({1, 1, 0, 1, 2}));
        QCOMPARE(view.histogram()->categories(), QStringList({"1", "2", "3", "4", "never"}));
        QCOMPARE(view.heatmap()->markedColumns(), QVector<int>({3}));
        const auto& ws = view.weightSumChart()->values();
        QCOMPARE(ws[3], double(0.2f + 0.2f + 0.2f + 0.2f));
        QVERIFY(ws[4] < 1.0);
        QVERIFY(view.warning().isEmpty());
        QVERIFY(view.histogram()->table().title.size() > 0);
        // Summary: mean halting loop over the 3 halted tokens = 7/3, 2 of 5 never halted.
        QVERIFY2(view.summary().contains("2.33"), qPrintable(view.summary()));
        QVERIFY2(view.summary().contains("2 of 5 (40.0%)"), qPrintable(view.summary()));
        QVERIFY2(view.summary().contains("4 of 4 requested"), qPrintable(view.summary()));
    }

    void heatmapTooltipHasTheNumbers() {
        HaltingView view;
        auto tr = handTrace();
        view.setTrace(tr);
        for (int t = 0; t < 5; ++t)
            for (int l = 0; l < 4; ++l) {
                const QString tip = view.heatmap()->tooltipText(t, l);
                const std::size_t i = tr->at(l, 0, t);
                QVERIFY2(tip.contains(QString("token %1 ").arg(t)), qPrintable(tip));
                QVERIFY2(tip.contains(QString("loop %1:").arg(l + 1)), qPrintable(tip));
                QVERIFY2(tip.contains("p = " + num(tr->actP[i])), qPrintable(tip));
                QVERIFY2(tip.contains("cumulative p = " + num(tr->actCumP[i])), qPrintable(tip));
                QVERIFY2(tip.contains("weight = " + num(tr->actWeight[i])), qPrintable(tip));
            }
        const QString tip = view.heatmap()->tooltip(1, 1);
        // The piece " cat" with its leading space made visible, as on the token chips.
        QVERIFY2(tip.contains("'\u2423cat'"), qPrintable(tip));
        QVERIFY2(tip.contains("p = 0.499, cumulative p = 0.999, weight = 0.5"), qPrintable(tip));
        QVERIFY2(tip.contains("halted at loop 2"), qPrintable(tip));
        QVERIFY2(view.heatmap()->tooltip(3, 3).contains("never halted"), qPrintable(view.heatmap()->tooltip(3, 3)));
        QVERIFY2(view.heatmap()->tooltip(0, 3).contains("extrapolation"), qPrintable(view.heatmap()->tooltip(0, 3)));
        QVERIFY(!view.heatmap()->tooltip(0, 2).contains("extrapolation"));
    }

    void collapseWarning() {
        HaltingView view;
        // Every token halts at loop 1, so the loop stopped after one of 4 requested loops.
        view.setTrace(uniformTrace(10, 1, 1, 0, 4));
        QVERIFY2(view.warning().contains("collapsed"), qPrintable(view.warning()));
        QVERIFY(view.warning().contains("10 of 10"));
        QVERIFY(warningShown(view, "collapsed"));
        QVERIFY(view.histogram()->table().rows.size() == 2);
        QVERIFY(view.summary().contains("1 of 4 requested"));
        // 9 of 10 at loop 1 is still a collapse; 8 of 10 is not.
        view.setTrace(uniformTrace(10, 4, 1, 1, 4));
        QVERIFY2(view.warning().contains("9 of 10"), qPrintable(view.warning()));
        view.setTrace(uniformTrace(10, 4, 1, 2, 4));
        QVERIFY2(view.warning().isEmpty(), qPrintable(view.warning()));
        view.setTrace(handTrace());
        QVERIFY(view.warning().isEmpty());
        QVERIFY(!warningShown(view, "collapsed"));
    }

    void neverHaltsWarning() {
        HaltingView view;
        auto tr = uniformTrace(6, 4, 0, 0, 4);
        view.setTrace(tr);
        QVERIFY2(view.warning().contains("never halts"), qPrintable(view.warning()));
        QVERIFY(warningShown(view, "never halts"));
        QCOMPARE(view.haltingBars()->values(), QVector<double>(6, 5.0));
        QCOMPARE(view.histogram()->values(), QVector<double>({0, 0, 0, 0, 6}));
        checkShowsTrace(view, *tr);
        view.setTrace(handTrace());
        QVERIFY(view.warning().isEmpty());
    }

    void realModelTrace() {
        auto tr = modelTrace(8);
        QCOMPARE(tr->loopsExecuted, int64_t(8));
        HaltingView view;
        view.setTrace(tr);
        checkShowsTrace(view, *tr);
        // The tiny model runs past its max_loop_iters = 4: loops 5..8 are extrapolation.
        QCOMPARE(view.heatmap()->markedColumns(), QVector<int>({4, 5, 6, 7}));
        const double total = std::accumulate(view.histogram()->values().begin(), view.histogram()->values().end(), 0.0);
        QCOMPARE(total, 12.0);
    }

    void degenerateTraces() {
        // No tokens, and tokens without loops: nothing to show, nothing to crash on.
        HaltingView view;
        view.resize(800, 500);
        auto empty = makeTrace(0, 0, {}, {}, {}, {});
        view.setTrace(empty);
        QVERIFY(view.haltingBars()->values().isEmpty());
        QCOMPARE(view.heatmap()->rows(), 0);
        QCOMPARE(view.histogram()->values(), QVector<double>({0}));
        QVERIFY(view.warning().isEmpty());
        auto noLoops = makeTrace(3, 0, {}, {}, {}, {0, 0, 0});
        view.setTrace(noLoops);
        QCOMPARE(view.heatmap()->cols(), 0);
        QCOMPARE(view.haltingBars()->values(), QVector<double>({1, 1, 1}));
        QVERIFY(view.warning().contains("never halts"));
        view.setSelectedToken(2);
        QVERIFY(!view.grab().isNull());
        for (const auto& c : view.charts())
            QVERIFY(!c.data().columns.isEmpty());
    }

    void clicksSelectTokens() {
        HaltingView view;
        view.resize(1280, 800);
        view.setTrace(handTrace());
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QSignalSpy spy(&view, &TraceView::tokenSelected);

        Heatmap* hm = view.heatmap();
        QTest::mouseClick(hm, Qt::LeftButton, {}, hm->cellRect(2, 1).center());
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.takeFirst().at(0).toInt(), 2);
        QCOMPARE(view.selectedToken(), 2);
        QCOMPARE(hm->highlightedRow(), 2);
        QCOMPARE(view.tokenText()->selected(), 2);
        QCOMPARE(hm->cellAt(hm->cellRect(4, 3).center()), qMakePair(4, 3));
        QCOMPARE(hm->cellAt(QPoint(0, 0)), qMakePair(-1, -1));

        HaltingText* text = view.tokenText();
        QVERIFY(!text->tokenRect(3).isEmpty());
        QTest::mouseClick(text, Qt::LeftButton, {}, text->tokenRect(3).center());
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.takeFirst().at(0).toInt(), 3);
        QCOMPARE(hm->highlightedRow(), 3);
        // Clicking the selected token again clears the selection.
        QTest::mouseClick(text, Qt::LeftButton, {}, text->tokenRect(3).center());
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.takeFirst().at(0).toInt(), -1);
        QCOMPARE(hm->highlightedRow(), -1);

        // Selection from outside highlights without emitting and keeps the bars' values.
        const auto before = view.haltingBars()->values();
        view.setSelectedToken(1);
        QCOMPARE(spy.count(), 0);
        QCOMPARE(hm->highlightedRow(), 1);
        QCOMPARE(text->selected(), 1);
        QCOMPARE(view.haltingBars()->values(), before);
        view.setSelectedToken(99);
        QCOMPARE(view.selectedToken(), -1);
    }

    void heatmapSizes() {
        // 1x1 up to 200x64 cells: geometry round-trips and the image paints.
        for (auto [rows, cols] : {std::pair{1, 1}, std::pair{5, 4}, std::pair{200, 64}}) {
            Heatmap hm;
            QVector<double> v(rows * cols);
            QStringList rl, cl;
            for (int r = 0; r < rows; ++r)
                rl << QString("%1 tok").arg(r);
            for (int c = 0; c < cols; ++c)
                cl << QString::number(c + 1);
            for (int i = 0; i < v.size(); ++i)
                v[i] = double(i % (cols + 3)) / (cols + 2);
            if (v.size() > 1)
                v[1] = std::numeric_limits<double>::quiet_NaN();
            hm.setData(rows, cols, v, rl, cl);
            hm.setTitle(QString("%1 x %2").arg(rows).arg(cols));
            hm.setAxisTitles("token", "loop");
            hm.setLegendTitle("value");
            hm.setThresholdContour(0.8, "threshold 0.8");
            hm.setRange(0, 1);
            if (cols > 3)
                hm.setMarkedColumns({cols - 2, cols - 1}, "extrapolation");
            hm.setHighlightedRow(rows / 2);
            hm.resize(700, 500);
            QCOMPARE(hm.rows(), rows);
            QCOMPARE(hm.cols(), cols);
            const QImage img = hm.grab().toImage();
            QVERIFY(!img.isNull());
            QVERIFY(img.save(QString("/tmp/halting_heatmap_%1x%2.png").arg(rows).arg(cols)));
            for (int r : {0, rows / 2, rows - 1})
                for (int c : {0, cols - 1}) {
                    const QRect cell = hm.cellRect(r, c);
                    QVERIFY(!cell.isEmpty());
                    if (cell.width() >= 3 && cell.height() >= 3)
                        QCOMPARE(hm.cellAt(cell.center()), qMakePair(r, c));
                }
            QCOMPARE(hm.table().rows.size(), qsizetype(rows) * cols);
            if (v.size() > 1) {
                QVERIFY(std::isnan(hm.value(0, 1)));
                QVERIFY(!hm.table().rows[1][2].isValid());
            }
            QVERIFY(std::isnan(hm.value(rows, 0)));
            QSignalSpy spy(&hm, &Heatmap::rowClicked);
            QTest::mouseClick(&hm, Qt::LeftButton, {}, hm.cellRect(rows - 1, 0).center());
            QCOMPARE(spy.count(), 1);
            QCOMPARE(spy.first().at(0).toInt(), rows - 1);
        }
    }

    void screenshots() {
        auto real = modelTrace(8);
        for (auto [w, h] : {std::pair{1280, 800}, std::pair{800, 500}}) {
            HaltingView view;
            view.resize(w, h);
            view.setTrace(real);
            view.setSelectedToken(4);
            view.show();
            QVERIFY(QTest::qWaitForWindowExposed(&view));
            QTest::qWait(50);
            QVERIFY(view.grab().save(QString("/tmp/halting_%1x%2.png").arg(w).arg(h)));
            // The page scrolls vertically only when the window is small, never horizontally.
            auto* page = view.findChild<QScrollArea*>();
            QVERIFY(page);
            QVERIFY(!page->horizontalScrollBar()->isVisible());
            QCOMPARE(page->verticalScrollBar()->isVisible(), h < 800);
            for (const auto& c : view.charts())
                QVERIFY(c.widget->grab().save(QString("/tmp/halting_%1_%2x%3.png").arg(c.id).arg(w).arg(h)));
        }
        HaltingView hand;
        hand.resize(1280, 800);
        hand.setTrace(handTrace());
        hand.setSelectedToken(2);
        hand.show();
        QVERIFY(QTest::qWaitForWindowExposed(&hand));
        QVERIFY(hand.grab().save("/tmp/halting_hand_1280x800.png"));
        hand.setTrace(uniformTrace(10, 1, 1, 0, 4));
        QTest::qWait(20);
        QVERIFY(hand.grab().save("/tmp/halting_collapsed_1280x800.png"));

        // A long prompt: 120 tokens, 32 loops.
        const int T = 120, L = 32;
        std::vector<float> p(std::size_t(T * L)), cum(std::size_t(T * L)), wt(std::size_t(T * L), 0.0f);
        std::vector<int32_t> halt(std::size_t(T), 0);
        for (int t = 0; t < T; ++t) {
            const float rate = 0.01f + 0.09f * float((t * 37) % 17) / 16.0f;
            float c = 0;
            for (int l = 0; l < L; ++l) {
                const float prev = c;
                if (halt[std::size_t(t)] == 0)
                    c += rate;
                p[std::size_t(l * T + t)] = rate;
                cum[std::size_t(l * T + t)] = c;
                if (halt[std::size_t(t)] == 0) {
                    if (c >= 0.99f) {
                        halt[std::size_t(t)] = l + 1;
                        wt[std::size_t(l * T + t)] = 1.0f - prev;
                    } else {
                        wt[std::size_t(l * T + t)] = rate;
                    }
                }
            }
        }
        auto big = makeTrace(T, L, p, cum, wt, halt);
        big->config.max_loop_iters = 16;
        for (int t = 0; t < T; ++t)
            big->pieces.push_back(t % 7 == 0 ? " the" : (t % 5 == 0 ? "\n" : " word" + std::to_string(t)));
        HaltingView bigView;
        bigView.resize(1280, 800);
        bigView.setTrace(big);
        bigView.setSelectedToken(30);
        bigView.show();
        QVERIFY(QTest::qWaitForWindowExposed(&bigView));
        checkShowsTrace(bigView, *big);
        QVERIFY(bigView.grab().save("/tmp/halting_long_1280x800.png"));
    }
};

MX_QTEST_MAIN(HaltingViewTest)
#include "test_haltingview.moc"
