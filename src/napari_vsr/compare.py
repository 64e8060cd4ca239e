"""Comparing two videos: PSNR/SSIM per frame, wipe composites, captions and sliding-wipe
comparison videos, plus a lazy column window that lets a viewer show a wipe without compositing.

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
import threading
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


class ColumnWindow:
    """Columns ``[start, stop)`` of a frame sequence, read lazily: the part of one layer a
    viewer shows beside a wipe divider, so the wipe needs no composite.

    Parameters
    ----------
    data : array-like, (T, H, W) or (T, H, W, C)
        Any sequence napari can show (numpy, zarr, :class:`napari_vsr.io.FrameArray`); indexed
        frame by frame, never modified.
    start, stop : int
        The columns shown; both clipped to ``[0, W]`` (``stop`` None: ``W``; ``stop`` below
        ``start``: an empty window).

    Notes
    -----
    The window has shape ``(T, H, stop - start[, C])`` and the dtype of ``data``.  Indexing
    one frame (``t`` or ``t:t+1`` first, what a viewer does for one time step) reads that
    whole frame once and keeps it, shared with every window made by :meth:`with_columns`, so moving the
    divider over the same frame costs a slice of a cached array, not another read or decode.
    """

    _AXIS = 2

    def __init__(self, data, start: int = 0, stop: int | None = None, *,
                 _cache: _LastFrame | None = None):
        shape = tuple(int(s) for s in data.shape)
        if len(shape) not in (3, 4):
            raise ParameterError(
                f"a column window needs frames (T, H, W) or (T, H, W, C), got shape {shape}"
            )
        width = shape[self._AXIS]
        self._data = data
        self._start = min(max(int(start), 0), width)
        stop = width if stop is None else min(max(int(stop), 0), width)
        self._stop = max(stop, self._start)
        self._cache = _cache if _cache is not None else _LastFrame(data)
        self.shape = shape[:2] + (self._stop - self._start,) + shape[3:]
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(shape)

    @property
    def start(self) -> int:
        """The first column of ``data`` this window shows."""
        return self._start

    @property
    def stop(self) -> int:
        """One past the last column of ``data`` this window shows."""
        return self._stop

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def with_columns(self, start: int = 0, stop: int | None = None) -> ColumnWindow:
        """The same data seen through columns ``[start, stop)``, sharing the frame read last."""
        return ColumnWindow(self._data, start, stop, _cache=self._cache)

    def _shift(self, index):
        """An index along the window's column axis as an index into ``data``."""
        width = self.shape[self._AXIS]
        if isinstance(index, slice):
            lo, hi, step = index.indices(width)
            lo, hi = lo + self._start, hi + self._start
            if step < 0 and hi < 0:
                hi = None  # "before column 0" of data
            return slice(lo, hi, step)
        if isinstance(index, int | np.integer):
            i = int(index)
            if not -width <= i < width:
                raise IndexError(f"column {i} is outside a window of width {width}")
            return (i % width) + self._start
        arr = np.asarray(index)
        if arr.dtype.kind in "ui":
            if arr.size and not (np.all(arr >= -width) and np.all(arr < width)):
                raise IndexError(f"columns {arr} are outside a window of width {width}")
            return np.where(arr < 0, arr + width, arr) + self._start
        raise TypeError(f"unsupported column index {index!r}; use ints, slices or int arrays")

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            at = next(n for n, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1:]
        if any(k is None for k in key):
            raise TypeError("a column window does not take new axes (None) in an index")
        key = key + (slice(None),) * (self.ndim - len(key))
        key = key[:self._AXIS] + (self._shift(key[self._AXIS]),) + key[self._AXIS + 1:]
        basic = all(isinstance(k, slice | int | np.integer) for k in key[1:])
        if basic and isinstance(key[0], int | np.integer):  # one frame: the cached read
            return self._cache.frame(int(key[0]))[key[1:]]
        if basic and isinstance(key[0], slice):
            frames = range(*key[0].indices(self.shape[0]))
            if len(frames) == 1:  # napari's way to ask for one frame: t:t+1
                return self._cache.frame(frames[0])[None][(slice(None),) + key[1:]]
        return np.asarray(self._data[key])

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self._data[:, :, self._start:self._stop])
        return out if dtype is None else out.astype(dtype)


