"""The Video tab of the Compare widget: the settings of a sliding-wipe comparison video
(:class:`napari_vsr.compare.ComparisonOptions`), captions, a preview of one of its frames as a
temporary layer, and the export, both in thread workers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_info
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_vsr import compare
from napari_vsr.errors import Cancelled, OutputExistsError
from napari_vsr.jobs.progress import CancelToken, Progress, format_progress
from napari_vsr.widgets._compare_pair import (
    PREVIEW_NAME,
    LayerPair,
    aligned_pairs,
    current_frame,
    larger,
)

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

VIDEO_FILTER = "Video (*.mp4 *.mkv *.mov)"


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


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s


class VideoTab(QWidget):
    """Video settings, captions, output file; Preview frame, Export video…, Cancel.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    pair : LayerPair
        The chosen layers: left and right of the divider in the video.
    interpolation : callable
        Returns how the smaller layer is enlarged (``"nearest"`` or ``"bicubic"``).

    Attributes
    ----------
    last_export : (str, str) or None
        ("done" | "cancelled" | "error" | "declined", message) of the last video export.

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
        self._export_worker = None
        self._export_token: CancelToken | None = None
        self._export_pbar = None
        self.last_export: tuple[str, str] | None = None
        self._preview_worker = None
        self._preview_again = False
        self._relay = _Relay()
        self._relay.progressed.connect(self._export_progressed)
        self._build_ui()

    def _build_ui(self) -> None:
        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        self.start_spin = _spin(0, 100000, 0, "The frame where the divider starts moving; "
                                "earlier frames show the left layer only")
        self.start_spin.valueChanged.connect(self.update_auto_step)
        self.pause_spin = _spin(-1, 100000, -1, "A frame held for 'Pause length' extra "
                                "frames while the divider moves")
        self.pause_spin.setSpecialValueText("none")
        self.pause_len_spin = _spin(0, 10000, 25, "Extra frames for each pause, and for "
                                    "the holds at the end")
        self.step_spin = _spin(0, 10000, 0, "How far the divider moves per frame, in "
                               "pixels of the video; auto crosses the frame within the clip")
        self.step_spin.setSpecialValueText("auto")
        self.step_spin.setSuffix(" px")
        self.line_spin = _spin(0, 1000, 4, "Width of the white divider line, in pixels of "
                               "the video")
        self.line_spin.setSuffix(" px")
        self.fps_spin = _spin(1, 240, 25, "Frames per second of the video")

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

    def _status(self, text: str, *, error: bool = False) -> None:
        self.message.emit(text, error)

    # --- settings ---------------------------------------------------------------------------
    def _video_inputs(self):
        """(left frames, right frames, the larger layer, pairs) of the chosen layers, or None
        after telling the user why not."""
        left, right = self.pair.left, self.pair.right
        if left is None or right is None:
            self._status("choose two image layers with a time axis", error=True)
            return None
        pairs = aligned_pairs(left, right)
        if not pairs:
            self._status(f"{left.name} and {right.name} share no frame times", error=True)
            return None
        return (_Picked(left.data, [i for i, _ in pairs]),
                _Picked(right.data, [j for _, j in pairs]), larger(left, right), pairs)

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
            line_width=self.line_spin.value(), interpolation=self._interpolation(),
            captions=captions)

    def update_auto_step(self) -> None:
        """Show the automatic slide step of the chosen layers in the spin box."""
        left, right = self.pair.left, self.pair.right
        text = "auto"
        if left is not None and right is not None:
            n = len(aligned_pairs(left, right))
            if n:
                width = int(larger(left, right).data.shape[2])
                step = compare.auto_slide_step(n, width, start_frame=self.start_spin.value())
                text = f"auto ({step:.0f} px)"
        self.step_spin.setSpecialValueText(text)

    # --- export -----------------------------------------------------------------------------
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
            self._status(f"comparison video: {format_progress(p)}")

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
        left = self.pair.left
        i = current_frame(self.viewer, left)
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
        if PREVIEW_NAME in self.viewer.layers:
            self.viewer.layers.remove(PREVIEW_NAME)
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
