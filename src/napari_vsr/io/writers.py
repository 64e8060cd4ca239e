"""Choosing a writer by the target path, and writing whole arrays in one call.

Target rules:

- ``.mp4``, ``.m4v``, ``.mov``, ``.mkv``, ``.webm`` ->
  :class:`~napari_vsr.io.video_writer.VideoWriter`
- ``.tif``, ``.tiff`` -> :class:`~napari_vsr.io.stack_writers.TiffStackWriter`
- ``.zarr`` -> ``napari_vsr.io.zarr_store.ZarrWriter`` (the engine's on-disk store)
- a path ending in a slash, with no extension, with the ``.frames`` extension, or an
  existing folder whose extension names no file output ->
  :class:`~napari_vsr.io.stack_writers.PngFolderWriter`

A file target never becomes a folder: an existing folder named ``out.mp4`` stays a video
target, which the writer then refuses to replace (see :mod:`napari_vsr.io.writer_base`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.errors import ParameterError
from napari_vsr.io.fps import parse_fps
from napari_vsr.io.stack_writers import PngFolderWriter, TiffStackWriter
from napari_vsr.io.video_options import VideoOptions
from napari_vsr.io.video_writer import VIDEO_OUT_EXTENSIONS, VideoWriter
from napari_vsr.io.writer_base import Writer

FOLDER_SUFFIXES = ("", ".frames")


def writer_kind(path: str | os.PathLike) -> str:
    """``"video"``, ``"tiff"``, ``"zarr"`` or ``"frames"`` for a target path.

    Raises
    ------
    ParameterError
        The extension names no known output.
    """
    text = os.fspath(path)
    p = Path(text)
    suffix = p.suffix.lower()
    file_suffix = suffix in VIDEO_OUT_EXTENSIONS or suffix in (".tif", ".tiff", ".zarr")
    if (
        text.endswith(("/", os.sep))
        or suffix in FOLDER_SUFFIXES
        or (p.is_dir() and not file_suffix)
    ):
        return "frames"
    if suffix in VIDEO_OUT_EXTENSIONS:
        return "video"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix == ".zarr":
        return "zarr"
    raise ParameterError(
        f"{p}: unknown output type {suffix!r}: use .mp4/.m4v/.mov/.mkv/.webm (video), .tif/.tiff, "
        ".zarr, or a folder name (no extension, '.frames' or a trailing '/') for PNG frames"
    )


def open_writer(
    path: str | os.PathLike,
    *,
    fps: float | str | Fraction | None = None,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
    video: VideoOptions | None = None,
) -> Writer:
    """Open a writer for ``path``, chosen by its extension (see the module notes).

    Parameters
    ----------
    path : path-like
        Target file or folder.  An existing target raises ``OutputExistsError`` here unless
        ``overwrite``.
    fps : float, Fraction or "num/den", optional
        Frame rate (exact, read by :func:`~napari_vsr.io.parse_fps`); stored as metadata by the
        stack writers.
    metadata : dict, optional
        Stored with the output (JSON-serialisable entries).
    video : VideoOptions, optional
        Codec, quality, streams to copy, frame times and colour of a video output.  Options
        other than the colour tags are refused with a ``ParameterError`` for a non-video
        target.

    Returns
    -------
    Writer
        ``.write(frame)`` with frames (H, W[, C]); ``.close()`` commits atomically,
        ``.abort()`` discards; as a context manager it commits on success and aborts on any
        exception, KeyboardInterrupt included.
    """
    video = video or VideoOptions()
    kind = writer_kind(path)
    if kind == "video":
        writer = VideoWriter(path, fps=fps, overwrite=overwrite, metadata=metadata, video=video)
        # for the free-space estimate: CRF 18 H.264 of natural video is well under 3 % of the
        # raw RGB bytes; FFV1 and lossless x264 keep about half
        writer.size_ratio = 0.6 if video.lossless else 0.03
        return writer
    given = video.given_for_other_outputs()
    if given:
        raise ParameterError(f"{path}: {', '.join(given)} only apply to video outputs")
    rate = float(parse_fps(fps)) if fps is not None else None
    if kind == "tiff":
        return TiffStackWriter(path, overwrite=overwrite, fps=rate, metadata=metadata)
    if kind == "zarr":
        from napari_vsr.io.zarr_store import ZarrWriter

        meta = dict(metadata or {})
        if rate is not None:
            meta.setdefault("fps", rate)
        return ZarrWriter(path, overwrite=overwrite, metadata=meta)
    return PngFolderWriter(path, overwrite=overwrite, fps=rate, metadata=metadata)


def write_frames_to(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    fps: float | str | Fraction | None = None,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
    video: VideoOptions | None = None,
) -> Path:
    """Write a whole stack (``(T, H, W[, C])`` array, FrameArray or iterable of frames).

    Same options as :func:`open_writer`.  For an array the writer's pre-flight checks run
    before the first frame (writable folder, free space, the format's limits).  Returns the
    target path once committed.
    """
    writer = open_writer(path, fps=fps, overwrite=overwrite, metadata=metadata, video=video)
    with writer:
        if hasattr(frames, "shape") and hasattr(frames, "__getitem__"):
            if len(frames.shape) >= 3 and hasattr(frames, "dtype"):
                writer.preflight(tuple(frames.shape[1:]), frames.dtype, int(frames.shape[0]))
            for i in range(frames.shape[0]):
                writer.write(frames[i])
        else:
            for frame in frames:
                writer.write(frame)
    return writer.path
