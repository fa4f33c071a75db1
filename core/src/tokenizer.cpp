#include "mythos/tokenizer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "bpe.h"
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
        Tokenizer t;
        t.m_kind = Kind::Bpe;
        t.m_bpe = bpe::Model::fromHuggingFace(j, source, vocabSize);
        return t;
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

Tokenizer Tokenizer::fromTiktoken(std::string_view text, const std::string& source, const std::string& fileName,
                                  int64_t vocabSize) {
    Tokenizer t;
    t.m_kind = Kind::Bpe;
    t.m_bpe = bpe::Model::fromTiktoken(text, source, fileName, vocabSize);
    return t;
}

// Size limits: gpt-oss's tokenizer.json is 27 MB, Gemma 3's 33 MB; o200k_base.tiktoken 3.6 MB.
Tokenizer Tokenizer::load(const std::filesystem::path& file, int64_t vocabSize) {
    if (file.extension() == ".tiktoken")
        return fromTiktoken(readTextFile(file, 64ull << 20), file.string(), file.filename().string(), vocabSize);
    return fromJson(readTextFile(file, 128ull << 20), file.string(), vocabSize);
}

std::filesystem::path Tokenizer::tokenizerFile(const std::filesystem::path& folder) {
    if (folder.empty())
        return {};
    if (pathKind(folder / "tokenizer.json") != PathKind::Missing)
        return folder / "tokenizer.json";
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".tiktoken")
            found.push_back(it->path());
    if (found.size() > 1) {
        std::sort(found.begin(), found.end());
        throw FormatError(folder.string() + ": holds several .tiktoken files (" + found[0].filename().string() + ", " +
                          found[1].filename().string() + (found.size() > 2 ? ", ..." : "") +
                          "); keep the model's own one");
    }
    return found.empty() ? std::filesystem::path() : found[0];
}

int64_t Tokenizer::size() const {
    switch (m_kind) {
    case Kind::Byte: return 256;
    case Kind::Bpe: return m_bpe->size();
    case Kind::Char: break;
    }
    return int64_t(m_pieces.size());
}

std::string Tokenizer::description() const {
    switch (m_kind) {
    case Kind::Byte: return "bytes (UTF-8, ids 0-255)";
    case Kind::Bpe: return m_bpe->description();
    case Kind::Char: break;
    }
    return "character level, " + std::to_string(m_pieces.size()) + " tokens";
}

TokenizerChoice chooseTokenizer(const std::filesystem::path& folder, int64_t vocabSize) {
    TokenizerChoice c;
    if (folder.empty()) {
        if (vocabSize >= 256)
            c.tokenizer = Tokenizer::bytes();
        return c;
    }
    try {
        if (const auto file = Tokenizer::tokenizerFile(folder); !file.empty()) {
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
        c.warning = folder.string() +
                    ": no tokenizer.json or .tiktoken file, so text is encoded as UTF-8 bytes (ids 0-255); "
                    "that is right only if the model was trained on bytes";
    }
    return c;
}

std::optional<Tokenizer> Tokenizer::forModel(const std::filesystem::path& folder, int64_t vocabSize) {
    if (const auto file = tokenizerFile(folder); !file.empty())
        return load(file, vocabSize);
    if (vocabSize >= 256)
        return bytes();
    return std::nullopt;
}

bool Tokenizer::hasPiece(int32_t id) const {
    if (id < 0 || id >= size())
        return false;
    return m_kind != Kind::Bpe || !m_bpe->piece(id).empty();
}

// "<N>" at text[i] for an id without a piece of its own (at most 9 digits): how piece()
// writes such an id. Returns its length, 0 when there is none.
std::size_t Tokenizer::idEscape(std::string_view text, std::size_t i, int32_t& id) const {
    if (text[i] != '<')
        return 0;
    std::size_t j = i + 1;
    int64_t v = 0;
    while (j < text.size() && j - i <= 9 && text[j] >= '0' && text[j] <= '9')
        v = v * 10 + (text[j++] - '0');
    if (j == i + 1 || j >= text.size() || text[j] != '>' || hasPiece(int32_t(v)) ||
        (j - i - 1 > 1 && text[i + 1] == '0'))
        return 0;
    id = int32_t(v);
    return j + 1 - i;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    int32_t escaped = 0;
    if (m_kind == Kind::Bpe) { // the text between id escapes goes to the BPE model whole
        std::size_t pending = 0;
        for (std::size_t i = 0; i < text.size();) {
            if (const std::size_t n = idEscape(text, i, escaped)) {
                const auto part = m_bpe->encode(text.substr(pending, i - pending));
                ids.insert(ids.end(), part.begin(), part.end());
                ids.push_back(escaped);
                pending = i += n;
            } else {
                ++i;
            }
        }
        const auto part = m_bpe->encode(text.substr(pending));
        ids.insert(ids.end(), part.begin(), part.end());
        return ids;
    }
    for (std::size_t i = 0; i < text.size();) {
        if (const std::size_t n = idEscape(text, i, escaped)) {
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
    if (m_kind == Kind::Bpe) {
        const std::string& p = m_bpe->piece(id);
        return p.empty() ? "<" + std::to_string(id) + ">" : p;
    }
    if (m_kind == Kind::Byte)
        return id >= 0 && id < 256 ? std::string(1, char(id)) : "<" + std::to_string(id) + ">";
    if (id >= 0 && id < int32_t(m_pieces.size()))
        return m_pieces[std::size_t(id)];
    return "<" + std::to_string(id) + ">";
}

std::string displayText(std::string_view p) {
    std::string out;
    auto hexByte = [&out](unsigned char b) {
        static const char* hex = "0123456789ABCDEF";
        out += "<0x";
        out += hex[b >> 4];
        out += hex[b & 15];
        out += '>';
    };
    for (std::size_t i = 0; i < p.size();) {
        const std::size_t n = bpe::utf8Char(p, i);
        const auto b = static_cast<unsigned char>(p[i]);
        if (n == 0) { // part of a character: a byte-level token, or a byte model's byte
            hexByte(b);
            ++i;
            continue;
        }
        if (b == '\n')
            out += "\u23CE";
        else if (b == ' ')
            out += "\u2423";
        else if (b == '\t')
            out += "\u21E5";
        else if (b < 0x20 || b == 0x7F)
            hexByte(b);
        else
            out.append(p.substr(i, n));
        i += n;
    }
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string s;
    for (int32_t id : ids)
        s += piece(id);
    return s;
}

} // namespace mythos
