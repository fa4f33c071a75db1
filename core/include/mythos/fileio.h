#pragma once
// Whole-file reads with a size cap, and atomic writes (temp file in the same folder, then
// rename), so that nothing the user saved is ever half-written.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace mythos {

enum class PathKind { Missing, File, Folder, Other };
// What is at `path` (following symlinks): Missing when nothing is, else its kind. A path
// that cannot be looked at (a symlink loop, no permission, a name too long) is a FileError
// naming it, in words rather than the standard library's "filesystem error: ..." text.
PathKind pathKind(const std::filesystem::path& path);

// Reads a whole file; FileError naming the file when it cannot be read or is larger
// than maxBytes.
std::string readTextFile(const std::filesystem::path& path, uint64_t maxBytes = 64ull << 20);

// Writes `bytes` to `path` atomically: a temporary file next to it is written, flushed
// and renamed over `path`. On failure the temporary file is removed, `path` is untouched
// and a FileError naming `path` is thrown.
void writeFileAtomic(const std::filesystem::path& path, std::string_view bytes);

// Calls fn(lineNo, line) for every line of `text`: numbered from 1, split at '\n' with a '\r'
// before it dropped (CRLF files read the same), the last line counted without a final '\n'.
template <class Fn>
void forEachLine(std::string_view text, Fn&& fn) {
    std::size_t lineNo = 0;
    for (std::size_t at = 0; at < text.size();) {
        std::size_t eol = text.find('\n', at);
        if (eol == std::string_view::npos)
            eol = text.size();
        std::string_view line = text.substr(at, eol - at);
        at = eol + 1;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        fn(++lineNo, line);
    }
}

// Same, for a writer callback that streams into the temporary file's path.
class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path target);
    ~AtomicFile(); // removes the temporary file unless commit() succeeded
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    const std::filesystem::path& tempPath() const { return m_temp; }
    const std::filesystem::path& target() const { return m_target; }
    void commit(); // fsync + rename; FileError on failure

private:
    std::filesystem::path m_target;
    std::filesystem::path m_temp;
    bool m_committed = false;
};

// The source tree of the build this program was compiled in, when the running executable
// sits inside that build's binary folder (a developer build and its tests); empty for an
// installed or copied executable, which must find its data under its own prefix
// (<bindir>/../share/mythos-explorer) and never in the source tree (core/src/buildtree.cpp).
std::filesystem::path buildSourceTree();

} // namespace mythos
