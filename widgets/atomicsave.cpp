#include "atomicsave.h"

namespace mx {

bool AtomicFile::fail() {
    m_reason = m_file.errorString();
    return false;
}

bool AtomicFile::open() { return m_file.open(QIODevice::WriteOnly) || fail(); }

bool AtomicFile::write(const QByteArray& bytes) {
    if (m_file.write(bytes) == bytes.size())
        return true;
    fail(); // the reason before cancelling
    m_file.cancelWriting();
    return false;
}

bool AtomicFile::commit() { return m_file.commit() || fail(); }

bool saveAtomically(const QString& path, const QByteArray& bytes, QString* reason) {
    AtomicFile f(path);
    if (f.open() && f.write(bytes) && f.commit())
        return true;
    if (reason)
        *reason = f.errorString();
    return false;
}

} // namespace mx
