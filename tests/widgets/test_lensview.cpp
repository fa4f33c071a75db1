// LensView on a real trace of the demo model (lens computed by the engine): the heatmap's
// cells are the lens' top-1 pieces, the markers sit at each token's convergence and halting
// loop, the scatter holds one point per token, the source switch changes the values, exit
// rules reject bad text and keep the last good rules, selection, export handles, and traces
// without a lens or with hostile values.
#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QSet>
#include <QSignalSpy>
#include <QTableWidget>
#include <cmath>
#include <limits>
#include <memory>

#include "charts.h"
#include "lensview.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"
#include "qtest_main.h"

using namespace mx;

namespace {

const char* kModel = MYTHOS_SOURCE_DIR "/resources/models/demo_mla";
const char* kPrompt = "c=8;n=1;k=c;y=6;d=n;b=0;z=5;?d";

// The prompt through the engine at K loops, with the lens (and its pieces) and trajectories.
std::shared_ptr<mythos::Trace> demoTrace(int K, bool lens = true, const std::string& prompt = kPrompt) {
    static std::unique_ptr<mythos::Model> model = mythos::Model::open(kModel);
    static std::optional<mythos::Tokenizer> tok = mythos::Tokenizer::forModel(kModel, model->config().vocab_size);
    const std::vector<int32_t> ids = tok->encode(prompt);
    const mythos::DeepRun run = model->deepRun(ids, 1, int64_t(ids.size()), K);
    auto tr = std::make_shared<mythos::Trace>();
    model->logitsAt(run, K, tr.get());
    tr->pieces.clear();
    for (int32_t id : ids)
        tr->pieces.push_back(tok->piece(id));
    if (lens) {
        tr->lens = model->lens(run, K);
        mythos::setLensPieces(tr->lens, [&](int32_t id) { return tok->piece(id); });
        tr->trajectory = mythos::trajectoryOf(run, K);
    }
    return tr;
}

// A hand-made lens of T tokens and K loops, every value NaN or odd.
std::shared_ptr<mythos::Trace> hostileTrace(int T, int K) {
    auto tr = std::make_shared<mythos::Trace>();
    tr->batch = 1;
    tr->seqLen = T;
    tr->nLoops = tr->loopsExecuted = K;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int t = 0; t < T; ++t)
        tr->ids.push_back(t);
    tr->haltLoop.assign(std::size_t(T), 0);
    tr->lens.loops = K;
    for (mythos::LensSide* s : {&tr->lens.act, &tr->lens.state}) {
        s->top1.assign(std::size_t(T * K), 3);
        s->p.assign(std::size_t(T * K), nan);
        s->entropy.assign(std::size_t(T * K), std::numeric_limits<float>::infinity());
        s->klFinal.assign(std::size_t(T * K), nan);
        s->klPrev.assign(std::size_t(T * K), -1.0f);
        s->convergence.assign(std::size_t(T), 1);
    }
    return tr;
}

QString cell(QTableWidget* t, int row, int col) { return t->item(row, col) ? t->item(row, col)->text() : QString(); }

} // namespace

class TestLensView : public QObject {
    Q_OBJECT
private slots:
    void heatmapCellsAreTheLensPieces() {
        const auto tr = demoTrace(8);
        LensView v;
        v.resize(1400, 900);
        v.setTrace(tr);
        QVERIFY(v.hasLens());
        const int T = int(tr->seqLen), K = 8;
        auto* h = v.heatmap();
        QCOMPARE(h->rows(), T);
        QCOMPARE(h->cols(), K);
        QCOMPARE(int(v.data().top1.size()), T * K);
        QSet<QString> texts;
        const int64_t N = tr->batch * tr->seqLen;
        for (int t = 0; t < T; ++t)
            for (int l = 0; l < K; ++l) {
                const int32_t id = tr->lens.act.top1[std::size_t(l * N + t)];
                QString piece;
                for (const auto& [pid, s] : tr->lens.pieces)
                    if (pid == id)
                        piece = QString::fromStdString(mythos::displayText(s));
                QVERIFY(!piece.isEmpty());
                QCOMPARE(h->cellText(t, l), piece);
                QCOMPARE(h->value(t, l), double(tr->lens.act.p[std::size_t(l * N + t)]));
                texts.insert(h->cellText(t, l));
            }
        QVERIFY(texts.size() > 1);
        // Text colour follows the cell colour: the cell colour is the heatmap's.
        QVERIFY(h->cellColor(0, 0).isValid());
        // Markers at the convergence and (clamped) halting loop of every token.
        for (int t = 0; t < T; ++t) {
            QCOMPARE(h->convergenceLoop(t), int(tr->lens.act.convergence[std::size_t(t)]));
            const int halt = tr->haltLoop[std::size_t(t)];
            QCOMPARE(h->haltingLoop(t), std::min(halt, K));
        }
        // Tooltips name the token, loop, top-1, p, entropy and both KLs.
        const QString tip = h->tooltipText(3, 2);
        for (const char* part : {"token 3", "loop 3", "p = ", "entropy", "KL to final", "KL to loop 2"})
            QVERIFY2(tip.contains(part), qPrintable(tip));
        QVERIFY(h->tooltipText(3, 0).contains("n/a"));
        QVERIFY(!v.grab().isNull());
    }

