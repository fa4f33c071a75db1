// Byte-level BPE tokenizers against real files: GPT-2's Hugging Face tokenizer.json,
// o200k_base.tiktoken, and o200k as gpt-oss ships it (a Hugging Face tokenizer.json with a
// Split(Regex) pre-tokenizer, made from the .tiktoken by tools/bpe_reference.py as a CTest
// fixture). The expected ids (tests/data/tokenizers/vectors.json) come from that tool's
// own, independent BPE, itself checked against published ids (tests/data/tokenizers/README.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/tokenizer.h"
#include "testutil.h"

namespace fs = std::filesystem;
using namespace mythos;
using testutil::TempDir;

namespace {

const fs::path kData = fs::path(MYTHOS_TEST_DATA_DIR) / "tokenizers";

const Tokenizer& gpt2() {
    static const Tokenizer t = Tokenizer::load(kData / "gpt2_tokenizer.json", 50257);
    return t;
}
const Tokenizer& o200k() {
    static const Tokenizer t = Tokenizer::load(kData / "o200k_base.tiktoken", 199998);
    return t;
}

using Cases = std::vector<std::pair<std::string, std::vector<int32_t>>>;
Cases vectors(const std::string& name) {
    const auto j = nlohmann::json::parse(readTextFile(kData / "vectors.json"));
    Cases out;
    for (const auto& c : j.at(name))
        out.emplace_back(c.at(0).get<std::string>(), c.at(1).get<std::vector<int32_t>>());
    return out;
}

// Every case encodes to its ids and decodes back to its text.
void expectVectors(const Tokenizer& tok, const Cases& cases) {
    ASSERT_GT(cases.size(), 300u);
    int failures = 0;
    for (const auto& [text, ids] : cases) {
        std::vector<int32_t> got;
        try {
            got = tok.encode(text);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "encode threw on " << nlohmann::json(text).dump() << ": " << e.what();
            continue;
        }
        EXPECT_EQ(got, ids) << nlohmann::json(text).dump();
        EXPECT_EQ(tok.decode(ids), text);
        failures += got != ids;
        if (failures > 10)
            FAIL() << "stopping after 10 mismatches";
    }
}

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const FormatError& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("not a FormatError: ") + e.what();
    }
    return "accepted";
}

// A minimal byte-level tokenizer.json: the 256 byte tokens, then `extra` tokens and merges.
nlohmann::json smallHf() {
    // GPT-2's byte alphabet, as tools/bpe_reference.py writes it.
    std::vector<std::string> alphabet(256);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
        const bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const char32_t c = keep ? char32_t(b) : char32_t(0x100 + extra++);
        std::string u;
        if (c < 0x80)
            u.push_back(char(c));
        else {
            u.push_back(char(0xC0 | (c >> 6)));
            u.push_back(char(0x80 | (c & 0x3F)));
        }
        alphabet[std::size_t(b)] = u;
    }
    nlohmann::json vocab = nlohmann::json::object();
    for (int b = 0; b < 256; ++b)
        vocab[alphabet[std::size_t(b)]] = b;
    vocab["ab"] = 256;
    vocab["abc"] = 257;
    vocab["aa"] = 258;
    return {{"version", "1.0"},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"added_tokens", nlohmann::json::array({{{"id", 300}, {"content", "<|end|>"}, {"special", true}}})},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array({"a b", "ab c", "a a"})}}}};
}

} // namespace

TEST(BpePublished, Gpt2AndO200kGiveThePublishedIds) {
    EXPECT_EQ(gpt2().kind(), Tokenizer::Kind::Bpe);
    EXPECT_EQ(gpt2().encode("Hello world"), (std::vector<int32_t>{15496, 995}));
    EXPECT_EQ(o200k().encode("Hello world"), (std::vector<int32_t>{13225, 2375}));
    EXPECT_EQ(o200k().encode("Hello, world!"), (std::vector<int32_t>{13225, 11, 2375, 0}));
    EXPECT_EQ(gpt2().description(), "byte-level BPE, 50,257 tokens + 1 added (gpt2_tokenizer.json)");
    EXPECT_EQ(o200k().description(), "byte-level BPE, 199,998 tokens + 2 added (o200k_base.tiktoken, o200k pattern)");
    EXPECT_EQ(o200k().size(), 200019); // <|endofprompt|> is 200018
}

