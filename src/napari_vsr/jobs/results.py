"""Result stores: where the Enhance widget puts them, how a store is recognised, described and
resumed.  No Qt: the widget, the napari reader and ``napari-vsr info`` call these.

A *result store* is a ``.zarr`` folder napari-vsr wrote (it holds the marker
``.napari-vsr-output``) whose array carries the provenance record of
:mod:`napari_vsr.jobs.metadata` under ``napari_vsr`` (the CLI's ``enhance -o x.zarr`` and the
widget's runs make them).  While its job runs, or after the job was interrupted, the record
says ``partial`` and names the job's state folder (``job_dir``), from which the job resumes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.jobs.metadata import METADATA_KEY, result_fps, result_layer, result_metadata
from napari_vsr.jobs.request import EngineOptions, JobRequest, MethodOptions, Placement


def default_store_dir() -> Path:
    """Folder for the widget's result stores: ``$NAPARI_VSR_CACHE_DIR/results`` or the user
    cache's ``results``."""
    env = os.environ.get("NAPARI_VSR_CACHE_DIR")
    if env:
        return Path(env) / "results"
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-vsr")) / "results"


def slug(text: str) -> str:
    """``text`` reduced to a safe file-name part ("clip [x4]" -> "clip-x4")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "result"


def new_store_path(folder: str | os.PathLike, source_name: str, label: str) -> Path:
    """``<folder>/<slug(source)>-<slug(label)>-<timestamp>.zarr``, a fresh name per run."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(folder) / f"{slug(source_name)}-{slug(label)}-{stamp}.zarr"


def _zarr_attrs(path: Path) -> dict[str, Any] | None:
    """The array attributes of a zarr folder read from its JSON (zarr 3 or 2), or None."""
    meta = path / "zarr.json"
    try:
        if meta.is_file():
            doc = json.loads(meta.read_text())
            if doc.get("node_type") != "array":
                return None
            return dict(doc.get("attributes") or {})
        if (path / ".zarray").is_file():
            attrs = path / ".zattrs"
            return json.loads(attrs.read_text()) if attrs.is_file() else {}
    except (OSError, ValueError, AttributeError):
        return None
    return None


def is_result_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a napari-vsr result store (cheap: reads two small files; never
    raises)."""
    try:
        from napari_vsr.io.writer_base import is_own_folder

        p = Path(os.fspath(path).rstrip("/\\"))
        if p.suffix.lower() != ".zarr" or not p.is_dir() or not is_own_folder(p):
            return False
        return result_metadata(_zarr_attrs(p)) is not None
    except (OSError, TypeError, ValueError):
        return False


def open_result(path: str | os.PathLike, *, mode: str = "r"):
    """The store's zarr array and its provenance record ({} when it has none)."""
    from napari_vsr.io.zarr_store import open_result_store

    store = open_result_store(path, mode=mode)
    return store, dict(result_metadata(dict(store.attrs)) or {})


def contrast_limits(dtype) -> list[float]:
    """Display range of a dtype, so napari never scans a large store to guess one: the full
    integer range, or [0, 1] for floats (the project's float convention)."""
    from napari_vsr.dtype_range import full_scale

    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        return [0, int(full_scale(dtype))]
    return [0.0, 1.0]


def is_resumable(metadata: dict[str, Any]) -> bool:
    """A result whose job was interrupted and whose state folder still exists."""
    job_dir = metadata.get("job_dir")
    return bool(metadata.get("partial")) and bool(job_dir) and Path(job_dir).is_dir()


def layer_kwargs(path: str | os.PathLike, store, metadata: dict[str, Any]) -> dict[str, Any]:
    """napari Image keywords of a result store: name (" (partial)" while partial), rgb, scale,
    translate, contrast limits, and metadata (the record, its fps and the store's path)."""
    placed = result_layer({METADATA_KEY: metadata})
    rgb = placed.get("rgb")
    if not isinstance(rgb, bool):
        rgb = store.ndim == 4 and store.shape[-1] in (3, 4)
    name = placed.get("name") or Path(os.fspath(path).rstrip("/\\")).name
    if metadata.get("partial"):
        name += " (partial)"
    fps = result_fps({METADATA_KEY: metadata, **dict(store.attrs)})
    meta = dict(metadata)
    meta.update(store_path=os.path.abspath(path),
                fps_float=None if fps is None else float(fps))
    kwargs: dict[str, Any] = {"name": name, "rgb": bool(rgb), "metadata": meta,
                              "contrast_limits": contrast_limits(store.dtype),
                              "multiscale": False}
    for key in ("scale", "translate"):
        if placed.get(key) is not None:
            kwargs[key] = list(placed[key])
    return kwargs


