#pragma once
// QTEST_MAIN with an offscreen platform when none is set, so the tests run without a display.
#include <QApplication>
#include <QtTest>
#include <cstdlib>

#include <QDir>
#include <QFile>
#include <QSignalSpy>

// Waits until `spy` has a recorded emission (one already recorded counts: QSignalSpy::wait
// only counts emissions after it starts, and signals from a worker thread may have arrived).
inline bool waitForSignal(QSignalSpy& spy, int timeoutMs) {
    const auto before = spy.count();
    return before > 0 || QTest::qWaitFor([&] { return spy.count() > before; }, timeoutMs);
}

// The bytes of a file (empty when it cannot be read).
inline QByteArray readAll(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

// Everything in the folder, hidden files included: QSaveFile's temporaries are "name.XXXXXX".
inline QStringList entries(const QString& dir) {
    return QDir(dir).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden | QDir::System, QDir::Name);
}

#define MX_QTEST_MAIN(TestClass)                                                                                       \
    int main(int argc, char** argv) {                                                                                  \
        if (!std::getenv("QT_QPA_PLATFORM"))                                                                           \
            setenv("QT_QPA_PLATFORM", "offscreen", 0);                                                                 \
        QApplication app(argc, argv);                                                                                  \
        app.setAttribute(Qt::AA_Use96Dpi, true);                                                                       \
        TestClass tc;                                                                                                  \
        QTEST_SET_MAIN_SOURCE_PATH                                                                                     \
        return QTest::qExec(&tc, argc, argv);                                                                          \
    }
