// The Qt Charts adapter keeps exactly what it was given (for export and tests) and shows it.
#include <QChart>
#include <QChartView>
#include <QLineSeries>
#include <QScatterSeries>
#include <cmath>
#include <limits>

#include "charts.h"
#include "qtest_main.h"

using namespace mx;

namespace {

int countPixels(const QImage& img, const QColor& c) {
    int n = 0;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x)
            n += img.pixelColor(x, y).rgb() == c.rgb();
    return n;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

QChart* chartOf(QWidget* w) {
    auto* view = w->findChild<QChartView*>();
    return view ? view->chart() : nullptr;
}

template <typename T>
QList<T*> seriesOf(QWidget* w) {
    QList<T*> out;
    if (auto* c = chartOf(w))
        for (auto* s : c->series())
            if (auto* t = qobject_cast<T*>(s))
                out << t;
    return out;
}

QVector<Series> sampleSeries() {
    Series a;
    a.name = "loss";
    a.points = {{0, 2.5}, {1, 1.25}, {2, 0.1 + 0.2}, {3, 1.0 / 3.0}};
    a.color = QColor(10, 20, 30);
    Series b;
    b.name = "eval, \"smoothed\"";
    b.points = {{0, 3.0}, {2, 1e-20}};
    b.dashed = true;
    b.markers = true;
    return {a, b};
}

} // namespace

class ChartsTest : public QObject {
    Q_OBJECT
private slots:
    void lineChartKeepsSeries() {
        LineChart chart("Loss", "step", "loss");
        const auto in = sampleSeries();
        chart.setSeries(in);
        QCOMPARE(chart.series().size(), in.size());
        for (int i = 0; i < in.size(); ++i) {
            QCOMPARE(chart.series()[i].name, in[i].name);
            QCOMPARE(chart.series()[i].points, in[i].points);
            QCOMPARE(chart.series()[i].color, in[i].color);
            QCOMPARE(chart.series()[i].dashed, in[i].dashed);
            QCOMPARE(chart.series()[i].markers, in[i].markers);
        }
        // What the chart shows is what it keeps.
        const auto shown = seriesOf<QLineSeries>(&chart);
        QCOMPARE(shown.size(), in.size());
        for (int i = 0; i < in.size(); ++i) {
            QCOMPARE(shown[i]->name(), in[i].name);
            QCOMPARE(shown[i]->points(), QList<QPointF>(in[i].points.begin(), in[i].points.end()));
        }
        QCOMPARE(shown[0]->pen().color(), in[0].color);
        QCOMPARE(shown[1]->pen().style(), Qt::DashLine);
        QVERIFY(shown[1]->pointsVisible());
    }

    void lineChartTable() {
        LineChart chart("Loss", "step", "loss");
        const auto in = sampleSeries();
        chart.setSeries(in);
        const DataTable t = chart.table();
        QCOMPARE(t.title, QString("Loss"));
        QCOMPARE(t.columns, QStringList({"series", "x", "y"}));
        QCOMPARE(t.rows.size(), in[0].points.size() + in[1].points.size());
        int r = 0;
        for (const auto& s : in)
            for (const auto& p : s.points) {
                QCOMPARE(t.rows[r].size(), t.columns.size());
                QCOMPARE(t.rows[r][0].toString(), s.name);
                QCOMPARE(t.rows[r][1].toDouble(), p.x());
                QCOMPARE(t.rows[r][2].toDouble(), p.y()); // exact, not fuzzy
                ++r;
            }
        // A second setSeries replaces, it does not append.
        chart.setSeries({in[1]});
        QCOMPARE(chart.table().rows.size(), in[1].points.size());
        QCOMPARE(seriesOf<QLineSeries>(&chart).size(), 1);
    }

