#pragma once
// Writing an intervention (docs/inside-the-loop.md) to compare the open model with: a JSON
// editor that starts from a template of every field, checks the text as it is typed against
// the open model's config (OK only when it is valid), and loads and saves intervention files
// (saved atomically).
#include <QDialog>
#include <QString>

#include "mythos/config.h"

QT_BEGIN_NAMESPACE
class QLabel;
class QPlainTextEdit;
class QPushButton;
QT_END_NAMESPACE

namespace mx {

class InterventionDialog : public QDialog {
    Q_OBJECT
public:
    InterventionDialog(const mythos::Config& config, QWidget* parent = nullptr);

    // The editor's text, and whether it is a valid intervention for the config (else `error`).
    QString text() const;
    void setText(const QString& text);
    bool valid(QString* error = nullptr) const;
    // The intervention as compact JSON (valid() first).
    QString json() const;
    bool loadFile(const QString& path, QString* error);
    bool saveFile(const QString& path, QString* error) const;

    // A template naming every field, valid for `config` (changes nothing until edited).
    static QString templateText(const mythos::Config& config);

private:
    void check();

    mythos::Config m_config;
    QPlainTextEdit* m_edit = nullptr;
    QLabel* m_status = nullptr;
    QPushButton* m_ok = nullptr;
};

} // namespace mx
