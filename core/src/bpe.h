#pragma once
// Byte-level BPE (docs/tokenizer.md): Hugging Face tokenizer.json files of type BPE with a
// ByteLevel pre-tokenizer (GPT-2 style, or Split(Regex) + ByteLevel as gpt-oss and Llama 3
// ship them) and tiktoken rank files. Private to core: the public face is mythos::Tokenizer.
//
// Everything works on raw bytes: vocabulary entries written in GPT-2's byte alphabet
// ("Ġworld") are turned back into bytes (" world") when the file is read, so both formats
// share one merge loop. The rule is the one both libraries apply: merge the adjacent pair
// with the lowest rank (the leftmost of equal ranks) until no adjacent pair has one. A
// Hugging Face file ranks a pair by its line in `merges`; a tiktoken file ranks it by the
// id of the joined bytes.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mythos::bpe {

// The largest token id a file may use: real vocabularies stay under 300,000; this bounds
// what a hostile file can make the reader allocate (a table of pieces indexed by id).
inline constexpr int64_t kMaxTokenId = (int64_t(1) << 22) - 1;

// Length of the valid UTF-8 character at s[i] (RFC 3629: no overlongs, no surrogates, at
// most U+10FFFF), 0 when the bytes there are not one.
std::size_t utf8Char(std::string_view s, std::size_t i);

// A compiled PCRE2 pattern (UTF + UCP, JIT when the library has it).
class Pattern {
public:
    // Throws FormatError naming `source` and the place in the pattern PCRE2 objects to.
    Pattern(const std::string& pattern, const std::string& source);
    ~Pattern();
    Pattern(const Pattern&) = delete;
    Pattern& operator=(const Pattern&) = delete;
    // Appends [begin, end) of every match and every gap between matches, in order, covering
    // all of `text` (valid UTF-8). Throws ArgumentError when the match budget runs out (a
    // pattern from a hostile file on text it backtracks on).
    void split(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& pieces) const;
    const std::string& text() const { return m_text; }

private:
    void* m_code = nullptr; // pcre2_code_8
    std::string m_text;
};

struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool lstrip = false, rstrip = false, singleWord = false;
};

class Model {
public:
    // From a parsed Hugging Face tokenizer.json (its "model" has type BPE). Throws
    // FormatError naming `source` and the first problem.
    static std::shared_ptr<const Model> fromHuggingFace(const nlohmann::json& j, const std::string& source,
                                                        int64_t vocabSize);
    // From a tiktoken rank file's text: one "base64 rank" per line. The pattern and special
    // tokens follow the file name (cl100k / r50k, p50k, gpt2 / o200k otherwise).
    static std::shared_ptr<const Model> fromTiktoken(std::string_view text, const std::string& source,
                                                     const std::string& fileName, int64_t vocabSize);

    std::vector<int32_t> encode(std::string_view text) const;
    // The bytes of a token ("" for an id without a piece).
    const std::string& piece(int32_t id) const;
    int64_t size() const { return int64_t(m_pieces.size()); }
    int64_t baseSize() const { return m_baseCount; }
    std::size_t addedCount() const { return m_added.size(); }
    // e.g. "byte-level BPE, 50,257 tokens (gpt2_tokenizer.json)"; what the window and
    // `mythos-cli info` show.
    const std::string& description() const { return m_description; }

private:
    struct PairRank {
        int32_t rank = 0;
        int32_t id = 0;
    };
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    // Ids of one pre-token (bytes) by merging.
    void mergePiece(std::string_view piece, std::vector<int32_t>& out) const;
    std::optional<PairRank> rankOf(std::string_view joined, int32_t left, int32_t right) const;
    void finish(const std::string& source, int64_t vocabSize);

    std::vector<std::string> m_pieces;                                     // id -> bytes
    std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> m_ids; // bytes -> id (base vocabulary)
    std::unordered_map<uint64_t, PairRank> m_merges; // (left id, right id) -> rank and result; empty: tiktoken
    std::array<int32_t, 256> m_byteId{};             // -1: the vocabulary lacks that byte
    std::optional<int32_t> m_unk;
    bool m_rankById = false;     // tiktoken: a pair's rank is the id of the joined bytes
    bool m_ignoreMerges = false; // a pre-token that is itself a token is taken whole
    bool m_prefixSpace = false;  // ByteLevel add_prefix_space
    std::unique_ptr<Pattern> m_pattern;
    std::string m_patternName; // a tiktoken file's: "o200k", "cl100k" or "gpt2"
    std::vector<AddedToken> m_added;
    // A byte trie over the added tokens' contents, for leftmost-longest matching.
    struct TrieNode {
        std::unordered_map<unsigned char, int32_t> next;
        int32_t token = -1; // index into m_added
    };
    std::vector<TrieNode> m_trie;
    int64_t m_baseCount = 0;
    std::string m_description;
};

} // namespace mythos::bpe
