#pragma once
// safetensors reading (memory-mapped, bounds-checked) and writing (atomic).
// Format: 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian row-major tensor bytes; offsets are relative to the first
// data byte. Every file is untrusted: nothing is allocated or read before the header has
// been checked against the real file size.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mythos {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, Other };

std::string_view dtypeName(DType d);
std::size_t dtypeSize(DType d); // 0 for Other

struct TensorInfo {
    std::string name;
    DType dtype = DType::Other;
    std::string dtypeText; // as written in the file
    std::vector<int64_t> shape;
    uint64_t begin = 0; // relative to the data section
    uint64_t end = 0;

    int64_t numel() const;
};

std::string shapeToString(const std::vector<int64_t>& shape); // "[64, 128]"

class SafetensorsFile {
public:
    // Maps the file and validates the header: length within the file, valid JSON,
    // known fields, offsets in range, begin <= end, size = numel * dtype size,
    // no overlapping tensors. Throws FileError / FormatError naming the file.
    static SafetensorsFile open(const std::filesystem::path& path);

    SafetensorsFile(SafetensorsFile&&) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
    ~SafetensorsFile();

    const std::filesystem::path& path() const { return m_path; }
    const std::vector<TensorInfo>& tensors() const { return m_tensors; }
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    const TensorInfo* find(std::string_view name) const; // nullptr when absent

    // Raw bytes of a tensor inside the mapping (valid while this object lives).
    const std::byte* data(const TensorInfo& t) const;

    // Converts F32 / F16 / BF16 to fp32; any other dtype is a FormatError naming the
    // tensor and the file.
    std::vector<float> readF32(const TensorInfo& t) const;
    void readF32Into(const TensorInfo& t, float* dst) const; // dst holds numel floats

    // F32 / F16 / BF16 as bf16 bits: BF16 copied exactly, the others rounded to nearest
    // even without an fp32 copy of the tensor.
    std::vector<uint16_t> readBf16(const TensorInfo& t) const;

    // Gives the mapping's pages of a tensor back to the kernel once it has been read (they
    // are read again from the file if needed): loading stays near the size of what is kept.
    void release(const TensorInfo& t) const;

    // Integer tensors (I64, I32) converted to int64.
    std::vector<int64_t> readI64(const TensorInfo& t) const;

private:
    SafetensorsFile() = default;
    // data(t) of an F32 / F16 / BF16 tensor whose byte size matches its shape; FormatError
    // for another dtype, ArgumentError for a size mismatch.
    const std::byte* floatData(const TensorInfo& t) const;
    std::filesystem::path m_path;
    void* m_map = nullptr;
    std::size_t m_mapSize = 0;
    std::size_t m_dataStart = 0;
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, std::size_t> m_index;
    std::map<std::string, std::string> m_metadata;
};

struct TensorToWrite {
    std::string name;
    std::vector<int64_t> shape;
    const float* data = nullptr; // numel floats (fp32 in memory)
};

// Writes a safetensors file storing the tensors as F32, F16 or BF16 (round to nearest
// even), through a temporary file in the same folder that is renamed over `path`.
void writeSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, DType storeAs = DType::F32);

} // namespace mythos