TEST(BpeVectors, Gpt2TokenizerJson) { expectVectors(gpt2(), vectors("gpt2")); }

TEST(BpeVectors, O200kTiktoken) { expectVectors(o200k(), vectors("o200k")); }

// The same vocabulary as gpt-oss ships it: Hugging Face format, merges as pairs, the o200k
// pattern in a Split, special tokens past the base vocabulary (the model's vocab_size is
// 199,998, as the reference trainer sets it from the tokenizer's base vocabulary).
TEST(BpeVectors, O200kAsGptOssTokenizerJson) {
    const fs::path file = MYTHOS_HF_O200K;
    ASSERT_TRUE(fs::exists(file)) << file << " is made by the CTest fixture bpe_hf_o200k "
                                  << "(tools/bpe_reference.py hf-o200k " << file << ")";
    const Tokenizer tok = Tokenizer::load(file, 199998);
    expectVectors(tok, vectors("o200k"));
    EXPECT_EQ(tok.encode("<|start|>user<|message|>Hi<|end|>"),
              (std::vector<int32_t>{200006, 1428, 200008, 12194, 200007}));
    EXPECT_EQ(tok.piece(200006), "<|start|>");
}

TEST(BpeEncode, SpecialTokensAreMatchedLongestFirstAndMayLiePastTheVocabulary) {
    EXPECT_EQ(gpt2().encode("a<|endoftext|>b"), (std::vector<int32_t>{64, 50256, 65}));
    EXPECT_EQ(o200k().encode("<|endofprompt|>"), (std::vector<int32_t>{200018}));
    EXPECT_EQ(o200k().decode({200018}), "<|endofprompt|>");
    // "<|endoftext" without its closing is text.
    const auto open = o200k().encode("<|endoftext");
    EXPECT_EQ(o200k().decode(open), "<|endoftext");
    EXPECT_EQ(std::count(open.begin(), open.end(), 199999), 0);
}

TEST(BpeEncode, AnyBytesRoundTripAndIdsWithoutAPieceUseTheEscape) {
    std::mt19937 rng(11);
    for (int round = 0; round < 20; ++round) {
        std::string bytes;
        for (int i = 0; i < 300; ++i)
            bytes.push_back(char(rng() & 0xFF));
        for (const Tokenizer* t : {&gpt2(), &o200k()})
            EXPECT_EQ(t->decode(t->encode(bytes)), bytes);
    }
    // o200k has no piece for 199998 (between the base vocabulary and <|endoftext|>).
    EXPECT_EQ(o200k().piece(199998), "<199998>");
    EXPECT_EQ(o200k().encode("hi<199998>"), (std::vector<int32_t>{3686, 199998}));
    EXPECT_EQ(o200k().encode("<300000>"), (std::vector<int32_t>{300000}));
}

// A long pre-token (no spaces) is merged with a queue, not quadratically: 200 KB of one
// letter and of one digit run finish (no timing asserted: tests are not benchmarks).
TEST(BpeEncode, LongPiecesFinish) {
    const std::string letters(200000, 'a');
    const auto ids = gpt2().encode(letters);
    EXPECT_EQ(gpt2().decode(ids), letters);
    EXPECT_LT(ids.size(), letters.size() / 2);
    const std::string digits(200000, '7');
    EXPECT_EQ(gpt2().decode(gpt2().encode(digits)), digits);
    EXPECT_EQ(o200k().decode(o200k().encode(digits)), digits);
    const std::string spaces(200000, ' ');
    EXPECT_EQ(o200k().decode(o200k().encode(spaces)), spaces);
}

TEST(BpeDisplay, PiecesShowSpacesAndPartialCharactersAsBytes) {
    EXPECT_EQ(gpt2().displayPiece(995), "\u2423world"); // " world"
    EXPECT_EQ(gpt2().piece(995), " world");
    // "é" is two bytes; in GPT-2 the byte 0xC3 alone is token 127.
    const auto ids = gpt2().encode("\xC3");
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(gpt2().displayPiece(ids[0]), "<0xC3>");
    EXPECT_EQ(gpt2().displayPiece(198), "\u23CE"); // "\n"
    EXPECT_EQ(o200k().displayPiece(199999), "<|endoftext|>");
}

