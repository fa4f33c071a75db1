// Character-level and byte tokenizers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/tokenizer.h"
#include "testutil.h"

namespace fs = std::filesystem;
using namespace mythos;

namespace {

using testutil::TempDir;

// ids: 0 <unk>, 1 a, 2 b, 3 c, 4 " ", 5 "\n", 6 é, 7 €, 8 😀
const char* kCharJson =
    R"({"type": "char", "version": 1, "vocab": ["<unk>", "a", "b", "c", " ", "\n", "é", "€", "😀"], "unk": 0})";
const char* kCharJsonNoUnk =
    R"({"type": "char", "version": 1, "vocab": ["<pad>", "a", "b", "c", " ", "\n", "é", "€", "😀"]})";

std::string formatError(const std::string& text, int64_t vocabSize = 64) {
    try {
        Tokenizer::fromJson(text, "my-tokenizer.json", vocabSize);
    } catch (const FormatError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a FormatError: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no FormatError for " << text;
    return {};
}

TEST(CharTokenizerTest, EncodesAndDecodesMultiByteCharacters) {
    const Tokenizer t = Tokenizer::fromJson(kCharJson, "tok.json", 64);
    EXPECT_EQ(t.kind(), Tokenizer::Kind::Char);
    EXPECT_EQ(t.size(), 9);
    const std::string text = "ab é\n€c😀a";
    const auto ids = t.encode(text);
    EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 4, 6, 5, 7, 3, 8, 1}));
    EXPECT_EQ(t.decode(ids), text);
    EXPECT_EQ(t.piece(6), "é");
    EXPECT_EQ(t.piece(8), "😀");
    EXPECT_EQ(t.piece(0), "<unk>");
    EXPECT_TRUE(t.encode("").empty());
    EXPECT_EQ(t.decode({}), "");
    EXPECT_NE(t.piece(99), "");
    EXPECT_NE(t.piece(-1), "");
}

TEST(CharTokenizerTest, UnknownCharacterWithoutUnkThrowsNamingIt) {
    const Tokenizer t = Tokenizer::fromJson(kCharJsonNoUnk, "tok.json", 64);
    try {
        t.encode("abz");
        ADD_FAILURE() << "no ArgumentError";
    } catch (const ArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("'z'"), std::string::npos) << e.what();
    }
    try {
        t.encode("a ü b");
        ADD_FAILURE() << "no ArgumentError";
    } catch (const ArgumentError& e) {
        // The whole character, not one of its bytes.
        EXPECT_NE(std::string(e.what()).find("'ü'"), std::string::npos) << e.what();
    }
    EXPECT_EQ(t.encode("a b"), (std::vector<int32_t>{1, 4, 2}));
}

TEST(CharTokenizerTest, UnknownCharacterWithUnkMapsToUnk) {
    const Tokenizer t = Tokenizer::fromJson(kCharJson, "tok.json", 64);
    EXPECT_EQ(t.encode("azb"), (std::vector<int32_t>{1, 0, 2}));
    EXPECT_EQ(t.encode("üa"), (std::vector<int32_t>{0, 1}));
    EXPECT_EQ(t.encode("ü"), std::vector<int32_t>{0}) << "one unk for one multi-byte character";

    const Tokenizer other =
        Tokenizer::fromJson(R"({"type": "char", "version": 1, "vocab": ["a", "b", "?"], "unk": 2})", "tok.json", 3);
    EXPECT_EQ(other.encode("a!b"), (std::vector<int32_t>{0, 2, 1}));
}

TEST(ByteTokenizerTest, RoundTripsArbitraryBytes) {
    const Tokenizer t = Tokenizer::bytes();
    EXPECT_EQ(t.kind(), Tokenizer::Kind::Byte);
    EXPECT_EQ(t.size(), 256);
    std::string all;
    for (int i = 0; i < 256; ++i)
        all.push_back(char(i));
    const auto ids = t.encode(all);
    ASSERT_EQ(ids.size(), 256u);
    for (int i = 0; i < 256; ++i)
        EXPECT_EQ(ids[std::size_t(i)], i);
    EXPECT_EQ(t.decode(ids), all);

    std::mt19937 rng(3);
    std::string random;
    for (int i = 0; i < 1000; ++i)
        random.push_back(char(rng() & 0xFF));
    EXPECT_EQ(t.decode(t.encode(random)), random);
    EXPECT_EQ(t.encode("é"), (std::vector<int32_t>{0xC3, 0xA9}));
}

