#include "bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <queue>

#include <nlohmann/json.hpp>

#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/format.h"

namespace mythos::bpe {

namespace {

// The pre-tokenizer patterns of the published byte-level vocabularies.
// GPT-2's: Hugging Face's ByteLevel pre-tokenizer with use_regex, tiktoken's r50k/p50k.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// tiktoken's cl100k_base.
constexpr std::string_view kCl100kPattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// tiktoken's o200k_base (gpt-oss's tokenizer.json carries the same in a Split).
constexpr std::string_view kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A pattern longer than this is not a tokenizer's (the ones above are under 300 bytes).
constexpr std::size_t kMaxPatternBytes = 16 * 1024;
// An added token longer than this is not one (real ones are under 40 bytes).
constexpr std::size_t kMaxAddedTokenBytes = 1024;
// Pre-tokens up to this length are remembered during one encode() call (words repeat).
constexpr std::size_t kCachedPieceBytes = 48;

// GPT-2's byte alphabet: byte b is written as one printable character (b itself for
// printable Latin-1, U+0100 + k for the k-th other byte).
struct ByteAlphabet {
    std::array<char32_t, 256> charOf{};
    std::array<int16_t, 0x144> byteOf{}; // every character used is below U+0144
    ByteAlphabet() {
        byteOf.fill(-1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            charOf[std::size_t(b)] = keep ? char32_t(b) : char32_t(0x100 + extra++);
            byteOf[charOf[std::size_t(b)]] = int16_t(b);
        }
    }
};
const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

} // namespace

std::size_t utf8Char(std::string_view s, std::size_t i) {
    const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = at(i);
    if (c < 0x80)
        return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi)
        return 0;
    for (std::size_t k = 2; k < n; ++k)
        if ((at(i + k) & 0xC0) != 0x80)
            return 0;
    return n;
}

