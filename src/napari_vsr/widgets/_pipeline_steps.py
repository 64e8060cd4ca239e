"""The parts of the pipeline builder's step list: the edited steps, the list widget, the
operator menu and the one-line summary of a pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QMenu, QToolButton, QWidget

from napari_vsr.classic import OPERATORS, Pipeline, get_operator
from napari_vsr.classic.operators import CATEGORIES
from napari_vsr.errors import ParameterError
from napari_vsr.widgets._step_form import label_of, plain


@dataclass
class StepEntry:
    """One step as edited: the operator name and every parameter (``None``: unset)."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    def error(self, index: int) -> str | None:
        """Why this step is invalid (named as in a recipe file), else None."""
        try:
            get_operator(self.op).validate(
                {k: v for k, v in self.params.items() if v is not None},
                where=f"step {index} ({self.op})")
        except ParameterError as exc:
            return str(exc)
        return None

    def text(self, index: int) -> str:
        """The list line: ``"2. gaussian blur: ksize 5, sigma 1"``."""
        spec = get_operator(self.op)
        shown = []
        for name, value in self.params.items():
            if value is None:
                continue
            if isinstance(value, tuple | list):
                value = "x".join(str(v) for v in value)
            elif isinstance(value, bool):
                value = "on" if value else "off"
            elif isinstance(value, float):
                value = f"{value:g}"
            shown.append(f"{name} {value}")
        temporal = " [frames ±]" if spec.temporal else ""
        params = f": {', '.join(shown)}" if shown else ""
        return f"{index}. {label_of(self.op)}{temporal}{params}"


class _StepList(QListWidget):
    """The step list; tells when a drag has reordered its rows."""

    reordered = Signal()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().dropEvent(event)
        self.reordered.emit()


class StepList(QListWidget):
    """The step list; tells when a drag has reordered its rows."""

    reordered = Signal()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().dropEvent(event)
        self.reordered.emit()

    def show_steps(self, entries: Sequence[StepEntry], select: int | None) -> None:
        """Redraw one row per step (invalid ones marked, their problem as the tooltip) and
        select row ``select``, without emitting the selection signals."""
        self.blockSignals(True)
        self.clear()
        for i, entry in enumerate(entries, start=1):
            item = QListWidgetItem(entry.text(i))
            item.setData(Qt.ItemDataRole.UserRole, i - 1)  # its place before a drag
            problem = entry.error(i)
            item.setToolTip(problem or plain(get_operator(entry.op).summary))
            if problem:
                item.setText("⚠ " + item.text())
                item.setForeground(Qt.GlobalColor.red)
            self.addItem(item)
        if select is not None and 0 <= select < len(entries):
            self.setCurrentRow(select)
        self.blockSignals(False)

    def order(self) -> list[int]:
        """The rows' places before the last drag."""
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]


def operator_menu(parent: QWidget, pick: Callable[[str], Any]) -> QMenu:
    """Every registered operator by category, ``"<name> — <what it does>"``, the full summary
    as its tooltip; choosing one calls ``pick(name)``.  Each action's ``data()`` is its name."""
    menu = QMenu(parent)
    menu.setToolTipsVisible(True)
    groups = [(category.capitalize(), names) for category, names in CATEGORIES.items()]
    others = tuple(name for name in OPERATORS
                   if name not in {n for _, names in groups for n in names})
    if others:
        groups.append(("Other", others))
    for title, names in groups:
        menu.addSection(title)
        for name in names:
            summary = plain(OPERATORS[name].summary)
            action = menu.addAction(f"{label_of(name)} — {_first_sentence(summary)}")
            action.setToolTip(summary)
            action.setData(name)
            action.triggered.connect(lambda _=False, op=name: pick(op))
    return menu


def tool_button(text: str, tooltip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tooltip)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return button


def _first_sentence(text: str) -> str:
    head = text.split(". ")[0].rstrip(".")
    return head if len(head) <= 60 else head[:57] + "…"


def steps_of(pipeline: Pipeline) -> list[dict[str, Any]]:
    return pipeline.to_dict()["steps"]


def describe(pipeline: Pipeline) -> str:
    """One line for users: steps, size change, frames used, and whether it runs as a method."""
    n = len(pipeline)
    parts = [f"{n} step{'s' if n != 1 else ''}"]
    scale = pipeline.scale
    if scale is None:
        parts.append("resizes to a fixed size")
    elif scale != 1:
        parts.append(f"enlarges x{scale:g}")
    else:
        parts.append("keeps the size")
    if pipeline.context:
        parts.append(f"uses {pipeline.context} frame{'s' if pipeline.context != 1 else ''} "
                     "on each side")
    text = ", ".join(parts) + "."
    if scale is None or scale < 1 or not float(scale).is_integer():
        text += (" To run it on a whole clip the total enlargement must be a whole number "
                 "(1, 2, 3, 4…); the preview works anyway.")
    return text
