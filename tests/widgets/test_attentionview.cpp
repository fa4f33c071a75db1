// AttentionView: the grid holds one map per head and site of a real run of the bundled demo
// models, the enlarged map is the trace's probabilities with the tokens' text, clicks and keys
// move it, the selected token's row is framed everywhere, the window the view asks for follows
// the selection (never more than kAttentionWindow positions), the loop charts are the grid
// data's numbers, export tables are complete, and hostile traces draw without crashing.
#include <QSignalSpy>
#include <cmath>
#include <limits>
#include <memory>

#include "attentionview.h"
#include "charts.h"
#include "heatmap.h"
#include "inferenceworker.h"
#include "mainwindow.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"
#include "qtest_main.h"

using namespace mx;

namespace {

const char* kPrompt = "c=8;n=1;k=c;y=6;d=n;b=0;z=5;?d";

// A run of a demo model on `text` at `loops` loops with the attention of positions [from, to)
// (to = 0: up to kAttentionWindow positions from `from`), as the window's worker makes it.
std::shared_ptr<mythos::Trace> traceOf(const std::string& model, const std::string& text, int loops, int from = 0,
                                       int to = 0) {
    const std::string dir = std::string(MYTHOS_SOURCE_DIR) + "/resources/models/" + model;
    auto m = mythos::Model::open(dir);
    const auto tok = mythos::Tokenizer::load(dir + "/tokenizer.json", m->config().vocab_size);
    const std::vector<int32_t> ids = tok.encode(text);
    const int64_t T = int64_t(ids.size());
    auto run = m->deepRun(ids, 1, T, loops);
    auto tr = std::make_shared<mythos::Trace>();
    m->logitsAt(run, loops, tr.get());
    if (to <= 0)
        to = int(std::min<int64_t>(T, from + kAttentionWindow));
    tr->attention.from = from;
    tr->attention.to = to;
    tr->attention.sites = m->attention(run, loops, 0, {}, from, to);
    for (int32_t id : ids)
        tr->pieces.push_back(tok.piece(id));
    return tr;
}

// A prompt of about n tokens (the demo tokenizer has one token per character).
std::string longPrompt(int n) {
    std::string s;
    while (int(s.size()) < n)
        s += "a=1;b=a;";
    s.resize(std::size_t(n));
    return s;
}

} // namespace

class TestAttentionView : public QObject {
    Q_OBJECT
private slots:
    void gridHasOneMapPerHeadAndSite();
    void enlargedDefaultsToTheLastLoopAndShowsTheTrace();
    void clicksAndKeysMoveTheEnlargedMap();
    void theSelectedRowIsFramedEverywhere();
    void windowFollowsTheSelection();
    void aLongRecordedTraceShowsAWindowOfIt();
    void theWindowAsksForTheViewsWindow();
    void loopChartsAreTheGridData();
    void tooltipsNameTokensAndProbability();
    void exportTablesAreComplete();
    void withoutAttentionAMessage();
    void hostileTracesDrawWithoutCrashing();
};

void TestAttentionView::gridHasOneMapPerHeadAndSite() {
    auto tr = traceOf("demo_mla", kPrompt, 8);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    QVERIFY(v.hasAttention());
    const int H = int(tr->config.n_heads), S = int(tr->attention.sites.size());
    QCOMPARE(S, int(tr->config.prelude_layers + 8 + tr->config.coda_layers));
    QCOMPARE(v.grid()->heads(), H);
    QCOMPARE(v.grid()->sites(), S);
    QCOMPARE(v.grid()->mapCount(), H * S);
    QCOMPARE(v.grid()->window(), int(tr->seqLen));
    // Laid out in the view, maps do not overlap and every one is inside the widget.
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    QVERIFY(v.grid()->width() <= 1400 * 3 / 5);
    QCOMPARE(v.grid()->height(), v.grid()->heightForWidth(v.grid()->width()));
    for (int s = 0; s < S; ++s)
        for (int h = 0; h < H; ++h) {
            const QRect r = v.grid()->mapRect(s, h);
            QVERIFY(v.grid()->rect().contains(r));
            QCOMPARE(v.grid()->mapAt(r.center()), qMakePair(s, h));
            if (s + 1 < S)
                QVERIFY(!r.intersects(v.grid()->mapRect(s + 1, h)));
        }
}