namespace {

// The code point of a valid UTF-8 character of length n at s[i].
char32_t codePoint(std::string_view s, std::size_t i, std::size_t n) {
    const auto at = [&](std::size_t k) { return char32_t(static_cast<unsigned char>(s[i + k])); };
    switch (n) {
    case 1: return at(0);
    case 2: return ((at(0) & 0x1F) << 6) | (at(1) & 0x3F);
    case 3: return ((at(0) & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
    default: return ((at(0) & 0x07) << 18) | ((at(1) & 0x3F) << 12) | ((at(2) & 0x3F) << 6) | (at(3) & 0x3F);
    }
}

// A vocabulary entry written in the byte alphabet, as bytes; nullopt when a character is
// not one of the alphabet's (an added token's plain text, say).
std::optional<std::string> fromByteAlphabet(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8Char(s, i);
        if (n == 0)
            return std::nullopt;
        const char32_t c = codePoint(s, i, n);
        if (c >= alphabet().byteOf.size() || alphabet().byteOf[c] < 0)
            return std::nullopt;
        out.push_back(char(alphabet().byteOf[c]));
        i += n;
    }
    return out;
}

// A short quotation of a token or name for an error message.
std::string quote(std::string_view s) {
    std::string q = oneLine(std::string(s.substr(0, 40)));
    return "\"" + q + (s.size() > 40 ? "...\"" : "\"");
}

bool isAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool isAsciiWord(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

uint64_t pairKey(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

std::string pcre2Message(int code) {
    PCRE2_UCHAR buffer[256];
    const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
    return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<const char*>(buffer));
}

} // namespace

// ---------------------------------------------------------------------------------------
// Pattern

Pattern::Pattern(const std::string& pattern, const std::string& source) : m_text(pattern) {
    if (pattern.size() > kMaxPatternBytes)
        throw FormatError(source + ": the pre-tokenizer pattern is " + std::to_string(pattern.size()) +
                          " bytes long (at most " + std::to_string(kMaxPatternBytes) + ")");
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!code)
        throw FormatError(source + ": the pre-tokenizer pattern does not compile (at byte " + std::to_string(offset) +
                          "): " + pcre2Message(error));
    // Without JIT (a PCRE2 built without it) the interpreter runs the same pattern, slower.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    m_code = code;
}

Pattern::~Pattern() { pcre2_code_free(static_cast<pcre2_code*>(m_code)); }

void Pattern::split(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& pieces) const {
    auto* code = static_cast<pcre2_code*>(m_code);
    // One match state per call: encode() may run on several threads at once.
    struct State {
        pcre2_match_data* data = nullptr;
        pcre2_match_context* context = nullptr;
        pcre2_jit_stack* stack = nullptr;
        ~State() {
            pcre2_jit_stack_free(stack);
            pcre2_match_context_free(context);
            pcre2_match_data_free(data);
        }
    } st;
    st.data = pcre2_match_data_create_from_pattern(code, nullptr);
    st.context = pcre2_match_context_create(nullptr);
    st.stack = pcre2_jit_stack_create(32 * 1024, 8 << 20, nullptr);
    if (!st.data || !st.context || !st.stack)
        throw std::bad_alloc();
    pcre2_jit_stack_assign(st.context, nullptr, st.stack);
    // A budget per match: the published patterns need a few steps per byte; a hostile
    // pattern that backtracks exponentially stops here with an error instead of hanging.
    pcre2_set_match_limit(st.context, 10'000'000);
    pcre2_set_depth_limit(st.context, 100'000);

    std::size_t gap = 0, from = 0;
    while (from < text.size()) {
        const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from,
                                   PCRE2_NO_UTF_CHECK, st.data, st.context);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            throw ArgumentError("the tokenizer's pre-tokenizer pattern failed on the text near byte " +
                                std::to_string(from) + ": " + pcre2Message(rc));
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
        const std::size_t begin = ov[0], end = ov[1];
        if (end <= begin) { // an empty match: look again one character on
            if (begin >= text.size())
                break;
            from = begin + std::max<std::size_t>(1, utf8Char(text, begin));
            continue;
        }
        if (begin > gap)
            pieces.emplace_back(gap, begin);
        pieces.emplace_back(begin, end);
        gap = from = end;
    }
    if (gap < text.size())
        pieces.emplace_back(gap, text.size());
}

// ---------------------------------------------------------------------------------------
// Reading the two formats

std::shared_ptr<const Model> Model::fromHuggingFace(const nlohmann::json& j, const std::string& source,
                                                    int64_t vocabSize) {
    using nlohmann::json;
    auto fail = [&](const std::string& what) { throw FormatError(source + ": " + what); };
    auto typeOf = [](const json& v) {
        return v.is_object() && v.contains("type") && v["type"].is_string() ? v["type"].get<std::string>()
                                                                            : std::string("(none)");
    };
    auto flag = [&](const json& obj, const char* key, bool dflt) {
        if (!obj.contains(key) || obj[key].is_null())
            return dflt;
        if (!obj[key].is_boolean())
            fail(std::string("'") + key + "' must be true or false");
        return obj[key].get<bool>();
    };
    auto emptyOrNull = [](const json& obj, const char* key) {
        return !obj.contains(key) || obj[key].is_null() ||
               (obj[key].is_string() && obj[key].get<std::string>().empty());
    };

    auto m = std::make_shared<Model>();
    const json& model = j["model"];
    const std::string type = typeOf(model);
    if (type != "BPE")
        fail("Hugging Face tokenizers of type " + quote(type) +
             " are not supported (byte-level BPE is); give the prompt as ids (--ids)");
    if (model.contains("dropout") && !model["dropout"].is_null() &&
        !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0))
        fail("BPE dropout is not supported (it makes encoding random)");
    if (!emptyOrNull(model, "continuing_subword_prefix") || !emptyOrNull(model, "end_of_word_suffix"))
        fail("BPE with a continuing_subword_prefix or end_of_word_suffix is not supported (only byte-level BPE)");
    if (flag(model, "byte_fallback", false))
        fail("BPE with byte_fallback (SentencePiece style) is not supported (only byte-level BPE)");
    m->m_ignoreMerges = flag(model, "ignore_merges", false);

    if (j.contains("normalizer") && !j["normalizer"].is_null())
        fail("the normalizer " + quote(typeOf(j["normalizer"])) + " is not supported");

