#include "chartexporter.h"

#include "atomicsave.h"

#include <QApplication>
#include <QBuffer>
#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QImage>
#include <QLabel>
#include <QLayout>
#include <QLineEdit>
#include <QMessageBox>
#include <QPageLayout>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QStandardPaths>
#include <QSvgGenerator>
#include <QVBoxLayout>
#include <cmath>

namespace mx {

namespace {

// Below this Qt Charts elides every label; the API still accepts smaller sizes.
constexpr int kDialogMinWidth = 320;
constexpr int kDialogMinHeight = 200;
constexpr int kMaxSide = 8192;
const char* const kLastFolderKey = "export/lastFolder";

QString trExport(const char* text) { return QCoreApplication::translate("mx::ChartExporter", text); }

ExportResult failure(const QString& path, const QString& reason) {
    ExportResult r;
    r.ok = false;
    r.error = trExport("Could not write %1: %2").arg(QDir::toNativeSeparators(path), reason);
    return r;
}

ExportResult saveBytes(const QString& path, const QByteArray& bytes) {
    if (path.isEmpty())
        return failure(path, trExport("no file name"));
    QString reason;
    if (!saveAtomically(path, bytes, &reason))
        return failure(path, reason);
    ExportResult r;
    r.ok = true;
    r.files << path;
    return r;
}

bool isScrollAreaWidget(const QWidget* w) {
    const QWidget* viewport = w->parentWidget();
    const auto* area = viewport ? qobject_cast<const QScrollArea*>(viewport->parentWidget()) : nullptr;
    return area && area->widgetResizable() && area->widget() == w;
}

// Gives the widget the export size and a white window background for the lifetime of the
// object and lays it out synchronously, so that what render() paints is the chart at that
// size; size, size constraints and palette come back afterwards.
class ExportState {
public:
    ExportState(QWidget* w, QSize size)
        : m_widget(w), m_oldSize(w->size()), m_oldMin(w->minimumSize()), m_oldMax(w->maximumSize()),
          m_oldPalette(w->palette()), m_ownPalette(w->testAttribute(Qt::WA_SetPalette)) {
        // Qt Charts' view paints its margin in the window colour: grey in a report otherwise.
        QPalette white = m_oldPalette;
        white.setColor(QPalette::Window, Qt::white);
        w->setPalette(white);
        if (!w->isVisible() || isScrollAreaWidget(w)) {
            // A resizable scroll area fits its widget (the prompt's token chips) back to the
            // viewport, and the layout of a hidden parent puts its own geometry back, whenever
            // the posted events are flushed; pinned, the chart keeps the export size. Not for
            // other visible charts: a pinned chart would grow its whole window.
            w->setMinimumSize(size);
            w->setMaximumSize(size);
            m_constrained = true;
        } else if (size.width() < m_oldMin.width() || size.height() < m_oldMin.height() ||
                   size.width() > m_oldMax.width() || size.height() > m_oldMax.height()) {
            w->setMinimumSize(m_oldMin.boundedTo(size));
            w->setMaximumSize(m_oldMax.expandedTo(size));
            m_constrained = true;
        }
        // Flushing the posted events may run a pending layout request of the parent, which
        // puts the layout's geometry back; the next round then resizes again.
        for (int round = 0; round < 3; ++round) {
            w->resize(size);
            settle();
            if (w->size() == size)
                break;
        }
    }
    ~ExportState() {
        if (m_constrained) {
            m_widget->setMinimumSize(m_oldMin);
            m_widget->setMaximumSize(m_oldMax);
        }
        m_widget->resize(m_oldSize);
        relayoutHidden();
        // An empty palette clears WA_SetPalette, so the widget follows its parent again.
        m_widget->setPalette(m_ownPalette ? m_oldPalette : QPalette());
    }
    ExportState(const ExportState&) = delete;
    ExportState& operator=(const ExportState&) = delete;

private:
    // A visible widget lays out its children on the (synchronous) resize event. A hidden one
    // gets no resize event, so its layout is redone by hand; not for a visible one, because
    // QLayout::activate() asks the parent's layout to run again, which would undo the resize.
    void relayoutHidden() {
        if (m_widget->isVisible())
            return;
        if (auto* lay = m_widget->layout()) {
            lay->invalidate();
            lay->activate();
        }
    }
    void settle() {
        relayoutHidden();
        // A hidden widget's children receive their pending resize events only when it is
        // rendered; rendering one pixel delivers them, and flushing the posted events then
        // lets graphics-view based charts (Qt Charts) lay out at the new size.
        QImage probe(1, 1, QImage::Format_ARGB32);
        m_widget->render(&probe, QPoint(), QRegion(0, 0, 1, 1), QWidget::DrawChildren);
        QCoreApplication::sendPostedEvents();
    }

