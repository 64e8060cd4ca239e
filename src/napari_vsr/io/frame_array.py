"""The lazy, numpy-like frame sequence every reader returns.

A :class:`FrameArray` has shape ``(T, H, W)`` (gray) or ``(T, H, W, C)`` (C = 3 or 4, channels
last, napari's ``rgb`` convention) and decodes frames only when they are indexed.  TIFF stacks
may have more axes, ``(T, *extra, H, W[, S])`` (e.g. ``(T, Z, C, Y, X)``); their
``metadata["axes"]`` names them and ``rgb`` says whether the last axis holds colour samples.
Subclasses implement :meth:`FrameArray._read_frames`; indexing, caching and locking live here.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: default budget of decoded frames kept in memory per array, in MiB
DEFAULT_CACHE_MB = 128.0


class FrameCache:
    """A least-recently-used cache of decoded frames bounded by bytes.

    Parameters
    ----------
    max_bytes : int
        Upper bound of the summed ``nbytes`` of the cached frames (at least one frame is kept).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self.nbytes = 0

    def get(self, index: int) -> np.ndarray | None:
        frame = self._items.get(index)
        if frame is not None:
            self._items.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        if self.max_bytes <= 0:
            return
        old = self._items.pop(index, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._items[index] = frame
        self.nbytes += frame.nbytes
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)


class FrameArray(abc.ABC):
    """A read-only, lazily decoded stack of frames that behaves like a numpy array.

    Attributes
    ----------
    shape : tuple of int
        ``(T, H, W)`` or ``(T, H, W, C)``; TIFF stacks may have extra axes after T.
    dtype : numpy.dtype
        uint8, uint16 or float32; values are the source's (uint8 0..255, uint16 0..65535,
        float32 as stored).
    rgb : bool
        True when the last axis holds colour channels (3 or 4); a reader may say so explicitly
        (the ``rgb`` argument), otherwise a 4-D array whose last axis is 3 or 4 counts.
    metadata : dict
        What the source says about itself; always has ``source_path``, ``kind`` and
        ``n_frames`` (see :func:`napari_vsr.io.open_frames` for the video keys).

    Notes
    -----
    Indexing accepts an int, a slice, an integer or boolean index array, or a tuple whose first
    element is one of those and whose remaining elements index the frame axes.  Every returned
    array is a fresh copy the caller may modify.  All reads are serialised by a lock, so the
    array can be shared between napari's slicing thread and engine workers.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        metadata: dict[str, Any],
        *,
        cache_mb: float = DEFAULT_CACHE_MB,
        rgb: bool | None = None,
    ):
        self._shape = tuple(int(s) for s in shape)
        self._rgb = rgb
        self._dtype = np.dtype(dtype)
        self.metadata = metadata
        self._lock = threading.RLock()
        self._cache = FrameCache(int(cache_mb * 2**20))
        self._closed = False

    # --- numpy-like surface ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self._dtype.itemsize

    @property
    def rgb(self) -> bool:
        if self._rgb is not None:
            return bool(self._rgb)
        return self.ndim == 4 and self._shape[-1] in (3, 4)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._shape[1:]

    def __len__(self) -> int:
        return self._shape[0]

    def __repr__(self) -> str:
        src = self.metadata.get("source_path")
        return f"<{type(self).__name__} shape={self.shape} dtype={self.dtype} source={src!r}>"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if key is Ellipsis:
            key = slice(None)
        if isinstance(key, tuple):
            if any(k is None for k in key):  # new axes: rare, read the frames then index
                return np.asarray(self[:])[key]
            if any(k is Ellipsis for k in key):
                at = next(n for n, k in enumerate(key) if k is Ellipsis)
                fill = (slice(None),) * max(0, self.ndim - (len(key) - 1))
                key = key[:at] + fill + key[at + 1 :]
            if not key:
                key = slice(None)
            else:
                key, rest = key[0], tuple(key[1:])
        scalar, indices = self._normalise(key)
        frames = self.read_frames(indices)
        out = frames[0] if scalar else frames
        if rest:
            out = out[(slice(None), *rest)] if not scalar else out[rest]
            out = np.ascontiguousarray(out)
        return out

    def _normalise(self, key) -> tuple[bool, np.ndarray]:
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if i < -n or i >= n:
                raise IndexError(f"frame {i} out of range for {n} frames")
            return True, np.array([i % n], dtype=np.int64)
        if isinstance(key, slice):
            return False, np.arange(n, dtype=np.int64)[key]
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"boolean index of shape {arr.shape} does not match {n} frames")
            return False, np.flatnonzero(arr).astype(np.int64)
        if not np.issubdtype(arr.dtype, np.integer) and arr.size:
            raise IndexError(f"frames must be indexed by int, slice or int array, not {key!r}")
        arr = arr.astype(np.int64).ravel()
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise IndexError(f"frame index out of range for {n} frames")
        return False, arr % n if n else arr

    # --- reading ----------------------------------------------------------------------------
    def read_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames ``indices`` (any order, repeats allowed) as one new array.

        Returns
        -------
        ndarray, (len(indices), *frame_shape), self.dtype
        """
        indices = [int(i) for i in np.asarray(indices, dtype=np.int64).ravel()]
        out = np.empty((len(indices), *self.frame_shape), dtype=self._dtype)
        positions: dict[int, list[int]] = {}
        for k, i in enumerate(indices):
            positions.setdefault(i, []).append(k)
        with self._lock:
            if self._closed:
                raise ValueError(f"{self!r} is closed")
            missing = []
            for i, where in positions.items():
                frame = self._cache.get(i)
                if frame is None:
                    missing.append(i)
                else:
                    out[where] = frame
            if missing:
                for i, frame in self._read_frames(sorted(missing)):
                    out[positions[i]] = frame
                    self._cache.put(i, frame)
        return out

    @abc.abstractmethod
    def _read_frames(self, indices: list[int]):
        """Yield ``(index, frame)`` for every index of the sorted, unique list ``indices``.

        Called with the lock held.  Frames must have ``frame_shape`` and ``dtype``.
        """

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the file handles and the cache.  Further reads raise ``ValueError``."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._cache.clear()
                self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Subclass hook: release handles."""

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort at interpreter shutdown
        try:
            self.close()
        except Exception:
            pass
