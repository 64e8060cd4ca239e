"""The job runner: the one thing the CLI and the widgets call to enhance a source into a sink.

:func:`run_job` is a generator (so a napari thread worker can relay its events to the main
thread); :func:`run` drains it for callers that only want progress.  A job:

1. opens the source and checks the output before any work (never the input, never a user's
   folder, an unknown extension or an existing output without ``overwrite``);
2. finds an interrupted job of the same output in its state folder: refused without
   ``resume`` ("add --resume to continue or --overwrite to start over"), continued with it
   when its manifest matches this request (else refused, naming what differs);
3. builds the enhancer (weights download reported and cancellable), resolves the engine's
   chunk, overlap and tiles once, and cuts the frame range into segments of whole chunks;
4. computes the segments not yet committed, here or as Dask tasks, each committed to the
   state folder as it finishes (:mod:`napari_vsr.jobs.state`);
5. assembles the output from the committed segments in order (a video is encoded once, with
   the source's audio and subtitles trimmed to the range; stacks, stores and frame folders are
   written directly), then removes the state folder (unless ``keep_job``).

The runner owns the enhancer (closed when the job ends) and the sink.  Every sink gets the same
provenance record (:mod:`napari_vsr.jobs.metadata`).
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.errors import OutputExistsError, ParameterError, VsrError
from napari_vsr.jobs.assemble import Assembler
from napari_vsr.jobs.execute import iter_segment
from napari_vsr.jobs.manifest import build_manifest, mismatch
from napari_vsr.jobs.metadata import METADATA_KEY, SCHEMA, fps_text
from napari_vsr.jobs.progress import (
    STAGE_ENHANCING,
    STAGE_LOADING,
    CancelToken,
    Progress,
    RateClock,
)
from napari_vsr.jobs.request import JobRequest, parse_scheduler
from napari_vsr.jobs.saver import SegmentSaver
from napari_vsr.jobs.segments import Segment, default_segment, plan_segments, whole_chunks
from napari_vsr.jobs.source import (
    fingerprint,
    open_source,
    source_metadata,
    source_notes,
    source_rgb,
)
from napari_vsr.jobs.state import JobDir, default_job_dir

log = logging.getLogger(__name__)


class InterruptedJobError(OutputExistsError):
    """An interrupted job of the same output exists and neither resume nor overwrite was asked."""


class JobMismatchError(VsrError, ValueError):
    """``resume`` was asked but the stored job was made by a different command."""


# --- events -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobStarted:
    """Yielded once the enhancer, the plan and the sink exist (before any new frame).

    ``store`` is the live result array (a zarr store or, for a preview, a numpy array) when the
    sink is one, else None.  ``resumed`` segments were committed by an earlier run.
    """

    label: str
    scale: int
    n_frames: int
    frame_range: tuple[int, int]
    segments: int
    resumed: int
    job_dir: str | None
    output: str | None
    store: Any
    metadata: dict


@dataclass(frozen=True)
class FramesDone:
    """Frames ``[position, position + count)`` of the result (source frames ``index``...) are
    in the live store (per frame when computed here; per segment otherwise)."""

    index: int
    position: int
    count: int


@dataclass(frozen=True)
class SegmentDone:
    """A segment was committed: ``computed`` here or by a worker, or reused from a resume."""

    index: int
    start: int
    stop: int
    computed: bool
    worker: str | None = None


@dataclass(frozen=True)
class JobWarning:
    """Something the user should read (e.g. a frame range clipped to the source)."""

    message: str


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_job` returns when the output is complete."""

    output: str | None
    frames: int
    segments_computed: int
    segments_reused: int
    elapsed_s: float
    metadata: dict
    store: Any = None
    replaced_frames: list[int] = field(default_factory=list)


JobEvent = JobStarted | FramesDone | SegmentDone | JobWarning | Progress

#: how method names read in layer names
DISPLAY_NAMES = {"realbasicvsr": "RealBasicVSR"}


def enhancer_label(name: str, scale: int) -> str:
    """Layer-name label of an enhancer: "RealBasicVSR x4", "classic:seed x4", "classic:denoise"."""
    shown = DISPLAY_NAMES.get(name, name)
    return f"{shown} x{scale}" if scale != 1 else shown