    QWidget* m_widget;
    QSize m_oldSize, m_oldMin, m_oldMax;
    QPalette m_oldPalette;
    bool m_ownPalette;
    bool m_constrained = false;
};

void paintChart(QWidget* chart, QPainter& p, QSize size) {
    // A PDF may otherwise store images as JPEG, whose chroma subsampling mixes the colours of
    // neighbouring heatmap cells.
    p.setRenderHint(QPainter::LosslessImageRendering);
    p.fillRect(QRect(QPoint(0, 0), size), Qt::white);
    // Without DrawWindowBackground: the white fill stays even if the palette says otherwise.
    chart->render(&p, QPoint(), QRegion(), QWidget::DrawChildren);
}

std::optional<QByteArray> renderPng(QWidget* chart, QSize size, const QString& title, int dpi) {
    QImage img(size, QImage::Format_ARGB32);
    if (img.isNull())
        return std::nullopt;
    img.setDevicePixelRatio(1.0);
    const int dpm = int(std::lround(dpi / 0.0254));
    img.setDotsPerMeterX(dpm);
    img.setDotsPerMeterY(dpm);
    if (!title.isEmpty())
        img.setText("Title", title);
    img.setText("Software", "Mythos Explorer");
    {
        QPainter p(&img);
        p.setRenderHint(QPainter::Antialiasing);
        paintChart(chart, p, size);
    }
    QByteArray bytes;
    QBuffer buf(&bytes);
    buf.open(QIODevice::WriteOnly);
    if (!img.save(&buf, "PNG"))
        return std::nullopt;
    return bytes;
}

std::optional<QByteArray> renderSvg(QWidget* chart, QSize size, const QString& title, int dpi) {
    QByteArray bytes;
    QBuffer buf(&bytes);
    buf.open(QIODevice::WriteOnly);
    QSvgGenerator gen;
    gen.setOutputDevice(&buf);
    gen.setResolution(dpi);
    gen.setSize(size);
    gen.setViewBox(QRect(QPoint(0, 0), size));
    gen.setTitle(title);
    gen.setDescription("Exported by Mythos Explorer");
    QPainter p;
    if (!p.begin(&gen))
        return std::nullopt;
    paintChart(chart, p, size);
    if (!p.end())
        return std::nullopt;
    return bytes;
}

std::optional<QByteArray> renderPdf(QWidget* chart, QSize size, const QString& title, int dpi) {
    QByteArray bytes;
    QBuffer buf(&bytes);
    buf.open(QIODevice::WriteOnly);
    {
        QPdfWriter pdf(&buf);
        pdf.setResolution(dpi);
        pdf.setTitle(title);
        pdf.setCreator("Mythos Explorer");
        // One page exactly the chart's size at the widget's dpi, without margins, so that text
        // keeps the size it has on screen relative to the chart.
        const QSizeF points(size.width() * 72.0 / dpi, size.height() * 72.0 / dpi);
        const QPageSize page(points, QPageSize::Point, QString(), QPageSize::ExactMatch);
        if (!pdf.setPageLayout(QPageLayout(page, QPageLayout::Portrait, QMarginsF())))
            return std::nullopt;
        QPainter p;
        if (!p.begin(&pdf))
            return std::nullopt;
        const QRect vp = p.viewport();
        p.scale(vp.width() / double(size.width()), vp.height() / double(size.height()));
        paintChart(chart, p, size);
        if (!p.end())
            return std::nullopt;
    }
    return bytes;
}

void merge(ExportResult& into, const ExportResult& r) {
    into.files << r.files;
    if (!r.ok) {
        into.ok = false;
        if (!into.error.isEmpty())
            into.error += '\n';
        into.error += r.error;
    }
}

} // namespace

std::optional<ImageFormat> imageFormatForSuffix(const QString& suffix) {
    QString s = suffix.toLower();
    if (s.startsWith('.'))
        s.remove(0, 1);
    if (s == "png")
        return ImageFormat::Png;
    if (s == "svg")
        return ImageFormat::Svg;
    if (s == "pdf")
        return ImageFormat::Pdf;
    return std::nullopt;
}

std::optional<DataFormat> dataFormatForSuffix(const QString& suffix) {
    QString s = suffix.toLower();
    if (s.startsWith('.'))
        s.remove(0, 1);
    if (s == "csv")
        return DataFormat::Csv;
    if (s == "json")
        return DataFormat::Json;
    return std::nullopt;
}

QString suffixFor(ImageFormat fmt) {
    switch (fmt) {
    case ImageFormat::Png: return "png";
    case ImageFormat::Svg: return "svg";
    case ImageFormat::Pdf: return "pdf";
    }
    return {};
}

QString suffixFor(DataFormat fmt) { return fmt == DataFormat::Csv ? "csv" : "json"; }

ExportResult exportChartImage(QWidget* chart, const QString& path, ImageFormat fmt, QSize size, const QString& title) {
    if (!chart)
        return failure(path, trExport("there is no chart to render"));
    if (size.width() < 1 || size.height() < 1 || size.width() > kMaxSide || size.height() > kMaxSide)
        return failure(
            path,
            trExport("the image size %1 x %2 is outside 1..%3").arg(size.width()).arg(size.height()).arg(kMaxSide));
    const int dpi = chart->logicalDpiY() > 0 ? chart->logicalDpiY() : 96;
    std::optional<QByteArray> bytes;
    {
        const ExportState state(chart, size);
        if (chart->size() != size)
            return failure(path,
                           trExport("the chart cannot be resized to %1 x %2").arg(size.width()).arg(size.height()));
        switch (fmt) {
        case ImageFormat::Png: bytes = renderPng(chart, size, title, dpi); break;
        case ImageFormat::Svg: bytes = renderSvg(chart, size, title, dpi); break;
        case ImageFormat::Pdf: bytes = renderPdf(chart, size, title, dpi); break;
        }
    }
    if (!bytes || bytes->isEmpty())
        return failure(
            path, trExport("the chart could not be rendered as %1 (out of memory?)").arg(suffixFor(fmt).toUpper()));
    return saveBytes(path, *bytes);
}

bool paintChartAt(QWidget* chart, QPainter& p, QSize size) {
    if (!chart || size.width() < 1 || size.height() < 1 || size.width() > kMaxSide || size.height() > kMaxSide)
        return false;
    const ExportState state(chart, size);
    if (chart->size() != size)
        return false;
    paintChart(chart, p, size);
    return true;
}

ExportResult exportChartData(const DataTable& t, const QString& path, DataFormat fmt) {
    return saveBytes(path, fmt == DataFormat::Csv ? t.toCsv() : t.toJson());
}

ExportResult exportChart(const ChartHandle& h, const QString& basePath, QSize size, bool png, bool svg, bool pdf,
                         bool csv, bool json) {
    ExportResult all;
    all.ok = true;
    if (!(png || svg || pdf || csv || json)) {
        all.ok = false;
        all.error = trExport("No export format selected.");
        return all;
    }
    const QString title = h.title.isEmpty() ? h.id : h.title;
    const std::pair<bool, ImageFormat> images[] = {
        {png, ImageFormat::Png}, {svg, ImageFormat::Svg}, {pdf, ImageFormat::Pdf}};
    for (const auto& [on, fmt] : images)
        if (on)
            merge(all, exportChartImage(h.widget, basePath + '.' + suffixFor(fmt), fmt, size, title));
    if (csv || json) {
        if (!h.data) {
            const std::pair<bool, DataFormat> data[] = {{csv, DataFormat::Csv}, {json, DataFormat::Json}};
            for (const auto& [on, fmt] : data)
                if (on)
                    merge(all, failure(basePath + '.' + suffixFor(fmt), trExport("the chart has no data table")));
        } else {
            const DataTable t = h.data();
            if (csv)
                merge(all, exportChartData(t, basePath + ".csv", DataFormat::Csv));
            if (json)
                merge(all, exportChartData(t, basePath + ".json", DataFormat::Json));
        }
    }
    return all;
}

// ---- ExportDialog ----

ExportDialog::ExportDialog(const QList<ChartHandle>& charts, QWidget* parent) : QDialog(parent), m_charts(charts) {
    setWindowTitle(tr("Export Chart"));

    m_chart = new QComboBox(this);
    m_chart->setObjectName("chartCombo");
    for (const auto& h : m_charts)
        m_chart->addItem(h.title.isEmpty() ? h.id : h.title, h.id);

    auto makeCheck = [this](const QString& text, const QString& name, bool on) {
        auto* c = new QCheckBox(text, this);
        c->setObjectName(name);
        c->setChecked(on);
        connect(c, &QCheckBox::toggled, this, &ExportDialog::updateOkButton);
        return c;
    };
    m_png = makeCheck("PNG", "pngCheck", true);
    m_svg = makeCheck("SVG", "svgCheck", false);
    m_pdf = makeCheck("PDF", "pdfCheck", false);
    m_csv = makeCheck("CSV", "csvCheck", true);
    m_json = makeCheck("JSON", "jsonCheck", false);
    auto* formats = new QHBoxLayout;
    for (auto* c : {m_png, m_svg, m_pdf, m_csv, m_json})
        formats->addWidget(c);
    formats->addStretch();

    m_preset = new QComboBox(this);
    m_preset->setObjectName("presetCombo");
    for (const QSize s : {QSize(1280, 800), QSize(1920, 1080), QSize(800, 500)})
        m_preset->addItem(QString("%1 × %2").arg(s.width()).arg(s.height()), s);
    m_preset->addItem(tr("Custom"));
    m_width = new QSpinBox(this);
    m_width->setObjectName("widthSpin");
    m_height = new QSpinBox(this);
    m_height->setObjectName("heightSpin");
    m_width->setRange(kDialogMinWidth, kMaxSide);
    m_height->setRange(kDialogMinHeight, kMaxSide);
    for (auto* s : {m_width, m_height})
        s->setSuffix(" px");
    m_width->setValue(1280);
    m_height->setValue(800);
    auto* sizeRow = new QHBoxLayout;
    sizeRow->addWidget(m_preset);
    sizeRow->addWidget(m_width);
    sizeRow->addWidget(new QLabel("×", this));
    sizeRow->addWidget(m_height);
    sizeRow->addStretch();

    QString folder = QSettings().value(kLastFolderKey).toString();
    if (folder.isEmpty() || !QFileInfo(folder).isDir())
        folder = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    if (folder.isEmpty() || !QFileInfo(folder).isDir())
        folder = QDir::homePath();
    m_folder = new QLineEdit(QDir::toNativeSeparators(folder), this);
    m_folder->setObjectName("folderEdit");
    auto* browse = new QPushButton(tr("Browse..."), this);
    browse->setObjectName("browseButton");
    auto* folderRow = new QHBoxLayout;
    folderRow->addWidget(m_folder, 1);
    folderRow->addWidget(browse);

    m_baseName = new QLineEdit(this);
    m_baseName->setObjectName("baseNameEdit");
    m_baseName->setToolTip(tr("File name without extension; one file per format is written."));

    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->setObjectName("buttonBox");
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Export"));

    auto* form = new QFormLayout;
    form->addRow(tr("Chart:"), m_chart);
    form->addRow(tr("Formats:"), formats);
    form->addRow(tr("Image size:"), sizeRow);
    form->addRow(tr("Folder:"), folderRow);
    form->addRow(tr("File name:"), m_baseName);
    auto* lay = new QVBoxLayout(this);
    lay->addLayout(form);
    lay->addWidget(m_buttons);

    connect(m_chart, &QComboBox::currentIndexChanged, this, &ExportDialog::chartChanged);
    connect(m_preset, &QComboBox::currentIndexChanged, this, &ExportDialog::presetChanged);
    connect(m_width, &QSpinBox::valueChanged, this, &ExportDialog::sizeEdited);
    connect(m_height, &QSpinBox::valueChanged, this, &ExportDialog::sizeEdited);
    connect(browse, &QPushButton::clicked, this, &ExportDialog::browse);
    connect(m_baseName, &QLineEdit::textChanged, this, &ExportDialog::updateOkButton);
    connect(m_folder, &QLineEdit::textChanged, this, &ExportDialog::updateOkButton);
    connect(m_buttons, &QDialogButtonBox::accepted, this, &ExportDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &ExportDialog::reject);

    chartChanged(m_chart->currentIndex());
    updateOkButton();
}

void ExportDialog::chartChanged(int index) {
    const QString id = index >= 0 && index < m_charts.size() ? m_charts[index].id : QString();
    // Follow the chart only while the user has not typed a name of their own.
    if (m_baseName->text() == m_defaultBaseName)
        m_baseName->setText(id);
    m_defaultBaseName = id;
}

void ExportDialog::presetChanged(int index) {
    const QSize s = m_preset->itemData(index).toSize();
    if (!s.isValid())
        return;
    const QSignalBlocker bw(m_width), bh(m_height);
    m_width->setValue(s.width());
    m_height->setValue(s.height());
}

void ExportDialog::sizeEdited() {
    const QSize s(m_width->value(), m_height->value());
    int match = m_preset->count() - 1; // "Custom"
    for (int i = 0; i < m_preset->count(); ++i)
        if (m_preset->itemData(i).toSize() == s)
            match = i;
    const QSignalBlocker b(m_preset);
    m_preset->setCurrentIndex(match);
}

void ExportDialog::browse() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Export to Folder"), m_folder->text());
    if (!dir.isEmpty())
        m_folder->setText(QDir::toNativeSeparators(dir));
}

