"""The Compare dock widget: wipe, side by side, PSNR/SSIM per frame, comparison video export.

Thin by design: pixels and numbers come from :mod:`napari_vsr.compare`; this module picks
frames from layers (matched by world time, so a result of a frame range lines up with its
source), shows them and runs the long parts in thread workers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Shapes
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_vsr import compare
from napari_vsr.errors import Cancelled
from napari_vsr.jobs.progress import CancelToken, Progress, format_progress
from napari_vsr.placement import frame_index
from napari_vsr.widgets._plot import MetricsPlot

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

WIPE_NAME = "wipe"
DIVIDER_NAME = "wipe divider"
SLIDER_STEPS = 1000


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
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.metrics: list[compare.FrameMetrics] = []
        self._metrics_worker = None
        self._export_worker = None
        self._export_token: CancelToken | None = None
        self._export_pbar = None
        self.last_export: tuple[str, str] | None = None
        self._grid_hidden: list = []
        self._relay = _Relay()
        self._relay.progressed.connect(self._export_progressed)
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        self._refresh_layers()
        self.viewer.dims.events.current_step.connect(self._dims_changed)

    # --- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        form = QFormLayout()
        outer.addLayout(form)
        self.left_combo = QComboBox()
        self.right_combo = QComboBox()
        form.addRow("Left", self.left_combo)
        form.addRow("Right", self.right_combo)
        self.interp_combo = QComboBox()
        self.interp_combo.addItems(["nearest", "bicubic"])
        self.interp_combo.setToolTip("how the smaller layer is upscaled for display and metrics")
        form.addRow("Upscale", self.interp_combo)
        for combo in (self.left_combo, self.right_combo, self.interp_combo):
            combo.currentIndexChanged.connect(self._inputs_changed)

        view = QGroupBox("View")
        vl = QFormLayout(view)
        self.wipe_check = QCheckBox("wipe (left | right)")
        self.wipe_check.toggled.connect(self._wipe_toggled)
        vl.addRow(self.wipe_check)
        self.wipe_slider = QSlider(Qt.Orientation.Horizontal)
        self.wipe_slider.setRange(0, SLIDER_STEPS)
        self.wipe_slider.setValue(SLIDER_STEPS // 2)
        self.wipe_slider.valueChanged.connect(self.update_wipe)
        vl.addRow("Divider", self.wipe_slider)
        self.grid_check = QCheckBox("side by side (grid)")
        self.grid_check.toggled.connect(self.set_grid)
        vl.addRow(self.grid_check)
        outer.addWidget(view)

        met = QGroupBox("PSNR / SSIM per frame")
        ml = QVBoxLayout(met)
        row = QHBoxLayout()
        row.addWidget(QLabel("Reference"))
        self.reference_combo = QComboBox()
        self.reference_combo.setToolTip("the other layer is measured against this one")
        row.addWidget(self.reference_combo, 1)
        self.metrics_button = QPushButton("Compute")
        self.metrics_button.clicked.connect(self.compute_metrics)
        row.addWidget(self.metrics_button)
        self.csv_button = QPushButton("CSV…")
        self.csv_button.clicked.connect(self._pick_csv)
        row.addWidget(self.csv_button)
        ml.addLayout(row)
        self.plot = MetricsPlot()
        ml.addWidget(self.plot)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["frame", "PSNR (dB)", "SSIM"])
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(90)
        ml.addWidget(self.table)
        self.metrics_label = QLabel("")
        ml.addWidget(self.metrics_label)
        outer.addWidget(met)

        vid = QGroupBox("Comparison video (sliding wipe)")
        vf = QFormLayout(vid)
        self.start_spin = self._spin(0, 100000, 0, "first frame where the divider starts moving")
        self.pause_spin = self._spin(-1, 100000, -1, "frame held for 'pause length' (-1: none)")
        self.pause_spin.setSpecialValueText("none")
        self.pause_len_spin = self._spin(0, 10000, 25, "extra frames for each pause")
        self.step_spin = self._spin(1, 10000, 16, "divider movement per frame, output pixels")
        self.line_spin = self._spin(0, 1000, 4, "divider width, output pixels")
        self.fps_spin = self._spin(1, 240, 25, "frames per second of the video")
        vf.addRow("Start frame", self.start_spin)
        vf.addRow("Pause frame", self.pause_spin)
        vf.addRow("Pause length", self.pause_len_spin)
        vf.addRow("Slide step", self.step_spin)
        vf.addRow("Line width", self.line_spin)
        vf.addRow("FPS", self.fps_spin)
        self.video_edit = QLineEdit()
        self.video_edit.setPlaceholderText("comparison.mp4")
        vf.addRow("Output", self.video_edit)
        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export video…")
        self.export_button.clicked.connect(self._pick_video)
        self.export_cancel = QPushButton("Cancel")
        self.export_cancel.setEnabled(False)
        self.export_cancel.clicked.connect(self.cancel_export)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.export_cancel)
        vf.addRow(buttons)
        outer.addWidget(vid)
        outer.addStretch(1)

    @staticmethod
    def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setValue(value)
        s.setToolTip(tip)
        return s

    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and layer.name != WIPE_NAME and not layer.multiscale
                and layer.ndim == 3]

    def _refresh_layers(self, event=None) -> None:
        names = [layer.name for layer in self._image_layers()]
        for combo, default in ((self.left_combo, 0), (self.right_combo, 1),
                               (self.reference_combo, 0)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentIndex(min(default, len(names) - 1))
            combo.blockSignals(False)
        self._inputs_changed()

    def _layer_removed(self, event) -> None:
        # the user (or closing the viewer) removed a wipe layer: the wipe is off, never re-added
        if getattr(event, "value", None) is not None and event.value.name in (
                WIPE_NAME, DIVIDER_NAME) and self.wipe_check.isChecked():
            self.wipe_check.setChecked(False)
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
        """Choose the two layers by name (and the metrics reference, default ``left``)."""
        self.left_combo.setCurrentText(left)
        self.right_combo.setCurrentText(right)
        self.reference_combo.setCurrentText(reference or left)

    # --- wipe -------------------------------------------------------------------------------
    def _inputs_changed(self, index=None) -> None:
        if self.wipe_check.isChecked():
            self.update_wipe()

    def _dims_changed(self, event=None) -> None:
        if self.wipe_check.isChecked():
            self.update_wipe()

    def _wipe_toggled(self, on: bool) -> None:
        if on:
            self.update_wipe()
        else:
            for name in (WIPE_NAME, DIVIDER_NAME):
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)

    def current_pair(self) -> tuple[np.ndarray, np.ndarray, Image] | None:
        """The left and right frames at the current time, at the larger size, and that layer."""
        left, right = self.left_layer, self.right_layer
        if left is None or right is None:
            return None
        world_t = self.viewer.dims.point[0]
        i = frame_index(world_t, left.scale[0], left.translate[0], left.data.shape[0])
        j = frame_index(world_t, right.scale[0], right.translate[0], right.data.shape[0])
        if i is None or j is None:
            return None
        a, b = compare.match_sizes(np.asarray(left.data[i]), np.asarray(right.data[j]),
                                   interpolation=self.interp_combo.currentText())
        big = left if left.data.shape[1] * left.data.shape[2] >= \
            right.data.shape[1] * right.data.shape[2] else right
        return a, b, big

    def update_wipe(self, value=None) -> None:
        """Recompute the wipe composite and the divider line for the current frame."""
        if not self.wipe_check.isChecked():
            return
        try:
            pair = self.current_pair()
        except Exception as exc:  # mismatched layers: tell the user, keep the viewer usable
            show_error(f"wipe: {exc}")
            return
        if pair is None:
            return
        a, b, big = pair
        h, w = a.shape[:2]
        x = round(self.wipe_slider.value() / SLIDER_STEPS * w)
        image = compare.wipe_composite(a, b, x)
        scale, translate = tuple(big.scale[-2:]), tuple(big.translate[-2:])
        if WIPE_NAME in self.viewer.layers:
            layer = self.viewer.layers[WIPE_NAME]
            layer.data = image
            layer.scale, layer.translate = scale, translate
        else:
            kwargs = {} if big.rgb else {"contrast_limits": list(big.contrast_limits),
                                         "colormap": big.colormap}
            self.viewer.add_image(image, name=WIPE_NAME, rgb=big.rgb, scale=scale,
                                  translate=translate, **kwargs)
        xw = translate[1] + (x - 0.5) * scale[1]
        y0 = translate[0] - 0.5 * scale[0]
        y1 = translate[0] + (h - 0.5) * scale[0]
        line = np.array([[y0, xw], [y1, xw]])
        if DIVIDER_NAME in self.viewer.layers:
            self.viewer.layers[DIVIDER_NAME].data = [line]
        else:
            shapes = Shapes([line], shape_type="line", edge_color="yellow",
                            edge_width=max(2 * scale[1], 1e-9), name=DIVIDER_NAME)
            self.viewer.add_layer(shapes)

    # --- grid -------------------------------------------------------------------------------
    def set_grid(self, on: bool) -> None:
        """Show only the left and right layers, side by side (napari grid mode), or restore."""
        if on:
            keep = {self.left_combo.currentText(), self.right_combo.currentText()}
            self._grid_hidden = [layer for layer in self.viewer.layers
                                 if layer.visible and layer.name not in keep]
            for layer in self._grid_hidden:
                layer.visible = False
            for name in keep:
                if name in self.viewer.layers:
                    self.viewer.layers[name].visible = True
            grid = _grid_of(self.viewer)
            grid.stride = 1
            grid.enabled = True
        else:
            _grid_of(self.viewer).enabled = False
            for layer in self._grid_hidden:
                if layer in self.viewer.layers:
                    layer.visible = True
            self._grid_hidden = []
        if self.grid_check.isChecked() != on:
            self.grid_check.blockSignals(True)
            self.grid_check.setChecked(on)
            self.grid_check.blockSignals(False)

    # --- metrics ----------------------------------------------------------------------------
    def compute_metrics(self) -> None:
        """PSNR/SSIM of the non-reference layer against the reference, frame by frame."""
        left, right = self.left_layer, self.right_layer
        ref = self._layer(self.reference_combo.currentText())
        if left is None or right is None or ref is None:
            show_error("choose two image layers with a time axis")
            return
        if self._metrics_worker is not None:
            return
        test = right if ref is left else left
        pairs = aligned_pairs(test, ref)
        if not pairs:
            show_error(f"{test.name} and {ref.name} share no frame times")
            return
        self.metrics = []
        self.table.setRowCount(0)
        self.plot.set_data([], [], [])
        self.metrics_label.setText(f"{test.name} vs {ref.name}: computing…")
        interpolation = self.interp_combo.currentText()

        def job():
            try:
                yield from compare.frame_metrics(test.data, ref.data, pairs=pairs,
                                                 interpolation=interpolation)
            except Exception as exc:  # reported once, in the main thread
                log.info("metrics failed", exc_info=True)
                return f"metrics failed: {exc}"
            return None

        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._metric_row)
        worker.returned.connect(lambda message: message and show_error(message))
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

    def _metrics_finished(self) -> None:
        self._metrics_worker = None
        self.metrics_button.setEnabled(True)
        if self.metrics:
            finite = [m.psnr for m in self.metrics if math.isfinite(m.psnr)]
            mean_psnr = f"{np.mean(finite):.2f} dB" if finite else "inf"
            mean_ssim = np.mean([m.ssim for m in self.metrics])
            self.metrics_label.setText(
                f"{len(self.metrics)} frames: mean PSNR {mean_psnr}, mean SSIM {mean_ssim:.4f}")

    def _pick_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> None:
        """Write the last metrics to ``path`` (see :func:`napari_vsr.compare.metrics_to_csv`)."""
        if not self.metrics:
            show_error("compute the metrics first")
            return
        compare.metrics_to_csv(self.metrics, path)
        show_info(f"metrics saved to {path}")

    # --- comparison video -------------------------------------------------------------------
    def _pick_video(self) -> None:
        path = self.video_edit.text().strip()
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Comparison video", "comparison.mp4",
                                                  "Video (*.mp4 *.mkv *.mov)")
        if path:
            self.video_edit.setText(path)
            self.export_video(path)

    def export_video(self, path, *, overwrite: bool = False) -> None:
        """Write the sliding-wipe comparison of left and right to ``path`` in a worker."""
        left, right = self.left_layer, self.right_layer
        if left is None or right is None:
            show_error("choose two image layers with a time axis")
            return
        if self._export_worker is not None:
            return
        pairs = aligned_pairs(left, right)
        if not pairs:
            show_error(f"{left.name} and {right.name} share no frame times")
            return
        seq_l = _Picked(left.data, [i for i, _ in pairs])
        seq_r = _Picked(right.data, [j for _, j in pairs])
        token = CancelToken()
        pause = self.pause_spin.value()
        relay = self._relay

        def job() -> tuple[str, str]:
            # failures come back as a value: the notification is shown once, in the main thread
            try:
                n = compare.export_comparison_video(
                    seq_l, seq_r, path, fps=float(self.fps_spin.value()),
                    start_frame=self.start_spin.value(),
                    pause_frame=None if pause < 0 else pause,
                    pause_length=self.pause_len_spin.value(), slide_step=self.step_spin.value(),
                    line_width=self.line_spin.value(),
                    interpolation=self.interp_combo.currentText(), overwrite=overwrite,
                    progress=relay.progressed.emit, cancel=token)
            except Cancelled:
                return "cancelled", "comparison video cancelled; nothing was written"
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

    def _export_returned(self, result: tuple[str, str]) -> None:
        status, message = result
        self._close_export_pbar()
        self.last_export = result
        if status == "error":
            show_error(message)
        else:
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