    void scatterHoldsConvergenceAgainstHalting() {
        const auto tr = demoTrace(8);
        LensView v;
        v.setTrace(tr);
        const int T = int(tr->seqLen), K = 8;
        const auto& pts = v.haltChart()->points();
        QCOMPARE(int(pts.size()), T);
        int early = 0, same = 0, late = 0, never = 0;
        for (int t = 0; t < T; ++t) {
            const int halt = tr->haltLoop[std::size_t(t)];
            QCOMPARE(pts[t].x(), double(tr->lens.act.convergence[std::size_t(t)]));
            QCOMPARE(pts[t].y(), double(halt > 0 ? halt : K + 1));
            const int conv = int(pts[t].x());
            never += halt == 0;
            early += halt > 0 && halt < conv;
            same += halt > 0 && halt == conv;
            late += halt > 0 && halt > conv;
        }
        const QString s = v.summary();
        QVERIFY2(s.contains(QStringLiteral("before convergence: %1, at it: %2, after it: %3, never: %4")
                                .arg(early)
                                .arg(same)
                                .arg(late)
                                .arg(never)),
                 qPrintable(s));
        QCOMPARE(v.haltChart()->table().rows.size(), T);
        // A click on a bubble selects one of its tokens.
        QSignalSpy spy(&v, &LensView::tokenSelected);
        v.resize(1400, 900);
        v.show();
        QVERIFY(QTest::qWaitForWindowExposed(&v));
        const QPoint at = v.haltChart()->toPixel(pts[5]).toPoint();
        QCOMPARE(v.haltChart()->tokenAt(at) >= 0, true);
        QTest::mouseClick(v.haltChart(), Qt::LeftButton, {}, at);
        QCOMPARE(spy.count(), 1);
        const int picked = spy.at(0).at(0).toInt();
        QCOMPARE(pts[picked], pts[5]);
        QCOMPARE(v.selectedToken(), picked);
    }

    void sourceSwitchChangesTheValues() {
        const auto tr = demoTrace(8);
        LensView v;
        v.setTrace(tr);
        QVector<double> act, state;
        for (int t = 0; t < v.heatmap()->rows(); ++t)
            for (int l = 0; l < v.heatmap()->cols(); ++l)
                act << v.heatmap()->value(t, l);
        v.sourceCombo()->setCurrentIndex(1);
        QCOMPARE(v.source(), mythos::LensSource::State);
        const int64_t N = tr->seqLen;
        for (int t = 0; t < v.heatmap()->rows(); ++t)
            for (int l = 0; l < v.heatmap()->cols(); ++l) {
                state << v.heatmap()->value(t, l);
                QCOMPARE(v.heatmap()->value(t, l), double(tr->lens.state.p[std::size_t(l * N + t)]));
            }
        QVERIFY(act != state);
        QVERIFY(v.heatmap()->title().contains("state alone"));
        // The metric switch colours by entropy, then KL to final.
        v.metricCombo()->setCurrentIndex(1);
        QCOMPARE(v.heatmap()->value(2, 3), double(tr->lens.state.entropy[std::size_t(3 * N + 2)]));
        v.metricCombo()->setCurrentIndex(2);
        QCOMPARE(v.heatmap()->value(2, 3), double(tr->lens.state.klFinal[std::size_t(3 * N + 2)]));
        QCOMPARE(v.colourMetric(), LensView::Metric::KlFinal);
    }

