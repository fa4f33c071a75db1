// TrajectoryView on a real trace of the demo model: each token's orbit is the trace's PCA
// coordinates by loop, the axes name the explained variance, the step and cosine heatmaps
// hold the trace's numbers, selection and clicks, export handles, and traces without
// trajectories or with hostile values.
#include <QLabel>
#include <QSet>
#include <QSignalSpy>
#include <cmath>
#include <limits>
#include <memory>
#include <tuple>

#include "heatmap.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/tokenizer.h"
#include "qtest_main.h"
#include "trajectoryview.h"

using namespace mx;

namespace {

const char* kModel = MYTHOS_SOURCE_DIR "/resources/models/demo_mla";
const char* kPrompt = "c=8;n=1;k=c;y=6;d=n;b=0;z=5;?d";

std::shared_ptr<mythos::Trace> demoTrace(int K, bool trajectory = true, const std::string& prompt = kPrompt) {
    static std::unique_ptr<mythos::Model> model = mythos::Model::open(kModel);
    static std::optional<mythos::Tokenizer> tok = mythos::Tokenizer::forModel(kModel, model->config().vocab_size);
    const std::vector<int32_t> ids = tok->encode(prompt);
    const mythos::DeepRun run = model->deepRun(ids, 1, int64_t(ids.size()), K);
    auto tr = std::make_shared<mythos::Trace>();
    model->logitsAt(run, K, tr.get());
    tr->pieces.clear();
    for (int32_t id : ids)
        tr->pieces.push_back(tok->piece(id));
    if (trajectory)
        tr->trajectory = mythos::trajectoryOf(run, K);
    return tr;
}

std::shared_ptr<mythos::Trace> hostileTrace(int T, int K, float value) {
    auto tr = std::make_shared<mythos::Trace>();
    tr->batch = 1;
    tr->seqLen = T;
    tr->nLoops = tr->loopsExecuted = K;
    for (int t = 0; t < T; ++t)
        tr->ids.push_back(t);
    tr->trajectory.loops = K;
    tr->trajectory.explained[0] = std::numeric_limits<double>::quiet_NaN();
    tr->trajectory.coords.assign(std::size_t(T * K * 2), value);
    tr->trajectory.cosFinal.assign(std::size_t(T * K), value);
    tr->trajectory.delta.assign(std::size_t(T * K), value);
    return tr;
}

} // namespace

class TestTrajectoryView : public QObject {
    Q_OBJECT
private slots:
    void orbitsAreThePcaCoordinatesByLoop() {
        const auto tr = demoTrace(8);
        TrajectoryView v;
        v.resize(1400, 900);
        v.setTrace(tr);
        QVERIFY(v.hasTrajectory());
        const int T = int(tr->seqLen), K = 8;
        const auto& orbits = v.orbitChart()->orbits();
        QCOMPARE(int(orbits.size()), T);
        for (int t = 0; t < T; ++t) {
            QCOMPARE(int(orbits[t].size()), K);
            for (int l = 0; l < K; ++l) {
                const std::size_t at = std::size_t(l * T + t) * 2;
                QCOMPARE(orbits[t][l].x(), double(tr->trajectory.coords[at]));
                QCOMPARE(orbits[t][l].y(), double(tr->trajectory.coords[at + 1]));
            }
        }
        const QString pc1 = QString::number(100.0 * tr->trajectory.explained[0], 'f', 1);
        QCOMPARE(v.orbitChart()->xTitle(), QStringLiteral("PC1 (%1% of variance)").arg(pc1));
        QVERIFY(v.orbitChart()->yTitle().startsWith("PC2 ("));
        // Loop colours run from the first to the last loop.
        QVERIFY(OrbitChart::loopColor(1, K) != OrbitChart::loopColor(K, K));
        QVERIFY(!v.grab().isNull());
    }

    void heatmapsHoldStepAndCosine() {
        const auto tr = demoTrace(8);
        TrajectoryView v;
        v.setTrace(tr);
        const int T = int(tr->seqLen), K = 8;
        QCOMPARE(v.deltaHeatmap()->rows(), T);
        QCOMPARE(v.deltaHeatmap()->cols(), K);
        QCOMPARE(v.cosHeatmap()->rows(), T);
        for (int t = 0; t < T; t += 5)
            for (int l = 0; l < K; ++l) {
                const std::size_t at = std::size_t(l * T + t);
                const double d = tr->trajectory.delta[at];
                QCOMPARE(v.deltaHeatmap()->value(t, l), v.deltaIsLog() ? std::log10(d) : d);
                QCOMPARE(v.cosHeatmap()->value(t, l), double(tr->trajectory.cosFinal[at]));
            }
        // The last loop's state is the final one.
        QVERIFY(std::fabs(v.cosHeatmap()->value(3, K - 1) - 1.0) < 1e-5);
        QCOMPARE(v.cosHeatmap()->range().second, 1.0);
        QVERIFY(v.cosHeatmap()->range().first >= -1.0);
        QVERIFY(v.deltaHeatmap()->title().contains(v.deltaIsLog() ? "log" : "Step"));
        QVERIFY(v.deltaHeatmap()->tooltipText(2, 3).contains("token 2"));
    }

