"""napari reader hook: videos, image folders and TIFF stacks as lazy image layers, and
napari-vsr result stores (``.zarr``) as frame-synced result layers.

Every folder can be read by several napari readers (napari's own reads any ``.zarr``), so
napari's File > Open asks which one to use unless a reader preference matches the path.
:func:`prefer_for_result_stores` adds that preference for the folder of the widget's result
stores, so opening one of them gives the placed result layer without a question.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.dtype_range import full_scale
from napari_vsr.io import is_supported, open_frames

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]

PLUGIN_NAME = "napari-vsr"


def store_folder_pattern(folder: str | os.PathLike) -> str:
    """napari's reader-preference pattern for the ``.zarr`` folders inside ``folder``
    (napari matches a folder's real path with a trailing separator)."""
    return os.path.join(os.path.realpath(os.fspath(folder)), "*.zarr") + os.sep


def prefer_for_result_stores(folder: str | os.PathLike | None = None) -> bool:
    """Make napari open the ``.zarr`` stores of ``folder`` with this plugin's reader.

    Adds ``<folder>/*.zarr/ -> napari-vsr`` to napari's reader preferences
    (``settings.plugins.extension2reader``, the table File > Open and drag-and-drop consult
    before asking), so a result store there opens as its placed result layer (name, scale,
    translate from the store) rather than as napari's plain zarr layer.  Only that folder:
    other zarr data keeps napari's choice.  A preference the user set for the same pattern is
    kept.

    Parameters
    ----------
    folder : path-like, optional
        Default: :func:`napari_vsr.jobs.results.default_store_dir`.

    Returns
    -------
    bool
        Whether the preference is in place (False without napari's settings, or when the user
        chose another reader for that pattern).
    """
    from napari_vsr.jobs.results import default_store_dir

    try:
        from napari.settings import get_settings
    except ImportError:  # pragma: no cover - used without napari
        return False
    pattern = store_folder_pattern(default_store_dir() if folder is None else folder)
    plugins = get_settings().plugins
    current = dict(plugins.extension2reader)
    if pattern in current:
        return current[pattern] == PLUGIN_NAME
    plugins.extension2reader = {**current, pattern: PLUGIN_NAME}
    return True


def napari_get_reader(path: str | list[str]):
    """Return a reader function when napari-vsr can open ``path``, else None.

    Claims video files by extension (``io.sources.VIDEO_EXTENSIONS``, any case), ``.tif``/``.tiff``
    files and folders (except zarr stores); a folder without image frames is claimed so that
    opening it names the problem.  A ``.zarr`` folder is claimed only when it is a napari-vsr
    result store (:func:`napari_vsr.jobs.results.is_result_store`); other zarr data stays with
    other readers.  Never raises; failures to read a claimed path are raised later by the
    returned function as project errors naming the file and the cause.
    """
    try:
        if isinstance(path, (list, tuple)):
            if not path or not all(isinstance(p, (str, os.PathLike)) and _claims(p) for p in path):
                return None
            return read_layers
        if isinstance(path, (str, os.PathLike)) and _claims(path):
            return read_layers
    except Exception:  # the hook must never raise
        log.debug("napari_get_reader(%r) declined after an error", path, exc_info=True)
    return None


def _claims(path: str | os.PathLike) -> bool:
    from napari_vsr.jobs.results import is_result_store

    return is_result_store(path) or is_supported(path)


def result_layer_data(path: str | os.PathLike) -> LayerData:
    """A napari-vsr result store as layer data: (zarr array, keywords, "image").

    The keywords place the layer over its source frame-synced (the stored ``layer``
    placement: name, rgb, scale, translate), carry the provenance record as metadata (with
    ``fps_float`` and ``store_path``) and set contrast limits from the dtype.  A result whose
    job was interrupted is named "... (partial)" and shows only its finished frames.
    """
    from napari_vsr.jobs.results import finished_view, layer_kwargs, open_result

    store, metadata = open_result(path)
    kwargs = layer_kwargs(path, store, metadata)
    kwargs.pop("multiscale", None)
    return finished_view(path, store, metadata), kwargs, "image"


def layer_data(path: str | os.PathLike) -> LayerData:
    """Open one source as napari layer data: (lazy array, layer kwargs, "image").

    A TIFF with a channel axis (``metadata["channel_axis"]``) becomes one layer per channel
    through napari's ``channel_axis``: names from the file (ImageJ labels, OME channel names),
    colours from the file or green/magenta for two channels, contrast limits from ImageJ's
    display ranges or from the first frame, additive blending.  The array is then wrapped in
    a dask array of one chunk per frame, so napari's per-channel slicing stays lazy.
    """
    from napari_vsr.jobs.results import is_result_store

    if is_result_store(path):
        return result_layer_data(path)
    frames = open_frames(path)
    meta = dict(frames.metadata)
    name = Path(os.fspath(path).rstrip("/\\")).name
    kwargs: dict[str, Any] = {"name": name, "rgb": frames.rgb, "metadata": meta}
    if meta.get("kind") == "video" and frames.dtype.kind == "u":
        kwargs["contrast_limits"] = [0, int(full_scale(frames.dtype))]
    channel_axis = meta.get("channel_axis")
    if channel_axis is None:
        return frames, kwargs, "image"
    import dask.array as da

    n = frames.shape[channel_axis]
    chunks = (1, *frames.shape[1:])
    data = da.from_array(frames, chunks=chunks, meta=np.empty((0,) * frames.ndim, frames.dtype))
    names = meta.get("channel_names") or [f"C{k}" for k in range(n)]
    kwargs.update(
        name=[f"{name} [{c}]" for c in names],
        channel_axis=channel_axis,
        colormap=list(meta.get("channel_colors") or [None] * n),
        contrast_limits=meta.get("channel_ranges") or _first_frame_limits(frames, channel_axis),
        blending="additive",
    )
    return data, kwargs, "image"


def _first_frame_limits(frames, channel_axis: int) -> list[list[float]]:
    """Per-channel [min, max] of frame 0 (one frame decoded), widened where flat."""
    first = np.asarray(frames[0])
    axis = channel_axis - 1  # the frame has no time axis
    limits = []
    for k in range(first.shape[axis]):
        plane = np.take(first, k, axis=axis)
        lo, hi = float(np.nanmin(plane)), float(np.nanmax(plane))
        if not hi > lo:
            top = full_scale(frames.dtype) if frames.dtype.kind == "u" else lo + 1.0
            lo, hi = (0.0, top) if top > lo else (lo, lo + 1.0)
        limits.append([lo, hi])
    return limits


def read_layers(path: str | list[str]) -> list[LayerData]:
    """napari reader function: one image layer per path."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    return [layer_data(p) for p in paths]
