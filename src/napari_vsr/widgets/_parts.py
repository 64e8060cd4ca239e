"""Small Qt building blocks shared by the dock widgets: a foldable section, a status line that
wraps instead of widening the dock, and a scroll area that lets a tall form fit any screen."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.errors import napari_wording

#: characters after which a long word (a URL, a path) may break across lines
_BREAK_AFTER = "/\\_.,:=&?-"
_ZWSP = "\u200b"
#: the most lines a status line takes
MAX_STATUS_LINES = 5


def breakable(text: str) -> str:
    """``text`` with zero-width break opportunities after path and URL separators, so a word
    label can wrap a long URL instead of growing wider than its dock."""
    out = []
    for ch in text:
        out.append(ch)
        if ch in _BREAK_AFTER:
            out.append(_ZWSP)
    return "".join(out)


class StatusLine(QLabel):
    """A word-wrapped status label that never makes its dock wider.

    :meth:`show_message` takes plain text (napari's wording of command-line hints is applied);
    the full text is also the tooltip, and :attr:`text_plain` returns it without break marks.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Ignored horizontally: the layout gives the label the dock's width, never the text's
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.setMinimumWidth(10)
        # at most a few lines, so that a long message never makes the window taller than the
        # screen; the whole text is the tooltip
        self.setMaximumHeight(self.fontMetrics().lineSpacing() * MAX_STATUS_LINES + 4)
        self._plain = ""
        self._idle_tip = "what the last action did"
        super().setToolTip(self._idle_tip)

    def show_message(self, text: str) -> None:
        text = napari_wording(text)
        self._plain = text
        self.setText(breakable(text))
        self.setToolTip(text if len(text) > 60 else self._idle_tip)
        self.updateGeometry()

    def show_error(self, text: str) -> None:
        """Show ``text`` (in napari's words) here and as a napari error notification."""
        from napari.utils.notifications import show_error

        self.show_message(text)
        show_error(self._plain)

    def clear_message(self) -> None:
        self.show_message("")

    @property
    def text_plain(self) -> str:
        return self._plain

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        return super().heightForWidth(max(width, 10))


class Section(QWidget):
    """A titled section that folds: a flat arrow button above its content widget.

    Parameters
    ----------
    title : str
    content : QWidget
        Shown when the section is open.
    expanded : bool
        Open at start.
    tooltip : str
        Shown on the title.
    """

    def __init__(self, title: str, content: QWidget, *, expanded: bool = True,
                 tooltip: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.content = content
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setAutoRaise(True)
        self.toggle.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.toggle.setToolTip(tooltip or f"show or hide {title}")
        self.toggle.toggled.connect(self.set_expanded)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.toggle)
        lay.addWidget(line)
        lay.addWidget(content)
        self.toggle.setChecked(expanded)
        self.set_expanded(expanded)

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_expanded(self, on: bool) -> None:
        if self.toggle.isChecked() != on:
            self.toggle.setChecked(on)  # re-enters through toggled
            return
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.content.setVisible(on)


class _FormScroll(QScrollArea):
    """A vertical scroll area that is as wide as its content needs and may be short."""

    def __init__(self, inner: QWidget, max_min_height: int):
        super().__init__()
        self._max_min_height = max_min_height
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # napari's docks keep the width they were given (their minimum is 50 px): a form
        # wider than a narrowed dock scrolls instead of being cut
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.setWidget(inner)
        inner.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # a section opened or closed: the width it needs changed
        return super().eventFilter(obj, event)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        inner = self.widget().minimumSizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(inner.width() + bar, min(self._max_min_height, inner.height()))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        inner = self.widget().sizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(inner.width() + bar, inner.height())


def scrolling(inner: QWidget, *, max_min_height: int = 260) -> QScrollArea:
    """``inner`` in a frameless vertical scroll area as wide as ``inner`` needs, whose minimum
    height is small, so the dock (and the window) fits any screen; the form scrolls when the
    dock is short."""
    return _FormScroll(inner, max_min_height)


def plural(n: int, word: str) -> str:
    """``"1 frame"``, ``"3 frames"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class NameCombo(QComboBox):
    """A combo box of layer names that never widens its dock: long names are cut at the end
    in the box (the whole name is its tooltip) and shown whole in the open list."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.view().setTextElideMode(Qt.TextElideMode.ElideNone)
        self.currentTextChanged.connect(self._tip)
        self._base_tip = ""

    def setToolTip(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._base_tip = text
        self._tip(self.currentText())

    def _tip(self, text: str) -> None:
        tip = f"{self._base_tip}\n{text}" if text and self._base_tip else (text or self._base_tip)
        super().setToolTip(tip)

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        view = self.view()
        width = max((view.sizeHintForColumn(0) if self.count() else 0) + 24, self.width())
        view.setMinimumWidth(width)
        super().showPopup()