    void exitRulesRejectBadTextAndKeepTheLastGood() {
        const auto tr = demoTrace(8);
        LensView v;
        v.setTrace(tr);
        QCOMPARE(v.exitRulesEdit()->text(), QStringLiteral("kl<0.01, entropy<0.1, stable:2"));
        QCOMPARE(int(v.exitRules().size()), 4);
        QCOMPARE(v.exitRules().front().name(), std::string("act"));
        QCOMPARE(v.exitRuleTableWidget()->rowCount(), 4);
        QCOMPARE(cell(v.exitRuleTableWidget(), 0, 0), QStringLiteral("act"));
        // The table is exitRuleTable's numbers.
        const auto expected = mythos::exitRuleTable(*tr, mythos::defaultExitRules());
        for (int r = 0; r < 4; ++r) {
            QCOMPARE(cell(v.exitRuleTableWidget(), r, 1), QString::number(expected.meanLoops[std::size_t(r)], 'f', 2));
            QVERIFY(
                cell(v.exitRuleTableWidget(), r, 2).startsWith(QString::number(expected.agreeFinal[std::size_t(r)])));
        }

        QTest::keyClicks(v.exitRulesEdit(), ", stable:3");
        QCOMPARE(int(v.exitRules().size()), 5);
        QCOMPARE(v.exitRuleTableWidget()->rowCount(), 5);
        QVERIFY(v.exitRulesError().isEmpty());

        QVERIFY(!v.setExitRulesText("kl<0.01, wobble>3"));
        QVERIFY(v.exitRulesError().contains("wobble"));
        auto* err = v.findChild<QLabel*>("exitRulesError");
        QVERIFY(err && !err->isHidden());
        QVERIFY(err->text().contains("wobble"));
        QCOMPARE(int(v.exitRules().size()), 5); // the last good rules stay
        QCOMPARE(v.exitRuleTableWidget()->rowCount(), 5);
        QVERIFY(!v.setExitRulesText("kl<-1"));
        QVERIFY(!v.setExitRulesText("stable:0"));

        QVERIFY(v.setExitRulesText("act, entropy<0.5"));
        QVERIFY(err->isHidden());
        QCOMPARE(int(v.exitRules().size()), 2); // act only once
        QCOMPARE(v.exitRuleTableWidget()->rowCount(), 2);
        QVERIFY(v.setExitRulesText(""));
        QCOMPARE(int(v.exitRules().size()), 1);
    }

