#include <limits>
// StabilityView: rho summary and status, the A histogram and dense eigenvalues, the per-loop
// series and contraction ratios, the trained-depth marker, the rescale signals, a real
// tiny_mla trace, and screenshots at two window sizes.
#include "qtest_main.h"

#include <QDoubleSpinBox>
#include <QLabel>
#include <QPushButton>
#include <QScrollArea>
#include <QSignalSpy>
#include <cmath>
#include <memory>

#include "mythos/model.h"
#include "stabilityview.h"

using namespace mx;

namespace {

// 2 tokens x 5 loops, batch 1. Token 0 contracts by 0.5 every loop; token 1 by 0.5, 0.5, 0.2, 0.1.
const float kNorm[2][5] = {{10, 11, 11.5f, 11.75f, 11.875f}, {20, 18, 17, 16.5f, 16.25f}};
const float kDelta[2][5] = {{8, 4, 2, 1, 0.5f}, {6, 3, 1.5f, 0.3f, 0.03f}};

std::shared_ptr<mythos::Trace> handTrace(std::vector<float> a, int maxLoopIters = 4) {
    auto tr = std::make_shared<mythos::Trace>();
    tr->config.max_loop_iters = maxLoopIters;
    tr->model = "hand";
    tr->batch = 1;
    tr->seqLen = 2;
    tr->nLoops = 5;
    tr->loopsExecuted = 5;
    tr->ids = {3, 7};
    tr->pieces = {"ab", "cd"};
    tr->hNorm.resize(10);
    tr->hDelta.resize(10);
    for (int l = 0; l < 5; ++l)
        for (int t = 0; t < 2; ++t) {
            tr->hNorm[tr->at(l, 0, t)] = kNorm[t][l];
            tr->hDelta[tr->at(l, 0, t)] = kDelta[t][l];
        }
    tr->rhoA = mythos::spectralRadiusDiagonal(a);
    tr->injA = std::move(a);
    tr->injB.assign(tr->injA.size(), 0.1f);
    return tr;
}

const std::vector<float> kA = {0.2f, 0.22f, 0.37f, 0.5f, 0.5f, 0.61f, 0.88f, 0.91f, 0.95f};

ChartHandle handle(const StabilityView& v, const QString& id) {
    for (const auto& h : v.charts())
        if (h.id == id)
            return h;
    return {};
}

// Rows of a line chart's table for one series name, as points.
QVector<QPointF> seriesRows(const DataTable& t, const QString& name) {
    QVector<QPointF> out;
    for (const auto& r : t.rows)
        if (r[0].toString() == name)
            out << QPointF(r[1].toDouble(), r[2].toDouble());
    return out;
}

bool tableHasRow(const DataTable& t, const QString& first) {
    for (const auto& r : t.rows)
        if (r[0].toString() == first)
            return true;
    return false;
}

QString labelText(const StabilityView& v, const char* name) {
    auto* l = v.findChild<QLabel*>(QString::fromLatin1(name));
    return l ? l->text() : QString("<missing %1>").arg(name);
}

void comparePoints(const QVector<QPointF>& got, const QVector<QPointF>& want) {
    QCOMPARE(got.size(), want.size());
    for (int i = 0; i < got.size(); ++i) {
        QCOMPARE(got[i].x(), want[i].x());
        QVERIFY2(std::fabs(got[i].y() - want[i].y()) < 1e-6,
                 qPrintable(QString("point %1: %2 vs %3").arg(i).arg(got[i].y()).arg(want[i].y())));
    }
}

LineChart* lineChart(const StabilityView& v, const QString& id) {
    return qobject_cast<LineChart*>(handle(v, id).widget);
}

void grab(QWidget& w, const QString& path) {
    QTest::qWait(50); // layout requests after a resize arrive as posted events, several deep

    QVERIFY(w.grab().save(path));
}

} // namespace

