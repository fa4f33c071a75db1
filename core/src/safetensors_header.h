#pragma once
// The safetensors header, read from a file's bytes (safetensors_header.cpp): the 8-byte
// little-endian length, then the JSON streamed into TensorInfo records and checked against
// the file's real size before anything is allocated for the tensors. SafetensorsFile::open
// maps the file and hands its bytes here. Internal to core; the tests reach it through
// mythos::core_internal.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mythos/safetensors.h"

namespace mythos::detail {

// Most dimensions a tensor may have, read or written.
inline constexpr std::size_t kMaxDims = 8;

// A file's header as read: its tensors in file order (by data offsets), each name's index
// in `tensors`, the "__metadata__" strings, and the offset of the data section
// (8 + the header length).
struct SafetensorsHeader {
    std::size_t dataStart = 0;
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::size_t> index;
    std::map<std::string, std::string> metadata;
};

// Reads and checks the header of the `fileSize` bytes at `bytes`, a file named `file` in
// the messages: the length within the file and at most 100 MiB, valid JSON without NUL
// bytes but for trailing padding, known fields of the right types, offsets inside the data
// section, sizes equal to numel * dtype size, no name twice, no overlapping tensors.
// Throws FormatError "<file>: ..." at the first problem (ArgumentError when fileSize < 8:
// SafetensorsFile::open rejects such files before mapping them).
SafetensorsHeader readSafetensorsHeader(const std::string& file, const unsigned char* bytes, uint64_t fileSize);

// The DType of a dtype name as the header spells it ("F32", "BF16"...); Other when unknown.
DType dtypeFromName(std::string_view s);

// Names come from untrusted files: keep messages short and printable. Text that
// nlohmann::json has not validated as UTF-8 (parse errors) is reduced to ASCII.
std::string printable(std::string_view s, std::size_t maxLen = 120, bool asciiOnly = false);
// printable(s) in single quotes.
std::string quotedName(std::string_view s);
// "[b, e]"
std::string offsetsText(uint64_t b, uint64_t e);
// The product of the dims into `out`, or false on overflow or a negative dim.
bool checkedNumel(const std::vector<int64_t>& shape, int64_t& out);

} // namespace mythos::detail