    void lineMarkersAddNoRows() {
        LineChart chart("Loss", "step", "loss");
        chart.setSeries(sampleSeries());
        const qsizetype rows = chart.table().rows.size();
        chart.setMarkers({{2.0, "loops"}, {3.0, "max_loop_iters"}}, {{0.5, "threshold"}});
        QCOMPARE(chart.table().rows.size(), rows);
        QCOMPARE(chart.series().size(), 2);
        // The markers are drawn as extra line series, though.
        QCOMPARE(seriesOf<QLineSeries>(&chart).size(), 2 + 3);
        chart.setMarkers({}, {});
        QCOMPARE(seriesOf<QLineSeries>(&chart).size(), 2);
    }

    void lineNaNSkippedInChart() {
        LineChart chart("Loss", "step", "loss");
        Series s;
        s.name = "gappy";
        s.points = {{0, 1.0}, {1, kNaN}, {2, kInf}, {3, 2.0}, {4, -kInf}, {5, 0.5}};
        chart.setSeries({s});
        QCOMPARE(chart.series()[0].points.size(), s.points.size()); // kept as given
        QCOMPARE(chart.table().rows.size(), s.points.size());
        QVERIFY(std::isnan(chart.table().rows[1][2].toDouble()));
        const auto shown = seriesOf<QLineSeries>(&chart);
        QCOMPARE(shown.size(), 1);
        QCOMPARE(shown[0]->points(), QList<QPointF>({{0, 1.0}, {3, 2.0}, {5, 0.5}}));

        // Log scale also drops non-positive values; all-NaN series must not break the axes.
        Series z;
        z.name = "zeros";
        z.points = {{0, 0.0}, {1, -1.0}, {2, 10.0}};
        chart.setLogY(true);
        chart.setSeries({z});
        QCOMPARE(seriesOf<QLineSeries>(&chart)[0]->points(), QList<QPointF>({{2, 10.0}}));
        Series allNaN;
        allNaN.points = {{0, kNaN}, {1, kNaN}};
        chart.setSeries({allNaN});
        chart.setLogY(false);
        chart.setSeries({allNaN});
        QCOMPARE(seriesOf<QLineSeries>(&chart)[0]->count(), 0);
        chart.resize(400, 300);
        QImage img(chart.size(), QImage::Format_ARGB32);
        chart.render(&img); // painting with empty data must not crash either
    }

    void barChartKeepsBars() {
        BarChart chart("Halting", "loop", "tokens");
        const QStringList cats{"1", "2", "3", "never"};
        const QVector<double> vals{4, 0.1 + 0.2, 7.5, 2};
        const QVector<QColor> colors{sequentialColor(0), sequentialColor(0.5), sequentialColor(1), neverHaltedColor()};
        chart.setBars(cats, vals, colors);
        QCOMPARE(chart.categories(), cats);
        QCOMPARE(chart.values(), vals);
        const DataTable t = chart.table();
        QCOMPARE(t.columns, QStringList({"category", "value"}));
        QCOMPARE(t.rows.size(), vals.size());
        for (int i = 0; i < vals.size(); ++i) {
            QCOMPARE(t.rows[i][0].toString(), cats[i]);
            QCOMPARE(t.rows[i][1].toDouble(), vals[i]);
        }
        // Each bar is painted in its own colour.
        chart.resize(480, 320);
        QImage img(chart.size(), QImage::Format_ARGB32);
        img.fill(Qt::white);
        chart.render(&img);
        for (const QColor& c : colors)
            QVERIFY2(countPixels(img, c) > 50, qPrintable("no bar painted in " + c.name()));
    }

    void barMarkerAndNaN() {
        BarChart chart("Halting", "loop", "tokens");
        const QColor c(10, 120, 200);
        chart.setBars({"a", "b", "c"}, {1, kNaN, 3}, {c, c, c});
        QCOMPARE(chart.table().rows.size(), 3);
        QVERIFY(std::isnan(chart.table().rows[1][1].toDouble()));
        chart.resize(480, 320);
        QImage withBars(chart.size(), QImage::Format_ARGB32);
        chart.render(&withBars);
        const int painted = countPixels(withBars, c);
        QVERIFY(painted > 100);
        // The NaN bar paints nothing: a chart of only the two finite bars paints as much.
        chart.setBars({"a", "b", "c"}, {1, 0, 3}, {c, c, c});
        QImage twoBars(chart.size(), QImage::Format_ARGB32);
        chart.render(&twoBars);
        QCOMPARE(countPixels(twoBars, c), painted);
        chart.setHorizontalMarker(2.5, "mean");
        QCOMPARE(chart.table().rows.size(), 3); // the marker is no data
        QImage marked(chart.size(), QImage::Format_ARGB32);
        chart.render(&marked);
        QVERIFY(marked != twoBars);
        chart.setBars({}, {});
        QCOMPARE(chart.table().rows.size(), 0);
        QImage empty(chart.size(), QImage::Format_ARGB32);
        chart.render(&empty); // no bars must not crash
    }

