"""The writer protocol and the atomic-commit machinery every writer shares.

A writer receives frames one at a time, writes them to a temporary path beside the target
(``.<name>.partial-<random><ext>``) and only :meth:`Writer.close` renames that to the target.
:meth:`Writer.abort` (and any exception, ``KeyboardInterrupt`` included, inside a ``with``
block) removes the temporary path, so the target name never holds a truncated result.
"""

from __future__ import annotations

import abc
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.errors import OutputExistsError, UnsupportedDtypeError, VsrError, WriteError

log = logging.getLogger(__name__)


def temp_path_beside(target: Path, *, keep_suffix: bool = True) -> Path:
    """A fresh hidden path in the target's folder (same file system, so rename is atomic)."""
    tag = uuid.uuid4().hex[:8]
    suffix = target.suffix if keep_suffix else ""
    return target.with_name(f".{target.name}.partial-{tag}{suffix}")


def remove_path(path: Path) -> None:
    """Remove a file or folder if present; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as exc:  # pragma: no cover - best effort
        log.warning("could not remove %s: %s", path, exc)


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


class Writer(abc.ABC):
    """Receives frames and commits them atomically under ``path``.

    Parameters
    ----------
    path : path-like
        The final target.
    overwrite : bool
        Replace an existing target at commit; otherwise :class:`OutputExistsError` is raised
        here, before any work.

    Attributes
    ----------
    path : Path
        The target.
    frames_written : int
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = bool(overwrite)
        if self.path.exists() and not overwrite:
            raise OutputExistsError(
                "the output exists; pass overwrite=True (CLI: --overwrite) to replace it",
                path=self.path,
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create the output folder ({exc})", path=self.path) from exc
        self.frames_written = 0
        self._frame_shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._done = False

    # --- the protocol -----------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Append one frame, ``(H, W[, C])``; every frame must match the first's shape/dtype."""
        if self._done:
            raise WriteError("the writer is already closed", path=self.path)
        arr = self._validate(frame)
        if self._frame_shape is None:
            self._frame_shape, self._dtype = arr.shape, arr.dtype
        elif arr.shape != self._frame_shape or arr.dtype != self._dtype:
            raise WriteError(
                f"frame {self.frames_written} is {arr.shape} {arr.dtype} but the first frame was "
                f"{self._frame_shape} {self._dtype}; all frames must match",
                path=self.path,
            )
        try:
            self._write(arr)
        except VsrError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            raise WriteError(
                f"writing frame {self.frames_written} failed ({exc})", path=self.path
            ) from exc
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it to ``path`` (atomic).  Idempotent."""
        if self._done:
            return
        try:
            if self.frames_written == 0:
                raise WriteError("no frames were written; nothing was saved", path=self.path)
            self._finish()
            self._commit()
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

    def _validate(self, frame: Any) -> np.ndarray:
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
        tmp = self.temp_path
        if not self.overwrite and self.path.exists():
            raise OutputExistsError(
                "the output appeared while writing; nothing was replaced", path=self.path
            )
        if self.path.is_dir() and not self.path.is_symlink():
            # folders cannot be replaced in one step: move the old one aside first
            old = temp_path_beside(self.path, keep_suffix=False)
            os.replace(self.path, old)
            os.replace(tmp, self.path)
            remove_path(old)
        else:
            os.replace(tmp, self.path)
