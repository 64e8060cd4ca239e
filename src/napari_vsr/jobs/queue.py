"""The job queue's model: entries, their states, their order, and the rules for retry and
remove.  No Qt: the Job queue widget runs the entries (one at a time, through
:class:`~napari_vsr.widgets.layer_job.LayerJob`) and shows them.

An entry holds the :class:`~napari_vsr.jobs.request.JobRequest` it was queued with and the
request its next run executes: the same one, or after an interruption the one that continues
the job from its result store or job folder (:func:`retry_request`).  Entries are frozen
records; :class:`JobQueue` replaces an entry's record when it changes, so a caller holding
:attr:`JobQueue.entries` holds a snapshot.

States::

    queued -> running -> done
                      -> failed     -> (retry) queued
                      -> cancelled  -> (retry) queued
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from napari_vsr.errors import ParameterError, VsrError
from napari_vsr.jobs.request import JobRequest, parse_scheduler
from napari_vsr.jobs.results import is_result_store, is_resumable, open_result, resume_request


class EntryState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: states an entry can be retried from
RETRYABLE = (EntryState.FAILED, EntryState.CANCELLED)


class QueueError(VsrError, ValueError):
    """An action the queue's rules refuse (remove a running entry, retry a finished one...)."""


@dataclass(frozen=True)
class QueueEntry:
    """One queued job.

    Attributes
    ----------
    id : int
        Stable while the entry is in its queue (positions change, ids do not).
    title : str
        What the queue calls the job (the source's name).
    method_label : str
        The method as users read it ("RealBasicVSR x4", "classic:seed").
    request : JobRequest
        The job as it was queued.
    run_request : JobRequest
        What the next run executes: ``request``, or the request continuing an interrupted run.
    source_layer_name : str, optional
        The napari layer the job reads (its result copies the layer's display settings).
    state : EntryState
    message : str
        The last line about the entry (progress, "done: ...", the failure in napari's words).
    done, total : int, int or None
        Frames finished and planned in the running (or last) run.
    eta_s : float, optional
        Seconds left in the running run, once a rate is known.
    job_dir : str, optional
        The job's state folder (from the run's start), which a retry resumes from.
    layer_name : str, optional
        The result layer the run left in the viewer.
    kept : bool
        The run was interrupted and its finished part kept (resumable when its job folder is
        still there).
    resume_store : str, optional
        The partial result store the next run continues (its layer is refilled).
    attempts : int
        Runs started so far.
    result : optional
        The :class:`~napari_vsr.jobs.runner.JobResult` of a finished run.
    """

    id: int
    title: str
    method_label: str
    request: JobRequest
    run_request: JobRequest
    source_layer_name: str | None = None
    state: EntryState = EntryState.QUEUED
    message: str = ""
    done: int = 0
    total: int | None = None
    eta_s: float | None = None
    job_dir: str | None = None
    layer_name: str | None = None
    kept: bool = False
    resume_store: str | None = None
    attempts: int = 0
    result: Any = None

    @property
    def output(self) -> str | None:
        """The output path of the next run (a ``.zarr`` result store or a file)."""
        out = self.run_request.output
        return None if out is None else os.path.abspath(os.fspath(out))

    @property
    def runs_on(self) -> str:
        """Where the job runs: "this computer" or the Dask scheduler it was queued for."""
        return self.request.scheduler or "this computer"

    @property
    def resuming(self) -> bool:
        return bool(self.run_request.resume)


def check_request(request: JobRequest) -> None:
    """Refuse a request the queue cannot run, before it is queued.

    Raises
    ------
    QueueError
        No output (the queue keeps every result: a store shown as a layer, or a file), or a
        Dask scheduler for an in-memory layer (workers in other processes cannot read it), or
        a scheduler text that is neither ``local:N`` nor an address.
    """
    if request.output is None:
        raise QueueError(f"{request.name()}: a queued job needs an output (a result store or a "
                         "file)")
    if not request.durable:
        raise QueueError(f"{request.name()}: a queued job keeps a job folder, so it can resume")
    try:
        scheduler = parse_scheduler(request.scheduler)
    except ParameterError as exc:
        raise QueueError(str(exc)) from None
    if scheduler is not None and request.source_path is None:
        raise QueueError(
            f"{request.name()} cannot run on a Dask cluster: its frames exist only in this "
            "napari session, where the cluster's workers cannot read them; run it on this "
            "computer, or queue the file it came from (Add files…)")