void TestAttentionView::enlargedDefaultsToTheLastLoopAndShowsTheTrace() {
    auto tr = traceOf("demo_mla", kPrompt, 8);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    const auto& g = v.gridData();
    QCOMPARE(v.currentHead(), 0);
    QCOMPARE(QString::fromStdString(g.names[std::size_t(v.currentSite())]), QString("recurrent_loop_7"));
    QVERIFY(v.enlarged()->title().contains("loop 8"));
    const int W = int(tr->seqLen);
    QCOMPARE(v.enlarged()->rows(), W);
    QCOMPARE(v.enlarged()->cols(), W);
    const auto m = mythos::attentionMatrix(*tr, std::size_t(v.currentSite()), 0);
    for (int i = 0; i < W; ++i) {
        double sum = 0;
        for (int j = 0; j < W; ++j) {
            if (j > i) {
                QVERIFY(std::isnan(v.enlarged()->value(i, j))); // masked: empty
                continue;
            }
            QCOMPARE(v.enlarged()->value(i, j), m[std::size_t(i * W + j)]);
            sum += v.enlarged()->value(i, j);
        }
        QVERIFY2(std::abs(sum - 1.0) < 1e-4, "the whole row is in the window");
    }
    // Rows and columns carry the tokens' text.
    QCOMPARE(v.enlarged()->colLabel(2), displayToken(*tr, 2));
    QVERIFY(v.enlarged()->rowLabel(2).contains(displayToken(*tr, 2)));
    // The default follows the loop count, keeping the head; a site picked by hand stays.
    v.setCurrent(v.currentSite(), 2);
    v.setTrace(traceOf("demo_mla", kPrompt, 5));
    QCOMPARE(QString::fromStdString(v.gridData().names[std::size_t(v.currentSite())]), QString("recurrent_loop_4"));
    QCOMPARE(v.currentHead(), 2);
    v.setCurrent(1, 3);
    v.setTrace(traceOf("demo_mla", kPrompt, 8));
    QCOMPARE(v.currentSite(), 1);
    QCOMPARE(v.currentHead(), 3);
}

void TestAttentionView::clicksAndKeysMoveTheEnlargedMap() {
    auto tr = traceOf("demo_mla", kPrompt, 4);
    AttentionView v;
    v.resize(1400, 900);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    v.setTrace(tr);
    AttentionGrid* g = v.grid();
    QSignalSpy spy(g, &AttentionGrid::currentChanged);
    QTest::mouseClick(g, Qt::LeftButton, {}, g->mapRect(0, 3).center());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(v.currentSite(), 0);
    QCOMPARE(v.currentHead(), 3);
    QVERIFY(v.enlarged()->title().startsWith("Head 3, prelude 0"));
    const auto m = mythos::attentionMatrix(*tr, 0, 3);
    QCOMPARE(v.enlarged()->value(5, 1), m[std::size_t(5 * tr->seqLen + 1)]);
    QTest::keyClick(g, Qt::Key_Right);
    QCOMPARE(v.currentSite(), 1);
    QTest::keyClick(g, Qt::Key_Up);
    QCOMPARE(v.currentHead(), 2);
    QTest::keyClick(g, Qt::Key_Left);
    QTest::keyClick(g, Qt::Key_Left); // stops at the first site
    QCOMPARE(v.currentSite(), 0);
    QVERIFY(v.enlarged()->title().startsWith("Head 2, prelude 0"));
    // The loop charts mark the enlarged loop.
    v.setCurrent(2, 0);
    QVERIFY(v.enlarged()->title().contains("loop 2"));
}