TEST(BpeMerges, LowestRankFirstThenLeftmost) {
    const auto j = smallHf();
    const Tokenizer t = Tokenizer::fromJson(j.dump(), "small.json", 301);
    EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{257}));
    EXPECT_EQ(t.encode("aaa"), (std::vector<int32_t>{258, 'a'})); // leftmost of equal ranks
    EXPECT_EQ(t.encode("aab"), (std::vector<int32_t>{'a', 256})); // "a b" (rank 0) before "a a" (2)
    EXPECT_EQ(t.encode("x<|end|>"), (std::vector<int32_t>{'x', 300}));
    // Merges as pairs read the same.
    auto pairs = j;
    pairs["model"]["merges"] = nlohmann::json::array({{"a", "b"}, {"ab", "c"}, {"a", "a"}});
    EXPECT_EQ(Tokenizer::fromJson(pairs.dump(), "pairs.json", 301).encode("abcaab"),
              (std::vector<int32_t>{257, 'a', 256}));
    // ignore_merges takes a pre-token that is a token whole.
    auto whole = j;
    whole["model"]["merges"] = nlohmann::json::array({"a b"});
    EXPECT_EQ(Tokenizer::fromJson(whole.dump(), "w.json", 301).encode("abc"), (std::vector<int32_t>{256, 'c'}));
    whole["model"]["ignore_merges"] = true;
    EXPECT_EQ(Tokenizer::fromJson(whole.dump(), "w.json", 301).encode("abc"), (std::vector<int32_t>{257}));
    // add_prefix_space
    auto prefixed = j;
    prefixed["pre_tokenizer"]["add_prefix_space"] = true;
    EXPECT_EQ(Tokenizer::fromJson(prefixed.dump(), "p.json", 301).encode("x"), (std::vector<int32_t>{' ', 'x'}));
}

