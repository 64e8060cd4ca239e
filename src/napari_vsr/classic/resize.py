"""Interpolation: resize one frame by a factor or to a size."""

from __future__ import annotations

import cv2
import numpy as np

from napari_vsr.classic.registry import Param, operator

#: interpolation names and the OpenCV flag behind each
INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST_EXACT,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "area": cv2.INTER_AREA,
}


def _one_of(params: dict) -> str | None:
    if (params["factor"] is None) == (params["size"] is None):
        return "give exactly one of 'factor' and 'size'"
    return None


def _scale(params: dict) -> float | None:
    return params["factor"]


def output_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """Output ``(height, width)`` for a factor: each side rounded, at least 1 pixel."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def _target(
    image: np.ndarray, factor: float | None, size: tuple[int, int] | None
) -> tuple[int, int]:
    if factor is not None:
        return output_size(image.shape[0], image.shape[1], factor)
    return size


def _resize_into(
    image: np.ndarray,
    out: np.ndarray,
    factor: float | None = None,
    size: tuple[int, int] | None = None,
    interpolation: str = "bicubic",
) -> None:
    """:func:`resize` written straight into ``out`` (no copy of a large result)."""
    out_h, out_w = _target(image, factor, size)
    flag = INTERPOLATIONS[interpolation]
    result = cv2.resize(image, (out_w, out_h), dst=out, interpolation=flag)
    if not np.shares_memory(result, out):  # OpenCV reallocated: shape or layout differed
        out[...] = result


@operator(
    {
        "factor": Param(
            "float",
            minimum=0,
            open_minimum=True,
            maximum=16,
            optional=True,
            description="scale factor (e.g. 4); or give size",
        ),
        "size": Param(
            "pair",
            minimum=1,
            maximum=65536,
            optional=True,
            description="output [height, width]; or give factor",
        ),
        "interpolation": Param(
            "str", choices=tuple(INTERPOLATIONS), description="interpolation kernel"
        ),
    },
    constraint=_one_of,
    scale_of=_scale,
    into=_resize_into,
)
def resize(
    image: np.ndarray,
    factor: float | None = None,
    size: tuple[int, int] | None = None,
    interpolation: str = "bicubic",
    *,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Resize with ``cv2.resize`` (pixel centres aligned, replicate border).

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    factor : float, optional
        Scale factor in (0, 16]; the output is ``(round(H * factor), round(W * factor))``.
    size : (int, int), optional
        Output ``(height, width)``.  Give exactly one of ``factor`` and ``size``.
    interpolation : {"nearest", "bilinear", "bicubic", "lanczos", "area"}
        ``"nearest"`` uses ``INTER_NEAREST_EXACT`` (pixel-centre nearest, like PIL and
        scikit-image); ``"area"`` averages when shrinking.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, (H', W') or (H', W', C), same dtype
        Integers saturated; float32 keeps the overshoot of bicubic/Lanczos.
    """
    out_h, out_w = _target(image, factor, size)
    return cv2.resize(image, (out_w, out_h), interpolation=INTERPOLATIONS[interpolation])
