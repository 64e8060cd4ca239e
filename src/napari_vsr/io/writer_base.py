"""The writer protocol and the machinery every writer shares: atomic commit, safe overwrite,
leftover sweeping, pre-flight checks and the translation of OS errors.

A writer receives frames one at a time, writes them to a temporary path beside the target
(``.<name>.partial-<pid>-<random><ext>``) and only :meth:`Writer.close` renames that to the
target.  :meth:`Writer.abort` (and any exception, ``KeyboardInterrupt`` included, inside a
``with`` block) removes the temporary path, so the target name never holds a truncated result.

Outputs never destroy data:

- ``overwrite`` replaces a file, or a folder that napari-vsr wrote itself (it holds the marker
  file :data:`MARKER_NAME`, written into every folder output and every partial folder); a
  user's folder is refused (:class:`~napari_vsr.errors.UnsafeOutputError`), and a file target
  never replaces a folder nor a folder target a file.
- :func:`check_not_input` refuses an output that is the input (same resolved path, or the same
  file through a symlink or hard link) or that holds it.
- The temporary name carries the writer's process id: partials left by a killed run
  (SIGKILL, power loss) are removed by :func:`sweep_partials` when the same target is written
  again, once their process is gone.
- Missing parent folders are created, and removed again when the writer fails or is aborted.
"""

from __future__ import annotations

import abc
import contextlib
import errno as errno_codes
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.errors import (
    OutputExistsError,
    OutputIsInputError,
    UnsafeOutputError,
    UnsupportedDtypeError,
    VsrError,
    WriteError,
    hint,
)

log = logging.getLogger(__name__)

#: the file napari-vsr writes into every folder output (PNG frames, .zarr stores)
MARKER_NAME = ".napari-vsr-output"
_PARTIAL = ".partial-"


# --- temporary names and leftovers ------------------------------------------------------------
def temp_path_beside(target: Path, *, keep_suffix: bool = True) -> Path:
    """A fresh hidden path in the target's folder (same file system, so rename is atomic).

    The name is ``.<name>.partial-<pid>-<random>[<ext>]``: the process id lets
    :func:`sweep_partials` tell a live writer's file from a killed run's leftover.
    """
    tag = uuid.uuid4().hex[:8]
    suffix = target.suffix if keep_suffix else ""
    return target.with_name(f".{target.name}{_PARTIAL}{os.getpid()}-{tag}{suffix}")


def _partial_pid(name: str, target_name: str) -> int | None:
    """The writer pid in a partial's name for ``target_name``; None if not such a partial."""
    prefix = f".{target_name}{_PARTIAL}"
    if not name.startswith(prefix):
        return None
    pid, sep, _ = name[len(prefix) :].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":
        return True  # (on Windows os.kill would end the process: never sweep there)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's process), or unknown: keep its files
    return True


def sweep_partials(target: str | os.PathLike) -> list[Path]:
    """Remove the partial outputs of ``target`` left by runs whose process is gone.

    Only names of the form ``.<target name>.partial-<pid>-...`` beside the target are
    considered; a partial folder is removed only when it holds the napari-vsr marker.

    Returns
    -------
    list of Path
        What was removed (each one also logged as a warning).
    """
    target = Path(target)
    removed: list[Path] = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = _partial_pid(entry.name, target.name)
        if pid is None or _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink() and not is_own_folder(entry):
            continue
        remove_path(entry)
        if not (entry.exists() or entry.is_symlink()):
            removed.append(entry)
            log.warning("removed %s, left by an interrupted run (process %d)", entry, pid)
    return removed


def remove_path(path: Path) -> None:
    """Remove a file or folder if present; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as exc:  # pragma: no cover - best effort
        log.warning("could not remove %s: %s", path, exc)


# --- the marker of folders napari-vsr wrote -------------------------------------------------
def write_marker(folder: str | os.PathLike, kind: str) -> None:
    """Write :data:`MARKER_NAME` (JSON: tool, version, kind, pid, time) into ``folder``."""
    from napari_vsr import __version__

    doc = {
        "tool": "napari-vsr",
        "version": __version__,
        "kind": kind,
        "pid": os.getpid(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (Path(folder) / MARKER_NAME).write_text(json.dumps(doc) + "\n")


def is_own_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a folder napari-vsr wrote (it holds a valid marker)."""
    marker = Path(folder) / MARKER_NAME
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 4096:
            return False
        return json.loads(marker.read_text()).get("tool") == "napari-vsr"
    except (OSError, ValueError, AttributeError):
        return False


