"""The frames-and-output part of the Enhance widget: which frames (first and last, both
inclusive like napari's time slider), how the work is cut (chunk, overlap, segment), and where
the result store goes."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from napari_vsr.jobs.request import EngineOptions
from napari_vsr.jobs.results import default_store_dir
from napari_vsr.widgets._method_panel import auto_spin, path_row


class RangePanel(QWidget):
    """Frame range, chunking and the result store folder.  ``changed`` fires on edits."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        frames = QWidget()
        fl = QHBoxLayout(frames)
        fl.setContentsMargins(0, 0, 0, 0)
        self.start_spin = QSpinBox()
        self.stop_spin = QSpinBox()
        self.start_spin.setToolTip("first frame to enhance (as numbered by the time slider)")
        self.stop_spin.setToolTip("last frame to enhance (included)")
        fl.addWidget(self.start_spin, 1)
        fl.addWidget(QLabel("to"))
        fl.addWidget(self.stop_spin, 1)
        for spin in (self.start_spin, self.stop_spin):
            spin.valueChanged.connect(self._range_changed)
        form.addRow("Frames", frames)
        self.frames_label = form.labelForField(frames)

        self.chunk_spin = auto_spin(0, 10000, "auto", 0,
                                    "frames processed together (auto: the method's choice)")
        form.addRow("Chunk", self.chunk_spin)
        self.overlap_spin = auto_spin(
            -1, 1000, "auto", -1,
            "frames of context on each side of a chunk (auto: what the method needs)")
        form.addRow("Overlap", self.overlap_spin)
        self.segment_spin = auto_spin(
            0, 100000, "auto", 0,
            "frames saved to disk at a time: a cancelled or crashed run resumes from the last "
            "saved segment (auto: about a hundred frames)")
        form.addRow("Segment", self.segment_spin)
        self.out_row, self.out_edit = path_row(
            str(default_store_dir()), "folder for the on-disk result stores (.zarr)",
            self._pick_folder)
        form.addRow("Store in", self.out_row)
        self.keep_partial = QCheckBox("keep finished frames on cancel")
        self.keep_partial.setToolTip(
            "a cancelled run keeps its finished frames as a partial result that Resume "
            "continues; unchecked, the unfinished result is removed")
        self.keep_partial.setChecked(True)
        form.addRow(self.keep_partial)
        for spin in (self.chunk_spin, self.overlap_spin, self.segment_spin):
            spin.valueChanged.connect(self.changed)
        self.set_frame_count(0)

    def _pick_folder(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Store results in")
        if path:
            edit.setText(path)

    def set_frame_count(self, n: int) -> None:
        """A new source of ``n`` frames: the range becomes all of it."""
        last = max(n - 1, 0)
        for spin in (self.start_spin, self.stop_spin):
            spin.blockSignals(True)
            spin.setRange(0, last)
            spin.setEnabled(n > 0)
        self.start_spin.setValue(0)
        self.stop_spin.setValue(last)
        for spin in (self.start_spin, self.stop_spin):
            spin.blockSignals(False)
        self._n = n
        self._range_changed()

    def _range_changed(self, *args) -> None:
        count = self.stop_spin.value() - self.start_spin.value() + 1
        what = f"{count} frame{'s' if count != 1 else ''}" if self._n and count > 0 else "none"
        self.frames_label.setToolTip(f"the frames to enhance, both included: {what}")
        self.changed.emit()

    def frame_range(self) -> tuple[int, int]:
        """Half-open (start, stop) of the chosen frames; ValueError when empty."""
        start, last = self.start_spin.value(), self.stop_spin.value()
        if last < start:
            raise ValueError(f"the last frame ({last}) is before the first ({start}); "
                             "choose a last frame at or after the first")
        return start, last + 1

    def engine_options(self, *, tile: int | None = None) -> EngineOptions:
        overlap = self.overlap_spin.value()
        return EngineOptions(chunk=self.chunk_spin.value() or None,
                             overlap=None if overlap < 0 else overlap, tile=tile)

    def segment(self) -> int | None:
        return self.segment_spin.value() or None

    def store_dir(self) -> str:
        return self.out_edit.text().strip() or str(default_store_dir())
