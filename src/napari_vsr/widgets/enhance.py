"""The Enhance dock widget: pick a layer and a method, run it through the job runner.

Thin by design: the widget collects the form into a
:class:`~napari_vsr.jobs.request.JobRequest`, runs :func:`napari_vsr.jobs.runner.run_job` (the
CLI's runner) in a napari thread worker, and turns its events into a result layer backed by
the zarr store the job fills, a napari progress bar and notifications.  A full run is durable:
a cancelled or crashed run leaves a partial store and its job folder, and Resume continues it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Signal
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

from napari_vsr.errors import Cancelled, VsrError
from napari_vsr.jobs.progress import STAGE_ENHANCING, CancelToken, Progress, format_progress
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions, Placement
from napari_vsr.jobs.results import (
    contrast_limits,
    default_store_dir,
    is_result_store,
    is_resumable,
    layer_kwargs,
    new_store_path,
    open_result,
    resume_request,
)
from napari_vsr.jobs.runner import (
    DISPLAY_NAMES,
    FramesDone,
    JobResult,
    JobStarted,
    JobWarning,
    run_job,
)
from napari_vsr.placement import frame_index

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

REALBASICVSR = ("realbasicvsr", None)
RECIPE = ("classic-recipe", None)
PARTIAL_SUFFIX = " (partial)"


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
    if like is not None and not rgb:
        return {"contrast_limits": list(like.contrast_limits), "colormap": like.colormap}
    return {"contrast_limits": contrast_limits(dtype)}


def layer_source(layer: Image) -> Any:
    """What a job reads for ``layer``: the file it came from when napari-vsr reads that file
    and the layer shows all of it (the job then opens it itself: resumable, fps and colour
    tags from the file), else the layer's array."""
    path = getattr(layer.source, "path", None)
    if not path:
        return layer.data
    from napari_vsr.io import is_supported
    from napari_vsr.io.frame_array import FrameArray

    data = layer.data
    if isinstance(data, FrameArray) and is_supported(path):
        return os.fspath(path)
    if is_result_store(path) and tuple(getattr(data, "shape", ())) == tuple(
            open_result(path)[0].shape) and "zarr" in type(data).__module__:
        return os.fspath(path)
    return data


def open_result_layer(viewer: napari.viewer.Viewer, path) -> Image:
    """Open a saved result store as a frame-synced layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    path : path-like
        A ``.zarr`` result store (made by the widget or ``napari-vsr enhance -o x.zarr``).

    Returns
    -------
    napari.layers.Image
        Named with the suffix " (partial)" (and announced) when the job writing it was
        interrupted; Resume continues such a job when its job folder is still there.
    """
    store, metadata = open_result(path)
    layer = viewer.add_image(store, **layer_kwargs(path, store, metadata))
    if metadata.get("partial"):
        how = ("Resume continues it" if is_resumable(metadata)
               else "its job folder is gone, so it cannot be resumed")
        show_warning(f"{layer.name}: the run that wrote {Path(path).name} was interrupted; {how}")
    return layer


@dataclass
class _Run:
    """What the widget knows about the job in flight."""

    request: JobRequest
    preview: bool
    source_layer: Image | None
    layer: Image | None = None  # the result layer (a resumed run's existing one)
    started: JobStarted | None = None
    frames: int = 0
    ended: bool = False