class _LastFrame:
    """The frame of ``data`` read last, kept for the next read of the same index."""

    def __init__(self, data):
        self._data = data
        self._index: int | None = None
        self._frame: np.ndarray | None = None
        self._lock = threading.Lock()

    def frame(self, index: int) -> np.ndarray:
        n = int(self._data.shape[0])
        if not -n <= index < n:
            raise IndexError(f"frame {index} is outside a sequence of {n} frames")
        index %= n
        with self._lock:
            if self._index != index:
                self._frame = np.asarray(self._data[index])
                self._index = index
            return self._frame


# --- captions -------------------------------------------------------------------------------
CaptionCorner = Literal["top-left", "top-right"]

#: the captions of a comparison video: left input, right input
DEFAULT_CAPTIONS = ("original", "enhanced")

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SHADE = 0.55  # how much the box behind a caption darkens the frame


def draw_caption(
    image: np.ndarray,
    text: str,
    *,
    corner: CaptionCorner = "top-left",
    text_height: float = 0.045,
) -> np.ndarray:
    """Burn a label into a copy of one frame: white text on a darkened box in a top corner.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), any integer or float dtype
        Not modified.  White is the dtype's maximum (1.0 for float), black its minimum; on an
        RGBA frame the box is opaque.
    text : str
        The label (ASCII; OpenCV's Hershey font has no other glyphs).  Empty: no label.
    corner : {"top-left", "top-right"}
    text_height : float
        Height of capital letters as a fraction of the frame height (at least 10 pixels).

    Returns
    -------
    ndarray, same shape and dtype as ``image`` (a new array).
    """
    image = _check_frame(image, "image")
    if corner not in ("top-left", "top-right"):
        raise ParameterError(f"corner must be 'top-left' or 'top-right', got {corner!r}")
    if not text_height > 0:
        raise ParameterError(f"text_height must be > 0, got {text_height}")
    out = image.copy()
    if not text:
        return out
    h, w = image.shape[:2]
    cap = max(10.0, text_height * h)
    (_, ref_h), _ = cv2.getTextSize("H", _FONT, 1.0, 1)
    scale = cap / ref_h
    thickness = max(1, round(scale * 1.4))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(0.45 * th))
    box_w, box_h = tw + 2 * pad, th + base + 2 * pad
    mask = np.zeros((box_h, box_w), np.uint8)
    cv2.putText(mask, text, (pad, pad + th), _FONT, scale, 255, thickness, cv2.LINE_AA)
    margin = max(2, round(0.025 * min(h, w)))
    x0 = margin if corner == "top-left" else w - margin - box_w
    y0 = margin
    # the box clipped to the frame, and the matching part of the mask
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + box_w, w), min(y0 + box_h, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    m = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0].astype(np.float32) / 255.0
    region = out[fy0:fy1, fx0:fx1].astype(np.float64)
    lo, hi = dtype_range(image.dtype)
    if region.ndim == 3:
        m = m[..., None]
    region = region + (lo - region) * _SHADE
    region = region * (1.0 - m) + hi * m
    if image.ndim == 3 and image.shape[2] == 4:
        region[..., 3] = hi  # an opaque box on RGBA
    if image.dtype.kind in "ui":
        region = np.clip(np.rint(region), lo, hi)
    out[fy0:fy1, fx0:fx1] = region.astype(image.dtype)
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
    slide_step : float
        The divider's movement per frame, in pixels (the one asked for or the automatic one).
    """

    steps: list[tuple[int, int | None]]
    slide_step: float = 0.0

    def __len__(self) -> int:
        return len(self.steps)

    def first_step_of(self, frame: int) -> int:
        """Index of the first output frame that shows input frame ``frame``."""
        for k, (i, _) in enumerate(self.steps):
            if i == frame:
                return k
        raise ParameterError(
            f"frame {frame} is not in the comparison (it has input frames 0 to "
            f"{self.steps[-1][0]})"
        )


def auto_slide_step(n_frames: int, width: int, *, start_frame: int = 0) -> float:
    """The slide step that moves the divider across the whole frame within the clip.

    The divider starts at column 0 on frame ``start_frame`` and reaches ``width`` exactly on
    the last frame: ``width / (n_frames - 1 - start_frame)`` pixels per frame (a float; the
    timeline rounds the positions), or ``width`` when fewer than two frames are left.
    """
    if n_frames < 1 or width < 1:
        raise ParameterError(
            f"the comparison needs at least one frame and one column, got {n_frames} frames "
            f"of width {width}"
        )
    moves = n_frames - 1 - max(int(start_frame), 0)
    return width / moves if moves > 0 else float(width)


def wipe_timeline(
    n_frames: int,
    width: int,
    *,
    start_frame: int = 0,
    pause_frame: int | None = None,
    pause_length: int = 25,
    slide_step: float | None = None,
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

    Parameters
    ----------
    slide_step : float, optional
        Pixels per frame (> 0; divider positions are rounded to whole columns); None (default)
        picks :func:`auto_slide_step`, so the divider crosses the frame within the clip
        whatever its length and width.

    Returns
    -------
    WipeTimeline
    """
    if n_frames < 1:
        raise ParameterError(f"the comparison needs at least one frame, got {n_frames}")
    if slide_step is None:
        slide_step = auto_slide_step(n_frames, max(width, 1), start_frame=start_frame)
    for name, value, low in (("start_frame", start_frame, 0), ("pause_length", pause_length, 0),
                             ("line_width", line_width, 0), ("width", width, 1)):
        if value < low:
            raise ParameterError(f"{name} must be >= {low}, got {value}")
    if not slide_step > 0:
        raise ParameterError(f"slide_step must be > 0 pixels per frame, got {slide_step}")
    steps: list[tuple[int, int | None]] = []
    x: int | None = None
    for i in range(n_frames):
        x = None if i < start_frame else min(round(slide_step * (i - start_frame)), width)
        steps.append((i, x))
        if pause_frame is not None and i == pause_frame:
            steps.extend([(i, x)] * pause_length)
    last = n_frames - 1
    steps.extend([(last, x)] * pause_length)
    pos: float = width if x is None else x
    pos = min(pos, max(width - line_width, 0))
    while pos > 0:
        steps.append((last, math.ceil(pos)))
        pos -= slide_step
    steps.extend([(last, 0)] * (1 + pause_length))
    return WipeTimeline(steps, float(slide_step))


