"""The Metrics tab of the Compare widget: PSNR and SSIM of one layer against the other, frame
by frame (computed in a thread worker), as a table and a plot; a row or a point moves the time
slider to its frame, and the table saves as CSV."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_vsr import compare
from napari_vsr.widgets._compare_pair import LayerPair, aligned_pairs, current_frame
from napari_vsr.widgets._parts import NameCombo
from napari_vsr.widgets._plot import MetricsPlot

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)


class MetricsTab(QWidget):
    """The reference choice, Compute and Save CSV, the plot and the table of the metrics.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    pair : LayerPair
        The chosen layers; the one that is not the reference is measured.
    interpolation : callable
        Returns how the smaller layer is enlarged (``"nearest"`` or ``"bicubic"``).

    Attributes
    ----------
    metrics : list of napari_vsr.compare.FrameMetrics
        The last computed metrics (frame index of the measured layer, reference frame).

    Signals
    -------
    message(str, bool)
        A status text, and whether it reports an error.
    """

    message = Signal(str, bool)

    def __init__(self, viewer: napari.viewer.Viewer, pair: LayerPair,
                 interpolation: Callable[[], str]):
        super().__init__()
        self.viewer, self.pair, self._interpolation = viewer, pair, interpolation
        self.metrics: list[compare.FrameMetrics] = []
        self._metrics_layer: str | None = None  # the layer whose frames the metrics index
        self._metrics_worker = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        label = QLabel("Reference")
        row.addWidget(label)
        self.reference_combo = NameCombo()
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
        self.viewer.dims.events.current_step.connect(self._dims_changed)

    def _status(self, text: str, *, error: bool = False) -> None:
        self.message.emit(text, error)

    def rename(self, renamed: dict[str, str]) -> None:
        """Layers were renamed (old name -> new name): the metrics follow their layer."""
        if self._metrics_layer in renamed:
            self._metrics_layer = renamed[self._metrics_layer]

    def _measured_layer(self):
        return self.pair.find(self._metrics_layer) if self._metrics_layer else None

    # --- computing --------------------------------------------------------------------------
    def compute_metrics(self) -> None:
        """PSNR/SSIM of the non-reference layer against the reference, frame by frame."""
        self._status("")
        left, right = self.pair.left, self.pair.right
        ref = self.pair.find(self.reference_combo.currentText())
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
        interpolation = self._interpolation()
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

    # --- the time slider --------------------------------------------------------------------
    def _dims_changed(self, event=None) -> None:
        layer = self._measured_layer()
        self.plot.set_current(None if layer is None else current_frame(self.viewer, layer))

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
        layer = self._measured_layer()
        if layer is None:
            return
        world = layer.data_to_world((frame,) + (0,) * (layer.ndim - 1))
        axis = self.viewer.dims.ndim - layer.ndim
        self.viewer.dims.set_point(axis, float(world[0]))

    # --- CSV --------------------------------------------------------------------------------
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
