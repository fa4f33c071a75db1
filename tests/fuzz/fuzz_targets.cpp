#include "fuzz_targets.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "mythos/config.h"
#include "mythos/errors.h"
#include "mythos/evaluate.h"
#include "mythos/safetensors.h"
#include "mythos/tokenizer.h"
#include "mythos/trace.h"
#include "mythos/variant.h"

namespace fuzz {

namespace {

std::string_view text(const uint8_t* data, std::size_t size) { return {reinterpret_cast<const char*>(data), size}; }

void require(bool ok) {
    if (!ok)
        std::abort(); // an invariant the parser promises does not hold
}

// The file-based parsers read a path: the bytes go to a per-process scratch file.
class ScratchFile {
public:
    ScratchFile(const char* tag, const uint8_t* data, std::size_t size)
        : m_path(std::filesystem::temp_directory_path() /
                 ("mythos_fuzz_" + std::string(tag) + "_" + std::to_string(::getpid()))) {
        std::FILE* f = std::fopen(m_path.c_str(), "wb");
        require(f != nullptr);
        require(size == 0 || std::fwrite(data, 1, size, f) == size);
        std::fclose(f);
    }
    // Removing (rather than truncating next time) avoids ext4's flush on truncate.
    ~ScratchFile() { std::remove(m_path.c_str()); }
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

} // namespace

void safetensors(const uint8_t* data, std::size_t size) {
    ScratchFile f("safetensors", data, size);
    try {
        auto file = mythos::SafetensorsFile::open(f.path());
        for (const auto& t : file.tensors()) {
            require(file.find(t.name) == &t); // the index points at the listed entry
            try {
                require(file.readF32(t).size() == static_cast<std::size_t>(t.numel()));
            } catch (const mythos::Error&) {}
            try {
                file.readI64(t);
            } catch (const mythos::Error&) {}
        }
    } catch (const mythos::Error&) {}
}

void config(const uint8_t* data, std::size_t size) {
    try {
        const mythos::Config c = mythos::parseConfig(text(data, size), "fuzz/config.json");
        require(mythos::validate(c).empty());
        mythos::countParameters(c);
        mythos::weightBytesF32(c);
        // What it writes reads back as the same config.
        require(mythos::parseConfig(mythos::configToJsonText(c), "again") == c);
    } catch (const mythos::Error&) {}
}

namespace {

// docs/tokenizer.md: text that encodes without the unk id decodes back to itself (every id
// is a character's own piece or an id escape "<N>" that prints as it was written), and for
// a character or byte tokenizer that text encodes to the same ids again (byte-level BPE may
// spell the same text with other ids). With unk (or ids from elsewhere) only encoding and
// decoding without error is promised.
// `exact`: false for a BPE file that changes the text's spaces on purpose (ByteLevel's
// add_prefix_space, added tokens with lstrip/rstrip), as Hugging Face's tokenizers do.
void checkRoundTrip(const mythos::Tokenizer& tok, std::string_view s, std::optional<int32_t> unk, bool exact = true) {
    try {
        const auto ids = tok.encode(s);
        for (int32_t id : ids) {
            require(id >= 0); // "<N>" may name any N; the model checks ids against its vocab
            tok.displayPiece(id);
        }
        const std::string back = tok.decode(ids);
        if (!exact) {
            tok.encode(back);
        } else if (!unk || std::find(ids.begin(), ids.end(), *unk) == ids.end()) {
            require(back == s);
            if (tok.kind() != mythos::Tokenizer::Kind::Bpe)
                require(tok.encode(back) == ids);
        } else {
            tok.encode(back);
        }
    } catch (const mythos::Error&) {}
}

} // namespace

void tokenizer(const uint8_t* data, std::size_t size) {
    if (size == 0)
        return;
    const int64_t vocab = 1 + int64_t(data[0]) * 4; // 1..1021: some fit, some do not
    const std::string_view json = text(data + 1, size - 1);
    try {
        const auto tok = mythos::Tokenizer::fromJson(json, "fuzz/tokenizer.json", vocab);
        // A BPE file's added tokens may lie past the model's vocabulary (gpt-oss's do).
        require(tok.size() >= 1 &&
                (tok.kind() == mythos::Tokenizer::Kind::Bpe || tok.size() <= std::max<int64_t>(vocab, 256)));
        // The unk id, if any (the JSON parsed, so reading it again cannot fail).
        std::optional<int32_t> unk;
        const auto j = nlohmann::json::parse(json);
        if (j.contains("unk") && j["unk"].is_number_integer())
            unk = int32_t(j["unk"].get<int64_t>());
        // Spaces a BPE file adds or strips on purpose: the text then does not come back as is.
        const std::string dump = j.dump();
        const bool exact =
            tok.kind() != mythos::Tokenizer::Kind::Bpe ||
            (dump.find("\"add_prefix_space\":false") != std::string::npos &&
             dump.find("\"lstrip\":true") == std::string::npos && dump.find("\"rstrip\":true") == std::string::npos);
        // Some of the input's own text, its tail, and text decoded from ids the tokenizer has
        // pieces for, ids it has none for ("<N>") and ids one past and far past its size.
        checkRoundTrip(tok, json.substr(0, 64), unk, exact);
        checkRoundTrip(tok, json.substr(json.size() - std::min<std::size_t>(json.size(), 64)), unk, exact);
        std::vector<int32_t> ids;
        for (std::size_t i = 1; i < std::min<std::size_t>(size, 24); ++i)
            ids.push_back(int32_t(data[i]) % int32_t(tok.size() + 2));
        ids.push_back(int32_t(tok.size()));
        ids.push_back(999999999);
        checkRoundTrip(tok, tok.decode(ids), unk, exact);
    } catch (const mythos::Error&) {}
}

void tiktoken(const uint8_t* data, std::size_t size) {
    if (size == 0)
        return;
    // The first byte picks the file name, which picks the pattern and special tokens.
    static const char* names[] = {"o200k_base.tiktoken", "cl100k_base.tiktoken", "r50k_base.tiktoken"};
    const std::string_view rest = text(data + 1, size - 1);
    try {
        const auto tok = mythos::Tokenizer::fromTiktoken(rest, "fuzz.tiktoken", names[data[0] % 3], 1 << 22);
        require(tok.kind() == mythos::Tokenizer::Kind::Bpe && tok.size() >= 1);
        // The input's own text, and text decoded from ids of all kinds.
        checkRoundTrip(tok, rest.substr(0, 200), std::nullopt);
        std::vector<int32_t> ids;
        for (std::size_t i = 1; i < std::min<std::size_t>(size, 24); ++i)
            ids.push_back(int32_t(data[i]) % int32_t(tok.size() + 2));
        ids.push_back(int32_t(tok.size()));
        checkRoundTrip(tok, tok.decode(ids), std::nullopt);
    } catch (const mythos::Error&) {}
}

void trace(const uint8_t* data, std::size_t size) {
    ScratchFile f("trace", data, size);
    try {
        const mythos::Trace t = mythos::loadTrace(f.path());
        // A trace that loads converts to JSON and reads back as the same trace.
        const mythos::Trace again = mythos::traceFromJson(mythos::traceToJson(t), "again");
        require(again.config == t.config && again.batch == t.batch && again.seqLen == t.seqLen &&
                again.loopsExecuted == t.loopsExecuted);
        require(again.ids == t.ids && again.haltLoop == t.haltLoop && again.topkIds == t.topkIds);
        require(again.actP.size() == t.actP.size() && again.routerLogits.size() == t.routerLogits.size() &&
                again.logits.size() == t.logits.size());
        require(again.hasKv == t.hasKv && again.kv.entries.size() == t.kv.entries.size());
    } catch (const mythos::Error&) {}
}

void prompts(const uint8_t* data, std::size_t size) {
    ScratchFile f("prompts", data, size);
    static const auto chars = mythos::Tokenizer::fromJson(
        R"({"type": "char", "vocab": ["<pad>", "\n", " ", "0", "1", "2", "3", "a", "b", "c", "=", ";", "?"], "unk": 0})",
        "chars", 64);
    for (const auto& tok : {mythos::Tokenizer::bytes(), chars}) {
        try {
            for (const auto& p : mythos::loadEvalPrompts(f.path(), tok, 64))
                require(!p.prompt.empty() && !p.answer.empty() && int64_t(p.prompt.size() + p.answer.size()) <= 64);
        } catch (const mythos::Error&) {}
    }
}

void ids(const uint8_t* data, std::size_t size) {
    try {
        const auto rows = cli::parseIdRows(std::string(text(data, size)));
        for (const auto& r : rows)
            for (int32_t id : r)
                require(id >= 0);
    } catch (const cli::UsageError&) {}
}

void variant(const uint8_t* data, std::size_t size) {
    try {
        const auto v = mythos::applyVariant(mythos::preset("tiny_mla"), {}, mythos::parseVariant(text(data, size)));
        require(mythos::validate(v.config).empty());
    } catch (const mythos::Error&) {}
}

const std::vector<Named>& targets() {
    static const std::vector<Named> all = {{"safetensors", safetensors},
                                           {"config", config},
                                           {"tokenizer", tokenizer},
                                           {"tiktoken", tiktoken},
                                           {"trace", trace},
                                           {"prompts", prompts},
                                           {"ids", ids},
                                           {"variant", variant}};
    return all;
}

} // namespace fuzz
