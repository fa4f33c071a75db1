#include "interventioneffect.h"

#include <cmath>

#include <QLabel>
#include <QVBoxLayout>

#include "barchart.h"
#include "palette.h"

namespace mx {

InterventionEffectPanel::InterventionEffectPanel(QWidget* parent) : QWidget(parent) {
    auto* lay = new QVBoxLayout(this);
    lay->setContentsMargins(0, 0, 0, 0);
    m_summary = new WrapLabel(this);
    m_summary->setObjectName("interventionSummary");
    m_summary->setTextFormat(Qt::RichText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    lay->addWidget(m_summary);
    m_routing = new BarChart(tr("Intervention: share of loops whose selected experts changed, per token"),
                             tr("token index"), tr("share of loops"), this);
    m_routing->setMinimumSize(300, 220);
    m_routing->setYRange(0, 1);
    lay->addWidget(m_routing, 1);
}

bool InterventionEffectPanel::setTraces(const TracePtr& a, const TracePtr& b) {
    m_a = a;
    m_b = b;
    m_effect = {};
    if (!a || !b || b->intervention.is_null() || a->ids != b->ids) {
        m_summary->clear();
        m_routing->setBars({}, {});
        return false;
    }
    try {
        m_effect = mythos::interventionEffect(*a, *b);
    } catch (const std::exception&) {
        return false;
    }
    int64_t haltChanged = 0;
    double routingSum = 0;
    for (int64_t t = 0; t < m_effect.tokens; ++t) {
        haltChanged += m_effect.haltBase[std::size_t(t)] != m_effect.haltMod[std::size_t(t)];
        routingSum += m_effect.routingChanged[std::size_t(t)];
    }
    QString what;
    try {
        what = QString::fromStdString(mythos::interventionFromJson(b->intervention).describe());
    } catch (const std::exception&) {
        what = tr("an intervention");
    }
    const QString kl = std::isfinite(m_effect.meanKl) ? tr("mean KL(A || B) %1 nats").arg(m_effect.meanKl, 0, 'g', 3)
                                                      : tr("KL needs every position's logits");
    m_summary->setText(tr("<b>B is A under the intervention</b>: %1. Against the unmodified run: the top-1 "
                          "prediction changed at <b>%2 of %3</b> tokens, %4; the halting loop changed at %5 tokens; "
                          "on average %6% of a token's loops selected other experts.")
                           .arg(what.toHtmlEscaped())
                           .arg(m_effect.changedTop1)
                           .arg(m_effect.tokens)
                           .arg(kl)
                           .arg(haltChanged)
                           .arg(m_effect.tokens ? 100.0 * routingSum / double(m_effect.tokens) : 0.0, 0, 'f', 1));
    paintBars();
    return true;
}

void InterventionEffectPanel::setSelectedToken(int index) {
    m_selected = index;
    paintBars();
}

void InterventionEffectPanel::paintBars() {
    QStringList cats;
    QVector<double> values;
    QVector<QColor> colors;
    for (int64_t t = 0; t < m_effect.tokens; ++t) {
        cats << QString::number(t);
        values << m_effect.routingChanged[std::size_t(t)];
        // Tokens whose top-1 changed stand out.
        colors << (t == m_selected                                                       ? selectionColor()
                   : m_effect.topBase[std::size_t(t)] != m_effect.topMod[std::size_t(t)] ? QColor(200, 80, 30)
                                                                                         : QColor(90, 120, 170));
    }
    m_routing->setBars(cats, values, colors);
}

QString InterventionEffectPanel::summary() const { return m_summary->text(); }

DataTable InterventionEffectPanel::data() const {
    DataTable t;
    t.title = tr("Effect of the intervention per token");
    t.columns = {tr("token"),  tr("kl_a_b"), tr("top1_a"),         tr("top1_b"),
                 tr("halt_a"), tr("halt_b"), tr("routing_changed")};
    for (int64_t i = 0; i < m_effect.tokens; ++i) {
        const double kl = m_effect.kl[std::size_t(i)];
        t.addRow({qlonglong(i), std::isfinite(kl) ? QVariant(kl) : QVariant(), m_effect.topBase[std::size_t(i)],
                  m_effect.topMod[std::size_t(i)], m_effect.haltBase[std::size_t(i)], m_effect.haltMod[std::size_t(i)],
                  m_effect.routingChanged[std::size_t(i)]});
    }
    return t;
}

ChartHandle InterventionEffectPanel::chart() const {
    return ChartHandle{"compare-intervention", m_routing->title(), m_routing, [this] { return data(); }};
}

} // namespace mx
