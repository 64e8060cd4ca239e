"""Sharpening: Laplacian kernel sharpening and unsharp masking (one frame at a time)."""

from __future__ import annotations

import cv2
import numpy as np

from napari_vsr.classic.dtypes import cast_like, full_scale
from napari_vsr.classic.registry import Param, operator


def laplacian_kernel(strength: float = 1.0) -> np.ndarray:
    """The 3x3 sharpening kernel ``identity - strength * laplacian``.

    ``strength=1`` gives ``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]``.

    Returns
    -------
    ndarray, (3, 3), float32
    """
    s = float(strength)
    return np.array([[0, -s, 0], [-s, 1 + 4 * s, -s], [0, -s, 0]], dtype=np.float32)


@operator(
    {
        "strength": Param(
            "float", minimum=0, maximum=10, description="weight of the Laplacian (1 = classic)"
        )
    }
)
def laplacian_sharpen(
    image: np.ndarray, strength: float = 1.0, *, channel_axis: int | None = None
) -> np.ndarray:
    """Sharpen with the 3x3 Laplacian kernel ``[[0,-1,0],[-1,5,-1],[0,-1,0]]``.

    Runs ``cv2.filter2D`` (border: reflect-101), exactly as the original desktop tool did.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
        Any range; see :mod:`napari_vsr.classic.dtypes`.
    strength : float
        Laplacian weight, 0 (identity) to 10; 1 gives the classic kernel.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
        Integers are saturated; float32 keeps overshoots.
    """
    return cv2.filter2D(image, -1, laplacian_kernel(strength))


@operator(
    {
        "radius": Param(
            "float",
            minimum=0,
            open_minimum=True,
            maximum=50,
            description="Gaussian sigma of the blur, pixels",
        ),
        "amount": Param("float", minimum=0, maximum=20, description="how much detail to add"),
        "threshold": Param(
            "float",
            minimum=0,
            maximum=1,
            description="minimum detail to sharpen, fraction of full scale",
        ),
    }
)
def unsharp_mask(
    image: np.ndarray,
    radius: float = 1.0,
    amount: float = 1.0,
    threshold: float = 0.0,
    *,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Unsharp mask: ``image + amount * (image - gaussian(image, radius))``.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    radius : float
        Sigma of the Gaussian blur in pixels (kernel truncated at 4 sigma, reflect-101 border).
    amount : float
        Gain of the added detail, 0-20.
    threshold : float
        Only pixels whose detail ``|image - blurred|`` is at least ``threshold`` (a fraction of
        full scale: 255, 65535 or 1.0) are sharpened.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
        Computed in float32, then rounded and saturated for integer dtypes.
    """
    x = np.asarray(image, dtype=np.float32)  # read only: no copy for float32 input
    blurred = cv2.GaussianBlur(x, (0, 0), sigmaX=radius, sigmaY=radius)
    # in place from here: two full-size float32 temporaries instead of five (less memory
    # traffic, which is what limits this operator when several frames run in parallel)
    detail = np.subtract(x, blurred, out=blurred)
    if threshold > 0:
        detail[np.abs(detail) < threshold * full_scale(image.dtype)] = 0
    np.multiply(detail, np.float32(amount), out=detail)
    np.add(x, detail, out=detail)
    return cast_like(detail, image.dtype, overwrite=True)