void TestAttentionView::theSelectedRowIsFramedEverywhere() {
    auto tr = traceOf("demo_mla", kPrompt, 4);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    QCOMPARE(v.grid()->highlightedRow(), -1);
    QCOMPARE(v.enlarged()->highlightedRow(), -1);
    v.setSelectedToken(12);
    QCOMPARE(v.grid()->highlightedRow(), 12);
    QCOMPARE(v.enlarged()->highlightedRow(), 12);
    QVERIFY2(v.summary().contains("(position 12)"), qPrintable(v.summary()));
    v.setCurrent(0, 1);
    QCOMPARE(v.enlarged()->highlightedRow(), 12); // survives a change of the enlarged map
    // A click on a query row of the enlarged map selects that token.
    QSignalSpy spy(&v, &TraceView::tokenSelected);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    QTest::mouseClick(v.enlarged(), Qt::LeftButton, {}, v.enlarged()->cellRect(7, 0).center());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(0).toInt(), 7);
    QCOMPARE(v.grid()->highlightedRow(), 7);

    // In a window that starts later, the row is the position minus the window's start.
    auto late = traceOf("demo_mla", longPrompt(90), 2, 20);
    QCOMPARE(late->attention.to, 84);
    v.setTrace(late);
    v.setSelectedToken(30);
    QCOMPARE(v.grid()->highlightedRow(), 10);
    QCOMPARE(v.enlarged()->highlightedRow(), 10);
    v.setSelectedToken(5); // before the window: no row
    QCOMPARE(v.grid()->highlightedRow(), -1);
    QCOMPARE(v.enlarged()->highlightedRow(), -1);
}

void TestAttentionView::windowFollowsTheSelection() {
    // The rule alone.
    QCOMPARE(attentionWindowFor(100, 70, 0, -1), qMakePair(7, 71));
    QCOMPARE(attentionWindowFor(100, -1, 0, -1), qMakePair(0, 64));
    QCOMPARE(attentionWindowFor(100, 5, 0, -1), qMakePair(0, 64));
    QCOMPARE(attentionWindowFor(100, 99, 0, -1), qMakePair(36, 100));
    QCOMPARE(attentionWindowFor(100, 70, 7, 71), qMakePair(7, 71)); // the shown window holds it
    QCOMPARE(attentionWindowFor(100, 40, 7, 71), qMakePair(7, 71));
    QCOMPARE(attentionWindowFor(100, 80, 7, 71), qMakePair(17, 81)); // moved outside
    QCOMPARE(attentionWindowFor(100, 3, 7, 71), qMakePair(0, 64));
    QCOMPARE(attentionWindowFor(20, 3, 7, 20), qMakePair(0, 20)); // a shorter prompt: the whole of it
    QCOMPARE(attentionWindowFor(0, 3, 0, -1), qMakePair(0, 0));
    for (int T : {1, 30, 64, 65, 96, 500})
        for (int sel = -1; sel < T; sel += 7) {
            const auto w = attentionWindowFor(T, sel, 0, -1);
            QVERIFY(w.second - w.first <= kAttentionWindow);
            QVERIFY(w.first >= 0 && w.second <= T && w.first < w.second);
            if (sel >= 0)
                QVERIFY(sel >= w.first && sel < w.second);
        }

    // The view: 90 tokens (max_seq_len is 96), attention of the first 64.
    auto tr = traceOf("demo_mla", longPrompt(90), 2);
    QCOMPARE(tr->seqLen, 90);
    AttentionView v;
    v.resize(1400, 900);
    TraceView::Needs n = v.needs();
    QVERIFY(n.attention);
    QCOMPARE(n.attentionTo, 0); // before any trace: the worker's first window
    v.setTrace(tr);
    n = v.needs();
    QCOMPARE(qMakePair(n.attentionFrom, n.attentionTo), qMakePair(0, 64));
    QVERIFY(v.hasNeeds(*tr));
    v.setSelectedToken(70);
    n = v.needs();
    QCOMPARE(qMakePair(n.attentionFrom, n.attentionTo), qMakePair(7, 71));
    QVERIFY(!v.hasNeeds(*tr)); // the window asks again
    auto moved = traceOf("demo_mla", longPrompt(90), 2, 7, 71);
    v.setTrace(moved);
    QVERIFY(v.hasNeeds(*moved));
    QCOMPARE(v.grid()->highlightedRow(), 63);
    v.setSelectedToken(30); // still inside: no new run
    QVERIFY(v.hasNeeds(*moved));
    QVERIFY(v.summary().contains("Positions 7-70"));
}

