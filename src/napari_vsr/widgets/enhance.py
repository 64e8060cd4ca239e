"""The Enhance dock widget: pick a layer and a method, preview it, run it through the job runner.

Composed of small parts: the method panel (:mod:`._method_panel`), the frames-and-output form
(:mod:`._range_panel`), the results section (reopen, resume, save, stores) and
:class:`~napari_vsr.widgets.layer_job.LayerJob`, which runs the command line's job runner in a
thread worker and fills a result layer placed over the source.  The form is in foldable
sections inside a scroll area, so the dock fits a 1600x1000 screen beside other docks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.errors import VsrError
from napari_vsr.jobs import estimate as estimates
from napari_vsr.jobs.progress import STAGE_ENHANCING, Progress, clock_text
from napari_vsr.jobs.request import JobRequest, Placement
from napari_vsr.jobs.results import (
    default_store_dir,
    finished_view,
    is_result_store,
    is_resumable,
    layer_kwargs,
    new_store_path,
    open_result,
    resume_request,
)
from napari_vsr.jobs.runner import JobResult
from napari_vsr.widgets._method_panel import MethodPanel
from napari_vsr.widgets._parts import NameCombo, Section, StatusLine, plural, scrolling
from napari_vsr.widgets._preview_plan import device_kind, plan_preview
from napari_vsr.widgets._range_panel import RangePanel
from napari_vsr.widgets.layer_job import JobEnd, LayerJob, Outcome, find_layer

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

#: a preview expected to take longer than this asks for a second click first
PREVIEW_CONFIRM_S = 15.0


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
    layer = viewer.add_image(finished_view(path, store, metadata),
                             **layer_kwargs(path, store, metadata))
    if metadata.get("partial"):
        how = ("Resume continues it" if is_resumable(metadata)
               else "its job folder is gone, so it cannot be resumed")
        show_warning(f"{layer.name}: the run that wrote {Path(path).name} was interrupted; {how}")
    return layer


class EnhanceWidget(QWidget):
    """Dock widget: source layer, method and its settings, frame range and output, results
    (reopen, resume, save, stores), Preview/Run/Cancel with progress.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    result_layer : napari.layers.Image or None
        The layer of the last (or current) full run, while it is in the viewer.
    preview_layer : napari.layers.Image or None
        The layer of the last preview, while it is in the viewer.
    last_result : JobResult or None
        What the last job that finished returned.
    job : LayerJob or None
        The job in flight.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.last_result: JobResult | None = None
        self.job: LayerJob | None = None
        self._result_run: str | None = None  # run id of the last full run's layer
        self._preview_run: str | None = None
        self._opened_store: str | None = None
        self._source_id = None  # unique_id of the chosen source layer (survives renames)
        self._armed_preview: tuple | None = None
        self._build_ui()
        self._refresh_layers()
        layers = self.viewer.layers
        layers.events.inserted.connect(self._layer_inserted)
        layers.events.removed.connect(self._layer_removed)
        layers.selection.events.active.connect(self._update_buttons)
        for layer in layers:
            layer.events.name.connect(self._refresh_layers)
        self._set_running(False)

    # --- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        top = QFormLayout()
        top.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.source_combo = NameCombo()
        self.source_combo.setToolTip("the image layer to enhance (a video or a frame stack)")
        self.source_combo.currentIndexChanged.connect(self._source_changed)
        top.addRow("Source", self.source_combo)
        outer.addLayout(top)

        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 0, 0)
        self.method_panel = MethodPanel(on_builder=self._builder_made)
        self.method_panel.changed.connect(self._form_changed)
        self.method_section = Section("Method", self.method_panel,
                                      tooltip="the enhancement method and its settings")
        inner.addWidget(self.method_section)
        self.range_panel = RangePanel()
        self.range_panel.changed.connect(self._form_changed)
        self.range_section = Section("Frames and output", self.range_panel, expanded=False,
                                     tooltip="which frames, how the work is cut, where the "
                                     "result is stored")
        inner.addWidget(self.range_section)
        self.results_panel = self._results_panel()
        self.results_section = Section("Results", self.results_panel, expanded=False,
                                       tooltip="reopen, resume and save results")
        inner.addWidget(self.results_section)
        inner.addStretch(1)
        # the form's controls under short names (scripts and tests set them)
        mp, rp = self.method_panel, self.range_panel
        self.method_combo = mp.combo
        self.weights_combo, self.weights_edit = mp.weights_combo, mp.weights_edit
        self.device_combo, self.precision_combo = mp.device_combo, mp.precision_combo
        self.tile_spin, self.recipe_edit = mp.tile_spin, mp.recipe_edit
        self.chunk_spin, self.overlap_spin = rp.chunk_spin, rp.overlap_spin
        self.segment_spin, self.out_edit = rp.segment_spin, rp.out_edit
        self.start_spin, self.stop_spin = rp.start_spin, rp.stop_spin
        self.keep_partial = rp.keep_partial
        self.out_edit.editingFinished.connect(self._store_folder_changed)
        self.scroll = scrolling(body)
        outer.addWidget(self.scroll, 1)

        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip(
            "enhance the visible part of the frame under the time slider (with the frames "
            "around it the method needs); the expected time is shown first")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("enhance the chosen frames into a new layer over the source")
        self.queue_button = QPushButton("Queue")
        self.queue_button.setToolTip(
            "add this enhancement to the Job queue (runs jobs one after another, here or on a "
            "Dask cluster)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("stop after the frame being computed")
        self.preview_button.clicked.connect(self.preview)
        self.run_button.clicked.connect(self.run)
        self.queue_button.clicked.connect(self.add_to_queue)
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.preview_button, self.run_button, self.queue_button, self.cancel_button):
            buttons.addWidget(b)
        outer.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("frames finished")
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setVisible(False)
        outer.addWidget(self.progress_bar)
        self.status_label = StatusLine()
        outer.addWidget(self.status_label)

    def _results_panel(self) -> QWidget:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.open_store_button = QPushButton("Open…")
        self.open_store_button.setToolTip("reopen a result (.zarr) from an earlier run")
        self.open_store_button.clicked.connect(self._pick_store)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "continue the interrupted run of the selected partial result, into the same store")
        self.resume_button.clicked.connect(lambda: self.resume())
        self.save_button = QPushButton("Save result…")
        self.save_button.setToolTip("save the selected result layer as a video, TIFF or frames")
        self.save_button.clicked.connect(self.save_result)
        for b in (self.open_store_button, self.resume_button, self.save_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.stores_panel = None
        try:
            from napari_vsr.widgets.stores import StoresPanel
        except ImportError:  # the store manager is not part of this installation
            return panel
        self.stores_panel = StoresPanel(self.viewer)
        self.stores_panel.set_busy_paths(self._busy_paths)
        lay.addWidget(self.stores_panel)
        return panel

    def _store_folder_changed(self) -> None:
        if self.stores_panel is not None:
            self.stores_panel.set_folder(self.range_panel.store_dir())

    def _busy_paths(self) -> set[str]:
        job = self.job
        return {job.store_path} if job is not None and job.store_path else set()

    def _pick_store(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Result store (.zarr)",
                                                str(default_store_dir()))
        if path:
            try:
                self.open_result(path)
            except (VsrError, OSError, ValueError) as exc:  # a folder that is not a result
                self._fail(f"could not open {path}: {exc}")

    # --- layers -----------------------------------------------------------------------------
    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.multiscale]

    def _layer_inserted(self, event) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()

    def _layer_removed(self, event=None) -> None:
        self._refresh_layers()

    def _refresh_layers(self, event=None) -> None:
        """Refill the source list (layers added, removed or renamed), keeping the chosen
        layer chosen under its new name."""
        layers = self._image_layers()
        keep = next((lyr for lyr in layers if lyr.unique_id == self._source_id), None)
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        self.source_combo.addItems([layer.name for layer in layers])
        if keep is not None:
            self.source_combo.setCurrentText(keep.name)
        self.source_combo.blockSignals(False)
        self._source_changed()

    def _source_changed(self, index=None) -> None:
        layer = self.source_layer
        new_id = None if layer is None else layer.unique_id
        if new_id != self._source_id:  # a different layer: its frame range
            self._source_id = new_id
            n = int(layer.data.shape[0]) if layer is not None and layer.ndim >= 3 else 0
            self.range_panel.set_frame_count(n)
            builder = getattr(self, "method_panel", None) and self.method_panel.builder
            if builder is not None:
                builder.refresh_preview()
        self._update_buttons()
        self._form_changed()

    def _builder_made(self, builder) -> None:
        """The pipeline builder's live preview follows this widget's source layer."""
        builder.set_preview_target(self.viewer, lambda: self.source_layer)

    def _form_changed(self) -> None:
        self._armed_preview = None
        if not self.is_running:
            self.preview_button.setText("Preview")

    # --- state ------------------------------------------------------------------------------
    @property
    def source_layer(self) -> Image | None:
        name = self.source_combo.currentText()
        for layer in self._image_layers():
            if layer.name == name:
                return layer
        return None

    @property
    def result_layer(self) -> Image | None:
        return None if self._result_run is None else find_layer(
            self.viewer, "napari_vsr_run", self._result_run)

    @property
    def preview_layer(self) -> Image | None:
        return None if self._preview_run is None else find_layer(
            self.viewer, "napari_vsr_run", self._preview_run)

    @property
    def is_running(self) -> bool:
        return self.job is not None and self.job.running

    @property
    def partial_layer(self) -> Image | None:
        """The partial result Resume continues: the selected layer when it is one, else the
        last partial result opened or kept here."""
        candidates = [self.viewer.layers.selection.active]
        if self._opened_store is not None:
            candidates.append(find_layer(self.viewer, "store_path", self._opened_store))
        for layer in candidates:
            if (isinstance(layer, Image) and layer.metadata.get("store_path")
                    and is_resumable(layer.metadata)):
                return layer
        return None

    @property
    def selected_result(self) -> Image | None:
        """The selected layer when it is an image (else the last result)."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        return self.result_layer

    def set_method(self, method: str, preset: str | None = None) -> None:
        """Select ``"realbasicvsr"``, ``"classic"`` with a preset name, ``"recipe"`` or
        ``"builder"``."""
        self.method_panel.set_method(method, preset)

    def method_options(self):
        return self.method_panel.method_options()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.preview_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress_bar.setVisible(running)
        if running:
            self.progress_bar.setRange(0, 0)  # busy until the first progress record
        self._update_buttons()

    def _update_buttons(self, event=None) -> None:
        running = self.is_running
        self.resume_button.setEnabled(not running and self.partial_layer is not None)
        self.save_button.setEnabled(self.selected_result is not None)

    def _say(self, text: str) -> None:
        self.status_label.show_message(text)

    def _fail(self, text: str) -> None:
        self.status_label.show_error(text)

    # --- requests ---------------------------------------------------------------------------
    def _checked_source(self) -> Image:
        layer = self.source_layer
        if layer is None:
            raise ValueError("open a video or a frame stack first (File > Open, or "
                             "File > Open Sample > napari-vsr)")
        if layer.ndim < 3:
            raise ValueError(f"layer {layer.name!r} is a single image; choose a video or a "
                             "frame stack")
        return layer

    def _request(self, frame_range: tuple[int, int], store_dir: str | None, *,
                 source: Any = None, placement: Placement | None = None,
                 name: str | None = None, overlap: int | None = None) -> JobRequest:
        """The job of the form: a durable, live store in ``store_dir``; None: a preview kept
        in memory."""
        layer = self._checked_source()
        method = self.method_panel.method_options()
        if source is None:
            source = layer_source(layer)
        extra = {}
        if not isinstance(source, str):  # an array knows no frame rate: the layer's
            extra = {k: layer.metadata[k] for k in ("fps", "fps_fraction")
                     if layer.metadata.get(k) is not None}
        engine = self.range_panel.engine_options(tile=self.method_panel.tile())
        if overlap is not None:
            engine = replace(engine, overlap=overlap)
        common = dict(
            source=source,
            source_name=name or layer.name,
            rgb=bool(layer.rgb),
            placement=placement or Placement(tuple(float(v) for v in layer.scale),
                                             tuple(float(v) for v in layer.translate)),
            frame_range=frame_range,
            method=method,
            engine=engine,
            extra_metadata=extra,
        )
        if store_dir is None:
            return JobRequest(output=None, durable=False, **common)
        output = new_store_path(store_dir, layer.name, MethodPanel.label(method))
        return JobRequest(output=os.fspath(output), live=True,
                          segment=self.range_panel.segment(), **common)

    # --- actions ----------------------------------------------------------------------------
    def run(self) -> None:
        """Enhance the chosen frames into a new zarr-backed layer."""
        self._say("")
        try:
            self._checked_source()
            frame_range = self.range_panel.frame_range()
            request = self._request(frame_range, self.range_panel.store_dir())
        except ValueError as exc:
            self._fail(str(exc))
            return
        self._launch(request, preview=False)

    def add_to_queue(self):
        """Add the form's enhancement (like Run) to the Job queue, docked beside this widget;
        returns the queue widget, or None when the form is incomplete."""
        self._say("")
        try:
            layer = self._checked_source()
            request = self._request(self.range_panel.frame_range(), self.range_panel.store_dir())
        except ValueError as exc:
            self._fail(str(exc))
            return None
        from napari_vsr.jobs.queue import QueueError

        _, queue = self.viewer.window.add_plugin_dock_widget("napari-vsr", "Job queue",
                                                             tabify=True)
        try:
            queue.add_request(request, source_layer_name=layer.name)
        except QueueError as exc:
            self._fail(str(exc))
            return None
        self._say(f"added {layer.name} ({MethodPanel.label(request.method)}) to the Job queue")
        return queue

    def preview(self) -> None:
        """Enhance the visible region of the frame under the time slider into a preview layer.

        For RealBasicVSR the region is at most 256 px a side (the middle of the view) and the
        expected time is shown first; a preview expected to take longer than
        :data:`PREVIEW_CONFIRM_S` starts on a second click.
        """
        self._say("")
        try:
            layer = self._checked_source()
            plan = self._preview_plan(layer)
        except ValueError as exc:
            self._fail(str(exc))
            return
        request, est, key = plan
        slow = est.seconds is None or est.seconds > PREVIEW_CONFIRM_S
        if self.method_panel.is_deep and slow and self._armed_preview != key:
            self._armed_preview = key
            self.preview_button.setText("Start preview")
            self._say(f"Preview needs {est.text()}. Click Start preview to go on, or zoom in "
                      "to preview a smaller region.")
            return
        self._armed_preview = None
        self.preview_button.setText("Preview")
        self._say(f"previewing: {est.text()}")
        self._launch(request, preview=True)

    def _preview_plan(self, layer: Image):
        """(request, estimate, key) of a preview of the visible region at the slider's frame."""
        method = self.method_panel.method_options()
        plan = plan_preview(layer, self.viewer.dims.point[0], method,
                            self.range_panel.engine_options().overlap)
        scale = tuple(float(v) for v in layer.scale)
        translate = list(float(v) for v in layer.translate)
        translate[1] += plan.y.start * scale[1]
        translate[2] += plan.x.start * scale[2]
        request = self._request((plan.t, plan.t + 1), None, source=plan.source,
                                placement=Placement(scale, tuple(translate)),
                                overlap=plan.overlap)
        est = estimates.estimate(method.method, plan.device, plan.frames,
                                 plan.y.stop - plan.y.start, plan.x.stop - plan.x.start)
        return request, est, (layer.unique_id, plan.key, repr(method))

    def resume(self, layer: Image | None = None) -> None:
        """Continue the interrupted run of a partial result (default: :attr:`partial_layer`),
        filling the same store and layer."""
        self._say("")
        layer = layer or self.partial_layer
        if layer is None:
            self._fail("open (or select) a partial result to resume")
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
                request = replace(request, extra_metadata={**request.extra_metadata,
                                                           "fps_fraction": metadata["fps"]})
        except (VsrError, OSError, KeyError) as exc:
            self._fail(f"cannot resume {path}: {exc}")
            return
        self._launch(request, preview=False, resume_store=path)

    def cancel(self) -> None:
        """Ask the running job to stop after the frame being computed."""
        if self.job is not None:
            self.job.cancel()

    def open_result(self, path) -> Image:
        """Open a saved result store as a layer (see :func:`open_result_layer`); a partial one
        becomes the one the Resume button continues."""
        self._say("")
        layer = open_result_layer(self.viewer, path)
        if layer.metadata.get("partial"):
            self._opened_store = layer.metadata.get("store_path")
            how = ("Resume continues it" if is_resumable(layer.metadata)
                   else "its job folder is gone")
            self._say(f"opened a partial result; {how}")
        self._update_buttons()
        return layer

    def save_result(self) -> None:
        """Save the selected result layer (a dialog asks for the format and the file)."""
        layer = self.selected_result
        if layer is None:
            self._fail("select the result layer to save")
            return
        try:
            from napari_vsr.widgets.save import save_layer_dialog
        except ImportError:
            self._fail("saving is not part of this installation")
            return
        save_layer_dialog(self, self.viewer, layer)

    # --- running ----------------------------------------------------------------------------
    def _launch(self, request: JobRequest, *, preview: bool,
                resume_store: str | None = None) -> None:
        if self.is_running:
            show_warning("an enhancement is already running; cancel it first")
            return
        what = "preview" if preview else ("resume" if request.resume else "enhance")
        job = LayerJob(self.viewer, request, title=f"{request.name()}: {what}",
                       preview=preview,
                       source_layer=None if request.resume else self.source_layer,
                       resume_store=resume_store,
                       keep_partial=self.range_panel.keep_partial.isChecked())
        # bound methods only: Qt drops these connections when the widget is deleted (the
        # window closed), while the job itself runs on to its end
        job.status.connect(self._say)
        job.progressed.connect(self._on_progress)
        job.layer_added.connect(self._layer_added)
        job.ended.connect(self._ended)
        self.job = job
        self._set_running(True)
        job.start()

    def _layer_added(self, name: str) -> None:
        job = self.sender()
        if not isinstance(job, LayerJob):
            return
        if job.preview:
            self._preview_run = job.run_id
        else:
            self._result_run = job.run_id
        self._update_buttons()

    def _on_progress(self, p: Progress) -> None:
        if p.stage == STAGE_ENHANCING and p.unit == "frames" and p.total:
            self.progress_bar.setRange(0, int(p.total))
            self.progress_bar.setValue(min(int(p.done), int(p.total)))
            eta = "" if p.eta_s is None else f", {clock_text(p.eta_s)} left"
            self.progress_bar.setFormat(f"%v/%m frames{eta}")
        else:
            self.progress_bar.setRange(0, 0)

    def _ended(self, end: JobEnd) -> None:
        job = self.sender()
        if not isinstance(job, LayerJob):
            return
        if end.outcome is Outcome.DONE:
            result = end.result
            self.last_result = result
            if result is not None and result.elapsed_s > 0 and job.started is not None:
                method = job.request.method
                store = job.started.store
                pixels = result.frames * _input_pixels(store, job.started.scale)
                device = device_kind(method)
                if result.segments_computed and not job.preview:  # a preview reads context
                    estimates.record_rate(method.method, device, pixels, result.elapsed_s)
            if end.layer_name and not job.preview:
                show_info(f"{end.layer_name}: {plural(result.frames, 'frame')} in "
                          f"{result.elapsed_s:.1f} s")
        elif end.outcome is Outcome.FAILED:
            how = "; Resume continues the run" if end.resumable else ""
            show_error(f"Enhancement failed: {end.message.removeprefix('failed: ')}{how}")
        if end.kept and job.store_path:
            self._opened_store = job.store_path
        self._say(end.message + ("; Resume continues it" if end.resumable else ""))
        if self.job is job:
            self.job = None
        self._set_running(False)


def _input_pixels(store, scale: int) -> int:
    h, w = int(store.shape[1]), int(store.shape[2])
    return max(1, (h // max(scale, 1)) * (w // max(scale, 1)))
