#pragma once
// Tokenizers the engine can read (docs/tokenizer.md):
//  - the bundled models' character-level tokenizer.json:
//      {"type": "char", "version": 1, "vocab": ["<pad>", "a", "b", ...], "unk": 0}
//    where every vocab entry is one Unicode character (or a special token in angle
//    brackets that is only produced by decoding);
//  - byte-level BPE: a Hugging Face tokenizer.json (GPT-2 style ByteLevel, or gpt-oss /
//    Llama 3 style Split(Regex) + ByteLevel) or a tiktoken rank file (*.tiktoken);
//  - bytes (id = byte value), for a model folder without either whose vocab has at
//    least 256 tokens; otherwise prompts must be given as ids.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mythos {

namespace bpe {
class Model;
}

// A token's text for display (Tokenizer::displayPiece of a piece already at hand, e.g. a
// trace's): spaces, tabs and newlines made visible ("␣", "⇥", "⏎"), other control
// characters and bytes that are not valid UTF-8 (part of a character) written as <0xNN>.
std::string displayText(std::string_view piece);

class Tokenizer {
public:
    enum class Kind { Char, Byte, Bpe };

    // A tokenizer.json's text: character level or Hugging Face byte-level BPE.
    static Tokenizer fromJson(std::string_view text, const std::string& source, int64_t vocabSize);
    // A tiktoken rank file's text; `fileName` picks the pre-tokenizer pattern and special
    // tokens (cl100k, r50k/p50k/gpt2, else o200k).
    static Tokenizer fromTiktoken(std::string_view text, const std::string& source, const std::string& fileName,
                                  int64_t vocabSize);
    // tokenizer.json or *.tiktoken, by the file's extension.
    static Tokenizer load(const std::filesystem::path& file, int64_t vocabSize);
    static Tokenizer bytes();
    // The folder's tokenizer file (tokenizerFile()), else bytes() when vocabSize >= 256,
    // else nullopt.
    static std::optional<Tokenizer> forModel(const std::filesystem::path& folder, int64_t vocabSize);
    // tokenizer.json in the folder, else its only *.tiktoken file; empty when there is
    // neither. Throws FormatError when the folder holds several .tiktoken files.
    static std::filesystem::path tokenizerFile(const std::filesystem::path& folder);

    Kind kind() const { return m_kind; }
    // One more than the largest id the tokenizer can produce or print.
    int64_t size() const;
    // What kind of tokenizer this is, for the window and `mythos-cli info`, e.g.
    // "byte-level BPE, 199,998 tokens + 2 added (o200k_base.tiktoken, o200k pattern)".
    std::string description() const;
    // Throws ArgumentError naming the first character the vocabulary lacks (unless an
    // unk id is defined, which then stands for it). "<N>" with N >= size() is token N, the
    // text piece() gives an id without a piece of its own, so decoded text encodes back to
    // the same ids (a byte model's generated id 458 shows as "<458>").
    std::vector<int32_t> encode(std::string_view text) const;
    std::string decode(const std::vector<int32_t>& ids) const;
    // The text of one token. A byte-level BPE token may be part of a UTF-8 character, so
    // its piece alone need not be valid UTF-8 (decode() of a whole sequence is).
    std::string piece(int32_t id) const;
    // displayText(piece(id)).
    std::string displayPiece(int32_t id) const { return displayText(piece(id)); }

private:
    bool hasPiece(int32_t id) const;
    std::size_t idEscape(std::string_view text, std::size_t i, int32_t& id) const;

    Kind m_kind = Kind::Byte;
    std::shared_ptr<const bpe::Model> m_bpe;
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
