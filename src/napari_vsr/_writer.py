"""napari writer hooks (single image layer): video, TIFF stack, folder of PNG frames.

Each is ``(path, data, meta) -> [path]`` and one call into :func:`napari_vsr.io.export.save_stack`;
``data`` may be any array napari holds (numpy, a result layer's zarr store, dask, a lazy
video), read one frame at a time.  napari has already asked before replacing a file, so
existing targets are overwritten, but like everywhere else only a file or a folder napari-vsr
wrote, and never the layer's own source file (``metadata["source_path"]``).

- ``.mkv`` is lossless (FFV1: 16-bit, gray and alpha kept bit-exact); ``.mp4``/``.mov``/``.m4v``
  are H.264 for players and ``.webm`` VP9.  What a format cannot keep (16-bit samples, gray,
  alpha, exact values) is announced before writing, naming the file: a napari warning
  notification when napari is running, and a logged warning in any case.
- fps comes from the layer metadata when present (else 25 for video); a layer read from a
  video with audio that still has the source's frame count gets the audio copied into a video
  output.
- A partial result (``metadata["partial"]``: its job has not finished) is saved as its
  finished leading frames, with a warning saying how many.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_vsr.errors import ParameterError
from napari_vsr.io import VideoOptions, fps_of_metadata
from napari_vsr.io.export import plan_save, save_stack
from napari_vsr.io.writer_base import check_not_input

log = logging.getLogger(__name__)


def _warn(message: str) -> None:
    """A warning the napari user sees (a notification) and the log keeps."""
    log.warning("%s", message)
    try:
        from napari.utils.notifications import show_warning
    except ImportError:  # pragma: no cover - hooks called without napari
        return
    show_warning(message)


def _n_frames(data: Any, rgb: bool) -> int:
    shape = tuple(data.shape)
    return int(shape[0]) if len(shape) == (4 if rgb else 3) else 1


def saved_frame_count(data: Any, metadata: dict[str, Any], *, rgb: bool) -> tuple[int, str | None]:
    """(frames to save, a warning or None) for a layer's data: all frames, or the finished
    leading frames of a partial result (``metadata["partial"]`` with a ``store_path``).

    Raises
    ------
    ParameterError
        A partial result with no finished frame yet.
    """
    n = _n_frames(data, rgb)
    store = metadata.get("store_path")
    if not metadata.get("partial") or not store:
        return n, None
    from napari_vsr.jobs.results import is_result_store, open_result
    from napari_vsr.jobs.stores import finished_frames

    if not is_result_store(store):
        return n, None
    # the layer may show the whole store or (napari-vsr's layers) only its finished frames
    total = int(open_result(store)[0].shape[0])
    done = min(n, finished_frames(store))
    if done == 0:
        raise ParameterError(
            "the result is partial and no frame is finished yet: nothing to save",
            path=store)
    if done == total:
        return n, None
    return done, (f"the result is partial: saving its {done} finished frames of {total}; the "
                  "others are not enhanced yet")


def save_layer_data(
    data: Any,
    path: str | os.PathLike,
    *,
    rgb: bool,
    metadata: dict[str, Any] | None = None,
    lossless: bool | None = None,
    video: VideoOptions | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Any = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Save an image layer's data as a video, TIFF stack or PNG folder (Qt-free).

    What the napari writer hooks and the "Save result…" dialog call.

    Parameters
    ----------
    data : array-like
        The layer's data, (T, H, W[, C]) or one image; numpy, zarr (a result store), dask or a
        lazy video, read one frame at a time and never modified.
    path : path-like
        Target; its extension picks the format (see :func:`napari_vsr.io.export.plan_save`).
    rgb : bool
        The layer's ``rgb``.
    metadata : dict, optional
        The layer's metadata: fps (``fps_fraction``/``fps``), its source file (never
        overwritten), a result's provenance record (kept in the output) and, for a partial
        result, ``partial`` and ``store_path`` (only the finished leading frames are saved).
    lossless : bool, optional
        Video: exact samples; default lossless for ``.mkv`` only.
    video : VideoOptions, optional
        Streams copied from a source, frame times.
    overwrite : bool
        Replace an existing target (a file, or a folder napari-vsr wrote).
    progress : callable, optional
        ``progress(frames_written, total)`` after each frame (from the calling thread).
    cancel : CancelToken, optional
        Checked before each frame; a cancel raises ``Cancelled`` and leaves no output.
    warn : callable, optional
        Receives, before any frame is written, each warning line: what the format loses
        (16-bit, gray, alpha, exact values) and a partial result's frame count.

    Returns
    -------
    Path
        The target, once complete.

    Raises
    ------
    VsrError
        ``ParameterError``/``UnsupportedDtypeError`` when the format cannot hold the data at
        all (e.g. lossless 16-bit in .mp4), ``OutputExistsError`` without ``overwrite``,
        ``OutputIsInputError``, ``WriteError``, ``Cancelled``.
    """
    md = dict(metadata or {})
    check_not_input(path, md.get("source_path"), md.get("store_path"))
    plan = plan_save(path, tuple(data.shape), data.dtype, rgb=rgb, lossless=lossless)
    n, partial_note = saved_frame_count(data, md, rgb=rgb)
    for line in ((f"{Path(path).name}: {partial_note}" if partial_note else None),
                 plan.warning):
        if line and warn is not None:
            warn(line)
    return save_stack(data, path, rgb=rgb, fps=fps_of_metadata(md), metadata=_plain(md),
                      lossless=plan.lossless if plan.kind == "video" else None, video=video,
                      n_frames=n, overwrite=overwrite, progress=progress, cancel=cancel)


def _write(path: str, data: Any, meta: dict[str, Any], *,
           video: VideoOptions | None = None) -> list[str]:
    written = save_layer_data(data, path, rgb=bool(meta.get("rgb", False)),
                              metadata=meta.get("metadata") or {}, video=video, overwrite=True,
                              warn=_warn)
    return [str(written)]


def _plain(md: dict[str, Any]) -> dict[str, Any]:
    keep = ("source_path", "kind", "fps", "fps_fraction", "codec", "enhancement", "recipe")
    plain = {k: md[k] for k in keep if k in md}
    if md.get("schema") and md.get("method"):  # a result's provenance record, as sinks keep it
        from napari_vsr.jobs.metadata import METADATA_KEY

        record = {k: v for k, v in md.items() if k not in ("store_path", "job_dir")}
        plain[METADATA_KEY] = {**record, "partial": False}
    return plain


def write_video(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an image layer as video: ``.mkv`` lossless (FFV1), ``.mp4``/``.mov``/``.m4v``
    H.264 CRF 18, ``.webm`` VP9 (see ``napari_vsr.io.export``)."""
    md = meta.get("metadata") or {}
    video = None
    src = md.get("source_path")
    if (
        md.get("kind") == "video"
        and md.get("has_audio")
        and src
        and Path(src).is_file()
        and md.get("n_frames") == _n_frames(data, bool(meta.get("rgb")))
    ):
        times = data.frame_times() if hasattr(data, "frame_times") else None
        video = VideoOptions(copy_streams_from=src, frame_times=times)
    return _write(path, data, meta, video=video)


def write_tiff(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an image layer as a multi-page TIFF (dtype kept)."""
    return _write(path, data, meta)


def write_frames(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an image layer as a folder of numbered PNG files (uint8/uint16 kept)."""
    return _write(path, data, meta)
