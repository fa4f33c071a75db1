#pragma once
// The data behind a chart, as a table: what CSV/JSON export writes and what tests read.
#include <QString>
#include <QStringList>
#include <QVariant>
#include <QVector>

namespace mx {

struct DataTable {
    QString title;
    QStringList columns;
    QVector<QVector<QVariant>> rows; // each row has columns.size() cells

    void addRow(QVector<QVariant> row) { rows.push_back(std::move(row)); }
    // RFC 4180 CSV (header line + one line per row; numbers with full precision).
    QByteArray toCsv() const;
    // {"title": ..., "columns": [...], "rows": [[...], ...]}
    QByteArray toJson() const;
};

} // namespace mx
