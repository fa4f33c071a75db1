#include "mythos/fileio.h"

#include "mythos/errors.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <random>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mythos {
namespace fs = std::filesystem;

namespace {

std::string errnoText(int err) { return std::system_category().message(err); }

class Fd {
public:
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return m_fd; }
    int reset() // returns close()'s result so writers can see delayed write errors
    {
        int rc = 0;
        if (m_fd >= 0)
            rc = ::close(m_fd);
        m_fd = -1;
        return rc;
    }

private:
    int m_fd;
};

uint64_t randomBits() {
    uint64_t r = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    r ^= static_cast<uint64_t>(::getpid()) << 40;
    try {
        std::random_device rd;
        r ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {
        // No entropy source: the clock and pid still make a clash unlikely, and O_EXCL
        // turns a clash into a retry rather than a shared file.
    }
    return r;
}

} // namespace

PathKind pathKind(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0)
        return S_ISDIR(st.st_mode) ? PathKind::Folder : S_ISREG(st.st_mode) ? PathKind::File : PathKind::Other;
    const int err = errno;
    if (err == ENOENT)
        return PathKind::Missing;
    if (err == ENOTDIR) // a parent is a file
        return PathKind::Missing;
    if (err == ELOOP)
        throw FileError(path.string() + ": too many levels of symbolic links (a symlink loop?)");
    throw FileError(path.string() + ": cannot look at the path: " + errnoText(err));
}

std::string readTextFile(const fs::path& path, uint64_t maxBytes) {
    const std::string name = path.string();
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0)
        throw FileError(name + ": cannot open the file: " + errnoText(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw FileError(name + ": cannot read the file: " + errnoText(errno));
    if (S_ISDIR(st.st_mode))
        throw FileError(name + ": is a folder, not a file");
    if (!S_ISREG(st.st_mode))
        throw FileError(name + ": is not a regular file");
    auto tooLarge = [&](uint64_t size) {
        return FileError(name + ": the file is too large (" + std::to_string(size) + " bytes; the limit is " +
                         std::to_string(maxBytes) + " bytes)");
    };
    if (static_cast<uint64_t>(st.st_size) > maxBytes)
        throw tooLarge(static_cast<uint64_t>(st.st_size));

    // Read until EOF rather than trusting st_size: the file may grow meanwhile, and some
    // (e.g. /proc) report 0.
    std::string out;
    out.reserve(static_cast<std::size_t>(st.st_size));
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw FileError(name + ": cannot read the file: " + errnoText(errno));
        }
        if (n == 0)
            break;
        if (out.size() + static_cast<uint64_t>(n) > maxBytes)
            throw tooLarge(out.size() + static_cast<uint64_t>(n));
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

AtomicFile::AtomicFile(fs::path target) : m_target(std::move(target)) {
    const std::string name = m_target.string();
    const std::string fileName = m_target.filename().string();
    if (fileName.empty() || fileName == "." || fileName == "..")
        throw FileError(name + ": is not a file name");
    const fs::path dir = m_target.parent_path();

    // Keep the mode of a file we replace, so saving never widens its permissions.
    mode_t mode = 0644;
    struct stat st {};
    if (::stat(m_target.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode))
            throw FileError(name + ": is a folder, cannot write a file there");
        mode = st.st_mode & 07777;
    }

    int err = 0;
    for (int attempt = 0; attempt < 16; ++attempt) {
        char suffix[17];
        std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(randomBits()));
        fs::path temp = dir / ("." + fileName + ".tmp-" + suffix);
        int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0) {
            ::fchmod(fd, mode); // open() applied the umask
            ::close(fd);
            m_temp = std::move(temp);
            return;
        }
        err = errno;
        if (err != EEXIST)
            break;
    }
    const std::string where = dir.empty() ? std::string(".") : dir.string();
    throw FileError(name + ": cannot create a temporary file in '" + where + "' to write it: " + errnoText(err));
}

AtomicFile::~AtomicFile() {
    if (!m_committed && !m_temp.empty()) {
        std::error_code ec;
        fs::remove(m_temp, ec);
    }
}

void AtomicFile::commit() {
    const std::string name = m_target.string();
    if (m_committed)
        throw FileError(name + ": the file was already committed");
    {
        Fd fd(::open(m_temp.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.get() < 0)
            throw FileError(name + ": cannot reopen the temporary file " + m_temp.string() + ": " + errnoText(errno));
        if (::fsync(fd.get()) != 0)
            throw FileError(name + ": cannot flush the file to disk: " + errnoText(errno));
    }
    if (::rename(m_temp.c_str(), m_target.c_str()) != 0)
        throw FileError(name + ": cannot replace the file: " + errnoText(errno));
    m_committed = true;

    // Make the rename itself durable; failure here cannot undo the save, so it is ignored.
    const fs::path dir = m_target.parent_path().empty() ? fs::path(".") : m_target.parent_path();
    Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.get() >= 0)
        ::fsync(dfd.get());
}

void writeFileAtomic(const fs::path& path, std::string_view bytes) {
    AtomicFile file(path);
    const std::string name = path.string();
    {
        Fd fd(::open(file.tempPath().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
        if (fd.get() < 0)
            throw FileError(name + ": cannot open the temporary file " + file.tempPath().string() + ": " +
                            errnoText(errno));
        const char* p = bytes.data();
        std::size_t left = bytes.size();
        while (left > 0) {
            ssize_t n = ::write(fd.get(), p, left);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                throw FileError(name + ": cannot write the file: " + errnoText(errno));
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        if (fd.reset() != 0)
            throw FileError(name + ": cannot write the file: " + errnoText(errno));
    }
    file.commit();
}

} // namespace mythos