class TestStabilityView : public QObject {
    Q_OBJECT
private slots:
    void identity() {
        StabilityView v;
        QCOMPARE(v.viewId(), QString("stability"));
        QCOMPARE(v.viewTitle(), QString("Stability"));
        QStringList ids;
        for (const auto& h : v.charts()) {
            ids << h.id;
            QVERIFY(h.widget);
            QVERIFY(h.data);
        }
        QCOMPARE(ids, (QStringList{"rho-summary", "a-distribution", "h-norm", "h-delta", "contraction"}));
    }

    void summary() {
        StabilityView v;
        v.setTrace(handTrace(kA));
        QCOMPARE(v.status(), mythos::StabilityStatus::Warning);
        QVERIFY(std::fabs(v.rho() - 0.95) < 1e-6);
        QVERIFY(std::fabs(v.memoryHorizon() - 20.0) < 1e-3);
        QVERIFY(labelText(v, "rhoValue").contains("0.9500"));
        QVERIFY(!labelText(v, "rhoValue").contains("preview"));
        QVERIFY(labelText(v, "rhoStatus").contains("near the edge"));
        QVERIFY(labelText(v, "rhoStatus").contains(QColor(205, 130, 0).name()));
        QVERIFY(labelText(v, "memoryHorizon").contains("20.0 loops"));
        QVERIFY(labelText(v, "aRange").contains("min 0.2000"));
        QVERIFY(labelText(v, "aRange").contains("max 0.9500"));

        const auto h = handle(v, "rho-summary");
        QCOMPARE(h.widget->objectName(), QString("rhoSummary"));
        const DataTable t = h.data();
        QCOMPARE(t.rows[0][0].toString(), QString("rho"));
        QVERIFY(std::fabs(t.rows[0][1].toDouble() - 0.95) < 1e-6);
        QCOMPARE(t.rows[1][1].toString(), QString("near the edge"));
        QVERIFY(std::fabs(t.rows[2][1].toDouble() - 20.0) < 1e-3);
        QVERIFY(std::fabs(t.rows[3][1].toDouble() - 0.2) < 1e-6);
        QVERIFY(std::fabs(t.rows[4][1].toDouble() - 0.95) < 1e-6);
    }

    void statuses_data() {
        QTest::addColumn<float>("maxA");
        QTest::addColumn<int>("status");
        QTest::addColumn<QString>("word");
        QTest::addColumn<QString>("horizon");
        QTest::newRow("0.5") << 0.5f << int(mythos::StabilityStatus::Fine) << "stable"
                             << "2.0 loops";
        QTest::newRow("0.95") << 0.95f << int(mythos::StabilityStatus::Warning) << "near the edge"
                              << "20.0 loops";
        QTest::newRow("1.0") << 1.0f << int(mythos::StabilityStatus::Unstable) << "unstable"
                             << "infinite";
    }
    void statuses() {
        QFETCH(float, maxA);
        QFETCH(int, status);
        QFETCH(QString, word);
        QFETCH(QString, horizon);
        StabilityView v;
        v.setTrace(handTrace({0.1f, maxA}));
        QCOMPARE(int(v.status()), status);
        QVERIFY2(labelText(v, "rhoStatus").contains(">" + word + "<"), qPrintable(labelText(v, "rhoStatus")));
        QVERIFY2(labelText(v, "memoryHorizon").contains(horizon), qPrintable(labelText(v, "memoryHorizon")));
        const QColor colors[] = {QColor(30, 140, 60), QColor(205, 130, 0), QColor(200, 40, 40)};
        QVERIFY(labelText(v, "rhoStatus").contains(colors[status].name()));
        const DataTable t = handle(v, "rho-summary").data();
        if (status == int(mythos::StabilityStatus::Unstable))
            QCOMPARE(t.rows[2][1].toString(), QString("infinite"));
        else
            QVERIFY(t.rows[2][1].typeId() == QMetaType::Double && std::isfinite(t.rows[2][1].toDouble()));
    }

