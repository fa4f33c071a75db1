#include "stabilityview.h"

#include "mythos/viewdata.h"

#include <QBoxLayout>
#include <QDoubleSpinBox>
#include <QFrame>
#include <QGridLayout>
#include <QGroupBox>
#include <QLabel>
#include <QPushButton>
#include <QResizeEvent>
#include <QScrollArea>
#include <QStackedWidget>
#include <algorithm>
#include <cmath>
#include <limits>

namespace mx {

namespace {

constexpr int kBins = 20;
constexpr int kChartMinHeight = 280;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QColor statusColor(mythos::StabilityStatus s) {
    switch (s) {
    case mythos::StabilityStatus::Fine: return QColor(30, 140, 60);
    case mythos::StabilityStatus::Warning: return QColor(205, 130, 0);
    case mythos::StabilityStatus::Unstable: return QColor(200, 40, 40);
    case mythos::StabilityStatus::NonFinite: return QColor(140, 0, 140);
    }
    return {};
}

QString formatHorizon(double h) {
    if (!std::isfinite(h))
        return StabilityView::tr("infinite");
    return StabilityView::tr("%1 loops").arg(h, 0, 'f', h < 100 ? 1 : 0);
}

// A bin index for a value that a person reads as decimal: 0.35f is 0.3499999940 in fp32
// and belongs to "0.35-0.40", so the fp32 rounding is absorbed before flooring.
int binOf(double v) {
    if (!(v >= 0.0))
        return 0; // NaN: callers count non-finite values apart; this only keeps the cast defined
    return std::clamp(int(std::floor(std::min(v, 1.0) * kBins + 1e-6)), 0, kBins - 1);
}

QString binLabel(int i) {
    return QStringLiteral("%1-%2").arg(double(i) / kBins, 0, 'f', 2).arg(double(i + 1) / kBins, 0, 'f', 2);
}

// A core curve of (x, y) pairs as chart points.
QVector<QPointF> toPoints(const std::vector<std::pair<double, double>>& xy) {
    QVector<QPointF> points;
    for (const auto& p : xy)
        points << QPointF(p.first, p.second);
    return points;
}

// A y range over the series and reference lines whose five ticks fall on round numbers
// (the adapter's automatic range pads by 5% and gives ticks like 0.737). (0, 0) = automatic.
QPair<double, double> niceRange(const QVector<Series>& series, const QVector<QPair<double, QString>>& lines = {}) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : series)
        for (const auto& p : s.points)
            if (std::isfinite(p.y())) {
                lo = std::min(lo, p.y());
                hi = std::max(hi, p.y());
            }
    if (!std::isfinite(lo))
        return {0.0, 0.0};
    for (const auto& l : lines) {
        lo = std::min(lo, l.first);
        hi = std::max(hi, l.first);
    }
    const double pad = hi > lo ? (hi - lo) * 0.02 : std::max(std::fabs(hi) * 0.1, 1e-6);
    lo -= pad;
    hi += pad;
    const double mag = std::pow(10.0, std::floor(std::log10((hi - lo) / 4)));
    for (double m : {1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0}) {
        const double step = m * mag;
        const double a = std::floor(lo / step) * step;
        if (a + 4 * step >= hi)
            return {a, a + 4 * step};
    }
    return {0.0, 0.0};
}

// Keeps its one child square and centred, so that the unit circle of the eigenvalue plot
// stays a circle.
class SquareBox : public QWidget {
public:
    using QWidget::QWidget;

protected:
    void resizeEvent(QResizeEvent*) override {
        const int side = std::min(width(), height());
        for (auto* child : findChildren<QWidget*>(Qt::FindDirectChildrenOnly))
            child->setGeometry((width() - side) / 2, (height() - side) / 2, side, side);
    }
};

QLabel* makeLabel(QWidget* parent, const char* name) {
    auto* l = new QLabel(parent);
    l->setObjectName(QString::fromLatin1(name));
    l->setTextInteractionFlags(Qt::TextSelectableByMouse);
    return l;
}

} // namespace

StabilityView::StabilityView(QWidget* parent) : TraceView(parent) {
    buildUi();
    updateSummary();
    updateDistribution();
    updateLoopCharts();
}

