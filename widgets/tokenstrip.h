#pragma once
// The prompt as tokens: one chip per text piece, wrapped over lines. Clicking a chip
// selects that token everywhere; the selection is drawn highlighted.
#include <optional>

#include <QStringList>
#include <QVector>
#include <QWidget>

QT_BEGIN_NAMESPACE
class QPainter;
QT_END_NAMESPACE

namespace mx {

// Keyboard selection over a row of token chips: Right/Left move, Escape clears. Returns the
// new selection (-1 = none), or nullopt for keys that are not selection keys.
std::optional<int> chipSelectionForKey(int key, int selected, int count);

// Lays chips of the given widths out in lines: from (x0, y0), `h` high, wrapping before a chip
// that would pass `right`; gapX between chips, gapY between lines.
QVector<QRect> flowChips(const QVector<int>& widths, int right, int x0, int y0, int h, int gapX, int gapY);

// Base of the coloured token texts (halting, routing): chips laid out by the subclass in
// m_rects, one selectable at a time by click or keyboard, a tooltip per chip.
class ChipRow : public QWidget {
    Q_OBJECT
public:
    explicit ChipRow(QWidget* parent = nullptr);
    void setSelected(int index); // -1 = none
    int selected() const { return m_selected; }
    virtual int count() const = 0;

signals:
    void tokenClicked(int index); // -1 when the selected token is clicked again

protected:
    virtual QString chipTooltip(int index) const = 0;
    // The selected chip's ring (in selectionColor()) and, with focus, a dotted focus frame.
    void paintSelection(QPainter& p) const;
    void mousePressEvent(QMouseEvent* e) override;
    void keyPressEvent(QKeyEvent* e) override;
    bool event(QEvent* e) override; // tooltips; Escape clears a selection before shortcuts see it

    QVector<QRect> m_rects;
    int m_selected = -1;
};

// A legend over wrapped chips, one per token, whose height follows its width (set on every
// relayout, so that a scroll area around a view needs no height-for-width support): the
// shared part of the halting and routing texts. Subclasses lay out the legend and the chips
// and paint them.
class ChipText : public ChipRow {
    Q_OBJECT
public:
    // lineGap: the space between the legend and the first line of chips when there are none.
    explicit ChipText(int lineGap, QWidget* parent = nullptr);

    int count() const override { return int(m_labels.size()); }
    QRect tokenRect(int index) const { return m_rects.value(index); }

    int heightForWidth(int w) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

protected:
    // Stores the chips' texts and tooltips, keeps the selection in range, lays out again.
    void setChips(const QStringList& labels, const QStringList& tooltips);
    virtual QVector<QRect> layoutChips(int width) const = 0;
    virtual int legendHeight(int width) const = 0;
    QString chipTooltip(int index) const override { return m_tooltips.value(index); }
    void resizeEvent(QResizeEvent*) override;

    QStringList m_labels, m_tooltips;

private:
    int m_lineGap;
};

class TokenStrip : public ChipRow {
    Q_OBJECT
public:
    explicit TokenStrip(QWidget* parent = nullptr);

    void setTokens(const QStringList& pieces, const QVector<int>& ids);
    int count() const override { return int(m_pieces.size()); }
    QString piece(int index) const { return m_pieces.value(index); } // a chip's text
    QRect chipRect(int index) const;                                 // for tests and tooltips

    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int w) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override { return {100, 24}; }

signals:
    void tokenSelected(int index); // clicks and keys; -1 = none

protected:
    QString chipTooltip(int index) const override;
    void paintEvent(QPaintEvent*) override;
    void resizeEvent(QResizeEvent*) override;

private:
    QVector<QRect> layoutChips(int width) const;
    QStringList m_pieces;
    QVector<int> m_ids;
};

} // namespace mx