    void histogram() {
        StabilityView v;
        v.setTrace(handTrace(kA));
        const auto h = handle(v, "a-distribution");
        auto* bars = qobject_cast<BarChart*>(h.widget);
        QVERIFY(bars);
        QCOMPARE(bars->categories().size(), 20);
        QCOMPARE(bars->categories()[0], QString("0.00-0.05"));
        QCOMPARE(bars->categories()[7], QString("0.35-0.40"));
        QCOMPARE(bars->categories()[19], QString("0.95-1.00"));
        QVector<double> want(20, 0.0);
        want[4] = 2;  // 0.2, 0.22
        want[7] = 1;  // 0.37
        want[10] = 2; // 0.5, 0.5
        want[12] = 1; // 0.61
        want[17] = 1; // 0.88
        want[18] = 1; // 0.91
        want[19] = 1; // 0.95
        QCOMPARE(bars->values(), want);
        const DataTable t = h.data();
        QCOMPARE(t.rows.size(), 20);
        QCOMPARE(t.rows[7][0].toString(), QString("0.35-0.40"));
        QCOMPARE(t.rows[10][1].toDouble(), 2.0);

        // Entries outside [0, 1] get their own bins rather than vanishing.
        v.setTrace(handTrace({-0.1f, 0.5f, 1.2f, 1.0f}));
        QCOMPARE(bars->categories().size(), 22);
        QCOMPARE(bars->categories().first(), QString("< 0"));
        QCOMPARE(bars->categories().last(), QString("> 1"));
        QCOMPARE(bars->values().first(), 1.0);
        QCOMPARE(bars->values().last(), 1.0);
        QCOMPARE(bars->values()[20], 1.0); // 1.0 closes the last bin
    }

    void lineSeries() {
        StabilityView v;
        v.setTrace(handTrace(kA));
        auto* norm = lineChart(v, "h-norm");
        auto* delta = lineChart(v, "h-delta");
        auto* ratio = lineChart(v, "contraction");
        QVERIFY(norm && delta && ratio);
        QCOMPARE(norm->series().size(), 1); // no token selected
        QVector<QPointF> meanNorm, meanDelta, meanRatio, tokNorm, tokDelta, tokRatio;
        for (int l = 0; l < 5; ++l) {
            meanNorm << QPointF(l + 1, (double(kNorm[0][l]) + kNorm[1][l]) / 2);
            meanDelta << QPointF(l + 1, (double(kDelta[0][l]) + kDelta[1][l]) / 2);
            tokNorm << QPointF(l + 1, kNorm[1][l]);
            tokDelta << QPointF(l + 1, kDelta[1][l]);
        }
        const double r1[] = {0.5, 0.5, 0.2, 0.1};
        for (int t = 1; t <= 4; ++t) {
            meanRatio << QPointF(t, (0.5 + r1[t - 1]) / 2);
            tokRatio << QPointF(t, r1[t - 1]);
        }
        comparePoints(norm->series()[0].points, meanNorm);
        comparePoints(delta->series()[0].points, meanDelta);
        comparePoints(ratio->series()[0].points, meanRatio);
        // Δ spans 0.03..8, more than two decades.
        QVERIFY(delta->title().contains("log"));
        QVERIFY(!norm->title().contains("log"));

        v.setSelectedToken(1);
        QCOMPARE(v.selectedToken(), 1);
        QCOMPARE(norm->series().size(), 2);
        QVERIFY(norm->series()[1].name.contains("cd"));
        comparePoints(norm->series()[0].points, meanNorm);
        comparePoints(norm->series()[1].points, tokNorm);
        comparePoints(delta->series()[1].points, tokDelta);
        comparePoints(ratio->series()[1].points, tokRatio);

        // The export table holds the same points.
        const DataTable t = handle(v, "h-norm").data();
        comparePoints(seriesRows(t, norm->series()[0].name), meanNorm);
        comparePoints(seriesRows(t, norm->series()[1].name), tokNorm);
        const DataTable rt = handle(v, "contraction").data();
        comparePoints(seriesRows(rt, ratio->series()[1].name), tokRatio);
        QVERIFY(tableHasRow(rt, "contracting below"));
        QVERIFY(tableHasRow(rt, QString("ρ(A)")));
        for (const auto& r : rt.rows)
            if (r[0].toString() == QString("ρ(A)"))
                QVERIFY(std::fabs(r[2].toDouble() - 0.95) < 1e-6);

        v.setSelectedToken(-1);
        QCOMPARE(norm->series().size(), 1);
        v.setSelectedToken(5); // out of range: nothing selected
        QCOMPARE(norm->series().size(), 1);
    }