void StabilityView::buildUi() {
    auto* content = makeScrollPage(m_scroll);
    m_scroll->setObjectName("stabilityScroll");
    m_grid = new QGridLayout(content);
    m_grid->setContentsMargins(6, 6, 6, 6);
    m_grid->setSpacing(8);

    // Summary: rho in large type, its status in words and colour, horizon, range of A.
    m_summary = new QFrame(content);
    m_summary->setObjectName("rhoSummary");
    m_summary->setFrameShape(QFrame::StyledPanel);
    m_summary->setAutoFillBackground(true);
    auto* sl = new QVBoxLayout(m_summary);
    sl->setContentsMargins(10, 8, 10, 8);
    sl->setSpacing(2);
    auto* caption = new QLabel(tr("<b>Spectral radius of A</b>"), m_summary);
    m_rhoLabel = makeLabel(m_summary, "rhoValue");
    m_rhoLabel->setTextFormat(Qt::RichText);
    m_statusLabel = makeLabel(m_summary, "rhoStatus");
    m_statusLabel->setTextFormat(Qt::RichText);
    m_horizonLabel = makeLabel(m_summary, "memoryHorizon");
    m_rangeLabel = makeLabel(m_summary, "aRange");
    m_sourceLabel = makeLabel(m_summary, "aSource");
    m_weightWarning = makeLabel(m_summary, "weightWarning");
    m_weightWarning->setWordWrap(true);
    m_weightWarning->setStyleSheet(QStringLiteral("color: rgb(140, 0, 140); font-weight: 600"));
    m_weightWarning->hide();
    auto* scale = new QLabel(tr("stable < 0.9 ≤ near the edge < 1 ≤ unstable"), m_summary);
    scale->setWordWrap(true);
    scale->setForegroundRole(QPalette::PlaceholderText);
    for (auto* w :
         {static_cast<QWidget*>(caption), static_cast<QWidget*>(m_rhoLabel), static_cast<QWidget*>(m_statusLabel),
          static_cast<QWidget*>(m_horizonLabel), static_cast<QWidget*>(m_rangeLabel),
          static_cast<QWidget*>(m_sourceLabel), static_cast<QWidget*>(m_weightWarning), static_cast<QWidget*>(scale)})
        sl->addWidget(w);
    m_horizonLabel->setToolTip(tr("1 / (1 − ρ): roughly how many loops the recurrence remembers an input"));

    // Rescale A: the view only asks; the window and the worker own the model.
    m_rescale = new QGroupBox(tr("Rescale A"), content);
    m_rescale->setObjectName("rescaleBox");
    auto* rl = new QGridLayout(m_rescale);
    rl->setContentsMargins(8, 6, 8, 8);
    auto* targetLabel = new QLabel(tr("Target ρ"), m_rescale);
    m_target = new QDoubleSpinBox(m_rescale);
    m_target->setObjectName("rescaleTarget");
    m_target->setRange(0.05, 0.99);
    m_target->setSingleStep(0.01);
    m_target->setDecimals(2);
    m_target->setValue(0.9);
    m_target->setAccessibleName(tr("Rescale target spectral radius"));
    targetLabel->setBuddy(m_target);
    m_preview = new QPushButton(tr("Preview"), m_rescale);
    m_preview->setObjectName("rescalePreview");
    m_preview->setCheckable(true);
    m_preview->setToolTip(tr("Run with every entry of A scaled by target / ρ(A); uncheck to restore"));
    m_save = new QPushButton(tr("Save as model..."), m_rescale);
    m_save->setObjectName("rescaleSave");
    m_save->setToolTip(tr("Write a copy of the model with A rescaled to the target"));
    rl->addWidget(targetLabel, 0, 0);
    rl->addWidget(m_target, 0, 1);
    rl->addWidget(m_preview, 1, 0);
    rl->addWidget(m_save, 1, 1);
    m_rescaleHint = new QLabel(m_rescale);
    m_rescaleHint->setObjectName("rescaleHint");
    m_rescaleHint->setWordWrap(true);
    m_rescaleHint->setForegroundRole(QPalette::PlaceholderText);
    rl->addWidget(m_rescaleHint, 2, 0, 1, 2);
    rl->setRowStretch(3, 1);
    rl->setColumnStretch(1, 1);

    m_leftColumn = new QWidget(content);
    m_headerLayout = new QBoxLayout(QBoxLayout::TopToBottom, m_leftColumn);
    m_headerLayout->setContentsMargins(0, 0, 0, 0);

    m_distStack = new QStackedWidget(content);
    m_histogram = new BarChart(tr("Distribution of A's diagonal"), tr("A_i"), tr("entries"), m_distStack);
    m_histogram->setObjectName("aHistogram");
    m_histogram->setLabelAngle(-90);
    auto* square = new SquareBox(m_distStack);
    m_eigen = new ScatterChart(tr("Eigenvalues of A"), tr("Re λ"), tr("Im λ"), square);
    m_eigen->setObjectName("aEigenvalues");
    m_eigen->setUnitCircle(true);
    m_distStack->addWidget(m_histogram);
    m_distStack->addWidget(square);

    m_hNorm = new LineChart(tr("|h_t| per loop"), tr("loop t"), tr("|h_t|"), content);
    m_hNorm->setObjectName("hNormChart");
    m_hDelta = new LineChart(tr("Δ(t) = |h_t − h_{t−1}| per loop"), tr("loop t"), tr("Δ(t)"), content);
    m_hDelta->setObjectName("hDeltaChart");
    m_contraction = new LineChart(tr("Contraction ratio Δ(t+1) / Δ(t)"), tr("loop t"), tr("Δ(t+1) / Δ(t)"), content);
    m_contraction->setObjectName("contractionChart");
    for (auto* c : {m_hNorm, m_hDelta, m_contraction})
        c->setIntegerX(true);
    for (QWidget* w :
         {static_cast<QWidget*>(m_hNorm), static_cast<QWidget*>(m_hDelta), static_cast<QWidget*>(m_contraction)})
        w->setMinimumHeight(kChartMinHeight);
    // Qt Charts elides rotated category labels when the chart is short.
    m_distStack->setMinimumHeight(kChartMinHeight + 70);

    connect(m_preview, &QPushButton::toggled, this, [this](bool on) {
        m_previewActive = on;
        updateSummary();
        emit rescalePreviewChanged(on, rescaleTarget());
    });
    connect(m_target, &QDoubleSpinBox::valueChanged, this, [this](double target) {
        if (m_preview->isChecked())
            emit rescalePreviewChanged(true, target);
    });
    connect(m_save, &QPushButton::clicked, this, [this] { emit saveRescaledRequested(rescaleTarget()); });
    setModelAvailable(false);
    relayout(width());
}

