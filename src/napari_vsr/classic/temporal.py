"""Temporal filters over +-radius frames: median and mean.

Window for output frame ``t``: input frames ``max(0, t - radius) .. min(T - 1, t + radius)``,
i.e. the window is cut short at the ends of the stack (no padding).  Run through the engine
with ``overlap >= radius`` (``Enhancer.context``), chunked results equal the whole-stack result.
"""

from __future__ import annotations

import numpy as np

from napari_vsr.classic.dtypes import cast_like
from napari_vsr.classic.registry import Param, operator

_RADIUS = Param("int", minimum=0, maximum=50, description="frames on each side")


def _radius(params: dict) -> int:
    return int(params["radius"])


def _window(stack: np.ndarray, t: int, radius: int) -> np.ndarray:
    return stack[max(0, t - radius) : t + radius + 1]


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _middle_pair(a, b, c, d) -> tuple[np.ndarray, np.ndarray]:
    """The 2nd and 3rd smallest of four (in either order): the smallest and the largest are
    the least of the pair minima and the greatest of the pair maxima; the other two remain."""
    return np.maximum(np.minimum(a, b), np.minimum(c, d)), np.minimum(
        np.maximum(a, b), np.maximum(c, d)
    )


def _mean2(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return cast_like((a.astype(np.float64) + b) / 2, dtype)


def _median_of(window: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-pixel median over axis 0; min/max networks (exact, native dtype) up to 5 frames."""
    n = window.shape[0]
    if n == 1:
        return window[0].copy()
    if n == 2:
        return _mean2(window[0], window[1], dtype)
    if n == 3:
        return _median3(*window)
    if n == 4:
        return _mean2(*_middle_pair(*window), dtype)
    if n == 5:
        return _median3(window[4], *_middle_pair(*window[:4]))
    if n % 2:
        return np.partition(window, n // 2, axis=0)[n // 2]
    part = np.partition(window, (n // 2 - 1, n // 2), axis=0)
    return _mean2(part[n // 2 - 1], part[n // 2], dtype)


@operator({"radius": _RADIUS}, temporal=True, context_of=_radius)
def temporal_median(
    stack: np.ndarray, radius: int = 1, *, channel_axis: int | None = None
) -> np.ndarray:
    """Per-pixel median over ``2 * radius + 1`` frames (fewer at the ends of the stack).

    Parameters
    ----------
    stack : ndarray, (T, H, W) or (T, H, W, C), uint8/uint16/float32
    radius : int
        Frames on each side, 0-50 (0 is the identity).
    channel_axis : int, optional
        Axis of the channels in ``stack`` if not last.

    Returns
    -------
    ndarray, same shape and dtype
        With an even number of frames (at the ends) the two middle values are averaged and,
        for integer dtypes, rounded half to even.
    """
    out = np.empty_like(stack)
    for t in range(stack.shape[0]):
        out[t] = _median_of(_window(stack, t, radius), stack.dtype)
    return out


@operator({"radius": _RADIUS}, temporal=True, context_of=_radius)
def temporal_mean(
    stack: np.ndarray, radius: int = 1, *, channel_axis: int | None = None
) -> np.ndarray:
    """Per-pixel mean over ``2 * radius + 1`` frames (fewer at the ends of the stack).

    Parameters
    ----------
    stack : ndarray, (T, H, W) or (T, H, W, C), uint8/uint16/float32
    radius : int
        Frames on each side, 0-50 (0 is the identity).
    channel_axis : int, optional
        Axis of the channels in ``stack`` if not last.

    Returns
    -------
    ndarray, same shape and dtype
        Accumulated in float64; integers rounded half to even.
    """
    out = np.empty_like(stack)
    for t in range(stack.shape[0]):
        out[t] = cast_like(_window(stack, t, radius).mean(axis=0, dtype=np.float64), stack.dtype)
    return out