    // The pre-tokenizer: ByteLevel (with GPT-2's pattern or none), or a Split then a
    // ByteLevel without its own pattern.
    std::string pattern;
    bool byteLevel = false;
    auto step = [&](const json& p) {
        const std::string t = typeOf(p);
        if (t == "ByteLevel") {
            if (byteLevel)
                fail("the pre-tokenizer has two ByteLevel steps");
            byteLevel = true;
            m->m_prefixSpace = flag(p, "add_prefix_space", true);
            if (flag(p, "use_regex", true)) {
                if (!pattern.empty())
                    fail("a Split followed by a ByteLevel pre-tokenizer with use_regex is not supported");
                pattern = std::string(kGpt2Pattern);
            }
        } else if (t == "Split") {
            if (byteLevel || !pattern.empty())
                fail("only one Split, before the ByteLevel step, is supported in the pre-tokenizer");
            const json& pat = p.contains("pattern") ? p["pattern"] : json();
            if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string())
                pattern = pat["Regex"].get<std::string>();
            else if (pat.is_object() && pat.contains("String") && pat["String"].is_string())
                pattern = "\\Q" + pat["String"].get<std::string>() + "\\E";
            else
                fail("the Split pre-tokenizer's 'pattern' must be {\"Regex\": ...} or {\"String\": ...}");
            if (pattern.empty() || pattern == "\\Q\\E")
                fail("the Split pre-tokenizer's pattern is empty");
            const std::string behavior = p.value("behavior", json("Isolated")).is_string()
                                             ? p.value("behavior", std::string("Isolated"))
                                             : std::string("(not a string)");
            if (behavior != "Isolated")
                fail("the Split behavior " + quote(behavior) + " is not supported (Isolated is)");
            if (flag(p, "invert", false))
                fail("an inverted Split pre-tokenizer is not supported");
        } else {
            fail("the pre-tokenizer " + quote(t) + " is not supported (ByteLevel, or Split then ByteLevel, is)");
        }
    };
    const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
    if (typeOf(pre) == "Sequence") {
        if (!pre.contains("pretokenizers") || !pre["pretokenizers"].is_array() || pre["pretokenizers"].size() > 16)
            fail("the Sequence pre-tokenizer's 'pretokenizers' must be an array (of at most 16)");
        for (const auto& p : pre["pretokenizers"])
            step(p);
    } else if (!pre.is_null()) {
        step(pre);
    }
    if (!byteLevel)
        fail("only byte-level BPE is supported, and the pre-tokenizer has no ByteLevel step");
    if (!pattern.empty())
        m->m_pattern = std::make_unique<Pattern>(pattern, source);

    // The vocabulary: token (in the byte alphabet) -> id.
    if (!model.contains("vocab") || !model["vocab"].is_object() || model["vocab"].empty())
        fail("'model.vocab' must be a non-empty object of token -> id");
    if (int64_t(model["vocab"].size()) > kMaxTokenId + 1)
        fail("'model.vocab' has " + withCommas(int64_t(model["vocab"].size())) + " tokens (at most " +
             withCommas(kMaxTokenId + 1) + ")");
    std::vector<char> seen;
    for (const auto& [token, idValue] : model["vocab"].items()) {
        if (!idValue.is_number_integer() || idValue.get<int64_t>() < 0 || idValue.get<int64_t>() > kMaxTokenId)
            fail("'model.vocab' gives " + quote(token) + " the id " + oneLine(idValue.dump()) + " (ids are 0 to " +
                 withCommas(kMaxTokenId) + ")");
        if (token.empty())
            fail("'model.vocab' holds an empty token");
        const auto id = int32_t(idValue.get<int64_t>());
        if (std::size_t(id) >= seen.size())
            seen.resize(std::size_t(id) + 1, 0);
        if (seen[std::size_t(id)])
            fail("'model.vocab' gives the id " + std::to_string(id) + " to two tokens");
        seen[std::size_t(id)] = 1;
        const std::string bytes = fromByteAlphabet(token).value_or(token);
        m->m_ids.emplace(bytes, id); // two spellings of one byte string: the first is kept
        if (std::size_t(id) >= m->m_pieces.size())
            m->m_pieces.resize(std::size_t(id) + 1);
        m->m_pieces[std::size_t(id)] = bytes;
    }
    m->m_baseCount = int64_t(model["vocab"].size());

    // Merges, as "left right" strings or [left, right] pairs; their order is their rank.
    if (!model.contains("merges") || !model["merges"].is_array())
        fail("'model.merges' must be an array");
    const json& merges = model["merges"];
    if (merges.size() > m->m_pieces.size() + 256)
        fail("'model.merges' has " + withCommas(int64_t(merges.size())) + " merges for " + withCommas(m->m_baseCount) +
             " tokens");
    m->m_merges.reserve(merges.size());
    auto idOf = [&](const std::string& token, std::size_t rank) {
        const std::string bytes = fromByteAlphabet(token).value_or(token);
        const auto it = m->m_ids.find(bytes);
        if (it == m->m_ids.end())
            fail("merge " + std::to_string(rank) + " names " + quote(token) + ", which is not in the vocabulary");
        return std::pair<std::string, int32_t>(bytes, it->second);
    };
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const json& mg = merges[rank];
        std::string left, right;
        if (mg.is_string()) {
            const std::string s = mg.get<std::string>();
            const std::size_t space = s.find(' ');
            if (space == std::string::npos || space == 0 || space + 1 >= s.size() ||
                s.find(' ', space + 1) != std::string::npos)
                fail("merge " + std::to_string(rank) + " (" + quote(s) + ") is not two tokens separated by a space");
            left = s.substr(0, space);
            right = s.substr(space + 1);
        } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
            left = mg[0].get<std::string>();
            right = mg[1].get<std::string>();
        } else {
            fail("merge " + std::to_string(rank) + " must be \"left right\" or [\"left\", \"right\"]");
        }
        const auto [lb, lid] = idOf(left, rank);
        const auto [rb, rid] = idOf(right, rank);
        const auto joined = m->m_ids.find(lb + rb);
        if (joined == m->m_ids.end())
            fail("merge " + std::to_string(rank) + " (" + quote(left) + " + " + quote(right) +
                 ") makes a token that is not in the vocabulary");
        m->m_merges.emplace(pairKey(lid, rid),
                            PairRank{int32_t(rank), joined->second}); // a repeat keeps its first rank
    }

    if (model.contains("unk_token") && !model["unk_token"].is_null()) {
        if (!model["unk_token"].is_string())
            fail("'model.unk_token' must be a string or null");
        const std::string unk = model["unk_token"].get<std::string>();
        const auto it = m->m_ids.find(fromByteAlphabet(unk).value_or(unk));
        if (it == m->m_ids.end())
            fail("'model.unk_token' " + quote(unk) + " is not in the vocabulary");
        m->m_unk = it->second;
    }

    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
        const json& added = j["added_tokens"];
        if (!added.is_array() || int64_t(added.size()) > kMaxTokenId + 1)
            fail("'added_tokens' must be an array");
        for (const auto& a : added) {
            if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
                !a["content"].is_string())
                fail("each of 'added_tokens' must have an integer 'id' and a string 'content'");
            const int64_t id = a["id"].get<int64_t>();
            const std::string content = a["content"].get<std::string>();
            if (id < 0 || id > kMaxTokenId)
                fail("the added token " + quote(content) + " has the id " + std::to_string(id) + " (ids are 0 to " +
                     withCommas(kMaxTokenId) + ")");
            if (content.empty() || content.size() > kMaxAddedTokenBytes)
                fail("the added token " + std::to_string(id) + " is empty or longer than " +
                     std::to_string(kMaxAddedTokenBytes) + " bytes");
            m->m_added.push_back({content, int32_t(id), flag(a, "lstrip", false), flag(a, "rstrip", false),
                                  flag(a, "single_word", false)});
        }
    }
    m->finish(source, vocabSize);
    return m;
}

