#include "interventiondialog.h"

#include <QDialogButtonBox>
#include <QFile>
#include <QFileDialog>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QLabel>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include "atomicsave.h"
#include "mythos/errors.h"
#include "mythos/intervention.h"

namespace mx {

namespace {

// Parses and checks the text; the intervention or the reason it is not one.
bool parseText(const QString& text, const mythos::Config& config, mythos::Intervention* out, QString* error) {
    try {
        const nlohmann::json j = nlohmann::json::parse(text.toStdString());
        mythos::Intervention iv = mythos::interventionFromJson(j);
        mythos::checkIntervention(iv, config);
        if (out)
            *out = std::move(iv);
        return true;
    } catch (const nlohmann::json::exception& e) {
        if (error)
            *error = QObject::tr("Not valid JSON: %1").arg(QString::fromStdString(mythos::jsonErrorDetail(e)));
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromStdString(mythos::errorMessage(e));
    }
    return false;
}

} // namespace

QString InterventionDialog::templateText(const mythos::Config& c) {
    // Every field with a value that changes nothing, so that editing one is all it takes.
    Q_UNUSED(c);
    return QStringLiteral(R"({
  "schema": "mythos-intervention/1",
  "name": "my intervention",
  "ablate_experts": [],
  "ablate_heads": [],
  "lora_scale_zero": false,
  "loop_shift": 0
}
)");
}

InterventionDialog::InterventionDialog(const mythos::Config& config, QWidget* parent)
    : QDialog(parent), m_config(config) {
    setWindowTitle(tr("Compare with an intervention"));
    auto* lay = new QVBoxLayout(this);
    auto* help = new QLabel(
        tr("<p>The open model, modified, runs next to the original on the same prompt. Fields "
           "(docs/inside-the-loop.md):</p><ul>"
           "<li><code>\"ablate_experts\": [{\"expert\": 2, \"loop\": 3}]</code> (loop 0: every loop; the other "
           "selected experts' gates are renormalised)</li>"
           "<li><code>\"ablate_heads\": [{\"stage\": \"recurrent\", \"layer\": 0, \"head\": 1, \"loop\": 0}]</code> "
           "(stage prelude, recurrent or coda)</li>"
           "<li><code>\"exit\": {\"loop\": 3}</code> or <code>{\"at\": \"convergence\"}</code>: every token's "
           "output is its state at that loop</li>"
           "<li><code>\"injection_off_after\": 2</code>: no B·e after loop 2</li>"
           "<li><code>\"lora_scale_zero\": true</code>, <code>\"loop_shift\": 2</code></li>"
           "<li><code>\"patch\": {\"token\": 5, \"loop\": 2, \"prompt\": \"...\"}</code>: token 5's state after "
           "loop 2 taken from a second prompt</li></ul><p>This model has %1 routed experts, %2 heads, %3 prelude "
           "and %4 coda layers.</p>")
            .arg(config.n_experts)
            .arg(config.n_heads)
            .arg(config.prelude_layers)
            .arg(config.coda_layers),
        this);
    help->setWordWrap(true);
    help->setTextFormat(Qt::RichText);
    lay->addWidget(help);
    m_edit = new QPlainTextEdit(this);
    m_edit->setObjectName("interventionText");
    m_edit->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_edit->setMinimumSize(520, 220);
    lay->addWidget(m_edit, 1);
    m_status = new QLabel(this);
    m_status->setObjectName("interventionStatus");
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
    lay->addWidget(m_status);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_ok = buttons->button(QDialogButtonBox::Ok);
    m_ok->setText(tr("Compare"));
    auto* load = buttons->addButton(tr("Load..."), QDialogButtonBox::ActionRole);
    auto* save = buttons->addButton(tr("Save..."), QDialogButtonBox::ActionRole);
    lay->addWidget(buttons);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(m_edit, &QPlainTextEdit::textChanged, this, &InterventionDialog::check);
    connect(load, &QPushButton::clicked, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, tr("Load an intervention"), QString(),
                                                       tr("Interventions (*.json);;All files (*)"));
        QString error;
        if (!f.isEmpty() && !loadFile(f, &error))
            QMessageBox::warning(this, tr("Could not load the intervention"), error);
    });
    connect(save, &QPushButton::clicked, this, [this] {
        QString error;
        if (!valid(&error)) {
            QMessageBox::warning(this, tr("Not saved"), error);
            return;
        }
        const QString f = QFileDialog::getSaveFileName(
            this, tr("Save the intervention"), QStringLiteral("intervention.json"), tr("Interventions (*.json)"));
        if (!f.isEmpty() && !saveFile(f, &error))
            QMessageBox::warning(this, tr("Could not save the intervention"), error);
    });
    setText(templateText(config));
}

QString InterventionDialog::text() const { return m_edit->toPlainText(); }
void InterventionDialog::setText(const QString& text) { m_edit->setPlainText(text); }

bool InterventionDialog::valid(QString* error) const { return parseText(text(), m_config, nullptr, error); }

QString InterventionDialog::json() const {
    mythos::Intervention iv;
    if (!parseText(text(), m_config, &iv, nullptr))
        return {};
    return QString::fromStdString(mythos::interventionToJson(iv).dump());
}

void InterventionDialog::check() {
    QString error;
    mythos::Intervention iv;
    const bool ok = parseText(text(), m_config, &iv, &error);
    m_ok->setEnabled(ok && !iv.empty());
    if (!ok)
        m_status->setText(tr("<span style='color:#a01e14'>%1</span>").arg(error.toHtmlEscaped()));
    else if (iv.empty())
        m_status->setText(tr("Changes nothing yet: edit a field."));
    else
        m_status->setText(tr("Will run: %1").arg(QString::fromStdString(iv.describe()).toHtmlEscaped()));
}

bool InterventionDialog::loadFile(const QString& path, QString* error) {
    try {
        const mythos::Intervention iv = mythos::loadIntervention(path.toStdString());
        setText(QString::fromStdString(mythos::interventionToJson(iv).dump(2)) + "\n");
        return true;
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromStdString(mythos::errorMessage(e));
        return false;
    }
}

bool InterventionDialog::saveFile(const QString& path, QString* error) const {
    mythos::Intervention iv;
    if (!parseText(text(), m_config, &iv, error))
        return false;
    const QByteArray bytes = QByteArray::fromStdString(mythos::interventionToJson(iv).dump(2) + "\n");
    return saveAtomically(path, bytes, error);
}

} // namespace mx