void ExportDialog::updateOkButton() {
    const bool anyFormat =
        m_png->isChecked() || m_svg->isChecked() || m_pdf->isChecked() || m_csv->isChecked() || m_json->isChecked();
    m_buttons->button(QDialogButtonBox::Ok)
        ->setEnabled(!m_charts.isEmpty() && anyFormat && !m_baseName->text().trimmed().isEmpty() &&
                     !m_folder->text().trimmed().isEmpty());
}

QString ExportDialog::basePath() const {
    QString name = m_baseName->text().trimmed();
    // "chart.png" would otherwise become "chart.png.png".
    const QString suffix = QFileInfo(name).suffix();
    if (imageFormatForSuffix(suffix) || dataFormatForSuffix(suffix))
        name.chop(suffix.size() + 1);
    return QDir(QDir::fromNativeSeparators(m_folder->text().trimmed())).filePath(name);
}

ExportResult ExportDialog::run() {
    ExportResult r;
    const int index = m_chart->currentIndex();
    const QString name = m_baseName->text().trimmed();
    const QString folder = m_folder->text().trimmed();
    if (index < 0 || index >= m_charts.size())
        r.error = tr("There is no chart to export.");
    else if (name.isEmpty())
        r.error = tr("Enter a file name.");
    else if (name.contains('/') || name.contains('\\'))
        r.error = tr("The file name \"%1\" must not contain a folder; choose the folder above.").arg(name);
    else if (folder.isEmpty())
        r.error = tr("Choose a folder.");
    if (!r.error.isEmpty())
        return r;
    r = exportChart(m_charts[index], basePath(), QSize(m_width->value(), m_height->value()), m_png->isChecked(),
                    m_svg->isChecked(), m_pdf->isChecked(), m_csv->isChecked(), m_json->isChecked());
    if (r.ok)
        QSettings().setValue(kLastFolderKey, QDir::fromNativeSeparators(folder));
    return r;
}

void ExportDialog::accept() {
    const ExportResult r = run();
    if (r.ok) {
        QDialog::accept();
        return;
    }
    QString text = r.error;
    if (!r.files.isEmpty())
        text += "\n\n" + tr("Written: %1").arg(r.files.join(", "));
    // The dialog stays open so that the user can pick another folder or name.
    QMessageBox::warning(this, tr("Export Failed"), text);
}

} // namespace mx
