#include "halfprecision.h"
#include "mythos/errors.h"
#include "mythos/safetensors.h"
#include "safetensors_header.h"
#include "testutil.h"

#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifndef MYTHOS_TEST_DATA_DIR
#define MYTHOS_TEST_DATA_DIR "tests/data" // direct builds run from the repository root
#endif

namespace fs = std::filesystem;
using namespace mythos;

namespace {

using testutil::TempDir;

std::string le64(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i)
        s[i] = static_cast<char>(v >> (8 * i));
    return s;
}

void writeBytes(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Offset of the first data byte, from the header length at the start of the file.
uint64_t dataStart(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    unsigned char len[8] = {};
    in.read(reinterpret_cast<char*>(len), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | len[i];
    return 8 + n;
}

// A file with the given header text followed by `dataBytes` bytes of data.
fs::path makeFile(const TempDir& dir, const std::string& name, const std::string& header, std::size_t dataBytes) {
    const fs::path p = dir / name;
    writeBytes(p, le64(header.size()) + header + std::string(dataBytes, '\0'));
    return p;
}

// Messages may quote bytes from hostile files; they must still be clean UTF-8 text.
bool isCleanUtf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size() || c < 0x20 || c == 0x7f)
            return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

template <class E, class F>
std::string expectThrowWith(F&& f, const std::string& needle, const std::string& needle2 = {}) {
    try {
        f();
    } catch (const E& e) {
        const std::string msg = e.what();
        if (std::getenv("MYTHOS_PRINT_ERRORS"))
            std::printf("  message: %s\n", msg.c_str());
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        EXPECT_TRUE(isCleanUtf8(msg)) << msg;
        if (!needle2.empty()) {
            EXPECT_NE(msg.find(needle2), std::string::npos) << msg;
        }
        return msg;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
        return {};
    }
    ADD_FAILURE() << "nothing was thrown";
    return {};
}

// Opening `header` (+ data) must be a FormatError naming the file and containing `what`.
void expectBadHeader(const std::string& header, std::size_t dataBytes, const std::string& what) {
    SCOPED_TRACE(header);
    TempDir dir;
    const fs::path p = makeFile(dir, "bad_header.safetensors", header, dataBytes);
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(p); }, "bad_header.safetensors", what);
}

std::vector<float> sequence(std::size_t n, float scale) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = scale * (static_cast<float>(i) - static_cast<float>(n) / 2);
    return v;
}

} // namespace

// ---------------------------------------------------------------------------------------
// Round trips

TEST(Safetensors, RoundTripF32) {
    TempDir dir;
    const auto a = sequence(6, 0.123f);
    const std::vector<float> b = {std::numeric_limits<float>::denorm_min(), -0.0f, 3.4e38f, 1e-30f};
    const float scalar = 42.5f;
    const std::vector<TensorToWrite> tensors = {
        {"layer.a", {2, 3}, a.data()}, {"b", {4}, b.data()}, {"scalar", {}, &scalar}, {"empty", {0, 5}, nullptr}};
    const fs::path p = dir / "rt.safetensors";
    writeSafetensors(p, tensors, {{"format", "pt"}, {"note", "héllo \"quoted\""}});

    auto f = SafetensorsFile::open(p);
    ASSERT_EQ(f.tensors().size(), 4u);
    EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "héllo \"quoted\""}}));
    const TensorInfo* ta = f.find("layer.a");
    ASSERT_NE(ta, nullptr);
    EXPECT_EQ(ta->dtype, DType::F32);
    EXPECT_EQ(ta->dtypeText, "F32");
    EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(f.readF32(*ta), a);
    const auto rb = f.readF32(*f.find("b"));
    ASSERT_EQ(rb.size(), b.size());
    for (std::size_t i = 0; i < b.size(); ++i)
        EXPECT_EQ(std::bit_cast<uint32_t>(rb[i]), std::bit_cast<uint32_t>(b[i])) << i;
    EXPECT_EQ(f.find("scalar")->shape.size(), 0u);
    EXPECT_EQ(f.find("scalar")->numel(), 1);
    EXPECT_EQ(f.readF32(*f.find("scalar")), std::vector<float>{42.5f});
    EXPECT_EQ(f.find("empty")->numel(), 0);
    EXPECT_TRUE(f.readF32(*f.find("empty")).empty());
    EXPECT_EQ(f.find("missing"), nullptr);

    const uint64_t start = dataStart(p);
    EXPECT_EQ(start % 8, 0u);
    EXPECT_EQ(fs::file_size(p), start + (6 + 4 + 1) * 4);
}

