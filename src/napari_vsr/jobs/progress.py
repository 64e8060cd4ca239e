"""The one progress record and the one cancel token of the project.

Everything that takes time (the engine, a job, a weights download, a comparison export) reports
through a ``progress`` callable that receives a :class:`Progress`, and stops when its
:class:`CancelToken` is set (raising :class:`~napari_vsr.errors.Cancelled` at its next check).
:func:`format_progress` is the one human form, used by the CLI's bar and the widgets' status.

No Qt, no PyTorch: importing this module is cheap.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from napari_vsr.errors import Cancelled

#: what a job is doing; ``Progress.stage`` is one of these
STAGE_LOADING = "loading"
STAGE_DOWNLOADING = "downloading weights"
STAGE_ENHANCING = "enhancing"
STAGE_ASSEMBLING = "assembling"
STAGES = (STAGE_LOADING, STAGE_DOWNLOADING, STAGE_ENHANCING, STAGE_ASSEMBLING)


class CancelToken:
    """A thread-safe flag asking a running task to stop at its next check.

    A token can be passed as ``cancel`` to the engine, a job, a download or an export; the
    task calls :meth:`raise_if_cancelled` (or reads :attr:`cancelled`) at least once per frame
    (per block of bytes for a download).

    Parameters
    ----------
    parent : CancelToken, optional
        A token whose cancel also cancels this one (a pipeline stage stops when its job is
        cancelled or when its own consumer stops early).
    """

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def cancel(self) -> None:
        """Ask the task to stop; it raises :class:`~napari_vsr.errors.Cancelled` at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~napari_vsr.errors.Cancelled` if :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled()
        if self._parent is not None:
            self._parent.raise_if_cancelled()


@dataclass(frozen=True)
class Progress:
    """Where a task stands.

    Attributes
    ----------
    done, total : int
        Units finished and asked for (``total`` None when unknown, e.g. a download without a
        Content-Length).
    elapsed_s : float
        Seconds since the task (or this stage) started.
    fps : float
        Finished units per second so far (0 before the first).
    eta_s : float or None
        Estimated seconds left; None until a rate is known.
    message : str
        A note for the user (e.g. an out-of-memory retry with smaller tiles), else "".
    stage : str
        One of :data:`STAGES`: "loading", "downloading weights", "enhancing", "assembling".
    unit : str
        What ``done``/``total`` count: "frames" or "bytes".
    segments_done, segments_total : int or None
        Finished and planned segments of a job (None outside a job).
    """

    done: int
    total: int | None
    elapsed_s: float
    fps: float
    eta_s: float | None
    message: str = ""
    stage: str = STAGE_ENHANCING
    unit: str = "frames"
    segments_done: int | None = None
    segments_total: int | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None if self.total is None else 1.0
        return min(1.0, max(0.0, self.done / self.total))


#: the one progress protocol: a callable taking a :class:`Progress`
ProgressCallback = Callable[[Progress], None]


class RateClock:
    """Turns "done so far" into :class:`Progress` records with fps and ETA.

    ``clock.progress(done)`` builds the record for the current moment; ``total`` and ``stage``
    are fixed per clock (start a new clock for a new stage).
    """

    def __init__(self, total: int | None, *, stage: str = STAGE_ENHANCING, unit: str = "frames",
                 start_done: int = 0):
        self.total = total
        self.stage = stage
        self.unit = unit
        self.t0 = time.perf_counter()
        # units already done when the clock started (e.g. resumed segments) do not count for
        # the rate
        self.start_done = start_done

    def progress(self, done: int, *, message: str = "", segments_done: int | None = None,
                 segments_total: int | None = None) -> Progress:
        elapsed = time.perf_counter() - self.t0
        fresh = done - self.start_done
        fps = fresh / elapsed if fresh > 0 and elapsed > 0 else 0.0
        eta = None
        if fps > 0 and self.total is not None:
            eta = max(0.0, (self.total - done) / fps)
        return Progress(done, self.total, elapsed, fps, eta, message, self.stage, self.unit,
                        segments_done, segments_total)


def clock_text(seconds: float) -> str:
    """``"0:09"``, ``"12:05"`` or ``"1:02:03"``."""
    s = max(0, int(math.ceil(seconds)))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _amount(n: int, unit: str) -> str:
    if unit == "bytes":
        return f"{n / 1e6:.1f} MB"
    return str(n)


def format_progress(progress: Progress) -> str:
    """The human form of a progress record, used by the CLI and the widgets.

    ``"12/40 frames, 3.20 fps, ETA 0:09"``; a job adds its segments
    (``"12/40 frames (segment 2/4), ..."``); other stages name themselves
    (``"downloading weights: 3.1 MB of 20.0 MB"``, ``"assembling: 10/40 frames"``).
    """
    p = progress
    if p.unit == "bytes":
        total = f" of {_amount(p.total, 'bytes')}" if p.total else ""
        return f"{p.stage}: {_amount(p.done, 'bytes')}{total}"
    total = "?" if p.total is None else str(p.total)
    text = f"{p.done}/{total} frames"
    if p.segments_total:
        text += f" (segments {p.segments_done or 0}/{p.segments_total})"
    if p.stage != STAGE_ENHANCING:
        return f"{p.stage}: {text}"
    eta = "?" if p.eta_s is None else clock_text(p.eta_s)
    return f"{text}, {p.fps:.2f} fps, ETA {eta}"