// Ids without a piece of their own (a byte model's ids from 256 up, a character model's
// beyond its vocabulary) decode to "<N>" and encode back to N, so text the window builds
// from generated tokens runs as those tokens; "<N>" below the vocabulary stays text.
TEST(TokenizerEscapeTest, IdsWithoutAPieceRoundTripThroughText) {
    const Tokenizer b = Tokenizer::bytes();
    const std::vector<int32_t> ids = {76, 111, 458, 458, 300, 62};
    EXPECT_EQ(b.decode(ids), "Lo<458><458><300>>");
    EXPECT_EQ(b.encode(b.decode(ids)), ids);
    EXPECT_EQ(b.encode("<12>"), (std::vector<int32_t>{'<', '1', '2', '>'}));
    EXPECT_EQ(b.encode("<0458>").size(), 6u);        // not how an id is written
    EXPECT_EQ(b.encode("<458").size(), 4u);          // unclosed
    EXPECT_EQ(b.encode("<1234567890>").size(), 12u); // too many digits for an id
    EXPECT_EQ(b.encode("<>"), (std::vector<int32_t>{'<', '>'}));

    const Tokenizer c = Tokenizer::fromJson(kCharJsonNoUnk, "t.json", 64);
    EXPECT_EQ(c.decode({1, 40, 2}), "a<40>b");
    EXPECT_EQ(c.encode("a<40>b"), (std::vector<int32_t>{1, 40, 2}));
    EXPECT_THROW(c.encode("<5>"), ArgumentError); // 5 has a piece ("<" is not in the vocabulary)
}

TEST(TokenizerDisplayTest, ControlCharactersAreVisible) {
    const Tokenizer c = Tokenizer::fromJson(kCharJson, "tok.json", 64);
    const Tokenizer b = Tokenizer::bytes();
    for (const auto& [t, newline, space] : {std::tuple{&c, 5, 4}, std::tuple{&b, 10, 32}}) {
        const std::string nl = t->displayPiece(newline), sp = t->displayPiece(space);
        EXPECT_FALSE(nl.empty());
        EXPECT_FALSE(sp.empty());
        EXPECT_EQ(nl.find('\n'), std::string::npos) << nl;
        EXPECT_EQ(sp.find(' '), std::string::npos) << sp;
        EXPECT_NE(nl, sp);
        EXPECT_EQ(t->piece(newline), "\n");
        EXPECT_EQ(t->piece(space), " ");
    }
    EXPECT_EQ(c.displayPiece(1), "a");
    EXPECT_EQ(c.displayPiece(6), "é");
    EXPECT_EQ(b.displayPiece('x'), "x");
    const std::string tab = b.displayPiece('\t');
    EXPECT_EQ(tab.find('\t'), std::string::npos);
    EXPECT_EQ(b.displayPiece(1), "<0x01>");
    EXPECT_EQ(b.displayPiece(0x7F), "<0x7F>");
    EXPECT_EQ(b.displayPiece(0xFF), "<0xFF>");
    EXPECT_EQ(b.displayPiece(0), "<0x00>");
}

TEST(TokenizerErrorsTest, BadJsonThrowsFormatErrorNamingTheSource) {
    std::string msg = formatError("this is not json");
    EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;
    msg = formatError("[1, 2, 3]");
    EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;

    msg = formatError(R"({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}}})");
    EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("BPE"), std::string::npos) << msg;
    msg = formatError(R"({"model": {"type": 7}})");
    EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;

    msg = formatError(R"({"type": "char", "version": 1, "vocab": ["a", "b", "a"]})");
    EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"a\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("twice"), std::string::npos) << msg;

    msg = formatError(R"({"type": "char", "version": 1, "vocab": ["a", "b", "c", "d"]})", 3);
    EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("vocab_size"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4"), std::string::npos) << msg;
    EXPECT_NO_THROW(Tokenizer::fromJson(R"({"type": "char", "version": 1, "vocab": ["a", "b", "c"]})", "t", 3));

    for (const char* unk : {"3", "-1", "\"a\"", "1.5"}) {
        SCOPED_TRACE(unk);
        msg =
            formatError(std::string(R"({"type": "char", "version": 1, "vocab": ["a", "b", "c"], "unk": )") + unk + "}");
        EXPECT_NE(msg.find("my-tokenizer.json"), std::string::npos) << msg;
        EXPECT_NE(msg.find("unk"), std::string::npos) << msg;
    }

    msg = formatError(R"({"type": "wordpiece", "vocab": ["a"]})");
    EXPECT_NE(msg.find("type"), std::string::npos) << msg;
    msg = formatError(R"({"vocab": ["a"]})");
    EXPECT_NE(msg.find("type"), std::string::npos) << msg;
    msg = formatError(R"({"type": "char", "vocab": []})");
    EXPECT_NE(msg.find("vocab"), std::string::npos) << msg;
    msg = formatError(R"({"type": "char", "vocab": "abc"})");
    EXPECT_NE(msg.find("vocab"), std::string::npos) << msg;
    msg = formatError(R"({"type": "char", "vocab": ["a", 2]})");
    EXPECT_NE(msg.find("vocab"), std::string::npos) << msg;
    msg = formatError(R"({"type": "char", "vocab": ["a", ""]})");
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
}

