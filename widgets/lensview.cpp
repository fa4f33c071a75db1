#include "lensview.h"

#include <QComboBox>
#include <QEvent>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QHelpEvent>
#include <QLabel>
#include <QLineEdit>
#include <QMap>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSignalBlocker>
#include <QTableWidget>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>

#include "charts.h"
#include "mythos/tokenizer.h"

namespace mx {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QString num(double v) { return std::isfinite(v) ? QString::number(v, 'g', 4) : QStringLiteral("n/a"); }

// Control characters drawn as their Unicode pictures, as displayToken does for the prompt.
QString visible(QString s) {
    for (auto& ch : s) {
        if (ch.unicode() < 0x20)
            ch = QChar(0x2400 + ch.unicode());
        else if (ch.unicode() == 0x7f)
            ch = QChar(0x2421);
    }
    return s.isEmpty() ? QStringLiteral("\u2205") : s;
}

// The smallest 1, 2 or 5 times a power of ten >= v (1 for v <= 0), for round axis ticks.
double niceCeil(double v) {
    if (!(v > 0) || !std::isfinite(v))
        return 1.0;
    const double mag = std::pow(10.0, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * mag >= v * (1 - 1e-12))
            return m * mag;
    return 10 * mag;
}

QString defaultRulesText() { return QStringLiteral("kl<0.01, entropy<0.1, stable:2"); }

QString haltText(int loop) {
    return loop > 0 ? QObject::tr("halted at loop %1").arg(loop) : QObject::tr("never halted");
}

} // namespace

// ---- LensHeatmap ----

LensHeatmap::LensHeatmap(QWidget* parent) : Heatmap(parent) { setAccessibleName(tr("Logit lens heatmap")); }

void LensHeatmap::setAnnotations(const QStringList& texts, const QVector<int>& convergence,
                                 const QVector<int>& halting) {
    m_texts = texts;
    m_convergence = convergence;
    m_halting = halting;
    update();
}

QString LensHeatmap::cellText(int row, int col) const {
    if (row < 0 || row >= rows() || col < 0 || col >= cols())
        return {};
    return m_texts.value(row * cols() + col);
}

void LensHeatmap::setColorFunction(std::function<QColor(double)> fn) {
    m_colorFn = fn;
    Heatmap::setColorFunction(std::move(fn));
}

QColor LensHeatmap::cellColor(int row, int col) const {
    const double v = value(row, col);
    if (!std::isfinite(v))
        return {};
    const auto [lo, hi] = range();
    const double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return m_colorFn ? m_colorFn(std::clamp(t, 0.0, 1.0)) : sequentialColor(std::clamp(t, 0.0, 1.0));
}

void LensHeatmap::paintEvent(QPaintEvent* e) {
    Heatmap::paintEvent(e);
    if (rows() == 0 || cols() == 0)
        return;
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QRectF grid = gridRect();
    const double cw = grid.width() / cols(), ch = grid.height() / rows();
    QFont f = font();
    if (ch < QFontMetrics(f).height())
        f.setPointSizeF(std::max(5.0, f.pointSizeF() * std::max(0.6, ch / QFontMetrics(f).height())));
    const QFontMetrics fm(f);
    p.setFont(f);
    // Cell texts where a few characters fit.
    if (ch >= fm.height() - 2 && cw >= fm.horizontalAdvance(QStringLiteral("ab")) + 4) {
        for (int r = 0; r < rows(); ++r)
            for (int c = 0; c < cols(); ++c) {
                const QString s = cellText(r, c);
                if (s.isEmpty())
                    continue;
                const QColor bg = cellColor(r, c);
                p.setPen(bg.isValid() && isDark(bg) ? Qt::white : Qt::black);
                const QRectF cell(grid.left() + c * cw, grid.top() + r * ch, cw, ch);
                p.drawText(cell.adjusted(3, 0, -3, 0), Qt::AlignCenter,
                           fm.elidedText(s, Qt::ElideRight, int(cell.width()) - 6));
            }
    }
    // Convergence: a bar on the left edge of the cell from which the top-1 stays final.
    const double bar = std::clamp(cw / 10.0, 2.0, 4.0);
    for (int r = 0; r < rows(); ++r) {
        const int c = m_convergence.value(r) - 1;
        if (c < 0 || c >= cols())
            continue;
        const QRectF b(grid.left() + c * cw + 0.5, grid.top() + r * ch + 1, bar, ch - 2);
        p.setPen(QPen(Qt::black, 0.8));
        p.setBrush(convergenceColor());
        p.drawRect(b);
    }
    // ACT halting: a red dot with a white ring in the cell's top right corner.
    const double rad = std::clamp(std::min(cw, ch) / 6.0, 2.5, 5.0);
    paintMarkerLegend(p, grid, rad);
    for (int r = 0; r < rows(); ++r) {
        const int c = m_halting.value(r) - 1;
        if (c < 0 || c >= cols())
            continue;
        const QPointF centre(grid.left() + (c + 1) * cw - rad - 2, grid.top() + r * ch + rad + 2);
        p.setPen(QPen(Qt::white, 1.2));
        p.setBrush(haltingColor());
        p.drawEllipse(centre, rad, rad);
    }
}

