// Reports: every chart of every report view is written at every loop count in every format,
// each file parses and holds the chart's data, summary.json and report.pdf describe the
// runs, and a report never half-replaces a folder (refused, replaced, cancelled).
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QRegularExpression>
#include <QSet>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <memory>
#include <optional>

#include "mythos/kvcache.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/stability.h"
#include "qtest_main.h"
#include "report.h"

using namespace mx;

namespace {

const QSize kChartSize(900, 540);

// RFC 4180 records (quoted cells may hold line breaks, e.g. a "\n" token).
int csvRecords(const QString& text) {
    int records = 0;
    bool quoted = false, any = false;
    for (int i = 0; i < text.size(); ++i) {
        const QChar c = text[i];
        if (c == '"')
            quoted = !quoted; // a doubled quote toggles twice
        if (!quoted && (c == '\n' || c == '\r')) {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
                ++i;
            ++records;
            any = false;
        } else {
            any = true;
        }
    }
    return records + (any ? 1 : 0);
}

int distinctColours(const QImage& img, int limit) {
    QSet<QRgb> seen;
    for (int y = 0; y < img.height(); y += 2)
        for (int x = 0; x < img.width(); x += 2) {
            seen.insert(img.pixel(x, y));
            if (seen.size() >= limit)
                return int(seen.size());
        }
    return int(seen.size());
}

// "/Type /Page" objects, not the "/Type /Pages" tree.
int pdfPages(const QByteArray& pdf) {
    static const QRegularExpression page(QStringLiteral("/Type\\s*/Page(?![a-zA-Z])"));
    int n = 0;
    auto it = page.globalMatch(QString::fromLatin1(pdf));
    while (it.hasNext()) {
        it.next();
        ++n;
    }
    return n;
}

// Set MX_REPORT_KEEP_DIR to look at a written report after the run.
void keepForInspection(const QString& folder) {
    const QString keep = qEnvironmentVariable("MX_REPORT_KEEP_DIR");
    if (keep.isEmpty())
        return;
    QDir(keep).removeRecursively();
    QDir().mkpath(QFileInfo(keep).absolutePath());
    for (const QString& f : QDir(folder).entryList(QDir::Files)) {
        QDir().mkpath(keep);
        QFile::copy(QDir(folder).filePath(f), QDir(keep).filePath(f));
    }
    for (const QString& sub : QDir(folder).entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
        QDir().mkpath(QDir(keep).filePath(sub));
        for (const QString& f : QDir(QDir(folder).filePath(sub)).entryList(QDir::Files))
            QFile::copy(QDir(folder).filePath(sub + '/' + f), QDir(keep).filePath(sub + '/' + f));
    }
}

} // namespace

class ReportTest : public QObject {
    Q_OBJECT
private:
    std::unique_ptr<mythos::Model> m_model;
    std::optional<mythos::DeepRun> m_run;
    std::unique_ptr<QTemporaryDir> m_tmp;

    ReportInput input(const QList<int>& loops) {
        ReportInput in;
        in.model = QStringLiteral(MYTHOS_TEST_DATA_DIR "/tiny_mla");
        in.config = m_model->config();
        in.parameters = mythos::countParameters(in.config).total;
        in.rhoA = mythos::spectralRadiusDiagonal(m_model->injectionA());
        in.prompt = QStringLiteral("ids 1..12");
        in.engineOptions = QStringLiteral("kv_layout reference");
        in.runTimingsMs = {{"deep_run", 1.5}};
        for (int k : loops) {
            auto tr = std::make_shared<mythos::Trace>();
            m_model->logitsAt(*m_run, k, tr.get());
            // As the window's and mythos-cli's reports ask for them.
            tr->lens = m_model->lens(*m_run, k);
            tr->trajectory = mythos::trajectoryOf(*m_run, k);
            // A report asks for the attention part of every loop count (reportcontroller.cpp).
            tr->attention.to = tr->seqLen;
            tr->attention.sites = m_model->attention(*m_run, k, 0);
            in.traces << tr;
        }
        return in;
    }
    QString parentDir() const { return m_tmp->path(); }
    QString folder(const QString& name) const { return QDir(m_tmp->path()).filePath(name); }

private slots:
    void initTestCase() {
        // QSvgRenderer (SVG Tiny) cannot resolve the hatch <pattern>s that QSvgGenerator writes
        // for never-halted tokens; browsers can, and the files parse.
        QLoggingCategory::setFilterRules(QStringLiteral("qt.svg.warning=false"));
        m_model = mythos::Model::open(MYTHOS_TEST_DATA_DIR "/tiny_mla");
        std::vector<int32_t> ids;
        for (int i = 1; i <= 12; ++i)
            ids.push_back(i);
        m_run = m_model->deepRun(ids, 1, int64_t(ids.size()), 6);
    }

