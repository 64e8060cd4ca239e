"""The one value-range policy of the project: what "black" and "white" are for each dtype.

Integer dtypes span their full range (uint8 0-255, uint16 0-65535); float dtypes are nominally
0.0-1.0.  Every module that scales, clips or rounds pixel values (the classic operators, the
engine's network path and tile blending, comparisons, writers) goes through these functions, so
a uint16 frame means the same thing everywhere.  NumPy only: importing this is cheap.
"""

from __future__ import annotations

import numpy as np

from napari_vsr.errors import UnsupportedDtypeError


def dtype_range(dtype: np.dtype | type) -> tuple[float, float]:
    """The nominal (lo, hi) of a dtype: (0, 255) for uint8, (0, 65535) for uint16, (iinfo.min,
    iinfo.max) for other integers, (0.0, 1.0) for floats.

    Raises
    ------
    UnsupportedDtypeError
        Neither an integer nor a float dtype (bool, complex, object, ...).
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind == "f":
        return 0.0, 1.0
    raise UnsupportedDtypeError(
        f"dtype {dtype} has no value range; expected an integer or float dtype"
    )


def full_scale(dtype: np.dtype | type) -> float:
    """The value that stands for "white": 255, 65535 (the integer maximum) or 1.0 for floats."""
    return dtype_range(dtype)[1]


def to_float01(x: np.ndarray) -> np.ndarray:
    """Frames in [0, 1] float32.

    Parameters
    ----------
    x : ndarray, any shape, unsigned integer or float
        Unsigned integers are divided by the dtype maximum; floats are cast to float32 (not
        clipped; no copy when already float32).

    Returns
    -------
    ndarray, same shape, float32
    """
    if x.dtype.kind == "u":
        return x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)
    return x.astype(np.float32, copy=False)


def from_float01(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The inverse of :func:`to_float01`: unsigned integers get ``rint(clip(x, 0, 1) * max)``;
    floats are only cast (not clipped).

    Parameters
    ----------
    x : ndarray, any shape, float
    dtype : numpy dtype
        The target dtype.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        top = np.iinfo(dtype).max
        return np.rint(np.clip(x, 0.0, 1.0) * top).astype(dtype)
    return x.astype(dtype, copy=False)


def saturate(values: np.ndarray, dtype: np.dtype, *, overwrite: bool = False) -> np.ndarray:
    """Float results (in the units of ``dtype``) as ``dtype``: integer dtypes are rounded half to
    even and clipped to their range; float dtypes are only cast (no copy when already there).

    Parameters
    ----------
    values : ndarray, any shape, float
    dtype : numpy dtype
    overwrite : bool
        Whether ``values`` (a temporary of the caller) may be used as scratch space.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        return values.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    out = np.rint(values, out=values) if overwrite else np.rint(values)
    np.clip(out, info.min, info.max, out=out)
    return out.astype(dtype)
