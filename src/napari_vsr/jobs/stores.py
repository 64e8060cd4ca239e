"""The result stores in a folder: list them, measure them, remove them safely, clean up.

No Qt: the store panel of the Enhance widget calls these.  Only napari-vsr result stores
(:func:`~napari_vsr.jobs.results.is_result_store`) and their job state folders are ever
removed; anything else is refused with an error naming the path.  A store whose job is running
right now (its state folder is locked by a process, this one included) is never removed.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from napari_vsr.errors import VsrError
from napari_vsr.jobs.metadata import result_layer
from napari_vsr.jobs.results import default_store_dir, is_result_store, open_result
from napari_vsr.jobs.state import LOCK_NAME, JobDir, default_job_dir

log = logging.getLogger(__name__)


class StoreRemovalError(VsrError, ValueError):
    """A path that is not removed: not a napari-vsr result store, or its job is running."""


@dataclass(frozen=True)
class StoreInfo:
    """One result store as the store panel lists it.

    Attributes
    ----------
    path : Path
        The ``.zarr`` folder (absolute).
    name : str
        The result's layer name ("clip.mp4 [classic:seed x4]"), else the folder name.
    source_name : str or None
        The source's display name.
    method : str or None
        "classic:seed", "realbasicvsr", ...
    frames : int
        Frames the store holds (finished or not).
    partial : bool
        Its job has not finished (running, cancelled or crashed).
    size_bytes : int
        Disk space of the store and of its job state folder.
    mtime : float
        Last change (seconds since the epoch) of the store's files.
    job_dir : Path or None
        Its job state folder, when one exists.
    """

    path: Path
    name: str
    source_name: str | None
    method: str | None
    frames: int
    partial: bool
    size_bytes: int
    mtime: float
    job_dir: Path | None = None

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.mtime) / 86400.0)


@dataclass
class CleanUpResult:
    """What :func:`clean_up` did: the stores removed, the bytes freed, the failures."""

    removed: list[StoreInfo] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(s.size_bytes for s in self.removed)


def human_size(n: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024, one decimal from KB on)."""
    units = ("B", "KB", "MB", "GB", "TB")
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def _usage(path: Path) -> tuple[int, float]:
    """(bytes on disk, newest mtime) of a folder's files, not following links."""
    total, newest = 0, 0.0
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
            newest = max(newest, st.st_mtime)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return total, newest


def _job_dir(path: Path, metadata: dict) -> Path | None:
    """The store's job state folder: the one its record names, else the default beside it."""
    for candidate in (metadata.get("job_dir"), default_job_dir(path)):
        if candidate and Path(candidate).is_dir() and JobDir(candidate).exists():
            return Path(candidate)
    return None


def job_is_running(job_dir: str | os.PathLike | None) -> bool:
    """Whether a process (this one included) holds the lock of a job state folder now."""
    if job_dir is None:
        return False
    lock = Path(job_dir) / LOCK_NAME
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ModuleNotFoundError:  # pragma: no cover - not POSIX: no locks to ask
        return False
    try:
        with open(lock) as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def store_info(path: str | os.PathLike) -> StoreInfo:
    """Describe one result store.

    Raises
    ------
    StoreRemovalError
        ``path`` is not a napari-vsr result store.
    """
    p = Path(os.path.abspath(os.fspath(path).rstrip("/\\")))
    if not is_result_store(p):
        raise StoreRemovalError("not a napari-vsr result store", path=p)
    store, metadata = open_result(p)
    job = _job_dir(p, metadata)
    size, mtime = _usage(p)
    if job is not None:
        size += _usage(job)[0]
    src = metadata.get("source") or {}
    name = result_layer({"napari_vsr": metadata}).get("name") or p.name
    return StoreInfo(path=p, name=str(name), source_name=src.get("name"),
                     method=metadata.get("method"), frames=int(store.shape[0]),
                     partial=bool(metadata.get("partial")), size_bytes=int(size),
                     mtime=mtime or p.stat().st_mtime, job_dir=job)