@dataclass(frozen=True)
class ComparisonOptions:
    """How a sliding-wipe comparison looks (see :func:`wipe_timeline` and
    :func:`draw_caption`).

    Attributes
    ----------
    start_frame, pause_frame, pause_length, slide_step, line_width
        See :func:`wipe_timeline`; ``slide_step`` and ``line_width`` in output pixels,
        ``slide_step`` None for the automatic step.
    interpolation : {"nearest", "bicubic"}
        How the smaller input is resized to the larger.
    captions : (str, str), optional
        Labels burned into the left input (top left) and the right input (top right), each
        revealed with its side of the divider; None (or empty strings) for none.
    """

    start_frame: int = 0
    pause_frame: int | None = None
    pause_length: int = 25
    slide_step: float | None = None
    line_width: int = 4
    interpolation: Interpolation = "nearest"
    captions: tuple[str, str] | None = None


class _Comparison:
    """Frames of one comparison: the timeline and the (resized, captioned) pair of a frame."""

    def __init__(self, left: Sequence[np.ndarray], right: Sequence[np.ndarray],
                 options: ComparisonOptions):
        self.n = min(len(left), len(right))
        if self.n < 1:
            raise ParameterError("both inputs must have at least one frame")
        self._left, self._right, self.options = left, right, options
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        first_l, first_r = self.pair(0)
        if first_l.dtype != first_r.dtype:
            raise ParameterError(
                f"left and right have different dtypes ({first_l.dtype}, {first_r.dtype}); "
                "compare layers of the same bit depth"
            )
        self.shape = first_l.shape
        self.timeline = wipe_timeline(
            self.n, first_l.shape[1], start_frame=options.start_frame,
            pause_frame=options.pause_frame, pause_length=options.pause_length,
            slide_step=options.slide_step, line_width=options.line_width)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._cache:
            self._cache.clear()
            a, b = match_sizes(np.asarray(self._left[i]), np.asarray(self._right[i]),
                               interpolation=self.options.interpolation)
            captions = self.options.captions
            if captions:
                a = draw_caption(a, captions[0], corner="top-left")
                b = draw_caption(b, captions[1], corner="top-right")
            self._cache[i] = (a, b)
        return self._cache[i]

    def frame(self, step: int) -> np.ndarray:
        i, x = self.timeline.steps[step]
        a, b = self.pair(i)
        if x is None:
            return a.copy()
        return wipe_composite(a, b, x, line_width=self.options.line_width)

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self.timeline)):
            yield self.frame(k)


