#pragma once
// Chart export for reports: images (PNG, SVG, PDF) rendered from the chart widget and the
// data behind it (CSV, JSON). Every file is written through QSaveFile, so a failed export
// never leaves a partial or temporary file behind and never damages an existing file.
#include <optional>

#include <QDialog>
#include <QList>
#include <QSize>
#include <QString>
#include <QStringList>

#include "datatable.h"
#include "traceview.h"

QT_BEGIN_NAMESPACE
class QCheckBox;
class QComboBox;
class QDialogButtonBox;
class QLineEdit;
class QPainter;
class QSpinBox;
QT_END_NAMESPACE

namespace mx {

enum class ImageFormat { Png, Svg, Pdf };
enum class DataFormat { Csv, Json };

struct ExportResult {
    bool ok = false;
    QString error;     // one line per failed file, each naming the file and the reason
    QStringList files; // the files actually written
};

// "png", "svg", "pdf" / "csv", "json" (case-insensitive, an optional leading dot).
std::optional<ImageFormat> imageFormatForSuffix(const QString& suffix);
std::optional<DataFormat> dataFormatForSuffix(const QString& suffix);
QString suffixFor(ImageFormat fmt); // without the dot
QString suffixFor(DataFormat fmt);

// Renders `chart` at `size` (logical pixels; the widget is resized for the duration and
// then restored) into `path`. `title` goes into the file's metadata.
ExportResult exportChartImage(QWidget* chart, const QString& path, ImageFormat fmt, QSize size,
                              const QString& title = {});
ExportResult exportChartData(const DataTable& t, const QString& path, DataFormat fmt);
// Paints `chart` at `size` (resized for the duration, like exportChartImage) on a white
// background into `p`, whose current transform maps the chart's logical pixels (a report page
// scales it to fit). False when the chart cannot take that size.
bool paintChartAt(QWidget* chart, QPainter& p, QSize size);

// Writes basePath + ".png", ".svg", ... for every selected format. Every selected format is
// attempted; ok is true only when all of them were written.
ExportResult exportChart(const ChartHandle& h, const QString& basePath, QSize size, bool png, bool svg, bool pdf,
                         bool csv, bool json);

// Picks a chart, the formats, the image size and the target; run() does the export without
// any message box so that tests can drive the dialog through the named child widgets:
// chartCombo, pngCheck, svgCheck, pdfCheck, csvCheck, jsonCheck, presetCombo, widthSpin,
// heightSpin, folderEdit, browseButton, baseNameEdit, buttonBox.
class ExportDialog : public QDialog {
    Q_OBJECT
public:
    explicit ExportDialog(const QList<ChartHandle>& charts, QWidget* parent = nullptr);

    ExportResult run();
    QString basePath() const; // folder + base name, without a suffix

public slots:
    void accept() override;

private:
    void chartChanged(int index);
    void presetChanged(int index);
    void sizeEdited();
    void browse();
    void updateOkButton();

    QList<ChartHandle> m_charts;
    QString m_defaultBaseName; // what the base name was set to automatically
    QComboBox* m_chart = nullptr;
    QCheckBox* m_png = nullptr;
    QCheckBox* m_svg = nullptr;
    QCheckBox* m_pdf = nullptr;
    QCheckBox* m_csv = nullptr;
    QCheckBox* m_json = nullptr;
    QComboBox* m_preset = nullptr;
    QSpinBox* m_width = nullptr;
    QSpinBox* m_height = nullptr;
    QLineEdit* m_folder = nullptr;
    QLineEdit* m_baseName = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

} // namespace mx