TEST(Safetensors, RoundTripF16) {
    TempDir dir;
    const std::vector<float> exact = {1.0f, -2.0f, 0.5f, 65504.0f, -0.0f, 0.099975586f, 5.9604645e-8f, 1024.0f};
    const std::vector<float> inexact = {0.1f, 3.14159265f, 70000.0f, 1e-9f};
    const fs::path p = dir / "h.safetensors";
    writeSafetensors(p, {{"exact", {2, 4}, exact.data()}, {"inexact", {4}, inexact.data()}}, {}, DType::F16);
    auto f = SafetensorsFile::open(p);
    EXPECT_TRUE(f.metadata().empty());
    EXPECT_EQ(dataStart(p) % 8, 0u);
    EXPECT_EQ(f.find("exact")->dtype, DType::F16);
    EXPECT_EQ(f.find("exact")->shape, (std::vector<int64_t>{2, 4}));
    EXPECT_EQ(f.find("exact")->end - f.find("exact")->begin, 16u);
    EXPECT_EQ(f.readF32(*f.find("exact")), exact);
    const auto r = f.readF32(*f.find("inexact"));
    EXPECT_EQ(r[0], 0.0999755859375f);
    EXPECT_EQ(r[1], 3.140625f);
    EXPECT_TRUE(std::isinf(r[2]) && r[2] > 0);
    EXPECT_EQ(r[3], 0.0f);
}