def list_stores(folder: str | os.PathLike | None = None) -> list[StoreInfo]:
    """The result stores directly inside ``folder`` (default :func:`default_store_dir`),
    newest first.  A missing folder has none; other entries are skipped."""
    folder = Path(default_store_dir() if folder is None else folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.is_symlink() or not is_result_store(entry):
            continue
        try:
            found.append(store_info(entry))
        except (VsrError, OSError) as exc:
            log.warning("%s: skipped (%s)", entry, exc)
    return sorted(found, key=lambda s: s.mtime, reverse=True)


def total_size(stores: Iterable[StoreInfo]) -> int:
    """Bytes on disk of these stores (with their job folders)."""
    return sum(s.size_bytes for s in stores)


def _same(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return os.path.realpath(os.fspath(a).rstrip("/\\")) == os.path.realpath(
        os.fspath(b).rstrip("/\\"))


def remove_store(path: str | os.PathLike) -> StoreInfo:
    """Delete a result store and its job state folder.

    Returns
    -------
    StoreInfo
        What was removed (its size is the space freed).

    Raises
    ------
    StoreRemovalError
        ``path`` is not a napari-vsr result store (a user's folder, a plain zarr, a link), or
        its job is running now; nothing is removed.
    """
    p = Path(os.fspath(path).rstrip("/\\"))
    if p.is_symlink():
        raise StoreRemovalError("not removed: a link, not a result store", path=p)
    info = store_info(p)  # refuses anything but a result store
    if job_is_running(info.job_dir):
        raise StoreRemovalError("not removed: its job is running now; cancel it first", path=p)
    if info.job_dir is not None:
        try:
            JobDir(info.job_dir).remove()
        except VsrError as exc:
            log.warning("%s", exc)
    try:
        shutil.rmtree(info.path)
    except OSError as exc:
        raise StoreRemovalError(f"could not remove it ({exc.strerror or exc})",
                                path=info.path) from exc
    log.info("removed the result store %s (%s)", info.path, human_size(info.size_bytes))
    return info


def clean_up_candidates(
    folder: str | os.PathLike | None = None,
    in_use: Iterable[str | os.PathLike] = (),
    *,
    partial_only: bool = False,
    older_than_days: float | None = None,
) -> list[StoreInfo]:
    """The stores in ``folder`` that :func:`clean_up` would remove.

    Parameters
    ----------
    folder : path-like, optional
        Default :func:`default_store_dir`.
    in_use : iterable of path-like
        Stores to keep (backing layers now, written by running jobs).
    partial_only : bool
        Only results whose job did not finish.
    older_than_days : float, optional
        Only stores unchanged for longer than this.
    """
    keep = [os.fspath(p) for p in in_use if p]
    chosen = []
    for info in list_stores(folder):
        if any(_same(info.path, k) for k in keep) or job_is_running(info.job_dir):
            continue
        if partial_only and not info.partial:
            continue
        if older_than_days is not None and info.age_days <= older_than_days:
            continue
        chosen.append(info)
    return chosen


def clean_up(
    folder: str | os.PathLike | None = None,
    in_use: Iterable[str | os.PathLike] = (),
    *,
    partial_only: bool = False,
    older_than_days: float | None = None,
) -> CleanUpResult:
    """Remove the stores of ``folder`` not in ``in_use`` (see :func:`clean_up_candidates`);
    a store that cannot be removed is reported in ``failed`` and the others still go."""
    result = CleanUpResult()
    for info in clean_up_candidates(folder, in_use, partial_only=partial_only,
                                    older_than_days=older_than_days):
        try:
            result.removed.append(remove_store(info.path))
        except VsrError as exc:
            result.failed.append((info.path, str(exc)))
    return result


def finished_frames(path: str | os.PathLike) -> int:
    """How many leading frames of a result store are finished (all of a finished result).

    A partial store is created full length and filled as frames finish, and an unwritten
    frame reads as zeros; a frame counts as finished when its chunk is on disk or its segment
    is committed in the job state folder.
    """
    p = Path(os.fspath(path).rstrip("/\\"))
    store, metadata = open_result(p)
    n = int(store.shape[0])
    if not metadata.get("partial"):
        return n
    done = _committed_frames(p, metadata)
    chunks = store.chunks[0] if store.chunks else 1
    for t in range(n):
        if t in done:
            continue
        if not _chunk_written(p, t // chunks, store.ndim):
            return t
    return n


def _chunk_written(path: Path, index: int, ndim: int) -> bool:
    """Whether the chunk of time index ``index`` (zero elsewhere) exists (zarr 3 or 2 keys)."""
    rest = ["0"] * (ndim - 1)
    for key in ("c/" + "/".join([str(index), *rest]), ".".join([str(index), *rest]),
                "/".join([str(index), *rest])):
        if (path / key).is_file():
            return True
    return False


def _committed_frames(path: Path, metadata: dict) -> set[int]:
    """Frame indices (0-based in the store) of the segments committed in the job folder."""
    job = _job_dir(path, metadata)
    if job is None:
        return set()
    try:
        manifest = json.loads((job / "manifest.json").read_text())
        start = int((metadata.get("frame_range") or [0])[0])
        done: set[int] = set()
        for i, (a, b) in enumerate(manifest.get("segments") or []):
            if (job / f"segment-{i:06d}.npy").is_file():
                done.update(range(int(a) - start, int(b) - start))
        return done
    except (OSError, ValueError, TypeError):
        return set()


def describe_age(mtime: float, *, short: bool = False) -> str:
    """A local date for a list row: "2026-12-02 16:20"; ``short``: "16:20" today, else
    "2 Dec"."""
    when = _dt.datetime.fromtimestamp(mtime)
    if not short:
        return when.strftime("%Y-%m-%d %H:%M")
    if when.date() == _dt.date.today():
        return when.strftime("%H:%M")
    return f"{when.day} {when.strftime('%b')}"
