"""napari writer hooks (single image layer): video, TIFF stack, folder of PNG frames.

Each is ``(path, data, meta) -> [path]``; napari has already asked before replacing a file, so
existing targets are overwritten, but like everywhere else only a file or a folder napari-vsr
wrote, and never the layer's own source file (``metadata["source_path"]``).  fps comes from the layer metadata when present (else 25 for
video); a layer read from a video with audio that still has the source's frame count gets the
audio copied into a video output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.errors import ParameterError
from napari_vsr.io import VideoOptions, fps_of_metadata, open_writer
from napari_vsr.io.writer_base import check_not_input

log = logging.getLogger(__name__)


def _frames(data: Any, meta: dict[str, Any]):
    """View layer data as a sequence of frames (T, H, W[, C])."""
    rgb = bool(meta.get("rgb", False))
    ndim = len(data.shape)
    spatial = 3 if rgb else 2
    if ndim == spatial:
        return [np.asarray(data)]
    if ndim == spatial + 1:
        return data
    raise ParameterError(
        f"cannot save a {ndim}-D {'RGB ' if rgb else ''}layer as frames: expected "
        f"(T, H, W{', C' if rgb else ''}) or a single image"
    )


def _write(
    path: str, data: Any, meta: dict[str, Any], video: VideoOptions | None = None
) -> list[str]:
    frames = _frames(data, meta)
    md = meta.get("metadata") or {}
    check_not_input(path, md.get("source_path"))
    with open_writer(
        path, overwrite=True, fps=fps_of_metadata(md), metadata=_plain(md), video=video
    ) as w:
        first = np.asarray(frames[0])
        w.preflight(first.shape, first.dtype, len(frames))
        for i in range(len(frames)):
            w.write(np.asarray(frames[i]))
    return [str(w.path)]


def _plain(md: dict[str, Any]) -> dict[str, Any]:
    keep = ("source_path", "kind", "fps", "fps_fraction", "codec", "enhancement", "recipe")
    return {k: md[k] for k in keep if k in md}


def write_video(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an image layer as mp4/mkv/mov (H.264 CRF 18; see ``napari_vsr.io.video_writer``)."""
    md = meta.get("metadata") or {}
    video = None
    src = md.get("source_path")
    n = data.shape[0] if len(data.shape) == (4 if meta.get("rgb") else 3) else 1
    if (
        md.get("kind") == "video"
        and md.get("has_audio")
        and src
        and Path(src).is_file()
        and (md.get("n_frames") == n)
    ):
        times = data.frame_times() if hasattr(data, "frame_times") else None
        video = VideoOptions(copy_streams_from=src, frame_times=times)
    return _write(path, data, meta, video)


def write_tiff(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an image layer as a multi-page TIFF (dtype kept)."""
    return _write(path, data, meta)


def write_frames(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an image layer as a folder of numbered PNG files (uint8/uint16 kept)."""
    return _write(path, data, meta)