TEST(TokenizerFilesTest, ForModelFallsBackToBytesForLargeVocabularies) {
    TempDir dir;
    auto big = Tokenizer::forModel(dir.path(), 256);
    ASSERT_TRUE(big.has_value());
    EXPECT_EQ(big->kind(), Tokenizer::Kind::Byte);
    auto bigger = Tokenizer::forModel(dir.path(), 32000);
    ASSERT_TRUE(bigger.has_value());
    EXPECT_EQ(bigger->kind(), Tokenizer::Kind::Byte);
    EXPECT_FALSE(Tokenizer::forModel(dir.path(), 255).has_value());
    EXPECT_FALSE(Tokenizer::forModel(golden::find("tiny_mla").dir, 64).has_value());

    std::ofstream(dir.path() / "tokenizer.json") << kCharJson;
    auto withFile = Tokenizer::forModel(dir.path(), 64);
    ASSERT_TRUE(withFile.has_value());
    EXPECT_EQ(withFile->kind(), Tokenizer::Kind::Char);
    EXPECT_EQ(withFile->encode("cab"), (std::vector<int32_t>{3, 1, 2}));
    auto large = Tokenizer::forModel(dir.path(), 1000);
    ASSERT_TRUE(large.has_value());
    EXPECT_EQ(large->kind(), Tokenizer::Kind::Char) << "tokenizer.json wins over the byte fallback";
    try {
        Tokenizer::forModel(dir.path(), 5);
        ADD_FAILURE() << "no FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    }

    std::ofstream(dir.path() / "broken.json") << "{";
    try {
        Tokenizer::load(dir.path() / "broken.json", 64);
        ADD_FAILURE() << "no FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
    }
    try {
        Tokenizer::load(dir.path() / "missing.json", 64);
        ADD_FAILURE() << "no FileError";
    } catch (const FileError& e) {
        EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos) << e.what();
    }
}

} // namespace

TEST(TokenizerFile, EmptyAndNonUtf8FilesSayWhatIsWrong) {
    auto message = [](std::string_view text) -> std::string {
        try {
            Tokenizer::fromJson(text, "m/tokenizer.json", 300);
        } catch (const FormatError& e) {
            return e.what();
        }
        return "accepted";
    };
    EXPECT_EQ(message(""), "m/tokenizer.json: the file is empty");
    EXPECT_EQ(message(" \n"), "m/tokenizer.json: the file is empty");
    const std::string bad = message("{\"type\": \"char\", \"vocab\": [\"\xff\"]}");
    EXPECT_EQ(bad.rfind("m/tokenizer.json: not valid JSON: ", 0), 0u) << bad;
    EXPECT_NE(bad.find("\\xFF"), std::string::npos) << bad; // the byte spelt out, not raw
    EXPECT_EQ(message("[1, 2]"), "m/tokenizer.json: not a JSON object");
}

// Never a silent fallback: text as bytes is said, an unreadable tokenizer.json is said
// (and does not stop the model from opening).
TEST(TokenizerChoice, BytesAndUnreadableFilesAreSaid) {
    TempDir dir("choice");
    auto c = chooseTokenizer(dir.path(), 300); // no tokenizer.json, vocab >= 256: bytes, said
    ASSERT_TRUE(c.tokenizer);
    EXPECT_EQ(c.tokenizer->kind(), Tokenizer::Kind::Byte);
    EXPECT_FALSE(c.unreadable);
    EXPECT_NE(c.warning.find("no tokenizer.json"), std::string::npos) << c.warning;
    EXPECT_NE(c.warning.find(dir.path().string()), std::string::npos) << c.warning;
    c = chooseTokenizer(dir.path(), 100); // no way to encode text: prompts as ids
    EXPECT_FALSE(c.tokenizer);
    EXPECT_TRUE(c.warning.empty());
    c = chooseTokenizer({}, 1000); // a preset: bytes, nothing to say
    ASSERT_TRUE(c.tokenizer);
    EXPECT_TRUE(c.warning.empty());
    std::ofstream(dir / "tokenizer.json") << "{\"type\": \"char\", \"vocab\": [\"a\", \"a\"]}";
    c = chooseTokenizer(dir.path(), 300);
    EXPECT_FALSE(c.tokenizer);
    EXPECT_TRUE(c.unreadable);
    EXPECT_NE(c.warning.find((dir / "tokenizer.json").string()), std::string::npos) << c.warning;
    EXPECT_NE(c.warning.find("twice"), std::string::npos) << c.warning;
    std::ofstream(dir / "tokenizer.json") << "{\"type\": \"char\", \"vocab\": [\"a\", \"b\"]}";
    c = chooseTokenizer(dir.path(), 300);
    ASSERT_TRUE(c.tokenizer);
    EXPECT_EQ(c.tokenizer->kind(), Tokenizer::Kind::Char);
    EXPECT_TRUE(c.warning.empty());
}
