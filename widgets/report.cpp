#include "report.h"
#include "mythos/analysis.h"

#include <QAbstractTextDocumentLayout>
#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFont>
#include <QLocale>
#include <QPageLayout>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QPicture>
#include <QTemporaryDir>
#include <QTextDocument>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

#include "atomicsave.h"
#include "mythos/kvcache.h"
#include "mythos/stability.h"
#include "viewregistry.h"

namespace mx {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The PDF is laid out at the widgets' own resolution, so that a chart's text keeps the size
// it has on screen relative to the chart (as in the single-chart PDF export).
constexpr int kPdfDpi = 96;
constexpr double kMarginMm = 12;
constexpr int kCaptionHeight = 26;
constexpr int kFooterHeight = 18;
constexpr int kSlotGap = 14;
constexpr int kPromptMaxChars = 600;
constexpr int kMaxChartSide = 8192; // exportChartImage's limit
const char* const kSummaryFile = "summary.json";
const char* const kPdfFile = "report.pdf";

QString trReport(const char* text) { return QCoreApplication::translate("mx::Report", text); }

ExportResult failure(const QString& error) {
    ExportResult r;
    r.error = error;
    return r;
}

ExportResult fileFailure(const QString& path, const QString& reason) {
    return failure(trReport("Could not write %1: %2").arg(QDir::toNativeSeparators(path), reason));
}

fs::path toPath(const QString& s) { return fs::path(QFile::encodeName(s).toStdString()); }

QString qstr(const std::string& s) { return QString::fromStdString(s); }

ExportResult saveBytes(const QString& path, const QByteArray& bytes) {
    QString reason;
    if (!saveAtomically(path, bytes, &reason))
        return fileFailure(path, reason);
    ExportResult r;
    r.ok = true;
    r.files << path;
    return r;
}

QString humanBytes(int64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double b = double(bytes);
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    return u == 0 ? QStringLiteral("%1 B").arg(bytes) : QStringLiteral("%1 %2").arg(b, 0, 'f', 2).arg(units[u]);
}

QString formatMs(double ms) {
    return QStringLiteral("%1\u00a0ms").arg(ms, 0, 'f', ms < 10 ? 2 : 1); // no line break before the unit
}

QString timingsText(const std::vector<std::pair<std::string, double>>& timings) {
    QStringList parts;
    for (const auto& [stage, ms] : timings)
        parts << QStringLiteral("%1 %2").arg(qstr(stage), formatMs(ms));
    return parts.isEmpty() ? QStringLiteral("-") : parts.join(", ");
}

json timingsJson(const std::vector<std::pair<std::string, double>>& timings) {
    json j = json::object();
    for (const auto& [stage, ms] : timings)
        j[stage] = ms;
    return j;
}

// Everything summary.json and the summary page say about one loop count.
struct LoopSummary {
    int64_t loops = 0, executed = 0, batch = 0, tokens = 0;
    int64_t kvReference = 0, kvCompact = 0;
    int64_t neverHalted = 0;
    double meanHaltLoop = std::nan("");
    double rhoA = 0;
    std::vector<std::pair<std::string, double>> timings;
    QStringList files; // relative to the report folder
};

LoopSummary summarise(const ReportInput& in, const mythos::Trace& tr) {
    LoopSummary s;
    s.loops = tr.nLoops;
    s.executed = tr.loopsExecuted;
    s.batch = tr.batch;
    s.tokens = tr.seqLen;
    s.rhoA = tr.rhoA;
    s.timings = tr.timingsMs;
    // A cache filled at k loops holds every loop's entries (no early exit with a cache).
    s.kvReference =
        mythos::kvLedgerFor(in.config, tr.batch, tr.seqLen, tr.nLoops, mythos::KvLayout::Reference).referenceBytes;
    s.kvCompact = mythos::kvLedgerFor(in.config, tr.batch, tr.seqLen, tr.nLoops, mythos::KvLayout::Compact).engineBytes;
    const mythos::HaltingSummary halting = mythos::haltingSummary(tr);
    s.neverHalted = halting.never;
    s.meanHaltLoop = halting.meanHaltLoop;
    return s;
}

QString attentionText(const mythos::Config& c) {
    if (c.isMla())
        return QStringLiteral("MLA: dim %1, %2 heads, kv_lora_rank %3, q_lora_rank %4, rope/nope/v %5/%6/%7")
            .arg(c.dim)
            .arg(c.n_heads)
            .arg(c.kv_lora_rank)
            .arg(c.q_lora_rank)
            .arg(c.qk_rope_head_dim)
            .arg(c.qk_nope_head_dim)
            .arg(c.v_head_dim);
    return QStringLiteral("%1: dim %2, %3 heads, %4 kv heads, head dim %5")
        .arg(qstr(mythos::attnTypeName(c.attn_type)).toUpper())
        .arg(c.dim)
        .arg(c.n_heads)
        .arg(c.n_kv_heads)
        .arg(c.headDim());
}

QString promptText(const ReportInput& in) {
    if (!in.prompt.isEmpty())
        return in.prompt;
    // Given as ids: the tokens of the first trace's row 0.
    if (in.traces.isEmpty() || !in.traces.front())
        return {};
    const mythos::Trace& tr = *in.traces.front();
    QStringList tokens;
    for (int i = 0; i < int(tr.seqLen); ++i)
        tokens << tokenLabel(tr, i);
    return tokens.join(QString());
}

// The summary page as HTML (real text in the PDF, laid out by QTextDocument).
QString summaryHtml(const ReportInput& in, const QList<LoopSummary>& loops, QSize chartSize) {
    const mythos::Config& c = in.config;
    auto row = [](const QString& key, const QString& value) {
        return QStringLiteral("<tr><td style='padding-right:14px'><b>%1</b></td><td>%2</td></tr>")
            .arg(key.toHtmlEscaped(), value.toHtmlEscaped());
    };
    QString prompt = promptText(in);
    if (prompt.size() > kPromptMaxChars)
        prompt = prompt.left(kPromptMaxChars) + QStringLiteral(" …");
    QStringList loopCounts;
    for (const auto& l : loops)
        loopCounts << QString::number(l.loops);
    const auto status = mythos::stabilityStatus(in.rhoA);
    QString html = QStringLiteral("<h1>Mythos Explorer report</h1>");
    html += QStringLiteral("<p>%1</p>").arg(QDateTime::currentDateTime().toString(Qt::ISODate).toHtmlEscaped());
    html += QStringLiteral("<table cellspacing='0' cellpadding='2'>");
    html += row(trReport("Model"), in.model);
    html += row(trReport("Attention"), attentionText(c));
    html += row(trReport("Layers"), trReport("prelude %1 + recurrent x %2 (max_loop_iters) + coda %3")
                                        .arg(c.prelude_layers)
                                        .arg(c.max_loop_iters)
                                        .arg(c.coda_layers));
    html += row(trReport("Experts"), trReport("%1 routed (top-%2, width %3) + %4 shared")
                                         .arg(c.n_experts)
                                         .arg(c.n_experts_per_tok)
                                         .arg(c.expert_dim)
                                         .arg(c.n_shared_experts));
    html +=
        row(trReport("Vocabulary"),
            trReport("%1, max_seq_len %2, act_threshold %3").arg(c.vocab_size).arg(c.max_seq_len).arg(c.act_threshold));
    html += row(trReport("Parameters"), QLocale(QLocale::English).toString(qlonglong(in.parameters)));
    html += row(trReport("rho(A)"), QStringLiteral("%1 (%2)")
                                        .arg(in.rhoA, 0, 'f', 6)
                                        .arg(QString::fromLatin1(mythos::stabilityStatusName(status))));
    html += row(trReport("Prompt"), prompt);
    html += row(trReport("Tokens"), loops.isEmpty() ? QString() : QString::number(loops.front().tokens));
    html += row(trReport("Loop counts"), loopCounts.join(", "));
    html += row(trReport("Engine options"), in.engineOptions.isEmpty() ? QStringLiteral("defaults") : in.engineOptions);
    if (!in.runTimingsMs.empty())
        html += row(trReport("Shared timings"), timingsText(in.runTimingsMs));
    html += row(trReport("Chart size"), QStringLiteral("%1 x %2 px").arg(chartSize.width()).arg(chartSize.height()));
    html += QStringLiteral("</table>");

    html += QStringLiteral("<h3>%1</h3>").arg(trReport("By loop count").toHtmlEscaped());
    html += QStringLiteral("<table border='1' cellspacing='0' cellpadding='4' width='100%'><tr>");
    for (const QString& h : {trReport("loops"), trReport("executed"), trReport("rho(A)"), trReport("mean halt loop"),
                             trReport("never halted"), trReport("KV bytes (reference)"), trReport("KV bytes (compact)"),
                             trReport("timings")})
        html += QStringLiteral("<th>%1</th>").arg(h.toHtmlEscaped());
    html += QStringLiteral("</tr>");
    for (const auto& l : loops) {
        const QString mean =
            std::isfinite(l.meanHaltLoop) ? QString::number(l.meanHaltLoop, 'f', 2) : QStringLiteral("-");
        const QStringList cells = {QString::number(l.loops),
                                   QString::number(l.executed),
                                   QString::number(l.rhoA, 'f', 4),
                                   mean,
                                   QStringLiteral("%1 of %2").arg(l.neverHalted).arg(l.batch * l.tokens),
                                   humanBytes(l.kvReference),
                                   humanBytes(l.kvCompact),
                                   timingsText(l.timings)};
        html += QStringLiteral("<tr>");
        for (int i = 0; i < cells.size(); ++i)
            html += QStringLiteral("<td align='%1'>%2</td>")
                        .arg(i < cells.size() - 1 ? QStringLiteral("right") : QStringLiteral("left"),
                             cells[i].toHtmlEscaped());
        html += QStringLiteral("</tr>");
    }
    html += QStringLiteral("</table>");
    html += QStringLiteral("<p>%1</p>")
                .arg(trReport("KV bytes: the cache of one prefill of the prompt at that loop count (every loop adds "
                              "its own entries); compact stores MLA's rope key once per position instead of once "
                              "per head. Charts follow, one section per loop count.")
                         .toHtmlEscaped());
    return html;
}

// report.pdf: a summary page, then the charts two per page with their captions.
class ReportPdf {
public:
    ReportPdf(QIODevice* device, const QString& title, const QString& footer) : m_writer(device), m_footer(footer) {
        m_writer.setResolution(kPdfDpi);
        m_writer.setTitle(title);
        m_writer.setCreator(QStringLiteral("Mythos Explorer"));
        m_writer.setPageLayout(QPageLayout(QPageSize(QPageSize::A4), QPageLayout::Portrait,
                                           QMarginsF(kMarginMm, kMarginMm, kMarginMm, kMarginMm),
                                           QPageLayout::Millimeter));
    }