    void trainedDepthMarker() {
        StabilityView v;
        v.setTrace(handTrace(kA, 4)); // L = 5 > 4
        for (const char* id : {"h-norm", "h-delta", "contraction"}) {
            const DataTable t = handle(v, id).data();
            QVERIFY2(tableHasRow(t, "trained depth"), id);
            for (const auto& r : t.rows)
                if (r[0].toString() == "trained depth")
                    QCOMPARE(r[1].toDouble(), 4.0);
        }
        v.setTrace(handTrace(kA, 5)); // L == max_loop_iters
        for (const char* id : {"h-norm", "h-delta", "contraction"})
            QVERIFY2(!tableHasRow(handle(v, id).data(), "trained depth"), id);
        v.setTrace(handTrace(kA, 8));
        QVERIFY(!tableHasRow(handle(v, "h-norm").data(), "trained depth"));
    }

    void rescaleSignals() {
        StabilityView v;
        v.setTrace(handTrace(kA));
        auto* spin = v.findChild<QDoubleSpinBox*>("rescaleTarget");
        auto* preview = v.findChild<QPushButton*>("rescalePreview");
        auto* save = v.findChild<QPushButton*>("rescaleSave");
        QVERIFY(spin && preview && save);
        QCOMPARE(spin->value(), 0.9);
        QCOMPARE(spin->minimum(), 0.05);
        QCOMPARE(spin->maximum(), 0.99);
        QCOMPARE(spin->singleStep(), 0.01);
        QVERIFY(preview->isCheckable());
        QVERIFY(!save->isEnabled()); // no model until told otherwise
        v.setModelAvailable(true);
        QVERIFY(save->isEnabled());
        QVERIFY(preview->isEnabled());

        QSignalSpy previewSpy(&v, &StabilityView::rescalePreviewChanged);
        QSignalSpy saveSpy(&v, &StabilityView::saveRescaledRequested);
        spin->setValue(0.75);
        QCOMPARE(previewSpy.count(), 0); // the target alone does not start a preview
        preview->click();
        QCOMPARE(previewSpy.count(), 1);
        QCOMPARE(previewSpy.last()[0].toBool(), true);
        QCOMPARE(previewSpy.last()[1].toDouble(), 0.75);
        QVERIFY(labelText(v, "rhoValue").contains("(preview)"));
        spin->setValue(0.8); // a new target while previewing updates the preview
        QCOMPARE(previewSpy.count(), 2);
        QCOMPARE(previewSpy.last()[1].toDouble(), 0.8);
        preview->click();
        QCOMPARE(previewSpy.count(), 3);
        QCOMPARE(previewSpy.last()[0].toBool(), false);
        QVERIFY(!labelText(v, "rhoValue").contains("(preview)"));

        save->click();
        QCOMPARE(saveSpy.count(), 1);
        QCOMPARE(saveSpy.last()[0].toDouble(), 0.8);

        // The window reports the worker's state back without an echo.
        v.setRescalePreviewActive(true);
        QVERIFY(preview->isChecked());
        QVERIFY(v.rescalePreviewActive());
        QVERIFY(labelText(v, "rhoValue").contains("(preview)"));
        QCOMPARE(previewSpy.count(), 3);
        QCOMPARE(handle(v, "rho-summary").data().rows.last()[1].toBool(), true);
        v.setRescalePreviewActive(false);
        QVERIFY(!preview->isChecked());
        QVERIFY(!labelText(v, "rhoValue").contains("(preview)"));
        QCOMPARE(previewSpy.count(), 3);

        v.setModelAvailable(false);
        QVERIFY(!save->isEnabled());
        save->click();
        QCOMPARE(saveSpy.count(), 1);
    }

