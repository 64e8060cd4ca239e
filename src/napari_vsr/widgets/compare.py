"""The Compare dock widget: wipe, side by side, PSNR/SSIM per frame, comparison video export.

Thin by design: pixels and numbers come from :mod:`napari_vsr.compare`; this module picks
frames from layers (matched by world time, so a result of a frame range lines up with its
source), shows them and runs the long parts in thread workers.

The wipe composites nothing: napari draws the right layer itself and, on top, only the
columns of the left layer left of the divider (a lazy :class:`~napari_vsr.compare.ColumnWindow`
of columns ``[0, divider)``, so its placement never changes), both in the layers' own world
coordinates; the other image layers are hidden meanwhile, as in side-by-side mode.  A divider
move swaps the window (a slice of the frame read last; usually the small source, so a small
texture) and moves the divider line; a time step is napari's own slicing, and a result that is
still growing keeps updating (its layer is the one shown).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Shapes
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr import compare
from napari_vsr.errors import Cancelled, OutputExistsError
from napari_vsr.jobs.metadata import result_metadata
from napari_vsr.jobs.progress import CancelToken, Progress, format_progress
from napari_vsr.placement import frame_index
from napari_vsr.widgets._plot import MetricsPlot

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

WIPE_LEFT_NAME = "wipe left"
DIVIDER_NAME = "wipe divider"
PREVIEW_NAME = "comparison preview"
WIPE_LAYERS = (WIPE_LEFT_NAME, DIVIDER_NAME)
OWN_LAYERS = (*WIPE_LAYERS, PREVIEW_NAME)
SLIDER_STEPS = 1000
#: how the smaller layer of the wipe is drawn by napari for each "Upscaling" choice
DISPLAY_INTERPOLATION = {"nearest": "nearest", "bicubic": "cubic"}
VIDEO_FILTER = "Video (*.mp4 *.mkv *.mov)"


def _grid_of(viewer):
    """The viewer's grid settings: ``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def aligned_pairs(a: Image, b: Image) -> list[tuple[int, int]]:
    """(frame of ``a``, frame of ``b``) pairs showing the same world time, in ``a``'s order."""
    n_b = int(b.data.shape[0])
    pairs = []
    for i in range(int(a.data.shape[0])):
        world_t = a.translate[0] + i * a.scale[0]
        j = frame_index(world_t, b.scale[0], b.translate[0], n_b)
        if j is not None:
            pairs.append((i, j))
    return pairs


def result_record(layer) -> dict[str, Any] | None:
    """The provenance record of a layer that holds an enhancement's result, or None.

    A result layer carries the record as its metadata (the Enhance widget, napari-vsr's
    reader of result stores) or under ``metadata["enhancement"]``; a layer backed by a result
    store without a record (``metadata["store_path"]``) gives ``{}``.  An Enhance preview
    (``metadata["napari_vsr_preview"]``) is not a result.
    """
    md = getattr(layer, "metadata", None) or {}
    if md.get("napari_vsr_preview"):  # an Enhance preview: a region of one frame, not a result
        return None
    nested = md.get("enhancement")
    record = result_metadata(dict(nested) if isinstance(nested, dict) else dict(md))
    if record is None and md.get("store_path"):
        return {}
    return record


def source_layer(record: dict[str, Any], layers) -> Any | None:
    """The layer among ``layers`` that a result was made from: by the recorded source name,
    else by the recorded source file."""
    src = record.get("source") or {}
    if not isinstance(src, dict):
        return None
    name, path = src.get("name"), src.get("path")
    if name:
        for layer in layers:
            if layer.name == name:
                return layer
    if path:
        target = os.path.abspath(os.fspath(path))
        for layer in layers:
            own = getattr(getattr(layer, "source", None), "path", None) or (
                layer.metadata or {}).get("path")
            if own and os.path.abspath(os.fspath(own)) == target:
                return layer
    return None


class _Picked(Sequence):
    """Frames ``indices`` of a layer's data, as a lazy sequence."""

    def __init__(self, data, indices: list[int]):
        self._data, self._indices = data, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, k):
        return np.asarray(self._data[self._indices[k]])


class _Relay(QObject):
    """Carries progress from a worker thread to the main thread (queued signal)."""

    progressed = Signal(object)  # a napari_vsr.jobs.progress.Progress


def _status_label() -> QLabel:
    """A label that wraps long text and never asks for width (it cannot widen the dock)."""
    label = QLabel("")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    label.setMinimumWidth(0)
    return label