TEST(Safetensors, RoundTripBF16) {
    TempDir dir;
    const std::vector<float> exact = {1.0f, -2.0f, 0.5f, 3.0f, -1.5e30f /* rounded below */, 0.0f};
    std::vector<float> in = exact;
    in[4] = bf16ToFloat(floatToBf16(-1.5e30f));
    const std::vector<float> inexact = {0.1f, 1.00390625f /* tie: to even (1.0) */, 1.01171875f /* tie: up */};
    const fs::path p = dir / "b.safetensors";
    writeSafetensors(p, {{"exact", {3, 2}, in.data()}, {"inexact", {3}, inexact.data()}}, {{"k", "v"}}, DType::BF16);
    auto f = SafetensorsFile::open(p);
    EXPECT_EQ(f.metadata().at("k"), "v");
    EXPECT_EQ(dataStart(p) % 8, 0u);
    EXPECT_EQ(f.find("exact")->dtype, DType::BF16);
    EXPECT_EQ(f.find("exact")->shape, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(f.readF32(*f.find("exact")), in);
    EXPECT_EQ(f.readF32(*f.find("inexact")), (std::vector<float>{0.10009765625f, 1.0f, 1.015625f}));
}

TEST(Safetensors, WriterRejectsBadArguments) {
    TempDir dir;
    const float x[2] = {1, 2};
    const fs::path p = dir / "w.safetensors";
    EXPECT_THROW(writeSafetensors(p, {{"a", {2}, x}}, {}, DType::I32), ArgumentError);
    EXPECT_THROW(writeSafetensors(p, {{"a", {2}, x}}, {}, DType::F64), ArgumentError);
    EXPECT_THROW(writeSafetensors(p, {{"a", {2}, x}, {"a", {2}, x}}), ArgumentError);
    EXPECT_THROW(writeSafetensors(p, {{"a", {-2}, x}}), ArgumentError);
    EXPECT_THROW(writeSafetensors(p, {{"a", {2}, nullptr}}), ArgumentError);
    EXPECT_THROW(writeSafetensors(p, {{"__metadata__", {2}, x}}), ArgumentError);
    EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Safetensors, WriterFailureNamesTargetAndLeavesNothing) {
    TempDir dir;
    const float x[2] = {1, 2};
    const fs::path missing = dir / "nope" / "m.safetensors";
    expectThrowWith<FileError>([&] { writeSafetensors(missing, {{"a", {2}, x}}); }, missing.string());
    writeBytes(dir / "file", "x");
    const fs::path underFile = dir / "file" / "m.safetensors";
    expectThrowWith<FileError>([&] { writeSafetensors(underFile, {{"a", {2}, x}}); }, underFile.string());
    std::vector<fs::path> left;
    for (const auto& e : fs::recursive_directory_iterator(dir.path()))
        left.push_back(e.path());
    EXPECT_EQ(left, std::vector<fs::path>{dir / "file"});
}

TEST(Safetensors, WriterReplacesExistingFile) {
    TempDir dir;
    const fs::path p = dir / "m.safetensors";
    const auto big = sequence(1000, 1.0f);
    writeSafetensors(p, {{"big", {1000}, big.data()}});
    const float one = 7.0f;
    writeSafetensors(p, {{"one", {1}, &one}});
    auto f = SafetensorsFile::open(p);
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(f.readF32(f.tensors()[0]), std::vector<float>{7.0f});
    EXPECT_LT(fs::file_size(p), 200u);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

// ---------------------------------------------------------------------------------------
// Reading

TEST(Safetensors, ReadsTinyModel) {
    const fs::path p = fs::path(MYTHOS_TEST_DATA_DIR) / "tiny_mla" / "model.safetensors";
    auto f = SafetensorsFile::open(p);
    const TensorInfo* embed = f.find("embed.weight");
    ASSERT_NE(embed, nullptr);
    EXPECT_EQ(embed->dtype, DType::F32);
    EXPECT_EQ(embed->shape, (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(shapeToString(embed->shape), "[64, 128]");
    const auto w = f.readF32(*embed);
    ASSERT_EQ(w.size(), 64u * 128u);
    for (float v : w)
        ASSERT_TRUE(std::isfinite(v));
    const TensorInfo* logA = f.find("recurrent.injection.log_A");
    ASSERT_NE(logA, nullptr);
    EXPECT_EQ(logA->shape, std::vector<int64_t>{128});
    EXPECT_EQ(f.readF32(*logA).size(), 128u);

    // Tensors at unaligned offsets (e.g. right after the [1] halt bias) read back
    // the same as through readF32Into.
    for (const auto& t : f.tensors()) {
        std::vector<float> into(static_cast<std::size_t>(t.numel()));
        f.readF32Into(t, into.data());
        ASSERT_EQ(into, f.readF32(t)) << t.name;
    }
}

TEST(Safetensors, MoveKeepsMappingAlive) {
    TempDir dir;
    const auto v = sequence(10, 0.5f);
    const fs::path p = dir / "m.safetensors";
    writeSafetensors(p, {{"v", {10}, v.data()}});
    auto a = SafetensorsFile::open(p);
    SafetensorsFile b(std::move(a));
    EXPECT_EQ(b.readF32(*b.find("v")), v);
    auto c = SafetensorsFile::open(p);
    c = std::move(b);
    EXPECT_EQ(c.readF32(*c.find("v")), v);
    EXPECT_EQ(c.path(), p);
}

TEST(Safetensors, UnalignedDataAndIntegers) {
    TempDir dir;
    // Header of odd length: data starts at an odd address.
    const std::string header = R"({"i32":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},)"
                               R"("i64":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                               R"("f16":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},)"
                               R"("f32":{"dtype":"F32","shape":[1],"data_offsets":[18,22]}} )";
    std::string data;
    const int32_t i32[2] = {-5, 7};
    const int64_t i64 = -(int64_t(1) << 40);
    const uint16_t h = 0x3c00;
    const float f = 2.5f;
    data.append(reinterpret_cast<const char*>(i32), 8);
    data.append(reinterpret_cast<const char*>(&i64), 8);
    data.append(reinterpret_cast<const char*>(&h), 2);
    data.append(reinterpret_cast<const char*>(&f), 4);
    const fs::path p = dir / "ints.safetensors";
    writeBytes(p, le64(header.size()) + header + data);
    auto sf = SafetensorsFile::open(p);
    EXPECT_EQ(sf.readI64(*sf.find("i32")), (std::vector<int64_t>{-5, 7}));
    EXPECT_EQ(sf.readI64(*sf.find("i64")), std::vector<int64_t>{i64});
    EXPECT_EQ(sf.readF32(*sf.find("f16")), std::vector<float>{1.0f});
    EXPECT_EQ(sf.readF32(*sf.find("f32")), std::vector<float>{2.5f});
    expectThrowWith<FormatError>([&] { sf.readF32(*sf.find("i32")); }, "ints.safetensors", "'i32'");
    expectThrowWith<FormatError>([&] { sf.readI64(*sf.find("f32")); }, "ints.safetensors", "'f32'");
    // Tensors are listed in file order.
    ASSERT_EQ(sf.tensors().size(), 4u);
    EXPECT_EQ(sf.tensors()[0].name, "i32");
    EXPECT_EQ(sf.tensors()[3].name, "f32");
}

TEST(Safetensors, UnknownDTypeIsListedButNotConvertible) {
    TempDir dir;
    const fs::path p =
        makeFile(dir, "f8.safetensors", R"({"x":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4);
    auto f = SafetensorsFile::open(p);
    ASSERT_NE(f.find("x"), nullptr);
    EXPECT_EQ(f.find("x")->dtype, DType::Other);
    EXPECT_EQ(f.find("x")->dtypeText, "F8_E4M3");
    expectThrowWith<FormatError>([&] { f.readF32(*f.find("x")); }, "f8.safetensors", "F8_E4M3");
}

TEST(Safetensors, IgnoresUnknownFields) {
    TempDir dir;
    const fs::path p = makeFile(dir, "extra.safetensors",
                                R"({"x":{"note":{"a":[1,{"b":null}]},"dtype":"U8","flags":[true,"s"],)"
                                R"("shape":[2],"data_offsets":[0,2],"z":1.5},"__metadata__":{"k":"v"}})",
                                2);
    auto f = SafetensorsFile::open(p);
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(f.tensors()[0].dtype, DType::U8);
    EXPECT_EQ(f.tensors()[0].shape, std::vector<int64_t>{2});
    EXPECT_EQ(f.tensors()[0].end, 2u);
    EXPECT_EQ(f.metadata().at("k"), "v");
}

TEST(Safetensors, ManyTensorsOpenQuickly) {
    // Guards against parsers that are quadratic in the number of entries.
    TempDir dir;
    std::string header = "{";
    const int n = 300000;
    for (int i = 0; i < n; ++i)
        header += (i ? ",\"t" : "\"t") + std::to_string(i) + R"(":{"dtype":"U8","shape":[1],"data_offsets":[)" +
                  std::to_string(i) + "," + std::to_string(i + 1) + "]}";
    header += "}";
    const auto start = std::chrono::steady_clock::now();
    auto f = SafetensorsFile::open(makeFile(dir, "many.safetensors", header, n));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
    ASSERT_EQ(f.tensors().size(), std::size_t(n));
    EXPECT_EQ(f.find("t123456")->begin, 123456u);
}

TEST(Safetensors, AcceptsEmptyAndZeroSizedTensors) {
    TempDir dir;
    auto f = SafetensorsFile::open(makeFile(dir, "e.safetensors", "{}", 0));
    EXPECT_TRUE(f.tensors().empty());
    auto padded = SafetensorsFile::open(makeFile(dir, "p.safetensors", std::string("{}  \0\0", 6), 0));
    EXPECT_TRUE(padded.tensors().empty());
    auto g = SafetensorsFile::open(makeFile(
        dir, "z.safetensors",
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
        8));
    EXPECT_EQ(g.tensors().size(), 2u);
}

// ---------------------------------------------------------------------------------------
// Malformed input

TEST(SafetensorsBad, MissingFileIsFileError) {
    TempDir dir;
    expectThrowWith<FileError>([&] { SafetensorsFile::open(dir / "absent.safetensors"); }, "absent.safetensors");
    expectThrowWith<FileError>([&] { SafetensorsFile::open(dir.path()); }, dir.path().string());
}

TEST(SafetensorsBad, TooShortFiles) {
    TempDir dir;
    writeBytes(dir / "empty.safetensors", "");
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(dir / "empty.safetensors"); }, "empty.safetensors",
                                 "too short");
    writeBytes(dir / "four.safetensors", "abcd");
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(dir / "four.safetensors"); }, "four.safetensors",
                                 "too short");
}

TEST(SafetensorsBad, HeaderLengthPastEnd) {
    TempDir dir;
    writeBytes(dir / "trunc.safetensors", le64(100) + "{}");
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(dir / "trunc.safetensors"); }, "trunc.safetensors",
                                 "past the end");
    writeBytes(dir / "huge.safetensors", le64(uint64_t(1) << 63) + "{}");
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(dir / "huge.safetensors"); }, "huge.safetensors",
                                 "9223372036854775808");
    writeBytes(dir / "max.safetensors", le64(~uint64_t(0)) + "{}");
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(dir / "max.safetensors"); }, "max.safetensors");
}

