// The safetensors header (safetensors_header.h): its length, its JSON streamed into
// TensorInfo records and checked against the file's size, and the dtype names.
#include "safetensors_header.h"

#include "mythos/errors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

namespace mythos {
using nlohmann::json;

namespace detail {

std::string printable(std::string_view s, std::size_t maxLen, bool asciiOnly) {
    std::size_t len = std::min(s.size(), maxLen);
    while (len < s.size() && len > 0 && (static_cast<unsigned char>(s[len]) & 0xc0) == 0x80)
        --len; // do not cut a UTF-8 sequence
    std::string out;
    for (char c : s.substr(0, len)) {
        const unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f || (asciiOnly && u >= 0x80)) ? '?' : c;
    }
    if (len < s.size())
        out += "...";
    return out;
}

std::string quotedName(std::string_view s) { return "'" + printable(s) + "'"; }

std::string offsetsText(uint64_t b, uint64_t e) { return "[" + std::to_string(b) + ", " + std::to_string(e) + "]"; }

bool checkedNumel(const std::vector<int64_t>& shape, int64_t& out) {
    int64_t n = 1;
    for (int64_t d : shape)
        if (d < 0 || __builtin_mul_overflow(n, d, &n))
            return false;
    out = n;
    return true;
}

} // namespace detail

using detail::checkedNumel;
using detail::dtypeFromName;
using detail::kMaxDims;
using detail::offsetsText;
using detail::printable;
using detail::quotedName;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr std::size_t kMaxJsonDepth = 8;
constexpr std::size_t kMaxMetadataEntries = 1 << 20;

struct DTypeEntry {
    DType dtype;
    std::string_view name;
    std::size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2},   {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2},   {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

} // namespace

DType detail::dtypeFromName(std::string_view s) {
    for (const auto& e : kDTypes)
        if (e.name == s)
            return e.dtype;
    return DType::Other;
}

std::string_view dtypeName(DType d) {
    for (const auto& e : kDTypes)
        if (e.dtype == d)
            return e.name;
    return "Other";
}

std::size_t dtypeSize(DType d) {
    for (const auto& e : kDTypes)
        if (e.dtype == d)
            return e.size;
    return 0;
}

namespace {

// Streams the header through nlohmann's SAX interface straight into TensorInfo records:
// a hostile header can neither build a large JSON tree (memory stays proportional to the
// tensors actually described) nor nest deeply, and every problem is reported as soon as
// it is seen.
class HeaderReader final : public nlohmann::json_sax<json> {
public:
    HeaderReader(std::string file, uint64_t dataSize, std::vector<TensorInfo>& tensors,
                 std::map<std::string, std::string>& metadata)
        : m_file(std::move(file)), m_dataSize(dataSize), m_tensors(tensors), m_metadata(metadata) {}

    bool null() override { return scalar("null"); }
    bool boolean(bool v) override { return scalar(v ? "true" : "false"); }
    bool number_integer(number_integer_t v) override {
        return v >= 0 ? number_unsigned(static_cast<uint64_t>(v)) : scalar(std::to_string(v));
    }
    bool number_unsigned(number_unsigned_t v) override {
        if (m_skip == 0 && (m_where == Where::Shape || m_where == Where::Offsets)) {
            if (m_where == Where::Shape && v > uint64_t(std::numeric_limits<int64_t>::max()))
                return scalar(std::to_string(v));
            m_list.push_back(v);
            if (m_where == Where::Shape && m_list.size() > kMaxDims)
                fail(entryName() + " has more than " + std::to_string(kMaxDims) + " dimensions");
            if (m_where == Where::Offsets && m_list.size() > 2)
                failOffsets();
            return true;
        }
        return scalar("a number");
    }
    bool number_float(number_float_t, const string_t& text) override { return scalar(printable(text, 40)); }
    bool string(string_t& v) override {
        if (m_skip == 0 && m_where == Where::Entry && m_field == "dtype") {
            m_cur.dtypeText = std::move(v);
            m_cur.dtype = dtypeFromName(m_cur.dtypeText);
            m_hasDtype = true;
            return true;
        }
        if (m_skip == 0 && m_where == Where::Metadata) {
            // Each tiny entry costs ~20x its header bytes in a std::map; no real file needs this many.
            if (m_metadata.size() >= kMaxMetadataEntries)
                fail("\"__metadata__\" has more than " + std::to_string(kMaxMetadataEntries) + " entries");
            m_metadata[m_key] = std::move(v);
            return true;
        }
        return scalar("a string");
    }
    bool binary(binary_t&) override { return scalar("binary data"); }

