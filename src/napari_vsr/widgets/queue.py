"""The Job queue dock widget: queue layers and files with their method and settings, run them
one after another, see each job's state, stop, retry (continuing from the finished frames) or
remove them.

The queue's rules live in :mod:`napari_vsr.jobs.queue` (no Qt); every job runs through
:class:`~napari_vsr.widgets.layer_job.LayerJob`, so a queued job gets the same progress,
cancel, napari task status and live result layer as one started from the Enhance widget.
A file's job may run on a Dask cluster ("local:N" or a scheduler's address); a layer's frames
exist only in this napari session, so its job runs here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSize, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vsr.errors import VsrError, napari_wording
from napari_vsr.jobs.progress import (
    STAGE_ENHANCING,
    STAGES,
    Progress,
    clock_text,
    format_progress,
)
from napari_vsr.jobs.queue import (
    RETRYABLE,
    EntryState,
    JobQueue,
    QueueEntry,
    QueueError,
    output_beside,
    unique_output,
)
from napari_vsr.jobs.request import JobRequest, MethodOptions, Placement
from napari_vsr.jobs.results import default_store_dir, new_store_path
from napari_vsr.widgets._method_panel import MethodPanel
from napari_vsr.widgets._parts import Section, StatusLine, plural, scrolling
from napari_vsr.widgets._queue_form import AddJobsForm
from napari_vsr.widgets.layer_job import JobEnd, LayerJob, Outcome

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

_COLUMNS = ("Job", "Method", "State")
#: a job's stages in the order they come
_STAGE_ORDER = {stage: i for i, stage in enumerate(STAGES)}


def state_text(entry: QueueEntry) -> str:
    """The short state shown in the queue's State column."""
    state = entry.state
    if state is EntryState.QUEUED:
        return "queued (continues)" if entry.resuming else "queued"
    if state is EntryState.RUNNING:
        if entry.total:
            eta = "" if entry.eta_s is None else f", {clock_text(entry.eta_s)} left"
            return f"running {entry.done}/{entry.total}{eta}"
        return "running…"
    if state is EntryState.DONE:
        return "done"
    if state is EntryState.FAILED:
        return "failed"
    return "stopped (partial)" if entry.kept else "stopped"


def details_text(entry: QueueEntry) -> str:
    """The selected entry's full line: what, where it runs, where its result goes, its last
    message (a failure in full)."""
    out = entry.output
    where = "a result layer" if out and out.lower().endswith(".zarr") else out
    head = f"{entry.title} with {entry.method_label}, on {entry.runs_on} → {where}"
    return f"{head}: {entry.message}" if entry.message else head


