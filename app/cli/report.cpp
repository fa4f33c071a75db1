// mythos-cli report: the explorer's report of one run, rendered offscreen (needs the Qt build).
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "command.h"
#include "common.h"
#include "mythos/errors.h"
#include "mythos/kvcache.h"
#include "mythos/lens.h"
#include "mythos/model.h"
#include "mythos/stability.h"
#include "mythos/trace.h"
#include "mythos/weights.h"

#ifdef MYTHOS_CLI_HAS_REPORT
#include <QApplication>
#include <QByteArray>
#include <QSize>
#include <QString>

#include "inferenceworker.h"
#include "report.h"
#endif

using namespace mythos;

namespace cli {
namespace {

#ifdef MYTHOS_CLI_HAS_REPORT
// "1000x600" -> QSize; UsageError otherwise.
QSize parseSize(const std::string& text) {
    const auto x = text.find('x');
    if (x == std::string::npos)
        throw UsageError("--size: expected WIDTHxHEIGHT (e.g. 1000x600), got '" + text + "'");
    const int w = int(parseInt(text.substr(0, x), "--size width", 320, 8192));
    const int h = int(parseInt(text.substr(x + 1), "--size height", 200, 8192));
    return {w, h};
}

#endif

// The same report as the explorer's "Export report", rendered offscreen: one deep run to the
// largest loop count serves every loop count (docs/architecture.md).
int runReport(const Args& a) {
#ifndef MYTHOS_CLI_HAS_REPORT
    (void)a;
    throw UsageError("this mythos-cli was built without Qt (MYTHOS_BUILD_GUI=OFF), so it cannot render reports");
#else
    const std::string spec = modelSpec(a);
    const std::string outDir = a.str("out");
    auto loops = a.intList("loops", {1, 4, 8, 16}, 1, 4096);
    std::sort(loops.begin(), loops.end());
    loops.erase(std::unique(loops.begin(), loops.end()), loops.end());
    const QSize size = parseSize(a.str("size", "1000x600"));
    const EngineOptions options = engineOptions(a);
    if (const QString problem = mx::reportFolderProblem(QString::fromStdString(outDir)); !problem.isEmpty())
        throw ArgumentError(problem.toStdString());

    using Clock = std::chrono::steady_clock;
    auto msSince = [](Clock::time_point since) {
        return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
    };
    auto t0 = Clock::now();
    auto model = openModel(a);
    const double loadMs = msSince(t0);
    const auto tok = tokenizerFor(a, spec, model->config().vocab_size, a.has("prompt"));
    int64_t B = 0, T = 0;
    const auto ids = inputIds(a, tok, B, T);
    if (B != 1)
        throw UsageError("report takes one prompt: give --ids as a single row");

    t0 = Clock::now();
    DeepRun run = model->deepRun(ids, B, T, loops.back());
    const double deepMs = msSince(t0);
    std::fprintf(stderr, "report: %lld tokens run to %lld loops in %.1f ms\n", (long long)T, (long long)loops.back(),
                 deepMs);
    mx::ReportInput in;
    in.model = QString::fromStdString(spec);
    in.config = model->config();
    in.parameters = countParameters(model->config()).total;
    in.rhoA = spectralRadiusDiagonal(model->injectionA());
    in.prompt = QString::fromStdString(a.str("prompt", ""));
    in.engineOptions = QString::fromStdString(describeEngineOptions(options));
    in.runTimingsMs = {{"load", loadMs}, {"deep_run_" + std::to_string(loops.back()), deepMs}};
    in.includeLogits = a.flag("logits");
    for (int64_t k : loops) {
        auto tr = std::make_shared<Trace>();
        model->logitsAt(run, k, tr.get());
        // The inside-the-loop views' parts (docs/inside-the-loop.md); attention over the
        // window the attention view shows first.
        tr->lens = model->lens(run, k);
        if (tok)
            setLensPieces(tr->lens, [&](int32_t id) { return tok->piece(id); });
        tr->trajectory = trajectoryOf(run, k);
        tr->attention.to = std::min<int64_t>(T, mx::kAttentionWindow);
        tr->attention.sites = model->attention(run, k, 0, {}, 0, tr->attention.to);
        if (tok)
            for (int32_t id : ids)
                tr->pieces.push_back(tok->piece(id));
        in.traces.push_back(std::move(tr));
    }

    // No display is needed or used: the views render into images and the PDF.
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication::setAttribute(Qt::AA_Use96Dpi);
    static int qargc = 1;
    static char qname[] = "mythos-cli";
    static char* qargv[] = {qname, nullptr};
    QApplication app(qargc, qargv);

    int lastTenth = -1;
    const auto progress = [&](int done, int total) {
        const int tenth = total > 0 ? done * 10 / total : 10;
        if (tenth != lastTenth) {
            std::fprintf(stderr, "report: %3d%% (%d of %d steps)\n", tenth * 10, done, total);
            lastTenth = tenth;
        }
        return true;
    };
    const mx::ExportResult r = mx::writeReport(in, QString::fromStdString(outDir), size, progress);
    if (!r.ok)
        throw FileError(r.error.toStdString());
    std::fprintf(stderr, "report: %lld files for loop counts", (long long)r.files.size());
    for (int64_t k : loops)
        std::fprintf(stderr, " %lld", (long long)k);
    std::fprintf(stderr, "\n");
    std::printf("%s\n", outDir.c_str());
    return 0;
#endif
}

} // namespace

Command reportCommand() {
    return {"report",
            "--model SPEC (--prompt TEXT | --ids \"1,2,3\") [--loops 1,4,8,16] --out DIR\n"
            "[--size 1000x600] [--logits]",
            "run once to the largest loop count and write a report folder offscreen:\n"
            "every chart (PNG, SVG) and its data (CSV, JSON) and the trace per loop\n"
            "count, summary.json, and report.pdf with a summary table and all charts",
            {"ids", "prompt", "loops", "out", "size"},
            {"logits"},
            runReport};
}

} // namespace cli
