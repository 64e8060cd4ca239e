"""Saving a whole image stack (a napari layer's data) to a file: what each format keeps, and
the write itself.  No Qt and no napari: the napari writer hooks and the "Save result…" dialog
call these.

:func:`plan_save` says, before any work, what a target keeps and loses of a stack of a given
shape and dtype (16-bit samples, gray, alpha, exact values) and which encoding it gets;
:func:`save_stack` writes the frames one at a time (lazy arrays stay lazy: one frame in memory
at a time), reporting progress and stopping at a cancel.

Format rules (see :mod:`napari_vsr.io.video_writer` for the encoders):

=========  ======================================================================================
``.mkv``   lossless FFV1 by default: uint8/uint16, gray, RGB and RGBA kept bit-exact
``.mp4``   H.264 (CRF 18) for players: lossy; uint16 kept as 10 bits; gray read back as RGB;
``.mov``   alpha dropped.  ``lossless``: x264 qp 0, 8-bit only (uint16 or RGBA -> use .mkv)
``.tif``   every frame bit-exact: uint8, uint16, float32 (float64 stored as float32)
frames     a folder of PNG files: uint8/uint16, gray, RGB, RGBA bit-exact; float refused
=========  ======================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from napari_vsr.errors import ParameterError, UnsupportedDtypeError
from napari_vsr.io.video_options import VideoOptions
from napari_vsr.io.writers import open_writer, writer_kind


@dataclass(frozen=True)
class SaveFormat:
    """One choice of the "Save result…" dialog.

    Attributes
    ----------
    key : str
        ``"mp4"``, ``"mkv"``, ``"mov"``, ``"tif"`` or ``"frames"``.
    label : str
        What the user reads.
    suffix : str
        The target's extension (``".frames"`` names a folder of PNG files).
    lossless_choice : bool
        Whether the user may choose between lossy and lossless (video formats).
    lossless_default : bool
        Lossless unless the user says otherwise.
    """

    key: str
    label: str
    suffix: str
    lossless_choice: bool
    lossless_default: bool


#: the formats offered by the "Save result…" dialog, in its order
SAVE_FORMATS: dict[str, SaveFormat] = {
    f.key: f
    for f in (
        SaveFormat("mp4", "MP4 video (H.264, plays everywhere)", ".mp4", True, False),
        SaveFormat("mkv", "MKV video (lossless FFV1)", ".mkv", True, True),
        SaveFormat("mov", "MOV video (H.264)", ".mov", True, False),
        SaveFormat("tif", "TIFF stack (exact)", ".tif", False, True),
        SaveFormat("frames", "Folder of PNG frames (exact)", ".frames", False, True),
    )
}


@dataclass(frozen=True)
class SavePlan:
    """What saving a stack to ``path`` keeps and loses, decided before any work.

    Attributes
    ----------
    path : Path
        The target.
    kind : str
        ``"video"``, ``"tiff"`` or ``"frames"``.
    lossless : bool
        Whether every sample is written exactly.
    video : VideoOptions or None
        The encoding of a video target.
    kept, lost : tuple of str
        Short phrases for the user ("16-bit samples", "gray is stored as colour ...").
    """

    path: Path
    kind: str
    lossless: bool
    video: VideoOptions | None
    kept: tuple[str, ...] = field(default=())
    lost: tuple[str, ...] = field(default=())

    @property
    def warning(self) -> str | None:
        """One line naming the file and what it loses, or None when it keeps everything."""
        if not self.lost:
            return None
        return f"{self.path.name}: {'; '.join(self.lost)}"


def default_lossless(path: str | os.PathLike) -> bool:
    """Whether a target is written lossless when the caller does not say: ``.mkv`` (FFV1),
    TIFF stacks and frame folders yes; ``.mp4``/``.mov``/``.m4v``/``.webm`` no (they are for
    players, which do not all decode lossless H.264)."""
    kind = writer_kind(path)
    if kind != "video":
        return True
    return Path(path).suffix.lower() == ".mkv"


def _frame_layout(shape: tuple[int, ...], rgb: bool) -> tuple[int, int]:
    """(number of frames, channels) of a stack (T, H, W[, C]) or a single image."""
    spatial = 3 if rgb else 2
    if len(shape) == spatial:
        n = 1
    elif len(shape) == spatial + 1:
        n = int(shape[0])
    else:
        raise ParameterError(
            f"cannot save a {len(shape)}-D {'RGB ' if rgb else ''}image as frames: expected "
            f"(T, H, W{', C' if rgb else ''}) or a single image"
        )
    return n, int(shape[-1]) if rgb else 1


def _has_10bit(encoder: str) -> bool:
    """Whether this FFmpeg's ``encoder`` takes 10-bit 4:2:0 frames."""
    import av

    try:
        formats = av.codec.Codec(encoder, "w").video_formats or []
    except (ValueError, av.error.FFmpegError):
        return False
    return any(f.name == "yuv420p10le" for f in formats)


