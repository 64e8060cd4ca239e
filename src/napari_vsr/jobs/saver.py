"""Saving a job's segments in a thread of their own.

A segment file holds every output frame of the segment (11 MB per 2560x1440 frame) and is
fsynced when complete, so writing it in the job's thread would stall the engine and the encoder
behind the disk.  :class:`SegmentSaver` takes the frames with :meth:`~SegmentSaver.put` and
writes and commits them in its own thread (:class:`~napari_vsr.stages.Consumer`), a bounded
number of frames behind; ``on_commit(segment)`` is called in that thread once a segment is
durably in the job folder (the job then counts it as done).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_vsr.jobs.segments import Segment
from napari_vsr.jobs.state import JobDir, SegmentFile
from napari_vsr.stages import Consumer


class SegmentSaver:
    """Writes and commits segments, in order, in a thread.

    Parameters
    ----------
    job : JobDir
    frame_shape, dtype
        Of every output frame (the manifest's).
    on_commit : callable
        ``on_commit(segment)`` after a segment is committed (in the saver's thread).
    depth : int
        Frames the saver may be behind.
    """

    def __init__(self, job: JobDir, frame_shape: tuple[int, ...], dtype,
                 on_commit: Callable[[Segment], None], *, depth: int):
        self.job = job
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.on_commit = on_commit
        self._file: SegmentFile | None = None
        self._stage = Consumer(self._handle, depth=max(2, depth), name="napari-vsr-save")

    def _handle(self, item) -> None:
        what, value = item
        if what == "begin":
            self._file = self.job.segment_writer(value, self.frame_shape, self.dtype)
        elif what == "frame":
            self._file.write(value)
        else:  # "commit"
            file, self._file = self._file, None
            file.commit()
            self.on_commit(value)

    def begin(self, segment: Segment) -> None:
        self._stage.put(("begin", segment))

    def put(self, frame: np.ndarray) -> None:
        self._stage.put(("frame", frame))

    def commit(self, segment: Segment) -> None:
        """Commit ``segment`` once its frames are written (asynchronously)."""
        self._stage.put(("commit", segment))

    def close(self) -> None:
        """Wait until every segment handed over is committed; re-raise a failure."""
        try:
            self._stage.close()
        finally:
            self._discard()

    def abort(self) -> None:
        """Drop what is queued and the segment in progress (committed ones stay)."""
        self._stage.abort()
        self._discard()

    def _discard(self) -> None:
        if self._file is not None:
            self._file.discard()
            self._file = None
