#pragma once
// The prompt as tokens: one chip per text piece, wrapped over lines. Clicking a chip
// selects that token everywhere; the selection is drawn highlighted.
#include <optional>

#include <QStringList>
#include <QVector>
#include <QWidget>

namespace mx {

// Keyboard selection over a row of token chips: Right/Left move, Escape clears. Returns the
// new selection (-1 = none), or nullopt for keys that are not selection keys.
std::optional<int> chipSelectionForKey(int key, int selected, int count);

class TokenStrip : public QWidget {
    Q_OBJECT
public:
    explicit TokenStrip(QWidget* parent = nullptr);

    void setTokens(const QStringList& pieces, const QVector<int>& ids);
    void setSelected(int index); // -1 = none
    int selected() const { return m_selected; }
    int count() const { return int(m_pieces.size()); }
    QRect chipRect(int index) const; // for tests and tooltips

    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int w) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override { return {100, 24}; }

signals:
    void tokenSelected(int index);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent*) override;
    void resizeEvent(QResizeEvent*) override;
    bool event(QEvent* e) override; // tooltips
    void keyPressEvent(QKeyEvent* e) override;

private:
    QVector<QRect> layoutChips(int width) const;
    QStringList m_pieces;
    QVector<int> m_ids;
    QVector<QRect> m_rects;
    int m_selected = -1;
};

} // namespace mx
