#include <algorithm>
#include <system_error>

#include "mythos/fileio.h"

// core/CMakeLists.txt defines both for this file only.
#ifndef MYTHOS_SOURCE_DIR
#error "MYTHOS_SOURCE_DIR must be defined"
#endif
#ifndef MYTHOS_BINARY_DIR
#error "MYTHOS_BINARY_DIR must be defined"
#endif

namespace mythos {

namespace fs = std::filesystem;

fs::path buildSourceTree() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec || exe.empty())
        return {};
    const fs::path bin = fs::weakly_canonical(fs::path(MYTHOS_BINARY_DIR), ec);
    if (ec || bin.empty())
        return {};
    const fs::path dir = fs::weakly_canonical(exe, ec).parent_path();
    if (ec)
        return {};
    // `dir` is `bin` or below it, compared component by component (so /b/build2 is not
    // inside /b/build).
    auto d = dir.begin();
    for (auto b = bin.begin(); b != bin.end(); ++b, ++d) {
        if (b->empty()) // a trailing separator
            continue;
        if (d == dir.end() || *d != *b)
            return {};
    }
    return fs::path(MYTHOS_SOURCE_DIR);
}

} // namespace mythos
