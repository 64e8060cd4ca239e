"""The "Save result…" dialog: a layer saved as video, TIFF stack or PNG frames, with the
format's losses shown before writing, an overwrite question, a progress bar and Cancel.

The writing is :func:`napari_vsr._writer.save_layer_data` (Qt-free, the same call as napari's
File > Save Selected Layer(s)), run in a napari thread worker.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from napari_vsr._writer import saved_frame_count
from napari_vsr.errors import Cancelled, VsrError
from napari_vsr.io.export import SAVE_FORMATS, SavePlan, plan_save
from napari_vsr.jobs.results import slug

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries progress from the worker thread to the dialog (queued across threads)."""

    progressed = Signal(int, int)


def _base_name(layer_name: str) -> str:
    """A file name for a layer: "clip.mp4 [classic:seed x4] (partial)" -> "clip-classic-seed-x4"."""
    name = re.sub(r"\s*\(partial[^)]*\)\s*$", "", layer_name)
    name = re.sub(r"\.[A-Za-z0-9]{2,5}(?=\s*\[)", "", name)  # the source's extension
    return slug(name.replace("[", " ").replace("]", " "))


class SaveResultDialog(QDialog):
    """Save one image layer to a file, choosing the format and lossless encoding.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (or napari's proxy of it); only used for notifications' context.
    layer : napari.layers.Image
        The layer to save (a result layer, its zarr store read frame by frame, or any image
        layer).
    parent : QWidget, optional
    folder : path-like, optional
        Where the file goes by default (default: the home folder).

    Attributes
    ----------
    saved_path : Path or None
        The file written, once a save succeeded.
    """

    def __init__(self, viewer, layer, parent=None, *, folder: str | os.PathLike | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.layer = layer
        self.saved_path: Path | None = None
        self._worker = None
        self._token = None
        self._pbar = None
        self._outcome: str | None = None  # how the last save ended, shown under the summary
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)
        self.setWindowTitle(f"Save {layer.name}")
        self.setMinimumWidth(420)

        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.format_combo = QComboBox()
        for fmt in SAVE_FORMATS.values():
            self.format_combo.addItem(fmt.label, fmt.key)
        self.format_combo.setToolTip(
            "MP4/MOV play everywhere but compress (lossy); MKV keeps every value exactly; "
            "TIFF and PNG frames keep every value, one image per frame")
        form.addRow("Format", self.format_combo)

        path_row = QHBoxLayout()
        folder = Path(folder) if folder is not None else Path.home()
        self.path_edit = QLineEdit(os.fspath(folder / (_base_name(layer.name) + ".mp4")))
        self.path_edit.setToolTip("The file (or, for PNG frames, the folder) to write")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Choose where to save")
        self.browse_button.clicked.connect(self._browse)
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        form.addRow("Save to", path_row)

        self.lossless_check = QCheckBox("Lossless (exact values, larger file)")
        self.lossless_check.setToolTip(
            "Keep every pixel value exactly. MP4/MOV lossless H.264 holds 8-bit RGB or gray "
            "only, and not every player opens it; MKV (FFV1) keeps 16-bit, gray and alpha")
        form.addRow("", self.lossless_check)
        layout.addLayout(form)

        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.summary_label.setToolTip("What the chosen format keeps and loses of this layer")
        layout.addWidget(self.summary_label)

        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("Frames written")
        self.progress_bar.setVisible(False)
        layout.addWidget(self.progress_bar)

        self.buttons = QDialogButtonBox()
        self.save_button = self.buttons.addButton("Save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setToolTip("Write the file (asks before replacing one)")
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setToolTip("Close without saving, or stop a save in progress (the "
                                      "unfinished file is removed)")
        self.save_button.clicked.connect(self._save_clicked)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        layout.addWidget(self.buttons)

        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self.lossless_check.toggled.connect(self._choices_changed)
        self.path_edit.textChanged.connect(self._choices_changed)
        self._format_changed()

    # --- choices ----------------------------------------------------------------------------
    @property
    def format_key(self) -> str:
        return self.format_combo.currentData()

    def set_format(self, key: str, *, lossless: bool | None = None) -> None:
        """Choose a format (``SAVE_FORMATS`` key) and, where it offers one, lossless."""
        self.format_combo.setCurrentIndex(self.format_combo.findData(key))
        if lossless is not None and self.lossless_check.isEnabled():
            self.lossless_check.setChecked(bool(lossless))

    def target(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()

    def _format_changed(self) -> None:
        fmt = SAVE_FORMATS[self.format_key]
        self.lossless_check.blockSignals(True)
        self.lossless_check.setChecked(fmt.lossless_default)
        self.lossless_check.setEnabled(fmt.lossless_choice)
        self.lossless_check.blockSignals(False)
        text = self.path_edit.text().strip()
        if text:
            p = Path(text)
            known = {f.suffix for f in SAVE_FORMATS.values()} | {".tiff", ".m4v"}
            stem = p.name[: -len(p.suffix)] if p.suffix.lower() in known else p.name
            self.path_edit.setText(os.fspath(p.with_name(stem + fmt.suffix)))
        self._choices_changed()

    def _choices_changed(self) -> None:
        self._outcome = None
        self._update_summary()

    def _browse(self) -> None:
        fmt = SAVE_FORMATS[self.format_key]
        if fmt.key == "frames":
            chosen = QFileDialog.getSaveFileName(self, "Save PNG frames into the folder",
                                                 self.path_edit.text())[0]
        else:
            chosen = QFileDialog.getSaveFileName(
                self, "Save result", self.path_edit.text(), f"{fmt.label} (*{fmt.suffix})")[0]
        if chosen:
            self.path_edit.setText(chosen)
            self._format_changed()

    def plan(self) -> SavePlan:
        """What the current choices keep and lose (raises ``VsrError`` when impossible)."""
        data = self.layer.data
        return plan_save(self.target(), tuple(data.shape), data.dtype, rgb=bool(self.layer.rgb),
                         lossless=self.lossless_check.isChecked())

    def _update_summary(self) -> None:
        try:
            plan = self.plan()
        except VsrError as exc:
            self.summary_label.setText(f"<b>Cannot save this way:</b> {exc}")
            self.save_button.setEnabled(False)
            return
        self.save_button.setEnabled(self._worker is None)
        kept = ", ".join(plan.kept)
        text = f"<b>Keeps:</b> {kept}."
        if plan.lost:
            lost = "; ".join(plan.lost)
            text += f"<br><span style='color:#e08a00'><b>Loses:</b> {lost}.</span>"
        try:
            _, partial_note = saved_frame_count(self.layer.data, dict(self.layer.metadata or {}),
                                                rgb=bool(self.layer.rgb))
        except VsrError as exc:  # a partial result with nothing finished yet
            self.summary_label.setText(f"<b>Nothing to save yet:</b> {exc}")
            self.save_button.setEnabled(False)
            return
        if partial_note:
            text += f"<br>{partial_note[0].upper()}{partial_note[1:]}."
        if self._outcome:
            text += f"<br>{self._outcome}"
        self.summary_label.setText(text)

    # --- saving -----------------------------------------------------------------------------
    def _save_clicked(self) -> None:
        self.save()

    def save(self, *, ask: bool = True):
        """Start writing with the current choices (after asking before replacing a file).

        Returns the thread worker, or None when nothing was started.
        """
        from napari.qt.threading import create_worker
        from napari.utils import progress

        from napari_vsr._writer import save_layer_data
        from napari_vsr.jobs.progress import CancelToken

        try:
            plan = self.plan()
        except VsrError as exc:
            self.summary_label.setText(f"<b>Cannot save this way:</b> {exc}")
            return None
        target = plan.path
        if target.exists():
            if ask and QMessageBox.question(
                    self, "Replace?", f"{target} exists. Replace it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
                return None
        layer = self.layer
        token = CancelToken()
        relay = self._relay
        warnings: list[str] = []

        def work():
            return save_layer_data(
                layer.data, target, rgb=bool(layer.rgb), metadata=dict(layer.metadata or {}),
                lossless=plan.lossless if plan.kind == "video" else None, overwrite=True,
                progress=relay.progressed.emit, cancel=token, warn=warnings.append)

        self._token = token
        self._pbar = progress(total=0, desc=f"Saving {target.name}")
        self.progress_bar.setVisible(True)
        self.progress_bar.setRange(0, 0)
        self.save_button.setEnabled(False)
        for widget in (self.format_combo, self.path_edit, self.browse_button,
                       self.lossless_check):
            widget.setEnabled(False)
        self.cancel_button.setText("Stop")
        self._outcome = None
        worker = create_worker(work, _start_thread=False, _connect={
            "returned": self._on_saved, "errored": self._on_error,
            "finished": self._on_finished})
        self._worker = worker
        worker.start()
        return worker

    @property
    def is_saving(self) -> bool:
        return self._worker is not None

    def _on_progress(self, done: int, total: int) -> None:
        if self.progress_bar.maximum() != total:
            self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        if self._pbar is not None:
            if self._pbar.total != total:
                self._pbar.total = total
            self._pbar.update(done - self._pbar.n)

    def _on_saved(self, path) -> None:
        from napari.utils.notifications import show_info

        self.saved_path = Path(path)
        show_info(f"saved {self.layer.name} to {path}")
        self.accept()

    def _on_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        if isinstance(exc, Cancelled):
            self._outcome = "Stopped; nothing was written."
            return
        if isinstance(exc, VsrError):
            message = str(exc)
        else:  # a bug or a library failure: keep the traceback in the log
            log.error("saving failed", exc_info=(type(exc), exc, exc.__traceback__))
            message = f"{type(exc).__name__}: {exc}"
        self._outcome = f"<b>Saving failed:</b> {message}"
        show_error(f"Saving failed: {message}")

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._worker = None
        self._token = None
        self.progress_bar.setVisible(False)
        for widget in (self.format_combo, self.path_edit, self.browse_button):
            widget.setEnabled(True)
        self.lossless_check.setEnabled(SAVE_FORMATS[self.format_key].lossless_choice)
        self.cancel_button.setText("Cancel")
        self._update_summary()

    def _cancel_clicked(self) -> None:
        if self._token is not None:
            self._token.cancel()
            return
        self.reject()

    def reject(self) -> None:  # Esc or the window's close button while saving: stop first
        if self._token is not None:
            self._token.cancel()
            return
        super().reject()


def save_layer_dialog(parent, viewer, layer, *, folder: str | os.PathLike | None = None
                      ) -> SaveResultDialog:
    """Open the "Save result…" dialog for ``layer`` (window-modal, returns at once).

    Parameters
    ----------
    parent : QWidget
        The widget the dialog belongs to (the Enhance widget).
    viewer : napari.viewer.Viewer
        Its viewer (a napari proxy is fine).
    layer : napari.layers.Image
        The layer to save, e.g. the selected result layer.
    folder : path-like, optional
        The folder proposed for the file (default: the home folder).

    Returns
    -------
    SaveResultDialog
        Shown; its ``saved_path`` is set once the file is written, and ``finished`` is emitted
        when it closes.
    """
    dialog = SaveResultDialog(viewer, layer, parent, folder=folder)
    dialog.open()
    return dialog