# --- what may be replaced -------------------------------------------------------------------
def check_target(path: str | os.PathLike, *, overwrite: bool, folder: bool) -> None:
    """Refuse a target that exists unless it may be replaced.

    Parameters
    ----------
    path : path-like
        The output.
    overwrite : bool
        Whether replacing an existing output was asked for.
    folder : bool
        Whether the output is a folder (PNG frames, zarr store) rather than a file.

    Raises
    ------
    OutputExistsError
        It exists and ``overwrite`` is false.
    UnsafeOutputError
        ``overwrite`` is true but replacing it could destroy data: a folder napari-vsr did not
        write, a folder where a file goes, a file or link where a folder goes.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise OutputExistsError(
            "the output exists; "
            + hint("pass overwrite=True (CLI: --overwrite) to replace it",
                   "choose another name, or agree to replace it"), path=path
        )
    if folder:
        if path.is_symlink():
            raise UnsafeOutputError(
                "is a symbolic link; a folder output never replaces one; choose another output",
                path=path,
            )
        if not path.is_dir():
            raise UnsafeOutputError(
                "is a file; a folder output never replaces a file; choose another output",
                path=path,
            )
        if not is_own_folder(path):
            raise UnsafeOutputError(
                "is a folder napari-vsr did not write; refusing to replace it; "
                "choose another output",
                path=path,
            )
    elif path.is_dir():
        raise UnsafeOutputError(
            f"is a folder; a {path.suffix or 'file'} output is a file and never replaces a "
            "folder; choose another output",
            path=path,
        )
    elif not path.is_symlink() and not path.is_file():
        raise UnsafeOutputError(
            "is not a regular file (a device, FIFO or socket); refusing to replace it; "
            "choose another output",
            path=path,
        )


def check_not_input(target: str | os.PathLike, *sources: str | os.PathLike | None) -> None:
    """Refuse an output that is one of the inputs or holds one.

    The same file is recognised by its resolved path and, when both exist, by its inode
    (``os.path.samefile``), so symlinks and hard links are caught too.

    Raises
    ------
    OutputIsInputError
    """
    target = Path(target)
    t_real = Path(os.path.realpath(target))
    for source in sources:
        if source is None:
            continue
        source = Path(source)
        same = Path(os.path.realpath(source)) == t_real
        if not same and target.exists() and source.exists():
            try:
                same = os.path.samefile(source, target)
            except OSError:
                same = False
        if same:
            raise OutputIsInputError(
                f"is also the input ({source}); writing it would replace the source; "
                "choose another output",
                path=target,
            )
        if Path(os.path.realpath(source)).is_relative_to(t_real):
            raise OutputIsInputError(
                f"holds the input {source}; replacing it would delete the source; "
                "choose another output",
                path=target,
            )


# --- folders -----------------------------------------------------------------------------------
def make_parents(folder: str | os.PathLike) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first.

    Raises OSError (translate it with :func:`translate_os_error`).
    """
    folder = Path(folder)
    missing: list[Path] = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_created(folders: list[Path]) -> None:
    """Remove folders made by :func:`make_parents` (deepest first) while they are empty."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            break


# --- errors --------------------------------------------------------------------------------------
def _errno_of(exc: BaseException) -> int | None:
    seen = 0
    while exc is not None and seen < 8:
        code = getattr(exc, "errno", None)
        if isinstance(code, int) and code:
            return code
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _mount_point(path: Path) -> Path:
    p = Path(os.path.realpath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _nearly_full(folder: Path) -> bool:
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free < 1 << 20
    except OSError:
        return False


def translate_os_error(exc: BaseException, path: str | os.PathLike, doing: str) -> VsrError:
    """The one translation of OS-level write failures into one-line project errors.

    Parameters
    ----------
    exc : BaseException
        What the OS, numpy, tifffile, zarr or PyAV raised (its ``errno`` or that of its
        cause is used), or a project error wrapping one.
    path : path-like
        The output target (named in the message).
    doing : str
        What was being done, e.g. ``"writing frame 12"``.

    Returns
    -------
    VsrError
        To be raised ``from exc``.  A project error without an OS cause comes back unchanged.
    """
    path = Path(path)
    folder = path.parent
    code = _errno_of(exc)
    text = str(exc)
    if code is None and "requested and" in text and "written" in text and _nearly_full(folder):
        code = errno_codes.ENOSPC  # numpy's tofile / tifffile report a short write this way
    if isinstance(exc, VsrError) and code is None:
        return exc
    if code in (errno_codes.ENOSPC, errno_codes.EDQUOT):
        return WriteError(
            f"no space left on {_mount_point(folder)} while {doing}; free some space or choose "
            "another output folder; nothing was saved",
            path=path,
        )
    if code == errno_codes.EROFS:
        return WriteError(
            f"the folder {folder} is on a read-only file system ({doing}); choose another "
            "output folder",
            path=path,
        )
    if code in (errno_codes.EACCES, errno_codes.EPERM):
        return WriteError(
            f"no permission to write in {folder} ({doing}); choose another output folder or "
            "change its permissions",
            path=path,
        )
    if code in (errno_codes.ENOENT, errno_codes.ENOTDIR):
        return WriteError(
            f"the output folder {folder} is missing or not a folder ({doing}); choose another "
            "output",
            path=path,
        )
    if code == errno_codes.EFBIG:
        return WriteError(
            f"the file grew too large for the file system of {folder} ({doing}); write a "
            ".zarr store or to another file system",
            path=path,
        )
    if isinstance(exc, VsrError):
        return exc
    return WriteError(f"{doing} failed ({exc})", path=path)


def as_frame(frame: Any, path: Path) -> np.ndarray:
    """Validate one frame: ndarray (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).

    Returns
    -------
    ndarray, (H, W) or (H, W, C) with C in 3/4; same dtype, not copied when already an array.
    """
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise WriteError(
            f"a frame must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}", path=path
        )
    if arr.dtype.kind not in "uif" and arr.dtype != np.bool_:
        raise UnsupportedDtypeError(f"cannot write frames of dtype {arr.dtype}", path=path)
    return arr


# --- pre-flight ----------------------------------------------------------------------------------
def check_writable(folder: str | os.PathLike, target: str | os.PathLike) -> None:
    """Create and remove a probe file in ``folder``; a one-line WriteError if that fails."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".napari-vsr-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise translate_os_error(
            exc, target, "checking that the output folder is writable"
        ) from exc


