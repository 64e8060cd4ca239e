"""The Compare dock widget: wipe, side by side, PSNR/SSIM per frame, comparison video export.

Thin by design: pixels and numbers come from :mod:`napari_vsr.compare`.  The widget is the
choice of two layers (left and right, following new results and renames) above one tab per
task, each its own part: View (:mod:`._compare_view`: the wipe and side by side), Metrics
(:mod:`._compare_metrics`) and Video (:mod:`._compare_video`).  The parts share the choice as a
:class:`~napari_vsr.widgets._compare_pair.LayerPair` (layers matched by world time, so a
result of a frame range lines up with its source) and report to one status line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QScrollArea,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.errors import napari_wording
from napari_vsr.jobs.metadata import result_metadata
from napari_vsr.widgets._compare_metrics import MetricsTab
from napari_vsr.widgets._compare_pair import (
    DIVIDER_NAME,
    OWN_LAYERS,
    PREVIEW_NAME,
    WIPE_LEFT_NAME,
    LayerPair,
    aligned_pairs,
)
from napari_vsr.widgets._compare_video import VideoTab
from napari_vsr.widgets._compare_view import ViewTab
from napari_vsr.widgets._parts import NameCombo, StatusLine

if TYPE_CHECKING:
    import napari

__all__ = ["DIVIDER_NAME", "PREVIEW_NAME", "WIPE_LEFT_NAME", "CompareWidget", "aligned_pairs",
           "result_record", "source_layer"]


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


def _scrolled(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class CompareWidget(QWidget):
    """Dock widget comparing two image layers with the same time axis.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    pair : LayerPair
        The chosen layers, as the tabs see them.
    view_tab, metrics_tab, video_tab : ViewTab, MetricsTab, VideoTab
        The parts; their controls and actions are also attributes of the widget
        (``wipe_check``, ``compute_metrics``, ``export_video``, ...).
    metrics : list of napari_vsr.compare.FrameMetrics
        The last computed metrics (frame index of the compared layer, reference frame).
    last_export : (str, str) or None
        ("done" | "cancelled" | "error" | "declined", message) of the last video export.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._names: list[str] = []
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._layer_inserted)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()
        self._choose_defaults()

    # --- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addLayout(self._layer_form())
        self.pair = LayerPair(self.viewer, self.left_combo.currentText,
                              self.right_combo.currentText)
        self.view_tab = ViewTab(self.viewer, self.pair)
        self.metrics_tab = MetricsTab(self.viewer, self.pair, self.view_tab.interpolation)
        self.video_tab = VideoTab(self.viewer, self.pair, self.view_tab.interpolation)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.view_tab, "View")
        self.tabs.addTab(self.metrics_tab, "Metrics")
        self.tabs.addTab(_scrolled(self.video_tab), "Video")
        self.tabs.setTabToolTip(0, "Wipe between the two layers or show them side by side")
        self.tabs.setTabToolTip(1, "PSNR and SSIM of one layer against the other, per frame")
        self.tabs.setTabToolTip(2, "Write a sliding-wipe comparison video")
        outer.addWidget(self.tabs, 1)
        self.status_label = StatusLine()
        self.status_label.setToolTip("What the Compare widget did last")
        outer.addWidget(self.status_label)
        for tab in (self.view_tab, self.metrics_tab, self.video_tab):
            tab.message.connect(self._status)
        for combo in (self.left_combo, self.right_combo):
            combo.currentIndexChanged.connect(self._inputs_changed)
        self._expose_parts()

    def _layer_form(self) -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.left_combo = NameCombo()
        self.left_combo.setToolTip("The layer shown left of the divider, usually the original")
        self.right_combo = NameCombo()
        self.right_combo.setToolTip("The layer shown right of the divider, usually an "
                                    "enhanced result")
        for combo in (self.left_combo, self.right_combo):
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
        return form

    def _expose_parts(self) -> None:
        """The parts' controls and actions, as attributes of the widget."""
        view, metrics, video = self.view_tab, self.metrics_tab, self.video_tab
        self.wipe_check, self.grid_check = view.wipe_check, view.grid_check
        self.wipe_slider, self.interp_combo = view.wipe_slider, view.interp_combo
        self.set_grid, self.update_wipe = view.set_grid, view.update_wipe
        self.wipe_column = view.wipe_column
        self.reference_combo, self.plot, self.table = (
            metrics.reference_combo, metrics.plot, metrics.table)
        self.metrics_button, self.csv_button = metrics.metrics_button, metrics.csv_button
        self.metrics_label = metrics.metrics_label
        self.compute_metrics, self.export_csv = metrics.compute_metrics, metrics.export_csv
        self.go_to_frame = metrics.go_to_frame
        self.start_spin, self.pause_spin = video.start_spin, video.pause_spin
        self.pause_len_spin, self.step_spin = video.pause_len_spin, video.step_spin
        self.line_spin, self.fps_spin = video.line_spin, video.fps_spin
        self.captions_check, self.video_edit = video.captions_check, video.video_edit
        self.left_caption, self.right_caption = video.left_caption, video.right_caption
        self.preview_button, self.export_button = video.preview_button, video.export_button
        self.export_cancel = video.export_cancel
        self.comparison_options, self.export_video = (
            video.comparison_options, video.export_video)
        self.preview_frame, self.cancel_export = video.preview_frame, video.cancel_export

    # --- state of the parts -----------------------------------------------------------------
    @property
    def metrics(self) -> list:
        return self.metrics_tab.metrics

    @property
    def last_export(self) -> tuple[str, str] | None:
        return self.video_tab.last_export

    @property
    def _metrics_worker(self):
        return self.metrics_tab._metrics_worker

    @property
    def _export_worker(self):
        return self.video_tab._export_worker

    @property
    def _preview_worker(self):
        return self.video_tab._preview_worker

    @property
    def _preview_again(self) -> bool:
        return self.video_tab._preview_again

    def _status(self, text: str, error: bool = False) -> None:
        """Show ``text`` in the status line (wrapped; errors in red and as a notification)."""
        text = napari_wording(text)
        self.status_label.setStyleSheet("color: #ff6b6b;" if error else "")
        self.status_label.show_message(text)
        if error and text:
            show_error(text)

    # --- layers -----------------------------------------------------------------------------
    def _refresh_layers(self, event=None) -> None:
        """Refill the layer choices, keeping each choice (also through a rename)."""
        names = [layer.name for layer in self.pair.images()]
        gone = [n for n in self._names if n not in names]
        new = [n for n in names if n not in self._names]
        renamed = {gone[0]: new[0]} if len(gone) == len(new) == 1 else {}
        self._names = names
        self.view_tab.rename(renamed)
        self.metrics_tab.rename(renamed)
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
        layers = self.pair.images()
        results = [layer for layer in layers if result_record(layer) is not None]
        if results:
            self._follow(results[-1])
            return
        if len(layers) >= 2:
            self._select(layers[0].name, layers[1].name)

    def _follow(self, result) -> None:
        """Show ``result`` on the right and its source (when in the viewer) on the left."""
        record = result_record(result) or {}
        others = [layer for layer in self.pair.images() if layer.name != result.name]
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
        self.view_tab.layer_removed(name)
        if name not in OWN_LAYERS:
            self._refresh_layers()

    @property
    def left_layer(self) -> Image | None:
        return self.pair.left

    @property
    def right_layer(self) -> Image | None:
        return self.pair.right

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
        self.video_tab.update_auto_step()
        self.view_tab.pair_changed()