    bool start_object(std::size_t) override { return open(true); }
    bool start_array(std::size_t) override { return open(false); }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool key(string_t& k) override {
        if (m_skip == 0 && m_where == Where::Root)
            m_name = std::move(k);
        else if (m_skip == 0 && m_where == Where::Entry)
            m_field = std::move(k);
        else if (m_skip == 0 && m_where == Where::Metadata)
            m_key = std::move(k);
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        std::string why = e.what();
        if (auto p = why.find("] "); why.rfind("[json.exception", 0) == 0 && p != std::string::npos)
            why.erase(0, p + 2);
        fail("the header is not valid JSON (" + printable(why, 300, true) + ")");
    }

private:
    enum class Where { Top, Root, Entry, Metadata, Shape, Offsets };

    [[noreturn]] void fail(const std::string& what) const { throw FormatError(m_file + ": " + what); }
    [[noreturn]] void failOffsets() const {
        fail(entryName() + " needs \"data_offsets\" as [begin, end] with non-negative integers");
    }
    std::string entryName() const { return "tensor " + quotedName(m_name); }

    // A value that is not expected where it appears; `what` describes it for the message.
    bool scalar(const std::string& what) {
        if (m_skip > 0)
            return true;
        switch (m_where) {
        case Where::Top: fail("the header must be a JSON object, but it is " + what);
        case Where::Root:
            if (m_name == "__metadata__")
                fail("\"__metadata__\" must be an object of strings, but it is " + what);
            fail(entryName() + " must be an object with dtype, shape and data_offsets, but it is " + what);
        case Where::Entry:
            if (m_field == "dtype")
                fail(entryName() + " needs \"dtype\" as a string such as \"F32\", but it is " + what);
            if (m_field == "shape")
                fail(entryName() + " needs \"shape\" as an array of dimensions, but it is " + what);
            if (m_field == "data_offsets")
                failOffsets();
            return true; // unknown fields are ignored
        case Where::Metadata: fail("metadata value " + quotedName(m_key) + " must be a string, but it is " + what);
        case Where::Shape:
            fail(entryName() + " has an invalid shape: a dimension is " + what +
                 "; dimensions must be non-negative integers");
        case Where::Offsets: failOffsets();
        }
        return true;
    }