TEST(SafetensorsBad, HeaderOverLimit) {
    TempDir dir;
    const uint64_t n = (100ull << 20) + 1;
    const fs::path p = dir / "limit.safetensors";
    {
        std::ofstream out(p, std::ios::binary);
        out << le64(n);
    }
    fs::resize_file(p, 8 + n); // sparse: the reader must refuse before touching the bytes
    expectThrowWith<FormatError>([&] { SafetensorsFile::open(p); }, "limit.safetensors", "100 MiB");
}

TEST(SafetensorsBad, HeaderNotJson) {
    expectBadHeader("", 0, "empty");
    expectBadHeader("{\"a\": ", 0, "not valid JSON");
    expectBadHeader("hello", 0, "not valid JSON");
    expectBadHeader("{} trailing", 0, "not valid JSON");
    expectBadHeader("{\"\xff\xfe\":1}", 0, "not valid JSON"); // not UTF-8
    expectBadHeader("{\"a\":\"\x01\"}", 0, "not valid JSON"); // control character in a string
    expectBadHeader(std::string("{\0}", 3), 0, "NUL");
    expectBadHeader(std::string("{}\0garbage", 10), 0, "NUL");
    expectBadHeader("[1, 2]", 0, "must be a JSON object");
    expectBadHeader("42", 0, "must be a JSON object");
    expectBadHeader("{\"x\":{\"extra\":" + std::string(50, '[') + std::string(50, ']') + "}}", 0, "nested");
    expectBadHeader(std::string(100000, '['), 0, "must be a JSON object");
}

