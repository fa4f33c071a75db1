// Chart export: every format is readable, data round-trips, and failures leave nothing behind.
#include <QCheckBox>
#include <QComboBox>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLineEdit>
#include <QMessageBox>
#include <QPainter>
#include <QRegularExpression>
#include <QSettings>
#include <QSpinBox>
#include <QStandardPaths>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QTimer>
#include <QVBoxLayout>
#include <memory>

#include "chartexporter.h"
#include "charts.h"
#include "qtest_main.h"

using namespace mx;

namespace {

// Set MX_EXPORT_KEEP_DIR to look at the exported images after the run.
void keepForInspection(const QString& file, const QString& name) {
    const QString keep = qEnvironmentVariable("MX_EXPORT_KEEP_DIR");
    if (keep.isEmpty())
        return;
    QFile::remove(QDir(keep).filePath(name));
    QFile::copy(file, QDir(keep).filePath(name));
}

// RFC 4180: quoted cells may hold commas, doubled quotes and line breaks.
QVector<QStringList> parseCsv(const QString& text) {
    QVector<QStringList> rows;
    QStringList row;
    QString cell;
    bool quoted = false;
    for (int i = 0; i < text.size(); ++i) {
        const QChar c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"')
                cell += '"', ++i;
            else if (c == '"')
                quoted = false;
            else
                cell += c;
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            row << cell;
            cell.clear();
        } else if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
                ++i;
            row << cell;
            cell.clear();
            rows << row;
            row.clear();
        } else {
            cell += c;
        }
    }
    if (!cell.isEmpty() || !row.isEmpty())
        rows << (row << cell);
    return rows;
}

// Chart drawn across the whole image, not just a corner of it: every quadrant has ink.
bool inkInEveryQuadrant(const QImage& img) {
    const int w = img.width(), h = img.height();
    for (int qy = 0; qy < 2; ++qy)
        for (int qx = 0; qx < 2; ++qx) {
            int ink = 0;
            for (int y = qy * h / 2; y < (qy + 1) * h / 2; ++y)
                for (int x = qx * w / 2; x < (qx + 1) * w / 2; ++x)
                    ink += (img.pixel(x, y) & 0xffffff) != 0xffffff;
            if (ink < 50)
                return false;
        }
    return true;
}

} // namespace

class ExporterTest : public QObject {
    Q_OBJECT
private:
    std::unique_ptr<LineChart> m_line;
    std::unique_ptr<BarChart> m_bar;
    std::unique_ptr<QTemporaryDir> m_tmp;
    QString m_dir;

    ChartHandle lineHandle() const {
        LineChart* c = m_line.get();
        return {"loss-curve", "Loss per loop", c, [c] { return c->table(); }};
    }
    ChartHandle barHandle() const {
        BarChart* c = m_bar.get();
        return {"halting-histogram", "Halting histogram", c, [c] { return c->table(); }};
    }
    QWidget* chartNamed(const QString& name) const {
        return name == "line" ? static_cast<QWidget*>(m_line.get()) : m_bar.get();
    }
    QString path(const QString& name) const { return QDir(m_dir).filePath(name); }