// What the markers mean, right of the column title (the grid's row of "loop"), so that an
// exported image explains itself.
void LensHeatmap::paintMarkerLegend(QPainter& p, const QRectF& grid, double rad) const {
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const double y = std::ceil(grid.bottom()) + 3 + lh + 2;
    const double left = grid.center().x() + fm.horizontalAdvance(tr("loop")) / 2.0 + 16;
    QString conv, halt;
    auto width = [&] { return 10 + 4 + fm.horizontalAdvance(conv) + 14 + 2 * rad + 4 + fm.horizontalAdvance(halt); };
    const QPair<QString, QString> wordings[] = {
        {tr("convergence loop (top-1 final from here)"), tr("ACT halting loop")},
        {tr("convergence loop"), tr("ACT halting loop")},
        {tr("convergence"), tr("halting")}};
    bool fits = false;
    for (const auto& [c, h] : wordings) {
        conv = c;
        halt = h;
        if ((fits = left + width() <= grid.right()))
            break;
    }
    if (!fits)
        return;
    p.save();
    p.setFont(font());
    double x = grid.right() - width();
    p.setPen(QPen(Qt::black, 0.8));
    p.setBrush(convergenceColor());
    p.drawRect(QRectF(x + 3, y + 2, 4, lh - 4));
    x += 14;
    p.setPen(palette().color(QPalette::WindowText));
    p.drawText(QRectF(x, y, fm.horizontalAdvance(conv) + 2, lh), Qt::AlignLeft | Qt::AlignVCenter, conv);
    x += fm.horizontalAdvance(conv) + 14;
    p.setPen(QPen(Qt::white, 1.2));
    p.setBrush(haltingColor());
    p.drawEllipse(QPointF(x + rad, y + lh / 2.0), rad, rad);
    x += 2 * rad + 4;
    p.setPen(palette().color(QPalette::WindowText));
    p.drawText(QRectF(x, y, fm.horizontalAdvance(halt) + 2, lh), Qt::AlignLeft | Qt::AlignVCenter, halt);
    p.restore();
}

// ---- HaltConvergenceChart ----

HaltConvergenceChart::HaltConvergenceChart(QWidget* parent) : TokenChart(tr("Halting vs convergence loop"), parent) {}

void HaltConvergenceChart::setPoints(const QVector<QPointF>& points, int loops, const QStringList& labels) {
    m_points = points;
    m_loops = std::max(loops, 0);
    m_labels = labels;
    keepSelectionInRange();
    update();
}

QRectF HaltConvergenceChart::plotRect() const {
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const double left = 2 * lh + fm.horizontalAdvance(tr("never")) + 6;
    const double top = 2 * lh + 12, bottom = height() - 2 * lh - 10, right = width() - 12;
    return QRectF(QPointF(left, top), QPointF(std::max(left + 10, right), std::max(top + 10, bottom)));
}

QPointF HaltConvergenceChart::toPixel(QPointF v) const {
    // x: 1..K, y: 1..K+1 (never halted), each padded by half a step.
    const QRectF r = plotRect();
    const double n = std::max(m_loops, 1);
    const double x = r.left() + (v.x() - 0.5) / n * r.width();
    const double y = r.bottom() - (v.y() - 0.5) / (n + 1) * r.height();
    return {x, y};
}

QVector<int> HaltConvergenceChart::tokensNear(QPoint pos) const {
    QVector<int> out;
    const QRectF r = plotRect();
    const double step = std::min(r.width() / std::max(m_loops, 1), r.height() / (std::max(m_loops, 1) + 1));
    const double reach = std::max(6.0, step / 2.0);
    for (int i = 0; i < m_points.size(); ++i) {
        if (!std::isfinite(m_points[i].x()) || !std::isfinite(m_points[i].y()))
            continue;
        if (QLineF(toPixel(m_points[i]), QPointF(pos)).length() <= reach)
            out << i;
    }
    return out;
}

int HaltConvergenceChart::tokenAt(QPoint pos) const {
    const QVector<int> near = tokensNear(pos);
    if (near.isEmpty())
        return -1;
    // Coinciding tokens take turns: the one after the selection.
    const int at = near.indexOf(m_selected);
    return at >= 0 ? near[(at + 1) % near.size()] : near.front();
}

QString HaltConvergenceChart::tooltipAt(QPoint pos) const {
    const QVector<int> near = tokensNear(pos);
    if (near.isEmpty())
        return {};
    const QPointF v = m_points[near.front()];
    QStringList names;
    for (int i : near.mid(0, 12))
        names << QStringLiteral("%1 '%2'").arg(i).arg(m_labels.value(i));
    if (near.size() > 12)
        names << tr("... %1 more").arg(near.size() - 12);
    const QString halt = int(v.y()) > m_loops ? tr("never halted") : tr("halted at loop %1").arg(int(v.y()));
    return tr("converged at loop %1, %2: %3 token(s)\n%4")
        .arg(int(v.x()))
        .arg(halt)
        .arg(near.size())
        .arg(names.join(QStringLiteral(", ")));
}