TEST(SafetensorsBad, EntryFields) {
    expectBadHeader(R"({"x": 5})", 0, "'x'");
    expectBadHeader("{\"t\xc3\xa9\\n" + std::string(300, 'y') + "\": 5}", 0, "'t\xc3\xa9?yyy"); // long, escaped name
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1]}})", 4, "data_offsets");
    expectBadHeader(R"({"x": {"shape":[1],"data_offsets":[0,4]}})", 4, "dtype");
    expectBadHeader(R"({"x": {"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4, "dtype");
    expectBadHeader(R"({"x": {"dtype":"F32","data_offsets":[0,4]}})", 4, "shape");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "shape");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1.5],"data_offsets":[0,6]}})", 8, "shape");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4, "shape");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", 4, "shape");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":{"0":1},"data_offsets":[0,4]}})", 4, "shape");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8, "data_offsets");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[[0],4]}})", 4, "data_offsets");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"( "x": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                    8, "listed twice");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"( "x": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                    4, "listed twice");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4, "dimensions");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4, "data_offsets");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4, "data_offsets");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", 4, "data_offsets");
}

TEST(SafetensorsBad, OffsetsAndSizes) {
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}})", 1000,
                    "extend past the end of the data section (1000 bytes)");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 3, "(3 bytes)");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[18446744073709551615,4]}})", 8, "begin");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8, "begin");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16, "[3]");
    expectBadHeader(R"({"x": {"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})", 16, "needs");
    expectBadHeader(R"({"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"( "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    16, "overlap");
    expectBadHeader(R"({"a": {"dtype":"U8","shape":[16],"data_offsets":[0,16]},)"
                    R"( "b": {"dtype":"U8","shape":[1],"data_offsets":[15,16]}})",
                    16, "overlap");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0,
                    "more elements");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0, "needs");
    expectBadHeader(R"({"x": {"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})", 0, "shape");
}

