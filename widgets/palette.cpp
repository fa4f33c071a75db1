#include "palette.h"

#include <algorithm>
#include <cmath>

namespace mx {

QColor sequentialColor(double t) {
    // A compact viridis approximation (5 anchors, linear interpolation).
    static const QColor anchors[] = {QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140), QColor(94, 201, 98),
                                     QColor(253, 231, 37)};
    if (!std::isfinite(t))
        t = 0;
    t = std::clamp(t, 0.0, 1.0) * 4.0;
    const int i = std::min(int(t), 3);
    const double f = t - i;
    const QColor& a = anchors[i];
    const QColor& b = anchors[i + 1];
    return QColor(int(a.red() + f * (b.red() - a.red())), int(a.green() + f * (b.green() - a.green())),
                  int(a.blue() + f * (b.blue() - a.blue())));
}

QColor categoricalColor(int i) {
    static const QColor palette[] = {
        QColor(31, 119, 180), QColor(255, 127, 14),  QColor(44, 160, 44),   QColor(214, 39, 40),  QColor(148, 103, 189),
        QColor(140, 86, 75),  QColor(227, 119, 194), QColor(127, 127, 127), QColor(188, 189, 34), QColor(23, 190, 207)};
    return palette[((i % 10) + 10) % 10];
}

} // namespace mx