    void selectionHighlightsTheToken() {
        const auto tr = demoTrace(8);
        LensView v;
        v.setTrace(tr);
        QCOMPARE(v.selectedToken(), -1);
        QVERIFY(v.lossChart()->title().contains("mean over tokens"));
        QCOMPARE(cell(v.exitRuleTableWidget(), 0, 3), QStringLiteral("\u2014"));
        v.setSelectedToken(29);
        QCOMPARE(v.selectedToken(), 29);
        QCOMPARE(v.heatmap()->highlightedRow(), 29);
        QCOMPARE(v.haltChart()->selected(), 29);
        QVERIFY(v.lossChart()->title().contains("token 29"));
        // The line chart shows token 29's own entropy by loop.
        const auto& s = v.lossChart()->series();
        QCOMPARE(int(s.size()), 3);
        QCOMPARE(int(s[0].points.size()), 8);
        const int64_t N = tr->seqLen;
        QCOMPARE(s[0].points[4].y(), double(tr->lens.act.entropy[std::size_t(4 * N + 29)]));
        // The exit table names token 29's exit loop for each rule.
        const auto expected = mythos::exitRuleTable(*tr, mythos::defaultExitRules());
        for (int r = 0; r < 4; ++r)
            QCOMPARE(cell(v.exitRuleTableWidget(), r, 3),
                     QStringLiteral("loop %1 \u2192 '%2'")
                         .arg(expected.loops[std::size_t(r * N + 29)])
                         .arg(v.pieceOf(expected.tokens[std::size_t(r * N + 29)])));
        // A row click selects and announces the token.
        QSignalSpy spy(&v, &LensView::tokenSelected);
        v.resize(1400, 900);
        v.show();
        QVERIFY(QTest::qWaitForWindowExposed(&v));
        QTest::mouseClick(v.heatmap(), Qt::LeftButton, {}, v.heatmap()->cellRect(7, 2).center());
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.at(0).at(0).toInt(), 7);
        QCOMPARE(v.heatmap()->highlightedRow(), 7);
        v.setSelectedToken(-1);
        QCOMPARE(v.heatmap()->highlightedRow(), -1);
        v.setSelectedToken(1000);
        QCOMPARE(v.selectedToken(), -1);
    }

    void chartsAreUniqueAndHoldTheirRows() {
        const auto tr = demoTrace(8);
        LensView v;
        v.setTrace(tr);
        v.setSelectedToken(29);
        const int T = int(tr->seqLen), K = 8;
        const auto charts = v.charts();
        QCOMPARE(charts.size(), 4);
        QSet<QString> ids, titles;
        for (const auto& c : charts) {
            ids.insert(c.id);
            titles.insert(c.title);
            QVERIFY(c.widget);
            const DataTable t = c.data();
            for (const auto& row : t.rows)
                QCOMPARE(row.size(), t.columns.size());
        }
        QCOMPARE(ids.size(), charts.size());
        QCOMPARE(titles.size(), charts.size());
        QCOMPARE(charts[0].data().rows.size(), T * K);
        QCOMPARE(charts[1].data().rows.size(), T);
        QCOMPARE(charts[2].data().rows.size(), 3 * K);
        const DataTable rules = charts[3].data();
        QCOMPARE(rules.rows.size(), 4);
        QCOMPARE(rules.rows[0][4].toInt(), 29);
        // The heatmap table carries the piece beside the id.
        const DataTable cells = charts[0].data();
        QCOMPARE(cells.rows[29 * K + 7][4].toString(), v.heatmap()->cellText(29, 7));
    }

    void aTraceWithoutLensSaysSo() {
        LensView v;
        v.resize(900, 600);
        v.setTrace(demoTrace(4, false));
        QVERIFY(!v.hasLens());
        auto* msg = v.findChild<QLabel*>("lensMessage");
        QVERIFY(msg && !msg->isHidden());
        QVERIFY(msg->text().contains("no logit lens"));
        QCOMPARE(v.heatmap()->rows(), 0);
        QVERIFY(!v.heatmap()->isVisibleTo(&v)); // the message, not empty charts
        QCOMPARE(v.haltChart()->points().size(), 0);
        QCOMPARE(v.exitRuleTableWidget()->rowCount(), 0);
        v.setSelectedToken(2);
        QCOMPARE(v.selectedToken(), -1);
        for (const auto& c : v.charts())
            QVERIFY(c.data().rows.isEmpty() || c.id == "lens-entropy-kl");
        QVERIFY(!v.grab().isNull());
        // A lens trace afterwards clears the message.
        v.setTrace(demoTrace(4));
        QVERIFY(msg->isHidden());
        QVERIFY(v.heatmap()->isVisibleTo(&v));
    }

    // For looking at: the state lens by entropy, and a long prompt at many loops.
    void screenshots() {
        LensView v;
        v.resize(1000, 700);
        v.setTrace(demoTrace(8));
        v.setSource(mythos::LensSource::State);
        v.setMetric(LensView::Metric::Entropy);
        v.setSelectedToken(4);
        QVERIFY(v.grab().save("/tmp/lens_state_entropy_1000x700.png"));
        std::string longPrompt;
        for (int i = 0; i < 3; ++i) // 93 of the demo model's 96 positions
            longPrompt += std::string(kPrompt) + ";";
        const auto tr = demoTrace(16, true, longPrompt);
        v.setTrace(tr);
        v.setMetric(LensView::Metric::KlFinal);
        v.setSelectedToken(int(tr->seqLen) - 1);
        v.resize(1280, 800);
        QCOMPARE(v.heatmap()->rows(), int(tr->seqLen));
        QCOMPARE(v.heatmap()->cols(), 16);
        QTest::qWait(20); // Qt Charts lays out its new axes on the next event loop pass
        QVERIFY(v.grab().save("/tmp/lens_long_1280x800.png"));
        for (const auto& c : v.charts())
            QVERIFY(c.widget->grab().save(QStringLiteral("/tmp/lens_%1.png").arg(c.id)));
    }

    void hostileTracesDrawWithoutCrash() {
        for (auto [T, K] : {std::pair{1, 1}, std::pair{3, 1}, std::pair{1, 5}, std::pair{40, 16}}) {
            LensView v;
            v.resize(700, 500);
            v.setTrace(hostileTrace(T, K));
            QVERIFY(v.hasLens());
            QCOMPARE(v.heatmap()->rows(), T);
            QCOMPARE(v.heatmap()->cellText(0, 0), QStringLiteral("#3")); // no pieces
            v.setSelectedToken(T - 1);
            for (int m = 0; m < 3; ++m) {
                v.metricCombo()->setCurrentIndex(m);
                v.sourceCombo()->setCurrentIndex(m % 2);
                QVERIFY(!v.grab().isNull());
            }
            for (const auto& c : v.charts())
                c.data();
            QVERIFY(v.haltChart()->points().size() == T);
        }
        // A lens whose arrays are short is treated as absent.
        auto bad = hostileTrace(4, 3);
        bad->lens.act.top1.resize(2);
        LensView v;
        v.setTrace(bad);
        QVERIFY(!v.hasLens());
        QVERIFY(!v.grab().isNull());
    }
};

MX_QTEST_MAIN(TestLensView)
#include "test_lensview.moc"
