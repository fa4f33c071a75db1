// libFuzzer target: arbitrary bytes as a safetensors file must open and read without
// crashing, hanging or allocating more than the file justifies; mythos::Error is the
// only acceptable failure.
#include "mythos/errors.h"
#include "mythos/safetensors.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace {

const std::filesystem::path& scratchPath()
{
    static const std::filesystem::path p = std::filesystem::temp_directory_path() /
                                           ("mythos_fuzz_safetensors_" + std::to_string(::getpid()) + ".safetensors");
    return p;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
    const auto& path = scratchPath();
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f)
        std::abort();
    if (size && std::fwrite(data, 1, size, f) != size)
        std::abort();
    std::fclose(f);

    try {
        auto file = mythos::SafetensorsFile::open(path);
        for (const auto& t : file.tensors()) {
            if (file.find(t.name) != &t)
                std::abort(); // the index must point at the listed entry
            try {
                auto values = file.readF32(t);
                if (values.size() != static_cast<std::size_t>(t.numel()))
                    std::abort();
            } catch (const mythos::Error&) {
            }
            try {
                file.readI64(t);
            } catch (const mythos::Error&) {
            }
        }
    } catch (const mythos::Error&) {
    }
    // Removing (instead of truncating next time) avoids ext4's flush-on-truncate, which
    // otherwise makes every run wait for the disk.
    std::remove(path.c_str());
    return 0;
}