def finished_view(path: str | os.PathLike, store, metadata: dict[str, Any]):
    """What a layer of the result shows: the store itself when the result is complete, else
    a lazy view of its leading finished frames (:func:`napari_vsr.jobs.stores.finished_frames`),
    so the unfinished, still black frames do not cover the source.  A partial result without
    a finished frame is shown whole."""
    if not metadata.get("partial"):
        return store
    from napari_vsr.jobs.stores import finished_frames

    n = finished_frames(path)
    if n == 0 or n >= store.shape[0]:
        return store
    return prefix_view(store, n)


def prefix_view(store, n: int):
    """A lazy (dask, one chunk per frame) view of the first ``n`` frames of ``store``."""
    import dask.array as da
    import numpy as np

    chunks = (1, *store.shape[1:])
    return da.from_array(store, chunks=chunks,
                         meta=np.empty((0,) * store.ndim, store.dtype))[:n]


def source_placement(metadata: dict[str, Any]) -> Placement:
    """The source layer's placement, recovered from a result's placement (the inverse of
    :func:`napari_vsr.placement.result_placement`), so a resumed job records the same one."""
    placed = result_layer({METADATA_KEY: metadata})
    scale, translate = placed.get("scale"), placed.get("translate")
    if not scale or not translate:
        return Placement()
    factor = int((metadata.get("parameters") or {}).get("scale") or 1)
    start = int((metadata.get("frame_range") or [0])[0])
    scale = [float(v) for v in scale]
    translate = [float(v) for v in translate]
    for axis in (-2, -1):
        scale[axis] = scale[axis] * factor
        translate[axis] = translate[axis] + scale[axis] * (factor - 1) / (2 * factor)
    translate[0] = translate[0] - scale[0] * start
    return Placement(tuple(scale), tuple(translate))


def resume_request(path: str | os.PathLike, metadata: dict[str, Any], *,
                   source: Any = None) -> JobRequest:
    """The request that continues the interrupted job writing the result store ``path``.

    Parameters
    ----------
    path : path-like
        The partial result store.
    metadata : dict
        Its provenance record (``source``, ``options``, ``frame_range``, ``engine``, ``layer``).
    source : optional
        The source when the record names no file (the job enhanced an in-memory layer): the
        same array again (the job's fingerprint refuses another one).
    """
    from napari_vsr.errors import ParameterError

    src = metadata.get("source") or {}
    if source is None:
        source = src.get("path")
    if source is None:
        raise ParameterError(
            f"{path}: the job enhanced an in-memory layer ({src.get('name')!r}); open that layer "
            "to resume it"
        )
    engine = metadata.get("engine") or {}
    rng = metadata.get("frame_range")
    layer = result_layer({METADATA_KEY: metadata})
    return JobRequest(
        source=source,
        output=os.fspath(path),
        method=MethodOptions.from_dict(metadata.get("options") or {"method": metadata["method"]}),
        engine=EngineOptions(chunk=engine.get("chunk"), overlap=engine.get("overlap"),
                             tile=engine.get("tile"), tile_overlap=engine.get("tile_overlap")),
        frame_range=None if rng is None else (int(rng[0]), int(rng[1])),
        segment=engine.get("segment"),
        job_dir=metadata.get("job_dir"),
        live=True,
        resume=True,
        overwrite=True,  # the store exists: it is the one being continued
        source_name=src.get("name"),
        rgb=layer.get("rgb"),
        placement=source_placement(metadata),
    )


def describe_result(path: str | os.PathLike) -> dict[str, Any]:
    """The facts ``napari-vsr info`` prints for a result store (JSON-serialisable)."""
    store, md = open_result(path)
    shape = tuple(int(s) for s in store.shape)
    rgb = result_layer({METADATA_KEY: md}).get("rgb")
    if not isinstance(rgb, bool):
        rgb = len(shape) == 4 and shape[-1] in (3, 4)
    h, w = (shape[-3], shape[-2]) if rgb else (shape[-2], shape[-1])
    fps = result_fps({METADATA_KEY: md, **dict(store.attrs)})
    src = md.get("source") or {}
    return {
        "path": os.path.abspath(path),
        "kind": "result store",
        "frames": shape[0],
        "width": w,
        "height": h,
        "channels": shape[-1] if rgb else 1,
        "dtype": str(store.dtype),
        "fps": None if fps is None else float(fps),
        "fps_fraction": None if fps is None else f"{fps.numerator}/{fps.denominator}",
        "method": md.get("method"),
        "source": src.get("path") or src.get("name"),
        "frame_range": md.get("frame_range"),
        "partial": bool(md.get("partial")),
        "job_dir": md.get("job_dir") if md.get("partial") else None,
        "resumable": is_resumable(md),
    }