    bool begin() { return m_painter.begin(&m_writer); }
    bool end() {
        footer();
        return m_painter.end();
    }

    void summary(const QString& html) {
        QTextDocument doc;
        doc.documentLayout()->setPaintDevice(&m_writer);
        QFont font = doc.defaultFont();
        font.setPointSizeF(9);
        doc.setDefaultFont(font);
        doc.setHtml(html);
        const QRect area = contentRect();
        doc.setTextWidth(area.width());
        const double h = doc.size().height();
        m_painter.save();
        m_painter.translate(area.topLeft());
        // A very long summary (many loop counts) shrinks to stay on its one page.
        if (h > area.height())
            m_painter.scale(area.height() / h, area.height() / h);
        doc.drawContents(&m_painter);
        m_painter.restore();
        m_slot = 2; // the charts start on a new page
    }

    // Starts the next chart on a new page even if the current one has room.
    void newSection() {
        if (m_slot == 1)
            m_slot = 2;
    }

    bool chart(QWidget* widget, QSize size, const QString& caption) {
        if (m_slot >= 2) {
            footer();
            m_writer.newPage();
            ++m_page;
            m_slot = 0;
        }
        const QRect area = contentRect();
        const int slotHeight = (area.height() - kSlotGap) / 2;
        const QRect slot(area.left(), area.top() + m_slot * (slotHeight + kSlotGap), area.width(), slotHeight);
        ++m_slot;

        QFont font = m_painter.font();
        font.setPointSizeF(10);
        font.setBold(true);
        m_painter.setFont(font);
        m_painter.setPen(Qt::black);
        const QRect captionRect(slot.left(), slot.top(), slot.width(), kCaptionHeight);
        m_painter.drawText(captionRect, Qt::AlignLeft | Qt::AlignVCenter,
                           m_painter.fontMetrics().elidedText(caption, Qt::ElideRight, captionRect.width()));

        // Recorded unscaled, then replayed scaled to fit: a graphics view (Qt Charts) rendered
        // straight into a scaled painter culls its items against the unscaled exposed area.
        // The picture keeps text as text and lines as lines.
        QPicture picture;
        {
            QPainter pp(&picture);
            if (!paintChartAt(widget, pp, size))
                return false;
        }
        const QRect box(slot.left(), slot.top() + kCaptionHeight, slot.width(), slot.height() - kCaptionHeight);
        const double scale = std::min(box.width() / double(size.width()), box.height() / double(size.height()));
        m_painter.save();
        m_painter.translate(box.left(), box.top());
        m_painter.scale(scale, scale);
        m_painter.setClipRect(QRect(QPoint(0, 0), size));
        m_painter.setRenderHint(QPainter::LosslessImageRendering);
        m_painter.drawPicture(0, 0, picture);
        m_painter.restore();
        m_painter.save();
        m_painter.setPen(QPen(QColor(190, 190, 190), 0));
        m_painter.drawRect(QRectF(box.left(), box.top(), size.width() * scale, size.height() * scale));
        m_painter.restore();
        return true;
    }

