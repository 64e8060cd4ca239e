"""Edge detection as analysis outputs: Sobel gradient magnitude and Canny edges, per channel."""

from __future__ import annotations

import cv2
import numpy as np

from napari_vsr.classic.dtypes import cast_like, full_scale, per_channel
from napari_vsr.classic.registry import Param, operator


@operator({"ksize": Param("int", minimum=3, maximum=7, odd=True, description="Sobel aperture")})
def sobel_magnitude(
    image: np.ndarray, ksize: int = 3, *, channel_axis: int | None = None
) -> np.ndarray:
    """Gradient magnitude ``sqrt(dx**2 + dy**2)`` from normalised Sobel derivatives.

    The kernels are normalised (OpenCV's ``getDerivKernels(normalize=True)``, a factor
    ``2 ** -(2 * ksize - 3)``) so the result is in intensity units per pixel: a ramp of slope 1
    gives 1, and a full-scale step edge about half of full scale.  Reflect-101 border.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    ksize : int
        Aperture, 3, 5 or 7.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
        Computed in float32; integers rounded and saturated.
    """
    scale = 2.0 ** -(2 * ksize - 3)
    dx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=ksize, scale=scale)
    dy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=ksize, scale=scale)
    return cast_like(np.sqrt(dx * dx + dy * dy), image.dtype)


def _low_le_high(params: dict) -> str | None:
    if params["low"] > params["high"]:
        return f"'low' ({params['low']}) must not exceed 'high' ({params['high']})"
    return None


# int16 derivatives must hold the largest Sobel response on the 0-255 scale: 4 * 255 for
# aperture 3 and 48 * 255 for aperture 5; scaling by these gains keeps sub-level precision.
_GAIN = {3: 32, 5: 2}


@operator(
    {
        "low": Param(
            "float",
            minimum=0,
            maximum=64,
            description="hysteresis low threshold, fraction of full scale",
        ),
        "high": Param(
            "float",
            minimum=0,
            maximum=64,
            description="hysteresis high threshold, fraction of full scale",
        ),
        "aperture": Param("int", minimum=3, maximum=5, odd=True, description="Sobel aperture"),
        "l2_gradient": Param("bool", description="use the L2 gradient norm instead of L1"),
    },
    constraint=_low_le_high,
)
def canny(
    image: np.ndarray,
    low: float = 0.1,
    high: float = 0.2,
    aperture: int = 3,
    l2_gradient: bool = False,
    *,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Canny edges of each channel: full scale on edges, 0 elsewhere.

    Thresholds apply to the (unnormalised) Sobel gradient, as a fraction of full scale: a
    uint8 threshold of 100 in ``cv2.Canny`` is ``100 / 255``.  uint8 calls ``cv2.Canny``;
    uint16 and float32 are put on the 0-255 scale in float32 and their derivatives passed to
    ``cv2.Canny`` as scaled int16, so they lose no precision to 8-bit quantisation.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    low, high : float
        Hysteresis thresholds, ``low <= high``.
    aperture : int
        Sobel aperture, 3 or 5.
    l2_gradient : bool
        Use ``sqrt(dx**2 + dy**2)`` instead of ``|dx| + |dy|``.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
        Binary: 255 / 65535 / 1.0 on edges, 0 elsewhere.
    """
    top = full_scale(image.dtype)
    lo, hi = low * 255, high * 255

    def plane_edges(plane: np.ndarray) -> np.ndarray:
        if plane.dtype == np.uint8:
            return cv2.Canny(plane, lo, hi, apertureSize=aperture, L2gradient=l2_gradient)
        x = plane.astype(np.float32) * np.float32(255 / top)
        gain = _GAIN[aperture]
        border = cv2.BORDER_REPLICATE  # as cv2.Canny does for its own derivatives
        dx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=aperture, borderType=border)
        dy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=aperture, borderType=border)
        dx, dy = cast_like(dx * gain, np.int16), cast_like(dy * gain, np.int16)
        return cv2.Canny(dx, dy, lo * gain, hi * gain, L2gradient=l2_gradient)

    edges = per_channel(image, plane_edges)
    return cast_like((edges > 0) * top, image.dtype)
