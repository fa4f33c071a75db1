#pragma once
// Every view of a trace, in one list: the window's tabs, its View menu and Ctrl+1.. shortcuts
// follow it, and a report (writeReport, mythos-cli report) renders the charts of the views
// marked for it in the same order. Adding a view is adding an entry here. A view's id and tab
// title are its TraceView::viewId() and viewTitle(); what it exports, its charts().
#include <functional>

#include <QList>
#include <QString>
#include <QStringList>

QT_BEGIN_NAMESPACE
class QWidget;
QT_END_NAMESPACE

namespace mx {

class TraceView;

struct ViewEntry {
    QString id;            // the view's viewId()
    bool inReport = false; // a report renders its charts at each loop count
    std::function<TraceView*(QWidget* parent)> create;
    // Applied to the instance a report makes (a report has no model behind it); may be empty.
    std::function<void(TraceView*)> prepareForReport;
};

// In tab order.
const QList<ViewEntry>& viewRegistry();

enum class ViewSet { Window, Report };
// A new instance of every view of `set`, in registry order, children of `parent`, showing
// no trace yet.
QList<TraceView*> createViews(ViewSet set, QWidget* parent);

// The ids of the views of `set`, in registry order.
QStringList viewIds(ViewSet set = ViewSet::Window);

// The first of `views` of type View, or null.
template <class View>
View* findView(const QList<TraceView*>& views) {
    for (TraceView* v : views)
        if (auto* t = qobject_cast<View*>(v))
            return t;
    return nullptr;
}

} // namespace mx