def _options(options: ComparisonOptions | None, **kwargs) -> ComparisonOptions:
    if options is not None:
        return options
    return ComparisonOptions(**kwargs)


def comparison_frames(
    left: Sequence[np.ndarray],
    right: Sequence[np.ndarray],
    *,
    start_frame: int = 0,
    pause_frame: int | None = None,
    pause_length: int = 25,
    slide_step: float | None = None,
    line_width: int = 4,
    interpolation: Interpolation = "nearest",
    captions: tuple[str, str] | None = None,
    options: ComparisonOptions | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of a sliding-wipe comparison video (see :func:`wipe_timeline`).

    Parameters
    ----------
    left, right : sequences of frames, (T, H, W[, C]), same dtype
        Read lazily; a sequence of different spatial size is resized to the larger size
        (``interpolation``), which fixes the shape-mismatch crash of the original script.
        Only the first ``min(len(left), len(right))`` frames are used.
    start_frame, pause_frame, pause_length, slide_step, line_width, interpolation, captions
        See :class:`ComparisonOptions`.
    options : ComparisonOptions, optional
        All of the above in one record (then the separate keywords are ignored).

    Yields
    ------
    ndarray, (H, W[, C]) at the larger input size, dtype of the inputs.
    """
    opts = _options(options, start_frame=start_frame, pause_frame=pause_frame,
                    pause_length=pause_length, slide_step=slide_step, line_width=line_width,
                    interpolation=interpolation, captions=captions)
    yield from _Comparison(left, right, opts)


def comparison_frame(
    left: Sequence[np.ndarray],
    right: Sequence[np.ndarray],
    frame: int,
    options: ComparisonOptions | None = None,
) -> np.ndarray:
    """The comparison video's first output frame that shows input frame ``frame``: a preview
    of what :func:`export_comparison_video` writes there.

    Parameters
    ----------
    left, right : sequences of frames, (T, H, W[, C])
        As in :func:`comparison_frames`; only frame ``frame`` of each is read.
    frame : int
        Input frame index, ``0 <= frame < min(len(left), len(right))``.
    options : ComparisonOptions, optional

    Returns
    -------
    ndarray, (H, W[, C]) at the larger input size, dtype of the inputs.
    """
    comparison = _Comparison(left, right, options or ComparisonOptions())
    if not 0 <= frame < comparison.n:
        raise ParameterError(
            f"frame {frame} is outside the comparison's {comparison.n} frames"
        )
    return comparison.frame(comparison.timeline.first_step_of(frame))


def export_comparison_video(
    left: Sequence[np.ndarray],
    right: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float = 25.0,
    start_frame: int = 0,
    pause_frame: int | None = None,
    pause_length: int = 25,
    slide_step: float | None = None,
    line_width: int = 4,
    interpolation: Interpolation = "nearest",
    captions: tuple[str, str] | None = None,
    options: ComparisonOptions | None = None,
    overwrite: bool = False,
    crf: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """Write the sliding-wipe comparison video to ``path`` through :func:`napari_vsr.io.open_writer`.

    Parameters
    ----------
    left, right, start_frame, pause_frame, pause_length, slide_step, line_width, interpolation,
    captions, options
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

    opts = _options(options, start_frame=start_frame, pause_frame=pause_frame,
                    pause_length=pause_length, slide_step=slide_step, line_width=line_width,
                    interpolation=interpolation, captions=captions)
    comparison = _Comparison(left, right, opts)
    writer = open_writer(path, fps=fps, overwrite=overwrite,
                         video=VideoOptions(crf=crf) if crf is not None else None)
    written = 0
    clock = RateClock(len(comparison.timeline))
    with writer:
        for frame in comparison:
            if cancel is not None:
                cancel.raise_if_cancelled()
            writer.write(frame)
            written += 1
            if progress is not None:
                progress(clock.progress(written))
    log.info("comparison video %s: %d frames at %s fps (slide step %.1f px)", os.fspath(path),
             written, fps, comparison.timeline.slide_step)
    return written