# --- planning -----------------------------------------------------------------------------------
def _frame_range(request: JobRequest, n: int, warnings: list[str]) -> tuple[int, int]:
    rng = request.frame_range
    start = 0 if rng is None or rng[0] is None else int(rng[0])
    stop = n if rng is None or rng[1] is None else min(int(rng[1]), n)
    name = request.source_path or request.name()
    if not 0 <= start < stop:
        shown = f"{'' if rng[0] is None else rng[0]}:{'' if rng[1] is None else rng[1]}"
        raise ParameterError(f"--frames: {shown!r} selects no frames of the {n} in {name}")
    if rng is not None and rng[1] is not None and int(rng[1]) > n:
        warnings.append(f"--frames {rng[0] if rng[0] is not None else ''}:{rng[1]}: {name} has "
                        f"only {n} frames; enhancing frames {start}:{stop}")
    return start, stop


def _frame_size(shape: tuple[int, ...], rgb: bool) -> tuple[int, int]:
    return (shape[-3], shape[-2]) if rgb else (shape[-2], shape[-1])


def _check_output(request: JobRequest, source, rgb: bool) -> str | None:
    """The output's writer kind, after the checks made before any work."""
    if request.output is None:
        return None
    from napari_vsr.io import writer_kind
    from napari_vsr.io.writer_base import check_not_input, check_target

    out = Path(request.output)
    kind = writer_kind(out)
    if (out.exists() or out.is_symlink()) and not request.overwrite:
        raise OutputExistsError("already exists; add --overwrite to replace it", path=out)
    if request.source_path is not None:
        check_not_input(out, request.source_path)
    check_target(out, overwrite=request.overwrite, folder=kind in ("frames", "zarr"))
    shape = tuple(np.shape(source))
    if kind in ("video", "frames") and len(shape) > (4 if rgb else 3):
        axes = source_metadata(source).get("axes") or shape
        raise ParameterError(
            f"{out}: a {kind} output holds (H, W) or RGB(A) frames, but "
            f"{request.source_path or request.name()} has axes {axes}; write a .tif or .zarr to "
            "keep them"
        )
    return kind