void HaltConvergenceChart::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QPalette pal = palette();
    const QFontMetrics fm(font());
    const int lh = fm.height();
    const QRectF r = plotRect();
    if (!paintFrame(p, r, m_loops >= 1))
        return;
    const int K = m_loops;
    // The never-halted band at K + 1.
    const QPointF nb0 = toPixel({0.5, K + 0.5}), nb1 = toPixel({K + 0.5, K + 1.5});
    const QRectF band = QRectF(nb0, nb1).normalized();
    p.fillRect(band, QColor(neverHaltedColor().red(), neverHaltedColor().green(), neverHaltedColor().blue(), 28));
    p.setPen(QPen(neverHaltedColor(), 1, Qt::DashLine));
    p.drawLine(band.bottomLeft(), band.bottomRight());
    // Grid and tick labels on whole loops (every n-th when crowded).
    const int xStep = std::max(1, int(std::ceil(K * (fm.horizontalAdvance(QString::number(K)) + 8) / r.width())));
    const int yStep = std::max(1, int(std::ceil((K + 1) * (lh + 2) / r.height())));
    for (int l = 1; l <= K; ++l) {
        const QPointF px = toPixel({double(l), double(l)});
        p.setPen(QPen(pal.color(QPalette::Midlight), 1));
        p.drawLine(QPointF(px.x(), r.top()), QPointF(px.x(), r.bottom()));
        p.drawLine(QPointF(r.left(), px.y()), QPointF(r.right(), px.y()));
        p.setPen(pal.color(QPalette::WindowText));
        if ((l - 1) % xStep == 0 || l == K)
            p.drawText(QRectF(px.x() - 20, r.bottom() + 2, 40, lh), Qt::AlignCenter, QString::number(l));
        if ((l - 1) % yStep == 0 || l == K)
            p.drawText(QRectF(r.left() - 46, px.y() - lh / 2.0, 42, lh), Qt::AlignRight | Qt::AlignVCenter,
                       QString::number(l));
    }
    p.setPen(neverHaltedColor().darker(120));
    p.drawText(QRectF(0, band.center().y() - lh / 2.0, r.left() - 4, lh), Qt::AlignRight | Qt::AlignVCenter,
               tr("never"));
    p.setPen(pal.color(QPalette::Mid));
    p.setBrush(Qt::NoBrush);
    p.drawRect(r);
    // y = x: ACT halts exactly when the top-1 settles.
    p.setPen(QPen(QColor(90, 90, 90), 1.2, Qt::DashLine));
    p.drawLine(toPixel({0.5, 0.5}), toPixel({K + 0.5, K + 0.5}));
    p.setPen(QColor(90, 90, 90));
    {
        // Below the line near its upper end, where the line only rises away from the text.
        const QPointF d = toPixel({std::max(K - 1.0, 0.6), std::max(K - 1.6, 0.6)});
        p.drawText(QRectF(d.x() + 4, d.y() - lh / 2.0, 60, lh), Qt::AlignLeft | Qt::AlignVCenter,
                   QStringLiteral("y = x"));
    }
    // Axis titles.
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRectF(r.left(), r.bottom() + lh + 4, r.width(), lh), Qt::AlignCenter,
               tr("convergence loop (top-1 final from here)"));
    p.save();
    p.translate(4, r.center().y());
    p.rotate(-90);
    p.drawText(QRectF(-r.height() / 2, 0, r.height(), lh), Qt::AlignCenter, tr("ACT halting loop"));
    p.restore();
    // Bubbles: tokens at the same point, area by count.
    QMap<QPair<int, int>, QVector<int>> groups;
    for (int i = 0; i < m_points.size(); ++i) {
        const QPointF v = m_points[i];
        if (std::isfinite(v.x()) && std::isfinite(v.y()))
            groups[{int(v.x()), int(v.y())}] << i;
    }
    const double step = std::min(r.width() / K, r.height() / (K + 1));
    const double rMax = std::max(4.0, step * 0.45), rMin = std::min(rMax, 4.0);
    int most = 1;
    for (const auto& g : groups)
        most = std::max(most, int(g.size()));
    for (auto it = groups.cbegin(); it != groups.cend(); ++it) {
        const QPointF c = toPixel(QPointF(it.key().first, it.key().second));
        const int n = int(it.value().size());
        const double rad = rMin + (rMax - rMin) * std::sqrt(double(n) / most);
        const bool never = it.key().second > K;
        const QColor fill = never ? neverHaltedColor() : categoricalColor(0);
        p.setPen(QPen(fill.darker(140), 1));
        p.setBrush(QColor(fill.red(), fill.green(), fill.blue(), 170));
        p.drawEllipse(c, rad, rad);
        if (n > 1) {
            // The count right of the bubble, or above it when a neighbour is there (inside,
            // two digits would not fit a small bubble); the tooltip lists the tokens.
            const QString count = QStringLiteral("\u00d7%1").arg(n);
            const int cw = fm.horizontalAdvance(count) + 2;
            const int x = it.key().first, y = it.key().second;
            QRectF box(c.x() + rad + 2, c.y() - lh / 2.0, cw, lh);
            if (groups.contains({x + 1, y}) && cw > step - rad - 6) {
                box = QRectF(c.x() - cw / 2.0, c.y() - rad - lh, cw, lh);
                if (groups.contains({x, y + 1})) {
                    // Crowded: the bare number inside, in a smaller font, when it fits.
                    QFont small = font();
                    small.setPointSizeF(font().pointSizeF() * 0.75);
                    const QString bare = QString::number(n);
                    if (QFontMetrics(small).horizontalAdvance(bare) + 2 <= 2 * rad) {
                        p.setFont(small);
                        p.setPen(Qt::white);
                        p.drawText(QRectF(c.x() - rad, c.y() - rad, 2 * rad, 2 * rad), Qt::AlignCenter, bare);
                        p.setFont(font());
                    }
                    continue;
                }
            }
            p.setPen(pal.color(QPalette::WindowText));
            p.drawText(box, Qt::AlignLeft | Qt::AlignVCenter, count);
        }
    }
    // The selected token: a ring, and what it is in a line under the title.
    QString sub = tr("(click a bubble to select one of its tokens)");
    if (m_selected >= 0) {
        const QPointF v = m_points[m_selected];
        if (std::isfinite(v.x()) && std::isfinite(v.y())) {
            const QPointF c = toPixel(v);
            p.setBrush(Qt::NoBrush);
            p.setPen(QPen(Qt::black, 4.5));
            p.drawEllipse(c, 7.0, 7.0);
            p.setPen(QPen(selectionColor(), 3));
            p.drawEllipse(c, 7.0, 7.0);
            const int halt = int(v.y());
            sub = tr("◯ token %1 '%2': converged at loop %3, %4")
                      .arg(m_selected)
                      .arg(m_labels.value(m_selected))
                      .arg(int(v.x()))
                      .arg(halt > K ? tr("never halted") : tr("halted at loop %1").arg(halt));
            p.setPen(selectionColor().darker(130));
            QFont bold = font();
            bold.setBold(true);
            p.setFont(bold);
        } else {
            p.setPen(pal.color(QPalette::PlaceholderText));
        }
    } else {
        p.setPen(pal.color(QPalette::PlaceholderText));
    }
    p.drawText(QRectF(4, lh + 6, width() - 8, lh), Qt::AlignCenter,
               QFontMetrics(p.font()).elidedText(sub, Qt::ElideRight, width() - 8));
    p.setFont(font());
}

