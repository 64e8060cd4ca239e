"""Spatial denoising filters: mean, Gaussian, median, bilateral, non-local means."""

from __future__ import annotations

import cv2
import numpy as np
import scipy.ndimage as ndi

from napari_vsr.classic.dtypes import cast_like, full_scale, per_channel
from napari_vsr.classic.registry import Param, operator

_KERNEL = Param("int", minimum=1, maximum=99, odd=True, description="kernel size, pixels")


@operator({"size": _KERNEL})
def mean_filter(image: np.ndarray, size: int = 3, *, channel_axis: int | None = None) -> np.ndarray:
    """Mean (box) filter over a ``size x size`` window (``cv2.blur``, reflect-101 border).

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    size : int
        Odd window size, 1-99.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype (integers rounded)
    """
    return cv2.blur(image, (size, size))


@operator(
    {
        "ksize": _KERNEL,
        "sigma": Param(
            "float", minimum=0, maximum=100, description="sigma in pixels; 0 derives it from ksize"
        ),
    }
)
def gaussian_blur(
    image: np.ndarray, ksize: int = 5, sigma: float = 0.0, *, channel_axis: int | None = None
) -> np.ndarray:
    """Gaussian blur with a ``ksize x ksize`` kernel (``cv2.GaussianBlur``, reflect-101 border).

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    ksize : int
        Odd kernel size, 1-99.
    sigma : float
        Standard deviation in pixels; 0 lets OpenCV derive it from ``ksize``
        (``0.3 * ((ksize - 1) / 2 - 1) + 0.8``).
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
        uint8 uses OpenCV's bit-exact fixed-point path.
    """
    return cv2.GaussianBlur(image, (ksize, ksize), sigma)


@operator({"size": _KERNEL})
def median_filter(
    image: np.ndarray, size: int = 3, *, channel_axis: int | None = None
) -> np.ndarray:
    """Median over a ``size x size`` window (replicate border).

    ``cv2.medianBlur`` where OpenCV supports the combination (uint8 with 1, 3 or 4 channels;
    uint16/float32 only up to size 5); otherwise :func:`scipy.ndimage.median_filter`
    (``mode="nearest"``), which gives identical values.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    size : int
        Odd window size, 1-99.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
    """
    if size == 1:
        return image.copy()
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if channels in (1, 3, 4) and (image.dtype == np.uint8 or size <= 5):
        return cv2.medianBlur(image, size)
    footprint = (size, size) if image.ndim == 2 else (size, size, 1)
    return ndi.median_filter(image, size=footprint, mode="nearest")


@operator(
    {
        "diameter": Param("int", minimum=1, maximum=31, description="neighbourhood diameter"),
        "sigma_color": Param(
            "float",
            minimum=0,
            open_minimum=True,
            maximum=10,
            description="range sigma, fraction of full scale",
        ),
        "sigma_space": Param(
            "float", minimum=0, open_minimum=True, maximum=100, description="spatial sigma, pixels"
        ),
    }
)
def bilateral_filter(
    image: np.ndarray,
    diameter: int = 5,
    sigma_color: float = 0.1,
    sigma_space: float = 2.0,
    *,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Edge-preserving bilateral filter (``cv2.bilateralFilter``).

    OpenCV runs on uint8 and float32 with 1 or 3 channels; uint16 is filtered as float32 in
    [0, 1] and converted back; other channel counts (RGBA, ...) are filtered channel by channel.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    diameter : int
        Diameter of the pixel neighbourhood, 1-31.
    sigma_color : float
        Range sigma as a fraction of full scale (0.1 of 255 = 25.5 for uint8).
    sigma_space : float
        Spatial sigma in pixels.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
    """
    if image.dtype == np.uint16:
        scaled = image.astype(np.float32) / np.float32(65535)
        out = _bilateral(scaled, diameter, sigma_color, sigma_space)
        return cast_like(out * np.float32(65535), np.uint16)
    return _bilateral(image, diameter, sigma_color * full_scale(image.dtype), sigma_space)


def _bilateral(image: np.ndarray, diameter: int, sigma_color: float, sigma_space: float):
    """OpenCV's bilateral filter on uint8/float32; jointly for 1 or 3 channels, else each."""
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if channels in (1, 3):
        return cv2.bilateralFilter(image, diameter, sigma_color, sigma_space)
    return per_channel(image, lambda p: cv2.bilateralFilter(p, diameter, sigma_color, sigma_space))


@operator(
    {
        "h": Param(
            "float",
            minimum=0,
            open_minimum=True,
            maximum=1,
            description="filter strength, fraction of full scale",
        ),
        "template_size": Param(
            "int", minimum=3, maximum=21, odd=True, description="patch size, pixels"
        ),
        "search_size": Param(
            "int", minimum=3, maximum=51, odd=True, description="search window, pixels"
        ),
    }
)
def nl_means(
    image: np.ndarray,
    h: float = 0.04,
    template_size: int = 7,
    search_size: int = 21,
    *,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Non-local means denoising (``cv2.fastNlMeansDenoising`` with the L1 patch norm).

    The L1 norm is used for every dtype because it is the only one OpenCV offers for 16-bit
    data, so ``h`` means the same for 8-bit and 16-bit input.  Up to 4 channels share patch
    weights; more channels are denoised one by one.  float32 frames are quantised to 16 bits
    over ``[min(0, image.min()), max(1, image.max())]`` and mapped back.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    h : float
        Filter strength as a fraction of full scale (0.04 of 255 ~ 10); larger removes more
        noise and more detail.
    template_size : int
        Odd patch size, 3-21 (7 recommended).
    search_size : int
        Odd search window, 3-51 (21 recommended); time grows with its square.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
    """
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if channels > 4:
        return per_channel(image, lambda p: _nl_means(p, h, template_size, search_size))
    return _nl_means(image, h, template_size, search_size)


def _nl_means(image: np.ndarray, h: float, template_size: int, search_size: int) -> np.ndarray:
    """:func:`nl_means` for at most 4 channels."""
    if image.dtype == np.float32:
        lo = min(0.0, float(image.min()))
        hi = max(1.0, float(image.max()))
        span = hi - lo
        q = cast_like((image - np.float32(lo)) * np.float32(65535 / span), np.uint16)
        out = _nl_means_int(q, h / span, template_size, search_size)
        return out.astype(np.float32) * np.float32(span / 65535) + np.float32(lo)
    return _nl_means_int(image, h, template_size, search_size)


def _nl_means_int(image: np.ndarray, h: float, template: int, search: int) -> np.ndarray:
    strength = np.array([h * full_scale(image.dtype)], dtype=np.float32)
    return cv2.fastNlMeansDenoising(image, strength, None, template, search, cv2.NORM_L1)
