#pragma once
// Tokenizers the engine can read. The bundled models use a character-level
// tokenizer.json (docs/tokenizer.md):
//   {"type": "char", "version": 1, "vocab": ["<pad>", "a", "b", ...], "unk": 0}
// where every vocab entry is one Unicode character (or a special token in angle brackets
// that is only produced by decoding). A model folder without tokenizer.json and a vocab
// of at least 256 gets the byte tokenizer (id = byte value); otherwise prompts must be
// given as ids.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mythos {

class Tokenizer {
public:
    enum class Kind { Char, Byte };

    static Tokenizer fromJson(std::string_view text, const std::string& source, int64_t vocabSize);
    static Tokenizer load(const std::filesystem::path& file, int64_t vocabSize);
    static Tokenizer bytes();
    // tokenizer.json in the folder, else bytes() when vocabSize >= 256, else nullopt.
    static std::optional<Tokenizer> forModel(const std::filesystem::path& folder, int64_t vocabSize);

    Kind kind() const { return m_kind; }
    int64_t size() const { return m_kind == Kind::Byte ? 256 : int64_t(m_pieces.size()); }
    // Throws ArgumentError naming the first character the vocabulary lacks (unless an
    // unk id is defined, which then stands for it). "<N>" with N >= size() is token N, the
    // text piece() gives an id without a piece of its own, so decoded text encodes back to
    // the same ids (a byte model's generated id 458 shows as "<458>").
    std::vector<int32_t> encode(std::string_view text) const;
    std::string decode(const std::vector<int32_t>& ids) const;
    // Text of one token for display (control characters made visible, e.g. "\n" -> "⏎").
    std::string piece(int32_t id) const;
    std::string displayPiece(int32_t id) const;

private:
    Kind m_kind = Kind::Byte;
    std::vector<std::string> m_pieces;
    std::map<std::string, int32_t> m_index;
    std::optional<int32_t> m_unk;
};

// How a model's text becomes ids, and what the user must be told about it: never a silent
// fallback. A folder's tokenizer.json that cannot be read does not stop the model from
// opening (prompts can still be given as ids); a folder without one whose vocabulary has at
// least 256 tokens encodes text as UTF-8 bytes, which is right only for a byte-level model.
struct TokenizerChoice {
    std::optional<Tokenizer> tokenizer; // none: prompts only as ids
    std::string warning;                // one line naming the file or folder; empty when all is well
    bool unreadable = false;            // tokenizer.json exists but cannot be used (warning says why)
};
// `folder` empty for a preset (random weights: bytes, without a warning).
TokenizerChoice chooseTokenizer(const std::filesystem::path& folder, int64_t vocabSize);

} // namespace mythos