    void denseA() {
        StabilityView v;
        v.setTrace(handTrace(kA));
        // Rotation-scaling: eigenvalues 0.5 +- 0.5i, rho = sqrt(0.5).
        v.setDenseA({0.5f, -0.5f, 0.5f, 0.5f}, 2);
        QVERIFY(v.hasDenseA());
        QVERIFY(std::fabs(v.rho() - std::sqrt(0.5)) < 1e-6);
        QCOMPARE(v.status(), mythos::StabilityStatus::Fine);
        QVERIFY(labelText(v, "rhoValue").contains("0.7071"));
        const auto h = handle(v, "a-distribution");
        auto* scatter = qobject_cast<ScatterChart*>(h.widget);
        QVERIFY(scatter);
        QCOMPARE(scatter->points().size(), 2);
        QVector<QPointF> pts = scatter->points();
        std::sort(pts.begin(), pts.end(), [](QPointF a, QPointF b) { return a.y() < b.y(); });
        QVERIFY(std::fabs(pts[0].x() - 0.5) < 1e-6 && std::fabs(pts[0].y() + 0.5) < 1e-6);
        QVERIFY(std::fabs(pts[1].x() - 0.5) < 1e-6 && std::fabs(pts[1].y() - 0.5) < 1e-6);
        const DataTable t = h.data();
        QCOMPARE(t.columns, (QStringList{"re", "im"}));
        QCOMPARE(t.rows.size(), 2);
        for (const auto& r : handle(v, "contraction").data().rows)
            if (r[0].toString() == QString("ρ(A)"))
                QVERIFY(std::fabs(r[2].toDouble() - std::sqrt(0.5)) < 1e-6);

        v.setDenseA({}, 0); // back to the diagonal
        QVERIFY(!v.hasDenseA());
        QVERIFY(qobject_cast<BarChart*>(handle(v, "a-distribution").widget));
        QVERIFY(std::fabs(v.rho() - 0.95) < 1e-6);
    }

    void degenerateTraces() {
        StabilityView v;
        v.setDenseA({1.0f, 0.0f, 0.0f, 0.5f}, 2); // before any trace
        QCOMPARE(v.status(), mythos::StabilityStatus::Unstable);
        v.setTrace(std::make_shared<mythos::Trace>()); // nothing at all
        QVERIFY(!v.hasDenseA());
        QVERIFY(labelText(v, "rhoStatus").contains("no injection matrix"));
        QVERIFY(handle(v, "rho-summary").data().rows.isEmpty());
        QVERIFY(lineChart(v, "h-norm")->series()[0].points.isEmpty());
        v.setSelectedToken(0);
        QCOMPARE(v.selectedToken(), -1);

        auto one = handTrace(kA);
        one->loopsExecuted = 1; // arrays longer than needed are fine; a ratio needs two loops
        v.setTrace(one);
        v.setSelectedToken(0);
        QCOMPARE(lineChart(v, "h-norm")->series()[1].points.size(), 1);
        QVERIFY(lineChart(v, "contraction")->series()[0].points.isEmpty());

        auto bad = handTrace(kA);
        bad->hDelta.resize(3); // wrong shape: no per-loop changes rather than a crash
        v.setTrace(bad);
        QVERIFY(lineChart(v, "h-delta")->series()[0].points.isEmpty());
        QCOMPARE(lineChart(v, "h-norm")->series()[0].points.size(), 5);
    }