// Three layouts rather than one grid: wide screens get everything without scrolling,
// narrow ones keep every chart at a readable height and scroll.
void StabilityView::relayout(int width) {
    const Layout want = width >= 1100 ? Layout::Wide : width >= 700 ? Layout::Medium : Layout::Narrow;
    if (want == m_layout)
        return;
    m_layout = want;
    while (m_grid->count() > 0)
        delete m_grid->takeAt(0);
    while (m_headerLayout->count() > 0)
        delete m_headerLayout->takeAt(0);
    if (want == Layout::Medium) {
        // Side by side, so that the histogram below gets the full width its 20 labels need.
        m_headerLayout->setDirection(QBoxLayout::LeftToRight);
        m_headerLayout->addWidget(m_summary, 1);
        m_headerLayout->addWidget(m_rescale, 1);
    } else {
        m_headerLayout->setDirection(QBoxLayout::TopToBottom);
        m_headerLayout->addWidget(m_summary);
        m_headerLayout->addWidget(m_rescale);
        m_headerLayout->addStretch(1);
    }
    for (int i = 0; i < 6; ++i) {
        m_grid->setColumnStretch(i, 0);
        m_grid->setRowStretch(i, 0);
    }
    switch (want) {
    case Layout::Wide:
        // The contraction chart carries five legend entries, so it gets a half-width cell.
        m_grid->addWidget(m_leftColumn, 0, 0, 1, 2);
        m_grid->addWidget(m_hNorm, 0, 2, 1, 2);
        m_grid->addWidget(m_hDelta, 0, 4, 1, 2);
        m_grid->addWidget(m_distStack, 1, 0, 1, 3);
        m_grid->addWidget(m_contraction, 1, 3, 1, 3);
        for (int i = 0; i < 6; ++i)
            m_grid->setColumnStretch(i, 1);
        m_grid->setRowStretch(0, 1);
        m_grid->setRowStretch(1, 1);
        break;
    case Layout::Medium:
        m_grid->addWidget(m_leftColumn, 0, 0, 1, 2);
        m_grid->addWidget(m_distStack, 1, 0, 1, 2);
        m_grid->addWidget(m_hNorm, 2, 0);
        m_grid->addWidget(m_hDelta, 2, 1);
        m_grid->addWidget(m_contraction, 3, 0, 1, 2);
        m_grid->setColumnStretch(0, 1);
        m_grid->setColumnStretch(1, 1);
        for (int i = 1; i < 4; ++i)
            m_grid->setRowStretch(i, 1);
        break;
    case Layout::Narrow:
    case Layout::None:
        m_grid->addWidget(m_leftColumn, 0, 0);
        m_grid->addWidget(m_distStack, 1, 0);
        m_grid->addWidget(m_hNorm, 2, 0);
        m_grid->addWidget(m_hDelta, 3, 0);
        m_grid->addWidget(m_contraction, 4, 0);
        m_grid->setColumnStretch(0, 1);
        for (int i = 1; i < 5; ++i)
            m_grid->setRowStretch(i, 1);
        break;
    }
}

