// mythos-cli rescale: the injection A rescaled to a spectral radius, saved as a new model folder.
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "common.h"
#include "mythos/fileio.h"
#include "mythos/stability.h"
#include "mythos/tokenizer.h"
#include "mythos/weights.h"

namespace fs = std::filesystem;
using namespace mythos;

namespace cli {
namespace {

int runRescale(const Args& a) {
    const std::string spec = modelSpec(a);
    if (isPresetSpec(spec))
        throw UsageError("rescale needs a model folder");
    const double target = a.real("target", 0.9, 1e-9, 1.0);
    Checkpoint ck = loadCheckpoint(spec);
    const auto A = injectionFromLogs(ck.weights.at("recurrent.injection.log_A").data,
                                     ck.weights.at("recurrent.injection.log_dt").data.at(0));
    const double before = spectralRadiusDiagonal(A);
    const double after = rescaleInjection(ck.weights, target);
    const fs::path out = a.str("out");
    saveCheckpoint(out, ck.config, ck.weights, {{"source", spec}, {"rescaled_rho_A", std::to_string(after)}});
    if (const fs::path tokFile = Tokenizer::tokenizerFile(spec);
        !tokFile.empty() && !fs::exists(out / tokFile.filename()))
        writeFileAtomic(out / tokFile.filename(), readTextFile(tokFile, 128ull << 20));
    std::printf("rho(A) %.6f -> %.6f, saved %s\n", before, after, out.string().c_str());
    return 0;
}

} // namespace

Command rescaleCommand() {
    return {"rescale",
            "--model DIR --target 0.9 --out DIR",
            "rescale the injection A to a spectral radius and save a new model folder",
            {"target", "out"},
            {},
            runRescale};
}

} // namespace cli
