"""The CLI's progress bar: one line on stderr, formatted by the project's one
:func:`~napari_vsr.jobs.progress.format_progress`."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from napari_vsr.jobs.progress import STAGE_LOADING, Progress, format_progress


class ProgressBar:
    """A plain-text progress bar on a stream (stderr), a :data:`ProgressCallback`.

    ``label [#####.....]  42% 12/40 frames (segments 1/4), 3.20 fps, ETA 0:09``; a download
    shows ``label [##........]  20% downloading weights: 3.1 MB of 20.0 MB`` (no bar when the
    total is unknown).  On a terminal the line is redrawn in place (a new stage starts a new
    line); otherwise a line is written at most every ``interval_s`` seconds, at every change of
    stage and at the end, so logs stay short.
    """

    def __init__(
        self, label: str, *, stream: TextIO | None = None, width: int = 24, interval_s: float = 5.0
    ):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval_s = interval_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1e9
        self._shown = False
        self._stage: str | None = None

    def __call__(self, p: Progress) -> None:
        if p.stage == STAGE_LOADING and not p.message:
            return  # the weights load in a moment; a download reports itself
        if p.message:
            self._write(f"{self.label}: {p.message}", newline=True)
        now = time.monotonic()
        new_stage = p.stage != self._stage
        if new_stage and self._shown and self.tty:
            self.finish()
        self._stage = p.stage
        # the end of a stage (a job's last frames arrive before its last segment is saved)
        final = (p.total is not None and p.done >= p.total
                 and (not p.segments_total or (p.segments_done or 0) >= p.segments_total))
        if not (self.tty or final or new_stage or now - self._last >= self.interval_s):
            return
        self._last = now
        self._write(self.line(p), newline=not self.tty or final)

    def line(self, p: Progress) -> str:
        """The text shown for ``p`` (without the terminal's redraw codes)."""
        frac = p.fraction
        if frac is None:
            return f"{self.label} {format_progress(p)}"
        fill = int(round(frac * self.width))
        bar = "#" * fill + "." * (self.width - fill)
        return f"{self.label} [{bar}] {frac:4.0%} {format_progress(p)}"

    def _write(self, line: str, *, newline: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if newline else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = not newline

    def finish(self) -> None:
        """End a half-drawn terminal line (after an error or interrupt)."""
        if self._shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
