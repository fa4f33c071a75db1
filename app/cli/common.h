#pragma once
// What several mythos-cli commands share: the common options and their help, the model
// named by --model (or the bundled demo model), its tokenizer, the input ids and a few
// number formats.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "args.h"
#include "mythos/config.h"
#include "mythos/model.h"
#include "mythos/modelspec.h"
#include "mythos/tokenizer.h"

namespace cli {

// Options every parsing command takes, and their lines in the help text.
extern const std::set<std::string> kCommonValued;
extern const std::set<std::string> kCommonFlags;
extern const char* const kCommonOptionsHelp;

// --model, or the bundled demo model when it is not given (said once on stderr).
std::string modelSpec(const Args& a);

// The folder a spec's tokenizer is looked for in: empty for a preset.
std::filesystem::path tokenizerFolderOf(const std::string& spec);

mythos::EngineOptions engineOptions(const Args& a);

// The model's tokenizer. `needed`: text will be encoded (--prompt, eval). A tokenizer.json
// that cannot be read is then the error; otherwise (--ids) it is said once on stderr and the
// run goes on. Encoding text as bytes for want of a tokenizer.json is said too, never silent.
// --tokenizer FILE replaces the folder's (a preset has none).
std::optional<mythos::Tokenizer> tokenizerFor(const Args& a, const std::string& spec, int64_t vocab, bool needed);

// Ids from --ids (rows of equal length) or --prompt (one row, tokenized).
std::vector<int32_t> inputIds(const Args& a, const std::optional<mythos::Tokenizer>& tok, int64_t& B, int64_t& T);

// A checkpoint with NaN or infinite weights opens (it may be what the user came to look
// at), with a warning on stderr: its outputs mean nothing.
void warnNonFinite(const std::string& spec, const std::vector<mythos::NonFiniteTensor>& found);

// The model of --model with the engine options of the common options (--vocab resizes a
// preset's vocabulary).
std::unique_ptr<mythos::Model> openModel(const Args& a);

// "512 B", "1.50 KiB", ... "2.00 TiB".
std::string humanBytes(double b);

double median(std::vector<double> v);

} // namespace cli