class EnhanceWidget(QWidget):
    """Dock widget: source layer, method and its parameters, frame range, Preview/Run/Cancel,
    and reopening (and resuming) saved results.

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
    last_result : JobResult or None
        What the last job that finished returned.
    """

    #: (run, Progress) from the job's thread: per-frame progress arrives while a chunk runs
    _progress_arrived = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self._progress_arrived.connect(self._on_progress_signal)
        self.viewer = napari_viewer
        self.result_layer: Image | None = None
        self.preview_layer: Image | None = None
        self.last_result: JobResult | None = None
        self._worker = None
        self._token: CancelToken | None = None
        self._pbar = None
        self._run: _Run | None = None
        self._opened: Image | None = None
        self._range_source: Image | None = None
        self._build_ui()
        self._refresh_layers()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        self.viewer.layers.selection.events.active.connect(self._update_resume)
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
        self.segment_spin = _auto_spin(0, 100000, "auto", 0)
        self.segment_spin.setToolTip(
            "frames per committed segment (whole chunks): a cancelled or crashed run resumes "
            "from its last committed segment (auto: about a hundred frames)")
        form2.addRow("Segment", self.segment_spin)
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
        self.keep_partial = QCheckBox("keep partial result on cancel (resumable)")
        self.keep_partial.setChecked(True)
        form2.addRow("", self.keep_partial)
        self.open_store_button = QPushButton("Open a saved result…")
        self.open_store_button.setToolTip("reopen a .zarr result store from an earlier run")
        self.open_store_button.clicked.connect(self._pick_store)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "continue the interrupted run of the selected partial result, into the same store")
        self.resume_button.clicked.connect(lambda: self.resume())
        stores = QHBoxLayout()
        stores.addWidget(self.open_store_button)
        stores.addWidget(self.resume_button)
        form2.addRow("", stores)

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
                self.open_result(path)
            except Exception as exc:  # a folder that is not a result store
                show_error(f"could not open {path}: {exc}")

    def open_result(self, path) -> Image:
        """Open a saved result store as a layer (see :func:`open_result_layer`); a partial one
        becomes the one the Resume button continues."""
        layer = open_result_layer(self.viewer, path)
        if layer.metadata.get("partial"):
            self._opened = layer
            how = ("Resume continues it" if is_resumable(layer.metadata)
                   else "its job folder is gone")
            self.status_label.setText(f"opened a partial result; {how}")
        self._update_resume()
        return layer

    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.multiscale]

    def _layer_removed(self, event) -> None:
        # the growing result layer was deleted (by the user, or the viewer is closing): stop
        if (self.is_running and self._run is not None
                and getattr(event, "value", None) is self._run.layer):
            self.cancel()
        self._refresh_layers()
        self._update_resume()

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
        self._update_resume()

    def _update_resume(self, event=None) -> None:
        self.resume_button.setEnabled(not self.is_running and self.partial_layer is not None)

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

    @property
    def partial_layer(self) -> Image | None:
        """The partial result Resume continues: the selected layer when it is one, else the
        last partial result opened here."""
        for layer in (self.viewer.layers.selection.active, self._opened):
            if (isinstance(layer, Image) and layer in self.viewer.layers
                    and layer.metadata.get("store_path") and is_resumable(layer.metadata)):
                return layer
        return None

    def set_method(self, method: str, preset: str | None = None) -> None:
        """Select ``"realbasicvsr"``, ``"classic"`` with a preset name, or ``"recipe"``."""
        wanted = {"realbasicvsr": REALBASICVSR, "recipe": RECIPE}.get(method, (method, preset))
        for i in range(self.method_combo.count()):
            if self.method_combo.itemData(i) == wanted:
                self.method_combo.setCurrentIndex(i)
                return
        raise ValueError(f"unknown method {method!r} / preset {preset!r}")

    def method_options(self) -> MethodOptions:
        """The method and its options as the form sets them.

        Weights: "file" names the checkpoint; "auto" and "download" leave it to the runner
        (environment, cache, else a download reported as progress).
        """
        kind, preset = self.method_combo.currentData()
        if kind != "realbasicvsr":
            recipe = (self.recipe_edit.text().strip() or None) if kind == "classic-recipe" else None
            if kind == "classic-recipe" and recipe is None:
                raise ValueError("choose a recipe file for the classic method")
            return MethodOptions(method="classic", preset=preset, recipe=recipe)
        weights = None
        if self.weights_combo.currentData() == "file":
            weights = self.weights_edit.text().strip() or None
            if weights is None:
                raise ValueError("choose a checkpoint file, or use the cached weights")
        return MethodOptions(method="realbasicvsr", weights=weights,
                             device=self.device_combo.currentText(),
                             precision=self.precision_combo.currentText())

    def _method_label(self, method: MethodOptions) -> str:
        """The method's part of a store name ("RealBasicVSR x4", "classic:seed")."""
        if method.method == "realbasicvsr":
            return f"{DISPLAY_NAMES['realbasicvsr']} x4"
        what = method.preset or (Path(method.recipe).stem if method.recipe else "recipe")
        return f"classic:{what}"

    def _request(self, frame_range: tuple[int, int], store_dir: str | None) -> JobRequest:
        """The job of the form: a durable, live store in ``store_dir``; None: a preview kept
        in memory."""
        layer = self.source_layer
        if layer is None:
            raise ValueError("open an image layer (a video or frame stack) first")
        if layer.ndim < 3:
            raise ValueError(f"layer {layer.name!r} has no time axis (shape {layer.data.shape})")
        method = self.method_options()
        source = layer_source(layer)
        extra = {}
        if not isinstance(source, str):  # an array knows no frame rate: the layer's
            extra = {k: layer.metadata[k] for k in ("fps", "fps_fraction")
                     if layer.metadata.get(k) is not None}
        tile = self.tile_spin.value()
        common = dict(
            source=source,
            source_name=layer.name,
            rgb=bool(layer.rgb),
            placement=Placement(tuple(float(v) for v in layer.scale),
                                tuple(float(v) for v in layer.translate)),
            frame_range=frame_range,
            method=method,
            engine=EngineOptions(
                chunk=self.chunk_spin.value() or None,
                overlap=None if self.overlap_spin.value() < 0 else self.overlap_spin.value(),
                tile=None if tile < 0 or method.method != "realbasicvsr" else tile,
            ),
            extra_metadata=extra,
        )
        if store_dir is None:
            return JobRequest(output=None, durable=False, **common)
        output = new_store_path(store_dir, layer.name, self._method_label(method))
        return JobRequest(output=os.fspath(output), live=True,
                          segment=self.segment_spin.value() or None, **common)

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

    def resume(self, layer: Image | None = None) -> None:
        """Continue the interrupted run of a partial result (default: :attr:`partial_layer`),
        filling the same store and layer."""
        layer = layer or self.partial_layer
        if layer is None:
            show_error("open (or select) a partial result to resume")
            return
        path = layer.metadata["store_path"]
        try:
            _, metadata = open_result(path)
            source = None
            if not (metadata.get("source") or {}).get("path"):  # an in-memory layer's job
                name = (metadata.get("source") or {}).get("name")
                match = [lyr for lyr in self._image_layers() if lyr.name == name]
                source = match[0].data if match else None
            request = resume_request(path, metadata, source=source)
            if source is not None and metadata.get("fps"):
                request = _with_extra(request, {"fps_fraction": metadata["fps"]})
        except (VsrError, OSError, KeyError) as exc:
            show_error(f"cannot resume {path}: {exc}")
            return
        self._launch(request, preview=False, resume_layer=layer)

    def cancel(self) -> None:
        """Ask the running job to stop at the next frame."""
        if self._token is not None:
            self._token.cancel()
            self.status_label.setText("cancelling…")

    def _start(self, frame_range: tuple[int, int], store_dir: str | None, *, preview: bool):
        if self.is_running:
            show_warning("an enhancement is already running; cancel it first")
            return
        try:
            request = self._request(frame_range, store_dir)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._launch(request, preview=preview)

    def _launch(self, request: JobRequest, *, preview: bool,
                resume_layer: Image | None = None) -> None:
        if self.is_running:
            show_warning("an enhancement is already running; cancel it first")
            return
        self._token = CancelToken()
        rng = request.frame_range or (0, 1)
        what = "preview" if preview else ("resume" if request.resume else "enhance")
        self._pbar = napari_progress(total=max(1, int(rng[1]) - int(rng[0])),
                                     desc=f"{request.name()}: {what}")
        self._run = _Run(request, preview, None if request.resume else self.source_layer,
                         layer=resume_layer)
        run = self._run
        worker = create_worker(run_job, request, self._token, _start_thread=False,
                               _ignore_errors=True,
                               progress=lambda p: self._progress_arrived.emit((run, p)))
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._set_running(True)
        self.status_label.setText("starting…")
        worker.start()

    # --- worker events (main thread) -------------------------------------------------------
    # Adding a layer, refreshing it and updating the progress bar may run the event loop
    # re-entrantly, so the run can end inside a handler: each checks ``ended`` after such calls.
    def _on_event(self, event) -> None:
        run = self._run
        if run is None or run.ended:
            return
        if isinstance(event, JobStarted):
            run.started = event
            self.status_label.setText(f"running {event.label}…")
            if event.store is not None:
                self._show_store(run, event)
        elif isinstance(event, FramesDone):
            run.frames += event.count
            layer = run.layer
            if layer is not None and layer in self.viewer.layers and self._shows(
                    layer, event.position, event.count):
                layer.refresh()
        elif isinstance(event, Progress):
            self._on_progress(event)
        elif isinstance(event, JobWarning):
            show_warning(event.message)

    def _shows(self, layer: Image, position: int, count: int) -> bool:
        """Whether the viewer shows one of the layer's frames ``position .. +count``."""
        t = frame_index(self.viewer.dims.point[0], layer.scale[0], layer.translate[0],
                        int(layer.data.shape[0]))
        return t is not None and position <= t < position + count

    def _on_progress_signal(self, item) -> None:
        run, p = item
        if run is self._run and run is not None and not run.ended:
            self._on_progress(p)

    def _on_progress(self, p: Progress) -> None:
        text = format_progress(p) + (f" ({p.message})" if p.message else "")
        self.status_label.setText(text)
        pbar = self._pbar
        if pbar is None:
            return
        if p.stage == STAGE_ENHANCING and p.unit == "frames" and p.total:
            if pbar.total != p.total:
                pbar.total = p.total
            if p.done > pbar.n:
                pbar.update(p.done - pbar.n)
        if self._run is not None and not self._run.ended and self._pbar is not None:
            label = self._run.started.label if self._run.started else self._run.request.name()
            self._pbar.set_description(f"{label}: {text}")

    def _show_store(self, run: _Run, started: JobStarted) -> None:
        """The result layer, backed by the job's store: a new layer, or (resume) the partial
        layer being continued."""
        if run.layer is not None and run.layer in self.viewer.layers:
            run.layer.data = started.store
            self.result_layer = run.layer
            return
        placed = started.metadata["layer"]
        name = placed["name"]
        if run.preview:
            name += " preview"
            if self.preview_layer is not None and self.preview_layer in self.viewer.layers:
                self.viewer.layers.remove(self.preview_layer)
        metadata = dict(started.metadata)
        if started.output is not None:
            metadata["store_path"] = os.path.abspath(started.output)
        layer = self.viewer.add_image(
            started.store, name=name, rgb=placed["rgb"], scale=placed["scale"],
            translate=placed["translate"], metadata=metadata, multiscale=False,
            **_display_kwargs(started.store.dtype, placed["rgb"], run.source_layer))
        run.layer = layer
        if run.preview:
            self.preview_layer = layer
        else:
            self.result_layer = layer

    def _on_done(self, result: JobResult) -> None:
        run = self._run
        run.ended = True
        self.last_result = result
        layer = run.layer
        if layer is not None and layer in self.viewer.layers:
            metadata = dict(result.metadata)
            if result.output is not None:
                metadata["store_path"] = os.path.abspath(result.output)
            layer.metadata = metadata
            if layer.name.endswith(PARTIAL_SUFFIX):
                layer.name = layer.name[: -len(PARTIAL_SUFFIX)]
            layer.refresh()
        self.status_label.setText(f"done: {result.frames} frames in {result.elapsed_s:.1f} s")
        if layer is not None and not run.preview:
            show_info(f"{layer.name}: {result.frames} frames in {result.elapsed_s:.1f} s")

    def _on_error(self, exc: BaseException) -> None:
        run = self._run
        if run is None:
            return
        run.ended = True
        if isinstance(exc, Cancelled):
            self._cancelled(run)
            return
        if isinstance(exc, VsrError):
            message = str(exc)
        else:  # a bug or a library failure: keep the traceback in the log
            log.error("enhancement failed", exc_info=(type(exc), exc, exc.__traceback__))
            message = f"{type(exc).__name__}: {exc}"
        if self._resumable(run):
            self._mark_partial(run)
            message += "; the finished segments are kept: Resume continues the run"
        else:
            self._discard(run)
        self.status_label.setText(f"failed: {message}")
        self._close_pbar()
        show_error(f"Enhancement failed: {message}")

    @staticmethod
    def _resumable(run: _Run) -> bool:
        started = run.started
        return (not run.preview and started is not None and started.job_dir is not None
                and Path(started.job_dir).is_dir())

    def _cancelled(self, run: _Run) -> None:
        layer = run.layer
        keep = not run.preview and (self.keep_partial.isChecked() or run.request.resume)
        if layer is not None and keep and layer in self.viewer.layers and (
                run.frames > 0 or run.request.resume):
            self._mark_partial(run)
            how = "; Resume continues it" if self._resumable(run) else ""
            self.status_label.setText(f"cancelled; kept {run.frames} finished frames{how}")
        else:
            self._discard(run)
            self.status_label.setText("cancelled; the unfinished result was removed")

    def _mark_partial(self, run: _Run) -> None:
        layer = run.layer
        if layer is None or layer not in self.viewer.layers:
            return
        layer.metadata = {**layer.metadata, "partial": True}
        if not layer.name.endswith(PARTIAL_SUFFIX) and " (partial" not in layer.name:
            layer.name = f"{layer.name} (partial {run.frames} frames)"
        self._opened = layer
        self._update_resume()

    def _discard(self, run: _Run) -> None:
        """Remove an unfinished result: its layer, its store and its job folder."""
        layer = run.layer
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        if layer is self.result_layer:
            self.result_layer = None
        if layer is self.preview_layer:
            self.preview_layer = None
        started = run.started
        if started is None or run.preview or run.request.resume:
            return
        if started.output is not None:
            shutil.rmtree(started.output, ignore_errors=True)
        if started.job_dir is not None:
            from napari_vsr.jobs.state import JobDir

            try:
                JobDir(started.job_dir).remove()
            except VsrError as exc:
                log.warning("%s", exc)

    def _on_finished(self) -> None:
        self._close_pbar()
        self._worker = None
        self._token = None
        self._set_running(False)

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None


def _with_extra(request: JobRequest, extra: dict) -> JobRequest:
    from dataclasses import replace

    return replace(request, extra_metadata={**request.extra_metadata, **extra})