class CompareWidget(QWidget):
    """Dock widget comparing two image layers with the same time axis.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    metrics : list of napari_vsr.compare.FrameMetrics
        The last computed metrics (frame index of the compared layer, reference frame).
    last_export : (str, str) or None
        ("done" | "cancelled" | "error" | "declined", message) of the last video export.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.metrics: list[compare.FrameMetrics] = []
        self._metrics_layer: str | None = None  # the layer whose frames the metrics index
        self._metrics_worker = None
        self._export_worker = None
        self._export_token: CancelToken | None = None
        self._export_pbar = None
        self.last_export: tuple[str, str] | None = None
        self._preview_worker = None
        self._preview_again = False
        self._grid_hidden: list[str] = []
        self._wipe_hidden: list[str] = []  # image layers the wipe hid
        self._wipe_shown: list[str] = []  # the right layer, when the wipe made it visible
        self._wipe_window: compare.ColumnWindow | None = None
        self._removing_wipe = False
        self._names: list[str] = []
        self._relay = _Relay()
        self._relay.progressed.connect(self._export_progressed)
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._layer_inserted)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()
        self._choose_defaults()
        self.viewer.dims.events.current_step.connect(self._dims_changed)

    # --- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addLayout(form)
        self.left_combo = QComboBox()
        self.left_combo.setToolTip("The layer shown left of the divider, usually the original")
        self.right_combo = QComboBox()
        self.right_combo.setToolTip("The layer shown right of the divider, usually an "
                                    "enhanced result")
        for combo in (self.left_combo, self.right_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            combo.activated.connect(self._picked_by_hand)
        self.swap_button = QToolButton()
        self.swap_button.setText("⇅")
        self.swap_button.setToolTip("Swap the left and right layers")
        self.swap_button.clicked.connect(self.swap_layers)
        right_row = QHBoxLayout()
        right_row.addWidget(self.right_combo, 1)
        right_row.addWidget(self.swap_button)
        form.addRow("Left layer", self.left_combo)
        form.addRow("Right layer", right_row)
        self.follow_check = QCheckBox("Follow new results")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip(
            "When an enhancement adds a result layer, show it on the right and its source on "
            "the left (turned off when you pick a layer yourself)")
        form.addRow(self.follow_check)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_view_tab(), "View")
        self.tabs.addTab(self._build_metrics_tab(), "Metrics")
        self.tabs.addTab(self._scrolled(self._build_video_tab()), "Video")
        self.tabs.setTabToolTip(0, "Wipe between the two layers or show them side by side")
        self.tabs.setTabToolTip(1, "PSNR and SSIM of one layer against the other, per frame")
        self.tabs.setTabToolTip(2, "Write a sliding-wipe comparison video")
        outer.addWidget(self.tabs, 1)
        self.status_label = _status_label()
        self.status_label.setToolTip("What the Compare widget did last")
        outer.addWidget(self.status_label)
        for combo in (self.left_combo, self.right_combo):
            combo.currentIndexChanged.connect(self._inputs_changed)

    @staticmethod
    def _scrolled(widget: QWidget) -> QScrollArea:
        area = QScrollArea()
        area.setWidget(widget)
        area.setWidgetResizable(True)
        area.setFrameShape(QScrollArea.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return area

    def _build_view_tab(self) -> QWidget:
        page = QWidget()
        lay = QFormLayout(page)
        self.wipe_check = QCheckBox("Wipe")
        self.wipe_check.setToolTip("Show the left layer left of the divider and the right layer "
                                   "right of it (drag the divider below); other image layers "
                                   "are hidden until you turn it off")
        self.wipe_check.toggled.connect(self._wipe_toggled)
        self.grid_check = QCheckBox("Side by side")
        self.grid_check.setToolTip("Show only the two layers, next to each other (napari's grid "
                                   "mode); the other layers are hidden until you turn it off")
        self.grid_check.toggled.connect(self.set_grid)
        row = QHBoxLayout()
        row.addWidget(self.wipe_check)
        row.addWidget(self.grid_check)
        row.addStretch(1)
        lay.addRow(row)
        self.wipe_slider = QSlider(Qt.Orientation.Horizontal)
        self.wipe_slider.setRange(0, SLIDER_STEPS)
        self.wipe_slider.setValue(SLIDER_STEPS // 2)
        self.wipe_slider.setToolTip("Where the divider is, from the left edge to the right edge")
        self.wipe_slider.valueChanged.connect(self.update_wipe)
        lay.addRow("Divider", self.wipe_slider)
        self.interp_combo = QComboBox()
        self.interp_combo.addItems(["nearest", "bicubic"])
        self.interp_combo.setToolTip(
            "How the smaller layer is enlarged to the larger one's size: for the metrics, in "
            "the video, and in the wipe when the smaller layer is on the left (nearest shows "
            "its pixels as blocks)")
        self.interp_combo.currentIndexChanged.connect(self._interpolation_changed)
        lay.addRow("Upscaling", self.interp_combo)
        return page

    def _build_metrics_tab(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        label = QLabel("Reference")
        row.addWidget(label)
        self.reference_combo = QComboBox()
        self.reference_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.reference_combo.setMinimumContentsLength(6)
        self.reference_combo.setToolTip("The other layer is measured against this one (usually "
                                        "the ground truth or the original)")
        label.setToolTip(self.reference_combo.toolTip())
        row.addWidget(self.reference_combo, 1)
        self.metrics_button = QPushButton("Compute")
        self.metrics_button.setToolTip("Compute PSNR and SSIM for every frame the two layers "
                                       "share (in the background)")
        self.metrics_button.clicked.connect(self.compute_metrics)
        row.addWidget(self.metrics_button)
        self.csv_button = QPushButton("Save CSV…")
        self.csv_button.setToolTip("Save the metrics table as a CSV file")
        self.csv_button.clicked.connect(self._pick_csv)
        row.addWidget(self.csv_button)
        lay.addLayout(row)
        self.plot = MetricsPlot()
        self.plot.frame_clicked.connect(self._plot_clicked)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["frame", "PSNR (dB)", "SSIM"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setMinimumHeight(60)
        self.table.setToolTip("PSNR and SSIM per frame; click a row to show that frame")
        self.table.cellClicked.connect(lambda row, col: self._row_picked(row))
        self.table.currentCellChanged.connect(lambda row, *rest: self._row_picked(row))
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setChildrenCollapsible(False)
        lay.addWidget(split, 1)
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.metrics_label.setToolTip("Mean PSNR and SSIM of the last computation")
        lay.addWidget(self.metrics_label)
        return page

    def _build_video_tab(self) -> QWidget:
        page = QWidget()
        grid = QGridLayout(page)
        grid.setContentsMargins(2, 2, 2, 2)
        self.start_spin = self._spin(0, 100000, 0, "The frame where the divider starts moving; "
                                     "earlier frames show the left layer only")
        self.start_spin.valueChanged.connect(self._update_auto_step)
        self.pause_spin = self._spin(-1, 100000, -1, "A frame held for 'Pause length' extra "
                                     "frames while the divider moves")
        self.pause_spin.setSpecialValueText("none")
        self.pause_len_spin = self._spin(0, 10000, 25, "Extra frames for each pause, and for "
                                         "the holds at the end")
        self.step_spin = self._spin(0, 10000, 0, "How far the divider moves per frame, in "
                                    "pixels of the video; auto crosses the frame within the clip")
        self.step_spin.setSpecialValueText("auto")
        self.step_spin.setSuffix(" px")
        self.line_spin = self._spin(0, 1000, 4, "Width of the white divider line, in pixels of "
                                    "the video")
        self.line_spin.setSuffix(" px")
        self.fps_spin = self._spin(1, 240, 25, "Frames per second of the video")
        def put(text: str, w: QWidget, row: int, col: int, span: int = 1) -> None:
            label = QLabel(text)
            label.setToolTip(w.toolTip())
            grid.addWidget(label, row, col)
            grid.addWidget(w, row, col + 1, 1, span)

        put("Start frame", self.start_spin, 0, 0)
        put("Pause at", self.pause_spin, 0, 2)
        put("Pause length", self.pause_len_spin, 1, 0)
        put("FPS", self.fps_spin, 1, 2)
        put("Slide step", self.step_spin, 2, 0, 3)
        put("Line", self.line_spin, 3, 0)
        self.captions_check = QCheckBox("Captions")
        self.captions_check.setChecked(True)
        self.captions_check.setToolTip("Write a label into each side of the video")
        self.left_caption = QLineEdit(compare.DEFAULT_CAPTIONS[0])
        self.left_caption.setToolTip("Label of the left layer (top left of the video)")
        self.right_caption = QLineEdit(compare.DEFAULT_CAPTIONS[1])
        self.right_caption.setToolTip("Label of the right layer (top right of the video)")
        self.captions_check.toggled.connect(self.left_caption.setEnabled)
        self.captions_check.toggled.connect(self.right_caption.setEnabled)
        grid.addWidget(self.captions_check, 3, 2, 1, 2)
        grid.addWidget(self.left_caption, 4, 0, 1, 2)
        grid.addWidget(self.right_caption, 4, 2, 1, 2)
        out_label = QLabel("Output")
        self.video_edit = QLineEdit()
        self.video_edit.setPlaceholderText("comparison.mp4")
        self.video_edit.setToolTip("The video file to write (.mp4, .mkv or .mov); Export video… "
                                   "lets you confirm or change it")
        out_label.setToolTip(self.video_edit.toolTip())
        grid.addWidget(out_label, 5, 0)
        grid.addWidget(self.video_edit, 5, 1, 1, 3)
        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview frame")
        self.preview_button.setToolTip("Show the video's frame for the current time step as a "
                                       f"temporary layer ('{PREVIEW_NAME}')")
        self.preview_button.clicked.connect(self.preview_frame)
        self.export_button = QPushButton("Export video…")
        self.export_button.setToolTip("Choose the file and write the comparison video (in the "
                                      "background)")
        self.export_button.clicked.connect(self._pick_video)
        self.export_cancel = QPushButton("Cancel")
        self.export_cancel.setToolTip("Stop writing the video; nothing is left behind")
        self.export_cancel.setEnabled(False)
        self.export_cancel.clicked.connect(self.cancel_export)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.export_cancel)
        grid.addLayout(buttons, 6, 0, 1, 4)
        grid.setRowStretch(7, 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        return page

    @staticmethod
    def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setValue(value)
        s.setToolTip(tip)
        return s

    def _status(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` in the status line (wrapped; errors in red and as a notification)."""
        self.status_label.setStyleSheet("color: #ff6b6b;" if error else "")
        self.status_label.setText(text)
        if error and text:
            show_error(text)

    # --- layers -----------------------------------------------------------------------------
    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and layer.name not in OWN_LAYERS
                and not layer.multiscale and layer.ndim == 3]

    def _refresh_layers(self, event=None) -> None:
        """Refill the layer choices, keeping each choice (also through a rename)."""
        names = [layer.name for layer in self._image_layers()]
        gone = [n for n in self._names if n not in names]
        new = [n for n in names if n not in self._names]
        renamed = {gone[0]: new[0]} if len(gone) == len(new) == 1 else {}
        self._names = names
        self._wipe_hidden = [renamed.get(n, n) for n in self._wipe_hidden]
        self._wipe_shown = [renamed.get(n, n) for n in self._wipe_shown]
        self._grid_hidden = [renamed.get(n, n) for n in self._grid_hidden]
        if self._metrics_layer in renamed:
            self._metrics_layer = renamed[self._metrics_layer]
        changed = False
        for combo, default in ((self.left_combo, 0), (self.right_combo, 1),
                               (self.reference_combo, 0)):
            current = combo.currentText()
            current = renamed.get(current, current)
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            for i, name in enumerate(names):
                combo.setItemData(i, name, Qt.ItemDataRole.ToolTipRole)
            if current in names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentIndex(min(default, len(names) - 1))
                changed = True
            combo.blockSignals(False)
        if len(names) >= 2 and self.left_combo.currentText() == self.right_combo.currentText():
            others = [n for n in names if n != self.left_combo.currentText()]
            self.right_combo.blockSignals(True)
            self.right_combo.setCurrentText(others[-1] if others else names[0])
            self.right_combo.blockSignals(False)
            changed = True
        if changed:
            self._inputs_changed()

    def _choose_defaults(self) -> None:
        """Left: the source; right: the newest result (the last result layer in the list)."""
        layers = self._image_layers()
        results = [layer for layer in layers if result_record(layer) is not None]
        if results:
            self._follow(results[-1])
            return
        if len(layers) >= 2:
            self._select(layers[0].name, layers[1].name)

    def _follow(self, result) -> None:
        """Show ``result`` on the right and its source (when in the viewer) on the left."""
        record = result_record(result) or {}
        others = [layer for layer in self._image_layers() if layer.name != result.name]
        source = source_layer(record, others)
        if source is None:
            left = self.left_combo.currentText()
            if left == result.name or not left:
                plain = [layer for layer in others if result_record(layer) is None]
                left = (plain or others or [result])[0].name
        else:
            left = source.name
        self._select(left, result.name)

    def _select(self, left: str, right: str, reference: str | None = None) -> None:
        for combo, name in ((self.left_combo, left), (self.right_combo, right),
                            (self.reference_combo, reference or left)):
            combo.blockSignals(True)
            combo.setCurrentText(name)
            combo.blockSignals(False)
        self._inputs_changed()

    def _layer_inserted(self, event) -> None:
        layer = getattr(event, "value", None)
        if layer is None or layer.name in OWN_LAYERS:
            return
        layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()
        if (isinstance(layer, Image) and self.follow_check.isChecked()
                and layer.name in self._names and result_record(layer) is not None):
            self._follow(layer)

    def _layer_removed(self, event) -> None:
        layer = getattr(event, "value", None)
        name = None if layer is None else layer.name
        if name in WIPE_LAYERS and self.wipe_check.isChecked() and not self._removing_wipe:
            # the user (or closing the viewer) removed a wipe layer: the wipe is off
            self.wipe_check.setChecked(False)
        elif name in (self.left_combo.currentText(), self.right_combo.currentText()) and \
                self.wipe_check.isChecked():
            self.wipe_check.setChecked(False)
        if name not in OWN_LAYERS:
            self._refresh_layers()

    def _layer(self, name: str) -> Image | None:
        for layer in self._image_layers():
            if layer.name == name:
                return layer
        return None

    @property
    def left_layer(self) -> Image | None:
        return self._layer(self.left_combo.currentText())

    @property
    def right_layer(self) -> Image | None:
        return self._layer(self.right_combo.currentText())

    def set_layers(self, left: str, right: str, *, reference: str | None = None) -> None:
        """Choose the two layers by name (and the metrics reference, default ``left``); like a
        pick by hand, this stops following new results."""
        self.follow_check.setChecked(False)
        self._select(left, right, reference)

    def swap_layers(self) -> None:
        """Exchange the left and right layers."""
        self.follow_check.setChecked(False)
        self._select(self.right_combo.currentText(), self.left_combo.currentText(),
                     self.reference_combo.currentText())

    def _picked_by_hand(self, index=None) -> None:
        self.follow_check.setChecked(False)

    def _inputs_changed(self, index=None) -> None:
        self._update_auto_step()
        if self.wipe_check.isChecked():
            self._build_wipe()

    def _interpolation_changed(self, index=None) -> None:
        left, right = self.left_layer, self.right_layer
        if self.wipe_check.isChecked() and WIPE_LEFT_NAME in self.viewer.layers and \
                left is not None and right is not None and \
                self._larger(left, right).name == right.name:
            self.viewer.layers[WIPE_LEFT_NAME].interpolation2d = DISPLAY_INTERPOLATION[
                self.interp_combo.currentText()]

    def _dims_changed(self, event=None) -> None:
        layer = self._layer(self._metrics_layer) if self._metrics_layer else None
        if layer is None:
            self.plot.set_current(None)
            return
        axis = self.viewer.dims.ndim - layer.ndim
        self.plot.set_current(frame_index(self.viewer.dims.point[axis], layer.scale[0],
                                          layer.translate[0], int(layer.data.shape[0])))

    def _larger(self, a: Image, b: Image) -> Image:
        """The layer with more pixels per frame (``a`` on a tie)."""
        pa = a.data.shape[1] * a.data.shape[2]
        pb = b.data.shape[1] * b.data.shape[2]
        return a if pa >= pb else b

    # --- wipe -------------------------------------------------------------------------------
    def _wipe_toggled(self, on: bool) -> None:
        if on:
            self._status("")
            if self.grid_check.isChecked():
                self.set_grid(False)
            self._remove_preview()
            self._build_wipe()
        else:
            self._remove_wipe()

    def _remove_wipe(self) -> None:
        self._removing_wipe = True  # our own removals do not turn the wipe off
        try:
            for name in WIPE_LAYERS:
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
        finally:
            self._removing_wipe = False
        for name in self._wipe_hidden:
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = True
        for name in self._wipe_shown:
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = False
        self._wipe_hidden, self._wipe_shown = [], []
        self._wipe_window = None

    def _build_wipe(self) -> None:
        """(Re)create the wipe for the chosen pair: the right layer shown, the left layer's
        columns before the divider on top of it, the divider line; other images hidden."""
        self._remove_wipe()
        left, right = self.left_layer, self.right_layer
        if left is None or right is None or left.name == right.name:
            self._status("choose two different image layers with a time axis for the wipe",
                         error=True)
            return
        if left.rgb != right.rgb:
            self._status(f"{left.name} and {right.name}: compare colour with colour and gray "
                         "with gray", error=True)
            return
        big = self._larger(left, right)
        interp = DISPLAY_INTERPOLATION[self.interp_combo.currentText()]
        active = self.viewer.layers.selection.active
        active = None if active is None else active.name
        # napari takes no empty layer: a divider at column 0 hides a one-column window
        self._wipe_window = compare.ColumnWindow(left.data, 0, max(self.wipe_column(), 1))
        kwargs = {"rgb": left.rgb, "scale": tuple(left.scale),
                  "translate": tuple(left.translate),
                  "contrast_limits": list(left.contrast_limits), "gamma": left.gamma,
                  "multiscale": False,
                  "interpolation2d": interp if big.name == right.name else left.interpolation2d}
        if not left.rgb:
            kwargs["colormap"] = left.colormap
        self.viewer.add_image(self._wipe_window, name=WIPE_LEFT_NAME, **kwargs)
        y0 = big.translate[-2] - 0.5 * big.scale[-2]
        y1 = big.translate[-2] + (big.data.shape[1] - 0.5) * big.scale[-2]
        width = max(2 * big.scale[-1], big.data.shape[2] * big.scale[-1] / 600)
        divider = Shapes([np.array([[y0, 0.0], [y1, 0.0]])], shape_type="line",
                         edge_color="yellow", edge_width=width, name=DIVIDER_NAME)
        self.viewer.add_layer(divider)
        if active in self.viewer.layers:  # adding layers selected them: give the choice back
            self.viewer.layers.selection.active = self.viewer.layers[active]
        # only the pair shows (the left layer through its window): napari reads no frame twice
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.name not in OWN_LAYERS and \
                    layer.name != right.name and layer.visible:
                layer.visible = False
                self._wipe_hidden.append(layer.name)
        if not right.visible:
            right.visible = True
            self._wipe_shown.append(right.name)
        self.update_wipe()

    def wipe_column(self) -> int | None:
        """The divider as a column of the left layer (columns before it show the left layer),
        or None without two layers.

        The slider spans the larger layer's width in world coordinates; the divider snaps to
        the nearest pixel boundary of the left layer.
        """
        left, right = self.left_layer, self.right_layer
        if left is None or right is None:
            return None
        big = self._larger(left, right)
        frac = self.wipe_slider.value() / SLIDER_STEPS
        x_lo = big.translate[-1] - 0.5 * big.scale[-1]
        world_x = x_lo + frac * big.data.shape[2] * big.scale[-1]
        l_lo = left.translate[-1] - 0.5 * left.scale[-1]
        column = round((world_x - l_lo) / left.scale[-1])
        return min(max(column, 0), int(left.data.shape[2]))

    def update_wipe(self, value=None) -> None:
        """Move the divider: show the left layer's columns before :meth:`wipe_column`."""
        if not self.wipe_check.isChecked() or WIPE_LEFT_NAME not in self.viewer.layers:
            return
        left = self.left_layer
        column = self.wipe_column()
        if left is None or column is None or self._wipe_window is None:
            return
        layer = self.viewer.layers[WIPE_LEFT_NAME]
        if column != self._wipe_window.stop and column > 0:
            self._wipe_window = self._wipe_window.with_columns(0, column)
            layer.data = self._wipe_window
        if layer.visible != (column > 0):
            layer.visible = column > 0
        if DIVIDER_NAME in self.viewer.layers:
            xw = left.translate[-1] + (column - 0.5) * left.scale[-1]
            self.viewer.layers[DIVIDER_NAME].translate = (0.0, xw)

    # --- grid -------------------------------------------------------------------------------
    def set_grid(self, on: bool) -> None:
        """Show only the left and right layers, side by side (napari grid mode), or restore."""
        if on:
            self._status("")
            if self.wipe_check.isChecked():
                self.wipe_check.setChecked(False)
            keep = {self.left_combo.currentText(), self.right_combo.currentText()}
            hidden = [layer for layer in self.viewer.layers
                      if layer.visible and layer.name not in keep]
            self._grid_hidden = [layer.name for layer in hidden]
            for layer in hidden:
                layer.visible = False
            for name in keep:
                if name in self.viewer.layers:
                    self.viewer.layers[name].visible = True
            grid = _grid_of(self.viewer)
            grid.stride = 1
            grid.enabled = True
        else:
            _grid_of(self.viewer).enabled = False
            for name in self._grid_hidden:
                if name in self.viewer.layers:
                    self.viewer.layers[name].visible = True
            self._grid_hidden = []
        if self.grid_check.isChecked() != on:
            self.grid_check.blockSignals(True)
            self.grid_check.setChecked(on)
            self.grid_check.blockSignals(False)

    # --- metrics ----------------------------------------------------------------------------
    def compute_metrics(self) -> None:
        """PSNR/SSIM of the non-reference layer against the reference, frame by frame."""
        self._status("")
        left, right = self.left_layer, self.right_layer
        ref = self._layer(self.reference_combo.currentText())
        if left is None or right is None or ref is None:
            self._status("choose two image layers with a time axis", error=True)
            return
        if self._metrics_worker is not None:
            return
        test = right if ref.name == left.name else left
        if test.name == ref.name:
            self._status("choose two different layers to measure one against the other",
                         error=True)
            return
        pairs = aligned_pairs(test, ref)
        if not pairs:
            self._status(f"{test.name} and {ref.name} share no frame times", error=True)
            return
        self.metrics = []
        self._metrics_layer = test.name
        self.table.setRowCount(0)
        self.plot.set_data([], [], [])
        self.metrics_label.setText(f"{test.name} against {ref.name}: computing…")
        interpolation = self.interp_combo.currentText()
        test_data, ref_data = test.data, ref.data

        def job():
            try:
                yield from compare.frame_metrics(test_data, ref_data, pairs=pairs,
                                                 interpolation=interpolation)
            except Exception as exc:  # reported once, in the main thread
                log.info("metrics failed", exc_info=True)
                return f"metrics failed: {exc}"
            return None

        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._metric_row)
        worker.returned.connect(lambda message: message and self._status(message, error=True))
        worker.finished.connect(self._metrics_finished)
        self._metrics_worker = worker
        self.metrics_button.setEnabled(False)
        worker.start()

    def _metric_row(self, row: compare.FrameMetrics) -> None:
        self.metrics.append(row)
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, text in enumerate((str(row.index), f"{row.psnr:.2f}", f"{row.ssim:.4f}")):
            item = QTableWidgetItem(text)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, c, item)
        self.plot.set_data([m.index for m in self.metrics], [m.psnr for m in self.metrics],
                           [m.ssim for m in self.metrics])
        self._dims_changed()

    def _metrics_finished(self) -> None:
        self._metrics_worker = None
        self.metrics_button.setEnabled(True)
        if self.metrics:
            finite = [m.psnr for m in self.metrics if math.isfinite(m.psnr)]
            mean_psnr = f"{np.mean(finite):.2f} dB" if finite else "inf"
            mean_ssim = np.mean([m.ssim for m in self.metrics])
            self.metrics_label.setText(
                f"{self._metrics_layer}: {len(self.metrics)} frames, mean PSNR {mean_psnr}, "
                f"mean SSIM {mean_ssim:.4f}")

    def _row_picked(self, row: int) -> None:
        if 0 <= row < len(self.metrics):
            self.go_to_frame(self.metrics[row].index)

    def _plot_clicked(self, frame: int) -> None:
        self.go_to_frame(frame)
        for row, m in enumerate(self.metrics):
            if m.index == frame:
                self.table.blockSignals(True)
                self.table.selectRow(row)
                self.table.blockSignals(False)
                self.table.scrollToItem(self.table.item(row, 0))
                break

    def go_to_frame(self, frame: int) -> None:
        """Move the time slider to ``frame`` of the measured layer (in its world time)."""
        layer = self._layer(self._metrics_layer) if self._metrics_layer else None
        if layer is None:
            return
        world = layer.data_to_world((frame,) + (0,) * (layer.ndim - 1))
        axis = self.viewer.dims.ndim - layer.ndim
        self.viewer.dims.set_point(axis, float(world[0]))

    def _pick_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> None:
        """Write the last metrics to ``path`` (see :func:`napari_vsr.compare.metrics_to_csv`)."""
        self._status("")
        if not self.metrics:
            self._status("compute the metrics first", error=True)
            return
        try:
            compare.metrics_to_csv(self.metrics, path)
        except OSError as exc:
            self._status(f"could not save the metrics to {path}: {exc.strerror or exc}",
                         error=True)
            return
        self._status(f"metrics saved to {path}")

    # --- comparison video -------------------------------------------------------------------
    def _video_inputs(self):
        """(left frames, right frames, the larger layer, pairs) of the chosen layers, or None
        after telling the user why not."""
        left, right = self.left_layer, self.right_layer
        if left is None or right is None:
            self._status("choose two image layers with a time axis", error=True)
            return None
        pairs = aligned_pairs(left, right)
        if not pairs:
            self._status(f"{left.name} and {right.name} share no frame times", error=True)
            return None
        return (_Picked(left.data, [i for i, _ in pairs]),
                _Picked(right.data, [j for _, j in pairs]), self._larger(left, right), pairs)

    def comparison_options(self) -> compare.ComparisonOptions:
        """The video settings as chosen in the widget."""
        pause = self.pause_spin.value()
        step = self.step_spin.value()
        captions = None
        if self.captions_check.isChecked():
            captions = (self.left_caption.text().strip(), self.right_caption.text().strip())
        return compare.ComparisonOptions(
            start_frame=self.start_spin.value(), pause_frame=None if pause < 0 else pause,
            pause_length=self.pause_len_spin.value(), slide_step=step or None,
            line_width=self.line_spin.value(), interpolation=self.interp_combo.currentText(),
            captions=captions)

    def _update_auto_step(self) -> None:
        """Show the automatic slide step of the chosen layers in the spin box."""
        left, right = self.left_layer, self.right_layer
        text = "auto"
        if left is not None and right is not None:
            n = len(aligned_pairs(left, right))
            if n:
                width = int(self._larger(left, right).data.shape[2])
                step = compare.auto_slide_step(n, width, start_frame=self.start_spin.value())
                text = f"auto ({step:.0f} px)"
        self.step_spin.setSpecialValueText(text)

    def _pick_video(self) -> None:
        """Ask for the file (prefilled with Output), then export."""
        self._status("")
        start = self.video_edit.text().strip() or str(Path.cwd() / "comparison.mp4")
        path, _ = QFileDialog.getSaveFileName(
            self, "Save comparison video", start, VIDEO_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return
        self.video_edit.setText(path)
        self.export_video(path)

    def _confirm_replace(self, path: str) -> bool:
        answer = QMessageBox.question(
            self, "Replace the video?",
            f"{Path(path).name} already exists in {Path(path).parent}.\n\nReplace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def export_video(self, path, *, overwrite: bool = False) -> None:
        """Write the sliding-wipe comparison of left and right to ``path`` in a worker.

        An existing ``path`` is replaced after the user agrees (``overwrite`` skips asking).
        """
        self._status("")
        if self._export_worker is not None:
            return
        path = os.fspath(path)
        if not overwrite and os.path.lexists(path):
            if not self._confirm_replace(path):
                self.last_export = ("declined", f"{path} exists; the video was not written")
                self._status(self.last_export[1])
                return
            overwrite = True
        inputs = self._video_inputs()
        if inputs is None:
            return
        seq_l, seq_r, _, _ = inputs
        token = CancelToken()
        options = self.comparison_options()
        fps = float(self.fps_spin.value())
        relay = self._relay

        def job() -> tuple[str, str]:
            # failures come back as a value: the message is shown once, in the main thread
            try:
                n = compare.export_comparison_video(
                    seq_l, seq_r, path, fps=fps, options=options, overwrite=overwrite,
                    progress=relay.progressed.emit, cancel=token)
            except Cancelled:
                return "cancelled", "comparison video cancelled; nothing was written"
            except OutputExistsError:
                return "error", (f"{path} appeared while the video was prepared; export again "
                                 "to replace it")
            except Exception as exc:
                log.info("comparison video failed", exc_info=True)
                return "error", f"comparison video failed: {exc}"
            return "done", f"comparison video: {n} frames written to {path}"

        self._export_pbar = napari_progress(total=0, desc=f"comparison video {path}")
        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._export_returned)
        worker.finished.connect(self._export_finished)
        self._export_worker, self._export_token = worker, token
        self.export_button.setEnabled(False)
        self.export_cancel.setEnabled(True)
        self._status(f"writing {path}…")
        worker.start()

    def cancel_export(self) -> None:
        if self._export_token is not None:
            self._export_token.cancel()

    def _export_progressed(self, p: Progress) -> None:
        if self._export_pbar is not None:
            if self._export_pbar.total != p.total:
                self._export_pbar.total = p.total
            self._export_pbar.n = p.done
            self._export_pbar.set_description(f"comparison video: {format_progress(p)}")
        if self._export_worker is not None:
            self.status_label.setText(f"comparison video: {format_progress(p)}")

    def _export_returned(self, result: tuple[str, str]) -> None:
        status, message = result
        self._close_export_pbar()
        self.last_export = result
        self._status(message, error=status == "error")
        if status == "done":
            show_info(message)

    def _export_finished(self) -> None:
        self._close_export_pbar()
        self._export_worker = None
        self._export_token = None
        self.export_button.setEnabled(True)
        self.export_cancel.setEnabled(False)

    def _close_export_pbar(self) -> None:
        if self._export_pbar is not None:
            self._export_pbar.close()
            self._export_pbar = None

    # --- preview of one video frame ---------------------------------------------------------
    def preview_frame(self) -> None:
        """Compute the video's frame for the current time step in a worker and show it as the
        layer ``comparison preview`` at that time (a newer request replaces a running one)."""
        self._status("")
        if self._preview_worker is not None:
            self._preview_again = True  # the newest request wins, once the running one ends
            return
        inputs = self._video_inputs()
        if inputs is None:
            return
        seq_l, seq_r, big, pairs = inputs
        left = self.left_layer
        axis = self.viewer.dims.ndim - left.ndim
        i = frame_index(self.viewer.dims.point[axis], left.scale[0], left.translate[0],
                        int(left.data.shape[0]))
        k = next((n for n, (a, _) in enumerate(pairs) if a == i), None)
        if k is None:
            self._status("the current time step is not in both layers; move the time slider",
                         error=True)
            return
        options = self.comparison_options()
        big_frame = pairs[k][1] if big.name != left.name else pairs[k][0]
        world_t = float(big.data_to_world((big_frame, 0, 0))[0])
        placement = (tuple(big.scale), tuple(big.translate), world_t)

        def job():
            try:
                return compare.comparison_frame(seq_l, seq_r, k, options), None
            except Exception as exc:
                log.info("preview failed", exc_info=True)
                return None, f"preview failed: {exc}"

        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self._show_preview(result, placement, big, k))
        worker.finished.connect(self._preview_finished)
        self._preview_worker = worker
        self._status(f"computing the video frame of frame {k}…")
        worker.start()

    def _show_preview(self, result, placement, big: Image, k: int) -> None:
        frame, message = result
        if frame is None:
            self._status(message, error=True)
            return
        scale, translate, world_t = placement
        translate = (world_t,) + tuple(translate[1:])
        self._remove_preview()
        kwargs = {"contrast_limits": list(big.contrast_limits)}
        if not big.rgb:
            kwargs["colormap"] = big.colormap
        self.viewer.add_image(frame[None], name=PREVIEW_NAME, rgb=big.rgb, scale=scale,
                              translate=translate, **kwargs)
        self._status(f"'{PREVIEW_NAME}' shows the video at frame {k}; delete the layer when "
                     "done")

    def _preview_finished(self) -> None:
        self._preview_worker = None
        if self._preview_again:
            self._preview_again = False
            self.preview_frame()

    def _remove_preview(self) -> None:
        if PREVIEW_NAME in self.viewer.layers:
            self.viewer.layers.remove(PREVIEW_NAME)