void StabilityView::resizeEvent(QResizeEvent* event) {
    TraceView::resizeEvent(event);
    relayout(event->size().width());
}

void StabilityView::setTrace(const TracePtr& trace) {
    m_trace = trace;
    m_dense.clear();
    m_denseN = 0;
    m_hasRho = false;
    m_aEntries = 0;
    m_minA = m_maxA = kNaN;
    if (m_trace) {
        const auto& a = m_trace->injA;
        m_aEntries = int(a.size());
        if (!a.empty()) {
            setRangeOf(a);
            m_rho = mythos::spectralRadiusDiagonal(a); // NaN when an entry is not finite
            m_hasRho = true;
        } else if (!std::isfinite(m_trace->rhoA) || m_trace->rhoA > 0) {
            m_rho = m_trace->rhoA; // recorded as null when A was not finite
            m_hasRho = true;
        }
    }
    if (m_selected >= 0 && (!m_trace || m_selected >= m_trace->seqLen))
        m_selected = -1;
    updateSummary();
    updateDistribution();
    updateLoopCharts();
}

void StabilityView::setDenseA(std::vector<float> matrix, int n) {
    if (n <= 0 || matrix.size() != std::size_t(n) * std::size_t(n)) {
        setTrace(m_trace); // back to the trace's diagonal A
        return;
    }
    m_dense = std::move(matrix);
    m_denseN = n;
    setRangeOf(m_dense);
    m_aEntries = int(m_dense.size());
    m_rho = mythos::spectralRadiusDense(m_dense, n);
    m_hasRho = true;
    updateSummary();
    updateDistribution();
    updateLoopCharts(); // the rho marker of the contraction chart
}

int StabilityView::nonFiniteCount() const {
    const std::vector<float> none;
    return int(mythos::countNonFinite(m_denseN > 0 ? m_dense : m_trace ? m_trace->injA : none));
}

void StabilityView::setRangeOf(const std::vector<float>& a) {
    m_minA = m_maxA = kNaN; // stay NaN when no entry is finite
    for (float v : a) {
        if (!std::isfinite(v))
            continue;
        m_minA = std::isnan(m_minA) ? v : std::min(m_minA, double(v));
        m_maxA = std::isnan(m_maxA) ? v : std::max(m_maxA, double(v));
    }
}

