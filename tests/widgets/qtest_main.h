#pragma once
// QTEST_MAIN with an offscreen platform when none is set, so the tests run without a display.
#include <QApplication>
#include <QtTest>
#include <cstdlib>

#define MX_QTEST_MAIN(TestClass)                                   \
    int main(int argc, char** argv) {                              \
        if (!std::getenv("QT_QPA_PLATFORM"))                       \
            setenv("QT_QPA_PLATFORM", "offscreen", 0);             \
        QApplication app(argc, argv);                              \
        app.setAttribute(Qt::AA_Use96Dpi, true);                   \
        TestClass tc;                                              \
        QTEST_SET_MAIN_SOURCE_PATH                                 \
        return QTest::qExec(&tc, argc, argv);                      \
    }