DataTable HaltConvergenceChart::table() const {
    DataTable t;
    t.title = m_title;
    t.columns << "index"
              << "token"
              << "convergence loop"
              << "halting loop (0 = never)"
              << "halting";
    for (int i = 0; i < m_points.size(); ++i) {
        const int conv = int(m_points[i].x()), halt = int(m_points[i].y());
        const bool never = halt > m_loops;
        const QString rel = never          ? QStringLiteral("never")
                            : halt < conv  ? QStringLiteral("before convergence")
                            : halt == conv ? QStringLiteral("at convergence")
                                           : QStringLiteral("after convergence");
        t.addRow({i, m_labels.value(i), conv, never ? 0 : halt, rel});
    }
    return t;
}

// ---- LensView ----

LensView::LensView(QWidget* parent) : TraceView(parent), m_rules(mythos::defaultExitRules()) {
    auto* content = makeScrollPage(m_scroll);
    auto* lay = makePageColumn(content);
    m_summary = addSummaryLabel(content, lay);

    m_message = new WrapLabel(content);
    m_message->setObjectName("lensMessage");
    m_message->setStyleSheet("QLabel { color: #5a4a00; background: #fff6d5; border: 1px solid #e0c860;"
                             " border-radius: 3px; padding: 4px; font-weight: bold; }");
    m_message->hide();
    lay->addWidget(m_message);

    // The controls and charts, hidden (with the controls) for a trace without a lens.
    m_body = new QWidget(content);
    auto* bodyLay = new QVBoxLayout(m_body);
    bodyLay->setContentsMargins(0, 0, 0, 0);
    bodyLay->setSpacing(6);
    auto* controls = new QHBoxLayout;
    controls->setSpacing(6);
    controls->addWidget(new QLabel(tr("Lens:"), content));
    m_sourceCombo = new QComboBox(content);
    m_sourceCombo->setObjectName("lensSource");
    m_sourceCombo->addItem(tr("Model output at t loops"));
    m_sourceCombo->addItem(tr("State alone (exit here)"));
    controls->addWidget(m_sourceCombo);
    controls->addSpacing(12);
    controls->addWidget(new QLabel(tr("Colour:"), content));
    m_metricCombo = new QComboBox(content);
    m_metricCombo->setObjectName("lensMetric");
    m_metricCombo->addItem(tr("top-1 probability"));
    m_metricCombo->addItem(tr("entropy"));
    m_metricCombo->addItem(tr("KL to final"));
    controls->addWidget(m_metricCombo);
    controls->addSpacing(12);
    m_markerLegend = new WrapLabel(content); // wraps rather than widen the page
    m_markerLegend->setText(tr("Click a row to select its token; hover a cell for its numbers."));
    QPalette hintPalette = m_markerLegend->palette();
    hintPalette.setColor(QPalette::WindowText, hintPalette.color(QPalette::PlaceholderText));
    m_markerLegend->setPalette(hintPalette);
    controls->addWidget(m_markerLegend, 1);
    bodyLay->addLayout(controls);

    m_heatmap = new LensHeatmap(content);
    m_heatmap->setAxisTitles(tr("token"), tr("loop"));
    m_heatmap->setMinimumSize(420, 300);

    m_halt = new HaltConvergenceChart(content);
    m_halt->setMinimumSize(300, 200);
    m_loss = new LineChart(tr("Entropy and KL to final by loop"), tr("loop"), tr("nats"), content);
    m_loss->setIntegerX(true);
    m_loss->setMinimumSize(300, 190);

    m_exitBox = new QWidget(content);
    auto* exitLay = new QVBoxLayout(m_exitBox);
    exitLay->setContentsMargins(0, 0, 0, 0);
    exitLay->setSpacing(3);
    auto* ruleRow = new QHBoxLayout;
    auto* rulesLabel = new QLabel(tr("<b>Exit rules</b> (ACT always):"), m_exitBox);
    ruleRow->addWidget(rulesLabel);
    m_rulesEdit = new QLineEdit(defaultRulesText(), m_exitBox);
    m_rulesEdit->setObjectName("exitRules");
    m_rulesEdit->setToolTip(tr("Comma-separated: kl<EPS (KL to the previous loop), entropy<EPS, stable:K "
                               "(top-1 unchanged for K loops); each exits on the state lens"));
    ruleRow->addWidget(m_rulesEdit, 1);
    exitLay->addLayout(ruleRow);
    m_rulesErrorLabel = new WrapLabel(m_exitBox);
    m_rulesErrorLabel->setObjectName("exitRulesError");
    m_rulesErrorLabel->setStyleSheet("QLabel { color: #b03020; }");
    m_rulesErrorLabel->hide();
    exitLay->addWidget(m_rulesErrorLabel);
    m_exitTable = makeReadOnlyTable(m_exitBox, "exitRuleTable");
    m_exitTable->setColumnCount(4);
    m_exitTable->setHorizontalHeaderLabels(
        {tr("rule"), tr("mean exit loop"), tr("= final output"), tr("selected token: exit \u2192 prediction")});
    m_exitTable->horizontalHeaderItem(2)->setToolTip(
        tr("Tokens whose prediction at exit is the model's output at K loops"));
    m_exitTable->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_exitTable->horizontalHeader()->setStretchLastSection(true);
    m_exitTable->verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 6);
    m_exitTable->setMinimumHeight(4 * (fontMetrics().height() + 6) + fontMetrics().height() + 12);
    exitLay->addWidget(m_exitTable, 1);
    m_exitBox->setMinimumSize(300, 150);

    auto* side = new QVBoxLayout;
    side->setSpacing(8);
    side->addWidget(m_halt, 5);
    side->addWidget(m_loss, 4);
    side->addWidget(m_exitBox, 4);
    auto* row = new QHBoxLayout;
    row->setSpacing(8);
    row->addWidget(m_heatmap, 3);
    row->addLayout(side, 2);
    bodyLay->addLayout(row, 1);
    lay->addWidget(m_body, 1);
    lay->addStretch(0); // takes the room only while the body is hidden

    connect(m_sourceCombo, &QComboBox::currentIndexChanged, this,
            [this](int i) { setSource(i == 1 ? mythos::LensSource::State : mythos::LensSource::Act); });
    connect(m_metricCombo, &QComboBox::currentIndexChanged, this, [this](int i) {
        setMetric(i == 1 ? Metric::Entropy : i == 2 ? Metric::KlFinal : Metric::Probability);
    });
    connect(m_rulesEdit, &QLineEdit::textEdited, this, [this](const QString& s) { setExitRulesText(s); });
    connect(m_heatmap, &Heatmap::rowClicked, this, &LensView::selectFromUi);
    connect(m_halt, &HaltConvergenceChart::tokenClicked, this, &LensView::selectFromUi);

    m_summary->setText(noTraceText());
    rebuild();
}

