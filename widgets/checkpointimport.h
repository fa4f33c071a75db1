#pragma once
// Imports a PyTorch checkpoint (.pt, e.g. the reference trainer's step_N.pt) by running
// tools/export_checkpoint.py in a Python with torch: the tool writes a model folder
// (config.json, model.safetensors, the tokenizer) and reports "progress DONE TOTAL TEXT"
// lines on stdout, which become progress() signals. The app itself never reads pickles.
#include <QDialog>
#include <QObject>
#include <QProcess>
#include <QString>

QT_BEGIN_NAMESPACE
class QComboBox;
class QLabel;
class QLineEdit;
QT_END_NAMESPACE

namespace mx {

struct CheckpointImportOptions {
    QString checkpoint;                    // the .pt file
    QString outDir;                        // the model folder to write (created when missing)
    QString tokenizer;                     // tokenizer.json, a .tiktoken file or a folder; empty: beside the checkpoint
    QString dtype = QStringLiteral("f32"); // "f32" or "bf16"
    QString python;                        // interpreter; empty: defaultPython()
    QString tool;                          // export_checkpoint.py; empty: findTool()
};

class CheckpointImport : public QObject {
    Q_OBJECT
public:
    // The tool's exit status when torch cannot be imported (tools/export_checkpoint.py).
    static constexpr int kExitNoTorch = 3;

    explicit CheckpointImport(QObject* parent = nullptr);
    ~CheckpointImport() override; // stops a running tool (which removes what it made)

    // $MYTHOS_PYTHON, else Debian's /usr/bin/python3 (where python3-torch installs, and not
    // a virtualenv's python3 earlier on PATH), else python3 on PATH, else "python3".
    static QString defaultPython();
    // $MYTHOS_EXPORT_TOOL, else the installed copy (<appDir>/../share/mythos-explorer/tools),
    // else the source tree's tools/ when this executable runs from its build folder (never
    // when installed: mythos::buildSourceTree); empty when none exists.
    static QString findTool(const QString& appDir = {});
    // "<folder of the checkpoint>/<its name without .pt>_mythos", with _2, _3, ... when taken.
    static QString defaultOutDir(const QString& checkpoint);
    // The tokenizer file export_checkpoint.py would copy from beside the checkpoint, or empty.
    static QString tokenizerBeside(const QString& checkpoint);

    struct Progress {
        qint64 done = 0, total = 0; // total 0: amount of work not known yet
        QString text;
    };
    // "progress DONE TOTAL TEXT" (0 <= DONE, 0 <= TOTAL, DONE <= TOTAL when TOTAL > 0).
    static bool parseProgress(const QByteArray& line, Progress* out);

    // Starts the tool; every outcome arrives as a signal (failed() may be emitted before
    // start returns, e.g. when no tool is found). Refused while one runs.
    void start(const CheckpointImportOptions& options);
    // Asks the tool to stop (SIGTERM, then SIGKILL after 5 s); cancelled() follows.
    void cancel();
    bool running() const;
    QString outDir() const { return m_options.outDir; }
    QStringList notes() const { return m_notes; } // the tool's "note:" lines of the last run
    QString program() const { return m_program; }
    QStringList arguments() const { return m_arguments; }

signals:
    void progress(qint64 done, qint64 total, const QString& text);
    void finished(const QString& outDir);
    void failed(const QString& error); // one message for a person, no traceback
    void cancelled();

private:
    void onStdout();
    void onStderr();
    void onFinished(int code, QProcess::ExitStatus status);
    void onError(QProcess::ProcessError error);
    void fail(const QString& error);
    QString errorFromStderr(int code) const;

    QProcess* m_process = nullptr;
    CheckpointImportOptions m_options;
    QString m_program;
    QStringList m_arguments;
    QByteArray m_stdout, m_stderr;
    QStringList m_notes;
    bool m_cancelling = false;
    bool m_done = false;
};

// The options dialog of File > Import PyTorch Checkpoint: the checkpoint, the folder to
// write, the tokenizer (default: the one beside the checkpoint) and the weight type.
class CheckpointImportDialog : public QDialog {
    Q_OBJECT
public:
    explicit CheckpointImportDialog(const QString& checkpoint, QWidget* parent = nullptr);
    CheckpointImportOptions options() const;

private:
    void checkpointChanged();
    QLineEdit* m_checkpoint = nullptr;
    QLineEdit* m_out = nullptr;
    QLineEdit* m_tokenizer = nullptr;
    QLabel* m_tokenizerNote = nullptr;
    QComboBox* m_dtype = nullptr;
    QString m_suggestedOut;
};

} // namespace mx
