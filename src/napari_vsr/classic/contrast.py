"""Contrast: histogram equalization, CLAHE and gamma.

These operators are defined on a range, so float32 input is clipped to [0, 1] first.
Histogram equalization of float32 runs on a 16-bit quantisation (``round(x * 65535)``) and
comes back as float32 in [0, 1]; CLAHE of uint16/float32 uses 256-bin histograms with
interpolated mappings (see :func:`clahe`).
"""

from __future__ import annotations

import cv2
import numpy as np

from napari_vsr.classic.dtypes import cast_like, full_scale, per_channel
from napari_vsr.classic.registry import Param, operator


def _quantise(image: np.ndarray) -> np.ndarray:
    return cast_like(np.clip(image, 0, 1) * np.float32(65535), np.uint16)


def _equalize_plane(plane: np.ndarray) -> np.ndarray:
    if plane.dtype == np.uint8:
        return cv2.equalizeHist(plane)
    # OpenCV's algorithm, for 65536 levels: the lowest present level maps to 0 and the others
    # to round(cumulative count above it / count above it * 65535)
    hist = np.bincount(plane.ravel(), minlength=65536)
    first = int(np.flatnonzero(hist)[0])
    rest = plane.size - int(hist[first])
    if rest == 0:
        return plane.copy()
    cum = np.cumsum(hist, dtype=np.int64) - hist[first]
    lut = cast_like(cum * (65535.0 / rest), np.uint16)
    lut[: first + 1] = 0
    return lut[plane]