void LensView::setTrace(const TracePtr& trace) {
    if (!trace)
        return;
    m_trace = trace;
    m_pieces.clear();
    for (const auto& [id, piece] : trace->lens.pieces)
        m_pieces.insert(id, visible(QString::fromStdString(mythos::displayText(piece))));
    m_labels.clear();
    for (int t = 0; t < int(trace->seqLen); ++t)
        m_labels << displayToken(*trace, t);
    rebuild();
}

QString LensView::pieceOf(int32_t id) const {
    const auto it = m_pieces.constFind(id);
    return it != m_pieces.cend() ? *it : QStringLiteral("#%1").arg(id);
}

void LensView::setSource(mythos::LensSource source) {
    if (source == m_source)
        return;
    m_source = source;
    const QSignalBlocker block(m_sourceCombo);
    m_sourceCombo->setCurrentIndex(source == mythos::LensSource::State ? 1 : 0);
    rebuild();
}

void LensView::setMetric(Metric metric) {
    if (metric == m_metric)
        return;
    m_metric = metric;
    const QSignalBlocker block(m_metricCombo);
    m_metricCombo->setCurrentIndex(int(metric));
    showHeatmap();
    applySelection();
}

bool LensView::setExitRulesText(const QString& text) {
    if (m_rulesEdit->text() != text) {
        const QSignalBlocker block(m_rulesEdit);
        m_rulesEdit->setText(text);
    }
    std::vector<mythos::ExitRule> rules{mythos::ExitRule{}}; // ACT first, always
    QString error;
    for (QString part : text.split(QRegularExpression(QStringLiteral("[,;]")))) {
        part.remove(QRegularExpression(QStringLiteral("\\s")));
        if (part.isEmpty())
            continue;
        try {
            const mythos::ExitRule r = mythos::parseExitRule(part.toStdString());
            const bool dup =
                std::any_of(rules.begin(), rules.end(), [&](const auto& o) { return o.name() == r.name(); });
            if (!dup)
                rules.push_back(r);
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
            break;
        }
    }
    m_rulesError = error;
    m_rulesErrorLabel->setText(error.isEmpty() ? QString() : tr("\u26a0 %1 (showing the last valid rules)").arg(error));
    m_rulesErrorLabel->setVisible(!error.isEmpty());
    if (!error.isEmpty())
        return false;
    m_rules = std::move(rules);
    if (m_trace)
        m_exit = mythos::exitRuleTable(*m_trace, m_rules);
    showExitRules();
    return true;
}