std::shared_ptr<const Model> Model::fromTiktoken(std::string_view text, const std::string& source,
                                                 const std::string& fileName, int64_t vocabSize) {
    auto m = std::make_shared<Model>();
    auto fail = [&](std::size_t line, const std::string& what) {
        throw FormatError(source + ": line " + std::to_string(line) + ": " + what);
    };
    static const auto decode64 = [] {
        std::array<int8_t, 256> t{};
        t.fill(-1);
        const std::string_view letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (std::size_t i = 0; i < letters.size(); ++i)
            t[static_cast<unsigned char>(letters[i])] = int8_t(i);
        return t;
    }();
    std::vector<char> seen;
    forEachLine(text, [&](std::size_t lineNo, std::string_view line) {
        if (line.empty())
            return;
        const std::size_t space = line.find(' ');
        if (space == std::string_view::npos || space == 0 || line.find(' ', space + 1) != std::string_view::npos)
            fail(lineNo, "expected \"<base64 token> <rank>\"");
        const std::string_view b64 = line.substr(0, space), rankText = line.substr(space + 1);
        if (rankText.empty() || rankText.size() > 9 ||
            !std::all_of(rankText.begin(), rankText.end(), [](char c) { return c >= '0' && c <= '9'; }))
            fail(lineNo, "the rank " + quote(rankText) + " is not a whole number below 10^9");
        const int64_t rank = std::stoll(std::string(rankText));
        if (rank > kMaxTokenId)
            fail(lineNo, "the rank " + std::to_string(rank) + " is past " + withCommas(kMaxTokenId));
        if (b64.size() % 4 != 0)
            fail(lineNo, "the token is not base64 (its length is not a multiple of 4)");
        std::string bytes;
        uint32_t acc = 0;
        int bits = 0;
        std::size_t pad = 0;
        for (std::size_t i = 0; i < b64.size(); ++i) {
            const char c = b64[i];
            if (c == '=') {
                if (i + 2 < b64.size())
                    fail(lineNo, "the token is not base64 ('=' before the end)");
                ++pad;
                continue;
            }
            const int8_t v = decode64[static_cast<unsigned char>(c)];
            if (v < 0 || pad)
                fail(lineNo, "the token is not base64 (it has " + quote(std::string(1, c)) + ")");
            acc = (acc << 6) | uint32_t(v);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                bytes.push_back(char((acc >> bits) & 0xFF));
            }
        }
        if (bytes.empty())
            fail(lineNo, "the token is empty");
        if (std::size_t(rank) >= seen.size())
            seen.resize(std::size_t(rank) + 1, 0);
        if (seen[std::size_t(rank)])
            fail(lineNo, "the rank " + std::to_string(rank) + " is given twice");
        seen[std::size_t(rank)] = 1;
        if (!m->m_ids.emplace(bytes, int32_t(rank)).second)
            fail(lineNo, "the token of rank " + std::to_string(rank) + " is listed twice");
        if (std::size_t(rank) >= m->m_pieces.size())
            m->m_pieces.resize(std::size_t(rank) + 1);
        m->m_pieces[std::size_t(rank)] = std::move(bytes);
    });
    if (m->m_ids.empty())
        throw FormatError(source + ": the file lists no tokens");
    m->m_baseCount = int64_t(m->m_ids.size());
    m->m_rankById = true;
    m->m_ignoreMerges = true; // tiktoken takes a pre-token that is a token whole

    // The pattern and special tokens tiktoken gives each published encoding.
    std::string lower = fileName;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    std::vector<std::pair<std::string, int32_t>> specials;
    if (lower.find("cl100k") != std::string::npos) {
        m->m_patternName = "cl100k";
        m->m_pattern = std::make_unique<Pattern>(std::string(kCl100kPattern), source);
        specials = {{"<|endoftext|>", 100257},
                    {"<|fim_prefix|>", 100258},
                    {"<|fim_middle|>", 100259},
                    {"<|fim_suffix|>", 100260},
                    {"<|endofprompt|>", 100276}};
    } else if (lower.find("r50k") != std::string::npos || lower.find("p50k") != std::string::npos ||
               lower.find("gpt2") != std::string::npos) {
        m->m_patternName = "gpt2";
        m->m_pattern = std::make_unique<Pattern>(std::string(kGpt2Pattern), source);
        specials = {{"<|endoftext|>", 50256}};
    } else {
        m->m_patternName = "o200k";
        m->m_pattern = std::make_unique<Pattern>(std::string(kO200kPattern), source);
        specials = {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}};
    }
    for (const auto& [content, id] : specials)
        if (std::size_t(id) >= m->m_pieces.size() || m->m_pieces[std::size_t(id)].empty())
            m->m_added.push_back({content, id, false, false, false});
    m->finish(source, vocabSize);
    return m;
}

