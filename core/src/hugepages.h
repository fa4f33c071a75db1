// Large weight buffers in transparent huge pages, where the kernel offers them on request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace mythos::detail {

// Resizes v to n value-initialised elements, having asked for huge pages for the bytes
// before anything touches them. A 4 GiB model in 4 KiB pages takes a million page faults to fill (about 11 s of system
// time for mythos_1b's random initialisation) and as many TLB entries to read; 2 MiB pages
// take 512 times fewer. Only whole 2 MiB blocks inside the buffer are advised; small buffers
// and kernels without the feature are left alone (madvise's failure changes nothing).
template <class T>
void resizeInHugePages(std::vector<T>& v, std::size_t n) {
    v.reserve(n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
    if (n * sizeof(T) >= 2 * kHuge) {
        const auto begin = reinterpret_cast<std::uintptr_t>(v.data());
        const std::uintptr_t first = (begin + kHuge - 1) / kHuge * kHuge;
        const std::uintptr_t last = (begin + n * sizeof(T)) / kHuge * kHuge;
        if (last > first)
            ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
    }
#endif
    v.resize(n);
}

} // namespace mythos::detail
