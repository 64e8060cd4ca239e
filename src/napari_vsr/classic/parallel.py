"""How the classic runner uses threads and memory.

* :class:`BufferRecycler`: a freshly allocated array costs a page fault and the zeroing of
  every page on its first write: for a x4 preset at 640x360 that is 11 MB per output frame,
  about a third of the CPU time of the whole pipeline, and the faults of parallel threads
  contend in the kernel (and, in a virtual machine, in the host), so the parallel runner
  scaled worse than a plain loop.  The recycler hands the same memory out again once the
  caller has let go of it.
* :func:`for_each`: one task per thread pulling frame indices, not one task per frame.
* :func:`opencv_serial`: OpenCV's own thread pool is switched off while the runner's threads
  run frames in parallel; otherwise its workers (which spin for a while after each job)
  compete with the runner's threads for the same cores.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, wait
from contextlib import contextmanager

import cv2
import numpy as np


def _refs(holder: list[np.ndarray]) -> int:
    """References to ``holder[0]``, counted the same way every time."""
    return sys.getrefcount(holder[0])


#: what :func:`_refs` reports for an array referenced by nothing but the holder
_ALONE = _refs([np.empty(0)])


class BufferRecycler:
    """Hands out output arrays, reusing the last one when nothing else references it.

    The recycler keeps one array.  :meth:`get` returns it (or a leading-axis view of it, for
    a shorter chunk) only when the caller has dropped every reference to what it got last time,
    including views; CPython's reference count tells, the same test NumPy uses to reuse
    temporaries.  A caller that keeps its results therefore always gets fresh arrays, and
    results are never overwritten behind its back.  Safe to call from several threads.
    """

    def __init__(self) -> None:
        self._kept: list[np.ndarray] = []
        self._lock = threading.Lock()

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``.

        Parameters
        ----------
        shape : tuple of int
            ``(T, ...)``; a kept array with the same trailing shape and at least ``T`` frames
            is reused.
        dtype : numpy dtype

        Returns
        -------
        ndarray, ``shape``, ``dtype``, contents undefined
        """
        dtype = np.dtype(dtype)
        with self._lock:
            kept = self._kept
            if (
                kept
                and _refs(kept) == _ALONE
                and kept[0].dtype == dtype
                and kept[0].shape[1:] == tuple(shape[1:])
                and kept[0].shape[0] >= shape[0]
            ):
                return kept[0] if kept[0].shape[0] == shape[0] else kept[0][: shape[0]]
            fresh = np.empty(shape, dtype)
            self._kept = [fresh]
            return fresh

    def clear(self) -> None:
        """Forget the kept array (its memory is freed once the caller drops it too)."""
        with self._lock:
            self._kept = []


def for_each(
    func: Callable[[int], None], count: int, executor: Executor | None, tasks: int
) -> None:
    """Call ``func(i)`` for ``i`` in ``range(count)``, on ``tasks`` threads of ``executor``.

    Each task pulls the next index until none is left (one task per thread instead of one per
    frame: less scheduling overhead for cheap frames, and a slow or preempted thread simply
    takes fewer frames).  The first exception stops the other tasks from taking new indices
    and is raised here.

    Parameters
    ----------
    func : callable
        Called once per index; must be safe to call from several threads at once.
    count : int
        Number of indices.
    executor : Executor or None
        ``None`` (or ``tasks <= 1``) runs everything in the calling thread, in order.
    tasks : int
        Parallel tasks to submit (at most ``count``).
    """
    tasks = min(tasks, count)
    if executor is None or tasks <= 1:
        for i in range(count):
            func(i)
        return
    lock = threading.Lock()
    state = {"next": 0, "failed": False}

    def worker() -> None:
        while True:
            with lock:
                i = state["next"]
                if i >= count or state["failed"]:
                    return
                state["next"] = i + 1
            try:
                func(i)
            except BaseException:
                state["failed"] = True
                raise

    with opencv_serial():
        futures = [executor.submit(worker) for _ in range(tasks)]
        wait(futures)  # all stopped before an exception leaves: nothing writes afterwards
    for future in futures:
        future.result()


_cv_lock = threading.Lock()
_cv_users = 0
_cv_saved = 1


@contextmanager
def opencv_serial() -> Iterator[None]:
    """Run the body with OpenCV's internal parallelism off (``cv2.setNumThreads(1)``).

    ``cv2.setNumThreads`` is process-wide, so this is scoped and counted: the first of any
    number of overlapping users (several enhancers, several threads) saves the setting, the
    last one restores it, unless something else changed it in between.  Switching costs a
    few microseconds.  Other code calling OpenCV meanwhile runs single-threaded (slower,
    never different: OpenCV's results do not depend on its thread count).
    """
    global _cv_users, _cv_saved
    with _cv_lock:
        if _cv_users == 0:
            _cv_saved = cv2.getNumThreads()
            if _cv_saved > 1:
                cv2.setNumThreads(1)
        _cv_users += 1
    try:
        yield
    finally:
        with _cv_lock:
            _cv_users -= 1
            if _cv_users == 0 and _cv_saved > 1 and cv2.getNumThreads() == 1:
                cv2.setNumThreads(_cv_saved)