    void init() {
        m_tmp = std::make_unique<QTemporaryDir>();
        QVERIFY(m_tmp->isValid());
    }

    void cleanup() { m_tmp.reset(); }

    void createReportViewsListsEveryView() {
        QWidget host;
        const auto views = createReportViews(&host);
        QStringList ids;
        for (auto* v : views) {
            QCOMPARE(v->parentWidget(), &host);
            ids << v->viewId();
            QVERIFY(!v->charts().isEmpty());
        }
        QCOMPARE(ids, (QStringList{"halting", "routing", "kv", "stability", "lens", "attention", "trajectory"}));
    }

    void writesEveryChartAtEveryLoopCount() {
        const ReportInput in = input({2, 6});
        const QString out = folder("report");
        QList<QPair<int, int>> calls;
        const ExportResult r = writeReport(in, out, kChartSize, [&](int done, int total) {
            calls << qMakePair(done, total);
            return true;
        });
        QVERIFY2(r.ok, qPrintable(r.error));
        keepForInspection(out);
        QVERIFY(!calls.isEmpty());
        QCOMPARE(calls.back().first, calls.back().second);
        for (int i = 1; i < calls.size(); ++i)
            QVERIFY(calls[i].first >= calls[i - 1].first);
        // Nothing beside the report: no temporary or moved-aside folder.
        QCOMPARE(entries(parentDir()), QStringList{"report"});

        // Reference views showing the same traces give the charts and their data.
        QWidget host;
        host.resize(kChartSize);
        const auto views = createReportViews(&host);
        int charts = 0;
        QStringList expected{"report.pdf", "summary.json"};
        for (const auto& tr : in.traces) {
            const QString sub = QStringLiteral("loops-%1").arg(tr->nLoops);
            QVERIFY(QFileInfo(QDir(out).filePath(sub)).isDir());
            expected << sub + "/trace.json";
            for (auto* v : views) {
                v->setTrace(tr);
                for (const ChartHandle& h : v->charts()) {
                    ++charts;
                    const QString base = QDir(out).filePath(sub + '/' + v->viewId() + '-' + h.id);
                    for (const char* suffix : {".png", ".svg", ".csv", ".json"}) {
                        QVERIFY2(QFileInfo(base + suffix).isFile(), qPrintable(base + suffix));
                        expected << QDir(out).relativeFilePath(base + suffix);
                    }
                    const QImage png(base + ".png");
                    QVERIFY2(!png.isNull(), qPrintable(base));
                    const int hfw = h.widget->heightForWidth(kChartSize.width());
                    QCOMPARE(png.size(), hfw > 0 ? QSize(kChartSize.width(), hfw) : kChartSize);
                    QVERIFY2(distinctColours(png, 3) >= 3, qPrintable(base + ".png is blank"));

                    QSvgRenderer svg(base + ".svg");
                    QVERIFY2(svg.isValid(), qPrintable(base));
                    QXmlStreamReader xml(readAll(base + ".svg"));
                    while (!xml.atEnd())
                        xml.readNext();
                    QVERIFY2(!xml.hasError(), qPrintable(base + ".svg: " + xml.errorString()));

                    const DataTable table = h.data();
                    QVERIFY(!table.rows.isEmpty());
                    QCOMPARE(csvRecords(QString::fromUtf8(readAll(base + ".csv"))), int(table.rows.size()) + 1);
                    QCOMPARE(readAll(base + ".csv"), table.toCsv());
                    QJsonParseError err;
                    const QJsonDocument j = QJsonDocument::fromJson(readAll(base + ".json"), &err);
                    QVERIFY2(err.error == QJsonParseError::NoError, qPrintable(err.errorString()));
                    QCOMPARE(j.object()["rows"].toArray().size(), qsizetype(table.rows.size()));
                }
            }
            const QString tracePath = QDir(out).filePath(sub + "/trace.json");
            const mythos::Trace saved = mythos::loadTrace(QFile::encodeName(tracePath).toStdString());
            QCOMPARE(saved.nLoops, tr->nLoops);
            QCOMPARE(saved.loopsExecuted, tr->loopsExecuted);
            QCOMPARE(saved.haltLoop, tr->haltLoop);
        }
        QVERIFY(charts >= 2 * 8);
        QStringList written = r.files;
        written.sort();
        expected.sort();
        QCOMPARE(written, expected);

        // summary.json: the loop counts, KV bytes from the engine's accounting, the files.
        QJsonParseError err;
        const QJsonObject s = QJsonDocument::fromJson(readAll(QDir(out).filePath("summary.json")), &err).object();
        QVERIFY2(err.error == QJsonParseError::NoError, qPrintable(err.errorString()));
        QCOMPARE(s["schema"].toString(), QString(kReportSchema));
        QCOMPARE(s["model"].toString(), in.model);
        QCOMPARE(s["prompt"].toString(), in.prompt);
        QCOMPARE(s["parameters"].toDouble(), double(in.parameters));
        QCOMPARE(s["config"].toObject()["attn_type"].toString(), QString("mla"));
        QCOMPARE(s["config"].toObject()["dim"].toInt(), int(in.config.dim));
        QCOMPARE(s["loop_counts"].toArray(), (QJsonArray{2, 6}));
        QCOMPARE(s["ids"].toArray().size(), 12);
        const QJsonArray runs = s["runs"].toArray();
        QCOMPARE(runs.size(), 2);
        for (int i = 0; i < 2; ++i) {
            const auto& tr = *in.traces[i];
            const QJsonObject run = runs[i].toObject();
            QCOMPARE(run["loops"].toInt(), int(tr.nLoops));
            QCOMPARE(run["loops_executed"].toInt(), int(tr.loopsExecuted));
            QCOMPARE(run["tokens"].toInt(), 12);
            QCOMPARE(run["rho_A"].toDouble(), tr.rhoA);
            const auto ref = mythos::kvLedgerFor(in.config, 1, 12, tr.nLoops, mythos::KvLayout::Reference);
            const auto compact = mythos::kvLedgerFor(in.config, 1, 12, tr.nLoops, mythos::KvLayout::Compact);
            QCOMPARE(run["kv_bytes"].toObject()["reference"].toDouble(), double(ref.referenceBytes));
            QCOMPARE(run["kv_bytes"].toObject()["compact"].toDouble(), double(compact.engineBytes));
            QVERIFY(compact.engineBytes < ref.referenceBytes); // MLA: the rope key once, not per head
            QVERIFY(run["timings_ms"].toObject().contains("coda_head"));
            QVERIFY(!run["files"].toArray().isEmpty());
        }
        QCOMPARE(s["timings_ms"].toObject()["deep_run"].toDouble(), 1.5);

        // report.pdf: a whole PDF with the summary page and two charts per page.
        const QByteArray pdf = readAll(QDir(out).filePath("report.pdf"));
        QVERIFY(pdf.startsWith("%PDF-"));
        QVERIFY(pdf.trimmed().endsWith("%%EOF"));
        QVERIFY(pdf.contains("startxref"));
        QVERIFY(pdf.contains("/Font")); // the summary and captions are text, not pictures
        QVERIFY2(pdfPages(pdf) >= 1 + charts / 2, qPrintable(QString::number(pdfPages(pdf))));
    }

