#pragma once
// One mythos-cli command: the dispatcher (main.cpp) parses its options, prints `--help` from
// these fields and calls its handler. Each command lives in its own file and gives its entry
// through the function declared below.
#include <set>
#include <string>

#include "args.h"

namespace cli {

struct Command {
    std::string name;
    // The options' synopsis, one help line per '\n'; empty when the command takes none.
    std::string usage;
    // What the command does: one line, or a few wrapped at the help text's width.
    std::string summary;
    // Options beyond the common ones (common.h): with a value, and flags.
    std::set<std::string> valued;
    std::set<std::string> flags;
    int (*run)(const Args&) = nullptr;
    // false: the arguments are not parsed and `--help` is not looked for (presets ignores
    // whatever it is given).
    bool parsesOptions = true;
};

// In the order of the help text.
Command infoCommand();
Command traceCommand();
Command generateCommand();
Command benchCommand();
Command rescaleCommand();
Command evalCommand();
Command reportCommand();
Command tokenizeCommand();
Command presetsCommand();

} // namespace cli