    int pages() const { return m_page; }

private:
    QRect contentRect() const { return QRect(0, 0, m_writer.width(), m_writer.height() - kFooterHeight); }
    void footer() {
        QFont font = m_painter.font();
        font.setPointSizeF(8);
        font.setBold(false);
        m_painter.setFont(font);
        m_painter.setPen(QColor(110, 110, 110));
        const QRect r(0, m_writer.height() - kFooterHeight, m_writer.width(), kFooterHeight);
        m_painter.drawText(r, Qt::AlignLeft | Qt::AlignBottom, m_footer);
        m_painter.drawText(r, Qt::AlignRight | Qt::AlignBottom, QString::number(m_page));
    }

    QPdfWriter m_writer;
    QPainter m_painter;
    QString m_footer;
    int m_page = 1;
    int m_slot = 0;
};

// Charts whose height follows their width (the prompt's token chips, the rho summary) are
// rendered at chartSize's width and their own height: forcing them to chartSize would clip a
// long prompt or pad a short panel with white.
QSize sizeFor(const QWidget* chart, QSize chartSize) {
    const int h = chart ? chart->heightForWidth(chartSize.width()) : -1;
    if (h <= 0)
        return chartSize;
    return QSize(chartSize.width(), std::min(h, kMaxChartSide));
}

// A sibling name for moving an old report aside that nothing uses yet.
QString unusedSibling(const QDir& parent, const QString& base) {
    for (int i = 0;; ++i) {
        const QString name = QStringLiteral("%1.old-%2-%3").arg(base).arg(QCoreApplication::applicationPid()).arg(i);
        if (!QFileInfo::exists(parent.filePath(name)))
            return name;
    }
}

bool renameEntry(const QString& from, const QString& to, QString* reason) {
    std::error_code ec;
    fs::rename(toPath(from), toPath(to), ec);
    if (ec && reason)
        *reason = qstr(ec.message());
    return !ec;
}

QString cleanFolder(const QString& folder) {
    if (folder.trimmed().isEmpty())
        return {};
    return QDir::cleanPath(QFileInfo(QDir::fromNativeSeparators(folder)).absoluteFilePath());
}

} // namespace

