#include "datatable.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLocale>

namespace mx {

namespace {
QString csvCell(const QVariant& v) {
    QString s;
    if (v.typeId() == QMetaType::Double || v.typeId() == QMetaType::Float)
        s = QString::number(v.toDouble(), 'g', QLocale::FloatingPointShortest);
    else
        s = v.toString();
    if (s.contains(',') || s.contains('"') || s.contains('\n') || s.contains('\r'))
        s = '"' + s.replace('"', "\"\"") + '"';
    return s;
}
} // namespace

QByteArray DataTable::toCsv() const {
    QString out;
    QStringList header;
    for (const auto& c : columns)
        header << csvCell(c);
    out += header.join(',') + "\r\n";
    for (const auto& row : rows) {
        QStringList cells;
        for (const auto& v : row)
            cells << csvCell(v);
        out += cells.join(',') + "\r\n";
    }
    return out.toUtf8();
}

QByteArray DataTable::toJson() const {
    QJsonArray cols, rs;
    for (const auto& c : columns)
        cols.append(c);
    for (const auto& row : rows) {
        QJsonArray r;
        for (const auto& v : row)
            r.append(QJsonValue::fromVariant(v));
        rs.append(r);
    }
    QJsonObject o{{"title", title}, {"columns", cols}, {"rows", rs}};
    return QJsonDocument(o).toJson(QJsonDocument::Indented);
}

} // namespace mx
