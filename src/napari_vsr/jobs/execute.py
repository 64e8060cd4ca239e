"""Computing one segment: the same function here and in a Dask worker process.

:func:`compute_segment` runs the engine over a segment's frames (reading its temporal context
from outside it) with the job's resolved parameters and writes the frames into the segment's
file, committed atomically when complete.  :func:`segment_task` is the task a Dask worker runs:
it reads the manifest from the shared job folder, opens the source and keeps one enhancer per
worker process (weights loaded once, not per task).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from napari_vsr.jobs.progress import CancelToken, Progress
from napari_vsr.jobs.segments import Segment
from napari_vsr.jobs.state import JobDir, JobStateError

log = logging.getLogger(__name__)


def iter_segment(
    source,
    enhancer,
    manifest: dict[str, Any],
    segment: Segment,
    job: JobDir | None,
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    still_current: Callable[[], bool] | None = None,
    serial: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Enhance the frames of ``segment``, yielding ``(source index, frame)`` in order, and
    commit them to ``job`` when the last one is written.

    Parameters
    ----------
    source : array-like, (T, ...)
        The job's source.
    enhancer : Enhancer
        Built from the manifest's method (not closed here: the caller owns it).
    manifest : dict
        The job's manifest: engine parameters, output frame shape and dtype.
    segment : Segment
    job : JobDir or None
        Where the segment is committed; None keeps nothing (an in-memory preview).
    progress : callable, optional
        The engine's per-frame :class:`Progress` within the segment.
    cancel : CancelToken, optional
    still_current : callable, optional
        Asked just before the commit; False discards the frames (the job folder was given to
        another job meanwhile).
    serial : bool
        Run the engine's stages one after another in this thread (see
        :func:`~napari_vsr.engine.enhance`); the frames are the same.

    Yields
    ------
    index : int
    frame : ndarray, the output frame shape and dtype of the manifest
        The segment file is committed (atomically, fsynced) after the last frame; a generator
        closed or failing before that leaves no file.
    """
    from napari_vsr.engine import enhance

    eng = manifest["engine"]
    out = manifest["output"]
    frames = enhance(
        source,
        enhancer,
        chunk=eng["chunk"],
        overlap=eng["overlap"],
        tile=eng["tile"],
        tile_overlap=eng["tile_overlap"],
        batch=eng.get("batch", 1),
        serial=serial,
        rgb=eng["rgb"],
        frame_range=(segment.start, segment.stop),
        progress=progress,
        cancel=cancel,
    )
    if job is None:
        yield from frames
        return
    with job.segment_writer(segment, tuple(out["frame_shape"]), out["dtype"]) as part:
        for index, frame in frames:
            part.write(frame)
            yield index, frame
        if still_current is not None and not still_current():
            log.warning("segment %d: the job folder %s now holds another job; not committed",
                        segment.index, job.path)
            part.discard()
            return
        part.commit()


def compute_segment(source, enhancer, manifest: dict[str, Any], segment: Segment, job: JobDir,
                    *, progress=None, cancel: CancelToken | None = None,
                    still_current: Callable[[], bool] | None = None) -> None:
    """:func:`iter_segment` run to its end: the segment is committed to ``job``."""
    for _ in iter_segment(source, enhancer, manifest, segment, job, progress=progress,
                          cancel=cancel, still_current=still_current):
        pass


# --- the Dask task ------------------------------------------------------------------------------
_worker_lock = threading.Lock()
_worker_state: dict[str, Any] = {}


def _apply_thread_share() -> None:
    """A worker started by a local cluster gets its share of the cores in
    ``$NAPARI_VSR_THREADS``: apply it to PyTorch and OpenCV as well (PyTorch may have been
    imported, with another count, before the variable was read)."""
    share = os.environ.get("NAPARI_VSR_THREADS", "").strip()
    if not share.isdigit() or int(share) < 1 or _worker_state.get("threads") == share:
        return
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(share))
    import cv2

    cv2.setNumThreads(int(share))
    _worker_state["threads"] = share


def _worker_enhancer(method: dict[str, Any], frame_size):
    """One enhancer per worker process and method (weights loaded once)."""
    import json

    from napari_vsr.jobs.request import MethodOptions

    key = json.dumps(method, sort_keys=True)
    cached = _worker_state.get("enhancer")
    if cached is not None and cached[0] == key:
        return cached[1]
    if cached is not None:
        cached[1].close()
    enhancer = MethodOptions.from_dict(method).build(frame_size=frame_size)
    _worker_state.pop("threads", None)  # the network may have imported torch just now
    _apply_thread_share()
    _worker_state["enhancer"] = (key, enhancer)
    return enhancer


def _worker_source(manifest: dict[str, Any]):
    from napari_vsr.jobs.source import open_source

    src = manifest["source"]
    hwaccel = (manifest.get("decode") or {}).get("hwaccel")
    key = (src["path"], bool(src.get("skip_bad_frames")), hwaccel)
    cached = _worker_state.get("source")
    if cached is not None and cached[0] == key:
        return cached[1]
    source = open_source(src["path"], skip_bad_frames=key[1], hwaccel=hwaccel)
    _worker_state["source"] = (key, source)
    return source


def segment_task(job_dir: str, index: int, job_id: str | None = None) -> dict[str, Any]:
    """Compute and commit segment ``index`` of the job in ``job_dir`` (a Dask task).

    Safe to run twice (a rescheduled task whose first run committed already returns at once)
    and in parallel with other segments of the same job.  With ``job_id`` (the manifest's),
    a task whose job folder was meanwhile given to another job computes and commits nothing
    (``"stale": True`` in the result).

    Returns
    -------
    dict
        ``{"index", "frames", "elapsed_s", "computed", "pid", "device"}``.
    """
    from napari_vsr.jobs.manifest import manifest_segments

    t0 = time.perf_counter()
    job = JobDir(job_dir)
    manifest = job.read_manifest()
    segment = manifest_segments(manifest)[index]
    out = manifest["output"]
    result = {"index": index, "frames": segment.length, "pid": os.getpid(), "computed": False}

    def still_current() -> bool:
        if job_id is None:
            return True
        try:
            return job.read_manifest().get("job_id") == job_id
        except JobStateError:
            return False

    if not still_current():
        result.update(elapsed_s=0.0, device=None, stale=True)
        return result
    if job.is_committed(segment, tuple(out["frame_shape"]), out["dtype"]):
        result.update(elapsed_s=0.0, device=None)
        return result
    with _worker_lock:  # one segment at a time per process: the enhancer is not re-entrant
        _apply_thread_share()
        source = _worker_source(manifest)
        enhancer = _worker_enhancer(manifest["method"], tuple(manifest["engine"]["frame_size"]))
        compute_segment(source, enhancer, manifest, segment, job, still_current=still_current)
    device = enhancer.describe().get("device")
    result.update(elapsed_s=time.perf_counter() - t0, computed=True, device=device)
    log.info("segment %d (%d frames) done in %.1f s", index, segment.length, result["elapsed_s"])
    return result
