"""Which paths the readers claim, and the one entry point that opens them."""

from __future__ import annotations

import os
from pathlib import Path

from napari_vsr.errors import UnreadableMediaError
from napari_vsr.io.frame_array import DEFAULT_CACHE_MB, FrameArray
from napari_vsr.io.source_checks import check_source
from napari_vsr.io.stack_reader import ZARR_MARKERS, FolderFrames, TiffFrames

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".gif",
        # broadcast / camcorder / disc / legacy web and Windows / phones / open / raw / pro
        ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".vob", ".flv", ".wmv", ".asf", ".3gp",
        ".3g2", ".ogv", ".y4m", ".mxf", ".dv",
    }
)  # fmt: skip
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})


def source_kind(path: str | os.PathLike) -> str | None:
    """``"video"``, ``"tiff"``, ``"folder"`` or None, judged by extension / folder contents.

    Never raises; does not open files.  Every folder counts, except zarr stores (a ``.zarr``
    name or zarr's own marker files inside), which napari's other readers handle: a folder
    without image frames (empty, or only other files) is claimed so that opening it gives a
    clear error naming the folder, instead of no reader at all.  Single image files are
    napari's built-in reader's job and are not claimed, except ``.tif``/``.tiff`` stacks.
    """
    try:
        p = Path(path)
        if p.is_dir():
            if p.suffix.lower() == ".zarr" or any((p / marker).exists() for marker in ZARR_MARKERS):
                return None
            return "folder"
        suffix = p.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            return "video"
        if suffix in TIFF_EXTENSIONS:
            return "tiff"
    except (OSError, TypeError, ValueError):
        return None
    return None


def is_supported(path: str | os.PathLike) -> bool:
    """Whether :func:`open_frames` would claim ``path`` (cheap; never raises)."""
    return source_kind(path) is not None


def open_frames(
    path: str | os.PathLike,
    *,
    cache_mb: float = DEFAULT_CACHE_MB,
    apply_rotation: bool = True,
    skip_bad_frames: bool = False,
    hwaccel: str | None = None,
) -> FrameArray:
    """Open a video, a folder of images or a multi-page TIFF as a lazy frame array.

    Parameters
    ----------
    path : path-like
        Video (any of ``VIDEO_EXTENSIONS``, any case), folder of images, or .tif/.tiff.
    cache_mb : float, keyword-only
        Memory budget of the decoded-frame cache (MiB).
    apply_rotation : bool, keyword-only
        Turn videos with rotation metadata (phone clips) upright, as players do.
    skip_bad_frames : bool, keyword-only
        Video: replace a frame that cannot be decoded (or that the demuxer lost to corrupt
        data) by the previous good one, instead of raising CorruptFrameError; the replaced
        indices accumulate in ``metadata["replaced_frames"]`` as they are read.
    hwaccel : {None, "none", "auto", "cuda"}, keyword-only
        Video: decode on an NVIDIA GPU (NVDEC) when one is usable, else in software with one
        note (``.notes``, logged as a warning); the frames are the same either way.  Ignored
        by folders and TIFFs.

    Returns
    -------
    FrameArray
        ``(T, H, W, 3)`` uint8 for ordinary video (uint16 for >8-bit sources, ``(T, H, W)``
        for gray ones); folders and TIFFs keep their dtype (uint8/uint16/float32) and channels.
        ``metadata`` holds ``kind``, ``source_path``, ``n_frames``, ``fps`` and, for video,
        ``fps_fraction`` ("30000/1001"), ``nominal_fps``, ``time_base``, ``duration_s``,
        ``codec``, ``pix_fmt``, ``rotation`` (ccw degrees), ``rotation_applied``, ``has_audio``,
        ``has_subtitles``,
        ``audio_streams``, ``missing_frames`` (lost by the demuxer), ``replaced_frames``.  Video arrays also offer ``frame_times()``.

    Raises
    ------
    SourceNotFoundError
        The path does not exist, or is a dangling symlink.
    SourcePermissionError
        The path may not be read by this user.
    UnreadableMediaError
        Empty file, not a video, no video stream, unsupported extension; a FIFO, device or
        socket (refused without opening it); a symlink loop.
    TruncatedMediaError
        The data stops early or is corrupt; ``readable_frames`` says how far it got.
        Its subclass CorruptFrameError (also raised by reads) names the bad ``frame_index``.
    FrameStackError
        Empty folder, frames of different sizes, unsupported TIFF layout.
    UnsupportedDtypeError
        A pixel type other than uint8/uint16/float32.
    """
    p = Path(path)
    check_source(p)  # FIFOs, devices, symlink loops, permissions: refused before opening
    if p.is_dir():
        return FolderFrames(p, cache_mb=cache_mb)
    kind = source_kind(p)
    if kind == "tiff":
        return TiffFrames(p, cache_mb=cache_mb)
    if kind == "video":
        from napari_vsr.io.video_reader import VideoFrames

        return VideoFrames(
            p,
            cache_mb=cache_mb,
            apply_rotation=apply_rotation,
            skip_bad_frames=skip_bad_frames,
            hwaccel=hwaccel,
        )
    raise UnreadableMediaError(
        f"unsupported file type {p.suffix or '(no extension)'!r}: expected a video "
        f"({', '.join(sorted(VIDEO_EXTENSIONS))}), a TIFF stack or a folder of images",
        path=p,
    )