def _deep_lossy_codec(suffix: str) -> tuple[str, int]:
    """(codec name, bits) a lossy video of 16-bit frames gets: H.264 10-bit where x264 has it;
    webm: VP9 when it is 10-bit here, else 10-bit AV1 (what the video writer switches to)."""
    if suffix != ".webm":
        return "H.264", 10 if _has_10bit("libx264") else 8
    if _has_10bit("libvpx-vp9"):
        return "VP9", 10
    if any(_has_10bit(e) for e in ("libsvtav1", "libaom-av1", "librav1e")):
        return "AV1", 10
    return "VP9", 8


def plan_save(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    rgb: bool,
    lossless: bool | None = None,
) -> SavePlan:
    """Decide how a stack is saved to ``path`` and what it keeps and loses.

    Parameters
    ----------
    path : path-like
        Target: ``.mp4``/``.m4v``/``.mov``/``.mkv``/``.webm`` video, ``.tif``/``.tiff`` stack, or
        a folder of PNG frames (``.frames``, no extension, or a trailing slash).
    shape : tuple of int
        The stack, (T, H, W) gray or (T, H, W, C) with ``rgb`` (C 3 or 4); a single image
        (H, W[, C]) is one frame.
    dtype : numpy dtype-like
        uint8, uint16, float32/float64 (values in [0, 1] for video) or bool.
    rgb : bool
        Whether the last axis holds colour channels.
    lossless : bool, optional
        Video only: exact samples (FFV1 in ``.mkv``, x264 qp 0 in ``.mp4``/``.mov``); default
        :func:`default_lossless`.  Stacks and frame folders are always exact.

    Returns
    -------
    SavePlan

    Raises
    ------
    ParameterError
        The target cannot hold these frames at all (lossless 16-bit or RGBA video outside
        ``.mkv``, lossless ``.webm``, float frames as PNG, an unknown extension), naming what
        to use instead.
    """
    target = Path(path)
    dtype = np.dtype(dtype)
    kind = writer_kind(path)
    if kind == "zarr":
        raise ParameterError(f"{target}: save as video, .tif or PNG frames, not .zarr")
    n, channels = _frame_layout(tuple(int(s) for s in shape), rgb)
    if dtype.kind not in "uifb" or (dtype.kind == "u" and dtype.itemsize > 2) or dtype.kind == "i":
        raise UnsupportedDtypeError(
            f"cannot save {dtype} frames: convert the layer to uint8, uint16 or float32",
            path=target)
    deep = dtype == np.uint16
    gray, alpha = channels == 1, channels == 4
    kept = [f"{n} frame{'s' if n != 1 else ''}"]
    lost: list[str] = []
    if kind == "tiff":
        kept += [str(dtype) if dtype != np.float64 else "float values",
                 "gray" if gray else f"{channels} channels", "exact values"]
        if dtype == np.float64:
            lost.append("float64 samples are stored as float32")
        return SavePlan(target, kind, True, None, tuple(kept), tuple(lost))
    if kind == "frames":
        if dtype.kind == "f":
            raise UnsupportedDtypeError(
                f"PNG holds whole numbers (uint8, uint16), not {dtype}; save a .tif stack "
                "instead", path=target)
        kept += ["16-bit samples" if deep else "8-bit samples",
                 "gray" if gray else ("RGBA" if alpha else "RGB"), "exact values"]
        return SavePlan(target, kind, True, None, tuple(kept), tuple(lost))

    suffix = target.suffix.lower()
    lossless = default_lossless(path) if lossless is None else bool(lossless)
    if lossless and suffix == ".webm":
        raise ParameterError(f"{target}: webm cannot be lossless; save a .mkv for exact values")
    if lossless and suffix != ".mkv" and (deep or alpha):
        what = "16-bit" if deep else "RGBA"
        raise ParameterError(
            f"{target}: lossless {what} video needs a .mkv file (FFV1); choose MKV, or a .tif "
            "stack")
    bits = 16 if deep else 8
    if dtype.kind == "f":
        lost.append("float values are rounded to 8-bit video levels (save a .tif to keep them)")
        bits = 8
    elif dtype.kind == "b":
        kept.append("on/off values as 0/255")
    if lossless:
        codec = "FFV1" if suffix == ".mkv" else "lossless H.264"
        kept.append(f"exact values ({codec})")
        if dtype.kind == "u":
            kept.append(f"{bits}-bit samples")
        if gray and suffix == ".mkv":
            kept.append("gray")
        elif gray:
            lost.append("gray is stored as colour video and reads back as RGB (three equal "
                        "channels)")
        if alpha:
            kept.append("alpha channel")
        return SavePlan(target, kind, True, VideoOptions(lossless=True), tuple(kept),
                        tuple(lost))

    codec = "VP9" if suffix == ".webm" else "H.264"
    if deep:
        codec, stored_bits = _deep_lossy_codec(suffix)
        lost.append(f"16-bit samples are stored with {stored_bits} bits")
    lost.insert(0, f"lossy {codec} compression changes the values slightly")
    if gray:
        lost.append("gray is stored as colour video and reads back as RGB (three equal channels)")
    if alpha:
        lost.append("the alpha channel is dropped")
    return SavePlan(target, kind, False, VideoOptions(), tuple(kept), tuple(lost))