    bool open(bool object) {
        if (++m_depth > kMaxJsonDepth)
            fail("the header JSON is nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
        if (m_skip > 0) {
            ++m_skip;
            return true;
        }
        const char* what = object ? "an object" : "an array";
        switch (m_where) {
        case Where::Top:
            if (!object)
                fail("the header must be a JSON object, but it is an array");
            m_where = Where::Root;
            return true;
        case Where::Root:
            if (!object)
                return scalar(what);
            if (m_name == "__metadata__") {
                m_where = Where::Metadata;
            } else {
                m_where = Where::Entry;
                m_cur = TensorInfo{};
                m_cur.name = m_name;
                m_field.clear();
                m_hasDtype = m_hasShape = m_hasOffsets = false;
            }
            return true;
        case Where::Entry:
            if (!object && (m_field == "shape" || m_field == "data_offsets")) {
                m_where = m_field == "shape" ? Where::Shape : Where::Offsets;
                m_list.clear();
                return true;
            }
            if (m_field == "dtype" || m_field == "shape" || m_field == "data_offsets")
                return scalar(what);
            m_skip = 1; // an unknown field's value
            return true;
        case Where::Metadata:
        case Where::Shape:
        case Where::Offsets: return scalar(what);
        }
        return true;
    }

    bool close() {
        --m_depth;
        if (m_skip > 0) {
            --m_skip;
            return true;
        }
        switch (m_where) {
        case Where::Shape:
            m_cur.shape.assign(m_list.begin(), m_list.end());
            m_hasShape = true;
            m_where = Where::Entry;
            break;
        case Where::Offsets:
            if (m_list.size() != 2)
                failOffsets();
            m_cur.begin = m_list[0];
            m_cur.end = m_list[1];
            m_hasOffsets = true;
            m_where = Where::Entry;
            break;
        case Where::Entry:
            finishEntry();
            m_where = Where::Root;
            break;
        case Where::Metadata: m_where = Where::Root; break;
        case Where::Root:
        case Where::Top: m_where = Where::Top; break;
        }
        return true;
    }

    void finishEntry() {
        const std::string tname = entryName();
        if (!m_hasDtype)
            fail(tname + " needs \"dtype\" as a string such as \"F32\"");
        if (!m_hasShape)
            fail(tname + " needs \"shape\" as an array of dimensions");
        if (!m_hasOffsets)
            failOffsets();
        TensorInfo& t = m_cur;
        int64_t numel = 0;
        if (!checkedNumel(t.shape, numel))
            fail(tname + " shape " + shapeToString(t.shape) + " has more elements than can be counted");
        const std::string offs = offsetsText(t.begin, t.end);
        if (t.begin > t.end)
            fail(tname + " data_offsets " + offs + " have begin after end");
        if (t.end > m_dataSize)
            fail(tname + " data_offsets " + offs + " extend past the end of the data section (" +
                 std::to_string(m_dataSize) + " bytes); the file may be truncated");
        if (const std::size_t es = dtypeSize(t.dtype); es != 0) {
            uint64_t expect = 0;
            if (__builtin_mul_overflow(static_cast<uint64_t>(numel), es, &expect) || expect != t.end - t.begin)
                fail(tname + " data_offsets " + offs + " span " + std::to_string(t.end - t.begin) +
                     " bytes, but shape " + shapeToString(t.shape) + " of " + std::string(dtypeName(t.dtype)) +
                     " needs " + std::to_string(numel) + " x " + std::to_string(es) + " bytes");
        }
        m_tensors.push_back(std::move(t));
    }

    std::string m_file;
    uint64_t m_dataSize;
    std::vector<TensorInfo>& m_tensors;
    std::map<std::string, std::string>& m_metadata;

    Where m_where = Where::Top;
    std::size_t m_depth = 0;
    std::size_t m_skip = 0; // > 0 while inside the value of an unknown field
    std::string m_name, m_field, m_key;
    TensorInfo m_cur;
    bool m_hasDtype = false, m_hasShape = false, m_hasOffsets = false;
    std::vector<uint64_t> m_list;
};

} // namespace

detail::SafetensorsHeader detail::readSafetensorsHeader(const std::string& file, const unsigned char* bytes,
                                                        uint64_t fileSize) {
    auto bad = [&](const std::string& what) { return FormatError(file + ": " + what); };
    if (fileSize < 8)
        throw ArgumentError(file + ": " + std::to_string(fileSize) +
                            " bytes given as a safetensors file; the header length alone takes 8");
    SafetensorsHeader h;
    uint64_t headerLen = 0;
    for (int i = 7; i >= 0; --i)
        headerLen = (headerLen << 8) | bytes[i];
    if (headerLen > fileSize - 8)
        throw bad("the header length (" + std::to_string(headerLen) + " bytes) is past the end of the file (" +
                  std::to_string(fileSize) + " bytes); the file is truncated or not a safetensors file");
    if (headerLen > kMaxHeaderBytes)
        throw bad("the header length (" + std::to_string(headerLen) + " bytes) exceeds the 100 MiB limit");
    if (headerLen == 0)
        throw bad("the header is empty; expected a JSON object");
    h.dataStart = static_cast<std::size_t>(8 + headerLen);
    const uint64_t dataSize = fileSize - 8 - headerLen;

    // nlohmann::json reads a NUL byte as the end of input, which would accept garbage
    // after it; only trailing NUL padding is tolerated.
    const char* hb = reinterpret_cast<const char*>(bytes + 8);
    std::size_t jsonLen = static_cast<std::size_t>(headerLen);
    while (jsonLen > 0 && hb[jsonLen - 1] == '\0')
        --jsonLen;
    if (const void* nul = std::memchr(hb, 0, jsonLen))
        throw bad("the header is not valid JSON (NUL byte at header offset " +
                  std::to_string(static_cast<const char*>(nul) - hb) + ")");
    HeaderReader reader(file, dataSize, h.tensors, h.metadata);
    json::sax_parse(hb, hb + jsonLen, &reader);

    // File order is the natural order to list tensors in, and makes overlaps adjacent.
    std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
    });
    for (std::size_t i = 0; i < h.tensors.size(); ++i)
        if (!h.index.emplace(h.tensors[i].name, i).second)
            throw bad("tensor " + quotedName(h.tensors[i].name) + " is listed twice in the header");
    const TensorInfo* prev = nullptr;
    for (const auto& t : h.tensors) {
        if (t.begin == t.end)
            continue; // empty tensors occupy no bytes
        if (prev && t.begin < prev->end)
            throw bad("tensors " + quotedName(prev->name) + " " + offsetsText(prev->begin, prev->end) + " and " +
                      quotedName(t.name) + " " + offsetsText(t.begin, t.end) + " overlap");
        prev = &t;
    }
    return h;
}

} // namespace mythos