// A recorded trace of a long prompt with the attention of every position (mythos-cli trace
// --attention): the view draws kAttentionWindow positions of it around the selected token,
// with the recorded probabilities, and needs no new run.
void TestAttentionView::aLongRecordedTraceShowsAWindowOfIt() {
    auto tr = traceOf("demo_mla", longPrompt(90), 2, 0, 90);
    QCOMPARE(tr->attentionEnd(), 90);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    QCOMPARE(v.grid()->window(), kAttentionWindow);
    QCOMPARE(v.gridData().from, 0);
    QVERIFY(v.hasNeeds(*tr));
    v.setSelectedToken(80);
    QCOMPARE(v.gridData().from, 80 + 1 - kAttentionWindow);
    QCOMPARE(v.gridData().to, 81);
    QCOMPARE(v.grid()->window(), kAttentionWindow);
    QCOMPARE(v.grid()->highlightedRow(), kAttentionWindow - 1);
    QCOMPARE(v.enlarged()->rows(), kAttentionWindow);
    QVERIFY(v.hasNeeds(*tr));
    QVERIFY(v.summary().contains("Positions 17-80"));
    // The enlarged map is the recorded probabilities of that window.
    const int W0 = 90, from = 17, H = int(tr->config.n_heads);
    const auto& probs = tr->attention.sites[std::size_t(v.currentSite())].probs;
    QCOMPARE(int(probs.size()), H * W0 * W0);
    for (int i : {0, 30, 63})
        for (int j = 0; j <= i; j += 9)
            QCOMPARE(v.enlarged()->value(i, j), double(probs[std::size_t((from + i) * W0 + from + j)]));
    QCOMPARE(v.enlarged()->rowLabel(63), QStringLiteral("80 %1").arg(displayToken(*tr, 80)));
    // Inside the shown window the selection moves the frame only; back before it, the window.
    v.setSelectedToken(40);
    QCOMPARE(v.gridData().from, 17);
    QCOMPARE(v.grid()->highlightedRow(), 23);
    v.setSelectedToken(5);
    QCOMPARE(v.gridData().from, 0);
    QCOMPARE(v.grid()->highlightedRow(), 5);
    // A lying recorded part (a site's probabilities of the wrong size) draws that site empty.
    auto lying = std::make_shared<mythos::Trace>(*tr);
    lying->attention.sites[0].probs.resize(100);
    v.setTrace(lying);
    QCOMPARE(v.grid()->window(), kAttentionWindow);
    QVERIFY(v.hasAttention());
    v.setCurrent(0, 0);
    QVERIFY(std::isnan(v.enlarged()->value(3, 1)));
    v.setSelectedToken(85);
    QCOMPARE(v.gridData().to, 86);
}

// End to end: the window's worker computes the window the view on screen asks for, and runs
// again only when the selection leaves it.
void TestAttentionView::theWindowAsksForTheViewsWindow() {
    QCoreApplication::setOrganizationName("MythosExplorerTests");
    MainWindow win;
    win.setInteractive(false);
    win.resize(1280, 800);
    win.show();
    QVERIFY(win.selectView("attention"));
    QSignalSpy ready(&win, &MainWindow::modelReady);
    QSignalSpy shown(&win, &MainWindow::traceShown);
    {
        const QSignalBlocker b(&win);
        win.setPrompt(QString::fromStdString(longPrompt(90)));
    }
    win.openModel(QStringLiteral(MYTHOS_SOURCE_DIR "/resources/models/demo_mla"));
    QVERIFY(waitForSignal(ready, 60000));
    QVERIFY(waitForSignal(shown, 60000));
    auto tr = win.currentTrace();
    QCOMPARE(tr->seqLen, 90);
    QCOMPARE(qMakePair(tr->attention.from, tr->attention.to), qMakePair(int64_t(0), int64_t(64)));
    auto* view = qobject_cast<AttentionView*>(win.currentView());
    QVERIFY(view);
    QCOMPARE(view->grid()->window(), 64);

    shown.clear();
    win.setSelectedToken(70);
    QVERIFY(waitForSignal(shown, 60000));
    tr = win.currentTrace();
    QCOMPARE(qMakePair(tr->attention.from, tr->attention.to), qMakePair(int64_t(7), int64_t(71)));
    QCOMPARE(view->grid()->highlightedRow(), 63);
    QCOMPARE(view->enlarged()->rowLabel(0), QString("7 %1").arg(displayToken(*tr, 7)));

    shown.clear();
    win.setSelectedToken(30); // inside the window: nothing to run
    QTest::qWait(300);
    QCOMPARE(shown.count(), 0);
    QCOMPARE(view->grid()->highlightedRow(), 23);

    // Another view asks for nothing; coming back to this one with the selection outside its
    // window runs again.
    QVERIFY(win.selectView("halting"));
    win.setSelectedToken(2);
    QTest::qWait(300);
    QCOMPARE(shown.count(), 0);
    QVERIFY(win.selectView("attention"));
    QVERIFY(waitForSignal(shown, 60000));
    tr = win.currentTrace();
    QCOMPARE(qMakePair(tr->attention.from, tr->attention.to), qMakePair(int64_t(0), int64_t(64)));
}

