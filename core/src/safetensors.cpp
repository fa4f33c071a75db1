#include "mythos/safetensors.h"
#include "halfprecision.h"
#include "safetensors_header.h"

#include "hugepages.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <system_error>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mythos {
namespace fs = std::filesystem;

// Tensor bytes are copied straight from / to memory.
static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; add byte swapping");

namespace {

std::string errnoText(int err) { return std::system_category().message(err); }

} // namespace

using detail::checkedNumel;
using detail::kMaxDims;
using detail::offsetsText;
using detail::printable;
using detail::quotedName;

int64_t TensorInfo::numel() const {
    int64_t n = 0;
    if (!checkedNumel(shape, n))
        throw ArgumentError("tensor " + quotedName(name) + ": shape " + shapeToString(shape) +
                            " has a negative dimension or too many elements");
    return n;
}

std::string shapeToString(const std::vector<int64_t>& shape) {
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
      m_metadata(std::move(o.m_metadata)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
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

SafetensorsFile::~SafetensorsFile() {
    if (m_map)
        ::munmap(m_map, m_mapSize);
}

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
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
        throw FileError(file +
                        (S_ISDIR(st.st_mode) ? ": is a folder, not a safetensors file" : ": is not a regular file"));
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
    detail::SafetensorsHeader h = detail::readSafetensorsHeader(file, static_cast<const unsigned char*>(map), fileSize);
    sf.m_dataStart = h.dataStart;
    sf.m_tensors = std::move(h.tensors);
    sf.m_index = std::move(h.index);
    sf.m_metadata = std::move(h.metadata);
    return sf;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
    auto it = m_index.find(std::string(name));
    return it == m_index.end() ? nullptr : &m_tensors[it->second];
}

const std::byte* SafetensorsFile::data(const TensorInfo& t) const {
    // TensorInfo is a plain struct: re-check it so one from another file cannot read out of bounds.
    if (t.begin > t.end || t.end > m_mapSize - m_dataStart)
        throw ArgumentError(m_path.string() + ": tensor " + quotedName(t.name) + " data_offsets " +
                            offsetsText(t.begin, t.end) + " do not belong to this file");
    return static_cast<const std::byte*>(m_map) + m_dataStart + t.begin;
}

const std::byte* SafetensorsFile::floatData(const TensorInfo& t) const {
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
        throw FormatError(m_path.string() + ": tensor " + quotedName(t.name) + " has dtype " + printable(t.dtypeText) +
                          "; only F32, F16 and BF16 can be read as floating point");
    const std::byte* src = data(t);
    if (t.end - t.begin != static_cast<uint64_t>(t.numel()) * dtypeSize(t.dtype))
        throw ArgumentError(m_path.string() + ": tensor " + quotedName(t.name) + " size does not match its shape");
    return src;
}

void SafetensorsFile::readF32Into(const TensorInfo& t, float* dst) const {
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

std::vector<float> SafetensorsFile::readF32(const TensorInfo& t) const {
    // Validate before allocating numel floats: numel is only bounded by the file size
    // once dtype, offsets and size have been checked.
    floatData(t);
    std::vector<float> out;
    detail::resizeInHugePages(out, static_cast<std::size_t>(t.numel()));
    readF32Into(t, out.data());
    return out;
}

std::vector<uint16_t> SafetensorsFile::readBf16(const TensorInfo& t) const {
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

void SafetensorsFile::release(const TensorInfo& t) const {
    const std::byte* begin = data(t);
    const std::byte* end = begin + (t.end - t.begin);
    // Only whole pages inside the tensor: its neighbours' bytes stay mapped.
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
    const uintptr_t last = reinterpret_cast<uintptr_t>(end) / page * page;
    if (page > 0 && last > first)
        ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED); // advice: failure is harmless
}

std::vector<int64_t> SafetensorsFile::readI64(const TensorInfo& t) const {
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
                      const std::map<std::string, std::string>& metadata, DType storeAs) {
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
        header[t.name] = {{"dtype", dtypeName(storeAs)}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
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
        throw FileError(file + ": cannot open the temporary file " + out.tempPath().string() + ": " + errnoText(errno));
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