    void selectionAndClicks() {
        const auto tr = demoTrace(8);
        TrajectoryView v;
        v.resize(1400, 900);
        v.setTrace(tr);
        v.setSelectedToken(29);
        QCOMPARE(v.selectedToken(), 29);
        QCOMPARE(v.orbitChart()->selected(), 29);
        QCOMPARE(v.deltaHeatmap()->highlightedRow(), 29);
        QCOMPARE(v.cosHeatmap()->highlightedRow(), 29);
        v.show();
        QVERIFY(QTest::qWaitForWindowExposed(&v));
        QSignalSpy spy(&v, &TrajectoryView::tokenSelected);
        // A click on a point of token 4 (the last loop's points are apart) selects a token there.
        const QPoint at = v.orbitChart()->toPixel(v.orbitChart()->orbits()[4][0]).toPoint();
        const int expected = v.orbitChart()->tokenAt(at);
        QVERIFY(expected >= 0);
        QTest::mouseClick(v.orbitChart(), Qt::LeftButton, {}, at);
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.at(0).at(0).toInt(), expected);
        QCOMPARE(v.cosHeatmap()->highlightedRow(), expected);
        // Far from every point: nothing.
        QCOMPARE(v.orbitChart()->tokenAt(QPoint(1, 1)), -1);
        QTest::mouseClick(v.cosHeatmap(), Qt::LeftButton, {}, v.cosHeatmap()->cellRect(11, 1).center());
        QCOMPARE(v.selectedToken(), 11);
        QCOMPARE(v.orbitChart()->selected(), 11);
    }

    void chartsAreUniqueAndHoldTheirRows() {
        const auto tr = demoTrace(8);
        TrajectoryView v;
        v.setTrace(tr);
        const int T = int(tr->seqLen), K = 8;
        const auto charts = v.charts();
        QCOMPARE(charts.size(), 3);
        QSet<QString> ids, titles;
        for (const auto& c : charts) {
            ids.insert(c.id);
            titles.insert(c.title);
            QVERIFY(c.widget);
            const DataTable t = c.data();
            QCOMPARE(t.rows.size(), T * K);
            for (const auto& row : t.rows)
                QCOMPARE(row.size(), t.columns.size());
        }
        QCOMPARE(ids.size(), 3);
        QCOMPARE(titles.size(), 3);
        // Export writes the raw step, not its logarithm.
        QCOMPARE(charts[1].data().rows[K + 2][3].toDouble(), double(tr->trajectory.delta[std::size_t(2 * T + 1)]));
    }

    void aTraceWithoutTrajectoriesSaysSo() {
        TrajectoryView v;
        v.setTrace(demoTrace(4, false));
        QVERIFY(!v.hasTrajectory());
        auto* msg = v.findChild<QLabel*>("trajectoryMessage");
        QVERIFY(msg && !msg->isHidden());
        QVERIFY(msg->text().contains("no trajectories"));
        QCOMPARE(v.orbitChart()->orbits().size(), 0);
        QCOMPARE(v.deltaHeatmap()->rows(), 0);
        QVERIFY(!v.orbitChart()->isVisibleTo(&v));
        for (const auto& c : v.charts())
            QVERIFY(c.data().rows.isEmpty());
        QVERIFY(!v.grab().isNull());
        v.setTrace(demoTrace(4));
        QVERIFY(msg->isHidden());
        QVERIFY(v.orbitChart()->isVisibleTo(&v));
    }

    // For looking at: a long prompt at many loops.
    void screenshots() {
        std::string longPrompt;
        for (int i = 0; i < 3; ++i) // 93 of the demo model's 96 positions
            longPrompt += std::string(kPrompt) + ";";
        const auto tr = demoTrace(16, true, longPrompt);
        TrajectoryView v;
        v.resize(1280, 800);
        v.setTrace(tr);
        v.setSelectedToken(int(tr->seqLen) - 1);
        QCOMPARE(v.deltaHeatmap()->rows(), int(tr->seqLen));
        QVERIFY(v.grab().save("/tmp/trajectory_long_1280x800.png"));
        for (const auto& c : v.charts())
            QVERIFY(c.widget->grab().save(QStringLiteral("/tmp/trajectory_%1.png").arg(c.id)));
    }

    void hostileTracesDrawWithoutCrash() {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        const float inf = std::numeric_limits<float>::infinity();
        for (auto [T, K, value] : {std::tuple{1, 1, 0.0f}, std::tuple{1, 1, nan}, std::tuple{5, 1, 1e30f},
                                   std::tuple{3, 6, inf}, std::tuple{2, 4, -0.0f}}) {
            TrajectoryView v;
            v.resize(800, 500);
            v.setTrace(hostileTrace(T, K, value));
            QVERIFY(v.hasTrajectory());
            v.setSelectedToken(T - 1);
            QVERIFY(!v.grab().isNull());
            for (const auto& c : v.charts())
                c.data();
            QCOMPARE(v.orbitChart()->tokenAt(QPoint(10, 10)) < T, true);
        }
        auto bad = hostileTrace(4, 3, 1.0f);
        bad->trajectory.coords.resize(3);
        TrajectoryView v;
        v.setTrace(bad);
        QVERIFY(!v.hasTrajectory());
        QVERIFY(!v.grab().isNull());
    }
};

MX_QTEST_MAIN(TestTrajectoryView)
#include "test_trajectoryview.moc"