void Model::finish(const std::string& source, int64_t vocabSize) {
    // The base vocabulary must fit the model; added (special) tokens may lie past it, as
    // gpt-oss's do: a prompt that uses one is then refused by the model, naming the id.
    const int64_t baseEnd = int64_t(m_pieces.size());
    if (baseEnd > vocabSize)
        throw FormatError(source + ": the tokenizer's vocabulary has ids up to " + withCommas(baseEnd - 1) +
                          ", but the model's vocab_size is " + withCommas(vocabSize));
    for (const auto& a : m_added) {
        if (std::size_t(a.id) >= m_pieces.size())
            m_pieces.resize(std::size_t(a.id) + 1);
        if (m_pieces[std::size_t(a.id)].empty())
            m_pieces[std::size_t(a.id)] = a.content;
    }
    for (int b = 0; b < 256; ++b) {
        const auto it = m_ids.find(std::string(1, char(b)));
        m_byteId[std::size_t(b)] = it == m_ids.end() ? -1 : it->second;
    }
    // The added tokens' trie; a later token with the same text replaces an earlier one.
    m_trie.assign(1, TrieNode{});
    for (std::size_t k = 0; k < m_added.size(); ++k) {
        int32_t node = 0;
        for (const char c : m_added[k].content) {
            const auto uc = static_cast<unsigned char>(c);
            auto it = m_trie[std::size_t(node)].next.find(uc);
            if (it == m_trie[std::size_t(node)].next.end()) {
                m_trie[std::size_t(node)].next.emplace(uc, int32_t(m_trie.size()));
                node = int32_t(m_trie.size());
                m_trie.emplace_back();
            } else {
                node = it->second;
            }
        }
        m_trie[std::size_t(node)].token = int32_t(k);
    }
    std::string name = source;
    if (const auto slash = name.find_last_of("/\\"); slash != std::string::npos)
        name = name.substr(slash + 1);
    m_description = "byte-level BPE, " + withCommas(m_baseCount) + " tokens";
    if (!m_added.empty())
        m_description += " + " + withCommas(int64_t(m_added.size())) + " added";
    m_description += " (" + name + (m_patternName.empty() ? "" : ", " + m_patternName + " pattern") + ")";
}