TEST(SafetensorsBad, Metadata) {
    expectBadHeader(R"({"__metadata__": {"a": "b", "n": 5}})", 0, "'n'");
    expectBadHeader(R"({"__metadata__": {"a": null}})", 0, "must be a string");
    expectBadHeader(R"({"__metadata__": ["a"]})", 0, "__metadata__");
}

// The header parser on bytes in memory (safetensors_header.h), as SafetensorsFile::open runs
// it on the mapped file.
namespace {
const unsigned char* asBytes(const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); }
} // namespace

TEST(SafetensorsHeader, ReadsTensorsInFileOrderWithTheirIndexAndMetadata) {
    const std::string header = R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                               R"("a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}})";
    const std::string bytes = le64(header.size()) + header + std::string(16, '\0');
    const auto h = detail::readSafetensorsHeader("m.safetensors", asBytes(bytes), bytes.size());
    EXPECT_EQ(h.dataStart, 8 + header.size());
    ASSERT_EQ(h.tensors.size(), 2u);
    EXPECT_EQ(h.tensors[0].name, "a");
    EXPECT_EQ(h.tensors[0].dtype, DType::BF16);
    EXPECT_EQ(h.tensors[0].shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(h.tensors[0].begin, 0u);
    EXPECT_EQ(h.tensors[0].end, 8u);
    EXPECT_EQ(h.tensors[1].name, "b");
    EXPECT_EQ(h.tensors[1].dtype, DType::F32);
    EXPECT_EQ(h.tensors[1].begin, 8u);
    EXPECT_EQ(h.index, (std::map<std::string, std::size_t>{{"a", 0}, {"b", 1}}));
    EXPECT_EQ(h.metadata, (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST(SafetensorsHeader, GivesTheMessagesOfOpeningTheFile) {
    TempDir dir;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
         "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
        {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
         "tensor 'a' is listed twice in the header"},
        {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
         "tensor 'a' data_offsets [0, 8] span 8 bytes, but shape [3] of F32 needs 3 x 4 bytes"},
        {"[1]", "the header must be a JSON object, but it is an array"},
        {"", "the header is empty; expected a JSON object"},
    };
    for (const auto& [header, why] : cases) {
        const fs::path p = makeFile(dir, "h.safetensors", header, 16);
        const std::string bytes = le64(header.size()) + header + std::string(16, '\0');
        std::string fromBytes, fromFile;
        try {
            detail::readSafetensorsHeader(p.string(), asBytes(bytes), bytes.size());
        } catch (const FormatError& e) {
            fromBytes = e.what();
        }
        try {
            SafetensorsFile::open(p);
        } catch (const FormatError& e) {
            fromFile = e.what();
        }
        EXPECT_EQ(fromBytes, p.string() + ": " + why);
        EXPECT_EQ(fromFile, fromBytes);
    }
}

TEST(SafetensorsHeader, FewerBytesThanTheLengthFieldAreAnArgumentError) {
    const std::string bytes(7, '\0');
    EXPECT_THROW(detail::readSafetensorsHeader("x.safetensors", asBytes(bytes), bytes.size()), ArgumentError);
}

// ---------------------------------------------------------------------------------------
// fp16 / bf16

TEST(HalfFloat, KnownValues) {
    EXPECT_EQ(halfToFloat(0x3c00), 1.0f);
    EXPECT_EQ(halfToFloat(0xc000), -2.0f);
    EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
    EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));    // smallest subnormal
    EXPECT_EQ(halfToFloat(0x03ff), std::ldexp(1023.0f, -24)); // largest subnormal
    EXPECT_EQ(halfToFloat(0x0400), std::ldexp(1.0f, -14));    // smallest normal
    EXPECT_EQ(halfToFloat(0x7c00), std::numeric_limits<float>::infinity());
    EXPECT_EQ(halfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(halfToFloat(0x7e00)));
    EXPECT_TRUE(std::isnan(halfToFloat(0x7c01)));
    EXPECT_TRUE(std::signbit(halfToFloat(0x8000)));

    EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
    EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
    EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
    EXPECT_EQ(floatToHalf(65519.0f), 0x7bff); // below the midpoint to 65536
    EXPECT_EQ(floatToHalf(65520.0f), 0x7c00); // midpoint: ties to even = inf
    EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -24)), 0x0001);
    EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000); // tie to even: zero
    EXPECT_EQ(floatToHalf(std::ldexp(1.5f, -25)), 0x0001);
    EXPECT_EQ(floatToHalf(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulp ties up to even 2
    EXPECT_EQ(floatToHalf(-std::ldexp(1.0f, -30)), 0x8000);
    EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);     // tie to even (down)
    EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02); // tie to even (up)
    EXPECT_EQ(floatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
    EXPECT_EQ(floatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
    const uint16_t nan = floatToHalf(std::numeric_limits<float>::quiet_NaN());
    EXPECT_EQ(nan & 0x7c00, 0x7c00);
    EXPECT_NE(nan & 0x03ff, 0);
    EXPECT_NE(floatToHalf(std::bit_cast<float>(0x7f800001u)) & 0x03ff, 0); // NaN payload below half precision
}

TEST(HalfFloat, EveryHalfRoundTrips) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = halfToFloat(static_cast<uint16_t>(h));
        if (std::isnan(f))
            continue;
        ASSERT_EQ(floatToHalf(f), h) << std::hex << h;
    }
}