def unique_output(path: str | os.PathLike, taken: set[str] = frozenset()) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``... : the first that neither exists nor is in
    ``taken`` (outputs of other queued entries)."""
    path = Path(os.path.abspath(os.fspath(path)))
    suffix = path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    candidate, n = path, 1
    while candidate.exists() or os.fspath(candidate) in taken:
        n += 1
        candidate = path.with_name(f"{stem}-{n}{suffix}")
    return candidate


def output_beside(source: str | os.PathLike, suffix: str, ext: str,
                  taken: set[str] = frozenset()) -> Path:
    """The output file of ``source`` in its folder: ``clip.mp4`` -> ``clip<suffix><ext>`` (a
    frame folder ``shots/`` -> ``shots<suffix><ext>`` beside it), made unique."""
    src = Path(os.path.abspath(os.fspath(source)))
    stem = src.name if src.is_dir() else src.stem
    ext = ext if ext.startswith(".") else f".{ext}"
    return unique_output(src.parent / f"{stem}{suffix}{ext}", taken)


def default_job_dir_of(request: JobRequest) -> Path | None:
    """The state folder the runner uses for ``request``."""
    if request.output is None:
        return None
    if request.job_dir is not None:
        return Path(os.fspath(request.job_dir))
    from napari_vsr.jobs.state import default_job_dir

    return default_job_dir(request.output)


def retry_request(entry: QueueEntry) -> tuple[JobRequest, str | None]:
    """What a retry of ``entry`` runs, and the partial store it continues (or None).

    - A ``.zarr`` result store left partial with its job folder: the job is continued from the
      store's record (:func:`~napari_vsr.jobs.results.resume_request`); a layer's job is given
      its array again.  Committed segments are reused.
    - A file output whose job folder is still there: the same request with ``resume``.
    - Otherwise a fresh run of the queued request, into a new output path when the old one
      exists (a partial store that cannot be resumed is kept, never overwritten).
    """
    if entry.state not in RETRYABLE:
        raise QueueError(f"{entry.title}: only a failed or stopped job can be retried "
                         f"(it is {entry.state})")
    original = entry.request
    out = entry.output
    if out is not None and Path(out).suffix.lower() == ".zarr" and is_result_store(out):
        _, metadata = open_result(out)
        if is_resumable(metadata):
            source = None if original.source_path is not None else original.source
            request = resume_request(out, metadata, source=source)
            request = replace(request, scheduler=original.scheduler,
                              extra_metadata={**original.extra_metadata,
                                              **request.extra_metadata},
                              video=original.video, hwaccel=original.hwaccel)
            return request, out
    elif out is not None:
        job_dir = default_job_dir_of(entry.run_request)
        if job_dir is not None and job_dir.is_dir() and not Path(out).exists():
            return replace(entry.run_request, resume=True, overwrite=False), None
    fresh = replace(original, resume=False)
    if out is not None and Path(out).exists():
        fresh = replace(fresh, output=os.fspath(unique_output(out)), job_dir=None)
    return fresh, None


class JobQueue:
    """An ordered list of :class:`QueueEntry` records and the rules that change them.

    Every change replaces the entry's record; :attr:`entries` is a snapshot (a tuple).
    """

    def __init__(self) -> None:
        self._entries: list[QueueEntry] = []
        self._next_id = 1

    # --- reading ------------------------------------------------------------------------------
    @property
    def entries(self) -> tuple[QueueEntry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, entry_id: int) -> QueueEntry:
        return self._entries[self.index(entry_id)]

    def index(self, entry_id: int) -> int:
        for i, entry in enumerate(self._entries):
            if entry.id == entry_id:
                return i
        raise KeyError(f"no queue entry {entry_id}")

    @property
    def running(self) -> QueueEntry | None:
        return next((e for e in self._entries if e.state is EntryState.RUNNING), None)

    def next_queued(self) -> QueueEntry | None:
        """The first queued entry in queue order."""
        return next((e for e in self._entries if e.state is EntryState.QUEUED), None)

    def outputs(self, *, but: int | None = None) -> set[str]:
        """Output paths of the entries (except entry ``but``): a new entry avoids them."""
        return {e.output for e in self._entries if e.output and e.id != but}

    def counts(self) -> dict[EntryState, int]:
        counts = {state: 0 for state in EntryState}
        for entry in self._entries:
            counts[entry.state] += 1
        return counts

    # --- changing -----------------------------------------------------------------------------
    def add(self, request: JobRequest, *, title: str | None = None, method_label: str = "",
            source_layer_name: str | None = None) -> int:
        """Queue ``request`` at the end; returns the entry's id (see :func:`check_request`)."""
        check_request(request)
        out = os.path.abspath(os.fspath(request.output))
        if out in self.outputs():
            raise QueueError(f"{Path(out).name} is already the output of a queued job")
        entry = QueueEntry(id=self._next_id, title=title or request.name(),
                           method_label=method_label or request.method.method,
                           request=request, run_request=request,
                           source_layer_name=source_layer_name, total=_planned(request))
        self._next_id += 1
        self._entries.append(entry)
        return entry.id

    def update(self, entry_id: int, **changes) -> QueueEntry:
        """Replace fields of an entry's record (the runner's progress and ends)."""
        i = self.index(entry_id)
        self._entries[i] = replace(self._entries[i], **changes)
        return self._entries[i]

    def mark_running(self, entry_id: int) -> QueueEntry:
        entry = self.get(entry_id)
        if entry.state is not EntryState.QUEUED:
            raise QueueError(f"{entry.title}: only a queued job can start (it is {entry.state})")
        if self.running is not None:
            raise QueueError(f"{self.running.title} is running; one job runs at a time")
        return self.update(entry_id, state=EntryState.RUNNING, done=0, eta_s=None,
                           message="starting…", attempts=entry.attempts + 1, kept=False)

    def finish(self, entry_id: int, state: EntryState, message: str, **changes) -> QueueEntry:
        """The running entry ended: done, failed or cancelled."""
        if state not in (EntryState.DONE, EntryState.FAILED, EntryState.CANCELLED):
            raise ValueError(f"a job ends done, failed or cancelled, not {state}")
        entry = self.get(entry_id)
        if entry.state is not EntryState.RUNNING:
            raise QueueError(f"{entry.title} is not running (it is {entry.state})")
        return self.update(entry_id, state=state, message=message, eta_s=None, **changes)

    def retry(self, entry_id: int) -> QueueEntry:
        """Put a failed or cancelled entry back in the queue, at its place, to continue from
        its store or job folder when it can (see :func:`retry_request`)."""
        entry = self.get(entry_id)
        request, store = retry_request(entry)
        how = "continues from its finished frames" if request.resume else "runs again"
        return self.update(entry_id, state=EntryState.QUEUED, run_request=request,
                           resume_store=store, message=f"queued again: {how}", eta_s=None)

    def remove(self, entry_id: int) -> QueueEntry:
        """Take an entry out of the queue (never the running one: cancel it first)."""
        entry = self.get(entry_id)
        if entry.state is EntryState.RUNNING:
            raise QueueError(f"{entry.title} is running: stop it before removing it")
        del self._entries[self.index(entry_id)]
        return entry

    def can_move(self, entry_id: int, step: int) -> bool:
        """Whether a queued entry can move ``step`` (-1 up, +1 down) places."""
        i = self.index(entry_id)
        j = i + step
        return (self._entries[i].state is EntryState.QUEUED and 0 <= j < len(self._entries)
                and step in (-1, 1))

    def move(self, entry_id: int, step: int) -> None:
        """Swap a queued entry with its neighbour above (``step`` -1) or below (+1): the order
        in which queued entries run."""
        if not self.can_move(entry_id, step):
            entry = self.get(entry_id)
            why = ("only queued jobs are reordered" if entry.state is not EntryState.QUEUED
                   else "it is already at that end of the queue")
            raise QueueError(f"{entry.title} cannot move: {why}")
        i = self.index(entry_id)
        j = i + step
        self._entries[i], self._entries[j] = self._entries[j], self._entries[i]


def _planned(request: JobRequest) -> int | None:
    """Frames a request asks for when its range says (None: the whole source, unknown yet)."""
    rng = request.frame_range
    if rng is None or rng[0] is None or rng[1] is None:
        return None
    return max(0, int(rng[1]) - int(rng[0]))
