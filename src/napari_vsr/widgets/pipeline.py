"""The classic pipeline builder: a compact panel that edits a :class:`Pipeline`.

A step list (add from the operator registry, remove, move up/down or drag), the selected step's
parameters as a magicgui form generated from the registry (:mod:`._step_form`), a start from a
built-in preset, Load…/Save… of the recipe file the CLI takes (``--recipe``), and a live preview
of the frame under the time slider (:mod:`._pipeline_preview`).  The panel only edits: whoever
embeds it reads :meth:`PipelineBuilder.pipeline` (or :meth:`PipelineBuilder.method_options`,
which runs it like any method through the job runner) and listens to ``changed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.classic import PRESETS, Pipeline, get_operator, get_preset
from napari_vsr.errors import ParameterError, VsrError
from napari_vsr.jobs.request import MethodOptions
from napari_vsr.widgets._pipeline_preview import LivePreview
from napari_vsr.widgets._pipeline_steps import (
    StepEntry,
    StepList,
    describe,
    operator_menu,
    steps_of,
    tool_button,
)
from napari_vsr.widgets._step_form import StepForm, label_of, plain, starting_params

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

DEFAULT_NAME = "my-pipeline"
_PRESET_PROMPT = "Preset…"
_RECIPE_FILTER = "Recipes (*.yaml *.yml *.json)"


class PipelineBuilder(QWidget):
    """Build a classic pipeline: steps from the operator registry, each with its form.

    Parameters
    ----------
    pipeline : Pipeline, optional
        Where to start (default: the ``"seed"`` preset).
    parent : QWidget, optional

    Signals
    -------
    changed()
        After every edit (steps, parameters, name, load, preset).  The pipeline may be
        invalid then; :meth:`error` says why and :meth:`pipeline` raises.
    """

    changed = Signal()

    def __init__(self, pipeline: Pipeline | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._entries: list[StepEntry] = []
        self._description = ""
        self._form: StepForm | None = None
        self._form_row: int | None = None
        self._preview: LivePreview | None = None
        self._build_ui()
        self.set_pipeline(pipeline if pipeline is not None else get_preset("seed"))

    # --- layout ---------------------------------------------------------------------------
    def _build_ui(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)

        top = QHBoxLayout()
        self.preset_combo = QComboBox()
        self.preset_combo.addItem(_PRESET_PROMPT)
        for name, preset in PRESETS.items():
            self.preset_combo.addItem(name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, preset.description,
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setToolTip("Replace the steps by a built-in pipeline, to edit")
        self.preset_combo.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.preset_combo.setMinimumWidth(80)
        self.preset_combo.activated.connect(self._preset_chosen)
        self.load_button = tool_button("Load…", "Open a recipe file (.yaml, .yml or .json), "
                                        "such as one saved here or by hand")
        self.load_button.clicked.connect(self._load_clicked)
        self.save_button = tool_button("Save…", "Save these steps as a recipe file (.yaml or "
                                        ".json), to use again here or in batch runs")
        self.save_button.clicked.connect(self._save_clicked)
        top.addWidget(self.preset_combo, 1)
        top.addWidget(self.load_button)
        top.addWidget(self.save_button)
        lay.addLayout(top)

        self.step_list = StepList()
        self.step_list.setToolTip("The steps, run from top to bottom on every frame. Select a "
                                  "step to edit its parameters; drag to reorder.")
        self.step_list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.step_list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.step_list.setMinimumHeight(56)
        self.step_list.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.step_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.step_list.currentRowChanged.connect(self._show_form)
        self.step_list.reordered.connect(self._dragged)
        lay.addWidget(self.step_list, 2)

        buttons = QHBoxLayout()
        self.add_button = tool_button("Add step", "Add an operation after the selected step")
        self.add_menu = operator_menu(self, self.add_step)
        self.add_button.setMenu(self.add_menu)
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.remove_button = tool_button("Remove", "Remove the selected step")
        self.remove_button.clicked.connect(self.remove_step)
        self.up_button = tool_button("Up", "Move the selected step one place earlier")
        self.up_button.clicked.connect(lambda: self.move_step(-1))
        self.down_button = tool_button("Down", "Move the selected step one place later")
        self.down_button.clicked.connect(lambda: self.move_step(1))
        for b in (self.add_button, self.remove_button, self.up_button, self.down_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay.addLayout(buttons)

        self.form_title = QLabel()
        self.form_title.setWordWrap(True)
        self.form_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.form_title)
        self.form_area = QScrollArea()
        self.form_area.setWidgetResizable(True)
        self.form_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.form_area.setMinimumHeight(48)
        self.form_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.form_area.setToolTip("The selected step's parameters")
        lay.addWidget(self.form_area, 3)

        bottom = QHBoxLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText(DEFAULT_NAME)
        self.name_edit.setToolTip("The pipeline's name: it names the result layers "
                                  "(classic:<name>) and is saved in the recipe file")
        self.name_edit.textEdited.connect(self._name_edited)
        self.preview_check = QCheckBox("Live preview")
        self.preview_check.setToolTip(
            "Show the current frame run through these steps as a layer over the source, "
            "updated as you edit or move the time slider")
        self.preview_check.setEnabled(False)
        self.preview_check.toggled.connect(self._preview_toggled)
        bottom.addWidget(QLabel("Name"))
        bottom.addWidget(self.name_edit, 1)
        bottom.addWidget(self.preview_check)
        lay.addLayout(bottom)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setToolTip("What the pipeline does, or what is wrong with it")
        lay.addWidget(self.message)

    # --- public API -----------------------------------------------------------------------
    def pipeline(self) -> Pipeline:
        """The pipeline as built now.

        Raises
        ------
        ParameterError
            No steps, or a step whose parameters are invalid (the message names the step,
            the parameter and the allowed values).
        """
        if not self._entries:
            raise ParameterError("the pipeline has no steps; add one with 'Add step'")
        steps = [(e.op, {k: v for k, v in e.params.items() if v is not None})
                 for e in self._entries]
        return Pipeline(steps, name=self.name(), description=self._description)

    def error(self) -> str | None:
        """Why :meth:`pipeline` would fail, else None."""
        try:
            self.pipeline()
        except ParameterError as exc:
            return str(exc)
        return None

    def name(self) -> str:
        """The pipeline's name (the placeholder when the field is empty)."""
        return self.name_edit.text().strip() or DEFAULT_NAME

    def set_pipeline(self, pipeline: Pipeline) -> None:
        """Show ``pipeline`` (replacing every step, the name and description)."""
        if not isinstance(pipeline, Pipeline):
            raise ParameterError(f"expected a Pipeline, got {type(pipeline).__name__}")
        self._entries = [StepEntry(s.op, dict(s.params)) for s in pipeline.steps]
        self._description = pipeline.description
        self.name_edit.setText(pipeline.name)
        self._refresh(select=0 if self._entries else None)

    def load_preset(self, name: str) -> None:
        """Start from the built-in preset ``name`` (``ParameterError`` lists the known ones)."""
        self.set_pipeline(get_preset(name))

    def load(self, path: str | os.PathLike) -> Pipeline:
        """Load a recipe file (``.yaml``, ``.yml``, ``.json``, as ``--recipe`` takes).

        Raises
        ------
        ParameterError, SourceNotFoundError, UnreadableMediaError
            The message names the file and the problem; nothing is changed.
        """
        try:
            pipeline = Pipeline.from_file(path)
        except ParameterError as exc:
            if os.fspath(path) in str(exc):
                raise
            # a step's error names the recipe, not its file: the user picked a file
            raise ParameterError(str(exc), path=path) from None
        self.set_pipeline(pipeline)
        return pipeline

    def save(self, path: str | os.PathLike) -> None:
        """Save the pipeline as a recipe file (the format from the suffix: ``.json`` or YAML).

        Raises
        ------
        ParameterError
            The pipeline is invalid, or the suffix is not a recipe suffix.
        OSError
            The file cannot be written.
        """
        self.pipeline().to_file(path)

    def method_options(self) -> MethodOptions:
        """The classic method with this pipeline inline, to run like any method
        (``JobRequest(method=builder.method_options(), ...)``).

        Raises
        ------
        ParameterError
            As :meth:`pipeline`.
        """
        return MethodOptions(method="classic", pipeline=self.pipeline().to_dict())

    def set_preview_target(self, viewer: napari.Viewer,
                           layer_getter: Callable[[], Image | None]) -> None:
        """Enable "Live preview": the frame of ``layer_getter()`` under ``viewer``'s time
        slider, run through the pipeline, shown as ``"<layer> pipeline preview"`` over it.

        It follows edits and the time slider; call :meth:`refresh_preview` when the getter's
        layer changes.  Removing the source removes its preview."""
        if self._preview is not None:
            self._preview.set_enabled(False)
            self._preview.deleteLater()
        self._preview = LivePreview(viewer, layer_getter, self.pipeline, parent=self)
        self._preview.status.connect(self._preview_status)
        self.preview_check.setEnabled(True)
        if self.preview_check.isChecked():
            self._preview.set_enabled(True)

    def refresh_preview(self) -> None:
        """Preview again now (the owner calls it when ``layer_getter`` would return another
        layer; edits and time-slider moves refresh it by themselves)."""
        if self._preview is not None:
            self._preview.request()

    @property
    def preview(self) -> LivePreview | None:
        """The live preview (its ``layer``, ``busy``, ``updated`` signal), once a target is
        set."""
        return self._preview

    # --- editing (also what the buttons call) ---------------------------------------------
    def add_step(self, op: str, params: Mapping[str, Any] | None = None,
                 index: int | None = None) -> int:
        """Insert a step (default: after the selected one, or at the end) and select it;
        returns its row.  ``params`` default to the operator's defaults (made valid)."""
        spec = get_operator(op)
        values = starting_params(spec) if params is None else {**spec.defaults, **params}
        if index is None:
            row = self.step_list.currentRow()
            index = row + 1 if row >= 0 else len(self._entries)
        index = max(0, min(index, len(self._entries)))
        self._entries.insert(index, StepEntry(op, values))
        self._edited(select=index)
        return index

    def remove_step(self, index: int | None = None) -> None:
        """Remove a step (default: the selected one)."""
        index = self.step_list.currentRow() if index is None else index
        if not 0 <= index < len(self._entries):
            return
        del self._entries[index]
        self._edited(select=min(index, len(self._entries) - 1) if self._entries else None)

    def move_step(self, offset: int, index: int | None = None) -> None:
        """Move a step (default: the selected one) by ``offset`` places."""
        index = self.step_list.currentRow() if index is None else index
        target = index + offset
        if not (0 <= index < len(self._entries) and 0 <= target < len(self._entries)):
            return
        self._entries.insert(target, self._entries.pop(index))
        self._edited(select=target)

    def set_params(self, index: int, **params: Any) -> None:
        """Change parameters of step ``index`` (as editing its form does)."""
        entry = self._entries[index]
        unknown = set(params) - set(get_operator(entry.op).params)
        if unknown:
            raise ParameterError(f"step {index + 1} ({entry.op}): unknown parameter(s) "
                                 f"{', '.join(sorted(unknown))}")
        entry.params.update(params)
        if self._form is not None and self._form_row == index:
            self._form.set_values(params)
        self._edited(select=index, rebuild_form=False)

    @property
    def form(self) -> StepForm | None:
        """The selected step's form."""
        return self._form

    # --- reactions ------------------------------------------------------------------------
    def _edited(self, *, select: int | None, rebuild_form: bool = True) -> None:
        """After a change of the steps: rename an edited preset, redraw, tell listeners."""
        name = self.name_edit.text().strip()
        if name in PRESETS and self._steps_dict() != steps_of(PRESETS[name]):
            self.name_edit.setText(f"{name}-edited")
            self._description = f"edited from the {name!r} preset"
        self._refresh(select=select, rebuild_form=rebuild_form)

    def _steps_dict(self) -> list[dict[str, Any]]:
        return [{"op": e.op, **{k: (list(v) if isinstance(v, tuple) else v)
                                for k, v in e.params.items() if v is not None}}
                for e in self._entries]

    def _refresh(self, *, select: int | None, rebuild_form: bool = True) -> None:
        """Redraw the list (and the form of ``select``), the summary, then emit ``changed``."""
        self.step_list.show_steps(self._entries, select)
        row = self.step_list.currentRow()
        if rebuild_form or row != self._form_row:
            self._show_form(row)
        self._update_buttons()
        self._update_message()
        self.changed.emit()
        if self._preview is not None:
            self._preview.request()

    def _show_form(self, row: int) -> None:
        """Show the parameter form of step ``row`` (none for -1)."""
        old = self.form_area.takeWidget()
        if old is not None:
            old.deleteLater()
        self._form, self._form_row = None, None
        if not 0 <= row < len(self._entries):
            self.form_title.setText("Select a step to edit its parameters." if self._entries
                                    else "Add a step to start.")
            self._update_buttons()
            return
        entry = self._entries[row]
        spec = get_operator(entry.op)
        form = StepForm(spec, entry.params)
        form.container.changed.connect(self._form_edited)
        self._form, self._form_row = form, row
        summary = plain(spec.summary)
        self.form_title.setText(f"<b>{row + 1}. {label_of(entry.op)}</b> — {summary}"
                                + ("" if form.fields else " (no parameters)"))
        self.form_title.setToolTip(summary)
        holder = QWidget()  # the rows packed at the top, not spread over the area
        holder_lay = QVBoxLayout(holder)
        holder_lay.setContentsMargins(0, 0, 0, 0)
        holder_lay.addWidget(form.native)
        holder_lay.addStretch(1)
        self.form_area.setWidget(holder)
        self._update_buttons()

    def _form_edited(self, *args: Any) -> None:
        if self._form is None or self._form_row is None:
            return
        row = self._form_row
        self._entries[row].params.update(self._form.values())
        self._edited(select=row, rebuild_form=False)

    def _dragged(self) -> None:
        order = self.step_list.order()
        if sorted(order) != list(range(len(self._entries))):
            self._refresh(select=self.step_list.currentRow())  # not a plain move: redraw
            return
        moved = self.step_list.currentRow()
        self._entries = [self._entries[i] for i in order]
        self._edited(select=moved)

    def _name_edited(self, text: str) -> None:
        self._update_message()
        self.changed.emit()
        if self._preview is not None:
            self._preview.request()

    def _update_buttons(self) -> None:
        row = self.step_list.currentRow()
        n = len(self._entries)
        self.remove_button.setEnabled(0 <= row < n)
        self.up_button.setEnabled(0 < row < n)
        self.down_button.setEnabled(0 <= row < n - 1)
        self.save_button.setEnabled(n > 0)

    def _update_message(self) -> None:
        problem = self.error()
        if problem:
            self._set_message(problem, error=True)
            return
        pipeline = self.pipeline()
        self._set_message(describe(pipeline), error=False)

    def _set_message(self, text: str, *, error: bool) -> None:
        self.message.setText(text)
        self.message.setToolTip(text)
        self.message.setStyleSheet("color: #e0584f;" if error else "")

    def _preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemText(index)
        self.preset_combo.setCurrentIndex(0)
        if name in PRESETS:
            self.load_preset(name)

    def _load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a recipe", "", _RECIPE_FILTER)
        if not path:
            return
        try:
            self.load(path)
        except (VsrError, OSError, ValueError) as exc:
            self._set_message(f"Could not load the recipe: {exc}", error=True)

    def _save_clicked(self) -> None:
        suggested = f"{self.name()}.yaml"
        path, _ = QFileDialog.getSaveFileName(self, "Save the recipe", suggested, _RECIPE_FILTER)
        if not path:
            return
        if not Path(path).suffix:
            path += ".yaml"
        try:
            self.save(path)
        except (VsrError, OSError, ValueError) as exc:
            self._set_message(f"Could not save the recipe to {path}: {exc}", error=True)
            return
        self._set_message(f"Saved to {path}", error=False)

    def _preview_toggled(self, on: bool) -> None:
        if self._preview is not None:
            self._preview.set_enabled(on)
        if not on:
            self._update_message()

    def _preview_status(self, text: str) -> None:
        if text:
            self._set_message(text, error=True)
        else:
            self._update_message()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._preview is not None:
            self._preview.set_enabled(False)
        super().closeEvent(event)