void TestAttentionView::loopChartsAreTheGridData() {
    auto tr = traceOf("demo_gqa", kPrompt, 6);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    const auto g = mythos::attentionGridData(*tr);
    const int H = int(g.heads), S = int(g.names.size());
    for (auto [chart, values] : {std::pair{v.entropyChart(), &g.entropy}, std::pair{v.distanceChart(), &g.distance}}) {
        const auto& series = chart->series();
        QCOMPARE(series.size(), H);
        for (int h = 0; h < H; ++h) {
            QCOMPARE(series[h].name, QString("head %1").arg(h));
            QCOMPARE(series[h].points.size(), 6);
            int k = 0;
            for (int s = 0; s < S; ++s) {
                if (!g.recurrent[std::size_t(s)])
                    continue;
                QCOMPARE(series[h].points[k].x(), double(g.loops[std::size_t(s)]));
                QCOMPARE(series[h].points[k].y(), (*values)[std::size_t(s * H + h)]);
                ++k;
            }
        }
    }
    // The summary names the most local and the most diffuse head.
    QVERIFY2(v.summary().contains("most local") && v.summary().contains("most diffuse"), qPrintable(v.summary()));
    QVERIFY(!v.summary().contains("before the window")); // the window starts at 0
    auto late = traceOf("demo_gqa", longPrompt(90), 3, 30);
    v.setTrace(late);
    QVERIFY2(v.summary().contains("Keys before the window take up to"), qPrintable(v.summary()));
}

void TestAttentionView::tooltipsNameTokensAndProbability() {
    auto tr = traceOf("demo_mla", kPrompt, 3);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    const double p = v.enlarged()->value(9, 4);
    const QString want = QString("query '%1' (position 9) -> key '%2' (position 4): p = %3")
                             .arg(displayToken(*tr, 9), displayToken(*tr, 4), QString::number(p, 'f', 3));
    QCOMPARE(v.enlarged()->tooltipText(9, 4), want);
    QVERIFY(v.enlarged()->tooltipText(4, 9).contains("masked"));
    const QString gridTip = v.grid()->tooltipText(v.currentSite(), 1);
    QVERIFY2(gridTip.startsWith("head 1, loop 3 (recurrent_loop_2): entropy "), qPrintable(gridTip));
    const double e = v.gridData().entropy[std::size_t(v.currentSite() * v.gridData().heads + 1)];
    QVERIFY(gridTip.contains(QString::number(e, 'f', 3)));
}

