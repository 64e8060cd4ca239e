"""Comparing two videos: PSNR/SSIM per frame, wipe composites and sliding-wipe comparison videos.

Qt-free.  Frames are numpy arrays (H, W) gray or (H, W, C) with C channels last, in uint8,
uint16 or float (float values are taken to lie in [0, 1] unless ``data_range`` says otherwise).
Sequences are anything indexable by frame with ``len`` (numpy arrays, lazy
:class:`napari_vsr.io.FrameArray`, zarr arrays): only the frames needed are read.

Size rule (used by metrics, wipes and comparison videos): when the two inputs differ in
spatial size, the *smaller* one is resized to the size of the larger one (nearest or bicubic,
OpenCV's pixel-centre convention, which matches the placement of an x4 result over its source
in napari), clipped to its dtype range and cast back to its dtype.  Sizes are compared by
pixel count; channel counts must agree.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from napari_vsr.dtype_range import dtype_range, full_scale
from napari_vsr.errors import ParameterError, UnsupportedDtypeError
from napari_vsr.jobs.progress import CancelToken, ProgressCallback, RateClock

log = logging.getLogger(__name__)

Interpolation = Literal["nearest", "bicubic"]
_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bicubic": cv2.INTER_CUBIC}


# --- helpers --------------------------------------------------------------------------------
def _check_frame(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ParameterError(
            f"{name}: expected one frame of shape (H, W) or (H, W, C), got shape {image.shape}"
        )
    if image.dtype.kind not in "uif":
        raise UnsupportedDtypeError(
            f"{name}: dtype {image.dtype} is not supported for comparison; "
            "expected uint8, uint16 or float"
        )
    return image


def resize_frame(
    image: np.ndarray, size: tuple[int, int], *, interpolation: Interpolation = "bicubic"
) -> np.ndarray:
    """Resize one frame to ``size`` = (height, width).

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8 / uint16 / float
        Not modified.
    size : (int, int)
        Target (height, width).
    interpolation : {"nearest", "bicubic"}
        Bicubic overshoot is clipped to the dtype range (floats: [0, 1] is *not* enforced).

    Returns
    -------
    ndarray, (height, width[, C]), same dtype as ``image``.
    """
    image = _check_frame(image, "image")
    if interpolation not in _CV2_INTERP:
        raise ParameterError(
            f"interpolation must be one of {sorted(_CV2_INTERP)}, got {interpolation!r}"
        )
    h, w = int(size[0]), int(size[1])
    if (h, w) == image.shape[:2]:
        return image.copy()
    work = image
    if image.dtype.kind in "ui" and image.dtype not in (np.uint8, np.uint16):
        work = image.astype(np.float32)
    elif image.dtype == np.float64:
        work = image.astype(np.float32)
    channels = image.shape[2] if image.ndim == 3 else 0
    if channels > 4:  # OpenCV resizes at most 4 channels at once (for some interpolations)
        out = np.stack(
            [cv2.resize(work[..., c], (w, h), interpolation=_CV2_INTERP[interpolation])
             for c in range(channels)],
            axis=-1,
        )
    else:
        out = cv2.resize(work, (w, h), interpolation=_CV2_INTERP[interpolation])
        if channels == 1:
            out = out[..., None]
    if image.dtype.kind in "ui":
        lo, hi = dtype_range(image.dtype)
        out = np.clip(out, int(lo), int(hi))
    return out.astype(image.dtype, copy=False)


def match_sizes(
    a: np.ndarray, b: np.ndarray, *, interpolation: Interpolation = "bicubic"
) -> tuple[np.ndarray, np.ndarray]:
    """Bring two frames to the same spatial size by resizing the smaller one (see module doc).

    Returns
    -------
    (ndarray, ndarray)
        Both (H, W[, C]) at the larger input's size, each in its own dtype.
    """
    a = _check_frame(a, "a")
    b = _check_frame(b, "b")
    ca = a.shape[2] if a.ndim == 3 else 0
    cb = b.shape[2] if b.ndim == 3 else 0
    if ca != cb:
        raise ParameterError(
            f"the two frames have different channel layouts: {a.shape} vs {b.shape}; "
            "compare gray with gray and RGB with RGB"
        )
    if a.shape[:2] == b.shape[:2]:
        return a, b
    if a.shape[0] * a.shape[1] >= b.shape[0] * b.shape[1]:
        return a, resize_frame(b, a.shape[:2], interpolation=interpolation)
    return resize_frame(a, b.shape[:2], interpolation=interpolation), b


def _resolve_range(a: np.ndarray, b: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        if not data_range > 0:
            raise ParameterError(f"data_range must be > 0, got {data_range}")
        return float(data_range)
    ra, rb = full_scale(a.dtype), full_scale(b.dtype)
    if ra != rb:
        raise ParameterError(
            f"frames have dtypes {a.dtype} and {b.dtype} with different ranges; "
            "pass data_range explicitly"
        )
    return ra


# --- metrics --------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape.

    Parameters
    ----------
    a, b : ndarray, any identical shape, uint8 / uint16 / float
    data_range : float, optional
        Peak value; default from the dtype (255, 65535, 1.0 for float).

    Returns
    -------
    float
        ``10 * log10(data_range**2 / MSE)``, computed in float64; ``inf`` for identical inputs.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ParameterError(f"psnr needs equal shapes, got {a.shape} and {b.shape}")
    peak = _resolve_range(a, b, data_range)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float | None = None) -> float:
    """Structural similarity (Wang et al. 2004) between two frames of the same shape.

    Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population covariance, averaged over
    the image and over channels (scikit-image's implementation with those settings).

    Parameters
    ----------
    a, b : ndarray, (H, W) or (H, W, C), uint8 / uint16 / float
    data_range : float, optional
        Dynamic range; default from the dtype (255, 65535, 1.0 for float).

    Returns
    -------
    float in [-1, 1]; 1.0 for identical inputs.
    """
    from skimage.metrics import structural_similarity

    a = _check_frame(a, "a")
    b = _check_frame(b, "b")
    if a.shape != b.shape:
        raise ParameterError(f"ssim needs equal shapes, got {a.shape} and {b.shape}")
    peak = _resolve_range(a, b, data_range)
    return float(
        structural_similarity(
            a.astype(np.float64),
            b.astype(np.float64),
            data_range=peak,
            channel_axis=-1 if a.ndim == 3 else None,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


@dataclass(frozen=True)
class FrameMetrics:
    """Metrics of one frame pair: indices into the test and reference sequences, PSNR (dB), SSIM."""

    index: int
    reference_index: int
    psnr: float
    ssim: float


def frame_metrics(
    test: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    *,
    pairs: Iterable[tuple[int, int]] | None = None,
    interpolation: Interpolation = "bicubic",
    data_range: float | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[FrameMetrics]:
    """PSNR and SSIM per frame of ``test`` against ``reference``, read lazily frame by frame.

    Parameters
    ----------
    test, reference : sequences of frames, (T, H, W[, C])
        May differ in size: the smaller frame of each pair is resized (module size rule).
    pairs : iterable of (int, int), optional
        (test index, reference index) pairs; default ``(i, i)`` for ``i < min(len(test),
        len(reference))``.
    interpolation : {"nearest", "bicubic"}
    data_range : float, optional
        See :func:`psnr`.
    cancel : callable returning bool, optional
        Checked before each frame; iteration stops quietly when it returns True.

    Yields
    ------
    FrameMetrics
    """
    if pairs is None:
        pairs = ((i, i) for i in range(min(len(test), len(reference))))
    for i, j in pairs:
        if cancel is not None and cancel():
            return
        a, b = match_sizes(np.asarray(test[i]), np.asarray(reference[j]),
                           interpolation=interpolation)
        yield FrameMetrics(int(i), int(j), psnr(a, b, data_range=data_range),
                           ssim(a, b, data_range=data_range))


def metrics_to_csv(rows: Iterable[FrameMetrics], path: str | os.PathLike) -> None:
    """Write metrics as CSV with header ``frame,reference_frame,psnr_db,ssim``.

    ``inf`` PSNR (identical frames) is written as ``inf``.
    """
    lines = ["frame,reference_frame,psnr_db,ssim"]
    for r in rows:
        lines.append(f"{r.index},{r.reference_index},{r.psnr:.6f},{r.ssim:.6f}")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


# --- wipe -----------------------------------------------------------------------------------
def _line_value(dtype: np.dtype) -> float:
    return full_scale(dtype)


def wipe_composite(
    left: np.ndarray, right: np.ndarray, position: int, *, line_width: int = 0
) -> np.ndarray:
    """Left image on columns ``[0, position)``, right image on ``[position, W)``, plus a divider.

    Parameters
    ----------
    left, right : ndarray, (H, W) or (H, W, C), same shape and dtype
        Not modified (use :func:`match_sizes` first for inputs of different sizes).
    position : int
        Divider column; clipped to ``[0, W]`` (0 = all right, W = all left).
    line_width : int
        Width in pixels of a white divider drawn on columns ``[position, position +
        line_width)`` (clipped to the frame); white is the dtype's maximum (1.0 for float).
        On an RGBA frame the line is opaque.

    Returns
    -------
    ndarray, same shape and dtype as the inputs (a new array).
    """
    left = _check_frame(left, "left")
    right = _check_frame(right, "right")
    if left.shape != right.shape or left.dtype != right.dtype:
        raise ParameterError(
            f"wipe needs frames of equal shape and dtype, got {left.shape} {left.dtype} and "
            f"{right.shape} {right.dtype}; resize the smaller one first (compare.match_sizes)"
        )
    if line_width < 0:
        raise ParameterError(f"line_width must be >= 0, got {line_width}")
    w = left.shape[1]
    x = int(min(max(int(position), 0), w))
    out = left.copy()
    out[:, x:] = right[:, x:]
    if line_width:
        out[:, x:min(x + line_width, w)] = _line_value(left.dtype)
    return out


# --- comparison video -----------------------------------------------------------------------
@dataclass(frozen=True)
class WipeTimeline:
    """The sliding-wipe animation of the original demo script, as a list of (frame, divider).

    Attributes
    ----------
    steps : list of (int, int | None)
        For each output frame: the input frame index and the divider column (``None`` = the
        left input only, before the slide starts).
    """

    steps: list[tuple[int, int | None]]

    def __len__(self) -> int:
        return len(self.steps)


def wipe_timeline(
    n_frames: int,
    width: int,
    *,
    start_frame: int = 0,
    pause_frame: int | None = None,
    pause_length: int = 25,
    slide_step: int = 16,
    line_width: int = 4,
) -> WipeTimeline:
    """Plan the sliding wipe over ``n_frames`` input frames of width ``width``.

    The animation (same order as the original ``generate_video_demo.py``):

    1. frames ``< start_frame`` show the left input only;
    2. from ``start_frame`` on, the divider starts at column 0 (all right input) and moves
       ``slide_step`` columns to the right per frame, revealing the left input, until it
       reaches ``width`` (all left), where it stays;
    3. at ``pause_frame`` (if given and inside the clip) that output frame is held for
       ``pause_length`` extra frames;
    4. after the last input frame: hold it ``pause_length`` frames, slide the divider back to
       column 0 over the last frame in steps of ``slide_step``, then hold the right input of
       the last frame for ``1 + pause_length`` frames.

    Unlike the original, the divider is clipped to the frame (no empty slices) and the
    slide-back starts from where the divider is (at most ``width - line_width``).

    Returns
    -------
    WipeTimeline
    """
    if n_frames < 1:
        raise ParameterError(f"the comparison needs at least one frame, got {n_frames}")
    for name, value, low in (("start_frame", start_frame, 0), ("pause_length", pause_length, 0),
                             ("slide_step", slide_step, 1), ("line_width", line_width, 0),
                             ("width", width, 1)):
        if value < low:
            raise ParameterError(f"{name} must be >= {low}, got {value}")
    steps: list[tuple[int, int | None]] = []
    x: int | None = None
    for i in range(n_frames):
        x = None if i < start_frame else min(slide_step * (i - start_frame), width)
        steps.append((i, x))
        if pause_frame is not None and i == pause_frame:
            steps.extend([(i, x)] * pause_length)
    last = n_frames - 1
    steps.extend([(last, x)] * pause_length)
    pos = width if x is None else x
    pos = min(pos, max(width - line_width, 0))
    while pos > 0:
        steps.append((last, pos))
        pos -= slide_step
    steps.extend([(last, 0)] * (1 + pause_length))
    return WipeTimeline(steps)


def comparison_frames(
    left: Sequence[np.ndarray],
    right: Sequence[np.ndarray],
    *,
    start_frame: int = 0,
    pause_frame: int | None = None,
    pause_length: int = 25,
    slide_step: int = 16,
    line_width: int = 4,
    interpolation: Interpolation = "nearest",
) -> Iterator[np.ndarray]:
    """Yield the frames of a sliding-wipe comparison video (see :func:`wipe_timeline`).

    Parameters
    ----------
    left, right : sequences of frames, (T, H, W[, C]), same dtype
        Read lazily; a sequence of different spatial size is resized to the larger size
        (``interpolation``), which fixes the shape-mismatch crash of the original script.
        Only the first ``min(len(left), len(right))`` frames are used.
    start_frame, pause_frame, pause_length, slide_step, line_width
        See :func:`wipe_timeline`; ``slide_step`` and ``line_width`` are in output pixels.
    interpolation : {"nearest", "bicubic"}

    Yields
    ------
    ndarray, (H, W[, C]) at the larger input size, dtype of the inputs.
    """
    n = min(len(left), len(right))
    if n < 1:
        raise ParameterError("both inputs must have at least one frame")
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pair(i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in cache:
            cache.clear()
            cache[i] = match_sizes(np.asarray(left[i]), np.asarray(right[i]),
                                   interpolation=interpolation)
        return cache[i]

    first_l, first_r = pair(0)
    if first_l.dtype != first_r.dtype:
        raise ParameterError(
            f"left and right have different dtypes ({first_l.dtype}, {first_r.dtype})"
        )
    timeline = wipe_timeline(n, first_l.shape[1], start_frame=start_frame,
                             pause_frame=pause_frame, pause_length=pause_length,
                             slide_step=slide_step, line_width=line_width)
    for i, x in timeline.steps:
        a, b = pair(i)
        if x is None:
            yield a.copy()
        else:
            yield wipe_composite(a, b, x, line_width=line_width)


def export_comparison_video(
    left: Sequence[np.ndarray],
    right: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float = 25.0,
    start_frame: int = 0,
    pause_frame: int | None = None,
    pause_length: int = 25,
    slide_step: int = 16,
    line_width: int = 4,
    interpolation: Interpolation = "nearest",
    overwrite: bool = False,
    crf: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """Write the sliding-wipe comparison video to ``path`` through :func:`napari_vsr.io.open_writer`.

    Parameters
    ----------
    left, right, start_frame, pause_frame, pause_length, slide_step, line_width, interpolation
        See :func:`comparison_frames`.
    path : path-like
        Output file (.mp4/.mkv/.mov), or any other target ``open_writer`` accepts.  Appears
        only when complete (atomic writer); nothing is left behind on error or cancel.
    fps : float
        Output frame rate.
    overwrite : bool
        Replace an existing ``path``; otherwise :class:`~napari_vsr.errors.OutputExistsError`.
    crf : int, optional
        Encoder quality passed to the writer.
    progress : ProgressCallback, optional
        Receives a :class:`~napari_vsr.jobs.progress.Progress` (unit "frames", ``total`` the
        length of the video) after each written frame.
    cancel : CancelToken, optional
        Checked before each frame; when set the partial output is discarded and
        :class:`~napari_vsr.errors.Cancelled` is raised.

    Returns
    -------
    int
        Number of frames written.
    """
    from napari_vsr.io import VideoOptions, open_writer

    n = min(len(left), len(right))
    writer = open_writer(path, fps=fps, overwrite=overwrite,
                         video=VideoOptions(crf=crf) if crf is not None else None)
    written = 0
    with writer:
        frames = comparison_frames(left, right, start_frame=start_frame,
                                   pause_frame=pause_frame, pause_length=pause_length,
                                   slide_step=slide_step, line_width=line_width,
                                   interpolation=interpolation)
        clock = None
        for frame in frames:
            if cancel is not None:
                cancel.raise_if_cancelled()
            if clock is None:
                clock = RateClock(len(wipe_timeline(
                    n, frame.shape[1], start_frame=start_frame, pause_frame=pause_frame,
                    pause_length=pause_length, slide_step=slide_step, line_width=line_width)))
            writer.write(frame)
            written += 1
            if progress is not None:
                progress(clock.progress(written))
    log.info("comparison video %s: %d frames at %s fps", os.fspath(path), written, fps)
    return written
