#include "viewregistry.h"

#include "attentionview.h"
#include "comparisonview.h"
#include "depthsweepview.h"
#include "haltingview.h"
#include "kvview.h"
#include "lensview.h"
#include "routingview.h"
#include "stabilityview.h"
#include "trajectoryview.h"

namespace mx {

namespace {
template <class View>
TraceView* make(QWidget* parent) {
    return new View(parent);
}
} // namespace

const QList<ViewEntry>& viewRegistry() {
    static const QList<ViewEntry> entries = {
        {QStringLiteral("halting"), true, make<HaltingView>, {}},
        {QStringLiteral("routing"), true, make<RoutingView>, {}},
        {QStringLiteral("kv"), true, make<KvView>, {}},
        // A report has no model to rescale: the Rescale A controls stay disabled.
        {QStringLiteral("stability"), true, make<StabilityView>,
         [](TraceView* v) { static_cast<StabilityView*>(v)->setModelAvailable(false); }},
        {QStringLiteral("lens"), true, make<LensView>, {}},
        {QStringLiteral("attention"), true, make<AttentionView>, {}},
        {QStringLiteral("trajectory"), true, make<TrajectoryView>, {}},
        {QStringLiteral("sweep"), false, make<DepthSweepView>, {}},
        {QStringLiteral("compare"), false, make<ComparisonView>, {}},
    };
    return entries;
}

QList<TraceView*> createViews(ViewSet set, QWidget* parent) {
    QList<TraceView*> views;
    for (const ViewEntry& e : viewRegistry()) {
        if (set == ViewSet::Report && !e.inReport)
            continue;
        TraceView* v = e.create(parent);
        if (set == ViewSet::Report && e.prepareForReport)
            e.prepareForReport(v);
        views << v;
    }
    return views;
}

QStringList viewIds(ViewSet set) {
    QStringList ids;
    for (const ViewEntry& e : viewRegistry())
        if (set == ViewSet::Window || e.inReport)
            ids << e.id;
    return ids;
}

} // namespace mx
