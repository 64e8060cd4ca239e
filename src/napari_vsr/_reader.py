"""napari reader hook: videos, image folders and TIFF stacks as lazy image layers."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.io import is_supported, open_frames

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]


def napari_get_reader(path: str | list[str]):
    """Return a reader function when napari-vsr can open ``path``, else None.

    Claims video files by extension (mp4 m4v mov avi mkv webm gif, any case), ``.tif``/``.tiff``
    files and folders holding image files.  Never raises; failures to read a claimed path are
    raised later by the returned function as project errors naming the file and the cause.
    """
    try:
        if isinstance(path, (list, tuple)):
            if not path or not all(
                isinstance(p, (str, os.PathLike)) and is_supported(p) for p in path
            ):
                return None
            return read_layers
        if isinstance(path, (str, os.PathLike)) and is_supported(path):
            return read_layers
    except Exception:  # the hook must never raise
        log.debug("napari_get_reader(%r) declined after an error", path, exc_info=True)
    return None


def layer_data(path: str | os.PathLike) -> LayerData:
    """Open one source as napari layer data: (lazy array, layer kwargs, "image")."""
    frames = open_frames(path)
    meta = dict(frames.metadata)
    kwargs: dict[str, Any] = {
        "name": Path(os.fspath(path).rstrip("/\\")).name,
        "rgb": frames.rgb,
        "metadata": meta,
    }
    if meta.get("kind") == "video" and frames.dtype.kind == "u":
        kwargs["contrast_limits"] = [0, int(np.iinfo(frames.dtype).max)]
    return frames, kwargs, "image"


def read_layers(path: str | list[str]) -> list[LayerData]:
    """napari reader function: one image layer per path."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    return [layer_data(p) for p in paths]