void LensView::rebuild() {
    m_data = m_trace ? mythos::lensViewData(*m_trace, m_source) : mythos::LensViewData{};
    m_exit = m_trace ? mythos::exitRuleTable(*m_trace, m_rules) : mythos::ExitRuleTable{};
    if (m_selected >= int(m_data.tokens))
        m_selected = -1;
    showHeatmap();
    showHaltChart();
    showExitRules();
    showSummary();
    applySelection();
}

void LensView::showHeatmap() {
    const int T = int(m_data.tokens), K = int(m_data.loops);
    const QString source = m_source == mythos::LensSource::Act ? tr("model output at t loops") : tr("state alone");
    QVector<double> values;
    values.reserve(T * K);
    const std::vector<double>& src = m_metric == Metric::Entropy   ? m_data.entropy
                                     : m_metric == Metric::KlFinal ? m_data.klFinal
                                                                   : m_data.p;
    for (int i = 0; i < T * K && std::size_t(i) < src.size(); ++i)
        values << src[std::size_t(i)];
    switch (m_metric) {
    case Metric::Probability:
        m_heatmap->setTitle(tr("Top-1 per token and loop (%1), coloured by its probability").arg(source));
        m_heatmap->setLegendTitle(tr("top-1 p"));
        m_heatmap->setColorFunction({});
        m_heatmap->setRange(0, 1);
        break;
    case Metric::Entropy:
        // Low entropy (confident) is bright, as a high probability is.
        m_heatmap->setTitle(tr("Top-1 per token and loop (%1), coloured by the entropy").arg(source));
        m_heatmap->setLegendTitle(tr("entropy (nats)"));
        m_heatmap->setColorFunction([](double t) { return sequentialColor(1.0 - t); });
        m_heatmap->setRange(0, m_data.entropyTop);
        break;
    case Metric::KlFinal:
        m_heatmap->setTitle(tr("Top-1 per token and loop (%1), coloured by the KL to the final output").arg(source));
        m_heatmap->setLegendTitle(tr("KL to final"));
        m_heatmap->setColorFunction([](double t) { return sequentialColor(1.0 - t); });
        m_heatmap->setRange(0, m_data.klTop);
        break;
    }
    QStringList rowLabels, colLabels, texts;
    QVector<int> conv, halt;
    for (int t = 0; t < T; ++t) {
        rowLabels << QStringLiteral("%1 %2").arg(t).arg(tokenText(t));
        conv << m_data.convergence[std::size_t(t)];
        halt << std::min(int(m_data.haltLoop[std::size_t(t)]), K);
        for (int l = 0; l < K; ++l)
            texts << pieceOf(m_data.top1[std::size_t(t * K + l)]);
    }
    for (int l = 1; l <= K; ++l)
        colLabels << QString::number(l);
    m_heatmap->setData(T, K, values, rowLabels, colLabels);
    m_heatmap->setAnnotations(texts, conv, halt);
    // Rows about a line high (the cell text shrinks below that), then the page scrolls.
    const int lh = fontMetrics().height();
    m_heatmap->setMinimumHeight(std::clamp(T * (lh - 2) + 5 * lh + 20, 300, 60 * lh));
    m_heatmap->tooltip = [this](int row, int col) {
        const int K = int(m_data.loops);
        const std::size_t i = std::size_t(row * K + col);
        if (i >= m_data.top1.size())
            return QString();
        const int32_t id = m_data.top1[i];
        QString s = tr("token %1 '%2', loop %3: top-1 '%4' (#%5), p = %6\nentropy %7 nats, KL to final %8, KL to "
                       "loop %9 %10")
                        .arg(row)
                        .arg(tokenText(row))
                        .arg(col + 1)
                        .arg(pieceOf(id))
                        .arg(id)
                        .arg(num(m_data.p[i]), num(m_data.entropy[i]), num(m_data.klFinal[i]))
                        .arg(col)
                        .arg(col == 0 ? tr("n/a (first loop)") : num(m_data.klPrev[i]));
        const int conv = m_data.convergence[std::size_t(row)];
        s += "\n" + tr("converges at loop %1; %2; final output '%3'")
                        .arg(conv)
                        .arg(haltText(m_data.haltLoop[std::size_t(row)]))
                        .arg(pieceOf(m_data.finalTop1[std::size_t(row)]));
        return s;
    };
}