    void checkFailureLeavesNothing(const QString& target, const QString& folder, const QStringList& before) {
        const ExportResult results[] = {
            exportChartImage(m_line.get(), target + ".png", ImageFormat::Png, {640, 400}, "t"),
            exportChartImage(m_line.get(), target + ".svg", ImageFormat::Svg, {640, 400}, "t"),
            exportChartImage(m_line.get(), target + ".pdf", ImageFormat::Pdf, {640, 400}, "t"),
            exportChartData(m_line->table(), target + ".csv", DataFormat::Csv),
            exportChartData(m_line->table(), target + ".json", DataFormat::Json),
        };
        const QStringList suffixes{".png", ".svg", ".pdf", ".csv", ".json"};
        for (int i = 0; i < 5; ++i) {
            const ExportResult& r = results[i];
            const QString file = target + suffixes[i];
            QVERIFY2(!r.ok, qPrintable(file));
            QVERIFY2(r.error.contains(QDir::toNativeSeparators(file)), qPrintable(r.error));
            QVERIFY(r.files.isEmpty());
            QVERIFY(!QFileInfo::exists(file));
        }
        QCOMPARE(entries(folder), before);
    }

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true); // QSettings go to a test location
        QCoreApplication::setOrganizationName("MythosExplorerTests");
        QCoreApplication::setApplicationName("test_exporter");
        QSettings().clear();

        m_line = std::make_unique<LineChart>("Loss per loop", "loop", "loss");
        Series a;
        a.name = "train, \"smoothed\"";
        a.points = {{1, 2.5}, {2, 1.25}, {3, 0.1 + 0.2}, {4, 1.0 / 3.0}, {5, 1e-20}, {6, 123456789.123456789}};
        Series b;
        b.name = "eval";
        b.points = {{1, 3.0}, {3, 2.0 / 3.0}, {6, 0.2}};
        b.dashed = true;
        m_line->setSeries({a, b});
        m_line->setMarkers({{4, "max_loop_iters"}});

        m_bar = std::make_unique<BarChart>("Halting histogram", "loop", "tokens");
        m_bar->setBars(
            {"1", "2", "3", "4", "never"}, {3, 7, 12, 5, 2},
            {sequentialColor(0), sequentialColor(0.33), sequentialColor(0.66), sequentialColor(1), neverHaltedColor()});
    }

    void init() {
        m_tmp = std::make_unique<QTemporaryDir>();
        QVERIFY(m_tmp->isValid());
        m_dir = m_tmp->path();
    }
    void cleanup() { m_tmp.reset(); }

    void suffixes() {
        QCOMPARE(imageFormatForSuffix("PNG"), ImageFormat::Png);
        QCOMPARE(imageFormatForSuffix(".svg"), ImageFormat::Svg);
        QCOMPARE(imageFormatForSuffix("pdf"), ImageFormat::Pdf);
        QVERIFY(!imageFormatForSuffix("csv"));
        QCOMPARE(dataFormatForSuffix("csv"), DataFormat::Csv);
        QCOMPARE(dataFormatForSuffix(".JSON"), DataFormat::Json);
        QVERIFY(!dataFormatForSuffix("png"));
        QCOMPARE(suffixFor(ImageFormat::Pdf), QString("pdf"));
        QCOMPARE(suffixFor(DataFormat::Json), QString("json"));
    }

    void png_data() {
        QTest::addColumn<QString>("chart");
        QTest::addColumn<QSize>("size");
        QTest::newRow("line 1280x800") << "line" << QSize(1280, 800);
        QTest::newRow("line 640x400") << "line" << QSize(640, 400);
        QTest::newRow("bar 1920x1080") << "bar" << QSize(1920, 1080);
        QTest::newRow("bar 800x500") << "bar" << QSize(800, 500);
        QTest::newRow("line below minimum size") << "line" << QSize(200, 120);
    }
    void png() {
        QFETCH(QString, chart);
        QFETCH(QSize, size);
        QWidget* w = chartNamed(chart);
        const QSize before = w->size();
        const QString file = path("chart.png");
        const ExportResult r = exportChartImage(w, file, ImageFormat::Png, size, "Title");
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.files, QStringList{file});
        QCOMPARE(w->size(), before);
        QCOMPARE(entries(m_dir), QStringList{"chart.png"});
        QVERIFY(readAll(file).startsWith("\x89PNG\r\n\x1a\n"));
        QImage img;
        QVERIFY(img.load(file, "PNG"));
        QCOMPARE(img.size(), size);
        QCOMPARE(img.text("Title"), QString("Title"));
        QSet<QRgb> colors;
        for (int y = 0; y < img.height(); y += 3)
            for (int x = 0; x < img.width(); x += 3)
                colors.insert(img.pixel(x, y));
        QVERIFY2(colors.size() > 8, qPrintable(QString::number(colors.size())));
        QVERIFY(inkInEveryQuadrant(img));
        // No transparency: reports may be shown on dark backgrounds.
        QCOMPARE(qAlpha(img.pixel(0, 0)), 255);
        QCOMPARE(qAlpha(img.pixel(size.width() - 1, size.height() - 1)), 255);
        keepForInspection(file, QString(QTest::currentDataTag()).replace(' ', '_') + ".png");
    }

    void pngOfVisibleChartInLayout() {
        // In the window the chart is laid out by its parent; the export size must still win,
        // and the layout's size must come back afterwards.
        QWidget window;
        auto* lay = new QVBoxLayout(&window);
        auto* chart = new LineChart("Visible", "x", "y");
        chart->setSeries(m_line->series());
        lay->addWidget(chart);
        window.resize(500, 350);
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        const QRect before = chart->geometry();
        const QString file = path("visible.png");
        const ExportResult r = exportChartImage(chart, file, ImageFormat::Png, {1280, 800});
        QVERIFY2(r.ok, qPrintable(r.error));
        QImage img(file);
        keepForInspection(file, "visible_in_layout.png");
        QCOMPARE(img.size(), QSize(1280, 800));
        QVERIFY(inkInEveryQuadrant(img));
        QCoreApplication::processEvents();
        QCOMPARE(chart->geometry(), before);
        // The export's white background does not stick to the chart.
        QVERIFY(!chart->testAttribute(Qt::WA_SetPalette));
        QCOMPARE(chart->palette().color(QPalette::Window), window.palette().color(QPalette::Window));
    }

    void svg() {
        const QString file = path("chart.svg");
        const ExportResult r = exportChartImage(m_line.get(), file, ImageFormat::Svg, {1280, 800}, "Loss per loop");
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.files, QStringList{file});
        QCOMPARE(entries(m_dir), QStringList{"chart.svg"});
        const QByteArray bytes = readAll(file);
        keepForInspection(file, "line.svg");
        QVERIFY(bytes.contains("<svg"));
        QVERIFY(bytes.contains("<title>Loss per loop</title>"));
        QSvgRenderer svg(file);
        QVERIFY(svg.isValid());
        QCOMPARE(svg.viewBox(), QRect(0, 0, 1280, 800));
        QImage img(640, 400, QImage::Format_ARGB32);
        img.fill(Qt::transparent);
        {
            QPainter p(&img);
            svg.render(&p);
        }
        QVERIFY(inkInEveryQuadrant(img));
        if (img.save(path("svg-rendered.png")))
            keepForInspection(path("svg-rendered.png"), "line_svg_rendered.png");
    }

    void pdf() {
        const QString file = path("chart.pdf");
        const ExportResult r = exportChartImage(m_bar.get(), file, ImageFormat::Pdf, {1280, 800}, "Halting");
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.files, QStringList{file});
        QCOMPARE(entries(m_dir), QStringList{"chart.pdf"});
        const QByteArray bytes = readAll(file);
        keepForInspection(file, "bar.pdf");
        QVERIFY(bytes.startsWith("%PDF"));
        QVERIFY(bytes.trimmed().endsWith("%%EOF"));
        // One page with the chart's aspect ratio.
        const QRegularExpression box(R"(/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\])");
        const auto m = box.match(QString::fromLatin1(bytes));
        QVERIFY(m.hasMatch());
        QVERIFY(qAbs(m.captured(1).toDouble() / m.captured(2).toDouble() - 1280.0 / 800.0) < 0.01);
        QCOMPARE(QString::fromLatin1(bytes).count(QRegularExpression(R"(/Type\s*/Page\b)")), 1);
    }

    void csv() {
        const DataTable t = m_line->table();
        const QString file = path("chart.csv");
        const ExportResult r = exportChartData(t, file, DataFormat::Csv);
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.files, QStringList{file});
        QCOMPARE(entries(m_dir), QStringList{"chart.csv"});
        const QString text = QString::fromUtf8(readAll(file));
        QVERIFY(text.contains("\"train, \"\"smoothed\"\"\""));
        const auto rows = parseCsv(text);
        QCOMPARE(rows.size(), t.rows.size() + 1);
        QCOMPARE(rows[0], QStringList({"series", "x", "y"}));
        for (int i = 0; i < t.rows.size(); ++i) {
            QCOMPARE(rows[i + 1].size(), 3);
            QCOMPARE(rows[i + 1][0], t.rows[i][0].toString());
            bool ok = false;
            const double x = rows[i + 1][1].toDouble(&ok);
            QVERIFY(ok);
            QCOMPARE(x, t.rows[i][1].toDouble());
            const double y = rows[i + 1][2].toDouble(&ok);
            QVERIFY(ok);
            // Full precision: the exact double comes back, not a rounded one.
            QVERIFY2(y == t.rows[i][2].toDouble(),
                     qPrintable(QString("DataTable::toCsv lost precision in row %1: wrote %2 for %3")
                                    .arg(i)
                                    .arg(rows[i + 1][2])
                                    .arg(QString::number(t.rows[i][2].toDouble(), 'g', 17))));
        }
    }

    void csvEscapesLineBreaks() {
        DataTable t;
        t.columns << "name"
                  << "note";
        t.addRow({QString("a,b"), QString("line 1\nline \"2\"")});
        const QString file = path("escape.csv");
        QVERIFY(exportChartData(t, file, DataFormat::Csv).ok);
        const auto rows = parseCsv(QString::fromUtf8(readAll(file)));
        QCOMPARE(rows.size(), 2);
        QCOMPARE(rows[1], QStringList({"a,b", "line 1\nline \"2\""}));
    }

    void json() {
        const DataTable t = m_line->table();
        const QString file = path("chart.json");
        const ExportResult r = exportChartData(t, file, DataFormat::Json);
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.files, QStringList{file});
        QJsonParseError err;
        const QJsonDocument doc = QJsonDocument::fromJson(readAll(file), &err);
        QVERIFY2(err.error == QJsonParseError::NoError, qPrintable(err.errorString()));
        const QJsonObject o = doc.object();
        QCOMPARE(o["title"].toString(), t.title);
        QCOMPARE(o["columns"].toArray().toVariantList(), QVariant(t.columns).toList());
        const QJsonArray rows = o["rows"].toArray();
        QCOMPARE(rows.size(), t.rows.size());
        for (int i = 0; i < t.rows.size(); ++i) {
            const QJsonArray row = rows[i].toArray();
            QCOMPARE(row.size(), 3);
            QCOMPARE(row[0].toString(), t.rows[i][0].toString());
            QCOMPARE(row[1].toDouble(), t.rows[i][1].toDouble());
            QVERIFY(row[2].toDouble() == t.rows[i][2].toDouble());
        }
    }

    void overwriteReplacesFile() {
        const QString file = path("chart.csv");
        DataTable a;
        a.columns << "v";
        a.addRow({1});
        a.addRow({2});
        QVERIFY(exportChartData(a, file, DataFormat::Csv).ok);
        DataTable b;
        b.columns << "w";
        b.addRow({3});
        QVERIFY(exportChartData(b, file, DataFormat::Csv).ok);
        QCOMPARE(readAll(file), b.toCsv());
        QCOMPARE(entries(m_dir), QStringList{"chart.csv"});
    }

    void failureInMissingFolder() {
        QFile other(path("other.txt"));
        QVERIFY(other.open(QIODevice::WriteOnly));
        other.write("keep");
        other.close();
        checkFailureLeavesNothing(path("missing/chart"), m_dir, {"other.txt"});
        QVERIFY(!QFileInfo::exists(path("missing")));
        QCOMPARE(readAll(path("other.txt")), QByteArray("keep"));
    }

    void failureWhenParentIsAFile() {
        // Tests run as root, so a read-only folder would not stop the write; a regular file
        // in place of the folder does.
        QFile plain(path("plain"));
        QVERIFY(plain.open(QIODevice::WriteOnly));
        plain.write("not a folder");
        plain.close();
        checkFailureLeavesNothing(path("plain/chart"), m_dir, {"plain"});
        QCOMPARE(readAll(path("plain")), QByteArray("not a folder"));
    }

    void failureWhenTargetIsAFolder() {
        QVERIFY(QDir(m_dir).mkdir("taken.png"));
        const ExportResult r = exportChartImage(m_line.get(), path("taken.png"), ImageFormat::Png, {640, 400});
        QVERIFY(!r.ok);
        QVERIFY(r.error.contains(QDir::toNativeSeparators(path("taken.png"))));
        QCOMPARE(entries(m_dir), QStringList{"taken.png"});
        QVERIFY(QFileInfo(path("taken.png")).isDir());
    }

    void badImageSize() {
        const ExportResult r = exportChartImage(m_line.get(), path("x.png"), ImageFormat::Png, {0, 400});
        QVERIFY(!r.ok);
        QVERIFY(r.error.contains(QDir::toNativeSeparators(path("x.png"))));
        QVERIFY(entries(m_dir).isEmpty());
        QVERIFY(!exportChartImage(nullptr, path("x.png"), ImageFormat::Png, {640, 400}).ok);
        QVERIFY(entries(m_dir).isEmpty());
    }

    void allFiveFormats() {
        const ExportResult r = exportChart(lineHandle(), path("loss-curve"), {1280, 800}, true, true, true, true, true);
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.files.size(), 5);
        QCOMPARE(entries(m_dir), QStringList({"loss-curve.csv", "loss-curve.json", "loss-curve.pdf", "loss-curve.png",
                                              "loss-curve.svg"}));
        for (const auto& f : r.files)
            QVERIFY(QFileInfo(f).size() > 0);
        QCOMPARE(readAll(path("loss-curve.csv")), m_line->table().toCsv());
    }

    void someFormats() {
        const ExportResult r = exportChart(barHandle(), path("bars"), {800, 500}, false, true, false, false, true);
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(entries(m_dir), QStringList({"bars.json", "bars.svg"}));
        const ExportResult none = exportChart(barHandle(), path("bars"), {800, 500}, false, false, false, false, false);
        QVERIFY(!none.ok);
        QVERIFY(!none.error.isEmpty());
    }

    void allFormatsFailTogether() {
        const ExportResult r =
            exportChart(lineHandle(), path("missing/loss"), {1280, 800}, true, true, true, true, true);
        QVERIFY(!r.ok);
        QVERIFY(r.files.isEmpty());
        for (const char* s : {".png", ".svg", ".pdf", ".csv", ".json"})
            QVERIFY2(r.error.contains(QDir::toNativeSeparators(path("missing/loss") + s)), qPrintable(r.error));
        QVERIFY(entries(m_dir).isEmpty());
    }

    void missingDataTable() {
        ChartHandle h = lineHandle();
        h.data = nullptr;
        const ExportResult r = exportChart(h, path("nodata"), {640, 400}, true, false, false, true, false);
        QVERIFY(!r.ok);
        QCOMPARE(r.files, QStringList{path("nodata.png")});
        QVERIFY(r.error.contains(QDir::toNativeSeparators(path("nodata.csv"))));
        QCOMPARE(entries(m_dir), QStringList{"nodata.png"});
    }

    void dialogRun() {
        ExportDialog dlg({lineHandle(), barHandle()});
        auto* chart = dlg.findChild<QComboBox*>("chartCombo");
        auto* preset = dlg.findChild<QComboBox*>("presetCombo");
        auto* width = dlg.findChild<QSpinBox*>("widthSpin");
        auto* height = dlg.findChild<QSpinBox*>("heightSpin");
        auto* folder = dlg.findChild<QLineEdit*>("folderEdit");
        auto* name = dlg.findChild<QLineEdit*>("baseNameEdit");
        QVERIFY(chart && preset && width && height && folder && name);
        for (const char* c : {"pngCheck", "svgCheck", "pdfCheck", "csvCheck", "jsonCheck"})
            QVERIFY(dlg.findChild<QCheckBox*>(c));
        QCOMPARE(chart->count(), 2);
        QCOMPARE(name->text(), QString("loss-curve"));
        QCOMPARE(QSize(width->value(), height->value()), QSize(1280, 800));

        chart->setCurrentIndex(1);
        QCOMPARE(name->text(), QString("halting-histogram")); // follows the chart
        preset->setCurrentIndex(preset->findText("800 × 500"));
        QCOMPARE(QSize(width->value(), height->value()), QSize(800, 500));
        dlg.findChild<QCheckBox*>("pngCheck")->setChecked(true);
        dlg.findChild<QCheckBox*>("svgCheck")->setChecked(false);
        dlg.findChild<QCheckBox*>("pdfCheck")->setChecked(true);
        dlg.findChild<QCheckBox*>("csvCheck")->setChecked(false);
        dlg.findChild<QCheckBox*>("jsonCheck")->setChecked(true);
        folder->setText(QDir::toNativeSeparators(m_dir));

        const ExportResult r = dlg.run();
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(entries(m_dir),
                 QStringList({"halting-histogram.json", "halting-histogram.pdf", "halting-histogram.png"}));
        QCOMPARE(QImage(path("halting-histogram.png")).size(), QSize(800, 500));
        const auto rows = QJsonDocument::fromJson(readAll(path("halting-histogram.json")))["rows"].toArray();
        QCOMPARE(rows.size(), m_bar->values().size());
        QCOMPARE(QSettings().value("export/lastFolder").toString(), m_dir);

        // The next dialog starts in the remembered folder.
        ExportDialog again({lineHandle()});
        QCOMPARE(QDir::fromNativeSeparators(again.findChild<QLineEdit*>("folderEdit")->text()), m_dir);
    }

    void dialogAccept() {
        ExportDialog dlg({lineHandle()});
        auto* folder = dlg.findChild<QLineEdit*>("folderEdit");
        dlg.show();

        // A failure is shown and the dialog stays open for another try.
        folder->setText(path("missing"));
        QString shown;
        QTimer closer;
        connect(&closer, &QTimer::timeout, [&] {
            if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget())) {
                shown = box->text();
                box->close();
            }
        });
        closer.start(10);
        dlg.accept();
        closer.stop();
        QVERIFY2(shown.contains(QDir::toNativeSeparators(path("missing/loss-curve.png"))), qPrintable(shown));
        QVERIFY(dlg.isVisible());
        QVERIFY(entries(m_dir).isEmpty());

        folder->setText(m_dir);
        dlg.accept();
        QCOMPARE(dlg.result(), int(QDialog::Accepted));
        QVERIFY(!dlg.isVisible());
        QCOMPARE(entries(m_dir), QStringList({"loss-curve.csv", "loss-curve.png"}));
    }

    void dialogNameAndSize() {
        ExportDialog dlg({lineHandle(), barHandle()});
        auto* chart = dlg.findChild<QComboBox*>("chartCombo");
        auto* preset = dlg.findChild<QComboBox*>("presetCombo");
        auto* width = dlg.findChild<QSpinBox*>("widthSpin");
        auto* height = dlg.findChild<QSpinBox*>("heightSpin");
        auto* folder = dlg.findChild<QLineEdit*>("folderEdit");
        auto* name = dlg.findChild<QLineEdit*>("baseNameEdit");
        folder->setText(m_dir);

        // A name the user typed stays when the chart changes; a suffix is not doubled.
        name->setText("report-fig1.png");
        chart->setCurrentIndex(1);
        QCOMPARE(name->text(), QString("report-fig1.png"));
        QCOMPARE(dlg.basePath(), path("report-fig1"));

        width->setValue(1000);
        height->setValue(600);
        QCOMPARE(preset->currentText(), QString("Custom"));
        width->setValue(1920);
        height->setValue(1080);
        QCOMPARE(preset->currentText(), QString("1920 × 1080"));
        width->setValue(640);
        height->setValue(400);

        ExportResult r = dlg.run(); // defaults: PNG and CSV
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(entries(m_dir), QStringList({"report-fig1.csv", "report-fig1.png"}));
        QCOMPARE(QImage(path("report-fig1.png")).size(), QSize(640, 400));

        name->setText("sub/dir");
        r = dlg.run();
        QVERIFY(!r.ok);
        QVERIFY(!r.error.isEmpty());
        name->setText("fig2");
        folder->setText(path("missing"));
        r = dlg.run();
        QVERIFY(!r.ok);
        QVERIFY2(r.error.contains(QDir::toNativeSeparators(path("missing/fig2.png"))), qPrintable(r.error));
        QCOMPARE(entries(m_dir), QStringList({"report-fig1.csv", "report-fig1.png"}));
        QCOMPARE(QSettings().value("export/lastFolder").toString(), m_dir); // failures are not remembered
    }
};

MX_QTEST_MAIN(ExporterTest)
#include "test_exporter.moc"