TEST(BpeFiles, BadHuggingFaceFilesSayWhatIsWrong) {
    const auto base = smallHf();
    struct Case {
        const char* what;
        std::function<void(nlohmann::json&)> change;
        const char* expect;
    };
    const std::vector<Case> cases = {
        {"wordpiece", [](auto& j) { j["model"]["type"] = "WordPiece"; }, "WordPiece"},
        {"dropout", [](auto& j) { j["model"]["dropout"] = 0.1; }, "dropout"},
        {"byte fallback", [](auto& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback"},
        {"normalizer",
         [](auto& j) {
             j["normalizer"] = {{"type", "NFKC"}};
         },
         "NFKC"},
        {"no pre-tokenizer", [](auto& j) { j["pre_tokenizer"] = nullptr; }, "ByteLevel"},
        {"metaspace",
         [](auto& j) {
             j["pre_tokenizer"] = {{"type", "Metaspace"}};
         },
         "Metaspace"},
        {"bad regex",
         [](auto& j) {
             j["pre_tokenizer"] = {
                 {"type", "Sequence"},
                 {"pretokenizers",
                  {{{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}+"}}}, {"behavior", "Isolated"}},
                   {{"type", "ByteLevel"}, {"use_regex", false}}}}};
         },
         "does not compile"},
        {"merged behaviour",
         [](auto& j) {
             j["pre_tokenizer"] = {
                 {"type", "Sequence"},
                 {"pretokenizers",
                  {{{"type", "Split"}, {"pattern", {{"Regex", "\\s"}}}, {"behavior", "MergedWithNext"}},
                   {{"type", "ByteLevel"}, {"use_regex", false}}}}};
         },
         "MergedWithNext"},
        {"vocab id too large", [](auto& j) { j["model"]["vocab"]["zz"] = 99999999; }, "99999999"},
        {"vocab id negative", [](auto& j) { j["model"]["vocab"]["zz"] = -1; }, "-1"},
        {"vocab id twice", [](auto& j) { j["model"]["vocab"]["zz"] = 256; }, "two tokens"},
        {"merge unknown", [](auto& j) { j["model"]["merges"].push_back("q zz"); }, "zz"},
        {"merge result unknown", [](auto& j) { j["model"]["merges"].push_back("b c"); }, "not in the vocabulary"},
        {"merge one word", [](auto& j) { j["model"]["merges"].push_back("abc"); }, "two tokens"},
        {"merge number", [](auto& j) { j["model"]["merges"].push_back(7); }, "merge 3"},
        {"added id", [](auto& j) { j["added_tokens"][0]["id"] = -5; }, "-5"},
        {"added empty", [](auto& j) { j["added_tokens"][0]["content"] = ""; }, "empty"},
        {"unk missing", [](auto& j) { j["model"]["unk_token"] = "<unk>"; }, "<unk>"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto j = base;
        c.change(j);
        const std::string msg = errorOf([&] { Tokenizer::fromJson(j.dump(), "hf/tokenizer.json", 301); });
        EXPECT_EQ(msg.rfind("hf/tokenizer.json: ", 0), 0u) << msg;
        EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    // The base vocabulary must fit the model; added tokens may lie past it.
    const std::string small = errorOf([&] { Tokenizer::fromJson(base.dump(), "hf/tokenizer.json", 200); });
    EXPECT_NE(small.find("vocab_size is 200"), std::string::npos) << small;
    EXPECT_NO_THROW(Tokenizer::fromJson(base.dump(), "hf/tokenizer.json", 259));
}

TEST(BpeFiles, BadTiktokenFilesNameTheLine) {
    const std::map<std::string, std::string> cases = {
        {"IQ== 0\nIg==\n", "line 2"},  {"IQ== 0\n!!!! 1\n", "base64"},  {"IQ== 0\nIg== 0\n", "twice"},
        {"IQ== 0\nIQ== 1\n", "twice"}, {"IQ== 99999999\n", "99999999"}, {"IQ== -1\n", "-1"},
        {"IQ= 0\n", "base64"},         {"I=Q= 0\n", "base64"},          {"\n\n", "no tokens"},
        {"IQ== 1 2\n", "line 1"},
    };
    for (const auto& c : cases) {
        const std::string& text = c.first; // a named copy: clang 14 lambdas cannot capture bindings
        const std::string& expect = c.second;
        SCOPED_TRACE(text);
        const std::string msg = errorOf([&] { Tokenizer::fromTiktoken(text, "t/x.tiktoken", "x.tiktoken", 1 << 20); });
        EXPECT_EQ(msg.rfind("t/x.tiktoken: ", 0), 0u) << msg;
        EXPECT_NE(msg.find(expect), std::string::npos) << msg;
    }
    // A vocabulary without some byte cannot encode it: said, naming the byte.
    const Tokenizer partial = Tokenizer::fromTiktoken("YQ== 0\nYg== 1\nYWI= 2\n", "p.tiktoken", "p.tiktoken", 10);
    EXPECT_EQ(partial.encode("ab"), (std::vector<int32_t>{2}));
    try {
        partial.encode("abc");
        ADD_FAILURE() << "encoded a byte the vocabulary lacks";
    } catch (const ArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("0x63"), std::string::npos) << e.what();
    }
}

TEST(BpeFiles, ModelFoldersFindTheirTiktokenFile) {
    TempDir dir("bpe");
    fs::copy_file(kData / "o200k_base.tiktoken", dir / "o200k_base.tiktoken");
    auto c = chooseTokenizer(dir.path(), 199998);
    ASSERT_TRUE(c.tokenizer) << c.warning;
    EXPECT_EQ(c.tokenizer->kind(), Tokenizer::Kind::Bpe);
    EXPECT_TRUE(c.warning.empty());
    EXPECT_EQ(c.tokenizer->encode("Hello world"), (std::vector<int32_t>{13225, 2375}));
    // Too small a model for the vocabulary: unreadable, said, naming the file.
    c = chooseTokenizer(dir.path(), 50000);
    EXPECT_FALSE(c.tokenizer);
    EXPECT_TRUE(c.unreadable);
    EXPECT_NE(c.warning.find("o200k_base.tiktoken"), std::string::npos) << c.warning;
    EXPECT_NE(c.warning.find("vocab_size"), std::string::npos) << c.warning;
    // Two .tiktoken files: which one is meant is not guessed.
    std::ofstream(dir / "other.tiktoken") << "IQ== 0\n";
    c = chooseTokenizer(dir.path(), 199998);
    EXPECT_FALSE(c.tokenizer);
    EXPECT_TRUE(c.unreadable);
    EXPECT_NE(c.warning.find("several"), std::string::npos) << c.warning;
    // tokenizer.json wins.
    fs::copy_file(kData / "gpt2_tokenizer.json", dir / "tokenizer.json");
    c = chooseTokenizer(dir.path(), 199998);
    ASSERT_TRUE(c.tokenizer) << c.warning;
    EXPECT_EQ(c.tokenizer->encode("Hello world"), (std::vector<int32_t>{15496, 995}));
}
