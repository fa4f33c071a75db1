// mythos-cli tokenize: the model's tokenizer alone, on a text or on ids.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "mythos/config.h"
#include "mythos/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mythos;

namespace cli {
namespace {

// The tokenizer alone (no weights are read): text -> ids and pieces, or ids -> text.
int runTokenize(const Args& a) {
    const std::string spec = modelSpec(a);
    int64_t vocab = 0;
    if (isPresetSpec(spec)) {
        vocab = parseModelSpec(spec).config().vocab_size;
    } else {
        vocab = loadConfig(fs::path(spec) / "config.json").vocab_size;
    }
    const auto tok = tokenizerFor(a, spec, vocab, true);
    if (!tok)
        throw UsageError(
            "this model has no tokenizer file and a vocabulary under 256: there is nothing to tokenize with");
    if (a.has("ids") == a.has("prompt"))
        throw UsageError("give exactly one of --ids and --prompt");
    std::vector<int32_t> ids;
    if (a.has("ids")) {
        for (const auto& row : parseIdRows(a.str("ids")))
            ids.insert(ids.end(), row.begin(), row.end());
    } else {
        ids = tok->encode(a.str("prompt"));
    }
    const std::string text = tok->decode(ids);
    if (a.flag("json")) {
        json pieces = json::array();
        for (int32_t id : ids)
            pieces.push_back(tok->displayPiece(id));
        // Text that is not valid UTF-8 (ids that end inside a character) cannot be a JSON
        // string: such bytes are replaced by U+FFFD.
        std::cout << json({{"tokenizer", tok->description()}, {"ids", ids}, {"pieces", pieces}, {"text", text}})
                         .dump(-1, ' ', false, json::error_handler_t::replace)
                  << "\n";
        return 0;
    }
    std::printf("tokenizer  %s\n%zu tokens\n", tok->description().c_str(), ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i)
        std::printf("%6zu  %8d  %s\n", i, ids[i], tok->displayPiece(ids[i]).c_str());
    if (a.has("ids"))
        std::printf("text: %s\n", text.c_str());
    return 0;
}

} // namespace

Command tokenizeCommand() {
    return {"tokenize",
            "--model SPEC (--prompt TEXT | --ids \"1,2,3\") [--json]",
            "the model's tokenizer on a text (ids and pieces) or on ids (the text)",
            {"ids", "prompt"},
            {"json"},
            runTokenize};
}

} // namespace cli