void TestAttentionView::exportTablesAreComplete() {
    auto tr = traceOf("demo_mla", kPrompt, 4);
    AttentionView v;
    v.resize(1400, 900);
    v.setTrace(tr);
    const auto charts = v.charts();
    QCOMPARE(charts.size(), 4);
    QStringList ids;
    for (const auto& c : charts) {
        ids << c.id;
        QVERIFY(c.widget);
    }
    QCOMPARE(ids, (QStringList{"attention-grid", "attention-enlarged", "attention-entropy", "attention-distance"}));
    const int W = int(tr->seqLen), H = int(tr->config.n_heads), S = int(tr->attention.sites.size());
    const int causal = W * (W + 1) / 2;
    const DataTable grid = charts[0].data();
    QCOMPARE(grid.columns, (QStringList{"site", "head", "query", "key", "p"}));
    QCOMPARE(grid.rows.size(), S * H * causal);
    const DataTable big = charts[1].data();
    QCOMPARE(big.columns, grid.columns);
    QCOMPARE(big.rows.size(), causal);
    QCOMPARE(big.rows[0][0].toString(), QString("recurrent_loop_3"));
    // The last row: query W - 1, key W - 1.
    const auto m = mythos::attentionMatrix(*tr, std::size_t(v.currentSite()), 0);
    QCOMPARE(big.rows.back()[2].toInt(), W - 1);
    QCOMPARE(big.rows.back()[4].toDouble(), m.back());
    QCOMPARE(charts[2].data().rows.size(), 4 * H); // one row per head and loop
    QCOMPARE(charts[3].data().rows.size(), 4 * H);
    // Every chart renders at a report's size.
    for (const auto& c : charts) {
        const int h = c.widget->heightForWidth(900);
        QVERIFY(c.id != "attention-grid" || h > 0);
    }
}

void TestAttentionView::withoutAttentionAMessage() {
    auto tr = traceOf("demo_mla", kPrompt, 3);
    tr->attention = {};
    AttentionView v;
    v.resize(1000, 700);
    QVERIFY(v.summary().contains("No trace yet"));
    v.setTrace(tr);
    QVERIFY(!v.hasAttention());
    QVERIFY2(v.summary().contains("mythos-cli trace --attention"), qPrintable(v.summary()));
    QVERIFY(v.summary().contains("run the prompt"));
    QCOMPARE(v.grid()->mapCount(), 0);
    QVERIFY(!v.hasNeeds(*tr));
    v.setSelectedToken(3);
    QCOMPARE(v.charts().size(), 4);
    QVERIFY(v.charts()[0].data().rows.isEmpty());
    v.grab(); // paints
}

void TestAttentionView::hostileTracesDrawWithoutCrashing() {
    AttentionView v;
    v.resize(900, 600);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
    // NaN and infinite probabilities.
    auto tr = traceOf("demo_mla", kPrompt, 3);
    for (auto& s : tr->attention.sites)
        for (std::size_t i = 0; i < s.probs.size(); i += 3)
            s.probs[i] = i % 2 ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    v.setTrace(tr);
    v.setSelectedToken(2);
    QVERIFY(v.hasAttention());
    QVERIFY(!v.grab().isNull());
    QVERIFY(v.enlarged()->tooltipText(0, 0).contains("query"));
    // One token: W = 1.
    auto one = traceOf("demo_mla", "c", 2);
    QCOMPARE(one->seqLen, 1);
    v.setTrace(one);
    v.setSelectedToken(0);
    QCOMPARE(v.enlarged()->rows(), 1);
    QCOMPARE(v.grid()->highlightedRow(), 0);
    QVERIFY(!v.grab().isNull());
    // Probabilities of the wrong size, a window past the prompt, no heads: no maps, no crash.
    auto bad = traceOf("demo_mla", kPrompt, 2);
    bad->attention.sites[0].probs.resize(3);
    v.setTrace(bad);
    QVERIFY(!v.grab().isNull());
    auto past = traceOf("demo_mla", kPrompt, 2);
    past->attention.from = past->attention.to = 5; // W = 0 (a "to" of 0 would mean the row's end)
    v.setTrace(past);
    QVERIFY(!v.hasAttention());
    QVERIFY(!v.grab().isNull());
    auto noHeads = traceOf("demo_mla", kPrompt, 2);
    noHeads->config.n_heads = 0;
    v.setTrace(noHeads);
    QVERIFY(!v.hasAttention());
    QVERIFY(!v.grab().isNull());
    for (const auto& c : v.charts())
        c.data(); // tables of an empty view
}

MX_QTEST_MAIN(TestAttentionView)
#include "test_attentionview.moc"
