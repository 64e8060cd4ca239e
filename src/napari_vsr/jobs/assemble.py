"""Writing a job's file output while its segments are computed.

The output (a video, a TIFF stack, a ``.zarr`` store or a frame folder) is written in frame
order by one writer.  :class:`Assembler` takes the frames of the segment being computed here as
they come, and the frames of segments committed earlier (a resumed job) or elsewhere (Dask
workers, in any order) from the job folder when their turn comes, so the encoder works while the
next frames are computed instead of after the last one.  With ``overlapped`` the writer runs in
its own thread (:class:`~napari_vsr.stages.Consumer`), a bounded number of frames behind;
otherwise in the caller's thread.

The writer only makes its file appear when :meth:`Assembler.finish` closes it; :meth:`abort`
(a failure, a cancel) leaves no output, and the committed segments stay in the job folder for
``--resume``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from napari_vsr.jobs.progress import STAGE_ASSEMBLING, CancelToken, Progress, RateClock
from napari_vsr.jobs.segments import Segment
from napari_vsr.jobs.state import JobDir
from napari_vsr.stages import Consumer

log = logging.getLogger(__name__)


class Assembler:
    """Writes the frames of ``segments`` in order to ``writer``.

    Parameters
    ----------
    writer : Writer
        An open writer (:func:`~napari_vsr.io.open_writer`); closed by :meth:`finish`,
        aborted by :meth:`abort`.
    segments : list of Segment
        Every segment of the job, in order.
    job : JobDir or None
        Where committed segments are loaded from (None: every segment is computed here, in
        order).
    overlapped : bool
        Write in a thread of its own, up to ``depth`` frames behind the caller.
    depth : int
        Frames the writer's thread may be behind.
    """

    def __init__(self, writer, segments: list[Segment], job: JobDir | None, *,
                 overlapped: bool, depth: int = 8):
        self.writer = writer
        self.segments = list(segments)
        self.job = job
        self.next = 0  # position in ``segments`` of the next segment to write
        self.written = 0  # frames handed to the writer
        self._streaming: Segment | None = None
        self._stage = (Consumer(self._write, depth=max(1, depth), name="napari-vsr-encode")
                       if overlapped else None)

    def _write(self, frame: np.ndarray) -> None:
        self.writer.write(np.asarray(frame))

    def _put(self, frame: np.ndarray) -> None:
        if self._stage is not None:
            self._stage.put(frame)
        else:
            self._write(frame)
        self.written += 1

    def _load(self, seg: Segment) -> np.ndarray:
        frames = None if self.job is None else self.job.load(seg)
        if frames is None:
            raise RuntimeError(f"segment {seg.index} is not committed; cannot write it")
        return frames

    def catch_up(self, committed: Callable[[Segment], bool], *, upto: int | None = None,
                 cancel: CancelToken | None = None) -> int:
        """Write every segment from the next one on that ``committed`` says is in the job
        folder (stopping at the first that is not, or at segment index ``upto``); returns how
        many frames were written."""
        count = 0
        while self.next < len(self.segments):
            seg = self.segments[self.next]
            if (upto is not None and seg.index >= upto) or not committed(seg):
                break
            for frame in self._load(seg):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                self._put(frame)
                count += 1
            self.next += 1
        return count

    def begin(self, seg: Segment) -> bool:
        """Whether the frames of ``seg``, computed now, can go to the writer as they come (it
        is the next segment to write)."""
        if self.next < len(self.segments) and self.segments[self.next].index == seg.index:
            self._streaming = seg
            return True
        self._streaming = None
        return False

    def put(self, frame: np.ndarray) -> None:
        """One frame of the segment :meth:`begin` accepted."""
        if self._streaming is None:
            raise RuntimeError("put() outside a segment begin() accepted")
        self._put(frame)

    def end(self, seg: Segment) -> None:
        """The segment :meth:`begin` accepted has been fully handed over."""
        if self._streaming is not None and self._streaming.index == seg.index:
            self.next += 1
        self._streaming = None

    def finish(self, committed: Callable[[Segment], bool], *, cancel: CancelToken | None = None
               ) -> Iterator[Progress]:
        """Write what is left (stage "assembling"), wait for the writer and close it."""
        left = sum(s.length for s in self.segments[self.next:])
        clock = RateClock(max(left, 1), stage=STAGE_ASSEMBLING)
        done = 0
        while self.next < len(self.segments):
            seg = self.segments[self.next]
            if not committed(seg):
                raise RuntimeError(f"segment {seg.index} is missing; cannot finish the output")
            done += self.catch_up(committed, upto=seg.index + 1, cancel=cancel)
            yield clock.progress(done)
        if self._stage is not None:
            self._stage.close()
        self.writer.close()

    def abort(self) -> None:
        """Stop writing and remove the partial output (segments stay in the job folder)."""
        try:
            if self._stage is not None:
                self._stage.abort()
        finally:
            self.writer.abort()