void StabilityView::updateSummary() {
    if (!m_hasRho) {
        m_status = mythos::StabilityStatus::Fine;
        m_horizon = kNaN;
        m_rhoLabel->setText(QStringLiteral("<span style='font-size:26pt; font-weight:600'>ρ(A) = –</span>"));
        m_statusLabel->setText(m_trace ? tr("this trace has no injection matrix") : tr("no trace yet"));
        m_horizonLabel->setText(tr("memory horizon: –"));
        m_rangeLabel->setText(tr("A: –"));
        m_sourceLabel->clear();
        return;
    }
    m_status = mythos::stabilityStatus(m_rho);
    m_horizon = mythos::memoryHorizon(m_rho);
    const QString color = statusColor(m_status).name();
    QString rho = QStringLiteral("<span style='font-size:26pt; font-weight:600'>ρ(A) = "
                                 "<span style='color:%1'>%2</span></span>")
                      .arg(color, std::isfinite(m_rho) ? QString::number(m_rho, 'f', 4) : tr("not finite"));
    if (m_previewActive)
        rho += QStringLiteral(" <span style='font-size:12pt'>%1</span>").arg(tr("(preview)"));
    m_rhoLabel->setText(rho);
    m_statusLabel->setText(QStringLiteral("<span style='color:%1; font-size:14pt; font-weight:600'>%2</span>")
                               .arg(color, QString::fromUtf8(mythos::stabilityStatusName(m_status))));
    m_horizonLabel->setText(m_status == mythos::StabilityStatus::NonFinite
                                ? tr("memory horizon: – (%1 of A's %2 entries are NaN or infinite: the "
                                     "weights are broken)")
                                      .arg(nonFiniteCount())
                                      .arg(m_aEntries)
                                : tr("memory horizon 1/(1 − ρ): %1").arg(formatHorizon(m_horizon)));
    if (std::isfinite(m_minA))
        m_rangeLabel->setText(tr("A: min %1 · max %2").arg(m_minA, 0, 'f', 4).arg(m_maxA, 0, 'f', 4));
    else
        m_rangeLabel->setText(tr("A: –"));
    if (m_denseN > 0)
        m_sourceLabel->setText(tr("dense %1×%1 A, ρ from its eigenvalues").arg(m_denseN));
    else if (m_aEntries > 0)
        m_sourceLabel->setText(tr("diagonal A, %1 entries").arg(m_aEntries));
    else
        m_sourceLabel->setText(tr("ρ as recorded in the trace"));
}

void StabilityView::updateDistribution() {
    if (m_denseN > 0) {
        QVector<QPointF> pts;
        for (const auto& ev : mythos::eigenvalues(m_dense, m_denseN))
            pts.push_back({ev.real(), ev.imag()});
        m_eigen->setTitle(tr("Eigenvalues of A (%1×%1) and the unit circle").arg(m_denseN));
        m_eigen->setPoints(pts, tr("eigenvalues"));
        m_distStack->setCurrentWidget(m_eigen->parentWidget());
        return;
    }
    m_distStack->setCurrentWidget(m_histogram);
    const std::vector<float> empty;
    const auto& a = m_trace ? m_trace->injA : empty;
    QVector<double> counts(kBins, 0.0);
    int below = 0, above = 0, nonFinite = 0;
    for (float f : a) {
        const double v = f;
        if (!std::isfinite(v))
            ++nonFinite;
        else if (v < 0)
            ++below;
        else if (v > 1)
            ++above;
        else
            counts[binOf(v)] += 1;
    }
    QStringList cats;
    QVector<double> values;
    QVector<QColor> colors;
    const QColor normal = categoricalColor(0);
    if (below > 0) {
        cats << tr("< 0");
        values << below;
        colors << normal;
    }
    for (int i = 0; i < kBins; ++i) {
        cats << binLabel(i);
        values << counts[i];
        colors << (double(i) / kBins >= 0.9 - 1e-9 ? statusColor(mythos::StabilityStatus::Warning) : normal);
    }
    if (above > 0) {
        cats << tr("> 1");
        values << above;
        colors << statusColor(mythos::StabilityStatus::Unstable);
    }
    if (nonFinite > 0) {
        cats << tr("NaN/inf");
        values << nonFinite;
        colors << statusColor(mythos::StabilityStatus::NonFinite);
    }
    m_histogram->setTitle(a.empty() ? tr("Distribution of A's diagonal (no A in this trace)")
                                    : tr("Distribution of A's diagonal (%1 entries)").arg(a.size()));
    // Integral ticks: the axis has five, so the top is a multiple of four.
    const double top = values.isEmpty() ? 0.0 : *std::max_element(values.begin(), values.end());
    m_histogram->setYRange(0, std::max(4.0, 4.0 * std::ceil(top * 1.05 / 4.0)));
    m_histogram->setBars(cats, values, colors);
}

