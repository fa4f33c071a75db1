#include "mythos/tokenizer.h"

#include <nlohmann/json.hpp>

#include "mythos/errors.h"
#include "mythos/fileio.h"

namespace mythos {

namespace {

// Length of the UTF-8 sequence starting at s[i] (1 for invalid bytes).
std::size_t utf8Length(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + n > s.size())
        return 1;
    for (std::size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
            return 1;
    return n;
}

} // namespace

Tokenizer Tokenizer::bytes() { return Tokenizer{}; }

Tokenizer Tokenizer::fromJson(std::string_view text, const std::string& source, int64_t vocabSize) {
    auto fail = [&](const std::string& what) -> Tokenizer { throw FormatError(source + ": " + what); };
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return fail("the file is empty");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        return fail("not valid JSON: " + jsonErrorDetail(e));
    }
    if (!j.is_object())
        return fail("not a JSON object");
    if (j.contains("model") && j["model"].is_object()) {
        const auto& type = j["model"]["type"];
        return fail("Hugging Face tokenizers (type " + (type.is_string() ? type.get<std::string>() : type.dump()) +
                    ") are not supported; give the prompt as ids (--ids) or use a character-level tokenizer.json");
    }
    if (!j.contains("type") || j["type"] != "char")
        return fail("unsupported tokenizer type (expected \"type\": \"char\")");
    if (!j.contains("vocab") || !j["vocab"].is_array() || j["vocab"].empty())
        return fail("'vocab' must be a non-empty array of strings");
    Tokenizer t;
    t.m_kind = Kind::Char;
    for (const auto& v : j["vocab"]) {
        if (!v.is_string())
            return fail("'vocab' holds a non-string");
        const std::string s = v.get<std::string>();
        if (s.empty())
            return fail("'vocab' holds an empty string");
        if (!t.m_index.emplace(s, int32_t(t.m_pieces.size())).second)
            return fail("'vocab' lists \"" + s + "\" twice");
        t.m_pieces.push_back(s);
    }
    if (int64_t(t.m_pieces.size()) > vocabSize)
        return fail("the tokenizer has " + std::to_string(t.m_pieces.size()) + " tokens, the model's vocab_size is " +
                    std::to_string(vocabSize));
    if (j.contains("unk") && !j["unk"].is_null()) {
        if (!j["unk"].is_number_integer() || j["unk"].get<int64_t>() < 0 ||
            j["unk"].get<int64_t>() >= int64_t(t.m_pieces.size()))
            return fail("'unk' must be an id inside the vocabulary");
        t.m_unk = int32_t(j["unk"].get<int64_t>());
    }
    return t;
}

Tokenizer Tokenizer::load(const std::filesystem::path& file, int64_t vocabSize) {
    return fromJson(readTextFile(file, 16ull << 20), file.string(), vocabSize);
}

TokenizerChoice chooseTokenizer(const std::filesystem::path& folder, int64_t vocabSize) {
    TokenizerChoice c;
    if (folder.empty()) {
        if (vocabSize >= 256)
            c.tokenizer = Tokenizer::bytes();
        return c;
    }
    const auto file = folder / "tokenizer.json";
    try {
        if (pathKind(file) != PathKind::Missing) {
            c.tokenizer = Tokenizer::load(file, vocabSize);
            return c;
        }
    } catch (const Error& e) {
        c.unreadable = true;
        c.warning = oneLine(e.what()) + " (give prompts as ids)";
        return c;
    }
    if (vocabSize >= 256) {
        c.tokenizer = Tokenizer::bytes();
        c.warning = folder.string() + ": no tokenizer.json, so text is encoded as UTF-8 bytes (ids 0-255); "
                    "that is right only if the model was trained on bytes";
    }
    return c;
}

std::optional<Tokenizer> Tokenizer::forModel(const std::filesystem::path& folder, int64_t vocabSize) {
    const auto file = folder / "tokenizer.json";
    if (!folder.empty() && pathKind(file) != PathKind::Missing)
        return load(file, vocabSize);
    if (vocabSize >= 256)
        return bytes();
    return std::nullopt;
}

// "<N>" at text[i] with N >= first (at most 9 digits): how piece() writes an id the
// vocabulary has no text for. Returns its length, 0 when there is none.
static std::size_t idEscape(std::string_view text, std::size_t i, int64_t first, int32_t& id) {
    if (text[i] != '<')
        return 0;
    std::size_t j = i + 1;
    int64_t v = 0;
    while (j < text.size() && j - i <= 9 && text[j] >= '0' && text[j] <= '9')
        v = v * 10 + (text[j++] - '0');
    if (j == i + 1 || j >= text.size() || text[j] != '>' || v < first || (j - i - 1 > 1 && text[i + 1] == '0'))
        return 0;
    id = int32_t(v);
    return j + 1 - i;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    int32_t escaped = 0;
    for (std::size_t i = 0; i < text.size();) {
        if (const std::size_t n = idEscape(text, i, size(), escaped)) {
            ids.push_back(escaped);
            i += n;
            continue;
        }
        if (m_kind == Kind::Byte) {
            ids.push_back(int32_t(static_cast<unsigned char>(text[i++])));
            continue;
        }
        const std::size_t n = utf8Length(text, i);
        const std::string ch(text.substr(i, n));
        auto it = m_index.find(ch);
        if (it != m_index.end())
            ids.push_back(it->second);
        else if (m_unk)
            ids.push_back(*m_unk);
        else
            throw ArgumentError("the tokenizer has no token for the character '" + ch + "' at byte " +
                                std::to_string(i));
        i += n;
    }
    return ids;
}

std::string Tokenizer::piece(int32_t id) const {
    if (m_kind == Kind::Byte)
        return id >= 0 && id < 256 ? std::string(1, char(id)) : "<" + std::to_string(id) + ">";
    if (id >= 0 && id < int32_t(m_pieces.size()))
        return m_pieces[std::size_t(id)];
    return "<" + std::to_string(id) + ">";
}

std::string Tokenizer::displayPiece(int32_t id) const {
    const std::string p = piece(id);
    if (p == "\n")
        return "\u23CE";
    if (p == " ")
        return "\u2423";
    if (p == "\t")
        return "\u21E5";
    if (p.size() == 1 && (static_cast<unsigned char>(p[0]) < 0x20 || static_cast<unsigned char>(p[0]) >= 0x7F))
        return "<0x" + std::string(1, "0123456789ABCDEF"[(p[0] >> 4) & 0xF]) + std::string(1, "0123456789ABCDEF"[p[0] & 0xF]) + ">";
    return p;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string s;
    for (int32_t id : ids)
        s += piece(id);
    return s;
}

} // namespace mythos