// ---------------------------------------------------------------------------------------
// Encoding

const std::string& Model::piece(int32_t id) const {
    static const std::string none;
    return id >= 0 && id < int32_t(m_pieces.size()) ? m_pieces[std::size_t(id)] : none;
}

std::optional<Model::PairRank> Model::rankOf(std::string_view joined, int32_t left, int32_t right) const {
    if (m_rankById) {
        const auto it = m_ids.find(joined);
        if (it == m_ids.end())
            return std::nullopt;
        return PairRank{it->second, it->second};
    }
    const auto it = m_merges.find(pairKey(left, right));
    if (it == m_merges.end())
        return std::nullopt;
    return it->second;
}

void Model::mergePiece(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.empty())
        return;
    if (m_ignoreMerges || piece.size() == 1) {
        if (const auto it = m_ids.find(piece); it != m_ids.end()) {
            out.push_back(it->second);
            return;
        }
    }
    // One symbol per byte to start with; symbol i covers [i, end) and lives while `alive`.
    struct Symbol {
        int32_t id;
        uint32_t end;
        int32_t prev;
        bool alive;
        bool unknown; // a byte the vocabulary lacks, standing as unk: never merged
    };
    const std::size_t n = piece.size();
    std::vector<Symbol> sym(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto b = static_cast<unsigned char>(piece[i]);
        int32_t id = m_byteId[b];
        const bool unknown = id < 0;
        if (unknown) {
            if (!m_unk) {
                static const char* hex = "0123456789ABCDEF";
                throw ArgumentError(std::string("the tokenizer has no token for the byte 0x") + hex[b >> 4] +
                                    hex[b & 15] + " (in " + quote(piece) + ")");
            }
            id = *m_unk;
        }
        sym[i] = {id, uint32_t(i + 1), int32_t(i) - 1, true, unknown};
    }
    // Candidate merges, lowest rank first, then leftmost. An entry is stale when either
    // side has changed since it was pushed (checked by the ends it recorded).
    struct Candidate {
        int32_t rank;
        uint32_t start, mid, end;
        int32_t id;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : start > o.start; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto consider = [&](uint32_t left) {
        const uint32_t right = sym[left].end;
        if (right >= n || sym[left].unknown || sym[right].unknown)
            return;
        const uint32_t end = sym[right].end;
        if (const auto r = rankOf(piece.substr(left, end - left), sym[left].id, sym[right].id))
            queue.push({r->rank, left, right, end, r->id});
    };
    for (uint32_t i = 0; i + 1 < n; ++i)
        consider(i);
    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol& left = sym[c.start];
        if (!left.alive || left.end != c.mid || !sym[c.mid].alive || sym[c.mid].end != c.end)
            continue;
        left.id = c.id;
        left.end = c.end;
        sym[c.mid].alive = false;
        if (c.end < n)
            sym[c.end].prev = int32_t(c.start);
        if (left.prev >= 0)
            consider(uint32_t(left.prev));
        consider(c.start);
    }
    for (uint32_t i = 0; i < n; i = sym[i].end)
        out.push_back(sym[i].id);
}