void StabilityView::updateLoopCharts() {
    m_normBase.clear();
    m_deltaBase.clear();
    m_ratioBase.clear();
    m_depthMarker.clear();
    m_ratioMarkers.clear();
    const mythos::Trace* trace = m_trace.get();
    const int L = trace ? int(trace->loopsExecuted) : 0;
    const mythos::LoopCurves means = trace ? mythos::loopCurves(*trace) : mythos::LoopCurves{};
    const bool haveNorm = means.haveNorm;
    const bool haveDelta = means.haveDelta;
    const bool markers = L <= 40;

    auto meanSeries = [&](const QString& name) {
        Series s;
        s.name = name;
        s.color = categoricalColor(0);
        s.markers = markers;
        return s;
    };
    Series norm = meanSeries(tr("token mean"));
    Series delta = meanSeries(tr("token mean"));
    Series ratio = meanSeries(tr("mean ratio"));
    norm.points = toPoints(means.norm);
    delta.points = toPoints(means.delta);
    ratio.points = toPoints(means.ratio);
    const double dMin = means.deltaMin, dMax = means.deltaMax;
    m_normBase = {norm};
    m_deltaBase = {delta};
    m_ratioBase = {ratio};

    const int trained = trace ? int(trace->config.max_loop_iters) : 0;
    QString extrapolation;
    if (trace && trained > 0 && L > trained) {
        m_depthMarker = {{double(trained), tr("trained depth")}};
        extrapolation = tr("loops past %1 extrapolate beyond the trained depth").arg(trained);
    }
    // One x range for the three loop charts so that loop t lines up across them; whole
    // steps between the axis' five ticks keep the tick labels integral.
    const int step = std::max(1, (L - 1 + 3) / 4);
    int xlo = L - 4 * step;
    if (xlo < 0)
        xlo = 0;
    for (auto* c : {m_hNorm, m_hDelta, m_contraction})
        c->setXRange(xlo, xlo + 4 * step);

    m_hNorm->setNote(!trace ? QString() : haveNorm ? extrapolation : tr("this trace has no per-loop norms"));
    m_hNorm->setMarkers(m_depthMarker);
    m_hDelta->setNote(!trace ? QString() : haveDelta ? extrapolation : tr("this trace has no per-loop changes"));
    m_hDelta->setMarkers(m_depthMarker);
    m_ratioMarkers = {{1.0, tr("contracting below")}};
    if (m_hasRho && std::isfinite(m_rho))
        m_ratioMarkers.push_back({m_rho, tr("ρ(A)")}); // short: five legend entries share the width
    QString ratioNote = extrapolation;
    if (trace && haveDelta && L < 2)
        ratioNote = tr("needs at least 2 loops");
    else if (trace && !haveDelta)
        ratioNote = tr("this trace has no per-loop changes");
    m_contraction->setNote(ratioNote);
    m_contraction->setMarkers(m_depthMarker, m_ratioMarkers);

    // A log axis must only ever see this trace's (positive) data, so it is switched on last.
    m_deltaLog = dMax > 0 && std::isfinite(dMin) && dMax / dMin > 100;
    m_hDelta->setTitle(m_deltaLog ? tr("Δ(t) = |h_t − h_{t−1}| per loop (log scale)")
                                  : tr("Δ(t) = |h_t − h_{t−1}| per loop"));
    if (!m_deltaLog)
        m_hDelta->setLogY(false);
    updateSelectedSeries();
    if (m_deltaLog)
        m_hDelta->setLogY(true);
}

void StabilityView::setSelectedToken(int index) {
    if (keepSelection(index, m_trace ? int(m_trace->seqLen) : 0))
        updateSelectedSeries();
}

void StabilityView::updateSelectedSeries() {
    QVector<Series> norm = m_normBase, delta = m_deltaBase, ratio = m_ratioBase;
    const mythos::Trace* trace = m_trace.get();
    if (trace && m_selected >= 0 && m_selected < trace->seqLen) {
        const int L = int(trace->loopsExecuted);
        Series s;
        s.name = tr("token %1 “%2”").arg(m_selected).arg(tokenLabel(*trace, m_selected));
        s.color = categoricalColor(1);
        s.markers = L <= 40;
        Series n = s, d = s, r = s;
        const mythos::LoopCurves token = mythos::loopCurves(*trace, m_selected);
        n.points = toPoints(token.norm);
        d.points = toPoints(token.delta);
        r.points = toPoints(token.ratio);
        norm << n;
        delta << d;
        ratio << r;
    }
    m_hNorm->setSeries(norm);
    m_hDelta->setSeries(delta);
    m_contraction->setSeries(ratio);
    const auto normRange = niceRange(norm);
    m_hNorm->setYRange(normRange.first, normRange.second);
    const auto deltaRange = m_deltaLog ? qMakePair(0.0, 0.0) : niceRange(delta);
    m_hDelta->setYRange(deltaRange.first, deltaRange.second);
    const auto ratioRange = niceRange(ratio, m_ratioMarkers);
    m_contraction->setYRange(ratioRange.first, ratioRange.second);
}

