#include "fuzz_targets.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <unistd.h>

#include "cli_args.h"
#include "mythos/config.h"
#include "mythos/errors.h"
#include "mythos/evaluate.h"
#include "mythos/safetensors.h"
#include "mythos/tokenizer.h"
#include "mythos/trace.h"
#include "mythos/variant.h"

namespace fuzz {

namespace {

std::string_view text(const uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

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
            } catch (const mythos::Error&) {
            }
            try {
                file.readI64(t);
            } catch (const mythos::Error&) {
            }
        }
    } catch (const mythos::Error&) {
    }
}

void config(const uint8_t* data, std::size_t size) {
    try {
        const mythos::Config c = mythos::parseConfig(text(data, size), "fuzz/config.json");
        require(mythos::validate(c).empty());
        mythos::countParameters(c);
        mythos::weightBytesF32(c);
        // What it writes reads back as the same config.
        require(mythos::parseConfig(mythos::configToJsonText(c), "again") == c);
    } catch (const mythos::Error&) {
    }
}

void tokenizer(const uint8_t* data, std::size_t size) {
    if (size == 0)
        return;
    const int64_t vocab = 1 + int64_t(data[0]) * 4; // 1..1021: some fit, some do not
    try {
        const auto tok = mythos::Tokenizer::fromJson(text(data + 1, size - 1), "fuzz/tokenizer.json", vocab);
        require(tok.size() <= std::max<int64_t>(vocab, 256));
        // Encoding some of the input's own text, and decoding it back.
        const std::string_view sample = text(data + 1, std::min<std::size_t>(size - 1, 64));
        try {
            const auto ids = tok.encode(sample);
            for (int32_t id : ids) {
                require(id >= 0); // "<N>" may name any N; the model checks ids against its vocab
                tok.displayPiece(id);
            }
            // Not an identity in general: unk and special pieces ("<pad>") do not encode back.
            tok.encode(tok.decode(ids));
        } catch (const mythos::Error&) {
        }
    } catch (const mythos::Error&) {
    }
}

void trace(const uint8_t* data, std::size_t size) {
    try {
        const mythos::Trace t = mythos::parseTrace(text(data, size), "fuzz/trace.json");
        // A trace that loads saves and loads again as the same trace.
        const mythos::Trace again = mythos::traceFromJson(mythos::traceToJson(t), "again");
        require(again.ids == t.ids && again.haltLoop == t.haltLoop && again.topkIds == t.topkIds);
        require(again.kv.entries.size() == t.kv.entries.size());
    } catch (const mythos::Error&) {
    }
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
        } catch (const mythos::Error&) {
        }
    }
}

void ids(const uint8_t* data, std::size_t size) {
    try {
        const auto rows = cli::parseIdRows(std::string(text(data, size)));
        for (const auto& r : rows)
            for (int32_t id : r)
                require(id >= 0);
    } catch (const cli::UsageError&) {
    }
}

void variant(const uint8_t* data, std::size_t size) {
    try {
        const auto v = mythos::applyVariant(mythos::preset("tiny_mla"), {}, mythos::parseVariant(text(data, size)));
        require(mythos::validate(v.config).empty());
    } catch (const mythos::Error&) {
    }
}

const std::vector<Named>& targets() {
    static const std::vector<Named> all = {{"safetensors", safetensors}, {"config", config}, {"tokenizer", tokenizer},
                                           {"trace", trace},             {"prompts", prompts}, {"ids", ids},
                                           {"variant", variant}};
    return all;
}

} // namespace fuzz