void LensView::showHaltChart() {
    QVector<QPointF> pts;
    for (const auto& [c, h] : m_data.haltVsConv)
        pts << QPointF(c, h);
    m_halt->setPoints(pts, int(m_data.loops), m_labels.mid(0, int(m_data.tokens)));
}

// Entropy, KL to final and KL to the previous loop of the selected token, or their means.
void LensView::showLossChart() {
    const int T = int(m_data.tokens), K = int(m_data.loops);
    QVector<Series> series(3);
    series[0].name = tr("entropy");
    series[0].color = categoricalColor(0);
    series[1].name = tr("KL to final");
    series[1].color = categoricalColor(1);
    series[2].name = tr("KL to previous loop");
    series[2].color = categoricalColor(2);
    series[2].dashed = true;
    for (auto& s : series)
        s.markers = true;
    for (int l = 0; l < K; ++l) {
        double v[3] = {0, 0, 0};
        int n[3] = {0, 0, 0};
        for (int t = 0; t < T; ++t) {
            if (m_selected >= 0 && t != m_selected)
                continue;
            const std::size_t i = std::size_t(t * K + l);
            const double x[3] = {m_data.entropy[i], m_data.klFinal[i], m_data.klPrev[i]};
            for (int k = 0; k < 3; ++k)
                if (std::isfinite(x[k])) {
                    v[k] += x[k];
                    ++n[k];
                }
        }
        for (int k = 0; k < 3; ++k)
            series[k].points << QPointF(l + 1, n[k] ? v[k] / n[k] : kNaN);
    }
    const QString who =
        m_selected >= 0 ? tr("token %1 '%2'").arg(m_selected).arg(tokenText(m_selected)) : tr("mean over tokens");
    m_loss->setTitle(tr("Entropy and KL by loop: %1").arg(who));
    double top = 0;
    for (const auto& s : series)
        for (const auto& pt : s.points)
            if (std::isfinite(pt.y()))
                top = std::max(top, pt.y());
    m_loss->setXRange(0.5, std::max(K, 1) + 0.5);
    m_loss->setYRange(0, niceCeil(top));
    m_loss->setSeries(K > 0 ? series : QVector<Series>{});
}

void LensView::showExitRules() {
    const int R = int(m_exit.names.size());
    const int T = int(m_data.tokens);
    m_exitTable->setRowCount(R);
    for (int r = 0; r < R; ++r) {
        QString selected = QStringLiteral("\u2014");
        if (m_selected >= 0 && m_selected < T && std::size_t(r * T + m_selected) < m_exit.loops.size()) {
            const std::size_t i = std::size_t(r * T + m_selected);
            selected = tr("loop %1 \u2192 '%2'").arg(m_exit.loops[i]).arg(pieceOf(m_exit.tokens[i]));
        }
        const QStringList cells{QString::fromStdString(m_exit.names[std::size_t(r)]),
                                QString::number(m_exit.meanLoops[std::size_t(r)], 'f', 2),
                                tr("%1 of %2").arg(m_exit.agreeFinal[std::size_t(r)]).arg(T), selected};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            if (c > 0 && c < 3)
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            m_exitTable->setItem(r, c, item);
        }
    }
}

