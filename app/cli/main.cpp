// mythos-cli: headless access to the engine (info, trace, generate, bench, rescale, eval,
// report). One file per command (command.h); this one holds the table, prints the help
// from it and turns errors into exit codes: 2 for a usage error, 1 for any other.
#include <algorithm>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "common.h"
#include "mythos/errors.h"

namespace {

using namespace cli;

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {infoCommand(),   traceCommand(),    generateCommand(),
                                               benchCommand(),  rescaleCommand(),  evalCommand(),
                                               reportCommand(), tokenizeCommand(), presetsCommand()};
    return table;
}

std::vector<std::string> splitLines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

// Each command's name, then its synopsis and summary lines in a column.
std::string usage() {
    std::string s = "usage: mythos-cli <command> [options]\n\nCommands:\n";
    for (const Command& c : commands()) {
        std::vector<std::string> lines = splitLines(c.usage);
        for (const auto& l : splitLines(c.summary))
            lines.push_back(l);
        for (std::size_t i = 0; i < lines.size(); ++i) {
            std::string head = i == 0 ? c.name : std::string();
            head.resize(10, ' ');
            s += "  " + head + lines[i] + "\n";
        }
    }
    s += "\nCommon options:\n";
    s += kCommonOptionsHelp;
    s += R"(
SPEC is a model folder (config.json + *.safetensors [+ tokenizer.json or one
*.tiktoken file: docs/tokenizer.md]) or
preset:NAME[:SEED] for random weights (see `mythos-cli presets`). Without --model
the bundled demo model (demo_mla) is used, and eval's --prompts defaults to the
model folder's prompts.jsonl.
Run `mythos-cli <command> --help` for a command's options.
)";
    return s;
}

// One command's help: its synopsis, what it does, and the options every command takes.
std::string commandUsage(const Command& c) {
    std::string s = "usage: mythos-cli " + c.name;
    const std::vector<std::string> synopsis = splitLines(c.usage);
    for (std::size_t i = 0; i < synopsis.size(); ++i)
        s += (i == 0 ? " " : "\n    ") + synopsis[i];
    s += "\n\n";
    for (const auto& l : splitLines(c.summary))
        s += "  " + l + "\n";
    s += "\nCommon options:\n";
    s += kCommonOptionsHelp;
    s += "\nSPEC is a model folder or preset:NAME[:SEED]; `mythos-cli --help` lists every command.\n";
    return s;
}

const Command* findCommand(const std::string& name) {
    for (const Command& c : commands())
        if (c.name == name)
            return &c;
    return nullptr;
}

std::set<std::string> withCommon(const std::set<std::string>& common, const std::set<std::string>& more) {
    std::set<std::string> all = common;
    all.insert(more.begin(), more.end());
    return all;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << usage();
        return args.empty() ? 2 : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    try {
        const Command* c = findCommand(cmd);
        if (!c)
            throw UsageError("unknown command '" + cmd + "' (try mythos-cli --help)");
        if (!c->parsesOptions)
            return c->run(Args({}, {}, {}));
        // The options are checked before --help is looked at: a mistyped one is reported.
        const Args a(args, withCommon(kCommonValued, c->valued), withCommon(kCommonFlags, c->flags));
        if (std::find(args.begin(), args.end(), "--help") != args.end())
            return std::cout << commandUsage(*c), 0;
        return c->run(a);
    } catch (const UsageError& e) {
        std::cerr << "mythos-cli " << cmd << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "mythos-cli " << cmd << ": error: " << mythos::errorMessage(e) << "\n";
        return 1;
    }
}
