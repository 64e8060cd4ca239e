"""The dtype and layout policy shared by every classic operator.

Dtypes
------
Every operator accepts ``uint8``, ``uint16`` and ``float32`` images and returns the dtype it was
given.  Any other dtype (``int16``, ``float64``, ``bool``, ...) raises
:class:`~napari_vsr.errors.UnsupportedDtypeError` naming the operator and the dtype; convert with
``astype`` first.

* **Full scale.**  ``uint8`` spans 0-255, ``uint16`` 0-65535 and ``float32`` is nominally
  0.0-1.0.  Intensity-valued parameters (unsharp ``threshold``, bilateral ``sigma_color``,
  non-local means ``h``, Canny ``low``/``high``) are given as *fractions of full scale*, so one
  recipe means the same thing for an 8-bit video and a 16-bit microscopy stack.
* **Integer outputs** are computed in the operator's natural precision (OpenCV's fixed point
  where OpenCV runs natively, float32 otherwise), rounded half to even and saturated to the
  dtype's range.
* **float32 outputs** are not clipped: a sharpening overshoot stays visible.  The exceptions are
  the contrast operators (histogram equalization, CLAHE, gamma), which are defined on a range and
  clip float32 input to 0.0-1.0 first.
* **Where OpenCV lacks a dtype** the operator uses an exact alternative and says so in its
  docstring: e.g. ``median_filter`` on uint16/float32 with kernels above 5 uses
  :func:`scipy.ndimage.median_filter`; non-local means on float32 runs on a 16-bit quantisation
  of the frame's range.  Where OpenCV has the dtype but gives it a different meaning, the
  operator keeps the meaning: CLAHE on uint16/float32 runs OpenCV's algorithm with 256 bins in
  NumPy, because OpenCV's 16-bit CLAHE effectively ignores ``clip_limit``.

Layout
------
A frame is ``(H, W)`` (gray) or ``(H, W, C)`` (channels last: RGB, RGBA or any number of
channels).  ``channel_axis=None`` means exactly that: 2-D is gray and the last axis of a 3-D
frame holds the channels.  Pass ``channel_axis`` (e.g. ``0`` for ``(C, H, W)``) when the
channels are elsewhere; the output keeps the input's layout.  Channels are processed
independently and identically (alpha included), except where an operator documents otherwise.
Temporal operators take a stack ``(T, H, W)`` or ``(T, H, W, C)`` and follow the same rules.

No operator modifies its input; every result is a new array.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from napari_vsr.dtype_range import full_scale, saturate  # noqa: F401 (full_scale re-exported)
from napari_vsr.errors import ParameterError, UnsupportedDtypeError

#: the dtypes every operator supports
SUPPORTED_DTYPES: tuple[np.dtype, ...] = (
    np.dtype(np.uint8),
    np.dtype(np.uint16),
    np.dtype(np.float32),
)


def check_dtype(image: np.ndarray, op: str) -> np.dtype:
    """Return ``image.dtype`` if supported, else raise ``UnsupportedDtypeError`` naming ``op``."""
    dtype = image.dtype
    if dtype not in SUPPORTED_DTYPES:
        raise UnsupportedDtypeError(
            f"{op}: dtype {dtype} is not supported; expected uint8, uint16 or float32 "
            f"(convert with .astype(...) first)"
        )
    return dtype


#: convert float results to a dtype following the policy (integers rounded half to even and
#: saturated, float32 only cast); the project-wide :func:`napari_vsr.dtype_range.saturate`
cast_like = saturate


def to_channels_last(
    image: np.ndarray, op: str, channel_axis: int | None, *, temporal: bool = False
) -> tuple[np.ndarray, int | None]:
    """Validate the layout and move the channel axis last.

    Parameters
    ----------
    image : ndarray
        A frame ``(H, W)``/``(H, W, C)`` or, with ``temporal=True``, a stack
        ``(T, H, W)``/``(T, H, W, C)``, channels anywhere if ``channel_axis`` says so.
    op : str
        Operator name for error messages.
    channel_axis : int or None
        Where the channels are; ``None`` means gray or channels last.
    temporal : bool
        Whether ``image`` is a stack.

    Returns
    -------
    array : ndarray
        A C-contiguous view or copy with channels last.
    moved_from : int or None
        The normalised axis the channels came from (for :func:`restore_layout`), or ``None``.
    """
    base = 3 if temporal else 2
    what = "stack (T, H, W[, C])" if temporal else "frame (H, W[, C])"
    if image.ndim not in (base, base + 1):
        raise ParameterError(f"{op}: expected a {what}, got an array of shape {image.shape}")
    if channel_axis is None:
        return np.ascontiguousarray(image), None
    if image.ndim != base + 1:
        raise ParameterError(
            f"{op}: channel_axis={channel_axis} given but the array of shape {image.shape} "
            f"has no channel axis"
        )
    if not -image.ndim <= channel_axis < image.ndim:
        raise ParameterError(
            f"{op}: channel_axis={channel_axis} is out of range for an array of shape {image.shape}"
        )
    axis = channel_axis % image.ndim
    return np.ascontiguousarray(np.moveaxis(image, axis, -1)), axis


def restore_layout(result: np.ndarray, moved_from: int | None) -> np.ndarray:
    """Undo :func:`to_channels_last` on an operator's result."""
    if moved_from is None or moved_from == result.ndim - 1:
        return result
    return np.moveaxis(result, -1, moved_from)


_CV_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def per_channel(image: np.ndarray, func: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``func`` to each channel of a channels-last frame and stack the results.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C)
    func : callable
        Maps a 2-D ``(H, W)`` array to a 2-D array (any size: resizing is allowed).

    Returns
    -------
    ndarray, (H', W') or (H', W', C)
    """
    if image.ndim == 2:
        return func(image)
    channels = image.shape[-1]
    if 2 <= channels <= 4:  # OpenCV's SIMD split/merge: cheaper than strided NumPy copies
        planes = [func(p) for p in cv2.split(np.ascontiguousarray(image))]
        first = planes[0]
        if first.ndim == 2 and first.dtype in _CV_DTYPES:
            if all(p.dtype == first.dtype and p.shape == first.shape for p in planes):
                return cv2.merge(planes)
        return np.stack(planes, axis=-1)
    planes = [func(np.ascontiguousarray(image[..., c])) for c in range(channels)]
    return np.stack(planes, axis=-1)