    // A with NaN or infinite entries (broken weights, or a trace's null entries): rho(A) is
    // shown as not finite, the histogram counts them apart, and a weight warning shows.
    void nonFiniteA() {
        StabilityView v;
        auto t =
            handTrace({0.5f, std::numeric_limits<float>::quiet_NaN(), 0.25f, std::numeric_limits<float>::infinity()});
        v.setTrace(t);
        QCOMPARE(v.status(), mythos::StabilityStatus::NonFinite);
        QVERIFY(labelText(v, "rhoValue").contains("not finite"));
        QVERIFY(labelText(v, "memoryHorizon").contains("2 of A's 4 entries"));
        QVERIFY(labelText(v, "aRange").contains("0.2500"));
        QVERIFY(!v.findChild<QLabel*>("weightWarning")->isVisibleTo(&v));
        v.setWeightWarning("1 weight tensor holds NaN");
        QVERIFY(v.findChild<QLabel*>("weightWarning")->isVisibleTo(&v));
        QVERIFY(v.weightWarning().contains("holds NaN"));
        v.setWeightWarning({});
        QVERIFY(v.weightWarning().isEmpty());
        t = handTrace({});
        t->rhoA = std::numeric_limits<double>::quiet_NaN(); // recorded as null
        v.setTrace(t);
        QCOMPARE(v.status(), mythos::StabilityStatus::NonFinite);
    }

    void realTrace() {
        auto model = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
        const std::vector<int32_t> ids = {1, 5, 9, 13, 17, 21, 25, 29};
        auto tr = std::make_shared<mythos::Trace>();
        model->forward(ids, 1, int64_t(ids.size()), {.nLoops = 8, .trace = tr.get()});
        QCOMPARE(tr->loopsExecuted, int64_t(8));

        StabilityView v;
        v.setModelAvailable(true);
        v.setTrace(tr);
        v.setSelectedToken(3);
        QVERIFY2(std::fabs(v.rho() - 0.652386) < 1e-5, qPrintable(QString::number(v.rho(), 'g', 9)));
        QCOMPARE(v.status(), mythos::StabilityStatus::Fine);
        QVERIFY(labelText(v, "rhoValue").contains("0.6524"));
        for (const auto& h : v.charts()) {
            const DataTable t = h.data();
            QVERIFY2(!t.rows.isEmpty(), qPrintable(h.id));
            for (const auto& r : t.rows) {
                QCOMPARE(r.size(), t.columns.size());
                for (const auto& c : r)
                    if (c.typeId() == QMetaType::Double)
                        QVERIFY2(std::isfinite(c.toDouble()), qPrintable(h.id));
            }
        }
        QCOMPARE(lineChart(v, "h-norm")->series()[0].points.size(), 8);
        QCOMPARE(lineChart(v, "contraction")->series()[0].points.size(), 7);
        QVERIFY(tableHasRow(handle(v, "h-norm").data(), "trained depth")); // 8 > max_loop_iters 4

        double histTotal = 0;
        for (double c : qobject_cast<BarChart*>(handle(v, "a-distribution").widget)->values())
            histTotal += c;
        QCOMPARE(histTotal, double(tr->injA.size()));

        v.show();
        v.resize(1280, 800);
        grab(v, "/tmp/stability_1280x800.png");
        v.resize(800, 500);
        grab(v, "/tmp/stability_800x500.png");
        auto* scroll = v.findChild<QScrollArea*>("stabilityScroll");
        QVERIFY(scroll);
        // Narrow windows scroll instead of squeezing the charts.
        QVERIFY(scroll->widget()->height() > scroll->viewport()->height());
        grab(*scroll->widget(), "/tmp/stability_800x500_full.png");
        v.setRescalePreviewActive(true);
        v.resize(600, 500);
        grab(*scroll->widget(), "/tmp/stability_600_full.png");
    }

    void handScreenshots() {
        StabilityView v;
        v.setTrace(handTrace(kA));
        v.setSelectedToken(1);
        v.show();
        v.resize(1280, 800);
        grab(v, "/tmp/stability_hand_1280x800.png");
        v.setDenseA({0.5f, -0.5f, 0.5f, 0.5f}, 2);
        v.setModelAvailable(true);
        v.setRescalePreviewActive(true);
        grab(v, "/tmp/stability_dense_1280x800.png");
    }
};

MX_QTEST_MAIN(TestStabilityView)
#include "test_stabilityview.moc"
