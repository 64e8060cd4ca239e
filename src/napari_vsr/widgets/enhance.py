"""The Enhance dock widget: pick a layer and a method, run it in a thread worker.

Thin by design: the widget collects parameters into a :class:`~._job.JobRequest`, starts
:func:`~._job.run_job` in a napari thread worker and turns its events into a result layer
(backed by the zarr store the job fills), a napari progress bar and notifications.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info, show_warning
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
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.dtype_range import full_scale
from napari_vsr.engine import CancelToken
from napari_vsr.jobs.progress import format_progress
from napari_vsr.widgets._job import (
    FrameDone,
    JobEnd,
    JobRequest,
    JobStarted,
    WeightsProgress,
    default_store_dir,
    run_job,
)

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

#: seconds between two refreshes of the growing result layer
REFRESH_INTERVAL_S = 0.25

REALBASICVSR = ("realbasicvsr", None)
RECIPE = ("classic-recipe", None)


def _presets() -> list[str]:
    try:
        from napari_vsr.classic import PRESETS
    except ImportError:  # classic part missing: RealBasicVSR only
        return []
    return list(PRESETS)


def _path_row(placeholder: str, pick) -> tuple[QWidget, QLineEdit]:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    button = QToolButton()
    button.setText("…")
    button.clicked.connect(lambda: pick(edit))
    lay.addWidget(edit)
    lay.addWidget(button)
    return row, edit


def _auto_spin(minimum: int, maximum: int, special: str, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    spin.setSpecialValueText(special)
    spin.setValue(value)
    return spin


def _display_kwargs(dtype, rgb: bool, like: Image | None) -> dict[str, Any]:
    """Contrast limits (and colormap) so napari never scans a large store to guess them."""
    dtype = np.dtype(dtype)
    if like is not None and not rgb:
        return {"contrast_limits": list(like.contrast_limits), "colormap": like.colormap}
    if dtype.kind in "ui":
        return {"contrast_limits": [0, int(full_scale(dtype))]}
    return {"contrast_limits": [0.0, 1.0]}


def open_result_layer(viewer: napari.viewer.Viewer, path) -> Image:
    """Reopen a result store written by the Enhance widget as a frame-synced layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    path : path-like
        A ``.zarr`` store made by a run (its attributes hold the layer name, placement and
        metadata).

    Returns
    -------
    napari.layers.Image
    """
    from napari_vsr.io.zarr_store import open_result_store

    store = open_result_store(path, mode="r")
    metadata = dict(store.attrs.get("napari_vsr", {}))
    placed = metadata.get("layer", {})
    rgb = bool(placed.get("rgb", store.ndim == 4 and store.shape[-1] in (3, 4)))
    kwargs = {k: placed[k] for k in ("scale", "translate") if k in placed}
    return viewer.add_image(store, name=placed.get("name", str(path)), rgb=rgb,
                            metadata=metadata, multiscale=False,
                            **_display_kwargs(store.dtype, rgb, None), **kwargs)


class EnhanceWidget(QWidget):
    """Dock widget: source layer, method and its parameters, frame range, Preview/Run/Cancel.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    result_layer : napari.layers.Image or None
        The layer of the last (or current) full run.
    preview_layer : napari.layers.Image or None
        The layer of the last preview.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result_layer: Image | None = None
        self.preview_layer: Image | None = None
        self._worker = None
        self._token: CancelToken | None = None
        self._pbar = None
        self._run: dict[str, Any] = {}
        self._range_source: Image | None = None
        self._build_ui()
        self._refresh_layers()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        self._method_changed()
        self._set_running(False)

    # --- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        form = QFormLayout()
        outer.addLayout(form)

        self.source_combo = QComboBox()
        self.source_combo.currentIndexChanged.connect(self._source_changed)
        form.addRow("Source", self.source_combo)

        self.method_combo = QComboBox()
        self.method_combo.addItem("RealBasicVSR x4", REALBASICVSR)
        for name in _presets():
            self.method_combo.addItem(f"Classic: {name}", ("classic", name))
        self.method_combo.addItem("Classic: recipe file…", RECIPE)
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        form.addRow("Method", self.method_combo)

        self.recipe_row, self.recipe_edit = _path_row("recipe .yaml/.json", self._pick_recipe)
        form.addRow("Recipe", self.recipe_row)
        self._recipe_label = form.labelForField(self.recipe_row)

        self.deep_box = QGroupBox("RealBasicVSR")
        deep = QFormLayout(self.deep_box)
        self.weights_combo = QComboBox()
        self.weights_combo.addItem("cached (download if missing)", "auto")
        self.weights_combo.addItem("download now", "download")
        self.weights_combo.addItem("choose file…", "file")
        self.weights_combo.currentIndexChanged.connect(self._weights_changed)
        deep.addRow("Weights", self.weights_combo)
        self.weights_row, self.weights_edit = _path_row("checkpoint .pth", self._pick_weights)
        deep.addRow("File", self.weights_row)
        self.cache_label = QLabel()
        self.cache_label.setWordWrap(True)
        deep.addRow("", self.cache_label)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        deep.addRow("Device", self.device_combo)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(["auto", "fp32", "fp16", "bf16"])
        deep.addRow("Precision", self.precision_combo)
        self.tile_spin = _auto_spin(-1, 4096, "auto", -1)
        self.tile_spin.setToolTip("tile side in input pixels; auto from free memory; 0: no tiling")
        deep.addRow("Tile", self.tile_spin)
        outer.addWidget(self.deep_box)

        form2 = QFormLayout()
        outer.addLayout(form2)
        self.chunk_spin = _auto_spin(0, 10000, "auto", 0)
        self.chunk_spin.setToolTip("frames per chunk (auto: the method's default)")
        form2.addRow("Chunk", self.chunk_spin)
        self.overlap_spin = _auto_spin(-1, 1000, "auto", -1)
        self.overlap_spin.setToolTip("context frames on each side of a chunk (auto: default)")
        form2.addRow("Overlap", self.overlap_spin)
        frames = QWidget()
        fl = QHBoxLayout(frames)
        fl.setContentsMargins(0, 0, 0, 0)
        self.start_spin = QSpinBox()
        self.stop_spin = QSpinBox()
        fl.addWidget(self.start_spin)
        fl.addWidget(QLabel("to"))
        fl.addWidget(self.stop_spin)
        self.start_spin.setToolTip("first frame (inclusive)")
        self.stop_spin.setToolTip("last frame (exclusive)")
        form2.addRow("Frames", frames)
        self.out_row, self.out_edit = _path_row(str(default_store_dir()), self._pick_folder)
        self.out_row.setToolTip("folder for the on-disk zarr result store")
        form2.addRow("Store in", self.out_row)
        self.keep_partial = QCheckBox("keep partial result on cancel")
        form2.addRow("", self.keep_partial)
        self.open_store_button = QPushButton("Open a saved result…")
        self.open_store_button.setToolTip("reopen a .zarr result store from an earlier run")
        self.open_store_button.clicked.connect(self._pick_store)
        form2.addRow("", self.open_store_button)

        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview frame")
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.preview_button.clicked.connect(self.preview)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.preview_button, self.run_button, self.cancel_button):
            buttons.addWidget(b)
        outer.addLayout(buttons)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        outer.addWidget(self.status_label)
        outer.addStretch(1)

    def _pick_recipe(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Recipe", "", "Recipes (*.yaml *.yml *.json)")
        if path:
            edit.setText(path)

    def _pick_weights(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Checkpoint", "", "Checkpoints (*.pth *.pt *.safetensors)")
        if path:
            edit.setText(path)
            self._update_cache_label()

    def _pick_folder(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Store results in")
        if path:
            edit.setText(path)

    def _pick_store(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Result store (.zarr)",
                                                str(default_store_dir()))
        if path:
            try:
                open_result_layer(self.viewer, path)
            except Exception as exc:  # a folder that is not a result store
                show_error(f"could not open {path}: {exc}")

    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.multiscale]

    def _layer_removed(self, event) -> None:
        # the growing result layer was deleted (by the user, or the viewer is closing): stop
        if self.is_running and getattr(event, "value", None) is self._run.get("layer"):
            self.cancel()
        self._refresh_layers()

    def _refresh_layers(self, event=None) -> None:
        current = self.source_combo.currentText()
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        names = [layer.name for layer in self._image_layers()]
        self.source_combo.addItems(names)
        if current in names:
            self.source_combo.setCurrentText(current)
        self.source_combo.blockSignals(False)
        self._source_changed()

    def _source_changed(self, index=None) -> None:
        layer = self.source_layer
        if layer is self._range_source:  # keep the user's frame range while layers come and go
            return
        self._range_source = layer
        n = int(layer.data.shape[0]) if layer is not None and layer.ndim >= 3 else 1
        self.start_spin.setRange(0, max(n - 1, 0))
        self.stop_spin.setRange(1, max(n, 1))
        self.stop_spin.setValue(n)

    def _method_changed(self, index=None) -> None:
        method = self.method_combo.currentData()
        is_deep = method == REALBASICVSR
        self.deep_box.setVisible(is_deep)
        self.recipe_row.setVisible(method == RECIPE)
        if self._recipe_label is not None:
            self._recipe_label.setVisible(method == RECIPE)
        self._weights_changed()

    def _weights_changed(self, index=None) -> None:
        self.weights_row.setVisible(self.weights_combo.currentData() == "file")
        self._update_cache_label()

    def _update_cache_label(self) -> None:
        try:
            from napari_vsr.models import weights as wm

            cached = wm.cached_path()
        except Exception as exc:  # weights manager missing or broken: say so, do not fail
            self.cache_label.setText(f"weights manager unavailable ({exc})")
            return
        if self.weights_combo.currentData() == "file":
            self.cache_label.setText("using the chosen file")
        elif cached is not None:
            self.cache_label.setText(f"cached: {cached}")
        else:
            self.cache_label.setText("not cached: will download the released checkpoint (148 MB)")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.preview_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    # --- state ------------------------------------------------------------------------------
    @property
    def source_layer(self) -> Image | None:
        name = self.source_combo.currentText()
        for layer in self._image_layers():
            if layer.name == name:
                return layer
        return None

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def set_method(self, method: str, preset: str | None = None) -> None:
        """Select ``"realbasicvsr"``, ``"classic"`` with a preset name, or ``"recipe"``."""
        wanted = {"realbasicvsr": REALBASICVSR, "recipe": RECIPE}.get(method, (method, preset))
        for i in range(self.method_combo.count()):
            if self.method_combo.itemData(i) == wanted:
                self.method_combo.setCurrentIndex(i)
                return
        raise ValueError(f"unknown method {method!r} / preset {preset!r}")

    def _request(self, frame_range: tuple[int, int], store_dir: str | None) -> JobRequest:
        layer = self.source_layer
        if layer is None:
            raise ValueError("open an image layer (a video or frame stack) first")
        if layer.ndim < 3:
            raise ValueError(f"layer {layer.name!r} has no time axis (shape {layer.data.shape})")
        kind, preset = self.method_combo.currentData()
        method = "realbasicvsr" if kind == "realbasicvsr" else "classic"
        recipe = (self.recipe_edit.text().strip() or None) if kind == "classic-recipe" else None
        if kind == "classic-recipe" and recipe is None:
            raise ValueError("choose a recipe file for the classic method")
        weights_mode = self.weights_combo.currentData()
        weights_file = self.weights_edit.text().strip() or None
        if method == "realbasicvsr" and weights_mode == "file" and weights_file is None:
            raise ValueError("choose a checkpoint file, or use the cached weights")
        extra = {}
        for key in ("fps", "fps_fraction", "source_path"):
            if key in layer.metadata:
                extra[key] = layer.metadata[key]
        return JobRequest(
            source=layer.data,
            source_name=layer.name,
            rgb=bool(layer.rgb),
            method=method,
            preset=preset,
            recipe=recipe,
            weights_mode=weights_mode,
            weights_file=weights_file,
            device=self.device_combo.currentText(),
            precision=self.precision_combo.currentText(),
            chunk=self.chunk_spin.value() or None,
            overlap=None if self.overlap_spin.value() < 0 else self.overlap_spin.value(),
            tile=None if self.tile_spin.value() < 0 or method != "realbasicvsr"
            else self.tile_spin.value(),
            frame_range=frame_range,
            store_dir=store_dir,
            source_scale=tuple(float(v) for v in layer.scale),
            source_translate=tuple(float(v) for v in layer.translate),
            extra_metadata=extra,
        )

    # --- actions ----------------------------------------------------------------------------
    def run(self) -> None:
        """Enhance the chosen frame range into a new zarr-backed layer."""
        start, stop = self.start_spin.value(), self.stop_spin.value()
        if stop <= start:
            show_error(f"frame range {start}:{stop} is empty: the end must be after the start")
            return
        store_dir = self.out_edit.text().strip() or str(default_store_dir())
        self._start((start, stop), store_dir, preview=False)

    def preview(self) -> None:
        """Enhance the frame under the time slider (with its temporal context) into a preview."""
        layer = self.source_layer
        if layer is None:
            show_error("open an image layer (a video or frame stack) first")
            return
        world_t = self.viewer.dims.point[0]
        t = round((world_t - layer.translate[0]) / layer.scale[0])
        t = int(min(max(t, 0), layer.data.shape[0] - 1))
        self._start((t, t + 1), None, preview=True)

    def cancel(self) -> None:
        """Ask the running job to stop at the next chunk boundary."""
        if self._token is not None:
            self._token.cancel()
            self.status_label.setText("cancelling at the next chunk…")

    def _start(self, frame_range: tuple[int, int], store_dir: str | None, *, preview: bool):
        if self.is_running:
            show_warning("an enhancement is already running; cancel it first")
            return
        try:
            request = self._request(frame_range, store_dir)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._token = CancelToken()
        total = frame_range[1] - frame_range[0]
        what = "preview" if preview else "enhance"
        self._pbar = napari_progress(total=total, desc=f"{request.source_name}: {what}")
        self._run = {"request": request, "preview": preview, "layer": None, "started": None,
                     "last_refresh": 0.0, "t0": time.perf_counter(), "source": self.source_layer}
        worker = create_worker(run_job, request, self._token, _start_thread=False,
                               _ignore_errors=True)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_end)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._set_running(True)
        self.status_label.setText("starting…")
        worker.start()

    # --- worker events (main thread) -------------------------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, JobStarted):
            self._run["started"] = event
            self.status_label.setText(f"running {event.label}…")
        elif isinstance(event, WeightsProgress):
            self.status_label.setText(format_progress(event.progress))
        elif isinstance(event, FrameDone):
            # adding a layer, refreshing it and updating the progress bar may run the event loop
            # re-entrantly, so the run can end inside this handler: check after each such call
            if self._run.get("ended"):
                return
            if self._run.get("layer") is None and self._run.get("started") is not None:
                self._add_result_layer()
                if self._run.get("ended"):
                    return
            text = format_progress(event.progress) if event.progress is not None else ""
            if event.progress is not None and event.progress.message:
                text += f" ({event.progress.message})"
            if text:
                self.status_label.setText(text)
            now = time.perf_counter()
            layer = self._run.get("layer")
            if layer is not None and now - self._run["last_refresh"] >= REFRESH_INTERVAL_S:
                self._run["last_refresh"] = now
                layer.refresh()
                if self._run.get("ended"):
                    return
            if self._pbar is not None:
                self._pbar.update(1)
            if self._pbar is not None and text and event.progress.fps > 0:
                self._pbar.set_description(f"{self._run['started'].label}: {text}")

    def _add_result_layer(self) -> None:
        started: JobStarted = self._run["started"]
        request: JobRequest = self._run["request"]
        placed = started.metadata["layer"]
        name = placed["name"]
        if self._run["preview"]:
            name += " preview"
            if self.preview_layer is not None and self.preview_layer in self.viewer.layers:
                self.viewer.layers.remove(self.preview_layer)
        layer = self.viewer.add_image(
            started.store, name=name, rgb=request.rgb, scale=placed["scale"],
            translate=placed["translate"], metadata=dict(started.metadata), multiscale=False,
            **_display_kwargs(started.store.dtype, request.rgb, self._run["source"]))
        self._run["layer"] = layer
        if self._run["preview"]:
            self.preview_layer = layer
        else:
            self.result_layer = layer

    def _on_end(self, end: JobEnd) -> None:
        self._run["ended"] = True
        layer = self._run.get("layer")
        started: JobStarted | None = self._run.get("started")
        if layer is not None:
            timing = dict(layer.metadata.get("timing", {}))
            timing.update({"elapsed_s": round(end.elapsed_s, 3), "frames": end.frames_done,
                           "fps": round(end.frames_done / end.elapsed_s, 4)
                           if end.elapsed_s > 0 else None})
            layer.metadata["timing"] = timing
            layer.refresh()
            self._record_in_store(started, {"timing": timing,
                                            "partial": end.status != "done"})
        if end.status == "done":
            self.status_label.setText(
                f"done: {end.frames_done} frames in {end.elapsed_s:.1f} s")
            if layer is not None:
                show_info(f"{layer.name}: {end.frames_done} frames in {end.elapsed_s:.1f} s")
        elif end.status == "cancelled":
            self._cancelled(layer, started, end)
        else:
            self.status_label.setText(f"failed: {end.message}")
            self._discard(layer, started)
            self._close_pbar()
            show_error(f"Enhancement failed: {end.message}")

    @staticmethod
    def _record_in_store(started: JobStarted | None, updates: dict) -> None:
        if started is None or started.store_path is None:
            return
        try:
            attrs = dict(started.store.attrs.get("napari_vsr", {}))
            attrs.update(updates)
            started.store.attrs["napari_vsr"] = attrs
        except Exception as exc:  # metadata only: never fail a finished run over it
            log.warning("could not update the attributes of %s: %s", started.store_path, exc)

    def _cancelled(self, layer, started, end: JobEnd) -> None:
        keep = self.keep_partial.isChecked() and not self._run["preview"]
        if layer is not None and keep and end.frames_done > 0 and layer in self.viewer.layers:
            layer.metadata["partial"] = True
            layer.metadata["frames_done"] = end.frames_done
            layer.name = f"{layer.name} (partial {end.frames_done} frames)"
            self.status_label.setText(f"cancelled; kept {end.frames_done} finished frames")
        else:
            self._discard(layer, started)
            self.status_label.setText("cancelled; the unfinished result was removed")

    def _discard(self, layer, started: JobStarted | None) -> None:
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        if layer is self.result_layer:
            self.result_layer = None
        if layer is self.preview_layer:
            self.preview_layer = None
        if started is not None and started.store_path:
            shutil.rmtree(started.store_path, ignore_errors=True)

    def _on_error(self, exc: BaseException) -> None:
        # run_job returns failures as JobEnd; this is only reached by a bug in the widget path
        self.status_label.setText(f"failed: {exc}")
        self._discard(self._run.get("layer"), self._run.get("started"))
        self._close_pbar()
        show_error(f"Enhancement failed: {exc}")

    def _on_finished(self) -> None:
        self._close_pbar()
        self._worker = None
        self._token = None
        self._set_running(False)

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
