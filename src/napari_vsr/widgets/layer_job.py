"""One job run for a napari viewer: the job runner in a thread worker, its result layer, its
progress (widget signal, napari progress bar, napari task status) and its end.

:class:`LayerJob` is what the Enhance widget and the job queue share.  It runs
:func:`napari_vsr.jobs.runner.run_job` (the command line's runner) with a cancel token, shows
the live result store as a layer placed over the source, refreshes it as frames finish, and on
the end either finalises the layer (done), keeps the finished frames as a resumable partial
result, or removes the layer with its store and job folder.

It is registered with napari's task status, so closing the window while it runs asks first,
then cancels it (the store stays partial and resumable).  Deleting the growing layer cancels
the job and removes what it made.  Layers are recognised by a run id in their metadata, never
by identity: plugins receive proxies of the viewer's layers.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from qtpy.QtCore import QObject, Signal

from napari_vsr.errors import Cancelled, VsrError, napari_wording
from napari_vsr.jobs.progress import STAGE_ENHANCING, CancelToken, Progress, format_progress
from napari_vsr.jobs.results import contrast_limits, prefix_view
from napari_vsr.jobs.runner import FramesDone, JobResult, JobStarted, JobWarning, run_job

if TYPE_CHECKING:
    import napari

    from napari_vsr.jobs.request import JobRequest

log = logging.getLogger(__name__)

#: layer metadata key holding the id of the run that fills the layer
RUN_KEY = "napari_vsr_run"
#: what a partial result's name ends with: " (partial)" or " (partial, 3 frames)"
_PARTIAL_NAME = re.compile(r" \(partial[^)]*\)$")

#: jobs whose worker runs: kept alive here even when their widget is gone (window closed)
_RUNNING: set[LayerJob] = set()


class Outcome(StrEnum):
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class JobEnd:
    """How a :class:`LayerJob` ended.

    ``layer_name`` is the result layer still in the viewer (None when there is none, e.g.
    removed, or a file output); ``kept`` tells whether unfinished work was kept as a
    partial result, ``resumable`` whether its job folder lets it continue (each front end
    says with which button); ``message`` is the line to show.
    """

    outcome: Outcome
    message: str
    layer_name: str | None = None
    kept: bool = False
    result: JobResult | None = None
    resumable: bool = False


def find_layer(viewer, key: str, value: Any) -> Image | None:
    """The image layer of ``viewer`` whose metadata ``key`` equals ``value``."""
    for layer in viewer.layers:
        if isinstance(layer, Image) and layer.metadata.get(key) == value:
            return layer
    return None


def _display_kwargs(dtype, rgb: bool, like: Image | None) -> dict[str, Any]:
    """Contrast limits (and colormap) so napari never scans a large store to guess them."""
    if like is not None and not rgb:
        return {"contrast_limits": list(like.contrast_limits), "colormap": like.colormap.name}
    return {"contrast_limits": contrast_limits(dtype)}


def finished_prefix(store, done: np.ndarray):
    """A lazy view of the first frames of ``store`` that are all finished (``done`` flags
    per result frame), or None when frame 0 is not: a partial result then shows only what
    was computed, and the source stays visible under the rest."""
    missing = np.flatnonzero(~done)
    n = int(missing[0]) if missing.size else len(done)
    return None if n == 0 else prefix_view(store, n)


class LayerJob(QObject):
    """Run one :class:`~napari_vsr.jobs.request.JobRequest` for ``viewer``.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    request : JobRequest
    title : str
        What the progress bar and the task status call the job.
    preview : bool
        A preview: its layer is named "... preview", replaces the previous preview layer, and
        nothing is kept when it is cancelled.
    source_layer : Image, optional
        The layer the job reads; the result copies its contrast limits and colormap (gray).
    resume_store : str, optional
        The store of the partial result a resumed job fills: its layer (found by its
        ``store_path``) gets the reopened store as data.
    keep_partial : bool
        On cancel, keep the finished frames as a resumable partial result (else remove).

    Signals
    -------
    progressed(Progress), status(str), layer_added(str), ended(JobEnd)
    """

    progressed = Signal(object)
    status = Signal(str)
    layer_added = Signal(str)
    ended = Signal(object)
    _progress_arrived = Signal(object)  # from the job's thread

    def __init__(self, viewer: napari.viewer.Viewer, request: JobRequest, *, title: str = "",
                 preview: bool = False, source_layer: Image | None = None,
                 resume_store: str | None = None, keep_partial: bool = True,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.request = request
        self.title = title or request.name()
        self.preview = preview
        self.keep_partial = keep_partial
        self.run_id = uuid.uuid4().hex
        self.started: JobStarted | None = None
        self.frames = 0
        self.last_progress: Progress | None = None
        self.layer_gone = False
        self._source_layer = source_layer
        self._resume_store = None if resume_store is None else os.path.abspath(resume_store)
        self._closing = False
        self._done: np.ndarray | None = None
        self._token = CancelToken()
        self._worker = None
        self._pbar = None
        self._task_id = None
        self._ended = False
        self._pending_progress: Progress | None = None
        self._showing_progress = False
        self._progress_arrived.connect(self._on_progress)

    # --- control ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def layer(self) -> Image | None:
        """The result layer, while it is in the viewer."""
        return find_layer(self.viewer, RUN_KEY, self.run_id)

    @property
    def store_path(self) -> str | None:
        started = self.started
        return None if started is None or started.output is None else os.path.abspath(
            started.output)

    def start(self) -> None:
        rng = self.request.frame_range or (0, 1)
        total = max(1, int(rng[1] or 1) - int(rng[0] or 0))
        self._pbar = napari_progress(total=total, desc=self.title)
        self._register_task()
        worker = create_worker(run_job, self.request, self._token, _start_thread=False,
                               _ignore_errors=True, progress=self._progress_arrived.emit)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.status.emit("starting…")
        _RUNNING.add(self)
        worker.start()

    def cancel(self) -> None:
        """Ask the job to stop after the frame being computed."""
        if self.running and not self._token.cancelled:
            self._token.cancel()
            self.status.emit("cancelling…")

    def _cancel_for_close(self) -> bool:
        """napari's task-status cancel (the window is closing): stop now and keep the store
        partial and resumable; the worker ends on its own after the current frame."""
        self.keep_partial = True
        self._closing = True
        self._token.cancel()
        return True

    # --- napari task status -----------------------------------------------------------------
    def _window(self):
        """The viewer's window, unwrapped from napari's plugin proxy: task-status registration
        is only offered on the window itself (napari 0.9 has no public entry point yet; its
        own thread workers use the same call)."""
        try:
            viewer = getattr(self.viewer, "__wrapped__", self.viewer)
            window = viewer.window
            window = getattr(window, "__wrapped__", window)
            return window if hasattr(window, "_register_task_status") else None
        except Exception:  # a viewer without a window (headless use)
            return None

    def _register_task(self) -> None:
        from napari.utils.task_status import Status

        window = self._window()
        if window is not None:
            self._task_id = window._register_task_status(
                "napari-vsr", Status.BUSY, self.title, cancel_callback=self._cancel_for_close)

    def _update_task(self, status_name: str, text: str) -> None:
        if self._task_id is None:
            return
        from napari.utils.task_status import Status

        window = self._window()
        if window is not None:
            window._update_task_status(self._task_id, getattr(Status, status_name), text)

    # --- events (GUI thread) ----------------------------------------------------------------
    def _on_event(self, event) -> None:
        if self._ended:
            return
        if isinstance(event, JobStarted):
            self.started = event
            self._done = np.zeros(event.n_frames, bool)
            self.status.emit(f"running {event.label}…")
            if event.store is not None:
                self._show_store(event)
        elif isinstance(event, FramesDone):
            self.frames += event.count
            if self._done is not None:
                self._done[event.position: event.position + event.count] = True
            layer = self.layer
            if layer is not None and self._shows(layer, event.position, event.count):
                layer.refresh()
        elif isinstance(event, Progress):
            self._on_progress(event)
        elif isinstance(event, JobWarning):
            from napari.utils.notifications import show_warning

            show_warning(napari_wording(event.message))

    def _shows(self, layer: Image, position: int, count: int) -> bool:
        """Whether the viewer shows one of the layer's frames ``position .. +count``."""
        from napari_vsr.placement import frame_index

        t = frame_index(self.viewer.dims.point[0], layer.scale[0], layer.translate[0],
                        int(layer.data.shape[0]))
        return t is not None and position <= t < position + count

    def _on_progress(self, p: Progress) -> None:
        """Show a progress record.  napari's progress bar runs the event loop while it
        updates, so this is re-entered with newer records: they are queued and shown in turn,
        and nothing older ever overwrites what is shown."""
        if self._ended:
            return
        self._pending_progress = p
        if self._showing_progress:
            return
        self._showing_progress = True
        try:
            while self._pending_progress is not None and not self._ended:
                p, self._pending_progress = self._pending_progress, None
                self._show_progress(p)
        finally:
            self._showing_progress = False

    def _show_progress(self, p: Progress) -> None:
        self.last_progress = p
        text = format_progress(p) + (f" ({p.message})" if p.message else "")
        self.progressed.emit(p)
        self.status.emit(text)
        self._update_task("BUSY", f"{self.title}: {text}")
        pbar = self._pbar
        if pbar is not None:
            if p.stage == STAGE_ENHANCING and p.unit == "frames" and p.total:
                if pbar.total != p.total:
                    pbar.total = p.total
                if p.done > pbar.n:
                    pbar.update(p.done - pbar.n)
            if self._pbar is not None and not self._ended:
                self._pbar.set_description(f"{self.title}: {text}")

    def _show_store(self, started: JobStarted) -> None:
        """The result layer, backed by the job's store: a new layer, or (resume) the partial
        layer being continued."""
        resumed = (None if self._resume_store is None
                   else find_layer(self.viewer, "store_path", self._resume_store))
        if resumed is not None:
            resumed.metadata = {**resumed.metadata, RUN_KEY: self.run_id}
            resumed.data = started.store
            self.layer_added.emit(resumed.name)
            return
        placed = started.metadata["layer"]
        name = placed["name"] + (" preview" if self.preview else "")
        if self.preview:
            old = find_layer(self.viewer, "napari_vsr_preview", True)
            if old is not None:
                self.viewer.layers.remove(old)
        metadata = {**started.metadata, RUN_KEY: self.run_id}
        if self.preview:
            metadata["napari_vsr_preview"] = True
        if started.output is not None:
            metadata["store_path"] = os.path.abspath(started.output)
        layer = self.viewer.add_image(
            started.store, name=name, rgb=placed["rgb"], scale=placed["scale"],
            translate=placed["translate"], metadata=metadata, multiscale=False,
            **_display_kwargs(started.store.dtype, placed["rgb"], self._source_layer))
        self.layer_added.emit(layer.name)

    def _on_layer_removed(self, event) -> None:
        removed = getattr(event, "value", None)
        if removed is None or self._ended or self._closing:
            return
        try:
            ours = removed.metadata.get(RUN_KEY) == self.run_id
        except Exception:
            ours = False
        if ours:
            self.layer_gone = True
            self.keep_partial = False
            self.cancel()

    def _on_returned(self, result: JobResult) -> None:
        self._ended = True
        layer = self.layer
        if layer is not None:
            metadata = {**result.metadata, RUN_KEY: self.run_id}
            if result.output is not None:
                metadata["store_path"] = os.path.abspath(result.output)
            if self.preview:
                metadata["napari_vsr_preview"] = True
            layer.metadata = metadata
            layer.name = _PARTIAL_NAME.sub("", layer.name)
            layer.refresh()
        message = f"done: {_frames(result.frames)} in {result.elapsed_s:.1f} s"
        self._update_task("COMPLETED", f"{self.title}: {message}")
        self._end(JobEnd(Outcome.DONE, message, None if layer is None else layer.name,
                         result=result))

    def _on_errored(self, exc: BaseException) -> None:
        self._ended = True
        if isinstance(exc, Cancelled):
            end = self._cancelled()
            self._update_task("CANCELLED", f"{self.title}: {end.message}")
            self._end(end)
            return
        if isinstance(exc, VsrError):
            message = napari_wording(str(exc))
        else:  # a bug or a library failure: keep the traceback in the log
            log.error("enhancement failed", exc_info=(type(exc), exc, exc.__traceback__))
            message = f"{type(exc).__name__}: {exc}"
        kept = False
        if self._resumable() and self._keep():
            kept = True
            message += "; the finished part is kept"
        else:
            self._discard()
        self._update_task("FAILED", f"{self.title}: {message}")
        layer = self.layer
        self._end(JobEnd(Outcome.FAILED, f"failed: {message}",
                         None if layer is None else layer.name, kept=kept,
                         resumable=kept and self._resumable()))

    def _resumable(self) -> bool:
        started = self.started
        return (not self.preview and started is not None and started.job_dir is not None
                and Path(started.job_dir).is_dir())

    def _cancelled(self) -> JobEnd:
        if self._closing:  # the window closed: the store stays partial, with its job folder
            return JobEnd(Outcome.CANCELLED, "cancelled as the window closed; the finished "
                          "part is kept in " + str(self.store_path), kept=True,
                          resumable=self._resumable())
        finished = self._finished_frames()
        keep = (not self.preview and not self.layer_gone
                and (self.keep_partial or self.request.resume)
                and (finished > 0 or self.request.resume))
        if keep and self._keep():
            layer = self.layer
            return JobEnd(Outcome.CANCELLED, f"cancelled; kept {_frames(finished)} finished",
                          None if layer is None else layer.name, kept=True,
                          resumable=self._resumable())
        self._discard()
        return JobEnd(Outcome.CANCELLED, "cancelled; the unfinished result was removed")

    def _finished_frames(self) -> int:
        """Frames finished: those in the live store, else (a file output, written only when
        complete) what the last progress record counted."""
        p = self.last_progress
        counted = p.done if p is not None and p.stage == STAGE_ENHANCING and \
            p.unit == "frames" else 0
        return max(self.frames, int(counted))

    def _keep(self) -> bool:
        """Keep the result layer as a partial result showing only its finished frames."""
        layer = self.layer
        if layer is None:  # a file output, which appears only when complete: keep the job
            return self._resumable() if self.started is not None and self.started.store is None \
                else self.store_path is not None and self.request.resume
        metadata = {**layer.metadata, "partial": True}
        if self.store_path is not None:
            metadata["store_path"] = self.store_path
        layer.metadata = metadata
        if self._done is not None and self.started is not None:
            view = finished_prefix(self.started.store, self._done)
            if view is None:  # nothing finished at the start: nothing worth showing
                self._discard()
                return False
            if view.shape[0] < layer.data.shape[0]:
                layer.data = view
        if " (partial" not in layer.name:
            layer.name = f"{layer.name} (partial, {_frames(self.frames)})"
        return True

    def _discard(self) -> None:
        """Remove an unfinished result: its layer, its store and its job folder (a resumed
        run's store and folder were made earlier and stay)."""
        layer = self.layer
        if layer is not None:
            self.viewer.layers.remove(layer)
        started = self.started
        if started is None or self.preview or self.request.resume:
            return
        if started.output is not None:
            shutil.rmtree(started.output, ignore_errors=True)
        if started.job_dir is not None:
            from napari_vsr.jobs.state import JobDir

            try:
                JobDir(started.job_dir).remove()
            except VsrError as exc:
                log.warning("%s", exc)

    def _end(self, end: JobEnd) -> None:
        self._close_pbar()
        self.status.emit(end.message)
        self.ended.emit(end)

    def _on_finished(self) -> None:
        if not self._ended:  # napari quit the worker itself (its own task-status cancel)
            self._on_errored(Cancelled())
        self._close_pbar()
        self._worker = None
        _RUNNING.discard(self)
        try:
            self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        except (TypeError, ValueError, RuntimeError):
            pass

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"