def save_stack(
    data: Any,
    path: str | os.PathLike,
    *,
    rgb: bool,
    fps: float | str | Fraction | None = None,
    metadata: dict[str, Any] | None = None,
    lossless: bool | None = None,
    video: VideoOptions | None = None,
    n_frames: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Any = None,
) -> Path:
    """Write a stack to ``path`` one frame at a time, as :func:`plan_save` decides.

    Parameters
    ----------
    data : array-like
        (T, H, W[, C]) or one image (H, W[, C]); anything with ``shape``, ``dtype`` and frame
        indexing (numpy, zarr, dask, :class:`~napari_vsr.io.FrameArray`).  Read one frame at a
        time, never modified.  Video takes uint8/uint16, float in [0, 1] or bool.
    path : path-like
        Target (see :func:`plan_save`).
    rgb : bool
        Whether the last axis holds colour channels.
    fps : float, Fraction or "num/den", optional
        Frame rate (video default 25).
    metadata : dict, optional
        Stored with the output (JSON-serialisable entries).
    lossless : bool, optional
        Video: exact samples; default :func:`default_lossless`.
    video : VideoOptions, optional
        Extra video options (audio copied from a source, frame times); ``lossless`` here wins
        over ``video.lossless``.
    n_frames : int, optional
        Write only the first ``n_frames`` frames (the finished part of a partial result).
    overwrite : bool
        Replace an existing target (a file, or a folder napari-vsr wrote).
    progress : callable, optional
        Called as ``progress(frames_written, total)`` after each frame.
    cancel : CancelToken, optional
        Checked before each frame (:meth:`~napari_vsr.jobs.progress.CancelToken.raise_if_cancelled`);
        a cancel raises :class:`~napari_vsr.errors.Cancelled` and leaves no file behind.

    Returns
    -------
    Path
        The target, once committed (atomically: never a truncated file under its name).
    """
    shape = tuple(int(s) for s in data.shape)
    plan = plan_save(path, shape, data.dtype, rgb=rgb, lossless=lossless)
    single = len(shape) == (3 if rgb else 2)
    total = 1 if single else shape[0]
    if n_frames is not None:
        total = max(0, min(total, int(n_frames)))
    if total == 0:
        raise ParameterError(f"{Path(path)}: there are no frames to save")
    options = None
    if plan.kind == "video":
        from dataclasses import replace

        options = replace(video or VideoOptions(), lossless=plan.lossless)
    convert = np.float32 if np.dtype(data.dtype) == np.float64 and plan.kind == "tiff" else None

    def frame(i: int) -> np.ndarray:
        arr = np.asarray(data if single else data[i])
        return arr.astype(convert) if convert is not None else arr

    with open_writer(path, overwrite=overwrite, fps=fps, metadata=metadata,
                     video=options) as writer:
        frame_shape = shape if single else shape[1:]
        writer.preflight(frame_shape, convert or data.dtype, total)
        for i in range(total):
            if cancel is not None:
                cancel.raise_if_cancelled()
            writer.write(frame(i))
            if progress is not None:
                progress(i + 1, total)
    return writer.path
