#pragma once
// The colours every chart and view shares.
#include <QColor>

namespace mx {

// Shared palette: a sequential colour map (0..1) and fixed status colours.
QColor sequentialColor(double t); // viridis-like, t in [0, 1]
QColor categoricalColor(int i);
inline QColor neverHaltedColor() { return QColor(200, 40, 40); }

} // namespace mx
