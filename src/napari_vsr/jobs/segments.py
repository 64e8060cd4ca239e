"""Cutting a job's frame range into segments of whole engine chunks.

The engine computes output frames ``[s, s + chunk)`` from input frames
``[s - overlap, s + chunk + overlap)``, with chunks laid from the start of its frame range.  A
segment that starts on the same chunk grid as the whole job and spans whole chunks therefore
runs exactly the chunks the single pass runs for its frames (its temporal context is read from
outside it), so its output is bit-identical to those frames of an uninterrupted run.  A segment
is the unit of progress, checkpointing (one committed file each) and distribution (one Dask
task each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from napari_vsr.errors import ParameterError

#: output frames a default segment aims at (rounded to whole chunks)
DEFAULT_SEGMENT_FRAMES = 48
#: a distributed job wants at least this many segments per worker (load balance, rescheduling)
SEGMENTS_PER_WORKER = 3


@dataclass(frozen=True)
class Segment:
    """Output frames ``[start, stop)`` of the source's time axis, committed as one unit."""

    index: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


def default_segment(chunk: int, total: int, workers: int = 1) -> int:
    """A sensible segment length in frames: whole chunks, about
    :data:`DEFAULT_SEGMENT_FRAMES`, and short enough to give each of ``workers`` workers
    :data:`SEGMENTS_PER_WORKER` segments when the range allows."""
    chunk = max(1, int(chunk))
    chunks = max(1, round(DEFAULT_SEGMENT_FRAMES / chunk))
    if workers > 1:
        total_chunks = math.ceil(total / chunk)
        chunks = max(1, min(chunks, total_chunks // (workers * SEGMENTS_PER_WORKER)))
    return chunks * chunk


def whole_chunks(segment: int, chunk: int) -> int:
    """``segment`` rounded up to whole chunks (a segment never splits an engine chunk)."""
    if segment < 1:
        raise ParameterError(f"--segment: expected at least 1 frame, got {segment}")
    return math.ceil(segment / chunk) * chunk


def plan_segments(start: int, stop: int, chunk: int, segment: int) -> list[Segment]:
    """Cut ``[start, stop)`` into segments of ``segment`` frames (a multiple of ``chunk``).

    Parameters
    ----------
    start, stop : int
        Half-open output frame range of the job.
    chunk : int
        The engine's chunk in frames (the same for every segment).
    segment : int
        Frames per segment; must be a whole number of chunks.  The last segment may be shorter.

    Returns
    -------
    list of Segment
        In order, covering the range without gaps.
    """
    if chunk < 1:
        raise ParameterError(f"chunk: expected at least 1 frame, got {chunk}")
    if segment < 1 or segment % chunk:
        raise ParameterError(
            f"segment: expected a whole number of {chunk}-frame chunks, got {segment} frames"
        )
    if not 0 <= start < stop:
        raise ParameterError(f"frame range: expected 0 <= start < stop, got {start}:{stop}")
    return [
        Segment(i, s, min(s + segment, stop))
        for i, s in enumerate(range(start, stop, segment))
    ]
