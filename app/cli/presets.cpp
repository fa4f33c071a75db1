// mythos-cli presets: the built-in presets and their sizes.
#include <cstdio>

#include "command.h"
#include "common.h"
#include "mythos/config.h"
#include "mythos/format.h"

using namespace mythos;

namespace cli {
namespace {

int runPresets(const Args&) {
    for (const auto& n : presetNames()) {
        const Config c = preset(n);
        std::printf("%-12s %-3s dim %-6lld params %s\n", n.c_str(), attnTypeName(c.attn_type).c_str(), (long long)c.dim,
                    withCommas(countParameters(c).total).c_str());
    }
    return 0;
}

} // namespace

Command presetsCommand() { return {"presets", "", "list the built-in presets", {}, {}, runPresets, false}; }

} // namespace cli
