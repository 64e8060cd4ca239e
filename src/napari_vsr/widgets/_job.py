"""One enhancement run as a generator of events, executed in a napari thread worker.

No Qt here: the Enhance widget starts :func:`run_job` in a worker and reacts to what it yields
(in the main thread).  The job builds the enhancer, creates the result store, streams
:func:`napari_vsr.engine.enhance` into it and reports every finished frame.  It never raises
for a user-caused failure: cancel and errors come back as the :class:`JobEnd` it returns.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.engine import CancelToken, Progress, enhance, plan_output
from napari_vsr.errors import Cancelled, VsrError
from napari_vsr.placement import result_placement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRequest:
    """Everything one run needs, collected from the widget in the main thread.

    ``store_dir`` None keeps the result in memory (previews); else a new ``.zarr`` store is
    created in that folder.  ``frame_range`` is half-open, in source frames.
    """

    source: Any
    source_name: str
    rgb: bool
    method: str  # "classic" | "realbasicvsr"
    preset: str | None = None
    recipe: str | None = None
    weights_mode: str = "auto"  # "auto" (env, cache, download) | "download" | "file"
    weights_file: str | None = None
    device: str = "auto"
    precision: str = "auto"
    chunk: int | None = None
    overlap: int | None = None
    tile: int | None = None
    frame_range: tuple[int, int] = (0, 1)
    store_dir: str | None = None
    source_scale: tuple[float, ...] | None = None
    source_translate: tuple[float, ...] | None = None
    extra_metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobStarted:
    """Yielded once the enhancer and the store exist (before the first frame)."""

    store: Any  # zarr.Array or ndarray, (n_frames, ...) output layout
    store_path: str | None
    label: str  # e.g. "RealBasicVSR x4"
    scale: int
    metadata: dict


@dataclass(frozen=True)
class FrameDone:
    """Yielded after each result frame is written to the store."""

    index: int  # source frame index
    position: int  # index in the store
    progress: Progress | None


@dataclass(frozen=True)
class WeightsProgress:
    """Yielded while a checkpoint downloads (stage "downloading weights", unit "bytes")."""

    progress: Progress


@dataclass(frozen=True)
class JobEnd:
    """Returned when the run stops: ``status`` is "done", "cancelled" or "error"."""

    status: str
    message: str = ""
    frames_done: int = 0
    elapsed_s: float = 0.0


def default_store_dir() -> Path:
    """Folder for result stores: ``$NAPARI_VSR_CACHE_DIR/results`` or the user cache."""
    env = os.environ.get("NAPARI_VSR_CACHE_DIR")
    if env:
        return Path(env) / "results"
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-vsr")) / "results"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "result"


#: how method names read in layer names
DISPLAY_NAMES = {"realbasicvsr": "RealBasicVSR"}


def enhancer_label(enhancer) -> str:
    """Layer-name label of an enhancer: "RealBasicVSR x4", "classic:seed x4", "classic:denoise"."""
    name = DISPLAY_NAMES.get(enhancer.name, enhancer.name)
    return f"{name} x{enhancer.scale}" if enhancer.scale != 1 else name


def _resolve_weights(request: JobRequest, events: list, cancel: CancelToken) -> str | None:
    if request.method != "realbasicvsr":
        return None
    if request.weights_mode == "file":
        return request.weights_file
    if request.weights_mode == "download":
        from napari_vsr.models import weights as wm

        return os.fspath(
            wm.fetch(progress=lambda p: events.append(WeightsProgress(p)), cancel=cancel)
        )
    return None


def run_job(request: JobRequest, cancel: CancelToken) -> Iterator[Any]:
    """Run one enhancement; yields JobStarted, WeightsProgress, FrameDone; returns JobEnd."""
    from napari_vsr.enhancers import make_enhancer
    from napari_vsr.host_memory import check_in_memory_result, plan_enhancer_chunk

    t0 = time.perf_counter()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    done = 0
    store_path: str | None = None
    enhancer = None
    try:
        events: list = []
        weights = _resolve_weights(request, events, cancel)
        yield from events
        cancel.raise_if_cancelled()
        enhancer = make_enhancer(
            request.method, preset=request.preset, recipe=request.recipe, weights=weights,
            device=request.device, precision=request.precision,
        )
        start, stop = request.frame_range
        shape, dtype = plan_output(request.source.shape, request.source.dtype, enhancer,
                                   rgb=request.rgb)
        shape = (stop - start,) + tuple(shape[1:])
        label = enhancer_label(enhancer)
        metadata = _metadata(request, enhancer, started_at)
        metadata["layer"] = _layer_kwargs(request, enhancer.scale, label)
        # before any work: one frame and one chunk fit in memory (and an in-memory result)
        chunk = plan_enhancer_chunk(
            enhancer, request.source.shape, (request.source.shape[0],) + tuple(shape[1:]),
            rgb=request.rgb, chunk=request.chunk, overlap=request.overlap,
            source=request.source_name,
        )
        if request.store_dir is None:
            check_in_memory_result(shape, dtype, what="the preview")
            store = np.zeros(shape, dtype)
        else:
            from napari_vsr.io.zarr_store import create_result_store

            folder = Path(request.store_dir)  # created (and checked) by create_result_store
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            path = folder / f"{_slug(request.source_name)}-{_slug(label)}-{stamp}.zarr"
            store = create_result_store(path, shape, dtype, attrs={"napari_vsr": metadata})
            store_path = os.fspath(path)
            metadata["store_path"] = store_path
        yield JobStarted(store, store_path, label, enhancer.scale, metadata)

        latest: list[Progress] = []
        frames = enhance(
            request.source, enhancer, chunk=chunk, overlap=request.overlap,
            tile=request.tile, rgb=request.rgb, frame_range=(start, stop),
            progress=latest.append, cancel=cancel,
        )
        for index, frame in frames:
            store[index - start] = frame
            done += 1
            yield FrameDone(index, index - start, latest[-1] if latest else None)
        return JobEnd("done", frames_done=done, elapsed_s=time.perf_counter() - t0)
    except Cancelled:
        return JobEnd("cancelled", "cancelled by the user", done, time.perf_counter() - t0)
    except VsrError as exc:
        log.info("enhancement failed: %s", exc)
        return JobEnd("error", str(exc), done, time.perf_counter() - t0)
    except Exception as exc:  # a bug or a library failure: keep the traceback in the log
        log.exception("enhancement failed")
        return JobEnd("error", f"{type(exc).__name__}: {exc}", done, time.perf_counter() - t0)
    finally:
        if enhancer is not None:
            enhancer.close()


def _layer_kwargs(request: JobRequest, factor: int, label: str) -> dict:
    """napari layer keywords (name, rgb, frame-synced scale/translate), stored with the result."""
    ndim = len(request.source.shape) - (1 if request.rgb else 0)
    scale = request.source_scale or (1.0,) * ndim
    translate = request.source_translate or (0.0,) * ndim
    scale, translate = result_placement(scale, translate, factor,
                                        first_frame=request.frame_range[0])
    return {"name": f"{request.source_name} [{label}]", "rgb": request.rgb,
            "scale": list(scale), "translate": list(translate)}


def _metadata(request: JobRequest, enhancer, started_at: str) -> dict:
    described = enhancer.describe()
    md: dict[str, Any] = dict(request.extra_metadata)
    md.update(
        {
            "method": enhancer.name,
            "parameters": {
                **described,
                "chunk": request.chunk,
                "overlap": request.overlap,
                "tile": request.tile,
            },
            "source": request.source_name,
            "frame_range": list(request.frame_range),
            "weights_path": _str_or_none(getattr(enhancer, "weights_path", None)),
            "weights_sha256": getattr(enhancer, "weights_sha256", None),
            "device": _str_or_none(getattr(enhancer, "device", None)) or "cpu",
            "precision": _str_or_none(getattr(enhancer, "precision", None)),
            "timing": {"started": started_at},
            "partial": False,
        }
    )
    return md


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)