class QueueWidget(QWidget):
    """Dock widget: a queue of jobs run one after another.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Signals
    -------
    changed()
        The queue changed: an entry added, removed, moved, started, progressed or ended.

    Attributes
    ----------
    job : LayerJob or None
        The job of the running entry.
    """

    changed = Signal()

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = JobQueue()
        self.job: LayerJob | None = None
        self._job_entry: int | None = None  # id of the running entry
        self._active = False  # the queue goes on to the next entry after the running one
        self._stopping = False
        self._remove_after: set[int] = set()  # removed while running: dropped when they end
        self._last_progress: tuple[int, float] | None = None  # (stage, elapsed) shown last
        self._progress_texts: set[str] = set()  # the running job's progress lines
        self._build_ui()
        self._refresh()

    # --- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.setToolTip("the queued jobs, run from the top; select one to stop, retry, "
                              "remove or move it")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(90)
        self.table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        outer.addWidget(self.table, 2)

        buttons = QHBoxLayout()
        self.start_button = self._button("Start", "run the queued jobs one after another")
        self.stop_button = self._button(
            "Stop", "stop the running job after the frame being computed (its finished part is "
            "kept); the other jobs stay queued")
        self.retry_button = self._button(
            "Retry", "queue the selected failed or stopped job again, continuing from its "
            "finished frames when they were kept, and start the queue")
        self.remove_button = self._button("Remove", "take the selected job out of the queue")
        self.up_button = self._arrow(Qt.ArrowType.UpArrow, "run the selected queued job earlier")
        self.down_button = self._arrow(Qt.ArrowType.DownArrow,
                                       "run the selected queued job later")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.retry_button.clicked.connect(lambda: self.retry())
        self.remove_button.clicked.connect(lambda: self.remove())
        self.up_button.clicked.connect(lambda: self.move(step=-1))
        self.down_button.clicked.connect(lambda: self.move(step=1))
        for b in (self.start_button, self.stop_button, self.retry_button, self.remove_button,
                  self.up_button, self.down_button):
            buttons.addWidget(b)
        outer.addLayout(buttons)

        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("frames finished by the running job")
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setVisible(False)
        outer.addWidget(self.progress_bar)
        # the lines and the form scroll together: a long message never makes the dock (and
        # the window) taller than the screen
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 0, 0)
        self.details_label = StatusLine()
        inner.addWidget(self.details_label)
        self.status_label = StatusLine()
        inner.addWidget(self.status_label)
        self.form = AddJobsForm()
        self.form.add_layer_clicked.connect(lambda: self.add_layer())
        self.form.files_chosen.connect(self.add_files)
        self.method_panel = self.form.method_panel
        self.add_section = Section("Add jobs", self.form, tooltip="queue layers or "
                                   "files with a method, an output and where they run")
        inner.addWidget(self.add_section)
        inner.addStretch(1)
        self.scroll = scrolling(body, max_min_height=120)
        outer.addWidget(self.scroll, 3)

    def _button(self, text: str, tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setMinimumWidth(10)
        return button

    def _arrow(self, arrow, tip: str) -> QToolButton:
        button = QToolButton()
        button.setArrowType(arrow)
        button.setToolTip(tip)
        button.setIconSize(QSize(12, 12))
        return button

    def scheduler(self) -> str | None:
        """The "Run on" choice as a job's scheduler (see :meth:`AddJobsForm.scheduler`)."""
        return self.form.scheduler()

    def set_run_on(self, scheduler: str | None) -> None:
        """Choose where new jobs run: None, "local:N" or a scheduler address."""
        self.form.set_run_on(scheduler)

    def set_output(self, kind: str, fmt: str = ".mp4", suffix: str | None = None) -> None:
        """Choose the result of new jobs: "store" (a layer) or "file" in ``fmt``."""
        self.form.set_output(kind, fmt, suffix)

    def _store_output(self, name: str, method: MethodOptions) -> str:
        path = new_store_path(default_store_dir(), name, MethodPanel.label(method))
        return os.fspath(unique_output(path, self.model.outputs()))

    def _file_output(self, source: str) -> str:
        return os.fspath(output_beside(source, self.form.suffix(), self.form.file_format(),
                                       self.model.outputs()))

    # --- adding -----------------------------------------------------------------------------
    def add_request(self, request: JobRequest, *, title: str | None = None,
                    source_layer_name: str | None = None) -> int:
        """Queue ``request`` (built by the Enhance widget or a script) at the end.

        Parameters
        ----------
        request : JobRequest
            Needs an output (a live ``.zarr`` store is shown as a layer); a Dask ``scheduler``
            needs a file source.
        title : str, optional
            What the queue calls the job (default: the source's name).
        source_layer_name : str, optional
            The layer the job reads: its result copies the layer's contrast and colormap.

        Returns
        -------
        int
            The entry's id.

        Raises
        ------
        QueueError
            The queue cannot run the request (the message says why, in napari's words).
        """
        entry_id = self.model.add(request, title=title,
                                  method_label=MethodPanel.label(request.method),
                                  source_layer_name=source_layer_name)
        entry = self.model.get(entry_id)
        self._say(f"queued {entry.title} ({entry.method_label})")
        self._refresh(select=entry_id)
        return entry_id

    def add_files(self, paths) -> list[int]:
        """Queue each of ``paths`` (videos, TIFF stacks, folders of frames) with the form's
        method, result and "Run on" choice; returns the new entries' ids."""
        from napari_vsr.io import is_supported

        try:
            method = self.method_panel.method_options()
            scheduler = self.form.scheduler()
        except ValueError as exc:
            self._fail(str(exc))
            return []
        ids, skipped = [], []
        for path in paths:
            path = os.path.abspath(os.fspath(path))
            if not is_supported(path):
                skipped.append(Path(path).name)
                continue
            name = Path(path).name
            if self.form.wants_file:
                output, live = self._file_output(path), False
            else:
                output, live = self._store_output(name, method), True
            request = JobRequest(source=path, output=output, method=method, live=live,
                                 scheduler=scheduler)
            try:
                ids.append(self.add_request(request))
            except QueueError as exc:
                self._fail(str(exc))
                return ids
        if skipped:
            self._fail(f"not a video, TIFF stack or folder of frames: {', '.join(skipped)}")
        elif ids:
            self._say(f"queued {plural(len(ids), 'file')}")
        return ids

    def add_layer(self, layer: Image | None = None) -> int | None:
        """Queue ``layer`` (default: the selected image layer) with the form's method; returns
        the entry's id, or None when it cannot be queued (the status line says why)."""
        from napari_vsr.widgets.enhance import layer_source

        layer = layer if layer is not None else self.viewer.layers.selection.active
        if not isinstance(layer, Image) or layer.multiscale or layer.ndim < 3:
            what = "no layer is selected" if layer is None else f"{layer.name!r} is not a " \
                "video or a frame stack"
            self._fail(f"{what}: select an image layer with frames (a video or a stack)")
            return None
        try:
            method = self.method_panel.method_options()
            scheduler = self.form.scheduler()
        except ValueError as exc:
            self._fail(str(exc))
            return None
        source = layer_source(layer)
        has_file = isinstance(source, str)
        if scheduler is not None and not has_file:
            self._fail(f"{layer.name} cannot run on a Dask cluster: its frames exist only in "
                       "this napari session, where the cluster's workers cannot read them. "
                       "Choose Run on: this computer, or queue its file with Add files…")
            return None
        note = ""
        if self.form.wants_file and has_file:
            output, live = self._file_output(source), False
        else:
            if self.form.wants_file:
                note = f"; {layer.name} has no file to write beside, so its result is a layer"
            output, live = self._store_output(layer.name, method), True
        extra = {}
        if not has_file:  # an array knows no frame rate: the layer's
            extra = {k: layer.metadata[k] for k in ("fps", "fps_fraction")
                     if layer.metadata.get(k) is not None}
        request = JobRequest(
            source=source, output=output, method=method, live=live, scheduler=scheduler,
            source_name=layer.name, rgb=bool(layer.rgb),
            placement=Placement(tuple(float(v) for v in layer.scale),
                                tuple(float(v) for v in layer.translate)),
            extra_metadata=extra)
        try:
            entry_id = self.add_request(request, source_layer_name=layer.name)
        except QueueError as exc:
            self._fail(str(exc))
            return None
        if note:
            self._say(f"queued {layer.name}{note}")
        return entry_id

    # --- state ------------------------------------------------------------------------------
    @property
    def entries(self) -> tuple[QueueEntry, ...]:
        """The queue's entries in order (frozen records; see :class:`QueueEntry`)."""
        return self.model.entries

    def entry(self, entry_id: int) -> QueueEntry:
        return self.model.get(entry_id)

    @property
    def is_running(self) -> bool:
        """A job of the queue is running."""
        return self.job is not None

    @property
    def is_active(self) -> bool:
        """The queue is working through its entries (a job running or the next starting)."""
        return self._active or self.is_running

    @property
    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select(self, entry_id: int | None) -> None:
        """Select the row of entry ``entry_id`` (None: no row)."""
        self.table.clearSelection()
        if entry_id is None:
            return
        self.table.selectRow(self.model.index(entry_id))

    def _say(self, text: str) -> None:
        self.status_label.show_message(text)

    def _fail(self, text: str) -> None:
        self.status_label.show_error(text)

    # --- the table --------------------------------------------------------------------------
    def _refresh(self, select: int | None = None) -> None:
        keep = self.selected_id if select is None else select
        entries = self.model.entries
        self.table.blockSignals(True)
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            out = entry.output or ""
            texts = (entry.title, entry.method_label, state_text(entry))
            tips = (f"{entry.title} → {out}\nruns on {entry.runs_on}", entry.method_label,
                    entry.message or state_text(entry))
            for col, (text, tip) in enumerate(zip(texts, tips, strict=True)):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                item.setText(text)
                item.setToolTip(napari_wording(tip))
            self.table.item(row, 0).setData(Qt.ItemDataRole.UserRole, entry.id)
        self.table.blockSignals(False)
        if keep is not None and any(e.id == keep for e in entries):
            self.table.selectRow(self.model.index(keep))
        self._selection_changed()
        self.changed.emit()

    def _selection_changed(self) -> None:
        entry_id = self.selected_id
        entry = None if entry_id is None else self.model.get(entry_id)
        self.details_label.show_message("" if entry is None else details_text(entry))
        running = self.is_running
        self.start_button.setEnabled(not self.is_active and self.model.next_queued() is not None)
        self.stop_button.setEnabled(running)
        self.retry_button.setEnabled(entry is not None and entry.state in RETRYABLE)
        self.remove_button.setEnabled(entry is not None and entry.id not in self._remove_after)
        self.up_button.setEnabled(entry is not None and self.model.can_move(entry.id, -1))
        self.down_button.setEnabled(entry is not None and self.model.can_move(entry.id, 1))

    # --- actions ----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the queued entries one after another (from the top)."""
        if self.is_active:
            return
        if self.model.next_queued() is None:
            self._say("nothing is queued: add layers or files first")
            self._selection_changed()
            return
        self._active, self._stopping = True, False
        self._run_next()

    def stop(self) -> None:
        """Stop the running job after its current frame (its finished part is kept, Retry
        continues it); the other entries stay queued."""
        self._active = False
        if self.job is not None:
            self._stopping = True
            self.job.cancel()
            self._say("stopping…")
        self._selection_changed()

    def retry(self, entry_id: int | None = None) -> None:
        """Queue a failed or stopped entry (default: the selected one) again and start the
        queue; it continues from its kept store or job folder when it can."""
        entry_id = self.selected_id if entry_id is None else entry_id
        if entry_id is None:
            self._fail("select the failed or stopped job to retry")
            return
        try:
            entry = self.model.retry(entry_id)
        except (QueueError, VsrError, OSError) as exc:
            self._fail(f"cannot retry: {exc}")
            return
        self._say(f"{entry.title}: {entry.message}")
        self._refresh(select=entry_id)
        self.start()

    def remove(self, entry_id: int | None = None) -> None:
        """Remove an entry (default: the selected one).  A running entry is stopped first,
        after asking, and its unfinished result removed; the queue goes on."""
        entry_id = self.selected_id if entry_id is None else entry_id
        if entry_id is None:
            self._fail("select the job to remove")
            return
        entry = self.model.get(entry_id)
        if entry.state is EntryState.RUNNING:
            if not self._confirm(f"{entry.title} is running. Stop it, discard its unfinished "
                                 "result and remove it from the queue?"):
                return
            self._remove_after.add(entry_id)
            if self.job is not None:
                self.job.keep_partial = False
                self.job.cancel()
            self._say(f"stopping {entry.title} to remove it…")
            self._selection_changed()
            return
        self.model.remove(entry_id)
        self._say(f"removed {entry.title} from the queue")
        self._refresh()

    def move(self, entry_id: int | None = None, *, step: int) -> None:
        """Move a queued entry (default: the selected one) up (``step`` -1) or down (+1)."""
        entry_id = self.selected_id if entry_id is None else entry_id
        if entry_id is None:
            return
        try:
            self.model.move(entry_id, step)
        except QueueError as exc:
            self._say(str(exc))
            return
        self._refresh(select=entry_id)

    def _confirm(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Job queue", question)
        return answer == QMessageBox.StandardButton.Yes

    # --- running ----------------------------------------------------------------------------
    def _layer_named(self, name: str | None) -> Image | None:
        if name is None:
            return None
        return next((layer for layer in self.viewer.layers
                     if isinstance(layer, Image) and layer.name == name), None)

    def _run_next(self) -> None:
        if not self._active or self.job is not None:
            return
        entry = self.model.next_queued()
        if entry is None:
            self._active = False
            self._say(self._summary())
            self._refresh()
            return
        source_layer = None if entry.resuming else self._layer_named(entry.source_layer_name)
        job = LayerJob(self.viewer, entry.run_request,
                       title=f"{entry.title}: {entry.method_label}",
                       source_layer=source_layer, resume_store=entry.resume_store,
                       keep_partial=True)
        # bound methods only: Qt drops them with the widget (the window closed) while the job
        # itself runs on to its end
        job.status.connect(self._on_status)
        job.progressed.connect(self._on_progress)
        job.ended.connect(self._on_ended)
        self.model.mark_running(entry.id)
        self.job, self._job_entry = job, entry.id
        self._last_progress, self._progress_texts = None, set()
        self.progress_bar.setRange(0, 0)  # busy until the first frame count
        self.progress_bar.setFormat("")
        self.progress_bar.setVisible(True)
        self._say(f"running {entry.title} ({entry.method_label})")
        self._refresh()
        try:
            job.start()
        except Exception as exc:  # the worker could not start: the entry failed, go on
            log.error("queue: the job did not start", exc_info=True)
            self._on_ended_for(job, JobEnd(Outcome.FAILED, f"failed: {exc}"))

    def _current(self, job) -> bool:
        return job is not None and job is self.job and self._job_entry is not None

    def _on_status(self, text: str) -> None:
        job = self.sender()
        if not self._current(job) or text in self._progress_texts:
            return  # progress lines are shown from their records, in order
        entry = self.model.update(self._job_entry, message=napari_wording(text))
        self._update_row(entry)

    def _on_progress(self, p: Progress) -> None:
        job = self.sender()
        if not self._current(job):
            return
        self._progress_texts.add(format_progress(p) + (f" ({p.message})" if p.message else ""))
        # napari's progress bar processes events while it updates, so the job's records can
        # arrive here nested, newest first: an older record never replaces a newer one
        key = (_STAGE_ORDER.get(p.stage, 0), p.elapsed_s)
        if self._last_progress is not None and key < self._last_progress:
            return
        self._last_progress = key
        if p.stage == STAGE_ENHANCING and p.unit == "frames" and p.total:
            entry = self.model.update(self._job_entry, done=int(p.done), total=int(p.total),
                                      eta_s=p.eta_s, message=format_progress(p))
            self.progress_bar.setRange(0, int(p.total))
            self.progress_bar.setValue(min(int(p.done), int(p.total)))
            eta = "" if p.eta_s is None else f", {clock_text(p.eta_s)} left"
            self.progress_bar.setFormat(f"{entry.title}: %v/%m frames{eta}")
        else:
            entry = self.model.update(self._job_entry, message=format_progress(p))
            self.progress_bar.setRange(0, 0)
        self._update_row(entry)

    def _update_row(self, entry: QueueEntry) -> None:
        """Refresh the row of one entry (progress arrives per frame: no table rebuild)."""
        row = self.model.index(entry.id)
        state = self.table.item(row, 2)
        if state is not None:
            state.setText(state_text(entry))
            state.setToolTip(napari_wording(entry.message))
        if self.selected_id == entry.id:
            self.details_label.show_message(details_text(entry))
        self.changed.emit()

    def _on_ended(self, end: JobEnd) -> None:
        self._on_ended_for(self.sender(), end)

    def _on_ended_for(self, job, end: JobEnd) -> None:
        if not self._current(job):
            return
        entry_id = self._job_entry
        state = {Outcome.DONE: EntryState.DONE, Outcome.FAILED: EntryState.FAILED,
                 Outcome.CANCELLED: EntryState.CANCELLED}[end.outcome]
        started = job.started
        changes = dict(layer_name=end.layer_name, kept=end.kept, result=end.result)
        if started is not None:
            changes["job_dir"] = started.job_dir
        if end.result is not None:
            changes.update(done=int(end.result.frames), total=int(end.result.frames))
        entry = self.model.finish(entry_id, state, _queue_words(end), **changes)
        self.job, self._job_entry = None, None
        self.progress_bar.setVisible(False)
        removed = entry_id in self._remove_after
        if removed:
            self._remove_after.discard(entry_id)
            self.model.remove(entry_id)
        # a stop (or the window closing) ends the queue; a failure, a removal or a deleted
        # result layer only end their own job
        stopped = self._stopping or (state is EntryState.CANCELLED and not removed
                                     and not job.layer_gone)
        if stopped:
            self._active = False
            self._stopping = False
        if state is EntryState.FAILED:
            show_error(f"{entry.title}: {entry.message}")
        what = "removed" if removed else entry.message
        queued = self.model.counts()[EntryState.QUEUED]
        if self._active:
            self._say(f"{entry.title}: {what}")
            QTimer.singleShot(0, self._run_next)
        else:
            rest = f"; {plural(queued, 'job')} still queued" if queued else ""
            self._say(f"{entry.title}: {what}{rest}")
            if state is EntryState.DONE and not queued:
                show_info(f"job queue: {self._summary()}")
        self._refresh()

    def _summary(self) -> str:
        counts = self.model.counts()
        parts = [f"{counts[s]} {s}" for s in (EntryState.DONE, EntryState.FAILED,
                                              EntryState.CANCELLED, EntryState.QUEUED)
                 if counts[s]]
        return "queue finished: " + (", ".join(parts) if parts else "nothing left")


def _queue_words(end) -> str:
    """A job's end line in the queue's words: its button to continue a job is Retry."""
    return napari_wording(end.message) + ("; Retry continues it" if end.resumable else "")