    void scatterKeepsPoints() {
        ScatterChart chart("Spectrum", "Re", "Im");
        const QVector<QPointF> pts{{0.5, 0.25}, {-0.75, 0.0}, {1.0 / 3.0, -0.1}};
        chart.setPoints(pts, "eigenvalues");
        QCOMPARE(chart.points(), pts);
        const DataTable t = chart.table();
        QCOMPARE(t.columns, QStringList({"x", "y"}));
        QCOMPARE(t.rows.size(), pts.size());
        for (int i = 0; i < pts.size(); ++i) {
            QCOMPARE(t.rows[i][0].toDouble(), pts[i].x());
            QCOMPARE(t.rows[i][1].toDouble(), pts[i].y());
        }
        const auto shown = seriesOf<QScatterSeries>(&chart);
        QCOMPARE(shown.size(), 1);
        QCOMPARE(shown[0]->name(), QString("eigenvalues"));
        QCOMPARE(shown[0]->points(), QList<QPointF>(pts.begin(), pts.end()));
        // The unit circle is decoration, not data.
        QCOMPARE(seriesOf<QLineSeries>(&chart).size(), 1);
        chart.setUnitCircle(false);
        QCOMPARE(seriesOf<QLineSeries>(&chart).size(), 0);
        QCOMPARE(chart.table().rows.size(), pts.size());
    }

    void scatterNaNSkippedInChart() {
        ScatterChart chart("Spectrum", "Re", "Im");
        const QVector<QPointF> pts{{0.5, 0.5}, {kNaN, 0.0}, {0.0, kInf}, {-0.5, 0.25}};
        chart.setPoints(pts, "eigenvalues");
        QCOMPARE(chart.points().size(), pts.size());
        QCOMPARE(chart.table().rows.size(), pts.size());
        const auto shown = seriesOf<QScatterSeries>(&chart);
        QCOMPARE(shown[0]->points(), QList<QPointF>({{0.5, 0.5}, {-0.5, 0.25}}));
        chart.resize(400, 400);
        QImage img(chart.size(), QImage::Format_ARGB32);
        chart.render(&img);
    }

    void titleAndNote() {
        LineChart chart("A & B", "x", "y");
        QCOMPARE(chart.title(), QString("A & B"));
        chart.setNote("did not converge");
        chart.setTitle("C");
        QCOMPARE(chart.title(), QString("C"));
        QVERIFY(chartOf(&chart)->title().contains("did not converge"));
        QCOMPARE(chart.table().title, QString("C"));
    }

    void palette() {
        QVERIFY(sequentialColor(0) != sequentialColor(1));
        QVERIFY(sequentialColor(0).isValid() && sequentialColor(1).isValid());
        QCOMPARE(sequentialColor(-1), sequentialColor(0));
        QCOMPARE(sequentialColor(2), sequentialColor(1));
        QVERIFY(sequentialColor(kNaN).isValid());
        QSet<QRgb> distinct;
        for (int i = 0; i < 10; ++i) {
            distinct.insert(categoricalColor(i).rgb());
            QCOMPARE(categoricalColor(i + 10), categoricalColor(i));
            QCOMPARE(categoricalColor(i - 10), categoricalColor(i));
        }
        QCOMPARE(distinct.size(), 10);
        QCOMPARE(categoricalColor(-1), categoricalColor(9));
    }
};

MX_QTEST_MAIN(ChartsTest)
#include "test_charts.moc"
