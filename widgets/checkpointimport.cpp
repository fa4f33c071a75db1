#include "checkpointimport.h"

#include <QComboBox>
#include <QCoreApplication>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPointer>
#include <QPushButton>
#include <QStandardPaths>
#include <QTimer>
#include <functional>

#include "mythos/fileio.h"

namespace mx {

namespace {

constexpr int kKillAfterMs = 5000;
constexpr qsizetype kMaxStderr = 1 << 16; // what is kept of the tool's stderr
const QByteArray kErrorPrefix = "export_checkpoint: error: ";
const QByteArray kNotePrefix = "export_checkpoint: note: ";

QString envPath(const char* name) { return QString::fromLocal8Bit(qgetenv(name)); }

} // namespace

CheckpointImport::CheckpointImport(QObject* parent) : QObject(parent) {}

CheckpointImport::~CheckpointImport() {
    if (!running())
        return;
    m_process->disconnect(this);
    // SIGTERM first: the tool then removes its temporary file and a folder it created.
    m_process->terminate();
    if (!m_process->waitForFinished(3000)) {
        m_process->kill();
        m_process->waitForFinished(1000);
    }
}

QString CheckpointImport::defaultPython() {
    if (const QString env = envPath("MYTHOS_PYTHON"); !env.isEmpty())
        return env;
    if (QFileInfo(QStringLiteral("/usr/bin/python3")).isExecutable())
        return QStringLiteral("/usr/bin/python3");
    const QString found = QStandardPaths::findExecutable(QStringLiteral("python3"));
    return found.isEmpty() ? QStringLiteral("python3") : found;
}

QString CheckpointImport::findTool(const QString& appDir) {
    if (const QString env = envPath("MYTHOS_EXPORT_TOOL"); !env.isEmpty())
        return env;
    const QString dir = appDir.isEmpty() ? QCoreApplication::applicationDirPath() : appDir;
    // Installed (tools/CMakeLists.txt installs it beside the demo models' share folder),
    // then the source tree when this executable runs from its build folder (never for an
    // installed one).
    QStringList candidates = {dir + "/../share/mythos-explorer/tools/export_checkpoint.py"};
    if (const auto src = mythos::buildSourceTree(); !src.empty())
        candidates << QString::fromStdString((src / "tools/export_checkpoint.py").string());
    for (const QString& c : candidates)
        if (QFileInfo(c).isFile())
            return QDir::cleanPath(QFileInfo(c).absoluteFilePath());
    return {};
}

QString CheckpointImport::defaultOutDir(const QString& checkpoint) {
    const QFileInfo fi(checkpoint);
    const QString base = fi.absoluteDir().filePath(fi.completeBaseName() + "_mythos");
    QString out = base;
    for (int i = 2; QFileInfo::exists(out); ++i)
        out = base + "_" + QString::number(i);
    return out;
}

QString CheckpointImport::tokenizerBeside(const QString& checkpoint) {
    const QDir dir = QFileInfo(checkpoint).absoluteDir();
    if (QFileInfo(dir.filePath("tokenizer.json")).isFile())
        return dir.filePath("tokenizer.json");
    const QStringList tik = dir.entryList({"*.tiktoken"}, QDir::Files, QDir::Name);
    return tik.size() == 1 ? dir.filePath(tik.first()) : QString();
}

bool CheckpointImport::parseProgress(const QByteArray& line, Progress* out) {
    static const QByteArray prefix = "progress ";
    if (!line.startsWith(prefix))
        return false;
    const QByteArray rest = line.mid(prefix.size()).trimmed();
    const qsizetype s1 = rest.indexOf(' ');
    if (s1 <= 0)
        return false;
    qsizetype s2 = rest.indexOf(' ', s1 + 1);
    if (s2 < 0)
        s2 = rest.size();
    bool ok1 = false, ok2 = false;
    const qint64 done = rest.left(s1).toLongLong(&ok1);
    const qint64 total = rest.mid(s1 + 1, s2 - s1 - 1).toLongLong(&ok2);
    if (!ok1 || !ok2 || done < 0 || total < 0 || (total > 0 && done > total))
        return false;
    out->done = done;
    out->total = total;
    out->text = QString::fromUtf8(rest.mid(s2 + 1));
    return true;
}

bool CheckpointImport::running() const { return m_process && m_process->state() != QProcess::NotRunning; }

void CheckpointImport::fail(const QString& error) {
    m_done = true;
    emit failed(error);
}

void CheckpointImport::start(const CheckpointImportOptions& options) {
    if (running()) {
        emit failed(tr("An import is already running."));
        return;
    }
    if (m_process) {
        m_process->deleteLater();
        m_process = nullptr;
    }
    m_options = options;
    m_stdout.clear();
    m_stderr.clear();
    m_notes.clear();
    m_cancelling = false;
    m_done = false;
    m_program = options.python.isEmpty() ? defaultPython() : options.python;
    if (!QFileInfo(options.checkpoint).isFile())
        return fail(tr("%1: no such file").arg(options.checkpoint));
    if (options.outDir.isEmpty())
        return fail(tr("No folder to write the model to was given."));
    const QString tool = options.tool.isEmpty() ? findTool() : options.tool;
    if (tool.isEmpty())
        return fail(tr("export_checkpoint.py was not found (looked in the installed "
                       "share/mythos-explorer/tools and in the source tree); set MYTHOS_EXPORT_TOOL to its path."));
    if (!QFileInfo(tool).isFile())
        return fail(tr("%1: no such file (the checkpoint converter, export_checkpoint.py)").arg(tool));
    m_arguments = {tool, "--state-dict", options.checkpoint, "--out", options.outDir, "--dtype", options.dtype};
    if (!options.tokenizer.isEmpty())
        m_arguments << "--tokenizer" << options.tokenizer;

    m_process = new QProcess(this);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("PYTHONUNBUFFERED", "1");
    env.insert("PYTHONDONTWRITEBYTECODE", "1"); // no __pycache__ in an installed tools folder
    m_process->setProcessEnvironment(env);
    connect(m_process, &QProcess::readyReadStandardOutput, this, &CheckpointImport::onStdout);
    connect(m_process, &QProcess::readyReadStandardError, this, &CheckpointImport::onStderr);
    connect(m_process, &QProcess::finished, this, &CheckpointImport::onFinished);
    connect(m_process, &QProcess::errorOccurred, this, &CheckpointImport::onError);
    emit progress(0, 0, tr("starting %1").arg(QFileInfo(m_program).fileName()));
    m_process->start(m_program, m_arguments);
}

void CheckpointImport::cancel() {
    if (!running() || m_cancelling)
        return;
    m_cancelling = true;
    m_process->terminate();
    QPointer<QProcess> p = m_process;
    QTimer::singleShot(kKillAfterMs, m_process, [p] {
        if (p && p->state() != QProcess::NotRunning)
            p->kill();
    });
}

void CheckpointImport::onStdout() {
    m_stdout += m_process->readAllStandardOutput();
    qsizetype nl;
    while ((nl = m_stdout.indexOf('\n')) >= 0) {
        const QByteArray line = m_stdout.left(nl);
        m_stdout.remove(0, nl + 1);
        Progress p;
        if (parseProgress(line, &p))
            emit progress(p.done, p.total, p.text);
    }
}

void CheckpointImport::onStderr() {
    m_stderr += m_process->readAllStandardError();
    if (m_stderr.size() > kMaxStderr) // keep the end, where the error is
        m_stderr.remove(0, m_stderr.size() - kMaxStderr);
}

void CheckpointImport::onError(QProcess::ProcessError error) {
    if (error != QProcess::FailedToStart || m_done)
        return; // other errors end in finished()
    fail(tr("Importing a PyTorch checkpoint runs Python 3 with PyTorch, and %1 could not be started (%2). "
            "Install the Debian packages python3 and python3-torch, or set MYTHOS_PYTHON to a Python that has torch.")
             .arg(m_program, m_process->errorString()));
}

QString CheckpointImport::errorFromStderr(int code) const {
    const QList<QByteArray> lines = m_stderr.split('\n');
    if (code == kExitNoTorch || m_stderr.contains("No module named 'torch'"))
        return tr("Importing a PyTorch checkpoint needs PyTorch, which %1 does not have. Install the Debian "
                  "package python3-torch, or set MYTHOS_PYTHON to a Python that has torch.")
            .arg(m_program);
    for (auto it = lines.crbegin(); it != lines.crend(); ++it)
        if (it->startsWith(kErrorPrefix))
            return QString::fromUtf8(it->mid(kErrorPrefix.size())).trimmed();
    for (auto it = lines.crbegin(); it != lines.crend(); ++it)
        if (!it->trimmed().isEmpty() && !it->startsWith(kNotePrefix))
            return tr("The checkpoint converter failed (exit status %1): %2")
                .arg(code)
                .arg(QString::fromUtf8(it->trimmed()));
    return tr("The checkpoint converter failed with exit status %1 and said nothing.").arg(code);
}

void CheckpointImport::onFinished(int code, QProcess::ExitStatus status) {
    m_stdout += m_process->readAllStandardOutput();
    if (!m_stdout.isEmpty() && !m_stdout.endsWith('\n'))
        m_stdout += '\n';
    onStdout();
    onStderr();
    for (const QByteArray& line : m_stderr.split('\n'))
        if (line.startsWith(kNotePrefix))
            m_notes << QString::fromUtf8(line.mid(kNotePrefix.size())).trimmed();
    if (m_done)
        return;
    m_done = true;
    if (m_cancelling) {
        emit cancelled();
    } else if (status == QProcess::CrashExit) {
        emit failed(tr("The checkpoint converter stopped unexpectedly (%1).").arg(m_process->errorString()));
    } else if (code != 0) {
        emit failed(errorFromStderr(code));
    } else if (!QFileInfo(QDir(m_options.outDir).filePath("config.json")).isFile()) {
        emit failed(tr("The checkpoint converter ended without writing %1.")
                        .arg(QDir(m_options.outDir).filePath("config.json")));
    } else {
        emit finished(m_options.outDir);
    }
}

// ---- dialog ----

CheckpointImportDialog::CheckpointImportDialog(const QString& checkpoint, QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Import a PyTorch checkpoint"));
    auto* form = new QFormLayout(this);
    auto row = [this](QLineEdit* edit, const std::function<QString()>& browse) {
        auto* w = new QWidget(this);
        auto* h = new QHBoxLayout(w);
        h->setContentsMargins(0, 0, 0, 0);
        h->addWidget(edit, 1);
        auto* b = new QPushButton(tr("Browse..."), w);
        h->addWidget(b);
        connect(b, &QPushButton::clicked, this, [edit, browse] {
            const QString chosen = browse();
            if (!chosen.isEmpty())
                edit->setText(chosen);
        });
        return w;
    };
    m_checkpoint = new QLineEdit(checkpoint, this);
    m_checkpoint->setMinimumWidth(420);
    form->addRow(tr("Checkpoint (.pt):"), row(m_checkpoint, [this] {
                     return QFileDialog::getOpenFileName(this, tr("PyTorch checkpoint"), m_checkpoint->text(),
                                                         tr("PyTorch checkpoints (*.pt *.pth *.ckpt);;All files (*)"));
                 }));
    m_out = new QLineEdit(this);
    form->addRow(tr("Model folder to write:"), row(m_out, [this] {
                     return QFileDialog::getSaveFileName(this, tr("Model folder to write"), m_out->text());
                 }));
    m_tokenizer = new QLineEdit(this);
    form->addRow(tr("Tokenizer:"), row(m_tokenizer, [this] {
                     return QFileDialog::getOpenFileName(this, tr("Tokenizer the model was trained with"),
                                                         QFileInfo(m_checkpoint->text()).absolutePath(),
                                                         tr("Tokenizers (tokenizer.json *.json *.tiktoken)"));
                 }));
    m_tokenizerNote = new QLabel(this);
    m_tokenizerNote->setWordWrap(true);
    form->addRow(QString(), m_tokenizerNote);
    m_dtype = new QComboBox(this);
    m_dtype->addItem(tr("f32: the checkpoint's numbers"), QStringLiteral("f32"));
    m_dtype->addItem(tr("bf16: half the size on disk"), QStringLiteral("bf16"));
    form->addRow(tr("Weights:"), m_dtype);
    auto* note = new QLabel(tr("The config comes from the checkpoint's cfg; the optimizer state is not read. "
                               "Runs export_checkpoint.py with %1.")
                                .arg(CheckpointImport::defaultPython()),
                            this);
    note->setWordWrap(true);
    form->addRow(note);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Import"));
    form->addRow(buttons);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto validate = [this, buttons] {
        buttons->button(QDialogButtonBox::Ok)
            ->setEnabled(QFileInfo(m_checkpoint->text()).isFile() && !m_out->text().trimmed().isEmpty());
    };
    connect(m_checkpoint, &QLineEdit::textChanged, this, &CheckpointImportDialog::checkpointChanged);
    connect(m_tokenizer, &QLineEdit::textChanged, this, &CheckpointImportDialog::checkpointChanged);
    connect(m_checkpoint, &QLineEdit::textChanged, this, validate);
    connect(m_out, &QLineEdit::textChanged, this, validate);
    checkpointChanged();
    validate();
}

void CheckpointImportDialog::checkpointChanged() {
    const QString ckpt = m_checkpoint->text().trimmed();
    // Follow the checkpoint with the suggested folder until the user types another.
    if (m_out->text() == m_suggestedOut && !ckpt.isEmpty()) {
        m_suggestedOut = CheckpointImport::defaultOutDir(ckpt);
        m_out->setText(m_suggestedOut);
    }
    if (!m_tokenizer->text().trimmed().isEmpty()) {
        m_tokenizerNote->setText(tr("Copied into the model folder."));
        return;
    }
    const QString beside = ckpt.isEmpty() ? QString() : CheckpointImport::tokenizerBeside(ckpt);
    m_tokenizer->setPlaceholderText(beside.isEmpty() ? tr("none beside the checkpoint") : QFileInfo(beside).fileName());
    m_tokenizerNote->setText(
        beside.isEmpty() ? tr("No tokenizer.json or .tiktoken beside the checkpoint: give the one the model was "
                              "trained with (the reference trainer's is openai/gpt-oss-20b's tokenizer.json), "
                              "or text is encoded as bytes.")
                         : tr("%1 beside the checkpoint is copied.").arg(QFileInfo(beside).fileName()));
}

CheckpointImportOptions CheckpointImportDialog::options() const {
    CheckpointImportOptions o;
    o.checkpoint = m_checkpoint->text().trimmed();
    o.outDir = m_out->text().trimmed();
    o.tokenizer = m_tokenizer->text().trimmed();
    o.dtype = m_dtype->currentData().toString();
    return o;
}

} // namespace mx