@operator({})
def equalize_hist(image: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
    """Histogram equalization, each channel on its own.

    uint8 uses ``cv2.equalizeHist``; uint16 uses the same algorithm with 65536 levels; float32
    is clipped to [0, 1] and equalized on a 16-bit quantisation.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype (float32 in [0, 1])
    """
    if image.dtype == np.float32:
        q = per_channel(_quantise(image), _equalize_plane)
        return q.astype(np.float32) / np.float32(65535)
    return per_channel(image, _equalize_plane)


def _clahe_continuous(
    x: np.ndarray, clip_limit: float, rows: int, cols: int, nbins: int = 256
) -> np.ndarray:
    """CLAHE of a (H, W) float64 plane in [0, 1] with ``nbins`` histogram bins.

    OpenCV's algorithm (reflect-101 padding to whole tiles, clip at ``clip_limit`` times the
    mean bin count, uniform redistribution, bilinear blending of the four nearest tile
    mappings), except that each tile's mapping is the piecewise-linear cumulative histogram,
    so the output keeps the input's full precision instead of ``nbins`` levels.
    """
    h, w = x.shape
    pad_y, pad_x = (-h) % rows, (-w) % cols
    padded = np.pad(x, ((0, pad_y), (0, pad_x)), mode="reflect" if min(h, w) > 1 else "edge")
    th, tw = padded.shape[0] // rows, padded.shape[1] // cols
    total = th * tw
    # bin j is centred on level j / (nbins - 1), as the 256 levels of uint8 are
    bins = np.rint(np.clip(padded, 0, 1) * (nbins - 1)).astype(np.int64)
    tiles = bins.reshape(rows, th, cols, tw).transpose(0, 2, 1, 3).reshape(rows * cols, total)
    offsets = np.arange(rows * cols)[:, None] * nbins
    hist = np.bincount((tiles + offsets).ravel(), minlength=rows * cols * nbins)
    hist = hist.reshape(rows * cols, nbins).astype(np.float64)
    limit = max(int(clip_limit * total / nbins), 1)
    excess = np.maximum(hist - limit, 0).sum(axis=1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / nbins
    cdf = np.zeros((rows * cols, nbins + 1))
    np.cumsum(hist, axis=1, out=cdf[:, 1:])
    cdf /= total
    # a level at a bin centre maps to the cumulative count at the end of its bin (as OpenCV's
    # lookup tables do); levels in between are interpolated.  Shared by all tiles.
    pos = (np.clip(x, 0, 1) * (nbins - 1)).astype(np.float32)
    k = np.minimum(pos.astype(np.int32), nbins - 2)
    frac = pos - k
    k += 1
    table = cdf.astype(np.float32).ravel()
    # the four nearest tile centres, as OpenCV's CLAHE_Interpolation_Body
    ty = np.arange(h) / th - 0.5
    tx = np.arange(w) / tw - 0.5
    y1 = np.floor(ty).astype(np.int32)
    x1 = np.floor(tx).astype(np.int32)
    ya = (ty - y1).astype(np.float32)[:, None]
    xa = (tx - x1).astype(np.float32)[None, :]
    stride = np.int32(nbins + 1)

    def mapped(tile_y: np.ndarray, tile_x: np.ndarray) -> np.ndarray:
        rows_c = np.clip(tile_y, 0, rows - 1)[:, None] * np.int32(cols)
        cols_c = np.clip(tile_x, 0, cols - 1)[None, :]
        idx = (rows_c + cols_c) * stride + k
        lo = table.take(idx)
        return lo + frac * (table.take(idx + 1) - lo)

    top = mapped(y1, x1) * (1 - xa) + mapped(y1, x1 + 1) * xa
    bottom = mapped(y1 + 1, x1) * (1 - xa) + mapped(y1 + 1, x1 + 1) * xa
    return (top * (1 - ya) + bottom * ya).astype(np.float64)


@operator(
    {
        "clip_limit": Param(
            "float",
            minimum=0,
            open_minimum=True,
            maximum=1000,
            description="contrast limit: clip bins at this many times the mean",
        ),
        "tile_grid": Param("pair", minimum=1, maximum=256, description="tiles as [rows, columns]"),
    }
)
def clahe(
    image: np.ndarray,
    clip_limit: float = 2.0,
    tile_grid: tuple[int, int] = (8, 8),
    *,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization, per channel.

    uint8 runs ``cv2.createCLAHE``.  OpenCV's 16-bit CLAHE uses 65536 bins and an integer clip
    count of at least 1, which for ordinary tile sizes ignores ``clip_limit`` and amplifies
    noise strongly; so uint16 and float32 (clipped to [0, 1]) use the same algorithm with 256
    bins, the same ``clip_limit`` meaning, and piecewise-linear tile mappings that keep the
    full 16-bit / float precision.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
    clip_limit : float
        Histogram bins are clipped at ``clip_limit`` times the mean bin count of a tile
        (OpenCV's ``clipLimit``); larger means more contrast and more noise.
    tile_grid : (int, int)
        Number of tiles as ``(rows, columns)``.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype (float32 in [0, 1])
    """
    rows, cols = tile_grid
    if image.dtype == np.uint8:
        tool = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(cols, rows))
        return per_channel(image, tool.apply)
    top = full_scale(image.dtype)

    def plane(p: np.ndarray) -> np.ndarray:
        out = _clahe_continuous(p.astype(np.float64) / top, clip_limit, rows, cols)
        return cast_like(out * top, image.dtype)

    return per_channel(image, plane)


@operator(
    {
        "gamma": Param(
            "float",
            minimum=0,
            open_minimum=True,
            maximum=10,
            description="exponent; < 1 brightens, > 1 darkens",
        )
    }
)
def adjust_gamma(
    image: np.ndarray, gamma: float = 1.0, *, channel_axis: int | None = None
) -> np.ndarray:
    """Gamma correction ``full * (image / full) ** gamma``.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float32
        float32 is clipped to [0, 1] first.
    gamma : float
        Exponent in (0, 10]; below 1 brightens the dark tones.
    channel_axis : int, optional
        Axis of the channels if not last.

    Returns
    -------
    ndarray, same shape and dtype
        Integers go through a lookup table rounded half to even.
    """
    if image.dtype == np.float32:
        return np.power(np.clip(image, 0, 1), np.float32(gamma), dtype=np.float32)
    top = full_scale(image.dtype)
    levels = np.arange(int(top) + 1, dtype=np.float64)
    lut = cast_like(top * (levels / top) ** gamma, image.dtype)
    if image.dtype == np.uint8:
        return cv2.LUT(image, lut)
    return lut[image]
