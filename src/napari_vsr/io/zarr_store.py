"""On-disk zarr stores for results: a streaming writer and a pre-sized result array.

* :class:`ZarrWriter` follows the project's Writer protocol (``write(frame)``, ``close()``,
  ``abort()``, ``preflight()``, context manager).  Frames are appended to the hidden
  ``.<name>.zarr.partial-<pid>-XXXX`` beside the target, one frame per chunk, and the folder is
  renamed to the target only on :meth:`close`, so an interrupted run never leaves a partial
  store under the target name; a killed run's partial is swept when the target is written
  again.  Like every folder output, a store holds the marker ``.napari-vsr-output``, and
  ``overwrite`` replaces only a store that has it (see :mod:`napari_vsr.io.writer_base`).
* :func:`create_result_store` makes an array of a known full shape that is filled in as frames
  finish (the widgets back a napari layer with it); :func:`open_result_store` reopens one.

Works with zarr 3 and zarr 2 (>= 2.16), through ``zarr.open_array`` only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from napari_vsr.errors import (
    SourceNotFoundError,
    UnreadableMediaError,
    VsrError,
    WriteError,
)
from napari_vsr.io.writer_base import (
    Writer,
    check_target,
    check_writable,
    estimate_output_bytes,
    make_parents,
    remove_created,
    temp_path_beside,
    translate_os_error,
    warn_if_short_of_space,
    write_marker,
)

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    """Make metadata JSON-safe for zarr attributes (Fractions as "num/den", numpy scalars as
    Python numbers, paths and other objects as strings)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 4096 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, str | int | float | bool) or value is None:
        if isinstance(value, float) and not np.isfinite(value):
            return str(value)
        return value
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def _translate_zarr_error(exc: BaseException, path: Path, doing: str) -> VsrError:
    """The one translation of zarr and OS errors in this module (OS causes: see
    :func:`~napari_vsr.io.writer_base.translate_os_error`)."""
    if isinstance(exc, OSError | VsrError):
        return translate_os_error(exc, path, doing)
    return WriteError(f"{doing} failed ({type(exc).__name__}: {exc})", path=path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class ZarrWriter(Writer):
    """Append frames to a new zarr array, committed atomically on :meth:`close`.

    A :class:`~napari_vsr.io.writer_base.Writer`: the partial store beside the target, the
    marker, the atomic commit, :meth:`abort`, the sweep of killed runs' partials and
    :meth:`preflight` are the base class's.

    Parameters
    ----------
    path : path-like
        Target store (a folder, conventionally ``*.zarr``).
    overwrite : bool
        Replace an existing target on :meth:`close`; otherwise an existing target raises
        :class:`~napari_vsr.errors.OutputExistsError` at once.
    metadata : mapping, optional
        Stored in the array's attributes (made JSON-safe).

    Notes
    -----
    The array is created on the first frame with shape (0, *frame.shape), the frame's dtype and
    one frame per chunk, and grows along axis 0.  Every frame must have the first frame's shape
    and dtype (any shape and dtype otherwise: a store holds what the other sinks refuse).  A
    failed write discards the partial store at once.
    """

    folder_output = True

    def __init__(
        self, path: str | os.PathLike, *, overwrite: bool = False, metadata: Mapping | None = None
    ):
        super().__init__(path, overwrite=overwrite)
        self.metadata = dict(metadata or {})
        self._tmp = temp_path_beside(self.path, keep_suffix=False)
        try:
            self._tmp.mkdir()
            write_marker(self._tmp, "zarr")
        except OSError as exc:
            _rmtree_quiet(self._tmp)
            raise self._init_failed(exc, "creating the zarr store") from exc
        self._array = None

    @property
    def temp_path(self) -> Path:
        """The partial store, renamed to :attr:`path` on :meth:`close`."""
        return self._tmp

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (any shape and dtype, fixed by the first frame); on failure the
        partial store is discarded."""
        try:
            super().write(frame)
        except BaseException:
            self.abort()
            raise

    def _check_frame(self, frame: Any) -> np.ndarray:
        return np.asarray(frame)

    def update_metadata(self, metadata) -> bool:
        self.metadata.update(metadata or {})
        if self._array is not None:
            self._array.attrs.update(_jsonable(self.metadata))
        return True

    def _write(self, frame: np.ndarray) -> None:
        try:
            if self._array is None:
                self._array = zarr.open_array(
                    store=str(self._tmp),
                    mode="w",
                    shape=(0,) + frame.shape,
                    chunks=(1,) + frame.shape,
                    dtype=frame.dtype,
                )
                self._array.attrs.update(_jsonable(self.metadata))
                write_marker(self._tmp, "zarr")  # mode "w" may have cleared the folder
            n = self.frames_written
            self._array.resize((n + 1,) + frame.shape)
            self._array[n] = frame
        except (OSError, VsrError):
            raise
        except Exception as exc:  # zarr and numcodecs raise many types
            raise _translate_zarr_error(exc, self.path, f"writing frame {self.frames_written}") from exc


def _rmtree_quiet(path: Path) -> None:
    try:
        _remove(path)
    except OSError as exc:  # pragma: no cover - best effort cleanup
        log.warning("could not remove %s: %s", path, exc)


def create_result_store(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: Any,
    *,
    chunks: Sequence[int] | None = None,
    attrs: Mapping | None = None,
    overwrite: bool = False,
):
    """Create an on-disk zarr array of a known full shape, to be filled in as frames finish.

    Parameters
    ----------
    path : path-like
        Store folder (conventionally ``*.zarr``).
    shape : sequence of int
        Full shape, time first, e.g. (T, 4H, 4W, 3).
    dtype : numpy dtype-like
    chunks : sequence of int, optional
        Default one frame per chunk: (1, *shape[1:]).
    attrs : mapping, optional
        Stored as attributes (made JSON-safe).
    overwrite : bool
        Replace an existing store; otherwise an existing path raises OutputExistsError.

    Returns
    -------
    zarr.Array
        Zero-filled (unwritten chunks read as 0), writable.
    """
    path = Path(path)
    shape = tuple(int(s) for s in shape)
    check_target(path, overwrite=overwrite, folder=True)
    chunks = tuple(int(c) for c in chunks) if chunks is not None else (1,) + shape[1:]
    created: list[Path] = []
    try:
        created = make_parents(path.parent)
        check_writable(path.parent, path)
        needed = estimate_output_bytes(shape[1:], dtype, shape[0] if shape else 1)
        warn_if_short_of_space(path.parent, needed, path)
        if path.exists() or path.is_symlink():
            _remove(path)  # a store napari-vsr wrote (check_target made sure)
        array = zarr.open_array(
            store=str(path),
            mode="w",
            shape=shape,
            chunks=chunks,
            dtype=np.dtype(dtype),
            fill_value=0,
        )
        write_marker(path, "zarr")
        if attrs:
            array.attrs.update(_jsonable(dict(attrs)))
    except Exception as exc:
        if not isinstance(exc, VsrError):
            _rmtree_quiet(path)
        remove_created(created)
        error = _translate_zarr_error(exc, path, "creating a zarr store")
        if error is exc:
            raise
        raise error from exc
    return array


def open_result_store(path: str | os.PathLike, *, mode: str = "r+"):
    """Open an existing zarr array made by :func:`create_result_store` or :class:`ZarrWriter`.

    Parameters
    ----------
    path : path-like
    mode : {"r+", "r"}

    Returns
    -------
    zarr.Array
    """
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError("no zarr store here", path=path)
    try:
        return zarr.open_array(store=str(path), mode=mode)
    except Exception as exc:  # zarr raises various types for a folder that is not an array
        raise UnreadableMediaError(f"not a zarr array: {exc}", path=path) from exc