def estimate_output_bytes(
    frame_shape: tuple[int, ...], dtype: Any, n_frames: int, ratio: float = 1.0
) -> int:
    """Raw size of ``n_frames`` frames of ``frame_shape``/``dtype`` times a compression ratio."""
    return int(np.prod(frame_shape, dtype=np.float64) * np.dtype(dtype).itemsize * n_frames * ratio)


def warn_if_short_of_space(folder: Path, needed: int, target: Path) -> bool:
    """Log a warning when ``folder``'s file system has less free space than ``needed`` bytes.

    Returns whether it warned.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    if needed <= free:
        return False
    log.warning(
        "%s: the output may need about %s but only %s are free on %s; it may fail part way",
        target,
        _human(needed),
        _human(free),
        _mount_point(folder),
    )
    return True


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class Writer(abc.ABC):
    """Receives frames and commits them atomically under ``path``.

    Parameters
    ----------
    path : path-like
        The final target.  Missing parent folders are created (and removed again if the
        writer fails or is aborted); partials of this target left by killed runs are swept.
    overwrite : bool
        Replace an existing target at commit (a file, or a folder napari-vsr wrote; see
        :func:`check_target`); otherwise :class:`OutputExistsError` is raised here, before
        any work.

    Attributes
    ----------
    path : Path
        The target.
    frames_written : int
    folder_output : bool
        Class attribute: whether the output is a folder (then it gets the marker file).
    size_ratio : float
        Expected output size over the raw frame bytes, for the free-space estimate.
    """

    folder_output: bool = False
    size_ratio: float = 1.0

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = bool(overwrite)
        self._done = True  # nothing to clean up until the checks below pass
        self._created: list[Path] = []
        check_target(self.path, overwrite=overwrite, folder=self.folder_output)
        try:
            self._created = make_parents(self.path.parent)
        except OSError as exc:
            raise translate_os_error(exc, self.path, "creating the output folder") from exc
        sweep_partials(self.path)
        self.frames_written = 0
        self._frame_shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._done = False

    def _init_failed(self, exc: BaseException, doing: str) -> VsrError:
        """For subclass constructors: undo what the base made and translate ``exc``."""
        self._done = True
        remove_created(self._created)
        return translate_os_error(exc, self.path, doing)

    # --- the protocol -----------------------------------------------------------------------
    def validate(self, frame_shape: tuple[int, ...], dtype: Any) -> None:  # noqa: B027 - hook
        """Refuse frames this output cannot hold, before any work (no-op here).

        Parameters
        ----------
        frame_shape : tuple of int
            One output frame, (H, W) or (H, W, C).
        dtype : numpy dtype-like
            The frames' dtype.

        Raises
        ------
        VsrError
            Subclasses raise a ParameterError/WriteError naming the limit (e.g. a codec's
            largest frame).
        """

    def estimate_size(self, frame_shape: tuple[int, ...], dtype: Any, n_frames: int) -> int:
        """Expected size of the output in bytes (raw frame bytes times :attr:`size_ratio`)."""
        return estimate_output_bytes(frame_shape, dtype, n_frames, self.size_ratio)

    def preflight(self, frame_shape: tuple[int, ...], dtype: Any, n_frames: int) -> None:
        """Checks before any work: the output folder is writable, the free space suffices
        (a logged warning when it may not), and :meth:`validate` accepts the frames.

        Parameters
        ----------
        frame_shape : tuple of int
            One output frame, (H, W) or (H, W, C).
        dtype : numpy dtype-like
        n_frames : int
            How many frames will be written.

        Raises
        ------
        WriteError
            The output folder is not writable (read-only, no permission), one line.
        """
        check_writable(self.path.parent, self.path)
        needed = self.estimate_size(tuple(frame_shape), dtype, int(n_frames))
        warn_if_short_of_space(self.path.parent, needed, self.path)
        self.validate(tuple(frame_shape), dtype)

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, ``(H, W[, C])``; every frame must match the first's shape/dtype."""
        if self._done:
            raise WriteError("the writer is already closed", path=self.path)
        arr = self._check_frame(frame)
        if self._frame_shape is None:
            self._frame_shape, self._dtype = arr.shape, arr.dtype
        elif arr.shape != self._frame_shape or arr.dtype != self._dtype:
            raise WriteError(
                f"frame {self.frames_written} is {arr.shape} {arr.dtype}, expected "
                f"{self._frame_shape} {self._dtype} like the first frame; all frames must match",
                path=self.path,
            )
        try:
            self._write(arr)
        except (VsrError, OSError, ValueError, RuntimeError) as exc:
            error = translate_os_error(exc, self.path, f"writing frame {self.frames_written}")
            if error is exc:
                raise
            raise error from exc
        self.frames_written += 1

    def update_metadata(self, metadata: Mapping) -> bool:
        """Replace the metadata the output stores, when the format still allows it (the
        writer stores it when the file is finished); returns whether it will be stored.

        A job opens its writer before the first frame is computed and learns its timing only
        at the end; formats that write their metadata up front (TIFF) keep the first record.
        """
        return False

    def close(self) -> None:
        """Finish the file and move it to ``path`` (atomic).  Idempotent."""
        if self._done:
            return
        try:
            if self.frames_written == 0:
                raise WriteError("no frames were written; nothing was saved", path=self.path)
            try:
                self._finish()
                self._commit()
            except (VsrError, OSError) as exc:
                error = translate_os_error(exc, self.path, "finishing the output")
                if error is exc:
                    raise
                raise error from exc
        except BaseException:
            self.abort()
            raise
        self._done = True
        log.info("wrote %d frames to %s", self.frames_written, self.path)

    def abort(self) -> None:
        """Drop everything written so far; the target is left untouched.  Idempotent."""
        if self._done:
            return
        self._done = True
        try:
            self._discard()
        finally:
            remove_path(self.temp_path)
            remove_created(self._created)

    def __enter__(self):
        return self

    def __del__(self):  # a writer dropped without close() leaves no temporary file behind
        try:
            if not self._done:
                self.abort()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # --- for subclasses ---------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def temp_path(self) -> Path:
        """Where the data is written until commit."""

    def _check_frame(self, frame: Any) -> np.ndarray:
        """Check one frame before it is written (default: :func:`as_frame`)."""
        return as_frame(frame, self.path)

    @abc.abstractmethod
    def _write(self, frame: np.ndarray) -> None:
        """Write one validated frame to the temporary path."""

    def _finish(self) -> None:  # noqa: B027 - optional hook
        """Flush and close the temporary file."""

    def _discard(self) -> None:  # noqa: B027 - optional hook
        """Close handles without finishing (before the temp path is removed)."""

    def _commit(self) -> None:
        commit_beside(
            self.temp_path, self.path, overwrite=self.overwrite, folder=self.folder_output
        )


def commit_beside(tmp: Path, target: Path, *, overwrite: bool, folder: bool) -> None:
    """Move the finished ``tmp`` to ``target``, re-checking what may be replaced.

    A folder cannot be replaced in one step: the old one is moved aside (to a partial name,
    so a crash in between leaves a recognisable leftover) and removed after.
    """
    if not overwrite and (target.exists() or target.is_symlink()):
        raise OutputExistsError(
            "the output appeared while writing; nothing was replaced", path=target
        )
    check_target(target, overwrite=overwrite, folder=folder)
    if target.is_dir() and not target.is_symlink():
        old = temp_path_beside(target, keep_suffix=False)
        with _signals_held():  # a signal between the two renames would lose both folders
            os.replace(target, old)
            os.replace(tmp, target)
        remove_path(old)
    else:
        os.replace(tmp, target)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for a few statements, then act on the first one that came.

    Only in the main thread (where Python runs signal handlers); elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    try:
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None:
                previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])