std::vector<int32_t> Model::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> cache;
    std::vector<std::pair<std::size_t, std::size_t>> pieces;

    auto encodePiece = [&](std::string_view p) {
        if (p.size() > kCachedPieceBytes) {
            mergePiece(p, ids);
            return;
        }
        auto it = cache.find(p);
        if (it == cache.end()) {
            std::vector<int32_t> got;
            mergePiece(p, got);
            it = cache.emplace(std::string(p), std::move(got)).first;
        }
        ids.insert(ids.end(), it->second.begin(), it->second.end());
    };
    // Text between added tokens: pre-tokenized by the pattern, a run of valid UTF-8 at a
    // time (a byte that is not valid UTF-8, which typed text never has but decoded ids may,
    // is a piece of its own: byte-level BPE has a token for every byte).
    std::string spaced;
    auto encodeChunk = [&](std::string_view chunk) {
        if (chunk.empty())
            return;
        if (m_prefixSpace && chunk.front() != ' ') {
            spaced.assign(" ").append(chunk);
            chunk = spaced;
        }
        for (std::size_t i = 0; i < chunk.size();) {
            std::size_t j = i;
            while (j < chunk.size()) {
                const std::size_t n = utf8Char(chunk, j);
                if (n == 0)
                    break;
                j += n;
            }
            if (j > i) {
                const std::string_view run = chunk.substr(i, j - i);
                if (m_pattern) {
                    pieces.clear();
                    m_pattern->split(run, pieces);
                    for (const auto& [b, e] : pieces)
                        encodePiece(run.substr(b, e - b));
                } else {
                    encodePiece(run);
                }
            }
            if (j < chunk.size())
                encodePiece(chunk.substr(j, 1));
            i = j + (j < chunk.size() ? 1 : 0);
        }
    };

    std::size_t pending = 0; // start of the text not yet encoded
    for (std::size_t i = 0; i < text.size();) {
        int32_t best = -1;
        std::size_t bestLength = 0;
        if (m_trie.size() > 1) {
            int32_t node = 0;
            for (std::size_t k = i; k < text.size(); ++k) {
                const auto& next = m_trie[std::size_t(node)].next;
                const auto it = next.find(static_cast<unsigned char>(text[k]));
                if (it == next.end())
                    break;
                node = it->second;
                if (m_trie[std::size_t(node)].token >= 0) {
                    best = m_trie[std::size_t(node)].token;
                    bestLength = k + 1 - i;
                }
            }
        }
        if (best < 0) {
            ++i;
            continue;
        }
        const AddedToken& t = m_added[std::size_t(best)];
        std::size_t begin = i, end = i + bestLength;
        if (t.singleWord &&
            ((begin > 0 && isAsciiWord(text[begin - 1])) || (end < text.size() && isAsciiWord(text[end])))) {
            ++i;
            continue;
        }
        if (t.lstrip)
            while (begin > pending && isAsciiSpace(text[begin - 1]))
                --begin;
        if (t.rstrip)
            while (end < text.size() && isAsciiSpace(text[end]))
                ++end;
        encodeChunk(text.substr(pending, begin - pending));
        ids.push_back(t.id);
        pending = i = end;
    }
    encodeChunk(text.substr(pending));
    return ids;
}

} // namespace mythos::bpe