void LensView::showSummary() {
    const int T = int(m_data.tokens), K = int(m_data.loops);
    if (!m_trace) {
        m_message->hide();
        m_summary->setText(noTraceText());
        return;
    }
    m_body->setVisible(K > 0);
    if (K < 1) {
        m_message->setText(tr("This trace has no logit lens; run the prompt (or mythos-cli trace --lens)."));
        m_message->show();
        m_summary->setText(tr("%n token(s); no logit lens recorded.", nullptr, int(m_trace->seqLen)));
        return;
    }
    m_message->hide();
    double meanConv = 0;
    for (int32_t c : m_data.convergence)
        meanConv += c;
    meanConv = T ? meanConv / T : 0;
    QStringList parts;
    parts << (T == 1 ? tr("1 token") : tr("%1 tokens").arg(T));
    parts << tr("K = %1 loops").arg(K);
    parts << tr("mean convergence loop %1").arg(QString::number(meanConv, 'f', 2));
    QString act = tr("ACT halted before convergence: %1, at it: %2, after it: %3, never: %4")
                      .arg(m_data.early)
                      .arg(m_data.same)
                      .arg(m_data.late)
                      .arg(m_data.never);
    const int64_t halted = m_data.early + m_data.same + m_data.late;
    if (halted == 0)
        act += tr(" (ACT never stops within K)");
    else if (m_data.early * 2 > halted)
        act += tr(" (ACT mostly stops before the answer is settled)");
    else if ((m_data.same + m_data.late) * 2 > halted && m_data.late > m_data.same)
        act += tr(" (ACT mostly stops after the answer is settled: loops to spare)");
    else
        act += tr(" (ACT mostly stops when the answer settles)");
    parts << act;
    m_summary->setText(parts.join(QStringLiteral("  \u00b7  ")));
}

QString LensView::summary() const { return m_summary->text(); }

void LensView::setSelectedToken(int index) {
    if (keepSelection(index, int(m_data.tokens)))
        applySelection();
}

void LensView::applySelection() {
    m_heatmap->setHighlightedRow(m_selected);
    m_halt->setSelected(m_selected);
    showLossChart();
    showExitRules();
}

DataTable LensView::heatmapTable() const {
    DataTable t;
    t.title = m_heatmap->title();
    t.columns << "index"
              << "token"
              << "loop"
              << "top-1 id"
              << "top-1 text"
              << "p"
              << "entropy"
              << "KL to final"
              << "KL to previous loop"
              << "convergence loop"
              << "halting loop (0 = never)";
    const int T = int(m_data.tokens), K = int(m_data.loops);
    auto val = [](double v) { return std::isfinite(v) ? QVariant(v) : QVariant(); };
    for (int r = 0; r < T; ++r)
        for (int l = 0; l < K; ++l) {
            const std::size_t i = std::size_t(r * K + l);
            t.addRow({r, tokenText(r), l + 1, m_data.top1[i], pieceOf(m_data.top1[i]), val(m_data.p[i]),
                      val(m_data.entropy[i]), val(m_data.klFinal[i]), val(m_data.klPrev[i]),
                      m_data.convergence[std::size_t(r)], m_data.haltLoop[std::size_t(r)]});
        }
    return t;
}

DataTable LensView::exitTableData() const {
    DataTable t;
    t.title = tr("Exit rules");
    t.columns << "rule"
              << "mean exit loop"
              << "tokens equal to the final output"
              << "tokens"
              << "selected token"
              << "selected exit loop"
              << "selected prediction";
    const int T = int(m_data.tokens);
    for (std::size_t r = 0; r < m_exit.names.size(); ++r) {
        QVariant loop, pred;
        if (m_selected >= 0 && r * T + m_selected < m_exit.loops.size()) {
            loop = qlonglong(m_exit.loops[r * T + m_selected]);
            pred = pieceOf(m_exit.tokens[r * T + m_selected]);
        }
        t.addRow({QString::fromStdString(m_exit.names[r]), m_exit.meanLoops[r], qlonglong(m_exit.agreeFinal[r]), T,
                  m_selected >= 0 ? QVariant(m_selected) : QVariant(), loop, pred});
    }
    return t;
}

QList<ChartHandle> LensView::charts() const {
    QList<ChartHandle> out;
    out << ChartHandle{"lens-heatmap", tr("Logit lens: top-1 per token and loop"), m_heatmap,
                       [this] { return heatmapTable(); }};
    out << ChartHandle{"lens-halting-vs-convergence", m_halt->title(), m_halt, [this] { return m_halt->table(); }};
    out << ChartHandle{"lens-entropy-kl", tr("Entropy and KL by loop"), m_loss, [this] { return m_loss->table(); }};
    out << ChartHandle{"lens-exit-rules", tr("Exit rules"), m_exitBox, [this] { return exitTableData(); }};
    return out;
}

} // namespace mx