def _file_sha256(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _existing_job(request: JobRequest, job: JobDir | None, warnings: list[str]
                  ) -> dict | None:
    """The stored manifest of an interrupted job of this output (after the overwrite/resume
    rules), or None to start a fresh job."""
    if job is None or not job.exists():
        if request.resume and job is not None:
            warnings.append(f"--resume: no interrupted job in {job.path}; starting a new one")
        return None
    if request.overwrite and not request.resume:
        log.info("--overwrite: removing the interrupted job in %s", job.path)
        job.remove()
        return None
    stored = job.read_manifest()
    done = len([p for p in job.path.glob("segment-*.npy")])
    total = len(stored.get("segments", []))
    if not request.resume:
        raise InterruptedJobError(
            f"an interrupted job of this output exists in {job.path} ({done} of {total} "
            "segments done); add --resume to continue or --overwrite to start over",
            path=request.output,
        )
    return stored


# --- sinks --------------------------------------------------------------------------------------
class _LiveSink:
    """A result array filled as frames finish: a new (or reopened) zarr store, or in memory."""

    def __init__(self, path: str | None, shape, dtype, metadata: dict, *, reopen: bool,
                 overwrite: bool):
        self.path = path
        if path is None:
            from napari_vsr.host_memory import check_in_memory_result

            check_in_memory_result(shape, dtype, what="the preview")
            self.store = np.zeros(shape, dtype)
            return
        from napari_vsr.io.zarr_store import create_result_store, open_result_store

        attrs = {METADATA_KEY: metadata, "fps": metadata.get("fps_float")}
        if reopen and Path(path).exists():
            store = open_result_store(path, mode="r+")
            if tuple(store.shape) != tuple(shape) or store.dtype != np.dtype(dtype):
                raise ParameterError(
                    f"{path}: the result store holds {store.shape} {store.dtype}, the job "
                    f"makes {tuple(shape)} {np.dtype(dtype)}"
                )
            store.attrs.update(_jsonable(attrs))
            self.store = store
        else:
            self.store = create_result_store(path, shape, dtype, attrs=attrs,
                                             overwrite=overwrite or reopen)

    def put(self, position: int, frames: np.ndarray) -> None:
        self.store[position : position + len(frames)] = frames

    def finish(self, metadata: dict) -> None:
        if self.path is not None:
            self.store.attrs.update(_jsonable({METADATA_KEY: metadata}))


def _jsonable(doc):
    from napari_vsr.io.zarr_store import _jsonable as convert

    return convert(doc)


def _open_file_writer(request: JobRequest, kind: str, source, fps, start: int, stop: int,
                      metadata: dict):
    """The output's Writer: the request's video options plus what the source gives (colour
    tags, frame times, audio/subtitles trimmed to the frame range); a job on a CUDA device
    prefers NVENC when no codec is asked for (the writer falls back to software, noted)."""
    from napari_vsr.io import VideoOptions, open_writer
    from napari_vsr.io.color import source_color_tags

    meta = source_metadata(source)
    video = request.video or VideoOptions()
    if kind == "video":
        extra: dict[str, Any] = dict(source_color_tags(meta))
        if hasattr(source, "frame_times"):
            extra["frame_times"] = np.asarray(source.frame_times(), np.float64)[start:stop]
        streams = meta.get("has_audio") or meta.get("has_subtitles")
        if meta.get("kind") == "video" and streams and not request.no_audio:
            extra["copy_streams_from"] = request.source_path
        extra["prefer_hardware"] = str(metadata.get("device", "")).startswith("cuda")
        video = replace(video, **extra)
    return open_writer(request.output, fps=fps, overwrite=request.overwrite,
                       metadata=_writer_metadata(source, metadata), video=video)


def _writer_metadata(source, metadata: dict) -> dict:
    """What a file output stores: the provenance record, plus the source's axes and channel
    names (kept by stacks)."""
    meta = source_metadata(source)
    return {METADATA_KEY: metadata,
            **{k: meta[k] for k in ("axes", "channel_names") if meta.get(k)}}


def _encode_depth(frame_shape, dtype, chunk: int) -> int:
    """Frames the writer's thread may lag behind: about a chunk, at most ~256 MB of frames."""
    frame_bytes = max(1, int(np.prod(frame_shape)) * np.dtype(dtype).itemsize)
    return int(max(2, min(chunk, (256 << 20) // frame_bytes)))


# --- the job ------------------------------------------------------------------------------------
def run_job(request: JobRequest, cancel: CancelToken | None = None, *,
            progress: Callable[[Progress], None] | None = None) -> Iterator[JobEvent]:
    """Run a job; yields :data:`JobEvent` records and returns a :class:`JobResult`.

    Parameters
    ----------
    request : JobRequest
    cancel : CancelToken, optional
        Checked at least once per frame (and per block of a weights download).
    progress : callable, optional
        Receives every :class:`Progress` as it happens, in the job's thread (within a chunk:
        after every finished frame), instead of the generator yielding it.  A widget passes a
        thread-safe signal here; without it progress records are yielded between frames.

    Raises
    ------
    Cancelled
        ``cancel`` was set (committed segments stay in the state folder).
    VsrError
        Any user-facing failure (bad input, output exists, interrupted job, mismatch, ...).
    """
    gen = _job_events(request, cancel or CancelToken(), progress)
    if progress is None:
        return (yield from gen)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Progress):
            progress(event)
        else:
            yield event


def _job_events(request: JobRequest, cancel: CancelToken, direct) -> Iterator[JobEvent]:
    """The body of :func:`run_job` (``direct``: its progress callback, or None)."""
    t0 = time.perf_counter()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    warnings: list[str] = []
    own_source = request.source_path is not None
    source = (open_source(request.source_path, skip_bad_frames=request.skip_bad_frames,
                          hwaccel=request.hwaccel)
              if own_source else request.source)
    enhancer = None
    created_job: JobDir | None = None  # removed again if the run fails before any commit
    job: JobDir | None = None
    try:
        for note in source_notes(source):
            yield JobWarning(note)
        shape = tuple(int(s) for s in np.shape(source))
        rgb = source_rgb(source, request.rgb)
        start, stop = _frame_range(request, shape[0], warnings)
        for message in warnings:
            yield JobWarning(message)
        kind = _check_output(request, source, rgb)
        live = request.output is None or (kind == "zarr" and request.live)
        if request.durable and request.output is not None:
            job = JobDir(request.job_dir or default_job_dir(request.output))
        if job is not None and not job.exists():
            job.check_usable()  # never a user's folder (it is deleted when the job ends)
        if job is not None and job.path.is_dir():
            job.lock()  # never two drivers on one job (a killed one holds nothing)
        resume_notes: list[str] = []
        stored = _existing_job(request, job, resume_notes)
        for message in resume_notes:
            yield JobWarning(message)
        scheduler_text = request.scheduler or os.environ.get("NAPARI_VSR_SCHEDULER")
        scheduler = parse_scheduler(scheduler_text)
        if scheduler is not None and not own_source:
            raise ParameterError("--scheduler: a distributed job needs a source file that "
                                 "the workers can open, not an in-memory layer")
        if scheduler is not None and job is None:
            raise ParameterError("--scheduler: a distributed job needs an output and its job "
                                 "folder on a filesystem the workers share")

        # the enhancer: built once here (weights downloaded with live progress)
        cancel.raise_if_cancelled()
        yield RateClock(None, stage=STAGE_LOADING).progress(0)
        method = request.method.resolved()
        enhancer = yield from _build_enhancer(method, _frame_size(shape, rgb), cancel)
        cancel.raise_if_cancelled()
        plan = _resolve_engine(enhancer, source, shape, rgb, request, stored)
        n_frames = stop - start
        workers = _expected_workers(scheduler)
        if request.segment is not None:
            seg_len = whole_chunks(int(request.segment), plan["chunk"])
        elif stored is not None:
            seg_len = int(stored["segment"])
        else:
            seg_len = default_segment(plan["chunk"], n_frames, workers)
        segments = plan_segments(start, stop, plan["chunk"], seg_len)
        described = enhancer.describe()
        out_shape, out_dtype = plan.pop("out_shape"), plan.pop("out_dtype")
        frame_shape = tuple(out_shape[1:])
        manifest = build_manifest(
            source={"path": request.source_path, "name": request.name(),
                    "fingerprint": fingerprint(source, request.source_path),
                    "skip_bad_frames": bool(request.skip_bad_frames)},
            frames=(start, stop),
            method=method.to_dict(),
            recipe_sha256=_file_sha256(method.recipe),
            weights_sha256=described.get("weights_sha256"),
            precision=described.get("precision"),
            device_type=str(described.get("device", "cpu")).split(":")[0],
            parameters=described,
            engine={**plan, "rgb": rgb, "frame_size": list(_frame_size(shape, rgb))},
            segment=seg_len,
            segments=segments,
            output={"path": os.path.abspath(request.output) if request.output else None,
                    "kind": kind, "frame_shape": list(frame_shape), "dtype": str(out_dtype)},
        )
        # how workers decode the source (not compared on resume: decoding is bit-exact)
        manifest["decode"] = {"hwaccel": request.hwaccel}
        if stored is not None:
            why = mismatch(stored, manifest)
            if why is not None:
                raise JobMismatchError(
                    f"--resume: the interrupted job in {job.path} does not match this command "
                    f"or its input ({why}); run its command again, or use --overwrite to start "
                    "over", path=request.output,
                )
            manifest = stored
            job.sweep()
            done = job.committed(segments, frame_shape, out_dtype)
        else:
            done = set()

        label = enhancer_label(enhancer.name, enhancer.scale)
        fps = _source_fps(source)
        if fps is None:  # an array source: the frame rate its caller knows (a layer's metadata)
            from napari_vsr.io.fps import fps_of_metadata

            fps = fps_of_metadata(request.extra_metadata)
        metadata = _provenance(request, enhancer, described, method, manifest, fps, start, stop,
                               rgb, label, started_at, job)
        sink = None
        if live:
            sink = _LiveSink(
                None if request.output is None else os.fspath(request.output),
                (n_frames, *frame_shape), out_dtype, metadata,
                reopen=stored is not None, overwrite=request.overwrite,
            )
        elif kind is not None:
            # every check a writer makes before any work (codec, size, space), then let go
            writer = _open_file_writer(request, kind, source, fps, start, stop, metadata)
            try:
                writer.preflight(frame_shape, out_dtype, n_frames)
            finally:
                writer.abort()
            for note in getattr(writer, "notes", ()):  # only video writers have notes
                yield JobWarning(note)
        if job is not None and stored is None:
            job.create(manifest)
            job.lock()
            created_job = job
        yield JobStarted(label, enhancer.scale, n_frames, (start, stop), len(segments), len(done),
                         None if job is None else os.fspath(job.path),
                         None if request.output is None else os.fspath(request.output),
                         None if sink is None else sink.store, metadata)

        # segments committed before: into the live store; counted as done
        pending = [s for s in segments if s.index not in done]
        done_frames = sum(s.length for s in segments if s.index in done)
        for seg in segments:
            if seg.index in done:
                if sink is not None:
                    sink.put(seg.start - start, job.load(seg))
                    yield FramesDone(seg.start, seg.start - start, seg.length)
                yield SegmentDone(seg.index, seg.start, seg.stop, computed=False)
        clock = RateClock(n_frames, stage=STAGE_ENHANCING, start_done=done_frames)
        yield clock.progress(done_frames, segments_done=len(done), segments_total=len(segments))
        computed = 0
        committed = set(done)  # segment indices in the job folder (grows as they finish)
        assembler = None
        if sink is None and kind is not None:
            # the file output is written while the segments are computed: frames of the
            # segment computed here as they come, other segments from the job folder in turn
            file_md = {k: v for k, v in metadata.items() if k != "job_dir"} | {"partial": False}
            assembler = Assembler(
                _open_file_writer(request, kind, source, fps, start, stop, file_md),
                segments, job, overlapped=not request.engine.serial,
                depth=_encode_depth(frame_shape, out_dtype, plan["chunk"]))
        if scheduler is None:
            events = _run_here(source, enhancer, manifest, pending, job, sink, cancel, clock,
                               done_frames, len(done), len(segments), start, direct,
                               assembler, committed, serial=request.engine.serial)
        else:
            from napari_vsr.jobs.distributed import run_distributed

            events = _relay_distributed(
                run_distributed(job, pending, scheduler_text, cancel=cancel),
                job, sink, clock, done_frames, len(done), len(segments), start,
                assembler, committed, cancel)
        try:
            for event in events:
                if isinstance(event, SegmentDone) and event.computed:
                    computed += 1
                yield event

            elapsed = time.perf_counter() - t0
            metadata["timing"].update(
                finished=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                elapsed_s=round(elapsed, 3), segments_computed=computed,
                segments_reused=len(done))
            metadata["partial"] = False
            metadata.pop("job_dir", None)
            if sink is not None:
                sink.finish(metadata)
            elif assembler is not None:  # the rest of the output, then the file appears
                assembler.writer.update_metadata(_writer_metadata(source, metadata))
                yield from assembler.finish(lambda seg: seg.index in committed, cancel=cancel)
        except BaseException:
            if assembler is not None:
                assembler.abort()  # no partial output; the segments stay for --resume
            raise
        if job is not None and not request.keep_job:
            job.remove()
        replaced = list(getattr(source, "replaced_frames", None) or [])
        return JobResult(None if request.output is None else os.fspath(request.output),
                         n_frames, computed, len(done), time.perf_counter() - t0, metadata,
                         None if sink is None else sink.store, replaced)
    except BaseException:
        # nothing to resume: leave nothing behind (a live store stays as a partial result,
        # with its job folder, until its owner discards both)
        if (created_job is not None and not request.live
                and not any(created_job.path.glob("segment-*.npy"))):
            created_job.remove()
        raise
    finally:
        if job is not None:
            job.unlock()
        if enhancer is not None:
            enhancer.close()
        if own_source:
            close = getattr(source, "close", None)
            if close is not None:
                close()


def _expected_workers(scheduler) -> int:
    """How many workers a default segment length plans for: N for ``local:N``, the cores (or
    GPUs) for a bare ``local``, a few for a remote cluster (its size is not known up front)."""
    if scheduler is None:
        return 1
    if scheduler[0] == "local":
        return int(scheduler[1]) or max(1, os.cpu_count() or 1)
    return 4


def _build_enhancer(method, frame_size, cancel: CancelToken):
    """Build the enhancer in a helper thread, yielding its download progress as it comes (a
    checkpoint download can take minutes; the token stops it)."""
    events: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}

    def build() -> None:
        try:
            box["enhancer"] = method.build(frame_size=frame_size, progress=events.put,
                                           cancel=cancel)
        except BaseException as exc:  # re-raised in the job's thread
            box["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=build, name="napari-vsr-build", daemon=True)
    thread.start()
    try:
        while True:
            event = events.get()
            if event is None:
                break
            yield event
    except BaseException:
        cancel.cancel()  # the job was closed or interrupted: stop the download too
        thread.join()
        enhancer = box.get("enhancer")
        if enhancer is not None:
            enhancer.close()
        raise
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["enhancer"]


def _resolve_engine(enhancer, source, shape, rgb, request: JobRequest, stored) -> dict:
    """Chunk, overlap and tiles resolved once for every segment (a resumed job keeps its own
    where the request leaves them open)."""
    from napari_vsr.engine import plan_output, resolve_batch, resolve_chunk, resolve_tile
    from napari_vsr.host_memory import plan_enhancer_chunk

    opts = request.engine
    old = (stored or {}).get("engine", {})
    caps_overlap = enhancer.capabilities.default_overlap
    overlap = opts.overlap if opts.overlap is not None else old.get("overlap", caps_overlap)
    out_shape, out_dtype = plan_output(shape, source.dtype, enhancer, rgb=rgb)
    chunk = opts.chunk if opts.chunk is not None else old.get("chunk")
    if chunk is None:
        chunk = plan_enhancer_chunk(enhancer, shape, out_shape, rgb=rgb, chunk=None,
                                    overlap=overlap, source=request.source_path)
        if chunk is None:
            chunk = resolve_chunk(enhancer, shape, overlap, rgb=rgb)
    else:
        plan_enhancer_chunk(enhancer, shape, out_shape, rgb=rgb, chunk=chunk, overlap=overlap,
                            source=request.source_path)
    tile = opts.tile if opts.tile is not None else old.get("tile")
    if tile is None:  # chosen here once (from this device's free memory) for every segment
        tile = resolve_tile(enhancer, shape, int(chunk), int(overlap), rgb=rgb)
    tile_overlap = opts.tile_overlap if opts.tile_overlap is not None else old.get(
        "tile_overlap")
    batch = opts.batch if opts.batch is not None else old.get("batch")
    if batch is None:  # like the tiles: chosen once, batched arithmetic may round differently
        batch = resolve_batch(enhancer, shape, int(chunk), int(overlap), int(tile or 0), rgb=rgb)
    batch = max(1, min(int(batch), enhancer.capabilities.max_batch))
    return {"chunk": int(chunk), "overlap": int(overlap), "tile": tile,
            "tile_overlap": tile_overlap, "batch": batch, "out_shape": out_shape,
            "out_dtype": out_dtype}


def _source_fps(source):
    from napari_vsr.io.fps import fps_of_metadata

    return fps_of_metadata(source_metadata(source))


def _provenance(request: JobRequest, enhancer, described, method, manifest, fps, start, stop,
                rgb, label, started_at, job) -> dict:
    from napari_vsr.placement import result_placement

    shape = manifest["source"]["fingerprint"]["shape"]
    ndim = len(shape) - (1 if rgb else 0)
    scale = request.placement.scale or (1.0,) * ndim
    translate = request.placement.translate or (0.0,) * ndim
    scale, translate = result_placement(scale, translate, enhancer.scale, first_frame=start)
    md: dict[str, Any] = dict(request.extra_metadata)
    md.update({
        "schema": SCHEMA,
        "source": {"path": request.source_path, "name": request.name()},
        "frame_range": [start, stop],
        "fps": fps_text(fps),
        "fps_float": None if fps is None else float(fps),
        "method": enhancer.name,
        "parameters": described,
        "options": method.to_dict(),
        "weights_sha256": described.get("weights_sha256"),
        "device": str(described.get("device", "cpu")),
        "precision": described.get("precision"),
        "engine": {k: manifest["engine"].get(k) for k in ("chunk", "overlap", "tile",
                                                          "tile_overlap", "batch")}
        | {"segment": manifest["segment"]},
        "timing": {"started": started_at},
        "layer": {"name": f"{request.name()} [{label}]", "rgb": rgb, "scale": list(scale),
                  "translate": list(translate)},
        "partial": True,
        "job_dir": None if job is None else os.fspath(job.path),
    })
    return md


def _run_here(source, enhancer, manifest, pending: list[Segment], job, sink, cancel, clock,
              done_frames: int, segs_done: int, segs_total: int, start: int, direct,
              assembler: Assembler | None, committed: set[int], *, serial: bool = False
              ) -> Iterator[JobEvent]:
    """Compute the pending segments in this process.

    The engine reports every finished frame (inside a chunk too); those records go to
    ``direct`` at once when given, else they are yielded with the frames.  Each frame also
    goes to the live store or, through ``assembler``, to the file output, and to the job
    folder: in a saver thread of its own (:class:`~napari_vsr.jobs.saver.SegmentSaver`), so
    that the disk never holds up the engine or the encoder, or in this thread with ``serial``.
    A segment counts as done (``SegmentDone``) once it is committed.
    """
    events: collections.deque[JobEvent] = collections.deque()  # filled by other threads
    state = {"frames": done_frames, "segments": segs_done}

    def emit(record: Progress | None = None) -> None:
        record = record or clock.progress(state["frames"], segments_done=state["segments"],
                                          segments_total=segs_total)
        if direct is not None:
            direct(record)
        else:
            events.append(record)

    def flush() -> Iterator[JobEvent]:
        while events:
            yield events.popleft()

    def on_commit(seg: Segment) -> None:  # in the saver's thread (or this one)
        committed.add(seg.index)
        state["segments"] += 1
        events.append(SegmentDone(seg.index, seg.start, seg.stop, computed=True))
        emit()

    def is_committed(seg: Segment) -> bool:
        return seg.index in committed

    out = manifest["output"]
    saver = None
    if job is not None and not serial:
        saver = SegmentSaver(job, tuple(out["frame_shape"]), out["dtype"], on_commit,
                             depth=int(manifest["engine"]["chunk"]))
    before = done_frames  # frames finished before the current segment
    try:
        for seg in pending:
            cancel.raise_if_cancelled()
            streaming = False
            if assembler is not None:
                assembler.catch_up(is_committed, upto=seg.index, cancel=cancel)
                streaming = assembler.begin(seg)

            def on_progress(p: Progress, base=before) -> None:
                state["frames"] = base + p.done
                emit(clock.progress(base + p.done, message=p.message,
                                    segments_done=state["segments"], segments_total=segs_total))

            frames = iter_segment(source, enhancer, manifest, seg,
                                  None if saver is not None else job, progress=on_progress,
                                  cancel=cancel, serial=serial)
            if saver is not None:
                saver.begin(seg)
            for index, frame in frames:
                if sink is not None:
                    sink.put(index - start, frame[None])
                    yield from flush()
                    yield FramesDone(index, index - start, 1)
                if saver is not None:
                    saver.put(frame)
                if streaming:
                    assembler.put(frame)
                yield from flush()
            if saver is not None:
                saver.commit(seg)
            elif job is not None:
                on_commit(seg)  # iter_segment committed it
            else:
                committed.add(seg.index)
                state["segments"] += 1
                events.append(SegmentDone(seg.index, seg.start, seg.stop, computed=True))
            if streaming:
                assembler.end(seg)
            before += seg.length
            state["frames"] = before
            yield from flush()
        if saver is not None:
            saver.close()  # every segment committed
            saver = None
        yield from flush()
    finally:
        if saver is not None:
            saver.abort()


def _relay_distributed(results, job: JobDir, sink, clock, done_frames, segs_done, segs_total,
                       start, assembler: Assembler | None, committed: set[int], cancel
                       ) -> Iterator[JobEvent]:
    """Turn the distributed driver's finished segments into job events (and write the file
    output as far as the finished segments reach)."""
    for seg, info in results:
        done_frames += seg.length
        segs_done += 1
        committed.add(seg.index)
        if sink is not None:
            sink.put(seg.start - start, job.load(seg))
            yield FramesDone(seg.start, seg.start - start, seg.length)
        if assembler is not None:
            assembler.catch_up(lambda s: s.index in committed, cancel=cancel)
        # a pending segment was computed in this job, also when its task was rerun after
        # the worker that committed it died (the rerun finds the file and says "not computed")
        yield SegmentDone(seg.index, seg.start, seg.stop, computed=True,
                          worker=info.get("worker"))
        yield clock.progress(done_frames, segments_done=segs_done, segments_total=segs_total)


def run(request: JobRequest, *, progress: Callable[[Progress], None] | None = None,
        cancel: CancelToken | None = None,
        on_event: Callable[[JobEvent], None] | None = None) -> JobResult:
    """Run a job to the end (the CLI's way): progress records to ``progress``, every event to
    ``on_event``; returns the :class:`JobResult`."""
    def both(p: Progress) -> None:
        if progress is not None:
            progress(p)
        if on_event is not None:
            on_event(p)

    gen = run_job(request, cancel, progress=both)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