void StabilityView::setRescalePreviewActive(bool on) {
    {
        const QSignalBlocker block(m_preview);
        m_preview->setChecked(on);
    }
    if (m_previewActive == on)
        return;
    m_previewActive = on;
    updateSummary();
}

void StabilityView::setWeightWarning(const QString& text) {
    m_weightWarning->setText(text.isEmpty() ? QString() : QStringLiteral("⚠ ") + text);
    m_weightWarning->setVisible(!text.isEmpty());
}

QString StabilityView::weightWarning() const {
    return m_weightWarning->isHidden() ? QString() : m_weightWarning->text();
}

void StabilityView::setModelAvailable(bool available) {
    m_modelAvailable = available;
    // Previewing also runs the model, so without one neither button can do anything.
    m_preview->setEnabled(available || m_preview->isChecked());
    m_save->setEnabled(available);
    m_rescaleHint->setText(available ? tr("Scales every entry of A by target / ρ(A). The model on disk "
                                          "changes only through \"Save as model...\".")
                                     : tr("Needs a model: open one to preview or save a rescaled A."));
}

double StabilityView::rescaleTarget() const { return m_target->value(); }

DataTable StabilityView::summaryTable() const {
    DataTable t;
    t.title = tr("Spectral radius of A");
    t.columns << "quantity"
              << "value";
    if (!m_hasRho)
        return t;
    t.addRow({QStringLiteral("rho"), m_rho});
    t.addRow({QStringLiteral("status"), QString::fromUtf8(mythos::stabilityStatusName(m_status))});
    t.addRow({QStringLiteral("memory horizon (loops)"),
              std::isfinite(m_horizon) ? QVariant(m_horizon) : QVariant(QStringLiteral("infinite"))});
    if (std::isfinite(m_minA)) {
        t.addRow({QStringLiteral("min A"), m_minA});
        t.addRow({QStringLiteral("max A"), m_maxA});
    }
    t.addRow({QStringLiteral("A"), m_sourceLabel->text()});
    t.addRow({QStringLiteral("preview"), m_previewActive});
    return t;
}

// The chart's series plus its reference lines (a vertical line has no y, a horizontal no x).
DataTable StabilityView::lineTable(const LineChart* chart) const {
    DataTable t = chart->table();
    for (const auto& m : m_depthMarker)
        t.addRow({m.second, m.first, QVariant()});
    if (chart == m_contraction)
        for (const auto& m : m_ratioMarkers)
            t.addRow({m.second, QVariant(), m.first});
    return t;
}

QList<ChartHandle> StabilityView::charts() const {
    QList<ChartHandle> out;
    out.push_back(
        {QStringLiteral("rho-summary"), tr("Spectral radius of A"), m_summary, [this] { return summaryTable(); }});
    if (m_denseN > 0) {
        out.push_back({QStringLiteral("a-distribution"), m_eigen->title(), m_eigen, [this] {
                           DataTable t = m_eigen->table();
                           t.columns = QStringList{"re", "im"};
                           return t;
                       }});
    } else {
        out.push_back({QStringLiteral("a-distribution"), m_histogram->title(), m_histogram, [this] {
                           DataTable t = m_histogram->table();
                           t.columns = QStringList{"bin", "entries"};
                           return t;
                       }});
    }
    out.push_back({QStringLiteral("h-norm"), m_hNorm->title(), m_hNorm, [this] { return lineTable(m_hNorm); }});
    out.push_back({QStringLiteral("h-delta"), m_hDelta->title(), m_hDelta, [this] { return lineTable(m_hDelta); }});
    out.push_back({QStringLiteral("contraction"), m_contraction->title(), m_contraction,
                   [this] { return lineTable(m_contraction); }});
    return out;
}

} // namespace mx