    void refusesAFolderThatIsNotAReport() {
        const QString out = folder("notes");
        QVERIFY(QDir().mkpath(out));
        QFile f(QDir(out).filePath("notes.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("keep me");
        f.close();
        const QString problem = reportFolderProblem(out);
        QVERIFY(problem.contains(QDir::toNativeSeparators(out)));
        const ExportResult r = writeReport(input({2}), out, kChartSize);
        QVERIFY(!r.ok);
        QVERIFY2(r.error.contains(QDir::toNativeSeparators(out)), qPrintable(r.error));
        QVERIFY(r.files.isEmpty());
        QCOMPARE(entries(out), QStringList{"notes.txt"});
        QCOMPARE(readAll(QDir(out).filePath("notes.txt")), QByteArray("keep me"));
        QCOMPARE(entries(parentDir()), QStringList{"notes"});

        // A file is no folder either.
        const ExportResult onFile = writeReport(input({2}), QDir(out).filePath("notes.txt"), kChartSize);
        QVERIFY(!onFile.ok);
        QVERIFY2(onFile.error.contains("notes.txt"), qPrintable(onFile.error));
        QCOMPARE(entries(out), QStringList{"notes.txt"});
    }

    void writesIntoAnEmptyOrMissingFolder() {
        const QString empty = folder("empty");
        QVERIFY(QDir().mkpath(empty));
        const ExportResult a = writeReport(input({2}), empty, kChartSize);
        QVERIFY2(a.ok, qPrintable(a.error));
        QVERIFY(QFileInfo(QDir(empty).filePath("summary.json")).isFile());
        // A missing parent is created.
        const QString deep = folder("a/b/report");
        const ExportResult b = writeReport(input({2}), deep, kChartSize);
        QVERIFY2(b.ok, qPrintable(b.error));
        QVERIFY(QFileInfo(QDir(deep).filePath("report.pdf")).isFile());
        QCOMPARE(entries(folder("a/b")), QStringList{"report"});
    }

    void replacesAPreviousReport() {
        const QString out = folder("report");
        QVERIFY(writeReport(input({2}), out, kChartSize).ok);
        QFile stale(QDir(out).filePath("stale.txt"));
        QVERIFY(stale.open(QIODevice::WriteOnly));
        stale.close();
        const ExportResult r = writeReport(input({3, 5}), out, kChartSize);
        QVERIFY2(r.ok, qPrintable(r.error));
        QVERIFY(!QFileInfo::exists(QDir(out).filePath("stale.txt")));
        QVERIFY(!QFileInfo::exists(QDir(out).filePath("loops-2")));
        QVERIFY(QFileInfo(QDir(out).filePath("loops-5/trace.json")).isFile());
        const QJsonObject s = QJsonDocument::fromJson(readAll(QDir(out).filePath("summary.json"))).object();
        QCOMPARE(s["loop_counts"].toArray(), (QJsonArray{3, 5}));
        QCOMPARE(entries(parentDir()), QStringList{"report"});
    }

    void cancelLeavesNothingBehind() {
        const QString out = folder("report");
        int calls = 0;
        const ExportResult r = writeReport(input({2, 4}), out, kChartSize, [&](int, int) { return ++calls < 4; });
        QVERIFY(!r.ok);
        QCOMPARE(r.error, QString("cancelled"));
        QVERIFY(!QFileInfo::exists(out));
        QVERIFY(entries(parentDir()).isEmpty());

        // Cancelling a replacement keeps the previous report as it was.
        QVERIFY(writeReport(input({2}), out, kChartSize).ok);
        const QByteArray before = readAll(QDir(out).filePath("summary.json"));
        const QStringList beforeEntries = entries(out);
        int late = 0;
        const ExportResult r2 = writeReport(input({3}), out, kChartSize, [&](int done, int total) {
            ++late;
            return done < total; // the very last step
        });
        QVERIFY(!r2.ok);
        QCOMPARE(r2.error, QString("cancelled"));
        QVERIFY(late > 2);
        QCOMPARE(readAll(QDir(out).filePath("summary.json")), before);
        QCOMPARE(entries(out), beforeEntries);
        QCOMPARE(entries(parentDir()), QStringList{"report"});
    }

    void rejectsBadInput() {
        ReportInput none = input({});
        const ExportResult a = writeReport(none, folder("x"), kChartSize);
        QVERIFY(!a.ok);
        QVERIFY(!a.error.isEmpty());
        const ExportResult b = writeReport(input({4, 2}), folder("x"), kChartSize);
        QVERIFY(!b.ok);
        QVERIFY(b.error.contains("ascending"));
        QVERIFY(entries(parentDir()).isEmpty());
    }
};

MX_QTEST_MAIN(ReportTest)
#include "test_report.moc"