QList<TraceView*> createReportViews(QWidget* parent) { return createViews(ViewSet::Report, parent); }

QString reportFolderProblem(const QString& folder) {
    const QString path = cleanFolder(folder);
    if (path.isEmpty())
        return trReport("Choose a folder for the report.");
    const QFileInfo fi(path);
    if (fi.fileName().isEmpty())
        return trReport("%1 cannot hold a report: choose a folder below it.").arg(QDir::toNativeSeparators(path));
    if (!fi.exists())
        return {};
    if (!fi.isDir())
        return trReport("%1 is a file, not a folder.").arg(QDir::toNativeSeparators(path));
    const QDir dir(path);
    if (!dir.isEmpty(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden | QDir::System) &&
        !QFileInfo(dir.filePath(kSummaryFile)).isFile())
        return trReport("%1 is not empty and holds no report (no %2); choose an empty or new folder.")
            .arg(QDir::toNativeSeparators(path), QString::fromLatin1(kSummaryFile));
    return {};
}

ExportResult writeReport(const ReportInput& input, const QString& folder, QSize chartSize,
                         const ReportProgress& progress) {
    if (const QString problem = reportFolderProblem(folder); !problem.isEmpty())
        return failure(problem);
    if (input.traces.isEmpty())
        return failure(trReport("There is no run to report."));
    for (const auto& tr : input.traces)
        if (!tr || tr->seqLen < 1 || tr->batch < 1 || tr->nLoops < 0)
            return failure(trReport("Every loop count of a report needs a trace with at least one token."));
    for (int i = 1; i < input.traces.size(); ++i)
        if (input.traces[i]->nLoops <= input.traces[i - 1]->nLoops)
            return failure(trReport("The loop counts of a report must be distinct and ascending."));
    if (chartSize.width() < 1 || chartSize.height() < 1 || chartSize.width() > kMaxChartSide ||
        chartSize.height() > kMaxChartSide)
        return failure(trReport("The chart size %1 x %2 is outside 1..%3.")
                           .arg(chartSize.width())
                           .arg(chartSize.height())
                           .arg(kMaxChartSide));

    const QString target = cleanFolder(folder);
    const QFileInfo targetInfo(target);
    const QString name = targetInfo.fileName();
    QDir parent(targetInfo.absolutePath());
    if (!parent.exists() && !QDir().mkpath(parent.path()))
        return failure(trReport("Could not create the folder %1.").arg(QDir::toNativeSeparators(parent.path())));
    QTemporaryDir tmp(parent.filePath(name + QStringLiteral(".tmp-XXXXXX")));
    if (!tmp.isValid())
        return failure(trReport("Could not create a temporary folder in %1: %2")
                           .arg(QDir::toNativeSeparators(parent.path()), tmp.errorString()));
    // QTemporaryDir makes an owner-only folder; a report is an ordinary one.
    QFile::setPermissions(tmp.path(), QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadGroup |
                                          QFile::ExeGroup | QFile::ReadOther | QFile::ExeOther);
    const QDir out(tmp.path());

    // The views live in a hidden widget of the export size: nothing is shown, and each chart
    // is laid out at its export size when it is rendered.
    QWidget host;
    host.resize(chartSize);
    const QList<TraceView*> views = createReportViews(&host);
    int chartsPerTrace = 0;
    for (auto* v : views) {
        v->setGeometry(QRect(QPoint(0, 0), chartSize));
        chartsPerTrace += int(v->charts().size());
    }
    const int total = int(input.traces.size()) * (chartsPerTrace + 1) + 2;
    int done = 0;
    auto step = [&]() {
        done = std::min(done + 1, total);
        return !progress || progress(done, total);
    };
    const ExportResult cancelled = failure(trReport("cancelled"));
    if (progress && !progress(0, total))
        return cancelled;

    QList<LoopSummary> loops;
    for (const auto& tr : input.traces)
        loops << summarise(input, *tr);

    ExportResult result;
    result.ok = true;
    auto relative = [&](const QStringList& files) {
        QStringList rel;
        for (const auto& f : files)
            rel << out.relativeFilePath(f);
        return rel;
    };

    AtomicFile pdfFile(out.filePath(kPdfFile));
    if (!pdfFile.open())
        return fileFailure(pdfFile.fileName(), pdfFile.errorString());
    {
        ReportPdf pdf(pdfFile.device(), trReport("Mythos Explorer report: %1").arg(input.model),
                      trReport("Mythos Explorer report: %1").arg(input.model));
        if (!pdf.begin())
            return fileFailure(pdfFile.fileName(), trReport("the PDF could not be started"));
        pdf.summary(summaryHtml(input, loops, chartSize));

        for (int i = 0; i < input.traces.size(); ++i) {
            const TracePtr& tr = input.traces[i];
            const QString sub = QStringLiteral("loops-%1").arg(tr->nLoops);
            if (!out.mkpath(sub))
                return fileFailure(out.filePath(sub), trReport("the folder could not be created"));
            const QDir dir(out.filePath(sub));
            pdf.newSection();
            for (auto* v : views) {
                v->setTrace(tr);
                v->setSelectedToken(-1);
                // Qt Charts deletes the items of replaced axes and series later; without an
                // event loop (mythos-cli) they would still be drawn, at their old place.
                QCoreApplication::sendPostedEvents(nullptr, QEvent::DeferredDelete);
                for (const ChartHandle& h : v->charts()) {
                    const QString base = dir.filePath(v->viewId() + '-' + h.id);
                    const QSize size = sizeFor(h.widget, chartSize);
                    const ExportResult r = exportChart(h, base, size, true, true, false, true, true);
                    if (!r.ok)
                        return r;
                    loops[i].files << relative(r.files);
                    const QString title = h.title.isEmpty() ? h.id : h.title;
                    const QString loopsText =
                        tr->loopsExecuted == tr->nLoops
                            ? trReport("%1 loops").arg(tr->nLoops)
                            : trReport("%1 loops (%2 executed)").arg(tr->nLoops).arg(tr->loopsExecuted);
                    const QString caption = QStringLiteral("%1 · %2 · %3").arg(loopsText, v->viewTitle(), title);
                    if (!pdf.chart(h.widget, size, caption))
                        return fileFailure(pdfFile.fileName(), trReport("the chart %1 could not be drawn at %2 x %3")
                                                                   .arg(title)
                                                                   .arg(size.width())
                                                                   .arg(size.height()));
                    if (!step())
                        return cancelled;
                }
            }
            const QString tracePath = dir.filePath(QStringLiteral("trace.json"));
            try {
                mythos::saveTrace(toPath(tracePath), *tr, input.includeLogits);
            } catch (const std::exception& e) {
                return fileFailure(tracePath, qstr(e.what()));
            }
            loops[i].files << relative({tracePath});
            if (!step())
                return cancelled;
        }
        if (!pdf.end())
            return fileFailure(pdfFile.fileName(), trReport("the PDF could not be finished"));
    }
    if (!pdfFile.commit())
        return fileFailure(pdfFile.fileName(), pdfFile.errorString());
    if (!step())
        return cancelled;

    // summary.json last: its presence marks a complete report.
    json runs = json::array();
    json allFiles = json::array();
    json loopCounts = json::array();
    for (const auto& l : loops) {
        json files = json::array();
        for (const auto& f : l.files) {
            files.push_back(f.toStdString());
            allFiles.push_back(f.toStdString());
        }
        loopCounts.push_back(l.loops);
        runs.push_back({{"loops", l.loops},
                        {"loops_executed", l.executed},
                        {"batch", l.batch},
                        {"tokens", l.tokens},
                        {"rho_A", l.rhoA},
                        {"mean_halt_loop", std::isfinite(l.meanHaltLoop) ? json(l.meanHaltLoop) : json(nullptr)},
                        {"never_halted", l.neverHalted},
                        {"kv_bytes", {{"reference", l.kvReference}, {"compact", l.kvCompact}}},
                        {"timings_ms", timingsJson(l.timings)},
                        {"files", files}});
    }
    allFiles.push_back(kPdfFile);
    json ids = json::array(), pieces = json::array();
    {
        const mythos::Trace& first = *input.traces.front();
        for (int64_t t = 0; t < first.seqLen; ++t) {
            ids.push_back(first.ids.size() > std::size_t(t) ? first.ids[std::size_t(t)] : -1);
            pieces.push_back(tokenLabel(first, int(t)).toStdString());
        }
    }
    const json summary = {{"schema", kReportSchema},
                          {"created", QDateTime::currentDateTimeUtc().toString(Qt::ISODate).toStdString()},
                          {"model", input.model.toStdString()},
                          {"config", mythos::configToJson(input.config)},
                          {"parameters", input.parameters},
                          {"rho_A", input.rhoA},
                          {"stability", mythos::stabilityStatusName(mythos::stabilityStatus(input.rhoA))},
                          {"prompt", input.prompt.toStdString()},
                          {"ids", ids},
                          {"pieces", pieces},
                          {"engine_options", input.engineOptions.toStdString()},
                          {"chart_size", {chartSize.width(), chartSize.height()}},
                          {"loop_counts", loopCounts},
                          {"timings_ms", timingsJson(input.runTimingsMs)},
                          {"runs", runs},
                          {"pdf", kPdfFile},
                          {"files", allFiles}};
    const ExportResult s = saveBytes(out.filePath(kSummaryFile), QByteArray::fromStdString(summary.dump(2) + "\n"));
    if (!s.ok)
        return s;
    if (!step())
        return cancelled;

    // Into place: an empty folder or a previous report makes way only now.
    const QString targetName = QDir::toNativeSeparators(target);
    if (const QString problem = reportFolderProblem(target); !problem.isEmpty())
        return failure(problem);
    QString aside;
    QString reason;
    if (targetInfo.exists()) {
        if (QDir(target).isEmpty(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden | QDir::System)) {
            if (!parent.rmdir(name))
                return failure(trReport("Could not replace the empty folder %1.").arg(targetName));
        } else {
            aside = parent.filePath(unusedSibling(parent, name));
            if (!renameEntry(target, aside, &reason))
                return failure(trReport("Could not move the previous report %1 aside: %2").arg(targetName, reason));
        }
    }
    if (!renameEntry(tmp.path(), target, &reason)) {
        if (!aside.isEmpty())
            renameEntry(aside, target, nullptr);
        return failure(trReport("Could not move the report into %1: %2").arg(targetName, reason));
    }
    tmp.setAutoRemove(false);
    if (!aside.isEmpty())
        QDir(aside).removeRecursively();

    result.files << QString::fromLatin1(kSummaryFile);
    for (const auto& f : allFiles)
        result.files << qstr(f.get<std::string>());
    return result;
}

} // namespace mx
