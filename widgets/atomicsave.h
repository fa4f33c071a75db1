#pragma once
// Writing a file so that readers see the old or the new contents, never a half-written one:
// QSaveFile writes "path.XXXXXX" next to the target and renames it over the target only on
// commit(); its destructor removes the temporary file on every early return.
#include <QByteArray>
#include <QSaveFile>
#include <QString>

namespace mx {

// A file written through a device (a PDF writer, say) and then committed. Each step returns
// false on failure, with the reason in errorString().
class AtomicFile {
public:
    explicit AtomicFile(const QString& path) : m_file(path) {}
    bool open();
    bool write(const QByteArray& bytes); // cancels the file when not every byte was written
    bool commit();
    QIODevice* device() { return &m_file; }
    QString fileName() const { return m_file.fileName(); }
    QString errorString() const { return m_reason; }

private:
    bool fail();
    QSaveFile m_file;
    QString m_reason;
};

// Writes `bytes` to `path` in one step; false with the reason in `*reason` on failure.
bool saveAtomically(const QString& path, const QByteArray& bytes, QString* reason);

} // namespace mx
