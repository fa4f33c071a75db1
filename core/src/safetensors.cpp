#include "mythos/safetensors.h"
#include "halfprecision.h"

#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "hugepages.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <tuple>
#include <limits>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mythos {
namespace fs = std::filesystem;
using nlohmann::json;

// Tensor bytes are copied straight from / to memory.
static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; add byte swapping");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr std::size_t kMaxDims = 8;
constexpr std::size_t kMaxJsonDepth = 8;
constexpr std::size_t kMaxMetadataEntries = 1 << 20;

struct DTypeEntry {
    DType dtype;
    std::string_view name;
    std::size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2},   {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

DType dtypeFromName(std::string_view s)
{
    for (const auto& e : kDTypes)
        if (e.name == s)
            return e.dtype;
    return DType::Other;
}

std::string errnoText(int err) { return std::system_category().message(err); }

// Names come from untrusted files: keep messages short and printable. Text that
// nlohmann::json has not validated as UTF-8 (parse errors) is reduced to ASCII.
std::string printable(std::string_view s, std::size_t maxLen = 120, bool asciiOnly = false)
{
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

// Product of the dims, or nullopt-like false on overflow / negative dims.
bool checkedNumel(const std::vector<int64_t>& shape, int64_t& out)
{
    int64_t n = 1;
    for (int64_t d : shape)
        if (d < 0 || __builtin_mul_overflow(n, d, &n))
            return false;
    out = n;
    return true;
}

} // namespace

std::string_view dtypeName(DType d)
{
    for (const auto& e : kDTypes)
        if (e.dtype == d)
            return e.name;
    return "Other";
}

std::size_t dtypeSize(DType d)
{
    for (const auto& e : kDTypes)
        if (e.dtype == d)
            return e.size;
    return 0;
}

int64_t TensorInfo::numel() const
{
    int64_t n = 0;
    if (!checkedNumel(shape, n))
        throw ArgumentError("tensor " + quotedName(name) + ": shape " + shapeToString(shape) +
                            " has a negative dimension or too many elements");
    return n;
}

std::string shapeToString(const std::vector<int64_t>& shape)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// ---------------------------------------------------------------------------------------
// Reader

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : m_path(std::move(o.m_path)), m_map(std::exchange(o.m_map, nullptr)), m_mapSize(std::exchange(o.m_mapSize, 0)),
      m_dataStart(std::exchange(o.m_dataStart, 0)), m_tensors(std::move(o.m_tensors)), m_index(std::move(o.m_index)),
      m_metadata(std::move(o.m_metadata))
{
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept
{
    if (this != &o) {
        if (m_map)
            ::munmap(m_map, m_mapSize);
        m_path = std::move(o.m_path);
        m_map = std::exchange(o.m_map, nullptr);
        m_mapSize = std::exchange(o.m_mapSize, 0);
        m_dataStart = std::exchange(o.m_dataStart, 0);
        m_tensors = std::move(o.m_tensors);
        m_index = std::move(o.m_index);
        m_metadata = std::move(o.m_metadata);
    }
    return *this;
}

SafetensorsFile::~SafetensorsFile()
{
    if (m_map)
        ::munmap(m_map, m_mapSize);
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
        : m_file(std::move(file)), m_dataSize(dataSize), m_tensors(tensors), m_metadata(metadata)
    {
    }

    bool null() override { return scalar("null"); }
    bool boolean(bool v) override { return scalar(v ? "true" : "false"); }
    bool number_integer(number_integer_t v) override
    {
        return v >= 0 ? number_unsigned(static_cast<uint64_t>(v)) : scalar(std::to_string(v));
    }
    bool number_unsigned(number_unsigned_t v) override
    {
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
    bool string(string_t& v) override
    {
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
    bool key(string_t& k) override
    {
        if (m_skip == 0 && m_where == Where::Root)
            m_name = std::move(k);
        else if (m_skip == 0 && m_where == Where::Entry)
            m_field = std::move(k);
        else if (m_skip == 0 && m_where == Where::Metadata)
            m_key = std::move(k);
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override
    {
        std::string why = e.what();
        if (auto p = why.find("] "); why.rfind("[json.exception", 0) == 0 && p != std::string::npos)
            why.erase(0, p + 2);
        fail("the header is not valid JSON (" + printable(why, 300, true) + ")");
    }

private:
    enum class Where { Top, Root, Entry, Metadata, Shape, Offsets };

    [[noreturn]] void fail(const std::string& what) const { throw FormatError(m_file + ": " + what); }
    [[noreturn]] void failOffsets() const
    {
        fail(entryName() + " needs \"data_offsets\" as [begin, end] with non-negative integers");
    }
    std::string entryName() const { return "tensor " + quotedName(m_name); }

    // A value that is not expected where it appears; `what` describes it for the message.
    bool scalar(const std::string& what)
    {
        if (m_skip > 0)
            return true;
        switch (m_where) {
        case Where::Top:
            fail("the header must be a JSON object, but it is " + what);
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
        case Where::Metadata:
            fail("metadata value " + quotedName(m_key) + " must be a string, but it is " + what);
        case Where::Shape:
            fail(entryName() + " has an invalid shape: a dimension is " + what +
                 "; dimensions must be non-negative integers");
        case Where::Offsets:
            failOffsets();
        }
        return true;
    }

    bool open(bool object)
    {
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
        case Where::Offsets:
            return scalar(what);
        }
        return true;
    }

    bool close()
    {
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
        case Where::Metadata:
            m_where = Where::Root;
            break;
        case Where::Root:
        case Where::Top:
            m_where = Where::Top;
            break;
        }
        return true;
    }

    void finishEntry()
    {
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
                fail(tname + " data_offsets " + offs + " span " + std::to_string(t.end - t.begin) + " bytes, but shape " +
                     shapeToString(t.shape) + " of " + std::string(dtypeName(t.dtype)) + " needs " +
                     std::to_string(numel) + " x " + std::to_string(es) + " bytes");
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

SafetensorsFile SafetensorsFile::open(const fs::path& path)
{
    const std::string file = path.string();
    auto bad = [&](const std::string& what) { return FormatError(file + ": " + what); };

    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is rejected below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        throw FileError(file + ": cannot open the file: " + errnoText(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw FileError(file + ": cannot read the file: " + errnoText(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw FileError(file + (S_ISDIR(st.st_mode) ? ": is a folder, not a safetensors file"
                                                    : ": is not a regular file"));
    }
    const uint64_t fileSize = static_cast<uint64_t>(st.st_size);
    if (fileSize < 8) {
        ::close(fd);
        throw bad("the file is too short to be a safetensors file (" + std::to_string(fileSize) +
                  " bytes; at least 8 are needed for the header length)");
    }
    if (fileSize > std::numeric_limits<std::size_t>::max()) {
        ::close(fd);
        throw FileError(file + ": the file is too large to map into memory");
    }
    void* map = ::mmap(nullptr, static_cast<std::size_t>(fileSize), PROT_READ, MAP_PRIVATE, fd, 0);
    const int mapErr = errno;
    ::close(fd);
    if (map == MAP_FAILED)
        throw FileError(file + ": cannot map the file into memory: " + errnoText(mapErr));

    SafetensorsFile sf; // from here on its destructor unmaps on any error
    sf.m_path = path;
    sf.m_map = map;
    sf.m_mapSize = static_cast<std::size_t>(fileSize);
    const auto* bytes = static_cast<const unsigned char*>(map);

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
    sf.m_dataStart = static_cast<std::size_t>(8 + headerLen);
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
    HeaderReader reader(file, dataSize, sf.m_tensors, sf.m_metadata);
    json::sax_parse(hb, hb + jsonLen, &reader);

    // File order is the natural order to list tensors in, and makes overlaps adjacent.
    std::sort(sf.m_tensors.begin(), sf.m_tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
    });
    for (std::size_t i = 0; i < sf.m_tensors.size(); ++i)
        if (!sf.m_index.emplace(sf.m_tensors[i].name, i).second)
            throw bad("tensor " + quotedName(sf.m_tensors[i].name) + " is listed twice in the header");
    const TensorInfo* prev = nullptr;
    for (const auto& t : sf.m_tensors) {
        if (t.begin == t.end)
            continue; // empty tensors occupy no bytes
        if (prev && t.begin < prev->end)
            throw bad("tensors " + quotedName(prev->name) + " " + offsetsText(prev->begin, prev->end) + " and " +
                      quotedName(t.name) + " " + offsetsText(t.begin, t.end) + " overlap");
        prev = &t;
    }
    return sf;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const
{
    auto it = m_index.find(std::string(name));
    return it == m_index.end() ? nullptr : &m_tensors[it->second];
}

const std::byte* SafetensorsFile::data(const TensorInfo& t) const
{
    // TensorInfo is a plain struct: re-check it so one from another file cannot read out of bounds.
    if (t.begin > t.end || t.end > m_mapSize - m_dataStart)
        throw ArgumentError(m_path.string() + ": tensor " + quotedName(t.name) + " data_offsets " +
                            offsetsText(t.begin, t.end) + " do not belong to this file");
    return static_cast<const std::byte*>(m_map) + m_dataStart + t.begin;
}

const std::byte* SafetensorsFile::floatData(const TensorInfo& t) const
{
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
        throw FormatError(m_path.string() + ": tensor " + quotedName(t.name) + " has dtype " + printable(t.dtypeText) +
                          "; only F32, F16 and BF16 can be read as floating point");
    const std::byte* src = data(t);
    if (t.end - t.begin != static_cast<uint64_t>(t.numel()) * dtypeSize(t.dtype))
        throw ArgumentError(m_path.string() + ": tensor " + quotedName(t.name) + " size does not match its shape");
    return src;
}

void SafetensorsFile::readF32Into(const TensorInfo& t, float* dst) const
{
    const std::byte* src = floatData(t);
    const auto n = static_cast<std::size_t>(t.numel());
    if (t.dtype == DType::F32) {
        if (n)
            std::memcpy(dst, src, n * 4);
        return;
    }
    const bool half = t.dtype == DType::F16;
    for (std::size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = half ? halfToFloat(v) : bf16ToFloat(v);
    }
}

std::vector<float> SafetensorsFile::readF32(const TensorInfo& t) const
{
    // Validate before allocating numel floats: numel is only bounded by the file size
    // once dtype, offsets and size have been checked.
    floatData(t);
    std::vector<float> out;
    detail::resizeInHugePages(out, static_cast<std::size_t>(t.numel()));
    readF32Into(t, out.data());
    return out;
}

std::vector<uint16_t> SafetensorsFile::readBf16(const TensorInfo& t) const
{
    const std::byte* src = floatData(t);
    const auto n = static_cast<std::size_t>(t.numel());
    std::vector<uint16_t> out;
    detail::resizeInHugePages(out, n);
    if (t.dtype == DType::BF16) {
        if (n)
            std::memcpy(out.data(), src, n * 2);
        return out;
    }
    for (std::size_t i = 0; i < n; ++i) {
        float f;
        if (t.dtype == DType::F32) {
            std::memcpy(&f, src + 4 * i, 4);
        } else {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            f = halfToFloat(h);
        }
        out[i] = floatToBf16(f);
    }
    return out;
}

void SafetensorsFile::release(const TensorInfo& t) const
{
    const std::byte* begin = data(t);
    const std::byte* end = begin + (t.end - t.begin);
    // Only whole pages inside the tensor: its neighbours' bytes stay mapped.
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
    const uintptr_t last = reinterpret_cast<uintptr_t>(end) / page * page;
    if (page > 0 && last > first)
        ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED); // advice: failure is harmless
}

std::vector<int64_t> SafetensorsFile::readI64(const TensorInfo& t) const
{
    if (t.dtype != DType::I64 && t.dtype != DType::I32)
        throw FormatError(m_path.string() + ": tensor " + quotedName(t.name) + " has dtype " + printable(t.dtypeText) +
                          "; only I64 and I32 can be read as integers");
    const std::byte* src = data(t);
    const auto n = static_cast<std::size_t>(t.numel());
    const std::size_t es = dtypeSize(t.dtype);
    if (t.end - t.begin != n * es)
        throw ArgumentError(m_path.string() + ": tensor " + quotedName(t.name) + " size does not match its shape");
    std::vector<int64_t> out(n);
    if (t.dtype == DType::I64) {
        if (n)
            std::memcpy(out.data(), src, n * 8);
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            int32_t v;
            std::memcpy(&v, src + 4 * i, 4);
            out[i] = v;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Writer

void writeSafetensors(const fs::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata, DType storeAs)
{
    const std::string file = path.string();
    if (storeAs != DType::F32 && storeAs != DType::F16 && storeAs != DType::BF16)
        throw ArgumentError(file + ": tensors can only be stored as F32, F16 or BF16, not " +
                            std::string(dtypeName(storeAs)));
    const std::size_t es = dtypeSize(storeAs);

    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    std::vector<std::size_t> counts;
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        const std::string tname = file + ": tensor " + quotedName(t.name);
        if (t.name.empty() || t.name == "__metadata__")
            throw ArgumentError(tname + " has a reserved or empty name");
        if (header.contains(t.name))
            throw ArgumentError(tname + " is listed twice");
        if (t.shape.size() > kMaxDims)
            throw ArgumentError(tname + " has more than " + std::to_string(kMaxDims) + " dimensions");
        int64_t numel = 0;
        uint64_t bytes = 0, end = 0;
        if (!checkedNumel(t.shape, numel) || __builtin_mul_overflow(static_cast<uint64_t>(numel), es, &bytes))
            throw ArgumentError(tname + " has an invalid shape " + shapeToString(t.shape));
        if (__builtin_add_overflow(offset, bytes, &end))
            throw ArgumentError(tname + " makes the file too large");
        if (numel > 0 && !t.data)
            throw ArgumentError(tname + " has no data");
        header[t.name] = {{"dtype", dtypeName(storeAs)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, end}}};
        offset = end;
        counts.push_back(static_cast<std::size_t>(numel));
    }
    std::string head = header.dump();
    head.append((8 - head.size() % 8) % 8, ' '); // data starts 8-byte aligned

    AtomicFile out(path);
    struct Closer {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    std::unique_ptr<std::FILE, Closer> f(std::fopen(out.tempPath().c_str(), "wb"));
    if (!f)
        throw FileError(file + ": cannot open the temporary file " + out.tempPath().string() + ": " +
                        errnoText(errno));
    auto writeAll = [&](const void* p, std::size_t n) {
        if (n && std::fwrite(p, 1, n, f.get()) != n)
            throw FileError(file + ": cannot write the file: " + errnoText(errno));
    };
    unsigned char len[8];
    for (int i = 0; i < 8; ++i)
        len[i] = static_cast<unsigned char>(static_cast<uint64_t>(head.size()) >> (8 * i));
    writeAll(len, 8);
    writeAll(head.data(), head.size());
    std::vector<uint16_t> buf;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const float* src = tensors[i].data;
        const std::size_t n = counts[i];
        if (storeAs == DType::F32) {
            writeAll(src, n * 4);
            continue;
        }
        for (std::size_t done = 0; done < n;) {
            const std::size_t chunk = std::min<std::size_t>(n - done, 1 << 16);
            buf.resize(chunk);
            for (std::size_t j = 0; j < chunk; ++j)
                buf[j] = storeAs == DType::F16 ? floatToHalf(src[done + j]) : floatToBf16(src[done + j]);
            writeAll(buf.data(), chunk * 2);
            done += chunk;
        }
    }
    if (std::fclose(f.release()) != 0)
        throw FileError(file + ": cannot write the file: " + errnoText(errno));
    out.commit();
}

} // namespace mythos