#if defined(__FLT16_MAX__)
TEST(HalfFloat, MatchesCompilerConversion) {
    std::mt19937 rng(1234);
    for (int i = 0; i < 2000000; ++i) {
        uint32_t bits = rng();
        if (i % 2)
            bits = (bits & 0x807fffffu) | ((100u + rng() % 45u) << 23); // around the half range
        const float f = std::bit_cast<float>(bits);
        if (std::isnan(f))
            continue;
        const auto expect = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
        ASSERT_EQ(floatToHalf(f), expect) << std::hex << bits;
        ASSERT_EQ(std::bit_cast<uint32_t>(halfToFloat(expect)),
                  std::bit_cast<uint32_t>(static_cast<float>(static_cast<_Float16>(f))));
    }
}
#endif

TEST(Bf16, KnownValues) {
    EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
    EXPECT_EQ(bf16ToFloat(0xc000), -2.0f);
    EXPECT_EQ(bf16ToFloat(0x0001), std::bit_cast<float>(0x00010000u)); // smallest subnormal
    EXPECT_EQ(bf16ToFloat(0x7f80), std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(bf16ToFloat(0x7fc0)));
    EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
    EXPECT_EQ(floatToBf16(-2.0f), 0xc000);
    EXPECT_EQ(floatToBf16(65504.0f), 0x4780);                          // 65536 is the nearest bf16
    EXPECT_EQ(floatToBf16(std::bit_cast<float>(0x3f808000u)), 0x3f80); // tie to even (down)
    EXPECT_EQ(floatToBf16(std::bit_cast<float>(0x3f818000u)), 0x3f82); // tie to even (up)
    EXPECT_EQ(floatToBf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
    EXPECT_EQ(floatToBf16(std::bit_cast<float>(0x00010000u)), 0x0001);
    EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7f80); // rounds to inf
    EXPECT_EQ(floatToBf16(-std::numeric_limits<float>::infinity()), 0xff80);
    EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(std::numeric_limits<float>::quiet_NaN()))));
    EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(std::bit_cast<float>(0x7f800001u))))); // not inf
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = bf16ToFloat(static_cast<uint16_t>(h));
        if (!std::isnan(f)) {
            ASSERT_EQ(floatToBf16(f), h) << std::hex << h;
        }
    }
}
