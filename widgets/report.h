#pragma once
// A report: one folder with every chart of every report view at each loop count (PNG, SVG,
// CSV, JSON), the traces, a machine-readable summary.json and one report.pdf with a summary
// table and all charts. Independent of the main window, so that `mythos-cli report` makes
// the same folder offscreen.
//
// Layout of the folder:
//   summary.json                          schema "mythos-report/1"
//   report.pdf                            summary page, then the charts two per page
//   loops-<k>/<viewId>-<chartId>.png|svg|csv|json
//   loops-<k>/trace.json                  schema mythos-trace/1
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <QList>
#include <QSize>
#include <QString>

#include "chartexporter.h"
#include "mythos/config.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QWidget;
QT_END_NAMESPACE

namespace mx {

inline constexpr const char* kReportSchema = "mythos-report/1";

struct ReportInput {
    QString model; // folder or preset:NAME[:SEED], as opened
    mythos::Config config;
    int64_t parameters = 0;
    double rhoA = 0;
    QString prompt;
    QList<TracePtr> traces; // one per loop count (trace->nLoops), ascending
    QString engineOptions;  // human readable, e.g. "kv_layout reference, act_final_remainder off"
    // Stages that serve every loop count (e.g. "deep_run" to the largest one); each trace
    // has its own timingsMs for what only it costs.
    std::vector<std::pair<std::string, double>> runTimingsMs;
    bool includeLogits = false; // logits [B][T][V] in each trace.json (large for a big vocabulary)
};

// Progress of writeReport: return false to cancel.
using ReportProgress = std::function<bool(int done, int total)>;

// Every view that goes into a report, in report order (viewregistry.h: the one place to add
// a view). The views are children of `parent` and show no trace yet.
QList<TraceView*> createReportViews(QWidget* parent);

// Why `folder` cannot take a report (empty when it can): it is a file, or a non-empty
// folder that holds no report (summary.json). An existing report is replaced.
QString reportFolderProblem(const QString& folder);

// Writes the report into a temporary sibling of `folder` and renames it into place only when
// every file is written, so that a failure or a cancel leaves neither a half-written report
// nor a temporary folder, and a previous report is replaced only by a complete one. Charts
// are rendered at `chartSize` (a chart whose height follows its width, such as the prompt's
// token chips, at that width and its own height). On failure `error` names the file and the
// reason, and is exactly "cancelled" when `progress` returned false; on success `files`
// lists the report's files relative to `folder`. Runs on the GUI thread (it renders widgets).
ExportResult writeReport(const ReportInput& input, const QString& folder, QSize chartSize,
                         const ReportProgress& progress = {});

} // namespace mx
